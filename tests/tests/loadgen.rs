//! `sixmap-loadgen` under a tiny load: it must measure something real. Every result it counts
//! as acked must be in the collector's store, exactly once, and the baseline must have run.
//! No timing is asserted: the machine may be busy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sixmap_tests::binary;
use std::process::Command;

#[test]
fn loadgen_counts_exactly_what_the_collector_stored() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sixmap-loadgen"))
        .args(["--json", "--work-dir"])
        .arg(work.path())
        .arg("--collector-bin")
        .arg(binary("sixmap-collector"))
        .args([
            "ingest",
            "--probes",
            "20",
            "--duration-s",
            "2",
            "--batch",
            "20",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sixmap-loadgen failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let acked = report["acked"].as_u64().unwrap();
    assert!(acked > 0, "nothing acked: {report:#}");
    assert_eq!(report["rejected"], 0, "{report:#}");
    assert_eq!(report["sent"].as_u64().unwrap(), acked, "{report:#}");
    assert!(
        report["baseline"]["results"].as_u64().unwrap() >= acked,
        "{report:#}"
    );
    assert!(report["ack_latency_ms"]["p50"].as_f64().is_some());
    assert!(report["collector"]["cpu_seconds"].as_f64().unwrap() > 0.0);

    // The collector was stopped by the loadgen; its store is read offline.
    let data_dir = report["data_dir"].as_str().unwrap();
    let listed = Command::new(binary("sixmap-collector"))
        .args(["results", "--data-dir", data_dir, "--limit", "100000000"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let mut keys = std::collections::HashSet::new();
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let result: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = result["key"].to_string();
        assert!(keys.insert(key), "stored twice: {line}");
    }
    assert_eq!(keys.len() as u64, acked, "stored vs acked");
}
