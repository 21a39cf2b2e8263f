//! Counts and success shares of raw results grouped by origin country, origin AS and UTC
//! day: the simple research aggregates. The published national figures (operator-balanced,
//! with intervals) are `daily` and `maps`; these are plain counts over whatever the filter
//! selects.
//!
//! A request whose filter is only a time range on whole UTC days (`from`/`to` at 00:00 or
//! absent) is answered from the tallies kept at ingest (`crate::figures`): O(days × groups),
//! medians within 1 % of the exact ones, `source: "figures"`. Any other filter, or a store that
//! keeps no figures, scans the results within the request's budget (`source: "scan"`).

use super::{AGGREGATE_MAX_SCANNED, ParamError};
use crate::figures::read::{self, TallyRow};
use crate::figures::sketch::Sketch;
use crate::figures::{DAY_US, Side as FigureSide, Source};
use crate::store::{
    ResultFilter, ScanBudget, ScanEnd, Store, StoreError, StoredResult, scan_filtered_bounded,
};
use serde::Serialize;
use sixmap_shared::UnixMicros;
use sixmap_shared::measurement::Outcome;
use sixmap_shared::prefixes::Enrichment;
use std::collections::BTreeMap;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Country,
    Asn,
    Day,
    CountryDay,
    AsnDay,
}

impl GroupBy {
    pub fn name(self) -> &'static str {
        match self {
            Self::Country => "country",
            Self::Asn => "asn",
            Self::Day => "day",
            Self::CountryDay => "country,day",
            Self::AsnDay => "asn,day",
        }
    }

    fn country(self) -> bool {
        matches!(self, Self::Country | Self::CountryDay)
    }

    fn asn(self) -> bool {
        matches!(self, Self::Asn | Self::AsnDay)
    }

    fn day(self) -> bool {
        matches!(self, Self::Day | Self::CountryDay | Self::AsnDay)
    }
}

impl FromStr for GroupBy {
    type Err = ParamError;
    fn from_str(text: &str) -> Result<Self, ParamError> {
        Ok(match text {
            "country" => Self::Country,
            "asn" => Self::Asn,
            "day" => Self::Day,
            "country,day" | "day,country" => Self::CountryDay,
            "asn,day" | "day,asn" => Self::AsnDay,
            other => return Err(ParamError::GroupBy(other.chars().take(40).collect())),
        })
    }
}

/// Whose origin a country or AS group is: the probe's source address (default) or the
/// destination's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    #[default]
    Probe,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Target => "target",
        }
    }
}

impl FromStr for Side {
    type Err = ParamError;
    fn from_str(text: &str) -> Result<Self, ParamError> {
        match text {
            "probe" => Ok(Self::Probe),
            "target" => Ok(Self::Target),
            other => Err(ParamError::Side(other.chars().take(40).collect())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AggregateRequest {
    pub filter: ResultFilter,
    pub group_by: GroupBy,
    pub side: Side,
}

impl AggregateRequest {
    /// From query-string pairs: the filter's names plus `group_by` (required) and `side`.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<Self, ParamError> {
        let filter = ResultFilter::from_pairs(pairs.clone(), &["group_by", "side"])?;
        let mut group_by = None;
        let mut side = Side::default();
        for (name, value) in pairs {
            match name {
                "group_by" => group_by = Some(value.parse()?),
                "side" => side = value.parse()?,
                _ => {}
            }
        }
        Ok(Self {
            filter,
            group_by: group_by.ok_or(ParamError::Missing("group_by"))?,
            side,
        })
    }
}

/// One group. Fields the grouping does not use are left out; a grouped field is `null` for
/// results whose address had no prefix data at ingest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    pub count: u64,
    /// Results whose destination answered (`Outcome::reached_destination`).
    pub success: u64,
    pub success_share: f64,
    /// Ping results among them, and the median of their minimum RTTs (answered pings only).
    pub pings_answered: u64,
    pub median_rtt_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregates {
    pub group_by: &'static str,
    pub side: &'static str,
    /// Groups in key order (`null` keys first).
    pub rows: Vec<AggregateRow>,
    /// Results counted, over all groups.
    pub results: u64,
    /// True when the scan stopped at the row or time budget: the rows then cover results up to
    /// `scanned_until` only; narrow `from`/`to` to get complete figures.
    pub truncated: bool,
    /// Start time of the last stored row read when truncated.
    pub scanned_until: Option<UnixMicros>,
    /// Whether the answer came from the figures kept at ingest or from a scan of the results.
    pub source: Source,
}

#[derive(Debug, Default)]
struct Group {
    count: u64,
    success: u64,
    rtts_ns: Vec<u64>,
}

type Key = (Option<Option<String>>, Option<Option<u32>>, Option<String>);

fn key(stored: &StoredResult, group_by: GroupBy, side: Side) -> Key {
    let origin: Option<&Enrichment> = match side {
        Side::Probe => stored.probe_origin.as_ref(),
        Side::Target => stored.target_origin.as_ref(),
    };
    (
        group_by
            .country()
            .then(|| origin.and_then(|o| o.country).map(|c| c.to_string())),
        group_by.asn().then(|| origin.and_then(|o| o.asn)),
        group_by
            .day()
            .then(|| crate::daily::day_label(stored.result.started_at)),
    )
}

fn median(values: &mut [u64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    let ns = if values.len() % 2 == 1 {
        values[mid] as f64
    } else {
        (values[mid - 1] as f64 + values[mid] as f64) / 2.0
    };
    Some(ns / 1e6)
}

/// Groups what `request.filter` selects, within `budget`: from the kept figures when they can
/// answer (module doc), else by a scan.
pub fn aggregate(
    store: &dyn Store,
    request: &AggregateRequest,
    budget: ScanBudget,
) -> Result<Aggregates, StoreError> {
    if answerable_from_figures(&request.filter) && read::ready(store)? {
        return from_figures(store, request, AGGREGATE_MAX_SCANNED);
    }
    aggregate_scan(store, request, budget)
}

/// Only a time range, on day boundaries: what the daily tallies can answer exactly.
pub fn answerable_from_figures(filter: &ResultFilter) -> bool {
    let only_time = *filter
        == ResultFilter {
            from: filter.from,
            to: filter.to,
            ..ResultFilter::default()
        };
    let whole_day = |t: Option<UnixMicros>| t.is_none_or(|t| t.0.rem_euclid(DAY_US) == 0);
    only_time && whole_day(filter.from) && whole_day(filter.to)
}

#[derive(Default)]
struct Summed {
    count: u64,
    success: u64,
    rtt: Sketch,
}

/// The aggregates from the daily tallies, reading at most `max_rows` of them; past that the
/// answer covers the whole days read before and says `truncated`.
pub fn from_figures(
    store: &dyn Store,
    request: &AggregateRequest,
    max_rows: u64,
) -> Result<Aggregates, StoreError> {
    let side = match request.side {
        Side::Probe => FigureSide::Probe,
        Side::Target => FigureSide::Target,
    };
    let from_day = request
        .filter
        .from
        .map_or(i64::MIN, |t| t.0.div_euclid(DAY_US));
    let to_day = request
        .filter
        .to
        .map_or(i64::MAX, |t| t.0.div_euclid(DAY_US));
    let group_by = request.group_by;
    let mut groups: BTreeMap<Key, Summed> = BTreeMap::new();
    // A day's rows are added only once the whole day was read, so a cut answer holds whole days.
    let mut pending: Vec<TallyRow> = Vec::new();
    let mut read_rows = 0u64;
    let mut cut_at = None;
    let add = |rows: &mut Vec<TallyRow>, groups: &mut BTreeMap<Key, Summed>| {
        for row in rows.drain(..) {
            let key = (
                group_by
                    .country()
                    .then(|| row.country.map(|c| c.to_string())),
                group_by.asn().then_some(row.asn),
                group_by
                    .day()
                    .then(|| crate::daily::day_label(UnixMicros(row.day.saturating_mul(DAY_US)))),
            );
            let group = groups.entry(key).or_default();
            group.count += row.tally.count;
            group.success += row.tally.success;
            group.rtt.merge(&row.tally.rtt);
        }
    };
    read::tallies(store, side, from_day, to_day, &mut |row| {
        if pending.last().is_some_and(|p| p.day != row.day) {
            add(&mut pending, &mut groups);
        }
        read_rows += 1;
        if read_rows > max_rows {
            cut_at = Some(UnixMicros(row.day.saturating_mul(DAY_US)));
            pending.clear();
            return false;
        }
        pending.push(row);
        true
    })?;
    add(&mut pending, &mut groups);
    let mut results = 0;
    let rows = groups
        .into_iter()
        .map(|((country, asn, day), g)| {
            results += g.count;
            AggregateRow {
                country,
                asn,
                day,
                count: g.count,
                success: g.success,
                success_share: g.success as f64 / g.count.max(1) as f64,
                pings_answered: g.rtt.count(),
                median_rtt_ms: g.rtt.median_ms(),
            }
        })
        .collect();
    Ok(Aggregates {
        group_by: request.group_by.name(),
        side: request.side.name(),
        rows,
        results,
        truncated: cut_at.is_some(),
        scanned_until: cut_at,
        source: Source::Figures,
    })
}

/// Groups what `request.filter` selects by scanning the results, within `budget` (the
/// reference the figures are tested against).
pub fn aggregate_scan(
    store: &dyn Store,
    request: &AggregateRequest,
    budget: ScanBudget,
) -> Result<Aggregates, StoreError> {
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    let mut results = 0u64;
    let end = scan_filtered_bounded(store, &request.filter, None, budget, &mut |stored| {
        results += 1;
        let group = groups
            .entry(key(&stored, request.group_by, request.side))
            .or_default();
        group.count += 1;
        if stored.result.outcome.reached_destination() {
            group.success += 1;
        }
        if let Outcome::Ping(ping) = &stored.result.outcome
            && let Some(rtt) = ping.min_rtt()
        {
            group
                .rtts_ns
                .push(u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX));
        }
        true
    })?;
    let scanned_until = match &end {
        ScanEnd::Budget(cursor) => Some(cursor.started_at),
        ScanEnd::Exhausted | ScanEnd::Stopped => None,
    };
    let rows = groups
        .into_iter()
        .map(|((country, asn, day), mut g)| AggregateRow {
            country,
            asn,
            day,
            count: g.count,
            success: g.success,
            success_share: g.success as f64 / g.count.max(1) as f64,
            pings_answered: g.rtts_ns.len() as u64,
            median_rtt_ms: median(&mut g.rtts_ns),
        })
        .collect();
    Ok(Aggregates {
        group_by: request.group_by.name(),
        side: request.side.name(),
        rows,
        results,
        truncated: scanned_until.is_some(),
        scanned_until,
        source: Source::Scan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;
    use std::time::Duration;

    const DAY: i64 = 86_400_000_000;

    fn origin(asn: u32, country: &str) -> Enrichment {
        Enrichment {
            asn: Some(asn),
            as_name: None,
            country: Some(country.parse().unwrap()),
        }
    }

    #[test]
    fn groups_count_successes_and_median_rtts() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let probe = || "00000000000000aa".parse().unwrap();
        let ms = Duration::from_millis;
        let results = vec![
            crate::testing::ping_v6(probe(), 1, UnixMicros(10), Some(ms(10)), origin(1, "NL")),
            crate::testing::ping_v6(probe(), 2, UnixMicros(20), Some(ms(30)), origin(1, "NL")),
            crate::testing::ping_v6(probe(), 3, UnixMicros(30), None, origin(1, "NL")),
            crate::testing::ping_v6(
                probe(),
                4,
                UnixMicros(DAY + 5),
                Some(ms(20)),
                origin(2, "DE"),
            ),
            StoredResult {
                probe_origin: None,
                ..crate::testing::ping_v6(probe(), 5, UnixMicros(DAY + 6), None, origin(2, "DE"))
            },
        ];
        store.insert_results(&results).unwrap();
        let request = |group_by| AggregateRequest {
            filter: ResultFilter::default(),
            group_by,
            side: Side::Probe,
        };
        let by_country =
            aggregate(&store, &request(GroupBy::Country), ScanBudget::rows(100)).unwrap();
        assert!(!by_country.truncated);
        assert_eq!(by_country.results, 5);
        let rows: Vec<_> = by_country
            .rows
            .iter()
            .map(|r| {
                (
                    r.country.clone().unwrap(),
                    r.count,
                    r.success,
                    r.median_rtt_ms,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (None, 1, 0, None),
                (Some("DE".into()), 1, 1, Some(20.0)),
                (Some("NL".into()), 3, 2, Some(20.0)),
            ]
        );
        let nl = &by_country.rows[2];
        assert!((nl.success_share - 2.0 / 3.0).abs() < 1e-9);

        let by_asn_day =
            aggregate(&store, &request(GroupBy::AsnDay), ScanBudget::rows(100)).unwrap();
        let keys: Vec<_> = by_asn_day
            .rows
            .iter()
            .map(|r| (r.asn.unwrap(), r.day.clone().unwrap(), r.count))
            .collect();
        assert_eq!(
            keys,
            vec![
                (None, "1970-01-02".into(), 1),
                (Some(1), "1970-01-01".into(), 3),
                (Some(2), "1970-01-02".into(), 1),
            ]
        );
        let json = serde_json::to_value(&by_asn_day.rows[0]).unwrap();
        assert!(json.get("country").is_none(), "{json}");
        assert!(json["asn"].is_null(), "{json}");

        // The target side: these pings' destinations have no prefix data.
        let target = AggregateRequest {
            side: Side::Target,
            ..request(GroupBy::Country)
        };
        let rows = aggregate(&store, &target, ScanBudget::rows(100))
            .unwrap()
            .rows;
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].country.clone(), rows[0].count), (Some(None), 5));

        let cut = aggregate(&store, &request(GroupBy::Day), ScanBudget::rows(2)).unwrap();
        assert!(cut.truncated);
        assert_eq!(cut.results, 2);
        assert_eq!(cut.scanned_until, Some(UnixMicros(20)));
    }

    #[test]
    fn parameters_are_named_when_wrong() {
        let err = AggregateRequest::from_pairs([("group_by", "city")]).unwrap_err();
        assert!(err.to_string().contains("group_by"), "{err}");
        let err = AggregateRequest::from_pairs([("type", "ping")]).unwrap_err();
        assert!(err.to_string().contains("group_by"), "{err}");
        let err = AggregateRequest::from_pairs([("group_by", "day"), ("side", "x")]).unwrap_err();
        assert!(err.to_string().contains("side"), "{err}");
        let ok =
            AggregateRequest::from_pairs([("group_by", "day,asn"), ("side", "target")]).unwrap();
        assert_eq!((ok.group_by, ok.side), (GroupBy::AsnDay, Side::Target));
    }
}
