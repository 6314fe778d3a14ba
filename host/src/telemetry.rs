//! Logs (structured JSON on stderr) and the metrics the component reports.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Sets up JSON logs on stderr at `level` (`error`..`trace`); `RUST_LOG`
/// overrides it. Stdout is reserved for events.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

type Key = (String, Vec<(String, String)>);

/// Counters and gauges, keyed by name and labels.
#[derive(Default)]
pub struct Telemetry {
    counters: Mutex<BTreeMap<Key, u64>>,
    gauges: Mutex<BTreeMap<Key, f64>>,
}

impl Telemetry {
    pub fn counter_add(&self, name: &str, mut labels: Vec<(String, String)>, value: u64) {
        labels.sort();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *counters.entry((name.to_string(), labels)).or_default() += value;
    }

    pub fn gauge_set(&self, name: &str, mut labels: Vec<(String, String)>, value: f64) {
        labels.sort();
        let mut gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        gauges.insert((name.to_string(), labels), value);
    }

    /// The sum of a counter over all its label sets.
    pub fn counter_total(&self, name: &str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.iter().filter(|((n, _), _)| n == name).map(|(_, v)| v).sum()
    }
}
