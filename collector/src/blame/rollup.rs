//! "Where IPv6 breaks" per country and per probe network: the attributed failures of the
//! last [`WINDOW_DAYS`] days, counted per placement, per failure and per probe network, and
//! the networks held responsible most often.
//!
//! Read from the `breaks` figure rows kept as results arrive (`crate::figures`, one row per
//! day, probe origin, failure, placement and responsible AS), one key range per day holding
//! only the country's rows, so a request costs O(the country's groups of the window), never
//! O(results) nor the other countries' rows; a store without figures is scanned instead, as
//! the other readers do. [`summarize`] is pure.

use super::{Failure, Placement};
use crate::figures::{DAY_US, Figure, FigureKey, FigureSet, Source, breaks_of_country, read};
use crate::rollup::MinSample;
use crate::store::{Store, StoreError};
use serde::Serialize;
use sixmap_shared::UnixMicros;
use sixmap_shared::prefixes::{CountryCode, PrefixData};
use std::collections::BTreeMap;

/// Days summed, today included.
pub const WINDOW_DAYS: i64 = 30;
/// Networks held responsible that are listed, most often first.
pub const TOP_RESPONSIBLE: usize = 10;

/// One row of the breaks figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakRow {
    pub country: Option<CountryCode>,
    pub asn: Option<u32>,
    pub failure: Failure,
    pub placement: Placement,
    pub responsible: Option<u32>,
    pub count: u64,
}

/// Counts per placement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Placements {
    pub access: u64,
    pub transit: u64,
    pub destination: u64,
    pub unknown: u64,
}

impl Placements {
    fn add(&mut self, placement: Placement, n: u64) {
        *match placement {
            Placement::Access => &mut self.access,
            Placement::Transit => &mut self.transit,
            Placement::Destination => &mut self.destination,
            Placement::Unknown => &mut self.unknown,
        } += n;
    }
}

/// Counts per failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Failures {
    pub v6_broken: u64,
    pub pmtu_black_hole: u64,
    pub ext_header_drop: u64,
}

impl Failures {
    fn add(&mut self, failure: Failure, n: u64) {
        *match failure {
            Failure::V6Broken => &mut self.v6_broken,
            Failure::PmtuBlackHole => &mut self.pmtu_black_hole,
            Failure::ExtHeaderDrop => &mut self.ext_header_drop,
        } += n;
    }
}

/// The failures seen by the probes of one network (their origin AS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkBreaks {
    /// `None`: probes whose AS the prefix data does not know.
    pub asn: Option<u32>,
    pub total: u64,
    pub placements: Placements,
    pub failures: Failures,
}

/// A network held responsible, and where it sat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Responsible {
    pub asn: u32,
    pub count: u64,
    pub placements: Placements,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountryBreaks {
    pub country: CountryCode,
    /// The publication rule's minimum of probes, of the country and of each network named.
    pub min_probes: usize,
    /// The country has fewer probes: no figure at all (one volunteer's failures would be
    /// published as the country's).
    pub insufficient_data: bool,
    /// First and last UTC day summed (YYYY-MM-DD).
    pub from: String,
    pub to: String,
    pub source: Source,
    /// Attributed failures seen by probes in the country.
    pub total: u64,
    pub placements: Placements,
    pub failures: Failures,
    /// Per probe network with at least `min_probes` probes, most failures first.
    pub networks: Vec<NetworkBreaks>,
    /// The probe networks with fewer, together and unnamed (`asn` null).
    pub networks_under_minimum: Option<NetworkBreaks>,
    /// The networks held responsible most often (at most [`TOP_RESPONSIBLE`]).
    pub responsible: Vec<Responsible>,
}

/// The country's summary of `rows` (rows of other countries are passed over).
pub fn summarize(
    country: CountryCode,
    rows: impl IntoIterator<Item = BreakRow>,
) -> (
    u64,
    Placements,
    Failures,
    Vec<NetworkBreaks>,
    Vec<Responsible>,
) {
    let mut total = 0;
    let mut placements = Placements::default();
    let mut failures = Failures::default();
    let mut networks: BTreeMap<Option<u32>, NetworkBreaks> = BTreeMap::new();
    let mut responsible: BTreeMap<u32, Responsible> = BTreeMap::new();
    for row in rows.into_iter().filter(|r| r.country == Some(country)) {
        total += row.count;
        placements.add(row.placement, row.count);
        failures.add(row.failure, row.count);
        let network = networks.entry(row.asn).or_insert_with(|| NetworkBreaks {
            asn: row.asn,
            total: 0,
            placements: Placements::default(),
            failures: Failures::default(),
        });
        network.total += row.count;
        network.placements.add(row.placement, row.count);
        network.failures.add(row.failure, row.count);
        if let Some(asn) = row.responsible {
            let r = responsible.entry(asn).or_insert_with(|| Responsible {
                asn,
                count: 0,
                placements: Placements::default(),
            });
            r.count += row.count;
            r.placements.add(row.placement, row.count);
        }
    }
    let mut networks: Vec<NetworkBreaks> = networks.into_values().collect();
    networks.sort_by(|a, b| b.total.cmp(&a.total).then(a.asn.cmp(&b.asn)));
    let mut responsible: Vec<Responsible> = responsible.into_values().collect();
    responsible.sort_by(|a, b| b.count.cmp(&a.count).then(a.asn.cmp(&b.asn)));
    responsible.truncate(TOP_RESPONSIBLE);
    (total, placements, failures, networks, responsible)
}

fn row_of(key: FigureKey, figure: &Figure) -> Option<BreakRow> {
    match (key, figure) {
        (
            FigureKey::Breaks {
                country,
                asn,
                failure,
                placement,
                responsible,
                ..
            },
            Figure::Breaks(b),
        ) => Some(BreakRow {
            country,
            asn,
            failure,
            placement,
            responsible,
            count: b.count,
        }),
        _ => None,
    }
}

/// A country's breaks rows, where they came from, and how many stored rows (or results,
/// scanning) were read to find them: the work a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryRows {
    pub rows: Vec<BreakRow>,
    pub source: Source,
    pub read: usize,
}

/// The breaks rows of `country`'s probes on days `[from_day, to_day)` (day numbers since the
/// epoch). From the figures one key range per day (read in one request), each holding only
/// that country's rows (their key starts with kind, day, country:
/// `figures::breaks_of_country`), so a request costs O(the country's rows), whatever the
/// other countries have; folded from a scan of the results when the store keeps no figures.
pub fn rows(
    store: &dyn Store,
    country: CountryCode,
    from_day: i64,
    to_day: i64,
) -> Result<CountryRows, StoreError> {
    let source = Source::of(store)?;
    let mut out = Vec::new();
    let mut visited = 0;
    match source {
        Source::Figures => {
            let ranges: Vec<_> = (from_day..to_day)
                .map(|day| breaks_of_country(day, country))
                .collect();
            let mut failed = None;
            store.figure_ranges(&ranges, &mut |key, value| {
                visited += 1;
                let decoded = FigureKey::decode(key)
                    .and_then(|k| Figure::decode(value).map(|f| (k, f)))
                    .map_err(|e| read::corrupt(key, e));
                match decoded {
                    Ok((k, f)) => {
                        out.extend(row_of(k, &f).filter(|r| r.country == Some(country)));
                        true
                    }
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Source::Scan => {
            let mut set = FigureSet::default();
            let none = PrefixData::default();
            store.scan_results_between(
                UnixMicros(from_day.saturating_mul(DAY_US)),
                UnixMicros(to_day.saturating_mul(DAY_US)),
                &mut |stored| {
                    visited += 1;
                    // Only the country's attributed results make its rows; the rest would
                    // only fill the set with rows thrown away below.
                    if stored
                        .blame
                        .is_some_and(|b| b.probe_country == Some(country))
                    {
                        set.fold(&stored, &none, i64::MAX);
                    }
                    !crate::limits::readers::cancelled()
                },
            )?;
            crate::limits::readers::check()?;
            out.extend(set.rows.into_iter().filter_map(|(k, f)| row_of(k, &f)));
        }
    }
    Ok(CountryRows {
        rows: out,
        source,
        read: visited,
    })
}

fn date(day: i64) -> String {
    crate::daily::day_label(UnixMicros(day.saturating_mul(DAY_US)))
}

/// The enrolled, unrevoked probes of `country` per origin AS (`None`: AS unknown).
pub fn probes_per_network(
    probes: &[crate::store::ProbeRecord],
    country: CountryCode,
) -> BTreeMap<Option<u32>, usize> {
    let mut out = BTreeMap::new();
    for origin in probes
        .iter()
        .filter(|p| p.revoked_at.is_none())
        .filter_map(|p| p.origin.as_ref())
        .filter(|o| o.country == Some(country))
    {
        *out.entry(origin.asn).or_insert(0) += 1;
    }
    out
}

/// The publication rule on a country's breaks: with fewer than `rule.min_probes` probes in
/// the country, nothing; probe networks with fewer are summed into one unnamed row when
/// together they have at least the minimum, else left out of the country's figures; either
/// way they are not listed among the responsible networks (an access fault names the
/// probe's own network). The probes counted are the networks' probes, not only those that saw a failure:
/// a figure then points at a network of at least `min_probes` volunteers, never at one.
pub fn publishable(
    mut breaks: CountryBreaks,
    per_network: &BTreeMap<Option<u32>, usize>,
    rule: MinSample,
) -> CountryBreaks {
    breaks.min_probes = rule.min_probes;
    let probes_of = |asn: Option<u32>| per_network.get(&asn).copied().unwrap_or(0);
    if !rule.allows(per_network.values().sum()) {
        return CountryBreaks {
            insufficient_data: true,
            total: 0,
            placements: Placements::default(),
            failures: Failures::default(),
            networks: Vec::new(),
            networks_under_minimum: None,
            responsible: Vec::new(),
            ..breaks
        };
    }
    let (named, few): (Vec<_>, Vec<_>) = std::mem::take(&mut breaks.networks)
        .into_iter()
        .partition(|n| rule.allows(probes_of(n.asn)));
    // As in the national shares (`rollup::national_share`): the networks under the minimum
    // are pooled into one unnamed row when together they reach it; else they are left out
    // of the country's figures too, or the country's total minus the named networks' would
    // be theirs (one volunteer's failures, when the small network is one probe).
    let pooled: usize = per_network.values().filter(|p| !rule.allows(**p)).sum();
    if rule.allows(pooled) {
        breaks.networks_under_minimum = (!few.is_empty()).then(|| sum_of(&few));
    } else if !few.is_empty() {
        let counted = sum_of(&named);
        breaks.total = counted.total;
        breaks.placements = counted.placements;
        breaks.failures = counted.failures;
    }
    breaks.networks = named;
    // A network that shows up among the probe networks under the minimum is never named as
    // responsible, even when no counted probe is in it (a revoked volunteer's results in the
    // window, or a probe whose record names another AS than its results' source): an access
    // fault would point at the volunteer's own network.
    let unnamed: std::collections::BTreeSet<u32> = few.iter().filter_map(|n| n.asn).collect();
    breaks.responsible.retain(|r| {
        let probes = probes_of(Some(r.asn));
        !unnamed.contains(&r.asn) && (probes == 0 || rule.allows(probes))
    });
    breaks
}

/// The networks' breaks summed, in one unnamed row.
fn sum_of(networks: &[NetworkBreaks]) -> NetworkBreaks {
    let mut sum = NetworkBreaks {
        asn: None,
        total: 0,
        placements: Placements::default(),
        failures: Failures::default(),
    };
    for n in networks {
        sum.total += n.total;
        for (p, count) in [
            (Placement::Access, n.placements.access),
            (Placement::Transit, n.placements.transit),
            (Placement::Destination, n.placements.destination),
            (Placement::Unknown, n.placements.unknown),
        ] {
            sum.placements.add(p, count);
        }
        sum.failures.v6_broken += n.failures.v6_broken;
        sum.failures.pmtu_black_hole += n.failures.pmtu_black_hole;
        sum.failures.ext_header_drop += n.failures.ext_header_drop;
    }
    sum
}

/// The country's "where IPv6 breaks" over the [`WINDOW_DAYS`] days ending on `now`'s day,
/// under the publication rule ([`publishable`]).
pub fn country(
    store: &dyn Store,
    country: CountryCode,
    rule: MinSample,
    now: UnixMicros,
) -> Result<CountryBreaks, StoreError> {
    let today = now.0.div_euclid(DAY_US);
    let from_day = today - (WINDOW_DAYS - 1);
    let CountryRows { rows, source, .. } = rows(store, country, from_day, today + 1)?;
    let (total, placements, failures, networks, responsible) = summarize(country, rows);
    let per_network = probes_per_network(&store.probes()?, country);
    Ok(publishable(
        CountryBreaks {
            country,
            min_probes: rule.min_probes,
            insufficient_data: false,
            from: date(from_day),
            to: date(today),
            source,
            total,
            placements,
            failures,
            networks,
            networks_under_minimum: None,
            responsible,
        },
        &per_network,
        rule,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        country: &str,
        asn: Option<u32>,
        failure: Failure,
        placement: Placement,
        responsible: Option<u32>,
        count: u64,
    ) -> BreakRow {
        BreakRow {
            country: country.parse().ok(),
            asn,
            failure,
            placement,
            responsible,
            count,
        }
    }

    #[test]
    fn a_country_is_summed_per_placement_network_and_responsible_network() {
        use Failure::*;
        use Placement::*;
        let rows = vec![
            row("XA", Some(1), V6Broken, Access, Some(1), 5),
            row("XA", Some(1), PmtuBlackHole, Transit, Some(9), 2),
            row("XA", Some(2), V6Broken, Transit, Some(9), 3),
            row("XA", Some(2), ExtHeaderDrop, Destination, Some(7), 1),
            row("XA", None, V6Broken, Unknown, None, 4),
            // Another country's rows are not counted.
            row("XB", Some(3), V6Broken, Access, Some(3), 100),
        ];
        let (total, placements, failures, networks, responsible) =
            summarize("XA".parse().unwrap(), rows);
        assert_eq!(total, 15);
        assert_eq!(
            placements,
            Placements {
                access: 5,
                transit: 5,
                destination: 1,
                unknown: 4
            }
        );
        assert_eq!(
            failures,
            Failures {
                v6_broken: 12,
                pmtu_black_hole: 2,
                ext_header_drop: 1
            }
        );
        let order: Vec<(Option<u32>, u64)> = networks.iter().map(|n| (n.asn, n.total)).collect();
        assert_eq!(order, vec![(Some(1), 7), (None, 4), (Some(2), 4)]);
        let order: Vec<(u32, u64)> = responsible.iter().map(|r| (r.asn, r.count)).collect();
        assert_eq!(order, vec![(1, 5), (9, 5), (7, 1)]);
        assert_eq!(responsible[1].placements.transit, 5);
    }

    /// Breaks rows of many countries in a store that keeps figures: a country's request reads
    /// its own rows only, and finds the same as a summary of every row.
    #[test]
    fn a_request_reads_only_its_countrys_rows() {
        use crate::store::{FigureStore, SledStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let xa: CountryCode = "XA".parse().unwrap();
        let today = 20_000;
        let mut all = Vec::new();
        let mut stored = Vec::new();
        // 40 days (10 outside the window) of 60 countries, 6 groups each; XA is among them,
        // sorting between others (XA < XB..), and rows without a country too.
        let countries: Vec<Option<CountryCode>> = std::iter::once(None)
            .chain((0..60u8).map(|i| {
                let code = format!("{}{}", (b'A' + i / 26) as char, (b'A' + i % 26) as char);
                code.parse().ok()
            }))
            .chain(["XA", "XB", "XC", "ZZ"].iter().map(|c| c.parse().ok()))
            .collect();
        for day in today - 39..=today {
            for country in &countries {
                for (n, (failure, placement)) in [
                    (Failure::V6Broken, Placement::Access),
                    (Failure::V6Broken, Placement::Transit),
                    (Failure::PmtuBlackHole, Placement::Destination),
                    (Failure::ExtHeaderDrop, Placement::Transit),
                    (Failure::ExtHeaderDrop, Placement::Unknown),
                    (Failure::PmtuBlackHole, Placement::Access),
                ]
                .into_iter()
                .enumerate()
                {
                    let n = n as u32;
                    let key = FigureKey::Breaks {
                        day,
                        country: *country,
                        asn: Some(64500 + n % 2),
                        failure,
                        placement,
                        responsible: Some(64510 + n),
                    };
                    let count = u64::from(n) + 1;
                    stored.push((
                        key.encode(),
                        Figure::Breaks(crate::figures::Breaks { count }).encode(),
                    ));
                    if day > today - WINDOW_DAYS {
                        all.push(BreakRow {
                            country: *country,
                            asn: Some(64500 + n % 2),
                            failure,
                            placement,
                            responsible: Some(64510 + n),
                            count,
                        });
                    }
                }
            }
        }
        store.replace_figures(&stored, 0).unwrap();
        let got = rows(&store, xa, today - (WINDOW_DAYS - 1), today + 1).unwrap();
        assert_eq!(got.source, Source::Figures);
        let mine: Vec<BreakRow> = all
            .iter()
            .copied()
            .filter(|r| r.country == Some(xa))
            .collect();
        assert_eq!(mine.len(), 6 * WINDOW_DAYS as usize);
        // The work: the country's rows of the window, not the 65 countries' of 40 days.
        assert_eq!(got.read, mine.len());
        let mut sorted = got.rows.clone();
        sorted.sort_by_key(|r| (r.failure, r.placement, r.responsible));
        let mut want = mine.clone();
        want.sort_by_key(|r| (r.failure, r.placement, r.responsible));
        assert_eq!(sorted, want);
        // Same figures as summing over everything.
        assert_eq!(summarize(xa, got.rows), summarize(xa, all));
        // A country without rows reads nothing.
        let none = rows(&store, "QQ".parse().unwrap(), today - 29, today + 1).unwrap();
        assert_eq!((none.rows.len(), none.read), (0, 0));
        // The whole request (probe records aside) agrees.
        let now = UnixMicros(today * DAY_US + 5);
        let b = country(&store, xa, MinSample { min_probes: 0 }, now).unwrap();
        assert_eq!(b.total, 6 * 30 + 5 * 30 + 4 * 30 + 3 * 30 + 2 * 30 + 30);
        assert_eq!(b.source, Source::Figures);
    }

    #[test]
    fn only_the_top_responsible_networks_are_listed() {
        let rows = (0..25).map(|n| {
            row(
                "XA",
                Some(1),
                Failure::V6Broken,
                Placement::Transit,
                Some(100 + n),
                u64::from(n) + 1,
            )
        });
        let (.., responsible) = summarize("XA".parse().unwrap(), rows);
        assert_eq!(responsible.len(), TOP_RESPONSIBLE);
        assert_eq!(responsible[0].asn, 124);
    }

    #[test]
    fn networks_and_countries_under_the_minimum_are_not_published() {
        use Failure::*;
        use Placement::*;
        let xa: CountryCode = "XA".parse().unwrap();
        let rows = vec![
            row("XA", Some(1), V6Broken, Access, Some(1), 5),
            row("XA", Some(2), V6Broken, Access, Some(2), 2),
            row("XA", Some(2), V6Broken, Transit, Some(9), 1),
        ];
        let (total, placements, failures, networks, responsible) = summarize(xa, rows);
        let breaks = CountryBreaks {
            country: xa,
            min_probes: 0,
            insufficient_data: false,
            from: String::new(),
            to: String::new(),
            source: Source::Figures,
            total,
            placements,
            failures,
            networks,
            networks_under_minimum: None,
            responsible,
        };
        let rule = MinSample { min_probes: 3 };
        // AS1 has three probes, AS2 one and AS3 two: AS2 (with AS3, which saw no failure)
        // is summed unnamed and not named as responsible.
        let per_network = BTreeMap::from([(Some(1), 3), (Some(2), 1), (Some(3), 2)]);
        let b = publishable(breaks.clone(), &per_network, rule);
        assert!(!b.insufficient_data);
        assert_eq!(b.total, 8);
        let named: Vec<_> = b.networks.iter().map(|n| n.asn).collect();
        assert_eq!(named, [Some(1)]);
        let few = b.networks_under_minimum.as_ref().unwrap();
        assert_eq!((few.asn, few.total, few.placements.access), (None, 3, 2));
        let responsible: Vec<_> = b.responsible.iter().map(|r| r.asn).collect();
        assert_eq!(responsible, [1, 9]);
        // AS2's only probe was revoked (or its record names another AS): AS2 has no counted
        // probe, but its results are in the window; its access fault must not name it.
        let per_network = BTreeMap::from([(Some(1), 3)]);
        let b = publishable(breaks.clone(), &per_network, rule);
        let responsible: Vec<_> = b.responsible.iter().map(|r| r.asn).collect();
        assert_eq!(responsible, [1, 9]);
        // AS2 alone under the minimum is left out of the country's figures too (the total
        // minus AS1's would be its one probe's); with AS3's probes it reaches it, pooled.
        let rule4 = MinSample { min_probes: 4 };
        let per_network = BTreeMap::from([(Some(1), 4), (Some(2), 1)]);
        let b = publishable(breaks.clone(), &per_network, rule4);
        assert!(b.networks_under_minimum.is_none());
        assert_eq!(b.total, 8 - 3);
        let per_network = BTreeMap::from([(Some(1), 4), (Some(2), 1), (Some(3), 3)]);
        let b = publishable(breaks.clone(), &per_network, rule4);
        assert_eq!(b.total, 8);
        assert_eq!(b.networks_under_minimum.as_ref().unwrap().total, 3);
        // A country of two probes: nothing.
        let per_network = BTreeMap::from([(Some(1), 1), (Some(2), 1)]);
        let b = publishable(breaks, &per_network, rule);
        assert!(b.insufficient_data);
        assert_eq!((b.total, b.networks.len(), b.responsible.len()), (0, 0, 0));
        assert_eq!(b.placements, Placements::default());
    }
}
