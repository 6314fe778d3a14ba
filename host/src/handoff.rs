//! Batches handed to a consumer on another thread, such as the Fluent Bit
//! input plugin's collect callback, through a bounded queue. A batch counts
//! as delivered only once the consumer says it has taken it, so the
//! collector's checkpoint never runs ahead of the consumer; while nobody
//! takes batches (a paused Fluent Bit input), collection waits.
//!
//! The consumer never waits: [`Taker::take`] returns at once, with a batch
//! or without.

use crate::sink::{Sink, Undelivered};
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

/// How often a waiting collector looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// A batch of events as MessagePack `[EventTime, record]` entries.
pub struct Batch {
    /// The entries, ready for Fluent Bit (`msgpack::event_entries`).
    pub records: Vec<u8>,
    /// How many events they are.
    pub count: u32,
    signal: SyncSender<Signal>,
}

/// What the consumer did with a batch.
enum Signal {
    /// It took the batch out of the queue and is handing it on.
    Picked,
    /// The batch is handed on: delivered.
    Taken,
}

impl Batch {
    /// Tells the collector that the consumer has the batch: its checkpoint
    /// is saved next. Dropping a batch without calling this tells it the
    /// batch was not delivered.
    pub fn taken(self) {
        let _ = self.signal.send(Signal::Taken);
    }
}

/// The collector's side: a [`Sink`] that waits until its batch is taken.
pub struct Handoff {
    queue: SyncSender<Batch>,
    shutdown: Arc<AtomicBool>,
}

/// The consumer's side.
pub struct Taker {
    queue: Receiver<Batch>,
}

/// A queue of at most `capacity` batches waiting to be taken (at least one),
/// and its two ends. `shutdown` stops a collector that waits on it.
pub fn channel(capacity: usize, shutdown: Arc<AtomicBool>) -> (Handoff, Taker) {
    let (queue, receiver) = std::sync::mpsc::sync_channel(capacity.max(1));
    (Handoff { queue, shutdown }, Taker { queue: receiver })
}

impl Taker {
    /// The next waiting batch, if any, without waiting.
    pub fn take(&self) -> Option<Batch> {
        let batch = self.queue.try_recv().ok()?;
        let _ = batch.signal.send(Signal::Picked);
        Some(batch)
    }
}

impl Handoff {
    fn stopped(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
}

impl Sink for Handoff {
    fn deliver(&mut self, events: &[u8], count: u32) -> Result<()> {
        let (signal, signals) = std::sync::mpsc::sync_channel(2);
        let mut batch = Batch {
            records: crate::msgpack::event_entries(events)?,
            count,
            signal,
        };
        loop {
            match self.queue.try_send(batch) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if !self.stopped() => {
                    batch = back;
                    std::thread::sleep(TICK);
                }
                Err(TrySendError::Full(_)) => {
                    return Err(Undelivered("stop requested while the batch waited to be taken".into()).into());
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(Undelivered("the consumer of batches has gone".into()).into());
                }
            }
        }
        // Once the consumer has picked the batch up it is handing it on: wait
        // for the outcome even through a stop, or a batch that was handed on
        // would be collected again.
        let mut picked = false;
        loop {
            match signals.recv_timeout(TICK) {
                Ok(Signal::Taken) => return Ok(()),
                Ok(Signal::Picked) => picked = true,
                Err(RecvTimeoutError::Timeout) if picked || !self.stopped() => continue,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Undelivered("stop requested before the batch was taken".into()).into());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Undelivered("the batch was dropped without being taken".into()).into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag() -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(false))
    }

    #[test]
    fn deliver_returns_only_once_the_batch_is_taken() {
        let (mut sink, taker) = channel(1, flag());
        assert!(taker.take().is_none(), "nothing waits yet, and take does not block");
        let returned = Arc::new(AtomicBool::new(false));
        let r = returned.clone();
        let collector = std::thread::spawn(move || {
            let result = sink.deliver(b"{\"time\":1000,\"a\":1}\n{\"time\":2000}\n", 2);
            r.store(true, Ordering::SeqCst);
            result
        });
        let batch = loop {
            if let Some(b) = taker.take() {
                break b;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(batch.count, 2);
        let mut cursor = &batch.records[..];
        assert_eq!(rmpv::decode::read_value(&mut cursor).unwrap()[1]["a"].as_u64(), Some(1));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!returned.load(Ordering::SeqCst), "not delivered before it is taken");
        batch.taken();
        collector.join().unwrap().unwrap();
    }

    #[test]
    fn a_dropped_batch_or_a_stop_is_undelivered() {
        let (mut sink, taker) = channel(1, flag());
        let collector = std::thread::spawn(move || sink.deliver(b"{\"time\":1}\n", 1));
        let batch = loop {
            if let Some(b) = taker.take() {
                break b;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        drop(batch);
        let e = collector.join().unwrap().unwrap_err();
        assert!(e.is::<Undelivered>(), "{e}");

        let stop = flag();
        let (mut sink, _taker) = channel(1, stop.clone());
        let collector = std::thread::spawn(move || sink.deliver(b"{\"time\":1}\n", 1));
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::SeqCst);
        let e = collector.join().unwrap().unwrap_err();
        assert!(e.is::<Undelivered>() && e.to_string().contains("stop requested"), "{e}");

        // A batch already picked up is waited for through a stop: it may be
        // in the consumer's hands.
        let stop = flag();
        let (mut sink, taker) = channel(1, stop.clone());
        let collector = std::thread::spawn(move || sink.deliver(b"{\"time\":1}\n", 1));
        let batch = loop {
            if let Some(b) = taker.take() {
                break b;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        stop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!collector.is_finished());
        batch.taken();
        collector.join().unwrap().unwrap();

        let (mut sink, taker) = channel(1, flag());
        drop(taker);
        assert!(sink.deliver(b"{\"time\":1}\n", 1).unwrap_err().is::<Undelivered>());
    }
}
