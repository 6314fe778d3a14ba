//! Any text as a row of any table (chosen by the first byte), as the answer
//! holds it, through the compiled plan: either an error naming the table,
//! or one NDJSON line holding an event that validates against its class's
//! OCSF 1.8.0 schema (with `../shared`; the captions too), whose summary
//! agrees with it, and in which every cell of the row shows up (mapped,
//! or under `unmapped`) or, mapped to something else, makes a difference;
//! never a panic.
#![no_main]
use defender_ocsf_collector::mapping::{self, Context, plan::Plan};
use defender_ocsf_collector::time::Ticks;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::{Mutex, OnceLock};

#[path = "../../tests/support/ocsf_schema.rs"]
mod ocsf_schema;

/// The class schemas, read once; `None` (and said once) without `../shared`.
fn schemas() -> &'static Option<Mutex<ocsf_schema::Schemas>> {
    static SCHEMAS: OnceLock<Option<Mutex<ocsf_schema::Schemas>>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let shared = ocsf_schema::shared_or_skip("schema checks of the row_text fuzz target")?;
        Some(Mutex::new(ocsf_schema::Schemas::load(&shared)))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let table = mapping::TABLES[selector as usize % mapping::TABLES.len()];
    let ctx = Context {
        tenant_uid: Some("t".into()),
        no_deprecated_classes: selector & 0x80 != 0,
        collected_at: (selector & 0x40 != 0).then_some(Ticks(0)),
    };
    let plan = Plan::new(&[table], []);
    let mut out = Vec::new();
    let written = match plan.write_row(text, &ctx, &mut out, |_, _| None) {
        Ok(w) => w,
        Err(e) => {
            assert_eq!(e.table, table.name);
            assert!(out.is_empty(), "a rejected row leaves nothing behind");
            return;
        }
    };
    assert!(out.ends_with(b"\n") && !out[..out.len() - 1].contains(&b'\n'), "one line");
    let event: Value = serde_json::from_slice(&out).expect("the line is JSON");
    let class = event["class_uid"].as_u64().unwrap();
    let activity = event["activity_id"].as_u64().unwrap();
    assert_eq!(event["type_uid"].as_u64().unwrap(), class * 100 + activity);
    assert_eq!(u64::from(written.class_uid), class);
    assert_eq!(Some(written.time_ms), event["time"].as_i64());
    assert_eq!(Some(written.uid.as_str()), event["metadata"]["uid"].as_str());
    if let Some(schemas) = schemas() {
        let errors = schemas.lock().unwrap().errors(&event);
        assert!(errors.is_empty(), "{}: {errors:?}\n  {event}", table.name);
    }
    // Nothing is dropped: every cell (but the time, rewritten as
    // milliseconds) is somewhere in the event, as it came or as the
    // mapping converts such text; or else, where the mapping made it
    // something else (an enum, a flag, a parsed object), the event is not
    // the same without it (or, for a flag, with the other value: a signed
    // file's signature says `IsSigned` is true).
    // A number beyond f64's range is JSON, and the mapping keeps it (a
    // dynamic column holding one is kept as its text), but serde_json
    // cannot read it back to compare: such a row's cells are not checked.
    let row: serde_json::Map<String, Value> = match serde_json::from_str(text) {
        Ok(row) => row,
        Err(e) if e.to_string().starts_with("number out of range") => return,
        Err(e) => panic!("a mapped row is a JSON object: {e}"),
    };
    let all = event.to_string();
    // The event of the row as serde_json writes it, made once, for the
    // cells that must make a difference to it.
    let mut with = None;
    for (column, cell) in &row {
        let found = match cell {
            _ if column == "Timestamp" => continue,
            Value::Null => continue,
            Value::String(s) if s.is_empty() => continue,
            Value::String(s) => !s.contains(['"', '\\']) && s.chars().all(|c| !c.is_control()) && shows_up(&all, s),
            // `true` is in every event; only a difference tells.
            Value::Bool(_) => false,
            other => all.contains(&other.to_string()),
        };
        if !found {
            // Without the cell, or (a flag) with the other value.
            let with = &*with.get_or_insert_with(|| event_of(&plan, &serde_json::to_string(&row).unwrap(), &ctx));
            let mut less = row.clone();
            less.remove(column);
            let mut flipped = row.clone();
            if let Value::Bool(b) = cell {
                flipped.insert(column.clone(), Value::Bool(!b));
            }
            let matters = [less, flipped]
                .iter()
                .any(|other| other != &row && event_of(&plan, &serde_json::to_string(other).unwrap(), &ctx) != *with);
            assert!(matters, "{column} = {cell} neither shows up in the event nor changes it: {all}");
        }
    }
});

/// The event `plan` makes of the row `text`, less its `metadata.uid` (a
/// hash that any cell of the key changes); `None` if the row is rejected.
fn event_of(plan: &Plan, text: &str, ctx: &Context) -> Option<Value> {
    let mut out = Vec::new();
    plan.write_row(text, ctx, &mut out, |_, _| None).ok()?;
    let mut event: Value = serde_json::from_slice(&out).unwrap();
    event["metadata"].as_object_mut()?.remove("uid");
    Some(event)
}

/// Whether the text `s` of a cell is in the event `all`, as it came or as
/// a conversion of the mapping writes it: lowercased (e-mail addresses,
/// MACs), trimmed, a time as epoch milliseconds, a number as JSON writes
/// it. (Text the mapping makes something else, a boolean's `"true"` that
/// becomes a `state_id`, is not found here, and must make a difference.)
fn shows_up(all: &str, s: &str) -> bool {
    let t = s.trim();
    let lower = t.to_lowercase();
    all.contains(s)
        || all.contains(t)
        || all.contains(&lower)
        || all.contains(&lower.replace('-', ":"))
        || Ticks::parse(t).is_ok_and(|time| all.contains(&time.to_epoch_ms().to_string()))
        || t.parse::<f64>().is_ok_and(|n| all.contains(&serde_json::json!(n).to_string()))
}
