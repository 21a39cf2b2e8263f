//! "Where IPv6 breaks" per country and per probe network: the attributed failures of the
//! last [`WINDOW_DAYS`] days, counted per placement, per failure and per probe network, and
//! the networks held responsible most often.
//!
//! Read from the `breaks` figure rows kept as results arrive (`crate::figures`, one row per
//! day, probe origin, failure, placement and responsible AS), so a request costs
//! O(groups of the window), never O(results); a store without figures is scanned instead,
//! as the other readers do. [`summarize`] is pure.

use super::{Failure, Placement};
use crate::figures::{DAY_US, Figure, FigureKey, FigureSet, Source, kind, range_start, read};
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

/// The breaks rows of days `[from_day, to_day)` (day numbers since the epoch): from the
/// figures, or folded from a scan of the results when the store keeps none.
pub fn rows(
    store: &dyn Store,
    from_day: i64,
    to_day: i64,
) -> Result<(Vec<BreakRow>, Source), StoreError> {
    let source = Source::of(store)?;
    let mut out = Vec::new();
    match source {
        Source::Figures => {
            let mut failed = None;
            store.figure_rows(
                &range_start(kind::BREAKS, from_day),
                &range_start(kind::BREAKS, to_day),
                &mut |key, value| {
                    let decoded = FigureKey::decode(key)
                        .and_then(|k| Figure::decode(value).map(|f| (k, f)))
                        .map_err(|e| read::corrupt(key, e));
                    match decoded {
                        Ok((k, f)) => {
                            out.extend(row_of(k, &f));
                            true
                        }
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    }
                },
            )?;
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
                    // Only results with an attribution make breaks rows; the rest would
                    // only fill the set with rows thrown away below.
                    if stored.blame.is_some() {
                        set.fold(&stored, &none, i64::MAX);
                    }
                    !crate::limits::readers::cancelled()
                },
            )?;
            crate::limits::readers::check()?;
            out.extend(set.rows.into_iter().filter_map(|(k, f)| row_of(k, &f)));
        }
    }
    Ok((out, source))
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
/// the country, nothing; probe networks with fewer are summed into one unnamed row, and are
/// not listed among the responsible networks either (an access fault names the probe's own
/// network). The probes counted are the networks' probes, not only those that saw a failure:
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
    breaks.networks = named;
    breaks.networks_under_minimum = (!few.is_empty()).then(|| {
        let mut sum = NetworkBreaks {
            asn: None,
            total: 0,
            placements: Placements::default(),
            failures: Failures::default(),
        };
        for n in &few {
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
    });
    breaks.responsible.retain(|r| {
        let probes = probes_of(Some(r.asn));
        probes == 0 || rule.allows(probes)
    });
    breaks
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
    let (rows, source) = rows(store, from_day, today + 1)?;
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
        // AS1 has three probes, AS2 one: AS2 is summed unnamed and not named as responsible.
        let per_network = BTreeMap::from([(Some(1), 3), (Some(2), 1)]);
        let b = publishable(breaks.clone(), &per_network, rule);
        assert!(!b.insufficient_data);
        assert_eq!(b.total, 8);
        let named: Vec<_> = b.networks.iter().map(|n| n.asn).collect();
        assert_eq!(named, [Some(1)]);
        let few = b.networks_under_minimum.as_ref().unwrap();
        assert_eq!((few.asn, few.total, few.placements.access), (None, 3, 2));
        let responsible: Vec<_> = b.responsible.iter().map(|r| r.asn).collect();
        assert_eq!(responsible, [1, 9]);
        // A country of two probes: nothing.
        let per_network = BTreeMap::from([(Some(1), 1), (Some(2), 1)]);
        let b = publishable(breaks, &per_network, rule);
        assert!(b.insufficient_data);
        assert_eq!((b.total, b.networks.len(), b.responsible.len()), (0, 0, 0));
        assert_eq!(b.placements, Placements::default());
    }
}
