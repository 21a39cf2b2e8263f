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
//! `build`, `parse`, `matching` and `checksum` do no I/O and read no clock. Nothing here knows
//! the measurement engine: the kinds on top (traceroute, pmtu, exthdr) bring their context.

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
pub use prober::{Answer, Exchanged, Planned, ProbeError, Prober, measurement_error};

#[cfg(test)]
mod tests;
