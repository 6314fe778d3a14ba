//! The tenant's call budget: a token bucket shared by every table and stream
//! (graph-api.md §1.4: about 45 calls a minute per tenant, shared with the
//! portal and custom detections). When it is empty the collector waits.

use std::time::Duration;

#[derive(Debug)]
pub struct Budget {
    per_minute: f64,
    tokens: f64,
    /// Milliseconds on the monotonic clock at the last refill.
    last_ms: u64,
}

impl Budget {
    /// A full bucket of `per_minute` calls.
    pub fn new(per_minute: u32, now_ms: u64) -> Budget {
        Budget {
            per_minute: f64::from(per_minute),
            tokens: f64::from(per_minute),
            last_ms: now_ms,
        }
    }

    /// Takes a call; returns how long to wait first (zero when one is free).
    pub fn take(&mut self, now_ms: u64) -> Duration {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.per_minute / 60_000.0).min(self.per_minute);
        self.last_ms = now_ms;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_millis((-self.tokens * 60_000.0 / self.per_minute).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_then_one_call_per_interval() {
        let mut b = Budget::new(60, 0);
        for _ in 0..60 {
            assert_eq!(b.take(0), Duration::ZERO);
        }
        assert_eq!(
            b.take(0),
            Duration::from_secs(1),
            "the 61st call in the same instant waits a second"
        );
        // After waiting that second the debt is paid; the next call waits another.
        assert_eq!(b.take(1000), Duration::from_secs(1));
        // A quiet minute refills the bucket, but never beyond its size.
        assert_eq!(b.take(1000 + 120_000), Duration::ZERO);
        assert!(b.tokens <= 59.0);
    }
}
