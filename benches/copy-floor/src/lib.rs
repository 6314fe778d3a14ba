//! The least work any mapping of a runHuntingQuery answer has to do, with
//! nothing mapped: find the rows in the answer, read each row's cells
//! without copying or converting them (borrowed raw JSON), and write every
//! cell to the output once. No event can be made for less, so its rate
//! bounds every design that reads the answer with serde_json, typed rows
//! with borrowed strings included.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// The answer's rows, each as raw JSON.
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
}

/// One row's cells: column names and raw values, borrowed from the answer.
struct Cells<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Cells<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Row;
        impl<'de> Visitor<'de> for Row {
            type Value = Cells<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a row object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut cells: A) -> Result<Cells<'de>, A::Error> {
                let mut out = Vec::with_capacity(cells.size_hint().unwrap_or(64));
                while let Some(cell) = cells.next_entry::<&'de str, &'de RawValue>()? {
                    out.push(cell);
                }
                Ok(Cells(out))
            }
        }
        d.deserialize_map(Row)
    }
}

/// Copies every cell of every row of `answer` to `out`, one object a line;
/// returns the number of rows. Column names with escapes are an error (no
/// advanced-hunting column has one).
pub fn copy_floor(answer: &str, out: &mut Vec<u8>) -> serde_json::Result<usize> {
    let answer: Answer = serde_json::from_str(answer)?;
    for row in &answer.results {
        let cells: Cells = serde_json::from_str(row.get())?;
        out.push(b'{');
        for (i, (column, value)) in cells.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(column.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value.get().as_bytes());
        }
        out.extend_from_slice(b"}\n");
    }
    Ok(answer.results.len())
}
