//! Any text as a row of any table (chosen by the first byte), as the answer
//! holds it, through the compiled plan: either an error naming the table,
//! or one NDJSON line holding an event with a consistent envelope, whose
//! summary agrees with it, and in which every string cell of the row shows
//! up (mapped, or under `unmapped`); never a panic.
#![no_main]
use defender_ocsf_collector::mapping::{self, Context, plan::Plan};
use defender_ocsf_collector::time::Ticks;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

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
    // Nothing is dropped: every string cell (but the time, rewritten as
    // milliseconds) is somewhere in the event.
    let row: serde_json::Map<String, Value> = serde_json::from_str(text).expect("a mapped row is a JSON object");
    let all = event.to_string();
    for (column, cell) in &row {
        if let Value::String(s) = cell
            && column != "Timestamp"
            && !s.is_empty()
            && !s.contains(['"', '\\'])
            && s.chars().all(|c| !c.is_control())
        {
            assert!(all.contains(s.as_str()), "{column} = {s:?} vanished from {all}");
        }
    }
});
