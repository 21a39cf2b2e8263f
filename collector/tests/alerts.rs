//! Issue #21, alerts end to end: `sixmap-collector serve` processes detect a probe that went
//! offline (a real probe record in the store) and deliver the alert to a real local webhook
//! receiver (a tokio listener answering HTTP/1.1 as each test scripts it). Checked: the
//! receiver gets exactly one signed alert answered 2xx, after 500s and across a collector
//! SIGKILL between detection and delivery, and nothing after the 2xx even across another
//! restart; hostile receivers (never answering, an endless status line, an endless body)
//! cost a timeout each and neither stall the collector nor grow it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

mod common;

use sixmap_collector::auth;
use sixmap_collector::store::{ProbeRecord, Role, SledStore, Store};
use sixmap_shared::{ProbeId, UnixMicros};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "test-secret-0123456789";
const OWNER: &str = "alice@example.org";

/// What the receiver does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers.
    Never,
    /// Sends bytes without a line end, forever.
    EndlessStatusLine,
    /// `200 OK`, then body bytes forever.
    EndlessBody,
}

#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answer: Answer,
    /// When the request was read whole.
    at: Instant,
}

/// The webhook receiver: answers requests in turn from `script` (its last entry repeats).
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    script: Arc<Mutex<Vec<Answer>>>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(script: Vec<Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Self {
            addr: listener.local_addr().unwrap(),
            script: Arc::new(Mutex::new(script)),
            got: Arc::new(Mutex::new(Vec::new())),
        };
        let r = receiver.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(r.clone().handle(stream));
            }
        });
        receiver
    }

    fn set_script(&self, script: Vec<Answer>) {
        *self.script.lock().unwrap() = script;
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn handle(self, mut stream: TcpStream) {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            data.extend_from_slice(&buf[..n]);
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
        let headers: HashMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        let length: usize = headers["content-length"].parse().unwrap();
        let mut body = data[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "request body cut short");
            body.extend_from_slice(&buf[..n]);
        }
        let answer = {
            let mut script = self.script.lock().unwrap();
            if script.len() > 1 {
                script.remove(0)
            } else {
                script[0]
            }
        };
        self.got.lock().unwrap().push(Received {
            headers,
            body,
            answer,
            at: Instant::now(),
        });
        match answer {
            Answer::Status(code) => {
                let text = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                let _ = stream.write_all(text.as_bytes()).await;
            }
            Answer::Never => {
                // Holds the connection until the collector gives up on it.
                let _ = stream.read(&mut buf).await;
            }
            Answer::EndlessStatusLine | Answer::EndlessBody => {
                if answer == Answer::EndlessBody {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
                        .await;
                }
                let chunk = vec![b'x'; 64 * 1024];
                // Until the collector closes the connection.
                while stream.write_all(&chunk).await.is_ok() {}
            }
        }
    }
}

/// A data directory with one probe last seen an hour ago (owner [`OWNER`]) and an admin
/// token; returns the probe id and the token.
fn prepare(dir: &Path) -> (ProbeId, String) {
    let store = SledStore::open(dir).unwrap();
    let id = ProbeId::random().unwrap();
    let now = UnixMicros::now();
    let probe: ProbeRecord = serde_json::from_value(serde_json::json!({
        "id": id, "hostname": "pi-kitchen", "enrolled_at": now.0 - 86_400_000_000,
        "last_seen": now.0 - 3_600_000_000, "software_version": "0.1.0", "boot_epoch": 1,
        "local_addresses": [], "owner": OWNER,
    }))
    .unwrap();
    store.create_probe(&probe).unwrap();
    let (token, _) = auth::create_api_token(&store, Role::Researcher, "reader", now).unwrap();
    store.flush().unwrap();
    (id, token)
}

/// The rule of the offline tests: a probe not seen for 1.8 s (counted from the collector's
/// start: the probe's hour of absence before it does not count).
const OFFLINE_RULE: &str =
    "[[alerts.rules]]\nid = \"offline\"\nkind = \"probe_offline\"\nhours = 0.0005\n";

/// The config of a collector in `dir` whose alerts go to `hooks` (name, address).
fn config(dir: &Path, hooks: &[(&str, SocketAddr)], timeout_ms: u64) -> std::path::PathBuf {
    config_with(dir, hooks, timeout_ms, OFFLINE_RULE)
}

/// [`config`] with other rules.
fn config_with(
    dir: &Path,
    hooks: &[(&str, SocketAddr)],
    timeout_ms: u64,
    rules: &str,
) -> std::path::PathBuf {
    let mut text = format!(
        "data_dir = {:?}\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         raw_data_public = true\n\
         [alerts]\nevaluate_every_s = 1\ntimeout_ms = {timeout_ms}\nbackoff_initial_ms = 100\n\
         backoff_max_s = 1\n{rules}",
        dir.join("data")
    );
    for (name, addr) in hooks {
        text.push_str(&format!(
            "[[alerts.webhooks]]\nname = \"{name}\"\nurl = \"http://{addr}/hook\"\nsecret = \"{SECRET}\"\n"
        ));
    }
    let path = dir.join("collector.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `serve` process, killed (SIGKILL: no clean shutdown) on drop.
struct Collector(common::Served);

impl Collector {
    fn start(config: &Path) -> Self {
        Self(common::serve(
            Path::new(env!("CARGO_BIN_EXE_sixmap-collector")),
            config,
            Stdio::inherit(),
            Some("sixmap_collector::alerts=debug,warn"),
        ))
    }

    /// The process's peak resident memory so far (`VmHWM`): a burst freed before the check
    /// still shows, where the current `VmRSS` would miss it.
    fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the request's signature as a receiver would: HMAC-SHA256 (ring's, not ours) of
/// `timestamp.body` under the shared secret.
fn verify(request: &Received) {
    let timestamp = &request.headers["x-sixmap-timestamp"];
    let signature = request.headers["x-sixmap-signature"]
        .strip_prefix("sha256=")
        .unwrap();
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag: Vec<u8> = (0..signature.len() / 2)
        .map(|i| u8::from_str_radix(&signature[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    ring::hmac::verify(&key, &signed, &tag).expect("signature verifies");
    let sent: i64 = timestamp.parse().unwrap();
    let now = UnixMicros::now().0 / 1_000_000;
    assert!((now - sent).abs() < 120, "timestamp {sent} is now");
}

/// GET `path`, with `token` if given: the head and the body.
async fn request(http: SocketAddr, path: &str, token: Option<&str>) -> (String, String) {
    send(http, "GET", path, token, None).await
}

/// A request with `method` and a JSON `body`; the answer's head and body.
async fn send(
    http: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (String, String) {
    let mut stream = TcpStream::connect(http).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.map_or(String::new(), |b| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )
    });
    let end = if body.is_empty() { "\r\n" } else { "" };
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n{end}{body}");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// GET `path` with `token`; the body of a 200.
async fn get(http: SocketAddr, path: &str, token: &str) -> String {
    let (head, body) = request(http, path, Some(token)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    body
}

/// The receiver's check from docs/alerts.md, run as written (Python's own `hmac`) on a
/// request as received: true when it accepts the signature.
fn python_verifies(request: &Received, secret: &str) -> bool {
    use std::io::Write as _;
    let doc = include_str!("../../docs/alerts.md");
    let start = doc
        .find("```python\n")
        .expect("docs/alerts.md has the check")
        + 10;
    let code = &doc[start..start + doc[start..].find("```").unwrap()];
    let headers: HashMap<&str, &str> = ["X-Sixmap-Timestamp", "X-Sixmap-Signature"]
        .into_iter()
        .map(|h| (h, request.headers[&h.to_ascii_lowercase()].as_str()))
        .collect();
    let input = serde_json::json!({
        "secret": secret,
        "headers": headers,
        "body": String::from_utf8(request.body.clone()).unwrap(),
    });
    let script = format!(
        "{code}\nimport json, sys\nx = json.load(sys.stdin)\n\
         print(verify(x['secret'].encode(), x['headers'], x['body'].encode()))\n"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    match String::from_utf8_lossy(&out.stdout).trim() {
        "True" => true,
        "False" => false,
        other => panic!("python printed {other:?}"),
    }
}

async fn get_json(http: SocketAddr, path: &str, token: &str) -> serde_json::Value {
    serde_json::from_str(&get(http, path, token).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_signed_alert_per_event_across_500s_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (probe, token) = prepare(&dir.path().join("data"));
    let receiver = Receiver::start(vec![Answer::Status(500)]).await;
    let config = config(dir.path(), &[("ops", receiver.addr)], 2000);

    // Detected, stored, tried and refused (500, retried with backoff); then the collector
    // dies before any delivery succeeded.
    let first = Collector::start(&config);
    wait_for("two refused attempts", Duration::from_secs(30), || {
        receiver.got().len() >= 2
    })
    .await;
    drop(first);
    let refused = receiver.got();
    assert!(refused.iter().all(|r| r.answer == Answer::Status(500)));

    // The receiver now accepts; the restarted collector delivers the stored alert.
    receiver.set_script(vec![Answer::Status(200)]);
    let second = Collector::start(&config);
    wait_for("a delivery", Duration::from_secs(30), || {
        receiver
            .got()
            .iter()
            .any(|r| r.answer == Answer::Status(200))
    })
    .await;
    // Several evaluations later (one a second) still one alert, delivered once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed = get_json(second.0.http, "/api/v1/alerts", &token).await;
    drop(second);
    let third = Collector::start(&config);
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(third);

    let got = receiver.got();
    let ok: Vec<&Received> = got
        .iter()
        .filter(|r| r.answer == Answer::Status(200))
        .collect();
    assert_eq!(ok.len(), 1, "exactly one accepted delivery: {got:#?}");
    assert_eq!(
        got.len(),
        refused.len() + 1,
        "nothing sent after the 2xx: {got:#?}"
    );
    let id = &ok[0].headers["x-sixmap-alert-id"];
    assert!(
        python_verifies(ok[0], SECRET),
        "the documented check accepts it"
    );
    assert!(
        !python_verifies(ok[0], "another-secret-0123"),
        "and refuses another key"
    );
    for request in &got {
        verify(request);
        assert_eq!(
            &request.headers["x-sixmap-alert-id"], id,
            "one event, one id"
        );
        assert_eq!(request.body, ok[0].body, "the same alert each time");
    }
    let alert: serde_json::Value = serde_json::from_slice(&ok[0].body).unwrap();
    assert_eq!(&alert["id"], id.as_str());
    assert_eq!(alert["kind"], "probe_offline");
    assert_eq!(alert["subject"], format!("probe:{probe}"));
    assert_eq!(
        alert["evidence"]["owner"], OWNER,
        "the owner goes to the webhook"
    );
    assert!(alert["evidence"]["offline_hours"].as_f64().unwrap() > 0.99);
    assert_eq!(alert["links"][0], format!("/api/v1/probes/{probe}/tags"));

    // The API lists it with its delivery state, without the owner.
    let alerts = listed["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{listed}");
    assert_eq!(&alerts[0]["id"], id.as_str());
    assert_eq!(alerts[0]["delivered"], true);
    let delivery = &alerts[0]["deliveries"]["ops"];
    // An attempt cut short by the SIGKILL (sent, its outcome not yet recorded) is not
    // counted; every other one is.
    let attempts = delivery["attempts"].as_u64().unwrap() as usize;
    assert!(
        (got.len() - 1..=got.len()).contains(&attempts),
        "{attempts} of {}",
        got.len()
    );
    assert!(delivery["delivered_at"].is_i64());
    assert!(!listed.to_string().contains(OWNER), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_receivers_cost_a_timeout_each_and_stall_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_probe, token) = prepare(&dir.path().join("data"));
    let hostile = Receiver::start(vec![
        Answer::Never,
        Answer::EndlessStatusLine,
        Answer::Never,
        Answer::EndlessBody,
    ])
    .await;
    let good = Receiver::start(vec![Answer::Status(204)]).await;
    // Each hostile attempt holds its webhook for the whole timeout.
    const TIMEOUT: Duration = Duration::from_millis(1500);
    let config = config(
        dir.path(),
        &[("hostile", hostile.addr), ("good", good.addr)],
        TIMEOUT.as_millis() as u64,
    );
    let collector = Collector::start(&config);
    let http = collector.0.http;
    // Alerts name probes and outages: a token is needed even with `raw_data_public`.
    let (head, _) = request(http, "/api/v1/alerts", None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // The good webhook is not held up by the hostile one: it gets the alert while the
    // hostile receiver still holds the first attempt (a delivery behind it would come a
    // whole timeout later, at the earliest).
    wait_for(
        "both webhooks' first requests",
        Duration::from_secs(10),
        || !good.got().is_empty() && !hostile.got().is_empty(),
    )
    .await;
    let (good_at, hostile_at) = (good.got()[0].at, hostile.got()[0].at);
    let lag = good_at.saturating_duration_since(hostile_at);
    assert!(
        lag < TIMEOUT * 2 / 3,
        "the good webhook got the alert {lag:?} after the hostile one's first request"
    );
    let peak_before = collector.peak_rss_kib();
    // While the hostile receiver holds connections, the collector serves and its store
    // takes writes (`/healthz` writes and flushes).
    let start = Instant::now();
    while hostile.got().len() < 3 {
        assert_eq!(get(http, "/healthz", &token).await, "ok\n");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "hostile attempts too slow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The endless body is a 200: the alert is delivered without the body being read.
    wait_for(
        "delivery through the endless body",
        Duration::from_secs(30),
        || hostile.got().len() >= 4,
    )
    .await;
    // The 200's record lands just after the request: poll the API until it shows.
    let start = Instant::now();
    let listed = loop {
        let listed = get_json(http, "/api/v1/alerts", &token).await;
        if listed["alerts"][0]["delivered"] == true {
            break listed;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A receiver that never answers costs the timeout; an endless status line is cut at
    // 1 KiB and costs only the backoff (100 ms doubled per failure, at most 1 s).
    let times: Vec<Instant> = hostile.got().iter().map(|r| r.at).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= TIMEOUT, "{gaps:?}");
    assert!(gaps[1] < TIMEOUT, "{gaps:?}");
    assert!(gaps[2] >= TIMEOUT, "{gaps:?}");
    let alert = &listed["alerts"][0];
    assert_eq!(alert["delivered"], true, "{listed}");
    assert_eq!(alert["deliveries"]["hostile"]["attempts"], 4, "{listed}");
    assert_eq!(alert["deliveries"]["good"]["attempts"], 1, "{listed}");
    // Nothing more goes to either once delivered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hostile.got().len(), 4);
    assert_eq!(good.got().len(), 1);
    let peak_after = collector.peak_rss_kib();
    // The endless answers are read no further than a status line: none of them is held,
    // not even for a moment (the peak would keep it). Locally they stream at hundreds of
    // MiB a second, so reading one for its timeout would pass this bound many times over.
    assert!(
        peak_after < peak_before + 8 * 1024,
        "peak RSS grew from {peak_before} to {peak_after} KiB"
    );
    for request in hostile.got().iter().chain(good.got().iter()) {
        verify(request);
    }
}

/// A stored day of a group's figures with the balanced (and pooled) share `share` in
/// [`low`, `high`].
fn day(t: UnixMicros, probes: usize, share: f64, low: f64, high: f64) -> Vec<u8> {
    let p = serde_json::json!({"share": share, "low": low, "high": high, "n": probes, "successes": share * probes as f64});
    serde_json::to_vec(&serde_json::json!({
        "day": sixmap_collector::daily::day_label(t),
        "day_number": t.0.div_euclid(86_400_000_000),
        "probes": probes, "operators": 4,
        "v6_works": {"balanced": p, "pooled": p},
        "median_rtt_v6_ms": null, "median_rtt_v4_ms": null,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_drop_in_the_stored_rollups_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = SledStore::open(&data).unwrap();
        // The last two complete days (today's figures are still being made).
        let today = UnixMicros(UnixMicros::now().0 - 86_400_000_000);
        let yesterday = UnixMicros(today.0 - 86_400_000_000);
        let label = sixmap_collector::daily::day_label;
        // Germany: 60 % → 40 %, intervals apart: an alert.
        store
            .put_rollup(
                &label(yesterday),
                "DE",
                &day(yesterday, 20, 0.6, 0.55, 0.65),
            )
            .unwrap();
        store
            .put_rollup(&label(today), "DE", &day(today, 20, 0.4, 0.35, 0.45))
            .unwrap();
        // AS64500: the same fall, but its intervals overlap: noise, no alert.
        store
            .put_rollup(
                &label(yesterday),
                "asn:64500",
                &day(yesterday, 6, 0.6, 0.3, 0.85),
            )
            .unwrap();
        store
            .put_rollup(&label(today), "asn:64500", &day(today, 6, 0.4, 0.15, 0.7))
            .unwrap();
        store.flush().unwrap();
    }
    let receiver = Receiver::start(vec![Answer::Status(200)]).await;
    let rule = "[[alerts.rules]]\nid = \"drop\"\nkind = \"share_drop\"\ncountries = [\"de\"]\n\
                networks = [64500]\npoints = 10\nmin_probes = 5\n";
    let config = config_with(dir.path(), &[("ops", receiver.addr)], 2000, rule);
    let collector = Collector::start(&config);
    wait_for("the alert", Duration::from_secs(30), || {
        !receiver.got().is_empty()
    })
    .await;
    // Evaluated again every second: still one alert.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(collector);
    let got = receiver.got();
    assert_eq!(got.len(), 1, "{got:#?}");
    verify(&got[0]);
    let alert: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(alert["kind"], "share_drop");
    assert_eq!(alert["subject"], "country:DE");
    assert_eq!(alert["links"][0], "/api/v1/maps/countries/DE/series");
    let evidence = &alert["evidence"];
    assert!(
        (evidence["drop_points"].as_f64().unwrap() - 20.0).abs() < 1e-9,
        "{evidence}"
    );
    assert_eq!(evidence["before"]["probes"], 20);
    assert_eq!(evidence["after"]["v6_works"]["balanced"]["high"], 0.45);
}

/// Rules over the API, as an admin would use them and as others may not: the CLI adds,
/// lists and removes them; bad bodies get a 400 naming the field; researchers get 403; a
/// config rule is read-only; the number of rules is capped. A rule added over the API (the
/// config has none that fires) raises its alert and the webhook gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_over_the_api_are_admin_only_checked_capped_and_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_probe, researcher) = prepare(&data);
    let admin = {
        let store = SledStore::open(&data).unwrap();
        let (admin, _) =
            auth::create_api_token(&store, Role::Admin, "ops-admin", UnixMicros::now()).unwrap();
        store.flush().unwrap();
        admin
    };
    let receiver = Receiver::start(vec![Answer::Status(204)]).await;
    // One config rule, which never fires (no such campaign).
    let config_rule =
        "[[alerts.rules]]\nid = \"from-config\"\nkind = \"target_lost_v6\"\ncampaigns = [999]\n";
    let config = config_with(dir.path(), &[("ops", receiver.addr)], 2000, config_rule);
    let collector = Collector::start(&config);
    let http = collector.0.http;
    let path = "/api/v1/alert-rules";
    let offline = r#"{"id": "offline-api", "kind": "probe_offline", "hours": 0.0005}"#;

    // Researchers may read alerts, not rules; nobody without a token.
    let (head, _) = send(http, "POST", path, Some(&researcher), Some(offline)).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (head, _) = send(http, "GET", path, Some(&researcher), None).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (head, _) = send(http, "DELETE", &format!("{path}/from-config"), None, None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    // Bad bodies: a 400 naming the field.
    for (body, field) in [
        (r#"{"id": "x", "kind": "probe_offline"}"#, "`hours`"),
        (
            r#"{"id": "x", "kind": "probe_offline", "hours": "soon"}"#,
            "`hours`",
        ),
        (
            r#"{"id": "x", "kind": "share_drop", "points": 5, "countries": ["Germany"]}"#,
            "`countries`",
        ),
        (
            r#"{"id": "x", "kind": "probe_offline", "hours": 1, "owner": "me"}"#,
            "`owner`",
        ),
        (r#"{"kind": "probe_offline", "hours": 1}"#, "`id`"),
        ("not json", "`body`"),
    ] {
        let (head, answer) = send(http, "POST", path, Some(&admin), Some(body)).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{body}: {head}");
        let error: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(
            error["error"].as_str().unwrap().starts_with(field),
            "{body}: {answer}"
        );
    }
    // The config's rule: its id is taken and it cannot be deleted here.
    let taken = r#"{"id": "from-config", "kind": "probe_offline", "hours": 1}"#;
    let (head, _) = send(http, "POST", path, Some(&admin), Some(taken)).await;
    assert!(head.starts_with("HTTP/1.1 409"), "{head}");
    let (head, _) = send(
        http,
        "DELETE",
        &format!("{path}/from-config"),
        Some(&admin),
        None,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 409"), "{head}");

    // The CLI adds one; the collector evaluates it and the webhook gets its alert.
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
            .arg("alert-rule")
            .args(args)
            .args(["--url", &format!("http://{http}")])
            .env("SIXMAP_API_TOKEN", &admin)
            .output()
            .unwrap()
    };
    let out = cli(&[
        "add",
        "--id",
        "offline-api",
        "--kind",
        "probe_offline",
        "--hours",
        "0.0005",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the API rule's alert", Duration::from_secs(30), || {
        !receiver.got().is_empty()
    })
    .await;
    let alert: serde_json::Value = serde_json::from_slice(&receiver.got()[0].body).unwrap();
    assert_eq!(alert["rule"], "offline-api");
    verify(&receiver.got()[0]);
    let out = cli(&["list"]);
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("SOURCE"),
        "{table}"
    );
    assert!(
        lines[1].contains("from-config") && lines[1].contains("config"),
        "{table}"
    );
    assert!(
        lines[2].contains("offline-api") && lines[2].contains("hours=0.0005"),
        "{table}"
    );
    // A researcher's token is refused by the CLI's collector too, with the reason.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
        .args([
            "alert-rule",
            "rm",
            "offline-api",
            "--url",
            &format!("http://{http}"),
        ])
        .args(["--token", &researcher])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The cap: 64 rules in all, config and API.
    for i in 2..64 {
        let body = format!(r#"{{"id": "r{i}", "kind": "target_lost_v6", "campaigns": [999]}}"#);
        let (head, answer) = send(http, "POST", path, Some(&admin), Some(&body)).await;
        assert!(head.starts_with("HTTP/1.1 201"), "{i}: {head}\n{answer}");
    }
    let body = r#"{"id": "one-more", "kind": "target_lost_v6", "campaigns": [999]}"#;
    let (head, answer) = send(http, "POST", path, Some(&admin), Some(body)).await;
    assert!(
        head.starts_with("HTTP/1.1 409") && answer.contains("at most 64"),
        "{head}\n{answer}"
    );
    let out = cli(&["rm", "offline-api"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = get_json(http, path, &admin).await;
    assert_eq!(listed["rules"].as_array().unwrap().len(), 63, "{listed}");
    assert!(!listed.to_string().contains("offline-api"));
    let (head, _) = send(
        http,
        "DELETE",
        &format!("{path}/offline-api"),
        Some(&admin),
        None,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

/// Email through an SMTP relay: a real SMTP server (Python's aiosmtpd, delivering into a
/// Maildir; `.ci/run` installs it) gets exactly one message for the event, with the alert's
/// id in `X-Sixmap-Alert-Id`, and the API shows it delivered there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_by_email_reaches_a_real_smtp_server_once() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "aiosmtpd missing: python3 -m pip install aiosmtpd"
        );
        eprintln!("skipped: needs Python's aiosmtpd (python3 -m pip install aiosmtpd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_probe, token) = prepare(&dir.path().join("data"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = dir.path().join("mail");
    let mut smtp = std::process::Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .spawn()
        .unwrap();
    wait_for("the SMTP server", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let email = format!(
        "[[alerts.emails]]\nname = \"mail\"\nrelay = \"127.0.0.1:{port}\"\n\
         from = \"sixmap@example.org\"\nto = [\"noc@example.org\", \"ops@example.org\"]\n\
         probe_owners = {{ \"{OWNER}\" = \"volunteer@home.example\", \"bob\" = \"bob@example.net\" }}\n"
    );
    let config = config_with(dir.path(), &[], 2000, &format!("{OFFLINE_RULE}{email}"));
    let collector = Collector::start(&config);
    let new = maildir.join("new");
    let messages = || -> Vec<String> {
        std::fs::read_dir(&new)
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_for("the email", Duration::from_secs(30), || {
        !messages().is_empty()
    })
    .await;
    // Evaluated again every second: still one message.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = messages();
    assert_eq!(got.len(), 1, "{got:#?}");
    let message = &got[0];
    let listed = get_json(collector.0.http, "/api/v1/alerts", &token).await;
    let alert = &listed["alerts"][0];
    assert_eq!(alert["deliveries"]["mail"]["attempts"], 1, "{listed}");
    assert!(
        alert["deliveries"]["mail"]["delivered_at"].is_i64(),
        "{listed}"
    );
    let id = alert["id"].as_str().unwrap();
    for expected in [
        format!("X-Sixmap-Alert-Id: {id}"),
        "From: <sixmap@example.org>".to_string(),
        // The probe's owner too (probe_owners), and no other owner.
        "To: <noc@example.org>, <ops@example.org>, <volunteer@home.example>".to_string(),
        "Subject: [sixmap] probe ".to_string(),
        "Rule offline (probe_offline)".to_string(),
        "/api/v1/probes".to_string(),
        // The owner goes out with the alert, as in webhook bodies.
        OWNER.to_string(),
    ] {
        assert!(message.contains(&expected), "{expected}: {message}");
    }
    // The envelope (aiosmtpd writes it as X-RcptTo) has the owner's contact, and no other
    // owner's.
    let envelope = message
        .lines()
        .find(|l| l.starts_with("X-RcptTo:"))
        .unwrap_or_else(|| panic!("no X-RcptTo: {message}"));
    assert!(envelope.contains("volunteer@home.example"), "{envelope}");
    assert!(!message.contains("bob@example.net"), "{message}");
    drop(collector);
    let _ = smtp.kill();
    let _ = smtp.wait();
}
