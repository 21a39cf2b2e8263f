//! Extension-header survival: do ICMPv6 echo requests carrying a Hop-by-Hop Options,
//! Destination Options or (atomic) Fragment header reach the destination?
//!
//! Each header is tested on its own, beside plain echo requests of the same flow: a header
//! survived when the destination answered a probe carrying it. When it did not (and plain
//! probes were answered), probes with and without the header go out with every hop limit
//! up to the destination: the first hop that answers plain probes but not those with the
//! header is `dropped_at_hop`, and the router that last answered probes with the header is
//! `last_responder`. An ICMPv6 error answering probes with the header (e.g. Parameter
//! Problem pointing into it) is recorded.

use crate::context::{Context, failure, ipv4_unsupported};
use crate::rawnet::locate::{self, Variant};
use crate::rawnet::parse::TIME_EXCEEDED;
use crate::rawnet::prober::settle_wait;
use crate::rawnet::{
    Answer, AnswerKind, Exchanged, ExtHeader, Planned, ProbeError, Prober, measurement_error,
};
use sixmap_shared::measurement::{
    ErrorClass, ExtHeaderOutcome, ExtHeaderResult, ExtHeaderSpec, ExtHeaderType, IcmpError,
    MeasurementError, TraceProtocol, hops_from_reply_hop_limit,
};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use tokio::time::Instant;

/// Probes per header (and plain) in the first round: one lost packet is not a drop.
const ATTEMPTS: u8 = 2;
const HOP_LIMIT: u8 = 64;
const DEFAULT_SCAN_HOPS: u8 = 30;
const GAP: Duration = Duration::from_millis(2);
const FIRST_WAIT: Duration = Duration::from_secs(2);

pub async fn run(
    ctx: &Context<'_>,
    spec: &ExtHeaderSpec,
    destination: IpAddr,
) -> Result<ExtHeaderResult, MeasurementError> {
    let IpAddr::V6(destination) = destination else {
        return Err(ipv4_unsupported("extension-header measurement"));
    };
    let limit = ctx.packet_limit(crate::safety::EXTHDR_PACKETS);
    let mut prober = Prober::open(
        destination,
        ctx.source_for(destination),
        TraceProtocol::Icmp,
        0,
        0,
        limit,
    )
    .map_err(|e| measurement_error(&e))?;
    let mut result = measure(&mut prober, spec, ctx.deadline)
        .await
        .map_err(|e| measurement_error(&e))?;
    drop(prober);
    if result.outcomes.iter().any(|o| !o.survived) {
        // Where headers vanish, and whose network that is: the plain path, from what the
        // measurement's packet bound leaves.
        let left = limit.saturating_sub(result.packets_sent);
        result.fault_path =
            crate::faultpath::trace(ctx, IpAddr::V6(destination), TraceProtocol::Icmp, 0, left)
                .await;
        if let Some(path) = &result.fault_path {
            result.packets_sent = result.packets_sent.saturating_add(path.packets_sent);
        }
    }
    result.validate().map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("extension-header measurement produced an invalid result: {e}"),
        )
    })?;
    Ok(result)
}

/// The header a spec entry stands for. The fragment identification is random per
/// measurement (and constant within it, like the rest of the flow).
fn header(kind: ExtHeaderType, option_bytes: u16, identification: u32) -> ExtHeader {
    match kind {
        ExtHeaderType::HopByHop => ExtHeader::HopByHop { len: option_bytes },
        ExtHeaderType::DestinationOptions => ExtHeader::DestinationOptions { len: option_bytes },
        ExtHeaderType::Fragment => ExtHeader::Fragment { identification },
    }
}

fn is_echo_reply(answer: &Answer, destination: Ipv6Addr) -> bool {
    answer.kind == AnswerKind::EchoReply && answer.from == destination
}

/// An ICMPv6 error other than Time Exceeded, as the result records it.
fn icmp_error(answer: &Answer) -> Option<IcmpError> {
    match answer.kind {
        AnswerKind::IcmpError {
            icmp_type,
            icmp_code,
            ..
        } if icmp_type != TIME_EXCEEDED => Some(IcmpError {
            icmp_type,
            icmp_code,
            from: IpAddr::V6(answer.from),
            mtu: None,
        }),
        _ => None,
    }
}

/// Picks the error to report for `ext`: one whose Parameter Problem pointer falls in the
/// header itself first, else the first error.
fn error_naming(answers: &[&Answer], ext: ExtHeader) -> Option<IcmpError> {
    let names = |a: &&&Answer| matches!(a.kind, AnswerKind::IcmpError { parameter_in: Some(p), .. } if p == ext.next_header());
    answers
        .iter()
        .find(names)
        .or_else(|| answers.iter().find(|a| icmp_error(a).is_some()))
        .and_then(|a| icmp_error(a))
}

async fn measure(
    prober: &mut Prober,
    spec: &ExtHeaderSpec,
    end: Instant,
) -> Result<ExtHeaderResult, ProbeError> {
    let destination = prober.flow().destination;
    let identification = u32::from_be_bytes(prober.flow().cookie[..4].try_into().unwrap_or([0; 4]));
    let headers: Vec<(ExtHeaderType, ExtHeader)> = spec
        .headers()
        .iter()
        .map(|&kind| (kind, header(kind, spec.option_bytes(), identification)))
        .collect();
    // Round 1: plain and every header, straight to the destination.
    let variants: Vec<Option<ExtHeader>> = std::iter::once(None)
        .chain(headers.iter().map(|(_, ext)| Some(*ext)))
        .collect();
    let plan: Vec<Planned> = (0..ATTEMPTS)
        .flat_map(|_| variants.iter())
        .map(|&ext| Planned {
            hop_limit: HOP_LIMIT,
            ext,
            size: 0,
        })
        .collect();
    // Plain probes answered tell how long the others deserve to be waited for.
    let settled = |ex: &Exchanged| {
        ex.handled == plan.len()
            && ex
                .answered()
                .filter(|(i, a)| {
                    plan.get(*i).is_some_and(|p| p.ext.is_none()) && is_echo_reply(a, destination)
                })
                .map(|(_, a)| a.settles_at())
                .min()
                .is_some_and(|at| Instant::now() >= at)
    };
    let ex = prober
        .exchange(&plan, GAP, FIRST_WAIT, end, |_, _| false, settled)
        .await?;
    let answers_for = |ext: Option<ExtHeader>| -> Vec<&Answer> {
        ex.answered()
            .filter(|(i, _)| plan.get(*i).is_some_and(|p| p.ext == ext))
            .map(|(_, a)| a)
            .collect()
    };
    let plain = answers_for(None);
    let plain_reply = plain
        .iter()
        .find(|a| is_echo_reply(a, destination))
        .copied()
        .copied();
    let wait = plain_reply.map_or(FIRST_WAIT, |a| settle_wait(Duration::from_nanos(a.rtt_ns)));
    let scan_hops = plain_reply
        .and_then(|a| a.reply_hop_limit)
        .and_then(hops_from_reply_hop_limit)
        .map_or(DEFAULT_SCAN_HOPS, |hops| {
            hops.saturating_add(1).min(HOP_LIMIT)
        });
    let mut outcomes = Vec::new();
    let first_round: Vec<(ExtHeaderType, ExtHeader, bool, Option<IcmpError>)> = headers
        .iter()
        .map(|&(kind, ext)| {
            let answers = answers_for(Some(ext));
            let survived = answers.iter().any(|a| is_echo_reply(a, destination));
            (kind, ext, survived, error_naming(&answers, ext))
        })
        .collect();
    for (kind, ext, survived, mut error) in first_round {
        let mut outcome = ExtHeaderOutcome {
            header: kind,
            survived,
            dropped_at_hop: None,
            last_responder: None,
            icmp_error: None,
        };
        // Locating needs plain probes that get through; it is pointless for a header that did.
        if !survived && plain_reply.is_some() && Instant::now() < end {
            let located = locate::locate(
                prober,
                Variant { ext: None, size: 0 },
                Variant {
                    ext: Some(ext),
                    size: 0,
                },
                scan_hops,
                ATTEMPTS,
                GAP,
                wait,
                end,
            )
            .await?;
            outcome.dropped_at_hop = located.hop;
            outcome.last_responder = located.last_responder.map(IpAddr::V6);
            if error.is_none() {
                let answers: Vec<&Answer> = located.test_errors.iter().collect();
                error = error_naming(&answers, ext);
            }
        }
        outcome.icmp_error = error;
        outcomes.push(outcome);
    }
    Ok(ExtHeaderResult {
        outcomes,
        packets_sent: prober.packets_sent(),
        fault_path: None,
    })
}
