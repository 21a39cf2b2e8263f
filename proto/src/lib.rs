//! The sixmap wire format, and the only place that knows it.
//!
//! [`v1`] is generated from `proto/sixmap/v1/*.proto`. The rest of sixmap works on the validated
//! types in `sixmap-shared`: [`decode`] turns wire messages into domain types, naming the field
//! that is wrong, and [`encode`] turns domain types into wire messages. The session messages
//! (`sixmap_shared::session::{ProbeMessage, CollectorMessage}`) cross here once, at the edge
//! of each daemon's stream; the probe's outbox keeps results in their wire form through
//! [`encode::outbox_result`] and [`decode::outbox_result`].

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    unreachable_pub
)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/sixmap.v1.rs"));
}

pub mod decode;
pub mod encode;
mod enums;

#[cfg(test)]
mod kinds_tests;
#[cfg(test)]
mod message_tests;

pub use decode::WireError;
