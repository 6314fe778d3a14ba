//! What every output is: a [`Sink`] that returns only once a batch is as
//! delivered as it can tell, and the error that says it was not.

use anyhow::Result;

/// The batch was not delivered and the run should stop without saving its
/// checkpoint: the reader of stdout went away, or a stop was requested
/// while a receiver was refusing the batch.
#[derive(Debug)]
pub struct Undelivered(pub String);

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Undelivered {}

pub trait Sink {
    /// Delivers NDJSON `events` (`count` lines).
    fn deliver(&mut self, events: &[u8], count: u32) -> Result<()>;
}

/// Nanoseconds of the wall clock, for ids that must differ across runs.
pub fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
