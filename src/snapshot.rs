//! Entity tables (DeviceInfo, DeviceNetworkInfo, DeviceFileCertificateInfo)
//! are snapshots, not events, and Defender reports them in partial rows
//! about every 15 minutes (graph-api.md §0). One collection of such a table
//! covers an `entity_interval` and emits the latest state of each entity in
//! it: the entity's rows merged oldest first, a later non-empty value
//! replacing an earlier one, so a partial row never blanks a column a fuller
//! row filled. The state keeps the newest row's `Timestamp` and `ReportId`.

use crate::answer::{self, HuntingResult};
use crate::error::Result;
use serde_json::Value;

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

/// A value that says something: not null and not an empty string.
fn present(value: &Value) -> bool {
    !(value.is_null() || value.as_str().is_some_and(str::is_empty))
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
