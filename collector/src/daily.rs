//! Daily figures per country, stored, for the time series of the national pages.
//!
//! A day's figures come from that day's results alone (UTC days): a probe counts for a day if
//! it sent a result that day and the result's source had an origin in the prefix data at
//! ingest; IPv6 works for it that day if one of its results reached a global IPv6
//! destination. A day's rollups are computed from its probe-day figures, kept as results
//! arrive (`crate::figures`): O(probes of the day). The folder recomputes the days it changed
//! every few seconds (a late upload included), and the last 30 days when the collector
//! starts; `sixmap-collector rollups rebuild` recomputes every day from the raw results. On a
//! store without figures they are recomputed from each day's results instead (today and
//! yesterday every 10 minutes, the last 30 days at start); that computation is also the
//! reference the figures are tested against (medians from figures are within 1 %).
//!
//! A country's stored day keeps each operator's part (`by_operator`: probes, working ones,
//! each probe's median RTTs, path-quality counts), never published: its national figures are
//! made from them when the day is published, under the minimum sample of that moment
//! (`rollup::national_share`: operators under it pooled into one unit, or left out, so none
//! of them can be worked out by subtraction). That costs O(probes of the day) per day
//! published when an operator is under the minimum; the stored figures are used as they are
//! otherwise.
//!
//! Path quality is counted over that day's results to global IPv6 destinations, pooled over
//! the group's probes (not operator-balanced; each figure carries its sample size and 95 %
//! Wilson interval): ping loss (requests unanswered / sent); the PMTU black-hole rate (pmtu
//! results that found one); the extension-header drop rate per header (exthdr outcomes where
//! the header did not reach the destination); and the domestic-path share: of the traceroutes
//! from a country's probes to destinations in that same country, those whose every hop that
//! answered and has a country in the prefix data lies in that country.

use crate::figures::v6_tallies::{V6Tallies, observe_v6};
use crate::figures::{Count, EXT_HEADERS, ProbeDay, Source, read};
use crate::maps::Shares;
use crate::rollup::{self, MinSample, Population, Proportion};
use crate::store::{Store, StoreError, StoredResult};
use serde::{Deserialize, Serialize};
use sixmap_shared::policy::classify;
use sixmap_shared::prefixes::{CountryCode, PrefixData};
use sixmap_shared::{Family, Outcome, ProbeId, UnixMicros};
use std::collections::BTreeMap;

const DAY_US: i64 = 86_400_000_000;

/// Horizons of the trend projection shown on the national page: 1, 3 and 5 years.
pub const PROJECTION_YEARS: [f64; 3] = [1.0, 3.0, 5.0];

/// The start (00:00 UTC) of the day holding `t`.
pub fn day_start(t: UnixMicros) -> UnixMicros {
    UnixMicros(t.0.div_euclid(DAY_US) * DAY_US)
}

/// `YYYY-MM-DD` of the day holding `t` (proleptic Gregorian, UTC).
pub fn day_label(t: UnixMicros) -> String {
    // Howard Hinnant's days-from-civil, inverted.
    let days = t.0.div_euclid(DAY_US) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The id of the method that makes the daily figures, stored with each day: the balanced
/// share's interval on Kish's effective n capped by the between-operator variance
/// (`rollup::balanced_share`); the national figures count operators under the minimum sample
/// pooled into one, or not at all (`rollup::national_share`), made when the day is published
/// from the operators' parts stored with it. A new method gets a new id; series mark the day
/// it changes ([`MethodBreak`]). docs/methodology.md lists the ids.
pub const METHOD_ID: &str = "sixmap-daily/3";
/// The method before: every operator counted on its own, whatever its probes. Days made by
/// [`METHOD_ID`] carry its value (`v6_works_previous_method`) where it is the same figure:
/// when no operator is under the minimum (else it would give their share away).
pub const PREVIOUS_METHOD_ID: &str = "sixmap-daily/2";

/// One country's figures for one day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountryDay {
    /// The method that made these figures ([`METHOD_ID`]); null for days stored before
    /// figures carried one.
    #[serde(default)]
    pub method_id: Option<String>,
    pub day: String,
    /// Days since 1970-01-01 (for plotting and the projection).
    pub day_number: i64,
    pub probes: usize,
    pub operators: usize,
    /// Fewer probes than the minimum sample where the day is published: every share and
    /// median below is null (stored days always have them).
    #[serde(default)]
    pub insufficient_data: bool,
    /// Null when `insufficient_data`.
    pub v6_works: Option<Shares>,
    pub median_rtt_v6_ms: Option<f64>,
    pub median_rtt_v4_ms: Option<f64>,
    /// Share of IPv6 echo requests unanswered (pooled over the group's pings).
    #[serde(default)]
    pub ping_loss_v6: Option<Proportion>,
    /// Share of pmtu results that found a black hole.
    #[serde(default)]
    pub pmtu_black_holes: Option<Proportion>,
    /// Per extension header (`hbh`, `dst`, `frag`): share of tests where it was dropped.
    #[serde(default)]
    pub ext_header_drops: BTreeMap<String, Proportion>,
    /// Share of traceroutes to destinations in the probes' own country that stayed in it.
    #[serde(default)]
    pub domestic_paths: Option<Proportion>,
    /// The balanced share as [`PREVIOUS_METHOD_ID`] made it, beside the current one; null
    /// where it cannot be computed (days stored before), under the minimum sample, and where
    /// an operator is under the minimum (it would publish what the current method keeps
    /// back).
    #[serde(default)]
    pub v6_works_previous_method: Option<Proportion>,
    /// A day stored by an earlier method, which counted operators under the minimum on their
    /// own and kept no parts to redo its figures: published as `insufficient_data` (n only),
    /// since its figures could give such an operator's share away. `sixmap-collector rollups
    /// rebuild` stores it again by the current method.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held_back: bool,
    /// Stored, never published ([`published`] empties it): each operator's part of a
    /// country's day, from which the national figures are made under the publication's
    /// minimum sample. Empty for networks (one operator) and days of earlier methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_operator: Vec<OperatorDay>,
    /// Stored, never published ([`published`] takes it): the day as published under the
    /// collector's minimum sample when it was stored, so that a series reads one small
    /// record a day instead of every operator's part (stored under [`parts_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_under: Option<Box<PublishedDay>>,
}

/// A day as published under one minimum sample, made when the day was stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedDay {
    pub min_probes: usize,
    pub day: CountryDay,
}

/// One operator's part of a country's day: what its national figures need, summed over the
/// operator's probes (RTTs: each probe's median of the day, for the median of medians).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorDay {
    pub asn: u32,
    pub probes: usize,
    pub working: usize,
    /// Each of its probes' median RTT of the day, in probe order (those with samples).
    pub medians_v6_ms: Vec<f64>,
    pub medians_v4_ms: Vec<f64>,
    pub lost_v6: Count,
    pub black_holes: Count,
    pub ext_drops: [Count; 3],
    pub domestic: Count,
}

impl OperatorDay {
    fn new(asn: u32) -> Self {
        Self {
            asn,
            probes: 0,
            working: 0,
            medians_v6_ms: Vec::new(),
            medians_v4_ms: Vec::new(),
            lost_v6: Count::default(),
            black_holes: Count::default(),
            ext_drops: [Count::default(); 3],
            domestic: Count::default(),
        }
    }

    fn add(&mut self, p: &DayProbe) {
        self.probes += 1;
        self.working += usize::from(p.works);
        self.medians_v6_ms.extend(p.median_v6);
        self.medians_v4_ms.extend(p.median_v4);
        self.lost_v6.add_many(p.lost_v6.hits, p.lost_v6.trials);
        self.black_holes
            .add_many(p.black_holes.hits, p.black_holes.trials);
        for (sum, c) in self.ext_drops.iter_mut().zip(&p.ext_drops) {
            sum.add_many(c.hits, c.trials);
        }
        self.domestic.add_many(p.domestic.hits, p.domestic.trials);
    }
}

/// A day where the series' method changes: figures before and after it are not directly
/// comparable (the chart marks it; `v6_works_previous_method` bridges where it exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodBreak {
    /// The first day of the new method.
    pub day: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Every change of method between consecutive days whose method is known. Days stored before
/// days carried an id read as null: the method of that time is not known from the day (the
/// current one was already in use for a while before ids were stored), so null → id is no
/// break to mark; the id → id changes are.
pub fn method_breaks(days: &[CountryDay]) -> Vec<MethodBreak> {
    days.windows(2)
        .filter(|w| {
            w[0].method_id.is_some() && w[1].method_id.is_some() && w[0].method_id != w[1].method_id
        })
        .map(|w| MethodBreak {
            day: w[1].day.clone(),
            before: w[0].method_id.clone(),
            after: w[1].method_id.clone(),
        })
        .collect()
}

/// Counts of successes out of trials, turned into a [`Proportion`] when there was a trial.
fn proportion(count: Count) -> Option<Proportion> {
    rollup::wilson(count.hits as f64, count.trials as f64)
}

fn sum<'a>(counts: impl Iterator<Item = &'a Count>) -> Count {
    counts.fold(Count::default(), |a, c| Count {
        hits: a.hits + c.hits,
        trials: a.trials + c.trials,
    })
}

/// One probe's day as the figures need it, from either source.
struct DayProbe {
    country: Option<CountryCode>,
    asn: Option<u32>,
    works: bool,
    median_v6: Option<f64>,
    median_v4: Option<f64>,
    lost_v6: Count,
    black_holes: Count,
    /// Per header of [`EXT_HEADERS`].
    ext_drops: [Count; 3],
    domestic: Count,
}

impl DayProbe {
    fn from_figure(day: &ProbeDay) -> Self {
        Self {
            country: day.country.map(|c| c.value),
            asn: day.asn.map(|a| a.value),
            works: day.works,
            median_v6: day.rtt_v6.median_ms(),
            median_v4: day.rtt_v4.median_ms(),
            lost_v6: day.lost_v6,
            black_holes: day.black_holes,
            ext_drops: day.ext_drops,
            domestic: day.domestic,
        }
    }
}

/// The reference computation from a day's raw results: exact medians from every sample.
#[derive(Default)]
struct ScanDay {
    country: Option<CountryCode>,
    asn: Option<u32>,
    works: bool,
    rtt_v6: Vec<f64>,
    rtt_v4: Vec<f64>,
    lost_v6: Count,
    black_holes: Count,
    ext_drops: [Count; 3],
    domestic: Count,
}

impl ScanDay {
    fn into_probe(mut self) -> DayProbe {
        DayProbe {
            country: self.country,
            asn: self.asn,
            works: self.works,
            median_v6: rollup::median(&mut self.rtt_v6),
            median_v4: rollup::median(&mut self.rtt_v4),
            lost_v6: self.lost_v6,
            black_holes: self.black_holes,
            ext_drops: self.ext_drops,
            domestic: self.domestic,
        }
    }
}

fn observe(day: &mut BTreeMap<ProbeId, ScanDay>, stored: &StoredResult, prefixes: &PrefixData) {
    let r = &stored.result;
    let entry = day.entry(r.key.probe_id.clone()).or_default();
    if let Some(origin) = &stored.probe_origin {
        entry.country = entry.country.or(origin.country);
        entry.asn = entry.asn.or(origin.asn);
    }
    let global = r.destination.is_some_and(|d| classify(d).is_none());
    if !global {
        return;
    }
    observe_v6(
        stored,
        prefixes,
        V6Tallies {
            lost: &mut entry.lost_v6,
            black_holes: &mut entry.black_holes,
            ext_drops: &mut entry.ext_drops,
            domestic: &mut entry.domestic,
        },
    );
    let Outcome::Ping(ping) = &r.outcome else {
        return;
    };
    let Some(rtt) = ping.min_rtt() else { return };
    let ms = rtt.as_secs_f64() * 1000.0;
    match r.family_used {
        Some(Family::V6) => {
            entry.works = true;
            entry.rtt_v6.push(ms);
        }
        Some(Family::V4) => entry.rtt_v4.push(ms),
        None => {}
    }
}

/// Each probe's day, from the stored figures or from a scan of the day's results.
fn probe_days(
    store: &dyn Store,
    prefixes: &PrefixData,
    start: UnixMicros,
    source: Source,
) -> Result<Vec<DayProbe>, StoreError> {
    if source == Source::Figures {
        return Ok(read::probe_days(store, start)?
            .values()
            .map(DayProbe::from_figure)
            .collect());
    }
    let mut probes: BTreeMap<ProbeId, ScanDay> = BTreeMap::new();
    store.scan_results_between(start, UnixMicros(start.0 + DAY_US), &mut |stored| {
        observe(&mut probes, &stored, prefixes);
        true
    })?;
    Ok(probes.into_values().map(ScanDay::into_probe).collect())
}

/// Each operator's part of a group's day; probes without an origin AS are in none.
fn by_operator(probes: &[&DayProbe]) -> Vec<OperatorDay> {
    let mut operators: BTreeMap<u32, OperatorDay> = BTreeMap::new();
    for p in probes {
        if let Some(asn) = p.asn {
            operators
                .entry(asn)
                .or_insert_with(|| OperatorDay::new(asn))
                .add(p);
        }
    }
    operators.into_values().collect()
}

/// The figures of the operators `counted`, each under its unit (its ASN, or
/// `rollup::UNDER_MINIMUM_GROUP` for those pooled): the balanced share averages units, the
/// medians and path-quality counts are over their probes. `None` without probes.
struct Counted {
    balanced: rollup::Balanced,
    median_v6: Option<f64>,
    median_v4: Option<f64>,
    ping_loss_v6: Option<Proportion>,
    pmtu_black_holes: Option<Proportion>,
    ext_header_drops: BTreeMap<String, Proportion>,
    domestic_paths: Option<Proportion>,
}

fn counted(counted: &[(u32, &OperatorDay)]) -> Option<Counted> {
    let mut observations = Vec::new();
    for (unit, o) in counted {
        observations.extend(std::iter::repeat_n((*unit, true), o.working));
        observations.extend(std::iter::repeat_n((*unit, false), o.probes - o.working));
    }
    let balanced = rollup::balanced_share(&observations)?;
    let mut v6: Vec<f64> = counted
        .iter()
        .flat_map(|(_, o)| o.medians_v6_ms.iter().copied())
        .collect();
    let mut v4: Vec<f64> = counted
        .iter()
        .flat_map(|(_, o)| o.medians_v4_ms.iter().copied())
        .collect();
    Some(Counted {
        balanced,
        median_v6: rollup::median(&mut v6),
        median_v4: rollup::median(&mut v4),
        ping_loss_v6: proportion(sum(counted.iter().map(|(_, o)| &o.lost_v6))),
        pmtu_black_holes: proportion(sum(counted.iter().map(|(_, o)| &o.black_holes))),
        ext_header_drops: EXT_HEADERS
            .iter()
            .enumerate()
            .filter_map(|(i, header)| {
                proportion(sum(counted.iter().map(|(_, o)| &o.ext_drops[i])))
                    .map(|p| ((*header).to_owned(), p))
            })
            .collect(),
        domestic_paths: proportion(sum(counted.iter().map(|(_, o)| &o.domestic))),
    })
}

impl CountryDay {
    /// The day holding `start`, of the current method, with its counts and no figure yet.
    fn without_figures(start: UnixMicros, probes: usize, operators: usize) -> Self {
        Self {
            method_id: Some(METHOD_ID.to_owned()),
            day: day_label(start),
            day_number: start.0 / DAY_US,
            probes,
            operators,
            insufficient_data: false,
            v6_works: None,
            median_rtt_v6_ms: None,
            median_rtt_v4_ms: None,
            ping_loss_v6: None,
            pmtu_black_holes: None,
            ext_header_drops: BTreeMap::new(),
            domestic_paths: None,
            v6_works_previous_method: None,
            held_back: false,
            by_operator: Vec::new(),
            published_under: None,
        }
    }

    /// Insufficient data: n and counts only.
    fn withhold(&mut self) {
        self.insufficient_data = true;
        self.v6_works = None;
        self.median_rtt_v6_ms = None;
        self.median_rtt_v4_ms = None;
        self.ping_loss_v6 = None;
        self.pmtu_black_holes = None;
        self.ext_header_drops = BTreeMap::new();
        self.domestic_paths = None;
        self.v6_works_previous_method = None;
    }

    /// Sets the national figures to `c`'s (the counts of probes and operators stay).
    fn set_figures(&mut self, c: Counted) {
        self.v6_works = Some(Shares {
            balanced: c.balanced.overall,
            pooled: c.balanced.raw,
        });
        self.median_rtt_v6_ms = c.median_v6;
        self.median_rtt_v4_ms = c.median_v4;
        self.ping_loss_v6 = c.ping_loss_v6;
        self.pmtu_black_holes = c.pmtu_black_holes;
        self.ext_header_drops = c.ext_header_drops;
        self.domestic_paths = c.domestic_paths;
    }
}

/// The figures of one group of probes (a country, or one network) for one day, every operator
/// counted on its own; a country's day keeps its operators' parts (`keep_parts`), from which
/// [`published`] makes the figures under the minimum sample.
fn figures(start: UnixMicros, probes: &[&DayProbe], keep_parts: bool) -> Option<CountryDay> {
    let parts = by_operator(probes);
    let all: Vec<(u32, &OperatorDay)> = parts.iter().map(|o| (o.asn, o)).collect();
    let c = counted(&all)?;
    let mut day = CountryDay::without_figures(start, c.balanced.probes, c.balanced.operators);
    // Every operator on its own is the previous method's figure.
    day.v6_works_previous_method = Some(c.balanced.overall.clone());
    day.set_figures(c);
    if keep_parts {
        day.by_operator = parts;
    }
    Some(day)
}

/// One day's figures per country and per network (origin AS).
#[derive(Debug)]
pub struct Day {
    /// Every operator counted on its own, with their parts.
    pub countries: BTreeMap<CountryCode, CountryDay>,
    /// Every probe of the network counted.
    pub networks: BTreeMap<u32, CountryDay>,
    /// Each network's figures over its (country, network) cells of at least `rule`'s minimum
    /// sample: a network's probes in a country where it is under the minimum are left out,
    /// or its figure next to that country's operators would give their share away.
    pub networks_published: BTreeMap<u32, CountryDay>,
    /// The minimum sample the day is published under.
    pub rule: MinSample,
}

/// Computes the day holding `day`: from the stored figures when the store keeps them, else
/// from the day's results.
pub fn compute_day(
    store: &dyn Store,
    prefixes: &PrefixData,
    day: UnixMicros,
    rule: MinSample,
) -> Result<Day, StoreError> {
    compute_day_from(store, prefixes, day, Source::of(store)?, rule)
}

/// [`compute_day`] from the given source (`Scan` is the reference the figures are tested
/// against; it reads the whole day's results).
pub fn compute_day_from(
    store: &dyn Store,
    prefixes: &PrefixData,
    day: UnixMicros,
    source: Source,
    rule: MinSample,
) -> Result<Day, StoreError> {
    let start = day_start(day);
    let probes = probe_days(store, prefixes, start, source)?;
    let mut by_country: BTreeMap<CountryCode, Vec<&DayProbe>> = BTreeMap::new();
    let mut by_network: BTreeMap<u32, Vec<&DayProbe>> = BTreeMap::new();
    let mut cells: BTreeMap<(Option<CountryCode>, u32), usize> = BTreeMap::new();
    for probe in &probes {
        let Some(asn) = probe.asn else { continue };
        by_network.entry(asn).or_default().push(probe);
        *cells.entry((probe.country, asn)).or_default() += 1;
        if let Some(country) = probe.country {
            by_country.entry(country).or_default().push(probe);
        }
    }
    let networks_published = by_network
        .iter()
        .map(|(asn, probes)| {
            let counted: Vec<&DayProbe> = probes
                .iter()
                .copied()
                .filter(|p| rule.allows(cells[&(p.country, *asn)]))
                .collect();
            (*asn, network_published(start, &counted, rule))
        })
        .collect();
    Ok(Day {
        countries: by_country
            .into_iter()
            .filter_map(|(c, p)| figures(start, &p, true).map(|f| (c, f)))
            .collect(),
        networks: by_network
            .into_iter()
            .filter_map(|(asn, p)| figures(start, &p, false).map(|f| (asn, f)))
            .collect(),
        networks_published,
        rule,
    })
}

/// A network's day over the probes `counted` (its cells at the minimum): insufficient data
/// when they are fewer than the minimum, or none.
fn network_published(start: UnixMicros, counted: &[&DayProbe], rule: MinSample) -> CountryDay {
    let mut day = figures(start, counted, false).unwrap_or_else(|| {
        CountryDay::without_figures(start, counted.len(), usize::from(!counted.is_empty()))
    });
    if !rule.allows(day.probes) {
        day.withhold();
    }
    day
}

/// Store key of a network's rollups; country codes never contain ':'.
fn network_key(asn: u32) -> String {
    format!("asn:{asn}")
}

/// Store key of the operators' parts of a country's days ([`CountryDay::by_operator`]),
/// kept apart from the day's own record: they grow with the country's probes, and only a
/// publication under another minimum sample than the stored one reads them.
pub fn parts_key(country: &str) -> String {
    format!("{PARTS_PREFIX}{country}")
}

const PARTS_PREFIX: &str = "parts:";

/// Recomputes and stores the `days` days up to and including the one holding `now`, published
/// under `rule` (the collector's `[publication]`) as well as kept for any other.
/// `prefixes` places traceroute hops in countries (for the domestic-path share) when the
/// figures come from a scan; kept figures placed them when they were folded.
pub fn refresh(
    store: &dyn Store,
    prefixes: &PrefixData,
    now: UnixMicros,
    days: i64,
    rule: MinSample,
) -> Result<usize, StoreError> {
    let source = Source::of(store)?;
    let mut stored = 0;
    for back in 0..days {
        let day = UnixMicros(day_start(now).0 - back * DAY_US);
        stored += put_day(
            store,
            &compute_day_from(store, prefixes, day, source, rule)?,
        )?;
    }
    Ok(stored)
}

/// Recomputes and stores the given days (numbers since 1970-01-01) from the stored figures,
/// as [`refresh`]: O(probes of each day). The folder calls it for the days it changed.
pub fn store_days(store: &dyn Store, days: &[i64], rule: MinSample) -> Result<usize, StoreError> {
    let mut stored = 0;
    for day in days {
        let day = compute_day_from(
            store,
            &PrefixData::new(),
            UnixMicros(day.saturating_mul(DAY_US)),
            Source::Figures,
            rule,
        )?;
        stored += put_day(store, &day)?;
    }
    Ok(stored)
}

/// Stores each group's record of the day (with its publication under the day's rule) and
/// each country's operators' parts under [`parts_key`]; returns the records stored.
fn put_day(store: &dyn Store, day: &Day) -> Result<usize, StoreError> {
    let mut stored = 0;
    for (country, full) in &day.countries {
        let key = country.to_string();
        let mut record = full.clone();
        let parts = std::mem::take(&mut record.by_operator);
        record.published_under = Some(Box::new(PublishedDay {
            min_probes: day.rule.min_probes,
            day: published(full.clone(), day.rule, Group::Country, None),
        }));
        // The parts first: a record is never stored without the parts it was made from.
        put_json(store, &parts_key(&key), &full.day, &parts)?;
        put_json(store, &key, &full.day, &record)?;
        stored += 1;
    }
    for (asn, full) in &day.networks {
        let mut record = full.clone();
        if let Some(counted) = day.networks_published.get(asn) {
            record.published_under = Some(Box::new(PublishedDay {
                min_probes: day.rule.min_probes,
                day: counted.clone(),
            }));
        }
        put_json(store, &network_key(*asn), &full.day, &record)?;
        stored += 1;
    }
    Ok(stored)
}

fn put_json<T: Serialize>(
    store: &dyn Store,
    key: &str,
    date: &str,
    value: &T,
) -> Result<(), StoreError> {
    let json = serde_json::to_vec(value)
        .map_err(|e| StoreError::Backend(format!("encoding a rollup: {e}")))?;
    store.put_rollup(date, key, &json)
}

/// The trend of the balanced share, projected: never a measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionView {
    pub label: &'static str,
    pub slope_per_year_logit: f64,
    /// (years ahead of the last day, day number, projected share).
    pub points: Vec<(f64, f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub country: CountryCode,
    pub days: Vec<CountryDay>,
    /// Days where the method changes ([`method_breaks`]).
    pub method_breaks: Vec<MethodBreak>,
    /// `None` with fewer than 3 days over less than a week.
    pub projection: Option<ProjectionView>,
}

/// A network's days: the same figures, for the probes of one origin AS (so the balanced and
/// pooled shares coincide).
#[derive(Debug, Clone, Serialize)]
pub struct NetworkSeries {
    pub asn: u32,
    pub days: Vec<CountryDay>,
    /// Days where the method changes ([`method_breaks`]).
    pub method_breaks: Vec<MethodBreak>,
    pub projection: Option<ProjectionView>,
}

const PROJECTION_LABEL: &str = "Projection, not a measurement: a straight line fitted to the logit of the daily operator-balanced share, extended. It assumes the past trend continues.";

/// `YYYY-MM-DD` checked as a real UTC day; `None` otherwise (also for any other spelling of
/// one, so a day has one key).
pub fn parse_day(text: &str) -> Option<UnixMicros> {
    let start = crate::campaign::spec::parse_time(&format!("{text}T00:00:00Z"))?;
    (day_label(start) == text).then_some(start)
}

/// One country's stored figures of a past day, as published.
#[derive(Debug, Clone, Serialize)]
pub struct DayCountry {
    pub country: CountryCode,
    #[serde(flatten)]
    pub figures: CountryDay,
    /// IPv6 median minus IPv4 median; positive means IPv6 is slower.
    pub v6_penalty_ms: Option<f64>,
}

/// Every country's stored figures of one day (the historical map).
#[derive(Debug, Clone, Serialize)]
pub struct DayCountries {
    pub date: String,
    /// Always `rollups`: the day's stored daily figures, not the live 24-hour window.
    pub source: &'static str,
    pub method: &'static str,
    pub min_probes: usize,
    pub countries: Vec<DayCountry>,
}

const DAY_METHOD: &str = "Stored daily rollups: a probe counts for a UTC day if it sent a result that day with an origin in the prefix data; \
IPv6 works for it that day if one of its results reached a global IPv6 destination (collector/src/daily.rs). National share: operator-balanced, \
95% Wilson interval on the effective sample size of collector/src/rollup.rs, computed when the day was stored. Days under the minimum \
sample (min_probes) are insufficient data: n only.";

fn decode_day(key: &str, day: &str, json: &[u8]) -> Result<CountryDay, StoreError> {
    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
        key: format!("rollup {key}/{day}"),
        reason: e.to_string(),
    })
}

/// Every country's stored figures of `day` under `rule`: O(rollups of that day).
pub fn countries_on(
    store: &dyn Store,
    day: UnixMicros,
    rule: MinSample,
) -> Result<DayCountries, StoreError> {
    let date = day_label(day);
    let mut countries = Vec::new();
    let mut records = Vec::new();
    let mut parts = BTreeMap::new();
    for (key, json) in store.rollups_of_day(&date)? {
        // Networks (`asn:N`) and parts share the day's index; only country codes are countries.
        if let Some(country) = key.strip_prefix(PARTS_PREFIX) {
            parts.insert(country.to_owned(), json);
        } else if let Ok(country) = key.parse::<CountryCode>() {
            records.push((country, key, json));
        }
    }
    let mut parts = LazyParts::given(store, parts);
    for (country, key, json) in records {
        let day = decode_day(&key, &date, &json)?;
        let label = format!("{key}/{date}");
        let parts = parts.get(needs_parts(&day, rule), &key, &label)?;
        let figures = published(day, rule, Group::Country, parts);
        countries.push(DayCountry {
            country,
            v6_penalty_ms: rollup::v6_penalty_ms(
                figures.median_rtt_v6_ms,
                figures.median_rtt_v4_ms,
            ),
            figures,
        });
    }
    Ok(DayCountries {
        date,
        source: "rollups",
        method: DAY_METHOD,
        min_probes: rule.min_probes,
        countries,
    })
}

/// One country's stored figures of `day` under `rule`; `None` when none is stored.
pub fn country_on(
    store: &dyn Store,
    country: CountryCode,
    day: UnixMicros,
    rule: MinSample,
) -> Result<Option<DayCountry>, StoreError> {
    let date = day_label(day);
    let key = country.to_string();
    for (stored, json) in store.rollups(&key)? {
        if stored == date {
            let day = decode_day(&key, &date, &json)?;
            let parts = LazyParts::of_country(store, &key).get(
                needs_parts(&day, rule),
                &date,
                &format!("{key}/{date}"),
            )?;
            let figures = published(day, rule, Group::Country, parts);
            return Ok(Some(DayCountry {
                country,
                v6_penalty_ms: rollup::v6_penalty_ms(
                    figures.median_rtt_v6_ms,
                    figures.median_rtt_v4_ms,
                ),
                figures,
            }));
        }
    }
    Ok(None)
}

/// Every day published (no minimum sample): the tests' reference.
const EVERY_DAY: MinSample = MinSample { min_probes: 1 };

/// A country's stored days and the projection of their trend, every day published.
pub fn series(store: &dyn Store, country: CountryCode) -> Result<Series, StoreError> {
    series_with(store, country, EVERY_DAY)
}

/// A country's stored days under `rule` (days with fewer probes: insufficient data, left out
/// of the projection) and the projection of their trend.
pub fn series_with(
    store: &dyn Store,
    country: CountryCode,
    rule: MinSample,
) -> Result<Series, StoreError> {
    let (days, projection) = stored_days(store, &country.to_string(), rule, Group::Country)?;
    Ok(Series {
        country,
        method_breaks: method_breaks(&days),
        days,
        projection,
    })
}

/// A network's stored days and the projection of their trend, every day published.
pub fn network_series(store: &dyn Store, asn: u32) -> Result<NetworkSeries, StoreError> {
    network_series_with(store, asn, EVERY_DAY)
}

/// A network's stored days under `rule`, as [`series_with`].
pub fn network_series_with(
    store: &dyn Store,
    asn: u32,
    rule: MinSample,
) -> Result<NetworkSeries, StoreError> {
    let (days, projection) = stored_days(store, &network_key(asn), rule, Group::Network)?;
    Ok(NetworkSeries {
        asn,
        method_breaks: method_breaks(&days),
        days,
        projection,
    })
}

/// Every group's stored figures of one UTC day, by rollup key (a country code, or `asn:N` for
/// a network), every day published: O(rollups of that day), for readers that need a day or
/// two of every group at once (the alert rules).
pub fn groups_on(
    store: &dyn Store,
    day: UnixMicros,
) -> Result<BTreeMap<String, CountryDay>, StoreError> {
    let date = day_label(day);
    store
        .rollups_of_day(&date)?
        .into_iter()
        .filter(|(key, _)| !key.starts_with(PARTS_PREFIX))
        .map(|(key, json)| {
            let figures = decode_day(&key, &date, &json)?;
            // Under a minimum of 1 neither the group's kind nor its parts matter.
            Ok((key, published(figures, EVERY_DAY, Group::Country, None)))
        })
        .collect()
}

/// Which kind of group a stored day is of: how it is published under another minimum sample
/// than the one it was stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    /// Made again from its operators' parts.
    Country,
    /// Held back: which of its (country, network) cells are at the minimum is not stored.
    Network,
}

/// A stored day as published under `rule`: below the minimum, n and counts without any
/// share or median; otherwise the national figures over the operators the rule counts
/// (`rollup::national_share`: those under the minimum pooled, or left out), made from the
/// operators' parts, which are never published. The publication stored with the day is
/// taken when it was made under the same minimum; under a minimum of 1 every operator (and
/// every network cell) counts, which are the stored figures. Otherwise a country's day is
/// made from its `parts` (inline in days stored before the parts were kept apart).
fn published(
    mut day: CountryDay,
    rule: MinSample,
    group: Group,
    parts: Option<Vec<OperatorDay>>,
) -> CountryDay {
    let stored = day.published_under.take();
    let inline = std::mem::take(&mut day.by_operator);
    if rule.min_probes <= 1 {
        return day;
    }
    if let Some(stored) = stored
        && stored.min_probes == rule.min_probes
    {
        return stored.day;
    }
    let parts = if inline.is_empty() {
        parts.unwrap_or_default()
    } else {
        inline
    };
    // A day of an earlier method counted every operator on its own; without its parts there
    // is no telling whether one under the minimum is in it. A network's day of another
    // minimum (or an earlier method) may count probes of cells under this one.
    day.held_back = match group {
        Group::Country => parts.is_empty() && day.operators > 1,
        Group::Network => true,
    };
    if parts.is_empty() || day.held_back {
        // A day of one operator (networks, and countries of one) stands as stored.
        if !rule.allows(day.probes) || day.held_back {
            day.withhold();
        }
        return day;
    }
    // Everything from the parts alone, counts included: a record and parts written apart
    // (the two writes of `put_day`) must never mix an older record's figures with them.
    let every: Vec<(u32, &OperatorDay)> = parts.iter().map(|o| (o.asn, o)).collect();
    let Some(all) = counted(&every) else {
        day.withhold();
        return day;
    };
    day.probes = all.balanced.probes;
    day.operators = all.balanced.operators;
    if !rule.allows(day.probes) {
        day.withhold();
        return day;
    }
    let population = Population::of(parts.iter().map(|o| (o.asn, o.probes)), rule);
    if population.under_minimum.is_empty() {
        // Every operator named: the previous method's figure is this one.
        day.v6_works_previous_method = Some(all.balanced.overall.clone());
        day.set_figures(all);
        return day;
    }
    let units: Vec<(u32, &OperatorDay)> = parts
        .iter()
        .filter_map(|o| population.unit(o.asn).map(|unit| (unit, o)))
        .collect();
    match counted(&units) {
        Some(c) => {
            day.set_figures(c);
            day.v6_works_previous_method = None;
        }
        // With enough probes in all something is counted; kept safe regardless.
        None => day.withhold(),
    }
    day
}

/// Operators' parts of stored days, read once and only when a day needs them (a publication
/// under another minimum than the stored one): one country's parts by day, or one day's
/// parts by country.
struct LazyParts<'s> {
    store: &'s dyn Store,
    /// The parts key read on first need (a country's); `None` when `rows` came given.
    key: Option<String>,
    rows: Option<BTreeMap<String, Vec<u8>>>,
}

impl<'s> LazyParts<'s> {
    /// A country's parts, by day.
    fn of_country(store: &'s dyn Store, country_key: &str) -> Self {
        Self {
            store,
            key: Some(parts_key(country_key)),
            rows: None,
        }
    }

    /// A day's parts, by country key, from the day's rows already read.
    fn given(store: &'s dyn Store, rows: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            store,
            key: None,
            rows: Some(rows),
        }
    }

    /// The parts at `lookup` (a day, or a country key) when `needed`; `None` when not
    /// needed or not stored. `label` names the row in an error.
    fn get(
        &mut self,
        needed: bool,
        lookup: &str,
        label: &str,
    ) -> Result<Option<Vec<OperatorDay>>, StoreError> {
        if !needed {
            return Ok(None);
        }
        if self.rows.is_none() {
            let rows = match &self.key {
                Some(key) => self.store.rollups(key)?.into_iter().collect(),
                None => BTreeMap::new(),
            };
            self.rows = Some(rows);
        }
        let Some(json) = self.rows.as_ref().and_then(|rows| rows.get(lookup)) else {
            return Ok(None);
        };
        serde_json::from_slice(json)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                key: format!("rollup parts of {label}"),
                reason: e.to_string(),
            })
    }
}

/// Whether publishing `day` under `rule` needs its country's parts from the store.
fn needs_parts(day: &CountryDay, rule: MinSample) -> bool {
    rule.min_probes > 1
        && day.by_operator.is_empty()
        && day
            .published_under
            .as_ref()
            .is_none_or(|p| p.min_probes != rule.min_probes)
}

fn stored_days(
    store: &dyn Store,
    key: &str,
    rule: MinSample,
    group: Group,
) -> Result<(Vec<CountryDay>, Option<ProjectionView>), StoreError> {
    let mut days = Vec::new();
    let mut parts = LazyParts::of_country(store, key);
    for (date, json) in store.rollups(key)? {
        let day = decode_day(key, &date, &json)?;
        let needed = group == Group::Country && needs_parts(&day, rule);
        let parts = parts.get(needed, &date, &format!("{key}/{date}"))?;
        days.push(published(day, rule, group, parts));
    }
    let points: Vec<(f64, f64)> = days
        .iter()
        .filter_map(|d| Some((d.day_number as f64, d.v6_works.as_ref()?.balanced.share)))
        .collect();
    let horizons: Vec<f64> = PROJECTION_YEARS.iter().map(|y| y * 365.25).collect();
    let projection = rollup::project_share(&points, &horizons).map(|p| ProjectionView {
        label: PROJECTION_LABEL,
        slope_per_year_logit: p.slope_per_year_logit,
        points: PROJECTION_YEARS
            .iter()
            .zip(p.points)
            .map(|(years, (day, share))| (*years, day, share))
            .collect(),
    });
    Ok((days, projection))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;
    use sixmap_shared::prefixes::Enrichment;

    #[test]
    fn dates_in_queries_are_real_utc_days() {
        assert_eq!(parse_day("2024-02-29"), Some(UnixMicros(19_782 * DAY_US)));
        for bad in [
            "2023-02-29",
            "2024-2-29",
            "2024-02-29T00:00:00Z",
            "",
            "20240229",
            "2024-13-01",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_label(UnixMicros(0)), "1970-01-01");
        assert_eq!(day_label(UnixMicros(-1)), "1969-12-31");
        // 2024-02-29 12:00 UTC = 1709208000 s.
        assert_eq!(day_label(UnixMicros(1_709_208_000_000_000)), "2024-02-29");
        assert_eq!(day_label(UnixMicros(1_795_449_073_000_000)), "2026-11-23");
        assert_eq!(day_start(UnixMicros(DAY_US + 5)), UnixMicros(DAY_US));
        assert_eq!(day_start(UnixMicros(-5)), UnixMicros(-DAY_US));
    }

    fn result(probe: &str, sequence: u64, at: i64, works: bool, asn: u32) -> StoredResult {
        let origin = Enrichment {
            asn: Some(asn),
            as_name: None,
            country: "XA".parse().ok(),
        };
        let rtt = works.then_some(std::time::Duration::from_millis(20));
        crate::testing::ping_v6(
            probe.parse().unwrap(),
            sequence,
            UnixMicros(at),
            rtt,
            origin,
        )
    }

    #[test]
    fn daily_rollups_are_stored_and_projected() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let day0 = 20_400 * DAY_US; // 2025-11-08
        // Day 0: AS1 works (2 probes), AS2 does not (1 probe) -> balanced 0.5, pooled 2/3.
        // Day 10: all three work -> 1.0 is clamped to 0.999 for the logit.
        // Day 20: AS2 works, AS1's probes do not -> balanced 0.5.
        let p1 = "00000000000000a1";
        let p2 = "00000000000000a2";
        let p3 = "00000000000000b1";
        let results = [
            result(p1, 1, day0 + 3_600_000_000, true, 1),
            result(p2, 1, day0 + 7_200_000_000, true, 1),
            result(p3, 1, day0 + 7_300_000_000, false, 2),
            result(p1, 2, day0 + 10 * DAY_US, true, 1),
            result(p2, 2, day0 + 10 * DAY_US + 1, true, 1),
            result(p3, 2, day0 + 10 * DAY_US + 2, true, 2),
            result(p1, 3, day0 + 20 * DAY_US, false, 1),
            result(p2, 3, day0 + 20 * DAY_US + 1, false, 1),
            result(p3, 3, day0 + 20 * DAY_US + 2, true, 2),
        ];
        store.insert_results(&results).unwrap();
        let now = UnixMicros(day0 + 20 * DAY_US + 5_000_000);
        // Per day: the country and its two networks.
        assert_eq!(
            refresh(&store, &PrefixData::new(), now, 30, MinSample::default()).unwrap(),
            9
        );
        let series = series(&store, "XA".parse().unwrap()).unwrap();
        let shares: Vec<f64> = series
            .days
            .iter()
            .map(|d| d.v6_works.as_ref().unwrap().balanced.share)
            .collect();
        assert_eq!(shares, vec![0.5, 1.0, 0.5]);
        assert_eq!(series.days[0].day, "2025-11-08");
        assert_eq!(series.days[0].day_number, 20_400);
        assert!((series.days[0].v6_works.as_ref().unwrap().pooled.share - 2.0 / 3.0).abs() < 1e-12);
        // Under a minimum of three probes: day 0 (3 probes) stands; the trend uses only the
        // days with enough probes.
        let strict = series_with(&store, "XA".parse().unwrap(), MinSample::default()).unwrap();
        for (d, all) in strict.days.iter().zip(&series.days) {
            assert_eq!(d.probes, all.probes);
            assert_eq!(d.insufficient_data, d.probes < 3, "{d:?}");
            assert_eq!(d.v6_works.is_none(), d.probes < 3, "{d:?}");
        }
        assert_eq!(series.days[0].median_rtt_v6_ms, Some(20.0));
        assert_eq!(series.days[0].operators, 2);
        // Symmetric around day 10, so the fitted line is flat: the projection stays at the
        // mean logit, whatever the horizon.
        let projection = series.projection.unwrap();
        assert!(projection.label.contains("not a measurement"));
        assert!(projection.slope_per_year_logit.abs() < 1e-9);
        assert_eq!(projection.points.len(), 3);
        let (years, day, _) = projection.points[2];
        assert_eq!(years, 5.0);
        assert!((day - (20_420.0 + 5.0 * 365.25)).abs() < 1e-9);
        // AS1's own series: both probes work on days 0 and 10, neither on day 20.
        let as1 = network_series(&store, 1).unwrap();
        let shares: Vec<f64> = as1
            .days
            .iter()
            .map(|d| d.v6_works.as_ref().unwrap().pooled.share)
            .collect();
        // AS1 has two probes: under the default minimum, no day of it is published.
        let strict = network_series_with(&store, 1, MinSample::default()).unwrap();
        assert!(
            strict
                .days
                .iter()
                .all(|d| d.insufficient_data && d.v6_works.is_none())
        );
        assert!(strict.projection.is_none());
        assert_eq!(shares, vec![1.0, 1.0, 0.0]);
        assert_eq!(as1.days[0].operators, 1);
        assert_eq!(as1.days[0].probes, 2);
        // Refreshing again replaces, never duplicates.
        refresh(&store, &PrefixData::new(), now, 30, MinSample::default()).unwrap();
        assert_eq!(series_len(&store), 3);
    }

    /// Each stored day names its method; a day stored before ids existed (no `method_id`)
    /// reads as null, the series marks the change, and the new days carry the previous
    /// method's figure beside the current one where it is the same figure.
    #[test]
    fn series_mark_where_the_method_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let day0 = 20_400 * DAY_US;
        // Day 1: AS1's two probes work, AS2's does not: operators disagree, so the current
        // interval is wider than Kish's.
        let results = [
            result("00000000000000a1", 1, day0 + DAY_US + 1, true, 1),
            result("00000000000000a2", 1, day0 + DAY_US + 2, true, 1),
            result("00000000000000b1", 1, day0 + DAY_US + 3, false, 2),
        ];
        store.insert_results(&results).unwrap();
        refresh(
            &store,
            &PrefixData::new(),
            UnixMicros(day0 + DAY_US + 10),
            1,
            MinSample::default(),
        )
        .unwrap();
        // Day 0 as an older collector stored it.
        let legacy = serde_json::json!({
            "day": "2025-11-08", "day_number": 20_400, "probes": 3, "operators": 2,
            "v6_works": null, "median_rtt_v6_ms": null, "median_rtt_v4_ms": null,
        });
        store
            .put_rollup("2025-11-08", "XA", legacy.to_string().as_bytes())
            .unwrap();
        let series = series(&store, "XA".parse().unwrap()).unwrap();
        let ids: Vec<_> = series.days.iter().map(|d| d.method_id.as_deref()).collect();
        assert_eq!(ids, [None, Some(METHOD_ID)]);
        // A day of unknown method before one of a known method is no break.
        assert_eq!(series.method_breaks, Vec::<MethodBreak>::new());
        // A change between two known methods is.
        let mut days = series.days.clone();
        days[0].method_id = Some("sixmap-daily/1".into());
        assert_eq!(
            method_breaks(&days),
            [MethodBreak {
                day: "2025-11-09".into(),
                before: Some("sixmap-daily/1".into()),
                after: Some(METHOD_ID.into()),
            }]
        );
        // Every operator named (no minimum): the previous method's figure is this one.
        let day1 = &series.days[1];
        let now = &day1.v6_works.as_ref().unwrap().balanced;
        let before = day1.v6_works_previous_method.as_ref().unwrap();
        assert_eq!(before, now);
        let json = serde_json::to_value(&series).unwrap();
        assert_eq!(json["days"][1]["method_id"], METHOD_ID, "{json}");
        // The operators' parts are stored, never published.
        assert!(json["days"][1].get("by_operator").is_none(), "{json}");
        // AS2 (one probe) under a minimum of 2, alone there: left out, and the previous
        // method, which counted it, is not shown beside.
        let two = series_with(&store, "XA".parse().unwrap(), MinSample { min_probes: 2 }).unwrap();
        let day1 = &two.days[1];
        assert_eq!(day1.v6_works.as_ref().unwrap().balanced.share, 1.0);
        assert!(day1.v6_works_previous_method.is_none());
        // Under the minimum sample, the previous method's figure is held back too.
        let strict =
            series_with(&store, "XA".parse().unwrap(), MinSample { min_probes: 4 }).unwrap();
        assert!(strict.days[1].v6_works_previous_method.is_none());
    }

    /// AS1's three probes, all working; AS2's three, working as `as2` says; AS3's one probe,
    /// working as `lone` says: (probe, works, asn).
    fn three_operators(as2: [bool; 3], lone: bool) -> [(&'static str, bool, u32); 7] {
        [
            ("00000000000000a1", true, 1),
            ("00000000000000a2", true, 1),
            ("00000000000000a3", true, 1),
            ("00000000000000b1", as2[0], 2),
            ("00000000000000b2", as2[1], 2),
            ("00000000000000b3", as2[2], 2),
            ("00000000000000c1", lone, 3),
        ]
    }

    /// Equal but for each number's last bits.
    fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                    "{path}: {x} vs {y}"
                );
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{path}: lengths");
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    assert_json_close(x, y, &format!("{path}[{i}]"));
                }
            }
            (Value::Object(x), Value::Object(y)) => {
                let keys: Vec<&String> = x.keys().collect();
                assert_eq!(keys, y.keys().collect::<Vec<_>>(), "{path}: keys");
                for (k, v) in x {
                    assert_json_close(v, &y[k], &format!("{path}.{k}"));
                }
            }
            _ => assert_eq!(a, b, "{path}"),
        }
    }

    /// Published from the parts, a day takes nothing from its record but the day: a record
    /// stored apart from its parts (a crash between `put_day`'s two writes) cannot mix an
    /// older record's figures, counted under another minimum, with newer parts.
    #[test]
    fn a_day_published_from_its_parts_takes_nothing_else_from_its_record() {
        let day0 = 20_400 * DAY_US;
        let at = UnixMicros(day0 + DAY_US - 1);
        // Two operators of three probes, and (`lone`) AS3's one probe, working.
        let store_day = |store: &SledStore, lone: bool| {
            let probes = three_operators([false, false, true], true);
            let results: Vec<StoredResult> = probes
                .iter()
                .take(if lone { 7 } else { 6 })
                .enumerate()
                .map(|(i, (probe, works, asn))| {
                    result(probe, 1, day0 + 1000 + i as i64, *works, *asn)
                })
                .collect();
            store.insert_results(&results).unwrap();
            refresh(
                store,
                &PrefixData::new(),
                at,
                1,
                MinSample { min_probes: 1 },
            )
            .unwrap();
        };
        let rule = MinSample { min_probes: 3 };
        let published_by = |store: &SledStore| {
            serde_json::to_value(series_with(store, "XA".parse().unwrap(), rule).unwrap()).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let reference = SledStore::open(dir.path()).unwrap();
        store_day(&reference, false);
        let expected = published_by(&reference);
        // A record counting AS3's probe on its own (under a minimum of 1), with parts in
        // which no operator is under the minimum of 3: the record's figures would give AS3
        // away.
        let other = tempfile::tempdir().unwrap();
        let mixed = SledStore::open(other.path()).unwrap();
        store_day(&mixed, true);
        assert_ne!(published_by(&mixed), expected);
        let date = day_label(at);
        let parts = reference
            .rollups(&parts_key("XA"))
            .unwrap()
            .into_iter()
            .find(|(day, _)| *day == date)
            .unwrap()
            .1;
        mixed.put_rollup(&date, &parts_key("XA"), &parts).unwrap();
        assert_json_close(&published_by(&mixed), &expected, "");
    }

    /// A network's series counts only its (country, network) cells at the minimum sample: its
    /// figure beside a country's operators must not give away its probes in a country where
    /// it is under the minimum. Days stored under another minimum are held back.
    #[test]
    fn a_network_series_gives_no_cell_under_the_minimum_away() {
        let day0 = 20_400 * DAY_US;
        let rule = MinSample { min_probes: 3 };
        let publish = |lone: bool, stored_under: MinSample, read_under: MinSample| {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path()).unwrap();
            // AS1: three probes in XA (two working), one in XB (`lone`).
            let cells = [
                ("00000000000000a1", true, "XA"),
                ("00000000000000a2", true, "XA"),
                ("00000000000000a3", false, "XA"),
                ("00000000000000b1", lone, "XB"),
            ];
            let results: Vec<StoredResult> = cells
                .iter()
                .enumerate()
                .map(|(i, (probe, works, country))| {
                    crate::testing::ping_v6(
                        probe.parse().unwrap(),
                        1,
                        UnixMicros(day0 + 1000 + i as i64),
                        works.then_some(std::time::Duration::from_millis(20)),
                        Enrichment {
                            asn: Some(1),
                            as_name: None,
                            country: country.parse().ok(),
                        },
                    )
                })
                .collect();
            store.insert_results(&results).unwrap();
            let at = UnixMicros(day0 + DAY_US - 1);
            refresh(&store, &PrefixData::new(), at, 1, stored_under).unwrap();
            (
                network_series_with(&store, 1, read_under).unwrap(),
                network_series(&store, 1).unwrap(),
            )
        };
        let (works, all_works) = publish(true, rule, rule);
        let (broken, all_broken) = publish(false, rule, rule);
        assert_eq!(
            serde_json::to_value(&works).unwrap(),
            serde_json::to_value(&broken).unwrap()
        );
        let day = &works.days[0];
        assert_eq!(day.probes, 3);
        assert_eq!(day.v6_works.as_ref().unwrap().balanced.share, 2.0 / 3.0);
        // Every cell counts without a minimum: the test means something.
        assert_eq!(all_works.days[0].probes, 4);
        assert_ne!(
            all_works.days[0].v6_works.as_ref().unwrap().balanced.share,
            all_broken.days[0].v6_works.as_ref().unwrap().balanced.share
        );
        // Stored under another minimum: which cells reach this one is not known.
        let (other, _) = publish(true, MinSample { min_probes: 2 }, rule);
        let day = &other.days[0];
        assert!(day.held_back && day.insufficient_data && day.v6_works.is_none());
        // A network whose every cell is under the minimum: insufficient data, n of none.
        let five = MinSample { min_probes: 5 };
        let (none, _) = publish(true, five, five);
        let day = &none.days[0];
        assert!(!day.held_back && day.insufficient_data && day.v6_works.is_none());
        assert_eq!(day.probes, 0);
    }

    /// A stored day's national figures under the minimum sample: whatever the probe of an
    /// operator alone under it did, nothing published of the day changes (the series, the
    /// historical map, its CSV source); two under it that reach it together are pooled. A
    /// day stored by an earlier method, without the operators' parts, is held back.
    #[test]
    fn a_stored_day_gives_no_operator_under_the_minimum_away() {
        let day0 = 20_400 * DAY_US;
        let rule = MinSample { min_probes: 3 };
        // AS1: three probes, all working; AS2: three, one working; AS3's probe `lone`.
        let publish = |lone: bool, extra: &[(&str, bool, u32)]| {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path()).unwrap();
            let mut results = Vec::new();
            let probes = three_operators([true, false, false], lone);
            for (i, (probe, works, asn)) in probes.iter().chain(extra).enumerate() {
                results.push(result(probe, 1, day0 + 1000 + i as i64, *works, *asn));
            }
            store.insert_results(&results).unwrap();
            // Stored under the rule (its publication kept with the day) and under another
            // (made again from the operators' parts): published alike.
            let mut published = Vec::new();
            for stored_under in [rule, MinSample { min_probes: 2 }] {
                let at = UnixMicros(day0 + DAY_US - 1);
                refresh(&store, &PrefixData::new(), at, 1, stored_under).unwrap();
                let strict = series_with(&store, "XA".parse().unwrap(), rule).unwrap();
                let map = countries_on(&store, UnixMicros(day0), rule).unwrap();
                let one =
                    country_on(&store, "XA".parse().unwrap(), UnixMicros(day0), rule).unwrap();
                published.push(serde_json::to_value((&strict, &map, &one)).unwrap());
            }
            // A stored figure is read back from JSON, which may move its last bit.
            assert_json_close(&published[0], &published[1], "");
            let all = series(&store, "XA".parse().unwrap()).unwrap();
            (
                published.swap_remove(0),
                all.days[0].v6_works.clone().unwrap().balanced.share,
            )
        };
        let (works, all_works) = publish(true, &[]);
        let (broken, all_broken) = publish(false, &[]);
        assert_eq!(works, broken);
        // The reference (no minimum) does depend on it: the test means something.
        assert_ne!(all_works, all_broken);
        let day = &works[0]["days"][0];
        assert_eq!(
            day["v6_works"]["balanced"]["share"],
            (1.0 + 1.0 / 3.0) / 2.0,
            "{day}"
        );
        assert_eq!((&day["probes"], &day["operators"]), (&7.into(), &3.into()));
        assert_eq!(day["v6_works"]["pooled"]["n"], 6.0, "{day}");
        assert!(day["v6_works_previous_method"].is_null(), "{day}");
        assert!(!works.to_string().contains("by_operator"), "{works}");
        assert!(!works.to_string().contains("published_under"), "{works}");
        // With AS4's two probes, AS3 and AS4 reach the minimum together: one unit, their
        // three probes pooled (which one works does not show).
        let (pooled, _) = publish(
            true,
            &[
                ("00000000000000d1", false, 4),
                ("00000000000000d2", false, 4),
            ],
        );
        let (moved, _) = publish(
            false,
            &[
                ("00000000000000d1", true, 4),
                ("00000000000000d2", false, 4),
            ],
        );
        assert_eq!(pooled, moved);
        let day = &pooled[0]["days"][0];
        let share = day["v6_works"]["balanced"]["share"].as_f64().unwrap();
        assert!(
            (share - (1.0 + 1.0 / 3.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12,
            "{day}"
        );

        // A day as sixmap-daily/2 stored it: every operator on its own, no parts.
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let share = rollup::wilson(2.0, 4.0).unwrap();
        let legacy = serde_json::json!({
            "method_id": "sixmap-daily/2", "day": "2025-11-08", "day_number": 20_400,
            "probes": 4, "operators": 2,
            "v6_works": { "balanced": share, "pooled": share },
            "v6_works_previous_method": share,
            "median_rtt_v6_ms": 20.0, "median_rtt_v4_ms": null,
        });
        store
            .put_rollup("2025-11-08", "XA", legacy.to_string().as_bytes())
            .unwrap();
        let held = country_on(&store, "XA".parse().unwrap(), UnixMicros(day0), rule)
            .unwrap()
            .unwrap();
        assert!(held.figures.held_back && held.figures.insufficient_data);
        assert!(held.figures.v6_works.is_none() && held.figures.v6_works_previous_method.is_none());
        assert_eq!(held.figures.median_rtt_v6_ms, None);
        let json = serde_json::to_value(&held).unwrap();
        assert_eq!(
            (&json["held_back"], &json["probes"]),
            (&true.into(), &4.into())
        );
        // Without a minimum (the alerts' reading) there is nothing to hold back.
        let every = series(&store, "XA".parse().unwrap()).unwrap();
        assert!(!every.days[0].held_back && every.days[0].v6_works.is_some());
    }

    /// A stored result of probe p1 (AS1, XA) towards the synthetic global destination.
    fn with_outcome(
        sequence: u64,
        at: i64,
        outcome: Outcome,
        target: Option<&str>,
    ) -> StoredResult {
        let mut stored = result("00000000000000a1", sequence, at, true, 1);
        stored.result.outcome = outcome;
        stored.target_origin = target.map(|country| Enrichment {
            asn: None,
            as_name: None,
            country: country.parse().ok(),
        });
        stored
    }

    fn trace(hops: &[&str]) -> Outcome {
        use sixmap_shared::measurement::{
            HopAnswer, HopReply, TraceProtocol, TraceStop, TracerouteHop, TracerouteResult,
        };
        Outcome::Traceroute(TracerouteResult {
            protocol: TraceProtocol::Icmp,
            flow_label: 0,
            hops: hops
                .iter()
                .enumerate()
                .map(|(i, from)| TracerouteHop {
                    hop_limit: i as u8 + 1,
                    replies: vec![Some(HopReply {
                        from: from.parse().unwrap(),
                        rtt_ns: 1_000_000,
                        answer: HopAnswer::Icmp {
                            icmp_type: 3,
                            icmp_code: 0,
                            mtu: None,
                        },
                    })],
                })
                .collect(),
            reached_destination: true,
            stop: TraceStop::Reached,
            packets_sent: hops.len() as u32,
            reused_hops: 0,
        })
    }

    #[test]
    fn path_quality_is_pooled_with_intervals() {
        use sixmap_shared::measurement::{
            ExtHeaderOutcome, ExtHeaderResult, ExtHeaderType, PmtuResult,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let t = 20_400 * DAY_US + 3_600_000_000;
        let pmtu = |black_hole: bool| {
            Outcome::Pmtu(PmtuResult {
                path_mtu: 1280,
                black_hole,
                black_hole_hop: black_hole.then_some(3),
                black_hole_from: None,
                too_big: Vec::new(),
                packets_sent: 10,
                fault_path: None,
            })
        };
        let ext = |dropped: &[(ExtHeaderType, bool)]| {
            Outcome::ExtHeaders(ExtHeaderResult {
                outcomes: dropped
                    .iter()
                    .map(|(header, dropped)| ExtHeaderOutcome {
                        header: *header,
                        survived: !dropped,
                        dropped_at_hop: dropped.then_some(2),
                        last_responder: None,
                        icmp_error: None,
                    })
                    .collect(),
                packets_sent: 6,
                fault_path: None,
            })
        };
        use ExtHeaderType::{DestinationOptions as Dst, Fragment as Frag, HopByHop as Hbh};
        let mut results = vec![
            // Pings: one answered, one lost -> loss 1/2.
            result("00000000000000a1", 1, t, true, 1),
            result("00000000000000a1", 2, t + 1, false, 1),
            // PMTU: one black hole in three.
            with_outcome(3, t + 2, pmtu(true), None),
            with_outcome(4, t + 3, pmtu(false), None),
            with_outcome(5, t + 4, pmtu(false), None),
            // Extension headers: HBH dropped 1/2, DstOpts 0/1, Fragment 1/1.
            with_outcome(
                6,
                t + 5,
                ext(&[(Hbh, true), (Dst, false), (Frag, true)]),
                None,
            ),
            with_outcome(7, t + 6, ext(&[(Hbh, false)]), None),
            // Traceroutes to a destination in XA: one stays in XA, one crosses XB; one to XB
            // does not count (not a domestic destination).
            with_outcome(8, t + 7, trace(&["2a00:1::1", "2a00:1::2"]), Some("XA")),
            with_outcome(9, t + 8, trace(&["2a00:1::1", "2a00:2::1"]), Some("XA")),
            with_outcome(10, t + 9, trace(&["2a00:2::1"]), Some("XB")),
        ];
        // A lab (documentation-range) destination counts for nothing.
        let mut lab = with_outcome(11, t + 10, pmtu(true), None);
        lab.result.destination = Some("2001:db8::1".parse().unwrap());
        results.push(lab);
        store.insert_results(&results).unwrap();
        let mut prefixes = PrefixData::new();
        prefixes
            .country
            .insert("2a00:1::".parse().unwrap(), 32, "XA".parse().unwrap())
            .unwrap();
        prefixes
            .country
            .insert("2a00:2::".parse().unwrap(), 32, "XB".parse().unwrap())
            .unwrap();
        refresh(&store, &prefixes, UnixMicros(t), 1, MinSample::default()).unwrap();
        let day = series(&store, "XA".parse().unwrap())
            .unwrap()
            .days
            .remove(0);
        let check = |p: &Option<Proportion>, hits: f64, n: f64| {
            let p = p.as_ref().expect("a figure");
            assert_eq!((p.successes, p.n), (hits, n));
            assert_eq!(Some(p), rollup::wilson(hits, n).as_ref());
        };
        check(&day.ping_loss_v6, 1.0, 2.0);
        check(&day.pmtu_black_holes, 1.0, 3.0);
        // Wilson 1/3: [0.0615, 0.7923], by hand from the score interval.
        let holes = day.pmtu_black_holes.as_ref().unwrap();
        assert!((holes.low - 0.0615).abs() < 1e-4 && (holes.high - 0.7923).abs() < 1e-4);
        check(&day.ext_header_drops.get("hbh").cloned(), 1.0, 2.0);
        check(&day.ext_header_drops.get("dst").cloned(), 0.0, 1.0);
        check(&day.ext_header_drops.get("frag").cloned(), 1.0, 1.0);
        check(&day.domestic_paths, 1.0, 2.0);
    }

    fn series_len(store: &SledStore) -> usize {
        series(store, "XA".parse().unwrap()).unwrap().days.len()
    }
}
