//! Any bytes as a runHuntingQuery response body: a result or a clear error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = defender_ocsf_collector::answer::parse_response(data) {
        assert!(result.parse_rows().iter().all(|r| r.len() < usize::MAX));
    }
});
