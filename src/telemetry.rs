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

    thread_local! {
        static LINES: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let mut line = message.to_string();
        for (k, v) in fields {
            line.push_str(&format!(" {k}={v}"));
        }
        LINES.with(|l| l.borrow_mut().push((level, line)));
    }
    pub fn counter(_name: &str, _labels: &[(&str, &str)], _value: u64) {}
    pub fn gauge(_name: &str, _labels: &[(&str, &str)], _value: f64) {}

    /// Takes the lines logged on this thread so far.
    pub fn take_lines() -> Vec<(Level, String)> {
        LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{counter, gauge, log, take_lines};
