//! Several collectors in front of one ClickHouse store (issue #11), with real processes.
//!
//! Two collectors share the store and one CA (`pki_dir`); probes list both. While results
//! stream, the collector in use is killed with SIGKILL, three times, alternating: each time
//! the probes must fail over to the other collector, which accepts their certificates and
//! their results because everything it needs is in the shared store. In the end every result
//! the probes produced (their own debug log is the truth) is stored exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::testing::clickhouse::{self, ClickHouseServer};
use sixmap_tests::delivery::{Probe, assert_exactly_once};
use sixmap_tests::{Collector, free_port, stored_results, wait_for};
use std::path::PathBuf;
use std::time::Duration;

/// Ping tasks to ::1 each probe runs every second.
const TASKS: usize = 40;

struct Site {
    work: tempfile::TempDir,
    clickhouse: ClickHouseServer,
    ports: [u16; 2],
}

impl Site {
    fn config(&self, tasks: usize) -> PathBuf {
        let path = self.work.path().join(format!("collector-{tasks}.toml"));
        let mut text = format!(
            "heartbeat_interval_s = 1\nlab_mode = true\npki_dir = {:?}\n\n[store]\nbackend = \"clickhouse\"\n\
             [store.clickhouse]\nurl = \"{}\"\ndatabase = \"scaleout\"\n",
            self.work.path().join("pki"),
            self.clickhouse.url()
        );
        for i in 0..tasks {
            // Distinct payload sizes make distinct tasks.
            text.push_str(&format!(
                "\n[[ping_tasks]]\ntargets = [\"::1\"]\nevery_s = 1\ncount = 1\ninterval_ms = 0\n\
                 timeout_ms = 1000\nsize = {}\n",
                10 + i
            ));
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts collector `which` (0 or 1) on its fixed port, with `tasks` ping tasks.
    fn collector(&self, which: usize, tasks: usize) -> Collector {
        let config = self.config(tasks);
        let listen = format!("[::1]:{}", self.ports[which]);
        Collector::start(
            &self.work.path().join(format!("collector-{which}-data")),
            &[
                "--config",
                config.to_str().unwrap(),
                "--grpc-listen",
                &listen,
            ],
        )
    }

    fn probe(&self, name: &str, api: &Collector) -> Probe {
        let state_dir = self.work.path().join(format!("{name}-state"));
        let config = self.work.path().join(format!("{name}.toml"));
        // One owner per probe: the enrollment caps count probes per owner and /64.
        let token = api.enrollment_token(name);
        std::fs::write(
            &config,
            format!(
                "collectors = [\"https://[::1]:{}\", \"https://[::1]:{}\"]\n\
                 state_dir = {state_dir:?}\nenrollment_token = \"{token}\"\n\
                 hostname = \"{name}\"\nlab_mode = true\npacket_budget_per_minute = 60000\n",
                self.ports[0], self.ports[1]
            ),
        )
        .unwrap();
        Probe::start_new(config, state_dir)
    }
}

/// Results of all `probes` stored so far, read through `collector`.
fn stored_total(collector: &Collector, probes: &[Probe]) -> usize {
    probes
        .iter()
        .filter_map(Probe::try_id)
        .map(|id| stored_results(collector, &id).len())
        .sum()
}

#[test]
fn probes_fail_over_between_collectors_sharing_clickhouse_and_lose_nothing() {
    let Some(server) = clickhouse::require() else {
        return;
    };
    let site = Site {
        work: tempfile::tempdir().unwrap(),
        clickhouse: server,
        ports: [free_port(), free_port()],
    };
    // The first start creates the CA in pki_dir; the second collector reads the same files.
    let mut collectors = [
        Some(site.collector(0, TASKS)),
        Some(site.collector(1, TASKS)),
    ];
    let mut probes = vec![
        site.probe("alpha", collectors[0].as_ref().unwrap()),
        site.probe("beta", collectors[1].as_ref().unwrap()),
    ];
    for probe in &probes {
        probe.wait_results(collectors[0].as_ref().unwrap(), 2 * TASKS);
    }

    // Probes list collector 0 first, so they use it now; kill the one in use each round.
    for round in 0..3 {
        let victim = round % 2;
        let survivor = 1 - victim;
        std::thread::sleep(Duration::from_secs(3));
        collectors[victim].take().unwrap().process.kill();
        let other = collectors[survivor].as_ref().unwrap();
        let before = stored_total(other, &probes);
        // Both probes reach the survivor: results keep arriving, through it alone.
        let grew = wait_for(Duration::from_secs(45), || {
            (stored_total(other, &probes) >= before + 4 * TASKS).then_some(())
        });
        if grew.is_none() {
            let logs: Vec<String> = probes.iter().map(Probe::logs).collect();
            panic!(
                "round {round}: no failover to collector {survivor}\n{}\ncollector:\n{}",
                logs.join("\n"),
                other.process.log()
            );
        }
        collectors[victim] = Some(site.collector(victim, TASKS));
    }

    // The probes are on collector 1 now (round 2 killed collector 0). A campaign created at
    // collector 0 reaches them through the shared store: collector 1's campaign ticker sees
    // it and pushes its task to the probes connected there.
    let at_zero = collectors[0].as_ref().unwrap();
    let spec = serde_json::json!({
        "spec": {
            "name": "cross-collector",
            "targets": ["::1"],
            "measurements": [{"kind": "ping", "count": 1, "timeout_ms": 1000}],
            // Each probe runs it within a second, not at its own moment of the default 5 min.
            "schedule": {"spread_s": 1},
        },
    });
    let (status, body) = sixmap_tests::http_request(
        at_zero.http,
        "POST",
        "/api/v1/campaigns",
        Some(&at_zero.admin),
        &spec.to_string(),
    );
    assert_eq!(status, 201, "creating a campaign at collector 0: {body}");
    let campaign: serde_json::Value = serde_json::from_str(&body).unwrap();
    let task = campaign["tasks"][0]["task_id"].as_u64().unwrap();
    let reached = wait_for(Duration::from_secs(30), || {
        probes
            .iter()
            .all(|p| {
                p.try_id().is_some_and(|id| {
                    stored_results(collectors[1].as_ref().unwrap(), &id)
                        .values()
                        .any(|r| r.task_id == task)
                })
            })
            .then_some(())
    });
    if reached.is_none() {
        let logs: Vec<String> = probes
            .iter()
            .map(|p| {
                let log = p.process.as_ref().map(|p| p.log()).unwrap_or_default();
                log.lines()
                    .filter(|l| !l.contains("result produced") && !l.contains("batch"))
                    .map(|l| format!("{l}\n"))
                    .collect::<String>()
            })
            .collect();
        panic!(
            "the campaign created at collector 0 never ran on the probes at collector 1: \
             {body}\n{}\ncollector 1:\n{}",
            logs.join("\n"),
            collectors[1].as_ref().unwrap().process.log()
        );
    }

    // Stop production: probes restarted against collectors that assign nothing, until every
    // outbox is empty.
    for probe in &mut probes {
        probe.kill();
    }
    drop(collectors);
    let collector = site.collector(0, 0);
    let started = now_us();
    for probe in &mut probes {
        probe.start();
    }
    for probe in &probes {
        probe.wait_drained(started, Duration::from_secs(120));
    }
    for probe in &mut probes {
        probe.kill();
    }
    let mut total = 0;
    for probe in &probes {
        total += assert_exactly_once(&collector, probe);
        assert!(probe.log.dropped.is_empty());
    }
    assert!(
        total >= 2 * 10 * TASKS,
        "only {total} results: the test did not stress failover"
    );
}

fn now_us() -> i64 {
    sixmap_shared::UnixMicros::now().0
}
