//! Path MTU to a destination, and the hop where a path-MTU black hole swallows packets.
//!
//! Probes are ICMPv6 echo requests (or UDP datagrams) of chosen whole-packet sizes, sent
//! with the raw socket so the kernel neither fragments them nor applies its own path MTU
//! cache. The search starts with `max_size` and 1280 (the IPv6 minimum, which must pass),
//! follows Packet Too Big MTUs when they come, and otherwise narrows the gap between the
//! largest size answered and the smallest lost with several sizes per round (k-ary search:
//! about three rounds for 1280..1500).
//!
//! A size lost without any Packet Too Big while smaller ones pass is a black hole. To name
//! the hop, large and small packets go out with every hop limit: the first hop where the
//! small ones are still answered (Time Exceeded) and the large ones are not is
//! `black_hole_hop`; the router that still answered the large ones just before is
//! `black_hole_from`, the one that drops them (it cannot forward them and its Packet Too
//! Big never arrives).

use crate::context::{Context, failure, ipv4_unsupported};
use crate::rawnet::locate::{self, Variant};
use crate::rawnet::parse::PACKET_TOO_BIG;
use crate::rawnet::prober::settle_wait;
use crate::rawnet::{
    Answer, AnswerKind, Exchanged, Planned, ProbeError, Prober, measurement_error,
};
use sixmap_shared::measurement::{
    ErrorClass, IcmpError, MeasurementError, PmtuResult, PmtuSpec, hops_from_reply_hop_limit,
};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use tokio::time::Instant;

const MIN_SIZE: u32 = PmtuSpec::MIN_SIZE as u32;
/// Probes per size: one lost packet must not pass for a black hole.
const ATTEMPTS: usize = 2;
/// Sizes tried per search round.
const SIZES_PER_ROUND: u32 = 7;
const MAX_ROUNDS: usize = 12;
const GAP: Duration = Duration::from_millis(2);
/// Wait for the first answers, before any round-trip time is known.
const FIRST_WAIT: Duration = Duration::from_secs(2);
/// Hop limit of search probes: any real path is shorter.
const HOP_LIMIT: u8 = 64;
/// Hop limits scanned when the destination's distance is unknown.
const DEFAULT_SCAN_HOPS: u8 = 30;
/// Packet Too Big messages kept (the result's bound).
const MAX_TOO_BIG: usize = 64;

pub async fn run(
    ctx: &Context<'_>,
    spec: &PmtuSpec,
    destination: IpAddr,
) -> Result<PmtuResult, MeasurementError> {
    let IpAddr::V6(destination) = destination else {
        return Err(ipv4_unsupported("pmtu"));
    };
    let limit = ctx.packet_limit(crate::safety::PMTU_PACKETS);
    let mut prober = Prober::open(
        destination,
        ctx.source_for(destination),
        spec.protocol(),
        spec.protocol().default_port(),
        0,
        limit,
    )
    .map_err(|e| measurement_error(&e))?;
    let mut result = measure(&mut prober, spec, ctx.deadline)
        .await
        .map_err(|e| measurement_error(&e))?;
    drop(prober);
    if result.black_hole {
        // Where the large packets vanish, and whose network that is: the plain path, from
        // what the measurement's packet bound leaves.
        let left = limit.saturating_sub(result.packets_sent);
        result.fault_path = crate::faultpath::trace(
            ctx,
            IpAddr::V6(destination),
            spec.protocol(),
            spec.protocol().default_port(),
            left,
        )
        .await;
        if let Some(path) = &result.fault_path {
            result.packets_sent = result.packets_sent.saturating_add(path.packets_sent);
        }
    }
    result.validate().map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("pmtu produced an invalid result: {e}"),
        )
    })?;
    Ok(result)
}

/// What the search knows so far.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Search {
    /// Largest size answered by the destination.
    passed: Option<u32>,
    /// Smallest size that failed (lost, too big, refused locally).
    failed: Option<u32>,
    /// Smallest size lost with no Packet Too Big about it.
    silent: Option<u32>,
    /// MTU of the newest Packet Too Big, to try next.
    hint: Option<u32>,
    too_big: Vec<IcmpError>,
    /// Round-trip time of the smallest probe's answer.
    rtt: Option<Duration>,
    /// Hop limit of the destination's answer.
    reply_hop_limit: Option<u8>,
}

impl Search {
    fn new() -> Self {
        Self {
            passed: None,
            failed: None,
            silent: None,
            hint: None,
            too_big: Vec::new(),
            rtt: None,
            reply_hop_limit: None,
        }
    }

    /// Sizes for the next round, empty once the path MTU is pinned down.
    fn next_sizes(&self, max_size: u32) -> Vec<u32> {
        let low = self.passed.unwrap_or(MIN_SIZE - 1);
        let high = self.failed.unwrap_or(max_size + 1);
        if high <= low + 1 {
            return Vec::new();
        }
        if let Some(hint) = self.hint.filter(|h| (low + 1..high).contains(h)) {
            return vec![hint];
        }
        // Evenly spaced points strictly between what passed and what failed.
        let span = high - low;
        let count = SIZES_PER_ROUND.min(span - 1);
        let mut sizes: Vec<u32> = (1..=count)
            .map(|k| low + (span * k) / (count + 1))
            .filter(|s| (low + 1..high).contains(s))
            .collect();
        sizes.dedup();
        sizes
    }

    /// Records a round's outcome per size: answered by the destination, too big (with the
    /// Packet Too Big), or lost.
    fn record(&mut self, size: u32, outcome: &SizeOutcome) {
        match outcome {
            SizeOutcome::Passed => self.passed = self.passed.max(Some(size)),
            SizeOutcome::TooBig(errors) => {
                self.failed = Some(self.failed.map_or(size, |f| f.min(size)));
                for error in errors {
                    if let Some(mtu) = error.mtu {
                        // The link's MTU is known now: nothing larger fits, so the next try
                        // is exactly the MTU (IPv6 links carry at least 1280 whatever a
                        // Packet Too Big claims).
                        let mtu = mtu.clamp(MIN_SIZE, size.saturating_sub(1).max(MIN_SIZE));
                        self.failed = self.failed.map(|f| f.min(mtu + 1));
                        self.hint = Some(mtu);
                    }
                    let known = self
                        .too_big
                        .iter()
                        .any(|e| e.from == error.from && e.mtu == error.mtu);
                    if !known && self.too_big.len() < MAX_TOO_BIG {
                        self.too_big.push(error.clone());
                    }
                }
            }
            SizeOutcome::RefusedLocally => {
                self.failed = Some(self.failed.map_or(size, |f| f.min(size)));
            }
            SizeOutcome::Lost => {
                self.failed = Some(self.failed.map_or(size, |f| f.min(size)));
                self.silent = Some(self.silent.map_or(size, |s| s.min(size)));
            }
        }
    }

    /// The wait for a round's answers: a few round trips, within sane bounds.
    fn wait(&self) -> Duration {
        self.rtt.map_or(FIRST_WAIT, settle_wait)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SizeOutcome {
    Passed,
    TooBig(Vec<IcmpError>),
    RefusedLocally,
    Lost,
}

/// Whether the destination itself answered (echo reply, or port unreachable for UDP).
fn from_destination(answer: &Answer, destination: Ipv6Addr) -> bool {
    answer.from == destination && locate::passed(answer, destination)
}

async fn measure(
    prober: &mut Prober,
    spec: &PmtuSpec,
    end: Instant,
) -> Result<PmtuResult, ProbeError> {
    let destination = prober.flow().destination;
    let max_size = u32::from(spec.max_size());
    let mut search = Search::new();
    let mut sizes = vec![MIN_SIZE, max_size];
    sizes.dedup();
    for _ in 0..MAX_ROUNDS {
        if sizes.is_empty() || Instant::now() >= end || prober.budget_left() == 0 {
            break;
        }
        let plan: Vec<Planned> = sizes
            .iter()
            .flat_map(|&size| {
                std::iter::repeat_n(
                    Planned {
                        hop_limit: HOP_LIMIT,
                        ext: None,
                        size: size as usize,
                    },
                    ATTEMPTS,
                )
            })
            .collect();
        // Once the destination answered one size, the others have had their chance a few
        // of its round trips later: lost sizes do not hold the round for the whole wait.
        let settled = |ex: &Exchanged| {
            ex.handled == plan.len()
                && ex
                    .answered()
                    .filter(|(_, a)| from_destination(a, destination))
                    .map(|(_, a)| a.settles_at())
                    .min()
                    .is_some_and(|at| Instant::now() >= at)
        };
        let ex = prober
            .exchange(&plan, GAP, search.wait(), end, |_, _| false, settled)
            .await?;
        if !ex.complete {
            break; // deadline or budget: what is known stands
        }
        for &size in &sizes {
            let mut outcome = SizeOutcome::Lost;
            for (i, planned) in plan.iter().enumerate() {
                if planned.size != size as usize {
                    continue;
                }
                if ex.too_big_locally.get(i).copied().unwrap_or(false)
                    && outcome == SizeOutcome::Lost
                {
                    outcome = SizeOutcome::RefusedLocally;
                }
                let Some(answer) = ex.answers.get(i).and_then(Option::as_ref) else {
                    continue;
                };
                if from_destination(answer, destination) {
                    outcome = SizeOutcome::Passed;
                    if size == MIN_SIZE || search.rtt.is_none() {
                        search.rtt = Some(Duration::from_nanos(answer.rtt_ns));
                        search.reply_hop_limit = answer.reply_hop_limit;
                    }
                    break;
                }
                if let Some(error) = too_big(answer) {
                    match &mut outcome {
                        SizeOutcome::TooBig(errors) => errors.push(error),
                        _ => outcome = SizeOutcome::TooBig(vec![error]),
                    }
                }
            }
            search.record(size, &outcome);
        }
        if search.passed.is_none() {
            // Not even 1280 bytes got an answer: the destination does not answer at all.
            break;
        }
        sizes = search.next_sizes(max_size);
        // A hint is used once.
        if sizes.len() == 1 && search.hint == sizes.first().copied() {
            search.hint = None;
        }
    }
    let path_mtu = search.passed.unwrap_or(0);
    // A black hole: some size above the path MTU vanished without a Packet Too Big, while
    // smaller packets were answered.
    let black_hole = path_mtu > 0 && search.silent.is_some_and(|s| s > path_mtu);
    let mut result = PmtuResult {
        path_mtu,
        black_hole,
        black_hole_hop: None,
        black_hole_from: None,
        too_big: search.too_big.clone(),
        packets_sent: 0,
        fault_path: None,
    };
    if let (true, Some(large)) = (black_hole, search.silent) {
        let scan_hops = search
            .reply_hop_limit
            .and_then(hops_from_reply_hop_limit)
            .map_or(DEFAULT_SCAN_HOPS, |hops| {
                hops.saturating_add(1).min(HOP_LIMIT)
            });
        let located = locate::locate(
            prober,
            Variant {
                ext: None,
                size: MIN_SIZE as usize,
            },
            Variant {
                ext: None,
                size: large as usize,
            },
            scan_hops,
            ATTEMPTS as u8,
            GAP,
            search.wait(),
            end,
        )
        .await?;
        result.black_hole_hop = located.hop;
        result.black_hole_from = located.last_responder.map(IpAddr::V6);
        for error in located.test_errors.iter().filter_map(too_big) {
            if result.too_big.len() < MAX_TOO_BIG && !result.too_big.contains(&error) {
                result.too_big.push(error);
            }
        }
    }
    result.packets_sent = prober.packets_sent();
    Ok(result)
}

fn too_big(answer: &Answer) -> Option<IcmpError> {
    match answer.kind {
        AnswerKind::IcmpError {
            icmp_type: PACKET_TOO_BIG,
            icmp_code,
            info,
            ..
        } => Some(IcmpError {
            icmp_type: PACKET_TOO_BIG,
            icmp_code,
            from: IpAddr::V6(answer.from),
            mtu: Some(info),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(mtu: u32) -> IcmpError {
        IcmpError {
            icmp_type: PACKET_TOO_BIG,
            icmp_code: 0,
            from: "2001:db8::1".parse().unwrap(),
            mtu: Some(mtu),
        }
    }

    #[test]
    fn packet_too_big_is_followed() {
        let mut search = Search::new();
        search.record(1280, &SizeOutcome::Passed);
        search.record(1500, &SizeOutcome::TooBig(vec![error(1400)]));
        assert_eq!(search.next_sizes(1500), vec![1400]);
        search.hint = None;
        search.record(1400, &SizeOutcome::Passed);
        assert!(search.next_sizes(1500).is_empty(), "1401 and up do not fit");
        assert_eq!(search.too_big, vec![error(1400)]);
        assert_eq!(search.silent, None);
        // A Packet Too Big naming the minimum settles it at once.
        let mut search = Search::new();
        search.record(1280, &SizeOutcome::Passed);
        search.record(1500, &SizeOutcome::TooBig(vec![error(1280)]));
        assert!(search.next_sizes(1500).is_empty());
        assert_eq!((search.passed, search.failed), (Some(1280), Some(1281)));
    }

    #[test]
    fn k_ary_search_converges_on_a_silent_limit() {
        // A path that passes up to 1391 bytes and silently drops larger packets.
        let mut search = Search::new();
        let mut rounds = 0;
        let mut sizes = vec![1280, 1500];
        while !sizes.is_empty() {
            rounds += 1;
            for size in sizes {
                let outcome = if size <= 1391 {
                    SizeOutcome::Passed
                } else {
                    SizeOutcome::Lost
                };
                search.record(size, &outcome);
            }
            sizes = search.next_sizes(1500);
            assert!(sizes.iter().all(|s| (1281..1500).contains(s)), "{sizes:?}");
        }
        assert_eq!(search.passed, Some(1391));
        assert_eq!(search.failed, Some(1392));
        assert!(rounds <= 5, "{rounds} rounds");
    }

    #[test]
    fn everything_passing_needs_one_round() {
        let mut search = Search::new();
        search.record(1280, &SizeOutcome::Passed);
        search.record(1500, &SizeOutcome::Passed);
        assert!(search.next_sizes(1500).is_empty());
    }
}
