//! The access lab (`sixmap_tests::lab::nat64`): NAT64/DNS64, 464XLAT, dual-stack and IPv4-only
//! hosts. First checked by independent tools (dig, ping, curl, the kernel's interface
//! counters), then the probe's self-test, dual-stack and DNS measurements run on each host.
//!
//! The probe's self-test reads the namespace's own `/proc/net`, `/sys` and resolver, so it runs
//! in a process started inside the namespace: this test binary itself, running its ignored
//! `self_test_in_this_namespace` entry, which prints the self-test as JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::campaign::presence::{Answer, TYPE_A, TYPE_AAAA, answer};
use sixmap_collector::tags::{TagInputs, compute};
use sixmap_shared::UnixMicros;
use sixmap_shared::health::SelfTest;
use sixmap_shared::measurement::Outcome;
use sixmap_shared::nat64::Nat64Prefix;
use sixmap_tests::lab::nat64::{
    self, AccessLab, CLAT_DEVICE, CLAT_HOST_V4, DUAL, NAT64_PREFIX, V4_ONLY, V4_SERVICE, V6_ONLY,
    XLAT, names,
};
use sixmap_tests::lab_or_skip;
use std::net::Ipv6Addr;

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `dig +short TYPE name` in `node`, through the node's resolver; the answers, sorted.
fn dig(lab: &AccessLab, node: &str, rtype: &str, name: &str) -> Vec<String> {
    let output = lab
        .lab
        .exec(node, &["dig", "+short", "+tries=2", "+time=2", rtype, name])
        .unwrap();
    let mut answers: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    answers.sort();
    answers
}

/// `curl` of `url` from `node` with `family` ("-4", "-6" or ""): the body, or the error text.
fn curl(lab: &AccessLab, node: &str, family: &str, url: &str) -> Result<String, String> {
    let mut argv = vec!["curl", "-sS", "--max-time", "5"];
    if !family.is_empty() {
        argv.push(family);
    }
    argv.push(url);
    let output = lab.lab.exec_unchecked(node, &argv);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(text(&output))
    }
}

fn ping(lab: &AccessLab, node: &str, target: &str) -> Result<String, String> {
    let output = lab
        .lab
        .exec_unchecked(node, &["ping", "-c", "1", "-W", "2", target]);
    if output.status.success() {
        Ok(text(&output))
    } else {
        Err(text(&output))
    }
}

/// Packets the kernel sent into and received from a TUN device (`/sys/class/net/*/statistics`).
fn device_packets(lab: &AccessLab, node: &str, device: &str) -> (u64, u64) {
    let read = |counter: &str| -> u64 {
        let path = format!("/sys/class/net/{device}/statistics/{counter}");
        let output = lab.lab.exec(node, &["cat", &path]).unwrap();
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    };
    (read("tx_packets"), read("rx_packets"))
}

#[test]
fn nat64_and_dns64_are_confirmed_by_dig_ping_and_curl() {
    lab_or_skip!();
    let lab = nat64::access_lab().unwrap();
    let synthesised = lab.synthesised(V4_SERVICE);
    assert_eq!(synthesised.to_string(), "64:ff9b::6440:102");

    // DNS64 makes up the AAAA of an IPv4-only name, keeps a real one, and answers RFC 7050's
    // discovery name with the prefix; the plain resolver of the dual-stack host does neither.
    for host in [V6_ONLY, XLAT] {
        assert_eq!(
            dig(&lab, host, "AAAA", names::V4_ONLY),
            [synthesised.to_string()],
            "{host}"
        );
        assert_eq!(
            dig(&lab, host, "AAAA", names::DUAL_STACK),
            [lab.server_v6.to_string()],
            "{host}"
        );
        assert_eq!(
            dig(&lab, host, "AAAA", names::IPV4ONLY_ARPA),
            ["64:ff9b::c000:aa", "64:ff9b::c000:ab"],
            "{host}"
        );
        assert_eq!(
            dig(&lab, host, "A", names::V4_ONLY),
            [V4_SERVICE.to_string()],
            "{host}"
        );
    }
    assert!(dig(&lab, DUAL, "AAAA", names::V4_ONLY).is_empty());
    assert_eq!(
        dig(&lab, DUAL, "A", names::IPV4ONLY_ARPA),
        ["192.0.0.170", "192.0.0.171"]
    );

    // The IPv6-only host reaches the IPv4-only service through the PLAT, by the synthesised
    // address and by name, and has no IPv4 of its own.
    let out = ping(&lab, V6_ONLY, &synthesised.to_string()).unwrap();
    assert!(out.contains("1 received"), "{out}");
    let err = ping(&lab, V6_ONLY, &V4_SERVICE.to_string()).unwrap_err();
    assert!(err.contains("unreachable"), "{err}");
    let url = format!("http://{}/", names::V4_ONLY);
    assert_eq!(curl(&lab, V6_ONLY, "", &url).unwrap(), lab.body);
    assert_eq!(
        curl(&lab, V6_ONLY, "-6", &format!("http://[{synthesised}]/")).unwrap(),
        lab.body
    );
    // Without DNS64 the name has no AAAA, and the dual-stack host reaches it over IPv4.
    assert_eq!(curl(&lab, DUAL, "-4", &url).unwrap(), lab.body);
    assert!(curl(&lab, DUAL, "-6", &url).is_err());

    // NAT44 behind the PLAT: the translated flows left towards the server masqueraded (the
    // rule's counter, read back with nft).
    let rules = text(
        &lab.lab
            .exec(
                nat64::ISP,
                &["nft", "list", "table", "ip", nat64::NAT_TABLE],
            )
            .unwrap(),
    );
    let packets: u64 = rules
        .split("counter packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {rules}"));
    assert!(packets > 0, "{rules}");
}

#[test]
fn the_464xlat_host_reaches_ipv4_literals_through_its_clat() {
    lab_or_skip!();
    let lab = nat64::access_lab().unwrap();
    // The IPv4 default route goes into the CLAT, which holds the host's only IPv4 address.
    let route = text(
        &lab.lab
            .exec(XLAT, &["ip", "-4", "route", "get", &V4_SERVICE.to_string()])
            .unwrap(),
    );
    assert!(
        route.contains(&format!("dev {CLAT_DEVICE}")) && route.contains(&CLAT_HOST_V4.to_string()),
        "{route}"
    );
    // An IPv4 literal, the case DNS64 cannot help: curl and ping work, and the packets went
    // through the CLAT device (the kernel's counters of the TUN device move).
    let (tx_before, rx_before) = device_packets(&lab, XLAT, CLAT_DEVICE);
    let literal = format!("http://{V4_SERVICE}/");
    assert_eq!(curl(&lab, XLAT, "-4", &literal).unwrap(), lab.body);
    let out = ping(&lab, XLAT, &V4_SERVICE.to_string()).unwrap();
    assert!(out.contains("1 received"), "{out}");
    let (tx_after, rx_after) = device_packets(&lab, XLAT, CLAT_DEVICE);
    assert!(tx_after > tx_before && rx_after > rx_before);
    // On the wire the host sends only IPv6: its link has no IPv4 address at all.
    let link = lab.lab.node(XLAT).interfaces[0].name.clone();
    let addresses = text(
        &lab.lab
            .exec(XLAT, &["ip", "-4", "addr", "show", "dev", &link])
            .unwrap(),
    );
    assert!(!addresses.contains("inet "), "{addresses}");
    // Without its CLAT the IPv6-only host cannot use the same literal.
    assert!(curl(&lab, V6_ONLY, "-4", &literal).is_err());
    // IPv6 stays native: the server's own IPv6 address is reached without translation.
    assert_eq!(
        curl(&lab, XLAT, "-6", &format!("http://[{}]/", lab.server_v6)).unwrap(),
        lab.body
    );
}

#[test]
fn the_dual_stack_and_ipv4_only_hosts_are_what_they_claim() {
    lab_or_skip!();
    let lab = nat64::access_lab().unwrap();
    let v6 = format!("http://[{}]/", lab.server_v6);
    let v4 = format!("http://{V4_SERVICE}/");
    assert_eq!(curl(&lab, DUAL, "-6", &v6).unwrap(), lab.body);
    assert_eq!(curl(&lab, DUAL, "-4", &v4).unwrap(), lab.body);
    assert_eq!(curl(&lab, V4_ONLY, "-4", &v4).unwrap(), lab.body);
    assert!(curl(&lab, V4_ONLY, "-6", &v6).is_err());
    let link = lab.lab.node(V4_ONLY).interfaces[0].name.clone();
    let addresses = text(
        &lab.lab
            .exec(V4_ONLY, &["ip", "-6", "addr", "show", "dev", &link])
            .unwrap(),
    );
    assert!(!addresses.contains("inet6"), "{addresses}");
    let routes = text(
        &lab.lab
            .exec(V4_ONLY, &["ip", "-6", "route", "show", "default"])
            .unwrap(),
    );
    assert!(routes.trim().is_empty(), "{routes}");
    // Its resolver (dnsmasq over IPv4) gives the real AAAA, which the host cannot use.
    assert_eq!(
        dig(&lab, V4_ONLY, "AAAA", names::DUAL_STACK),
        [lab.server_v6.to_string()]
    );
}

/// Run inside a lab namespace by [`self_test_of`]: the probe's self-test of this host, as one
/// `SELFTEST <json>` line; run three times in one process, as the daemon does, with one line
/// `NAT64QUERIES <n>`: the ipv4only.arpa queries sent in all (RFC 7050 cache).
#[test]
#[ignore = "run inside a lab namespace by the access tests"]
fn self_test_in_this_namespace() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = || {
        runtime.block_on(sixmap_probe::selftest::run(
            names::V4_ONLY,
            None,
            UnixMicros(1),
        ))
    };
    let test = run();
    for _ in 0..2 {
        // The cached prefix is the one discovered.
        assert_eq!(run().nat64_prefix, test.nat64_prefix);
    }
    println!("SELFTEST {}", serde_json::to_string(&test).unwrap());
    println!(
        "NAT64QUERIES {}",
        sixmap_probe::nat64_cache::shared().queries()
    );
}

/// The probe's self-test as it runs on `node`.
fn self_test_of(lab: &AccessLab, node: &str) -> SelfTest {
    let exe = std::env::current_exe().unwrap();
    let output = lab
        .lab
        .exec(
            node,
            &[
                exe.to_str().unwrap(),
                "--exact",
                "self_test_in_this_namespace",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ],
        )
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    let line = out
        .lines()
        .find_map(|l| l.split_once("SELFTEST ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no self-test from {node}: {}", text(&output)));
    // Three self-tests, one query: the answer is kept for its TTL on an unchanged network.
    let queries = out
        .lines()
        .find_map(|l| l.strip_prefix("NAT64QUERIES "))
        .unwrap_or_else(|| panic!("no query count from {node}: {}", text(&output)));
    assert_eq!(
        queries, "1",
        "ipv4only.arpa queries on {node} in three self-tests"
    );
    serde_json::from_str(line).unwrap()
}

/// The collector's access tags for a self-test.
fn access_tags(test: &SelfTest) -> Vec<String> {
    let inputs = TagInputs {
        local_addresses: &[],
        self_test: Some(test),
        last_v6_success: None,
    };
    compute(&inputs, &[], UnixMicros(1))
        .into_iter()
        .map(|t| t.name.as_str().to_owned())
        .filter(|name| name.starts_with("access-") || name == "resolves-aaaa")
        .collect()
}

#[test]
fn the_probe_self_test_classifies_each_access() {
    lab_or_skip!();
    let lab = nat64::access_lab().unwrap();
    let prefix = Some(NAT64_PREFIX);

    // IPv6-only with NAT64/DNS64: an IPv6 default route and address, no IPv4 at all, the
    // prefix learned from ipv4only.arpa, and the IPv4-only name "has" an AAAA (synthesised).
    let t = self_test_of(&lab, V6_ONLY);
    assert!(t.default_route_v6 && t.global_v6_address, "{t:?}");
    assert!(!t.default_route_v4 && t.v4_addresses.is_empty(), "{t:?}");
    assert_eq!((t.nat64_prefix, t.clat), (prefix, false), "{t:?}");
    assert_eq!(t.aaaa_resolved, Some(true), "{t:?}");
    assert_eq!(access_tags(&t), ["resolves-aaaa", "access-nat64"]);

    // 464XLAT: the same, plus an IPv4 default route into the CLAT and its 192.0.0.0/29 address.
    let t = self_test_of(&lab, XLAT);
    assert!(t.default_route_v6 && t.global_v6_address, "{t:?}");
    assert!(t.default_route_v4, "{t:?}");
    assert_eq!(t.v4_addresses, [CLAT_HOST_V4], "{t:?}");
    assert_eq!((t.nat64_prefix, t.clat), (prefix, true), "{t:?}");
    assert_eq!(
        access_tags(&t),
        ["resolves-aaaa", "access-nat64", "access-464xlat"]
    );

    // Native dual-stack: both default routes, no prefix (the resolver answers ipv4only.arpa
    // with its A records only), no CLAT; the IPv4-only name has no AAAA.
    let t = self_test_of(&lab, DUAL);
    assert!(
        t.default_route_v6 && t.default_route_v4 && t.global_v6_address,
        "{t:?}"
    );
    assert_eq!(t.v4_addresses.len(), 1, "{t:?}");
    assert_eq!((t.nat64_prefix, t.clat), (None, false), "{t:?}");
    assert_eq!(t.aaaa_resolved, Some(false), "{t:?}");
    assert!(access_tags(&t).is_empty(), "{:?}", access_tags(&t));

    // IPv4-only: no IPv6 route or address.
    let t = self_test_of(&lab, V4_ONLY);
    assert!(!t.default_route_v6 && !t.global_v6_address, "{t:?}");
    assert!(t.default_route_v4, "{t:?}");
    assert_eq!(t.v6_route_interface, None, "{t:?}");
    assert_eq!((t.nat64_prefix, t.clat), (None, false), "{t:?}");
    assert_eq!(t.aaaa_resolved, Some(false), "{t:?}");
    assert!(access_tags(&t).is_empty(), "{:?}", access_tags(&t));
}

/// Runs `sixmap-probe measure ARGS --json --lab-mode` on `node`; the JSON `outcome`.
fn measure(lab: &AccessLab, node: &str, args: &[&str]) -> serde_json::Value {
    let binary = sixmap_tests::binary("sixmap-probe");
    let mut argv = vec![binary.to_str().unwrap(), "measure"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--json", "--lab-mode"]);
    let output = lab.lab.exec_unchecked(node, &argv);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "measure {args:?} on {node}: no JSON ({e}): {}",
            text(&output)
        )
    });
    json["outcome"].clone()
}

/// Whether a tcp leg connected.
fn connected(leg: &serde_json::Value) -> bool {
    leg["outcome"]["kind"] == "tcp" && leg["outcome"]["outcome"] == "connected"
}

#[test]
fn the_dual_stack_measurement_reports_what_each_access_gets() {
    lab_or_skip!();
    let lab = nat64::access_lab().unwrap();
    let synthesised = lab.synthesised(V4_SERVICE).to_string();
    let dualstack = |node: &str, name: &str| {
        let outcome = measure(
            &lab,
            node,
            &["dualstack", name, "--inner", "tcp", "--timeout-ms", "3000"],
        );
        assert_eq!(outcome["kind"], "dual_stack", "{node} {name}: {outcome}");
        outcome
    };

    // IPv6-only with NAT64: the IPv4-only service is reached over IPv6 at a synthesised
    // address, said so with its prefix; the A record is unusable (no IPv4 route).
    let o = dualstack(V6_ONLY, names::V4_ONLY);
    assert_eq!(o["v6"]["destination"], synthesised, "{o}");
    assert!(connected(&o["v6"]), "{o}");
    assert_eq!(o["v6_nat64_prefix"], serde_json::json!(NAT64_PREFIX), "{o}");
    assert_eq!(o["v4"]["destination"], V4_SERVICE.to_string(), "{o}");
    assert!(!connected(&o["v4"]), "{o}");
    assert_eq!(o["v4_via_clat"], false, "{o}");
    assert_eq!(o["happy_eyeballs_choice"], "v6", "{o}");
    // A name with its own AAAA is native IPv6 there: nothing synthesised.
    let o = dualstack(V6_ONLY, names::DUAL_STACK);
    assert_eq!(o["v6"]["destination"], lab.server_v6.to_string(), "{o}");
    assert!(connected(&o["v6"]), "{o}");
    assert_eq!(o["v6_nat64_prefix"], serde_json::Value::Null, "{o}");

    // 464XLAT: both legs work, the IPv4 one from the CLAT's address, through it.
    let o = dualstack(XLAT, names::V4_ONLY);
    assert!(connected(&o["v6"]) && connected(&o["v4"]), "{o}");
    assert_eq!(o["v6_nat64_prefix"], serde_json::json!(NAT64_PREFIX), "{o}");
    assert_eq!(o["v4"]["source"], CLAT_HOST_V4.to_string(), "{o}");
    assert_eq!(o["v4_via_clat"], true, "{o}");

    // Native dual-stack: both legs native, nothing translated.
    let o = dualstack(DUAL, names::DUAL_STACK);
    assert!(connected(&o["v6"]) && connected(&o["v4"]), "{o}");
    assert_eq!(o["v6_nat64_prefix"], serde_json::Value::Null, "{o}");
    assert_eq!(o["v4_via_clat"], false, "{o}");
    let o = dualstack(DUAL, names::V4_ONLY);
    assert_eq!(o["v6"]["outcome"]["class"], "resolution", "{o}");
    assert_eq!(o["v6_nat64_prefix"], serde_json::Value::Null, "{o}");
    assert_eq!(o["happy_eyeballs_choice"], "v4", "{o}");

    // IPv4-only: the real AAAA is unusable, IPv4 works untranslated.
    let o = dualstack(V4_ONLY, names::DUAL_STACK);
    assert!(!connected(&o["v6"]) && connected(&o["v4"]), "{o}");
    assert_eq!(o["v6_nat64_prefix"], serde_json::Value::Null, "{o}");
    assert_eq!(o["v4_via_clat"], false, "{o}");
    assert_eq!(o["happy_eyeballs_choice"], "v4", "{o}");
}

#[test]
fn dns_measurements_show_the_synthesised_aaaa_as_made_up() {
    lab_or_skip!();
    let lab = nat64::access_lab().unwrap();
    let dns = |node: &str, resolver: Ipv6Addr, name: &str, qtype: &str| {
        let json = measure(
            &lab,
            node,
            &[
                "dns",
                &resolver.to_string(),
                name,
                "-t",
                qtype,
                "--timeout-ms",
                "3000",
            ],
        );
        let outcome: Outcome = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("{node} {name} {qtype}: {e}: {json}"));
        (json, outcome)
    };
    // What the user of the IPv6-only access gets from its resolver: the AAAA DNS64 made up,
    // which the collector counts as made up, not as the name's IPv6 (campaign presence).
    let (json, outcome) = dns(V6_ONLY, lab.dns64_v6only, names::V4_ONLY, "AAAA");
    assert_eq!(
        json["response"]["answers"][0]["data"],
        lab.synthesised(V4_SERVICE).to_string(),
        "{json}"
    );
    assert!(
        matches!(answer(&outcome, TYPE_AAAA, None), Answer::MadeUp(_)),
        "{json}"
    );
    let (json, outcome) = dns(V6_ONLY, lab.dns64_v6only, names::V4_ONLY, "A");
    assert_eq!(answer(&outcome, TYPE_A, None), Answer::Records, "{json}");
    // A real AAAA through the same DNS64 is the name's own.
    let (json, outcome) = dns(V6_ONLY, lab.dns64_v6only, names::DUAL_STACK, "AAAA");
    assert_eq!(
        json["response"]["answers"][0]["data"],
        lab.server_v6.to_string(),
        "{json}"
    );
    assert_eq!(answer(&outcome, TYPE_AAAA, None), Answer::Records, "{json}");
    // The dual-stack host's plain resolver: no AAAA for the IPv4-only name.
    let (json, outcome) = dns(DUAL, lab.server_v6, names::V4_ONLY, "AAAA");
    assert_eq!(answer(&outcome, TYPE_AAAA, None), Answer::Empty, "{json}");
}

#[test]
fn a_network_specific_prefix_is_found_by_rfc_7050_discovery() {
    lab_or_skip!();
    network_specific(
        nat64::network_specific_prefix(),
        "2001:db8:64:ff9b::6440:102",
        ["2001:db8:64:ff9b::c000:aa", "2001:db8:64:ff9b::c000:ab"],
    );
}

/// A /48: tayga, unbound and the probe all split the IPv4 address around bits 64-71
/// (RFC 6052 section 2.2), where a /96-only search finds no well-known address at all.
#[test]
fn a_48_network_specific_prefix_is_found_at_its_rfc_6052_position() {
    lab_or_skip!();
    network_specific(
        nat64::short_network_specific_prefix(),
        "2001:db8:640:6440:1:200::",
        ["2001:db8:640:c000:0:aa00::", "2001:db8:640:c000:0:ab00::"],
    );
}

/// The access lab behind `prefix`, checked with dig and curl, then the probe's self-test and
/// dual-stack measurement: `synthesised` is V4_SERVICE under it, `discovery` the AAAA answers
/// for ipv4only.arpa.
fn network_specific(prefix: Nat64Prefix, synthesised: &str, discovery: [&str; 2]) {
    let lab = nat64::access_lab_with(prefix).unwrap();
    assert_eq!(lab.synthesised(V4_SERVICE).to_string(), synthesised);
    // Checked by dig and curl first: DNS64 and the PLAT use the operator's own prefix.
    assert_eq!(dig(&lab, V6_ONLY, "AAAA", names::V4_ONLY), [synthesised]);
    assert_eq!(dig(&lab, V6_ONLY, "AAAA", names::IPV4ONLY_ARPA), discovery);
    let url = format!("http://{}/", names::V4_ONLY);
    assert_eq!(curl(&lab, V6_ONLY, "-6", &url).unwrap(), lab.body);
    assert_eq!(
        curl(&lab, XLAT, "-4", &format!("http://{V4_SERVICE}/")).unwrap(),
        lab.body
    );

    // Nothing in the address says "translated": the self-test learns the prefix from
    // ipv4only.arpa, and so does the dual-stack measurement for an AAAA embedding an A answer.
    let t = self_test_of(&lab, V6_ONLY);
    assert_eq!(t.nat64_prefix, Some(prefix), "{t:?}");
    let t = self_test_of(&lab, XLAT);
    assert_eq!((t.nat64_prefix, t.clat), (Some(prefix), true));
    let o = measure(
        &lab,
        V6_ONLY,
        &[
            "dualstack",
            names::V4_ONLY,
            "--inner",
            "tcp",
            "--timeout-ms",
            "3000",
        ],
    );
    assert_eq!(o["v6"]["destination"], synthesised, "{o}");
    assert!(connected(&o["v6"]), "{o}");
    assert_eq!(o["v6_nat64_prefix"], serde_json::json!(prefix), "{o}");
    // The server's real AAAA, under no prefix, stays unflagged.
    let o = measure(
        &lab,
        V6_ONLY,
        &[
            "dualstack",
            names::DUAL_STACK,
            "--inner",
            "tcp",
            "--timeout-ms",
            "3000",
        ],
    );
    assert_eq!(o["v6_nat64_prefix"], serde_json::Value::Null, "{o}");
}
