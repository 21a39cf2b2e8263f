//! A packets-per-second cap shared by several probers (e.g. many traceroutes at once): each
//! probe takes a slot before it leaves, and slots are `1/pps` apart.
//!
//! A sender that wakes late may use the slot it missed, but never more than one: over any
//! window of `t` seconds at most `pps·t + 1` probes leave. The pacer reads no clock itself;
//! callers hand it the time, so it is tested without sleeping.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("packets per second must be 1..=1000000, not {0}")]
pub struct PacerError(pub u32);

#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    /// When the next slot opens; `None` before the first probe.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub const MAX_PPS: u32 = 1_000_000;

    pub fn new(pps: u32) -> Result<Self, PacerError> {
        if pps == 0 || pps > Self::MAX_PPS {
            return Err(PacerError(pps));
        }
        Ok(Self {
            interval: Duration::from_secs(1) / pps,
            next: Mutex::new(None),
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes the slot open at `now`, or says when the next one opens.
    pub fn try_take(&self, now: Instant) -> Result<(), Instant> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        match *next {
            Some(at) if now < at => Err(at),
            Some(at) => {
                // A late sender may use the slot it missed, not the ones before it.
                let base = now.checked_sub(self.interval).map_or(at, |b| at.max(b));
                *next = Some(base + self.interval);
                Ok(())
            }
            None => {
                *next = Some(now + self.interval);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_one_interval_apart_and_a_late_sender_catches_up_by_one_only() {
        assert_eq!(Pacer::new(0).unwrap_err(), PacerError(0));
        let pacer = Pacer::new(100).unwrap();
        assert_eq!(pacer.interval(), Duration::from_millis(10));
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(pacer.try_take(t0), Ok(()));
        assert_eq!(pacer.try_take(ms(3)), Err(ms(10)));
        assert_eq!(pacer.try_take(ms(10)), Ok(()));
        // Woke 5 ms late: the next slot stays on the 10 ms grid.
        assert_eq!(pacer.try_take(ms(25)), Ok(()));
        assert_eq!(pacer.try_take(ms(26)), Err(ms(30)));
        // Idle for a second: one slot right away, one more at once, then the grid again.
        assert_eq!(pacer.try_take(ms(1000)), Ok(()));
        assert_eq!(pacer.try_take(ms(1000)), Ok(()));
        assert_eq!(pacer.try_take(ms(1000)), Err(ms(1010)));
    }

    #[test]
    fn never_more_than_pps_times_t_plus_one_in_a_window() {
        let pacer = Pacer::new(50).unwrap();
        let t0 = Instant::now();
        let mut sent = Vec::new();
        // A sender polling every 3 ms for 2.1 seconds.
        for step in 0..700u64 {
            let now = t0 + Duration::from_millis(3 * step);
            if pacer.try_take(now).is_ok() {
                sent.push(now);
            }
        }
        assert!((105..=106).contains(&sent.len()), "{}", sent.len());
        for (i, start) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|t| **t < *start + Duration::from_millis(200))
                .count();
            assert!(in_window <= 11, "{in_window} in 200 ms at 50 pps");
        }
    }
}
