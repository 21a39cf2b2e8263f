//! Where on the path one kind of packet stops while another goes on: both are sent with
//! every hop limit up to the destination, and the first hop that answers the reference but
//! not the test is where the test packets die. Path MTU black holes (large vs small) and
//! extension-header drops (with vs without) are both found this way.

use super::prober::{Answer, Exchanged, Planned, ProbeError, Prober};
use super::{AnswerKind, ExtHeader};
use crate::rawnet::parse::{DESTINATION_UNREACHABLE, PORT_UNREACHABLE, TIME_EXCEEDED};
use std::net::Ipv6Addr;
use std::time::Duration;
use tokio::time::Instant;

/// The packets compared: an extension header and a whole-packet size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub ext: Option<ExtHeader>,
    pub size: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Located {
    /// First hop limit at which the reference was answered and the test was not.
    pub hop: Option<u8>,
    /// The router that answered the test at the hop before.
    pub last_responder: Option<Ipv6Addr>,
    /// ICMPv6 errors other than Time Exceeded that answered test packets.
    pub test_errors: Vec<Answer>,
    /// Whether the reference reached the destination within the hop limits tried.
    pub reference_reached: bool,
}

/// Whether an answer shows the packet went on normally: Time Exceeded from a router, or the
/// destination's own answer (echo reply, port unreachable, TCP).
pub fn passed(answer: &Answer, destination: Ipv6Addr) -> bool {
    match answer.kind {
        AnswerKind::EchoReply | AnswerKind::Tcp { .. } => true,
        AnswerKind::IcmpError {
            icmp_type,
            icmp_code,
            ..
        } => {
            icmp_type == TIME_EXCEEDED
                || (icmp_type == DESTINATION_UNREACHABLE
                    && icmp_code == PORT_UNREACHABLE
                    && answer.from == destination)
        }
    }
}

/// Sends `attempts` reference and test probes at each hop limit `1..=max_hop` (interleaved,
/// `gap` apart) and compares the answers.
#[allow(clippy::too_many_arguments)]
pub async fn locate(
    prober: &mut Prober,
    reference: Variant,
    test: Variant,
    max_hop: u8,
    attempts: u8,
    gap: Duration,
    wait: Duration,
    end: Instant,
) -> Result<Located, ProbeError> {
    let mut plan = Vec::new();
    for hop_limit in 1..=max_hop {
        for _ in 0..attempts {
            for variant in [reference, test] {
                plan.push(Planned {
                    hop_limit,
                    ext: variant.ext,
                    size: variant.size,
                });
            }
        }
    }
    let destination = prober.flow().destination;
    // Beyond the hop where the reference reached the destination nothing is learnt.
    let reached = |plan: &[Planned], ex: &Exchanged| {
        ex.answered()
            .filter(|(i, a)| {
                a.from == destination && plan.get(*i).is_some_and(|p| is_variant(p, reference))
            })
            .filter_map(|(i, _)| plan.get(i).map(|p| p.hop_limit))
            .min()
    };
    let ex = prober
        .exchange(
            &plan,
            gap,
            wait,
            end,
            |item, ex| reached(&plan, ex).is_some_and(|hop| item.hop_limit > hop),
            |_| false,
        )
        .await?;
    Ok(compare(&plan, &ex, reference, destination))
}

fn is_variant(planned: &Planned, variant: Variant) -> bool {
    planned.ext == variant.ext && planned.size == variant.size
}

/// The comparison itself, pure: per hop, did the reference and the test pass?
pub fn compare(
    plan: &[Planned],
    ex: &Exchanged,
    reference: Variant,
    destination: Ipv6Addr,
) -> Located {
    let mut located = Located::default();
    let max_hop = plan.iter().map(|p| p.hop_limit).max().unwrap_or(0);
    let mut previous_test_responder = None;
    for hop in 1..=max_hop {
        let mut reference_passed = false;
        let mut test_passed: Option<Ipv6Addr> = None;
        let mut reference_at_destination = false;
        for (i, planned) in plan.iter().enumerate() {
            if planned.hop_limit != hop {
                continue;
            }
            let Some(answer) = ex.answers.get(i).and_then(Option::as_ref) else {
                continue;
            };
            if is_variant(planned, reference) {
                reference_passed |= passed(answer, destination);
                reference_at_destination |= answer.from == destination;
            } else if passed(answer, destination) {
                test_passed = test_passed.or(Some(answer.from));
            } else if located.hop.is_none() && located.test_errors.len() < 16 {
                located.test_errors.push(*answer);
            }
        }
        if located.hop.is_none() {
            match test_passed {
                Some(from) => previous_test_responder = Some(from),
                None if reference_passed => {
                    located.hop = Some(hop);
                    located.last_responder = previous_test_responder;
                }
                None => {}
            }
        }
        if reference_at_destination {
            located.reference_reached = true;
            break;
        }
    }
    located
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rawnet::build::ProbeParams;

    fn at(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, n, 0, 0, 0, 0, 2)
    }

    #[test]
    fn the_first_hop_answering_only_the_reference_is_the_drop() {
        let destination = at(9);
        let small = Variant {
            ext: None,
            size: 1280,
        };
        let large = Variant {
            ext: None,
            size: 1500,
        };
        let plan: Vec<Planned> = (1..=5u8)
            .flat_map(|hop_limit| {
                [small, large].map(|v| Planned {
                    hop_limit,
                    ext: v.ext,
                    size: v.size,
                })
            })
            .collect();
        let exceeded = AnswerKind::IcmpError {
            icmp_type: TIME_EXCEEDED,
            icmp_code: 0,
            info: 0,
            parameter_in: None,
        };
        let mut ex = Exchanged {
            ids: (0..plan.len()).map(|i| Some(i as u16)).collect(),
            answers: vec![None; plan.len()],
            too_big_locally: vec![false; plan.len()],
            budget_spent: false,
            complete: true,
            handled: plan.len(),
        };
        for (i, p) in plan.iter().enumerate() {
            let (from, kind) = match p.hop_limit {
                4.. => (destination, AnswerKind::EchoReply),
                hop => (at(u16::from(hop)), exceeded),
            };
            // Large packets die after hop 2's router.
            if p.size == 1500 && p.hop_limit >= 3 {
                continue;
            }
            ex.answers[i] = Some(Answer {
                id: i as u16,
                probe: ProbeParams {
                    id: i as u16,
                    hop_limit: p.hop_limit,
                    ext: None,
                    size: p.size,
                },
                from,
                rtt_ns: 1,
                kind,
                reply_hop_limit: None,
                received: tokio::time::Instant::now(),
            });
        }
        let located = compare(&plan, &ex, small, destination);
        assert_eq!(located.hop, Some(3));
        assert_eq!(located.last_responder, Some(at(2)));
        assert!(located.reference_reached);
        assert!(located.test_errors.is_empty());
    }
}
