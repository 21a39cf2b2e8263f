//! The opt-in public probe directory (issue #21) on a running collector: off by default, an
//! owner lists a probe with the CLI and it appears on the public list (no token) without any
//! address; another owner cannot touch it; huge pages are refused; unlisted, it disappears.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::store::{ProbeRecord, Role, SledStore, Store};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;

const PROBE: &str = "00000000000000a1";

async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Runs the collector binary off the runtime's workers (which serve the collector).
async fn cli(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
            .args(&args)
            .env_remove("SIXMAP_COLLECTOR")
            .env_remove("SIXMAP_API_TOKEN")
            .output()
            .expect("run sixmap-collector");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_opt_in_and_out_and_the_public_list_shows_no_address() {
    let dir = tempfile::tempdir().unwrap();
    let now = UnixMicros::now();
    let (owner, other) = {
        let store = SledStore::open(dir.path()).unwrap();
        let owner = auth::create_api_token(&store, Role::Researcher, "uni-a", now)
            .unwrap()
            .0;
        let other = auth::create_api_token(&store, Role::Campaigner, "uni-b", now)
            .unwrap()
            .0;
        let mut probe: ProbeRecord = serde_json::from_value(serde_json::json!({
            "id": PROBE, "hostname": "pi-kitchen", "enrolled_at": now.0,
            "last_seen": now.0, "software_version": "0.1.0", "boot_epoch": null,
            "local_addresses": ["2001:db8:77:1::5"],
            "origin": {"asn": 64500, "as_name": "Example Net", "country": "FR"},
            "owner": "uni-a", "enrolled_from": "2001:db8:77:1::5",
        }))
        .unwrap();
        probe.directory_listed = false;
        store.create_probe(&probe).unwrap();
        store.flush().unwrap();
        (owner, other)
    };
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    let addr = running.http_addr;
    let url = format!("http://{addr}");
    let public = || async {
        let (status, body) = http(addr, "GET", "/api/v1/directory", None, "").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };

    // Off by default; the page and the list need no token.
    assert_eq!(public().await["total"], 0);
    let (status, page) = http(addr, "GET", "/directory", None, "").await;
    assert_eq!(status, 200);
    assert!(page.contains("Probe directory"), "{page}");

    // Another owner, an unknown id, no token: refused alike, nothing listed.
    let listed = r#"{"listed": true}"#;
    for (id, bearer, want) in [
        (PROBE, Some(other.as_str()), 404),
        ("00000000000000ff", Some(owner.as_str()), 404),
        (PROBE, None, 401),
    ] {
        let path = format!("/api/v1/directory/{id}");
        let (status, body) = http(addr, "POST", &path, bearer, listed).await;
        assert_eq!(status, want, "{id}: {body}");
    }
    assert_eq!(public().await["total"], 0);
    let (ok, _, stderr) = cli(&[
        "directory",
        "opt-in",
        PROBE,
        "--collector",
        &url,
        "--token",
        &other,
    ])
    .await;
    assert!(
        !ok && stderr.contains(&url),
        "errors name the collector: {stderr}"
    );

    // The owner lists it with the CLI: it appears, with its network but no address.
    let (ok, _, stderr) = cli(&[
        "directory",
        "opt-in",
        PROBE,
        "--collector",
        &url,
        "--token",
        &owner,
    ])
    .await;
    assert!(ok, "{stderr}");
    // The public list is cached for a moment.
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let shown = public().await;
    assert_eq!(shown["total"], 1, "{shown}");
    assert_eq!(shown["probes"][0]["id"], PROBE);
    assert_eq!(shown["probes"][0]["asn"], 64500);
    let text = shown.to_string();
    assert!(
        !text.contains("2001:db8") && !text.contains("kitchen"),
        "{text}"
    );
    let (ok, table, _) = cli(&["directory", "list", "--collector", &url]).await;
    assert!(ok && table.contains("AS64500 Example Net"), "{table}");
    // The owner's view shows the hostname and the listing; another owner's shows nothing.
    let (ok, mine, _) = cli(&["directory", "mine", "--collector", &url, "--token", &owner]).await;
    assert!(
        ok && mine.contains("pi-kitchen") && mine.contains("yes"),
        "{mine}"
    );
    let (status, body) = http(addr, "GET", "/api/v1/directory/mine", Some(&other), "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"probes":[]}"#));

    // Huge or silly pages are refused, not served.
    for query in ["per_page=1000000", "per_page=0", "page=0", "per_page=x"] {
        let path = format!("/api/v1/directory?{query}");
        let (status, body) = http(addr, "GET", &path, None, "").await;
        assert_eq!(status, 400, "{query}: {body}");
    }

    // Opted out: gone from the public list.
    let (ok, _, stderr) = cli(&[
        "directory",
        "opt-out",
        PROBE,
        "--collector",
        &url,
        "--token",
        &owner,
    ])
    .await;
    assert!(ok, "{stderr}");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    assert_eq!(public().await["total"], 0);
}
