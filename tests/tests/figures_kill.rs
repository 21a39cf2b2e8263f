//! Figures survive `kill -9` during ingest: a real collector process takes result batches from
//! `sixmap-loadgen` (real probes' protocol over mTLS), is killed with SIGKILL while folding,
//! restarted, killed again; afterwards the stored figures plus what the ingest log still holds
//! equal a rebuild from the raw results: no result counted twice or missed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sixmap_collector::figures::fold::{compute, fold_once, hours_since};
use sixmap_collector::figures::{Figure, FigureKey};
use sixmap_collector::store::{FigureStore, SledStore};
use sixmap_shared::UnixMicros;
use sixmap_shared::prefixes::PrefixData;
use sixmap_tests::loadgen::collector::{Backend, config_toml};
use sixmap_tests::{Collector, Process, wait_for};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

fn loadgen(collector: &Collector, work: &std::path::Path) -> Process {
    std::fs::create_dir_all(work).unwrap();
    let log = work.join("loadgen.log");
    let child = Command::new(env!("CARGO_BIN_EXE_sixmap-loadgen"))
        .arg("--work-dir")
        .arg(work)
        .args(["--connect-grpc", &collector.grpc.to_string()])
        .args(["--connect-http", &collector.http.to_string()])
        .args(["--admin-token", &collector.admin])
        .args([
            "ingest",
            "--probes",
            "4",
            "--batch",
            "20",
            "--duration-s",
            "60",
            "--no-baseline",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Process::from_child(child, "sixmap-loadgen", log)
}

/// Results counted by the figures so far (the aggregate reads them: no filter).
fn folded_results(collector: &Collector) -> u64 {
    let answer = collector.get_json("/api/v1/query/aggregates?group_by=day");
    assert_eq!(answer["source"], "figures", "{answer}");
    answer["results"].as_u64().unwrap()
}

#[test]
fn figures_equal_a_rebuild_after_kill_9_during_ingest() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (round, at_least) in [(0, 2_000u64), (1, 4_000)] {
        // The load run's config: enrollment caps out of the way (every probe enrolls from
        // ::1) and a task for every kind the simulated probes report.
        let config = work.path().join("collector.toml");
        std::fs::write(&config, config_toml(&data, &Backend::Sled, 100)).unwrap();
        let mut collector = Collector::start(&data, &["--config", config.to_str().unwrap()]);
        let mut load = loadgen(&collector, &work.path().join(format!("load{round}")));
        wait_for(Duration::from_secs(60), || {
            (folded_results(&collector) >= at_least).then_some(())
        })
        .unwrap_or_else(|| panic!("ingest too slow:\n{}", load.log()));
        // Mid-ingest, mid-fold: no warning, no flush.
        collector.process.kill();
        load.kill();
    }
    let store = SledStore::open(&data).unwrap();
    let cursor = store
        .figures_cursor()
        .unwrap()
        .expect("figures were built at start");
    assert!(cursor > 0, "nothing was folded while the collector ran");
    // What the next start would do: fold what the log still holds.
    let now = UnixMicros::now();
    while fold_once(&store, &PrefixData::new(), 10_000, hours_since(now))
        .unwrap()
        .folded
        > 0
    {}
    let (rebuilt, results) = compute(&store, &PrefixData::new(), hours_since(now)).unwrap();
    assert!(results >= 4_000, "{results}");
    let mut kept = BTreeMap::new();
    store
        .figure_rows(b"A", b"~", &mut |k, v| {
            kept.insert(FigureKey::decode(k).unwrap(), Figure::decode(v).unwrap());
            true
        })
        .unwrap();
    assert_eq!(kept.len(), rebuilt.rows.len());
    for (key, figure) in &rebuilt.rows {
        assert_eq!(kept.get(key), Some(figure), "{key:?}");
    }
}
