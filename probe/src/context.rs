//! What a measurement kind gets besides its own spec and the destination address: the
//! probe's target policy, trust anchors and ICMP socket choice, an optional shared pacer, the
//! deadline and packet bound, and a handle to run another kind (the dual-stack legs). The
//! engine builds it; the kinds depend on this and never on the engine.

use crate::ping::SocketPreference;
use crate::rawnet::pacer::Pacer;
use crate::traceroute::stop_set::StopSet;
use sixmap_shared::TargetPolicy;
use sixmap_shared::measurement::{ErrorClass, MeasurementError, Outcome, SpecKind};
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A kind's measurement running against one address, as [`Dispatch`] returns it.
pub type Dispatched<'c> =
    Pin<Box<dyn Future<Output = Result<Outcome, MeasurementError>> + Send + 'c>>;

/// Runs one kind against an address already resolved and allowed by the policy (the engine's
/// dispatch); a plain function so that the context stays `Copy` and free of the engine.
pub type Dispatch = for<'c> fn(&'c Context<'c>, &'c SpecKind, IpAddr) -> Dispatched<'c>;

#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Checked again by every kind that finds addresses of its own (the dual-stack legs).
    pub policy: TargetPolicy,
    /// PEM file of extra certificate authorities trusted for TLS, HTTPS and QUIC besides the
    /// system's.
    pub extra_ca_file: Option<&'a Path>,
    pub icmp_socket: SocketPreference,
    /// A packets-per-second cap shared with other measurements (`measure traceroute --pps`).
    pub pacer: Option<&'a Arc<Pacer>>,
    /// The Doubletree stop set shared by the traceroutes of one run (`measure traceroute
    /// T1 T2 …`); `None` elsewhere.
    pub stop_set: Option<&'a Arc<StopSet>>,
    pub dispatch: Dispatch,
    /// The whole measurement must be over by then.
    pub deadline: tokio::time::Instant,
    /// The spec's packet budget, if it set one; modules also keep their own bound.
    pub max_packets: Option<u16>,
    /// The host name the target was given as (for SNI and the Host header).
    pub target_name: Option<&'a str>,
    /// Time spent resolving that name.
    pub resolve_ns: Option<u64>,
    /// The source address the kernel picks for a destination, as the engine looked it up
    /// for the result: (destination, source). Raw-socket kinds use it for that destination
    /// instead of asking the kernel again.
    pub source: Option<(IpAddr, IpAddr)>,
}

impl Context<'_> {
    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Packets a measurement may send: its own bound, lowered by the spec's budget if it set
    /// one.
    pub fn packet_limit(&self, own: u32) -> u32 {
        self.max_packets.map_or(own, |max| own.min(u32::from(max)))
    }

    /// The source already looked up for `destination`, if it was.
    pub fn source_for(&self, destination: Ipv6Addr) -> Option<Ipv6Addr> {
        match self.source {
            Some((IpAddr::V6(to), IpAddr::V6(from))) if to == destination => Some(from),
            _ => None,
        }
    }
}

pub fn failure(class: ErrorClass, message: impl Into<String>) -> MeasurementError {
    MeasurementError {
        class,
        message: message.into(),
    }
}

/// The answer to IPv4 targets for the raw-socket kinds, which probe IPv6 only.
pub fn ipv4_unsupported(kind: &str) -> MeasurementError {
    failure(
        ErrorClass::Unsupported,
        format!("{kind} over IPv4 is not supported by this probe version: give an IPv6 target"),
    )
}

/// A context for one kind tested on its own, without the engine: nested measurements fail.
#[cfg(test)]
pub(crate) fn for_test<'a>(
    extra_ca_file: Option<&'a Path>,
    target_name: Option<&'a str>,
    timeout: Duration,
) -> Context<'a> {
    fn refuse<'c>(_: &'c Context<'c>, _: &'c SpecKind, _: IpAddr) -> Dispatched<'c> {
        Box::pin(async { Err(failure(ErrorClass::Internal, "no engine in this test")) })
    }
    Context {
        policy: TargetPolicy::default(),
        extra_ca_file,
        icmp_socket: SocketPreference::Auto,
        pacer: None,
        stop_set: None,
        dispatch: refuse,
        deadline: tokio::time::Instant::now() + timeout,
        max_packets: None,
        target_name,
        resolve_ns: None,
        source: None,
    }
}
