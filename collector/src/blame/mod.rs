//! Where IPv6 breaks and whose fault it is (issue #23, "fault attribution").
//!
//! When a probe finds IPv6 failing where IPv4 works (dual-stack), a PMTU black hole or an
//! extension-header drop, it traces the plain IPv6 path towards the destination right after
//! (`FaultPath`: the hops that answered). This module turns that path into an attribution,
//! stored with the result ([`crate::store::StoredResult::blame`]) and rolled up per country and
//! per probe network by [`rollup`] (the country page's "where IPv6 breaks").
//!
//! The method (docs/methodology.md, "Where IPv6 breaks"):
//! - the **last answering hop** is the highest hop limit that answered the failing traffic:
//!   for a dual-stack failure the last hop of the trace (the traffic dies after it), for a
//!   black hole or a header drop the hop just below the one the measurement located (large
//!   or header-carrying packets stop there while plain ones go on). The **first silent hop**
//!   is the next hop limit; its address is known only when plain probes get through there
//!   (black holes, header drops).
//! - Hops with non-global addresses (unique-local, link-local, RFC 1918, shared address
//!   space) say nothing about networks: the last *public* answering hop decides. None at all
//!   (nothing answered, or only the home router) places the fault in the **access**.
//! - That hop's origin AS decides the **placement**: the probe's own AS → `access`, the
//!   destination's AS (or the destination itself answered) → `destination`, another AS while
//!   both ends are known → `transit`, otherwise (an AS the prefix data does not know, or an
//!   end whose AS is unknown) `unknown`.
//! - When the first silent hop is known and in another AS than the last answering one, the
//!   fault sits at the interconnection (`boundary`): either side may be dropping, and the
//!   placement names the side whose router answered last.
//!
//! Everything here is pure: no I/O, no clock; the prefix lookup is a parameter.

pub mod http;
pub mod rollup;

pub use sixmap_shared::blame::{Blame, BlameHop, Failure, Placement};
use sixmap_shared::measurement::{FaultPath, Outcome};
use sixmap_shared::policy::{NonGlobal, classify};
use sixmap_shared::prefixes::Enrichment;
use std::net::IpAddr;

/// What a failing measurement observed, ready to attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation<'a> {
    pub failure: Failure,
    pub path: &'a FaultPath,
    /// The hop limit where the failing traffic went silent, when the measurement located it
    /// (black hole, header drop); `None`: where the plain path itself goes silent.
    pub silent_at: Option<u8>,
    pub destination: Option<IpAddr>,
}

/// The failure a result shows and the path it carries, if it has both and they match.
///
/// The wire decoder refuses a path that matches no failure or is no path; this checks the
/// same again at ingest (defence in depth: the decoder's checks and these may drift apart),
/// so an attribution is never made from a path that would blame a network falsely. Stored
/// results are read back without a path the rules refuse today (`decode::stored_result`).
pub fn observe(outcome: &Outcome, destination: Option<IpAddr>) -> Option<Observation<'_>> {
    let usable = |path: &FaultPath| path.validate("fault_path").is_ok();
    match outcome {
        Outcome::DualStack(d) => {
            let path = d.v6_fault_path.as_ref().filter(|path| usable(path))?;
            // IPv6 failed where IPv4 worked, towards an address the probe traced.
            if d.v6.outcome.reached_destination() || !d.v4.outcome.reached_destination() {
                return None;
            }
            Some(Observation {
                failure: Failure::V6Broken,
                path,
                silent_at: None,
                destination: Some(d.v6.destination?),
            })
        }
        Outcome::Pmtu(p) if p.black_hole => {
            p.fault_path
                .as_ref()
                .filter(|path| usable(path))
                .map(|path| Observation {
                    failure: Failure::PmtuBlackHole,
                    path,
                    silent_at: p.black_hole_hop,
                    destination,
                })
        }
        Outcome::ExtHeaders(e) => {
            let path = e.fault_path.as_ref().filter(|path| usable(path))?;
            let dropped: Vec<_> = e.outcomes.iter().filter(|o| !o.survived).collect();
            if dropped.is_empty() {
                return None;
            }
            // The nearest located drop: where the first header-carrying packets die.
            let silent_at = dropped.iter().filter_map(|o| o.dropped_at_hop).min();
            Some(Observation {
                failure: Failure::ExtHeaderDrop,
                path,
                silent_at,
                destination,
            })
        }
        _ => None,
    }
}

/// Addresses that name no network: a home router's, a carrier's private addressing.
fn is_private(address: IpAddr) -> bool {
    matches!(
        classify(address),
        Some(
            NonGlobal::UniqueLocal
                | NonGlobal::LinkLocal
                | NonGlobal::SiteLocal
                | NonGlobal::Private
                | NonGlobal::SharedAddressSpace
                | NonGlobal::Loopback
                | NonGlobal::Unspecified
        )
    )
}

/// Hop limits a trace must have probed past its last answering hop, all silent, before the
/// silence counts as where the path dies (the probe's fault path stops after three).
pub const MIN_SILENT_PROBED: u16 = 2;

/// Attributes one observation. `probe_asn` and `destination_asn` are the ends' origin ASes
/// (from the result's enrichment); `asn_of` looks up a hop's origin AS.
pub fn attribute(
    observation: &Observation<'_>,
    probe_asn: Option<u32>,
    destination_asn: Option<u32>,
    asn_of: &dyn Fn(IpAddr) -> Option<u32>,
) -> Blame {
    let path = observation.path;
    if observation.failure != Failure::V6Broken && observation.silent_at.is_none() {
        // The measurement did not locate where large or header-carrying packets die: the
        // plain path (which works) cannot say it either.
        return Blame {
            failure: observation.failure,
            placement: Placement::Unknown,
            responsible_asn: None,
            last_answering: None,
            first_silent: None,
            boundary: false,
            probe_asn,
            probe_country: None,
            destination_asn,
        };
    }
    // Defensive order (the wire decoder validated it): by hop limit, without hops past the
    // one where the destination answered (an answer from beyond the end is a stray).
    let mut hops = path.hops.clone();
    hops.sort_by_key(|h| h.hop_limit);
    hops.dedup_by_key(|h| h.hop_limit);
    let reached_at = hops
        .iter()
        .find(|h| Some(h.address) == observation.destination)
        .map(|h| h.hop_limit);
    if let Some(end) = reached_at {
        hops.retain(|h| h.hop_limit <= end);
    }
    let hop = |hop_limit: u8, address: Option<IpAddr>| BlameHop {
        hop_limit,
        address,
        asn: address.and_then(asn_of),
    };
    // The hops that answered the failing traffic, and the first that did not.
    let (answering, first_silent): (Vec<_>, Option<BlameHop>) = match observation.silent_at {
        Some(silent) => (
            hops.iter().filter(|h| h.hop_limit < silent).collect(),
            Some(hop(
                silent,
                hops.iter()
                    .find(|h| h.hop_limit == silent)
                    .map(|h| h.address),
            )),
        ),
        None => {
            let answering: Vec<_> = hops.iter().collect();
            let destination_answered = reached_at.is_some() || path.reached_destination;
            let next = answering
                .last()
                .map_or(1, |h| h.hop_limit.saturating_add(1));
            let silent = (!destination_answered).then(|| hop(next, None));
            (answering, silent)
        }
    };
    let last_answering = answering.last().map(|h| hop(h.hop_limit, Some(h.address)));
    let destination_answered =
        observation.silent_at.is_none() && (reached_at.is_some() || path.reached_destination);
    // The last public hop decides; private hops name no network.
    let anchor = answering
        .iter()
        .rev()
        .find(|h| !is_private(h.address))
        .map(|h| hop(h.hop_limit, Some(h.address)));
    // A trace that stopped (budget, deadline, hop cap) before probing past its last answer
    // twice did not see the path go silent: where it "ended" says nothing of the fault.
    let last_hop_limit = answering.last().map_or(0, |h| h.hop_limit);
    let cut_short = observation.silent_at.is_none()
        && !destination_answered
        && u16::from(path.probed_up_to) < u16::from(last_hop_limit) + MIN_SILENT_PROBED;
    let (placement, responsible_asn) = if cut_short {
        (Placement::Unknown, None)
    } else if destination_answered
        || anchor.is_some_and(|a| a.address.is_some() && a.address == observation.destination)
    {
        (Placement::Destination, destination_asn)
    } else {
        match anchor {
            // Nothing public answered: the probe's own network (home router, access).
            None => (Placement::Access, probe_asn),
            Some(BlameHop { asn: None, .. }) => (Placement::Unknown, None),
            Some(BlameHop { asn: Some(asn), .. }) if Some(asn) == probe_asn => {
                (Placement::Access, probe_asn)
            }
            Some(BlameHop { asn: Some(asn), .. }) if Some(asn) == destination_asn => {
                (Placement::Destination, destination_asn)
            }
            Some(BlameHop { asn: Some(asn), .. })
                if probe_asn.is_some() && destination_asn.is_some() =>
            {
                (Placement::Transit, Some(asn))
            }
            Some(BlameHop { asn, .. }) => (Placement::Unknown, asn),
        }
    };
    let boundary = matches!(
        (last_answering.and_then(|h| h.asn), first_silent.and_then(|h| h.asn)),
        (Some(a), Some(b)) if a != b
    );
    Blame {
        failure: observation.failure,
        placement,
        responsible_asn,
        last_answering,
        first_silent,
        boundary,
        probe_asn,
        probe_country: None,
        destination_asn,
    }
}

/// The attribution of a result about to be stored, if it shows a failure with a path.
/// `probe_origin` and `target_origin` are the result's enrichment; where it has none (a
/// dual-stack result's addresses are in its legs) the legs' addresses are looked up.
pub fn of_result(
    outcome: &Outcome,
    destination: Option<IpAddr>,
    probe_origin: Option<&Enrichment>,
    target_origin: Option<&Enrichment>,
    lookup: &dyn Fn(IpAddr) -> Option<Enrichment>,
) -> Option<Blame> {
    let observation = observe(outcome, destination)?;
    let probe = probe_origin.cloned().or_else(|| match outcome {
        Outcome::DualStack(d) => d.v6.source.or(d.v4.source).and_then(lookup),
        _ => None,
    });
    let target = target_origin
        .cloned()
        .or_else(|| observation.destination.and_then(lookup));
    let mut blame = attribute(
        &observation,
        probe.as_ref().and_then(|o| o.asn),
        target.as_ref().and_then(|o| o.asn),
        &|a| lookup(a).and_then(|e| e.asn),
    );
    blame.probe_country = probe.and_then(|o| o.country);
    Some(blame)
}

#[cfg(test)]
mod tests;
