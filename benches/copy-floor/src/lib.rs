//! The least work any mapping of a runHuntingQuery answer has to do, with
//! nothing mapped: read the answer once, front to back, and write each cell
//! of each row to the output as it is read, as raw JSON borrowed from the
//! answer (no string copied into a value, converted or allocated, no row
//! kept). No event can be made for less, so its rate bounds every design
//! that reads the answer with serde_json: typed rows with borrowed strings,
//! streaming, or the collector's own.
//!
//! [`typed`] is the other thing measured here: one table's mapping written
//! in the design the copy floor bounds.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

pub mod typed;

/// What is done with each row object of the answer, as it is read.
pub trait RowSink<'de> {
    fn row<A: MapAccess<'de>>(&mut self, cells: A) -> Result<(), A::Error>;
}

/// Reads `answer` once, front to back, handing each row of `results` to
/// `sink` as it is reached; returns the number of rows.
pub fn read_rows<'de, S: RowSink<'de>>(answer: &'de str, sink: &mut S) -> serde_json::Result<usize> {
    let mut de = serde_json::Deserializer::from_str(answer);
    let rows = AnswerSeed(sink).deserialize(&mut de)?;
    de.end()?;
    Ok(rows)
}

/// Copies every cell of every row of `answer` to `out`, one object a line,
/// in one pass over the answer; returns the number of rows. Column names
/// with escapes are an error (no advanced-hunting column has one).
pub fn copy_floor(answer: &str, out: &mut Vec<u8>) -> serde_json::Result<usize> {
    read_rows(answer, &mut CopyRows(out))
}

/// The answer object: `results` is read, every other member skipped.
struct AnswerSeed<'s, S>(&'s mut S);

impl<'de, S: RowSink<'de>> DeserializeSeed<'de> for AnswerSeed<'_, S> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: RowSink<'de>> Visitor<'de> for AnswerSeed<'_, S> {
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

/// The `results` array: each row goes to the sink as soon as it is reached.
struct RowsSeed<'s, S>(&'s mut S);

impl<'de, S: RowSink<'de>> DeserializeSeed<'de> for RowsSeed<'_, S> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: RowSink<'de>> Visitor<'de> for RowsSeed<'_, S> {
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

/// One row object.
struct RowSeed<'s, S>(&'s mut S);

impl<'de, S: RowSink<'de>> DeserializeSeed<'de> for RowSeed<'_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: RowSink<'de>> Visitor<'de> for RowSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row object")
    }
    fn visit_map<A: MapAccess<'de>>(self, cells: A) -> Result<(), A::Error> {
        self.0.row(cells)
    }
}

/// The copy floor's sink: each row's cells written as they are read.
struct CopyRows<'o>(&'o mut Vec<u8>);

impl<'de> RowSink<'de> for CopyRows<'_> {
    fn row<A: MapAccess<'de>>(&mut self, mut cells: A) -> Result<(), A::Error> {
        let out = &mut *self.0;
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

/// FNV-1a over `bytes`: lets the bench check that a run in the component
/// wrote what the same code writes natively, without passing the output out.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
