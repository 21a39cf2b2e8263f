//! Zero-loss delivery with real processes: collectors and probes killed with SIGKILL, a
//! collector away for minutes, a probe outbox overflowing.
//!
//! The truth each test checks against is the probe's own debug log, which names every result
//! once it is durable in the outbox ("result produced") and every result dropped from a full
//! outbox. At the end every probe is drained (restarted against a collector that assigns
//! nothing, until its outbox is empty), and then the collector must hold exactly the results
//! produced, minus those dropped, each once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::delivery::{Probe, assert_exactly_once};
use sixmap_tests::{Collector, Seq, free_port, probe_status, wait_for};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// One test's collector: its data survives restarts on the same port.
struct Site {
    work: tempfile::TempDir,
    port: u16,
    /// HTTP address and admin token of the collector started last, for enrollment tokens.
    api: std::cell::RefCell<Option<(std::net::SocketAddr, String)>>,
}

impl Site {
    fn new() -> Self {
        Self {
            work: tempfile::tempdir().unwrap(),
            port: free_port(),
            api: std::cell::RefCell::new(None),
        }
    }

    /// Starts (or restarts) the collector with `tasks` ping tasks to ::1, each every second.
    fn collector(&self, tasks: usize) -> Collector {
        let config = self.work.path().join(format!("collector-{tasks}.toml"));
        let mut text = "heartbeat_interval_s = 1\n".to_owned();
        for i in 0..tasks {
            // Distinct payload sizes make distinct tasks.
            text.push_str(&format!(
                "[[ping_tasks]]\ntargets = [\"::1\"]\nevery_s = 1\ncount = 1\ninterval_ms = 0\n\
                 timeout_ms = 1000\nsize = {}\n",
                10 + i
            ));
        }
        std::fs::write(&config, text).unwrap();
        let listen = format!("[::1]:{}", self.port);
        let collector = Collector::start(
            &self.work.path().join("collector-data"),
            &[
                "--config",
                config.to_str().unwrap(),
                "--grpc-listen",
                &listen,
            ],
        );
        *self.api.borrow_mut() = Some((collector.http, collector.admin.clone()));
        collector
    }

    fn probe(&self, name: &str, extra: &str) -> Probe {
        let state_dir = self.work.path().join(format!("{name}-state"));
        let config = self.work.path().join(format!("{name}.toml"));
        let (http, admin) = self.api.borrow().clone().expect("a collector runs");
        // One owner per probe: the enrollment caps count probes per owner and /64.
        let token = sixmap_tests::enrollment_token(http, &admin, name);
        // Up to 100 one-packet tasks a second: 6000 packets a minute, within the largest
        // packet budget, so the probes measure rather than refuse (both would be delivered).
        std::fs::write(
            &config,
            format!(
                "collector = \"https://[::1]:{}\"\nstate_dir = {state_dir:?}\n\
                 enrollment_token = \"{token}\"\nhostname = \"{name}\"\nlab_mode = true\n\
                 packet_budget_per_minute = 60000\n{extra}",
                self.port
            ),
        )
        .unwrap();
        Probe::start_new(config, state_dir)
    }
}

fn now_us() -> i64 {
    sixmap_shared::UnixMicros::now().0
}

/// Stops production (probes restarted against a collector with no tasks) and waits until every
/// outbox is empty. Returns the collector, still running, and the probes' ids.
fn drain(site: &Site, collector: Collector, probes: &mut [Probe]) -> Collector {
    for probe in probes.iter_mut() {
        probe.kill();
    }
    drop(collector);
    let collector = site.collector(0);
    let started = now_us();
    for probe in probes.iter_mut() {
        probe.start();
    }
    for probe in probes.iter() {
        probe.wait_drained(started, Duration::from_secs(120));
    }
    for probe in probes.iter_mut() {
        probe.stop();
    }
    collector
}

fn losses(collector: &Collector, probe: &Probe) -> serde_json::Value {
    collector.get_json(&format!("/api/v1/losses?probe={}&limit=10000", probe.id()))
}

#[test]
fn collector_killed_repeatedly_while_probes_stream_loses_and_duplicates_nothing() {
    let site = Site::new();
    let mut collector = site.collector(100);
    let mut probes = vec![site.probe("alpha", ""), site.probe("beta", "")];
    for probe in &probes {
        probe.wait_results(&collector, 50);
    }
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(4));
        let mut old = collector;
        old.process.kill();
        collector = site.collector(100);
    }
    std::thread::sleep(Duration::from_secs(4));
    let collector = drain(&site, collector, &mut probes);
    let mut total = 0;
    for probe in &probes {
        total += assert_exactly_once(&collector, probe);
        assert!(probe.log.dropped.is_empty());
        assert_eq!(losses(&collector, probe)["count"], 0);
    }
    assert!(
        total >= 2000,
        "only {total} results: the test did not stress delivery"
    );
}

#[test]
fn probe_killed_mid_batch_loses_and_duplicates_nothing() {
    let site = Site::new();
    let collector = site.collector(100);
    let mut probe = site.probe("gamma", "");
    probe.wait_results(&collector, 50);
    for round in 0..5u64 {
        // Uneven pauses, so kills land at different points of the upload cycle.
        std::thread::sleep(Duration::from_millis(1500 + 700 * round));
        probe.restart();
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut probes = vec![probe];
    let collector = drain(&site, collector, &mut probes);
    let checked = assert_exactly_once(&collector, &probes[0]);
    assert!(checked >= 1000, "only {checked} results");
    // Every boot epoch's sequence numbers start at 1 and have no holes.
    let mut by_epoch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (epoch, sequence) in probes[0].log.produced.keys() {
        by_epoch.entry(*epoch).or_default().push(*sequence);
    }
    assert!(by_epoch.len() >= 6, "{by_epoch:?}");
    for (epoch, sequences) in by_epoch {
        let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
        assert_eq!(sequences, expected, "epoch {epoch}");
    }
}

/// Runs `sixmap-probe status` for a state directory.
fn status_text(state_dir: &Path) -> String {
    let output = std::process::Command::new(sixmap_tests::binary("sixmap-probe"))
        .args(["status", "--state-dir", state_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn collector_away_for_minutes_then_everything_arrives() {
    let site = Site::new();
    let mut collector = site.collector(20);
    let probe = site.probe("delta", "");
    probe.wait_results(&collector, 20);
    let before = probe_status(&probe.state_dir).unwrap();
    assert_eq!(before["connected"], true, "{before:#}");
    collector.process.kill();
    let outage = Duration::from_secs(120);
    std::thread::sleep(outage / 2);
    let text = status_text(&probe.state_dir);
    assert!(text.contains("DISCONNECTED"), "{text}");
    assert!(!text.contains("NOT RUNNING"), "{text}");
    std::thread::sleep(outage / 2);
    let waiting = probe.status()["outbox"]["results"].as_u64().unwrap();
    assert!(
        waiting >= 20 * 100,
        "only {waiting} results waited in the outbox"
    );
    drop(collector);
    let collector = site.collector(20);
    // The running probe finds the collector again by itself (backoff is capped at 60 s).
    let back = wait_for(Duration::from_secs(90), || {
        let s = probe.status();
        (s["connected"] == true && s["outbox"]["results"].as_u64()? < 100).then_some(())
    });
    if back.is_none() {
        panic!("probe did not catch up\n{}", probe.logs());
    }
    let text = status_text(&probe.state_dir);
    assert!(text.contains("connected since"), "{text}");
    let mut probes = vec![probe];
    let collector = drain(&site, collector, &mut probes);
    let checked = assert_exactly_once(&collector, &probes[0]);
    assert!(checked >= 20 * 120, "only {checked} results");
    assert_eq!(losses(&collector, &probes[0])["count"], 0);
    let text = status_text(&probes[0].state_dir);
    assert!(text.contains("NOT RUNNING"), "{text}");
    assert!(text.contains("0 results waiting"), "{text}");
}

#[test]
fn overflowing_outbox_reports_exactly_what_it_dropped() {
    let site = Site::new();
    let mut collector = site.collector(100);
    // The smallest outbox allowed: a few hundred ping results.
    let probe = site.probe("epsilon", "outbox_max_bytes = 65536\n");
    probe.wait_results(&collector, 50);
    collector.process.kill();
    std::thread::sleep(Duration::from_secs(12));
    drop(collector);
    let collector = site.collector(100);
    let mut probes = vec![probe];
    let collector = drain(&site, collector, &mut probes);
    let probe = &probes[0];
    assert_exactly_once(&collector, probe);
    let dropped = &probe.log.dropped;
    assert!(dropped.len() >= 200, "only {} dropped", dropped.len());

    let body = losses(&collector, probe);
    let records = body["losses"].as_array().unwrap();
    let total: u64 = records.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, dropped.len() as u64, "loss records: {body:#}");
    let seq = |k: &serde_json::Value| -> Seq {
        (
            k["boot_epoch"].as_u64().unwrap(),
            k["sequence"].as_u64().unwrap(),
        )
    };
    let ranges: Vec<(Seq, Seq, &serde_json::Value)> = records
        .iter()
        .map(|r| (seq(&r["first"]), seq(&r["last"]), r))
        .collect();
    for key in dropped {
        assert!(
            ranges
                .iter()
                .any(|(first, last, _)| first <= key && key <= last),
            "dropped {key:?} outside every loss record: {body:#}"
        );
    }
    // Where records do not overlap, each one's count and time range match its own drops.
    let disjoint = ranges
        .iter()
        .enumerate()
        .all(|(i, a)| ranges.iter().skip(i + 1).all(|b| a.1 < b.0 || b.1 < a.0));
    if disjoint {
        for (first, last, record) in &ranges {
            let mine: Vec<&Seq> = dropped
                .iter()
                .filter(|k| first <= *k && *k <= last)
                .collect();
            assert_eq!(record["count"].as_u64().unwrap(), mine.len() as u64);
            assert_eq!(mine.first().copied(), Some(first));
            assert_eq!(mine.last().copied(), Some(last));
            let times: Vec<i64> = mine.iter().map(|k| probe.log.produced[*k]).collect();
            assert_eq!(
                record["oldest_started_at"].as_i64(),
                times.iter().min().copied()
            );
            assert_eq!(
                record["newest_started_at"].as_i64(),
                times.iter().max().copied()
            );
            assert_eq!(record["reason"], "outbox_full");
        }
    }
}
