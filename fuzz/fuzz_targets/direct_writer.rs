//! Any text as a DeviceProcessEvents row, as the answer holds it: the direct
//! writer either declines it or writes one NDJSON line that is the engine's
//! event for the same row, as JSON values; never a panic.
#![no_main]
use defender_ocsf_collector::graph::parse_response;
use defender_ocsf_collector::mapping::{self, Context, Written, direct};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(row) = std::str::from_utf8(data) else { return };
    let Ok(answer) = parse_response(format!(r#"{{"schema":[],"results":[{row}]}}"#)) else {
        return;
    };
    if answer.len() != 1 {
        return;
    }
    let table = mapping::table("DeviceProcessEvents").unwrap();
    let ctx = Context {
        tenant_uid: Some("t".into()),
        ..Context::default()
    };
    let mut out = Vec::new();
    let Some(written) = direct::write(table, answer.raw(0), &ctx, &mut out) else {
        assert!(out.is_empty());
        return;
    };
    let engine = answer
        .row(0)
        .and_then(|r| mapping::map_row(table, r, &ctx).map_err(|e| e.to_string()));
    let engine = engine.unwrap_or_else(|e| panic!("written directly, but the engine rejects it: {e}"));
    assert!(out.ends_with(b"\n") && !out[..out.len() - 1].contains(&b'\n'));
    assert_eq!(written, Written::of(table, &engine));
    // Compared as both write them: serde_json reads floats with best-effort
    // precision (no `float_roundtrip`), so one may not read back as written.
    let mut engine_out = Vec::new();
    mapping::write_event(&mut engine_out, &engine);
    let direct: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(direct, serde_json::from_slice::<serde_json::Value>(&engine_out).unwrap());
});
