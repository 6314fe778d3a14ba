//! SIGTERM and SIGINT: stop between batches, and exit 0 within 10 seconds.
//!
//! Vector stops an `exec` source's child with SIGTERM. The run loop checks
//! the flag between batches and while it waits. A poll that is still running
//! (a slow Graph query) is abandoned: after a grace period a watchdog exits
//! the process, but never in the middle of delivering a batch or saving its
//! checkpoint, which happen under the `critical` lock. The abandoned batch's
//! checkpoint is not saved, so the next start collects it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the run loop gets to stop by itself.
pub const GRACE: Duration = Duration::from_secs(8);

pub struct Shutdown {
    pub requested: Arc<AtomicBool>,
    /// Held while a batch is delivered and its checkpoint saved.
    pub critical: Arc<Mutex<()>>,
}

impl Shutdown {
    /// Installs the handlers and the watchdog.
    pub fn install() -> std::io::Result<Shutdown> {
        let requested = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, requested.clone())?;
        }
        let critical = Arc::new(Mutex::new(()));
        let (flag, lock) = (requested.clone(), critical.clone());
        std::thread::Builder::new().name("shutdown-watchdog".into()).spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            tracing::info!("stop requested; finishing the current step");
            let deadline = Instant::now() + GRACE;
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            // Still running: a poll is in flight. Abandon it, but not while a
            // batch is being delivered or its checkpoint saved.
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            tracing::warn!("abandoning the batch in flight; it is collected again at the next start");
            std::process::exit(0);
        })?;
        Ok(Shutdown { requested, critical })
    }
}
