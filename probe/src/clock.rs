//! Whether the kernel considers the wall clock synchronised (NTP/PTP), via adjtimex(2).
#![allow(unsafe_code)]

use sixmap_shared::ClockState;

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
