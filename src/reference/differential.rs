//! The differential test: the compiled plans (`crate::mapping::plan`) and
//! the old engine (this frozen copy) map every row we have to the same
//! events, as JSON values (key order aside), and reject the same rows.
//!
//! The rows: the shared sample rows (`../shared/samples/normalized`, and
//! its `_synthetic` rows), the golden cases (`tests/golden`), the bench
//! workloads (`benches/workload.rs`), and property-test rows of every
//! table, made of the columns its field lists read, its ActionTypes, and
//! cells of every JSON type (`tests/support/json_cells.rs`), each under
//! both settings of the deprecated classes, with and without a collection
//! time, and with and without the answer's schema.

use crate::mapping;
use crate::time::Ticks;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

#[path = "../../tests/support/json_cells.rs"]
mod json_cells;

#[path = "../../benches/workload.rs"]
#[allow(dead_code)]
mod workload;

/// The old engine's event for `text` (a row), or its error.
fn old(table: &str, text: &str, ctx: &mapping::Context) -> Result<Value, String> {
    let table = super::table(table).expect("the reference has every table");
    let row: crate::graph::Row = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let ctx = super::engine::Context {
        tenant_uid: ctx.tenant_uid.clone(),
        no_deprecated_classes: ctx.no_deprecated_classes,
        collected_at: ctx.collected_at,
    };
    super::map_row(table, row, &ctx).map_err(|e| e.to_string())
}

/// The plan's event for `text`, or its error; `schema` gives the answer's
/// column order (a plan places a cell without a lookup where it matches).
fn new(table: &str, text: &str, ctx: &mapping::Context, schema: &[&str]) -> Result<Value, String> {
    let table = mapping::table(table).expect("a mapped table");
    let plan = mapping::plan::Plan::new(&[table], schema.iter().copied());
    let mut out = Vec::new();
    let written = plan.write_row(text, ctx, &mut out, |_, _| None).map_err(|e| e.to_string())?;
    assert_eq!(out.last(), Some(&b'\n'), "one line per event");
    assert!(!out[..out.len() - 1].contains(&b'\n'), "no newline inside an event: {}", String::from_utf8_lossy(&out));
    let event: Value = serde_json::from_slice(&out).map_err(|e| format!("the plan wrote text that is not JSON ({e}): {}", String::from_utf8_lossy(&out)))?;
    assert_eq!(Some(written.class_uid as u64), event["class_uid"].as_u64());
    assert_eq!(Some(written.time_ms), event["time"].as_i64());
    assert_eq!(Some(written.uid.as_str()), event["metadata"]["uid"].as_str());
    Ok(event)
}

/// The contexts every row is mapped under.
fn contexts() -> Vec<mapping::Context> {
    let mut all = Vec::new();
    for no_deprecated_classes in [false, true] {
        for collected_at in [None, Some(Ticks(638_000_000_000_000_000))] {
            all.push(mapping::Context {
                tenant_uid: Some("00000000-0000-4000-8000-000000000001".into()),
                no_deprecated_classes,
                collected_at,
            });
        }
    }
    all
}

/// Maps `text` both ways under every context, with and without a schema;
/// returns the first difference.
fn differ(table: &str, text: &str) -> Option<String> {
    let row: Option<Map<String, Value>> = serde_json::from_str(text).ok();
    let schema: Vec<&str> = row.as_ref().map(|r| r.keys().map(String::as_str).collect()).unwrap_or_default();
    for ctx in contexts() {
        let want = old(table, text, &ctx);
        for schema in [&[][..], &schema[..]] {
            let got = new(table, text, &ctx, schema);
            let same = match (&want, &got) {
                (Ok(a), Ok(b)) => a == b,
                (Err(_), Err(_)) => true,
                _ => false,
            };
            if !same {
                return Some(format!(
                    "{table} (deprecated classes off: {}, collected_at: {:?}, schema: {}) row {text}\nold: {}\nnew: {}",
                    ctx.no_deprecated_classes,
                    ctx.collected_at,
                    !schema.is_empty(),
                    show(&want),
                    show(&got)
                ));
            }
        }
    }
    None
}

fn show(r: &Result<Value, String>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("error: {e}"),
    }
}

fn shared() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples/normalized");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "{} is missing", dir.display());
    println!("SKIPPED: {} is missing", dir.display());
    None
}

#[test]
fn the_shared_sample_rows_map_alike() {
    let Some(dir) = shared() else { return };
    let mut rows = 0;
    for sub in [dir.clone(), dir.join("_synthetic")] {
        for table in mapping::TABLES {
            let Ok(text) = std::fs::read_to_string(sub.join(format!("{}.ndjson", table.name))) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                rows += 1;
                if let Some(d) = differ(table.name, line) {
                    panic!("{d}");
                }
            }
        }
    }
    assert!(rows > 100, "only {rows} sample rows were found");
}

#[test]
fn the_golden_rows_map_alike() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut rows = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let groups: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        for group in groups {
            let table = group["table"].as_str().unwrap();
            for case in group["cases"].as_array().unwrap() {
                let mut row = group["base"].as_object().unwrap().clone();
                if let Some(Value::Object(extra)) = case.get("row") {
                    row.extend(extra.clone());
                }
                if let Some(a) = case.get("ActionType") {
                    row.insert("ActionType".into(), a.clone());
                }
                rows += 1;
                if let Some(d) = differ(table, &Value::Object(row).to_string()) {
                    panic!("{d}");
                }
            }
        }
    }
    assert!(rows > 100, "only {rows} golden rows were found");
}

#[test]
fn the_bench_workloads_map_alike() {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
    for table in ["DeviceProcessEvents", "DeviceNetworkEvents", "DeviceEvents"] {
        for row in workload::rows(table, 300, base) {
            if let Some(d) = differ(table, &Value::Object(row).to_string()) {
                panic!("{d}");
            }
        }
    }
}

/// Every column a table's mapping reads, with its ActionTypes.
fn table_columns(table: &mapping::Table) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut columns: Vec<&'static str> = vec!["Timestamp", "ActionType", "ReportId", "AdditionalFields", "BrandNewColumn"];
    let mut shapes = vec![table.shape];
    shapes.extend(table.all_activities().filter_map(|a| a.shape));
    for shape in shapes {
        for fields in shape.fields {
            columns.extend(fields.iter().map(|f| f.column));
        }
    }
    columns.extend(table.key.iter().copied());
    columns.sort_unstable();
    columns.dedup();
    let actions = table.activities.iter().chain(table.prefixes.iter()).map(|(a, _)| *a).collect();
    (columns, actions)
}

/// A cell for `column`: mostly what such a column holds, sometimes any JSON.
fn cell() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_cells::json_value(),
        1 => prop::sample::select(vec![
            json!("C:\\Windows\\System32\\cmd.exe"),
            json!("C:\\Windows\\System32\\"),
            json!("/usr/bin/tar"),
            json!("alice@contoso.com"),
            json!("fe80::1"),
            json!(" 10.0.0.2 "),
            json!("443"),
            json!(70000),
            json!("True"),
            json!(1),
            json!("Tcp"),
            json!("IcmpV6"),
            json!("https://a.example/x?y"),
            json!("a.example:8443"),
            json!("00-15-5D-01-02-03"),
            json!("{\"IsLocalLogon\":true,\"ProcessId\":\"12\",\"Severity\":\"High\"}"),
            json!("[{\"IPAddress\":\"10.1.1.1\",\"SubnetPrefix\":24,\"AddressType\":\"Private\"}]"),
            json!("-0"),
            json!(1.5),
            json!(18446744073709551615u64),
            json!("\u{1F600}"),
            json!(""),
            json!(null),
        ]),
    ]
}

fn table_row() -> impl Strategy<Value = (usize, String)> {
    (0..mapping::TABLES.len()).prop_flat_map(|index| {
        let (columns, actions) = table_columns(mapping::TABLES[index]);
        let action = if actions.is_empty() {
            Just(Value::Null).boxed()
        } else {
            prop_oneof![4 => prop::sample::select(actions).prop_map(|a| json!(a)), 1 => json_cells::json_value()].boxed()
        };
        (
            Just(index),
            prop::collection::vec((prop::sample::select(columns), cell()), 0..30),
            action,
            prop::option::weighted(0.9, Just(json!("2025-01-01T00:00:00.1234567Z"))),
        )
            .prop_map(|(index, cells, action, timestamp)| {
                let mut row = Map::new();
                if let Some(t) = timestamp {
                    row.insert("Timestamp".into(), t);
                }
                row.insert("ActionType".into(), action);
                row.extend(cells.into_iter().map(|(c, v)| (c.to_string(), v)));
                (index, Value::Object(row).to_string())
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_row_of_any_table_maps_alike((index, text) in table_row()) {
        let table = mapping::TABLES[index].name;
        if let Some(d) = differ(table, &text) {
            prop_assert!(false, "{}", d);
        }
    }
}

#[test]
fn rows_the_answer_text_makes_rare_map_alike() {
    let rows = [
        // A column given twice keeps its last value.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","DeviceId":"a","DeviceId":"b","ActionType":"ProcessCreated","ProcessId":1}"#,
        // Escapes in names and values, and surrogate pairs.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","Device\u0049d":"d","FileName":"a\u00e9\ud83d\ude00.exe","FolderPath":"C:\/x\\","ProcessId":1}"#,
        // A lone surrogate is not text.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","FileName":"\ud800","ProcessId":1}"#,
        // Numbers serde_json reads as floats, or not at all.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","ProcessId":1.0,"FileSize":-0,"ReportId":1e3}"#,
        r#"{"Timestamp":"2025-01-01T00:00:00Z","ProcessId":1e400}"#,
        // Whitespace inside an object cell, and a newline in a string.
        "{\"Timestamp\":\"2025-01-01T00:00:00Z\",\"AdditionalFields\":{ \"a\" :\n [1, 2] },\"X\":\"a\\nb\",\"ProcessId\":1}",
        // Columns named like objects the finish steps move to `unmapped`,
        // and like `unmapped` itself (found by the direct writer's fuzzing).
        r#"{"Timestamp":"2025-01-01T00:00:00Z","ProcessFileName":"x","FileName":"a","process":"a column","actor":{"x":1},"unmapped":7,"InitiatingProcessParentFileName":"p"}"#,
        r#"{"Timestamp":"2025-01-01T00:00:00Z","InitiatingProcessAccountDomain":"d","process":{"pid":1},"ProcessId":"not a pid"}"#,
        // A float that does not read back exactly as serde_json writes it.
        r#"{"Timestamp":"2025-01-01T00:00:00Z","ProcessId":1,"X":0.30000000000000004,"Y":1.7976931348623157e308}"#,
        // Not a row.
        r#"[1,2]"#,
        r#"{"Timestamp":"2025-01-01T00:00:00Z"} trailing"#,
        r#"{"Timestamp":12,"ProcessId":1}"#,
        r#"{"Timestamp":"not a time","ProcessId":1}"#,
        r#"{"ActionType":"ProcessCreated","ProcessId":1}"#,
    ];
    for table in mapping::TABLES {
        for text in rows {
            if let Some(d) = differ(table.name, text) {
                panic!("{d}");
            }
        }
    }
}
