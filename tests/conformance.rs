//! Every real advanced-hunting row in `../shared/samples/normalized/`
//! (except `_synthetic/`) maps to events that validate against the OCSF
//! 1.8.0 schema of their class. Prints the count per table and per class.

#[path = "support/ocsf_schema.rs"]
mod ocsf_schema;
#[path = "support/rejections.rs"]
mod rejections;

use defender_ocsf_collector::mapping::{self, Context};
use defender_ocsf_collector::time::Ticks;
use ocsf_schema::{Schemas, shared_or_skip};
use std::collections::BTreeMap;

#[test]
fn every_sample_row_of_a_mapped_table_validates() {
    conformance(false);
}

#[test]
fn every_sample_row_validates_without_deprecated_classes() {
    conformance(true);
}

/// The classes OCSF 1.8.0 deprecates.
const DEPRECATED: &[u64] = &[4011, 4012, 5002, 5014];

fn conformance(no_deprecated_classes: bool) {
    let Some(shared) = shared_or_skip("conformance over shared/samples/normalized") else {
        return;
    };
    let mut schemas = Schemas::load(&shared);
    let dir = shared.join("samples").join("normalized");
    let ctx = Context {
        tenant_uid: Some("00000000-0000-0000-0000-000000000000".into()),
        collected_at: Some(Ticks::parse("2026-01-01T00:00:00Z").unwrap()),
        no_deprecated_classes,
    };
    let mut per_table: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_class: BTreeMap<u64, usize> = BTreeMap::new();
    let mut not_mapped: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut checked_rejections = 0;

    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "ndjson")) {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let Some(table) = mapping::table(&name) else {
            not_mapped.insert(name, text.lines().count());
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let row: defender_ocsf_collector::answer::Row = serde_json::from_str(line).unwrap();
            let columns: serde_json::Map<String, serde_json::Value> = row.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            match mapping::map_row(table, row, &ctx) {
                Ok(event) => {
                    // A row without what makes one of its objects is told
                    // every column that could have (rejections.rs).
                    let (n, unnamed) = rejections::unnamed_givers(table, &columns, &ctx);
                    checked_rejections += n;
                    failures.extend(unnamed.into_iter().map(|u| format!("{name}:{}: {u}", i + 1)));
                    *per_table.entry(name.clone()).or_default() += 1;
                    *per_class.entry(event["class_uid"].as_u64().unwrap()).or_default() += 1;
                    let errors = schemas.errors(&event);
                    if !errors.is_empty() {
                        failures.push(format!("{name}:{}: {errors:?}\n  {event}", i + 1));
                    }
                }
                Err(e) => failures.push(format!("{name}:{}: {e}", i + 1)),
            }
        }
    }
    println!("conformance (no_deprecated_classes={no_deprecated_classes}): events per table: {per_table:?}");
    println!("conformance: events per class: {per_class:?}");
    println!("conformance: sample tables without a mapping yet: {not_mapped:?}");
    assert!(failures.is_empty(), "{} invalid:\n{}", failures.len(), failures.join("\n"));
    assert!(checked_rejections > 100, "only {checked_rejections} required objects checked");
    // Every mapped table with sample rows had them mapped; the tables with
    // none are named (their golden cases cover them).
    let mut without_samples = Vec::new();
    for table in mapping::TABLES {
        if dir.join(format!("{}.ndjson", table.name)).exists() {
            assert!(per_table.contains_key(table.name), "no sample row of {} was mapped", table.name);
        } else {
            without_samples.push(table.name);
        }
    }
    println!("conformance: mapped tables without sample rows: {without_samples:?}");
    if no_deprecated_classes {
        // EmailUrlInfo has no successor without a join (docs/mapping.md).
        let left: Vec<_> = per_class.keys().filter(|c| DEPRECATED.contains(c) && **c != 4012).collect();
        assert!(left.is_empty(), "deprecated classes still emitted: {left:?}");
    }
}

/// `mapping::ocsf::requires`, which rejects a row that cannot make a valid
/// event, says what the compiled OCSF 1.8.0 schema says each class requires
/// at the top level (required objects, `at_least_one` constraints, and
/// required values but those every event has).
#[test]
fn class_requirements_match_the_compiled_schema() {
    const EVERY_EVENT: &[&str] = &["activity_id", "category_uid", "class_uid", "severity_id", "time", "type_uid"];
    let Some(shared) = shared_or_skip("class requirements against the compiled schema") else {
        return;
    };
    let compiled: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared.join("ocsf").join("ocsf-1.8.0.compiled.json")).unwrap()).unwrap();
    let mut checked = 0;
    for class in compiled["classes"].as_object().unwrap().values() {
        let Some(uid) = class["uid"].as_u64() else { continue };
        if !mapping::ocsf::CLASSES.iter().any(|c| u64::from(c.uid) == uid) {
            continue;
        }
        let mut want: Vec<Vec<String>> = class["attributes"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, a)| {
                a["requirement"] == "required"
                    && match a["type"] == "object_t" {
                        true => !["osint", "cloud", "metadata"].contains(&name.as_str()),
                        // What every event has.
                        false => !EVERY_EVENT.contains(&name.as_str()),
                    }
            })
            .map(|(name, _)| vec![name.clone()])
            .collect();
        // The profiles' objects are left out of the lists too: 5023's
        // `cloud`, which the `cloud` profile adds, is not applied.
        if let Some(any) = class["constraints"]["at_least_one"].as_array() {
            want.push(
                any.iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .filter(|a| !["osint", "cloud"].contains(&a.as_str()))
                    .collect(),
            );
        }
        let normalize = |mut v: Vec<Vec<String>>| {
            v.iter_mut().for_each(|any| any.sort());
            v.sort();
            v
        };
        let have: Vec<Vec<String>> = mapping::ocsf::requires(uid as u32)
            .iter()
            .map(|any| any.iter().map(|a| a.to_string()).collect())
            .collect();
        assert_eq!(normalize(have), normalize(want), "class {uid}");
        checked += 1;
    }
    assert_eq!(
        checked,
        mapping::ocsf::CLASSES.len(),
        "a class of mapping::ocsf::CLASSES is not in the compiled schema"
    );
}

/// Graph's own examples of an incident and an alert (`../shared/samples/
/// msgraph-docs`) map to 2005 and 2004 events that validate, and so does
/// each with any one property gone, `null`, or in another JSON type; an
/// object that cannot be mapped (no id, no time) is an error that says so.
/// Every text property left is somewhere in the event, or the event is
/// not the same without it.
#[test]
fn graph_incidents_and_alerts_and_their_variants_validate() {
    use defender_ocsf_collector::mapping::graph_security::{map_alert, map_incident};
    use serde_json::{Map, Value};
    let Some(shared) = shared_or_skip("Graph's example incident and alert") else {
        return;
    };
    let mut schemas = Schemas::load(&shared);
    let ctx = Context {
        tenant_uid: Some("t".into()),
        collected_at: Some(Ticks(0)),
        no_deprecated_classes: false,
    };
    let mut failures = Vec::new();
    let mut mapped = 0;
    for (file, class_uid) in [
        ("list-incidents_v1.0_example1_response.json", 2005),
        ("list-alerts_v2_v1.0_response.json", 2004),
    ] {
        let text = std::fs::read_to_string(shared.join("samples").join("msgraph-docs").join(file)).unwrap();
        let page: serde_json::Value = serde_json::from_str(&text).unwrap();
        let map = |obj: &Map<String, Value>| match class_uid {
            2005 => map_incident(obj.clone(), &ctx),
            _ => map_alert(obj.clone(), &ctx),
        };
        for object in page["value"].as_array().unwrap() {
            let object = object.as_object().unwrap();
            let mut variants = vec![("", object.clone())];
            for (key, value) in object {
                let mut gone = object.clone();
                gone.remove(key);
                let mut null = object.clone();
                null.insert(key.clone(), Value::Null);
                let mut retyped = object.clone();
                retyped.insert(
                    key.clone(),
                    match value {
                        Value::String(s) => Value::Number(s.len().into()),
                        Value::Array(_) | Value::Object(_) => Value::String(value.to_string()),
                        _ => Value::String(value.to_string()),
                    },
                );
                variants.extend([(key.as_str(), gone), (key, null), (key, retyped)]);
            }
            for (varied, variant) in &variants {
                let event = match map(variant) {
                    Ok(event) => event,
                    // Without an id, or a time, there is no event to make.
                    Err(e) if ["id", "lastUpdateDateTime"].contains(varied) && !e.reason.is_empty() => continue,
                    Err(e) => {
                        failures.push(format!("{file} ({varied} varied): {e}"));
                        continue;
                    }
                };
                mapped += 1;
                if event["class_uid"] != class_uid {
                    failures.push(format!("{file}: class {} ", event["class_uid"]));
                }
                let errors = schemas.errors(&event);
                if !errors.is_empty() {
                    failures.push(format!("{file}: {errors:?}\n  {event}"));
                }
                let text = event.to_string();
                for (key, value) in variant {
                    let Value::String(s) = value else { continue };
                    // OData's annotation of the type: the class says it.
                    if key == "@odata.type" || s.is_empty() || text.contains(s.as_str()) || s.contains(['"', '\\']) {
                        continue;
                    }
                    let mut less = variant.clone();
                    less.remove(key);
                    let without = map(&less).ok().map(|mut e| {
                        e["metadata"]["uid"] = Value::Null;
                        e
                    });
                    let mut with = event.clone();
                    with["metadata"]["uid"] = Value::Null;
                    if without.as_ref() == Some(&with) {
                        failures.push(format!("{file}: {key} = {s:?} neither shows up in nor changes {text}"));
                    }
                }
            }
        }
    }
    assert!(mapped > 100, "only {mapped} incidents and alerts mapped");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The Streaming API records among the samples, as they came (elastic's
/// Event Hub test logs, one record a line, and the records SEKOIA's parser
/// tests hold as strings), through the Streaming API path: every record
/// of a table the collector maps is an event that validates against its
/// class's schema, or, made up (`normalized/_synthetic`), is rejected
/// with its reason; the others are counted as unknown categories.
#[test]
fn every_streamed_sample_record_maps_to_a_valid_event() {
    use defender_ocsf_collector::stream_api::map_message;
    use serde_json::Value;
    let Some(shared) = shared_or_skip("streamed sample records") else {
        return;
    };
    let mut schemas = Schemas::load(&shared);
    let samples = shared.join("samples");
    let mut records: Vec<(String, Value)> = Vec::new();
    let elastic = samples.join("elastic-integrations").join("m365_defender-event");
    let sekoia = samples.join("sekoia-intake-formats");
    let mut files: Vec<_> = std::fs::read_dir(&elastic)
        .unwrap()
        .chain(std::fs::read_dir(&sekoia).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.extension().is_some_and(|e| e == "log") {
            records.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| (name.clone(), serde_json::from_str(l).unwrap())),
            );
        } else {
            let test: Value = serde_json::from_str(&text).unwrap();
            let message = test["input"]["message"].as_str().unwrap();
            records.push((name, serde_json::from_str(message).unwrap()));
        }
    }
    assert!(records.len() > 100, "only {} records found", records.len());
    // The made-up records (another table's row with its category changed,
    // samples/README.md), which may be rejected, with a reason.
    let mut made_up: Vec<Value> = Vec::new();
    for entry in std::fs::read_dir(samples.join("normalized").join("_synthetic")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        made_up.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    let mut failures = Vec::new();
    let mut rejected = 0;
    let (mut mapped, mut unknown) = (0, 0);
    for no_deprecated_classes in [false, true] {
        let ctx = Context {
            tenant_uid: None,
            collected_at: Some(Ticks::parse("2026-01-01T00:00:00Z").unwrap()),
            no_deprecated_classes,
        };
        for (file, record) in &records {
            let message = serde_json::json!({"records": [record]}).to_string();
            let out = match map_message(message.as_bytes(), &ctx) {
                Ok(out) => out,
                Err(e) => {
                    failures.push(format!("{file}: {e}"));
                    continue;
                }
            };
            let category = record["category"].as_str().unwrap_or_default();
            let known = category.strip_prefix("AdvancedHunting-").and_then(mapping::table).is_some();
            if !out.rejected.is_empty() && !made_up.contains(&record["properties"]) {
                failures.push(format!("{file}: {:?}", out.rejected));
            }
            match (known, out.count, out.unknown_categories.len()) {
                (true, 1, 0) => mapped += 1,
                (true, 0, 0) if out.rejected.len() == 1 => rejected += 1,
                (false, 0, 1) => unknown += 1,
                other => failures.push(format!("{file} ({category}): {other:?}")),
            }
            for line in out.events.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let event: Value = serde_json::from_slice(line).unwrap();
                if event["metadata"]["tenant_uid"].is_null() && !record["tenantId"].is_null() {
                    failures.push(format!("{file}: the record's tenantId is not the event's tenant"));
                }
                let errors = schemas.errors(&event);
                if !errors.is_empty() {
                    failures.push(format!("{file}: {errors:?}\n  {event}"));
                }
            }
        }
    }
    println!("streamed samples: {mapped} records mapped, {rejected} made-up ones rejected, {unknown} of tables not mapped");
    assert!(mapped > 200, "only {mapped} records mapped");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The answers in Microsoft's documentation (Graph's runHuntingQuery, its
/// legacy PascalCase schema, and the older MDE and Microsoft 365 Defender
/// APIs) parse with every row and the schema's columns; their rows, which
/// project a few columns of DeviceProcessEvents, map to valid events or
/// are rejected with a reason that names the columns a query must keep.
#[test]
fn the_documented_answers_parse_and_their_rows_map_or_say_what_is_missing() {
    use defender_ocsf_collector::answer::parse_response;
    let Some(shared) = shared_or_skip("the documented answers") else {
        return;
    };
    let mut schemas = Schemas::load(&shared);
    let table = mapping::table("DeviceProcessEvents").unwrap();
    let ctx = Context {
        tenant_uid: Some("t".into()),
        collected_at: Some(Ticks(0)),
        no_deprecated_classes: false,
    };
    let samples = shared.join("samples");
    let mut rows = 0;
    for path in [
        samples.join("msgraph-docs").join("runHuntingQuery_v1.0_example1_response.json"),
        samples
            .join("msgraph-docs")
            .join("runHuntingQuery_v1.0_example2_timespan_response.json"),
        samples
            .join("msgraph-docs")
            .join("runHuntingQuery_v1.0_example3_legacy_PascalCase_schema_response.json"),
        samples.join("defender-docs").join("mde_advancedqueries_run_example_response.json"),
        samples
            .join("defender-docs")
            .join("m365d_advancedhunting_run_example_response.json"),
    ] {
        let body = std::fs::read(&path).unwrap();
        let as_value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let results = as_value
            .get("results")
            .or_else(|| as_value.get("Results"))
            .unwrap()
            .as_array()
            .unwrap();
        let schema = as_value
            .get("schema")
            .or_else(|| as_value.get("Schema"))
            .unwrap()
            .as_array()
            .unwrap();
        let answer = parse_response(body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(answer.len(), results.len(), "{}", path.display());
        assert!(answer.malformed.is_empty(), "{}: {:?}", path.display(), answer.malformed);
        let names: Vec<&str> = schema
            .iter()
            .map(|c| c.get("name").or_else(|| c.get("Name")).unwrap().as_str().unwrap())
            .collect();
        assert_eq!(
            answer.schema.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            names,
            "{}",
            path.display()
        );
        for i in 0..answer.len() {
            assert!(answer.time(i).is_some(), "{} row {i}: no time", path.display());
            match mapping::map_row(table, answer.row(i).unwrap(), &ctx) {
                Ok(event) => {
                    let errors = schemas.errors(&event);
                    assert!(errors.is_empty(), "{}: {errors:?}\n  {event}", path.display());
                }
                Err(e) => assert!(
                    e.reason.contains("A query that projects columns must keep them"),
                    "{}: {e}",
                    path.display()
                ),
            }
            rows += 1;
        }
    }
    assert!(rows >= 12, "only {rows} rows");
}
