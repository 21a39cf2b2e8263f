//! The DNS-over-IPv6 scorecard per operator (issue #23): from the stored `dns` results the
//! filter selects, grouped by the probe's origin AS (its access operator, as enriched at
//! ingest), what that operator's users get from DNS over IPv6:
//!
//! - `resolver_v6`: queries sent over UDP/TCP to a resolver's IPv6 address, and how many got a
//!   response (any rcode): is the resolver reachable over IPv6;
//! - `aaaa`: AAAA queries that got NOERROR, and how many carried an AAAA record;
//! - `dns64`: AAAA records under the well-known NAT64 prefix `64:ff9b::/96` (RFC 6052), and
//!   whether the IPv4 address they embed is one the same probe got as an A record for the same
//!   name (`correct`), is not (`incorrect`), or no A answer was seen to compare (`unverified`);
//! - `https_ipv6hint`: HTTPS (type 65) queries answered NOERROR with records, and how many
//!   carried an `ipv6hint`;
//! - `encrypted`: DNS over TLS and over HTTPS to IPv6 addresses: asked, answered, the failure
//!   classes, and median connect, TLS and query times.
//!
//! A probe's A and AAAA answers for a name are paired within one UTC day.
//!
//! [`request`] reads the daily tallies (`crate::figures::dns`, one row per day, country and
//! AS): O(days × operators), never O(results). A store that keeps no figures is scanned instead
//! by [`scorecard`], the per-request computation (within the aggregate budget, `truncated` as
//! for aggregates; its DNS64 comparison keeps at most [`MAX_NAMES`] (probe, day, name) pairs,
//! past which synthesised records count as unverified). [`from_tallies`] is pure.

use crate::figures::dns::{
    DnsScore, ENCRYPTED, Scored, TYPE_A, TYPE_AAAA, over_v6, scored_query, synthesised,
};
use crate::figures::{Count, DAY_US, Figure, FigureKey, Source, kind, range_start, read};
use crate::store::filter::FilterError;
use crate::store::{ResultFilter, ScanBudget, ScanEnd, Store, StoreError, scan_filtered_bounded};
use serde::Serialize;
use sixmap_shared::UnixMicros;
use sixmap_shared::measurement::{DnsResult, DnsTransport, MeasurementKind, Outcome};
use sixmap_shared::prefixes::CountryCode;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

/// (probe, name) pairs whose A and synthesised AAAA answers are kept for the DNS64 check.
pub const MAX_NAMES: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Share {
    pub asked: u64,
    pub yes: u64,
    /// `yes / asked`; `null` when nothing was asked.
    pub share: Option<f64>,
}

impl Share {
    fn add(&mut self, yes: bool) {
        self.asked += 1;
        self.yes += u64::from(yes);
    }
    fn finish(mut self) -> Self {
        self.share = (self.asked > 0).then(|| self.yes as f64 / self.asked as f64);
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Dns64 {
    pub synthesised: u64,
    pub correct: u64,
    pub incorrect: u64,
    pub unverified: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Encrypted {
    /// Queries asked, and answered (any rcode).
    pub answered: Share,
    /// Failures by class (`certificate`, `refused`, `timeout`, ...).
    pub failures: BTreeMap<String, u64>,
    pub median_connect_ms: Option<f64>,
    pub median_tls_ms: Option<f64>,
    pub median_query_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperatorRow {
    /// The probes' origin AS; `null` for results without prefix data.
    pub asn: Option<u32>,
    pub as_name: Option<String>,
    /// Distinct probes behind the row.
    pub probes: u64,
    /// `dns` results behind the row.
    pub results: u64,
    pub resolver_v6: Share,
    pub aaaa: Share,
    pub dns64: Dns64,
    pub https_ipv6hint: Share,
    /// DoT (`tls`) and DoH (`https`) over IPv6.
    pub encrypted: BTreeMap<&'static str, Encrypted>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub rows: Vec<OperatorRow>,
    /// `dns` results read.
    pub results: u64,
    pub truncated: bool,
    pub scanned_until: Option<UnixMicros>,
    /// Daily tallies, or a scan of the results.
    pub source: Source,
}

#[derive(Default)]
struct Timings {
    connect: Vec<u64>,
    tls: Vec<u64>,
    query: Vec<u64>,
}

#[derive(Default)]
struct Group {
    row: OperatorRow,
    probes: HashSet<String>,
    timings: BTreeMap<&'static str, Timings>,
}

/// Per (probe, name): A addresses seen, and IPv4 addresses embedded in synthesised AAAA.
#[derive(Default)]
struct Names {
    a: HashSet<Ipv4Addr>,
    embedded: Vec<Ipv4Addr>,
}

/// The scorecard of what `filter` selects (its kind is forced to `dns`), within `budget`.
pub fn scorecard(
    store: &dyn Store,
    filter: &ResultFilter,
    budget: ScanBudget,
) -> Result<Scorecard, StoreError> {
    let mut filter = filter.clone();
    filter.kind = Some(crate::store::filter::KindFilter::Kind(MeasurementKind::Dns));
    let mut groups: BTreeMap<Option<u32>, Group> = BTreeMap::new();
    let mut names: HashMap<(Option<u32>, String, i64, String), Names> = HashMap::new();
    let mut unverified_overflow: BTreeMap<Option<u32>, u64> = BTreeMap::new();
    let mut results = 0u64;
    let end = scan_filtered_bounded(store, &filter, None, budget, &mut |stored| {
        let Outcome::Dns(dns) = &stored.result.outcome else {
            return true;
        };
        results += 1;
        let asn = stored.probe_origin.as_ref().and_then(|o| o.asn);
        let group = groups.entry(asn).or_default();
        group.row.results += 1;
        if group.row.as_name.is_none() {
            group.row.as_name = stored.probe_origin.as_ref().and_then(|o| o.as_name.clone());
        }
        let probe = stored.result.key.probe_id.to_string();
        group.probes.insert(probe.clone());
        count(group, dns, over_v6(&stored));
        // The DNS64 check pairs a probe's A and AAAA answers for one name on one day (as
        // the daily tallies do).
        if let Some(response) = dns.response.as_ref().filter(|r| r.rcode == 0) {
            let day = stored.result.started_at.0.div_euclid(DAY_US);
            let key = (asn, probe, day, dns.query_name.clone());
            let known = names.contains_key(&key);
            for answer in &response.answers {
                let entry = if known || names.len() < MAX_NAMES {
                    Some(names.entry(key.clone()).or_default())
                } else {
                    None
                };
                match (answer.record_type, entry) {
                    (TYPE_A, Some(entry)) => {
                        if let Ok(v4) = answer.data.parse::<Ipv4Addr>() {
                            entry.a.insert(v4);
                        }
                    }
                    (TYPE_AAAA, entry) => {
                        if let Some(v4) = synthesised(&answer.data) {
                            group.row.dns64.synthesised += 1;
                            match entry {
                                Some(entry) => entry.embedded.push(v4),
                                None => *unverified_overflow.entry(asn).or_default() += 1,
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        true
    })?;
    for ((asn, ..), seen) in names {
        let Some(group) = groups.get_mut(&asn) else {
            continue;
        };
        for v4 in seen.embedded {
            let dns64 = &mut group.row.dns64;
            if seen.a.is_empty() {
                dns64.unverified += 1;
            } else if seen.a.contains(&v4) {
                dns64.correct += 1;
            } else {
                dns64.incorrect += 1;
            }
        }
    }
    for (asn, n) in unverified_overflow {
        if let Some(group) = groups.get_mut(&asn) {
            group.row.dns64.unverified += n;
        }
    }
    let scanned_until = match &end {
        ScanEnd::Budget(cursor) => Some(cursor.started_at),
        ScanEnd::Exhausted | ScanEnd::Stopped => None,
    };
    let rows = groups
        .into_iter()
        .map(|(asn, mut group)| {
            let mut row = group.row;
            row.asn = asn;
            row.probes = group.probes.len() as u64;
            row.resolver_v6 = row.resolver_v6.finish();
            row.aaaa = row.aaaa.finish();
            row.https_ipv6hint = row.https_ipv6hint.finish();
            for (name, encrypted) in &mut row.encrypted {
                encrypted.answered = std::mem::take(&mut encrypted.answered).finish();
                if let Some(t) = group.timings.get_mut(name) {
                    encrypted.median_connect_ms = median_ms(&mut t.connect);
                    encrypted.median_tls_ms = median_ms(&mut t.tls);
                    encrypted.median_query_ms = median_ms(&mut t.query);
                }
            }
            row
        })
        .collect();
    Ok(Scorecard {
        rows,
        results,
        truncated: scanned_until.is_some(),
        scanned_until,
        source: Source::Scan,
    })
}

fn share(count: &Count) -> Share {
    Share {
        asked: count.trials,
        yes: count.hits,
        share: None,
    }
    .finish()
}

/// The scorecard of daily tallies `(day, AS, tallies)`: the rows of one AS (in any country)
/// merged, then scored. The DNS64 pairs are judged per day (the rows of one AS and day
/// merged first: a probe may change country within a day), never across days.
pub fn from_tallies(tallies: impl IntoIterator<Item = (i64, Option<u32>, DnsScore)>) -> Scorecard {
    let mut days: BTreeMap<(Option<u32>, i64), DnsScore> = BTreeMap::new();
    for (day, asn, score) in tallies {
        days.entry((asn, day)).or_default().merge(&score);
    }
    let mut merged: BTreeMap<Option<u32>, (DnsScore, Dns64)> = BTreeMap::new();
    for ((asn, _), mut score) in days {
        let (total, dns64) = merged.entry(asn).or_default();
        for pair in std::mem::take(&mut score.pairs).values() {
            for (v4, n) in &pair.embedded {
                if pair.a.is_empty() {
                    dns64.unverified += n;
                } else if pair.a.contains(v4) {
                    dns64.correct += n;
                } else {
                    dns64.incorrect += n;
                }
            }
        }
        total.merge(&score);
    }
    let mut results = 0;
    let rows = merged
        .into_iter()
        .map(|(asn, (score, mut dns64))| {
            results += score.results;
            dns64.synthesised = score.synthesised;
            let encrypted = ENCRYPTED
                .iter()
                .zip(&score.encrypted)
                .filter_map(|(name, t)| {
                    let t = t.as_ref()?;
                    Some((
                        *name,
                        Encrypted {
                            answered: share(&t.answered),
                            failures: t.failures.clone(),
                            median_connect_ms: t.connect.median_ms(),
                            median_tls_ms: t.tls.median_ms(),
                            median_query_ms: t.query.median_ms(),
                        },
                    ))
                })
                .collect();
            OperatorRow {
                asn,
                as_name: score.as_name.map(|(_, name)| name),
                probes: score.probes.len() as u64,
                results: score.results,
                resolver_v6: share(&score.resolver_v6),
                aaaa: share(&score.aaaa),
                dns64,
                https_ipv6hint: share(&score.https_ipv6hint),
                encrypted,
            }
        })
        .collect();
    Scorecard {
        rows,
        results,
        truncated: false,
        scanned_until: None,
        source: Source::Figures,
    }
}

/// The most days a request sums.
pub const MAX_DAYS: i64 = 90;
/// Days summed when the request names none.
pub const DEFAULT_DAYS: i64 = 30;

/// A scorecard request: the last `days` UTC days (today included), probes of one country
/// and/or AS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub days: i64,
    pub probe_country: Option<CountryCode>,
    pub probe_asn: Option<u32>,
}

impl Request {
    /// Parses `days`, `probe_country` and `probe_asn`; anything else is refused by name.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, FilterError> {
        let mut request = Request {
            days: DEFAULT_DAYS,
            probe_country: None,
            probe_asn: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            if seen.contains(&name) {
                return Err(FilterError::Repeated(name.to_owned()));
            }
            seen.push(name);
            let invalid = |name, expected| FilterError::Invalid {
                name,
                value: value.to_owned(),
                expected,
            };
            match name {
                "days" => {
                    request.days = value
                        .parse()
                        .ok()
                        .filter(|d| (1..=MAX_DAYS).contains(d))
                        .ok_or_else(|| invalid("days", "a number of days from 1 to 90"))?;
                }
                "probe_country" => {
                    request.probe_country = Some(
                        value
                            .to_ascii_uppercase()
                            .parse()
                            .map_err(|_| invalid("probe_country", "an ISO 3166-1 alpha-2 code"))?,
                    );
                }
                "probe_asn" => {
                    request.probe_asn = Some(
                        value
                            .trim_start_matches("AS")
                            .parse()
                            .map_err(|_| invalid("probe_asn", "an AS number"))?,
                    );
                }
                other => return Err(FilterError::Unknown(other.to_owned())),
            }
        }
        Ok(request)
    }
}

/// The scorecard of `request` over the days ending on `now`'s: from the daily tallies, or,
/// on a store that keeps no figures, from a scan of those days' results ([`scorecard`], the
/// per-request computation, within `budget`).
pub fn request(
    store: &dyn Store,
    request: &Request,
    now: UnixMicros,
    budget: ScanBudget,
) -> Result<Scorecard, StoreError> {
    let today = now.0.div_euclid(DAY_US);
    let from_day = today - (request.days - 1);
    let wanted = |country: &Option<CountryCode>, asn: &Option<u32>| {
        request.probe_country.is_none_or(|c| *country == Some(c))
            && request.probe_asn.is_none_or(|a| *asn == Some(a))
    };
    match Source::of(store)? {
        Source::Figures => {
            let mut tallies = Vec::new();
            let mut failed = None;
            store.figure_rows(
                &range_start(kind::DNS, from_day),
                &range_start(kind::DNS, today + 1),
                &mut |key, value| {
                    let decoded = FigureKey::decode(key)
                        .and_then(|k| Figure::decode(value).map(|f| (k, f)))
                        .map_err(|e| read::corrupt(key, e));
                    match decoded {
                        Ok((
                            FigureKey::DnsScore { day, country, asn },
                            Figure::DnsScore(score),
                        )) => {
                            if wanted(&country, &asn) {
                                tallies.push((day, asn, *score));
                            }
                            true
                        }
                        Ok(_) => true,
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
            Ok(from_tallies(tallies))
        }
        Source::Scan => {
            let filter = ResultFilter {
                from: Some(UnixMicros(from_day.saturating_mul(DAY_US))),
                to: Some(UnixMicros((today + 1).saturating_mul(DAY_US))),
                probe_country: request.probe_country,
                probe_asn: request.probe_asn,
                ..ResultFilter::default()
            };
            scorecard(store, &filter, budget)
        }
    }
}

fn count(group: &mut Group, dns: &DnsResult, over_v6: bool) {
    let row = &mut group.row;
    let answered = dns.response.is_some();
    match dns.transport_used {
        DnsTransport::Udp | DnsTransport::Tcp => {
            if over_v6 {
                row.resolver_v6.add(answered);
            }
        }
        encrypted @ (DnsTransport::Tls | DnsTransport::Https) => {
            if over_v6 {
                let name = encrypted.name();
                let entry = row.encrypted.entry(name).or_default();
                entry.answered.add(answered);
                if let Some(class) = dns.failure_class {
                    *entry.failures.entry(class.name().to_owned()).or_default() += 1;
                }
                let timings = group.timings.entry(name).or_default();
                if let Some(session) = &dns.session {
                    timings.connect.extend(session.connect_ns);
                    timings.tls.extend(session.tls_ns);
                }
                timings.query.extend(dns.rtt_ns);
            }
        }
    }
    let Some(response) = dns.response.as_ref().filter(|r| r.rcode == 0) else {
        return;
    };
    match scored_query(dns.query_type, response) {
        Some(Scored::Aaaa(yes)) => row.aaaa.add(yes),
        Some(Scored::Https(yes)) => row.https_ipv6hint.add(yes),
        None => {}
    }
}

fn median_ms(values: &mut [u64]) -> Option<f64> {
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

/// The budget of one scorecard request: an aggregate's.
pub fn budget() -> ScanBudget {
    super::aggregate_budget()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SledStore, StoredResult};
    use sixmap_shared::measurement::{DnsFailureClass, DnsRecord, DnsResponse, DnsSession, Family};
    use sixmap_shared::prefixes::{Enrichment, PrefixData};
    use std::net::IpAddr;

    fn origin(asn: u32) -> Enrichment {
        Enrichment {
            asn: Some(asn),
            as_name: Some(format!("operator {asn}")),
            country: Some("NL".parse().unwrap()),
        }
    }

    fn record(record_type: u16, data: &str) -> DnsRecord {
        DnsRecord {
            name: "www.example.org".into(),
            record_type,
            ttl: 60,
            data: data.into(),
        }
    }

    struct Sample {
        probe: &'static str,
        asn: u32,
        resolver: &'static str,
        transport: DnsTransport,
        query_type: u16,
        answers: Option<Vec<DnsRecord>>,
        failure: Option<DnsFailureClass>,
    }

    fn stored(sequence: u64, s: Sample) -> StoredResult {
        let mut stored = crate::testing::ping_v6(
            s.probe.parse().unwrap(),
            sequence,
            UnixMicros(i64::try_from(sequence).unwrap() * 10),
            None,
            origin(s.asn),
        );
        let resolver: IpAddr = s.resolver.parse().unwrap();
        stored.result.destination = Some(resolver);
        stored.result.family_used = Some(Family::of(resolver));
        let session = s.transport.is_encrypted().then(|| DnsSession {
            connect_ns: Some(1_000_000),
            tls_ns: s.answers.as_ref().map(|_| 3_000_000),
            http_status: None,
            tls_version: None,
        });
        stored.result.outcome = Outcome::Dns(DnsResult {
            query_name: "www.example.org".into(),
            query_type: s.query_type,
            transport_used: s.transport,
            rtt_ns: s.answers.as_ref().map(|_| 2_000_000),
            response: s.answers.map(|answers| DnsResponse {
                rcode: 0,
                flags: 0x8180,
                answers,
            }),
            failure: s.failure.map(|c| c.name().to_owned()),
            failure_class: s.failure,
            session,
        });
        stored
    }

    /// Operator 1: resolver over IPv6 answers AAAA; one timeout; DNS64 right for one
    /// probe, wrong for the other; an HTTPS record with ipv6hint; DoT fine, DoH with a
    /// certificate failure. Operator 2: AAAA answered without data; nothing else.
    fn samples() -> Vec<Sample> {
        let (p1, p2) = ("00000000000000a1", "00000000000000a2");
        let sample = |probe, asn, resolver, transport, query_type, answers, failure| Sample {
            probe,
            asn,
            resolver,
            transport,
            query_type,
            answers,
            failure,
        };
        use DnsTransport::{Https, Tls, Udp};
        let samples = vec![
            // Operator 1: resolver over IPv6 answers AAAA; one timeout; DNS64 right for one
            // probe, wrong for the other; an HTTPS record with ipv6hint; DoT fine, DoH with
            // a certificate failure.
            sample(
                p1,
                1,
                "2001:db8::53",
                Udp,
                28,
                Some(vec![record(28, "2001:db8::1")]),
                None,
            ),
            sample(
                p1,
                1,
                "2001:db8::53",
                Udp,
                28,
                None,
                Some(DnsFailureClass::Timeout),
            ),
            sample(
                p1,
                1,
                "2001:db8::53",
                Udp,
                1,
                Some(vec![record(1, "192.0.2.7")]),
                None,
            ),
            sample(
                p1,
                1,
                "2001:db8::53",
                Udp,
                28,
                Some(vec![record(28, "64:ff9b::c000:207")]),
                None,
            ),
            sample(
                p2,
                1,
                "2001:db8::53",
                Udp,
                1,
                Some(vec![record(1, "192.0.2.8")]),
                None,
            ),
            sample(
                p2,
                1,
                "2001:db8::53",
                Udp,
                28,
                Some(vec![record(28, "64:ff9b::c000:207")]),
                None,
            ),
            sample(
                p1,
                1,
                "2001:db8::53",
                Udp,
                65,
                Some(vec![record(65, "1 . alpn=h2 ipv6hint=2001:db8::1")]),
                None,
            ),
            sample(
                p1,
                1,
                "2001:db8::853",
                Tls,
                28,
                Some(vec![record(28, "2001:db8::1")]),
                None,
            ),
            sample(
                p1,
                1,
                "2001:db8::443",
                Https,
                28,
                None,
                Some(DnsFailureClass::Certificate),
            ),
            // DoT over IPv4 is not a score of IPv6.
            sample(
                p1,
                1,
                "192.0.2.53",
                Tls,
                28,
                None,
                Some(DnsFailureClass::Refused),
            ),
            // Operator 2: AAAA answered without data (no AAAA); nothing else.
            sample(p2, 2, "2001:db8:2::53", Udp, 28, Some(vec![]), None),
        ];
        samples
    }

    #[test]
    fn operators_are_scored_on_each_dns_criterion() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let results: Vec<StoredResult> = samples()
            .into_iter()
            .enumerate()
            .map(|(i, s)| stored(i as u64 + 1, s))
            .collect();
        store.insert_results(&results).unwrap();
        let card = scorecard(&store, &ResultFilter::default(), ScanBudget::rows(1000)).unwrap();
        assert_eq!((card.results, card.truncated), (11, false));
        let one = &card.rows[0];
        assert_eq!(
            (one.asn, one.as_name.as_deref()),
            (Some(1), Some("operator 1"))
        );
        assert_eq!(one.probes, 2);
        assert_eq!((one.resolver_v6.asked, one.resolver_v6.yes), (7, 6));
        // Whatever the transport: DoT answered one too.
        assert_eq!((one.aaaa.asked, one.aaaa.yes), (4, 4));
        assert_eq!(
            one.dns64,
            Dns64 {
                synthesised: 2,
                correct: 1,
                incorrect: 1,
                unverified: 0
            }
        );
        assert_eq!((one.https_ipv6hint.asked, one.https_ipv6hint.yes), (1, 1));
        let dot = &one.encrypted["tls"];
        assert_eq!((dot.answered.asked, dot.answered.yes), (1, 1));
        assert_eq!(dot.median_tls_ms, Some(3.0));
        assert_eq!(dot.median_query_ms, Some(2.0));
        let doh = &one.encrypted["https"];
        assert_eq!((doh.answered.asked, doh.answered.yes), (1, 0));
        assert_eq!(doh.failures.get("certificate"), Some(&1));
        assert_eq!(doh.median_connect_ms, Some(1.0));
        assert_eq!(doh.median_tls_ms, None);
        let two = &card.rows[1];
        assert_eq!(
            (two.aaaa.asked, two.aaaa.yes, two.aaaa.share),
            (1, 0, Some(0.0))
        );
        assert!(two.encrypted.is_empty());
        assert_eq!(two.https_ipv6hint.share, None);
        // A budget too small for the whole store says so.
        let cut = scorecard(&store, &ResultFilter::default(), ScanBudget::rows(3)).unwrap();
        assert!(cut.truncated && cut.scanned_until.is_some());
    }

    /// Both scorecards agree: every count exactly, medians within the sketch's error.
    fn assert_same(scan: &Scorecard, tallied: &Scorecard) {
        assert_eq!(
            (scan.results, scan.truncated),
            (tallied.results, tallied.truncated)
        );
        assert_eq!(
            scan.rows.len(),
            tallied.rows.len(),
            "{scan:#?}\n{tallied:#?}"
        );
        let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= a * crate::figures::sketch::RELATIVE_ERROR,
            (a, b) => a == b,
        };
        for (s, t) in scan.rows.iter().zip(&tallied.rows) {
            assert_eq!(
                (s.asn, &s.as_name, s.probes, s.results, &s.resolver_v6),
                (t.asn, &t.as_name, t.probes, t.results, &t.resolver_v6)
            );
            assert_eq!(&s.aaaa, &t.aaaa);
            assert_eq!((&s.dns64, &s.https_ipv6hint), (&t.dns64, &t.https_ipv6hint));
            assert_eq!(
                s.encrypted.keys().collect::<Vec<_>>(),
                t.encrypted.keys().collect::<Vec<_>>()
            );
            for (name, se) in &s.encrypted {
                let te = &t.encrypted[name];
                assert_eq!((&se.answered, &se.failures), (&te.answered, &te.failures));
                for (a, b) in [
                    (se.median_connect_ms, te.median_connect_ms),
                    (se.median_tls_ms, te.median_tls_ms),
                    (se.median_query_ms, te.median_query_ms),
                ] {
                    assert!(close(a, b), "{name}: {a:?} against {b:?}");
                }
            }
        }
    }

    /// The model test: the daily tallies, stored as figure rows and read back, give the
    /// scorecard the per-request scan gives on the same results, over several days, an AS
    /// seen in two countries, and the request's country and AS filters.
    #[test]
    fn daily_tallies_give_the_scorecard_of_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut results = Vec::new();
        let mut sequence = 0u64;
        for day in 0..3i64 {
            for (i, sample) in samples().into_iter().enumerate() {
                // Day 1 lacks probe a2's A answer: its synthesised record is unverified that
                // day, whatever the other days answered (pairs stay within a day).
                if day == 1 && i == 4 {
                    continue;
                }
                sequence += 1;
                let mut r = stored(sequence, sample);
                r.result.started_at =
                    UnixMicros(day * DAY_US + i64::try_from(sequence).unwrap() * 1_000);
                if day == 2
                    && let Some(origin) = r.probe_origin.as_mut()
                {
                    origin.country = Some("FR".parse().unwrap());
                }
                // Timings that differ, so the medians are of something.
                if let Outcome::Dns(dns) = &mut r.result.outcome {
                    dns.rtt_ns = dns.rtt_ns.map(|ns| ns + sequence * 37_000);
                    if let Some(session) = dns.session.as_mut() {
                        session.connect_ns = session.connect_ns.map(|ns| ns + sequence * 11_000);
                    }
                }
                results.push(r);
            }
        }
        // A ping is not scored.
        results.push(crate::testing::ping_v6(
            "00000000000000a1".parse().unwrap(),
            sequence + 1,
            UnixMicros(DAY_US),
            None,
            origin(1),
        ));
        store.insert_results(&results).unwrap();
        let now = UnixMicros(2 * DAY_US + 5);
        let requests = [
            Request {
                days: 3,
                probe_country: None,
                probe_asn: None,
            },
            Request {
                days: 2,
                probe_country: Some("NL".parse().unwrap()),
                probe_asn: None,
            },
            Request {
                days: 90,
                probe_country: None,
                probe_asn: Some(1),
            },
        ];
        let budget = ScanBudget::rows(10_000);
        let scanned: Vec<Scorecard> = requests
            .iter()
            .map(|r| request(&store, r, now, budget).unwrap())
            .collect();
        let whole = &scanned[0];
        assert_eq!((whole.results, whole.rows.len()), (32, 2));
        assert_eq!(
            whole.rows[0].dns64,
            Dns64 {
                synthesised: 6,
                correct: 3,
                incorrect: 2,
                unverified: 1
            }
        );
        // Days 1 and 2, and day 2 is in FR: day 1 only.
        assert_eq!(scanned[1].results, 10);
        assert_eq!(scanned[2].rows.len(), 1);
        crate::figures::fold::rebuild(&store, &PrefixData::default(), now).unwrap();
        for (r, scan) in requests.iter().zip(&scanned) {
            // One row of budget: a scan would be truncated.
            let tallied = request(&store, r, now, ScanBudget::rows(1)).unwrap();
            assert_eq!(
                (scan.source, tallied.source),
                (Source::Scan, Source::Figures)
            );
            assert_same(scan, &tallied);
        }
    }

    #[test]
    fn a_request_names_the_parameter_it_refuses() {
        let parse = |pairs: &[(&str, &str)]| Request::from_pairs(pairs.iter().copied());
        assert_eq!(
            parse(&[
                ("days", "7"),
                ("probe_country", "nl"),
                ("probe_asn", "AS64500")
            ])
            .unwrap(),
            Request {
                days: 7,
                probe_country: Some("NL".parse().unwrap()),
                probe_asn: Some(64500),
            }
        );
        assert_eq!(parse(&[]).unwrap().days, DEFAULT_DAYS);
        for (pairs, parameter) in [
            (&[("days", "0")][..], "days"),
            (&[("days", "91")][..], "days"),
            (&[("days", "x")][..], "days"),
            (&[("probe_asn", "not-a-number")][..], "probe_asn"),
            (&[("probe_country", "Netherlands")][..], "probe_country"),
            (&[("from", "0")][..], "from"),
            (&[("days", "1"), ("days", "2")][..], "days"),
        ] {
            let e = super::super::ParamError::from(parse(pairs).unwrap_err());
            assert_eq!(e.parameter(), parameter, "{pairs:?}");
        }
    }

    #[test]
    fn only_the_well_known_prefix_reads_as_synthesised() {
        assert_eq!(
            synthesised("64:ff9b::c000:207"),
            Some(Ipv4Addr::new(192, 0, 2, 7))
        );
        assert_eq!(synthesised("64:ff9b:1::c000:207"), None);
        assert_eq!(synthesised("2001:db8::1"), None);
        assert_eq!(synthesised("not an address"), None);
    }
}
