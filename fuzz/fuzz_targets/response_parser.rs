//! Any bytes as a runHuntingQuery response body: a result or a clear error,
//! never a panic; and each row's time, which the answer reads from where
//! its scan noted the `Timestamp` member, is what parsing the row whole
//! with serde_json gives (where serde_json reads the row).
#![no_main]
use defender_ocsf_collector::time::Ticks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = defender_ocsf_collector::answer::parse_response(data) {
        assert!(result.parse_rows().iter().all(|r| r.len() < usize::MAX));
        for i in 0..result.len() {
            // Only rows serde_json reads (not one with a number out of its
            // range or an unpaired surrogate, which the answer keeps and
            // the mapping rejects on its own). A name given twice counts
            // by its last value, as a map keeps it.
            let Ok(row) = serde_json::from_str::<serde_json::Value>(result.raw(i)) else {
                continue;
            };
            let whole = row.get("Timestamp").and_then(|t| t.as_str()).and_then(|t| Ticks::parse(t).ok());
            assert_eq!(result.time(i), whole, "row {i}: {}", result.raw(i));
        }
    }
});
