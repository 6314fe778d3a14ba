//! Property tests (bounded, run in CI): any row of any table, with columns
//! of any JSON type, maps without panicking to an event with a consistent
//! envelope and true captions, or to an error that names the table; and
//! every column that held a value is somewhere in the event. Rows of each
//! table's own columns, with any values, map to events that validate
//! against their class's schema, or are rejected with a reason. Real
//! sample rows and golden rows with any of their columns emptied or given
//! in another JSON type do too, keep every value left, and, where they
//! still have an object their class requires, lose it when the columns a
//! rejection would name are emptied as well.

use defender_ocsf_collector::answer::parse_response;
use defender_ocsf_collector::mapping::{self, Context};
use defender_ocsf_collector::time::Ticks;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

#[path = "support/json_cells.rs"]
mod json_cells;
use json_cells::json_value;

#[path = "support/ocsf_schema.rs"]
mod ocsf_schema;

#[path = "support/golden_rows.rs"]
mod golden_rows;
#[path = "support/rejections.rs"]
mod rejections;

/// The schema's captions, loaded once for all cases (`None` when `../shared` is absent).
fn captions() -> Option<&'static ocsf_schema::Captions> {
    static CAPTIONS: std::sync::OnceLock<Option<ocsf_schema::Captions>> = std::sync::OnceLock::new();
    CAPTIONS
        .get_or_init(|| ocsf_schema::shared_or_skip("caption checks of the property tests").map(|s| ocsf_schema::Captions::load(&s)))
        .as_ref()
}

/// Column names the mappings know, plus unknown ones.
const COLUMNS: &[&str] = &[
    "Timestamp",
    "DeviceId",
    "DeviceName",
    "ActionType",
    "ReportId",
    "FileName",
    "FolderPath",
    "SHA1",
    "ProcessId",
    "ProcessCommandLine",
    "InitiatingProcessId",
    "InitiatingProcessFileName",
    "InitiatingProcessParentId",
    "AccountName",
    "AccountUpn",
    "LocalIP",
    "RemoteIP",
    "RemotePort",
    "RemoteUrl",
    "Protocol",
    "LogonType",
    "RegistryKey",
    "RegistryValueName",
    "AdditionalFields",
    "AlertId",
    "Severity",
    "AttackTechniques",
    "EntityType",
    "NetworkMessageId",
    "RecipientEmailAddress",
    "SenderFromAddress",
    "Url",
    "IPAddresses",
    "MacAddress",
    "OSPlatform",
    "LoggedOnUsers",
    "EmailDirection",
    "QueryTarget",
    "AccountObjectId",
    "RawEventData",
    "ObjectName",
    "ActivityObjects",
    "ErrorCode",
    "ConditionalAccessPolicies",
    "ServicePrincipalName",
    "RequestMethod",
    "RequestUri",
    "ResponseStatusCode",
    "BehaviorId",
    "Type",
    "BrandNewColumn",
];

fn row() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(COLUMNS), json_value(), 0..20).prop_map(|m| {
        let mut row: Map<String, Value> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // Most rows carry a valid timestamp, as Graph's do.
        row.entry("Timestamp").or_insert(json!("2025-01-01T00:00:00Z"));
        row
    })
}

/// Each table's own columns, as the reference lists them (by index into
/// `mapping::TABLES`), and one column no table has; `None` when `../shared`
/// is absent.
fn own_columns() -> Option<&'static Vec<Vec<&'static str>>> {
    static COLUMNS: std::sync::OnceLock<Option<Vec<Vec<&'static str>>>> = std::sync::OnceLock::new();
    COLUMNS
        .get_or_init(|| {
            let shared = ocsf_schema::shared_or_skip("schema checks of rows of each table's own columns")?;
            let mut by_table = std::collections::HashMap::new();
            for file in ["defender-tables.json", "defender-tables-more.json"] {
                let text = std::fs::read_to_string(shared.join("reference").join(file)).unwrap();
                let reference: Value = serde_json::from_str(&text).unwrap();
                for (name, table) in reference["tables"].as_object().unwrap() {
                    let columns = table["columns"].as_array().unwrap().iter();
                    let columns = columns.map(|c| &*c["name"].as_str().unwrap().to_string().leak());
                    by_table.insert(name.clone(), columns.collect::<Vec<&'static str>>());
                }
            }
            let columns = mapping::TABLES.iter().map(|t| {
                let mut own = by_table.get(t.name).cloned().unwrap_or_default();
                own.push("BrandNewColumn");
                own
            });
            Some(columns.collect())
        })
        .as_ref()
}

/// A row of table `.0`: any values in up to 60 of its own columns, and an
/// ActionType its mapping knows, when it knows some, or any other.
fn own_row() -> impl Strategy<Value = (usize, Map<String, Value>)> {
    (0..mapping::TABLES.len()).prop_flat_map(|index| {
        let columns = own_columns().map_or_else(|| vec!["BrandNewColumn"], |c| c[index].clone());
        let mut actions: Vec<&'static str> = mapping::TABLES[index].activities.iter().map(|(a, _)| *a).collect();
        actions.push("SomethingNew");
        let cells = prop::collection::btree_map(prop::sample::select(columns), json_value(), 0..60);
        (Just(index), cells, prop::option::of(prop::sample::select(actions))).prop_map(|(index, cells, action)| {
            let mut row: Map<String, Value> = cells.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if let Some(action) = action {
                row.insert("ActionType".into(), json!(action));
            }
            row.entry("Timestamp").or_insert(json!("2025-01-01T00:00:00Z"));
            (index, row)
        })
    })
}

/// The rows of `../shared/samples/normalized` of the tables the collector
/// maps, and the golden rows that make an event (index into
/// `mapping::TABLES`, columns); empty when `../shared` is absent.
fn sample_rows() -> &'static Vec<(usize, Map<String, Value>)> {
    static ROWS: std::sync::OnceLock<Vec<(usize, Map<String, Value>)>> = std::sync::OnceLock::new();
    ROWS.get_or_init(|| {
        let Some(shared) = ocsf_schema::shared_or_skip("sample rows with columns emptied") else {
            return Vec::new();
        };
        let index = |name: &str| mapping::TABLES.iter().position(|t| t.name == name);
        let golden = golden_rows::golden_rows(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("golden"));
        let mut rows: Vec<_> = golden
            .into_iter()
            .filter(|g| g.rejected().is_none())
            .filter_map(|g| Some((index(&g.table)?, g.row)))
            .collect();
        let dir = shared.join("samples").join("normalized");
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "ndjson")) {
            let Some(index) = index(path.file_stem().unwrap().to_str().unwrap()) else {
                continue;
            };
            for line in std::fs::read_to_string(path).unwrap().lines() {
                rows.push((index, serde_json::from_str(line).unwrap()));
            }
        }
        rows
    })
}

/// A real or golden row with some of its columns emptied: `null`, `""` or
/// gone, as the byte for the column's place in `mask` says (below
/// `threshold`: emptied), and some of the others given in another JSON
/// type (`retype`, below `retyping`): a number as text and back, a flag
/// as `"True"` and back, as exports and other tools write them. Rows that
/// lack one column or another are what the collector meets most, and what
/// rows we have show least.
fn thinned_sample_row() -> impl Strategy<Value = Option<(usize, Map<String, Value>)>> {
    let count = sample_rows().len();
    let masks = (
        prop::collection::vec(any::<u8>(), 128),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 128),
        0..64u8,
    );
    (0..count.max(1), masks).prop_map(move |(i, (mask, threshold, retype, retyping))| {
        let (index, row) = sample_rows().get(i)?;
        let mut thinned = Map::new();
        for (j, (column, value)) in row.iter().enumerate() {
            let byte = mask[j % mask.len()];
            let value = match retype[j % retype.len()] < retyping {
                true => other_type(value),
                false => value.clone(),
            };
            match (byte < threshold && column != "Timestamp", byte % 3) {
                (false, _) => _ = thinned.insert(column.clone(), value),
                (true, 0) => _ = thinned.insert(column.clone(), Value::Null),
                (true, 1) => _ = thinned.insert(column.clone(), json!("")),
                (true, _) => {}
            }
        }
        Some((*index, thinned))
    })
}

/// `value` in another JSON type that says the same: a number as its text,
/// numeric text as the number, a flag as `"True"`/`"False"` and such text
/// as the flag; anything else as it is.
fn other_type(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(if *b { "True" } else { "False" }.into()),
        Value::String(s) => match (s.parse::<i64>(), s.to_ascii_lowercase().as_str()) {
            (Ok(n), _) => json!(n),
            (_, "true") => json!(true),
            (_, "false") => json!(false),
            _ => value.clone(),
        },
        _ => value.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn any_sample_or_golden_row_with_columns_emptied_or_retyped_validates_and_keeps_the_rest(sample in thinned_sample_row(), no_deprecated in any::<bool>()) {
        thread_local! {
            static SCHEMAS: std::cell::RefCell<Option<ocsf_schema::Schemas>> = const { std::cell::RefCell::new(None) };
        }
        let (Some((index, row)), Some(shared)) = (sample, ocsf_schema::shared_dir()) else {
            return Ok(());
        };
        let table = mapping::TABLES[index];
        let ctx = Context { tenant_uid: Some("t".into()), no_deprecated_classes: no_deprecated, collected_at: Some(Ticks(0)) };
        match mapping::map_row(table, row.clone().into_iter().collect(), &ctx) {
            Ok(e) => {
                let errors = SCHEMAS.with(|s| s.borrow_mut().get_or_insert_with(|| ocsf_schema::Schemas::load(&shared)).errors(&e));
                prop_assert!(errors.is_empty(), "{}: {:?}\n  {}", table.name, errors, e);
                // Nothing is dropped: each text cell left is in the event,
                // or (a time, an enum's word) the event is not the same
                // without it, or (a flag a signature's state implies) with
                // its other value.
                let text = e.to_string();
                let without_uid = |event: Option<Value>| event.map(|mut e| { e["metadata"]["uid"] = Value::Null; e });
                let with = without_uid(Some(e.clone()));
                for (k, v) in &row {
                    if let Value::String(s) = v
                        && !s.is_empty()
                        && !text.contains(s.as_str())
                    {
                        let mut less = row.clone();
                        less.remove(k);
                        let mut flipped = row.clone();
                        match s.to_ascii_lowercase().as_str() {
                            "true" => _ = flipped.insert(k.clone(), json!("False")),
                            "false" => _ = flipped.insert(k.clone(), json!("True")),
                            _ => {}
                        }
                        let matters = [less, flipped].into_iter().filter(|other| other != &row)
                            .any(|other| without_uid(mapping::map_row(table, other.into_iter().collect(), &ctx).ok()) != with);
                        prop_assert!(matters, "{} {} = {:?} neither shows up in nor changes {}", table.name, k, s, text);
                    }
                }
                let (_, unnamed) = rejections::unnamed_givers(table, &row, &ctx);
                prop_assert!(unnamed.is_empty(), "{:?}\n  {}", unnamed, Value::Object(row.clone()));
            }
            Err(err) => {
                prop_assert_eq!(err.table.as_str(), table.name);
                prop_assert!(!err.reason.is_empty());
            }
        }
    }

    #[test]
    fn any_row_of_a_tables_own_columns_validates((index, row) in own_row(), no_deprecated in any::<bool>()) {
        thread_local! {
            static SCHEMAS: std::cell::RefCell<Option<ocsf_schema::Schemas>> = const { std::cell::RefCell::new(None) };
        }
        let Some(shared) = own_columns().and_then(|_| ocsf_schema::shared_dir()) else {
            return Ok(());
        };
        let table = mapping::TABLES[index];
        let ctx = Context { tenant_uid: Some("t".into()), no_deprecated_classes: no_deprecated, collected_at: Some(Ticks(0)) };
        match mapping::map_row(table, row.clone().into_iter().collect(), &ctx) {
            Ok(e) => {
                let errors = SCHEMAS.with(|s| s.borrow_mut().get_or_insert_with(|| ocsf_schema::Schemas::load(&shared)).errors(&e));
                prop_assert!(errors.is_empty(), "{}: {:?}\n  {}", table.name, errors, e);
            }
            Err(err) => {
                prop_assert_eq!(err.table.as_str(), table.name);
                prop_assert!(!err.reason.is_empty());
            }
        }
    }

    #[test]
    fn any_row_of_any_table_maps_without_panic(index in 0..mapping::TABLES.len(), row in row(), no_deprecated in any::<bool>()) {
        let table = mapping::TABLES[index];
        let ctx = Context { tenant_uid: Some("t".into()), no_deprecated_classes: no_deprecated, collected_at: Some(Ticks(0)) };
        match mapping::map_row(table, row.clone().into_iter().collect(), &ctx) {
            Ok(e) => {
                let class = e["class_uid"].as_u64().unwrap();
                let activity = e["activity_id"].as_u64().unwrap();
                prop_assert_eq!(e["type_uid"].as_u64().unwrap(), class * 100 + activity);
                prop_assert!(e["time"].is_i64());
                prop_assert_eq!(&e["metadata"]["version"], "1.8.0");
                prop_assert_eq!(&e["metadata"]["log_name"], table.name);
                if activity == 99 {
                    prop_assert!(e["activity_name"].as_str().is_some_and(|s| !s.is_empty()));
                }
                if let Some(captions) = captions() {
                    let wrong = captions.errors(&e);
                    prop_assert!(wrong.is_empty(), "captions: {:?}\n  {}", wrong, e);
                }
                // Nothing is dropped: each present value shows up in the event.
                let text = e.to_string();
                for (k, v) in &row {
                    if let Value::String(s) = v
                        && !s.is_empty()
                        && !s.contains(['"', '\\'])
                        && s.chars().all(|c| !c.is_control())
                    {
                        prop_assert!(text.contains(s.as_str()) || k == "Timestamp", "{} = {:?} vanished from {}", k, s, text);
                    }
                }
            }
            Err(err) => prop_assert_eq!(err.table.as_str(), table.name),
        }
    }

    #[test]
    fn any_bytes_parse_to_a_result_or_a_clear_error(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_response(body.as_slice());
    }

    /// A streamed message of any bytes, or any records, maps or is a clear
    /// error; nothing panics, and every record is mapped, rejected or an
    /// unknown category.
    #[test]
    fn any_stream_message_maps_or_is_a_clear_error(body in prop::collection::vec(any::<u8>(), 0..300), rows in prop::collection::vec(row(), 0..5),
                                                   categories in prop::collection::vec(prop::sample::select(vec!["AdvancedHunting-DeviceProcessEvents", "AdvancedHunting-CloudAppEvents", "AdvancedHunting-Nope", ""]), 5)) {
        let ctx = Context::default();
        let _ = defender_ocsf_collector::stream_api::map_message(&body, &ctx);
        let records: Vec<Value> = rows.iter().zip(categories.iter()).map(|(r, c)| json!({"category": c, "properties": r})).collect();
        let message = json!({"records": records}).to_string();
        let out = defender_ocsf_collector::stream_api::map_message(message.as_bytes(), &ctx).unwrap();
        let unknown: u32 = out.unknown_categories.iter().map(|(_, n)| n).sum();
        prop_assert_eq!(out.count as usize + out.rejected.len() + unknown as usize, records.len());
    }

    #[test]
    fn any_results_array_parses(results in prop::collection::vec(json_value(), 0..10)) {
        let body = json!({"schema": [{"name": "x", "type": "String"}], "results": results}).to_string();
        let parsed = parse_response(body.as_bytes()).unwrap();
        prop_assert_eq!(parsed.len() + parsed.malformed.len(), results.len());
    }
}

/// The columns the reference types `dynamic`, by table name.
fn dynamic_columns(shared: &std::path::Path) -> std::collections::HashMap<String, Vec<String>> {
    let mut by_table = std::collections::HashMap::new();
    for file in ["defender-tables.json", "defender-tables-more.json"] {
        let reference: Value = serde_json::from_str(&std::fs::read_to_string(shared.join("reference").join(file)).unwrap()).unwrap();
        for (name, table) in reference["tables"].as_object().unwrap() {
            let dynamic = table["columns"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("dynamic")));
            by_table.insert(name.clone(), dynamic.map(|c| c["name"].as_str().unwrap().to_string()).collect());
        }
    }
    by_table
}

/// A dynamic column comes as JSON text from runHuntingQuery and as a value
/// from the Streaming API; the event is the same either way, so that a
/// pipeline's field types do not change with the source. Every sample and
/// golden row, with each dynamic column that holds an object or array
/// given in the other form.
#[test]
fn a_dynamic_column_as_text_or_as_value_makes_the_same_event() {
    let Some(shared) = ocsf_schema::shared_or_skip("dynamic columns as text or value") else {
        return;
    };
    let dynamic = dynamic_columns(&shared);
    let unknown: Vec<&String> = dynamic.values().flatten().filter(|c| !mapping::field::is_dynamic(c)).collect();
    assert!(
        unknown.is_empty(),
        "dynamic in the reference, not to field::is_dynamic: {unknown:?}"
    );
    let mut flipped = 0;
    let mut differences = Vec::new();
    for no_deprecated_classes in [false, true] {
        let ctx = Context {
            tenant_uid: Some("t".into()),
            no_deprecated_classes,
            collected_at: Some(Ticks(0)),
        };
        for (index, row) in sample_rows() {
            let table = mapping::TABLES[*index];
            let event = |row: &Map<String, Value>| mapping::map_row(table, row.clone().into_iter().collect(), &ctx).map_err(|e| e.reason);
            let before = event(row);
            for column in dynamic.get(table.name).into_iter().flatten() {
                let other = match row.get(column) {
                    Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                        Ok(value @ (Value::Object(_) | Value::Array(_))) => value,
                        _ => continue,
                    },
                    Some(value @ (Value::Object(_) | Value::Array(_))) => Value::String(value.to_string()),
                    _ => continue,
                };
                let mut changed = row.clone();
                changed.insert(column.clone(), other);
                flipped += 1;
                let after = event(&changed);
                if after != before {
                    differences.push(format!("{} {column}:\n  {before:?}\n  {after:?}", table.name));
                }
            }
        }
    }
    assert!(flipped > 50, "only {flipped} dynamic cells flipped");
    assert!(differences.is_empty(), "{} differ:\n{}", differences.len(), differences.join("\n"));
}

/// The Streaming API's records go through the same mapping as the answers
/// of runHuntingQuery: every sample and golden row, given as a record (its
/// dynamic columns as values, as the Streaming API sends them), makes the
/// event the row makes as an answer's row, or is rejected as it is.
#[test]
fn a_row_streamed_makes_the_event_it_makes_as_an_answers_row() {
    let Some(shared) = ocsf_schema::shared_or_skip("streamed rows against answer rows") else {
        return;
    };
    let dynamic = dynamic_columns(&shared);
    let mut compared = 0;
    let mut differences = Vec::new();
    for no_deprecated_classes in [false, true] {
        let ctx = Context {
            tenant_uid: Some("t".into()),
            no_deprecated_classes,
            collected_at: Some(Ticks(0)),
        };
        for (index, row) in sample_rows() {
            let table = mapping::TABLES[*index];
            let answered = mapping::map_row(table, row.clone().into_iter().collect(), &ctx);
            let mut streamed_row = row.clone();
            for column in dynamic.get(table.name).into_iter().flatten() {
                if let Some(Value::String(text)) = row.get(column)
                    && let Ok(value @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(text)
                {
                    streamed_row.insert(column.clone(), value);
                }
            }
            let record = json!({"time": "2026-01-01T00:00:00Z", "tenantId": "t", "category": format!("AdvancedHunting-{}", table.name), "properties": streamed_row});
            let message = json!({"records": [record]}).to_string();
            let out = defender_ocsf_collector::stream_api::map_message(message.as_bytes(), &ctx).unwrap();
            compared += 1;
            match answered {
                Ok(event) => {
                    let streamed: Option<Value> = (out.count == 1).then(|| serde_json::from_slice(out.events.trim_ascii_end()).unwrap());
                    if streamed.as_ref() != Some(&event) {
                        differences.push(format!(
                            "{}:\n  answer: {event}\n  stream: {streamed:?} {:?}",
                            table.name, out.rejected
                        ));
                    }
                }
                Err(e) if out.count != 0 || out.rejected.len() != 1 => differences.push(format!(
                    "{}: rejected as an answer's row ({e}), not as a record: {:?}",
                    table.name, out.rejected
                )),
                Err(_) => {}
            }
        }
    }
    assert!(compared > 300, "only {compared} rows compared");
    assert!(differences.is_empty(), "{} differ:\n{}", differences.len(), differences.join("\n"));
}
