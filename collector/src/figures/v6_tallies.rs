//! The IPv6 tallies of a probe's day, shared by the figures kept at ingest and the daily scans
//! (`crate::daily`), so both count a result the same way.

use super::{Count, EXT_HEADERS};
use crate::store::StoredResult;
use sixmap_shared::policy::classify;
use sixmap_shared::prefixes::{CountryCode, PrefixData};
use sixmap_shared::{Family, Outcome};

/// Where a probe's day keeps the tallies of its global IPv6 results.
pub(crate) struct V6Tallies<'a> {
    pub lost: &'a mut Count,
    pub black_holes: &'a mut Count,
    pub ext_drops: &'a mut [Count; 3],
    pub domestic: &'a mut Count,
}

/// Adds a result to a probe's day tallies over IPv6 (see `crate::daily`): ping loss, PMTU black
/// holes, extension-header drops and domestic traceroute paths. The one rule for both the
/// daily scans (`crate::daily`) and the figures kept at ingest; the caller has checked the
/// destination is global.
pub(crate) fn observe_v6(stored: &StoredResult, prefixes: &PrefixData, tallies: V6Tallies<'_>) {
    if stored.result.family_used != Some(Family::V6) {
        return;
    }
    match &stored.result.outcome {
        Outcome::Pmtu(pmtu) => tallies.black_holes.add(pmtu.black_hole),
        Outcome::ExtHeaders(ext) => {
            for outcome in &ext.outcomes {
                if let Some(i) = EXT_HEADERS.iter().position(|h| *h == outcome.header.name()) {
                    tallies.ext_drops[i].add(!outcome.survived);
                }
            }
        }
        Outcome::Traceroute(trace) => {
            let home = stored
                .probe_origin
                .as_ref()
                .and_then(|o| o.country)
                .filter(|home| {
                    stored.target_origin.as_ref().and_then(|t| t.country) == Some(*home)
                });
            if let Some(home) = home {
                let countries: Vec<CountryCode> = trace
                    .hops
                    .iter()
                    .flat_map(|hop| hop.responders())
                    .filter(|hop| classify(*hop).is_none())
                    .filter_map(|hop| prefixes.lookup(hop).country)
                    .collect();
                if !countries.is_empty() {
                    tallies.domestic.add(countries.iter().all(|c| *c == home));
                }
            }
        }
        Outcome::Ping(ping) => tallies.lost.add_many(
            u64::from(ping.sent - ping.received.min(ping.sent)),
            u64::from(ping.sent),
        ),
        _ => {}
    }
}
