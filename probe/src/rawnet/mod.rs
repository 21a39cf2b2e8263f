//! Raw IPv6 probing for path measurements (traceroute, path MTU, extension headers).
//!
//! - [`build`]: whole IPv6 probe packets (flow label, hop limit, extension headers, ICMPv6
//!   echo / UDP / TCP SYN with checksums), Paris-style: constant flow, probe id in content.
//! - [`parse`]: ICMPv6 messages, the packets ICMPv6 errors quote (extension-header chain
//!   walked to the transport header), TCP segments. Hostile input gives errors, not panics.
//! - [`matching`]: which probe of a flow a received packet answers.
//! - [`checksum`]: the Internet checksum and the words that keep it constant.
//! - [`socket`], [`prober`]: raw sockets (CAP_NET_RAW) and the send/receive book-keeping.
//! - [`locate`]: the hop where one kind of packet stops while another goes on.
//! - [`pacer`]: a packets-per-second cap shared by several probers.
//!
//! `build`, `parse`, `matching` and `checksum` do no I/O and read no clock.

pub mod build;
pub mod checksum;
pub mod locate;
pub mod matching;
pub mod pacer;
pub mod parse;
pub mod prober;
pub mod socket;

pub use build::{ExtHeader, Flow, ProbeParams, Transport};
pub use matching::{AnswerKind, Matched};
pub use prober::{Answer, Exchanged, Planned, ProbeError, Prober};

use crate::engine::failure;
use sixmap_shared::measurement::{ErrorClass, MeasurementError};

/// The engine's classified error for a probing failure.
pub fn measurement_error(error: &ProbeError) -> MeasurementError {
    let class = match error {
        ProbeError::Socket(socket::SocketError::Permission { .. }) => ErrorClass::Permission,
        ProbeError::NoRoute { .. } | ProbeError::Send { .. } => ErrorClass::Network,
        ProbeError::Socket(_)
        | ProbeError::Build(_)
        | ProbeError::Receive(_)
        | ProbeError::Random(_) => ErrorClass::Internal,
    };
    failure(class, error.to_string())
}

/// Packets a measurement may send: its own bound, lowered by the spec's budget if it set one.
pub fn packet_limit(ctx: &crate::engine::Context<'_>, own: u32) -> u32 {
    ctx.max_packets.map_or(own, |max| own.min(u32::from(max)))
}

/// The answer to IPv4 targets, which these measurements do not probe.
pub fn ipv4_unsupported(kind: &str) -> MeasurementError {
    failure(
        ErrorClass::Unsupported,
        format!("{kind} over IPv4 is not supported by this probe version: give an IPv6 target"),
    )
}

#[cfg(test)]
mod tests;
