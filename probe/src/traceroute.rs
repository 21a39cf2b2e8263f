//! Traceroute, Paris-style: every probe of a trace belongs to one flow (the spec's flow
//! label, fixed ports or echo identifier, constant transport checksum), so per-flow load
//! balancing shows one path instead of a mix.
//!
//! Probing is driven by the answers ([`Driver`]), not by a fixed schedule:
//! - the first probes leave together: hops `first_hop..first_hop + BURST` and one "marker"
//!   at `max_hops`, which normally reaches the destination; the hop limit left in its answer
//!   gives the return path's length, a guess of the forward one;
//! - once the guess is known, every hop up to it leaves at once; beyond it (or without a
//!   guess) a hop leaves as soon as the hop below it answered, else `GAP` after the last new
//!   hop, so a silent hop never stalls the trace;
//! - one probe per hop; a hop gets another (up to `probes_per_hop` in all) only when it
//!   stayed silent for a few round trips and at least `RETRY`, when a rate-limiting router
//!   has a fresh token again;
//! - no router is asked more than `probes_per_hop` times by one trace, its probes at least
//!   `RETRY` apart: within the burst of six errors Linux grants each peer. Under a shared
//!   pacer (many traces at once) no marker is sent: the cap sets the time there, and the
//!   marker would cost a packet per path.
//! - without a known end, no hop beyond `max_silent_hops` silent ones is opened.
//!
//! Several traces of one run (`measure traceroute T1 T2 …`) share a [`StopSet`]
//! (Doubletree): a trace whose /64 another one already reached starts at that distance
//! instead of the first hop, probes forwards from there as above, and backwards, one hop at
//! a time once the one above settled, until it meets a router the run saw at the same hop
//! limit; the hops below it are copied (`reused_hops`).
//!
//! The trace ends at the first hop where the destination answered (echo reply, port
//! unreachable, SYN-ACK or RST) or where a destination unreachable came back; hops beyond it
//! are dropped. Without either, `max_silent_hops` consecutive silent hops end it.

use crate::context::{Context, ipv4_unsupported};
use crate::rawnet::pacer::Pacer;
use crate::rawnet::parse::{
    DESTINATION_UNREACHABLE, PACKET_TOO_BIG, PORT_UNREACHABLE, TIME_EXCEEDED,
};
use crate::rawnet::prober::{SendError, settle_wait};
use crate::rawnet::{self, Answer, AnswerKind, Exchanged, Planned, Prober, measurement_error};
use sixmap_shared::measurement::{
    HopAnswer, HopReply, MeasurementError, TraceStop, TracerouteHop, TracerouteResult,
    TracerouteSpec,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub mod stop_set;

use stop_set::{Claim, Leading, StopSet};

/// Hops sent at once at the start, before any answer says how long the path is.
const BURST: u8 = 4;
/// Longest time between two new hops when answers do not open them sooner (silent hops,
/// or a destination that does not answer the marker).
const GAP: Duration = Duration::from_millis(5);
/// How long an answer may take after the last probe left, when the end of the path is not
/// known. More than the ~3 s a router spends on neighbour discovery before "address
/// unreachable".
const WAIT: Duration = Duration::from_secs(4);
/// The least wait before a silent hop is asked again. Linux routers refill their ICMPv6
/// error bucket for a peer by one token every 250 ms to 1 s (the lab measured about 1 s):
/// a retry sooner would likely be dropped again.
const RETRY: Duration = Duration::from_secs(1);
/// Longest sleep between two looks at the state while nothing arrives.
const TICK: Duration = Duration::from_millis(50);

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
    // The budget the engine charged (`safety::worst_case_packets`): the marker takes one of
    // its slots, which a path needing every attempt at every hop would miss at its end.
    let limit = ctx.packet_limit(spec.packet_budget());
    let mut prober = Prober::open(
        destination,
        ctx.source_for(destination),
        spec.protocol(),
        spec.port(),
        spec.flow_label(),
        limit,
    )
    .map_err(|e| measurement_error(&e))?;
    // Under a shared cap (many traces at once) time is set by the cap, not by round trips:
    // the marker would only cost a packet per path there.
    // A trace of a run with a stop set waits for the leader of its /64, if any, first.
    let (claim, leading) = match ctx.stop_set {
        Some(set) => {
            // Half the time at most: a leader slowed to its deadline (a pps cap, rate-limited
            // routers) must not leave its followers no time to trace on their own.
            let now = tokio::time::Instant::now();
            let wait_until = now + ctx.deadline.saturating_duration_since(now) / 2;
            let claim = set.enter(destination, wait_until).await;
            (claim, Some(Leading::new(set, destination, claim)))
        }
        None => (Claim::Alone, None),
    };
    let mut driver = Driver::new(spec, destination, ctx.pacer.is_none());
    if let (Claim::Follow(start), Some(set)) = (claim, ctx.stop_set) {
        driver = driver.follow(start, set.clone());
    }
    drive(&mut prober, &mut driver, ctx.pacer.cloned(), ctx.deadline)
        .await
        .map_err(|e| measurement_error(&e))?;
    let result = conclude(
        spec,
        &driver.plan,
        &driver.ex,
        destination,
        prober.packets_sent(),
        driver.marker_unanswered(),
        driver.reused.as_deref(),
    );
    result.validate().map_err(|e| {
        crate::context::failure(
            sixmap_shared::measurement::ErrorClass::Internal,
            format!("traceroute produced an invalid result: {e}"),
        )
    })?;
    if let Some(leading) = leading {
        leading.learn(&result);
    }
    Ok(result)
}

/// Sends what the driver asks for and hands it every answer, until it is done or the
/// deadline passes.
async fn drive(
    prober: &mut Prober,
    driver: &mut Driver,
    pacer: Option<Arc<Pacer>>,
    deadline: Instant,
) -> Result<(), rawnet::ProbeError> {
    let mut by_id: HashMap<u16, usize> = HashMap::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            driver.ex.complete = false;
            return Ok(());
        }
        let wake = match driver.step(now) {
            Step::Done => return Ok(()),
            Step::Send(hop_limit) => {
                if let Some(Err(slot)) = pacer.as_ref().map(|p| p.try_take(now)) {
                    // Not our turn under the shared cap.
                    slot
                } else {
                    match prober.send(hop_limit, None, 0) {
                        Ok(id) => {
                            by_id.insert(id, driver.plan.len());
                            driver.sent(hop_limit, Some(id), now);
                        }
                        Err(SendError::Budget) => driver.ex.budget_spent = true,
                        Err(SendError::TooBig) => driver.sent(hop_limit, None, now),
                        Err(SendError::Failed(e)) if prober.packets_sent() == 0 => return Err(e),
                        Err(SendError::Failed(e)) => {
                            tracing::debug!(error = %e, hop_limit, "probe lost");
                            driver.sent(hop_limit, None, now);
                        }
                    }
                    continue;
                }
            }
            Step::Wait(until) => until,
        };
        let wake = wake.min(deadline).min(now + TICK);
        if let Some(answer) = prober.next(wake).await?
            && let Some(&index) = by_id.get(&answer.id)
        {
            driver.answered(index, answer);
        }
    }
}

/// What the driver wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Send(u8),
    Wait(Instant),
    Done,
}

/// The state of one trace: what was sent when, what came back, and what to send next
/// (pure: the clock is handed in, so it is tested without a network).
struct Driver {
    /// Whether to send the marker at all.
    with_marker: bool,
    first: u8,
    max: u8,
    attempts: u8,
    max_silent: u8,
    destination: Ipv6Addr,
    /// Every probe in the order sent, with what became of it (indices shared).
    plan: Vec<Planned>,
    ex: Exchanged,
    sent_at: Vec<Instant>,
    /// Plan index of the marker probe at `max_hops`.
    marker: Option<usize>,
    /// The destination's distance, from the hop limit left in its answer to the marker.
    guess: Option<u8>,
    /// The lowest hop limit not probed yet.
    next_new: u8,
    last_new: Option<Instant>,
    last_send: Option<Instant>,
    /// The longest round trip seen: sets how long a silent hop is waited for.
    max_rtt: Duration,
    /// Where probing started: `first`, or a followed /64's distance.
    start: u8,
    /// The lowest hop limit probed so far (below `start` once probing backwards).
    low: u8,
    /// The run's stop set, when following: backward probing stops at a router in it.
    stop_set: Option<Arc<StopSet>>,
    /// The hops below `low`, copied from the stop set once backward probing met it.
    reused: Option<Arc<[TracerouteHop]>>,
}

impl Driver {
    fn new(spec: &TracerouteSpec, destination: Ipv6Addr, with_marker: bool) -> Self {
        Self {
            with_marker,
            first: spec.first_hop(),
            max: spec.max_hops(),
            attempts: spec.probes_per_hop().max(1),
            max_silent: spec.max_silent_hops().max(1),
            destination,
            plan: Vec::new(),
            ex: Exchanged {
                complete: true,
                ..Exchanged::default()
            },
            sent_at: Vec::new(),
            marker: None,
            guess: None,
            next_new: spec.first_hop(),
            last_new: None,
            last_send: None,
            max_rtt: Duration::ZERO,
            start: spec.first_hop(),
            low: spec.first_hop(),
            stop_set: None,
            reused: None,
        }
    }

    /// Starts at `start` (where the run reached this /64) instead of the first hop, without
    /// a marker (the distance is known), probing backwards until `stop_set` is met.
    fn follow(mut self, start: u8, stop_set: Arc<StopSet>) -> Self {
        let start = start.clamp(self.first, self.max);
        self.with_marker = false;
        self.start = start;
        self.low = start;
        self.next_new = start;
        // The followed distance is the guess: beyond it only once it answered or stayed
        // silent for the retry wait.
        self.guess = Some(start);
        self.stop_set = Some(stop_set);
        self
    }

    /// Records a probe at `hop_limit` (`id` `None`: it did not leave).
    fn sent(&mut self, hop_limit: u8, id: Option<u16>, now: Instant) {
        let index = self.plan.len();
        self.plan.push(Planned {
            hop_limit,
            ext: None,
            size: 0,
        });
        self.ex.ids.push(id);
        self.ex.answers.push(None);
        self.ex.too_big_locally.push(false);
        self.ex.handled = self.plan.len();
        self.sent_at.push(now);
        if self.marker.is_none() && hop_limit == self.max && hop_limit > self.next_new {
            self.marker = Some(index);
        } else if hop_limit < self.low {
            self.low = hop_limit;
        } else if hop_limit == self.next_new {
            self.next_new = hop_limit.saturating_add(1);
            self.last_new = Some(now);
            if hop_limit == u8::MAX {
                // Nothing is beyond the last hop limit.
                self.max = self.max.min(hop_limit);
            }
        }
        if id.is_some() {
            self.last_send = Some(now);
        }
    }

    fn answered(&mut self, index: usize, answer: Answer) {
        if self.ex.answers.get(index).is_none_or(Option::is_some) {
            return;
        }
        self.max_rtt = self.max_rtt.max(Duration::from_nanos(answer.rtt_ns));
        // Backward probing meets the stop set: the first answer at the lowest hop is a router
        // the run saw at this hop limit, so the hops below it are known.
        if let Some(set) = &self.stop_set
            && self.reused.is_none()
            && self
                .plan
                .get(index)
                .is_some_and(|p| p.hop_limit == self.low)
            && !self.hop(self.low).0
            && answer.from != self.destination
            && matches!(
                answer.kind,
                AnswerKind::IcmpError {
                    icmp_type: TIME_EXCEEDED,
                    ..
                }
            )
        {
            self.reused = set.below(answer.from, self.low);
        }
        if Some(index) == self.marker
            && ending(&answer, self.destination) == Some(TraceStop::Reached)
            && let Some(left) = answer.reply_hop_limit
        {
            self.guess = Some(distance(left).clamp(self.first, self.max));
        }
        if let Some(slot) = self.ex.answers.get_mut(index) {
            *slot = Some(answer);
        }
    }

    fn marker_unanswered(&self) -> Option<usize> {
        self.marker
            .filter(|&i| self.ex.answers.get(i).is_some_and(Option::is_none))
    }

    /// How long a probe is waited for before its hop gets another: a few round trips, and
    /// never less than `RETRY`, by when a rate-limiting router has a token again.
    fn retry_after(&self) -> Duration {
        settle_wait(self.max_rtt).max(RETRY)
    }

    /// For each hop limit from `first`: answered, probes sent, when the last one left.
    fn hop(&self, hop_limit: u8) -> (bool, u8, Option<Instant>) {
        let mut answered = false;
        let mut count = 0u8;
        let mut last = None;
        for (i, p) in self.plan.iter().enumerate() {
            if p.hop_limit != hop_limit || Some(i) == self.marker {
                continue;
            }
            count = count.saturating_add(1);
            last = self.sent_at.get(i).copied().max(last);
            answered |= self.ex.answers.get(i).is_some_and(Option::is_some);
        }
        // The marker's answer counts for its hop: no need to probe it again.
        if let Some(m) = self.marker
            && self.plan.get(m).is_some_and(|p| p.hop_limit == hop_limit)
            && self.ex.answers.get(m).is_some_and(Option::is_some)
        {
            answered = true;
        }
        (answered, count, last)
    }

    fn step(&self, now: Instant) -> Step {
        let end = end_hop(&self.plan, &self.ex, self.destination).map(|(hop, _)| hop);
        let limit = end.unwrap_or(self.max);
        let retry = self.retry_after();
        let mut wake: Option<Instant> = None;
        let mut soonest = |at: Instant| wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
        let can_send = !self.ex.budget_spent;
        // Settled: answered, or every attempt made and waited for.
        let mut all_settled = true;
        let mut highest_answered: Option<u8> = None;
        for hop_limit in self.low..self.next_new.min(limit.saturating_add(1)) {
            let (answered, count, last) = self.hop(hop_limit);
            if answered {
                highest_answered = Some(hop_limit);
                continue;
            }
            let due = last.map_or(now, |at| at + retry);
            if count < self.attempts && can_send {
                if now >= due {
                    return Step::Send(hop_limit);
                }
                soonest(due);
                all_settled = false;
            } else if now < due {
                soonest(due);
                all_settled = false;
            }
        }
        // Following: one hop lower once the lowest settled without meeting the stop set.
        if self.stop_set.is_some() && self.reused.is_none() && self.low > self.first && can_send {
            let (answered, count, last) = self.hop(self.low);
            let waited = count >= self.attempts && last.is_some_and(|at| now >= at + retry);
            if answered || waited {
                return Step::Send(self.low - 1);
            }
        }
        // Without a known end, no hop beyond `max_silent_hops` silent ones: they end the
        // trace unless one of them answers. With a known end, every hop up to it.
        let reach = highest_answered
            .unwrap_or(0)
            .max(self.start.saturating_sub(1))
            .saturating_add(self.max_silent);
        let more = can_send && self.next_new <= limit && (end.is_some() || self.next_new <= reach);
        if more {
            let hop_limit = self.next_new;
            let below_answered = hop_limit == self.start
                || highest_answered.is_some_and(|h| h.saturating_add(1) >= hop_limit);
            let opened = match self.guess {
                Some(guess) => hop_limit <= guess || below_answered,
                None => hop_limit < self.first.saturating_add(BURST) || below_answered,
            };
            // Pacing alone opens no hop while the marker may still tell the path's length:
            // on a long round trip it would send probes past the destination.
            let marker_heard = self.marker.is_none_or(|m| {
                self.ex.answers.get(m).is_some_and(Option::is_some)
                    || self.sent_at.get(m).is_some_and(|at| now >= *at + retry)
            });
            // Past the guessed length, neither: only once the guessed last hop stayed silent.
            let past_guess_waited = self.guess.is_none_or(|guess| {
                hop_limit <= guess || self.hop(guess).2.is_some_and(|at| now >= at + retry)
            });
            let paced =
                marker_heard && past_guess_waited && self.last_new.is_none_or(|at| now >= at + GAP);
            // The marker leaves right after the first hop, unless the burst reaches it.
            if self.with_marker
                && self.marker.is_none()
                && !self.plan.is_empty()
                && self.max > self.first.saturating_add(BURST)
            {
                return Step::Send(self.max);
            }
            if opened || paced {
                return Step::Send(hop_limit);
            }
            let marker_wait = self
                .marker
                .and_then(|m| self.sent_at.get(m))
                .map_or(now, |at| *at + retry);
            // Past the guess, pacing waits for the guessed hop's retry wait as well.
            let guess_wait = self
                .guess
                .filter(|&guess| hop_limit > guess)
                .and_then(|guess| self.hop(guess).2)
                .map_or(now, |at| at + retry);
            soonest(
                self.last_new
                    .map_or(now, |at| at + GAP)
                    .max(marker_wait)
                    .max(guess_wait),
            );
        }
        if !more && all_settled {
            if end.is_some() {
                return Step::Done;
            }
            let everything_answered =
                self.ex
                    .ids
                    .iter()
                    .zip(&self.ex.answers)
                    .enumerate()
                    .all(|(i, (id, answer))| {
                        Some(i) == self.marker || id.is_none() || answer.is_some()
                    });
            let waited = self.last_send.is_none_or(|at| now >= at + WAIT);
            if everything_answered || waited || !can_send {
                return Step::Done;
            }
            soonest(self.last_send.map_or(now, |at| at + WAIT));
        }
        Step::Wait(wake.unwrap_or(now + TICK))
    }
}

/// The hops to a host whose answer arrived with `left` as its hop limit: hosts start at 64,
/// 128 or 255, whichever is the smallest at least `left`.
fn distance(left: u8) -> u8 {
    let initial: u8 = match left {
        0..=64 => 64,
        65..=128 => 128,
        _ => 255,
    };
    initial - left + 1
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
    unanswered_marker: Option<usize>,
    reused: Option<&[TracerouteHop]>,
) -> TracerouteResult {
    // Copied hops come first: they are all below the lowest hop probed.
    let mut hops: Vec<TracerouteHop> = reused.map(<[TracerouteHop]>::to_vec).unwrap_or_default();
    let reused = hops.len();
    for hop_limit in spec.first_hop()..=spec.max_hops() {
        let replies: Vec<Option<HopReply>> = plan
            .iter()
            .enumerate()
            // An unanswered marker says nothing about its hop: it only looked for the end.
            .filter(|(i, p)| {
                p.hop_limit == hop_limit
                    && ex.ids.get(*i).is_some_and(Option::is_some)
                    && Some(*i) != unanswered_marker
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
    } else if let Some(last) =
        silent_run_end(&hops[reused.min(hops.len())..], spec.max_silent_hops())
    {
        hops.retain(|h| h.hop_limit <= last);
        TraceStop::SilentHops
    } else if ex.complete || ex.budget_spent {
        // The budget bounds the hops probed like max_hops does.
        TraceStop::MaxHops
    } else {
        TraceStop::Timeout
    };
    // Cuts above never reach the copied hops: the end is found among the probed hops, and the
    // silent run is looked for there only (a silent stretch of the leader's path is not ours).
    let reused_hops = u8::try_from(reused.min(hops.len())).unwrap_or(u8::MAX);
    TracerouteResult {
        protocol: spec.protocol(),
        flow_label: spec.flow_label(),
        hops,
        reached_destination: stop == TraceStop::Reached,
        stop,
        packets_sent,
        reused_hops,
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

    /// `probes_per_hop` rounds, each over every hop limit in order (a fixed plan, for
    /// testing what is concluded from it).
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
        let result = conclude(&spec, &plan, &ex, destination, 20, None, None);
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
        let result = conclude(&spec, &plan, &ex, destination, 10, None, None);
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
        let result = conclude(&spec, &plan, &ex, destination, 6, None, None);
        assert_eq!(
            (result.stop, result.hops.len()),
            (TraceStop::Unreachable, 2)
        );
        // Every hop answered by routers only: max hops; the same cut by the deadline: timeout.
        let mut ex = exchange(&plan, |hop| Some((router(u16::from(hop)), exceeded())));
        assert_eq!(
            conclude(&spec, &plan, &ex, destination, 6, None, None).stop,
            TraceStop::MaxHops
        );
        ex.complete = false;
        assert_eq!(
            conclude(&spec, &plan, &ex, destination, 6, None, None).stop,
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
        let result = conclude(&spec, &plan, &ex, destination, 6, None, None);
        assert_eq!((result.stop, result.hops.len()), (TraceStop::Reached, 2));
    }

    /// Runs a driver against a simulated path in virtual time: `network(hop_limit, n)` is
    /// the answer to the `n`-th probe (from 0) at that hop limit, with its round trip and
    /// hop limit left. Returns the driver, the probes sent and when it was done.
    #[allow(clippy::type_complexity)]
    fn simulate(
        spec: &TracerouteSpec,
        marker: bool,
        network: impl Fn(u8, usize) -> Option<(Ipv6Addr, AnswerKind, Duration, u8)>,
    ) -> (Driver, usize, Duration) {
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        drive_simulated(Driver::new(spec, destination, marker), network)
    }

    /// [`simulate`] with a driver made by the test.
    #[allow(clippy::type_complexity)]
    fn drive_simulated(
        mut d: Driver,
        network: impl Fn(u8, usize) -> Option<(Ipv6Addr, AnswerKind, Duration, u8)>,
    ) -> (Driver, usize, Duration) {
        let start = Instant::now();
        let mut now = start;
        let mut pending: Vec<(Instant, usize, Answer)> = Vec::new();
        let mut per_hop: HashMap<u8, usize> = HashMap::new();
        for _ in 0..10_000 {
            match d.step(now) {
                Step::Done => {
                    let sent = d.plan.len();
                    return (d, sent, now - start);
                }
                Step::Send(hop) => {
                    let index = d.plan.len();
                    let n = per_hop.entry(hop).or_default();
                    if let Some((from, kind, rtt, left)) = network(hop, *n) {
                        pending.push((
                            now + rtt,
                            index,
                            Answer {
                                id: index as u16,
                                probe: ProbeParams {
                                    id: index as u16,
                                    hop_limit: hop,
                                    ext: None,
                                    size: 0,
                                },
                                from,
                                rtt_ns: rtt.as_nanos() as u64,
                                kind,
                                reply_hop_limit: Some(left),
                                received: now + rtt,
                            },
                        ));
                    }
                    *n += 1;
                    d.sent(hop, Some(index as u16), now);
                    // Sending takes a little time.
                    now += Duration::from_micros(10);
                }
                Step::Wait(until) => {
                    assert!(until > now, "waits must move time forward");
                    let next = pending.iter().map(|p| p.0).min();
                    now = next.map_or(until, |n| n.min(until)).max(now);
                }
            }
            pending.retain(|(at, index, answer)| {
                if *at <= now {
                    d.answered(*index, *answer);
                    false
                } else {
                    true
                }
            });
        }
        panic!("the driver never finished");
    }

    /// `routers` routers, then the destination; every hop answers after `rtt_per_hop` per
    /// hop, except `silent` hops, which never do.
    fn path(
        routers: u8,
        rtt_per_hop: Duration,
        silent: &[u8],
    ) -> impl Fn(u8, usize) -> Option<(Ipv6Addr, AnswerKind, Duration, u8)> {
        let silent = silent.to_vec();
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        move |hop, _| {
            let rtt = rtt_per_hop * u32::from(hop.min(routers + 1));
            if hop > routers {
                Some((destination, AnswerKind::EchoReply, rtt, 64 - routers))
            } else if silent.contains(&hop) {
                None
            } else {
                Some((router(u16::from(hop)), exceeded(), rtt, 64 - hop + 1))
            }
        }
    }

    #[test]
    fn a_path_is_traced_with_one_probe_per_hop_in_about_two_round_trips() {
        let spec = spec(30, 3, 5);
        let rtt = Duration::from_micros(30);
        let (d, sent, took) = simulate(&spec, true, path(8, rtt, &[]));
        // Nine hops and the marker.
        assert_eq!(sent, 10);
        assert_eq!(d.guess, Some(9));
        assert!(took < Duration::from_millis(1), "{took:?}");
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let result = conclude(
            &spec,
            &d.plan,
            &d.ex,
            destination,
            sent as u32,
            d.marker_unanswered(),
            d.reused.as_deref(),
        );
        assert_eq!(result.stop, TraceStop::Reached);
        let mut expected: Vec<Option<IpAddr>> =
            (1..=8).map(|n| Some(IpAddr::V6(router(n)))).collect();
        expected.push(Some(destination.into()));
        assert_eq!(result.path(), expected);
        assert_eq!(result.validate(), Ok(()));
    }

    #[test]
    fn without_a_guess_hops_follow_the_answers_and_a_longer_path_is_followed() {
        let spec = spec(30, 3, 5);
        let rtt = Duration::from_micros(30);
        // The destination hides its distance: its answers claim one hop.
        let base = path(12, rtt, &[]);
        let (d, sent, _) = simulate(&spec, true, |hop, n| {
            base(hop, n)
                .map(|(from, kind, rtt, left)| (from, kind, rtt, if hop > 12 { 64 } else { left }))
        });
        assert_eq!(d.guess, Some(1));
        // 13 hops and the marker: none beyond the destination, no hop twice.
        assert_eq!(sent, 14);
    }

    #[test]
    fn a_silent_hop_is_asked_again_after_a_wait_and_counted_silent() {
        let spec = spec(30, 3, 5);
        let rtt = Duration::from_millis(10);
        let (d, sent, took) = simulate(&spec, true, path(6, rtt, &[3]));
        // Hop 3 three times, six others once, and the marker.
        assert_eq!(sent, 10);
        let at_three: Vec<Instant> = d
            .plan
            .iter()
            .zip(&d.sent_at)
            .filter(|(p, _)| p.hop_limit == 3)
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(at_three.len(), 3);
        // Never sooner than the retry wait (polite to a router that rate-limits).
        assert!(at_three[1] - at_three[0] >= RETRY);
        assert!(took < Duration::from_secs(4), "{took:?}");
    }

    #[test]
    fn a_silent_run_ends_a_trace_whose_destination_never_answers() {
        let spec = spec(30, 2, 3);
        let rtt = Duration::from_millis(1);
        let (d, sent, took) = simulate(&spec, true, |hop, _| {
            (hop <= 2).then(|| (router(u16::from(hop)), exceeded(), rtt, 64))
        });
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let result = conclude(
            &spec,
            &d.plan,
            &d.ex,
            destination,
            sent as u32,
            d.marker_unanswered(),
            d.reused.as_deref(),
        );
        assert_eq!(result.stop, TraceStop::SilentHops);
        assert_eq!(result.hops.len(), 5, "two routers, three silent hops");
        // Two hops, three silent ones twice each, the marker.
        assert_eq!(sent, 9, "the run stopped the trace");
        assert!(took >= WAIT, "the end is waited for: {took:?}");
    }

    #[test]
    fn without_the_marker_hops_follow_the_answers_and_none_passes_the_destination() {
        let spec = spec(30, 1, 5);
        let rtt = Duration::from_micros(30);
        let (d, sent, _) = simulate(&spec, false, path(5, rtt, &[]));
        assert_eq!(d.marker, None);
        // Exactly the six hops, as a hop-by-hop tracer would send.
        assert_eq!(sent, 6);
    }

    fn result_of(spec: &TracerouteSpec, d: &Driver, sent: usize) -> TracerouteResult {
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let result = conclude(
            spec,
            &d.plan,
            &d.ex,
            destination,
            sent as u32,
            d.marker_unanswered(),
            d.reused.as_deref(),
        );
        assert_eq!(result.validate(), Ok(()));
        result
    }

    /// The routers 1..=routers, then the destination, as a trace must report them.
    fn full_path(routers: u8) -> Vec<Option<IpAddr>> {
        let mut expected: Vec<Option<IpAddr>> = (1..=u16::from(routers))
            .map(|n| Some(IpAddr::V6(router(n))))
            .collect();
        expected.push(Some(DESTINATION.parse::<IpAddr>().unwrap()));
        expected
    }

    /// A stop set that learnt the 8-router path of a leader traced hop by hop.
    fn led_stop_set(spec: &TracerouteSpec) -> Arc<StopSet> {
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let set = Arc::new(StopSet::new());
        let claim = set.claim(destination);
        assert_eq!(claim, Claim::Lead);
        let (d, sent, _) = simulate(spec, false, path(8, Duration::from_micros(30), &[]));
        assert_eq!(sent, 9);
        set.learn(destination, claim, &result_of(spec, &d, sent));
        set
    }

    fn follower(spec: &TracerouteSpec, set: &Arc<StopSet>) -> Driver {
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let Claim::Follow(start) = set.claim(destination) else {
            panic!("the leader reached the /64");
        };
        Driver::new(spec, destination, true).follow(start, set.clone())
    }

    #[test]
    fn a_follower_probes_the_destination_and_the_router_below_and_copies_the_rest() {
        let spec = spec(30, 1, 5);
        let set = led_stop_set(&spec);
        let rtt = Duration::from_micros(30);
        let (d, sent, _) = drive_simulated(follower(&spec, &set), path(8, rtt, &[]));
        assert_eq!(
            d.plan.iter().map(|p| p.hop_limit).collect::<Vec<_>>(),
            [9, 8],
            "the destination, then the router below it, which the leader saw"
        );
        let result = result_of(&spec, &d, sent);
        assert_eq!(result.stop, TraceStop::Reached);
        assert_eq!(result.path(), full_path(8));
        assert_eq!(result.reused_hops, 7);
        assert_eq!(result.packets_sent, 2);
    }

    #[test]
    fn a_follower_on_a_longer_path_goes_forwards_too() {
        let spec = spec(30, 1, 5);
        let set = led_stop_set(&spec);
        let rtt = Duration::from_micros(30);
        // Two more routers than the leader's path: hop 9 is a router now.
        let (d, sent, _) = drive_simulated(follower(&spec, &set), path(10, rtt, &[]));
        let mut hops: Vec<u8> = d.plan.iter().map(|p| p.hop_limit).collect();
        hops.sort_unstable();
        assert_eq!(hops, [8, 9, 10, 11]);
        let result = result_of(&spec, &d, sent);
        assert_eq!(result.path(), full_path(10));
        assert_eq!(result.reused_hops, 7);
    }

    #[test]
    fn a_follower_past_a_shorter_path_comes_back_to_the_destination() {
        let spec = spec(30, 1, 5);
        let set = led_stop_set(&spec);
        let rtt = Duration::from_micros(30);
        let (d, sent, _) = drive_simulated(follower(&spec, &set), path(6, rtt, &[]));
        // The destination answers at 9, 8 and 7; router 6 is in the stop set.
        assert_eq!(
            d.plan.iter().map(|p| p.hop_limit).collect::<Vec<_>>(),
            [9, 8, 7, 6]
        );
        let result = result_of(&spec, &d, sent);
        assert_eq!(result.stop, TraceStop::Reached);
        assert_eq!(
            result.path(),
            full_path(6),
            "nothing beyond the destination"
        );
        assert_eq!(result.reused_hops, 5);
    }

    #[test]
    fn without_a_hit_a_follower_probes_back_to_the_first_hop_past_silent_ones() {
        let spec = spec(30, 2, 5);
        // Learnt towards another branch: none of these routers.
        let set = led_stop_set(&spec);
        let other = |n: u16| Ipv6Addr::new(0x2001, 0xdb8, 0x100 + n, 0, 0, 0, 0, 1);
        let destination: Ipv6Addr = DESTINATION.parse().unwrap();
        let rtt = Duration::from_millis(1);
        let (d, sent, took) = drive_simulated(follower(&spec, &set), move |hop, _| {
            let rtt = rtt * u32::from(hop);
            match hop {
                5.. => Some((destination, AnswerKind::EchoReply, rtt, 60)),
                2 => None,
                _ => Some((other(u16::from(hop)), exceeded(), rtt, 64)),
            }
        });
        // 9 down to 5 answered by the destination, 4 and 3 routers, 2 silent (asked twice,
        // the second after the retry wait), 1 a router.
        let mut hops: Vec<u8> = d.plan.iter().map(|p| p.hop_limit).collect();
        hops.sort_unstable();
        assert_eq!(hops, [1, 2, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(took >= RETRY, "{took:?}");
        let result = result_of(&spec, &d, sent);
        assert_eq!(result.reused_hops, 0);
        assert_eq!(
            result.path(),
            vec![
                Some(other(1).into()),
                None,
                Some(other(3).into()),
                Some(other(4).into()),
                Some(destination.into())
            ]
        );
    }
}
