//! Path measurements of our own probe (`sixmap-probe measure traceroute|pmtu|exthdr`) run in
//! the lab's probe namespace and compared, field by field, with each scenario's ground
//! truth. Raw sockets need root, which the lab needs anyway.
//!
//! The probe binary must be current: run through `cargo test --workspace`, or build it
//! first (`cargo build -p sixmap-probe`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use sixmap_tests::lab::Lab;
use sixmap_tests::lab::scenarios::{self, ExtHeaderDrops, PROBE};
use sixmap_tests::lab_or_skip;
use std::net::IpAddr;

/// Runs `sixmap-probe measure ARGS --json --lab-mode` in the probe namespace and returns the
/// JSON it printed (also when the measurement failed, which exits non-zero).
fn measure(lab: &Lab, args: &[&str]) -> Value {
    let probe = sixmap_tests::binary("sixmap-probe");
    let probe = probe.to_str().unwrap();
    let mut argv = vec![probe, "measure"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--json", "--lab-mode"]);
    let output = lab.exec_unchecked(PROBE, &argv);
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{}", args.join(" "));
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{argv:?}: no JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    eprintln!("  -> {} in {} us", json["outcome"], json["duration_us"]);
    json
}

fn outcome<'a>(json: &'a Value, kind: &str) -> &'a Value {
    let outcome = &json["outcome"];
    assert_eq!(outcome["kind"], kind, "{json:#}");
    outcome
}

fn address(value: &Value) -> IpAddr {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an address: {value}"))
}

/// `(hop_limit, responders)` per hop, and `(type, code)` (or TCP flags) of every answer at
/// the last hop.
fn hops(outcome: &Value) -> Vec<(u64, Vec<Option<IpAddr>>)> {
    outcome["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hop| {
            let replies = hop["replies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (!r.is_null()).then(|| address(&r["from"])))
                .collect();
            (hop["hop_limit"].as_u64().unwrap(), replies)
        })
        .collect()
}

fn last_hop_answers(outcome: &Value) -> Vec<Value> {
    let hops = outcome["hops"].as_array().unwrap();
    hops.last().unwrap()["replies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r.is_null())
        .map(|r| {
            let mut answer = r.clone();
            let object = answer.as_object_mut().unwrap();
            object.remove("from");
            object.remove("rtt_ns");
            answer
        })
        .collect()
}

fn icmp(icmp_type: u8, icmp_code: u8) -> Value {
    serde_json::json!({"answer": "icmp", "icmp_type": icmp_type, "icmp_code": icmp_code, "mtu": null})
}

#[test]
fn traceroute_finds_the_ground_truth_path_with_icmp_udp_and_tcp() {
    lab_or_skip!();
    let path = scenarios::long_path(5).unwrap();
    assert_eq!(path.hops.len(), 6);
    let target = path.target.to_string();
    for (protocol, answer) in [
        ("icmp", icmp(129, 0)),
        ("udp", icmp(1, 4)),
        // Nothing listens on port 80: the target resets (RST|ACK).
        ("tcp", serde_json::json!({"answer": "tcp", "flags": 0x14})),
    ] {
        let json = measure(
            &path.lab,
            &[
                "traceroute",
                &target,
                "-P",
                protocol,
                "-m",
                "12",
                "-q",
                "3",
                "--flow-label",
                "74565", // 0x12345
            ],
        );
        let out = outcome(&json, "traceroute");
        let expected: Vec<(u64, Vec<Option<IpAddr>>)> = path
            .hops
            .iter()
            .enumerate()
            // One probe per hop: `-q 3` allows three, but a hop that answered gets no more.
            .map(|(i, hop)| (i as u64 + 1, vec![Some(*hop)]))
            .collect();
        assert_eq!(hops(out), expected, "{protocol}: {json:#}");
        assert_eq!(out["stop"], "reached", "{protocol}");
        assert_eq!(out["reached_destination"], true, "{protocol}");
        assert_eq!(
            out["protocol"],
            if protocol == "tcp" {
                "tcp_syn"
            } else {
                protocol
            }
        );
        assert_eq!(out["flow_label"], 0x12345);
        assert_eq!(last_hop_answers(out), vec![answer], "{protocol}: {json:#}");
        // Routers before the target answer Time Exceeded (code 0: hop limit).
        for hop in &out["hops"].as_array().unwrap()[..5] {
            for reply in hop["replies"].as_array().unwrap() {
                assert_eq!(
                    (reply["icmp_type"].as_u64(), reply["icmp_code"].as_u64()),
                    (Some(3), Some(0))
                );
                assert!(reply["rtt_ns"].as_u64().unwrap() > 0);
            }
        }
        // Six hops and the marker at hop limit 12; nothing else beyond the target.
        let sent = out["packets_sent"].as_u64().unwrap();
        assert_eq!(sent, 7, "{protocol}: {json:#}");
    }
}

#[test]
fn traceroute_stops_where_the_targets_scenario_says() {
    lab_or_skip!();
    let t = scenarios::targets().unwrap();
    let r1 = IpAddr::V6(t.lab.node("r1").towards(PROBE).unwrap().v6);
    let r2 = IpAddr::V6(t.r2);
    // Address unreachable: r2 has a connected route, so it forwards like any router (Time
    // Exceeded at hop 2) and answers hop 3 once neighbour discovery fails. Prohibit and
    // unreachable routes answer at route lookup, before the hop limit is looked at: r2's
    // error comes already at hop 2. The trace stops at the error either way.
    for (address, code, last_hop) in [
        (t.address_unreachable, 3, 3u64),
        (t.admin_prohibited, 1, 2),
        (t.no_route, 0, 2),
    ] {
        let json = measure(
            &t.lab,
            &[
                "traceroute",
                &address.to_string(),
                "-m",
                "8",
                "-q",
                "2",
                "--timeout-ms",
                "9000",
            ],
        );
        let out = outcome(&json, "traceroute");
        // Hops that answer get one probe. Hop 3 stays silent for the ~3 s of neighbour
        // discovery, so it is asked again after 1 s; the first error ends the trace, and the
        // second probe may not be answered by then.
        let mut found = hops(out);
        if last_hop == 3 {
            let (hop, replies) = found.pop().unwrap();
            assert_eq!((hop, replies.first()), (3, Some(&Some(r2))), "{json:#}");
        }
        let expected = vec![(1, vec![Some(r1)]), (2, vec![Some(r2)])];
        assert_eq!(found, expected, "{address}: {json:#}");
        assert_eq!(out["stop"], "unreachable", "{address}");
        assert_eq!(out["reached_destination"], false);
        assert_eq!(
            last_hop_answers(out).first(),
            Some(&icmp(1, code)),
            "{address}"
        );
    }
    // Broken IPv6: r1 blackholes the route, so not even hop 1 answers; the trace gives up
    // after max_silent_hops silent hops.
    let json = measure(
        &t.lab,
        &[
            "traceroute",
            &t.broken_v6.0.to_string(),
            "-m",
            "8",
            "-q",
            "2",
            "--max-silent",
            "4",
        ],
    );
    let out = outcome(&json, "traceroute");
    assert_eq!(
        hops(out),
        (1..=4).map(|h| (h, vec![None, None])).collect::<Vec<_>>(),
        "{json:#}"
    );
    assert_eq!(out["stop"], "silent_hops");
    assert_eq!(
        out["packets_sent"], 9,
        "4 silent hop limits twice and the marker at 8: nothing beyond the silent run"
    );
    // The v6-only host is reached in three hops.
    let json = measure(
        &t.lab,
        &["traceroute", &t.v6_only.to_string(), "-m", "8", "-q", "1"],
    );
    let out = outcome(&json, "traceroute");
    assert_eq!(
        hops(out),
        vec![
            (1, vec![Some(r1)]),
            (2, vec![Some(r2)]),
            (3, vec![Some(IpAddr::V6(t.v6_only))])
        ]
    );
    assert_eq!(out["stop"], "reached");
    // IPv4 targets are refused, saying so.
    let json = measure(&t.lab, &["traceroute", &t.v4_only.to_string()]);
    let failed = outcome(&json, "failed");
    assert_eq!(failed["class"], "unsupported");
    assert!(
        failed["message"].as_str().unwrap().contains("IPv4"),
        "{json:#}"
    );
}

#[test]
fn pmtu_finds_1280_and_the_black_hole_router() {
    lab_or_skip!();
    let open = scenarios::pmtu(false).unwrap();
    let target = open.target.to_string();
    for protocol in ["icmp", "udp"] {
        let json = measure(
            &open.lab,
            &["pmtu", &target, "--max-size", "1500", "-P", protocol],
        );
        let out = outcome(&json, "pmtu");
        assert_eq!(out["path_mtu"], open.path_mtu, "{protocol}: {json:#}");
        assert_eq!(out["black_hole"], false, "{protocol}: {json:#}");
        assert_eq!(out["black_hole_hop"], Value::Null);
        assert_eq!(out["black_hole_from"], Value::Null);
        // r2 reports the narrow link, once (repeats are not listed twice).
        assert_eq!(
            out["too_big"],
            serde_json::json!([{"icmp_type": 2, "icmp_code": 0, "from": open.narrow_hop, "mtu": 1280}]),
            "{protocol}: {json:#}"
        );
    }
    drop(open);

    let hole = scenarios::pmtu(true).unwrap();
    assert!(hole.ptb_dropped);
    let target = hole.target.to_string();
    for protocol in ["icmp", "udp"] {
        let json = measure(
            &hole.lab,
            &["pmtu", &target, "--max-size", "1500", "-P", protocol],
        );
        let out = outcome(&json, "pmtu");
        assert_eq!(out["path_mtu"], hole.path_mtu, "{protocol}: {json:#}");
        assert_eq!(out["black_hole"], true, "{protocol}: {json:#}");
        assert_eq!(
            out["too_big"],
            serde_json::json!([]),
            "{protocol}: {json:#}"
        );
        // r1 (hop 1) and r2 (hop 2) answer large packets with Time Exceeded; from hop 3 on,
        // r2 would have to forward them onto the 1280 link and its Packet Too Big is dropped.
        assert_eq!(out["black_hole_hop"], 3, "{protocol}: {json:#}");
        assert_eq!(
            address(&out["black_hole_from"]),
            IpAddr::V6(hole.narrow_hop)
        );
    }
}

#[test]
fn exthdr_finds_the_router_that_drops_each_configured_header() {
    lab_or_skip!();
    for drops in [
        ExtHeaderDrops {
            hop_by_hop: true,
            destination_options: false,
            fragment: true,
        },
        ExtHeaderDrops {
            hop_by_hop: false,
            destination_options: true,
            fragment: false,
        },
        ExtHeaderDrops::default(),
    ] {
        let s = scenarios::ext_headers(drops).unwrap();
        // Larger options headers carry an experimental "skip if unknown" option instead of
        // padding alone (Linux drops more than 7 bytes of padding); they must get through all
        // the same where nothing filters.
        let option_bytes = if drops == ExtHeaderDrops::default() {
            "64"
        } else {
            "8"
        };
        let json = measure(
            &s.lab,
            &[
                "exthdr",
                &s.target.to_string(),
                "--option-bytes",
                option_bytes,
            ],
        );
        let out = outcome(&json, "ext_headers");
        // r2 (hop 2) still answers hop-limited probes with Time Exceeded: its forward filter
        // drops only what it would forward, so probes die at hop 3 (the target's).
        let expected = |header: &str, dropped: bool| {
            if dropped {
                serde_json::json!({"header": header, "survived": false, "dropped_at_hop": 3,
                    "last_responder": s.dropping_hop, "icmp_error": null})
            } else {
                serde_json::json!({"header": header, "survived": true, "dropped_at_hop": null,
                    "last_responder": null, "icmp_error": null})
            }
        };
        assert_eq!(
            out["outcomes"],
            serde_json::json!([
                expected("hop_by_hop", drops.hop_by_hop),
                expected("destination_options", drops.destination_options),
                expected("fragment", drops.fragment),
            ]),
            "{drops:?}: {json:#}"
        );
    }
}

#[test]
fn without_cap_net_raw_the_measurements_say_what_is_missing() {
    lab_or_skip!();
    let path = scenarios::long_path(1).unwrap();
    let target = path.target.to_string();
    let probe = sixmap_tests::binary("sixmap-probe");
    for args in [
        vec!["traceroute", target.as_str()],
        vec!["pmtu", target.as_str()],
        vec!["exthdr", target.as_str()],
    ] {
        // Run as nobody with every capability dropped.
        let mut argv = vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            probe.to_str().unwrap(),
            "measure",
        ];
        argv.extend_from_slice(&args);
        argv.extend_from_slice(&["--json", "--lab-mode"]);
        let output = path.lab.exec_unchecked(PROBE, &argv);
        assert!(!output.status.success());
        let json: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
        let failed = outcome(&json, "failed");
        assert_eq!(failed["class"], "permission", "{json:#}");
        assert!(
            failed["message"].as_str().unwrap().contains("CAP_NET_RAW"),
            "{json:#}"
        );
    }
}
