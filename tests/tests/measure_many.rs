//! `sixmap-probe measure traceroute T1 T2 … --pps N`: many traces at once under one shared
//! packets-per-second cap, in the many-targets lab, against its ground truth. The probe
//! binary must be current (`cargo build -p sixmap-probe`, or `cargo test --workspace`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::bench::hops_correct;
use sixmap_tests::bench::parse::sixmap_traceroutes;
use sixmap_tests::lab::many::many_targets;
use sixmap_tests::lab::scenarios::PROBE;
use sixmap_tests::lab_or_skip;
use std::net::IpAddr;

#[test]
fn many_traces_share_one_pps_cap_and_all_find_their_path() {
    lab_or_skip!();
    let s = many_targets(4).unwrap();
    assert_eq!(s.destinations.len(), 20);
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
            "{}: {:?}",
            d.address,
            trace.hops
        );
    }
    // One probe per hop: nothing wasted beyond a destination.
    let hops: usize = s.destinations.iter().map(|d| d.hops.len()).sum();
    assert_eq!(packets, hops as u64);
    // Under the cap: at most pps·t + 1 packets in t seconds.
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let seconds = json["duration_us"].as_u64().unwrap() as f64 / 1e6;
    assert!(
        packets as f64 <= 50.0 * seconds + 1.0,
        "{packets} packets in {seconds:.2} s at 50 pps"
    );
}
