//! Traceroute, Paris-style: every probe of a trace belongs to one flow (the spec's flow
//! label, fixed ports or echo identifier, constant transport checksum), so per-flow load
//! balancing shows one path instead of a mix. All hop limits are probed in parallel, paced
//! (`probes_per_hop` rounds over `first_hop..=max_hops`), not one hop after the other: a
//! trace takes about one round trip plus the wait for silent hops.
//!
//! The trace ends at the first hop where the destination answered (echo reply, port
//! unreachable, SYN-ACK or RST) or where a destination unreachable came back; hops beyond it
//! are dropped. Without either, `max_silent_hops` consecutive silent hops end it.

use crate::context::{Context, ipv4_unsupported};
use crate::rawnet::parse::{DESTINATION_UNREACHABLE, PACKET_TOO_BIG, PORT_UNREACHABLE};
use crate::rawnet::{self, Answer, AnswerKind, Exchanged, Planned, Prober, measurement_error};
use sixmap_shared::measurement::{
    HopAnswer, HopReply, MeasurementError, TraceStop, TracerouteHop, TracerouteResult,
    TracerouteSpec,
};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// Time between two probes: keeps routers' ICMPv6 rate limits (a burst of about six, then a
/// few per second) from eating answers, and lets the destination's first answer stop the
/// probes beyond it before they leave.
const GAP: Duration = Duration::from_millis(5);
/// How long an answer may take after the last probe left. More than the ~3 s a router
/// spends on neighbour discovery before "address unreachable".
const WAIT: Duration = Duration::from_secs(4);

/// Every probe takes a slot from the context's pacer first, if it has one (a
/// packets-per-second cap shared by traces that run at the same time).
pub async fn run(
    ctx: &Context<'_>,
    spec: &TracerouteSpec,
    destination: IpAddr,
) -> Result<TracerouteResult, MeasurementError> {
    let IpAddr::V6(destination) = destination else {
        return Err(ipv4_unsupported("traceroute"));
    };
    let limit = ctx.packet_limit(spec.packet_budget());
    let mut prober = Prober::open(
        destination,
        spec.protocol(),
        spec.port(),
        spec.flow_label(),
        limit,
    )
    .map_err(|e| measurement_error(&e))?;
    prober.set_pacer(ctx.pacer.cloned());
    let plan = plan(spec);
    let ex = prober
        .exchange(
            &plan,
            GAP,
            WAIT,
            ctx.deadline,
            |item, ex| end_hop(&plan, ex, destination).is_some_and(|(hop, _)| item.hop_limit > hop),
            |ex| finished(&plan, ex, destination),
        )
        .await
        .map_err(|e| measurement_error(&e))?;
    let result = conclude(spec, &plan, &ex, destination, prober.packets_sent());
    result.validate().map_err(|e| {
        crate::context::failure(
            sixmap_shared::measurement::ErrorClass::Internal,
            format!("traceroute produced an invalid result: {e}"),
        )
    })?;
    Ok(result)
}

/// `probes_per_hop` rounds, each over every hop limit in order.
fn plan(spec: &TracerouteSpec) -> Vec<Planned> {
    (0..spec.probes_per_hop())
        .flat_map(|_| spec.first_hop()..=spec.max_hops())
        .map(|hop_limit| Planned {
            hop_limit,
            ext: None,
            size: 0,
        })
        .collect()
}

/// How a trace ends at a hop, if one of its answers ends it.
fn ending(answer: &Answer, destination: Ipv6Addr) -> Option<TraceStop> {
    match answer.kind {
        AnswerKind::EchoReply | AnswerKind::Tcp { .. } if answer.from == destination => {
            Some(TraceStop::Reached)
        }
        AnswerKind::IcmpError {
            icmp_type: DESTINATION_UNREACHABLE,
            icmp_code,
            ..
        } => Some(
            if icmp_code == PORT_UNREACHABLE && answer.from == destination {
                TraceStop::Reached
            } else {
                TraceStop::Unreachable
            },
        ),
        _ => None,
    }
}

/// The lowest hop limit whose answers end the trace, and how.
fn end_hop(plan: &[Planned], ex: &Exchanged, destination: Ipv6Addr) -> Option<(u8, TraceStop)> {
    ex.answered()
        .filter_map(|(i, answer)| Some((plan.get(i)?.hop_limit, ending(answer, destination)?)))
        // At one hop, the destination's own answer wins over an unreachable.
        .min_by_key(|(hop, stop)| (*hop, *stop != TraceStop::Reached))
}

/// The end is known and every probe sent up to it was answered: nothing more to wait for.
fn finished(plan: &[Planned], ex: &Exchanged, destination: Ipv6Addr) -> bool {
    let Some((end, _)) = end_hop(plan, ex, destination) else {
        return false;
    };
    plan.iter()
        .zip(ex.ids.iter().zip(&ex.answers))
        .enumerate()
        .filter(|(_, (p, _))| p.hop_limit <= end)
        .all(|(i, (_, (id, answer)))| i < ex.handled && (id.is_none() || answer.is_some()))
}

fn hop_answer(kind: AnswerKind) -> HopAnswer {
    match kind {
        AnswerKind::EchoReply => HopAnswer::Icmp {
            icmp_type: rawnet::build::ICMPV6_ECHO_REPLY,
            icmp_code: 0,
            mtu: None,
        },
        AnswerKind::IcmpError {
            icmp_type,
            icmp_code,
            info,
            ..
        } => HopAnswer::Icmp {
            icmp_type,
            icmp_code,
            mtu: (icmp_type == PACKET_TOO_BIG).then_some(info),
        },
        AnswerKind::Tcp { flags } => HopAnswer::Tcp { flags },
    }
}

/// Turns what was sent and answered into the result (pure).
fn conclude(
    spec: &TracerouteSpec,
    plan: &[Planned],
    ex: &Exchanged,
    destination: Ipv6Addr,
    packets_sent: u32,
) -> TracerouteResult {
    let mut hops: Vec<TracerouteHop> = Vec::new();
    for hop_limit in spec.first_hop()..=spec.max_hops() {
        let replies: Vec<Option<HopReply>> = plan
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                p.hop_limit == hop_limit && ex.ids.get(*i).is_some_and(Option::is_some)
            })
            .map(|(i, _)| {
                ex.answers
                    .get(i)
                    .and_then(Option::as_ref)
                    .map(|a| HopReply {
                        from: IpAddr::V6(a.from),
                        rtt_ns: a.rtt_ns,
                        answer: hop_answer(a.kind),
                    })
            })
            .collect();
        if !replies.is_empty() {
            hops.push(TracerouteHop { hop_limit, replies });
        }
    }
    let stop = if let Some((end, stop)) = end_hop(plan, ex, destination) {
        hops.retain(|h| h.hop_limit <= end);
        stop
    } else if let Some(last) = silent_run_end(&hops, spec.max_silent_hops()) {
        hops.retain(|h| h.hop_limit <= last);
        TraceStop::SilentHops
    } else if ex.complete || ex.budget_spent {
        // The budget bounds the hops probed like max_hops does.
        TraceStop::MaxHops
    } else {
        TraceStop::Timeout
    };
    TracerouteResult {
        protocol: spec.protocol(),
        flow_label: spec.flow_label(),
        hops,
        reached_destination: stop == TraceStop::Reached,
        stop,
        packets_sent,
    }
}

/// The hop limit of the `max_silent`-th consecutive hop without any answer, if there is one.
fn silent_run_end(hops: &[TracerouteHop], max_silent: u8) -> Option<u8> {
    let mut run = 0u8;
    for hop in hops {
        if hop.replies.iter().all(Option::is_none) {
            run += 1;
            if run >= max_silent {
                return Some(hop.hop_limit);
            }
        } else {
            run = 0;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawnet::build::ProbeParams;
    use sixmap_shared::measurement::TraceProtocol;

    const DESTINATION: &str = "2001:db8:9::2";

    fn router(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, n, 0, 0, 0, 0, 1)
    }

    fn spec(max_hops: u32, probes: u32, silent: u32) -> TracerouteSpec {
        TracerouteSpec::new(TraceProtocol::Icmp, 1, max_hops, probes, silent, 0, 7).unwrap()
    }

    /// An exchange where every planned probe was sent and `answer(hop)` answered it.
    fn exchange(
        plan: &[Planned],
        answer: impl Fn(u8) -> Option<(Ipv6Addr, AnswerKind)>,
    ) -> Exchanged {
        let mut ex = Exchanged {
            ids: (0..plan.len()).map(|i| Some(i as u16)).collect(),
            answers: vec![None; plan.len()],
            too_big_locally: vec![false; plan.len()],
            budget_spent: false,
            complete: true,
            handled: plan.len(),
        };
        for (i, p) in plan.iter().enumerate() {
            ex.answers[i] = answer(p.hop_limit).map(|(from, kind)| Answer {
                id: i as u16,
                probe: ProbeParams {
                    id: i as u16,
                    hop_limit: p.hop_limit,
                    ext: None,
                    size: 0,
                },
                from,
                rtt_ns: 1000 * u64::from(p.hop_limit),
                kind,
                reply_hop_limit: None,
                received: tokio::time::Instant::now(),
            });
        }
        ex
    }

    fn exceeded() -> AnswerKind {
        AnswerKind::IcmpError {
            icmp_type: 3,
            icmp_code: 0,
            info: 0,
            parameter_in: None,
        }
    }

    #[test]
    fn the_trace_ends_at_the_destination_and_drops_later_hops() {
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let spec = spec(10, 2, 3);
        let plan = plan(&spec);
        assert_eq!(plan.len(), 20);
        // Rounds over all hop limits, not hop by hop.
        assert_eq!(
            plan[..3].iter().map(|p| p.hop_limit).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let ex = exchange(&plan, |hop| match hop {
            1..=3 => Some((router(u16::from(hop)), exceeded())),
            _ => Some((destination, AnswerKind::EchoReply)),
        });
        assert!(finished(&plan, &ex, destination));
        let result = conclude(&spec, &plan, &ex, destination, 20);
        assert_eq!(result.stop, TraceStop::Reached);
        assert!(result.reached_destination);
        assert_eq!(
            result.path(),
            vec![
                Some(router(1).into()),
                Some(router(2).into()),
                Some(router(3).into()),
                Some(destination.into())
            ]
        );
        assert_eq!(result.hops[3].replies.len(), 2);
        assert_eq!(result.validate(), Ok(()));
        assert!(
            crate::render::traceroute(&result).contains(" 4  2001:db8:9::2  0.004 ms  0.004 ms"),
            "{}",
            crate::render::traceroute(&result)
        );
    }

    #[test]
    fn silent_hops_end_the_trace_after_the_configured_run() {
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let spec = spec(10, 1, 3);
        let plan = plan(&spec);
        let ex = exchange(&plan, |hop| (hop == 1).then(|| (router(1), exceeded())));
        assert!(!finished(&plan, &ex, destination));
        let result = conclude(&spec, &plan, &ex, destination, 10);
        assert_eq!(result.stop, TraceStop::SilentHops);
        assert_eq!(result.hops.len(), 4, "hop 1 and three silent hops");
        assert_eq!(result.hops[3].replies, vec![None]);
    }

    #[test]
    fn unreachable_and_timeout_and_max_hops() {
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let spec = spec(6, 1, 5);
        let plan = plan(&spec);
        let unreachable = AnswerKind::IcmpError {
            icmp_type: 1,
            icmp_code: 3,
            info: 0,
            parameter_in: None,
        };
        let ex = exchange(&plan, |hop| match hop {
            1 => Some((router(1), exceeded())),
            _ => Some((router(2), unreachable)),
        });
        let result = conclude(&spec, &plan, &ex, destination, 6);
        assert_eq!(
            (result.stop, result.hops.len()),
            (TraceStop::Unreachable, 2)
        );
        // Every hop answered by routers only: max hops; the same cut by the deadline: timeout.
        let mut ex = exchange(&plan, |hop| Some((router(u16::from(hop)), exceeded())));
        assert_eq!(
            conclude(&spec, &plan, &ex, destination, 6).stop,
            TraceStop::MaxHops
        );
        ex.complete = false;
        assert_eq!(
            conclude(&spec, &plan, &ex, destination, 6).stop,
            TraceStop::Timeout
        );
        // Port unreachable from the destination itself means it was reached (UDP).
        let port = AnswerKind::IcmpError {
            icmp_type: 1,
            icmp_code: 4,
            info: 0,
            parameter_in: None,
        };
        let ex = exchange(&plan, |hop| match hop {
            1 => Some((router(1), exceeded())),
            _ => Some((destination, port)),
        });
        let result = conclude(&spec, &plan, &ex, destination, 6);
        assert_eq!((result.stop, result.hops.len()), (TraceStop::Reached, 2));
    }
}
