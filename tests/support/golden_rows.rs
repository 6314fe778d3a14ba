//! The rows of the golden cases (`tests/golden/*.json`), read once for the
//! tests that use them: each case's row is its group's `base`, the case's
//! own `row` columns and its `ActionType`.

use serde_json::{Map, Value};
use std::path::Path;

/// One golden case: its table, its row, and the case as written (its
/// expectations and options).
pub struct GoldenRow {
    pub table: String,
    pub row: Map<String, Value>,
    pub case: Value,
}

impl GoldenRow {
    /// Words of the reason the row must be rejected with, for a case written
    /// so (`"rejected"`): such a row makes no event.
    pub fn rejected(&self) -> Option<&str> {
        self.case.get("rejected").and_then(Value::as_str)
    }
}

/// Every case of every `*.json` file in `dir`, file by file in name order.
pub fn golden_rows(dir: &Path) -> Vec<GoldenRow> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for file in files.iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let groups: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for group in groups {
            let table = group["table"].as_str().unwrap().to_string();
            for case in group["cases"].as_array().unwrap() {
                let mut row = group["base"].as_object().unwrap().clone();
                if let Some(Value::Object(extra)) = case.get("row") {
                    row.extend(extra.clone());
                }
                if let Some(action) = case.get("ActionType") {
                    row.insert("ActionType".into(), action.clone());
                }
                out.push(GoldenRow {
                    table: table.clone(),
                    row,
                    case: case.clone(),
                });
            }
        }
    }
    out
}
