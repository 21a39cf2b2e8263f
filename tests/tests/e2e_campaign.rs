//! Issue #8 end to end: a collector and five probes in three operators' lab networks; a
//! regulator creates a campaign over the lab's targets with the CLI, follows it, and the report's
//! per-target and per-operator figures equal the lab's ground truth. Invalid specs and an owner
//! over budget get clear errors naming the problem.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sixmap_tests::lab::campaign::{COLLECTOR, CampaignLab, campaign};
use sixmap_tests::lab::scenarios::names;
use sixmap_tests::{binary, collector_command, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const API: &str = "http://[::1]:7480";

const SPEC: &str = r#"
name = "Lab IPv6 readiness"
description = "The lab's four targets from every lab operator."
targets = ["v6only.lab", "dual.lab", "broken.lab", "v4only.lab"]

[[measurements]]
kind = "ping"
timeout_ms = 2000
count = 2
interval_ms = 200

[[measurements]]
kind = "dns"
query_name = "{target}"
query_type = "AAAA"
system_resolver = true
timeout_ms = 2000

[[measurements]]
kind = "dns"
query_name = "{target}"
query_type = "A"
system_resolver = true
timeout_ms = 2000

[[measurements]]
kind = "http"
family = "both"
url = "http://{target}/"
timeout_ms = 3000

[[measurements]]
kind = "tls"
family = "both"
timeout_ms = 3000

[selection]
countries = ["XA", "XB"]
per_operator = 2

[schedule]
spread_s = 2
"#;

/// `sixmap-collector campaign …` as the campaigner holding `token`.
fn cli(lab: &CampaignLab, token: &str, args: &[&str]) -> Output {
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

/// GET on the collector's API with `token` (raw data needs one).
fn api(lab: &CampaignLab, token: &str, path: &str) -> Option<serde_json::Value> {
    let bearer = format!("Authorization: Bearer {token}");
    let out = lab.lab.exec_unchecked(
        COLLECTOR,
        &["curl", "-sf", "-H", &bearer, &format!("{API}{path}")],
    );
    serde_json::from_slice(&out.stdout).ok()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A campaign lab with its collector and one probe per probe host running, every probe
/// connected with its operator's origin.
struct Running {
    lab: CampaignLab,
    dir: PathBuf,
    collector_log: PathBuf,
    /// An admin's API token (reads the API).
    admin: String,
    /// A campaigner's (its name, `regulator-xa`, owns the campaigns).
    campaigner: String,
}

impl Running {
    fn log(&self, what: &str) -> String {
        log_of(&self.lab, &self.dir, &self.collector_log, what)
    }
}

/// The collector's log and the last lines of each probe's, headed by `what`.
fn log_of(lab: &CampaignLab, dir: &Path, collector_log: &Path, what: &str) -> String {
    let mut all = format!(
        "{what}\n--- collector:\n{}",
        std::fs::read_to_string(collector_log).unwrap_or_default()
    );
    for p in &lab.probes {
        let path = dir.join(format!("{}.log", p.node));
        let probe_log = std::fs::read_to_string(path).unwrap_or_default();
        let tail: Vec<_> = probe_log.lines().rev().take(30).collect();
        all.push_str(&format!(
            "\n--- {}:\n{}",
            p.node,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    all
}

/// `extra_config` is added to the collector's configuration.
fn start(mut lab: CampaignLab, started: Instant, extra_config: &str) -> Running {
    let dir = lab.lab.scratch_dir().to_owned();
    let data = dir.join("collector-data");
    let collector_bin = binary("sixmap-collector");
    let import = std::process::Command::new(&collector_bin)
        .args([
            "import-prefixes",
            "--data-dir",
            data.to_str().unwrap(),
            "--asn",
        ])
        .arg(&lab.asn_csv)
        .arg("--country")
        .arg(&lab.country_csv)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", text(&import.stderr));

    // Tokens, made while the collector is stopped (its store is one process's): an admin's for
    // reading the API, a campaigner's (its name is the campaigns' owner), and one enrollment
    // token per probe (single use).
    let data_arg = data.to_str().unwrap();
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
    let campaigner = collector_command(&[
        "api-token",
        "create",
        "--data-dir",
        data_arg,
        "--role",
        "campaigner",
        "--name",
        "regulator-xa",
    ]);
    let enrollment: Vec<String> = lab
        .probes
        .iter()
        .map(|_| {
            collector_command(&[
                "token",
                "create",
                "--data-dir",
                data_arg,
                "--owner",
                "lab",
                "--expires-in",
                "1h",
            ])
        })
        .collect();

    // The owner limit leaves room for one run of this campaign (140 probe-tests), not two.
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\ngrpc_listen = \"[{}]:7400\"\nhttp_listen = \"[::]:7480\"\n\
             heartbeat_interval_s = 1\nlab_mode = true\n\
             campaign_owner_hourly_limit = 150\n{extra_config}",
            lab.collector
        ),
    )
    .unwrap();
    let collector_log = dir.join("collector.log");
    let mut command = lab.lab.command(COLLECTOR, collector_bin.to_str().unwrap());
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info,sixmap_collector=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&collector_log).unwrap());
    lab.lab.spawn(COLLECTOR, command).unwrap();
    wait_for(Duration::from_secs(15), || {
        api(&lab, &admin, "/healthz").or_else(|| api(&lab, &admin, "/api/v1/campaigns"))
    })
    .unwrap_or_else(|| {
        panic!(
            "{}",
            log_of(&lab, &dir, &collector_log, "collector never answered")
        )
    });

    // One probe per lab probe host, each in its own namespace.
    let probe_bin = binary("sixmap-probe");
    for (p, token) in lab.probes.clone().into_iter().zip(&enrollment) {
        let config = dir.join(format!("{}.toml", p.node));
        std::fs::write(
            &config,
            format!(
                "collector = \"https://[{}]:7400\"\nstate_dir = {:?}\nenrollment_token = \"{token}\"\n\
                 hostname = \"{}\"\nlab_mode = true\n",
                lab.collector,
                dir.join(format!("{}-state", p.node)),
                p.node
            ),
        )
        .unwrap();
        let mut command = lab.lab.command(&p.node, probe_bin.to_str().unwrap());
        command
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info,sixmap_probe=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{}.log", p.node))).unwrap());
        lab.lab.spawn(&p.node, command).unwrap();
    }
    // Every probe connected, with its operator's origin from the imported prefix data.
    wait_for(Duration::from_secs(20), || {
        let probes = api(&lab, &admin, "/api/v1/probes")?;
        let ready = probes
            .as_array()?
            .iter()
            .filter(|p| p["last_seen"].is_number() && p["origin"]["asn"].is_number())
            .count();
        (ready == lab.probes.len()).then_some(())
    })
    .unwrap_or_else(|| {
        let what = "probes did not all connect with an origin";
        panic!("{}", log_of(&lab, &dir, &collector_log, what))
    });
    eprintln!(
        "lab and {} probes up after {:?}",
        lab.probes.len(),
        started.elapsed()
    );
    Running {
        lab,
        dir,
        collector_log,
        admin,
        campaigner,
    }
}

#[test]
fn a_campaign_over_lab_targets_reports_the_lab_truth() {
    let started = Instant::now();
    // Five probes in three operators: every figure published (the minimum-sample rule is
    // tested in the collector's unit and browser tests), so the figures meet the lab's truth.
    let running = start(
        campaign().expect("campaign lab"),
        started,
        "[publication]\nmin_probes = 1\n",
    );
    let Running {
        ref lab,
        ref dir,
        ref campaigner,
        ..
    } = running;
    let log = |what: &str| running.log(what);

    // Invalid specs, each with the field named.
    let bad_dir = dir.join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    for (name, spec, field, reason) in [
        (
            "unknown-kind",
            SPEC.replace("kind = \"ping\"", "kind = \"pong\""),
            "measurements[0].kind",
            "pong",
        ),
        (
            "empty-targets",
            SPEC.replace(
                "targets = [\"v6only.lab\", \"dual.lab\", \"broken.lab\", \"v4only.lab\"]",
                "targets = []",
            ),
            "targets",
            "at least one target",
        ),
        (
            "bad-interval",
            // Under lab mode's minimum (5 s; 60 s otherwise).
            SPEC.replace("spread_s = 2", "every_s = 4"),
            "schedule.every_s",
            "minimum 5",
        ),
        (
            "no-probe",
            SPEC.replace("countries = [\"XA\", \"XB\"]", "countries = [\"XC\"]"),
            "selection.countries",
            "no known probe is in XC",
        ),
        (
            "no-asn-probe",
            SPEC.replace("per_operator = 2", "asns = [64999]"),
            "selection.asns",
            "AS64999",
        ),
    ] {
        let path = bad_dir.join(format!("{name}.toml"));
        std::fs::write(&path, spec).unwrap();
        let out = cli(
            lab,
            campaigner,
            &[
                "create",
                "--collector",
                API,
                "--owner",
                "regulator-xa",
                "--spec",
                path.to_str().unwrap(),
            ],
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            stderr.contains(&format!("`{field}`")) && stderr.contains(reason),
            "{name}: {stderr}"
        );
    }

    // The campaign: created with the CLI, followed, reported.
    let spec_path = dir.join("lab-campaign.toml");
    std::fs::write(&spec_path, SPEC).unwrap();
    let out = cli(
        lab,
        campaigner,
        &[
            "create",
            "--collector",
            API,
            "--owner",
            "regulator-xa",
            "--spec",
            spec_path.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", log(&text(&out.stderr)));
    let id = text(&out.stdout).trim().to_owned();
    // The same owner again, while the first runs: over the owner's hourly limit.
    let out = cli(
        lab,
        campaigner,
        &[
            "create",
            "--collector",
            API,
            "--owner",
            "regulator-xa",
            "--spec",
            spec_path.to_str().unwrap(),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("over budget")
            && stderr.contains("regulator-xa")
            && stderr.contains("150"),
        "{stderr}"
    );

    let out = cli(
        lab,
        campaigner,
        &[
            "report",
            &id,
            "--collector",
            API,
            "--wait",
            "--timeout-s",
            "40",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", log(&text(&out.stderr)));
    let progress_lines = text(&out.stderr);
    assert!(
        progress_lines.contains("results ("),
        "no progress shown: {progress_lines}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("report after {:?}", started.elapsed());

    assert_eq!(report["methodology_version"], "sixmap-campaign-report/3");
    assert_eq!(
        report["campaign"]["spec"]["targets"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(
        report["campaign"]["spec_text"]
            .as_str()
            .unwrap()
            .contains("Lab IPv6 readiness")
    );
    let progress = &report["progress"];
    assert_eq!(progress["probes_assigned"], 5, "{progress}");
    assert_eq!(progress["tasks"], 28, "{progress}");
    assert_eq!(progress["results_in"], 140, "{progress}");
    assert_eq!(progress["complete"], true, "{progress}");

    let target = |name: &str| {
        report["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report:#}"))
            .clone()
    };
    // (target, AAAA published, share reachable over v6 and HTTP over v6 working, per operator)
    for (name, aaaa, works) in [
        (names::V6_ONLY, true, 1.0),
        (names::DUAL_STACK, true, 1.0),
        (names::BROKEN_V6, true, 0.0),
        (names::V4_ONLY, false, 0.0),
    ] {
        let t = target(name);
        assert_eq!(t["aaaa_published"], aaaa, "{name}: {t:#}");
        // Every probe's resolver works: five votes, all the same.
        let votes = if aaaa { "yes" } else { "no" };
        assert_eq!(t["aaaa"]["verdict"], votes, "{name}: {t:#}");
        assert_eq!(t["aaaa"][votes], 5, "{name}: {t:#}");
        assert_eq!(
            t["aaaa"]["excluded"],
            serde_json::json!([]),
            "{name}: {t:#}"
        );
        for figure in ["reachable_v6", "http_v6_works"] {
            let f = &t[figure];
            assert_eq!(f["overall"]["share"], works, "{name} {figure}: {f:#}");
            let operators = f["operators"].as_array().unwrap();
            assert_eq!(operators.len(), 3, "{name} {figure}: {f:#}");
            for o in operators {
                let probes = lab.probes.iter().filter(|p| o["asn"] == p.asn).count();
                assert_eq!(o["probes"], probes, "{name} {figure}: {o}");
                assert_eq!(o["share"]["share"], works, "{name} {figure}: {o}");
                assert_eq!(o["share"]["n"], probes as f64, "{name} {figure}: {o}");
            }
        }
    }
    // Same certificate and content over both families where both exist; nothing to compare
    // where one family has no address (v6-only, v4-only) or no server (broken).
    let dual = target(names::DUAL_STACK);
    for key in ["same_certificate_v4_v6", "same_content_v4_v6"] {
        assert_eq!(dual[key]["compared"], 5, "{dual:#}");
        assert_eq!(dual[key]["same"], 5, "{dual:#}");
        for other in [names::V6_ONLY, names::BROKEN_V6, names::V4_ONLY] {
            assert!(
                target(other)[key].is_null(),
                "{other} {key}: {:#}",
                target(other)
            );
        }
    }
    // Per operator: each probe reaches 2 of the 3 targets with AAAA; ties ranked by sample
    // size, then ASN.
    let operators = report["operators"].as_array().unwrap();
    let ranking: Vec<_> = operators
        .iter()
        .map(|o| o["asn"].as_u64().unwrap())
        .collect();
    assert_eq!(ranking, [64500, 64502, 64501], "{operators:#?}");
    // The same share everywhere: the intervals overlap, every operator ranks 1–3.
    for o in operators {
        assert_eq!(
            o["rank_range"],
            serde_json::json!({"best": 1, "worst": 3}),
            "{o}"
        );
    }
    for o in operators {
        let probes = lab.probes.iter().filter(|p| o["asn"] == p.asn).count() as f64;
        let country = lab
            .probes
            .iter()
            .find(|p| o["asn"] == p.asn)
            .unwrap()
            .country;
        assert_eq!(o["country"], country);
        assert_eq!(o["v6_reachability"]["n"], probes * 3.0, "{o}");
        assert_eq!(o["v6_reachability"]["successes"], probes * 2.0, "{o}");
        let low = o["v6_reachability"]["low"].as_f64().unwrap();
        let high = o["v6_reachability"]["high"].as_f64().unwrap();
        assert!(low < 2.0 / 3.0 && 2.0 / 3.0 < high, "{o}");
        assert!(o["median_v6_rtt_ms"].as_f64().unwrap() > 0.0, "{o}");
    }

    // Declared figures appear beside the measured ones; CSV and HTML carry the method and spec.
    let declared = dir.join("declared.csv");
    std::fs::write(&declared, "asn,metric,value,as_of,source\n64500,ipv6_activation_rate,0.8,2026-09-30,\"opa Q3 report\"\n").unwrap();
    let out = cli(
        lab,
        campaigner,
        &[
            "import-declared",
            &id,
            declared.to_str().unwrap(),
            "--collector",
            API,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv_path = dir.join("report.csv");
    let out = cli(
        lab,
        campaigner,
        &[
            "report",
            &id,
            "--collector",
            API,
            "--format",
            "csv",
            "--output",
            csv_path.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(
        csv.contains("meta,,,,,methodology_version,sixmap-campaign-report/3"),
        "{csv}"
    );
    assert!(csv.contains("campaign_spec"), "{csv}");
    assert!(
        csv.contains("operator,,64500,Lab operator opa,XA,ipv6_activation_rate,0.8,"),
        "{csv}"
    );
    assert!(
        csv.contains("operator,,64501,Lab operator opb,XA,v6_reachability,0.6667,2.0000,3.0000"),
        "{csv}"
    );
    let out = cli(
        lab,
        campaigner,
        &["report", &id, "--collector", API, "--format", "html"],
    );
    let html = text(&out.stdout);
    assert!(
        html.contains("sixmap-campaign-report/3")
            && html.contains("ipv6_activation_rate")
            && html.contains("per_operator = 2"),
        "{html}"
    );
    // Issue #20: the figures as a PDF a regulator can attach (headless Chromium in the
    // collector's namespace), readable as text, and public once published.
    let pdf_path = dir.join("report.pdf");
    let out = cli(
        lab,
        campaigner,
        &[
            "report",
            &id,
            "--collector",
            API,
            "--format",
            "pdf",
            "--output",
            pdf_path.to_str().unwrap(),
        ],
    );
    if std::path::Path::new("/usr/bin/chromium").exists() {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let pdf = std::fs::read(&pdf_path).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        // Kept for people to look at, like the browser test's screenshots.
        let kept =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-campaign-report.pdf");
        std::fs::write(&kept, &pdf).unwrap();
        eprintln!("PDF report in {}", kept.display());
        if let Ok(words) = std::process::Command::new("pdftotext")
            .arg(&pdf_path)
            .arg("-")
            .output()
        {
            let words = text(&words.stdout);
            for needle in ["Lab IPv6 readiness", "Period measured", "AS64501", "DB-IP"] {
                assert!(words.contains(needle), "{needle} not in the PDF:\n{words}");
            }
        }
    } else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must make PDFs: install chromium"
        );
    }
    let out = cli(lab, campaigner, &["publish", &id, "--collector", API]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // No token: the public URL (the public cache may hold the 404 of nothing for 2 s; no
    // one asked before).
    let public = lab.lab.exec_unchecked(
        COLLECTOR,
        &["curl", "-sf", &format!("{API}/reports/{id}.json")],
    );
    let public: serde_json::Value = serde_json::from_slice(&public.stdout).unwrap();
    assert_eq!(public["campaign"]["name"], "Lab IPv6 readiness", "{public}");
    assert!(public["campaign"]["published_at"].is_i64(), "{public}");

    let out = cli(lab, campaigner, &["list", "--collector", API]);
    assert!(
        text(&out.stdout).contains("Lab IPv6 readiness"),
        "{}",
        text(&out.stdout)
    );
    eprintln!("done after {:?}", started.elapsed());
}

/// Issue #20: one probe's resolver is broken (its resolv.conf names an address where nothing
/// answers DNS); the others work. "AAAA published" must still be the truth: yes for a name with
/// AAAA, no for one without, the broken probe excluded with its reason, never a "no" from it.
#[test]
fn a_broken_resolver_never_makes_aaaa_published_no() {
    let started = Instant::now();
    let lab = campaign().expect("campaign lab");
    // opb-p1 asks the v6-only web host, where nothing listens on port 53.
    let broken_node = "opb-p1";
    let nowhere = lab.lab.node("v6only").v6();
    lab.lab
        .set_resolver(broken_node, std::net::IpAddr::V6(nowhere))
        .unwrap();
    let running = start(lab, started, "");
    let lab = &running.lab;
    let spec = r#"
name = "AAAA with a broken resolver"
targets = ["dual.lab", "v4only.lab"]

[[measurements]]
kind = "dns"
query_name = "{target}"
query_type = "AAAA"
system_resolver = true
timeout_ms = 2000

[[measurements]]
kind = "dns"
query_name = "{target}"
query_type = "A"
system_resolver = true
timeout_ms = 2000

[selection]
countries = ["XA", "XB"]
per_operator = 2

[schedule]
spread_s = 2
"#;
    let spec_path = running.dir.join("broken-resolver.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let out = cli(
        lab,
        &running.campaigner,
        &[
            "create",
            "--collector",
            API,
            "--owner",
            "regulator-xa",
            "--spec",
            spec_path.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", running.log(&text(&out.stderr)));
    let id = text(&out.stdout).trim().to_owned();
    let report = |format: &str, wait: bool| {
        let mut args = vec!["report", &id, "--collector", API, "--format", format];
        if wait {
            args.extend(["--wait", "--timeout-s", "40"]);
        }
        let out = cli(lab, &running.campaigner, &args);
        assert!(out.status.success(), "{}", running.log(&text(&out.stderr)));
        text(&out.stdout)
    };
    let json: serde_json::Value = serde_json::from_str(&report("json", true)).unwrap();
    assert_eq!(json["progress"]["results_in"], 20, "{:#}", json["progress"]);
    let probes = api(lab, &running.admin, "/api/v1/probes").unwrap();
    let broken_id = probes
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["hostname"] == broken_node)
        .unwrap()["id"]
        .clone();
    let target = |name: &str| {
        json["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == name)
            .unwrap_or_else(|| panic!("no {name} in {json:#}"))
            .clone()
    };
    // (name, AAAA verdict and its deciding votes, A verdict and its votes)
    for (name, aaaa, a) in [
        (names::DUAL_STACK, ("yes", "yes"), ("yes", "yes")),
        (names::V4_ONLY, ("no", "no"), ("yes", "yes")),
    ] {
        let t = target(name);
        for (figure, (verdict, votes)) in [("aaaa", aaaa), ("a", a)] {
            let f = &t[figure];
            assert_eq!(f["verdict"], verdict, "{name} {figure}: {f:#}");
            assert_eq!(f["source"], "dns", "{name} {figure}: {f:#}");
            // Four working resolvers decide; the broken one is out, with its reason.
            assert_eq!(f[votes], 4, "{name} {figure}: {f:#}");
            assert_eq!(f["inconclusive"], 0, "{name} {figure}: {f:#}");
            let excluded = f["excluded"].as_array().unwrap();
            assert_eq!(excluded.len(), 1, "{name} {figure}: {f:#}");
            assert_eq!(excluded[0]["probe"], broken_id, "{name} {figure}: {f:#}");
            let reason = excluded[0]["reason"].as_str().unwrap();
            assert!(
                reason.starts_with("resolver failed both questions"),
                "{name} {figure}: {reason}"
            );
        }
        assert_eq!(t["aaaa_published"], aaaa.0 == "yes", "{name}: {t:#}");
    }
    let csv = report("csv", false);
    let broken = broken_id.as_str().unwrap();
    assert!(
        csv.contains(&format!(
            "target_excluded,dual.lab,,,,aaaa_excluded_probe,{broken},"
        )),
        "{csv}"
    );
    assert!(
        csv.contains("target,dual.lab,,,,aaaa_published,yes,"),
        "{csv}"
    );
    assert!(
        csv.contains("target,v4only.lab,,,,aaaa_probes_no,4,"),
        "{csv}"
    );
    let html = report("html", false);
    assert!(
        html.contains("yes <small>(4 yes, 0 no, 0 inconclusive, 1 excluded)</small>")
            && html.contains("Probes excluded from the DNS figures")
            && html.contains(broken),
        "{html}"
    );
    eprintln!("done after {:?}", started.elapsed());
}

/// `sixmap-collector measure …` as `token`, in the collector's namespace.
fn measure(lab: &CampaignLab, token: &str, args: &[&str]) -> Output {
    lab.lab
        .command(COLLECTOR, binary("sixmap-collector").to_str().unwrap())
        .env("SIXMAP_API_TOKEN", token)
        .env("SIXMAP_COLLECTOR", API)
        .arg("measure")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run sixmap-collector measure")
}

/// Issue #21's quick measurement: `measure ping … --from XA` runs on probes of XA's two
/// operators (never on XB's), the table is printed as results arrive and ends when both
/// answered; `--json` gives the API's lines; a `from` that matches no probe is refused with
/// the entry named.
#[test]
fn a_quick_ping_from_one_country_streams_a_table() {
    let started = Instant::now();
    let running = start(campaign().expect("campaign lab"), started, "");
    let Running {
        ref lab,
        ref campaigner,
        ..
    } = running;
    let log = |what: &str| running.log(what);
    let ping = [
        "ping",
        names::V6_ONLY,
        "--from",
        "XA",
        "--probes",
        "2",
        "--set",
        "count=3",
        "--set",
        "interval_ms=200",
        "--set",
        "timeout_ms=2000",
    ];
    let asked = Instant::now();
    let out = measure(lab, campaigner, &ping);
    let took = asked.elapsed();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", log(&text(&out.stderr)));
    eprintln!(
        "$ sixmap-collector measure {}\n{stdout}(in {took:?})",
        ping.join(" ")
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("from 2 probes (XA)"), "{stdout}");
    assert!(lines[1].starts_with("PROBE "), "{stdout}");
    let rows = &lines[2..lines.len() - 1];
    assert_eq!(rows.len(), 2, "{stdout}");
    let mut asns: Vec<&str> = rows
        .iter()
        .map(|r| r.split_whitespace().nth(1).unwrap())
        .collect();
    asns.sort();
    // One probe per XA operator, spread across them; XB's operator (AS64502) not asked.
    assert_eq!(asns, ["AS64500", "AS64501"], "{stdout}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[2], "XA", "{row}");
        // v6only answers every ping: no loss, and RTTs.
        assert_eq!(cols[4], "0%", "{row}");
        assert!(cols[5].parse::<f64>().unwrap() > 0.0, "{row}");
    }
    assert_eq!(
        lines.last().unwrap(),
        &"2 of 2 answered (every probe answered)",
        "{stdout}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");

    // --json: the stored results, then the end line.
    let out = measure(lab, campaigner, &[&ping[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", log(&text(&out.stderr)));
    let json: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 3, "{json:?}");
    for r in &json[..2] {
        assert_eq!(r["probe_origin"]["country"], "XA", "{r}");
        assert_eq!(r["outcome"]["received"], 3, "{r}");
    }
    assert_eq!(json[2]["done"]["answered"], 2, "{}", json[2]);

    // Nowhere to measure from: refused, the entry named, the collector's URL in the error.
    let out = measure(
        lab,
        campaigner,
        &["ping", names::V6_ONLY, "--from", "XA", "--from", "XC"],
    );
    let stderr = text(&out.stderr);
    eprintln!("$ sixmap-collector measure ping v6only.lab --from XA --from XC\n{stderr}");
    assert!(!out.status.success());
    assert!(
        stderr.contains("from[1]") && stderr.contains("no known probe matches XC"),
        "{stderr}"
    );
    assert!(stderr.contains(API), "{stderr}");
    eprintln!("quick measurements done after {:?}", started.elapsed());
}

/// Campaigns as code (issue #21): `campaign plan` shows the probes a spec would get per
/// operator and its cost without creating anything, and `campaign create --kind … --from …`
/// makes the same campaign without a file; a quick traceroute prints its hops.
#[test]
fn campaign_plan_and_create_from_flags_and_a_quick_traceroute() {
    let started = Instant::now();
    let running = start(campaign().expect("campaign lab"), started, "");
    let Running {
        ref lab,
        ref campaigner,
        ..
    } = running;
    let log = |what: &str| running.log(what);
    let flags = [
        "--collector",
        API,
        "--kind",
        "ping",
        "--target",
        names::V6_ONLY,
        "--target",
        names::DUAL_STACK,
        "--from",
        "XA",
        "--per-operator",
        "1",
        "--set",
        "count=2",
    ];
    let out = cli(lab, campaigner, &[&["plan"][..], &flags].concat());
    let plan = text(&out.stdout);
    assert!(out.status.success(), "{}", log(&text(&out.stderr)));
    eprintln!(
        "$ sixmap-collector campaign plan {}\n{plan}",
        flags.join(" ")
    );
    assert!(plan.contains("2 targets, 2 tasks, 2 probes"), "{plan}");
    assert!(
        plan.contains("AS64500") && plan.contains("AS64501"),
        "{plan}"
    );
    assert!(!plan.contains("AS64502"), "{plan}");
    assert!(plan.contains("probe-tests: 4 per hour, 4 in all"), "{plan}");
    assert!(plan.contains("fits"), "{plan}");
    let list = cli(lab, campaigner, &["list", "--collector", API]);
    assert_eq!(text(&list.stdout), "", "a plan created a campaign");

    let out = cli(lab, campaigner, &[&["create"][..], &flags].concat());
    assert!(out.status.success(), "{}", log(&text(&out.stderr)));
    let id = text(&out.stdout).trim().to_owned();
    let shown = api(lab, campaigner, &format!("/api/v1/campaigns/{id}")).unwrap();
    let mut asns: Vec<u64> = shown["campaign"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["asn"].as_u64().unwrap())
        .collect();
    asns.sort();
    assert_eq!(asns, [64500, 64501], "{shown}");
    assert_eq!(
        shown["campaign"]["spec"]["selection"]["countries"],
        serde_json::json!(["XA"])
    );

    // A quick traceroute from XB's operator: its hops, ending at the target.
    let trace = [
        "traceroute",
        names::V6_ONLY,
        "--from",
        "AS64502",
        "--probes",
        "1",
    ];
    let out = measure(lab, campaigner, &trace);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", log(&text(&out.stderr)));
    eprintln!("$ sixmap-collector measure {}\n{stdout}", trace.join(" "));
    assert!(stdout.contains("AS64502 XB"), "{stdout}");
    assert!(stdout.contains("reached"), "{stdout}");
    let target = lab.lab.node("v6only").v6().to_string();
    let hops: Vec<&str> = stdout.lines().filter(|l| l.starts_with("    ")).collect();
    assert!(hops.len() >= 2, "{stdout}");
    assert!(hops.last().unwrap().contains(&target), "{stdout}");
    assert!(
        stdout.ends_with("1 of 1 answered (every probe answered)\n"),
        "{stdout}"
    );

    // A quick DNS lookup by each probe's own resolver: the answers printed.
    let dns = [
        "dns",
        names::DUAL_STACK,
        "--from",
        "XB",
        "--probes",
        "2",
        "--set",
        "query_type=AAAA",
    ];
    let out = measure(lab, campaigner, &dns);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", log(&text(&out.stderr)));
    eprintln!("$ sixmap-collector measure {}\n{stdout}", dns.join(" "));
    let dual = lab.lab.node("dual").v6().to_string();
    let answers = stdout
        .lines()
        .filter(|l| l.starts_with("  dual.lab") && l.contains(" AAAA ") && l.ends_with(&dual))
        .count();
    assert_eq!(answers, 2, "{stdout}");
    assert!(
        stdout.ends_with("2 of 2 answered (every probe answered)\n"),
        "{stdout}"
    );
}
