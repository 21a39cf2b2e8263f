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
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n\
         enrollment_tokens = [\"test-token-1\"]\n[default_ping]\ntargets = [\"::1\"]\n",
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
    assert!(world.contains("<title>IPv6 by country"), "{world}");
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
        // The page's own ring handling, run on the served atlas: no edge may run across the
        // map (±180°) and no point may leave it, except Antarctica's ring around the pole.
        let script = &scripts[0];
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
