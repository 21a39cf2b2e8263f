//! The national map pages and their vendored assets, served by a real collector: routes,
//! content types, the atlas-to-ISO mapping, that the pages load nothing from elsewhere, and
//! that their inline scripts parse (with node).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::config::CollectorConfig;
use sixmap_shared::config::parse_toml;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

struct Collector {
    _dir: tempfile::TempDir,
    http: SocketAddr,
}

async fn start() -> Collector {
    start_in(tempfile::tempdir().unwrap()).await
}

/// A collector on `dir`, which may hold a store already.
async fn start_in(dir: tempfile::TempDir) -> Collector {
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n\
         raw_data_public = true\n[default_ping]\ntargets = [\"::1\"]\n",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    Collector {
        _dir: dir,
        http: running.http_addr,
    }
}

struct Response {
    status: u16,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Minimal HTTP/1.1 GET over a real socket (the collector sends bodies with a length).
async fn get(addr: SocketAddr, path: &str) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{path}: chunked bodies are not decoded here"
    );
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

const ASSETS: &[(&str, &str)] = &[
    ("countries-110m.json", "application/json"),
    ("iso3166.json", "application/json"),
    ("topojson-client.min.js", "text/javascript; charset=utf-8"),
    ("i18n.js", "text/javascript; charset=utf-8"),
    ("maps-common.js", "text/javascript; charset=utf-8"),
];

const PAGES: &[&str] = &["/", "/map", "/map/NL"];

#[tokio::test]
async fn map_pages_and_assets_are_served() {
    let c = start().await;
    for path in ["/map", "/map/NL", "/map/XA"] {
        let r = get(c.http, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("content-type"),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert!(
            r.header("content-security-policy")
                .contains("default-src 'none'"),
            "{path}: {:?}",
            r.headers
        );
    }
    let world = get(c.http, "/map").await.text();
    let country = get(c.http, "/map/NL").await.text();
    assert!(
        world.contains("<title data-i18n=\"map.page_title\">IPv6 by country"),
        "{world}"
    );
    assert!(country.contains("/api/v1/maps/countries/"), "{country}");

    for (name, content_type) in ASSETS {
        let r = get(c.http, &format!("/assets/{name}")).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-type"), *content_type, "{name}");
        assert_eq!(r.header("cache-control"), "public, max-age=86400", "{name}");
        assert!(!r.body.is_empty(), "{name}");
    }
    for missing in ["/assets/nope", "/assets/README.md", "/assets/refresh.sh"] {
        let r = get(c.http, missing).await;
        assert_eq!(r.status, 404, "{missing}");
        assert!(r.text().contains("no asset"), "{missing}: {}", r.text());
    }

    // Not a country code: refused with a message that says what is expected.
    for bad in ["/map/nl1", "/map/N", "/map/NLD", "/map/N1"] {
        let r = get(c.http, bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.header("content-type").starts_with("text/plain"), "{bad}");
        let text = r.text();
        assert!(
            text.contains("is not a country code") && text.contains("/map/NL"),
            "{bad}: {text}"
        );
    }
    // Two letters in the wrong case: redirected to the canonical page.
    let r = get(c.http, "/map/nl").await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), "/map/NL");
    // The dashboard links to the map.
    assert!(get(c.http, "/").await.text().contains("href=\"/map\""));
}

#[tokio::test]
async fn every_atlas_country_maps_to_an_alpha2_code() {
    let c = start().await;
    let atlas: serde_json::Value =
        serde_json::from_slice(&get(c.http, "/assets/countries-110m.json").await.body).unwrap();
    let iso: serde_json::Value =
        serde_json::from_slice(&get(c.http, "/assets/iso3166.json").await.body).unwrap();
    let geometries = atlas["objects"]["countries"]["geometries"]
        .as_array()
        .unwrap();
    assert!(geometries.len() > 150, "{} geometries", geometries.len());

    // Areas without an ISO 3166-1 code, listed in collector/assets/README.md.
    let without_code: BTreeSet<&str> = ["N. Cyprus", "Somaliland"].into();
    let mut unmapped = Vec::new();
    for g in geometries {
        let name = g["properties"]["name"].as_str().unwrap();
        let code = match g["id"].as_str() {
            Some(numeric) => iso["numeric_to_alpha2"][numeric].as_str(),
            None if without_code.contains(name) => continue,
            None => iso["atlas_names"][name].as_str(),
        };
        match code {
            Some(code) => {
                assert!(
                    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()),
                    "{name}: {code}"
                );
                assert!(iso["names"][code].is_string(), "no English name for {code}");
            }
            None => unmapped.push(format!("{name} ({})", g["id"])),
        }
    }
    assert!(
        unmapped.is_empty(),
        "atlas features without alpha-2: {unmapped:?}"
    );
    assert_eq!(iso["numeric_to_alpha2"]["528"], "NL");
    assert_eq!(iso["atlas_names"]["Kosovo"], "XK");
    assert_eq!(iso["names"]["NL"], "Netherlands");
}

/// Quoted strings that start with `/`: the URLs a page refers to.
fn quoted_paths(page: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for quote in ['"', '\'', '`'] {
        let opener = format!("{quote}/");
        let mut rest = page;
        while let Some(at) = rest.find(&opener) {
            let after = &rest[at + 1..];
            let end = after.find(quote).unwrap_or(after.len());
            found.insert(after[..end].to_owned());
            rest = &after[end.min(after.len())..];
        }
    }
    found
}

#[tokio::test]
async fn pages_load_nothing_from_elsewhere() {
    let c = start().await;
    for page in PAGES {
        let body = get(c.http, page).await.text();
        let lower = body.to_ascii_lowercase();
        assert!(
            !lower.contains("http://") && !lower.contains("https://"),
            "{page} names an absolute URL"
        );
        for needle in ["src=\"//", "href=\"//", "url(", "@import", "<link"] {
            assert!(!lower.contains(needle), "{page} contains {needle}");
        }
        let paths = quoted_paths(&body);
        assert!(!paths.is_empty(), "{page}");
        for path in &paths {
            assert!(!path.starts_with("//"), "{page}: protocol-relative {path}");
            // Paths that are completed at run time ("/map/" + code) are prefixes.
            if path.len() < 2 || path.ends_with('/') {
                continue;
            }
            if path.starts_with("/assets/") || path.starts_with("/api/") {
                let r = get(c.http, path).await;
                assert_eq!(r.status, 200, "{page} refers to {path}");
            } else {
                assert!(
                    path == "/map" || path == "/map/NL",
                    "{page}: unexpected URL {path}"
                );
            }
        }
        if *page != "/" {
            assert!(paths.contains("/assets/topojson-client.min.js"), "{page}");
            assert!(paths.contains("/api/v1/maps/countries"), "{page}");
        }
    }
    // URLs the country page completes at run time: its figures (404 without probes, which the
    // page reports as "no figures yet") and its daily series.
    let country = get(c.http, "/map/NL").await.text();
    assert!(
        country.contains("`${api}/series`"),
        "the country page fetches its series"
    );
    assert_eq!(get(c.http, "/api/v1/maps/countries/NL").await.status, 404);
    assert_eq!(
        get(c.http, "/api/v1/maps/countries/NL/series").await.status,
        200
    );
}

#[tokio::test]
async fn series_of_a_country_without_data_is_empty() {
    let c = start().await;
    let r = get(c.http, "/api/v1/maps/countries/NL/series").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/json");
    let series: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        series,
        serde_json::json!({ "country": "NL", "days": [], "method_breaks": [], "projection": null })
    );
    for bad in ["nl1", "NLD", "N1"] {
        let r = get(c.http, &format!("/api/v1/maps/countries/{bad}/series")).await;
        assert_eq!(r.status, 400, "{bad}");
    }
    // The DNS over IPv6 section's figures: public, empty, and strict about its input.
    let r = get(c.http, "/api/v1/maps/countries/nl/dns").await;
    assert_eq!(r.status, 200);
    let dns: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (&dns["country"], &dns["days"], &dns["results"]),
        (
            &serde_json::json!("NL"),
            &serde_json::json!(30),
            &serde_json::json!(0)
        ),
        "{dns}"
    );
    assert_eq!(dns["operators"], serde_json::json!([]), "{dns}");
    for bad in [
        "/api/v1/maps/countries/NLD/dns",
        "/api/v1/maps/countries/NL/dns?days=7",
    ] {
        assert_eq!(get(c.http, bad).await.status, 400, "{bad}");
    }
    // The page says so in words, and says what a projection needs (strings it is handed in
    // its language, `crate::i18n`).
    let page = get(c.http, "/map/NL").await.text();
    assert!(page.contains("t(\"country.series_none\", { country: label })"));
    assert!(
        page.contains("\"country.series_none\":\"No daily figures stored yet for {country}.\"")
    );
    assert!(page.contains("A projection needs at least 3 days over at least a week of data."));
}

/// Runs node, or says why not: when node is missing the test is skipped, except in CI
/// (`CI` set), where node is installed and its absence is an error.
fn node(args: &[&std::ffi::OsStr]) -> Option<std::process::Output> {
    match std::process::Command::new("node").args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(!ci, "node is required in CI to check the pages' scripts");
            eprintln!("node not found: skipping the JavaScript checks");
            None
        }
        Err(e) => panic!("cannot run node: {e}"),
    }
}

/// The `<script>` elements without `src`.
fn inline_scripts(page: &str) -> Vec<String> {
    page.split("<script>")
        .skip(1)
        .map(|s| s.split("</script>").next().unwrap().to_owned())
        .collect()
}

/// The text of a top-level `function name(` up to its closing brace at the start of a line.
fn function_source(script: &str, name: &str) -> String {
    let start = script
        .find(&format!("\nfunction {name}("))
        .unwrap_or_else(|| panic!("no function {name}"));
    let end = start + script[start..].find("\n}\n").unwrap() + 3;
    script[start..end].to_owned()
}

#[tokio::test]
async fn inline_scripts_parse_and_cut_rings_at_the_antimeridian() {
    let c = start().await;
    let dir = tempfile::tempdir().unwrap();
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for page in PAGES {
        let body = get(c.http, page).await.text();
        let scripts = inline_scripts(&body);
        assert!(!scripts.is_empty(), "{page}");
        for (i, script) in scripts.iter().enumerate() {
            let file = dir
                .path()
                .join(format!("page{}-{i}.js", page.replace('/', "_")));
            std::fs::write(&file, script).unwrap();
            let Some(out) = node(&["--check".as_ref(), file.as_os_str()]) else {
                return;
            };
            assert!(
                out.status.success(),
                "{page}: script {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if *page == "/" {
            continue;
        }
        // The pages' shared ring handling, run on the served atlas: no edge may run across the
        // map (±180°) and no point may leave it, except Antarctica's ring around the pole.
        let common = format!(
            "{}\n{}",
            get(c.http, "/assets/i18n.js").await.text(),
            get(c.http, "/assets/maps-common.js").await.text()
        );
        // The shared scripts and the page's own run in one global scope: together they must
        // parse (a name declared in both would be a SyntaxError in the browser).
        let together = dir
            .path()
            .join(format!("together{}.js", page.replace('/', "_")));
        std::fs::write(&together, format!("{common}\n{}", scripts.join("\n"))).unwrap();
        let out = node(&["--check".as_ref(), together.as_os_str()]).unwrap();
        assert!(
            out.status.success(),
            "{page} with maps-common.js: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = &common;
        let check = format!(
            "const topojson = require(process.argv[2]);\n\
             const atlas = require(process.argv[3]);\n{}\n{}\n\
             const bad = new Set(); let count = 0;\n\
             for (const f of topojson.feature(atlas, atlas.objects.countries).features) {{\n\
               if (f.id === '010') continue;\n\
               for (const r of rings(f.geometry)) {{\n\
                 count++;\n\
                 for (let i = 1; i < r.length; i++) if (Math.abs(r[i][0] - r[i - 1][0]) > 180) bad.add(f.properties.name);\n\
                 if (r.some(([lon]) => lon < -180 || lon > 180)) bad.add(f.properties.name);\n\
               }}\n\
             }}\n\
             if (bad.size || count < 200) {{ console.error('rings crossing ±180°:', [...bad], count); process.exit(1); }}\n",
            function_source(script, "rings"),
            function_source(script, "splitAtAntimeridian"),
        );
        let file = dir.path().join("antimeridian.js");
        std::fs::write(&file, check).unwrap();
        let out = node(&[
            file.as_os_str(),
            assets.join("topojson-client.min.js").as_os_str(),
            assets.join("countries-110m.json").as_os_str(),
        ])
        .unwrap();
        assert!(
            out.status.success(),
            "{page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The country page splits a country into its metropolitan view and insets exactly as the SVG
/// download does (`maps-common.js` `countryLayout`, `map_svg::atlas::layout`): for every country
/// of the atlas, the same metropolitan box and the same inset boxes.
#[test]
fn the_page_and_the_svg_draw_territories_alike() {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let dir = tempfile::tempdir().unwrap();
    let script = "const fs = require('fs');\n\
        const topojson = require(process.argv[2]);\n\
        const atlas = JSON.parse(fs.readFileSync(process.argv[3]));\n\
        const iso = JSON.parse(fs.readFileSync(process.argv[4]));\n\
        const common = new Function(fs.readFileSync(process.argv[5], 'utf8') + '; return { rings, countryLayout };')();\n\
        const shiftRing = ring => ring.every(([lon]) => lon < 0) ? ring.map(([lon, lat]) => [lon + 360, lat]) : ring;\n\
        const bounds = rs => rs.flat().reduce((b, [x, y]) => [Math.min(b[0], x), Math.min(b[1], y), Math.max(b[2], x), Math.max(b[3], y)], [Infinity, Infinity, -Infinity, -Infinity]);\n\
        const out = {};\n\
        for (const f of topojson.feature(atlas, atlas.objects.countries).features) {\n\
          const code = f.id !== undefined ? iso.numeric_to_alpha2[f.id] : iso.atlas_names[f.properties.name];\n\
          if (!code) continue;\n\
          const plain = bounds(common.rings(f.geometry)), moved = bounds(common.rings(f.geometry).map(shiftRing));\n\
          const shift = moved[2] - moved[0] < plain[2] - plain[0];\n\
          const layout = common.countryLayout(f.geometry, ring => shift ? shiftRing(ring) : ring);\n\
          out[code] = [layout.mainBox, layout.insetBoxes];\n\
        }\n\
        console.log(JSON.stringify(out));\n";
    let file = dir.path().join("layout.js");
    std::fs::write(&file, script).unwrap();
    let Some(out) = node(&[
        file.as_os_str(),
        assets.join("topojson-client.min.js").as_os_str(),
        assets.join("countries-110m.json").as_os_str(),
        assets.join("iso3166.json").as_os_str(),
        assets.join("maps-common.js").as_os_str(),
    ]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: std::collections::BTreeMap<String, ([f64; 4], Vec<[f64; 4]>)> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert!(page.len() > 170, "{}", page.len());
    let close = |a: &[f64; 4], b: &[f64; 4]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    let mut with_insets = Vec::new();
    for (code, (main, insets)) in &page {
        let (svg_main, svg_insets) = sixmap_collector::map_svg::country_boxes(code).unwrap();
        assert!(
            close(main, &svg_main),
            "{code}: page {main:?}, SVG {svg_main:?}"
        );
        assert_eq!(insets.len(), svg_insets.len(), "{code}");
        for (a, b) in insets.iter().zip(&svg_insets) {
            assert!(close(a, b), "{code}: inset {a:?} vs {b:?}");
        }
        if !insets.is_empty() {
            with_insets.push(code.as_str());
        }
    }
    assert_eq!(with_insets, ["FR", "US"]);
}

/// One probe's ping on day `day` (days since 1970), from its own operator AS `probe + 1` in XA.
fn ping(probe: u32, sequence: u64, day: i64, works: bool) -> sixmap_collector::store::StoredResult {
    let origin = sixmap_shared::prefixes::Enrichment {
        asn: Some(probe + 1),
        as_name: None,
        country: "XA".parse().ok(),
    };
    sixmap_collector::testing::ping_v6(
        format!("{probe:016x}").parse().unwrap(),
        sequence,
        sixmap_shared::UnixMicros(day * 86_400_000_000 + 3_600_000_000),
        works.then_some(std::time::Duration::from_millis(15)),
        origin,
    )
}

/// A fake DOM, enough for the country page's script to define its functions and for its chart
/// to be drawn into; `main()` then waits forever on a `fetch` that never answers.
const FAKE_DOM: &str = r#"
class El {
  constructor(tag) { this.tag = tag; this.attrs = {}; this.children = []; this.text = ""; this.style = {}; this.classList = { add() {} }; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  append(...c) { this.children.push(...c); }
  replaceChildren(...c) { this.children = c; }
  set textContent(t) { this.text = String(t); }
  get textContent() { return this.text + this.children.map(c => c.textContent).join(""); }
}
globalThis.document = {
  getElementById: id => Object.assign(new El("any"), { text: id === "i18n" ? globalThis.I18N_JSON : "" }),
  createElementNS: (ns, tag) => new El(tag), addEventListener() {},
  querySelectorAll: () => [], querySelector: () => new El("any") };
globalThis.location = { pathname: "/map/XA" };
globalThis.fetch = () => new Promise(() => {});
globalThis.window = { addEventListener() {} };
"#;

/// Draws the chart for the served series and variants of it at phone and desktop widths, and
/// checks what is drawn: finite coordinates, one dot per day, and a projection only when there
/// is one, right of the last measured day, labelled as a projection.
const CHART_CHECK: &str = r#"
const served = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
const failures = [];
const expect = (ok, what) => { if (!ok) failures.push(what); };
const walk = (el, out = []) => { out.push(el); for (const c of el.children) walk(c, out); return out; };
const has = (el, cls) => (el.attrs.class || "").split(" ").includes(cls);

const template = served.days[0];
const run = Array.from({ length: 40 }, (_, i) => ({ ...template, day_number: template.day_number + i,
  day: new Date((template.day_number + i) * 86400000).toISOString().slice(0, 10) }));
const saturated = { ...served, projection: { ...served.projection, slope_per_year_logit: 300,
  points: served.projection.points.map(([y, d]) => [y, d, 1]) } };
// A method change on the fourth day: the days before by sixmap-daily/1; from it on, by /2,
// each with the old method's value beside it.
const changed = { ...served, projection: null,
  days: served.days.map((d, i) => ({ ...d, method_id: i < 3 ? "sixmap-daily/1" : "sixmap-daily/2",
    v6_works_previous_method: i < 3 ? null : { ...d.v6_works.balanced, share: d.v6_works.balanced.share - 0.05 } })),
  method_breaks: [{ day: served.days[3].day, before: "sixmap-daily/1", after: "sixmap-daily/2" }] };
// Two changes: days 1–2 by /1, 3–4 by /2, 5–7 by /3; each later day's mark names the method
// before the one in force that day (/1 on days 3–4, /2 from day 5), not the first break's.
const method = i => i < 2 ? "sixmap-daily/1" : i < 4 ? "sixmap-daily/2" : "sixmap-daily/3";
const twice = { ...served, projection: null,
  days: served.days.map((d, i) => ({ ...d, method_id: method(i),
    v6_works_previous_method: i < 2 ? null : { ...d.v6_works.balanced, share: d.v6_works.balanced.share - 0.05 } })),
  method_breaks: [{ day: served.days[2].day, before: method(0), after: method(2) },
    { day: served.days[4].day, before: method(2), after: method(4) }] };
// The same, drawn from day 4 on: the first break is left of the chart, the second in it.
const later = { ...twice, days: twice.days.slice(3) };
const cases = {
  served, saturated, changed, twice, later,
  "one day": { country: "XA", days: served.days.slice(0, 1), projection: null },
  "no days": { country: "XA", days: [], projection: null },
  "40 days": { country: "XA", days: run, projection: null },
};
for (const [name, series] of Object.entries(cases)) {
  for (const W of [320, 1100]) {
    const what = `${name} at ${W} px`;
    const root = new El("svg");
    drawSeriesChart(root, series, W, "2025-11-10");
    const all = walk(root);
    if (!series.days.length) { expect(all.length === 1, `${what}: nothing drawn`); continue; }
    expect(root.attrs.viewBox.startsWith(`0 0 ${W} `), `${what}: viewBox ${root.attrs.viewBox}`);
    const H = Number(root.attrs.viewBox.split(" ")[3]);
    for (const el of all) for (const [k, v] of Object.entries(el.attrs)) {
      expect(!/NaN|Infinity|undefined|null/.test(v), `${what}: <${el.tag} ${k}="${v}">`);
    }
    const dots = all.filter(el => has(el, "measured"));
    expect(dots.length === series.days.length, `${what}: ${dots.length} dots`);
    for (const d of dots) expect(+d.attrs.cx > 0 && +d.attrs.cx < W && +d.attrs.cy > 0 && +d.attrs.cy < H, `${what}: dot at ${d.attrs.cx},${d.attrs.cy}`);
    expect(dots.every(d => d.children.some(t => t.tag === "title")), `${what}: dots have titles`);
    // The method break: one marked line between the last day of the old method and the first
    // of the new, labelled with the new method; the old method's value beside each later day.
    const breaks = all.filter(el => has(el, "method-break")), previous = all.filter(el => has(el, "previous-method"));
    if (name === "changed") {
      const xs = dots.map(d => +d.attrs.cx).sort((a, b) => a - b);
      expect(breaks.length === 1 && +breaks[0].attrs.x1 > xs[2] && +breaks[0].attrs.x1 < xs[3], `${what}: break line between days 3 and 4`);
      expect(all.some(el => has(el, "method-break-text") && el.textContent.includes("sixmap-daily/2")), `${what}: break labelled`);
      expect(previous.length === series.days.length - 3, `${what}: ${previous.length} previous-method marks`);
      for (const m of previous) {
        const x = +m.attrs.d.slice(1).split(",")[0];
        expect(xs.some(dx => x > dx && x - dx < 12), `${what}: previous-method mark at ${x} beside its day`);
      }
    } else if (name === "twice" || name === "later") {
      const lines = breaks.filter(el => el.tag === "line");
      expect(lines.length === (name === "twice" ? 2 : 1), `${what}: ${lines.length} break lines`);
      expect(previous.length === series.days.filter(d => d.v6_works_previous_method).length, `${what}: ${previous.length} previous-method marks`);
      for (const m of previous) {
        const tip = m.children.find(c => c.tag === "title").textContent;
        const i = served.days.findIndex(s => tip.startsWith(dayText(s.day) + ":"));
        expect(i >= 2, `${what}: a mark for day ${i + 1}: ${tip}`);
        expect(tip.includes(`previous method ${method(i < 4 ? 0 : 2)},`) && tip.endsWith(`by ${method(i)}`),
          `${what}: day ${i + 1}'s mark names the method before the one in force that day: ${tip}`);
      }
    } else {
      expect(!breaks.length && !previous.length, `${what}: no break drawn without a method change`);
    }
    const projected = all.filter(el => has(el, "projected"));
    const labels = all.filter(el => el.tag === "text" && el.textContent.includes("(projection)"));
    if (!series.projection) {
      expect(!all.some(el => /projection|projected|future|trend/.test(el.attrs.class || "")), `${what}: no projection drawn`);
      continue;
    }
    const lastX = Math.max(...dots.map(d => +d.attrs.cx));
    expect(projected.length === series.projection.points.length, `${what}: ${projected.length} projected points`);
    expect(projected.every(p => +p.attrs.cx > lastX && +p.attrs.cx < W), `${what}: projected points right of the last day`);
    expect(all.some(el => has(el, "projection-line")) && all.some(el => has(el, "future")) && all.some(el => has(el, "hatch")),
      `${what}: dashed line and hatched region`);
    for (const [years] of series.projection.points) {
      expect(labels.some(t => t.textContent.startsWith(`+${years} y: `)), `${what}: label for +${years} y`);
    }
    expect(labels.length === series.projection.points.length, `${what}: ${labels.length} labels`);
    expect(!labels.some(t => t.textContent.includes("100 %")), `${what}: a projection never reaches 100 %`);
  }
}
// The page redraws the server's fitted line from the days and the slope: it must pass through
// the server's projected points.
const trend = trendAt(served);
let compared = 0;
for (const [years, day, share] of served.projection.points) {
  if (share < 0.999) { compared++; expect(Math.abs(trend(day) - share) < 1e-9, `trend at +${years} y: ${trend(day)} vs ${share}`); }
}
expect(compared > 0, "no unsaturated projected point to compare");
if (failures.length) { console.error(failures.join("\n")); process.exit(1); }
"#;

#[tokio::test]
async fn series_chart_draws_days_and_a_distinct_projection() {
    // Seven days, ten days apart, from 2025-11-08: eight probes in eight operators, four or
    // five of them with working IPv6, slowly more.
    let dir = tempfile::tempdir().unwrap();
    {
        use sixmap_collector::store::{SledStore, Store};
        let store = SledStore::open(dir.path()).unwrap();
        let first = 20_400;
        let working = [4, 4, 4, 5, 4, 4, 5];
        let mut results = Vec::new();
        for (i, works) in working.iter().enumerate() {
            for probe in 0..8u32 {
                let sequence = (i * 8) as u64 + u64::from(probe) + 1;
                let day = first + 10 * i as i64;
                results.push(ping(probe, sequence, day, probe < *works));
            }
        }
        store.insert_results(&results).unwrap();
        let now = sixmap_shared::UnixMicros((first + 61) * 86_400_000_000);
        // 7 days, each with the country and its 8 networks (one AS per probe).
        assert_eq!(
            sixmap_collector::daily::refresh(
                &store,
                &sixmap_shared::prefixes::PrefixData::new(),
                now,
                70,
                Default::default(),
            )
            .unwrap(),
            7 * 9
        );
        store.flush().unwrap();
    }
    let c = start_in(dir).await;
    let r = get(c.http, "/api/v1/maps/countries/XA/series").await;
    assert_eq!(r.status, 200);
    let series: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(series["days"].as_array().unwrap().len(), 7, "{series}");
    assert_eq!(series["days"][0]["day"], "2025-11-08");
    assert!(series["projection"].is_object(), "{series}");

    // The historical map: a past day's stored figures, from the rollups (not the live window).
    let past = get(c.http, "/api/v1/maps/countries?date=2025-11-08").await;
    assert_eq!(past.status, 200, "{}", past.text());
    let day: serde_json::Value = serde_json::from_slice(&past.body).unwrap();
    assert_eq!(
        (&day["date"], &day["source"]),
        (&"2025-11-08".into(), &"rollups".into())
    );
    let countries = day["countries"].as_array().unwrap();
    assert_eq!(countries.len(), 1, "networks are not countries: {day}");
    assert_eq!(countries[0]["country"], "XA");
    assert_eq!(countries[0]["probes"], 8);
    assert_eq!(countries[0]["v6_works"]["balanced"]["share"], 0.5, "{day}");
    let past = get(c.http, "/api/v1/maps/countries/xa?date=2025-12-08").await;
    let xa: serde_json::Value = serde_json::from_slice(&past.body).unwrap();
    assert_eq!(
        (past.status, &xa["day"]),
        (200, &"2025-12-08".into()),
        "{xa}"
    );
    assert_eq!(xa["v6_works"]["pooled"]["share"], 5.0 / 8.0, "{xa}");
    // A day without figures; a day that is not one; a repeat; any other parameter.
    assert_eq!(
        get(c.http, "/api/v1/maps/countries/XA?date=2025-11-09")
            .await
            .status,
        404
    );
    let empty = get(c.http, "/api/v1/maps/countries?date=2025-11-09").await;
    let empty: serde_json::Value = serde_json::from_slice(&empty.body).unwrap();
    assert_eq!(empty["countries"], serde_json::json!([]), "{empty}");
    for (query, says) in [
        ("date=2025-11-31", "not a UTC day"),
        ("date=2025-1-08", "not a UTC day"),
        ("date=2025-11-08&date=2025-11-18", "more than once"),
        ("date=2025-11-08&colour=red", "unknown parameter `colour`"),
        ("since=2025-11-08", "unknown parameter `since`"),
    ] {
        for path in ["/api/v1/maps/countries", "/api/v1/maps/countries/XA"] {
            let past = get(c.http, &format!("{path}?{query}")).await;
            assert_eq!(past.status, 400, "{path}?{query}");
            assert!(
                past.text().contains(says),
                "{path}?{query}: {}",
                past.text()
            );
        }
    }

    // The same figures as CSV downloads, and a format that is not one.
    let csv = get(c.http, "/api/v1/maps/countries?date=2025-11-08&format=csv").await;
    assert_eq!(csv.status, 200, "{}", csv.text());
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert!(
        csv.header("content-disposition")
            .contains("ipv6-by-country-2025-11-08.csv"),
        "{:?}",
        csv.headers
    );
    let text = csv.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "country,probes,operators,insufficient_data,v6_works,ci_low,ci_high,n_effective,pooled,median_rtt_v6_ms,median_rtt_v4_ms,v6_penalty_ms,as_of,min_probes"
        )
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        (row[0], row[1], row[3], row[4], row[12]),
        ("XA", "8", "false", "0.5000", "2025-11-08"),
        "{text}"
    );
    assert_eq!(lines.next(), None, "{text}");
    let one = get(
        c.http,
        "/api/v1/maps/countries/XA?format=csv&date=2025-12-08",
    )
    .await;
    assert!(one.text().contains("\nXA,8,"), "{}", one.text());
    let live = get(c.http, "/api/v1/maps/countries?format=csv").await;
    assert_eq!(live.status, 200);
    assert!(
        live.text().starts_with("country,probes,"),
        "{}",
        live.text()
    );
    for query in ["format=xml", "format=csv&format=json"] {
        let refused = get(c.http, &format!("/api/v1/maps/countries?{query}")).await;
        assert_eq!(refused.status, 400, "{query}");
        assert!(refused.text().contains("`format`"), "{}", refused.text());
    }
    // The map of a past day as an SVG file, in the language asked for; `lang` means nothing
    // to JSON or CSV.
    let svg = get(
        c.http,
        "/api/v1/maps/countries?date=2025-11-08&format=svg&lang=fr",
    )
    .await;
    assert_eq!(svg.status, 200, "{}", svg.text());
    assert!(svg.header("content-type").starts_with("image/svg+xml"));
    assert!(
        svg.header("content-disposition")
            .contains("ipv6-by-country-2025-11-08.svg")
    );
    let text = svg.text();
    assert!(text.starts_with("<?xml") && text.contains("<title>IPv6 par pays</title>"));
    assert!(
        text.contains("2025-11-08") && text.contains("sixmap-daily/"),
        "{text}"
    );
    let one = get(
        c.http,
        "/api/v1/maps/countries/XA?date=2025-12-08&format=svg",
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.text());
    // 5 of 8 operators, one probe each: 62.5 %, rounded as the pages round it. Each is
    // under the minimum of 3, together they reach it: one unit, its eight probes pooled
    // (Wilson 5/8).
    assert!(
        one.text().contains("IPv6 works: 63 % (31–86 %)"),
        "{}",
        one.text()
    );
    for (query, says) in [
        ("lang=fr", "only with format=svg"),
        ("format=csv&lang=fr", "only with format=svg"),
        ("format=svg&lang=fr&lang=ar", "more than once"),
        // One spelling per language: any other would be a drawing of its own in the cache.
        ("format=svg&lang=fr-x1", "not a language code"),
        ("format=svg&lang=FR", "not a language code"),
    ] {
        let refused = get(c.http, &format!("/api/v1/maps/countries?{query}")).await;
        assert_eq!(refused.status, 400, "{query}");
        assert!(refused.text().contains(says), "{query}: {}", refused.text());
    }
    // One spelling per AS number, likewise.
    for asn in ["AS064500", "+64500", "64500x", "AS"] {
        let refused = get(
            c.http,
            &format!("/api/v1/maps/countries/XA/drilldown/{asn}"),
        )
        .await;
        assert_eq!(refused.status, 400, "{asn}: {}", refused.text());
    }

    let page = get(c.http, "/map/XA").await.text();
    assert!(
        page.contains("a.csv") && page.contains("?format=csv"),
        "{page}"
    );
    let script = &inline_scripts(&page)[0];
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("series.json");
    std::fs::write(&data, &r.body).unwrap();
    let file = work.path().join("chart.js");
    let common = get(c.http, "/assets/maps-common.js").await.text();
    // The page's strings (English), as the fake DOM's `<script id="i18n">`.
    let strings = page
        .split("<script id=\"i18n\" type=\"application/json\">")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the page's strings");
    let i18n = get(c.http, "/assets/i18n.js").await.text();
    std::fs::write(
        &file,
        format!(
            "{FAKE_DOM}\nglobalThis.I18N_JSON = {};\n{i18n}\n{common}\n{script}\n{CHART_CHECK}",
            serde_json::Value::String(strings.to_owned())
        ),
    )
    .unwrap();
    let Some(out) = node(&[file.as_os_str(), data.as_os_str()]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
