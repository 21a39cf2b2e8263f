//! Administration while the collector runs (issue #21): the admin commands act on a running
//! collector over its HTTP API (`--url`, or `SIXMAP_COLLECTOR` / `SIXMAP_API_TOKEN`), since
//! the sled store they would otherwise open is locked by it. Beside each happy path, the
//! hostile one: non-admin tokens refused, a revoked API token refused at once, listings
//! bounded whatever `limit` asks, ids that try to leave their path segment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::store::{ApiTokenRecord, AuthStore, ProbeRecord, Role, SledStore, Store};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;

/// API tokens stored beside the test's own, so a listing has more than one page can hold.
const EXTRA_TOKENS: usize = 1_050;
const PROBE: &str = "00000000000000a1";

struct Harness {
    dir: tempfile::TempDir,
    url: String,
    http: std::net::SocketAddr,
    admin: String,
    researcher: String,
}

/// A sled store with an admin and a researcher token, one probe and many more API tokens;
/// then a collector serving it in this process.
async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let now = UnixMicros::now();
    let (admin, researcher) = {
        let store = SledStore::open(dir.path()).unwrap();
        let admin = auth::create_api_token(&store, Role::Admin, "root", now)
            .unwrap()
            .0;
        let researcher = auth::create_api_token(&store, Role::Researcher, "rita", now)
            .unwrap()
            .0;
        for i in 0..EXTRA_TOKENS {
            let record = ApiTokenRecord {
                id: format!("x{i:011}"),
                name: format!("bulk {i}"),
                role: Role::Researcher,
                created_at: now,
                revoked_at: Some(now),
            };
            store.put_api_token(&format!("{i:064}"), &record).unwrap();
        }
        store
            .create_probe(&ProbeRecord {
                last_seen: Some(now),
                software_version: Some("0.1.0".into()),
                owner: Some("uni-a".into()),
                ..ProbeRecord::new(PROBE.parse().unwrap(), "pi-kitchen", now)
            })
            .unwrap();
        let results: Vec<_> = (1..=3u64)
            .map(|s| {
                sixmap_collector::testing::ping_v6(
                    PROBE.parse().unwrap(),
                    s,
                    UnixMicros(now.0 - 1_000_000 * s as i64),
                    Some(std::time::Duration::from_millis(9)),
                    Default::default(),
                )
            })
            .collect();
        store.insert_results(&results).unwrap();
        store.flush().unwrap();
        (admin, researcher)
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
    // The servers run on as tasks of the test's runtime; their handles are not needed.
    let http = running.http_addr;
    Harness {
        dir,
        url: format!("http://{http}"),
        http,
        admin,
        researcher,
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the collector binary (off the runtime's workers, which serve it) with `env` set and
/// the admin variables of the caller's environment cleared.
async fn cli(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
            .args(&args)
            .env_remove("SIXMAP_COLLECTOR")
            .env_remove("SIXMAP_API_TOKEN")
            .envs(env)
            .output()
            .expect("run sixmap-collector");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

impl Harness {
    /// The CLI with `--url` and `--token` of `bearer`; it must succeed.
    async fn ok(&self, args: &[&str], bearer: &str) -> String {
        let mut all = args.to_vec();
        all.extend(["--url", &self.url, "--token", bearer]);
        let run = cli(&all, &[]).await;
        assert!(run.ok, "{args:?}: {}", run.stderr);
        run.stdout
    }

    /// The CLI with `--url` and `--token` of `bearer`; it must fail, and its message is returned.
    async fn fails(&self, args: &[&str], bearer: &str) -> String {
        let mut all = args.to_vec();
        all.extend(["--url", &self.url, "--token", bearer]);
        let run = cli(&all, &[]).await;
        assert!(!run.ok, "{args:?} must fail: {}", run.stdout);
        run.stderr
    }

    async fn get(&self, path: &str, bearer: &str) -> (u16, serde_json::Value) {
        let (status, body) = http(self.http, "GET", path, Some(bearer)).await;
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        (status, json)
    }
}

async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The first column of the table's row whose line contains `text`.
fn id_on_line_with(table: &str, text: &str) -> String {
    let line = table
        .lines()
        .find(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?} in\n{table}"));
    line.split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_made_listed_and_revoked_on_a_running_collector() {
    let h = start().await;
    // The store is the running collector's: opening it is refused, with the way out named.
    let run = cli(
        &[
            "api-token",
            "list",
            "--data-dir",
            h.dir.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(!run.ok && run.stderr.contains("--url"), "{}", run.stderr);

    let made = h
        .ok(
            &[
                "api-token",
                "create",
                "--role",
                "campaigner",
                "--name",
                "ministry",
            ],
            &h.admin,
        )
        .await;
    let token = made.trim().to_owned();
    assert!(token.starts_with("sxa_") && token.len() == 68, "{made}");
    // The new token works at once.
    let (status, _) = h.get("/api/v1/campaigns", &token).await;
    assert_eq!(status, 200);

    // The table: a header row, dates in UTC minutes, no secrets.
    let table = h.ok(&["api-token", "list"], &h.admin).await;
    let header = table.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["ID", "NAME", "ROLE", "CREATED", "REVOKED"],
        "{table}"
    );
    // Every page was followed: the bulk tokens, the test's two and the new one.
    assert_eq!(table.lines().count(), 1 + EXTRA_TOKENS + 3);
    let id = id_on_line_with(&table, "ministry");
    let line = table.lines().find(|l| l.contains("ministry")).unwrap();
    assert!(
        line.contains("campaigner") && line.contains(" UTC"),
        "{line}"
    );
    assert!(line.trim_end().ends_with('-'), "not revoked yet: {line}");
    assert!(!table.contains(&token[4..]), "a secret in the listing");
    // --json: the API's document, the whole list.
    let json: serde_json::Value =
        serde_json::from_str(&h.ok(&["api-token", "list", "--json"], &h.admin).await).unwrap();
    assert_eq!(
        json["api_tokens"].as_array().unwrap().len(),
        EXTRA_TOKENS + 3
    );
    assert_eq!(json["next"], serde_json::Value::Null);

    // Revoked: its very next request is refused.
    let out = h.ok(&["api-token", "revoke", &id], &h.admin).await;
    assert!(out.contains(&id) && out.contains("revoked"), "{out}");
    let (status, body) = h.get("/api/v1/campaigns", &token).await;
    assert_eq!(status, 401, "{body}");
    let table = h.ok(&["api-token", "list"], &h.admin).await;
    let line = table.lines().find(|l| l.contains("ministry")).unwrap();
    assert_eq!(
        line.matches(" UTC").count(),
        2,
        "created and revoked: {line}"
    );

    // Not an admin: 403, and the message names the collector.
    let err = h
        .fails(
            &[
                "api-token",
                "create",
                "--role",
                "admin",
                "--name",
                "mallory",
            ],
            &h.researcher,
        )
        .await;
    assert!(err.contains("HTTP 403") && err.contains(&h.url), "{err}");
    let err = h.fails(&["api-token", "list"], &h.researcher).await;
    assert!(err.contains("HTTP 403") && err.contains(&h.url), "{err}");
    let err = h.fails(&["api-token", "revoke", &id], &token).await;
    assert!(err.contains("HTTP 401") && err.contains(&h.url), "{err}");
    // Hostile input: unknown ids, ids that try to leave their path segment, bad names.
    let err = h.fails(&["api-token", "revoke", "nope"], &h.admin).await;
    assert!(err.contains("HTTP 404") && err.contains("nope"), "{err}");
    let err = h
        .fails(
            &["api-token", "revoke", "../../audit?x= HTTP/1.1\r\nX: y"],
            &h.admin,
        )
        .await;
    assert!(err.contains("HTTP 404"), "{err}");
    let err = h
        .fails(
            &[
                "api-token",
                "create",
                "--role",
                "researcher",
                "--name",
                "a\nb",
            ],
            &h.admin,
        )
        .await;
    assert!(err.contains("HTTP 400") && err.contains("name"), "{err}");

    // Every write is in the audit log, with who did it.
    let (_, audit) = h.get("/api/v1/audit?limit=20", &h.admin).await;
    let entries = audit["entries"].as_array().unwrap();
    let actions: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["identity"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("POST /api/v1/api-tokens", "api:root (admin)", "ok (201)")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(
            &*format!("POST /api/v1/api-tokens/{id}/revoke"),
            "api:root (admin)",
            "ok (200)"
        )),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(
            "POST /api/v1/api-tokens",
            "api:rita (researcher)",
            "denied (403)"
        )),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_tokens_and_probes_through_the_environment() {
    let h = start().await;
    let env = [
        ("SIXMAP_COLLECTOR", h.url.as_str()),
        ("SIXMAP_API_TOKEN", h.admin.as_str()),
    ];
    let run = cli(
        &["token", "create", "--owner", "uni-b", "--expires-in", "2d"],
        &env,
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    let token = run.stdout.trim().to_owned();
    let (secret, fingerprint) = token.split_once('.').unwrap();
    assert_eq!((secret.len(), fingerprint.len()), (64, 64), "{token}");
    assert!(run.stderr.contains("expires in 2 days"), "{}", run.stderr);

    let run = cli(&["token", "list"], &env).await;
    assert!(run.ok, "{}", run.stderr);
    let header: Vec<_> = run
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "ID", "OWNER", "STATE", "CREATED", "EXPIRES", "CREATED", "BY"
        ]
    );
    let line = run.stdout.lines().find(|l| l.contains("uni-b")).unwrap();
    assert!(
        line.contains("unused") && line.contains("api:root (admin)"),
        "{line}"
    );
    assert!(!run.stdout.contains(secret), "a secret in the listing");
    let id = id_on_line_with(&run.stdout, "uni-b");

    // Flags win over the environment: a researcher's token on the command line is refused.
    let run = cli(&["token", "revoke", &id, "--token", &h.researcher], &env).await;
    assert!(!run.ok && run.stderr.contains("HTTP 403"), "{}", run.stderr);
    let run = cli(&["token", "revoke", &id], &env).await;
    assert!(run.ok && run.stdout.contains("revoked"), "{}", run.stderr);
    let run = cli(&["token", "list", "--json"], &env).await;
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let record = &json["tokens"][0];
    assert_eq!(record["owner"], "uni-b");
    assert!(record["revoked_at"].is_i64(), "{json}");
    // The revoked token enrolls nobody: its record says so, and the collector refuses it
    // (enrollment refusals are tested in `session.rs`).

    let run = cli(&["probe", "list"], &env).await;
    assert!(run.ok, "{}", run.stderr);
    let header: Vec<_> = run
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "ID", "HOSTNAME", "OWNER", "ENROLLED", "LAST", "SEEN", "VERSION", "REVOKED"
        ]
    );
    let line = run.stdout.lines().nth(1).unwrap();
    assert!(
        line.starts_with(PROBE) && line.contains("pi-kitchen") && line.contains("uni-a"),
        "{line}"
    );
    let run = cli(&["probe", "revoke", PROBE], &env).await;
    assert!(run.ok, "{}", run.stderr);
    let run = cli(&["probe", "list", "--json"], &env).await;
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(json["probes"][0]["revoked_at"].is_i64(), "{json}");
    let run = cli(&["probe", "revoke", "0123456789abcdef"], &env).await;
    assert!(
        !run.ok && run.stderr.contains("HTTP 404") && run.stderr.contains(&h.url),
        "{}",
        run.stderr
    );
    // A collector that is not there is named too.
    let run = cli(
        &["probe", "list"],
        &[
            ("SIXMAP_COLLECTOR", "http://[::1]:1"),
            ("SIXMAP_API_TOKEN", &h.admin),
        ],
    )
    .await;
    assert!(
        !run.ok && run.stderr.contains("http://[::1]:1"),
        "{}",
        run.stderr
    );
    // One line, each cause once (anyhow's report would repeat it under "Caused by").
    assert_eq!(run.stderr.matches("refused").count(), 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    // Results: the same JSON lines as from the store, a researcher's token is enough.
    let run = cli(&["results", "--limit", "2", "--token", &h.researcher], &env).await;
    assert!(run.ok, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(run.stdout.contains(PROBE), "{}", run.stdout);
    let run = cli(&["results", "--probe", "0123456789abcdef"], &env).await;
    assert!(
        run.ok && run.stdout.is_empty(),
        "{} {}",
        run.stdout,
        run.stderr
    );
    let run = cli(&["results", "--limit", "0"], &env).await;
    assert!(
        !run.ok && run.stderr.contains("limit") && run.stderr.contains(&h.url),
        "{}",
        run.stderr
    );
    // --url without a token is refused before anything is sent.
    let run = cli(&["probe", "list", "--url", &h.url], &[]).await;
    assert!(
        !run.ok && run.stderr.contains("admin API token"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listings_are_bounded_and_for_admins_only() {
    let h = start().await;
    // However many are asked for, one answer holds at most the cap, and says where to go on.
    let (status, page) = h.get("/api/v1/api-tokens?limit=1000000", &h.admin).await;
    assert_eq!(status, 200, "{page}");
    let items = page["api_tokens"].as_array().unwrap();
    assert_eq!(items.len(), auth::MAX_LIST_LIMIT);
    let next = page["next"].as_str().unwrap().to_owned();
    assert_eq!(items.last().unwrap()["id"], next.as_str());
    let (_, rest) = h
        .get(
            &format!("/api/v1/api-tokens?limit=1000&after={next}"),
            &h.admin,
        )
        .await;
    assert_eq!(
        rest["api_tokens"].as_array().unwrap().len(),
        EXTRA_TOKENS + 2 - auth::MAX_LIST_LIMIT
    );
    assert_eq!(rest["next"], serde_json::Value::Null);
    // The default page is small.
    let (_, page) = h.get("/api/v1/api-tokens", &h.admin).await;
    assert_eq!(page["api_tokens"].as_array().unwrap().len(), 100);
    // No secret or hash in a listing.
    assert!(page["api_tokens"][0].get("hash").is_none(), "{page}");

    for path in [
        "/api/v1/api-tokens",
        "/api/v1/enrollment-tokens",
        "/api/v1/admin/probes",
    ] {
        let (status, body) = h.get(path, &h.researcher).await;
        assert_eq!(status, 403, "{path}: {body}");
        let (status, _) = http(h.http, "GET", path, None).await;
        assert_eq!(status, 401, "{path}");
        for bad in [
            "limit=many",
            "after=x&after=y",
            "page=2",
            &format!("after={}", "z".repeat(65)),
        ] {
            let (status, body) = h.get(&format!("{path}?{bad}"), &h.admin).await;
            assert_eq!(status, 400, "{path}?{bad}: {body}");
            assert!(body["error"].is_string(), "{body}");
        }
    }
    let (status, page) = h.get("/api/v1/admin/probes?limit=0", &h.admin).await;
    assert_eq!(status, 200);
    assert_eq!(page["probes"][0]["id"], PROBE);
    assert_eq!(page["probes"][0]["owner"], "uni-a");
}
