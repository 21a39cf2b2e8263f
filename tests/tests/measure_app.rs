//! The application-level measurements (dns, tcp, dualstack) and IPv4 ping, run as
//! `sixmap-probe measure … --json --lab-mode` inside the lab's probe namespace and checked
//! exactly against the scenarios' ground truth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use sixmap_tests::lab::scenarios::{self, PROBE, names};
use sixmap_tests::lab::{Lab, services};
use sixmap_tests::lab_or_skip;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

/// Runs `sixmap-probe measure ARGS --json --lab-mode` in the probe namespace and returns the
/// JSON `outcome` (printed also when the measurement failed to run).
fn measure(lab: &Lab, args: &[&str]) -> Value {
    let binary = sixmap_tests::binary("sixmap-probe");
    let binary = binary.to_str().unwrap();
    let mut argv = vec![binary, "measure"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--json", "--lab-mode"]);
    let started = Instant::now();
    let output = lab.exec_unchecked(PROBE, &argv);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("measure {args:?}: no JSON ({e}): {stdout}{stderr}"));
    eprintln!(
        "measure {} -> {} in {:?}",
        args.join(" "),
        json["outcome"],
        started.elapsed()
    );
    json["outcome"].clone()
}

/// Makes the probe namespace's system resolver the lab's dnsmasq: `ip netns exec` bind-mounts
/// the files of /etc/netns/NAME over /etc. Removed on drop.
struct LabResolver {
    dir: PathBuf,
}

impl LabResolver {
    fn install(lab: &Lab, server: IpAddr) -> Self {
        let dir = PathBuf::from("/etc/netns").join(&lab.node(PROBE).netns);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {server}\noptions timeout:1 attempts:2\n"),
        )
        .unwrap();
        // No mDNS module in front of DNS: `.lab` names go straight to the lab server.
        std::fs::write(dir.join("nsswitch.conf"), "hosts: files dns\n").unwrap();
        Self { dir }
    }
}

impl Drop for LabResolver {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sorted_data(outcome: &Value) -> Vec<String> {
    let mut data: Vec<String> = outcome["response"]["answers"]
        .as_array()
        .unwrap_or_else(|| panic!("no answers in {outcome}"))
        .iter()
        .map(|a| a["data"].as_str().unwrap().to_owned())
        .collect();
    data.sort();
    data
}

const FLAG_AA: u64 = 0x0400;

#[test]
fn dns_tcp_and_dualstack_match_the_services_truth() {
    lab_or_skip!();
    let mut s = scenarios::with_services().unwrap();
    let t = &s.targets;
    let (dual_v6, dual_v4) = t.dual_stack;
    let (broken_v6, broken_v4) = t.broken_v6;
    let (dns_v6, dns_v4) = s.dns;
    let truth: [(&str, Vec<IpAddr>, Vec<IpAddr>); 4] = [
        (names::V6_ONLY, vec![t.v6_only.into()], vec![]),
        (
            names::DUAL_STACK,
            vec![dual_v6.into()],
            vec![dual_v4.into()],
        ),
        (names::V4_ONLY, vec![], vec![t.v4_only.into()]),
        (
            names::BROKEN_V6,
            vec![broken_v6.into()],
            vec![broken_v4.into()],
        ),
    ];
    let (v6_only, v4_only, r2) = (t.v6_only, t.v4_only, t.r2);
    let (admin_prohibited, no_route, address_unreachable) =
        (t.admin_prohibited, t.no_route, t.address_unreachable);
    // The v4-only and broken-v6 hosts serve HTTP too, so a tcp dual-stack leg can connect.
    let dir = s.targets.lab.scratch_dir().to_owned();
    for node in ["v4only", "broken"] {
        let node_dir = dir.join(node);
        std::fs::create_dir_all(&node_dir).unwrap();
        services::start_web(&mut s.targets.lab, node, &s.ca, &node_dir, &s.body).unwrap();
    }
    let lab = &s.targets.lab;

    // --- dns: every name, both types, both transports, exact answers.
    let server = dns_v6.to_string();
    for (name, aaaa, a) in &truth {
        for (qtype, expected) in [("AAAA", aaaa), ("A", a)] {
            for tcp in [false, true] {
                let mut args = vec!["dns", &server, name, "-t", qtype];
                if tcp {
                    args.push("--tcp");
                }
                let outcome = measure(lab, &args);
                assert_eq!(outcome["kind"], "dns", "{outcome}");
                assert_eq!(outcome["transport_used"], if tcp { "tcp" } else { "udp" });
                assert_eq!(outcome["failure"], Value::Null, "{outcome}");
                assert!(outcome["rtt_ns"].as_u64().unwrap() > 0);
                let response = &outcome["response"];
                assert_eq!(response["rcode"], 0, "{name} {qtype}: {outcome}");
                let want: Vec<String> = expected.iter().map(ToString::to_string).collect();
                assert_eq!(sorted_data(&outcome), want, "{name} {qtype}");
                for answer in response["answers"].as_array().unwrap() {
                    assert_eq!(answer["name"], *name);
                    assert_eq!(answer["record_type"], if qtype == "A" { 1 } else { 28 });
                    assert_eq!(answer["ttl"], 0);
                }
                // dnsmasq: authoritative for its records, not for "no data".
                let aa = response["flags"].as_u64().unwrap() & FLAG_AA != 0;
                assert_eq!(aa, !expected.is_empty(), "{name} {qtype}: {outcome}");
            }
        }
    }
    // Over IPv4 transport too, and without recursion desired.
    let outcome = measure(
        lab,
        &[
            "dns",
            &dns_v4.to_string(),
            names::DUAL_STACK,
            "-t",
            "A",
            "--no-recurse",
        ],
    );
    assert_eq!(sorted_data(&outcome), [dual_v4.to_string()]);
    assert_eq!(outcome["response"]["flags"].as_u64().unwrap() & 0x0100, 0);
    // NXDOMAIN for a name the server does not know, over both transports.
    for tcp in [false, true] {
        let mut args = vec!["dns", &server, "missing.lab", "-t", "AAAA"];
        if tcp {
            args.push("--tcp");
        }
        let outcome = measure(lab, &args);
        assert_eq!(outcome["response"]["rcode"], 3, "{outcome}");
        assert_eq!(outcome["response"]["answers"], serde_json::json!([]));
    }
    // No DNS server on the v6-only host: port unreachable (UDP) and RST (TCP) are refusals.
    for tcp in [false, true] {
        let v6_only = v6_only.to_string();
        let mut args = vec!["dns", &v6_only, names::DUAL_STACK, "--timeout-ms", "3000"];
        if tcp {
            args.push("--tcp");
        }
        let outcome = measure(lab, &args);
        assert_eq!(outcome["response"], Value::Null, "{outcome}");
        let failure = outcome["failure"].as_str().unwrap();
        assert!(failure.starts_with("refused"), "{failure}");
    }

    // --- tcp: connected, refused, filtered, and ICMPv6 errors from r2.
    for address in [IpAddr::from(dual_v6), IpAddr::from(dual_v4)] {
        let address = address.to_string();
        let outcome = measure(lab, &["tcp", &address, "80"]);
        assert_eq!(outcome["outcome"], "connected", "{outcome}");
        assert!(outcome["connect_ns"].as_u64().unwrap() > 0);
        let outcome = measure(lab, &["tcp", &address, &s.closed_port.to_string()]);
        assert_eq!(outcome["outcome"], "refused", "{outcome}");
        assert_eq!(outcome["icmp_error"], Value::Null);
        let started = Instant::now();
        let outcome = measure(
            lab,
            &[
                "tcp",
                &address,
                &s.filtered_port.to_string(),
                "--timeout-ms",
                "1500",
            ],
        );
        assert_eq!(outcome["outcome"], "timeout", "{outcome}");
        assert_eq!(outcome["connect_ns"], Value::Null);
        assert!(started.elapsed().as_millis() < 3000);
    }
    let outcome = measure(lab, &["tcp", &v4_only.to_string(), "80"]);
    assert_eq!(outcome["outcome"], "connected", "{outcome}");
    for (address, code, timeout) in [
        (admin_prohibited, 1, "2000"),
        (no_route, 0, "2000"),
        // Only after neighbour discovery gave up (about 3 s).
        (address_unreachable, 3, "8000"),
    ] {
        let outcome = measure(
            lab,
            &["tcp", &address.to_string(), "80", "--timeout-ms", timeout],
        );
        assert_eq!(outcome["outcome"], "unreachable", "{address}: {outcome}");
        assert_eq!(
            outcome["icmp_error"],
            serde_json::json!({"icmp_type": 1, "icmp_code": code, "from": r2, "mtu": null}),
            "{address}"
        );
    }

    // --- dualstack: the system resolver is the lab's dnsmasq.
    let _resolver = LabResolver::install(lab, dns_v6.into());
    let expectations = [
        (names::V6_ONLY, "v6"),
        (names::V4_ONLY, "v4"),
        (names::DUAL_STACK, "v6"),
        (names::BROKEN_V6, "v4"),
    ];
    for inner in ["tcp", "ping"] {
        for (name, winner) in expectations {
            let (_, aaaa, a) = truth.iter().find(|(n, _, _)| *n == name).unwrap();
            let started = Instant::now();
            let outcome = measure(
                lab,
                &["dualstack", name, "--inner", inner, "--timeout-ms", "2500"],
            );
            assert_eq!(outcome["kind"], "dual_stack", "{outcome}");
            assert_eq!(
                outcome["happy_eyeballs_choice"], winner,
                "{name} {inner}: {outcome}"
            );
            assert!(started.elapsed().as_millis() < 4000, "{name} {inner}");
            for (leg, addresses, works) in [
                (
                    &outcome["v6"],
                    aaaa,
                    winner == "v6" || name == names::DUAL_STACK,
                ),
                (
                    &outcome["v4"],
                    a,
                    winner == "v4" || name == names::DUAL_STACK,
                ),
            ] {
                let inner_outcome = &leg["outcome"];
                match addresses.first() {
                    None => {
                        assert_eq!(leg["destination"], Value::Null);
                        assert_eq!(inner_outcome["kind"], "failed");
                        assert_eq!(inner_outcome["class"], "resolution", "{leg}");
                    }
                    Some(address) => {
                        assert_eq!(leg["destination"], address.to_string());
                        assert!(leg["source"].is_string(), "{leg}");
                        assert_eq!(inner_outcome["kind"], inner, "{leg}");
                        let worked = match inner {
                            "tcp" => inner_outcome["outcome"] == "connected",
                            _ => inner_outcome["received"].as_u64().unwrap() > 0,
                        };
                        assert_eq!(worked, works, "{name} {inner}: {leg}");
                        if name == names::BROKEN_V6 && inner == "tcp" && address.is_ipv6() {
                            assert_eq!(inner_outcome["outcome"], "timeout", "{leg}");
                        }
                    }
                }
            }
            // probe - r1 - r2 - host: replies arrive with 64 - 2, three hops.
            let hops = |works: bool| {
                if inner == "ping" && works {
                    serde_json::json!(3)
                } else {
                    Value::Null
                }
            };
            let v6_works = !aaaa.is_empty() && name != names::BROKEN_V6;
            assert_eq!(outcome["v6_hops"], hops(v6_works), "{name} {inner}");
            assert_eq!(outcome["v4_hops"], hops(!a.is_empty()), "{name} {inner}");
        }
    }
    // A name without any address is a resolution failure of the whole measurement.
    let outcome = measure(lab, &["dualstack", "missing.lab", "--timeout-ms", "2500"]);
    assert_eq!(outcome["kind"], "failed", "{outcome}");
    assert_eq!(outcome["class"], "resolution", "{outcome}");
}

#[test]
fn ipv4_ttl_and_icmp_errors_on_a_long_path() {
    lab_or_skip!();
    let path = scenarios::long_path(7).unwrap();
    let lab = &path.lab;
    for socket in ["datagram", "raw"] {
        for target in [IpAddr::from(path.target_v4), IpAddr::from(path.target)] {
            let target = target.to_string();
            let outcome = measure(
                lab,
                &[
                    "ping",
                    &target,
                    "-c",
                    "3",
                    "-i",
                    "50",
                    "--icmp-socket",
                    socket,
                ],
            );
            assert_eq!(outcome["kind"], "ping", "{outcome}");
            assert_eq!(
                (outcome["sent"].as_u64(), outcome["received"].as_u64()),
                (Some(3), Some(3)),
                "{outcome}"
            );
            assert_eq!(outcome["socket_kind"], socket);
            assert_eq!(outcome["timestamp_source"], "kernel");
            for reply in outcome["replies"].as_array().unwrap() {
                assert_eq!(reply["from"], target);
                // Seven routers each take one off the initial 64.
                assert_eq!(reply["hop_limit"], 57, "{reply}");
                assert_eq!(reply["duplicate"], false);
            }
        }
    }
    // ICMP errors over IPv4: r7, the last router, has an "unreachable" and a "prohibit" route
    // into the target's subnet; its answer comes from its address facing the probe. One
    // request per run: IPv4 route errors are rate limited per peer (`net.ipv4.route.
    // error_burst`, 5 then 1/s, not per namespace), so four runs stay within the burst.
    let r7 = path.hops_v4[6];
    for (route, address, code) in [
        ("unreachable", "10.0.8.77", 1),
        ("prohibit", "10.0.8.78", 13),
    ] {
        lab.exec(
            "r7",
            &["ip", "route", "add", route, &format!("{address}/32")],
        )
        .unwrap();
        for socket in ["datagram", "raw"] {
            let outcome = measure(
                lab,
                &[
                    "ping",
                    address,
                    "-c",
                    "1",
                    "--timeout-ms",
                    "500",
                    "--icmp-socket",
                    socket,
                ],
            );
            assert_eq!(outcome["received"], 0, "{outcome}");
            let error =
                serde_json::json!({"icmp_type": 3, "icmp_code": code, "from": r7, "mtu": null});
            assert_eq!(
                outcome["errors"],
                serde_json::json!([error]),
                "{socket}: {outcome}"
            );
        }
    }
    // TCP over IPv4 meets the same errors, from r6 (its own per-peer error budget): the
    // connect fails at once and the ICMP error is read from the socket's error queue.
    let r6 = path.hops_v4[5];
    for (route, address, code) in [
        ("unreachable", "10.0.8.87", 1),
        ("prohibit", "10.0.8.88", 13),
    ] {
        lab.exec(
            "r6",
            &["ip", "route", "add", route, &format!("{address}/32")],
        )
        .unwrap();
        let outcome = measure(lab, &["tcp", address, "80", "--timeout-ms", "2000"]);
        assert_eq!(outcome["outcome"], "unreachable", "{outcome}");
        assert_eq!(
            outcome["icmp_error"],
            serde_json::json!({"icmp_type": 3, "icmp_code": code, "from": r6, "mtu": null}),
        );
    }
}
