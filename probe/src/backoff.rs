//! Reconnect delays: exponential with jitter, so a collector restart is not followed by every
//! probe reconnecting in the same second. Pure: randomness comes in as an argument.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// Delay before the next attempt. `unit` is uniform in [0, 1): the delay is uniform in
    /// [ceiling/2, ceiling) where the ceiling doubles per failure up to `max` ("equal jitter").
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        ceiling / 2 + ceiling.mul_f64(unit / 2.0)
    }

    /// The first step's delay, without counting an attempt: the pause before trying another
    /// collector of the list (see `failover`).
    pub fn first_delay(&self, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let ceiling = self.base.min(self.max);
        ceiling / 2 + ceiling.mul_f64(unit / 2.0)
    }

    /// After a session got as far as a welcome, start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A uniform value in [0, 1) from the OS random source (0.5 if it fails: jitter is not critical).
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_jittered_and_capped() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let low: Vec<_> = (0..8).map(|_| b.next_delay(0.0)).collect();
        assert_eq!(low[0], Duration::from_millis(500));
        assert_eq!(low[1], Duration::from_secs(1));
        assert_eq!(low[7], Duration::from_secs(30));
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..40 {
            let d = b.next_delay(0.999_999);
            assert!(d < Duration::from_secs(60), "{d:?}");
        }
        b.reset();
        assert!(b.next_delay(f64::NAN) <= Duration::from_secs(1));
        // The short pause stays at the first step however far the backoff grew.
        for _ in 0..10 {
            b.next_delay(0.5);
        }
        assert_eq!(b.first_delay(0.0), Duration::from_millis(500));
        assert!(b.first_delay(0.999) < Duration::from_secs(1));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(30));
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
