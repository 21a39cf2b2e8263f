//! DNS over TLS and over HTTPS in the lab: unbound on the dual-stack host serving DoT (853)
//! and DoH (443, HTTP/2) with a lab CA certificate for `dns.lab` and the host's addresses,
//! forwarding to the lab's dnsmasq. Checked first with independent clients (`kdig +tls`,
//! `kdig +https` from knot-dnsutils; curl POSTing a wire query over HTTP/2), then
//! `sixmap-probe measure dns --transport tls|https` over IPv6 and IPv4: answers, phases, and
//! the failure classes of a wrong server name, an untrusted CA and a closed port.
//!
//! Needs the probe binary: `cargo build -p sixmap-probe --bins`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::Value;
use sixmap_tests::lab::Lab;
use sixmap_tests::lab::scenarios::{self, PROBE, names};
use sixmap_tests::lab::services::{self, DOH_PATH, DOT_PORT, DnsRecord};
use sixmap_tests::lab_or_skip;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

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

#[test]
fn dot_and_doh_over_ipv6_answer_and_fail_by_class() {
    lab_or_skip!();
    let kdig = std::process::Command::new("kdig").arg("-V").output();
    assert!(
        kdig.is_ok_and(|o| o.status.success()),
        "kdig is missing: apt-get install knot-dnsutils"
    );
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
    let lab = &t.lab;
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
