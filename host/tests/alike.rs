//! The embedded component maps as the native build of the same code does,
//! byte for byte. Some of the collector's code runs only in the component:
//! the block copies of `src/bytes.rs` that spare `memory.copy`, and
//! anything else compiled for `wasm32` alone. Their native twins have unit
//! tests; this is where the component's own are tested, on every sample
//! row (as rows one per line and as a runHuntingQuery answer), on every
//! golden row (`tests/golden`, a case per ActionType) and on rows whose
//! strings put a quote, a backslash, a control character or a multi-byte
//! character at every place of strings up to 39 characters long.

#[path = "../../tests/support/golden_rows.rs"]
mod golden_rows;
#[path = "../../tests/support/ocsf_schema.rs"]
mod ocsf_schema;

use defender_ocsf_host::runtime::{DEFAULT_COMPONENT, Instance, Limits, Runtime};
use defender_ocsf_host::telemetry::Telemetry;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const OPTIONS: &str = r#"{"tenant_id":"00000000-0000-4000-8000-0000000000a1","collected_at":"2026-01-01T00:00:00Z"}"#;

fn instance() -> Instance {
    let runtime = Runtime::new(DEFAULT_COMPONENT, None).unwrap();
    let limits = Limits {
        memory_bytes: 1 << 30,
        ..Limits::default()
    };
    runtime.instantiate(&limits, Arc::new(Telemetry::default())).unwrap()
}

/// Maps `body` of `table` in the component and natively; both must give
/// the same bytes, the same count and the same rejections.
fn assert_alike(instance: &mut Instance, table: &str, body: &[u8], label: &str) -> u32 {
    assert_alike_with(instance, table, OPTIONS, body, label)
}

/// [`assert_alike`] with conversion options of the caller's.
fn assert_alike_with(instance: &mut Instance, table: &str, options: &str, body: &[u8], label: &str) -> u32 {
    let native =
        defender_ocsf_collector::convert::convert(table, options, body.to_vec()).unwrap_or_else(|e| panic!("{label}: native: {e}"));
    let component = instance
        .map_results(table, options, body)
        .unwrap()
        .unwrap_or_else(|e| panic!("{label}: component: {e:?}"));
    assert_eq!(component.count, native.count, "{label}: count");
    assert_eq!(component.rejected, native.rejected, "{label}: rejected rows");
    if component.events != native.events {
        let lines = |b: &[u8]| String::from_utf8_lossy(b).lines().map(str::to_string).collect::<Vec<_>>();
        let (c, n) = (lines(&component.events), lines(&native.events));
        let first = c.iter().zip(&n).position(|(c, n)| c != n).unwrap_or(c.len().min(n.len()));
        panic!(
            "{label}: the component's events differ from native code's, first at line {first}:\n  component: {}\n  native:    {}",
            c.get(first).map_or("(none)", String::as_str),
            n.get(first).map_or("(none)", String::as_str)
        );
    }
    native.count
}

/// The rows as a runHuntingQuery answer: a schema of each column's first
/// value's type, and the rows.
fn answer(rows: &[Map<String, Value>]) -> Vec<u8> {
    let mut schema: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        for (name, value) in row {
            if seen.insert(name.clone()) {
                let kind = match value {
                    Value::Bool(_) => "Boolean",
                    Value::Number(n) if n.is_f64() => "Double",
                    Value::Number(_) => "Int64",
                    Value::Object(_) | Value::Array(_) => "Dynamic",
                    _ if name == "Timestamp" => "DateTime",
                    _ => "String",
                };
                schema.push(json!({"Name": name, "Type": kind}));
            }
        }
    }
    serde_json::to_vec(&json!({"schema": schema, "results": rows})).unwrap()
}

#[test]
fn every_sample_row_maps_in_the_component_as_natively() {
    let Some(shared) = ocsf_schema::shared_or_skip("component against native code on the samples") else {
        return;
    };
    let dir = shared.join("samples").join("normalized");
    let mut instance = instance();
    let mut tables = 0;
    for table in defender_ocsf_collector::mapping::TABLES {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{}.ndjson", table.name))) else {
            continue;
        };
        let rows: Vec<Map<String, Value>> = (text.lines().filter(|l| !l.trim().is_empty()))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: a sample row is not a JSON object: {e}", table.name)))
            .collect();
        assert!(!rows.is_empty(), "{}: no sample rows", table.name);
        let lines = assert_alike(&mut instance, table.name, text.as_bytes(), &format!("{} as lines", table.name));
        assert!(lines > 0, "{}: nothing mapped", table.name);
        assert_alike(&mut instance, table.name, &answer(&rows), &format!("{} as an answer", table.name));
        tables += 1;
    }
    assert!(tables >= 20, "only {tables} tables have sample rows in {}", dir.display());
}

/// Strings of every length below 40 characters holding one of the bytes
/// the searches look for (or a multi-byte character) at every place, so
/// that it falls at every offset of the 8-byte words the searches read and
/// of the pieces the block copies write: in the cells the answer's scan
/// reads, the paths split into folders, the hostnames split into name and
/// domain, and the dynamic column written compact.
#[test]
fn strings_with_specials_at_every_place_map_in_the_component_as_natively() {
    let mut rows = Vec::new();
    let specials = ["\"", "\\", "\n", "\u{1}", "é", "€", "😀", "/", "\\\\"];
    for len in 0..40usize {
        for at in 0..=len {
            let special = specials[(len * 7 + at) % specials.len()];
            // `at == len`: a string with none.
            let mut text: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            if at < len {
                text.replace_range(at..at + 1, special);
            }
            let folder = format!("C:\\Users\\{text}\\AppData");
            rows.push(json!({
                "Timestamp": "2026-01-01T00:00:00.1234567Z",
                "DeviceId": "0123456789abcdef0123456789abcdef01234567",
                "DeviceName": format!("{text}.corp.example"),
                "ActionType": "ProcessCreated",
                "ReportId": rows.len(),
                "FileName": format!("{text}.exe"),
                "FolderPath": format!("{folder}\\{text}.exe"),
                "ProcessId": 4242,
                "ProcessCommandLine": format!("\"{text}.exe\" --flag {text}"),
                "AccountName": text,
                "AccountDomain": "contoso",
                "InitiatingProcessFileName": "explorer.exe",
                "InitiatingProcessFolderPath": format!("{folder}/explorer.exe"),
                "InitiatingProcessId": 5151,
                "AdditionalFields": {"Note": text, "Nested": {"List": [text, len]}},
                "AdditionalFieldsAsText": json!({"Note": text}).to_string(),
                "ANewColumn": format!("{text}{text}"),
            }));
        }
    }
    let rows: Vec<Map<String, Value>> = rows.into_iter().map(|r| r.as_object().unwrap().clone()).collect();
    let lines: String = rows.iter().map(|r| format!("{}\n", Value::Object(r.clone()))).collect();
    let mut instance = instance();
    let mapped = assert_alike(&mut instance, "DeviceProcessEvents", lines.as_bytes(), "special strings as lines");
    assert_eq!(mapped as usize, rows.len(), "every row maps");
    let mapped = assert_alike(&mut instance, "DeviceProcessEvents", &answer(&rows), "special strings as an answer");
    assert_eq!(mapped as usize, rows.len(), "every row maps");
}

/// Every golden case (`tests/golden`: a row per ActionType and rare path,
/// with and without the deprecated classes), table by table.
#[test]
fn every_golden_row_maps_in_the_component_as_natively() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden");
    // Each group's rows, and how many of them map (the others must be rejected).
    let mut groups: std::collections::BTreeMap<(String, bool), (String, usize)> = Default::default();
    for golden in golden_rows::golden_rows(&dir) {
        let no_deprecated = golden.case.get("no_deprecated").and_then(Value::as_bool).unwrap_or(false);
        let maps_to_an_event = golden.rejected().is_none();
        let (lines, maps) = groups.entry((golden.table, no_deprecated)).or_default();
        lines.push_str(&Value::Object(golden.row).to_string());
        lines.push('\n');
        *maps += usize::from(maps_to_an_event);
    }
    assert!(
        groups.len() > 20,
        "only {} groups of golden rows in {}",
        groups.len(),
        dir.display()
    );
    let mut instance = instance();
    for ((table, no_deprecated), (lines, maps)) in &groups {
        let options = json!({"tenant_id": "t", "collected_at": "2026-01-01T00:00:00Z", "deprecated_classes": !no_deprecated}).to_string();
        let label = format!("golden {table} (deprecated classes {})", !no_deprecated);
        let mapped = assert_alike_with(&mut instance, table, &options, lines.as_bytes(), &label);
        assert_eq!(mapped as usize, *maps, "{label}: every golden row maps but those to be rejected");
    }
}
