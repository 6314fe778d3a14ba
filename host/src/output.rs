//! Where batches go. Every sink returns only once the batch is as delivered
//! as that sink can tell; only then is the batch's checkpoint saved.

use anyhow::Result;
use std::io::{ErrorKind, Write};

/// The reader of our output went away: stop without saving the checkpoint.
#[derive(Debug)]
pub struct PipeClosed;

impl std::fmt::Display for PipeClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader of stdout closed the pipe")
    }
}
impl std::error::Error for PipeClosed {}

pub trait Sink {
    /// Delivers NDJSON `events` (`count` lines).
    fn deliver(&mut self, events: &[u8], count: u32) -> Result<()>;
}

/// NDJSON on stdout, for Vector's `exec` source. "Delivered" here means
/// written and flushed into the pipe: accepted by the reader, no more.
pub struct Stdout<W: Write> {
    out: W,
}

impl<W: Write> Stdout<W> {
    pub fn new(out: W) -> Self {
        Stdout { out }
    }
}

impl<W: Write> Sink for Stdout<W> {
    fn deliver(&mut self, events: &[u8], _count: u32) -> Result<()> {
        let result = self.out.write_all(events).and_then(|_| self.out.flush());
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(PipeClosed.into()),
            Err(e) => Err(anyhow::Error::new(e).context("writing events to stdout")),
        }
    }
}
