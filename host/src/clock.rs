//! Time as the host and its guest see it. Real time by default. A
//! compressed clock, for soak runs, returns from every wait at once and moves
//! time forward by the wait instead, for the host and the guest alike, so
//! that days of polling pass in minutes with every query still made.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Real or compressed time; cheap to clone, and clones share their skew.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: real time. `Some`: nanoseconds added to real time.
    skew: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// A clock whose waits take no time and advance it instead.
    pub fn compressed() -> Clock {
        Clock {
            skew: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// How far this clock is ahead of real time.
    pub fn skew(&self) -> Duration {
        self.skew
            .as_ref()
            .map_or(Duration::ZERO, |s| Duration::from_nanos(s.load(Ordering::SeqCst)))
    }

    /// The current time on this clock.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.skew()
    }

    /// Waits `total`, returning early when `shutdown` is set. A compressed
    /// clock moves forward by `total` and returns at once.
    pub fn sleep(&self, total: Duration, shutdown: &AtomicBool) {
        if let Some(skew) = &self.skew {
            skew.fetch_add(u64::try_from(total.as_nanos()).unwrap_or(u64::MAX), Ordering::SeqCst);
            return;
        }
        let until = Instant::now() + total;
        while !shutdown.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// The guest's `wasi:clocks/wall-clock`.
    pub fn wall(&self) -> impl wasmtime_wasi::HostWallClock + 'static {
        Wall(self.clone())
    }

    /// The guest's `wasi:clocks/monotonic-clock`.
    pub fn monotonic(&self) -> impl wasmtime_wasi::HostMonotonicClock + 'static {
        Monotonic {
            clock: self.clone(),
            start: Instant::now(),
        }
    }
}

struct Wall(Clock);

impl wasmtime_wasi::HostWallClock for Wall {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0.now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
    }
}

struct Monotonic {
    clock: Clock,
    start: Instant,
}

impl wasmtime_wasi::HostMonotonicClock for Monotonic {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from((self.start.elapsed() + self.clock.skew()).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_wait_moves_time_instead_of_taking_it() {
        let clock = Clock::compressed();
        let shared = clock.clone();
        let started = Instant::now();
        let before = clock.now();
        clock.sleep(Duration::from_secs(3600), &AtomicBool::new(false));
        assert!(started.elapsed() < Duration::from_secs(1));
        let moved = shared.now().duration_since(before).unwrap();
        assert!(moved >= Duration::from_secs(3600) && moved < Duration::from_secs(3601), "{moved:?}");
        let monotonic = clock.monotonic();
        assert!(wasmtime_wasi::HostMonotonicClock::now(&monotonic) >= 3_600_000_000_000);
    }

    #[test]
    fn real_time_has_no_skew_and_a_stop_cuts_a_wait_short() {
        let clock = Clock::default();
        assert_eq!(clock.skew(), Duration::ZERO);
        let started = Instant::now();
        clock.sleep(Duration::from_secs(60), &AtomicBool::new(true));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
