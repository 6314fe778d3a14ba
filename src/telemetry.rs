//! Logs and metrics. Inside the component they go to the host's `host`
//! interface; in native builds (unit tests, benchmarks) they are kept in a
//! thread-local list that tests can read.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

pub fn info(message: &str, fields: &[(&str, &str)]) {
    log(Level::Info, message, fields)
}
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    log(Level::Warn, message, fields)
}
pub fn error(message: &str, fields: &[(&str, &str)]) {
    log(Level::Error, message, fields)
}
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    log(Level::Debug, message, fields)
}

#[cfg(target_arch = "wasm32")]
pub use crate::bindings::{counter, gauge};

#[cfg(target_arch = "wasm32")]
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    use crate::bindings::Level as Host;
    let level = match level {
        Level::Debug => Host::Debug,
        Level::Info => Host::Info,
        Level::Warn => Host::Warn,
        Level::Error => Host::Error,
    };
    crate::bindings::log(level, message, fields);
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::Level;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// A counter by its name and labels.
    pub type CounterKey = (String, Vec<(String, String)>);

    thread_local! {
        static LINES: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
        /// The counters added on this thread, once [`keep_counters`] asked
        /// for them (benchmarks do not pay for keeping them).
        static COUNTERS: RefCell<Option<BTreeMap<CounterKey, u64>>> = const { RefCell::new(None) };
    }

    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let mut line = message.to_string();
        for (k, v) in fields {
            line.push_str(&format!(" {k}={v}"));
        }
        LINES.with(|l| l.borrow_mut().push((level, line)));
    }
    pub fn counter(name: &str, labels: &[(&str, &str)], value: u64) {
        COUNTERS.with(|c| {
            if let Some(counters) = c.borrow_mut().as_mut() {
                let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                *counters.entry((name.to_string(), labels)).or_default() += value;
            }
        });
    }
    pub fn gauge(_name: &str, _labels: &[(&str, &str)], _value: f64) {}

    /// Takes the lines logged on this thread so far.
    pub fn take_lines() -> Vec<(Level, String)> {
        LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }

    /// Keeps the counters added on this thread from now on, starting from none.
    pub fn keep_counters() {
        COUNTERS.with(|c| *c.borrow_mut() = Some(BTreeMap::new()));
    }

    /// The counters added on this thread since [`keep_counters`], which
    /// start again from none.
    pub fn take_counters() -> BTreeMap<CounterKey, u64> {
        COUNTERS.with(|c| c.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default())
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{counter, gauge, keep_counters, log, take_counters, take_lines};
