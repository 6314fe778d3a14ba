//! The least work any mapping of a runHuntingQuery answer has to do, with
//! nothing mapped: read the answer once, front to back, and write each cell
//! of each row to the output as it is read, as raw JSON borrowed from the
//! answer (no string copied into a value, converted or allocated, no row
//! kept). No event can be made for less, so its rate bounds every design
//! that reads the answer with serde_json: typed rows with borrowed strings,
//! streaming, or the collector's own.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Copies every cell of every row of `answer` to `out`, one object a line,
/// in one pass over the answer; returns the number of rows. Column names
/// with escapes are an error (no advanced-hunting column has one).
pub fn copy_floor(answer: &str, out: &mut Vec<u8>) -> serde_json::Result<usize> {
    let mut de = serde_json::Deserializer::from_str(answer);
    let rows = AnswerSeed(out).deserialize(&mut de)?;
    de.end()?;
    Ok(rows)
}

/// The answer object: `results` is copied, every other member skipped.
struct AnswerSeed<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for AnswerSeed<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AnswerSeed<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a runHuntingQuery answer")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<usize, A::Error> {
        let mut rows = 0;
        while let Some(key) = members.next_key::<&'de str>()? {
            if key == "results" {
                rows = members.next_value_seed(RowsSeed(&mut *self.0))?;
            } else {
                members.next_value::<IgnoredAny>()?;
            }
        }
        Ok(rows)
    }
}

/// The `results` array: each row is written as soon as it is read.
struct RowsSeed<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut rows: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while rows.next_element_seed(RowSeed(&mut *self.0))?.is_some() {
            count += 1;
        }
        Ok(count)
    }
}

/// One row object, its cells written as they are read.
struct RowSeed<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut cells: A) -> Result<(), A::Error> {
        let out = self.0;
        out.push(b'{');
        let mut first = true;
        while let Some((column, value)) = cells.next_entry::<&'de str, &'de RawValue>()? {
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(column.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value.get().as_bytes());
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}
