//! The government readiness lab (`sixmap_tests::lab::readiness`, issue #20): first checked
//! with independent tools (dig, curl, openssl, bash's /dev/tcp) against the truth it states.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::lab::readiness::{ReadinessLab, readiness};
use sixmap_tests::lab_or_skip;

const PROBE: &str = "p1";

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `dig +short TYPE name` from the probe host through its resolver; the answers, sorted.
fn dig(lab: &ReadinessLab, rtype: &str, name: &str) -> Vec<String> {
    let output = lab
        .lab
        .exec(
            PROBE,
            &["dig", "+short", "+tries=2", "+time=2", rtype, name],
        )
        .unwrap();
    let mut answers: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    answers.sort();
    answers
}

/// The header flags of a non-recursive SOA query for `domain` sent to `server`.
fn soa_flags(lab: &ReadinessLab, server: &str, domain: &str) -> Result<String, String> {
    let at = format!("@{server}");
    let output = lab.lab.exec_unchecked(
        PROBE,
        &["dig", "+norec", "+tries=1", "+time=2", &at, domain, "SOA"],
    );
    let out = text(&output);
    if !output.status.success() {
        return Err(out);
    }
    out.lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .map(|l| l.split(';').next().unwrap_or_default().to_owned())
        .ok_or(out)
}

/// `curl` of `url` from the probe host with `family` ("-4" or "-6"), trusting the lab CA:
/// the body, or the error text.
fn curl(lab: &ReadinessLab, family: &str, url: &str) -> Result<String, String> {
    let ca = lab.ca.ca_cert.display().to_string();
    let output = lab.lab.exec_unchecked(
        PROBE,
        &[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "--cacert",
            &ca,
            family,
            url,
        ],
    );
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(text(&output))
    }
}

/// The SHA-256 fingerprint of the certificate `host` presents at `address`:443.
fn certificate(lab: &ReadinessLab, address: &str, host: &str) -> String {
    let script = format!(
        "openssl s_client -connect '[{address}]:443' -servername {host} </dev/null 2>/dev/null \
         | openssl x509 -noout -fingerprint -sha256"
    );
    let output = lab.lab.exec(PROBE, &["sh", "-c", &script]).unwrap();
    let out = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(out.contains("Fingerprint="), "no certificate: {out}");
    out
}

fn certificate_v4(lab: &ReadinessLab, address: &str, host: &str) -> String {
    let script = format!(
        "openssl s_client -connect '{address}:443' -servername {host} </dev/null 2>/dev/null \
         | openssl x509 -noout -fingerprint -sha256"
    );
    let output = lab.lab.exec(PROBE, &["sh", "-c", &script]).unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A TCP connection to `address` port 25 with bash's /dev/tcp: the server's first line.
fn smtp_greeting(lab: &ReadinessLab, address: &str) -> Result<String, String> {
    let script = format!("exec 3<>/dev/tcp/{address}/25 && timeout 3 head -n 1 <&3");
    let output = lab
        .lab
        .exec_unchecked(PROBE, &["timeout", "5", "bash", "-c", &script]);
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(text(&output))
    }
}

#[test]
fn the_readiness_lab_serves_its_truth() {
    lab_or_skip!();
    let lab = readiness().expect("readiness lab");
    let a = lab.addresses.clone();

    // DNS: NS names, their addresses, and authoritative answers over IPv6.
    assert_eq!(
        dig(&lab, "NS", "good.gov.lab"),
        ["ns1.good.gov.lab.", "ns2.good.gov.lab."]
    );
    assert_eq!(
        dig(&lab, "NS", "v4only.gov.lab"),
        ["ns1.v4only.gov.lab.", "ns2.v4only.gov.lab."]
    );
    assert_eq!(
        dig(&lab, "AAAA", "ns1.good.gov.lab"),
        [a.ns_v6[0].to_string()]
    );
    assert!(dig(&lab, "AAAA", "ns2.v4only.gov.lab").is_empty());
    assert_eq!(dig(&lab, "A", "ns2.v4only.gov.lab"), [a.ns_v4.to_string()]);
    for (server, domain) in [
        (a.ns_v6[0], "good.gov.lab"),
        (a.ns_v6[1], "good.gov.lab"),
        (a.ns_v6[2], "partial.gov.lab"),
        (a.ns_v6[3], "v4only.gov.lab"),
        (a.ns_v6[4], "mismatch.gov.lab"),
    ] {
        let flags = soa_flags(&lab, &server.to_string(), domain).unwrap();
        assert!(
            flags.split_whitespace().any(|f| f == "aa"),
            "{domain} at {server}: {flags}"
        );
    }

    // Mail.
    assert_eq!(dig(&lab, "MX", "good.gov.lab"), ["10 mail.good.gov.lab."]);
    assert_eq!(
        dig(&lab, "MX", "partial.gov.lab"),
        ["10 mail.partial.gov.lab."]
    );
    assert!(dig(&lab, "MX", "v4only.gov.lab").is_empty());
    assert!(dig(&lab, "AAAA", "mail.partial.gov.lab").is_empty());
    assert_eq!(
        dig(&lab, "AAAA", "mail.good.gov.lab"),
        [a.mail_v6.to_string()]
    );
    let greeting = smtp_greeting(&lab, &a.mail_v6.to_string()).unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");

    // Web: good over both families, same page and certificate.
    let good6 = curl(&lab, "-6", "https://good.gov.lab/").unwrap();
    let good4 = curl(&lab, "-4", "https://good.gov.lab/").unwrap();
    assert_eq!(good6, good4);
    assert!(good6.contains("static.good.gov.lab/app.js"), "{good6}");
    assert_eq!(
        certificate(&lab, &a.web_v6.to_string(), "good.gov.lab"),
        certificate_v4(&lab, &a.web_v4.to_string(), "good.gov.lab")
    );
    curl(&lab, "-6", "https://static.good.gov.lab/app.js").unwrap();
    curl(&lab, "-6", "https://static.good.gov.lab/site.css").unwrap();
    curl(&lab, "-6", "https://good.gov.lab/logo.png").unwrap();

    // partial: its page's script host has no AAAA; its image host has one where nothing
    // serves (refused over IPv6, fine over IPv4).
    let partial = curl(&lab, "-6", "https://partial.gov.lab/").unwrap();
    assert!(partial.contains("https://cdn.v4.lab/lib.js"), "{partial}");
    assert!(partial.contains("https://img.partial.gov.lab/banner.png"));
    assert!(dig(&lab, "AAAA", "cdn.v4.lab").is_empty());
    curl(&lab, "-4", "https://cdn.v4.lab/lib.js").unwrap();
    assert_eq!(
        dig(&lab, "AAAA", "img.partial.gov.lab"),
        [a.dead_v6.to_string()]
    );
    let refused = curl(&lab, "-6", "https://img.partial.gov.lab/banner.png").unwrap_err();
    assert!(
        refused.contains("refused") || refused.contains("Couldn't connect"),
        "{refused}"
    );
    curl(&lab, "-4", "https://img.partial.gov.lab/banner.png").unwrap();

    // v4only: no AAAA, fine over IPv4.
    assert!(dig(&lab, "AAAA", "v4only.gov.lab").is_empty());
    curl(&lab, "-4", "https://v4only.gov.lab/").unwrap();

    // mismatch: another page and certificate (same CA, so both verify) over IPv6.
    let m6 = curl(&lab, "-6", "https://mismatch.gov.lab/").unwrap();
    let m4 = curl(&lab, "-4", "https://mismatch.gov.lab/").unwrap();
    assert_ne!(m6, m4);
    assert_ne!(
        certificate(&lab, &a.mismatch_v6.to_string(), "mismatch.gov.lab"),
        certificate_v4(&lab, &a.web_v4.to_string(), "mismatch.gov.lab")
    );
}
