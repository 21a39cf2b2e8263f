//! The HTTP API against hostile and sloppy input (issue #19 items 3, 10, 11, 13, 14):
//! campaign writes only by their owner, bounded times, one value per parameter, the same
//! country rules on every route, JSON errors everywhere, private files, checked dirs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::auth;
use sixmap_collector::campaign::Campaigns;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::store::{ProbeRecord, Role, Store};
use sixmap_collector::testing::clickhouse::{ClickHouseServer, test_store};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;
use sixmap_shared::prefixes::Enrichment;
use std::sync::Arc;

struct Harness {
    _dir: tempfile::TempDir,
    http: std::net::SocketAddr,
    /// Tokens by holder: "admin", "regulator" and "intruder" (both campaigners).
    tokens: std::collections::HashMap<&'static str, String>,
    /// A campaign owned by "regulator".
    campaign: u64,
    _clickhouse: Option<ClickHouseServer>,
}

const SPEC: &str = "name = \"t\"\ntargets = [\"example.org\"]\n\
    [[measurements]]\nkind = \"ping\"\ntimeout_ms = 5000\n";

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let (store_lines, clickhouse, store) = test_store(dir.path());
    let store: Arc<dyn Store> = Arc::from(store);
    let now = UnixMicros::now();
    let mut tokens = std::collections::HashMap::new();
    for (name, role) in [
        ("admin", Role::Admin),
        ("regulator", Role::Campaigner),
        ("intruder", Role::Campaigner),
    ] {
        tokens.insert(
            name,
            auth::create_api_token(&*store, role, name, now).unwrap().0,
        );
    }
    store
        .create_probe(&ProbeRecord {
            last_seen: Some(now),
            origin: Some(Enrichment {
                asn: Some(64500),
                as_name: None,
                country: "DE".parse().ok(),
            }),
            ..ProbeRecord::new("00000000000000a1".parse().unwrap(), "pi", now)
        })
        .unwrap();
    let campaign = Campaigns::new(store.clone(), false, None)
        .create("regulator", "toml", SPEC, now)
        .unwrap()
        .id;
    drop(store);
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n\
         raw_data_public = true\n{store_lines}",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    Harness {
        _dir: dir,
        http: running.http_addr,
        tokens,
        campaign,
        _clickhouse: clickhouse,
    }
}

/// One HTTP/1.1 request with the given extra header lines; status, headers and body.
async fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[String],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let headers: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\n{headers}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

impl Harness {
    async fn call(&self, who: &str, method: &str, path: &str, body: &str) -> (u16, String) {
        let auth = self
            .tokens
            .get(who)
            .map(|t| vec![format!("Authorization: Bearer {t}")])
            .unwrap_or_default();
        let (status, _, body) = raw(self.http, method, path, &auth, body).await;
        (status, body)
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[tokio::test]
async fn only_a_campaigns_owner_or_an_admin_may_change_it() {
    let h = start().await;
    let id = h.campaign;
    let declared = "asn,metric,value,as_of,source\n64500,activation,0.5,2026-01-01,x\n";
    let (status, body) = h
        .call(
            "intruder",
            "POST",
            &format!("/api/v1/campaigns/{id}/cancel"),
            "",
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("belongs to"),
        "{body}"
    );
    let (status, body) = h
        .call(
            "intruder",
            "POST",
            &format!("/api/v1/campaigns/{id}/declared"),
            declared,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, body) = h
        .call("intruder", "GET", &format!("/api/v1/campaigns/{id}"), "")
        .await;
    let shown = json(&body);
    assert_eq!(shown["campaign"]["status"], "active", "{body}");
    // A campaign created by the intruder "for" the regulator is the intruder's own.
    let spec = serde_json::json!({"owner": "regulator", "format": "toml", "spec": SPEC});
    let (status, body) = h
        .call("intruder", "POST", "/api/v1/campaigns", &spec.to_string())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["owner"], "intruder", "{body}");
    // The owner and an admin may.
    let (status, body) = h
        .call(
            "regulator",
            "POST",
            &format!("/api/v1/campaigns/{id}/declared"),
            declared,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = h
        .call(
            "admin",
            "POST",
            &format!("/api/v1/campaigns/{id}/cancel"),
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn parameters_times_and_errors_are_consistent() {
    let h = start().await;
    // A repeated single-valued parameter is a 400 naming it, on every API.
    for (path, name) in [
        ("/api/v1/query/results?limit=1&limit=2", "limit"),
        (
            "/api/v1/query/aggregates?group_by=day&group_by=asn",
            "group_by",
        ),
        ("/api/v1/export?format=jsonl&format=csv", "format"),
        ("/api/v1/query/results?from=2026-02-30", "from"),
        ("/api/v1/query/results?to=9223372036854775807-01-01", "to"),
        ("/api/v1/maps/countries?foo=1", "foo"),
        ("/api/v1/maps/countries/DE?limit=5", "limit"),
    ] {
        let (status, body) = h.call("-", "GET", path, "").await;
        assert_eq!(status, 400, "{path}: {body}");
        let error = json(&body)["error"].as_str().unwrap().to_owned();
        assert!(error.contains(&format!("`{name}`")), "{path}: {error}");
    }
    // Country codes in any case, on the query and the map APIs alike.
    let (status, body) = h
        .call("-", "GET", "/api/v1/query/results?probe_country=de", "")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = h
        .call("-", "GET", "/api/v1/maps/countries/de/series", "")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = h.call("-", "GET", "/api/v1/maps/countries/de", "").await;
    assert_ne!(status, 400, "{body}");
    json(&body);
    // 404 and 405 answer JSON.
    let (status, body) = h.call("admin", "GET", "/api/v1/nothing-here", "").await;
    assert_eq!(status, 404);
    assert!(json(&body)["error"].is_string(), "{body}");
    let (status, body) = h
        .call("admin", "DELETE", "/api/v1/maps/countries", "")
        .await;
    assert_eq!(status, 405);
    assert!(json(&body)["error"].is_string(), "{body}");
    // Two Authorization headers: which would count? Neither.
    let both = [
        format!("Authorization: Bearer {}", h.tokens["regulator"]),
        format!("Authorization: Bearer {}", h.tokens["admin"]),
    ];
    let (status, _, body) = raw(h.http, "GET", "/api/v1/audit", &both, "").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("Authorization")
    );
    // Times and durations from outside are bounded, and the error names the field.
    let token = r#"{"owner": "x", "expires_in": "99999999999999d"}"#;
    let (status, body) = h
        .call("admin", "POST", "/api/v1/enrollment-tokens", token)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expires_in"), "{body}");
    let token = r#"{"owner": "x", "expires_in": "400d"}"#;
    let (status, body) = h
        .call("admin", "POST", "/api/v1/enrollment-tokens", token)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expires_in"), "{body}");
    let spec = format!("{SPEC}[schedule]\nstart = \"9223372036854775807-01-01T00:00:00Z\"\n");
    let body = serde_json::json!({"format": "toml", "spec": spec}).to_string();
    let (status, body) = h
        .call("regulator", "POST", "/api/v1/campaigns", &body)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["field"], "schedule.start", "{body}");
}

#[tokio::test]
async fn the_data_dir_is_private_and_the_dumps_dir_checked_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let config = |data_dir: &std::path::Path, extra: &str| {
        let text = format!(
            "data_dir = {data_dir:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n{extra}"
        );
        parse_toml::<CollectorConfig>(&text)
            .unwrap()
            .validate(None)
            .unwrap()
    };
    // A dumps dir that cannot be created (its parent is a file) stops the start.
    let file = parent.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let dumps = format!("[dumps]\nenabled = true\ndir = {:?}\n", file.join("dumps"));
    let err = sixmap_collector::start(config(&parent.path().join("d1"), &dumps))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`dumps.dir`"), "{err}");
    // A new data dir is 0700, the store's and CA's files 0600.
    let data = parent.path().join("d2");
    let _running = sixmap_collector::start(config(&data, "")).await.unwrap();
    assert_eq!(mode(&data), 0o700);
    for name in ["conf", "db", "pki/ca.key"] {
        let path = data.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        } else {
            assert_ne!(name, "conf", "sled writes conf at open");
        }
    }
    assert_eq!(mode(&data.join("pki")), 0o700);
}
