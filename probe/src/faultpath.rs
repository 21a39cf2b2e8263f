//! The path towards a destination where something failed (IPv6 broken while IPv4 works, a
//! PMTU black hole, an extension-header drop): a short plain traceroute through
//! [`crate::traceroute::run`], bounded in packets and time, reduced to the hops that answered.
//! The collector attributes the failure from it (where the path goes silent, whose network
//! that is); the probe only reports what answered.

use crate::context::Context;
use sixmap_shared::measurement::{FaultPath, PathHop, TraceProtocol, TracerouteSpec};
use std::net::IpAddr;
use std::time::Duration;

/// Hop limits traced at most: real paths are shorter, and a silent tail ends the trace early.
const MAX_HOPS: u8 = 20;
/// Probes per hop: a second try for a router whose ICMPv6 error bucket was empty.
const PROBES_PER_HOP: u8 = 2;
/// Silent hops in a row that end the trace: the failure is where the path goes silent.
const MAX_SILENT_HOPS: u8 = 3;
/// The longest the trace may take; less when the measurement's deadline comes sooner.
pub const TIME: Duration = Duration::from_secs(4);
/// Less time than this left: no trace (it could not get past the first silent hop).
const LEAST_TIME: Duration = Duration::from_millis(500);
/// The most packets the trace sends (its spec's budget).
pub const PACKETS: u32 = MAX_HOPS as u32 * PROBES_PER_HOP as u32;

/// Traces the IPv6 path to `destination` with `protocol` (towards `port`, 0 for the
/// protocol's default), sending at most `packets` (and [`PACKETS`]). `None` when there is no
/// time or budget left, or the trace could not run (no raw socket): the failure is then
/// reported without a path.
pub async fn trace(
    ctx: &Context<'_>,
    destination: IpAddr,
    protocol: TraceProtocol,
    port: u16,
    packets: u32,
) -> Option<FaultPath> {
    let IpAddr::V6(_) = destination else {
        return None;
    };
    let packets = packets.min(PACKETS);
    let remaining = ctx.remaining();
    if packets < u32::from(MAX_SILENT_HOPS) || remaining < LEAST_TIME {
        tracing::debug!(%destination, packets, ?remaining, "no fault path: no budget or time left");
        return None;
    }
    let spec = match TracerouteSpec::new(
        protocol,
        1,
        u32::from(MAX_HOPS),
        u32::from(PROBES_PER_HOP),
        u32::from(MAX_SILENT_HOPS),
        u32::from(port),
        0,
    ) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(error = %e, "fault path spec refused");
            return None;
        }
    };
    let trace_ctx = Context {
        deadline: ctx.deadline.min(tokio::time::Instant::now() + TIME),
        max_packets: u16::try_from(packets).ok(),
        // Looked up before the measurement, maybe seconds ago: the trace asks the kernel
        // again (a temporary address may have expired since).
        source: None,
        ..*ctx
    };
    match crate::traceroute::run(&trace_ctx, &spec, destination).await {
        Ok(result) => reduce(&result),
        Err(e) => {
            tracing::debug!(%destination, error = %e.message, "no fault path: trace failed");
            None
        }
    }
}

/// The answering hops of a trace (each hop's first responder that can be a router: an
/// answer from a multicast, unspecified or IPv4-mapped source is no router's, and the
/// collector refuses a path naming one). `None` when the trace probed no hop at all.
fn reduce(result: &sixmap_shared::measurement::TracerouteResult) -> Option<FaultPath> {
    let hops = result
        .hops
        .iter()
        .filter(|hop| hop.hop_limit > 0)
        .filter_map(|hop| {
            hop.responders()
                .into_iter()
                .find(|&address| PathHop::answers_from(address))
                .map(|address| PathHop {
                    hop_limit: hop.hop_limit,
                    address,
                })
        })
        .take(FaultPath::MAX_HOPS)
        .collect();
    let probed_up_to = result.hops.iter().map(|h| h.hop_limit).max()?;
    let path = FaultPath {
        hops,
        probed_up_to,
        reached_destination: result.reached_destination,
        packets_sent: result.packets_sent,
    };
    // What the collector would refuse is not sent: the failure then travels without a path.
    match path.validate("fault_path") {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::debug!(error = %e, "no fault path: the trace is not a path");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::measurement::{
        HopAnswer, HopReply, TraceStop, TracerouteHop, TracerouteResult,
    };

    /// A time-exceeded answer from `from`.
    fn reply(from: &str) -> Option<HopReply> {
        Some(HopReply {
            from: from.parse().unwrap(),
            rtt_ns: 1000,
            answer: HopAnswer::Icmp {
                icmp_type: 3,
                icmp_code: 0,
                mtu: None,
            },
        })
    }

    #[test]
    fn a_trace_is_reduced_to_its_answering_hops() {
        let result = TracerouteResult {
            protocol: TraceProtocol::Icmp,
            flow_label: 0,
            hops: vec![
                TracerouteHop {
                    hop_limit: 1,
                    replies: vec![None, reply("2001:db8:1::1")],
                },
                TracerouteHop {
                    hop_limit: 2,
                    replies: vec![None, None],
                },
                TracerouteHop {
                    hop_limit: 3,
                    replies: vec![reply("2001:db8:3::1"), reply("2001:db8:3::2")],
                },
                TracerouteHop {
                    hop_limit: 4,
                    replies: vec![None],
                },
            ],
            reached_destination: false,
            stop: TraceStop::SilentHops,
            packets_sent: 7,
            reused_hops: 0,
        };
        let path = reduce(&result).unwrap();
        assert_eq!(path.probed_up_to, 4);
        assert_eq!(path.packets_sent, 7);
        assert!(!path.reached_destination);
        let hops: Vec<(u8, String)> = path
            .hops
            .iter()
            .map(|h| (h.hop_limit, h.address.to_string()))
            .collect();
        assert_eq!(
            hops,
            vec![(1, "2001:db8:1::1".into()), (3, "2001:db8:3::1".into())]
        );
        assert_eq!(path.validate("p"), Ok(()));
    }

    #[test]
    fn answers_from_no_router_are_left_out_and_an_empty_trace_is_no_path() {
        let mut result = TracerouteResult {
            protocol: TraceProtocol::Icmp,
            flow_label: 0,
            hops: vec![
                TracerouteHop {
                    hop_limit: 1,
                    replies: vec![reply("ff02::1"), reply("2001:db8:1::1")],
                },
                TracerouteHop {
                    hop_limit: 2,
                    replies: vec![reply("::ffff:192.0.2.1"), reply("::")],
                },
                TracerouteHop {
                    hop_limit: 3,
                    replies: vec![None, None],
                },
            ],
            reached_destination: false,
            stop: TraceStop::SilentHops,
            packets_sent: 6,
            reused_hops: 0,
        };
        let path = reduce(&result).unwrap();
        let hops: Vec<(u8, String)> = path
            .hops
            .iter()
            .map(|h| (h.hop_limit, h.address.to_string()))
            .collect();
        assert_eq!(hops, vec![(1, "2001:db8:1::1".into())]);
        assert_eq!(path.probed_up_to, 3);
        result.hops.clear();
        assert_eq!(reduce(&result), None);
    }

    #[test]
    fn the_trace_fits_its_own_spec_budget() {
        let spec = TracerouteSpec::new(
            TraceProtocol::Icmp,
            1,
            u32::from(MAX_HOPS),
            u32::from(PROBES_PER_HOP),
            u32::from(MAX_SILENT_HOPS),
            0,
            0,
        )
        .unwrap();
        assert_eq!(spec.packet_budget(), PACKETS);
    }
}
