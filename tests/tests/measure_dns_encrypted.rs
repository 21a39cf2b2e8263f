//! DNS over TLS and over HTTPS in the lab: unbound on the dual-stack host serving DoT (853)
//! and DoH (443, HTTP/2) with a lab CA certificate for `dns.lab` and the host's addresses,
//! forwarding to the lab's dnsmasq. Checked first with independent clients (`kdig +tls`,
//! `kdig +https` from knot-dnsutils; curl POSTing a wire query over HTTP/2), then
//! `sixmap-probe measure dns --transport tls|https` over IPv6 and IPv4: answers, phases, and
//! the failure classes of a wrong server name, an untrusted CA and a closed port. Then the
//! per-operator DNS scorecard end to end (collector tasks, a probe, the stored results, the
//! API): DoT/DoH here, and DNS64 correctness in the access lab (`lab::nat64`).
//!
//! Needs the probe binary: `cargo build -p sixmap-probe --bins`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use sixmap_tests::lab::Lab;
use sixmap_tests::lab::nat64;
use sixmap_tests::lab::scenarios::{self, PROBE, names};
use sixmap_tests::lab::services::{self, DOH_PATH, DOT_PORT, DnsRecord};
use sixmap_tests::{Process, binary, collector_command, lab_or_skip, wait_for};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The name the DoT/DoH certificate is for (the resolver's name, not one it resolves).
const SERVER_NAME: &str = "dns.lab";

/// `sixmap-probe measure dns ARGS --json --lab-mode` in the probe namespace, with the lab CA
/// as `--ca-file` when given; the JSON outcome.
fn measure(lab: &Lab, args: &[&str], ca: Option<&Path>) -> Value {
    let binary = sixmap_tests::binary("sixmap-probe");
    let binary = binary.to_str().unwrap();
    let ca = ca.map(|p| p.display().to_string());
    let mut argv = vec![binary, "measure", "dns"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--json", "--lab-mode"]);
    if let Some(ca) = &ca {
        argv.extend_from_slice(&["--ca-file", ca]);
    }
    let started = Instant::now();
    let output = lab.exec_unchecked(PROBE, &argv);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("measure dns {args:?}: no JSON ({e}): {stdout}{stderr}"));
    eprintln!(
        "measure dns {} -> {} in {:?}",
        args.join(" "),
        json["outcome"],
        started.elapsed()
    );
    json["outcome"].clone()
}

fn text(output: &std::process::Output) -> (bool, String) {
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// A wire query for `name` AAAA with id 0 (RFC 8484 asks DoH clients for id 0, for caches).
fn wire_query(name: &str) -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 28, 0, 1]);
    q
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The targets scenario with the lab's dnsmasq on the dual-stack host (`dual.lab` only) and
/// unbound beside it serving DoT and DoH on both its addresses with a lab CA certificate for
/// [`SERVER_NAME`] and those addresses.
fn encrypted_dns_lab() -> (scenarios::Targets, services::LabCa) {
    let mut t = scenarios::targets().unwrap();
    let (dual_v6, dual_v4) = t.dual_stack;
    let records = [DnsRecord {
        name: names::DUAL_STACK.into(),
        aaaa: vec![dual_v6],
        a: vec![dual_v4],
    }];
    services::start_dns(&mut t.lab, "dual", &records).unwrap();
    let dir = t.lab.scratch_dir().join("encrypted-dns");
    std::fs::create_dir_all(&dir).unwrap();
    let addresses = [IpAddr::V6(dual_v6), IpAddr::V4(dual_v4)];
    let ca = services::make_ca(&dir, &[SERVER_NAME], &addresses).unwrap();
    services::start_encrypted_dns(
        &mut t.lab,
        "dual",
        &ca,
        &dir,
        &addresses,
        IpAddr::V6(dual_v6),
    )
    .unwrap();
    (t, ca)
}

#[test]
fn dot_and_doh_over_ipv6_answer_and_fail_by_class() {
    lab_or_skip!();
    let kdig = std::process::Command::new("kdig").arg("-V").output();
    assert!(
        kdig.is_ok_and(|o| o.status.success()),
        "kdig is missing: apt-get install knot-dnsutils"
    );
    let (t, ca) = encrypted_dns_lab();
    let (dual_v6, dual_v4) = t.dual_stack;
    let addresses = [IpAddr::V6(dual_v6), IpAddr::V4(dual_v4)];
    let lab = &t.lab;
    let dir = lab.scratch_dir().join("encrypted-dns");
    let cacert = ca.ca_cert.display().to_string();
    let want = dual_v6.to_string();

    // --- independent clients: kdig over TLS and HTTPS, curl POSTing a wire query over HTTP/2.
    let server = format!("@{dual_v6}");
    let tls_ca = format!("+tls-ca={cacert}");
    let hostname = format!("+tls-hostname={SERVER_NAME}");
    let https = format!("+https={DOH_PATH}");
    for transport in ["+tls", https.as_str()] {
        let argv = [
            "kdig",
            &server,
            transport,
            &tls_ca,
            &hostname,
            names::DUAL_STACK,
            "AAAA",
            "+short",
        ];
        let (ok, out) = text(&lab.exec_unchecked(PROBE, &argv));
        assert!(ok && out.trim() == want, "{argv:?}: {out}");
        // kdig's own timing, for comparison with ours (printed, not compared: one sample).
        let (_, full) = text(&lab.exec_unchecked(PROBE, &argv[..argv.len() - 1]));
        if let Some(line) = full.lines().find(|l| l.starts_with(";; From ")) {
            eprintln!("kdig {transport}: {line}");
        }
        // A hostname the certificate does not name: kdig refuses the session.
        let wrong = format!("+tls-hostname={}", names::V6_ONLY);
        let argv = [
            "kdig",
            &server,
            transport,
            &tls_ca,
            &wrong,
            names::DUAL_STACK,
            "AAAA",
            "+short",
        ];
        let (ok, out) = text(&lab.exec_unchecked(PROBE, &argv));
        // (kdig's error names the server's address: only an answer line is an answer.)
        assert!(
            !out.lines().any(|line| line.trim() == want) && out.contains("handshake failed"),
            "{argv:?} answered: {out}"
        );
        eprintln!("kdig with a wrong hostname: success={ok}: {}", out.trim());
    }
    let query_file = dir.join("query.bin");
    std::fs::write(&query_file, wire_query(names::DUAL_STACK)).unwrap();
    let answer_file = dir.join("answer.bin");
    let resolve = format!("{SERVER_NAME}:443:[{dual_v6}]");
    let data = format!("@{}", query_file.display());
    let url = format!("https://{SERVER_NAME}{DOH_PATH}");
    let answer_arg = answer_file.display().to_string();
    let argv = [
        "curl",
        "-sS",
        "--http2",
        "--cacert",
        &cacert,
        "--resolve",
        &resolve,
        "-H",
        "content-type: application/dns-message",
        "--data-binary",
        &data,
        "-o",
        &answer_arg,
        "-w",
        "%{http_code} %{http_version} %{content_type}",
        &url,
    ];
    let (ok, out) = text(&lab.exec_unchecked(PROBE, &argv));
    assert!(
        ok && out == "200 2 application/dns-message",
        "{argv:?}: {out}"
    );
    let answer = std::fs::read(&answer_file).unwrap();
    assert!(
        contains(&answer, &dual_v6.octets()),
        "curl's answer {answer:?}"
    );

    // --- our measurements, over IPv6 and IPv4, both transports, with the name verified.
    for address in addresses {
        let resolver = address.to_string();
        for transport in ["tls", "https"] {
            let args = [
                resolver.as_str(),
                names::DUAL_STACK,
                "-t",
                "AAAA",
                "--transport",
                transport,
                "--server-name",
                SERVER_NAME,
            ];
            let outcome = measure(lab, &args, Some(&ca.ca_cert));
            assert_eq!(outcome["kind"], "dns", "{outcome}");
            assert_eq!(outcome["transport_used"], transport, "{outcome}");
            assert_eq!(outcome["failure"], Value::Null, "{outcome}");
            assert_eq!(outcome["response"]["rcode"], 0, "{outcome}");
            let answers = outcome["response"]["answers"].as_array().unwrap();
            let data: Vec<&str> = answers
                .iter()
                .map(|a| a["data"].as_str().unwrap())
                .collect();
            assert_eq!(data, [want.as_str()], "{outcome}");
            let session = &outcome["session"];
            assert!(session["connect_ns"].as_u64().unwrap() > 0, "{outcome}");
            assert!(session["tls_ns"].as_u64().unwrap() > 0, "{outcome}");
            assert!(outcome["rtt_ns"].as_u64().unwrap() > 0, "{outcome}");
            assert_eq!(session["tls_version"], "TLSv1.3", "{outcome}");
            let status = if transport == "https" {
                Value::from(200)
            } else {
                Value::Null
            };
            assert_eq!(session["http_status"], status, "{outcome}");
        }
    }
    // Without a server name the address is verified: the certificate names it.
    let v6 = dual_v6.to_string();
    for transport in ["tls", "https"] {
        let args = [v6.as_str(), names::DUAL_STACK, "--transport", transport];
        let outcome = measure(lab, &args, Some(&ca.ca_cert));
        assert_eq!(outcome["failure"], Value::Null, "{outcome}");
    }

    // --- failures, each with its class.
    for transport in ["tls", "https"] {
        // A name the certificate does not carry.
        let args = [
            v6.as_str(),
            names::DUAL_STACK,
            "--transport",
            transport,
            "--server-name",
            names::V6_ONLY,
        ];
        let outcome = measure(lab, &args, Some(&ca.ca_cert));
        assert_eq!(outcome["failure_class"], "certificate", "{outcome}");
        assert!(
            outcome["failure"]
                .as_str()
                .unwrap()
                .contains("name mismatch"),
            "{outcome}"
        );
        assert_eq!(outcome["response"], Value::Null);
        assert!(outcome["session"]["connect_ns"].as_u64().is_some());
        assert_eq!(outcome["session"]["tls_ns"], Value::Null, "{outcome}");
        // The lab CA not trusted.
        let args = [
            v6.as_str(),
            names::DUAL_STACK,
            "--transport",
            transport,
            "--server-name",
            SERVER_NAME,
        ];
        let outcome = measure(lab, &args, None);
        assert_eq!(outcome["failure_class"], "certificate", "{outcome}");
        assert!(
            outcome["failure"]
                .as_str()
                .unwrap()
                .contains("unknown issuer"),
            "{outcome}"
        );
        // Nothing listens on the port: refused before TLS.
        let closed = (DOT_PORT + 1).to_string();
        let args = [
            v6.as_str(),
            names::DUAL_STACK,
            "--transport",
            transport,
            "--server-name",
            SERVER_NAME,
            "-p",
            &closed,
        ];
        let outcome = measure(lab, &args, Some(&ca.ca_cert));
        assert_eq!(outcome["failure_class"], "refused", "{outcome}");
        assert_eq!(outcome["session"]["tls_ns"], Value::Null, "{outcome}");
    }
    // DoH asked of the DoT port: unbound has one TLS context, so it agrees to h2 there too,
    // then reads HTTP/2's preface as a DNS length and waits for the rest: no answer, the
    // handshake done, the time spent waiting.
    let dot_port = DOT_PORT.to_string();
    let args = [
        v6.as_str(),
        names::DUAL_STACK,
        "--transport",
        "https",
        "--server-name",
        SERVER_NAME,
        "-p",
        &dot_port,
        "--timeout-ms",
        "2000",
    ];
    let started = Instant::now();
    let outcome = measure(lab, &args, Some(&ca.ca_cert));
    assert!(started.elapsed().as_millis() < 4000);
    assert_eq!(outcome["response"], Value::Null, "{outcome}");
    assert!(
        matches!(outcome["failure_class"].as_str(), Some("timeout" | "http")),
        "{outcome}"
    );
    assert!(outcome["session"]["tls_ns"].as_u64().is_some(), "{outcome}");
}

/// Starts a workspace binary inside `node`'s namespace; its stderr goes to `log`.
fn spawn_in_lab(
    lab: &Lab,
    node: &str,
    name: &str,
    args: &[&str],
    log: &Path,
) -> (Process, std::process::ChildStdout) {
    let mut command = lab.command(node, binary(name).to_str().unwrap());
    command
        .args(args)
        .env("RUST_LOG", "info,sixmap_collector=debug,sixmap_probe=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    (Process::from_child(child, name, log.to_owned()), stdout)
}

/// GET on the collector's API (inside `node`) with an API token.
fn api(lab: &Lab, node: &str, http: &str, token: &str, path: &str) -> Value {
    let bearer = format!("Authorization: Bearer {token}");
    let out = lab
        .exec(
            node,
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

/// A `[[tasks]]` table: `query_type` `name` asked of `resolver`, plus `extra` keys.
fn dns_task(resolver: Ipv6Addr, name: &str, query_type: &str, extra: &str) -> String {
    format!(
        "[[tasks]]\nkind = \"dns\"\ntargets = [\"{resolver}\"]\nevery_s = 3600\n\
         timeout_ms = 3000\nquery_name = \"{name}\"\nquery_type = \"{query_type}\"\n{extra}\n"
    )
}

/// Runs a collector with `tasks` and one probe (trusting `ca`) in `node`, the probe's /64 being
/// AS `asn` ("Lab operator") in the prefix data, and returns the DNS scorecard once it counts
/// `results` results.
fn scorecard(lab: &Lab, node: &str, tasks: &str, ca: &Path, asn: u32, results: u64) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let s = lab.node(node).v6().segments();
    let first = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
    let last = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0xffff, 0xffff, 0xffff, 0xffff);
    let asn_csv = dir.path().join("asn-ipv6.csv");
    let country_csv = dir.path().join("country-ipv6.csv");
    std::fs::write(&asn_csv, format!("{first},{last},{asn},Lab operator\n")).unwrap();
    std::fs::write(&country_csv, format!("{first},{last},NL\n")).unwrap();
    let import = std::process::Command::new(binary("sixmap-collector"))
        .args(["import-prefixes", "--data-dir", data_arg, "--asn"])
        .arg(&asn_csv)
        .arg("--country")
        .arg(&country_csv)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let reader = collector_command(&[
        "api-token",
        "create",
        "--data-dir",
        data_arg,
        "--role",
        "researcher",
        "--name",
        "scorecard",
    ]);
    let token = collector_command(&["token", "create", "--data-dir", data_arg, "--owner", "lab"]);
    let collector_config = dir.path().join("collector.toml");
    std::fs::write(
        &collector_config,
        format!(
            "data_dir = {data:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n{tasks}"
        ),
    )
    .unwrap();
    let (_collector, stdout) = spawn_in_lab(
        lab,
        node,
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
    let probe_config = dir.path().join("probe.toml");
    std::fs::write(
        &probe_config,
        format!(
            "collector = \"https://{grpc}\"\nstate_dir = {:?}\nenrollment_token = \"{token}\"\n\
             hostname = \"lab-probe\"\nlab_mode = true\nextra_ca_file = {ca:?}\n",
            dir.path().join("probe-state"),
        ),
    )
    .unwrap();
    let (_probe, _) = spawn_in_lab(
        lab,
        node,
        "sixmap-probe",
        &["run", "--config", probe_config.to_str().unwrap()],
        &dir.path().join("probe.log"),
    );
    let card = wait_for(Duration::from_secs(60), || {
        let card = api(lab, node, &http, &reader, "/api/v1/query/dns-scorecard");
        (card["results"] == results).then_some(card)
    })
    .unwrap_or_else(|| {
        panic!(
            "{results} dns results not scored within 60 s; collector log:\n{}\nprobe log:\n{}",
            std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("probe.log")).unwrap_or_default()
        )
    });
    eprintln!("scorecard: {card}");
    let rows = card["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{card}");
    assert_eq!(rows[0]["asn"], asn, "{card}");
    assert_eq!(rows[0]["as_name"], "Lab operator", "{card}");
    assert_eq!(rows[0]["probes"], 1);
    rows[0].clone()
}

/// The scorecard end to end: the collector's `[[tasks]]` ask the lab probe for DNS over UDP,
/// TLS and HTTPS against the lab's resolvers, one DoT task naming the wrong server and one DoH
/// task at a closed port; the probe runs them and the collector's
/// `/api/v1/query/dns-scorecard` scores the operator from what it stored.
#[test]
fn the_operator_scorecard_counts_dot_and_doh_over_ipv6() {
    lab_or_skip!();
    let (t, ca) = encrypted_dns_lab();
    let dual6 = t.dual_stack.0;
    let name = names::DUAL_STACK;
    let tasks = [
        dns_task(dual6, name, "AAAA", ""),
        dns_task(
            dual6,
            name,
            "AAAA",
            &format!("transport = \"tls\"\nserver_name = \"{SERVER_NAME}\""),
        ),
        dns_task(
            dual6,
            name,
            "AAAA",
            &format!("transport = \"https\"\nserver_name = \"{SERVER_NAME}\""),
        ),
        dns_task(
            dual6,
            name,
            "AAAA",
            &format!("transport = \"tls\"\nserver_name = \"{}\"", names::V6_ONLY),
        ),
        dns_task(
            dual6,
            name,
            "AAAA",
            &format!(
                "transport = \"https\"\nserver_name = \"{SERVER_NAME}\"\nport = {}",
                DOT_PORT + 1
            ),
        ),
    ]
    .concat();
    let row = scorecard(&t.lab, PROBE, &tasks, &ca.ca_cert, 64500, 5);
    // The UDP query to the resolver's IPv6 address was answered.
    assert_eq!(
        (&row["resolver_v6"]["asked"], &row["resolver_v6"]["yes"]),
        (&1.into(), &1.into())
    );
    // Three answered AAAA queries (UDP, DoT, DoH), each with the AAAA record.
    assert_eq!(
        (&row["aaaa"]["asked"], &row["aaaa"]["yes"]),
        (&3.into(), &3.into())
    );
    // No DNS64 in this lab, no HTTPS records asked.
    assert_eq!(row["dns64"]["synthesised"], 0);
    assert_eq!(row["https_ipv6hint"]["asked"], 0);
    let dot = &row["encrypted"]["tls"];
    assert_eq!(
        (&dot["answered"]["asked"], &dot["answered"]["yes"]),
        (&2.into(), &1.into()),
        "{row}"
    );
    assert_eq!(dot["failures"]["certificate"], 1, "{row}");
    assert!(dot["median_tls_ms"].as_f64().unwrap() > 0.0, "{row}");
    let doh = &row["encrypted"]["https"];
    assert_eq!(
        (&doh["answered"]["asked"], &doh["answered"]["yes"]),
        (&2.into(), &1.into()),
        "{row}"
    );
    assert_eq!(doh["failures"]["refused"], 1, "{row}");
    assert!(doh["median_query_ms"].as_f64().unwrap() > 0.0, "{row}");
}

/// DNS64 correctness in the scorecard, on the access lab's IPv6-only host behind unbound's
/// DNS64: the AAAA it synthesises for an IPv4-only name embeds the A record the same resolver
/// gives, and a native AAAA is not counted as synthesised.
#[test]
fn the_operator_scorecard_checks_dns64_against_the_a_records() {
    lab_or_skip!();
    let access = nat64::access_lab().unwrap();
    assert_eq!(access.nat64_prefix, nat64::NAT64_PREFIX);
    let dns64 = access.dns64_v6only;
    let tasks = [
        dns_task(dns64, nat64::names::V4_ONLY, "AAAA", ""),
        dns_task(dns64, nat64::names::V4_ONLY, "A", ""),
        dns_task(dns64, nat64::names::DUAL_STACK, "AAAA", ""),
    ]
    .concat();
    let row = scorecard(
        &access.lab,
        nat64::V6_ONLY,
        &tasks,
        &access.ca.ca_cert,
        64501,
        3,
    );
    assert_eq!(
        (&row["resolver_v6"]["asked"], &row["resolver_v6"]["yes"]),
        (&3.into(), &3.into())
    );
    assert_eq!(
        (&row["aaaa"]["asked"], &row["aaaa"]["yes"]),
        (&2.into(), &2.into())
    );
    assert_eq!(
        row["dns64"],
        serde_json::json!({"synthesised": 1, "correct": 1, "incorrect": 0, "unverified": 0}),
        "{row}"
    );
    assert_eq!(row["encrypted"], serde_json::json!({}));
}
