//! The incremental figures against a rebuild from raw results, and the published JSON from
//! figures against the reference computation from scans, on random results (seeded).

use super::fold::{compute, fold_once};
use super::*;
use crate::query::aggregate::{
    AggregateRequest, GroupBy, Side as AggSide, aggregate_scan, from_figures,
};
use crate::store::auth::{
    ApiTokenRecord, AuditEntry, AuthStore, EnrollmentTokenRecord, NewEnrollment,
};
use crate::store::{
    FigureStore, FigureWrite, Inserted, ProbeRecord, ResultFilter, ResultQuery, ScanBudget,
    SledStore, Store, StoreError, StoredResult, TagEvent,
};
use crate::{daily, maps};
use serde_json::Value;
use sixmap_shared::health::{OutboxLoss, ProbeTag, TagName};
use sixmap_shared::measurement::{
    ExtHeaderOutcome, ExtHeaderResult, ExtHeaderType, HopAnswer, HopReply, PmtuResult,
    TraceProtocol, TraceStop, TracerouteHop, TracerouteResult,
};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{TaskId, UnixMicros};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A sled store with an in-memory ingest log (until the sled store keeps one): every new
/// result once, in insertion order; duplicates never logged.
#[derive(Debug)]
pub(crate) struct LoggedStore {
    inner: SledStore,
    log: Mutex<(u64, BTreeMap<u64, StoredResult>)>,
    /// Makes the next `put_figures` fail, as a crash before the write would.
    fail_next_put: AtomicBool,
    _dir: tempfile::TempDir,
}

impl LoggedStore {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            inner: SledStore::open(dir.path()).unwrap(),
            log: Mutex::new((0, BTreeMap::new())),
            fail_next_put: AtomicBool::new(false),
            _dir: dir,
        }
    }
    fn log_len(&self) -> usize {
        self.log.lock().unwrap().1.len()
    }
}

impl AuthStore for LoggedStore {
    fn put_enrollment_token(&self, h: &str, t: &EnrollmentTokenRecord) -> Result<(), StoreError> {
        self.inner.put_enrollment_token(h, t)
    }
    fn enrollment_token(&self, h: &str) -> Result<Option<EnrollmentTokenRecord>, StoreError> {
        self.inner.enrollment_token(h)
    }
    fn enrollment_tokens(&self) -> Result<Vec<(String, EnrollmentTokenRecord)>, StoreError> {
        self.inner.enrollment_tokens()
    }
    fn replace_enrollment_token(
        &self,
        h: &str,
        e: &EnrollmentTokenRecord,
        n: &EnrollmentTokenRecord,
    ) -> Result<bool, StoreError> {
        self.inner.replace_enrollment_token(h, e, n)
    }
    fn put_api_token(&self, h: &str, t: &ApiTokenRecord) -> Result<(), StoreError> {
        self.inner.put_api_token(h, t)
    }
    fn api_token(&self, h: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        self.inner.api_token(h)
    }
    fn api_tokens(&self) -> Result<Vec<(String, ApiTokenRecord)>, StoreError> {
        self.inner.api_tokens()
    }
    fn bind_certificate(&self, f: &str, p: &ProbeId) -> Result<(), StoreError> {
        self.inner.bind_certificate(f, p)
    }
    fn certificate_probe(&self, f: &str) -> Result<Option<ProbeId>, StoreError> {
        self.inner.certificate_probe(f)
    }
    fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.inner.append_audit(e)
    }
    fn record_enrollment(&self, e: &NewEnrollment) -> Result<bool, StoreError> {
        self.inner.record_enrollment(e)
    }
    fn owner_probe_count(&self, o: &str, n: &str) -> Result<usize, StoreError> {
        self.inner.owner_probe_count(o, n)
    }
    fn owner_has_probe(&self, o: &str, n: &str, p: &ProbeId) -> Result<bool, StoreError> {
        self.inner.owner_has_probe(o, n, p)
    }
    fn index_owner_probe(
        &self,
        o: &str,
        n: &[String],
        p: &ProbeId,
        present: bool,
    ) -> Result<(), StoreError> {
        self.inner.index_owner_probe(o, n, p, present)
    }
    fn owner_index_complete(&self) -> Result<bool, StoreError> {
        self.inner.owner_index_complete()
    }
    fn mark_owner_index_complete(&self) -> Result<(), StoreError> {
        self.inner.mark_owner_index_complete()
    }
    fn audit(&self, l: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit(l)
    }
}

impl FigureStore for LoggedStore {
    fn keeps_figures(&self) -> bool {
        true
    }
    fn figures_cursor(&self) -> Result<Option<u64>, StoreError> {
        self.inner.figures_cursor()
    }
    fn figure(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.figure(key)
    }
    fn figure_rows(
        &self,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.figure_rows(from, to, visit)
    }
    fn put_figures(&self, rows: &[FigureWrite], cursor: u64) -> Result<(), StoreError> {
        if self.fail_next_put.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Backend("injected failure".into()));
        }
        self.inner.put_figures(rows, cursor)
    }
    fn replace_figures(&self, rows: &[(Vec<u8>, Vec<u8>)], cursor: u64) -> Result<(), StoreError> {
        self.inner.replace_figures(rows, cursor)
    }
}

impl Store for LoggedStore {
    fn create_probe(&self, p: &ProbeRecord) -> Result<(), StoreError> {
        self.inner.create_probe(p)
    }
    fn update_probe(&self, p: &ProbeRecord) -> Result<(), StoreError> {
        self.inner.update_probe(p)
    }
    fn probe(&self, id: &ProbeId) -> Result<Option<ProbeRecord>, StoreError> {
        self.inner.probe(id)
    }
    fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        self.inner.probes()
    }
    fn task_id(&self, d: &str) -> Result<TaskId, StoreError> {
        self.inner.task_id(d)
    }
    fn record_assignment(&self, p: &ProbeId, t: TaskId) -> Result<(), StoreError> {
        self.inner.record_assignment(p, t)
    }
    fn is_assigned(&self, p: &ProbeId, t: TaskId) -> Result<bool, StoreError> {
        self.inner.is_assigned(p, t)
    }
    fn insert_results(&self, results: &[StoredResult]) -> Result<Vec<Inserted>, StoreError> {
        let mut log = self.log.lock().unwrap();
        let outcome = self.inner.insert_results(results)?;
        for (result, inserted) in results.iter().zip(&outcome) {
            if *inserted == Inserted::New {
                log.0 += 1;
                let position = log.0;
                log.1.insert(position, result.clone());
            }
        }
        Ok(outcome)
    }
    fn results(&self, q: &ResultQuery) -> Result<Vec<StoredResult>, StoreError> {
        self.inner.results(q)
    }
    fn scan_results_between(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan_results_between(from, to, visit)
    }
    fn put_rollup(&self, d: &str, c: &str, j: &[u8]) -> Result<(), StoreError> {
        self.inner.put_rollup(d, c, j)
    }
    fn rollups(&self, c: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.rollups(c)
    }
    fn rollups_of_day(&self, d: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.rollups_of_day(d)
    }
    fn insert_losses(&self, l: &[OutboxLoss]) -> Result<Vec<Inserted>, StoreError> {
        self.inner.insert_losses(l)
    }
    fn losses(&self, q: &ResultQuery) -> Result<Vec<OutboxLoss>, StoreError> {
        self.inner.losses(q)
    }
    fn record_tag_event(&self, p: &ProbeId, e: &TagEvent) -> Result<(), StoreError> {
        self.inner.record_tag_event(p, e)
    }
    fn tag_history(&self, p: &ProbeId) -> Result<Vec<TagEvent>, StoreError> {
        self.inner.tag_history(p)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn ingest_log_after(
        &self,
        after: u64,
        max: usize,
        visit: &mut dyn FnMut(u64, StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        let entries: Vec<(u64, StoredResult)> = {
            let log = self.log.lock().unwrap();
            log.1
                .range(after + 1..)
                .take(max)
                .map(|(p, r)| (*p, r.clone()))
                .collect()
        };
        for (position, result) in entries {
            if !visit(position, result) {
                break;
            }
        }
        Ok(())
    }
    fn ingest_log_head(&self) -> Result<u64, StoreError> {
        Ok(self.log.lock().unwrap().0)
    }
    fn prune_ingest_log(&self, upto: u64) -> Result<(), StoreError> {
        let mut log = self.log.lock().unwrap();
        log.1 = log.1.split_off(&(upto + 1));
        Ok(())
    }
}

/// splitmix64, as in the probe's delivery model test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const DAY0: i64 = 20_400;
const DAYS: i64 = 3;
/// On an hour boundary, after every generated result.
const NOW: i64 = (DAY0 + DAYS) * DAY_US;

fn probe(i: u64) -> ProbeId {
    format!("{:016x}", 0xa0 + i).parse().unwrap()
}

fn origins() -> Vec<Option<Enrichment>> {
    let o = |asn: Option<u32>, country: Option<&str>| {
        Some(Enrichment {
            asn,
            as_name: asn.map(|a| format!("AS{a}")),
            country: country.map(|c| c.parse().unwrap()),
        })
    };
    vec![
        o(Some(1), Some("XA")),
        o(Some(2), Some("XA")),
        o(Some(3), Some("XB")),
        o(Some(4), None),
        o(None, Some("XB")),
        None,
    ]
}

/// One random result of probe `p`, sequence `seq`.
fn random_result(rng: &mut Rng, p: u64, seq: u64) -> StoredResult {
    let at = DAY0 * DAY_US + rng.below((DAYS * DAY_US) as u64) as i64;
    let origins = origins();
    // Mostly the probe's home origin; sometimes another (it moved, or the prefix data changed).
    let home = &origins[(p % 4) as usize];
    let origin = if rng.below(8) == 0 {
        rng.pick(&origins).clone()
    } else {
        home.clone()
    };
    let rtt =
        (rng.below(4) != 0).then(|| std::time::Duration::from_micros(1_000 + rng.below(150_000)));
    let mut stored = crate::testing::ping_v6(
        probe(p),
        seq,
        UnixMicros(at),
        rtt,
        origin.clone().unwrap_or_default(),
    );
    stored.probe_origin = origin;
    stored.result.key.boot_epoch = 1 + rng.below(2);
    stored.target_origin = rng.pick(&origins).clone();
    let r = &mut stored.result;
    match rng.below(10) {
        0 => r.family_used = Some(Family::V4),
        1 => r.family_used = None,
        2 => r.destination = Some("2001:db8::1".parse().unwrap()),
        _ => {}
    }
    let hop = |from: &str, i: u8| TracerouteHop {
        hop_limit: i,
        replies: vec![Some(HopReply {
            from: from.parse().unwrap(),
            rtt_ns: 1_000_000,
            answer: HopAnswer::Icmp {
                icmp_type: 3,
                icmp_code: 0,
                mtu: None,
            },
        })],
    };
    r.outcome = match rng.below(12) {
        0 => Outcome::Pmtu(PmtuResult {
            path_mtu: 1280,
            black_hole: rng.below(2) == 0,
            black_hole_hop: None,
            black_hole_from: None,
            too_big: Vec::new(),
            packets_sent: 4,
            fault_path: None,
        }),
        1 => {
            let mut outcomes = Vec::new();
            for header in ExtHeaderType::ALL {
                if rng.below(2) == 0 {
                    outcomes.push(ExtHeaderOutcome {
                        header,
                        survived: rng.below(2) == 0,
                        dropped_at_hop: None,
                        last_responder: None,
                        icmp_error: None,
                    });
                }
            }
            Outcome::ExtHeaders(ExtHeaderResult {
                outcomes,
                packets_sent: 3,
                fault_path: None,
            })
        }
        2 => Outcome::Traceroute(TracerouteResult {
            protocol: TraceProtocol::Icmp,
            flow_label: 0,
            hops: vec![
                hop("2a00:1::1", 1),
                hop(
                    if rng.below(2) == 0 {
                        "2a00:1::2"
                    } else {
                        "2a00:2::1"
                    },
                    2,
                ),
            ],
            reached_destination: rng.below(2) == 0,
            stop: TraceStop::Reached,
            packets_sent: 2,
            reused_hops: 0,
        }),
        3 => Outcome::Failed(sixmap_shared::measurement::MeasurementError {
            class: sixmap_shared::measurement::ErrorClass::Network,
            message: "no route".into(),
        }),
        // DNS scorecard rows: A and synthesised AAAA answers of a few names, some over DoT.
        4 => {
            use sixmap_shared::measurement::{
                DnsFailureClass, DnsRecord, DnsResponse, DnsResult, DnsTransport,
            };
            let (query_type, data) = match rng.below(3) {
                0 => (1, format!("192.0.2.{}", rng.below(3))),
                1 => (28, format!("64:ff9b::c000:2{:02x}", rng.below(3))),
                _ => (28, "2001:db8::1".to_owned()),
            };
            let answered = rng.below(4) != 0;
            Outcome::Dns(DnsResult {
                query_name: format!("n{}.example", rng.below(2)),
                query_type,
                transport_used: if rng.below(3) == 0 {
                    DnsTransport::Tls
                } else {
                    DnsTransport::Udp
                },
                rtt_ns: answered.then(|| 1_000_000 + rng.below(9_000_000)),
                response: answered.then(|| DnsResponse {
                    rcode: 0,
                    flags: 0x8180,
                    answers: vec![DnsRecord {
                        name: "n.example".into(),
                        record_type: query_type,
                        ttl: 60,
                        data,
                    }],
                }),
                failure: None,
                failure_class: (!answered).then_some(DnsFailureClass::Timeout),
                session: None,
            })
        }
        _ => r.outcome.clone(),
    };
    stored
}

fn prefixes() -> PrefixData {
    let mut prefixes = PrefixData::new();
    for (net, cc) in [("2a00:1::", "XA"), ("2a00:2::", "XB")] {
        prefixes
            .country
            .insert(net.parse().unwrap(), 32, cc.parse().unwrap())
            .unwrap();
    }
    prefixes
}

/// Every stored figure row, decoded.
fn stored_rows(store: &dyn Store) -> BTreeMap<FigureKey, Figure> {
    let mut out = BTreeMap::new();
    store
        .figure_rows(b"A", b"~", &mut |k, v| {
            out.insert(FigureKey::decode(k).unwrap(), Figure::decode(v).unwrap());
            true
        })
        .unwrap();
    out
}

fn add_probes(store: &dyn Store, rng: &mut Rng) {
    let origins = origins();
    for p in 0..6 {
        let tags = if rng.below(3) != 0 {
            vec![ProbeTag {
                name: TagName::new("v6-works").unwrap(),
                since: UnixMicros(DAY0 * DAY_US),
            }]
        } else {
            Vec::new()
        };
        store
            .create_probe(&ProbeRecord {
                id: probe(p),
                hostname: String::new(),
                enrolled_at: UnixMicros(DAY0 * DAY_US),
                last_seen: Some(UnixMicros(NOW - 1)),
                software_version: None,
                boot_epoch: Some(1),
                local_addresses: Vec::new(),
                self_test: None,
                last_v6_success: None,
                tags,
                location: None,
                origin: origins[(p % 4) as usize].clone(),
                owner: None,
                enrolled_from: None,
                enrolled_prefix: None,
                certificate_sha256: None,
                revoked_at: None,
                directory_listed: false,
            })
            .unwrap();
    }
}

/// Equal, except numbers under a key holding "median" or "penalty" may differ by the
/// sketch's error (a penalty by that of both its medians), and `method`/`source` differ.
fn assert_close(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                if k == "method" || k == "source" {
                    continue;
                }
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let (true, Value::Array(x), Value::Array(y)) = (k.contains("median"), va, vb) {
                    // Per-probe medians (stored operator parts): each within 1 %.
                    assert_eq!(x.len(), y.len(), "{path}.{k}: lengths");
                    for (p, q) in x.iter().zip(y) {
                        let (p, q) = (p.as_f64().unwrap(), q.as_f64().unwrap());
                        let allowed = sketch::RELATIVE_ERROR * 1.0001 * q.abs() + 1e-9;
                        assert!((p - q).abs() <= allowed, "{path}.{k}: {p} vs {q}");
                    }
                } else if k.contains("median") || k.contains("penalty") {
                    match (va.as_f64(), vb.as_f64()) {
                        (Some(p), Some(q)) => {
                            let allowed = if k.contains("penalty") {
                                // |m6| + |m4| ≥ |penalty|; each within 1 %.
                                let o6 = x
                                    .get("median_rtt_v6_ms")
                                    .and_then(Value::as_f64)
                                    .unwrap_or(0.0);
                                let o4 = x
                                    .get("median_rtt_v4_ms")
                                    .and_then(Value::as_f64)
                                    .unwrap_or(0.0);
                                sketch::RELATIVE_ERROR * 1.01 * (o6.abs() + o4.abs()) + 1e-9
                            } else {
                                sketch::RELATIVE_ERROR * 1.0001 * q.abs() + 1e-9
                            };
                            assert!((p - q).abs() <= allowed, "{path}.{k}: {p} vs {q}");
                        }
                        _ => assert_eq!(va, vb, "{path}.{k}"),
                    }
                } else {
                    assert_close(va, vb, &format!("{path}.{k}"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                assert_close(p, q, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

use std::collections::BTreeSet;

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// Up to 24 results of six probes: new ones (next sequence of `seq`, kept in `sent`) and
/// replays of earlier ones (lost acks), sometimes with other contents.
fn random_batch(
    rng: &mut Rng,
    sent: &mut Vec<StoredResult>,
    seq: &mut [u64; 6],
) -> Vec<StoredResult> {
    let mut batch = Vec::new();
    for _ in 0..rng.below(25) {
        if !sent.is_empty() && rng.below(6) == 0 {
            let mut again = rng.pick(sent).clone();
            if rng.below(2) == 0 {
                again.probe_origin = None;
            }
            batch.push(again);
            continue;
        }
        let p = rng.below(6);
        seq[p as usize] += 1;
        let r = random_result(rng, p, seq[p as usize]);
        sent.push(r.clone());
        batch.push(r);
    }
    batch
}

#[test]
fn incremental_figures_equal_a_rebuild_and_publish_what_scans_do() {
    let prefixes = prefixes();
    for seed in 1..=4u64 {
        let mut rng = Rng(seed);
        let store = LoggedStore::new();
        add_probes(&store, &mut rng);
        super::fold::rebuild(&store, &prefixes, UnixMicros(NOW)).unwrap();
        let mut sent: Vec<StoredResult> = Vec::new();
        let mut seq = [0u64; 6];
        for round in 0..60 {
            let batch = random_batch(&mut rng, &mut sent, &mut seq);
            store.insert_results(&batch).unwrap();
            if rng.below(3) == 0 {
                // A write that fails (a crash before it) changes nothing; the next round
                // folds the same entries once.
                if rng.below(4) == 0 {
                    store.fail_next_put.store(true, Ordering::SeqCst);
                    assert!(
                        fold_once(&store, &prefixes, 1 + rng.below(40) as usize, i64::MIN).is_err()
                    );
                }
                fold_once(&store, &prefixes, 1 + rng.below(40) as usize, i64::MIN).unwrap();
            }
            let _ = round;
        }
        while fold_once(&store, &prefixes, 50, i64::MIN).unwrap().folded > 0 {}
        assert_eq!(store.log_len(), 0, "the log is pruned once folded");
        let (rebuilt, results) = compute(&store, &prefixes, i64::MIN).unwrap();
        assert!(results > 300, "seed {seed}: {results} results");
        let incremental = stored_rows(&store);
        assert_eq!(incremental.len(), rebuilt.rows.len(), "seed {seed}");
        for (key, figure) in &rebuilt.rows {
            assert_eq!(incremental.get(key), Some(figure), "seed {seed}: {key:?}");
        }

        // Published figures: from the kept figures and from scans (the old computation).
        for day in DAY0..DAY0 + DAYS {
            let at = UnixMicros(day * DAY_US);
            let rule = crate::rollup::MinSample::default();
            let f = daily::compute_day_from(&store, &prefixes, at, Source::Figures, rule).unwrap();
            let s = daily::compute_day_from(&store, &prefixes, at, Source::Scan, rule).unwrap();
            assert!(!s.countries.is_empty() && !s.networks.is_empty());
            assert_close(&json(&f.countries), &json(&s.countries), "countries");
            assert_close(&json(&f.networks), &json(&s.networks), "networks");
            assert_close(
                &json(&f.networks_published),
                &json(&s.networks_published),
                "networks published",
            );
        }
        let now = UnixMicros(NOW);
        let f = maps::countries_from(&store, now, Source::Figures).unwrap();
        let s = maps::countries_from(&store, now, Source::Scan).unwrap();
        assert!(!s.countries.is_empty());
        assert_eq!(f.source, Source::Figures);
        assert_close(&json(&f), &json(&s), "map");
        for cc in ["XA", "XB"] {
            let cc = cc.parse().unwrap();
            let f = maps::country_from(&store, cc, now, Source::Figures).unwrap();
            let s = maps::country_from(&store, cc, now, Source::Scan).unwrap();
            assert_close(&json(&f), &json(&s), "country");
        }
        for group_by in [
            GroupBy::Country,
            GroupBy::Asn,
            GroupBy::Day,
            GroupBy::CountryDay,
            GroupBy::AsnDay,
        ] {
            for side in [AggSide::Probe, AggSide::Target] {
                for (from, to) in [(None, None), (Some(DAY0 + 1), Some(DAY0 + 2))] {
                    let request = AggregateRequest {
                        filter: ResultFilter {
                            from: from.map(|d| UnixMicros(d * DAY_US)),
                            to: to.map(|d| UnixMicros(d * DAY_US)),
                            ..ResultFilter::default()
                        },
                        group_by,
                        side,
                    };
                    let f = from_figures(&store, &request, u64::MAX).unwrap();
                    let s = aggregate_scan(&store, &request, ScanBudget::rows(1_000_000)).unwrap();
                    assert!(!s.truncated && s.results > 0);
                    assert_eq!(f.source, Source::Figures);
                    assert_close(&json(&f), &json(&s), "aggregates");
                }
            }
        }
    }
}

#[test]
fn keys_and_rows_round_trip_and_damage_is_an_error() {
    let mut rng = Rng(99);
    let mut set = FigureSet::default();
    for seq in 1..200 {
        set.fold(
            &random_result(&mut rng, seq % 6, seq),
            &prefixes(),
            i64::MIN,
        );
    }
    for (key, figure) in &set.rows {
        let k = key.encode();
        assert_eq!(&FigureKey::decode(&k).unwrap(), key);
        let v = figure.encode();
        assert_eq!(&Figure::decode(&v).unwrap(), figure);
        assert!(Figure::decode(&v[..v.len() - 1]).is_err());
        assert!(FigureKey::decode(&k[..k.len() - 1]).is_err());
        let mut longer = v.clone();
        longer.push(0);
        assert!(Figure::decode(&longer).is_err());
    }
    assert!(Figure::decode(&[9, b'T']).is_err(), "unknown format");
    // Merging is associative and commutative: split the results three ways, any order.
    let mut rng = Rng(5);
    let results: Vec<_> = (1..300)
        .map(|s| random_result(&mut rng, s % 6, s))
        .collect();
    let part = |n: usize| {
        let mut set = FigureSet::default();
        for r in results.iter().skip(n).step_by(3) {
            set.fold(r, &prefixes(), i64::MIN);
        }
        set
    };
    let mut abc = part(0);
    abc.merge(part(1));
    abc.merge(part(2));
    let mut cba = part(2);
    let mut ba = part(1);
    ba.merge(part(0));
    cba.merge(ba);
    assert_eq!(abc, cba);
}

#[test]
fn hour_rows_are_kept_for_recent_hours_only_and_pruned() {
    let store = LoggedStore::new();
    let prefixes = PrefixData::new();
    super::fold::rebuild(&store, &prefixes, UnixMicros(NOW)).unwrap();
    let origin = origins()[0].clone().unwrap();
    let ms = std::time::Duration::from_millis;
    let old = crate::testing::ping_v6(
        probe(0),
        1,
        UnixMicros(NOW - 50 * HOUR_US),
        Some(ms(5)),
        origin.clone(),
    );
    let new = crate::testing::ping_v6(
        probe(0),
        2,
        UnixMicros(NOW - 2 * HOUR_US),
        Some(ms(5)),
        origin,
    );
    store.insert_results(&[old, new]).unwrap();
    fold_once(&store, &prefixes, 10, NOW - 60 * HOUR_US).unwrap();
    let hours = |s: &LoggedStore| {
        stored_rows(s)
            .keys()
            .filter(|k| matches!(k, FigureKey::ProbeHour { .. }))
            .count()
    };
    assert_eq!(hours(&store), 2);
    assert_eq!(
        super::fold::prune_hours(&store, super::fold::hours_since(UnixMicros(NOW))).unwrap(),
        1
    );
    assert_eq!(hours(&store), 1);
    // A rebuild keeps the same recent hours only.
    super::fold::rebuild(&store, &prefixes, UnixMicros(NOW)).unwrap();
    assert_eq!(hours(&store), 1);
}

/// The ingest path's hand-off (`feed`) on the sled store: deltas handed over late, out of
/// order, never (a session that stopped, a full feed) or lost with a restart; the folder mixes
/// them with log reads, and the figures still equal a rebuild.
#[test]
fn figures_fed_by_sessions_equal_a_rebuild_whatever_reaches_the_folder() {
    use super::feed::Feed;
    use super::fold::fold_once_fed;
    use crate::store::SledStore;
    let prefixes = prefixes();
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed);
        let store = SledStore::open(dir.path()).unwrap();
        add_probes(&store, &mut rng);
        super::fold::rebuild(&store, &prefixes, UnixMicros(NOW)).unwrap();
        let mut feed = Feed::default();
        let mut sent: Vec<StoredResult> = Vec::new();
        let mut late: Vec<(u64, Vec<StoredResult>)> = Vec::new();
        let mut seq = [0u64; 6];
        let (mut from_feed, mut from_log) = (0usize, 0usize);
        for _ in 0..80 {
            let batch = random_batch(&mut rng, &mut sent, &mut seq);
            let (inserted, first) = store.insert_results_logged(&batch).unwrap();
            let new: Vec<StoredResult> = batch
                .into_iter()
                .zip(&inserted)
                .filter(|(_, i)| **i == Inserted::New)
                .map(|(r, _)| r)
                .collect();
            assert_eq!(first.is_some(), !new.is_empty());
            if let Some(first) = first {
                match rng.below(8) {
                    // Never handed over: the session stopped after storing.
                    0 => {}
                    // Handed over after a later batch's.
                    1 | 2 => late.push((first, new)),
                    _ => feed.offer(first, new.iter(), &prefixes, i64::MIN),
                }
            }
            if rng.below(4) == 0 {
                for (first, new) in late.drain(..) {
                    feed.offer(first, new.iter(), &prefixes, i64::MIN);
                }
            }
            if rng.below(15) == 0 {
                // A restart: what was handed over is gone; the log is not.
                feed = Feed::default();
                late.clear();
            }
            if rng.below(3) == 0 {
                let round = fold_once_fed(
                    &store,
                    &prefixes,
                    &feed,
                    1 + rng.below(60) as usize,
                    i64::MIN,
                )
                .unwrap();
                from_log += round.from_log;
                from_feed += round.folded - round.from_log;
            }
        }
        for (first, new) in late.drain(..) {
            feed.offer(first, new.iter(), &prefixes, i64::MIN);
        }
        loop {
            let round = fold_once_fed(&store, &prefixes, &feed, 50, i64::MIN).unwrap();
            if round.folded == 0 && !round.more_waiting {
                break;
            }
        }
        assert_eq!(
            store.figures_cursor().unwrap(),
            Some(store.ingest_log_head().unwrap()),
            "seed {seed}: everything logged is folded"
        );
        let (rebuilt, results) = compute(&store, &prefixes, i64::MIN).unwrap();
        assert!(results > 300, "seed {seed}: {results} results");
        assert!(
            from_feed > 0 && from_log > 0,
            "seed {seed}: {from_feed} {from_log}"
        );
        let incremental = stored_rows(&store);
        assert_eq!(incremental.len(), rebuilt.rows.len(), "seed {seed}");
        for (key, figure) in &rebuilt.rows {
            assert_eq!(incremental.get(key), Some(figure), "seed {seed}: {key:?}");
        }
    }
}

impl crate::store::AlertStore for LoggedStore {}
