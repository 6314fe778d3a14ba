//! The answer of an advanced-hunting query: its schema and its rows, kept
//! as the bytes that came and read one row at a time. The Graph client
//! makes one from a response body; the mapping reads its rows.

use crate::error::Error;
use crate::time::Ticks;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// The column that names each row's table in the answer of a union of
/// tables (`union withsource=SourceTable`).
pub const SOURCE_COLUMN: &str = "SourceTable";

/// One result row: column name to JSON value, as Graph sent it.
///
/// A hash map rather than a B-tree: mapping looks up and takes every column
/// by name, and column names share long prefixes (`InitiatingProcessVersionInfo…`),
/// which a B-tree compares over and over. In the component, where a byte
/// comparison costs more than natively, this made mapping faster by up to a
/// fifth (docs/performance.md); natively it is a wash. Its order is no one's
/// concern: what is left of a row lands under `unmapped`, an ordered map.
pub type Row = HashMap<String, Value, foldhash::fast::RandomState>;

/// A parsed `huntingQueryResults`. The answer's bytes are kept as they came
/// and each row is parsed only when it is mapped, so that a 50 MB answer is
/// held once, not also as a tree of values.
#[derive(Debug, Default)]
pub struct HuntingResult {
    /// Column names and their declared types (`DateTime`, `String`, `Int64`, ...).
    pub schema: Vec<(String, String)>,
    /// Checked to be UTF-8 once, so that parsing a row does not check its
    /// strings again.
    body: String,
    /// Where each row (a JSON object) lies in `body`.
    rows: Vec<(u32, u32)>,
    /// Entries of `results` that are not rows (not JSON objects), described
    /// by position; the rows around them are kept.
    pub malformed: Vec<String>,
}

impl HuntingResult {
    /// How many rows the answer holds (entries that are not rows aside).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i` as the answer holds it: the JSON text of one object.
    pub fn raw(&self, i: usize) -> &str {
        let (start, end) = self.rows[i];
        &self.body[start as usize..end as usize]
    }

    /// Row `i`, parsed.
    pub fn row(&self, i: usize) -> Result<Row, String> {
        // Room for every declared column, so that the map never grows while
        // it is filled (within reason: the schema is the server's word).
        let columns = self.schema.len().clamp(8, 512);
        let mut de = serde_json::Deserializer::from_str(self.raw(i));
        serde::de::DeserializeSeed::deserialize(RowSeed(columns), &mut de)
            .and_then(|row| de.end().map(|()| row))
            .map_err(|e| format!("row {i} could not be read: {e}"))
    }

    /// Every row, parsed (for small answers and tests).
    pub fn parse_rows(&self) -> Vec<Row> {
        (0..self.len()).filter_map(|i| self.row(i).ok()).collect()
    }

    /// The `Timestamp` of row `i`, reading nothing else of it.
    pub fn time(&self, i: usize) -> Option<Ticks> {
        #[derive(Deserialize)]
        struct TimeOnly<'a> {
            #[serde(rename = "Timestamp", borrow, default)]
            timestamp: Option<std::borrow::Cow<'a, str>>,
        }
        let t: TimeOnly = serde_json::from_str(self.raw(i)).ok()?;
        Ticks::parse(&t.timestamp?).ok()
    }
}

/// Reads a row (a JSON object) into a [`Row`] made with room for `.0`
/// columns. A column that appears twice keeps its last value.
struct RowSeed(usize);

impl<'de> serde::de::DeserializeSeed<'de> for RowSeed {
    type Value = Row;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Row, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RowSeed {
    type Value = Row;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a row (a JSON object)")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let mut row = Row::with_capacity_and_hasher(self.0, Default::default());
        while let Some((column, value)) = map.next_entry::<String, Value>()? {
            row.insert(column, value);
        }
        Ok(row)
    }
}

#[derive(Deserialize)]
struct RawResult<'a> {
    #[serde(default, alias = "Schema")]
    schema: Vec<RawColumn>,
    #[serde(default, borrow, alias = "Results")]
    results: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct RawColumn {
    #[serde(alias = "Name")]
    name: String,
    #[serde(default, alias = "Type")]
    r#type: String,
}

/// Parses a runHuntingQuery response body. Keys may be `schema`/`results`
/// (Graph) or `Schema`/`Results` (legacy APIs), and columns `name`/`type` or
/// `Name`/`Type`.
pub fn parse_response(body: impl Into<Vec<u8>>) -> Result<HuntingResult, Error> {
    let body = body.into();
    if body.len() > u32::MAX as usize {
        return Err(Error::Transient(format!(
            "Graph returned {} bytes, more than this collector reads at once",
            body.len()
        )));
    }
    let not_results = |body: &[u8], why: &dyn std::fmt::Display| {
        let start = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        Error::Transient(format!(
            "Graph returned a response that is not valid hunting results ({why}); it starts with: {start:?}"
        ))
    };
    let body = String::from_utf8(body).map_err(|e| {
        let why = format!("it is not UTF-8 text: {}", e.utf8_error());
        not_results(e.as_bytes(), &why)
    })?;
    let raw: RawResult = serde_json::from_str(&body).map_err(|e| not_results(body.as_bytes(), &e))?;
    let results = raw
        .results
        .ok_or_else(|| Error::Transient("Graph returned a response without `results`; a proxy may have answered".into()))?;
    let base = body.as_ptr() as usize;
    let mut rows = Vec::with_capacity(results.len());
    let mut malformed = Vec::new();
    for (i, value) in results.into_iter().enumerate() {
        let text = value.get();
        if text.starts_with('{') {
            let start = text.as_ptr() as usize - base;
            rows.push((start as u32, (start + text.len()) as u32));
        } else {
            let text: String = text.chars().take(80).collect();
            malformed.push(format!("result {i} is not a row but {text}"));
        }
    }
    let schema = raw.schema.into_iter().map(|c| (c.name, c.r#type)).collect();
    Ok(HuntingResult {
        schema,
        body,
        rows,
        malformed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_casings_and_keeps_big_integers_exact() {
        let lower = br#"{"schema":[{"name":"ReportId","type":"Int64"}],"results":[{"ReportId":18446744073709551615}]}"#;
        let upper = br#"{"Schema":[{"Name":"ReportId","Type":"Int64"}],"Results":[{"ReportId":9007199254740993}]}"#;
        let a = parse_response(lower).unwrap();
        assert_eq!(a.schema, vec![("ReportId".to_string(), "Int64".to_string())]);
        assert_eq!(a.row(0).unwrap()["ReportId"].to_string(), "18446744073709551615");
        let b = parse_response(upper).unwrap();
        assert_eq!(b.row(0).unwrap()["ReportId"].to_string(), "9007199254740993");
    }

    #[test]
    fn a_malformed_entry_is_reported_and_the_rows_around_it_kept() {
        let r = parse_response(br#"{"schema":[],"results":[{"a":1},7,"x",{"a":2}]}"#).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.malformed.len(), 2);
        assert!(r.malformed[0].contains("result 1"), "{:?}", r.malformed);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = parse_response(b"<html>502 Bad Gateway</html>").unwrap_err().to_string();
        assert!(e.contains("<html>502"), "{e}");
        let e = parse_response(br#"{"schema":[]}"#).unwrap_err().to_string();
        assert!(e.contains("without `results`"), "{e}");
        // Latin-1 where UTF-8 belongs: named, with the position, and the start shown.
        let e = parse_response(&b"{\"schema\":[],\"results\":[{\"a\":\"caf\xe9\"}]}"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8") && e.contains("index 33") && e.contains("results"), "{e}");
    }

    #[test]
    fn rows_keep_their_escapes_and_unicode() {
        let body = r#"{"schema":[],"results":[{"Path":"C:\\Windows\\\u00e9\"x\"","Name":"Ωmega ✓"}]}"#;
        let row = parse_response(body).unwrap().row(0).unwrap();
        assert_eq!(row["Path"], "C:\\Windows\\é\"x\"");
        assert_eq!(row["Name"], "Ωmega ✓");
        // A column sent twice keeps its last value, as a JSON object's reader would.
        let twice = parse_response(r#"{"schema":[],"results":[{"A":1,"A":2}]}"#)
            .unwrap()
            .row(0)
            .unwrap();
        assert_eq!((twice.len(), &twice["A"]), (1, &serde_json::json!(2)));
    }
}
