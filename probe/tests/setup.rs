//! `sixmap-probe setup` checks before it writes (issue #21): the token's form, then that the
//! collector answers over TLS with the CA the token names. Each refusal exits non-zero with
//! nothing written; a real collector is accepted, and the check leaves the token unused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::store::{Role, SledStore};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Collector {
    _dir: tempfile::TempDir,
    url: String,
    http: String,
    token: String,
    admin: String,
    fingerprint: String,
}

/// A real collector on `[::1]` with one enrollment token and an admin API token.
async fn collector() -> Collector {
    let dir = tempfile::tempdir().unwrap();
    let (token, admin, fingerprint) = {
        let store = SledStore::open(dir.path()).unwrap();
        let pki = sixmap_collector::pki::Pki::load_or_create(dir.path()).unwrap();
        let now = UnixMicros::now();
        let (token, _) = auth::create_enrollment_token(
            &store,
            pki.fingerprint(),
            "uni-a",
            auth::DEFAULT_TOKEN_LIFETIME,
            "test",
            now,
        )
        .unwrap();
        let (admin, _) = auth::create_api_token(&store, Role::Admin, "root", now).unwrap();
        (token, admin, pki.fingerprint().to_owned())
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
    Collector {
        _dir: dir,
        url: format!("https://{}", running.grpc_addr),
        http: format!("http://{}", running.http_addr),
        token,
        admin,
        fingerprint,
    }
}

struct Setup {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `sixmap-probe setup` writing `config` (group root), off the runtime's workers.
async fn setup(config: &Path, collector: &str, token: &str, extra: &[&str]) -> Setup {
    let mut args: Vec<String> = [
        "setup",
        "--collector",
        collector,
        "--token",
        token,
        "--group",
        "root",
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        config.with_file_name("state").to_str().unwrap(),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sixmap-probe"))
            .args(&args)
            .output()
            .unwrap();
        Setup {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn config_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name).join("probe.toml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_checks_the_token_and_the_collector_before_writing() {
    let c = collector().await;
    let dir = tempfile::tempdir().unwrap();

    // Not the token's form: refused before any network use.
    let path = config_path(&dir, "abc");
    let run = setup(&path, &c.url, "abc", &[]).await;
    assert!(
        !run.ok && run.stderr.contains("64 hex digits"),
        "{}",
        run.stderr
    );
    assert!(!path.exists());

    // Nobody listening there: refused, naming the URL and the way out.
    let path = config_path(&dir, "unreachable");
    let run = setup(&path, "https://[::1]:1", &c.token, &[]).await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.contains("https://[::1]:1")
            && run.stderr.contains("refused")
            && run.stderr.contains("--no-check"),
        "{}",
        run.stderr
    );
    // One line, each cause once.
    assert_eq!(run.stderr.matches("refused").count(), 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(!path.exists());

    // A collector with another CA than the token names (a wrong address, or someone in
    // between): refused.
    let secret = c.token.split_once('.').unwrap().0;
    let wrong = format!("{secret}.{}", "0".repeat(64));
    assert_ne!(c.fingerprint, "0".repeat(64));
    let path = config_path(&dir, "wrong-ca");
    let run = setup(&path, &c.url, &wrong, &[]).await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.contains(&c.url) && run.stderr.contains("fingerprint"),
        "{}",
        run.stderr
    );
    assert!(!path.exists());

    // The real collector and its token: written, 0640.
    let path = config_path(&dir, "good");
    let run = setup(&path, &c.url, &c.token, &[]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("its CA matches the token"),
        "{}",
        run.stdout
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    assert!(std::fs::read_to_string(&path).unwrap().contains(&c.token));
    // The check sent no token: it is still unused at the collector.
    let (http, admin) = (c.http.clone(), c.admin.clone());
    let listing = tokio::task::spawn_blocking(move || {
        sixmap_collector::client::Client::new(&http)
            .unwrap()
            .with_token(Some(admin))
            .get("/api/v1/enrollment-tokens")
            .unwrap()
            .into_ok("list")
            .unwrap()
    })
    .await
    .unwrap();
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(
        listing["tokens"][0]["used_at"],
        serde_json::Value::Null,
        "{listing}"
    );

    // Offline installs skip the live check; the form is still checked.
    let path = config_path(&dir, "offline");
    let run = setup(&path, "https://[::1]:1", &c.token, &["--no-check"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(path.exists());
    let run = setup(
        &config_path(&dir, "offline-bad"),
        "https://[::1]:1",
        "abc",
        &["--no-check"],
    )
    .await;
    assert!(
        !run.ok && run.stderr.contains("64 hex digits"),
        "{}",
        run.stderr
    );
}
