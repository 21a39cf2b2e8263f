//! The probe's clocks: whether the kernel considers the wall clock synchronised (NTP/PTP, via
//! adjtimex(2)), and when a packet left ([`SentAt`]). Measurements read the wall clock only
//! here (and through `UnixMicros::now`); everything else takes times as arguments.
#![allow(unsafe_code)]
// The probe's clock module: `SentAt` reads the wall clock here (clippy.toml bans it elsewhere).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use sixmap_shared::ClockState;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

pub fn clock_state() -> ClockState {
    // SAFETY: timex is plain data; zeroed with modes = 0 makes adjtimex a read-only query.
    let state = unsafe {
        let mut timex: libc::timex = std::mem::zeroed();
        libc::adjtimex(&mut timex)
    };
    match state {
        -1 => ClockState::Unknown,
        libc::TIME_ERROR => ClockState::Unsynchronized,
        _ => ClockState::Synchronized,
    }
}

/// When a packet left, on both clocks: the realtime one to compare with kernel receive
/// timestamps (`SO_TIMESTAMPNS`, realtime), the monotonic one as the fallback.
#[derive(Debug, Clone, Copy)]
pub struct SentAt {
    pub monotonic: Instant,
    /// Since the Unix epoch; `None` if the wall clock is before it.
    pub realtime: Option<Duration>,
}

impl SentAt {
    pub fn now() -> Self {
        Self {
            realtime: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok(),
            monotonic: Instant::now(),
        }
    }

    /// The round trip by the kernel's receive timestamp (realtime), if there is one and the
    /// difference is usable: a clock step can make it negative or zero.
    pub fn kernel_rtt(&self, received_at: Option<Duration>) -> Option<Duration> {
        received_at
            .zip(self.realtime)
            .and_then(|(received, sent)| received.checked_sub(sent))
            .filter(|rtt| !rtt.is_zero())
    }
}
