//! Which stored results a query, a stream or an export selects, and where a page ends.
//!
//! One filter type serves the HTTP query API, the gRPC query stream, exports and dumps, so
//! they cannot disagree about what "results of AS 3320 in March" means. Results are always
//! visited in (start time, result key) order; a [`ResultCursor`] names the last result of a
//! page, so the next page starts right after it even while new results arrive.

use super::{Store, StoreError, StoredResult};
use sixmap_shared::measurement::{MeasurementKind, Outcome};
use sixmap_shared::prefixes::CountryCode;
use sixmap_shared::{ProbeId, ResultKey, TaskId, UnixMicros};
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// What kind of result to select: a measurement kind, or results that could not run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindFilter {
    Kind(MeasurementKind),
    Failed,
}

impl KindFilter {
    pub fn matches(self, outcome: &Outcome) -> bool {
        match self {
            Self::Failed => matches!(outcome, Outcome::Failed(_)),
            Self::Kind(kind) => outcome.kind() == Some(kind),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Kind(kind) => kind.name(),
        }
    }
}

impl FromStr for KindFilter {
    type Err = FilterError;
    fn from_str(text: &str) -> Result<Self, FilterError> {
        if text == "failed" {
            return Ok(Self::Failed);
        }
        MeasurementKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .map(Self::Kind)
            .ok_or_else(|| FilterError::invalid("type", text, "a measurement kind or \"failed\""))
    }
}

/// An address or a prefix of destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetFilter {
    pub network: IpAddr,
    pub prefix_len: u8,
}

impl TargetFilter {
    pub fn matches(self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                prefix_eq(&net.octets(), &a.octets(), self.prefix_len)
            }
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                prefix_eq(&net.octets(), &a.octets(), self.prefix_len)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

impl FromStr for TargetFilter {
    type Err = FilterError;
    fn from_str(text: &str) -> Result<Self, FilterError> {
        let bad =
            || FilterError::invalid("target", text, "an IP address or prefix (2001:db8::/32)");
        let (address, len) = match text.split_once('/') {
            Some((address, len)) => (address, Some(len)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if network.is_ipv6() { 128 } else { 32 };
        let prefix_len = match len {
            Some(len) => len
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Self {
            network,
            prefix_len,
        })
    }
}

impl fmt::Display for TargetFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Where a page of results ended: the last result's start time and key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResultCursor {
    pub started_at: UnixMicros,
    pub key: ResultKey,
}

impl ResultCursor {
    pub fn of(result: &StoredResult) -> Self {
        Self {
            started_at: result.result.started_at,
            key: result.result.key.clone(),
        }
    }
}

/// Text form `<started_at µs>.<probe id>.<boot epoch>.<sequence>`: opaque to clients, but
/// readable in logs and stable across backends and restarts.
impl fmt::Display for ResultCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.started_at.0, self.key.probe_id, self.key.boot_epoch, self.key.sequence
        )
    }
}

impl FromStr for ResultCursor {
    type Err = FilterError;
    fn from_str(text: &str) -> Result<Self, FilterError> {
        let bad = || FilterError::invalid("cursor", text, "a cursor returned by an earlier page");
        let mut parts = text.split('.');
        let mut next = || parts.next().ok_or_else(bad);
        let started_at = next()?.parse::<i64>().map_err(|_| bad())?;
        let probe_id = next()?.parse::<ProbeId>().map_err(|_| bad())?;
        let boot_epoch = next()?.parse::<u64>().map_err(|_| bad())?;
        let sequence = next()?.parse::<u64>().map_err(|_| bad())?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            started_at: UnixMicros(started_at),
            key: ResultKey {
                probe_id,
                boot_epoch,
                sequence,
            },
        })
    }
}

/// Every set field narrows the selection; the default selects every result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultFilter {
    /// Start time at or after this.
    pub from: Option<UnixMicros>,
    /// Start time before this.
    pub to: Option<UnixMicros>,
    pub probe: Option<ProbeId>,
    pub task: Option<TaskId>,
    pub campaign: Option<u64>,
    /// Origin AS of the probe's source address, as enriched at ingest.
    pub probe_asn: Option<u32>,
    pub probe_country: Option<CountryCode>,
    /// Origin AS and country of the destination, as enriched at ingest.
    pub target_asn: Option<u32>,
    pub target_country: Option<CountryCode>,
    pub target: Option<TargetFilter>,
    pub kind: Option<KindFilter>,
}

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("parameter `{name}` = {value:?} is not {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown parameter `{0}`")]
    Unknown(String),
    #[error("parameter `{0}` is given more than once")]
    Repeated(String),
    #[error("`from` ({from}) must be before `to` ({to})")]
    EmptyRange { from: i64, to: i64 },
}

impl FilterError {
    fn invalid(name: &'static str, value: &str, expected: &'static str) -> Self {
        Self::Invalid {
            name,
            value: value.chars().take(80).collect(),
            expected,
        }
    }
}

/// Times in parameters lie within ±(µs from 1970 to the end of 9999), dates in years
/// 1970..=9999: a bound that keeps every time arithmetic on them far from overflowing.
pub const MAX_TIME: UnixMicros = UnixMicros(253_402_300_799_999_999);

/// Parses a time as RFC 3339 / ISO 8601 UTC (`2026-03-01`, `2026-03-01T12:00:00Z`) or as
/// microseconds since the Unix epoch, within 1970..=9999. Dates that do not exist
/// (`2026-02-30`) are refused.
pub fn parse_time(name: &'static str, text: &str) -> Result<UnixMicros, FilterError> {
    let micros = match text.parse::<i64>() {
        Ok(micros) => Some(micros),
        Err(_) => parse_utc(text),
    };
    micros
        .filter(|m| (-MAX_TIME.0..=MAX_TIME.0).contains(m))
        .map(UnixMicros)
        .ok_or_else(|| {
            FilterError::invalid(
                name,
                text,
                "an existing UTC date/time in 1970..=9999 (2026-03-01T12:00:00Z) or µs since 1970",
            )
        })
}

/// Days in `month` of `year` (proleptic Gregorian).
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

fn parse_utc(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time.strip_suffix('Z').unwrap_or(time))),
        None => (text, None),
    };
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some()
        || !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
    {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if let Some(time) = time {
        let mut t = time.split(':');
        let h: i64 = t.next()?.parse().ok()?;
        let m: i64 = t.next()?.parse().ok()?;
        let s: i64 = t.next().map_or(Some(0), |s| s.parse().ok())?;
        if t.next().is_some() || h > 23 || m > 59 || s > 60 {
            return None;
        }
        seconds += h * 3600 + m * 60 + s;
    }
    seconds.checked_mul(1_000_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The query-string names [`ResultFilter::from_pairs`] reads.
pub const FILTER_NAMES: [&str; 11] = [
    "from",
    "to",
    "probe",
    "task",
    "campaign",
    "probe_asn",
    "probe_country",
    "target_asn",
    "target_country",
    "target",
    "type",
];

impl ResultFilter {
    /// Reads the filter from query-string pairs (`from`, `to`, `probe`, `task`, `campaign`,
    /// `probe_asn`, `probe_country`, `target_asn`, `target_country`, `target`, `type`).
    /// Names in `ignore` belong to the caller (`limit`, `cursor`, `format`, ...); any other
    /// name is an error, so a typo never silently widens a query. Every parameter, the
    /// caller's too, is single-valued: a repeated one is an error naming it.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        ignore: &[&str],
    ) -> Result<Self, FilterError> {
        let mut filter = Self::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            // Two values for one parameter would silently keep one of them: refuse instead.
            if FILTER_NAMES.contains(&name) || ignore.contains(&name) {
                if seen.contains(&name) {
                    return Err(FilterError::Repeated(name.to_owned()));
                }
                seen.push(name);
            }
            match name {
                "from" => filter.from = Some(parse_time("from", value)?),
                "to" => filter.to = Some(parse_time("to", value)?),
                "probe" => {
                    filter.probe = Some(value.parse().map_err(|_| {
                        FilterError::invalid("probe", value, "a probe id (16 lowercase hex digits)")
                    })?)
                }
                "task" => {
                    filter.task = Some(
                        value
                            .parse::<u64>()
                            .ok()
                            .and_then(|raw| TaskId::new(raw).ok())
                            .ok_or_else(|| {
                                FilterError::invalid("task", value, "a task id (> 0)")
                            })?,
                    )
                }
                "campaign" => {
                    filter.campaign = Some(
                        value
                            .parse::<u64>()
                            .ok()
                            .filter(|id| *id > 0)
                            .ok_or_else(|| {
                                FilterError::invalid("campaign", value, "a campaign id (> 0)")
                            })?,
                    )
                }
                "probe_asn" => filter.probe_asn = Some(parse_asn("probe_asn", value)?),
                "target_asn" => filter.target_asn = Some(parse_asn("target_asn", value)?),
                "probe_country" => {
                    filter.probe_country = Some(parse_country("probe_country", value)?)
                }
                "target_country" => {
                    filter.target_country = Some(parse_country("target_country", value)?)
                }
                "target" => filter.target = Some(value.parse()?),
                "type" => filter.kind = Some(value.parse()?),
                other if ignore.contains(&other) => {}
                other => return Err(FilterError::Unknown(other.chars().take(40).collect())),
            }
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from >= to
        {
            return Err(FilterError::EmptyRange {
                from: from.0,
                to: to.0,
            });
        }
        Ok(filter)
    }

    /// Whether a result passes every field but `campaign` (which needs the store; see
    /// [`scan_filtered`]).
    pub fn matches(&self, stored: &StoredResult) -> bool {
        let r = &stored.result;
        let asn = |e: &Option<sixmap_shared::prefixes::Enrichment>| e.as_ref().and_then(|e| e.asn);
        let country =
            |e: &Option<sixmap_shared::prefixes::Enrichment>| e.as_ref().and_then(|e| e.country);
        self.from.is_none_or(|from| r.started_at >= from)
            && self.to.is_none_or(|to| r.started_at < to)
            && self.probe.as_ref().is_none_or(|p| *p == r.key.probe_id)
            && self.task.is_none_or(|t| t == r.task_id)
            && self
                .probe_asn
                .is_none_or(|a| asn(&stored.probe_origin) == Some(a))
            && self
                .probe_country
                .is_none_or(|c| country(&stored.probe_origin) == Some(c))
            && self
                .target_asn
                .is_none_or(|a| asn(&stored.target_origin) == Some(a))
            && self
                .target_country
                .is_none_or(|c| country(&stored.target_origin) == Some(c))
            && self
                .target
                .is_none_or(|t| r.destination.is_some_and(|d| t.matches(d)))
            && self.kind.is_none_or(|k| k.matches(&r.outcome))
    }
}

fn parse_asn(name: &'static str, text: &str) -> Result<u32, FilterError> {
    text.strip_prefix("AS")
        .unwrap_or(text)
        .parse()
        .map_err(|_| FilterError::invalid(name, text, "an AS number (3320 or AS3320)"))
}

fn parse_country(name: &'static str, text: &str) -> Result<CountryCode, FilterError> {
    text.to_ascii_uppercase()
        .parse()
        .map_err(|_| FilterError::invalid(name, text, "a two-letter country code"))
}

/// What a scan for `filter` reads and what it keeps: the time range (from just at `after`, if
/// given) and the campaign's tasks, looked up once. Shared by the scans here and the
/// export's, which decodes on several threads (`export::export_with`).
#[derive(Debug)]
pub struct ScanPlan<'f> {
    filter: &'f ResultFilter,
    /// Read results that started in `[from, to)`.
    pub from: UnixMicros,
    pub to: UnixMicros,
    campaign_tasks: Option<BTreeSet<TaskId>>,
}

impl<'f> ScanPlan<'f> {
    pub fn new(
        store: &dyn Store,
        filter: &'f ResultFilter,
        after: Option<&ResultCursor>,
    ) -> Result<Self, StoreError> {
        let campaign_tasks = match filter.campaign {
            Some(campaign) => Some(store.campaign_tasks(campaign)?.into_iter().collect()),
            None => None,
        };
        let from = match (filter.from, after) {
            (Some(from), Some(after)) => from.max(after.started_at),
            (None, Some(after)) => after.started_at,
            (Some(from), None) => from,
            (None, None) => UnixMicros(i64::MIN),
        };
        Ok(Self {
            filter,
            from,
            to: filter.to.unwrap_or(UnixMicros(i64::MAX)),
            campaign_tasks,
        })
    }

    /// Whether the filter keeps `stored`, a result the scan read (so within the time range).
    pub fn selects(&self, stored: &StoredResult) -> bool {
        self.campaign_tasks
            .as_ref()
            .is_none_or(|tasks| tasks.contains(&stored.result.task_id))
            && self.filter.matches(stored)
    }
}

/// Visits the results `filter` selects in (start time, key) order, starting after `after`,
/// until `visit` returns false. Works on any [`Store`] through `scan_results_between`.
pub fn scan_filtered(
    store: &dyn Store,
    filter: &ResultFilter,
    after: Option<&ResultCursor>,
    visit: &mut dyn FnMut(StoredResult) -> bool,
) -> Result<(), StoreError> {
    scan_filtered_bounded(store, filter, after, ScanBudget::UNLIMITED, visit).map(|_| ())
}

/// How a bounded scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every result in the filter's time range was looked at.
    Exhausted,
    /// `visit` asked to stop.
    Stopped,
    /// The budget was spent; the cursor names the last row read, which need not match the
    /// filter. Scanning again after it continues where this scan stopped.
    Budget(ResultCursor),
}

/// How much one scan may read: stored rows (matching or not) and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanBudget {
    pub rows: u64,
    /// Stop at the first row read at or after this instant.
    pub until: Option<std::time::Instant>,
}

impl ScanBudget {
    pub const UNLIMITED: Self = Self {
        rows: u64::MAX,
        until: None,
    };

    pub fn rows(rows: u64) -> Self {
        Self { rows, until: None }
    }

    /// At most `rows` rows and `time` from now. Time matters as much as rows: a row costs
    /// tens of µs on a server and more on a Raspberry Pi, and requests have a deadline.
    pub fn within(rows: u64, time: std::time::Duration) -> Self {
        Self {
            rows,
            until: std::time::Instant::now().checked_add(time),
        }
    }

    fn spent(&self, scanned: u64) -> bool {
        scanned >= self.rows || self.until.is_some_and(|u| std::time::Instant::now() >= u)
    }
}

/// [`scan_filtered`] within a [`ScanBudget`], so that a request whose filter matches little
/// cannot read the whole store at once.
pub fn scan_filtered_bounded(
    store: &dyn Store,
    filter: &ResultFilter,
    after: Option<&ResultCursor>,
    budget: ScanBudget,
    visit: &mut dyn FnMut(StoredResult) -> bool,
) -> Result<ScanEnd, StoreError> {
    let mut scanned = 0u64;
    let mut end = ScanEnd::Exhausted;
    let plan = ScanPlan::new(store, filter, after)?;
    let mut gone = false;
    store.scan_results_between(plan.from, plan.to, &mut |stored| {
        // The request behind this read went away: stop (`limits::readers`).
        if crate::limits::readers::cancelled() {
            gone = true;
            return false;
        }
        if let Some(after) = after
            && (stored.result.started_at, &stored.result.key) <= (after.started_at, &after.key)
        {
            return true;
        }
        scanned += 1;
        let last = budget.spent(scanned).then(|| ResultCursor::of(&stored));
        if plan.selects(&stored) && !visit(stored) {
            end = ScanEnd::Stopped;
            return false;
        }
        match last {
            Some(cursor) => {
                end = ScanEnd::Budget(cursor);
                false
            }
            None => true,
        }
    })?;
    if gone {
        return Err(StoreError::Cancelled);
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc_dates_or_micros() {
        assert_eq!(
            parse_time("from", "1970-01-02").unwrap(),
            UnixMicros(86_400_000_000)
        );
        assert_eq!(
            parse_time("from", "2026-03-01T12:00:00Z").unwrap(),
            UnixMicros(1_772_366_400_000_000)
        );
        assert_eq!(parse_time("from", "42").unwrap(), UnixMicros(42));
        assert_eq!(
            parse_time("from", "2024-02-29").unwrap(),
            UnixMicros(1_709_164_800_000_000)
        );
        for bad in [
            "2026-13-01",
            "yesterday",
            "2026-03-01T25:00:00Z",
            "",
            "2026-02-30",
            "2025-02-29",
            "2026-04-31",
            "9223372036854775807-01-01",
            "10000-01-01",
            "9223372036854775807",
        ] {
            let err = parse_time("from", bad).unwrap_err();
            assert!(err.to_string().contains("`from`"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_and_bad_parameters_are_named() {
        let err = ResultFilter::from_pairs([("probee", "x")], &[]).unwrap_err();
        assert!(err.to_string().contains("probee"), "{err}");
        let err =
            ResultFilter::from_pairs([("probe_asn", "1"), ("probe_asn", "2")], &[]).unwrap_err();
        assert!(
            matches!(&err, FilterError::Repeated(n) if n == "probe_asn"),
            "{err}"
        );
        // The caller's own parameters are single-valued too.
        for name in ["limit", "group_by", "format", "cursor"] {
            let err =
                ResultFilter::from_pairs([(name, "1"), ("type", "ping"), (name, "2")], &[name])
                    .unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("`{name}` is given more than once")),
                "{err}"
            );
        }
        let err = ResultFilter::from_pairs([("type", "pingg")], &[]).unwrap_err();
        assert!(err.to_string().contains("type"), "{err}");
        let err = ResultFilter::from_pairs([("from", "2026-03-02"), ("to", "2026-03-01")], &[])
            .unwrap_err();
        assert!(matches!(err, FilterError::EmptyRange { .. }), "{err}");
        let ok = ResultFilter::from_pairs(
            [
                ("probe_asn", "AS3320"),
                ("probe_country", "de"),
                ("limit", "5"),
                ("type", "ext_headers"),
            ],
            &["limit"],
        )
        .unwrap();
        assert_eq!(ok.probe_asn, Some(3320));
        assert_eq!(ok.kind, Some(KindFilter::Kind(MeasurementKind::ExtHeaders)));
    }

    #[test]
    fn target_prefixes_match_by_bits() {
        let t: TargetFilter = "2001:db8:80::/41".parse().unwrap();
        assert!(t.matches("2001:db8:80::1".parse().unwrap()));
        assert!(t.matches("2001:db8:ff::1".parse().unwrap()));
        assert!(!t.matches("2001:db8:7f::1".parse().unwrap()));
        assert!(!t.matches("192.0.2.1".parse().unwrap()));
        assert!("2001:db8::/129".parse::<TargetFilter>().is_err());
        let one: TargetFilter = "192.0.2.7".parse().unwrap();
        assert!(one.matches("192.0.2.7".parse().unwrap()));
        assert!(!one.matches("192.0.2.8".parse().unwrap()));
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let cursor = ResultCursor {
            started_at: UnixMicros(-5),
            key: ResultKey {
                probe_id: "0123456789abcdef".parse().unwrap(),
                boot_epoch: 3,
                sequence: 9,
            },
        };
        assert_eq!(cursor.to_string().parse::<ResultCursor>().unwrap(), cursor);
        for bad in [
            "",
            "1.2.3",
            "1.0123456789abcdef.3.9.9",
            "x.0123456789abcdef.3.9",
        ] {
            assert!(bad.parse::<ResultCursor>().is_err(), "{bad}");
        }
    }

    /// A sled store with 30 pings: probes a and b alternate, one every second; results 0..10
    /// belong to task 7, linked to campaign 3; every fifth one is lost.
    fn store_with_results() -> (tempfile::TempDir, crate::store::SledStore) {
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let campaign_task = TaskId::new(7).unwrap();
        store.link_campaign_task(campaign_task, 3).unwrap();
        let results: Vec<StoredResult> = (0..30u64)
            .map(|i| {
                let probe = if i % 2 == 0 {
                    "00000000000000aa"
                } else {
                    "00000000000000bb"
                };
                let rtt = (i % 5 != 0).then(|| std::time::Duration::from_millis(10 + i));
                // Sequences start at 1 (0 is no valid key); `sequences` gives back `i`.
                let mut r = crate::testing::ping_v6(
                    probe.parse().unwrap(),
                    i + 1,
                    UnixMicros(1_000_000 * i as i64),
                    rtt,
                    sixmap_shared::prefixes::Enrichment {
                        asn: Some(64_500 + (i % 3) as u32),
                        as_name: None,
                        country: Some("NL".parse().unwrap()),
                    },
                );
                if i < 10 {
                    r.result.task_id = campaign_task;
                }
                r
            })
            .collect();
        store.insert_results(&results).unwrap();
        (dir, store)
    }

    fn sequences(store: &dyn Store, filter: &ResultFilter) -> Vec<u64> {
        let mut seen = Vec::new();
        scan_filtered(store, filter, None, &mut |r| {
            seen.push(r.result.key.sequence - 1);
            true
        })
        .unwrap();
        seen
    }

    #[test]
    fn filters_narrow_a_real_store() {
        let (_dir, store) = store_with_results();
        let all = sequences(&store, &ResultFilter::default());
        assert_eq!(all, (0..30).collect::<Vec<_>>(), "oldest first");
        let campaign = ResultFilter {
            campaign: Some(3),
            ..Default::default()
        };
        assert_eq!(sequences(&store, &campaign), (0..10).collect::<Vec<_>>());
        let unknown_campaign = ResultFilter {
            campaign: Some(4),
            ..Default::default()
        };
        assert!(sequences(&store, &unknown_campaign).is_empty());
        let window = ResultFilter::from_pairs(
            [
                ("from", "5000000"),
                ("to", "9000000"),
                ("probe", "00000000000000bb"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(sequences(&store, &window), vec![5, 7]);
        let asn = ResultFilter::from_pairs([("probe_asn", "AS64502")], &[]).unwrap();
        assert_eq!(
            sequences(&store, &asn),
            vec![2, 5, 8, 11, 14, 17, 20, 23, 26, 29]
        );
        let elsewhere = ResultFilter::from_pairs([("probe_country", "de")], &[]).unwrap();
        assert!(sequences(&store, &elsewhere).is_empty());
    }

    #[test]
    fn pages_and_budgets_continue_where_they_stopped() {
        let (_dir, store) = store_with_results();
        let filter = ResultFilter {
            campaign: Some(3),
            ..Default::default()
        };
        // Pages of 4 by cursor: every campaign result once, in order.
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let mut page = Vec::new();
            scan_filtered(&store, &filter, cursor.as_ref(), &mut |r| {
                page.push(r);
                page.len() < 4
            })
            .unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some(ResultCursor::of(last));
            seen.extend(page.iter().map(|r| r.result.key.sequence - 1));
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());

        // A budget of 7 rows: the cursor may name a row outside the campaign, and scanning
        // on from it still finds each result once.
        let mut after = None;
        let mut seen = Vec::new();
        let mut rounds = 0;
        loop {
            rounds += 1;
            let end = scan_filtered_bounded(
                &store,
                &filter,
                after.as_ref(),
                ScanBudget::rows(7),
                &mut |r| {
                    seen.push(r.result.key.sequence - 1);
                    true
                },
            )
            .unwrap();
            match end {
                ScanEnd::Budget(cursor) => after = Some(cursor),
                ScanEnd::Exhausted => break,
                ScanEnd::Stopped => panic!("the visitor never stops"),
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(rounds, 5, "30 rows in budgets of 7");

        // A deadline already past: one row is read, and the cursor goes on from it.
        let past = ScanBudget {
            rows: u64::MAX,
            until: Some(std::time::Instant::now()),
        };
        let end =
            scan_filtered_bounded(&store, &ResultFilter::default(), None, past, &mut |_| true)
                .unwrap();
        let ScanEnd::Budget(cursor) = end else {
            panic!("a past deadline ends the scan: {end:?}")
        };
        assert_eq!(cursor.key.sequence, 1);
    }
}
