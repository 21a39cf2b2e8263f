//! The government readiness lab (`sixmap_tests::lab::readiness`, issue #20): first checked
//! with independent tools (dig, curl, openssl, bash's /dev/tcp) against the truth it states.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::lab::readiness::{DNS64_PREFIX, DNS64_PROBE, ReadinessLab, readiness};
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
    dig_from(lab, PROBE, rtype, name)
}

/// [`dig`] from `node`, through that node's resolver.
fn dig_from(lab: &ReadinessLab, node: &str, rtype: &str, name: &str) -> Vec<String> {
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
/// The SHA-256 fingerprint of the certificate `address` (an IPv6 or IPv4 address) serves for
/// `host`; asserted to be one, so that comparing two cannot pass on two empty outputs.
fn certificate(lab: &ReadinessLab, address: &str, host: &str) -> String {
    let connect = match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => format!("[{address}]:443"),
        _ => format!("{address}:443"),
    };
    let script = format!(
        "openssl s_client -connect '{connect}' -servername {host} </dev/null 2>/dev/null \
         | openssl x509 -noout -fingerprint -sha256"
    );
    let output = lab.lab.exec(PROBE, &["sh", "-c", &script]).unwrap();
    let out = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(out.contains("Fingerprint="), "no certificate: {out}");
    out
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
        certificate(&lab, &a.web_v4.to_string(), "good.gov.lab")
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

    // DNS64 (the resolver of p2): AAAA made up under the prefix for every name with A only,
    // the real AAAA of the others, and the prefix told by ipv4only.arpa.
    let synthesised = |v4: std::net::Ipv4Addr| {
        std::net::Ipv6Addr::from_bits(DNS64_PREFIX.to_bits() | u128::from(v4.to_bits())).to_string()
    };
    for (name, v4) in [
        ("mail.partial.gov.lab", a.mail_v4),
        ("ns2.v4only.gov.lab", a.ns_v4),
        ("cdn.v4.lab", a.web_v4),
        ("v4only.gov.lab", a.web_v4),
    ] {
        assert_eq!(
            dig_from(&lab, DNS64_PROBE, "AAAA", name),
            [synthesised(v4)],
            "{name}"
        );
    }
    assert_eq!(
        dig_from(&lab, DNS64_PROBE, "AAAA", "partial.gov.lab"),
        [a.web_v6.to_string()]
    );
    assert_eq!(
        dig_from(&lab, DNS64_PROBE, "AAAA", "ipv4only.arpa"),
        [
            synthesised("192.0.0.170".parse().unwrap()),
            synthesised("192.0.0.171".parse().unwrap())
        ]
    );

    // mismatch: another page and certificate (same CA, so both verify) over IPv6.
    let m6 = curl(&lab, "-6", "https://mismatch.gov.lab/").unwrap();
    let m4 = curl(&lab, "-4", "https://mismatch.gov.lab/").unwrap();
    assert_ne!(m6, m4);
    assert_ne!(
        certificate(&lab, &a.mismatch_v6.to_string(), "mismatch.gov.lab"),
        certificate(&lab, &a.web_v4.to_string(), "mismatch.gov.lab")
    );
}

/// Behind DNS64, a probe's own measurement (`sixmap-probe measure readiness`) finds the
/// network's prefix by RFC 7050 and counts no made-up AAAA as a name's own, whichever name it
/// is: partial.gov.lab's web host has its own AAAA (so the web host's answer reveals no
/// prefix), but its mail exchanger and its script's host have only A records.
#[test]
fn a_probe_behind_dns64_counts_no_synthesised_aaaa() {
    lab_or_skip!();
    let lab = readiness().expect("readiness lab");
    let measure = |domain: &str| -> serde_json::Value {
        let ca = lab.ca.ca_cert.display().to_string();
        let output = lab
            .lab
            .command(
                DNS64_PROBE,
                sixmap_tests::binary("sixmap-probe").to_str().unwrap(),
            )
            .args([
                "measure",
                "readiness",
                domain,
                "--json",
                "--lab-mode",
                "--ca-file",
                &ca,
                "--timeout-ms",
                "20000",
            ])
            .output()
            .expect("run sixmap-probe measure readiness");
        assert!(output.status.success(), "{}", text(&output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        json["outcome"].clone()
    };
    let partial = measure("partial.gov.lab");
    assert_eq!(partial["kind"], "readiness", "{partial:#}");
    assert_eq!(
        partial["dns64_prefix"],
        DNS64_PREFIX.to_string(),
        "{partial:#}"
    );
    assert_eq!(partial["web"]["aaaa"], "yes", "{partial:#}");
    assert_eq!(partial["web"]["https_v6_status"], 200, "{partial:#}");
    let mx = &partial["mail"]["exchangers"][0];
    assert_eq!(mx["name"], "mail.partial.gov.lab", "{partial:#}");
    assert_eq!(mx["has_aaaa"], "no", "{partial:#}");
    assert!(mx["address"].is_null() && mx["smtp_v6"].is_null(), "{mx:#}");
    assert_eq!(mx["detail"], "AAAA only synthesised by DNS64", "{mx:#}");
    let hosts = partial["subresources"]["hosts"].as_array().unwrap();
    let cdn = hosts.iter().find(|h| h["host"] == "cdn.v4.lab").unwrap();
    assert_eq!(cdn["has_aaaa"], "no", "{cdn:#}");
    assert!(cdn["fetched_v6"].is_null(), "{cdn:#}");

    // A domain without any AAAA of its own: web host, one NS, no MX.
    let v4only = measure("v4only.gov.lab");
    assert_eq!(v4only["web"]["aaaa"], "no", "{v4only:#}");
    assert!(v4only["web"]["v6_address"].is_null(), "{v4only:#}");
    let ns2 = v4only["dns"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ns2.v4only.gov.lab")
        .unwrap()
        .clone();
    assert_eq!(ns2["has_aaaa"], "no", "{ns2:#}");
    assert!(ns2["answers_over_v6"].is_null(), "{ns2:#}");
}

// ---------------------------------------------------------------------------------------------
// End to end: a collector and the lab's two probes run the government-readiness template; the
// report's per-domain and per-entity scores equal the lab's truth.

use sixmap_tests::lab::readiness::{COLLECTOR, DOMAINS, ENTITIES, entity_score};
use sixmap_tests::{binary, collector_command, wait_for};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const API: &str = "http://[::1]:7480";

/// The template as shipped, with the lab's targets, a spread of seconds instead of an hour,
/// and without the `v6-works` selection: the lab's fresh probes have sent no IPv6 result
/// yet, so the collector has not given them that tag when the campaign picks its probes.
fn lab_spec() -> String {
    let template = include_str!("../../deploy/campaigns/government-readiness.toml");
    assert!(template.contains("tags = [\"v6-works\"]\n"));
    let spec = template
        .replace("tags = [\"v6-works\"]\n", "")
        .replace("spread_s = 14400", "spread_s = 2")
        .replace("targets = []", "targets = [\"good.gov.lab\"]");
    assert_ne!(spec, template, "the template changed: update this test");
    spec
}

fn cli(lab: &ReadinessLab, token: &str, args: &[&str]) -> std::process::Output {
    lab.lab
        .command(COLLECTOR, binary("sixmap-collector").to_str().unwrap())
        .env("SIXMAP_API_TOKEN", token)
        .arg("campaign")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run sixmap-collector campaign")
}

fn api(lab: &ReadinessLab, token: &str, path: &str) -> Option<serde_json::Value> {
    let bearer = format!("Authorization: Bearer {token}");
    let out = lab.lab.exec_unchecked(
        COLLECTOR,
        &["curl", "-sf", "-H", &bearer, &format!("{API}{path}")],
    );
    serde_json::from_slice(&out.stdout).ok()
}

fn logs(dir: &Path, what: &str) -> String {
    let mut all = format!("{what}\n");
    for name in ["collector", "p1", "p2"] {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        let tail: Vec<_> = log.lines().rev().take(40).collect();
        all.push_str(&format!(
            "--- {name}:\n{}\n",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    all
}

fn close(value: &serde_json::Value, want: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - want).abs() < 1e-9)
}

#[test]
fn a_readiness_campaign_scores_the_lab_truth() {
    lab_or_skip!();
    let started = Instant::now();
    let mut lab = readiness().expect("readiness lab");
    let dir = lab.lab.scratch_dir().to_owned();
    let data = dir.join("collector-data");
    let data_arg = data.to_str().unwrap().to_owned();
    let import = std::process::Command::new(binary("sixmap-collector"))
        .args(["import-prefixes", "--data-dir", &data_arg, "--asn"])
        .arg(&lab.asn_csv)
        .arg("--country")
        .arg(&lab.country_csv)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", text(&import));
    let admin = collector_command(&[
        "api-token",
        "create",
        "--data-dir",
        &data_arg,
        "--role",
        "admin",
        "--name",
        "lab-admin",
    ]);
    let campaigner = collector_command(&[
        "api-token",
        "create",
        "--data-dir",
        &data_arg,
        "--role",
        "campaigner",
        "--name",
        "regulator",
    ]);
    // Enrollment tokens too, while the collector is stopped (its store is one process's).
    let enrollment: Vec<String> = lab
        .probes
        .iter()
        .map(|_| {
            collector_command(&[
                "token",
                "create",
                "--data-dir",
                &data_arg,
                "--owner",
                "lab",
                "--expires-in",
                "1h",
            ])
        })
        .collect();
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\ngrpc_listen = \"[{}]:7400\"\nhttp_listen = \"[::]:7480\"\n\
             heartbeat_interval_s = 1\nlab_mode = true\n[publication]\nmin_probes = 1\n",
            lab.collector
        ),
    )
    .unwrap();
    let mut command = lab
        .lab
        .command(COLLECTOR, binary("sixmap-collector").to_str().unwrap());
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info,sixmap_collector=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("collector.log")).unwrap());
    lab.lab.spawn(COLLECTOR, command).unwrap();
    wait_for(Duration::from_secs(15), || {
        api(&lab, &admin, "/api/v1/campaigns")
    })
    .unwrap_or_else(|| panic!("{}", logs(&dir, "collector never answered")));

    // The probes trust the lab CA, as a regulator's probes trust the public ones.
    for (p, token) in lab.probes.clone().into_iter().zip(&enrollment) {
        let config = dir.join(format!("{}.toml", p.node));
        std::fs::write(
            &config,
            format!(
                "collector = \"https://[{}]:7400\"\nstate_dir = {:?}\nenrollment_token = \"{token}\"\n\
                 hostname = \"{}\"\nlab_mode = true\nextra_ca_file = {:?}\n\
                 packet_budget_per_minute = 6000\n",
                lab.collector,
                dir.join(format!("{}-state", p.node)),
                p.node,
                lab.ca.ca_cert,
            ),
        )
        .unwrap();
        let mut command = lab
            .lab
            .command(&p.node, binary("sixmap-probe").to_str().unwrap());
        command
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info,sixmap_probe=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{}.log", p.node))).unwrap());
        lab.lab.spawn(&p.node, command).unwrap();
    }
    wait_for(Duration::from_secs(30), || {
        let probes = api(&lab, &admin, "/api/v1/probes")?;
        let ready = probes
            .as_array()?
            .iter()
            .filter(|p| p["last_seen"].is_number() && p["origin"]["asn"].is_number())
            .count();
        (ready == lab.probes.len()).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", logs(&dir, "probes did not all connect")));
    eprintln!("lab, collector and probes up after {:?}", started.elapsed());

    // The template with the entities file: their domains join good.gov.lab as targets.
    let spec = dir.join("readiness.toml");
    std::fs::write(&spec, lab_spec()).unwrap();
    let entities = dir.join("entities.csv");
    let mut lines = String::from("# entity,domain\n");
    for (entity, domains) in ENTITIES {
        for domain in domains {
            lines.push_str(&format!("{entity},{domain}\n"));
        }
    }
    std::fs::write(&entities, lines).unwrap();
    let out = cli(
        &lab,
        &campaigner,
        &[
            "create",
            "--collector",
            API,
            "--spec",
            spec.to_str().unwrap(),
            "--entities-file",
            entities.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", logs(&dir, &text(&out)));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // A daily campaign is never "complete": wait for each probe's first result of each
    // domain (4 domains x 2 probes), then read the report.
    let expected = DOMAINS.len() * lab.probes.len();
    wait_for(Duration::from_secs(90), || {
        let shown = api(&lab, &admin, &format!("/api/v1/campaigns/{id}"))?;
        (shown["progress"]["results_in"].as_u64()? >= expected as u64).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", logs(&dir, "the readiness results did not all come")));
    // The trend comes from rows the collector folds from stored results about every half
    // second: wait until today's has every domain.
    let report_json = || {
        let out = cli(
            &lab,
            &campaigner,
            &["report", &id, "--collector", API, "--format", "json"],
        );
        assert!(out.status.success(), "{}", logs(&dir, &text(&out)));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let report = wait_for(Duration::from_secs(15), || {
        let report = report_json();
        let today = report["readiness"]["trend"]["days"]
            .as_array()?
            .last()?
            .clone();
        DOMAINS
            .iter()
            .all(|d| today["domains"][d.name].is_number())
            .then_some(report)
    })
    .unwrap_or_else(|| panic!("{:#}", report_json()["readiness"]["trend"]));
    eprintln!("report after {:?}", started.elapsed());
    let readiness = &report["readiness"];
    assert_eq!(readiness["method"], "sixmap-readiness/1", "{report:#}");

    // Per domain: every component and the score, from both probes.
    let domains = readiness["domains"].as_array().unwrap();
    assert_eq!(domains.len(), DOMAINS.len(), "{readiness:#}");
    for truth in DOMAINS {
        let d = domains
            .iter()
            .find(|d| d["domain"] == truth.name)
            .unwrap_or_else(|| panic!("no {} in {readiness:#}", truth.name));
        assert_eq!(d["probes"], 2, "{d:#}");
        assert_eq!(d["entities"], serde_json::json!([truth.entity]), "{d:#}");
        for (component, want) in [
            ("dns", truth.dns),
            ("mail", truth.mail),
            ("web", truth.web),
            ("page", truth.page),
        ] {
            match want {
                Some(want) => assert!(
                    close(&d[component]["score"], want),
                    "{} {component}: {d:#}",
                    truth.name
                ),
                None => assert!(
                    d[component]["score"].is_null() && d[component]["not_applicable"] == "no_mx",
                    "{} {component}: {d:#}",
                    truth.name
                ),
            }
        }
        assert!(close(&d["score"], truth.score()), "{}: {d:#}", truth.name);
        // p2 asks a DNS64 resolver: had it taken a made-up AAAA for a name's own, it would
        // differ from p1 (mail.partial.gov.lab "not reachable" instead of "no AAAA"), and
        // the median of two would not be the truth, nor every failure seen by both.
        assert_eq!(d["inconclusive"], serde_json::json!([]), "{d:#}");
        // What failed, and why: exactly the lab's failures, each seen by both probes.
        let mut failures: Vec<(String, String)> = d["failures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                assert_eq!(f["probes"], 2, "{f}");
                (
                    f["host"].as_str().unwrap().to_owned(),
                    f["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        failures.sort();
        let mut want: Vec<(String, String)> = truth
            .failing
            .iter()
            .map(|(h, r)| ((*h).to_owned(), (*r).to_owned()))
            .collect();
        want.sort();
        assert_eq!(failures, want, "{}: {d:#}", truth.name);
    }
    // Per entity: the mean of its domains.
    for (name, _) in ENTITIES {
        let e = readiness["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {readiness:#}"));
        assert!(close(&e["score"], entity_score(name)), "{e:#}");
    }
    // Today's trend has the same scores.
    let days = readiness["trend"]["days"].as_array().unwrap();
    let today = days.last().unwrap();
    for truth in DOMAINS {
        assert!(
            close(&today["domains"][truth.name], truth.score()),
            "{today:#}"
        );
    }

    // The HTML report names the IPv4-only script host and why, in English and in Arabic; the
    // CSV carries the scores.
    let out = cli(
        &lab,
        &campaigner,
        &["report", &id, "--collector", API, "--format", "html"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let html = String::from_utf8_lossy(&out.stdout);
    assert!(html.contains("Government IPv6 readiness"), "{html}");
    assert!(
        html.contains("IPv6-only page: cdn.v4.lab: no AAAA"),
        "{html}"
    );
    assert!(html.contains("Ministry of Agriculture"), "{html}");
    let out = cli(
        &lab,
        &campaigner,
        &["report", &id, "--collector", API, "--format", "csv"],
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.lines()
            .any(|l| l.starts_with("readiness_failure,partial.gov.lab,")
                && l.contains("page:no_aaaa,cdn.v4.lab")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("readiness_entity,Ministry of Digital Affairs,")),
        "{csv}"
    );
}
