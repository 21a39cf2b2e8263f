//! Wall-clock instants as the protocol carries them.
//!
//! Reading the OS clock happens only in `UnixMicros::now`, called by the daemons' I/O layers;
//! logic takes times as arguments so it can be tested with any clock.
// The clock module: the one place `SystemTime` is allowed (clippy.toml bans it elsewhere).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, UTC. Negative values are before 1970.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMicros(pub i64);

impl UnixMicros {
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)),
            Err(before) => Self(-i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }

    /// `self - earlier`, saturating at zero.
    pub fn saturating_since(self, earlier: Self) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_sides_of_the_epoch() {
        let after = UNIX_EPOCH + Duration::from_micros(1_500_000);
        assert_eq!(UnixMicros::from_system_time(after), UnixMicros(1_500_000));
        let before = UNIX_EPOCH - Duration::from_micros(7);
        assert_eq!(UnixMicros::from_system_time(before), UnixMicros(-7));
        assert_eq!(
            UnixMicros(10).saturating_since(UnixMicros(4)),
            Duration::from_micros(6)
        );
        assert_eq!(
            UnixMicros(1).saturating_since(UnixMicros(4)),
            Duration::ZERO
        );
    }
}
