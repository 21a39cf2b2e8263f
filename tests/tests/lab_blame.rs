//! Issue #23's must-show for fault attribution: a probe whose IPv6 breaks at three places,
//! each towards its own dual-stack target: in its ISP's network (access), in the transit
//! network, and in the destination's network (`lab::blame`); and, towards two more targets,
//! a PMTU black hole at the destination network's edge and extension headers dropped in
//! transit. The faults are first checked with independent tools (Debian's ping, traceroute
//! and tracepath: IPv4 works, IPv6 does not, and the last hop that answers is the faulty
//! router; large packets vanish where small ones pass, without a Packet Too Big; the
//! nftables counter of the header drop rises). Then the collector's dual-stack, pmtu and
//! ext_headers tasks run on a real probe: each target's result must carry the IPv6 path and
//! an attribution with the right placement and responsible network, and the country's
//! "where IPv6 breaks" figures (`/api/v1/maps/countries/XA/breaks`, the country page's
//! section) must count each under its failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sixmap_tests::lab::blame::{
    BlameLab, COLLECTOR, DEST_AS, ISP_AS, NARROW_MTU, PROBE, PathFault, TRANSIT_AS, blame,
};
use sixmap_tests::{binary, collector_command, lab_or_skip, wait_for};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const API: &str = "http://[::1]:7480";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn log_of(dir: &Path, what: &str) -> String {
    format!(
        "{what}\n--- collector:\n{}\n--- probe:\n{}",
        std::fs::read_to_string(dir.join("collector.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("probe.log")).unwrap_or_default()
    )
}

/// GET on the collector's API, with `token` if given.
fn api(lab: &BlameLab, token: Option<&str>, path: &str) -> Option<serde_json::Value> {
    let mut argv = vec!["curl".to_owned(), "-sf".to_owned()];
    if let Some(token) = token {
        argv.extend(["-H".to_owned(), format!("Authorization: Bearer {token}")]);
    }
    argv.push(format!("{API}{path}"));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = lab.lab.exec_unchecked(COLLECTOR, &argv);
    serde_json::from_slice(&out.stdout).ok()
}

/// The packets counted by the rules of an nftables table on a router (`counter packets N`),
/// in rule order.
fn nft_counters(lab: &BlameLab, fault: &PathFault, family: &str) -> Vec<u64> {
    let out = lab
        .lab
        .exec(fault.router, &["nft", "list", "table", family, fault.table])
        .unwrap();
    let listing = text(&out.stdout);
    listing
        .split("counter packets ")
        .skip(1)
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no packet count in {listing}"))
        })
        .collect()
}

/// One IPv6 ping from the probe: `size` bytes of payload, never fragmented locally (`-M do`).
fn ping6(lab: &BlameLab, target: &str, size: u32) -> bool {
    let size = size.to_string();
    lab.lab
        .exec_unchecked(
            PROBE,
            &[
                "ping", "-6", "-c", "2", "-i", "0.3", "-W", "2", "-M", "do", "-s", &size, target,
            ],
        )
        .status
        .success()
}

/// The hop addresses `traceroute -n` printed ("*" for a silent hop).
fn traceroute_hops(output: &str) -> Vec<String> {
    output
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn faults_in_the_access_in_transit_and_at_the_destination_are_attributed_to_each() {
    lab_or_skip!();
    let started = Instant::now();
    let mut lab = blame().expect("blame lab");
    let dir = lab.lab.scratch_dir().to_owned();

    // The lab first, with independent tools: IPv4 reaches every target, IPv6 none, and the
    // last router answering an IPv6 traceroute is the one dropping it.
    for t in &lab.targets {
        let v4 = lab.lab.node(t.node).v4().unwrap().to_string();
        let ok = lab
            .lab
            .exec_unchecked(PROBE, &["ping", "-4", "-c", "1", "-W", "2", &v4]);
        assert!(ok.status.success(), "{}: IPv4 {}", t.node, text(&ok.stdout));
        let v6 = t.v6.to_string();
        let broken = lab
            .lab
            .exec_unchecked(PROBE, &["ping", "-6", "-c", "1", "-W", "1", &v6]);
        assert!(!broken.status.success(), "{}: IPv6 works", t.node);
        let out = lab.lab.exec_unchecked(
            PROBE,
            &[
                "traceroute",
                "-6",
                "-n",
                "-q",
                "1",
                "-w",
                "1",
                "-m",
                "5",
                &v6,
            ],
        );
        let hops = traceroute_hops(&text(&out.stdout));
        let last = hops.iter().rposition(|h| h != "*").map(|i| hops[i].clone());
        let expected = lab
            .lab
            .expected_hops(PROBE, t.node, std::net::IpAddr::V6(t.v6));
        let router = lab
            .lab
            .path(PROBE, t.node)
            .iter()
            .position(|n| n == t.router)
            .unwrap();
        assert_eq!(
            last,
            Some(expected[router].to_string()),
            "{}: {}",
            t.node,
            text(&out.stdout)
        );
    }

    // The PMTU black hole: packets that fit the narrow link pass, larger ones vanish with no
    // Packet Too Big (dedge's counter of dropped ones rises), and tracepath never learns the
    // narrow MTU: the last router it hears with full-size packets is dedge.
    let hole = &lab.pmtu;
    let target = hole.v6.to_string();
    assert!(
        ping6(&lab, &target, NARROW_MTU - 48),
        "{}: a packet of the narrow link's MTU must pass",
        hole.node
    );
    let dropped_before = nft_counters(&lab, hole, "inet")[0];
    assert!(
        !ping6(&lab, &target, 1400),
        "{}: large packets must vanish",
        hole.node
    );
    let dropped = nft_counters(&lab, hole, "inet")[0];
    assert!(
        dropped > dropped_before,
        "{}: no Packet Too Big dropped ({dropped_before} -> {dropped})",
        hole.node
    );
    let out = lab
        .lab
        .exec_unchecked(PROBE, &["tracepath", "-n", "-m", "4", &target]);
    let trace = text(&out.stdout);
    assert!(
        trace.contains(&hole.router_hop.to_string()),
        "tracepath must hear {} ({}): {trace}",
        hole.router,
        hole.router_hop
    );
    assert!(
        !trace.contains(&format!("pmtu {NARROW_MTU}")),
        "tracepath learnt the MTU: no black hole: {trace}"
    );
    let v4 = hole.v4.to_string();
    let ok = lab
        .lab
        .exec_unchecked(PROBE, &["ping", "-4", "-c", "1", "-W", "2", &v4]);
    assert!(
        ok.status.success(),
        "{}: IPv4 {}",
        hole.node,
        text(&ok.stdout)
    );

    // The header drop: plain IPv6 reaches thdr; Debian has no tool sending extension
    // headers, so the rules' counters (zero now) must rise once the probe has measured.
    let drop = &lab.exthdr;
    assert!(
        ping6(&lab, &drop.v6.to_string(), 56),
        "{}: plain IPv6 must pass",
        drop.node
    );
    assert_eq!(nft_counters(&lab, drop, "ip6"), vec![0, 0], "{}", drop.node);

    // The collector, with dual-stack ping tasks to the three names, a pmtu task towards the
    // black hole and an ext_headers task towards thdr, and a probe.
    let data = dir.join("collector-data");
    let data_arg = data.to_str().unwrap();
    let import = std::process::Command::new(binary("sixmap-collector"))
        .args(["import-prefixes", "--data-dir", data_arg, "--asn"])
        .arg(&lab.asn_csv)
        .arg("--country")
        .arg(&lab.country_csv)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", text(&import.stderr));
    let admin = collector_command(&[
        "api-token",
        "create",
        "--data-dir",
        data_arg,
        "--role",
        "admin",
        "--name",
        "lab-admin",
    ]);
    let enrollment = collector_command(&[
        "token",
        "create",
        "--data-dir",
        data_arg,
        "--owner",
        "lab",
        "--expires-in",
        "1h",
    ]);
    let names: Vec<String> = lab
        .targets
        .iter()
        .map(|t| format!("{:?}", t.name))
        .collect();
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\ngrpc_listen = \"[{}]:7400\"\nhttp_listen = \"[::]:7480\"\n\
             heartbeat_interval_s = 1\nlab_mode = true\n\
             [[tasks]]\nkind = \"dual_stack\"\ntargets = [{}]\nevery_s = 3600\n\
             timeout_ms = 9000\ninner = \"ping\"\n\
             [[tasks]]\nkind = \"pmtu\"\ntargets = [\"{}\"]\nevery_s = 3600\n\
             timeout_ms = 20000\nmax_size = 1500\n\
             [[tasks]]\nkind = \"ext_headers\"\ntargets = [\"{}\"]\nevery_s = 3600\n\
             timeout_ms = 20000\n\
             [publication]\nmin_probes = 1\n",
            lab.collector,
            names.join(", "),
            lab.pmtu.v6,
            lab.exthdr.v6,
        ),
    )
    .unwrap();
    let mut command = lab
        .lab
        .command(COLLECTOR, binary("sixmap-collector").to_str().unwrap());
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("collector.log")).unwrap());
    lab.lab.spawn(COLLECTOR, command).unwrap();
    wait_for(Duration::from_secs(15), || {
        api(&lab, Some(&admin), "/api/v1/probes")
    })
    .unwrap_or_else(|| panic!("{}", log_of(&dir, "collector never answered")));
    let probe_config = dir.join("probe.toml");
    std::fs::write(
        &probe_config,
        format!(
            "collector = \"https://[{}]:7400\"\nstate_dir = {:?}\nenrollment_token = \"{enrollment}\"\n\
             hostname = \"p1\"\nlab_mode = true\npacket_budget_per_minute = 10000\n",
            lab.collector,
            dir.join("probe-state"),
        ),
    )
    .unwrap();
    let mut command = lab
        .lab
        .command(PROBE, binary("sixmap-probe").to_str().unwrap());
    command
        .args(["run", "--config", probe_config.to_str().unwrap()])
        .env("RUST_LOG", "info,sixmap_probe::faultpath=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("probe.log")).unwrap());
    lab.lab.spawn(PROBE, command).unwrap();

    // One dual-stack result per target, each with its path and attribution, and the pmtu
    // and ext_headers results.
    let all = wait_for(Duration::from_secs(90), || {
        let body = api(&lab, Some(&admin), "/api/v1/results?limit=100")?;
        let all = body["results"].as_array()?.clone();
        let count = |kind: &str| all.iter().filter(|r| r["outcome"]["kind"] == kind).count();
        (count("dual_stack") >= lab.targets.len()
            && count("pmtu") >= 1
            && count("ext_headers") >= 1)
            .then_some(all)
    })
    .unwrap_or_else(|| panic!("{}", log_of(&dir, "not every result arrived")));
    let results: Vec<serde_json::Value> = all
        .iter()
        .filter(|r| r["outcome"]["kind"] == "dual_stack")
        .cloned()
        .collect();
    eprintln!("results after {:?}", started.elapsed());
    for t in &lab.targets {
        let r = results
            .iter()
            // A dual-stack result names its addresses in its legs.
            .find(|r| r["outcome"]["v6"]["destination"] == t.v6.to_string())
            .unwrap_or_else(|| panic!("no result for {}: {results:#?}", t.name));
        let outcome = &r["outcome"];
        assert!(
            outcome["v4"]["outcome"]["received"].as_u64().unwrap_or(0) > 0,
            "{}: IPv4 must work: {r:#}",
            t.name
        );
        assert_eq!(outcome["v6"]["outcome"]["received"], 0, "{}: {r:#}", t.name);
        // The probe's path: the routers up to the faulty one answered, nothing after.
        let expected = lab
            .lab
            .expected_hops(PROBE, t.node, std::net::IpAddr::V6(t.v6));
        let router = lab
            .lab
            .path(PROBE, t.node)
            .iter()
            .position(|n| n == t.router)
            .unwrap();
        let hops: Vec<String> = outcome["v6_fault_path"]["hops"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no fault path: {r:#}", t.name))
            .iter()
            .map(|h| h["address"].as_str().unwrap().to_owned())
            .collect();
        let want: Vec<String> = expected[..=router]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(hops, want, "{}: {r:#}", t.name);
        let blame = &r["blame"];
        assert_eq!(blame["failure"], "v6_broken", "{}: {r:#}", t.name);
        assert_eq!(blame["placement"], t.placement, "{}: {r:#}", t.name);
        assert_eq!(
            blame["responsible_asn"], t.responsible_asn,
            "{}: {r:#}",
            t.name
        );
        assert_eq!(
            blame["last_answering"]["address"],
            expected[router].to_string(),
            "{}: {r:#}",
            t.name
        );
        assert_eq!(
            blame["first_silent"]["hop_limit"],
            router + 2,
            "{}: {r:#}",
            t.name
        );
    }

    // The PMTU black hole: located at dedge's next hop, the plain path reaching the target,
    // blamed on the destination's network (dedge answered large packets last).
    let hole = &lab.pmtu;
    let expected = lab
        .lab
        .expected_hops(PROBE, hole.node, std::net::IpAddr::V6(hole.v6));
    let at = lab
        .lab
        .path(PROBE, hole.node)
        .iter()
        .position(|n| n == hole.router)
        .unwrap();
    let all_hops = |r: &serde_json::Value, path: &serde_json::Value| -> Vec<String> {
        path["hops"]
            .as_array()
            .unwrap_or_else(|| panic!("no fault path: {r:#}"))
            .iter()
            .map(|h| h["address"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = all
        .iter()
        .find(|r| r["outcome"]["kind"] == "pmtu" && r["destination"] == hole.v6.to_string())
        .unwrap_or_else(|| panic!("no pmtu result: {all:#?}"));
    let outcome = &r["outcome"];
    assert_eq!(outcome["black_hole"], true, "{r:#}");
    assert_eq!(outcome["black_hole_hop"], at + 2, "{r:#}");
    assert_eq!(
        outcome["black_hole_from"],
        hole.router_hop.to_string(),
        "{r:#}"
    );
    let want: Vec<String> = expected.iter().map(ToString::to_string).collect();
    assert_eq!(all_hops(r, &outcome["fault_path"]), want, "{r:#}");
    let blame = &r["blame"];
    assert_eq!(blame["failure"], "pmtu_black_hole", "{r:#}");
    assert_eq!(blame["placement"], hole.placement, "{r:#}");
    assert_eq!(blame["responsible_asn"], hole.responsible_asn, "{r:#}");
    assert_eq!(
        blame["last_answering"]["address"],
        hole.router_hop.to_string(),
        "{r:#}"
    );
    assert_eq!(blame["last_answering"]["hop_limit"], at + 1, "{r:#}");
    assert_eq!(blame["first_silent"]["hop_limit"], at + 2, "{r:#}");
    assert_eq!(
        blame["first_silent"]["address"],
        hole.v6.to_string(),
        "{r:#}"
    );
    assert_eq!(blame["boundary"], false, "{r:#}");

    // The header drop: Hop-by-Hop and Destination Options die after transit, fragments get
    // through; blamed on the transit network, at its boundary with the destination's.
    let drop = &lab.exthdr;
    let expected = lab
        .lab
        .expected_hops(PROBE, drop.node, std::net::IpAddr::V6(drop.v6));
    let at = lab
        .lab
        .path(PROBE, drop.node)
        .iter()
        .position(|n| n == drop.router)
        .unwrap();
    let r = all
        .iter()
        .find(|r| r["outcome"]["kind"] == "ext_headers" && r["destination"] == drop.v6.to_string())
        .unwrap_or_else(|| panic!("no ext_headers result: {all:#?}"));
    let outcome = &r["outcome"];
    let survived: Vec<(String, bool, serde_json::Value)> = outcome["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["header"].as_str().unwrap().to_owned(),
                o["survived"].as_bool().unwrap(),
                o["dropped_at_hop"].clone(),
            )
        })
        .collect();
    assert_eq!(
        survived,
        vec![
            ("hop_by_hop".into(), false, serde_json::json!(at + 2)),
            (
                "destination_options".into(),
                false,
                serde_json::json!(at + 2)
            ),
            ("fragment".into(), true, serde_json::Value::Null),
        ],
        "{r:#}"
    );
    let want: Vec<String> = expected.iter().map(ToString::to_string).collect();
    assert_eq!(all_hops(r, &outcome["fault_path"]), want, "{r:#}");
    let blame = &r["blame"];
    assert_eq!(blame["failure"], "ext_header_drop", "{r:#}");
    assert_eq!(blame["placement"], drop.placement, "{r:#}");
    assert_eq!(blame["responsible_asn"], drop.responsible_asn, "{r:#}");
    assert_eq!(
        blame["last_answering"]["address"],
        drop.router_hop.to_string(),
        "{r:#}"
    );
    assert_eq!(blame["first_silent"]["hop_limit"], at + 2, "{r:#}");
    assert_eq!(blame["first_silent"]["address"], want[at + 1], "{r:#}");
    assert_eq!(blame["first_silent"]["asn"], DEST_AS, "{r:#}");
    assert_eq!(blame["boundary"], true, "{r:#}");
    // The independent check: transit's rules dropped both headers' probes.
    let counters = nft_counters(&lab, drop, "ip6");
    assert!(counters.iter().all(|&n| n > 0), "{counters:?}");

    // The country's figures (public, like the maps): the five failures, all seen by the ISP's
    // probe: IPv6 broken once in each place, the black hole at the destination, the header
    // drop in transit.
    let breaks = wait_for(Duration::from_secs(20), || {
        let b = api(&lab, None, "/api/v1/maps/countries/xa/breaks")?;
        (b["total"] == 5).then_some(b)
    })
    .unwrap_or_else(|| panic!("{}", log_of(&dir, "breaks never counted the five")));
    assert_eq!(breaks["source"], "figures", "{breaks:#}");
    assert_eq!(
        breaks["placements"],
        serde_json::json!({"access": 1, "transit": 2, "destination": 2, "unknown": 0}),
        "{breaks:#}"
    );
    assert_eq!(
        breaks["failures"],
        serde_json::json!({"v6_broken": 3, "pmtu_black_hole": 1, "ext_header_drop": 1}),
        "{breaks:#}"
    );
    assert_eq!(breaks["networks"][0]["asn"], ISP_AS, "{breaks:#}");
    assert_eq!(breaks["networks"][0]["total"], 5, "{breaks:#}");
    let mut responsible: Vec<(u64, u64)> = breaks["responsible"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["asn"].as_u64().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    responsible.sort_unstable();
    assert_eq!(
        responsible,
        vec![
            (u64::from(ISP_AS), 1),
            (u64::from(TRANSIT_AS), 2),
            (u64::from(DEST_AS), 2)
        ],
        "{breaks:#}"
    );
    // The country page carries the section that shows them.
    let page = lab
        .lab
        .exec_unchecked(COLLECTOR, &["curl", "-sf", &format!("{API}/map/XA")]);
    let page = text(&page.stdout);
    assert!(page.contains("id=\"breaks\""), "{page}");
    assert!(page.contains("/assets/breaks.js"), "{page}");
    eprintln!("done after {:?}", started.elapsed());
}
