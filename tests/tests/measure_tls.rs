//! `sixmap-probe measure tls|http|quic` inside the lab's probe namespace against the services
//! scenario (dnsmasq names, the lab CA, Python HTTP/HTTPS, aioquic HTTP/3, a closed and a
//! filtered port, a blackholed IPv6 host), each result compared with the scenario's truth.
//!
//! One lab for all three kinds: starting the services costs seconds of a 2-core machine.
//! Needs the probe binary: `cargo build -p sixmap-probe --bins` (`cargo test --workspace`
//! builds it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use sixmap_tests::lab::scenarios::{self, PROBE, Services, names};
use sixmap_tests::lab_or_skip;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `sixmap-probe measure …` in the probe namespace.
struct Probe<'a> {
    services: &'a Services,
    binary: PathBuf,
}

/// What one measurement printed, and how long the command took.
struct Measured {
    json: Value,
    took: Duration,
}

impl Measured {
    fn outcome(&self) -> &Value {
        &self.json["outcome"]
    }
}

impl Probe<'_> {
    fn ca(&self) -> String {
        self.services.ca.ca_cert.display().to_string()
    }

    /// `measure ARGS --json --lab-mode`, with `--ca-file` (the lab CA) when `trust_lab_ca`.
    fn measure(&self, args: &[&str], trust_lab_ca: bool) -> Measured {
        let binary = self.binary.display().to_string();
        let ca = self.ca();
        let mut argv = vec![binary.as_str(), "measure"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--json", "--lab-mode"]);
        if trust_lab_ca {
            argv.extend_from_slice(&["--ca-file", &ca]);
        }
        let started = Instant::now();
        let output = self.services.targets.lab.exec_unchecked(PROBE, &argv);
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{argv:?}: no JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        eprintln!(
            "{:?} ({took:?}): {}",
            &args,
            serde_json::to_string(&json["outcome"]).unwrap()
        );
        Measured { json, took }
    }
}

/// Subject, issuer and validity of the lab's leaf certificate as openssl reads them.
struct LeafTruth {
    not_before_us: i64,
    not_after_us: i64,
}

fn leaf_truth(leaf: &Path) -> LeafTruth {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-startdate", "-enddate", "-in"])
        .arg(leaf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let date = |key: &str| -> i64 {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"));
        let out = Command::new("date")
            .args(["-u", "-d", value, "+%s"])
            .output()
            .unwrap();
        let seconds: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        seconds * 1_000_000
    };
    LeafTruth {
        not_before_us: date("notBefore="),
        not_after_us: date("notAfter="),
    }
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

#[test]
fn tls_http_and_quic_measurements_match_the_lab() {
    lab_or_skip!();
    let started = Instant::now();
    let services = scenarios::with_services().unwrap();
    eprintln!("services scenario up after {:?}", started.elapsed());
    // The scenario points the probe namespace's resolver at the lab's DNS server.
    let probe = Probe {
        services: &services,
        binary: sixmap_tests::binary("sixmap-probe"),
    };
    tls(&probe);
    http(&probe);
    quic(&probe);
}

fn tls(probe: &Probe<'_>) {
    let s = probe.services;
    let (dual_v6, _) = s.targets.dual_stack;
    let leaf = leaf_truth(&s.ca.cert);

    // Verified TLS 1.3 to both hosts, by name; the chain is the lab's leaf alone (the web
    // server sends no intermediate), as the lab CA made it.
    for (name, address) in [
        (names::DUAL_STACK, dual_v6),
        (names::V6_ONLY, s.targets.v6_only),
    ] {
        let m = probe.measure(&["tls", name, "--alpn", "h2,http/1.1"], true);
        let o = m.outcome();
        assert_eq!(o["kind"], "tls", "{o}");
        assert_eq!(m.json["destination"], address.to_string());
        assert_eq!(m.json["family_used"], "v6");
        assert_eq!(o["connect"], "connected", "{o}");
        assert_eq!(o["handshake_ok"], true, "{o}");
        assert_eq!(o["certificate_verified"], true, "{o}");
        assert_eq!(o["failure"], Value::Null, "{o}");
        assert_eq!(o["version"], "TLSv1.3", "{o}");
        assert!(text(&o["cipher_suite"]).starts_with("TLS13_"), "{o}");
        // The lab server offers http/1.1 only.
        assert_eq!(o["alpn"], "http/1.1", "{o}");
        assert!(o["connect_ns"].as_u64().unwrap() > 0);
        assert!(o["handshake_ns"].as_u64().unwrap() > 0);
        let chain = o["chain"].as_array().unwrap();
        assert_eq!(chain.len(), 1, "{o}");
        assert_eq!(chain[0]["subject"], "CN=sixmap lab server");
        assert_eq!(chain[0]["issuer"], "CN=sixmap lab CA");
        assert_eq!(chain[0]["not_before"], leaf.not_before_us);
        assert_eq!(chain[0]["not_after"], leaf.not_after_us);
    }

    // An address literal: no SNI; the certificate's IP address entry matches.
    let m = probe.measure(&["tls", &dual_v6.to_string()], true);
    let o = m.outcome();
    assert_eq!(
        (&o["certificate_verified"], &o["alpn"]),
        (&Value::Bool(true), &Value::Null),
        "{o}"
    );

    // Without the lab CA: the handshake completes, the certificate does not verify.
    let m = probe.measure(&["tls", names::DUAL_STACK], false);
    let o = m.outcome();
    assert_eq!(
        (&o["handshake_ok"], &o["certificate_verified"]),
        (&Value::Bool(true), &Value::Bool(false)),
        "{o}"
    );
    assert!(text(&o["failure"]).contains("unknown issuer"), "{o}");
    assert_eq!(o["version"], "TLSv1.3");
    assert_eq!(o["chain"][0]["subject"], "CN=sixmap lab server");

    // A server name the certificate does not carry.
    let m = probe.measure(&["tls", names::DUAL_STACK, "--sni", "wrong.lab"], true);
    let o = m.outcome();
    assert_eq!(
        (&o["handshake_ok"], &o["certificate_verified"]),
        (&Value::Bool(true), &Value::Bool(false)),
        "{o}"
    );
    let failure = text(&o["failure"]);
    assert!(
        failure.contains("name mismatch") && failure.contains("wrong.lab"),
        "{o}"
    );

    // Closed, filtered, blackholed and prohibited.
    let closed = s.closed_port.to_string();
    let m = probe.measure(&["tls", names::DUAL_STACK, "-p", &closed], true);
    let o = m.outcome();
    assert_eq!(
        (&o["connect"], &o["handshake_ok"]),
        (&Value::from("refused"), &Value::Bool(false)),
        "{o}"
    );
    assert!(m.took < Duration::from_secs(2), "{:?}", m.took);
    let filtered = s.filtered_port.to_string();
    let m = probe.measure(
        &[
            "tls",
            names::DUAL_STACK,
            "-p",
            &filtered,
            "--timeout-ms",
            "2000",
        ],
        true,
    );
    assert_timeout(&m, "connect");
    let m = probe.measure(&["tls", names::BROKEN_V6, "--timeout-ms", "2000"], true);
    assert_eq!(m.json["destination"], s.targets.broken_v6.0.to_string());
    assert_timeout(&m, "connect");
    let m = probe.measure(&["tls", &s.targets.admin_prohibited.to_string()], true);
    let o = m.outcome();
    assert_eq!(o["connect"], "unreachable", "{o}");
    assert!(m.took < Duration::from_secs(2), "{:?}", m.took);
}

/// A TCP connection that timed out at the 2 s deadline, not before.
fn assert_timeout(m: &Measured, field: &str) {
    let o = m.outcome();
    assert_eq!(o[field], "timeout", "{o}");
    assert_eq!(o["connect_ns"], Value::Null, "{o}");
    let duration = Duration::from_micros(m.json["duration_us"].as_u64().unwrap());
    assert!(
        duration >= Duration::from_millis(1990) && duration < Duration::from_millis(2600),
        "{duration:?}"
    );
}

fn http(probe: &Probe<'_>) {
    let s = probe.services;
    let body = s.body.len() as u64;
    let (dual_v6, _) = s.targets.dual_stack;

    // GET over HTTP and HTTPS to both hosts: the body the lab serves, byte for byte.
    for url in [
        "http://dual.lab/",
        "https://dual.lab/",
        "http://v6only.lab/",
        "https://v6only.lab/",
    ] {
        let m = probe.measure(&["http", url], true);
        let o = m.outcome();
        assert_eq!(o["kind"], "http", "{o}");
        assert_eq!(m.json["family_used"], "v6");
        assert_eq!(
            (&o["connect"], &o["status"]),
            (&Value::from("connected"), &Value::from(200)),
            "{url}: {o}"
        );
        assert_eq!(o["http_version"], "HTTP/1.1");
        assert_eq!(
            (o["body_bytes"].as_u64(), &o["body_truncated"]),
            (Some(body), &Value::Bool(false)),
            "{url}: {o}"
        );
        assert_eq!(o["failure"], Value::Null, "{o}");
        let phase = |name: &str| o[name].as_u64().unwrap_or_else(|| panic!("{name}: {o}"));
        let (dns, connect, first) = (phase("dns_ns"), phase("connect_ns"), phase("first_byte_ns"));
        let tls = if url.starts_with("https") {
            phase("tls_ns")
        } else {
            assert_eq!(o["tls_ns"], Value::Null, "{o}");
            0
        };
        assert!(phase("total_ns") >= dns + connect + tls + first, "{o}");
    }

    // HEAD: the status and no body; a missing path: 404 and the lab's 10-byte body.
    let m = probe.measure(&["http", "https://dual.lab/", "--head"], true);
    let o = m.outcome();
    assert_eq!(
        (&o["status"], o["body_bytes"].as_u64()),
        (&Value::from(200), Some(0)),
        "{o}"
    );
    let m = probe.measure(&["http", "http://v6only.lab/", "--head"], true);
    assert_eq!(m.outcome()["status"], 200);
    for url in ["http://dual.lab/missing", "https://v6only.lab/missing"] {
        let m = probe.measure(&["http", url], true);
        let o = m.outcome();
        assert_eq!(
            (&o["status"], o["body_bytes"].as_u64()),
            (&Value::from(404), Some("not found\n".len() as u64)),
            "{o}"
        );
    }

    // The body cap.
    let m = probe.measure(&["http", "https://dual.lab/", "--max-body", "10"], true);
    let o = m.outcome();
    assert_eq!(
        (o["body_bytes"].as_u64(), &o["body_truncated"]),
        (Some(10), &Value::Bool(true)),
        "{o}"
    );
    let exact = body.to_string();
    let m = probe.measure(&["http", "http://dual.lab/", "--max-body", &exact], true);
    let o = m.outcome();
    assert_eq!(
        (o["body_bytes"].as_u64(), &o["body_truncated"]),
        (Some(body), &Value::Bool(false)),
        "{o}"
    );

    // By address: the URL's host still names the server (SNI, Host); no name was resolved.
    let m = probe.measure(
        &[
            "http",
            "https://dual.lab/",
            "--address",
            &dual_v6.to_string(),
        ],
        true,
    );
    let o = m.outcome();
    assert_eq!(
        (&o["status"], &o["dns_ns"]),
        (&Value::from(200), &Value::Null),
        "{o}"
    );

    // HTTPS without the lab CA: the request is not sent, the certificate problem is named.
    let m = probe.measure(&["http", "https://dual.lab/"], false);
    let o = m.outcome();
    assert_eq!(
        (&o["connect"], &o["status"], &o["tls_ns"]),
        (&Value::from("connected"), &Value::Null, &Value::Null),
        "{o}"
    );
    assert!(text(&o["failure"]).contains("unknown issuer"), "{o}");

    // Refused, filtered and blackholed.
    let m = probe.measure(
        &["http", &format!("http://dual.lab:{}/", s.closed_port)],
        true,
    );
    assert_eq!(
        (&m.outcome()["connect"], &m.outcome()["status"]),
        (&Value::from("refused"), &Value::Null)
    );
    let m = probe.measure(
        &[
            "http",
            &format!("http://dual.lab:{}/", s.filtered_port),
            "--timeout-ms",
            "2000",
        ],
        true,
    );
    assert_timeout(&m, "connect");
    let m = probe.measure(
        &["http", "https://broken.lab/", "--timeout-ms", "2000"],
        true,
    );
    assert_eq!(m.json["destination"], s.targets.broken_v6.0.to_string());
    assert_timeout(&m, "connect");
    assert!(m.outcome()["dns_ns"].as_u64().is_some());
}

fn quic(probe: &Probe<'_>) {
    let s = probe.services;

    // HTTP/3 handshakes with the aioquic servers.
    for name in [names::DUAL_STACK, names::V6_ONLY] {
        let m = probe.measure(&["quic", name], true);
        let o = m.outcome();
        assert_eq!(o["kind"], "quic", "{o}");
        assert_eq!(m.json["family_used"], "v6");
        assert_eq!(
            (&o["handshake_ok"], &o["version"], &o["alpn"]),
            (&Value::Bool(true), &Value::from(1), &Value::from("h3")),
            "{o}"
        );
        assert_eq!(
            (&o["failure"], &o["failure_detail"]),
            (&Value::Null, &Value::Null),
            "{o}"
        );
        assert!(o["handshake_ns"].as_u64().unwrap() > 0);
    }

    // Without the lab CA: the handshake completes but the certificate is rejected.
    let m = probe.measure(&["quic", names::DUAL_STACK], false);
    let o = m.outcome();
    assert_eq!(
        (&o["handshake_ok"], &o["failure"], &o["alpn"]),
        (
            &Value::Bool(false),
            &Value::from("certificate"),
            &Value::from("h3")
        ),
        "{o}"
    );
    assert!(text(&o["failure_detail"]).contains("unknown issuer"), "{o}");

    // An ALPN the server does not speak: the server ends the handshake.
    let m = probe.measure(&["quic", names::DUAL_STACK, "--alpn", "hq-interop"], true);
    let o = m.outcome();
    assert_eq!(
        (&o["failure"], &o["version"]),
        (&Value::from("handshake"), &Value::Null),
        "{o}"
    );

    // Nothing listens on UDP 4433: ICMPv6 port unreachable ends the wait at once.
    let m = probe.measure(
        &[
            "quic",
            names::DUAL_STACK,
            "-p",
            "4433",
            "--timeout-ms",
            "5000",
        ],
        true,
    );
    let o = m.outcome();
    assert_eq!(o["failure"], "udp_blocked", "{o}");
    assert!(
        text(&o["failure_detail"]).contains("port unreachable"),
        "{o}"
    );
    assert!(m.took < Duration::from_secs(2), "{:?}", m.took);

    // r2 answers administratively prohibited: also at once.
    let m = probe.measure(
        &[
            "quic",
            &s.targets.admin_prohibited.to_string(),
            "--timeout-ms",
            "5000",
        ],
        true,
    );
    let o = m.outcome();
    assert_eq!(o["failure"], "udp_blocked", "{o}");
    assert!(
        text(&o["failure_detail"]).contains("administratively prohibited"),
        "{o}"
    );
    assert!(m.took < Duration::from_secs(2), "{:?}", m.took);

    // The blackholed IPv6 host: silence until the deadline.
    let m = probe.measure(&["quic", names::BROKEN_V6, "--timeout-ms", "2000"], true);
    let o = m.outcome();
    assert_eq!(m.json["destination"], s.targets.broken_v6.0.to_string());
    assert_eq!(o["failure"], "udp_blocked", "{o}");
    assert!(
        text(&o["failure_detail"]).contains("no UDP datagram came back"),
        "{o}"
    );
    let duration = Duration::from_micros(m.json["duration_us"].as_u64().unwrap());
    assert!(
        duration >= Duration::from_millis(1990) && duration < Duration::from_millis(2600),
        "{duration:?}"
    );
}
