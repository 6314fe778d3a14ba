//! Golden tests: rows written for this project (tests/golden/*.json), one
//! case per ActionType of the mapping guide, each with the class, activity
//! and exact attribute values a reader of the guide expects, and the
//! attributes that must not be there (`absent`); or, for a row that cannot
//! make a valid event, words of the reason it is rejected with
//! (`rejected`). The expectations are written by hand, not derived from
//! the code.
//!
//! Coverage checks: every ActionType and prefix the code maps has a case,
//! and every class the code can emit is produced by at least one case.

#[path = "support/golden_rows.rs"]
mod golden_rows;
#[path = "support/ocsf_schema.rs"]
mod ocsf_schema;
#[path = "support/rejections.rs"]
mod rejections;

use defender_ocsf_collector::mapping::{self, Context};
use defender_ocsf_collector::time::Ticks;
use ocsf_schema::{Schemas, shared_dir};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

struct Case {
    table: String,
    row: Map<String, Value>,
    no_deprecated: bool,
    class_uid: u64,
    activity_id: u64,
    expect: Map<String, Value>,
    absent: Vec<String>,
    /// Words of the reason the row is rejected with, for a row that must be.
    rejected: Option<String>,
}

fn cases() -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden");
    golden_rows::golden_rows(&dir)
        .into_iter()
        .map(|golden| Case {
            no_deprecated: golden.case.get("no_deprecated").and_then(Value::as_bool).unwrap_or(false),
            rejected: golden.rejected().map(str::to_string),
            class_uid: golden.case["class_uid"].as_u64().unwrap_or(0),
            activity_id: golden.case["activity_id"].as_u64().unwrap_or(0),
            expect: golden.case.get("expect").and_then(Value::as_object).cloned().unwrap_or_default(),
            absent: golden
                .case
                .get("absent")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| p.as_str().unwrap().to_string())
                .collect(),
            table: golden.table,
            row: golden.row,
        })
        .collect()
}

/// The value at a dotted path; numeric segments index arrays.
fn at<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(event, |v, part| match part.parse::<usize>() {
        Ok(i) if v.is_array() => v.get(i),
        _ => v.get(part),
    })
}

#[test]
fn golden_rows_map_to_the_expected_events() {
    let mut schemas = shared_dir().map(|s| Schemas::load(&s));
    if schemas.is_none() {
        ocsf_schema::shared_or_skip("golden schema validation");
    }
    let mut failures = Vec::new();
    let all = cases();
    assert!(
        all.len() > 100,
        "the fixtures should hold a case per ActionType, found {}",
        all.len()
    );
    for case in &all {
        let table = mapping::table(&case.table).unwrap_or_else(|| panic!("unknown table {}", case.table));
        let ctx = Context {
            tenant_uid: Some("t".into()),
            no_deprecated_classes: case.no_deprecated,
            collected_at: Some(Ticks(0)),
        };
        let label = format!("{} {:?}", case.table, case.row.get("ActionType"));
        let event = match (
            mapping::map_row(table, case.row.clone().into_iter().collect(), &ctx),
            &case.rejected,
        ) {
            (Ok(e), None) => e,
            (Err(e), Some(words)) => {
                if !e.reason.contains(words.as_str()) || e.table != case.table {
                    failures.push(format!("{label}: rejected for {e}, expected for {words:?}"));
                }
                continue;
            }
            (Ok(e), Some(words)) => {
                failures.push(format!("{label}: expected a rejection for {words:?}, got {e}"));
                continue;
            }
            (Err(e), None) => {
                failures.push(format!("{label}: {e}"));
                continue;
            }
        };
        if event["class_uid"] != case.class_uid || event["activity_id"] != case.activity_id {
            failures.push(format!(
                "{label}: expected {}/{}, got {}/{}",
                case.class_uid, case.activity_id, event["class_uid"], event["activity_id"]
            ));
        }
        if event["type_uid"] != case.class_uid * 100 + case.activity_id {
            failures.push(format!("{label}: type_uid {}", event["type_uid"]));
        }
        for (path, want) in &case.expect {
            if at(&event, path) != Some(want) {
                failures.push(format!("{label}: {path} is {:?}, expected {want}", at(&event, path)));
            }
        }
        for path in &case.absent {
            if let Some(found) = at(&event, path) {
                failures.push(format!("{label}: {path} is {found}, expected none"));
            }
        }
        if let Some(schemas) = schemas.as_mut() {
            let errors = schemas.errors(&event);
            if !errors.is_empty() {
                failures.push(format!("{label}: invalid {errors:?}\n  {event}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_action_type_and_prefix_has_a_golden_case() {
    let all = cases();
    let mut covered: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for case in all.iter().filter(|c| c.rejected.is_none()) {
        if let Some(Value::String(a)) = case.row.get("ActionType") {
            covered.entry(case.table.as_str()).or_default().insert(a.to_ascii_lowercase());
        }
    }
    let mut missing = Vec::new();
    for table in mapping::TABLES {
        let seen = covered.get(table.name).cloned().unwrap_or_default();
        for (name, _) in table.activities {
            if !seen.contains(&name.to_ascii_lowercase()) {
                missing.push(format!("{}: {name}", table.name));
            }
        }
        for (prefix, _) in table.prefixes {
            if !seen.iter().any(|a| a.starts_with(&prefix.to_ascii_lowercase())) {
                missing.push(format!("{}: {prefix}*", table.name));
            }
        }
        if !all.iter().any(|c| c.table == table.name) {
            missing.push(format!("{}: no case at all", table.name));
        }
    }
    assert!(missing.is_empty(), "ActionTypes without a golden case:\n{}", missing.join("\n"));
}

/// Schema-driven: every class the mapping tables can emit (including the
/// successors of deprecated classes) has a schema and a golden case, and the
/// product's promised classes are all among them.
#[test]
fn every_class_the_code_can_emit_is_covered() {
    let produced: BTreeSet<u64> = cases().iter().filter(|c| c.rejected.is_none()).map(|c| c.class_uid).collect();
    let emittable: BTreeSet<u64> = mapping::TABLES
        .iter()
        .flat_map(|t| t.all_activities())
        .map(|a| u64::from(a.class_uid))
        .collect();
    let uncovered: Vec<_> = emittable.difference(&produced).collect();
    assert!(
        uncovered.is_empty(),
        "classes the code can emit without a golden case: {uncovered:?}"
    );

    let promised = [
        2004, 1001, 1004, 1005, 1006, 1007, 1008, 4001, 4003, 4009, 4011, 4012, 5001, 5014, 5019, 3001, 3002, 3006, 6002, 6007, 201001,
        201002, 201004,
    ];
    let missing: Vec<_> = promised.iter().filter(|c| !produced.contains(c)).collect();
    assert!(missing.is_empty(), "promised classes no table produces: {missing:?}");

    if let Some(shared) = shared_dir() {
        let index: Value = serde_json::from_str(&std::fs::read_to_string(shared.join("ocsf/schemas/index.json")).unwrap()).unwrap();
        let with_schema: BTreeSet<u64> = index.as_array().unwrap().iter().map(|e| e["class_uid"].as_u64().unwrap()).collect();
        // 5003 and 5023 have no file; the tests derive their schemas from
        // 5001's (support/ocsf_schema.rs, `DERIVED`).
        let no_schema: Vec<_> = emittable.difference(&with_schema).filter(|c| ![5003, 5023].contains(*c)).collect();
        assert!(no_schema.is_empty(), "classes without an OCSF 1.8.0 schema: {no_schema:?}");
    }
}

/// A row rejected for lacking an object its class requires is told which
/// columns could have given it: checked on every golden row that maps
/// (`rejections::unnamed_givers`; conformance checks the sample rows).
#[test]
fn a_rejection_names_every_column_that_could_have_given_what_is_missing() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases().iter().filter(|c| c.rejected.is_none()) {
        let table = mapping::table(&case.table).unwrap_or_else(|| panic!("unknown table {}", case.table));
        let ctx = Context {
            tenant_uid: None,
            no_deprecated_classes: case.no_deprecated,
            collected_at: Some(Ticks(0)),
        };
        let (n, unnamed) = rejections::unnamed_givers(table, &case.row, &ctx);
        checked += n;
        failures.extend(unnamed);
    }
    assert!(checked > 100, "only {checked} required objects checked");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
