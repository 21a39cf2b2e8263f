//! Our ping and traceroute across the lab's impaired link, whose delay and loss are the ground
//! truth: RTTs within a stated tolerance of twice the configured one-way delay, the loss
//! estimate within the binomial band of the configured loss.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use sixmap_tests::lab::impair::check_delay_band;
use sixmap_tests::lab::scenarios::{self, PROBE};
use sixmap_tests::lab_or_skip;

fn measure(lab: &sixmap_tests::lab::Lab, args: &[&str]) -> Value {
    let probe = sixmap_tests::binary("sixmap-probe");
    let mut argv = vec![probe.to_str().unwrap(), "measure"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--json", "--lab-mode"]);
    let out = lab.exec_unchecked(PROBE, &argv);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn ping_rtt_matches_the_configured_delay_and_traceroute_sees_one_router() {
    lab_or_skip!();
    let lab_binary = sixmap_tests::binary("sixmap-lab");
    // 25 ms each way, no jitter, no loss: RTTs within [50, 58) ms as `check_delay_band`
    // reads it (never below 50; the median and most replies below 58). Debian's ping is held
    // to the same band in lab.rs.
    let s = scenarios::impaired(&lab_binary, 25.0, 0.0, 0.0).unwrap();
    let target = s.target.to_string();
    let ping = measure(
        &s.lab,
        &[
            "ping",
            &target,
            "-c",
            "10",
            "-i",
            "100",
            "--timeout-ms",
            "5000",
        ],
    );
    let outcome = &ping["outcome"];
    assert_eq!(outcome["received"], 10, "{ping}");
    assert_eq!(outcome["timestamp_source"], "kernel", "{ping}");
    let mut rtts_ms = Vec::new();
    for reply in outcome["replies"].as_array().unwrap() {
        rtts_ms.push(reply["rtt_ns"].as_f64().unwrap() / 1e6);
        // One router (the impairing one) between probe and target.
        assert_eq!(reply["hop_limit"], 63, "{ping}");
    }
    if let Err(e) = check_delay_band(&rtts_ms, 25.0, 8.0) {
        panic!("{e}: {ping}");
    }

    let trace = measure(
        &s.lab,
        &[
            "traceroute",
            &target,
            "-q",
            "1",
            "-m",
            "5",
            "--timeout-ms",
            "10000",
        ],
    );
    let hops: Vec<&str> = trace["outcome"]["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["replies"][0]["from"].as_str().unwrap_or("*"))
        .collect();
    assert_eq!(
        hops,
        [s.impairing_hop.to_string(), target.clone()],
        "{trace}"
    );
    // The target's answer crossed the impaired link both ways. The router's Time Exceeded
    // crossed it once: the forwarder delays a packet before the kernel routes it (and finds
    // its hop limit spent), while the router's own answer leaves without passing the forwarder.
    let rtt_ms = |i: usize| {
        trace["outcome"]["hops"][i]["replies"][0]["rtt_ns"]
            .as_f64()
            .unwrap()
            / 1e6
    };
    assert!(
        (25.0..33.0).contains(&rtt_ms(0)),
        "router RTT {} ms: {trace}",
        rtt_ms(0)
    );
    assert!(
        (50.0..58.0).contains(&rtt_ms(1)),
        "target RTT {} ms: {trace}",
        rtt_ms(1)
    );
}

#[test]
fn ping_loss_estimate_matches_the_configured_loss() {
    lab_or_skip!();
    let lab_binary = sixmap_tests::binary("sixmap-lab");
    // 10 % each way: a round trip survives with 0.9² = 81 %, so 19 % loss expected. With 64
    // requests (the spec's maximum) the binomial standard deviation is 4.9 points; the band
    // [4.5, 35] % is about ±3 σ, wide enough never to flake and narrow enough to catch a
    // probe that miscounts (e.g. counting duplicates or late replies).
    let s = scenarios::impaired(&lab_binary, 1.0, 0.0, 10.0).unwrap();
    let ping = measure(
        &s.lab,
        &[
            "ping",
            &s.target.to_string(),
            "-c",
            "64",
            "-i",
            "20",
            "--timeout-ms",
            "10000",
        ],
    );
    let outcome = &ping["outcome"];
    assert_eq!(outcome["sent"], 64, "{ping}");
    let received = outcome["received"].as_f64().unwrap();
    let loss = 100.0 * (1.0 - received / 64.0);
    assert!((4.5..=35.0).contains(&loss), "loss {loss} %: {ping}");
}
