//! National figures: per country and per operator (origin ASN), how much IPv6 works and how
//! well, from the probes seen in the last day. The math (intervals, weighting, medians) is in
//! [`crate::rollup`]; this module gathers the inputs from the store.
//!
//! Computed on request from probe records (last seen, tags, origin) and the RTT figures kept at
//! ingest (`crate::figures`: each probe's hourly RTT histograms over the last 25 hours): the
//! cost grows with active probes, not with stored results. A store that keeps no figures
//! (ClickHouse) scans the last day's results instead. The stored per-day figures behind the
//! time series are in [`crate::daily`].

use crate::figures::{HOUR_US, Source, read};
use crate::rollup::{self, Balanced, MinSample, OperatorShare, Population, RankRange};
use crate::store::{ProbeRecord, Store, StoreError};
use crate::tags::Tag;
use serde::Serialize;
use sixmap_shared::policy::classify;
use sixmap_shared::prefixes::CountryCode;
use sixmap_shared::{Family, Outcome, ProbeId, UnixMicros};
use std::collections::BTreeMap;
use std::time::Duration;

/// Probes seen within this window count as active; their results within it are used.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How the figures are made, served with them so that a published number carries its method.
pub const METHOD: &str = "Active probes: seen in the last 24 h, with an origin country and AS from the imported prefix data. \
IPv6 works: the probe holds the v6-works tag (a successful measurement to a global IPv6 destination within 24 h). \
National share: operator-balanced (each AS with probes counts equally; weight 1/probes-of-its-AS), 95% Wilson interval on an effective sample size: Kish's, \
lowered by the between-operator variance so that operators, not probes, are the independent units (collector/src/rollup.rs); \
the pooled share of all probes is given beside it. Operators are ranked by interval: a rank range from 1 + the operators entirely above to the count minus those entirely below. \
A country or operator with fewer probes than the published minimum (min_probes) is insufficient data: its n is shown, no share, RTT or rank. \
Operators under the minimum count in the national figures as one operator when together they reach it, else not at all (so no figure of one can be worked out by subtraction). \
Revoked probes count nowhere. RTT: median over probes of each probe's median ping RTT (min RTT of each result) \
to global destinations in the last 24 h; penalty = IPv6 median - IPv4 median.";

/// The method of figures served from the kept figures: the same, with the two differences.
pub const METHOD_FIGURES: &str = "Active probes: seen in the last 24 h, with an origin country and AS from the imported prefix data. \
IPv6 works: the probe holds the v6-works tag (a successful measurement to a global IPv6 destination within 24 h). \
National share: operator-balanced (each AS with probes counts equally; weight 1/probes-of-its-AS), 95% Wilson interval on an effective sample size: Kish's, \
lowered by the between-operator variance so that operators, not probes, are the independent units (collector/src/rollup.rs); \
the pooled share of all probes is given beside it. Operators are ranked by interval: a rank range from 1 + the operators entirely above to the count minus those entirely below. \
A country or operator with fewer probes than the published minimum (min_probes) is insufficient data: its n is shown, no share, RTT or rank. \
Operators under the minimum count in the national figures as one operator when together they reach it, else not at all (so no figure of one can be worked out by subtraction). \
Revoked probes count nowhere. RTT: median over probes of each probe's median ping RTT (min RTT of each result) \
to global destinations in the UTC hours overlapping the last 24 h (24 to 25 h), read from per-probe hourly histograms kept as results arrive \
(each median within 1% of the exact one; results count about a second after they are stored); penalty = IPv6 median - IPv4 median.";

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Shares {
    /// Operator-balanced estimate.
    pub balanced: rollup::Proportion,
    /// All probes pooled.
    pub pooled: rollup::Proportion,
}

#[derive(Debug, Clone, Serialize)]
pub struct CountrySummary {
    pub country: CountryCode,
    pub probes: usize,
    pub operators: usize,
    /// Fewer probes than the minimum sample: the figures below are null.
    pub insufficient_data: bool,
    /// Null when `insufficient_data`. This and the medians are over the probes the national
    /// figures count: operators under the minimum pooled, or left out when together they do
    /// not reach it (`rollup::national_share`).
    pub v6_works: Option<Shares>,
    pub median_rtt_v6_ms: Option<f64>,
    pub median_rtt_v4_ms: Option<f64>,
    /// IPv6 median minus IPv4 median; positive means IPv6 is slower.
    pub v6_penalty_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Operator {
    pub asn: u32,
    pub as_name: Option<String>,
    pub probes: usize,
    /// Fewer probes than the minimum sample: no share, RTT or rank.
    pub insufficient_data: bool,
    /// Rank range by interval among the operators with sufficient data (`rollup::rank_ranges`).
    pub rank: Option<RankRange>,
    pub v6_works: Option<rollup::Proportion>,
    pub median_rtt_v6_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MapProbe {
    // No probe id: with the location, an id joins the public dumps (each result's probe and
    // /48) and the opt-in directory, which promises never to show a location.
    pub asn: u32,
    /// Degrees, rounded to a tenth, when the volunteer gave a location.
    pub location: Option<[f64; 2]>,
    /// `None` when its operator's figure is insufficient data (`[publication] min_probes`):
    /// one probe's colour would publish what the rule keeps back.
    pub v6_works: Option<bool>,
}

/// One country's page. The counts are `probe_count` and `operator_count` here, because
/// `probes` and `operators` are the lists.
#[derive(Debug, Clone, Serialize)]
pub struct CountryDetail {
    pub country: CountryCode,
    pub generated_at: UnixMicros,
    pub window_hours: u64,
    pub method: &'static str,
    /// [`METHOD_ID`].
    pub method_id: &'static str,
    pub source: Source,
    pub probe_count: usize,
    pub operator_count: usize,
    /// The minimum sample applied (collector config `[publication] min_probes`).
    pub min_probes: usize,
    pub insufficient_data: bool,
    /// Null when `insufficient_data`.
    pub v6_works: Option<Shares>,
    pub median_rtt_v6_ms: Option<f64>,
    pub median_rtt_v4_ms: Option<f64>,
    pub v6_penalty_ms: Option<f64>,
    /// Ranked by share, then probes ("podium"); operators with insufficient data last, by
    /// probes, then AS number (never by their hidden shares).
    pub operators: Vec<Operator>,
    pub probes: Vec<MapProbe>,
}

/// The id of the method the live map's figures are made by (the operator-balanced share, its
/// interval on Kish's n capped by the between-operator variance; operators under the minimum
/// pooled or left out of the national figures: `rollup::national_share`; `daily::METHOD_ID`
/// for the stored days). docs/methodology.md lists the ids.
pub const METHOD_ID: &str = "sixmap-map/3";

#[derive(Debug, Clone, Serialize)]
pub struct Countries {
    pub generated_at: UnixMicros,
    pub window_hours: u64,
    pub method: &'static str,
    /// [`METHOD_ID`].
    pub method_id: &'static str,
    pub source: Source,
    /// The minimum sample applied (collector config `[publication] min_probes`).
    pub min_probes: usize,
    pub countries: Vec<CountrySummary>,
}

/// One active, enriched probe and its latency samples.
struct Observed {
    record: ProbeRecord,
    country: CountryCode,
    asn: u32,
    as_name: Option<String>,
    works: bool,
    /// The probe's median RTT over the window, per family.
    rtt_v6: Option<f64>,
    rtt_v4: Option<f64>,
}

fn method(source: Source) -> &'static str {
    match source {
        Source::Figures => METHOD_FIGURES,
        Source::Scan => METHOD,
    }
}

fn observe(
    store: &dyn Store,
    now: UnixMicros,
    source: Source,
    left_out: &mut LeftOut,
) -> Result<Vec<Observed>, StoreError> {
    let since = UnixMicros(now.0.saturating_sub(WINDOW.as_micros() as i64));
    let mut observed: BTreeMap<ProbeId, Observed> = BTreeMap::new();
    for record in store.probes()? {
        // A revoked probe is refused from then on: no longer active, and not one that went
        // silent either (the drill-down's "not seen in 24 h" would count every probe ever
        // retired).
        if record.revoked_at.is_some() {
            continue;
        }
        let active = record.last_seen.is_some_and(|t| t >= since);
        // Probes placed in a country but not counted there: tallied by reason for the
        // drill-down (counts only, never which probes).
        let Some(origin) = record.origin.clone() else {
            continue;
        };
        let Some(country) = origin.country else {
            continue;
        };
        if !active {
            *left_out.inactive.entry((country, origin.asn)).or_default() += 1;
            continue;
        }
        let Some(asn) = origin.asn else {
            *left_out.no_asn.entry(country).or_default() += 1;
            continue;
        };
        let works = record
            .tags
            .iter()
            .any(|t| t.name.as_str() == Tag::V6Works.name());
        observed.insert(
            record.id.clone(),
            Observed {
                record,
                country,
                asn,
                as_name: origin.as_name,
                works,
                rtt_v6: None,
                rtt_v4: None,
            },
        );
    }
    if source == Source::Figures {
        // Whole hours from the one holding `since` to the one holding `now`.
        let hours = read::probe_hours(
            store,
            since.0.div_euclid(HOUR_US),
            now.0.div_euclid(HOUR_US) + 1,
        )?;
        for (id, hour) in hours {
            if let Some(probe) = observed.get_mut(&id) {
                probe.rtt_v6 = hour.rtt_v6.median_ms();
                probe.rtt_v4 = hour.rtt_v4.median_ms();
            }
        }
        return Ok(observed.into_values().collect());
    }
    let mut samples: BTreeMap<ProbeId, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    // One pass over the window's results (time index), not a scan per probe: only the last
    // day is read, however long the probes' histories are.
    let mut gone = false;
    store.scan_results_between(since, UnixMicros(now.0.saturating_add(1)), &mut |stored| {
        // The request behind this read went away: stop (`limits::readers`).
        if crate::limits::readers::cancelled() {
            gone = true;
            return false;
        }
        let r = &stored.result;
        if !observed.contains_key(&r.key.probe_id) {
            return true;
        }
        let global = r.destination.is_some_and(|d| classify(d).is_none());
        if !global {
            return true;
        }
        if let Outcome::Ping(ping) = &r.outcome
            && let Some(rtt) = ping.min_rtt()
        {
            let ms = rtt.as_secs_f64() * 1000.0;
            let probe = samples.entry(r.key.probe_id.clone()).or_default();
            match r.family_used {
                Some(Family::V6) => probe.0.push(ms),
                Some(Family::V4) => probe.1.push(ms),
                None => {}
            }
        }
        true
    })?;
    if gone {
        return Err(StoreError::Cancelled);
    }
    for (id, (mut v6, mut v4)) in samples {
        if let Some(probe) = observed.get_mut(&id) {
            probe.rtt_v6 = rollup::median(&mut v6);
            probe.rtt_v4 = rollup::median(&mut v4);
        }
    }
    Ok(observed.into_values().collect())
}

/// A country's national figures under `rule`: over the probes its [`Population`] counts.
struct National {
    balanced: Option<Balanced>,
    population: Population,
}

fn national(probes: &[&Observed], rule: MinSample) -> National {
    let observations: Vec<(u32, bool)> = probes.iter().map(|p| (p.asn, p.works)).collect();
    let (balanced, population) = rollup::national_share(&observations, rule);
    National {
        balanced,
        population,
    }
}

/// The summary (national figures under `rule`) and every operator's own share (the ranking).
fn summarize(
    country: CountryCode,
    probes: &[&Observed],
    rule: MinSample,
) -> Option<(CountrySummary, Balanced)> {
    let observations: Vec<(u32, bool)> = probes.iter().map(|p| (p.asn, p.works)).collect();
    let balanced = rollup::balanced_share(&observations)?;
    let National {
        balanced: counted,
        population,
    } = national(probes, rule);
    // With enough probes in all, something is counted: the operators with enough, or those
    // under the minimum together.
    let counted = counted.filter(|_| rule.allows(balanced.probes));
    let sufficient = counted.is_some();
    let mut v6: Vec<f64> = probes
        .iter()
        .filter(|p| population.counts(p.asn))
        .filter_map(|p| p.rtt_v6)
        .collect();
    let mut v4: Vec<f64> = probes
        .iter()
        .filter(|p| population.counts(p.asn))
        .filter_map(|p| p.rtt_v4)
        .collect();
    let median_rtt_v6_ms = rollup::median(&mut v6).filter(|_| sufficient);
    let median_rtt_v4_ms = rollup::median(&mut v4).filter(|_| sufficient);
    let summary = CountrySummary {
        country,
        probes: balanced.probes,
        operators: balanced.operators,
        insufficient_data: !sufficient,
        v6_works: counted.map(|c| Shares {
            balanced: c.overall,
            pooled: c.raw,
        }),
        median_rtt_v6_ms,
        median_rtt_v4_ms,
        v6_penalty_ms: rollup::v6_penalty_ms(median_rtt_v6_ms, median_rtt_v4_ms),
    };
    Some((summary, balanced))
}

fn by_country(observed: &[Observed]) -> BTreeMap<CountryCode, Vec<&Observed>> {
    let mut map: BTreeMap<CountryCode, Vec<&Observed>> = BTreeMap::new();
    for o in observed {
        map.entry(o.country).or_default().push(o);
    }
    map
}

/// What the map pages are computed from: the active probes at one moment, each with its
/// origin, IPv6 state and RTT medians. Taking one costs O(active probes × hours) with figures
/// (a day's results without); answering from one costs O(active probes), so the collector
/// keeps a recent one in memory ([`crate::map_view`]) and requests never read the store.
pub struct Snapshot {
    pub generated_at: UnixMicros,
    pub source: Source,
    observed: Vec<Observed>,
    left_out: LeftOut,
}

/// Probes with an origin country that the figures leave out, counted when the snapshot is
/// taken (one pass over the probe records it reads anyway), so a drill-down costs
/// O(probes of the cell).
#[derive(Debug, Default)]
struct LeftOut {
    /// Not seen within [`WINDOW`], by country and origin AS (if the prefix data gives one).
    inactive: BTreeMap<(CountryCode, Option<u32>), usize>,
    /// Active, but the prefix data gives their address a country and no AS.
    no_asn: BTreeMap<CountryCode, usize>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generated_at", &self.generated_at)
            .field("source", &self.source)
            .field("probes", &self.observed.len())
            .finish()
    }
}

impl Snapshot {
    /// From the figures when the store keeps them, else from a scan.
    pub fn take(store: &dyn Store, now: UnixMicros) -> Result<Self, StoreError> {
        Self::take_from(store, now, Source::of(store)?)
    }

    pub fn take_from(
        store: &dyn Store,
        now: UnixMicros,
        source: Source,
    ) -> Result<Self, StoreError> {
        let mut left_out = LeftOut::default();
        let observed = observe(store, now, source, &mut left_out)?;
        Ok(Self {
            generated_at: now,
            source,
            observed,
            left_out,
        })
    }

    /// Every country with active probes, every figure published (no minimum sample): the
    /// reference the figures are tested against.
    pub fn countries(&self) -> Countries {
        self.countries_with(MinSample { min_probes: 1 })
    }

    /// Every country with active probes; figures under `rule`'s minimum are insufficient data.
    pub fn countries_with(&self, rule: MinSample) -> Countries {
        let countries = by_country(&self.observed)
            .into_iter()
            .filter_map(|(country, probes)| summarize(country, &probes, rule).map(|(s, _)| s))
            .collect();
        Countries {
            generated_at: self.generated_at,
            window_hours: WINDOW.as_secs() / 3600,
            method: method(self.source),
            method_id: METHOD_ID,
            source: self.source,
            min_probes: rule.min_probes,
            countries,
        }
    }

    /// One country's page, every figure published; `None` without active probes there.
    pub fn country(&self, country: CountryCode) -> Option<CountryDetail> {
        self.country_with(country, MinSample { min_probes: 1 })
    }

    /// One country's page under `rule`; `None` without active probes there.
    pub fn country_with(&self, country: CountryCode, rule: MinSample) -> Option<CountryDetail> {
        let probes: Vec<&Observed> = self
            .observed
            .iter()
            .filter(|o| o.country == country)
            .collect();
        country_detail(country, &probes, self.generated_at, self.source, rule)
    }
}

/// Why probes are left out of a cell's figures, as counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not seen by the collector in the last [`WINDOW`]: in no figure.
    NotSeenIn24h,
    /// The prefix data gives the probe's address this country but no origin AS: an operator
    /// cannot be named, so the operator-balanced share cannot weigh it. In no figure.
    NoOriginAs,
    /// Counted in the shares, but no ping RTT to a global destination over IPv6 in the
    /// window: left out of the median IPv6 RTT only.
    NoIpv6Rtt,
    /// Of operators under the minimum sample that together do not reach it: left out of the
    /// national figures, whose mean would otherwise give their share away by subtraction.
    OperatorUnderMinimum,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exclusion {
    pub reason: Reason,
    /// `None`: fewer than the minimum sample (an exact small count, beside the public list
    /// of probes, would tell which one dropped out).
    pub probes: Option<usize>,
}

/// One operator's weight in its country's operator-balanced share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorWeight {
    pub asn: u32,
    pub probes: usize,
    /// The operator's weight in the national share: 1 / operators.
    pub operator_weight: f64,
    /// Each of its probes' weight: 1 / (operators × its probes).
    pub probe_weight: f64,
}

/// The operators under the minimum, pooled: one unit of the national share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupWeight {
    pub operators: usize,
    /// At least the minimum sample (else they would be left out).
    pub probes: usize,
    /// The group's weight: 1 / units, as one operator's.
    pub operator_weight: f64,
    /// Each of its probes': 1 / (units × the group's probes).
    pub probe_weight: f64,
}

/// What stands behind one cell of the maps (a country, or an operator in it): the sample, the
/// weights and the probes left out and why. Under the minimum sample only `insufficient_data`
/// (the rest is absent), as everywhere the rule applies.
#[derive(Debug, Clone, Serialize)]
pub struct Drilldown {
    pub country: CountryCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    pub generated_at: UnixMicros,
    pub method_id: &'static str,
    pub min_probes: usize,
    pub insufficient_data: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub figures: Option<DrilldownFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrilldownFigures {
    /// Probes counted in the share.
    pub probes: usize,
    pub operators: usize,
    /// The share's interval rests on this effective sample size (`rollup::balanced_share`);
    /// for an operator, its probes (each weighs the same within it).
    pub n_effective: f64,
    /// Kish's effective sample size from the weights alone (country cells).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_kish: Option<f64>,
    pub v6_works: rollup::Proportion,
    /// The named operators of the country (country cell) or this one (operator cell).
    pub weights: Vec<OperatorWeight>,
    /// Operators under the minimum sample: never named, unranked.
    pub operators_under_minimum: usize,
    /// Country cell: those operators pooled into one unit of the national share (together
    /// they reach the minimum); absent when there are none or they are left out
    /// ([`Reason::OperatorUnderMinimum`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub under_minimum_group: Option<GroupWeight>,
    /// By reason; reasons with no probe are absent.
    pub excluded: Vec<Exclusion>,
}

impl Snapshot {
    /// The drill-down of a country's cell (`asn` `None`) or of one operator's in it; `None`
    /// when the cell has no active probe.
    pub fn drilldown(
        &self,
        country: CountryCode,
        asn: Option<u32>,
        rule: MinSample,
    ) -> Option<Drilldown> {
        let probes: Vec<&Observed> = self
            .observed
            .iter()
            .filter(|o| o.country == country)
            .collect();
        let observations: Vec<(u32, bool)> = probes.iter().map(|p| (p.asn, p.works)).collect();
        let all = rollup::balanced_share(&observations)?;
        if asn.is_some_and(|a| !probes.iter().any(|p| p.asn == a)) {
            return None;
        }
        let National {
            balanced: counted,
            population,
        } = national(&probes, rule);
        // The probes behind the cell's figure: the operator's own, or those the national
        // figures count.
        let mine: Vec<&&Observed> = probes
            .iter()
            .filter(|p| match asn {
                Some(a) => p.asn == a,
                None => population.counts(p.asn),
            })
            .collect();
        let present = match asn {
            Some(a) => probes.iter().filter(|p| p.asn == a).count(),
            None => all.probes,
        };
        let head = Drilldown {
            country,
            asn,
            generated_at: self.generated_at,
            method_id: METHOD_ID,
            min_probes: rule.min_probes,
            insufficient_data: !rule.allows(present),
            figures: None,
        };
        if head.insufficient_data {
            return Some(head);
        }
        let units = population.units();
        // Operators under the minimum are counted, never named: with its weight and probes
        // beside the published shares, one operator's hidden share could be worked out.
        let under_minimum = match asn {
            None => population.under_minimum.len(),
            Some(_) => 0,
        };
        let weights: Vec<OperatorWeight> = all
            .per_operator
            .iter()
            .filter(|o| asn.is_none_or(|a| o.asn == a) && population.named.contains(&o.asn))
            .map(|o| OperatorWeight {
                asn: o.asn,
                probes: o.probes,
                operator_weight: 1.0 / units as f64,
                probe_weight: 1.0 / (units * o.probes) as f64,
            })
            .collect();
        let under_minimum_group = (asn.is_none() && population.grouped).then(|| GroupWeight {
            operators: population.under_minimum.len(),
            probes: population.under_minimum_probes,
            operator_weight: 1.0 / units as f64,
            probe_weight: 1.0 / (units * population.under_minimum_probes) as f64,
        });
        let (v6_works, n_effective, n_kish) = match asn {
            None => {
                let counted = counted?;
                (
                    counted.overall.clone(),
                    counted.overall.n,
                    Some(counted.n_kish),
                )
            }
            Some(a) => {
                let share = all
                    .per_operator
                    .iter()
                    .find(|o| o.asn == a)
                    .map(|o| o.share.clone())?;
                let n = share.n;
                (share, n, None)
            }
        };
        let inactive: usize = self
            .left_out
            .inactive
            .iter()
            .filter(|((c, a), _)| *c == country && asn.is_none_or(|x| *a == Some(x)))
            .map(|(_, n)| n)
            .sum();
        let no_asn = match asn {
            None => self.left_out.no_asn.get(&country).copied().unwrap_or(0),
            Some(_) => 0,
        };
        let left_out_small = match asn {
            None if !population.grouped => population.under_minimum_probes,
            _ => 0,
        };
        let no_rtt = mine.iter().filter(|p| p.rtt_v6.is_none()).count();
        let excluded = [
            (Reason::NotSeenIn24h, inactive),
            (Reason::NoOriginAs, no_asn),
            (Reason::OperatorUnderMinimum, left_out_small),
            (Reason::NoIpv6Rtt, no_rtt),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(reason, probes)| Exclusion {
            reason,
            probes: rule.allows(probes).then_some(probes),
        })
        .collect();
        Some(Drilldown {
            figures: Some(DrilldownFigures {
                probes: mine.len(),
                operators: match asn {
                    Some(_) => 1,
                    None => population.named.len() + population.grouped_operators(),
                },
                n_effective,
                n_kish,
                v6_works,
                operators_under_minimum: under_minimum,
                under_minimum_group,
                weights,
                excluded,
            }),
            ..head
        })
    }
}

/// Every country with active probes.
pub fn countries(store: &dyn Store, now: UnixMicros) -> Result<Countries, StoreError> {
    Ok(Snapshot::take(store, now)?.countries())
}

/// [`countries`] from the given source (`Scan` is the reference the figures are tested
/// against).
pub fn countries_from(
    store: &dyn Store,
    now: UnixMicros,
    source: Source,
) -> Result<Countries, StoreError> {
    Ok(Snapshot::take_from(store, now, source)?.countries())
}

/// One country's page: its figures, operator ranking and probes; `None` without active probes.
pub fn country(
    store: &dyn Store,
    country: CountryCode,
    now: UnixMicros,
) -> Result<Option<CountryDetail>, StoreError> {
    Ok(Snapshot::take(store, now)?.country(country))
}

/// [`country`] from the given source.
pub fn country_from(
    store: &dyn Store,
    country: CountryCode,
    now: UnixMicros,
    source: Source,
) -> Result<Option<CountryDetail>, StoreError> {
    Ok(Snapshot::take_from(store, now, source)?.country(country))
}

fn country_detail(
    country: CountryCode,
    probes: &[&Observed],
    now: UnixMicros,
    source: Source,
    rule: MinSample,
) -> Option<CountryDetail> {
    let (summary, balanced) = summarize(country, probes, rule)?;
    // Ranked: those with enough probes, in the podium order, with their rank ranges; then the
    // rest, without share or rank.
    let (ranked, mut unranked): (Vec<&OperatorShare>, Vec<&OperatorShare>) = balanced
        .per_operator
        .iter()
        .partition(|o| rule.allows(o.probes));
    // Not in the podium order, which is by share: the order would tell which of them does
    // better.
    unranked.sort_by(|a, b| b.probes.cmp(&a.probes).then(a.asn.cmp(&b.asn)));
    let ranks = rollup::rank_ranges(
        &ranked
            .iter()
            .map(|o| (o.share.low, o.share.high))
            .collect::<Vec<_>>(),
    );
    let operators = ranked
        .iter()
        .zip(ranks.into_iter().map(Some))
        .chain(unranked.iter().zip(std::iter::repeat(None)))
        .map(
            |(
                OperatorShare {
                    asn,
                    probes: n,
                    share,
                },
                rank,
            )| {
                let mine: Vec<&&Observed> = probes.iter().filter(|p| p.asn == *asn).collect();
                let mut rtts: Vec<f64> = mine.iter().filter_map(|p| p.rtt_v6).collect();
                let sufficient = rank.is_some();
                Operator {
                    asn: *asn,
                    as_name: mine.iter().find_map(|p| p.as_name.clone()),
                    probes: *n,
                    insufficient_data: !sufficient,
                    rank,
                    v6_works: sufficient.then(|| share.clone()),
                    median_rtt_v6_ms: rollup::median(&mut rtts).filter(|_| sufficient),
                }
            },
        )
        .collect();
    let probes = probes
        .iter()
        .map(|p| MapProbe {
            asn: p.asn,
            location: p.record.location.map(|l| [l.latitude(), l.longitude()]),
            v6_works: ranked.iter().any(|o| o.asn == p.asn).then_some(p.works),
        })
        .collect();
    Some(CountryDetail {
        country: summary.country,
        generated_at: now,
        window_hours: WINDOW.as_secs() / 3600,
        method_id: METHOD_ID,
        method: method(source),
        source,
        probe_count: summary.probes,
        operator_count: summary.operators,
        min_probes: rule.min_probes,
        insufficient_data: summary.insufficient_data,
        v6_works: summary.v6_works,
        median_rtt_v6_ms: summary.median_rtt_v6_ms,
        median_rtt_v4_ms: summary.median_rtt_v4_ms,
        v6_penalty_ms: summary.v6_penalty_ms,
        operators,
        probes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;
    use sixmap_shared::health::{ProbeTag, TagName};
    use sixmap_shared::prefixes::Enrichment;

    const NOW: UnixMicros = UnixMicros(1_790_000_000_000_000);

    /// Active probes `(country, asn, v6 works)`, without RTT samples.
    fn snapshot(probes: &[(&str, u32, bool)]) -> Snapshot {
        let all: Vec<_> = probes
            .iter()
            .map(|(c, asn, works)| (*c, Some(*asn), *works, true))
            .collect();
        snapshot_of(&all)
    }

    /// Probes `(country, asn, v6 works, seen within the window)`, without RTT samples.
    fn snapshot_of(probes: &[(&str, Option<u32>, bool, bool)]) -> Snapshot {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        for (i, (country, asn, works, active)) in probes.iter().enumerate() {
            let tags = if *works {
                vec![ProbeTag {
                    name: TagName::new(Tag::V6Works.name()).unwrap(),
                    since: NOW,
                }]
            } else {
                Vec::new()
            };
            store
                .create_probe(&ProbeRecord {
                    id: format!("{:016x}", i + 1).parse().unwrap(),
                    hostname: format!("p{i}"),
                    enrolled_at: NOW,
                    last_seen: Some(if *active {
                        NOW
                    } else {
                        UnixMicros(NOW.0 - 2 * WINDOW.as_micros() as i64)
                    }),
                    software_version: None,
                    boot_epoch: None,
                    local_addresses: Vec::new(),
                    self_test: None,
                    last_v6_success: None,
                    tags,
                    location: None,
                    origin: Some(Enrichment {
                        asn: *asn,
                        as_name: None,
                        country: Some(country.parse().unwrap()),
                    }),
                    owner: None,
                    enrolled_from: None,
                    enrolled_prefix: None,
                    certificate_sha256: None,
                    revoked_at: None,
                    directory_listed: false,
                })
                .unwrap();
        }
        Snapshot::take_from(&store, NOW, Source::Scan).unwrap()
    }

    #[test]
    fn a_country_with_one_probe_is_insufficient_data_not_zero_percent() {
        let s = snapshot(&[
            ("XA", 1, false),
            ("XB", 2, true),
            ("XB", 2, true),
            ("XB", 3, false),
        ]);
        let rule = MinSample { min_probes: 3 };
        let countries = s.countries_with(rule);
        assert_eq!(countries.min_probes, 3);
        let xa = &countries.countries[0];
        assert_eq!((xa.country.to_string(), xa.probes), ("XA".to_owned(), 1));
        assert!(xa.insufficient_data);
        assert!(xa.v6_works.is_none() && xa.median_rtt_v6_ms.is_none());
        let json = serde_json::to_value(xa).unwrap();
        assert!(json["v6_works"].is_null(), "{json}");
        let xb = &countries.countries[1];
        assert!(!xb.insufficient_data && xb.v6_works.is_some());
        // Without a minimum (the reference computation), XA's 0 % is published.
        let all = s.countries();
        assert_eq!(
            all.countries[0].v6_works.as_ref().unwrap().balanced.share,
            0.0
        );

        // On the country page the operators under the minimum are listed last, without share
        // or rank.
        let xb = s
            .country_with("XB".parse().unwrap(), MinSample { min_probes: 2 })
            .unwrap();
        let rows: Vec<_> = xb
            .operators
            .iter()
            .map(|o| (o.asn, o.insufficient_data, o.rank.map(|r| r.to_string())))
            .collect();
        assert_eq!(rows, [(2, false, Some("1".into())), (3, true, None)]);
        assert!(xb.operators[1].v6_works.is_none());
        // Nor do that operator's probes show whether IPv6 works for them.
        let shown: Vec<_> = xb.probes.iter().map(|p| (p.asn, p.v6_works)).collect();
        assert_eq!(shown, [(2, Some(true)), (2, Some(true)), (3, None)]);
        let page = s.country_with("XA".parse().unwrap(), rule).unwrap();
        assert!(page.insufficient_data && page.v6_works.is_none());
        assert_eq!(page.probe_count, 1);
        assert_eq!(
            page.probes[0].v6_works, None,
            "one probe's colour is no figure"
        );
    }

    /// What the map publishes of country XA from `probes` under a minimum of 3.
    fn published(probes: &[(&str, u32, bool)]) -> Vec<serde_json::Value> {
        let s = snapshot(probes);
        let rule = MinSample { min_probes: 3 };
        let xa: CountryCode = "XA".parse().unwrap();
        vec![
            serde_json::to_value(s.countries_with(rule)).unwrap(),
            serde_json::to_value(s.country_with(xa, rule)).unwrap(),
            serde_json::to_value(s.drilldown(xa, None, rule)).unwrap(),
        ]
    }

    #[test]
    fn no_national_figure_gives_away_an_operator_under_the_minimum() {
        // AS1 3/3 and AS2 1/3 are named; AS3's one probe is under the minimum of 3, and
        // alone there: whether its IPv6 works must change nothing published (the national
        // mean, with K and the named shares, would give it by subtraction).
        let mut xa = vec![("XA", 1, true); 3];
        xa.extend([("XA", 2, true), ("XA", 2, false), ("XA", 2, false)]);
        let works = [xa.clone(), vec![("XA", 3, true)]].concat();
        let broken = [xa.clone(), vec![("XA", 3, false)]].concat();
        assert_eq!(published(&works), published(&broken));
        let country = snapshot(&works)
            .country_with("XA".parse().unwrap(), MinSample { min_probes: 3 })
            .unwrap();
        let national = country.v6_works.unwrap();
        assert!((national.balanced.share - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!((national.pooled.n, country.probe_count), (6.0, 7));
        // Two under the minimum that reach it together count as one operator: only their
        // pooled share is in the figure, so moving a working probe between them changes
        // nothing either.
        let two = [
            xa.clone(),
            vec![("XA", 3, true), ("XA", 4, false), ("XA", 4, false)],
        ]
        .concat();
        let moved = [
            xa.clone(),
            vec![("XA", 3, false), ("XA", 4, true), ("XA", 4, false)],
        ]
        .concat();
        assert_eq!(published(&two), published(&moved));
        let s = snapshot(&two);
        let rule = MinSample { min_probes: 3 };
        let f = s
            .drilldown("XA".parse().unwrap(), None, rule)
            .unwrap()
            .figures
            .unwrap();
        assert_eq!(
            (f.probes, f.operators, f.operators_under_minimum),
            (9, 4, 2)
        );
        let group = f.under_minimum_group.unwrap();
        assert_eq!((group.operators, group.probes), (2, 3));
        assert!((group.operator_weight - 1.0 / 3.0).abs() < 1e-12);
        assert!((f.v6_works.share - (1.0 + 1.0 / 3.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
        // Without a minimum (the reference) every operator counts on its own.
        let all = s.countries().countries[0].v6_works.clone().unwrap();
        assert!((all.balanced.share - (1.0 + 1.0 / 3.0 + 1.0 + 0.0) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn a_revoked_probe_is_neither_counted_nor_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let record = |n: u64, seen: i64, revoked: Option<i64>| ProbeRecord {
            id: format!("{n:016x}").parse().unwrap(),
            hostname: format!("p{n}"),
            enrolled_at: UnixMicros(NOW.0 - 10 * WINDOW.as_micros() as i64),
            last_seen: Some(UnixMicros(NOW.0 - seen)),
            software_version: None,
            boot_epoch: None,
            local_addresses: Vec::new(),
            self_test: None,
            last_v6_success: None,
            tags: Vec::new(),
            location: None,
            origin: Some(Enrichment {
                asn: Some(1),
                as_name: None,
                country: Some("XA".parse().unwrap()),
            }),
            owner: None,
            enrolled_from: None,
            enrolled_prefix: None,
            certificate_sha256: None,
            revoked_at: revoked.map(|r| UnixMicros(NOW.0 - r)),
            directory_listed: false,
        };
        let day = WINDOW.as_micros() as i64;
        for n in 1..=3 {
            store.create_probe(&record(n, 0, None)).unwrap();
        }
        // Three enrolled, silent for two days: not seen in 24 h.
        for n in 4..=6 {
            store.create_probe(&record(n, 2 * day, None)).unwrap();
        }
        // Retired long ago, and one revoked an hour ago that was seen just before: neither
        // is an inactive probe, nor an active one.
        for n in 7..=9 {
            store
                .create_probe(&record(n, 3 * day, Some(2 * day)))
                .unwrap();
        }
        store
            .create_probe(&record(10, 7_200_000_000, Some(3_600_000_000)))
            .unwrap();
        let s = Snapshot::take_from(&store, NOW, Source::Scan).unwrap();
        let rule = MinSample { min_probes: 3 };
        for asn in [None, Some(1)] {
            let f = s
                .drilldown("XA".parse().unwrap(), asn, rule)
                .unwrap()
                .figures
                .unwrap();
            assert_eq!(f.probes, 3, "{asn:?}");
            assert_eq!(
                f.excluded[0],
                Exclusion {
                    reason: Reason::NotSeenIn24h,
                    probes: Some(3)
                },
                "{asn:?}"
            );
        }
        assert_eq!(s.countries().countries[0].probes, 3);
    }

    #[test]
    fn a_drilldown_shows_n_weights_and_probes_left_out_by_reason() {
        let s = snapshot_of(&[
            ("XA", Some(1), true, true),
            ("XA", Some(1), true, true),
            ("XA", Some(1), false, true),
            ("XA", Some(2), true, true),
            // Left out: two not seen in the window (one of AS1), one without an AS.
            ("XA", Some(1), true, false),
            ("XA", Some(3), true, false),
            ("XA", None, true, true),
            ("XB", Some(4), true, true),
        ]);
        let rule = MinSample { min_probes: 3 };
        let xa = s.drilldown("XA".parse().unwrap(), None, rule).unwrap();
        assert!(!xa.insufficient_data);
        let f = xa.figures.as_ref().unwrap();
        // AS2, with one probe, is under the minimum and alone there: left out of the national
        // figures (counted with AS1, its share would follow from the national one by
        // subtraction), and not named.
        assert_eq!(
            (f.probes, f.operators, f.operators_under_minimum),
            (3, 1, 1)
        );
        assert!(f.under_minimum_group.is_none());
        let weights: Vec<_> = f
            .weights
            .iter()
            .map(|w| (w.asn, w.probes, w.operator_weight, w.probe_weight))
            .collect();
        assert_eq!(weights, [(1, 3, 1.0, 1.0 / 3.0)]);
        // Kish: one operator, equal weights: its three probes.
        assert!((f.n_kish.unwrap() - 3.0).abs() < 1e-9, "{:?}", f.n_kish);
        assert!(f.n_effective <= 3.0 + 1e-9);
        assert!(
            (f.v6_works.share - 2.0 / 3.0).abs() < 1e-12,
            "{:?}",
            f.v6_works
        );
        let country = s.country_with("XA".parse().unwrap(), rule).unwrap();
        assert_eq!(
            f.v6_works.share,
            country.v6_works.unwrap().balanced.share,
            "the cell's figure"
        );
        let excluded: Vec<_> = f.excluded.iter().map(|e| (e.reason, e.probes)).collect();
        assert_eq!(
            excluded,
            [
                // Under the minimum: "fewer than 3", never an exact small count.
                (Reason::NotSeenIn24h, None),
                (Reason::NoOriginAs, None),
                (Reason::OperatorUnderMinimum, None),
                // No RTT samples in this test: every counted probe is out of the RTT median.
                (Reason::NoIpv6Rtt, Some(3)),
            ]
        );
        // An operator's cell: its own probes and exclusions.
        let as1 = s.drilldown("XA".parse().unwrap(), Some(1), rule).unwrap();
        let f = as1.figures.unwrap();
        assert_eq!((f.probes, f.n_effective), (3, 3.0));
        assert_eq!(f.weights.len(), 1);
        assert_eq!(
            f.excluded[0],
            Exclusion {
                reason: Reason::NotSeenIn24h,
                probes: None
            }
        );
        // Under the minimum sample: insufficient data and nothing else.
        let as2 = s.drilldown("XA".parse().unwrap(), Some(2), rule).unwrap();
        assert!(as2.insufficient_data && as2.figures.is_none());
        let json = serde_json::to_value(&as2).unwrap();
        assert_eq!(json.get("probes"), None, "{json}");
        assert_eq!(json.get("weights"), None, "{json}");
        let xb = s.drilldown("XB".parse().unwrap(), None, rule).unwrap();
        assert!(xb.insufficient_data && xb.figures.is_none());
        // No active probe in the cell: none.
        assert!(s.drilldown("XA".parse().unwrap(), Some(3), rule).is_none());
        assert!(s.drilldown("XC".parse().unwrap(), None, rule).is_none());
    }
}
