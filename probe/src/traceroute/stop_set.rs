//! Doubletree-style stop sets (Donnet et al., SIGMETRICS 2005) shared by the traces of one
//! run (`measure traceroute T1 T2 …`), so that many targets cost fewer packets per path:
//!
//! - the local stop set: every router interface a trace of the run saw, at its hop limit,
//!   with the hops before it. A trace that starts in the middle of its path probes backwards
//!   only until it meets one of them at the same hop limit, and copies the hops below it
//!   (routes from one probe fan out as a tree: the path to a router does not depend on the
//!   destination behind it);
//! - the prefix table (the global part): per destination /64, the distance at which a trace
//!   of the run reached it. The first trace of a /64 leads and probes from the first hop;
//!   the others of that /64 wait for it, then start at its distance: normally the destination
//!   answers there and the router below is in the local stop set, two packets for the path.
//!   A leader that does not reach its /64 lets the others go on their own, at once.
//!
//! The table is plain data behind a mutex (no clock, no I/O); [`StopSet::enter`] is the only
//! async part, waiting for a leader with the trace's own deadline.

use sixmap_shared::measurement::{HopAnswer, TraceStop, TracerouteHop, TracerouteResult};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

use crate::rawnet::parse::TIME_EXCEEDED;

/// What the traces of one run learnt about the paths from this probe.
#[derive(Debug, Default)]
pub struct StopSet {
    known: Mutex<Known>,
    /// Woken when a leader ends, for the traces waiting on its prefix.
    changed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Known {
    /// (router interface, hop limit) → the hops before it, one reply slot each.
    interfaces: HashMap<(Ipv6Addr, u8), Arc<[TracerouteHop]>>,
    prefixes: HashMap<u64, Prefix>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    /// A trace of the run is finding the path to this /64 now.
    Tracing,
    /// A trace reached a destination in this /64 at this hop limit.
    Reached(u8),
    /// Its leader ended without reaching it: the others trace on their own, all at once (one
    /// leader after another would queue every trace of a silent /64 behind the last).
    Open,
}

/// How a trace of the run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First of its /64: probes from the first hop and tells the others where it ended.
    Lead,
    /// Starts at this hop limit, where its /64 was reached, and probes backwards from there.
    Follow(u8),
    /// Another trace leads its /64: wait for it.
    Wait,
    /// Probes from the first hop without leading (its /64's leader did not reach it, or the
    /// wait for the leader timed out).
    Alone,
}

/// The /64 of an address: destinations in one are normally on one link, behind one router.
fn prefix(destination: Ipv6Addr) -> u64 {
    // The shift leaves the upper 64 bits, which fit.
    (u128::from(destination) >> 64) as u64
}

impl StopSet {
    pub fn new() -> Self {
        Self::default()
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        // A panic while holding the lock leaves the maps consistent (each update is one
        // insert or remove), so a poisoned lock is still usable.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How a trace to `destination` starts, claiming its /64 when nobody traced it yet.
    pub fn claim(&self, destination: Ipv6Addr) -> Claim {
        match self.known().prefixes.entry(prefix(destination)) {
            Entry::Vacant(slot) => {
                slot.insert(Prefix::Tracing);
                Claim::Lead
            }
            Entry::Occupied(slot) => match *slot.get() {
                Prefix::Tracing => Claim::Wait,
                Prefix::Reached(distance) => Claim::Follow(distance),
                Prefix::Open => Claim::Alone,
            },
        }
    }

    /// [`StopSet::claim`], waiting while another trace leads the /64, until `deadline`.
    pub async fn enter(&self, destination: Ipv6Addr, deadline: tokio::time::Instant) -> Claim {
        loop {
            // Registered before looking, so a leader ending in between still wakes us.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.claim(destination) {
                Claim::Wait => {}
                claim => return claim,
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Claim::Alone;
            }
        }
    }

    /// The hops before `interface` when a trace of the run saw it at `hop_limit`.
    pub fn below(&self, interface: Ipv6Addr, hop_limit: u8) -> Option<Arc<[TracerouteHop]>> {
        self.known()
            .interfaces
            .get(&(interface, hop_limit))
            .cloned()
    }

    /// Records what a trace to `destination` found: every router interface with the hops
    /// before it, and the /64's distance if reached. A leader (`claim` [`Claim::Lead`]) that
    /// did not reach it opens its /64: the waiting traces go on their own.
    pub fn learn(&self, destination: Ipv6Addr, claim: Claim, result: &TracerouteResult) {
        let mut known = self.known();
        for (i, hop) in result.hops.iter().enumerate() {
            let Some(first) = hop.replies.iter().flatten().next() else {
                continue;
            };
            let IpAddr::V6(from) = first.from else {
                continue;
            };
            let router = from != destination
                && matches!(
                    first.answer,
                    HopAnswer::Icmp {
                        icmp_type: TIME_EXCEEDED,
                        ..
                    }
                );
            let before = &result.hops[..i];
            // Only a path without gaps from hop 1 can stand for the hops below: a trace cut
            // short while probing backwards, or whose first sends failed, would pass its
            // missing hops on to every trace copying from it.
            let whole = result.hops.first().is_some_and(|h| h.hop_limit == 1)
                && result.hops[..=i]
                    .windows(2)
                    .all(|w| w[1].hop_limit == w[0].hop_limit.saturating_add(1));
            if router && whole {
                known
                    .interfaces
                    .entry((from, hop.hop_limit))
                    .or_insert_with(|| before.iter().map(one_slot).collect());
            }
        }
        let key = prefix(destination);
        let reached = (result.stop == TraceStop::Reached)
            .then(|| result.hops.last().map(|h| h.hop_limit))
            .flatten();
        match (reached, claim) {
            (Some(distance), Claim::Lead) => {
                known.prefixes.insert(key, Prefix::Reached(distance));
            }
            (Some(distance), _) => {
                let entry = known.prefixes.entry(key).or_insert(Prefix::Open);
                if *entry == Prefix::Open {
                    *entry = Prefix::Reached(distance);
                }
            }
            (None, Claim::Lead) => {
                known.prefixes.insert(key, Prefix::Open);
            }
            (None, _) => {}
        }
        drop(known);
        if claim == Claim::Lead {
            self.changed.notify_waiters();
        }
    }

    /// A leader that ends without a result opens its /64 to the others.
    pub fn release(&self, destination: Ipv6Addr) {
        let key = prefix(destination);
        let mut known = self.known();
        if known.prefixes.get(&key) == Some(&Prefix::Tracing) {
            known.prefixes.insert(key, Prefix::Open);
        }
        drop(known);
        self.changed.notify_waiters();
    }
}

/// A hop as another trace reuses it: its first answer (or silence), one slot.
fn one_slot(hop: &TracerouteHop) -> TracerouteHop {
    TracerouteHop {
        hop_limit: hop.hop_limit,
        replies: vec![hop.replies.iter().flatten().next().cloned()],
    }
}

/// Frees a leader's /64 if its trace ends without [`StopSet::learn`] (an error, or the
/// measurement dropped at its deadline).
#[derive(Debug)]
pub struct Leading<'a> {
    set: &'a StopSet,
    destination: Ipv6Addr,
    claim: Claim,
    done: bool,
}

impl<'a> Leading<'a> {
    pub fn new(set: &'a StopSet, destination: Ipv6Addr, claim: Claim) -> Self {
        Self {
            set,
            destination,
            claim,
            done: false,
        }
    }

    pub fn learn(mut self, result: &TracerouteResult) {
        self.set.learn(self.destination, self.claim, result);
        self.done = true;
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if !self.done && self.claim == Claim::Lead {
            self.set.release(self.destination);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::measurement::{HopReply, TraceProtocol};

    fn router(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, n, 0, 0, 0, 0, 1)
    }

    fn reply(from: Ipv6Addr, icmp_type: u8) -> Option<HopReply> {
        Some(HopReply {
            from: IpAddr::V6(from),
            rtt_ns: 1000,
            answer: HopAnswer::Icmp {
                icmp_type,
                icmp_code: 0,
                mtu: None,
            },
        })
    }

    /// Routers 1..=n at hops 1..=n (hop 2 silent, asked twice), then `destination`.
    fn trace(n: u8, destination: Ipv6Addr) -> TracerouteResult {
        let mut hops: Vec<TracerouteHop> = (1..=n)
            .map(|h| TracerouteHop {
                hop_limit: h,
                replies: if h == 2 {
                    vec![None, None]
                } else {
                    vec![reply(router(u16::from(h)), TIME_EXCEEDED), None]
                },
            })
            .collect();
        hops.push(TracerouteHop {
            hop_limit: n + 1,
            replies: vec![reply(destination, 129)],
        });
        TracerouteResult {
            protocol: TraceProtocol::Icmp,
            flow_label: 0,
            hops,
            reached_destination: true,
            stop: TraceStop::Reached,
            packets_sent: 2 * u32::from(n) + 1,
            reused_hops: 0,
        }
    }

    #[test]
    fn the_first_of_a_prefix_leads_the_others_wait_then_follow_at_its_distance() {
        let set = StopSet::new();
        let a: Ipv6Addr = "2001:db8:9::10".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:9::11".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:8::10".parse().unwrap();
        assert_eq!(set.claim(a), Claim::Lead);
        assert_eq!(set.claim(b), Claim::Wait);
        assert_eq!(
            set.claim(other),
            Claim::Lead,
            "another /64 leads on its own"
        );
        set.learn(a, Claim::Lead, &trace(3, a));
        assert_eq!(set.claim(b), Claim::Follow(4));
        // A follower's result does not move the prefix's distance.
        set.learn(b, Claim::Follow(4), &trace(5, b));
        assert_eq!(set.claim(b), Claim::Follow(4));
    }

    #[test]
    fn routers_are_kept_with_the_hops_before_them_one_slot_each() {
        let set = StopSet::new();
        let a: Ipv6Addr = "2001:db8:9::10".parse().unwrap();
        let claim = set.claim(a);
        set.learn(a, claim, &trace(3, a));
        assert_eq!(set.below(router(1), 1).map(|h| h.len()), Some(0));
        let below = set.below(router(3), 3).unwrap();
        assert_eq!(below.len(), 2);
        assert_eq!(below[0].replies, vec![reply(router(1), TIME_EXCEEDED)]);
        assert_eq!(below[1].replies, vec![None], "a silent hop stays silent");
        // Only at the hop limit it was seen at; the destination and silent hops are not kept.
        assert_eq!(set.below(router(3), 4), None);
        assert_eq!(set.below(a, 4), None);
        assert_eq!(set.below(router(2), 2), None);
    }

    #[test]
    fn a_path_not_starting_at_hop_one_is_not_kept() {
        // A follower cut short while probing backwards: its hops 1 and 2 are missing, and
        // hop 4's router would be stored with one hop below it instead of three.
        let set = StopSet::new();
        let a: Ipv6Addr = "2001:db8:9::10".parse().unwrap();
        let mut cut = trace(5, a);
        cut.hops.drain(..2);
        set.learn(a, Claim::Follow(6), &cut);
        assert_eq!(set.below(router(4), 4), None);
        assert_eq!(set.below(router(3), 3), None);
    }

    #[test]
    fn a_leader_that_fails_lets_the_others_go_alone_until_one_reaches() {
        let set = StopSet::new();
        let a: Ipv6Addr = "2001:db8:9::10".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:9::11".parse().unwrap();
        {
            let _lead = Leading::new(&set, a, set.claim(a));
            assert_eq!(set.claim(b), Claim::Wait);
        }
        assert_eq!(set.claim(b), Claim::Alone, "dropped without a result");
        let other: Ipv6Addr = "2001:db8:8::10".parse().unwrap();
        let mut unreached = trace(3, other);
        unreached.hops.pop();
        unreached.stop = TraceStop::SilentHops;
        unreached.reached_destination = false;
        Leading::new(&set, other, set.claim(other)).learn(&unreached);
        assert_eq!(set.claim(other), Claim::Alone, "not reached: no waiting");
        // What it saw is kept all the same.
        assert!(set.below(router(3), 3).is_some());
        // A trace on its own that reaches the /64 makes the next ones follow.
        set.learn(b, Claim::Alone, &trace(3, b));
        assert_eq!(set.claim(a), Claim::Follow(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_trace_follows_once_its_leader_ends_or_goes_alone_at_its_deadline() {
        let set = Arc::new(StopSet::new());
        let a: Ipv6Addr = "2001:db8:9::10".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:9::11".parse().unwrap();
        assert_eq!(set.claim(a), Claim::Lead);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let waiting = tokio::spawn({
            let set = set.clone();
            async move { set.enter(b, deadline).await }
        });
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        set.learn(a, Claim::Lead, &trace(2, a));
        assert_eq!(waiting.await.unwrap(), Claim::Follow(3));
        let c: Ipv6Addr = "2001:db8:7::1".parse().unwrap();
        assert_eq!(set.claim(c), Claim::Lead);
        assert_eq!(set.enter(c, deadline).await, Claim::Alone);
    }
}
