//! Every measurement kind end to end: the collector's `[[tasks]]` config names the spec, the
//! collector assigns it over gRPC, a real probe runs it against the lab's services, and the
//! result the collector stores (and serves on its API) matches the lab's ground truth.
//!
//! Collector and probe both run inside the lab's probe namespace (the collector on loopback),
//! so the probe's packets cross the lab's routers to the target hosts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use sixmap_tests::lab::scenarios::{self, PROBE, names};
use sixmap_tests::lab_or_skip;
use sixmap_tests::{Process, binary, collector_command, wait_for};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// The tasks: one per kind (two for traceroute and dns), all against lab services.
fn tasks(s: &scenarios::Services) -> String {
    let dual6 = s.targets.dual_stack.0;
    let dns = s.dns.0;
    format!(
        r#"
[[tasks]]
kind = "ping"
targets = ["{dual6}"]
every_s = 3600
timeout_ms = 5000
count = 3
interval_ms = 100

[[tasks]]
kind = "traceroute"
targets = ["{dual6}"]
every_s = 3600
timeout_ms = 10000
protocol = "udp"
max_hops = 8
probes_per_hop = 1

[[tasks]]
kind = "dns"
targets = ["{dns}"]
every_s = 3600
timeout_ms = 5000
query_name = "{dual}"
query_type = "AAAA"

[[tasks]]
kind = "tcp"
targets = ["{dual}"]
every_s = 3600
timeout_ms = 5000
port = {closed}

[[tasks]]
kind = "tls"
targets = ["{dual}"]
every_s = 3600
timeout_ms = 5000

[[tasks]]
kind = "http"
every_s = 3600
timeout_ms = 5000
url = "https://{dual}/"

[[tasks]]
kind = "quic"
targets = ["{v6only}"]
every_s = 3600
timeout_ms = 5000

[[tasks]]
kind = "pmtu"
targets = ["{dual6}"]
every_s = 3600
timeout_ms = 10000

[[tasks]]
kind = "ext_headers"
targets = ["{dual6}"]
every_s = 3600
timeout_ms = 10000

[[tasks]]
kind = "dual_stack"
targets = ["{broken}"]
every_s = 3600
timeout_ms = 3000
inner = "ping"
"#,
        dual = names::DUAL_STACK,
        v6only = names::V6_ONLY,
        broken = names::BROKEN_V6,
        closed = s.closed_port,
    )
}

/// Starts a workspace binary inside the probe namespace; its stderr goes to `log`.
fn spawn_in_lab(
    lab: &sixmap_tests::lab::Lab,
    name: &str,
    args: &[&str],
    log: &Path,
) -> (Process, std::process::ChildStdout) {
    let mut command = lab.command(PROBE, binary(name).to_str().unwrap());
    command
        .args(args)
        .env("RUST_LOG", "info,sixmap_collector=debug,sixmap_probe=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    (Process::from_child(child, name, log.to_owned()), stdout)
}

/// GET on the collector's API (inside the lab) with an API token.
fn api(lab: &sixmap_tests::lab::Lab, http: &str, token: &str, path: &str) -> Value {
    let bearer = format!("Authorization: Bearer {token}");
    let out = lab
        .exec(
            PROBE,
            &[
                "curl",
                "-sf",
                "-H",
                &bearer,
                &format!("http://{http}{path}"),
            ],
        )
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_kind_runs_from_collector_config_to_stored_result() {
    lab_or_skip!();
    let services = scenarios::with_services().unwrap();
    let lab = &services.targets.lab;
    let dir = tempfile::tempdir().unwrap();
    // A researcher's API token to read results, and the probe's one-time enrollment token,
    // made before the collector opens its store.
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let reader = collector_command(&[
        "api-token",
        "create",
        "--data-dir",
        data_arg,
        "--role",
        "researcher",
        "--name",
        "e2e",
    ]);
    let token = collector_command(&["token", "create", "--data-dir", data_arg, "--owner", "lab"]);
    let collector_config = dir.path().join("collector.toml");
    std::fs::write(
        &collector_config,
        format!(
            "data_dir = {data:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n{}",
            tasks(&services)
        ),
    )
    .unwrap();
    let (_collector, stdout) = spawn_in_lab(
        lab,
        "sixmap-collector",
        &["serve", "--config", collector_config.to_str().unwrap()],
        &dir.path().join("collector.log"),
    );
    let line = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let field = |key: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .to_owned()
    };
    let (grpc, http) = (field("grpc="), field("http="));

    // All ten tasks start at once: their worst cases (exthdr alone may send 512 packets) do
    // not fit the default budget of 600 a minute, which would refuse some of them.
    let probe_config = dir.path().join("probe.toml");
    std::fs::write(
        &probe_config,
        format!(
            "collector = \"https://{grpc}\"\nstate_dir = {:?}\nenrollment_token = \"{token}\"\n\
             hostname = \"lab-probe\"\nlab_mode = true\nicmp_socket = \"raw\"\n\
             extra_ca_file = {:?}\npacket_budget_per_minute = 60000\n",
            dir.path().join("probe-state"),
            services.ca.ca_cert
        ),
    )
    .unwrap();
    let (_probe, _) = spawn_in_lab(
        lab,
        "sixmap-probe",
        &["run", "--config", probe_config.to_str().unwrap()],
        &dir.path().join("probe.log"),
    );

    // Ten tasks, each run once at assignment: wait until every kind has a stored result.
    let kinds = [
        "ping",
        "traceroute",
        "dns",
        "tcp",
        "tls",
        "http",
        "quic",
        "pmtu",
        "ext_headers",
        "dual_stack",
    ];
    let results = wait_for(Duration::from_secs(60), || {
        let body = api(lab, &http, &reader, "/api/v1/results?limit=100");
        let results = body["results"].as_array().cloned().unwrap_or_default();
        let have = |k: &str| results.iter().any(|r| r["outcome"]["kind"] == k);
        kinds.iter().all(|k| have(k)).then_some(results)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every kind stored within 60 s; collector log:\n{}\nprobe log:\n{}",
            std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("probe.log")).unwrap_or_default()
        )
    });
    let of = |kind: &str| -> &Value {
        results
            .iter()
            .find(|r| r["outcome"]["kind"] == kind)
            .unwrap()
    };
    let dual6 = services.targets.dual_stack.0;
    let addr = |v: &Value| -> IpAddr { v.as_str().unwrap().parse().unwrap() };

    // Every result names the family asked for and used, the source and the version.
    for r in &results {
        assert_eq!(r["software_version"], env!("CARGO_PKG_VERSION"), "{r}");
        assert!(r["family_requested"].is_string(), "{r}");
        assert_ne!(r["outcome"]["kind"], "failed", "a measurement failed: {r}");
    }

    let ping = of("ping");
    assert_eq!(addr(&ping["destination"]), IpAddr::V6(dual6));
    assert_eq!(ping["outcome"]["received"], 3, "{ping}");
    // probe -> r1 -> r2 -> dual: two routers, so hop limit 64 - 2.
    assert_eq!(ping["outcome"]["replies"][0]["hop_limit"], 62, "{ping}");

    let trace = of("traceroute");
    let expected: Vec<String> = lab
        .expected_hops(PROBE, "dual", IpAddr::V6(dual6))
        .iter()
        .map(ToString::to_string)
        .collect();
    let hops: Vec<String> = trace["outcome"]["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["replies"][0]["from"].as_str().unwrap_or("*").to_owned())
        .collect();
    assert_eq!(hops, expected, "{trace}");
    assert_eq!(trace["outcome"]["stop"], "reached");

    let dns = of("dns");
    let answers = &dns["outcome"]["response"]["answers"];
    assert_eq!(answers.as_array().unwrap().len(), 1, "{dns}");
    assert_eq!(answers[0]["data"], dual6.to_string());

    let tcp = of("tcp");
    assert_eq!(tcp["outcome"]["outcome"], "refused", "{tcp}");
    assert_eq!(addr(&tcp["destination"]), IpAddr::V6(dual6));

    let tls = of("tls");
    assert_eq!(tls["outcome"]["certificate_verified"], true, "{tls}");
    assert_eq!(tls["outcome"]["version"], "TLSv1.3");

    let http_result = of("http");
    assert_eq!(http_result["outcome"]["status"], 200, "{http_result}");
    assert_eq!(
        http_result["outcome"]["body_bytes"],
        services.body.len(),
        "{http_result}"
    );

    let quic = of("quic");
    assert_eq!(quic["outcome"]["handshake_ok"], true, "{quic}");
    assert_eq!(quic["outcome"]["alpn"], "h3");

    let pmtu = of("pmtu");
    assert_eq!(pmtu["outcome"]["path_mtu"], 1500, "{pmtu}");
    assert_eq!(pmtu["outcome"]["black_hole"], false);

    let ext = of("ext_headers");
    let outcomes = ext["outcome"]["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3, "{ext}");
    assert!(outcomes.iter().all(|o| o["survived"] == true), "{ext}");

    // broken.lab: IPv6 is blackholed, IPv4 works, so Happy Eyeballs ends on IPv4.
    let dual = of("dual_stack");
    assert_eq!(dual["outcome"]["happy_eyeballs_choice"], "v4", "{dual}");
    assert_eq!(
        addr(&dual["outcome"]["v4"]["destination"]),
        IpAddr::V4(services.targets.broken_v6.1)
    );
    assert!(
        dual["outcome"]["v4"]["outcome"]["received"]
            .as_u64()
            .unwrap()
            > 0,
        "{dual}"
    );
    assert_eq!(dual["outcome"]["v6"]["outcome"]["received"], 0, "{dual}");
    // Hops estimated from the reply TTL equal the lab's path length.
    let broken_path = lab.expected_hops(PROBE, "broken", IpAddr::V4(services.targets.broken_v6.1));
    assert_eq!(dual["outcome"]["v4_hops"], broken_path.len(), "{dual}");

    // Results are enriched and listed per probe: the probe's dashboard entry shows them.
    let probes = api(lab, &http, &reader, "/api/v1/probes");
    assert_eq!(probes.as_array().unwrap().len(), 1, "{probes}");
}
