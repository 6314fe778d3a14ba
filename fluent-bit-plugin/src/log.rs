//! The collector's JSON log lines, written into Fluent Bit's own log
//! through `flb_log_print`, each prefixed `[defender_ocsf]` and at the
//! matching Fluent Bit level.

use crate::abi::{LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_TRACE, LOG_WARN, LogPrint};
use std::ffi::CString;
use std::io::Write;

/// The prefix of every line, as Fluent Bit's own plugins name themselves.
pub const PREFIX: &str = "[defender_ocsf] ";

/// Makes one [`Line`] per log event. `flb_log_print` is a function of the
/// Fluent Bit binary, valid for the life of the process (an `flb_api`
/// table is not: Fluent Bit frees it with the plugin).
#[derive(Clone, Copy)]
pub struct FluentBitLog {
    print: LogPrint,
}

impl FluentBitLog {
    pub fn new(print: LogPrint) -> FluentBitLog {
        FluentBitLog { print }
    }
}

/// One log event being written; handed to Fluent Bit when dropped.
pub struct Line {
    print: LogPrint,
    level: std::ffi::c_int,
    text: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let Ok(line) = CString::new(format!("{PREFIX}{}", text.replace('\0', ""))) else {
            return;
        };
        // SAFETY: flb_log_print takes a printf format; "%s" with one C
        // string argument, and a file name and line it only prints.
        unsafe { (self.print)(self.level, c"defender_ocsf".as_ptr(), 0, c"%s".as_ptr(), line.as_ptr()) }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for FluentBitLog {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        self.line(LOG_INFO)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        let level = match *meta.level() {
            tracing::Level::ERROR => LOG_ERROR,
            tracing::Level::WARN => LOG_WARN,
            tracing::Level::INFO => LOG_INFO,
            tracing::Level::DEBUG => LOG_DEBUG,
            tracing::Level::TRACE => LOG_TRACE,
        };
        self.line(level)
    }
}

impl FluentBitLog {
    fn line(&self, level: std::ffi::c_int) -> Line {
        Line {
            print: self.print,
            level,
            text: Vec::new(),
        }
    }

    /// Logs `message` at `level` directly, before or without the tracing
    /// subscriber (a failed init).
    pub fn say(&self, level: std::ffi::c_int, message: &str) {
        let mut line = self.line(level);
        let _ = line.write_all(message.as_bytes());
    }
}
