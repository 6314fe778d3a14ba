//! Entity tables (DeviceInfo, DeviceNetworkInfo, DeviceFileCertificateInfo,
//! IdentityInfo, OAuthAppInfo: `mapping::ENTITY_KEYS`) are snapshots, not events, and Defender reports them in partial rows
//! about every 15 minutes (graph-api.md §0). One collection of such a table
//! covers an `entity_interval` and emits the latest state of each entity in
//! it: the entity's rows merged oldest first, a later non-empty value
//! replacing an earlier one, so a partial row never blanks a column a fuller
//! row filled. The state keeps the newest row's `Timestamp` and `ReportId`.
//!
//! Rows are merged as the answer holds them: each row's cells are read as
//! the mapping reads them (`mapping::cells`), borrowed from the answer, and
//! each state is written back as the JSON text of its cells, as they came.
//! No cell is parsed into a value: a merge costs about a read of the
//! answer's rows and a scan of what it writes, and a number or a string
//! goes to the mapping as Graph wrote it.

use crate::answer::{self, HuntingResult};
use crate::error::Result;
use crate::mapping::cells::{Cells, Columns};
use crate::mapping::value::{Cell, write_str};
use std::collections::HashMap;

/// The latest state of each entity among the first `end` rows of `answer`.
pub struct Merged {
    /// The states, as an answer of its own (newest state last).
    pub answer: HuntingResult,
    /// How many states it holds.
    pub len: usize,
    /// Why each row that could not be read was left out; the caller
    /// reports them.
    pub unreadable: Vec<String>,
}

/// Merges the first `end` rows of `answer` into the latest state of each
/// entity. Rows that lack a key column stand alone.
pub fn merge(answer: &HuntingResult, end: usize, key: &[&str], table: &str) -> Result<Merged> {
    let columns = Columns::new(answer.schema.iter().map(|(name, _)| name.as_str()), key.iter().copied());
    let mut states: Vec<Cells> = Vec::new();
    // Entity key → index in `states`, and the row each state was last seen in.
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut last_seen: Vec<usize> = Vec::new();
    let mut unreadable = Vec::new();
    for i in 0..end.min(answer.len()) {
        // A row the mapping could not read is left out here, with the
        // mapping's reason, rather than carried into its entity's state.
        let row = match Cells::read_row(answer.row_text(i), &columns) {
            Ok(row) => row,
            Err(reason) => {
                unreadable.push(format!("row {i} could not be read: {reason}"));
                continue;
            }
        };
        // Key cells compared as values: a string compares by its text,
        // however it was escaped.
        let id: Option<Vec<String>> = key
            .iter()
            .map(|k| row.get(&columns, k).map(|cell| cell.to_value().to_string()))
            .collect();
        let slot = match id.as_ref().and_then(|id| index.get(id)) {
            Some(&slot) => {
                let state = &mut states[slot];
                for (name, cell) in row.into_rest() {
                    if !cell.is_absent() {
                        state.put(&columns, name, cell);
                    }
                }
                slot
            }
            None => {
                states.push(row);
                last_seen.push(i);
                if let Some(id) = id {
                    index.insert(id, states.len() - 1);
                }
                states.len() - 1
            }
        };
        last_seen[slot] = i;
    }
    // Each state where its entity was last seen: newest last, as answers are.
    let mut order: Vec<usize> = (0..states.len()).collect();
    order.sort_by_key(|s| last_seen[*s]);
    let body = write_answer(answer, order.iter().map(|s| &states[*s]))
        .map_err(|e| crate::error::Error::Fatal(format!("merging {table} rows: {e}")))?;
    let merged = answer::parse_response(body)?;
    Ok(Merged {
        len: merged.len(),
        answer: merged,
        unreadable,
    })
}

/// An answer of `states`, with the schema of `answer`: each state an object
/// of its cells, each cell's JSON text as the answer held it.
fn write_answer<'s, 'a: 's>(answer: &HuntingResult, states: impl Iterator<Item = &'s Cells<'a>>) -> serde_json::Result<Vec<u8>> {
    let schema: Vec<serde_json::Value> = answer
        .schema
        .iter()
        .map(|(name, kind)| serde_json::json!({"name": name, "type": kind}))
        .collect();
    let mut out = b"{\"schema\":".to_vec();
    serde_json::to_writer(&mut out, &schema)?;
    out.extend_from_slice(b",\"results\":[");
    for (n, state) in states.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.push(b'{');
        for (m, (name, cell)) in state.iter().enumerate() {
            if m > 0 {
                out.push(b',');
            }
            write_str(&mut out, name);
            out.push(b':');
            match cell {
                Cell::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
                other => serde_json::to_writer(&mut out, &other.to_value())?,
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(rows: serde_json::Value) -> HuntingResult {
        answer::parse_response(serde_json::to_vec(&serde_json::json!({"schema": [], "results": rows})).unwrap()).unwrap()
    }

    #[test]
    fn partial_rows_merge_into_the_latest_state_of_each_entity() {
        let rows = serde_json::json!([
            {"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "a", "OSPlatform": "Windows11", "Model": "X1", "ReportId": 1},
            {"Timestamp": "2025-01-01T00:05:00Z", "DeviceId": "b", "OSPlatform": "Linux", "ReportId": 2},
            // A partial row of `a`: it must not blank Model.
            {"Timestamp": "2025-01-01T00:15:00Z", "DeviceId": "a", "OSPlatform": "Windows11", "Model": "", "PublicIP": "203.0.113.5", "ReportId": 3},
            {"Timestamp": "2025-01-01T00:20:00Z", "OSPlatform": "no device id", "ReportId": 4},
            {"Timestamp": "2025-01-01T00:25:00Z", "DeviceId": "a", "Model": null, "OSPlatform": "Windows11", "ReportId": 5},
        ]);
        let input = answer(rows);
        let merged = merge(&input, input.len(), &["DeviceId"], "DeviceInfo").unwrap();
        assert_eq!(merged.len, 3);
        assert!(merged.unreadable.is_empty());
        let states = merged.answer.parse_rows();
        // Ordered by when each entity was last seen.
        assert_eq!(states[0]["DeviceId"], "b");
        assert_eq!(states[1]["OSPlatform"], "no device id", "a row without its key stands alone");
        let a = &states[2];
        assert_eq!(a["DeviceId"], "a");
        assert_eq!(a["Model"], "X1", "a partial row keeps the earlier value");
        assert_eq!(a["PublicIP"], "203.0.113.5");
        assert_eq!(a["Timestamp"], "2025-01-01T00:25:00Z");
        assert_eq!(a["ReportId"], 5);
    }

    #[test]
    fn only_the_rows_of_the_window_count() {
        let input = answer(serde_json::json!([
            {"Timestamp": "2025-01-01T00:00:00Z", "DeviceId": "a", "Model": "old"},
            {"Timestamp": "2025-01-01T01:00:00Z", "DeviceId": "a", "Model": "beyond the window"},
        ]));
        let merged = merge(&input, 1, &["DeviceId"], "DeviceInfo").unwrap();
        assert_eq!(merged.len, 1);
        assert_eq!(merged.answer.parse_rows()[0]["Model"], "old");
    }

    /// The merge as it was first written, on `serde_json` values: every
    /// row parsed into a map, states written back by serde_json. The merge
    /// on the answer's text must give the same states, as values.
    fn by_values(answer: &HuntingResult, end: usize, key: &[&str], table: &str) -> Result<Merged> {
        use serde_json::Value;
        fn present(value: &Value) -> bool {
            !(value.is_null() || value.as_str().is_some_and(str::is_empty))
        }
        let mut states: Vec<answer::Row> = Vec::new();
        // Entity key → index in `states`, and the order of last update.
        let mut index: std::collections::HashMap<Vec<String>, usize> = std::collections::HashMap::new();
        let mut touched: Vec<(usize, usize)> = Vec::new();
        let mut unreadable = Vec::new();
        for i in 0..end {
            let row = match answer.row(i) {
                Ok(row) => row,
                Err(reason) => {
                    unreadable.push(reason);
                    continue;
                }
            };
            let id: Option<Vec<String>> = key
                .iter()
                .map(|k| row.get(*k).filter(|v| present(v)).map(Value::to_string))
                .collect();
            let slot = match id {
                Some(id) => match index.get(&id) {
                    Some(&slot) => {
                        for (column, value) in row {
                            if present(&value) {
                                states[slot].insert(column, value);
                            }
                        }
                        slot
                    }
                    None => {
                        states.push(row);
                        index.insert(id, states.len() - 1);
                        states.len() - 1
                    }
                },
                None => {
                    states.push(row);
                    states.len() - 1
                }
            };
            touched.push((i, slot));
        }
        // Each state where its entity was last seen: newest last, as answers are.
        let mut last_seen = vec![0usize; states.len()];
        for (i, slot) in touched {
            last_seen[slot] = i;
        }
        let mut order: Vec<usize> = (0..states.len()).collect();
        order.sort_by_key(|s| last_seen[*s]);
        let schema: Vec<Value> = answer
            .schema
            .iter()
            .map(|(name, kind)| serde_json::json!({"name": name, "type": kind}))
            .collect();
        let results: Vec<&answer::Row> = order.iter().map(|s| &states[*s]).collect();
        let body = serde_json::to_vec(&serde_json::json!({"schema": schema, "results": results}))
            .map_err(|e| crate::error::Error::Fatal(format!("merging {table} rows: {e}")))?;
        let merged = answer::parse_response(body)?;
        Ok(Merged {
            len: merged.len(),
            answer: merged,
            unreadable,
        })
    }

    /// A cell for the property test: absent, any JSON, or what a row
    /// cannot hold (a number out of range, an unpaired surrogate).
    fn cell() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            1 => proptest::sample::select(vec!["null", r#""""#]).prop_map(String::from),
            3 => crate::mapping::value::json_text(),
            1 => proptest::sample::select(vec!["1e400", r#""\ud800""#]).prop_map(String::from),
        ]
    }

    /// A row's key cells: none, absent, or one of a few values (`"a"` also
    /// escaped, `7` also as `7.0` and `"7"`), at the row's start, its end
    /// or both (the last one counts).
    fn keys() -> impl proptest::strategy::Strategy<Value = Vec<(usize, String)>> {
        use proptest::prelude::*;
        let id = proptest::sample::select(vec!["null", r#""""#, r#""a""#, r#""\u0061""#, r#""b""#]);
        let port = proptest::sample::select(vec!["null", "7", "7.0", r#""7""#]);
        let member = prop_oneof![id.prop_map(|v| (0, v.to_string())), port.prop_map(|v| (3, v.to_string()))];
        proptest::collection::vec(member, 0..4)
    }

    proptest::proptest! {
        /// Answers of partial rows (columns missing, absent, given twice,
        /// unknown to the schema, keys escaped differently, rows that cannot
        /// be read) merge into the states the merge on values makes.
        #[test]
        fn merging_the_text_makes_the_states_merging_values_makes(
            rows in proptest::collection::vec((keys(), proptest::collection::vec((0..5usize, cell()), 0..6), proptest::bool::ANY), 0..9),
            schema in proptest::collection::vec(0..5usize, 0..5),
            two_keys in proptest::bool::ANY,
            cut in 0..10usize,
        ) {
            const NAMES: [&str; 5] = ["DeviceId", "Model", "Timestamp", "Port", "Extra"];
            let schema: Vec<String> = schema.iter().map(|&c| format!(r#"{{"name":"{}","type":"string"}}"#, NAMES[c])).collect();
            let results: Vec<String> = rows
                .iter()
                .map(|(keys, cells, keys_first)| {
                    let (first, last) = if *keys_first { (keys, cells) } else { (cells, keys) };
                    let members: Vec<String> = first.iter().chain(last).map(|(c, v)| format!(r#""{}":{v}"#, NAMES[*c])).collect();
                    format!("{{{}}}", members.join(","))
                })
                .collect();
            let body = format!(r#"{{"schema":[{}],"results":[{}]}}"#, schema.join(","), results.join(","));
            let input = answer::parse_response(body.into_bytes()).unwrap();
            let key: &[&str] = if two_keys { &["DeviceId", "Port"] } else { &["DeviceId"] };
            let end = cut.min(input.len());
            let got = merge(&input, end, key, "DeviceInfo").unwrap();
            let expected = by_values(&input, end, key, "DeviceInfo").unwrap();
            let states = |m: &Merged| {
                m.answer
                    .parse_rows()
                    .into_iter()
                    .map(|row| row.into_iter().collect::<std::collections::BTreeMap<_, _>>())
                    .collect::<Vec<_>>()
            };
            proptest::prop_assert_eq!(got.len, expected.len);
            proptest::prop_assert_eq!(got.answer.len(), got.len);
            proptest::prop_assert_eq!(states(&got), states(&expected));
            let rows_named = |m: &Merged| m.unreadable.iter().map(|r| r.split(':').next().unwrap_or("").to_string()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(rows_named(&got), rows_named(&expected));
        }
    }

    #[test]
    fn states_keep_their_cells_as_graph_wrote_them() {
        // Integers beyond 2^64 and numbers serde_json would rewrite go to
        // the mapping as they came.
        let body = br#"{"schema":[],"results":[{"DeviceId":"a","Big":123456789012345678901,"R":1.50},{"DeviceId":"a","Model":"\u00e9"}]}"#;
        let input = answer::parse_response(body.to_vec()).unwrap();
        let merged = merge(&input, input.len(), &["DeviceId"], "DeviceInfo").unwrap();
        assert_eq!(merged.len, 1);
        assert_eq!(
            merged.answer.raw(0),
            r#"{"DeviceId":"a","Big":123456789012345678901,"R":1.50,"Model":"\u00e9"}"#
        );
    }

    #[test]
    fn an_unreadable_row_is_left_out_with_its_reason() {
        let body = br#"{"schema":[],"results":[{"DeviceId":"a","Model":"\ud800"},{"DeviceId":"b","Model":"ok"}]}"#;
        let input = answer::parse_response(body.to_vec()).unwrap();
        let merged = merge(&input, input.len(), &["DeviceId"], "DeviceInfo").unwrap();
        assert_eq!(merged.len, 1);
        assert_eq!(merged.answer.parse_rows()[0]["DeviceId"], "b");
        assert_eq!(merged.unreadable.len(), 1);
        assert!(merged.unreadable[0].contains("row 0"), "{:?}", merged.unreadable);
    }
}
