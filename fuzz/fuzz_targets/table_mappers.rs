//! Any JSON object as a row of any table (chosen by the first byte): an
//! event with a consistent envelope or an error naming the table, never a panic.
#![no_main]
use defender_ocsf_collector::mapping::{self, Context};
use defender_ocsf_collector::time::Ticks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let table = mapping::TABLES[selector as usize % mapping::TABLES.len()];
    let Ok(serde_json::Value::Object(row)) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let ctx = Context {
        tenant_uid: None,
        no_deprecated_classes: selector & 0x80 != 0,
        collected_at: Some(Ticks(0)),
    };
    match mapping::map_row(table, row.into_iter().collect(), &ctx) {
        Ok(event) => {
            let class = event["class_uid"].as_u64().unwrap();
            let activity = event["activity_id"].as_u64().unwrap();
            assert_eq!(event["type_uid"].as_u64().unwrap(), class * 100 + activity);
        }
        Err(e) => assert_eq!(e.table, table.name),
    }
});
