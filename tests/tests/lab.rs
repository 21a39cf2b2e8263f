//! The lab checked by independent tools, not by our probe: Debian's ping, traceroute and
//! tracepath confirm hop counts, ICMPv6 errors and the 1280-byte MTU; a Python raw socket
//! sends extension headers. Each test builds its own lab; all are torn down on drop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::lab::impair::check_delay_band;
use sixmap_tests::lab::scenarios::{self, ExtHeaderDrops, PROBE};
use sixmap_tests::lab::{self, Lab, Topology};
use sixmap_tests::lab_or_skip;
use std::net::IpAddr;

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Hop addresses from `traceroute -n` output ("*" for a silent hop).
fn traceroute_hops(output: &str) -> Vec<String> {
    output
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn strings(addresses: &[IpAddr]) -> Vec<String> {
    addresses.iter().map(ToString::to_string).collect()
}

#[test]
fn an_eight_hop_path_is_confirmed_by_traceroute_ping_and_tracepath() {
    lab_or_skip!();
    let path = scenarios::long_path(7).unwrap();
    assert_eq!(path.hops.len(), 8);
    let lab = &path.lab;
    let target = path.target.to_string();
    let out = lab.exec(
        PROBE,
        &["traceroute", "-6", "-n", "-q", "1", "-w", "2", &target],
    );
    let out = text(&out.unwrap());
    assert_eq!(traceroute_hops(&out), strings(&path.hops), "{out}");
    let target4 = path.target_v4.to_string();
    let out = text(
        &lab.exec(
            PROBE,
            &["traceroute", "-4", "-n", "-q", "1", "-w", "2", &target4],
        )
        .unwrap(),
    );
    assert_eq!(traceroute_hops(&out), strings(&path.hops_v4), "{out}");
    // Each of the 7 routers decrements the hop limit once: 64 - 7.
    let out = text(
        &lab.exec(PROBE, &["ping", "-6", "-c", "2", "-i", "0.2", &target])
            .unwrap(),
    );
    assert!(out.contains("ttl=57"), "{out}");
    let out = text(
        &lab.exec(PROBE, &["tracepath", "-6", "-n", &target])
            .unwrap(),
    );
    assert!(out.contains("pmtu 1500 hops 8 back 8"), "{out}");
}

#[test]
fn targets_fail_the_ways_their_ground_truth_says() {
    lab_or_skip!();
    let t = scenarios::targets().unwrap();
    let lab = &t.lab;
    let ping6 = |address: String| {
        text(&lab.exec_unchecked(PROBE, &["ping", "-6", "-n", "-c", "1", "-W", "2", &address]))
    };
    let ping4 = |address: String| {
        text(&lab.exec_unchecked(PROBE, &["ping", "-4", "-n", "-c", "1", "-W", "2", &address]))
    };
    assert!(ping6(t.v6_only.to_string()).contains(" 0% packet loss"));
    assert!(ping6(t.dual_stack.0.to_string()).contains(" 0% packet loss"));
    assert!(ping4(t.dual_stack.1.to_string()).contains(" 0% packet loss"));
    assert!(ping4(t.v4_only.to_string()).contains(" 0% packet loss"));
    assert!(lab.node("v4only").interfaces[0].v4.is_some());
    // Broken v6: silence (blackhole), while IPv4 to the same host works.
    let out = ping6(t.broken_v6.0.to_string());
    assert!(
        out.contains("100% packet loss") && !out.contains("nreachable"),
        "{out}"
    );
    assert!(ping4(t.broken_v6.1.to_string()).contains(" 0% packet loss"));
    // ICMPv6 errors from r2, each with its code. Address unreachable comes only after
    // neighbour discovery gave up (about 3 s).
    let r2 = t.r2.to_string();
    let out = text(&lab.exec_unchecked(
        PROBE,
        &[
            "ping",
            "-6",
            "-n",
            "-c",
            "1",
            "-W",
            "6",
            &t.address_unreachable.to_string(),
        ],
    ));
    assert!(
        out.contains(&format!("From {r2}")) && out.contains("Address unreachable"),
        "{out}"
    );
    let out = ping6(t.admin_prohibited.to_string());
    assert!(
        out.contains(&format!("From {r2}")) && out.contains("Administratively prohibited"),
        "{out}"
    );
    let out = ping6(t.no_route.to_string());
    assert!(
        out.contains(&format!("From {r2}")) && out.contains("No route"),
        "{out}"
    );
}

#[test]
fn the_narrow_link_is_1280_and_a_dropped_packet_too_big_makes_a_black_hole() {
    lab_or_skip!();
    let open = scenarios::pmtu(false).unwrap();
    let target = open.target.to_string();
    let out = text(
        &open
            .lab
            .exec(PROBE, &["tracepath", "-6", "-n", &target])
            .unwrap(),
    );
    assert!(out.contains("pmtu 1280"), "{out}");
    assert!(out.contains(&open.narrow_hop.to_string()), "{out}");
    // Don't fragment, 1400-byte payload: Packet Too Big comes back from r2 with MTU 1280.
    let out = text(&open.lab.exec_unchecked(
        PROBE,
        &[
            "ping", "-6", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", &target,
        ],
    ));
    // tracepath above already learned the MTU from r2's Packet Too Big, so ping may report it
    // from the route cache ("mtu: 1280") or from a new Packet Too Big ("mtu=1280").
    assert!(
        out.contains("mtu=1280") || out.contains("mtu: 1280"),
        "{out}"
    );
    drop(open);

    let hole = scenarios::pmtu(true).unwrap();
    let target = hole.target.to_string();
    let small = text(&hole.lab.exec_unchecked(
        PROBE,
        &[
            "ping", "-6", "-n", "-c", "1", "-W", "2", "-s", "1200", &target,
        ],
    ));
    assert!(small.contains(" 0% packet loss"), "{small}");
    let big = text(&hole.lab.exec_unchecked(
        PROBE,
        &[
            "ping", "-6", "-n", "-c", "2", "-W", "2", "-M", "do", "-s", "1400", &target,
        ],
    ));
    assert!(big.contains("100% packet loss"), "{big}");
    assert!(
        !big.contains("mtu=1280") && !big.contains("mtu: 1280"),
        "{big}"
    );
}

/// Sends one UDP datagram from the probe with the given IPv6 extension header (by socket
/// option, Python's standard library) and reports whether the target received it.
fn udp_with_header(lab: &Lab, target: &str, header: &str) -> bool {
    let listener = lab
        .command("target", "python3")
        .args([
            "-c",
            "import socket,sys\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n\
             s.bind(('::',9999))\ns.settimeout(3)\n\
             try:\n  s.recvfrom(9000); print('got')\nexcept socket.timeout:\n  print('none')",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // A PadN option fills the 8-byte header; a 3000-byte payload over a 1500 MTU fragments.
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\nh='{header}'\n\
         pad=bytes([0,0,1,4,0,0,0,0])\n\
         if h=='hbh': s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, pad)\n\
         if h=='dst': s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, pad)\n\
         size = 3000 if h=='frag' else 100\n\
         s.sendto(b'x'*size, ('{target}', 9999))"
    );
    lab.exec(PROBE, &["python3", "-c", &script]).unwrap();
    let output = listener.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).contains("got")
}

#[test]
fn the_filtering_router_drops_exactly_the_configured_extension_headers() {
    lab_or_skip!();
    let drops = ExtHeaderDrops {
        hop_by_hop: true,
        destination_options: false,
        fragment: true,
    };
    let s = scenarios::ext_headers(drops).unwrap();
    let target = s.target.to_string();
    assert!(udp_with_header(&s.lab, &target, "none"));
    assert!(!udp_with_header(&s.lab, &target, "hbh"));
    assert!(udp_with_header(&s.lab, &target, "dst"));
    assert!(!udp_with_header(&s.lab, &target, "frag"));
}

#[test]
fn operators_have_their_own_probes_and_paths() {
    lab_or_skip!();
    let n = scenarios::networks().unwrap();
    assert_eq!(n.probes.len(), 5);
    let countries: std::collections::BTreeSet<_> = n.probes.iter().map(|p| p.country).collect();
    assert_eq!(countries.len(), 2);
    let target = n.target.to_string();
    for probe in &n.probes {
        let out = text(
            &n.lab
                .exec(
                    &probe.node,
                    &["traceroute", "-6", "-n", "-q", "1", "-w", "2", &target],
                )
                .unwrap(),
        );
        let expected = n
            .lab
            .expected_hops(&probe.node, "target", IpAddr::V6(n.target));
        assert_eq!(expected.len(), 3, "operator router, core, target");
        assert_eq!(traceroute_hops(&out), strings(&expected), "{out}");
    }
}

#[test]
fn labs_leave_nothing_behind_even_after_a_panic() {
    lab_or_skip!();
    let topology = Topology::new()
        .host("a")
        .router("r")
        .host("b")
        .link("a", "r")
        .link("r", "b");
    let names: Vec<String> = {
        let lab = Lab::build(&topology).unwrap();
        lab.nodes().map(|n| n.netns.clone()).collect()
    };
    let left = lab::namespaces(lab::NAMESPACE_PREFIX);
    assert!(names.iter().all(|n| !left.contains(n)), "{left:?}");
    let names = std::thread::spawn(move || {
        let lab = Lab::build(&topology).unwrap();
        let names: Vec<String> = lab.nodes().map(|n| n.netns.clone()).collect();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _lab = lab;
            panic!("a test failing with a lab up");
        }))
        .unwrap_err();
        names
    })
    .join()
    .unwrap();
    let left = lab::namespaces(lab::NAMESPACE_PREFIX);
    assert!(names.iter().all(|n| !left.contains(n)), "{left:?}");
    // No veth of ours is left in the root namespace either.
    let links =
        String::from_utf8_lossy(&lab::run("ip", &["-o", "link"]).unwrap().stdout).into_owned();
    assert!(!links.contains("sxl-"), "{links}");
}

#[test]
fn bad_topologies_are_refused_with_the_reason() {
    let err = Lab::build(&Topology::new().host("a").link("a", "ghost")).unwrap_err();
    assert!(err.to_string().contains("unknown node ghost"), "{err}");
    let err = Lab::build(&Topology::new().host("a b"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"a b\""), "{err}");
    let err = Lab::build(&Topology::new().host("a").host("b").link_with(
        "a",
        "b",
        Some(1000),
        false,
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("1280"), "{err}");
}

#[test]
fn the_impaired_link_delays_and_drops_as_configured() {
    lab_or_skip!();
    let binary = sixmap_tests::binary("sixmap-lab");
    // Tolerance: the forwarder releases late by its sleep granularity, and the machine may be
    // busy with other tests: RTTs within [2 x delay, 2 x delay + 8 ms] as `check_delay_band`
    // reads it.
    let s = scenarios::impaired(&binary, 25.0, 0.0, 0.0).unwrap();
    let target = s.target.to_string();
    let out = text(
        &s.lab
            .exec(
                PROBE,
                &["ping", "-6", "-n", "-c", "10", "-i", "0.1", &target],
            )
            .unwrap(),
    );
    let rtts: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(rtts.len(), 10, "{out}");
    if let Err(e) = check_delay_band(&rtts, 25.0, 8.0) {
        panic!("{e}: {out}");
    }
    // The impairing router is one hop, and the only one.
    assert!(out.contains("ttl=63"), "{out}");
    let out = text(
        &s.lab
            .exec(
                PROBE,
                &["traceroute", "-6", "-n", "-q", "1", "-w", "2", &target],
            )
            .unwrap(),
    );
    assert_eq!(
        traceroute_hops(&out),
        vec![s.impairing_hop.to_string(), target.clone()],
        "{out}"
    );
    let out = text(
        &s.lab
            .exec(PROBE, &["tracepath", "-6", "-n", &target])
            .unwrap(),
    );
    assert!(out.contains("hops 2"), "{out}");
    let target4 = s.target_v4.to_string();
    let out = text(
        &s.lab
            .exec(
                PROBE,
                &["ping", "-4", "-n", "-c", "3", "-i", "0.1", &target4],
            )
            .unwrap(),
    );
    assert!(
        out.contains("ttl=63") && out.contains(" 0% packet loss"),
        "{out}"
    );
    drop(s);

    // 10 % loss each way: about 19 % of round trips lost. 300 pings: 4 standard deviations
    // either side is 10..28 %.
    let s = scenarios::impaired(&binary, 1.0, 0.0, 10.0).unwrap();
    let target = s.target.to_string();
    let out = text(&s.lab.exec_unchecked(
        PROBE,
        &[
            "ping", "-6", "-n", "-q", "-c", "300", "-i", "0.01", "-W", "1", &target,
        ],
    ));
    let loss: f64 = out
        .split(" received, ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no loss figure: {out}"));
    assert!((10.0..=28.0).contains(&loss), "loss {loss}%: {out}");
}
