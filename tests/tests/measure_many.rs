//! `sixmap-probe measure traceroute T1 T2 … --pps N`: many traces at once under one shared
//! packets-per-second cap, in the many-targets lab, against its ground truth. The probe
//! binary must be current (`cargo build -p sixmap-probe`, or `cargo test --workspace`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::bench::hops_correct;
use sixmap_tests::bench::parse::sixmap_traceroutes;
use sixmap_tests::lab::many::{ManyTargets, many_targets};
use sixmap_tests::lab::scenarios::PROBE;
use sixmap_tests::lab_or_skip;
use std::net::IpAddr;

/// Traces every destination at 50 pps, 8 at once; returns the traces' packets and the run's
/// time in seconds, after checking every path is complete.
fn run_all(s: &ManyTargets, extra: &[&str]) -> (u64, f64, u64) {
    let probe = sixmap_tests::binary("sixmap-probe");
    let mut argv = vec![
        probe.to_str().unwrap().to_owned(),
        "measure".into(),
        "traceroute".into(),
    ];
    argv.extend(s.destinations.iter().map(|d| d.address.to_string()));
    argv.extend(
        [
            "-q",
            "1",
            "--pps",
            "50",
            "--parallel",
            "8",
            "--timeout-ms",
            "30000",
            "--json",
            "--lab-mode",
        ]
        .map(str::to_owned),
    );
    argv.extend(extra.iter().map(|a| (*a).to_owned()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = s.lab.exec_unchecked(PROBE, &argv);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (traces, packets) = sixmap_traceroutes(&stdout).unwrap();
    for d in &s.destinations {
        let trace = traces
            .iter()
            .find(|t| t.destination == Some(IpAddr::V6(d.address)))
            .unwrap_or_else(|| panic!("no trace of {}", d.address));
        assert_eq!(
            hops_correct(&trace.hops, &d.hops),
            (d.hops.len(), true),
            "{extra:?} {}: {:?}",
            d.address,
            trace.hops
        );
    }
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let seconds = json["duration_us"].as_u64().unwrap() as f64 / 1e6;
    let reused: u64 = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"]["reused_hops"].as_u64().unwrap_or(0))
        .sum();
    (packets, seconds, reused)
}

#[test]
fn many_traces_share_one_pps_cap_and_all_find_their_path() {
    lab_or_skip!();
    let s = many_targets(4).unwrap();
    assert_eq!(s.destinations.len(), 20);
    let hops: usize = s.destinations.iter().map(|d| d.hops.len()).sum();
    // Every trace from the first hop: one probe per hop, nothing wasted beyond a destination.
    let (packets, seconds, reused) = run_all(&s, &["--no-stop-set"]);
    assert_eq!((packets, reused), (hops as u64, 0));
    // Under the cap: at most pps·t + 1 packets in t seconds.
    assert!(
        packets as f64 <= 50.0 * seconds + 1.0,
        "{packets} packets in {seconds:.2} s at 50 pps"
    );
    // With the stop set, as complete, with fewer packets: the first trace of each of the four
    // /64s probes every hop (4 + 5 + 6 + 7), the 16 others the destination and the router
    // below it, which the run saw at that hop limit; the hops below are copied.
    let (packets, seconds, reused) = run_all(&s, &[]);
    let leaders = 4 + 5 + 6 + 7;
    assert_eq!(
        packets,
        leaders + 16 * 2,
        "{packets} packets for {hops} hops"
    );
    assert_eq!(reused as usize, hops - packets as usize);
    assert!(
        packets as f64 <= 50.0 * seconds + 1.0,
        "{packets} packets in {seconds:.2} s at 50 pps"
    );
}
