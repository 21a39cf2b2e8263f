//! Issue #21's must-show for alerts: a real lab network whose IPv6 breaks mid-test. Five
//! lab probes in three operators measure the dual-stack target `dual.lab` over IPv6 in a
//! periodic campaign (every 5 s, lab mode); once the collector holds results showing IPv6
//! reaching it, an nftables rule on the edge router drops IPv6 to it (DNS, served from the
//! same host, still answers: the target keeps its AAAA and loses its reachability). A real
//! webhook receiver in the collector's namespace must get nothing before the break and then
//! exactly one `target_lost_v6` alert for it, whose HMAC signature the test checks with
//! Python's standard library (the verifier `docs/alerts.md` gives), not the collector's code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sixmap_tests::lab::campaign::{COLLECTOR, CampaignLab, campaign};
use sixmap_tests::lab::scenarios::names;
use sixmap_tests::{binary, collector_command, lab_or_skip, wait_for};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const API: &str = "http://[::1]:7480";
const SECRET: &str = "lab-webhook-secret-0123456789";

/// The webhook receiver, a Python HTTP server in the collector's namespace: answers every
/// POST 204 and appends it to `requests.jsonl` (headers with lower-case names, the body as
/// text: a JSON body is UTF-8, so its bytes come back exact). It writes its port to `port` once listening.
const RECEIVER: &str = r#"
import http.server, json, socket, sys
out_dir = sys.argv[1]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        record = {"headers": {k.lower(): v for k, v in self.headers.items()},
                  "body": body.decode("utf-8")}
        with open(out_dir + "/requests.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
class Server(http.server.HTTPServer):
    address_family = socket.AF_INET6
server = Server(("::1", 0), Hook)
with open(out_dir + "/port.tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(out_dir + "/port.tmp", out_dir + "/port")
server.serve_forever()
"#;

/// Every request the receiver got: its headers (lower-case names) and body.
fn received(dir: &Path) -> Vec<(HashMap<String, String>, Vec<u8>)> {
    let text = std::fs::read_to_string(dir.join("requests.jsonl")).unwrap_or_default();
    text.lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let headers = record["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (
                headers,
                record["body"].as_str().unwrap().as_bytes().to_vec(),
            )
        })
        .collect()
}

/// The signature check of `docs/alerts.md`, taken from it as written and run by Python's
/// `hmac` module: true when it accepts the request.
fn python_verifies(headers: &HashMap<String, String>, body: &[u8]) -> bool {
    let doc = include_str!("../../docs/alerts.md");
    let start = doc
        .find("```python\n")
        .expect("docs/alerts.md has the check")
        + 10;
    let code = &doc[start..start + doc[start..].find("```").unwrap()];
    let script = format!(
        "{code}\nimport sys\nheaders = {{\"X-Sixmap-Timestamp\": sys.argv[2], \
         \"X-Sixmap-Signature\": sys.argv[3]}}\n\
         sys.exit(0 if verify(sys.argv[1].encode(), headers, sys.stdin.buffer.read()) else 1)\n"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script, SECRET])
        .arg(&headers["x-sixmap-timestamp"])
        .arg(&headers["x-sixmap-signature"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait().unwrap().success()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// GET on the collector's API with `token`.
fn api(lab: &CampaignLab, token: &str, path: &str) -> Option<serde_json::Value> {
    let bearer = format!("Authorization: Bearer {token}");
    let out = lab.lab.exec_unchecked(
        COLLECTOR,
        &["curl", "-sf", "-H", &bearer, &format!("{API}{path}")],
    );
    serde_json::from_slice(&out.stdout).ok()
}

fn log_of(dir: &Path, what: &str) -> String {
    format!(
        "{what}\n--- collector:\n{}",
        std::fs::read_to_string(dir.join("collector.log")).unwrap_or_default()
    )
}

#[test]
fn a_target_whose_ipv6_breaks_mid_campaign_raises_one_signed_alert() {
    lab_or_skip!();
    let started = Instant::now();
    let mut lab = campaign().expect("campaign lab");
    let dir = lab.lab.scratch_dir().to_owned();
    let hook_dir = dir.join("webhook");
    std::fs::create_dir_all(&hook_dir).unwrap();
    let mut command = lab.lab.command(COLLECTOR, "python3");
    command
        .args(["-c", RECEIVER])
        .arg(&hook_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("webhook.log")).unwrap());
    lab.lab.spawn(COLLECTOR, command).unwrap();
    let port: u16 = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(hook_dir.join("port"))
            .ok()?
            .parse()
            .ok()
    })
    .expect("webhook receiver listening");
    let hook = format!("[::1]:{port}");
    let got = || received(&hook_dir);

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
    let token = |role: &str, name: &str| {
        collector_command(&[
            "api-token",
            "create",
            "--data-dir",
            data_arg,
            "--role",
            role,
            "--name",
            name,
        ])
    };
    let admin = token("admin", "lab-admin");
    let campaigner = token("campaigner", "regulator-xa");
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

    // Rules evaluated every second, retries after 100 ms: the test's timing is the lab's,
    // not the defaults'. Owners unlimited: a 5 s campaign on five probes is 3600 tests an
    // hour.
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\ngrpc_listen = \"[{}]:7400\"\nhttp_listen = \"[::]:7480\"\n\
             heartbeat_interval_s = 1\nlab_mode = true\ncampaign_owner_hourly_limit = 0\n\
             [alerts]\nevaluate_every_s = 1\nbackoff_initial_ms = 100\nbackoff_max_s = 1\n\
             [[alerts.webhooks]]\nname = \"lab\"\nurl = \"http://{hook}/sixmap\"\n\
             secret = \"{SECRET}\"\n\
             [[alerts.rules]]\nid = \"lost-v6\"\nkind = \"target_lost_v6\"\nmin_probes = 3\n",
            lab.collector
        ),
    )
    .unwrap();
    let collector_bin = binary("sixmap-collector");
    let mut command = lab.lab.command(COLLECTOR, collector_bin.to_str().unwrap());
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info,sixmap_collector::alerts=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("collector.log")).unwrap());
    lab.lab.spawn(COLLECTOR, command).unwrap();
    wait_for(Duration::from_secs(15), || {
        api(&lab, &admin, "/api/v1/probes")
    })
    .unwrap_or_else(|| panic!("{}", log_of(&dir, "collector never answered")));

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
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{}.log", p.node))).unwrap());
        lab.lab.spawn(&p.node, command).unwrap();
    }
    let probes = lab.probes.len();
    wait_for(Duration::from_secs(20), || {
        let listed = api(&lab, &admin, "/api/v1/probes")?;
        let ready = listed
            .as_array()?
            .iter()
            .filter(|p| p["last_seen"].is_number() && p["origin"]["asn"].is_number())
            .count();
        (ready == probes).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", log_of(&dir, "probes did not all connect")));
    eprintln!("lab and {probes} probes up after {:?}", started.elapsed());

    // The campaign: ping dual.lab over IPv6 every 5 s from every probe.
    let spec = dir.join("watch-dual.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"Watch dual.lab\"\ntargets = [\"{}\"]\n\
             [[measurements]]\nkind = \"ping\"\nfamily = \"v6\"\ncount = 1\ntimeout_ms = 1000\n\
             [schedule]\nevery_s = 5\nspread_s = 1\n",
            names::DUAL_STACK
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| -> Output {
        lab.lab
            .command(COLLECTOR, collector_bin.to_str().unwrap())
            .env("SIXMAP_API_TOKEN", &campaigner)
            .arg("campaign")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let out = cli(&[
        "create",
        "--collector",
        API,
        "--owner",
        "regulator-xa",
        "--spec",
        spec.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", log_of(&dir, &text(&out.stderr)));
    let id = text(&out.stdout).trim().to_owned();

    // Results showing IPv6 reaching the target, from every probe, twice (two runs).
    let report_path = format!("/api/v1/campaigns/{id}/report");
    wait_for(Duration::from_secs(30), || {
        let report = api(&lab, &admin, &report_path)?;
        let target = report["targets"]
            .as_array()?
            .iter()
            .find(|t| t["target"] == names::DUAL_STACK)?
            .clone();
        let reached = &target["reachable_v6"]["overall"];
        let runs = report["progress"]["results_in"].as_u64()?;
        (reached["share"] == 1.0 && runs >= 2 * probes as u64).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{}",
            log_of(&dir, "dual.lab never reached over IPv6 from every probe")
        )
    });
    // A few evaluations while it works: nothing raised.
    std::thread::sleep(Duration::from_secs(3));
    assert!(got().is_empty(), "alert before the break: {:?}", got());
    let alerts = api(&lab, &admin, "/api/v1/alerts").unwrap();
    assert_eq!(alerts["alerts"], serde_json::json!([]), "{alerts:#}");
    eprintln!(
        "IPv6 to dual.lab works; breaking it after {:?}",
        started.elapsed()
    );

    // IPv6 to the target breaks on the edge router; its DNS service (the lab resolver, on the
    // same host) still answers, so the target keeps its AAAA and only the path is gone.
    let dual = lab.lab.node("dual").v6();
    let broke = Instant::now();
    lab.lab
        .nft(
            "edge",
            &format!(
                "table inet lab_break {{\n chain forward {{\n  type filter hook forward priority 0;\n  \
                 ip6 daddr {dual} udp dport 53 accept\n  ip6 daddr {dual} tcp dport 53 accept\n  \
                 ip6 daddr {dual} counter drop\n }}\n}}\n"
            ),
        )
        .unwrap();

    wait_for(Duration::from_secs(30), || {
        (!got().is_empty()).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", log_of(&dir, "no alert after the break")));
    eprintln!("alert received {:?} after the break", broke.elapsed());
    // Several more runs (all failing) and evaluations: still the one alert.
    std::thread::sleep(Duration::from_secs(12));
    let received = got();
    assert_eq!(
        received.len(),
        1,
        "{:#?}",
        received.iter().map(|(_, b)| text(b)).collect::<Vec<_>>()
    );
    let (headers, body) = &received[0];
    assert!(
        python_verifies(headers, body),
        "signature does not verify: {headers:?}"
    );
    // A tampered body does not verify: the check above can fail.
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(!python_verifies(headers, &tampered));

    let alert: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(alert["kind"], "target_lost_v6", "{alert:#}");
    assert_eq!(alert["rule"], "lost-v6");
    assert_eq!(headers["x-sixmap-alert-id"], alert["id"].as_str().unwrap());
    assert_eq!(
        alert["subject"],
        format!("campaign:{id}:target:{}", names::DUAL_STACK)
    );
    let evidence = &alert["evidence"];
    assert_eq!(evidence["lost"], "reachability", "{alert:#}");
    assert_eq!(evidence["probes"], probes, "{alert:#}");
    assert!(
        evidence["reached_before"].as_u64().unwrap() >= 2 * probes as u64,
        "{alert:#}"
    );
    let failures = evidence["latest_failures"].as_object().unwrap();
    assert_eq!(failures.len(), probes, "{alert:#}");
    for (probe, failure) in failures {
        // No echo reply within the timeout: the ping's outcome is "unreached".
        assert_eq!(failure["class"], "unreached", "{probe}: {alert:#}");
        // Each probe's newest failure came after the break.
        let at = failure["at"].as_i64().unwrap();
        assert!(
            at > sixmap_shared::UnixMicros::now().0
                - i64::try_from(broke.elapsed().as_micros()).unwrap(),
            "{probe}: {alert:#}"
        );
    }
    assert_eq!(
        alert["links"],
        serde_json::json!([format!("/api/v1/campaigns/{id}"), report_path])
    );
    // The API shows it delivered to the webhook.
    let listed = api(&lab, &admin, "/api/v1/alerts").unwrap();
    assert_eq!(listed["alerts"][0]["id"], alert["id"], "{listed:#}");
    assert_eq!(listed["alerts"][0]["delivered"], true, "{listed:#}");
    eprintln!("done after {:?}", started.elapsed());
}
