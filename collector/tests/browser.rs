//! The national maps in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver) against a collector serving a seeded store. The world map must colour exactly
//! the countries with data (those under the minimum sample, Brazil's two probes, in a neutral
//! insufficient-data fill, without a share), clicking a country must open its page, and the operator ranking there (rank
//! ranges by interval, "insufficient data" under the minimum) must match the data. Then the same pages for a browser asking for Arabic (right to left, translated headings and
//! country names, Arabic-Indic digits) and `?lang=fr` over it. Screenshots go to
//! `<target>/tmp/browser-screenshots/` (the test prints the path).
//!
//! Needs `chromium` and `chromium-driver` (installed by `.ci/run`); outside CI the test is
//! skipped when they are missing, in CI (CI=true) it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use serde_json::{Value, json};
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::store::{ProbeRecord, SledStore, Store};
use sixmap_shared::config::parse_toml;
use sixmap_shared::health::{ProbeTag, TagName};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{ProbeId, UnixMicros};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Seeded probes: (country, ASN, AS name, probes, of which IPv6 works).
const PROBES: [(&str, u32, &str, u32, u32); 7] = [
    ("DE", 3320, "Deutsche Telekom", 4, 4),
    ("DE", 6805, "Telefonica Germany", 3, 1),
    ("DE", 3209, "Vodafone", 2, 0),
    ("FR", 3215, "Orange", 2, 2),
    ("FR", 12322, "Free", 2, 1),
    ("JP", 2516, "KDDI", 3, 2),
    ("BR", 28573, "Claro", 2, 0),
];

fn seed(dir: &Path) {
    let store = SledStore::open(dir).unwrap();
    let now = UnixMicros::now();
    let mut n = 0u64;
    for (country, asn, name, probes, working) in PROBES {
        for i in 0..probes {
            n += 1;
            let id: ProbeId = format!("{n:016x}").parse().unwrap();
            let works = i < working;
            let origin = Enrichment {
                asn: Some(asn),
                as_name: Some(name.into()),
                country: Some(country.parse().unwrap()),
            };
            store
                .create_probe(&ProbeRecord {
                    id: id.clone(),
                    hostname: format!("probe-{n}"),
                    enrolled_at: UnixMicros(now.0 - 86_400_000_000),
                    last_seen: Some(now),
                    software_version: Some("0.1.0".into()),
                    boot_epoch: Some(1),
                    local_addresses: Vec::new(),
                    self_test: None,
                    last_v6_success: None,
                    // The map counts a probe as working by its v6-works tag, which the
                    // collector gives for a successful global IPv6 measurement in 24 h.
                    tags: if works {
                        vec![ProbeTag {
                            name: TagName::new("v6-works").unwrap(),
                            since: UnixMicros(now.0 - 3_600_000_000),
                        }]
                    } else {
                        Vec::new()
                    },
                    location: None,
                    origin: Some(origin.clone()),
                    owner: None,
                    enrolled_from: None,
                    enrolled_prefix: None,
                    certificate_sha256: None,
                    revoked_at: None,
                    directory_listed: false,
                })
                .unwrap();
            // RTTs differ per operator so the ranking's RTT column is not constant.
            let rtt = Duration::from_millis(10 + u64::from(asn % 40) + u64::from(i));
            let results: Vec<_> = (1..=3)
                .map(|sequence| {
                    sixmap_collector::testing::ping_v6(
                        id.clone(),
                        sequence,
                        UnixMicros(now.0 - 3_600_000_000 + sequence as i64 * 60_000_000),
                        works.then_some(rtt),
                        origin.clone(),
                    )
                })
                .collect();
            store.insert_results(&results).unwrap();
        }
    }
    store.flush().unwrap();
}

/// Minimal WebDriver client (W3C protocol, JSON over HTTP/1.1) on std sockets.
struct WebDriver {
    addr: SocketAddr,
    session: String,
}

fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).unwrap();
        assert!(n == 1, "connection closed inside the response head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .expect("Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (head, String::from_utf8_lossy(&body).into_owned())
}

fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver may keep the connection open: read the head, then Content-Length bytes.
    let (head, body) = read_response(&mut stream);
    let value: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {head}\n{body}"));
    if let Some(error) = value["value"]["error"].as_str() {
        panic!(
            "{method} {path}: WebDriver error {error}: {}",
            value["value"]["message"]
        );
    }
    value["value"].clone()
}

impl WebDriver {
    fn start(addr: SocketAddr) -> Self {
        Self::start_in(addr, "en-US,en")
    }

    /// A browser whose `Accept-Language` is `languages` (Chromium's preference).
    fn start_in(addr: SocketAddr, languages: &str) -> Self {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "prefs": { "intl": { "accept_languages": languages } },
                // As root in a closed network: no sandbox, and nothing that phones home.
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            },
        }}});
        let created = http(addr, "POST", "/session", Some(&capabilities));
        let session = created["sessionId"].as_str().expect("sessionId").to_owned();
        Self { addr, session }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        http(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Evaluates `script` until it returns something truthy (not null/false), for `timeout`.
    fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let value = self.script(script);
            if !(value.is_null() || value == Value::Bool(false)) {
                return value;
            }
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element reference")
            .to_owned()
    }

    fn click(&self, css: &str) {
        let element = self.element(css);
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    fn screenshot(&self, path: &Path) {
        let encoded = self.call("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().expect("base64 screenshot"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "screenshot is not a plausible PNG ({} bytes)",
            png.len()
        );
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        // Best effort: the driver's process group is killed next anyway.
        if let Ok(mut stream) = TcpStream::connect(self.addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                self.session
            );
            let _ = stream.read(&mut [0u8; 512]);
        }
    }
}

/// Standard base64 (RFC 4648) with padding, as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|c| *c != b'=').collect();
        let mut n = 0u32;
        for (i, c) in data.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..data.len()]);
    }
    out
}

struct Driver(Child);

impl Drop for Driver {
    /// Kills chromedriver's whole process group: the browsers it started would outlive it.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver() -> (Driver, SocketAddr) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Driver(child), addr)
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The page's own formatting of a share with its interval (maps-common.js `interval`).
fn interval(p: &Value) -> String {
    let pc = |x: &Value| (x.as_f64().unwrap() * 100.0).round();
    format!(
        "{} % ({}–{} %)",
        pc(&p["share"]),
        pc(&p["low"]),
        pc(&p["high"])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_map_colours_countries_and_opens_the_country_ranking() {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the browser test: install chromium and chromium-driver"
        );
        eprintln!(
            "skipped: needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    // APNIC's figures beside ours on the country page.
    sixmap_collector::comparison::import(
        dir.path(),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apnic-v6-per-economy.csv"),
        None,
        UnixMicros::now(),
    )
    .unwrap();
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    let http_addr = running.http_addr;
    let shots = screenshot_dir();
    tokio::task::spawn_blocking(move || browse(&base, http_addr, &shots))
        .await
        .unwrap();
}

fn browse(base: &str, collector: SocketAddr, shots: &Path) {
    // The figures the pages must show, from the API behind them.
    let countries = api_json(collector, "/api/v1/maps/countries");
    assert_eq!(countries["min_probes"], 3, "the default minimum sample");
    let with_data: BTreeMap<String, f64> = countries["countries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["insufficient_data"] == false)
        .map(|c| {
            (
                c["country"].as_str().unwrap().to_owned(),
                c["v6_works"]["balanced"]["share"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        with_data.keys().collect::<Vec<_>>(),
        ["DE", "FR", "JP"],
        "seeded countries with at least three probes"
    );
    // Brazil: two probes, neither working. Insufficient data, not "0 %".
    let br = countries["countries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["country"] == "BR")
        .unwrap();
    assert_eq!(br["insufficient_data"], true, "{br}");
    assert!(br["v6_works"].is_null(), "{br}");
    assert_eq!(br["probes"], 2, "{br}");

    pages_answer_in_the_negotiated_language(collector);
    let (_driver, addr) = start_chromedriver();
    let browser = WebDriver::start(addr);
    browser.go(&format!("{base}/map"));
    browser.wait_for(
        "the map to draw its countries",
        "return document.querySelectorAll('#countries path').length > 100",
        Duration::from_secs(30),
    );
    let drawn = browser.script(
        "const fills = {}; let noData = null, others = 0;
         for (const p of document.querySelectorAll('#countries path')) {
           const fill = getComputedStyle(p).fill;
           if (p.classList.contains('data')) fills[p.dataset.code] = fill;
           else { others++; noData = noData || fill; }
         }
         return { fills, noData, others, status: document.getElementById('status').textContent };",
    );
    browser.screenshot(&shots.join("world-map.png"));
    let fills = drawn["fills"].as_object().unwrap();
    let insufficient = fills["BR"].as_str().unwrap();
    assert_eq!(
        insufficient, "rgb(236, 230, 211)",
        "BR has the insufficient-data fill, not a share's colour: {drawn}"
    );
    let coloured: Vec<&String> = fills.keys().filter(|code| *code != "BR").collect();
    assert_eq!(
        coloured,
        with_data.keys().collect::<Vec<_>>(),
        "exactly the countries with data are coloured: {drawn}"
    );
    let no_data = drawn["noData"].as_str().unwrap();
    assert!(drawn["others"].as_u64().unwrap() > 100, "{drawn}");
    for (code, fill) in fills {
        assert_ne!(
            fill.as_str().unwrap(),
            no_data,
            "{code} has the no-data colour"
        );
        if code != "BR" {
            assert_ne!(
                fill.as_str().unwrap(),
                insufficient,
                "{code} has the insufficient-data fill"
            );
        }
    }
    // Different shares, different colours; the colour scale is monotone in the share.
    let mut by_share: Vec<(f64, &str)> = with_data
        .iter()
        .map(|(code, share)| (*share, fills[code].as_str().unwrap()))
        .collect();
    by_share.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in by_share.windows(2) {
        if pair[0].0 != pair[1].0 {
            assert_ne!(pair[0].1, pair[1].1, "shares {:?} drawn alike", pair);
        }
    }
    assert!(
        drawn["status"].as_str().unwrap().contains(
            "3 countries with data, 1 country with insufficient data (fewer than 3 probes)"
        ),
        "{drawn}"
    );
    // The table under the map lists the same countries, best share first.
    let table = browser.script(
        "return [...document.querySelectorAll('#table tbody tr')].map(r => [r.cells[0].textContent, r.cells[1].textContent]);",
    );
    let listed: Vec<&str> = table
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[0].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["France (FR)", "Germany (DE)", "Japan (JP)", "Brazil (BR)"],
        "country table order (balanced share FR 0.75; DE and JP 0.67, DE with more probes first \
         (Vodafone, alone under the minimum, is left out of DE's); BR insufficient, last)"
    );
    assert_eq!(table[3][1], "insufficient data", "{table}");

    // The map downloads as an SVG drawn by the server (the link's file) and as a PNG made
    // from it in the browser; both are kept beside the screenshots.
    let svg = browser.script(
        "const a = document.getElementById('svg-download');
         const x = new XMLHttpRequest(); x.open('GET', a.href, false); x.send();
         return [new URL(a.href).pathname + new URL(a.href).search, a.getAttribute('download'), x.status,
                 x.getResponseHeader('content-type'), x.responseText];",
    );
    assert_eq!(
        (&svg[0], &svg[1], &svg[2]),
        (
            &json!("/api/v1/maps/countries?format=svg&lang=en"),
            &json!("ipv6-by-country.svg"),
            &json!(200)
        ),
        "{}",
        svg[0]
    );
    assert!(svg[3].as_str().unwrap().starts_with("image/svg+xml"));
    let svg_text = svg[4].as_str().unwrap();
    assert!(svg_text.starts_with("<?xml") && svg_text.contains("<title>IPv6 by country</title>"));
    // The same colours as the page's map: FR's share colour, BR hatched.
    let fr_fill = fills["FR"].as_str().unwrap().replace(' ', "");
    assert!(
        svg_text.contains(&format!("fill=\"{fr_fill}\" data-country=\"FR\"")),
        "FR drawn {fr_fill} in the SVG"
    );
    assert!(svg_text.contains("fill=\"url(#insufficient)\" data-country=\"BR\" data-n=\"2\""));
    std::fs::write(shots.join("world-map-download.svg"), svg_text).unwrap();
    let png = browser.script(
        "return svgToPng(document.getElementById('svg-download').href).then(blob => new Promise(ok => {
           const r = new FileReader(); r.onload = () => ok(r.result); r.readAsDataURL(blob); }));",
    );
    let png = base64_decode(
        png.as_str()
            .unwrap()
            .strip_prefix("data:image/png;base64,")
            .expect("a PNG data URL"),
    );
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    // Twice the SVG's 960 px width (IHDR: width at bytes 16..20).
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1920);
    std::fs::write(shots.join("world-map-download.png"), &png).unwrap();

    // A click on Germany opens its national page.
    browser.click("#countries path[data-code='DE']");
    let start = Instant::now();
    while !browser.url().ends_with("/map/DE") {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "click did not open /map/DE: {}",
            browser.url()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = browser.wait_for(
        "the operator ranking",
        "const s = document.getElementById('ranking');
         if (!s || s.hidden) return null;
         return [...document.querySelectorAll('#operators-table tbody tr')]
           .map(r => ({ podium: r.className === 'podium', cells: [...r.cells].map(c => c.textContent) }));",
        Duration::from_secs(30),
    );
    browser.screenshot(&shots.join("country-DE.png"));
    browser.script("document.getElementById('ranking').scrollIntoView(); return true;");
    browser.screenshot(&shots.join("country-DE-ranking.png"));
    // Coverage: the operators with probes, as the coverage API counts them.
    let coverage = browser.wait_for(
        "the coverage section",
        "const s = document.getElementById('coverage');
         if (!s || s.hidden) return null;
         return [...document.querySelectorAll('#coverage-with tbody tr')].map(r => r.cells[1].textContent);",
        Duration::from_secs(30),
    );
    let api = api_json(collector, "/api/v1/maps/countries/DE/coverage");
    let mut counts: Vec<String> = api["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["probes"].to_string())
        .collect();
    // Operators under the publication minimum: one unnamed row.
    if api["few_probes"]["operators"].as_u64().unwrap() > 0 {
        counts.push(api["few_probes"]["probes"].to_string());
    }
    assert_eq!(coverage, serde_json::json!(counts), "{api}");
    browser.script("document.getElementById('coverage').scrollIntoView(); return true;");
    let other = browser.wait_for(
        "APNIC's figure beside ours",
        "const p = document.getElementById('comparison'); return p && !p.hidden ? p.textContent : null;",
        Duration::from_secs(30),
    );
    let other = other.as_str().unwrap();
    assert!(
        other.contains("APNIC Labs measured 72 % of users IPv6-capable")
            && other.contains("(Dec 1, 2026)")
            && other.contains("Difference: -5.5 points"),
        "{other}"
    );
    browser.screenshot(&shots.join("country-DE-coverage.png"));
    let detail = api_json(collector, "/api/v1/maps/countries/DE");
    let operators = detail["operators"].as_array().unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), operators.len(), "{rows:?}");
    assert_eq!(operators.len(), 3);
    for (i, (row, op)) in rows.iter().zip(operators).enumerate() {
        let rank = &op["rank"];
        let expected = [
            if rank.is_null() {
                "—".to_owned()
            } else if rank["best"] == rank["worst"] {
                rank["best"].to_string()
            } else {
                format!("{}–{}", rank["best"], rank["worst"])
            },
            format!("AS{} {}", op["asn"], op["as_name"].as_str().unwrap()),
            op["probes"].to_string(),
            if op["insufficient_data"] == true {
                "insufficient data".to_owned()
            } else {
                interval(&op["v6_works"])
            },
            format!(
                "{:.1} ms",
                op["median_rtt_v6_ms"].as_f64().unwrap_or(f64::NAN)
            ),
        ];
        let cells: Vec<String> = row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let expected_rtt_missing = op["median_rtt_v6_ms"].is_null();
        assert_eq!(cells[..4], expected[..4], "ranking row {i}");
        if expected_rtt_missing {
            assert_eq!(cells[4], "—", "ranking row {i}");
        } else {
            assert_eq!(cells[4], expected[4], "ranking row {i}");
        }
        assert_eq!(
            row["podium"].as_bool().unwrap(),
            !rank.is_null(),
            "ranked operators are the podium, row {i}"
        );
    }
    // The seeded truth: Telekom 4/4 ([51, 100 %]) and Telefonica 1/3 ([6, 79 %]) overlap,
    // so both rank 1–2; Vodafone's two probes are under the minimum: listed, unranked.
    let order: Vec<u64> = operators
        .iter()
        .map(|o| o["asn"].as_u64().unwrap())
        .collect();
    assert_eq!(order, [3320, 6805, 3209]);
    let ranks: Vec<&str> = rows
        .iter()
        .map(|r| r["cells"][0].as_str().unwrap())
        .collect();
    assert_eq!(ranks, ["1–2", "1–2", "—"], "{rows:?}");
    assert_eq!(rows[2]["cells"][3], "insufficient data", "{rows:?}");
    let figures = browser.script(
        "return ['balanced', 'probes', 'operators'].map(id => document.getElementById(id).textContent);",
    );
    assert_eq!(
        figures,
        json!([interval(&detail["v6_works"]["balanced"]), "9", "3"])
    );
    // The ranking downloads as CSV: the link is the country's, and its rows are the table's.
    let csv = browser.script(
        "const a = document.getElementById('operators-csv');
         const x = new XMLHttpRequest(); x.open('GET', a.href, false); x.send();
         return [new URL(a.href).pathname + new URL(a.href).search, x.status, x.responseText];",
    );
    assert_eq!(csv[0], "/api/v1/maps/countries/DE?format=csv", "{csv}");
    assert_eq!(csv[1], 200, "{csv}");
    let lines: Vec<&str> = csv[2].as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 1 + operators.len(), "{lines:?}");
    assert!(lines[1].starts_with("DE,1–2,3320,"), "{lines:?}");
    assert!(
        lines[3].starts_with("DE,,3209,") && lines[3].contains(",true,"),
        "{lines:?}"
    );

    // Drill-down: a click on an operator's row shows what is behind its cell; under the
    // minimum sample, insufficient data only; the national figure's shows every weight.
    let drill = |browser: &WebDriver, css: &str, what: &str| -> Value {
        browser.script("document.getElementById('drill-body').replaceChildren(); return true;");
        browser.click(css);
        browser.wait_for(
            what,
            "const s = document.getElementById('drilldown'), b = document.getElementById('drill-body');
             if (s.hidden || !b.children.length) return null;
             return { cell: document.getElementById('drill-cell').textContent, text: b.textContent,
                      weights: [...b.querySelectorAll('#drill-weights tbody tr')].map(r => [...r.cells].map(c => c.textContent)),
                      excluded: [...b.querySelectorAll('#drill-excluded li')].map(li => li.textContent) };",
            Duration::from_secs(30),
        )
    };
    let telekom = drill(
        &browser,
        "#operators-table tbody tr[data-asn='3320']",
        "Telekom's drill-down",
    );
    assert_eq!(telekom["cell"], "AS3320 in Germany (DE)", "{telekom}");
    let text = telekom["text"].as_str().unwrap();
    assert!(text.contains("4 probes counted"), "{telekom}");
    assert_eq!(
        telekom["weights"],
        // Telekom and Telefonica are the national share's two units (Vodafone is left out).
        json!([["AS3320", "4", "50.0 %", "12.5 %"]]),
        "{telekom}"
    );
    browser.screenshot(&shots.join("country-DE-drilldown-operator.png"));
    let vodafone = drill(
        &browser,
        "#operators-table tbody tr[data-asn='3209']",
        "Vodafone's drill-down",
    );
    let text = vodafone["text"].as_str().unwrap();
    assert!(
        text.starts_with("Insufficient data (fewer than 3 probes)"),
        "{vodafone}"
    );
    assert!(
        !text.contains('%') && vodafone["weights"] == json!([]),
        "{vodafone}"
    );
    let national = drill(&browser, "#drill-country", "the national drill-down");
    assert_eq!(
        national["cell"], "Germany (DE), all operators",
        "{national}"
    );
    let api = api_json(collector, "/api/v1/maps/countries/DE/drilldown");
    // Vodafone, alone under the minimum sample, is neither named nor counted: with the
    // national share and the named operators', its own would follow by subtraction.
    assert_eq!(
        national["weights"].as_array().unwrap().len(),
        2,
        "{national}"
    );
    assert!(
        national["text"].as_str().unwrap().contains(&format!(
            "7 probes counted, 2 operators; effective sample size of the interval: {:.1}",
            api["n_effective"].as_f64().unwrap()
        )),
        "{national} {api}"
    );
    assert!(
        national["text"].as_str().unwrap().contains(
            "1 operator under the minimum sample, neither named nor ranked, and together under it too: left out of the national figures"
        ),
        "{national}"
    );
    // Every seeded probe is active; those without a working IPv6 have no IPv6 RTT.
    assert_eq!(
        national["excluded"],
        json!([
            "fewer than 3 probes: of operators under the minimum sample that together do not reach it (in no national figure)",
            format!(
                "{}: no IPv6 ping round-trip time in the last 24 h (counted in the shares, not in the median RTT)",
                match api["excluded"][1]["probes"].as_u64() {
                    Some(n) => format!("{n} probes"),
                    None => "fewer than 3 probes".to_owned(),
                }
            )
        ]),
        "{national} {api}"
    );
    assert_eq!(
        api["excluded"][0]["reason"], "operator_under_minimum",
        "{api}"
    );

    // Two quick clicks: the first cell's answer comes last (the page's fetch of it held
    // back 1.5 s) and must not be drawn over the second's, nor mixed into it.
    browser.script(
        "const real = window.fetch;
         window.realFetch = real;
         window.fetch = (url, options) => String(url).endsWith('/drilldown/3320')
           ? new Promise(ok => setTimeout(ok, 1500)).then(() => real(url, options))
           : real(url, options);
         document.getElementById('drill-body').replaceChildren();
         return true;",
    );
    browser.click("#operators-table tbody tr[data-asn='3320']");
    browser.click("#drill-country");
    browser.wait_for(
        "the second click's drill-down",
        "const b = document.getElementById('drill-body');
         return b.querySelector('#drill-excluded') ? true : null;",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_millis(2500));
    let last = browser.script(
        "window.fetch = window.realFetch;
         const b = document.getElementById('drill-body');
         return { cell: document.getElementById('drill-cell').textContent, text: b.textContent,
                  tables: b.querySelectorAll('#drill-weights').length,
                  weights: [...b.querySelectorAll('#drill-weights tbody tr')].map(r => r.cells[0].textContent) };",
    );
    assert_eq!(last["cell"], "Germany (DE), all operators", "{last}");
    assert_eq!(last["tables"], 1, "{last}");
    assert_eq!(last["weights"], json!(["AS3320", "AS6805"]), "{last}");
    let text = last["text"].as_str().unwrap();
    assert!(
        text.contains("7 probes counted") && !text.contains("each weighing the same"),
        "{last}"
    );
    browser.screenshot(&shots.join("country-DE-drilldown.png"));

    // France: French Guiana in an inset, so the metropolitan country fills the view.
    browser.go(&format!("{base}/map/FR"));
    let insets = browser.wait_for(
        "France's map",
        "const t = document.querySelector('#land path.target'); if (!t) return null;
         const b = t.getBBox(), v = document.getElementById('shape').viewBox.baseVal;
         return { insets: document.querySelectorAll('#insets svg.inset').length,
                  note: !document.getElementById('insets-note').hidden,
                  width: b.width / v.width, height: b.height / v.height };",
        Duration::from_secs(30),
    );
    assert_eq!(insets["insets"], 1, "{insets}");
    assert_eq!(insets["note"], true, "{insets}");
    // The metropolitan outline (with Corsica) takes most of the view's height, not a corner.
    assert!(insets["height"].as_f64().unwrap() > 0.6, "{insets}");
    browser.screenshot(&shots.join("country-FR-insets.png"));
    // France's two operators (two probes each) are under the minimum, together over it: one
    // unnamed unit of the national share, drawn as one row of the drill-down's weights.
    browser.wait_for(
        "France's ranking",
        "const s = document.getElementById('ranking'); return s && !s.hidden ? true : null;",
        Duration::from_secs(30),
    );
    let france = drill(&browser, "#drill-country", "France's national drill-down");
    assert_eq!(
        france["weights"],
        json!([[
            "2 operators under the minimum, as one",
            "4",
            "100.0 %",
            "25.0 %"
        ]]),
        "{france}"
    );
    assert!(
        france["text"].as_str().unwrap().contains(
            "2 operators under the minimum sample, neither named nor ranked: together they reach it"
        ),
        "{france}"
    );
    let fr_svg = browser.script(
        "const a = document.getElementById('svg-download');
         const x = new XMLHttpRequest(); x.open('GET', a.href, false); x.send(); return [x.status, x.responseText];",
    );
    assert_eq!(fr_svg[0], 200);
    let fr_svg = fr_svg[1].as_str().unwrap();
    assert_eq!(fr_svg.matches("class=\"inset\"").count(), 1);
    std::fs::write(shots.join("country-FR-download.svg"), fr_svg).unwrap();

    // On a phone's width the pages do not widen past the screen: tables scroll inside.
    browser.call(
        "POST",
        "/window/rect",
        Some(json!({ "width": 390, "height": 844 })),
    );
    for (page, shot) in [
        ("/map/DE", "country-DE-phone.png"),
        ("/map", "world-map-phone.png"),
    ] {
        browser.go(&format!("{base}{page}"));
        browser.wait_for(
            "the page's table",
            "const t = document.querySelector('table tbody tr'); return t ? true : null;",
            Duration::from_secs(30),
        );
        let widths = browser.script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
        );
        let (scroll, client) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert!(client <= 420, "the window is a phone's: {widths}");
        assert!(
            scroll <= client,
            "{page} is wider than a phone's screen: {widths}"
        );
        browser.screenshot(&shots.join(shot));
    }
    drop(browser);
    arabic(base, collector, shots, addr);
    eprintln!("screenshots in {}", shots.display());
}

/// Arabic-Indic digits, as the pages' `Intl.NumberFormat("ar")` writes them.
fn arabic_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0x0660 + d).unwrap(),
            None => c,
        })
        .collect()
}

/// The same pages for a browser that asks for Arabic (`Accept-Language: ar`): right to left,
/// translated headings and country names, numbers in Arabic-Indic digits; then `?lang=fr`
/// overrides the browser's choice and the links keep it.
fn arabic(base: &str, collector: SocketAddr, shots: &Path, driver: SocketAddr) {
    let browser = WebDriver::start_in(driver, "ar,en;q=0.5");
    browser.go(&format!("{base}/map"));
    let page = browser.wait_for(
        "the Arabic map's table",
        "if (!document.querySelector('#table tbody tr')) return null;
         const th = [...document.querySelectorAll('#table thead th')].map(c => c.getBoundingClientRect().left);
         return { lang: document.documentElement.lang, dir: document.documentElement.dir,
                  computed: getComputedStyle(document.body).direction,
                  h1: document.querySelector('h1').textContent, status: document.getElementById('status').textContent,
                  rows: [...document.querySelectorAll('#table tbody tr')].map(r => [r.cells[0].textContent, r.cells[1].textContent, r.cells[3].textContent]),
                  firstColumnRightOfLast: th[0] > th[th.length - 1],
                  tick: document.querySelector('#ticks span:last-child').textContent };",
        Duration::from_secs(30),
    );
    browser.screenshot(&shots.join("world-map-ar.png"));
    assert_eq!(page["lang"], "ar", "{page}");
    assert_eq!(page["dir"], "rtl", "{page}");
    assert_eq!(page["computed"], "rtl", "{page}");
    assert_eq!(page["h1"], "IPv6 حسب الدولة", "{page}");
    assert_eq!(
        page["firstColumnRightOfLast"], true,
        "columns run right to left: {page}"
    );
    assert_eq!(page["tick"], "١٠٠٪", "{page}");
    let status = page["status"].as_str().unwrap();
    assert!(
        status.contains("٣ دول لديها بيانات") && status.contains("أقل من ٣ مسابير"),
        "Arabic plurals and digits: {status}"
    );
    let countries = api_json(collector, "/api/v1/maps/countries");
    let fr = countries["countries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["country"] == "FR")
        .unwrap();
    let pc = |x: &Value| (x.as_f64().unwrap() * 100.0).round().to_string();
    let b = &fr["v6_works"]["balanced"];
    assert_eq!(
        page["rows"][0],
        json!([
            "فرنسا (FR)",
            arabic_digits(&format!(
                "{}٪ ({}–{}٪)",
                pc(&b["share"]),
                pc(&b["low"]),
                pc(&b["high"])
            )),
            "٤"
        ]),
        "{page}"
    );
    assert_eq!(page["rows"][3][1], "بيانات غير كافية", "{page}");

    browser.click("#countries path[data-code='DE']");
    let figures = browser.wait_for(
        "the Arabic country page's ranking",
        "const s = document.getElementById('ranking');
         if (!s || s.hidden) return null;
         return { url: location.pathname + location.search, dir: document.documentElement.dir,
                  h1: document.getElementById('title').textContent,
                  heading: s.querySelector('h2').textContent,
                  figures: ['probes', 'operators'].map(id => document.getElementById(id).textContent),
                  ranks: [...document.querySelectorAll('#operators-table tbody tr')].map(r => r.cells[0].textContent),
                  insufficient: document.querySelector('#operators-table tbody tr:last-child').cells[3].textContent };",
        Duration::from_secs(30),
    );
    browser.screenshot(&shots.join("country-DE-ar.png"));
    assert_eq!(figures["url"], "/map/DE", "{figures}");
    assert_eq!(figures["dir"], "rtl", "{figures}");
    assert_eq!(figures["h1"], "IPv6 في ألمانيا (DE)", "{figures}");
    assert_eq!(figures["heading"], "ترتيب المشغّلين", "{figures}");
    assert_eq!(figures["figures"], json!(["٩", "٣"]), "{figures}");
    assert_eq!(figures["ranks"], json!(["١–٢", "١–٢", "—"]), "{figures}");
    assert_eq!(figures["insufficient"], "بيانات غير كافية", "{figures}");
    browser.script("document.getElementById('ranking').scrollIntoView(); return true;");
    browser.screenshot(&shots.join("country-DE-ranking-ar.png"));

    // The dashboard too: translated headings, its columns right to left.
    browser.go(&format!("{base}/"));
    let dashboard = browser.wait_for(
        "the Arabic dashboard",
        "const u = document.getElementById('updated').textContent;
         if (!u) return null;
         const th = [...document.querySelectorAll('#probes thead th')].map(c => c.getBoundingClientRect().left);
         return { dir: document.documentElement.dir, h1: document.querySelector('h1').textContent,
                  h2: document.querySelector('h2').textContent, rtl: th[0] > th[th.length - 1] };",
        Duration::from_secs(30),
    );
    browser.screenshot(&shots.join("dashboard-ar.png"));
    assert_eq!(
        dashboard,
        json!({ "dir": "rtl", "h1": "مُجمِّع sixmap", "h2": "المسابير", "rtl": true })
    );

    // ?lang= wins over the browser's language; the page's links keep the choice.
    browser.go(&format!("{base}/map/DE?lang=fr"));
    let french = browser.wait_for(
        "the French country page",
        "const s = document.getElementById('ranking');
         if (!s || s.hidden) return null;
         return { lang: document.documentElement.lang, dir: document.documentElement.dir,
                  h1: document.getElementById('title').textContent,
                  back: new URL(document.querySelector('nav:not(.languages) a').href).search,
                  menu: document.getElementById('languages').textContent };",
        Duration::from_secs(30),
    );
    assert_eq!(
        french,
        json!({ "lang": "fr", "dir": "ltr", "h1": "IPv6 : Allemagne (DE)", "back": "?lang=fr",
                "menu": "English · Français · العربية" })
    );
}

/// The raw head and body of `GET path` with `headers`.
fn get_raw(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// Without a browser: the language each request gets, its headers, and the 400 for an
/// unknown `?lang=`.
fn pages_answer_in_the_negotiated_language(collector: SocketAddr) {
    for (path, accept, lang, dir) in [
        ("/map", "", "en", "ltr"),
        ("/map", "Accept-Language: fr-CH, ar;q=0.9\r\n", "fr", "ltr"),
        (
            "/map/DE",
            "Accept-Language: de;q=1, ar;q=0.8, fr;q=0.5\r\n",
            "ar",
            "rtl",
        ),
        ("/", "Accept-Language: de\r\n", "en", "ltr"),
        ("/?lang=ar", "Accept-Language: fr\r\n", "ar", "rtl"),
    ] {
        let (head, body) = get_raw(collector, path, accept);
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains(&format!("content-language: {lang}\r\n")),
            "{path} {accept}: {head}"
        );
        assert!(head.contains("vary: accept-language"), "{path}: {head}");
        assert!(
            body.contains(&format!("<html lang=\"{lang}\" dir=\"{dir}\">")),
            "{path} {accept}"
        );
    }
    let (head, body) = get_raw(collector, "/map?lang=xx", "");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        body.contains("\"xx\"") && body.contains("en, fr, ar"),
        "{body}"
    );
}

fn api_json(addr: SocketAddr, path: &str) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    serde_json::from_str(body).unwrap()
}

#[test]
fn base64_decodes_padded_input() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
