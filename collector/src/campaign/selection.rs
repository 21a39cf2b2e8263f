//! Which probes a new campaign gets: the spec's criteria, stratification by operator, and
//! the error naming the criterion that leaves none.

use crate::store::ProbeRecord;
use sixmap_shared::UnixMicros;
use std::collections::BTreeMap;
use std::time::Duration;

use super::CampaignProbe;
use super::spec::{CampaignSpec, SpecFieldError};

/// A probe counts as connected for selection if seen this recently.
const RECENT: Duration = Duration::from_secs(24 * 3600);

/// A stable 64-bit FNV-1a hash: stratified picks must not change across restarts or Rust
/// versions (std's hasher is randomly keyed).
pub(super) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(super) fn probe_matches(spec: &CampaignSpec, probe: &ProbeRecord) -> bool {
    let origin = probe.origin.as_ref();
    let country = origin.and_then(|o| o.country).map(|c| c.to_string());
    let asn = origin.and_then(|o| o.asn);
    let sel = &spec.selection;
    (sel.countries.is_empty() || country.is_some_and(|c| sel.countries.contains(&c)))
        && (sel.asns.is_empty() || asn.is_some_and(|a| sel.asns.contains(&a)))
        && sel
            .tags
            .iter()
            .all(|t| probe.tags.iter().any(|pt| pt.name.as_str() == t))
        && (sel.per_operator.is_none() || asn.is_some())
}

pub(super) fn campaign_probe(probe: &ProbeRecord, now: UnixMicros) -> CampaignProbe {
    let origin = probe.origin.as_ref();
    CampaignProbe {
        probe: probe.id.clone(),
        asn: origin.and_then(|o| o.asn),
        as_name: origin.and_then(|o| o.as_name.clone()),
        country: origin.and_then(|o| o.country).map(|c| c.to_string()),
        assigned_at: now,
        nat64_prefix: probe.self_test.as_ref().and_then(|t| t.nat64_prefix),
    }
}

/// The first selection criterion that leaves no probe, with the reason.
pub(super) fn empty_selection(spec: &CampaignSpec, probes: &[ProbeRecord]) -> SpecFieldError {
    let sel = &spec.selection;
    let mut left: Vec<&ProbeRecord> = probes.iter().collect();
    let err = |field: &str, reason: String| SpecFieldError {
        field: field.to_owned(),
        reason,
    };
    if left.is_empty() {
        return err(
            "selection",
            "no probe is enrolled with this collector".into(),
        );
    }
    if !sel.countries.is_empty() {
        left.retain(|p| {
            p.origin
                .as_ref()
                .and_then(|o| o.country)
                .is_some_and(|c| sel.countries.contains(&c.to_string()))
        });
        if left.is_empty() {
            return err(
                "selection.countries",
                format!("no known probe is in {}", sel.countries.join(", ")),
            );
        }
    }
    if !sel.asns.is_empty() {
        left.retain(|p| {
            p.origin
                .as_ref()
                .and_then(|o| o.asn)
                .is_some_and(|a| sel.asns.contains(&a))
        });
        if left.is_empty() {
            let asns: Vec<_> = sel.asns.iter().map(|a| format!("AS{a}")).collect();
            return err(
                "selection.asns",
                format!(
                    "no known probe (of those the earlier criteria kept) is in {}",
                    asns.join(", ")
                ),
            );
        }
    }
    if !sel.tags.is_empty() {
        left.retain(|p| {
            sel.tags
                .iter()
                .all(|t| p.tags.iter().any(|pt| pt.name.as_str() == t))
        });
        if left.is_empty() {
            return err(
                "selection.tags",
                format!(
                    "no known probe (of those the earlier criteria kept) has every tag of {}",
                    sel.tags.join(", ")
                ),
            );
        }
    }
    err(
        "selection.per_operator",
        "stratifying by operator needs probes with an origin AS, and none has one (import \
         prefix data with `sixmap-collector import-prefixes`)"
            .into(),
    )
}

/// Picks the probes of a new campaign: every matching probe, or with `per_operator = k` the
/// first k of each origin AS ordered by (seen in the last 24 h first, stable hash).
pub(super) fn select(
    spec: &CampaignSpec,
    probes: &[ProbeRecord],
    now: UnixMicros,
) -> Vec<ProbeRecord> {
    let matching: Vec<&ProbeRecord> = probes.iter().filter(|p| probe_matches(spec, p)).collect();
    let Some(k) = spec.selection.per_operator else {
        return matching.into_iter().cloned().collect();
    };
    let recent = |p: &ProbeRecord| {
        p.last_seen
            .is_some_and(|s| now.saturating_since(s) <= RECENT)
    };
    let mut by_asn: BTreeMap<u32, Vec<&ProbeRecord>> = BTreeMap::new();
    for p in matching {
        if let Some(asn) = p.origin.as_ref().and_then(|o| o.asn) {
            by_asn.entry(asn).or_default().push(p);
        }
    }
    let mut chosen = Vec::new();
    for (_, mut group) in by_asn {
        group.sort_by_key(|p| (!recent(p), stable_hash(&[p.id.as_str().as_bytes()])));
        chosen.extend(group.into_iter().take(k as usize).cloned());
    }
    chosen
}
