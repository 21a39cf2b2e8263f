//! The ClickHouse store against real ClickHouse servers started by the test (Debian's 18.16
//! here): the sled store's behaviour, concurrent token claims from two store instances, a
//! Distributed table over two shards, and the SQL replayed on current ClickHouse with chdb.
//! Without ClickHouse installed the tests skip, and fail when `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::store::{
    AuditEntry, AuthStore, ClickHouseConfig, ClickHouseStore, EnrollmentTokenRecord, FigureStore,
    Inserted, ProbeRecord, ResultQuery, Store, StoreError, StoredResult, TagEvent,
};
use sixmap_collector::testing::clickhouse::{self, ClickHouseServer};
use sixmap_collector::testing::ping_v6;
use sixmap_shared::health::{LossReason, OutboxLoss, TagName};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{ProbeId, ResultKey, TaskId, UnixMicros};
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn config(server: &ClickHouseServer, database: &str) -> ClickHouseConfig {
    ClickHouseConfig::local(&server.url(), database)
}

fn result(probe: &ProbeId, epoch: u64, sequence: u64, at: i64) -> StoredResult {
    let mut r = ping_v6(
        probe.clone(),
        sequence,
        UnixMicros(at),
        Some(Duration::from_millis(3)),
        Enrichment {
            asn: Some(64500),
            as_name: Some("EXAMPLE-AS, with\ttab and 'quote' \\ and é".into()),
            country: "DE".parse().ok(),
        },
    );
    r.result.key.boot_epoch = epoch;
    r
}

fn probe_record(hostname: &str) -> ProbeRecord {
    ProbeRecord {
        software_version: Some("0.1.0".into()),
        local_addresses: vec!["2001:db8::1".parse().unwrap()],
        owner: Some("alice".into()),
        ..ProbeRecord::new(ProbeId::random().unwrap(), hostname, UnixMicros(1))
    }
}

fn keys(results: &[StoredResult]) -> Vec<(u64, u64)> {
    results
        .iter()
        .map(|r| (r.result.key.boot_epoch, r.result.key.sequence))
        .collect()
}

fn scan(store: &dyn Store, from: i64, to: i64) -> Vec<StoredResult> {
    let mut seen = Vec::new();
    store
        .scan_results_between(UnixMicros(from), UnixMicros(to), &mut |r| {
            seen.push(r);
            true
        })
        .unwrap();
    seen
}

/// Runs raw SQL (test-only tampering, e.g. to fake two collectors racing).
fn sql(url: &str, statement: &str) -> String {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let request = format!(
        "POST / HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{statement}",
        statement.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{statement}: {answer}"
    );
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

fn results_are_deduplicated_ordered_and_survive_reopen(server: &ClickHouseServer) {
    let probe = ProbeId::random().unwrap();
    let other = ProbeId::random().unwrap();
    {
        let store = ClickHouseStore::open(&config(server, "dedup")).unwrap();
        let batch = [result(&probe, 1, 1, 10), result(&probe, 1, 2, 20)];
        assert_eq!(
            store.insert_results(&batch).unwrap(),
            vec![Inserted::New, Inserted::New]
        );
        let again = [
            result(&probe, 1, 2, 20),
            result(&probe, 2, 1, 30),
            result(&probe, 2, 1, 30),
        ];
        assert_eq!(
            store.insert_results(&again).unwrap(),
            vec![Inserted::Duplicate, Inserted::New, Inserted::Duplicate]
        );
        assert_eq!(
            store.insert_results(&[result(&other, 1, 1, 20)]).unwrap(),
            vec![Inserted::New]
        );
        assert!(store.insert_results(&[]).unwrap().is_empty());
        store.flush().unwrap();
    }
    // Reopen: the schema is already there (creating it again is harmless).
    let store = ClickHouseStore::open(&config(server, "dedup")).unwrap();
    let newest = store
        .results(&ResultQuery {
            probe: Some(probe.clone()),
            limit: 2,
        })
        .unwrap();
    assert_eq!(keys(&newest), vec![(2, 1), (1, 2)]);
    // Read back exactly what was stored, enrichment with tabs and quotes included.
    assert_eq!(newest[0], result(&probe, 2, 1, 30));
    let all = store
        .results(&ResultQuery {
            probe: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].result.started_at, UnixMicros(30));

    // Two collectors that raced both inserted the same rows: readers still see each once.
    sql(
        &server.url(),
        "INSERT INTO dedup.results SELECT * FROM dedup.results",
    );
    let all = store
        .results(&ResultQuery {
            probe: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(all.len(), 4);
    let scanned = scan(&store, 0, 1000);
    let order: Vec<_> = scanned
        .iter()
        .map(|r| {
            (
                r.result.started_at.0,
                r.result.key.probe_id.to_string(),
                r.result.key.boot_epoch,
                r.result.key.sequence,
            )
        })
        .collect();
    assert_eq!(order.len(), 4);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert_eq!(scan(&store, 20, 30).len(), 2);
    // A visitor that stops early stops the scan.
    let mut visited = 0;
    store
        .scan_results_between(UnixMicros(0), UnixMicros(1000), &mut |_| {
            visited += 1;
            false
        })
        .unwrap();
    assert_eq!(visited, 1);
    // A resend reaching a collector that has not seen it (here: reopened) is written again,
    // without asking ClickHouse first, and every read still counts it once.
    assert_eq!(
        store.insert_results(&[result(&probe, 1, 1, 10)]).unwrap(),
        vec![Inserted::New]
    );
    store.flush().unwrap();
    let rows = sql(
        &server.url(),
        "SELECT count() FROM dedup.results FORMAT TabSeparated",
    );
    assert!(rows.trim().parse::<usize>().unwrap() > 4, "{rows}");
    assert_eq!(scan(&store, 0, 1000).len(), 4);
    assert_eq!(
        store
            .results(&ResultQuery {
                probe: None,
                limit: 10,
            })
            .unwrap()
            .len(),
        4
    );
    // Seen lately by this collector: counted as a duplicate in its ack.
    assert_eq!(
        store.insert_results(&[result(&probe, 1, 1, 10)]).unwrap(),
        vec![Inserted::Duplicate]
    );
}

/// A store made by schema 1 (results as JSON): opening it migrates to the current schema in
/// place, its results read back unchanged, and a resend of one of them in the new form still
/// counts once.
fn a_schema_1_store_is_migrated_in_place(server: &ClickHouseServer) {
    let url = server.url();
    sql(&url, "CREATE DATABASE v1");
    sql(
        &url,
        "CREATE TABLE v1.schema_migrations (version UInt32, applied_at Int64, description String) \
         ENGINE = MergeTree() ORDER BY version",
    );
    sql(
        &url,
        "INSERT INTO v1.schema_migrations VALUES (1, 0, 'initial tables')",
    );
    // The results table exactly as schema 1 created it, with a row as schema 1 wrote it.
    sql(
        &url,
        "CREATE TABLE v1.results (started_at Int64, probe_id String, boot_epoch UInt64, \
         sequence UInt64, task_id UInt64, campaign UInt64, kind String, family String, \
         destination String, probe_asn UInt32, probe_country String, target_asn UInt32, \
         target_country String, json String) ENGINE = ReplacingMergeTree() \
         PARTITION BY toYYYYMM(toDateTime(intDiv(started_at, 1000000))) \
         ORDER BY (started_at, probe_id, boot_epoch, sequence)",
    );
    // Schema 1's other tables (unchanged since).
    for statement in ClickHouseStore::schema_statements("v1") {
        if !statement.starts_with("ALTER") {
            sql(&url, &statement);
        }
    }
    let probe = ProbeId::random().unwrap();
    let old = result(&probe, 1, 1, 1_700_000_000_000_000);
    let row = serde_json::json!({
        "started_at": old.result.started_at.0,
        "probe_id": probe.as_str(),
        "boot_epoch": 1,
        "sequence": 1,
        "task_id": old.result.task_id.get(),
        "campaign": 0,
        "kind": "ping",
        "family": "v6",
        "destination": old.result.destination.unwrap().to_string(),
        "probe_asn": 64500,
        "probe_country": "DE",
        "target_asn": 64500,
        "target_country": "DE",
        "json": serde_json::to_string(&old).unwrap(),
    });
    sql(
        &url,
        &format!("INSERT INTO v1.results FORMAT JSONEachRow {row}"),
    );

    let store = ClickHouseStore::open(&config(server, "v1")).unwrap();
    let version = sql(
        &url,
        "SELECT max(version) FROM v1.schema_migrations FORMAT TabSeparated",
    );
    assert_eq!(
        version.trim(),
        sixmap_collector::store::clickhouse::schema::SCHEMA_VERSION.to_string()
    );
    let newer = result(&probe, 1, 2, 1_700_000_000_000_001);
    store.insert_results(&[old.clone(), newer.clone()]).unwrap();
    store.flush().unwrap();
    let kinds = sql(
        &url,
        "SELECT raw = '', json = '' FROM v1.results ORDER BY sequence, raw FORMAT TabSeparated",
    );
    // The old JSON row, its resend and the new result in the compact form.
    assert_eq!(kinds, "1\t0\n0\t1\n0\t1\n");
    assert_eq!(scan(&store, 0, i64::MAX), vec![old.clone(), newer.clone()]);
    assert_eq!(
        store
            .results(&ResultQuery {
                probe: Some(probe.clone()),
                limit: 10,
            })
            .unwrap(),
        vec![newer, old]
    );
    // Opening again finds the columns there and changes nothing.
    ClickHouseStore::open(&config(server, "v1")).unwrap();
}

fn a_long_scan_pages_through_everything_once(server: &ClickHouseServer) {
    let store = ClickHouseStore::open(&config(server, "pages")).unwrap();
    let probes: Vec<_> = (0..3).map(|_| ProbeId::random().unwrap()).collect();
    // 12 000 results over 4 000 distinct start times: pages (5 000 rows) end mid-timestamp.
    for chunk in 0..4 {
        let batch: Vec<_> = (0..1000)
            .flat_map(|i| {
                let at = chunk * 1000 + i;
                probes
                    .iter()
                    .map(move |p| result(p, 1, at as u64 + 1, at))
                    .collect::<Vec<_>>()
            })
            .collect();
        store.insert_results(&batch).unwrap();
    }
    let scanned = scan(&store, 0, 10_000);
    assert_eq!(scanned.len(), 12_000);
    let order: Vec<_> = scanned
        .iter()
        .map(|r| {
            (
                r.result.started_at.0,
                r.result.key.probe_id.to_string(),
                r.result.key.sequence,
            )
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "not strictly ordered"
    );
}

fn records_behave_like_sled(server: &ClickHouseServer) {
    let store = ClickHouseStore::open(&config(server, "records")).unwrap();
    // Probes: created once, then updated.
    let mut probe = probe_record("pi-1");
    store.create_probe(&probe).unwrap();
    assert!(matches!(
        store.create_probe(&probe),
        Err(StoreError::ProbeExists(_))
    ));
    probe.last_seen = Some(UnixMicros(99));
    store.update_probe(&probe).unwrap();
    assert_eq!(store.probe(&probe.id).unwrap(), Some(probe.clone()));
    let second = probe_record("pi-2");
    store.create_probe(&second).unwrap();
    let mut all = store.probes().unwrap();
    all.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    assert_eq!(all, vec![probe.clone(), second]);
    assert_eq!(store.probe(&ProbeId::random().unwrap()).unwrap(), None);

    // Task ids: stable, distinct, non-zero, the same from another store instance.
    let a = store.task_id("ping ::1").unwrap();
    let b = store.task_id("ping 2001:db8::1").unwrap();
    assert_ne!(a, b);
    assert_eq!(store.task_id("ping ::1").unwrap(), a);
    let other = ClickHouseStore::open(&config(server, "records")).unwrap();
    assert_eq!(other.task_id("ping ::1").unwrap(), a);
    assert!(!store.is_assigned(&probe.id, a).unwrap());
    store.record_assignment(&probe.id, a).unwrap();
    assert!(other.is_assigned(&probe.id, a).unwrap());
    assert!(!store.is_assigned(&probe.id, b).unwrap());

    // Rollups: replaced per day, oldest day first.
    store.put_rollup("2026-01-02", "DE", b"{\"v\":1}").unwrap();
    store.put_rollup("2026-01-01", "DE", b"{\"v\":2}").unwrap();
    store.put_rollup("2026-01-02", "DE", b"{\"v\":3}").unwrap();
    store.put_rollup("2026-01-01", "FR", b"{\"v\":4}").unwrap();
    assert_eq!(
        store.rollups("DE").unwrap(),
        vec![
            ("2026-01-01".to_owned(), b"{\"v\":2}".to_vec()),
            ("2026-01-02".to_owned(), b"{\"v\":3}".to_vec()),
        ]
    );
    // A day's rollups, countries and networks, the latest of each, by key.
    store
        .put_rollup("2026-01-01", "asn:64500", b"{\"v\":5}")
        .unwrap();
    assert_eq!(
        store.rollups_of_day("2026-01-01").unwrap(),
        vec![
            ("DE".to_owned(), b"{\"v\":2}".to_vec()),
            ("FR".to_owned(), b"{\"v\":4}".to_vec()),
            ("asn:64500".to_owned(), b"{\"v\":5}".to_vec()),
        ]
    );
    assert_eq!(store.rollups_of_day("2026-01-03").unwrap(), vec![]);

    // Tag history: oldest first, two changes in one microsecond both kept.
    let event = |at, tag: &str| TagEvent {
        at: UnixMicros(at),
        added: vec![TagName::new(tag).unwrap()],
        removed: Vec::new(),
    };
    store.record_tag_event(&probe.id, &event(5, "b")).unwrap();
    store.record_tag_event(&probe.id, &event(2, "a")).unwrap();
    store.record_tag_event(&probe.id, &event(5, "c")).unwrap();
    let history = store.tag_history(&probe.id).unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0], event(2, "a"));
    assert_eq!(history[1], event(5, "b"));
    assert_eq!(history[2], event(5, "c"));

    // Losses: first version wins, newest key first.
    let loss = |sequence, detail: &str| OutboxLoss {
        key: ResultKey {
            probe_id: probe.id.clone(),
            boot_epoch: 1,
            sequence,
        },
        reason: LossReason::OutboxFull,
        count: 3,
        count_unknown: false,
        bytes: 100,
        first: None,
        last: None,
        oldest_started_at: None,
        newest_started_at: None,
        recorded_at: UnixMicros(7),
        detail: detail.into(),
    };
    assert_eq!(
        store
            .insert_losses(&[loss(1, "first"), loss(2, "x")])
            .unwrap(),
        vec![Inserted::New, Inserted::New]
    );
    assert_eq!(
        store.insert_losses(&[loss(1, "second")]).unwrap(),
        vec![Inserted::Duplicate]
    );
    let losses = store
        .losses(&ResultQuery {
            probe: Some(probe.id.clone()),
            limit: 10,
        })
        .unwrap();
    assert_eq!(losses, vec![loss(2, "x"), loss(1, "first")]);

    // Audit: newest first, entries of one microsecond all kept.
    for (at, action) in [(1, "a"), (3, "c"), (3, "d"), (2, "b")] {
        store
            .append_audit(&AuditEntry {
                at: UnixMicros(at),
                identity: "cli".into(),
                action: action.into(),
                target: "t".into(),
                outcome: "ok".into(),
            })
            .unwrap();
    }
    let actions: Vec<_> = store
        .audit(3)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, vec!["d", "c", "b"]);

    // API tokens and certificate bindings.
    let api = sixmap_collector::store::ApiTokenRecord {
        id: "abc".into(),
        name: "alice".into(),
        role: sixmap_collector::store::Role::Researcher,
        created_at: UnixMicros(1),
        revoked_at: None,
    };
    store.put_api_token("hash-1", &api).unwrap();
    let revoked = sixmap_collector::store::ApiTokenRecord {
        revoked_at: Some(UnixMicros(2)),
        ..api.clone()
    };
    store.put_api_token("hash-1", &revoked).unwrap();
    assert_eq!(store.api_token("hash-1").unwrap(), Some(revoked.clone()));
    assert_eq!(store.api_token("nope").unwrap(), None);
    assert_eq!(
        other.api_tokens().unwrap(),
        vec![("hash-1".to_owned(), revoked)]
    );
    store.bind_certificate("fp'1", &probe.id).unwrap();
    assert_eq!(
        other.certificate_probe("fp'1").unwrap(),
        Some(probe.id.clone())
    );
    assert_eq!(other.certificate_probe("fp2").unwrap(), None);
}

fn campaigns_are_shared(server: &ClickHouseServer) {
    let one = ClickHouseStore::open(&config(server, "campaigns")).unwrap();
    let two = ClickHouseStore::open(&config(server, "campaigns")).unwrap();
    let a = one.next_campaign_id().unwrap();
    let b = two.next_campaign_id().unwrap();
    assert!(a > 0 && b > a, "{a} then {b}");
    one.put_campaign(a, b"{\"state\":\"new\"}").unwrap();
    two.put_campaign(a, b"{\"state\":\"running\"}").unwrap();
    two.put_campaign(b, b"{\"state\":\"new\"}").unwrap();
    assert_eq!(
        one.campaign(a).unwrap(),
        Some(b"{\"state\":\"running\"}".to_vec())
    );
    assert_eq!(one.campaign(9_999_999).unwrap(), None);
    assert_eq!(
        one.campaigns().unwrap(),
        vec![
            (a, b"{\"state\":\"running\"}".to_vec()),
            (b, b"{\"state\":\"new\"}".to_vec())
        ]
    );
    // A later id is above both, even with no campaign record stored for it yet.
    assert!(one.next_campaign_id().unwrap() > b);

    let task = one.task_id(&format!("campaign:{a}:ping")).unwrap();
    let probe = ProbeId::random().unwrap();
    let mut before = result(&probe, 1, 1, 10);
    before.result.task_id = task;
    one.insert_results(&[before]).unwrap();
    one.link_campaign_task(task, a).unwrap();
    assert_eq!(two.campaign_tasks(a).unwrap(), vec![task]);
    assert!(two.campaign_tasks(b).unwrap().is_empty());
    // Results stored after the link are the campaign's, also when another collector
    // stores them.
    let mut linked = Vec::new();
    for sequence in [3, 2] {
        let mut r = result(&probe, 1, sequence, 20);
        r.result.task_id = task;
        linked.push(r);
    }
    let mut unrelated = result(&probe, 1, 4, 20);
    unrelated.result.task_id = TaskId::new(77).unwrap();
    linked.push(unrelated);
    two.insert_results(&linked).unwrap();
    // Stored = flushed (what an ack waits for): results wait in the writer until then.
    two.flush().unwrap();
    let mut seen = Vec::new();
    one.campaign_results(a, &mut |r| {
        seen.push(r.result.key.sequence);
        true
    })
    .unwrap();
    assert_eq!(seen, vec![2, 3]);
}

/// The alert outbox (`AlertStore`) as on sled: an alert stored once whichever collector
/// detects it, updates only while stored, deletions final.
fn alerts_are_shared(server: &ClickHouseServer) {
    use sixmap_collector::store::AlertStore;
    let one = ClickHouseStore::open(&config(server, "alerts")).unwrap();
    let two = ClickHouseStore::open(&config(server, "alerts")).unwrap();
    assert!(one.insert_alert("a1", b"{\"v\":1}").unwrap());
    assert!(
        !two.insert_alert("a1", b"{\"v\":2}").unwrap(),
        "stored once"
    );
    assert!(two.insert_alert("b2", b"{\"v\":\"tab\\there\"}").unwrap());
    two.update_alert("a1", b"{\"v\":3}").unwrap();
    assert_eq!(
        one.alerts().unwrap(),
        vec![
            ("a1".to_string(), b"{\"v\":3}".to_vec()),
            ("b2".to_string(), b"{\"v\":\"tab\\there\"}".to_vec()),
        ]
    );
    one.delete_alerts(&["a1".to_string()]).unwrap();
    two.update_alert("a1", b"{\"v\":4}").unwrap();
    assert!(
        !two.insert_alert("a1", b"{\"v\":5}").unwrap(),
        "a dropped alert stays dropped"
    );
    assert_eq!(
        two.alerts().unwrap(),
        vec![("b2".to_string(), b"{\"v\":\"tab\\there\"}".to_vec())]
    );
    // The delivery index (schema 5): per webhook, the newest mark wins, and only stored
    // alerts come back (a1 was dropped).
    two.set_alerts_pending("ops", &["b2".to_string(), "a1".to_string()], true)
        .unwrap();
    one.set_alerts_pending("pager", &["b2".to_string()], true)
        .unwrap();
    assert_eq!(
        one.pending_alerts("ops").unwrap(),
        vec![("b2".to_string(), b"{\"v\":\"tab\\there\"}".to_vec())]
    );
    one.set_alerts_pending("ops", &["b2".to_string()], false)
        .unwrap();
    assert!(two.pending_alerts("ops").unwrap().is_empty());
    assert_eq!(two.pending_alerts("pager").unwrap().len(), 1);
    // Rules made over the API: one per id across collectors, deletions final until the id
    // is created again.
    assert!(one.insert_alert_rule("r1", b"{\"v\":1}").unwrap());
    assert!(!two.insert_alert_rule("r1", b"{\"v\":2}").unwrap());
    assert_eq!(
        two.alert_rules().unwrap(),
        vec![("r1".to_string(), b"{\"v\":1}".to_vec())]
    );
    assert!(two.delete_alert_rule("r1").unwrap());
    assert!(!one.delete_alert_rule("r1").unwrap());
    assert!(one.alert_rules().unwrap().is_empty());
    assert!(
        one.insert_alert_rule("r1", b"{\"v\":3}").unwrap(),
        "a deleted id can be used again"
    );
    assert_eq!(two.alert_rules().unwrap().len(), 1);
    // Many new alerts at once (an outage): claimed in parallel, each claim waiting its
    // settle time (1 s) once per batch of 16, not once per alert.
    let many: Vec<sixmap_collector::alerts::Alert> = (0..32)
        .map(|i| sixmap_collector::alerts::Alert {
            id: format!("c{i:02}"),
            rule: "r".into(),
            kind: "probe_offline".into(),
            subject: format!("probe:{i}"),
            created_at: UnixMicros(i),
            summary: String::new(),
            evidence: serde_json::Value::Null,
            links: Vec::new(),
        })
        .collect();
    let fresh = ClickHouseStore::open(&config(server, "alerts_many")).unwrap();
    let started = std::time::Instant::now();
    let new = sixmap_collector::alerts::record(&fresh, many, &["w".to_string()], 1000).unwrap();
    let took = started.elapsed();
    assert_eq!(new, 32);
    assert!(
        took < std::time::Duration::from_secs(12),
        "32 alerts took {took:?}"
    );
    assert_eq!(fresh.alerts().unwrap().len(), 32);
}

fn errors_name_what_clickhouse_said(server: &ClickHouseServer) {
    let mut wrong_user = config(server, "errors");
    wrong_user.user = "nobody".into();
    let error = ClickHouseStore::open(&wrong_user).unwrap_err().to_string();
    assert!(
        error.contains("ClickHouse refused") && error.contains("nobody"),
        "{error}"
    );
    let port = clickhouse::free_port().unwrap();
    let error = ClickHouseStore::open(&ClickHouseConfig::local(
        &format!("http://127.0.0.1:{port}"),
        "errors",
    ))
    .unwrap_err()
    .to_string();
    assert!(error.contains("unreachable"), "{error}");
    // The schema version is recorded; a newer schema than this build knows is refused.
    ClickHouseStore::open(&config(server, "errors")).unwrap();
    let version = sql(
        &server.url(),
        "SELECT max(version) FROM errors.schema_migrations FORMAT TabSeparated",
    );
    assert_eq!(
        version.trim(),
        sixmap_collector::store::clickhouse::schema::SCHEMA_VERSION.to_string()
    );
    sql(
        &server.url(),
        "INSERT INTO errors.schema_migrations (version, applied_at, description) VALUES (99, 0, 'future')",
    );
    let error = ClickHouseStore::open(&config(server, "errors"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("version 99"), "{error}");
}

#[test]
fn the_clickhouse_store_behaves_like_the_sled_store() {
    let Some(server) = clickhouse::require() else {
        return;
    };
    results_are_deduplicated_ordered_and_survive_reopen(&server);
    a_schema_1_store_is_migrated_in_place(&server);
    a_long_scan_pages_through_everything_once(&server);
    records_behave_like_sled(&server);
    campaigns_are_shared(&server);
    alerts_are_shared(&server);
    errors_name_what_clickhouse_said(&server);
}

fn token(owner: &str) -> EnrollmentTokenRecord {
    EnrollmentTokenRecord {
        id: "t1".into(),
        owner: owner.into(),
        created_at: UnixMicros(1),
        created_by: "cli".into(),
        expires_at: None,
        used_at: None,
        used_by: None,
        revoked_at: None,
        enrollment: None,
    }
}

/// Several store instances (as several collectors) use one token at the same moment:
/// exactly one succeeds, every time.
fn concurrent_token_claims(config: &ClickHouseConfig, rounds: usize) {
    let stores: Vec<Arc<ClickHouseStore>> = (0..3)
        .map(|_| Arc::new(ClickHouseStore::open(config).unwrap()))
        .collect();
    for round in 0..rounds {
        let hash = format!("token-{round}");
        let fresh = token("alice");
        stores[0].put_enrollment_token(&hash, &fresh).unwrap();
        let barrier = Arc::new(Barrier::new(stores.len()));
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (store, barrier, hash, fresh) =
                    (store.clone(), barrier.clone(), hash.clone(), fresh.clone());
                std::thread::spawn(move || {
                    let used = EnrollmentTokenRecord {
                        used_at: Some(UnixMicros(100 + i as i64)),
                        ..fresh.clone()
                    };
                    barrier.wait();
                    store
                        .replace_enrollment_token(&hash, &fresh, &used)
                        .unwrap()
                        .then_some(used)
                })
            })
            .collect();
        let winners: Vec<_> = handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        // Everyone reads the winner's record; using it again fails.
        for store in &stores {
            assert_eq!(
                store.enrollment_token(&hash).unwrap().as_ref(),
                Some(&winners[0])
            );
        }
        assert!(
            !stores[1]
                .replace_enrollment_token(&hash, &fresh, &token("mallory"))
                .unwrap()
        );
        // The next state of the token (e.g. a revocation) can still be written once.
        let revoked = EnrollmentTokenRecord {
            revoked_at: Some(UnixMicros(200)),
            ..winners[0].clone()
        };
        assert!(
            stores[2]
                .replace_enrollment_token(&hash, &winners[0], &revoked)
                .unwrap()
        );
        assert_eq!(stores[0].enrollment_token(&hash).unwrap(), Some(revoked));
    }
    assert_eq!(stores[0].enrollment_tokens().unwrap().len(), rounds);
}

#[test]
fn one_of_several_collectors_wins_a_token() {
    let Some(server) = clickhouse::require() else {
        return;
    };
    concurrent_token_claims(&config(&server, "tokens"), 4);
}

fn remote_servers(cluster: &str, tcp_ports: [u16; 2]) -> String {
    let shards: String = tcp_ports
        .iter()
        .map(|port| {
            format!("<shard><replica><host>127.0.0.1</host><port>{port}</port></replica></shard>")
        })
        .collect();
    format!("<remote_servers><{cluster}>{shards}</{cluster}></remote_servers>")
}

#[test]
fn a_distributed_table_over_two_shards_sees_every_result_once() {
    if !clickhouse::available() {
        return;
    }
    let ports: Vec<u16> = (0..4).map(|_| clickhouse::free_port().unwrap()).collect();
    let cluster = remote_servers("sixmap_two", [ports[1], ports[3]]);
    let one = ClickHouseServer::start_on(ports[0], ports[1], &cluster).unwrap();
    let two = ClickHouseServer::start_on(ports[2], ports[3], &cluster).unwrap();
    let mut config = config(&one, "sharded");
    config.cluster = Some("sixmap_two".into());
    config.shard_urls = vec![one.url(), two.url()];
    let store = ClickHouseStore::open(&config).unwrap();
    // A second collector talking to the other shard's server.
    let mut other_config = config.clone();
    other_config.url = two.url();
    let other = ClickHouseStore::open(&other_config).unwrap();

    // Every result is a campaign's: its cells are read across the shards too.
    let campaign = store.next_campaign_id().unwrap();
    store
        .link_campaign_task(TaskId::new(1).unwrap(), campaign)
        .unwrap();
    let probes: Vec<_> = (0..20).map(|_| ProbeId::random().unwrap()).collect();
    let batch: Vec<_> = probes
        .iter()
        .enumerate()
        .flat_map(|(i, p)| (1..=5).map(move |s| result(p, 1, s, (i * 10) as i64 + s as i64)))
        .collect();
    assert!(
        store
            .insert_results(&batch)
            .unwrap()
            .iter()
            .all(|i| *i == Inserted::New)
    );
    store.flush().unwrap();
    // A resend through the other server: written again (nothing asks ClickHouse first)...
    other.insert_results(&batch[..30]).unwrap();
    other.flush().unwrap();
    let local = |server: &ClickHouseServer| -> usize {
        sql(
            &server.url(),
            "SELECT count() FROM sharded.results_local FORMAT TabSeparated",
        )
        .trim()
        .parse()
        .unwrap()
    };
    let (on_one, on_two) = (local(&one), local(&two));
    assert!(on_one > 0 && on_two > 0, "{on_one} and {on_two}");
    // ... until merges drop the copies; reads (below) count each result once either way.
    assert!(
        (100..=130).contains(&(on_one + on_two)),
        "{on_one} + {on_two}"
    );
    // One probe's results live on one shard.
    for server in [&one, &two] {
        let spread = sql(
            &server.url(),
            "SELECT count() FROM (SELECT probe_id FROM sharded.results_local GROUP BY probe_id \
             HAVING uniqExact(boot_epoch, sequence) != 5) FORMAT TabSeparated",
        );
        assert_eq!(spread.trim(), "0");
    }
    // Racing duplicates on both shards are still read once, from either server.
    for server in [&one, &two] {
        sql(
            &server.url(),
            "INSERT INTO sharded.results_local SELECT * FROM sharded.results_local",
        );
    }
    for s in [&store, &other] {
        assert_eq!(scan(s, 0, 1_000_000).len(), 100);
        assert_eq!(
            s.results(&ResultQuery {
                probe: None,
                limit: 1000
            })
            .unwrap()
            .len(),
            100
        );
        assert_eq!(
            keys(
                &s.results(&ResultQuery {
                    probe: Some(probes[3].clone()),
                    limit: 1000
                })
                .unwrap()
            ),
            vec![(1, 5), (1, 4), (1, 3), (1, 2), (1, 1)]
        );
        let mut cells = Vec::new();
        s.campaign_cells(campaign, &mut |c| {
            cells.push((c.results, c.reached, c.latest.result.key.sequence));
            true
        })
        .unwrap();
        assert_eq!(cells, vec![(5, 5, 5); 20]);
    }
    // Shared records and single-use tokens work across the shards too.
    let probe = probe_record("pi-sharded");
    store.create_probe(&probe).unwrap();
    assert_eq!(other.probe(&probe.id).unwrap(), Some(probe));
    concurrent_token_claims(&config, 2);
}

/// Replays every statement the store sent to 18.16 on current ClickHouse (chdb) with
/// `collector/tests/clickhouse_current.py`.
#[test]
fn current_clickhouse_accepts_the_same_sql() {
    let Some(server) = clickhouse::require() else {
        return;
    };
    let chdb = std::process::Command::new("python3")
        .args(["-c", "import chdb"])
        .status()
        .is_ok_and(|s| s.success());
    if !chdb {
        let why = "python3 with chdb is missing (pip install chdb)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("cannot check the SQL on current ClickHouse in CI: {why}");
        }
        eprintln!("skipped: {why}");
        return;
    }
    let store = ClickHouseStore::open_recording(&config(&server, "replay"))
        .unwrap()
        .with_fold_timing(sixmap_collector::store::clickhouse::figures::FoldTiming {
            lag: Duration::ZERO,
            hold: Duration::from_secs(60),
            expiry: Duration::from_secs(120),
        });
    let probe = probe_record("pi");
    store.create_probe(&probe).unwrap();
    store.update_probe(&probe).unwrap();
    store.probe(&probe.id).unwrap();
    store.probes().unwrap();
    let task = store.task_id("ping ::1").unwrap();
    store.record_assignment(&probe.id, task).unwrap();
    store.is_assigned(&probe.id, task).unwrap();
    let id = store.next_campaign_id().unwrap();
    store.put_campaign(id, b"{}").unwrap();
    store.campaign(id).unwrap();
    store.campaigns().unwrap();
    store.link_campaign_task(task, id).unwrap();
    store.campaign_tasks(id).unwrap();
    let mut r = result(&probe.id, 1, 1, 1_700_000_000_000_000);
    r.result.task_id = task;
    store
        .insert_results(&[r.clone(), result(&probe.id, 1, 2, 5)])
        .unwrap();
    store.insert_results(&[r]).unwrap();
    store
        .results(&ResultQuery {
            probe: Some(probe.id.clone()),
            limit: 5,
        })
        .unwrap();
    store
        .results(&ResultQuery {
            probe: None,
            limit: 5,
        })
        .unwrap();
    scan(&store, 0, i64::MAX);
    store.campaign_results(id, &mut |_| true).unwrap();
    store.campaign_cells(id, &mut |_| true).unwrap();
    store.put_rollup("2026-01-01", "DE", b"{}").unwrap();
    store.rollups("DE").unwrap();
    store
        .record_tag_event(
            &probe.id,
            &TagEvent {
                at: UnixMicros(1),
                added: Vec::new(),
                removed: Vec::new(),
            },
        )
        .unwrap();
    store.tag_history(&probe.id).unwrap();
    store.put_enrollment_token("h", &token("alice")).unwrap();
    store
        .replace_enrollment_token("h", &token("alice"), &token("bob"))
        .unwrap();
    store.enrollment_tokens().unwrap();
    store
        .append_audit(&AuditEntry {
            at: UnixMicros(1),
            identity: "cli".into(),
            action: "a".into(),
            target: "t".into(),
            outcome: "ok".into(),
        })
        .unwrap();
    store.audit(5).unwrap();
    store.bind_certificate("fp", &probe.id).unwrap();
    store.certificate_probe("fp").unwrap();
    store.api_tokens().unwrap();
    store
        .losses(&ResultQuery {
            probe: None,
            limit: 5,
        })
        .unwrap();
    let networks = vec!["site 2001:db8::/64".to_owned()];
    store
        .index_owner_probe("alice", &networks, &probe.id, true)
        .unwrap();
    store.owner_probe_count("alice", &networks[0]).unwrap();
    store
        .owner_has_probe("alice", &networks[0], &probe.id)
        .unwrap();
    store.mark_owner_index_complete().unwrap();
    store.owner_index_complete().unwrap();
    // Figures: fold rounds (the second finds only a copy), reads, a rebuild.
    {
        use sixmap_collector::figures::fold;
        let prefixes = sixmap_shared::prefixes::PrefixData::new();
        store
            .insert_results(&[result(&probe.id, 1, 9, 1_700_000_000_000_000)])
            .unwrap();
        fold::rebuild(&store, &prefixes, UnixMicros(1_700_000_000_000_000)).unwrap();
        store
            .insert_results(&[
                result(&probe.id, 1, 10, 1_700_000_000_000_000),
                result(&probe.id, 1, 9, 1_700_000_000_000_000),
            ])
            .unwrap();
        store.flush().unwrap();
        assert!(
            fold::fold_once(&store, &prefixes, 1, i64::MIN)
                .unwrap()
                .folded
                > 0
        );
        fold::fold_once(&store, &prefixes, 10, i64::MIN).unwrap();
        store.figure(b"D").unwrap();
        store.figure_rows(b"A", b"Z", &mut |_, _| true).unwrap();
        store
            .figure_ranges(
                &[
                    (b"B".to_vec(), b"C".to_vec()),
                    (b"D".to_vec(), b"E".to_vec()),
                ],
                &mut |_, _| true,
            )
            .unwrap();
        fold::rebuild(&store, &prefixes, UnixMicros(1_700_000_000_000_000)).unwrap();
    }

    let recorded = store.recorded();
    assert!(recorded.len() > 40, "{} statements", recorded.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statements.jsonl");
    let lines: String = recorded
        .iter()
        .map(|s| format!("{}\n", serde_json::to_string(s).unwrap()))
        .collect();
    std::fs::write(&path, lines).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clickhouse_current.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "chdb refused a statement:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("statements accepted"), "{stdout}");
}

fn collector_cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `serve` process, killed on drop.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sixmap-collector serve` and returns it with its HTTP address.
fn serve(config: &std::path::Path, data_dir: &std::path::Path) -> (Serving, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
        .args(["serve", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let serving = Serving(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let http = line
        .trim()
        .split_once("http=")
        .map(|(_, a)| a.to_owned())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"));
    (serving, http)
}

fn get(address: &str, path: &str, bearer: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {bearer}\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Two collector processes run at once on one ClickHouse store and one CA directory; the
/// admin CLI works on the same store while they run.
#[test]
fn two_collectors_and_the_cli_share_one_clickhouse_store() {
    let Some(server) = clickhouse::require() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{data}\"\npki_dir = \"{pki}\"\ngrpc_listen = \"127.0.0.1:0\"\n\
             http_listen = \"127.0.0.1:0\"\n[store]\nbackend = \"clickhouse\"\n\
             [store.clickhouse]\nurl = \"{url}\"\ndatabase = \"shared\"\n",
            data = dir.path().join("a").display(),
            pki = dir.path().join("pki").display(),
            url = server.url(),
        ),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let admin = collector_cli(&[
        "api-token",
        "create",
        "--config",
        config_arg,
        "--role",
        "admin",
        "--name",
        "ops",
    ]);
    let admin = admin.trim();
    let (_one, http_one) = serve(&config, &dir.path().join("a"));
    let (_two, http_two) = serve(&config, &dir.path().join("b"));
    // While both run, the CLI writes to the same store.
    let token = collector_cli(&[
        "token", "create", "--config", config_arg, "--owner", "uni-a",
    ]);
    let fingerprint = token.trim().split_once('.').unwrap().1.to_owned();
    let list = collector_cli(&["token", "list", "--config", config_arg]);
    assert!(list.contains("uni-a"), "{list}");
    for http in [&http_one, &http_two] {
        let audit = get(http, "/api/v1/audit", admin);
        assert!(audit.contains(" 200 "), "{audit}");
        assert!(audit.contains("token create"), "{audit}");
    }
    // One CA for all: the token pins the CA in the shared pki_dir.
    let ca = std::fs::read_to_string(dir.path().join("pki/ca.pem")).unwrap();
    let der = sixmap_collector::pki::Pki::load_or_create_in(&dir.path().join("pki")).unwrap();
    assert_eq!(der.fingerprint(), fingerprint, "{ca}");
}

/// A small deterministic generator (xorshift64*), seeded per run and printed on failure.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random result of `probe`: ping answered or not, or failed to run; IPv6 or IPv4 to a
/// global destination; origins from a few countries and networks, or none.
fn random_result(rng: &mut Random, probe: &ProbeId, sequence: u64, at: i64) -> StoredResult {
    use sixmap_shared::measurement::{ErrorClass, Family, MeasurementError, Outcome};
    let origins = [(64500, "DE"), (64501, "NL"), (64502, "FR"), (64503, "DE")];
    let mut origin = || -> Option<Enrichment> {
        let i = rng.below(5) as usize;
        origins.get(i).map(|(asn, country)| Enrichment {
            asn: Some(*asn),
            as_name: Some(format!("AS{asn} name")),
            country: country.parse().ok(),
        })
    };
    let (probe_origin, target_origin) = (origin(), origin());
    let rtt = (rng.below(4) != 0).then(|| Duration::from_micros(500 + rng.below(80_000)));
    let mut r = ping_v6(
        probe.clone(),
        sequence,
        UnixMicros(at),
        rtt,
        probe_origin.clone().unwrap_or(Enrichment {
            asn: None,
            as_name: None,
            country: None,
        }),
    );
    r.probe_origin = probe_origin;
    r.target_origin = target_origin;
    r.result.key.boot_epoch = 1 + rng.below(2);
    if rng.below(3) == 0 {
        r.result.family_requested = Family::V4;
        r.result.family_used = Some(Family::V4);
        r.result.destination = Some("8.8.8.8".parse().unwrap());
    } else {
        r.result.destination = Some("2a00:1450:4001:800::200e".parse().unwrap());
    }
    if rng.below(10) == 0 {
        r.result.outcome = Outcome::Failed(MeasurementError {
            class: ErrorClass::Network,
            message: "no route".into(),
        });
    }
    r
}

/// A new seed each run, printed so a failure can be replayed: the wall clock is right here.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
fn fresh_seed() -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    seed
}

/// The same randomised results, resent within batches, across batches and through a second
/// collector, go into a sled store and a ClickHouse store, each folding its figures in rounds
/// of random sizes between batches: the figure rows are equal (and equal a rebuild), and every
/// answer (query pages, time scans, and the maps, aggregates and daily figures read from the
/// figures) is equal.
#[test]
fn sled_and_clickhouse_answer_the_same() {
    use sixmap_collector::figures::Source;
    use sixmap_collector::figures::fold;
    use sixmap_collector::query::aggregate::{AggregateRequest, GroupBy, Side, aggregate};
    use sixmap_collector::store::clickhouse::figures::FoldTiming;
    use sixmap_collector::store::{ResultFilter, ScanBudget, SledStore};
    let Some(server) = clickhouse::require() else {
        return;
    };
    let seed = fresh_seed();
    let mut rng = Random(seed);
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(dir.path()).unwrap();
    // Figures fold what was flushed before (one process: no lag needed).
    let timing = FoldTiming {
        lag: Duration::ZERO,
        hold: Duration::from_secs(120),
        expiry: Duration::from_secs(240),
    };
    let clickhouse = ClickHouseStore::open(&config(&server, "differential"))
        .unwrap()
        .with_fold_timing(timing);
    // A second collector on the same ClickHouse, which has seen none of the results.
    let second = ClickHouseStore::open(&config(&server, "differential"))
        .unwrap()
        .with_fold_timing(timing);
    // No merges: the copies of resent results stay, as they do until ClickHouse merges them.
    sql(&server.url(), "SYSTEM STOP MERGES differential.results");

    const DAY: i64 = 86_400_000_000;
    let now = UnixMicros(1_800_000_000_000_000 - 1_800_000_000_000_000 % DAY + DAY / 2);
    let probes: Vec<ProbeRecord> = (0..6)
        .map(|i| {
            let mut p = probe_record(&format!("pi-{i}"));
            p.last_seen = Some(now);
            let (asn, country) = [(64500, "DE"), (64501, "NL"), (64502, "FR")][i % 3];
            p.origin = Some(Enrichment {
                asn: Some(asn),
                as_name: None,
                country: country.parse().ok(),
            });
            p
        })
        .collect();
    for p in &probes {
        sled.create_probe(p).unwrap();
        clickhouse.create_probe(p).unwrap();
    }
    let prefixes = sixmap_shared::prefixes::PrefixData::new();
    let hours = fold::hours_since(now);
    fold::ensure(&sled, &prefixes, now).unwrap();
    // ClickHouse's figures are built by the folder holding the lease (here: on an empty
    // database, so nothing to read).
    fold::ensure(&clickhouse, &prefixes, now).unwrap();
    assert_eq!(clickhouse.figures_cursor().unwrap(), None);
    fold::rebuild(&clickhouse, &prefixes, now).unwrap();
    // Folds in rounds of a random size, as the folder task does between batches.
    let fold_some = |store: &dyn Store, max: usize| loop {
        let before = store.figures_cursor().unwrap();
        let round = fold::fold_once(store, &prefixes, max, hours).unwrap();
        if round.folded == 0 && store.figures_cursor().unwrap() == before {
            return;
        }
    };
    let mut all = Vec::new();
    for p in &probes {
        for sequence in 1..=80 {
            let at = now.0 - 1 - rng.below(3 * DAY as u64) as i64;
            all.push(random_result(&mut rng, &p.id, sequence, at));
        }
    }
    let mut sent = 0;
    while sent < all.len() {
        let size = 1 + rng.below(60) as usize;
        let mut batch: Vec<StoredResult> = all[sent..(sent + size).min(all.len())].to_vec();
        sent += batch.len();
        // Resends: of an earlier result, and within the batch.
        if rng.below(2) == 0 {
            batch.push(all[rng.below(sent as u64) as usize].clone());
        }
        if rng.below(4) == 0 {
            batch.push(batch[0].clone());
        }
        sled.insert_results(&batch).unwrap();
        sled.flush().unwrap();
        let through = if rng.below(5) == 0 {
            &second
        } else {
            &clickhouse
        };
        through.insert_results(&batch).unwrap();
        through.flush().unwrap();
        // Folds now and then, so resends land in later rounds than their originals.
        if rng.below(4) == 0 {
            let max = 1 + rng.below(40) as usize;
            fold_some(&sled, max);
            fold_some(&clickhouse, max);
            // The second collector does not hold the folder lease: it folds nothing.
            let cursor = clickhouse.figures_cursor().unwrap();
            assert_eq!(
                fold::fold_once(&second, &prefixes, max, hours)
                    .unwrap()
                    .folded,
                0
            );
            assert_eq!(clickhouse.figures_cursor().unwrap(), cursor);
        }
    }
    // A whole resend through the second collector, as after a failover.
    second.insert_results(&all[..100]).unwrap();
    second.flush().unwrap();
    fold_some(&sled, 1000);
    fold_some(&clickhouse, 1000);
    assert_eq!(Source::of(&clickhouse).unwrap(), Source::Figures);
    assert_eq!(Source::of(&sled).unwrap(), Source::Figures);
    // The rows themselves are equal, and equal a rebuild from the raw results.
    let figure_rows = |store: &dyn Store| {
        let mut rows = Vec::new();
        store
            .figure_rows(b"A", b"Z", &mut |k, v| {
                rows.push((k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
        rows
    };
    let folded = figure_rows(&clickhouse);
    assert!(folded.len() > 20, "{} figure rows", folded.len());
    assert_same_figures(
        &folded,
        &figure_rows(&sled),
        &format!("sled vs ClickHouse, seed {seed}"),
    );
    // Several ranges in one request (ClickHouse's own query) read what the ranges hold: the
    // first and last thirds of the rows, an empty range between, a range past the end.
    let key = |i: usize| folded[i].0.clone();
    let (third, last) = (folded.len() / 3, folded.len() - 1);
    let ranges = vec![
        (key(0), key(third)),
        (key(third + 1), key(third + 1)),
        (key(2 * third), key(last)),
        (b"Z".to_vec(), b"ZZ".to_vec()),
    ];
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = folded[..third].to_vec();
    want.extend_from_slice(&folded[2 * third..last]);
    for store in [&clickhouse as &dyn Store, &sled] {
        let mut got = Vec::new();
        store
            .figure_ranges(&ranges, &mut |k, v| {
                got.push((k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
        assert_same_figures(&got, &want, &format!("figure_ranges, seed {seed}"));
    }
    let (rebuilt, _) = fold::compute(&clickhouse, &prefixes, hours).unwrap();
    let rebuilt: Vec<(Vec<u8>, Vec<u8>)> = rebuilt
        .rows
        .iter()
        .map(|(k, f)| (k.encode(), f.encode()))
        .collect();
    assert!(
        folded == rebuilt,
        "folded figures differ from a rebuild (seed {seed})"
    );

    let stores: [&dyn Store; 2] = [&sled, &clickhouse];
    let answers = |store: &dyn Store| -> Vec<String> {
        let mut out = Vec::new();
        let page = |probe: Option<ProbeId>, limit| {
            store
                .results(&ResultQuery { probe, limit })
                .unwrap()
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        };
        out.push(page(None, 10_000));
        out.push(page(None, 7));
        for p in &probes {
            out.push(page(Some(p.id.clone()), 9));
        }
        for (from, to) in [
            (0, i64::MAX),
            (now.0 - DAY, now.0),
            (now.0 - 2 * DAY, now.0 - DAY),
        ] {
            let scanned: Vec<String> = scan(store, from, to)
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect();
            out.push(format!("{} results\n{}", scanned.len(), scanned.join("\n")));
        }
        // Exports, whose rows each backend hands over undecoded to the export's decoders.
        for format in sixmap_collector::export::Format::ALL {
            let mut file = tempfile::tempfile().unwrap();
            let stats = sixmap_collector::export::export(
                store,
                &ResultFilter::default(),
                format,
                file.try_clone().unwrap(),
                &mut |_| {},
            )
            .unwrap();
            let mut bytes = Vec::new();
            std::io::Seek::rewind(&mut file).unwrap();
            std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
            let digest = sixmap_shared::digest::sha256_hex(&bytes);
            out.push(format!("{format}: {stats:?}, {digest}"));
        }
        let maps = sixmap_collector::maps::countries_from(store, now, Source::Figures).unwrap();
        out.push(serde_json::to_string(&maps).unwrap());
        for country in ["DE", "NL", "FR", "US"] {
            let detail = sixmap_collector::maps::country_from(
                store,
                country.parse().unwrap(),
                now,
                Source::Figures,
            )
            .unwrap();
            out.push(serde_json::to_string(&detail).unwrap());
        }
        for group_by in [
            GroupBy::Country,
            GroupBy::Asn,
            GroupBy::Day,
            GroupBy::CountryDay,
            GroupBy::AsnDay,
        ] {
            for side in [Side::Probe, Side::Target] {
                for filter in [
                    ResultFilter::default(),
                    ResultFilter {
                        probe_country: "DE".parse().ok(),
                        ..ResultFilter::default()
                    },
                ] {
                    let request = AggregateRequest {
                        filter,
                        group_by,
                        side,
                    };
                    // From the daily tallies without a filter, by a scan with one.
                    let answer = aggregate(store, &request, ScanBudget::rows(1_000_000)).unwrap();
                    let expected = if request.filter == ResultFilter::default() {
                        Source::Figures
                    } else {
                        Source::Scan
                    };
                    assert_eq!(answer.source, expected);
                    out.push(serde_json::to_string(&answer).unwrap());
                }
            }
        }
        for day in 0..3 {
            let at = UnixMicros(now.0 - day * DAY);
            let computed = sixmap_collector::daily::compute_day_from(
                store,
                &prefixes,
                at,
                Source::Figures,
                Default::default(),
            )
            .unwrap();
            out.push(format!("{computed:?}"));
        }
        out
    };
    let [on_sled, on_clickhouse] = stores.map(answers);
    assert_eq!(on_sled.len(), on_clickhouse.len());
    assert!(
        on_sled[0].lines().count() == all.len(),
        "every result stored once"
    );
    // The answers hold something to compare: the maps and daily figures have countries.
    let maps_at = 2 + probes.len() + 3 + sixmap_collector::export::Format::ALL.len();
    assert!(on_sled[maps_at].contains("\"DE\""), "{}", on_sled[maps_at]);
    // Which days hold a DE probe-day with figures depends on the seed; one of the three must.
    assert!(
        on_sled[on_sled.len() - 3..]
            .iter()
            .any(|day| day.contains("DE")),
        "no daily figure for DE (seed {seed})"
    );
    for (i, (a, b)) in on_sled.iter().zip(&on_clickhouse).enumerate() {
        assert!(
            a == b,
            "answer {i} differs (seed {seed}):\nsled:       {a:.2000}\nClickHouse: {b:.2000}"
        );
    }
    // The ClickHouse table does hold copies (nothing is looked up before inserting).
    let rows: usize = sql(
        &server.url(),
        "SELECT count() FROM differential.results FORMAT TabSeparated",
    )
    .trim()
    .parse()
    .unwrap();
    assert!(rows > all.len(), "{rows} rows");
}

/// A campaign's cells (what reports and progress read) from ClickHouse equal the sled
/// store's and a fold over the distinct results: random results of several tasks (one of
/// no campaign), failures of several classes, start-time ties, resent within and across
/// batches and through a second collector, with merges stopped so the copies stay.
#[test]
fn campaign_cells_equal_on_sled_and_clickhouse() {
    use sixmap_collector::store::{CampaignCell, SledStore, fold_cells};
    use sixmap_shared::measurement::{ErrorClass, MeasurementError, Outcome};
    let Some(server) = clickhouse::require() else {
        return;
    };
    let seed = fresh_seed();
    let mut rng = Random(seed);
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(dir.path()).unwrap();
    let one = ClickHouseStore::open(&config(&server, "cells")).unwrap();
    let two = ClickHouseStore::open(&config(&server, "cells")).unwrap();
    sql(&server.url(), "SYSTEM STOP MERGES cells.results");
    let campaign = one.next_campaign_id().unwrap();
    let tasks: Vec<TaskId> = (0..4)
        .map(|i| one.task_id(&format!("campaign task {i}")).unwrap())
        .collect();
    for task in &tasks[..3] {
        one.link_campaign_task(*task, campaign).unwrap();
        sled.link_campaign_task(*task, campaign).unwrap();
    }
    let mut all = Vec::new();
    for _ in 0..5 {
        let probe = ProbeId::random().unwrap();
        for sequence in 1..=40 {
            let at = 1_800_000_000_000_000 + rng.below(8) as i64;
            let mut r = random_result(&mut rng, &probe, sequence, at);
            r.result.task_id = tasks[rng.below(4) as usize];
            if rng.below(8) == 0 {
                r.result.outcome = Outcome::Failed(MeasurementError {
                    class: ErrorClass::Resolution,
                    message: "no AAAA".into(),
                });
            }
            all.push(r);
        }
    }
    let mut sent = 0;
    while sent < all.len() {
        let size = 1 + rng.below(30) as usize;
        let mut batch: Vec<StoredResult> = all[sent..(sent + size).min(all.len())].to_vec();
        sent += batch.len();
        if rng.below(2) == 0 {
            batch.push(all[rng.below(sent as u64) as usize].clone());
        }
        if rng.below(4) == 0 {
            batch.push(batch[0].clone());
        }
        sled.insert_results(&batch).unwrap();
        let through = if rng.below(4) == 0 { &two } else { &one };
        through.insert_results(&batch).unwrap();
        through.flush().unwrap();
    }
    let cells = |store: &dyn Store| {
        let mut out: Vec<CampaignCell> = Vec::new();
        store
            .campaign_cells(campaign, &mut |c| {
                out.push(c);
                true
            })
            .unwrap();
        out
    };
    let mut distinct = std::collections::HashMap::new();
    for r in &all {
        distinct
            .entry(r.result.key.clone())
            .or_insert_with(|| r.clone());
    }
    let expected = fold_cells(
        distinct
            .into_values()
            .filter(|r| tasks[..3].contains(&r.result.task_id)),
    );
    assert!(expected.len() >= 10, "{} cells", expected.len());
    assert!(expected.iter().any(|c| c.failures.len() >= 2));
    assert!(cells(&sled) == expected, "sled cells differ (seed {seed})");
    let on_clickhouse = cells(&two);
    for (a, b) in on_clickhouse.iter().zip(&expected) {
        assert_eq!(a, b, "seed {seed}");
    }
    assert_eq!(on_clickhouse.len(), expected.len(), "seed {seed}");
}

/// The cost of a campaign's cells on ClickHouse (three queries) against reading every result
/// of the campaign and folding them (what reports did before cells). Figures in
/// `docs/benchmarks.md`; run with `cargo test -p sixmap-collector --test clickhouse
/// cells_cost -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: prints figures"]
fn campaign_cells_cost_on_clickhouse() {
    use sixmap_collector::store::fold_cells;
    let Some(server) = clickhouse::require() else {
        return;
    };
    let n: u64 = std::env::var("SIXMAP_REPORT_RESULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let store = ClickHouseStore::open(&config(&server, "cells_cost")).unwrap();
    let campaign = store.next_campaign_id().unwrap();
    let tasks: Vec<TaskId> = (0..8)
        .map(|i| store.task_id(&format!("cost task {i}")).unwrap())
        .collect();
    for task in &tasks {
        store.link_campaign_task(*task, campaign).unwrap();
    }
    let mut rng = Random(0x5eed);
    let probes: Vec<ProbeId> = (0..6).map(|_| ProbeId::random().unwrap()).collect();
    let per_probe = n / probes.len() as u64;
    for probe in &probes {
        let mut batch = Vec::with_capacity(5000);
        for sequence in 1..=per_probe {
            let at = 1_800_000_000_000_000 + sequence as i64 * 1_000_000;
            let mut r = random_result(&mut rng, probe, sequence, at);
            r.result.task_id = tasks[rng.below(tasks.len() as u64) as usize];
            batch.push(r);
            if batch.len() == 5000 {
                store.insert_results(&batch).unwrap();
                store.flush().unwrap();
                batch.clear();
            }
        }
        store.insert_results(&batch).unwrap();
        store.flush().unwrap();
    }
    let started = std::time::Instant::now();
    let mut cells = Vec::new();
    store
        .campaign_cells(campaign, &mut |c| {
            cells.push(c);
            true
        })
        .unwrap();
    let from_cells = started.elapsed();
    let started = std::time::Instant::now();
    let mut all = Vec::new();
    store
        .campaign_results(campaign, &mut |r| {
            all.push(r);
            true
        })
        .unwrap();
    let folded = fold_cells(all);
    let from_results = started.elapsed();
    assert!(cells == folded, "cells differ from the fold");
    eprintln!(
        "{} results, {} cells: cells {:.1} ms, every result {:.1} ms ({:.0}x)",
        per_probe * probes.len() as u64,
        cells.len(),
        from_cells.as_secs_f64() * 1e3,
        from_results.as_secs_f64() * 1e3,
        from_results.as_secs_f64() / from_cells.as_secs_f64()
    );
}

/// Panics with the rows only one side has, decoded.
fn assert_same_figures(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)], what: &str) {
    use sixmap_collector::figures::{Figure, FigureKey};
    if a == b {
        return;
    }
    let show = |rows: &[(Vec<u8>, Vec<u8>)]| -> Vec<String> {
        rows.iter()
            .map(|(k, v)| format!("{:?} {:?}", FigureKey::decode(k), Figure::decode(v)))
            .collect()
    };
    let (a, b) = (show(a), show(b));
    let only_a: Vec<&String> = a.iter().filter(|x| !b.contains(x)).take(3).collect();
    let only_b: Vec<&String> = b.iter().filter(|x| !a.contains(x)).take(3).collect();
    panic!(
        "figure rows differ ({what}): {} vs {} rows\nfirst only: {only_a:#?}\nsecond only: {only_b:#?}",
        a.len(),
        b.len()
    );
}

/// Every figure row of a store, in key order.
fn all_figure_rows(store: &dyn Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rows = Vec::new();
    store
        .figure_rows(b"A", b"Z", &mut |k, v| {
            rows.push((k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
    rows
}

/// The folding collector dies in the middle of a round (it read the round's results and wrote
/// nothing): the other collector sharing the ClickHouse refuses to fold or write figures while
/// the lease may still be held, takes the lease over once it expired, and folds on from the
/// cursor. With resends before and after, the figures then equal a rebuild from raw results.
#[test]
fn a_folder_dying_mid_round_is_replaced_and_figures_equal_a_rebuild() {
    use sixmap_collector::figures::fold;
    use sixmap_collector::store::clickhouse::figures::FoldTiming;
    let Some(server) = clickhouse::require() else {
        return;
    };
    let timing = FoldTiming {
        lag: Duration::ZERO,
        hold: Duration::from_secs(2),
        expiry: Duration::from_secs(4),
    };
    let open = || {
        ClickHouseStore::open(&config(&server, "takeover"))
            .unwrap()
            .with_fold_timing(timing)
    };
    let (first, second) = (open(), open());
    const DAY: i64 = 86_400_000_000;
    let now = UnixMicros(1_800_000_000_000_000);
    let hours = fold::hours_since(now);
    let prefixes = sixmap_shared::prefixes::PrefixData::new();
    let mut rng = Random(0x5eed_f01d);
    let probes: Vec<ProbeId> = (0..4).map(|_| ProbeId::random().unwrap()).collect();
    let mut all = Vec::new();
    for p in &probes {
        for sequence in 1..=60 {
            let at = now.0 - 1 - rng.below(2 * DAY as u64) as i64;
            all.push(random_result(&mut rng, p, sequence, at));
        }
    }
    let (early, late) = all.split_at(150);
    // The first collector builds the figures from the results stored so far; then many
    // flushes (a round takes whole flushes), with copies in both collectors.
    for chunk in early[..20].chunks(10) {
        first.insert_results(chunk).unwrap();
        first.flush().unwrap();
    }
    fold::rebuild(&first, &prefixes, now).unwrap();
    for (store, part) in [(&first, &early[20..100]), (&second, &early[10..])] {
        for chunk in part.chunks(10) {
            store.insert_results(chunk).unwrap();
            store.flush().unwrap();
        }
    }
    // It folds two rounds, then reads a third and dies before writing it.
    for _ in 0..2 {
        assert!(
            fold::fold_once(&first, &prefixes, 40, hours)
                .unwrap()
                .folded
                > 0
        );
    }
    let cursor = first.figures_cursor().unwrap().unwrap();
    let mut read = 0;
    first
        .ingest_log_after(cursor, 1000, &mut |_, _| {
            read += 1;
            true
        })
        .unwrap();
    assert!(read > 0);
    drop(first);

    // Until the lease expires the second collector folds nothing and may not write figures.
    second.insert_results(&late[..30]).unwrap();
    second.insert_results(&early[..20]).unwrap();
    second.flush().unwrap();
    assert_eq!(
        fold::fold_once(&second, &prefixes, 40, hours)
            .unwrap()
            .folded,
        0
    );
    let refused = second.put_figures(&[], cursor).unwrap_err().to_string();
    assert!(refused.contains("figures lease"), "{refused}");
    assert_eq!(second.figures_cursor().unwrap(), Some(cursor));

    // Then it takes over and folds everything, once.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut folded = 0;
    while folded == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "lease never taken over"
        );
        std::thread::sleep(Duration::from_millis(300));
        folded = fold::fold_once(&second, &prefixes, 40, hours)
            .unwrap()
            .folded;
    }
    second.insert_results(&late[30..]).unwrap();
    second.insert_results(&all[..60]).unwrap();
    second.flush().unwrap();
    loop {
        let before = second.figures_cursor().unwrap();
        let round = fold::fold_once(&second, &prefixes, 40, hours).unwrap();
        if round.folded == 0 && second.figures_cursor().unwrap() == before {
            break;
        }
    }
    let folded = all_figure_rows(&second);
    let (rebuilt, results) = fold::compute(&second, &prefixes, hours).unwrap();
    assert_eq!(results, all.len() as u64);
    let rebuilt: Vec<(Vec<u8>, Vec<u8>)> = rebuilt
        .rows
        .iter()
        .map(|(k, f)| (k.encode(), f.encode()))
        .collect();
    assert!(!folded.is_empty());
    assert_same_figures(&folded, &rebuilt, "folded vs rebuilt");
    // A rebuild by the lease holder gives the same rows back.
    fold::rebuild(&second, &prefixes, now).unwrap();
    assert!(all_figure_rows(&second) == rebuilt);
    assert!(second.figures_cursor().unwrap().is_some());
}

/// Enrollment caps read the owner index: one owner's entries in one network, not the fleet.
#[test]
fn the_owner_index_counts_an_owners_probes_per_network() {
    use sixmap_collector::store::auth::owner_networks;
    let Some(server) = clickhouse::require() else {
        return;
    };
    let store = ClickHouseStore::open(&config(&server, "owners")).unwrap();
    let prefix = Some(("2001:db8::".parse().unwrap(), 32));
    let networks = owner_networks("2001:db8:1:1::5".parse().unwrap(), prefix);
    let (probe, other) = (ProbeId::random().unwrap(), ProbeId::random().unwrap());
    assert_eq!(store.owner_probe_count("alice", &networks[0]).unwrap(), 0);
    store
        .index_owner_probe("alice", &networks, &probe, true)
        .unwrap();
    store
        .index_owner_probe("alice", &networks, &probe, true)
        .unwrap();
    for network in &networks {
        assert_eq!(store.owner_probe_count("alice", network).unwrap(), 1);
        assert!(store.owner_has_probe("alice", network, &probe).unwrap());
        assert!(!store.owner_has_probe("alice", network, &other).unwrap());
    }
    assert_eq!(store.owner_probe_count("bob", &networks[0]).unwrap(), 0);
    store
        .index_owner_probe("alice", &networks, &other, true)
        .unwrap();
    assert_eq!(store.owner_probe_count("alice", &networks[1]).unwrap(), 2);
    // Revoked: counted no more.
    store
        .index_owner_probe("alice", &networks, &probe, false)
        .unwrap();
    assert_eq!(store.owner_probe_count("alice", &networks[0]).unwrap(), 1);
    assert!(
        !store
            .owner_has_probe("alice", &networks[0], &probe)
            .unwrap()
    );
    // A quote in an owner name is data, not SQL.
    assert_eq!(store.owner_probe_count("o'neil", &networks[0]).unwrap(), 0);
    assert!(!store.owner_index_complete().unwrap());
    store.mark_owner_index_complete().unwrap();
    assert!(store.owner_index_complete().unwrap());
    // Probes stored before the index existed are indexed once, by the first enrollment check.
    let mut old = probe_record("old");
    old.owner = Some("carol".into());
    old.enrolled_from = Some("2001:db8:1:1::7".parse().unwrap());
    old.enrolled_prefix = prefix;
    store.create_probe(&old).unwrap();
    let fresh = ClickHouseStore::open(&config(&server, "owners_legacy")).unwrap();
    fresh.create_probe(&old).unwrap();
    sixmap_collector::enroll::gate::complete_owner_index(&fresh).unwrap();
    assert_eq!(fresh.owner_probe_count("carol", &networks[0]).unwrap(), 1);
    assert!(fresh.owner_index_complete().unwrap());
}
