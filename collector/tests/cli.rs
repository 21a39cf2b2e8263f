//! The collector binary refuses bad input with a clear message and a non-zero exit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use std::process::Command;

fn collector(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
        .args(args)
        .output()
        .expect("run sixmap-collector");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), text)
}

#[test]
fn config_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown key", "data_dirr = \"/tmp/x\"\n", "data_dirr"),
        ("malformed", "grpc_listen = [\n", "line 1"),
        (
            "bad address",
            "grpc_listen = \"not-an-address\"\n",
            "grpc_listen",
        ),
        (
            "bad target",
            "[default_ping]\ntargets = [\"bad host!\"]\n",
            "default_ping.targets",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(format!("{}.toml", name.replace(' ', "-")));
        std::fs::write(&path, text).unwrap();
        let (ok, stderr) = collector(&["serve", "--config", path.to_str().unwrap()]);
        assert!(!ok, "{name}: must fail");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    let (ok, stderr) = collector(&["serve", "--config", "/nonexistent/c.toml"]);
    assert!(!ok && stderr.contains("/nonexistent/c.toml"), "{stderr}");
}

#[test]
fn bad_flags_and_missing_stores_are_reported() {
    let (ok, stderr) = collector(&["serve", "--grpc-listen", "nowhere"]);
    assert!(!ok && stderr.contains("--grpc-listen"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = collector(&["results", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!ok && stderr.contains("holds no sixmap store"), "{stderr}");
    let (ok, stderr) = collector(&[
        "results",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--probe",
        "XYZ",
    ]);
    assert!(!ok && stderr.contains("probe id"), "{stderr}");
}

#[test]
fn prefix_imports_name_the_bad_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (ok, stderr) = collector(&["import-prefixes", "--data-dir", data]);
    assert!(!ok && stderr.contains("--asn"), "{stderr}");

    let bad = dir.path().join("country.csv");
    std::fs::write(
        &bad,
        "2001:200::,2001:200:ffff::,JP\n2a00::,2a00::ff,japan\n",
    )
    .unwrap();
    let (ok, stderr) = collector(&[
        "import-prefixes",
        "--data-dir",
        data,
        "--country",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok, "must fail");
    assert!(
        stderr.contains("country.csv") && stderr.contains("line 2") && stderr.contains("japan"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/prefixes/delegated-ripencc-extended-sample");
    let out = Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
        .args(["import-prefixes", "--data-dir", data, "--rir"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("records") && stdout.contains("Rir"),
        "{stdout}"
    );
}

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
        .args(args)
        .output()
        .expect("run sixmap-collector");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tokens_are_made_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let token = stdout_of(&["token", "create", "--data-dir", data, "--owner", "uni-a"]);
    let (secret, fingerprint) = token.trim().split_once('.').unwrap();
    assert_eq!((secret.len(), fingerprint.len()), (64, 64), "{token}");
    // The CA was created for the token, private.
    use std::os::unix::fs::PermissionsExt;
    let key = std::path::Path::new(data).join("pki/ca.key");
    let mode = std::fs::metadata(key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let list = stdout_of(&["token", "list", "--data-dir", data, "--json"]);
    let list_json: serde_json::Value = serde_json::from_str(&list).unwrap();
    let record = &list_json["tokens"][0];
    assert_eq!(record["owner"], "uni-a");
    // Only the hash is stored: the secret appears nowhere in the store's listing.
    assert!(!list.contains(secret), "{list}");
    let id = record["id"].as_str().unwrap().to_owned();
    stdout_of(&["token", "revoke", "--data-dir", data, &id]);
    // The table people read: a header, then the token revoked, created by the CLI.
    let list = stdout_of(&["token", "list", "--data-dir", data]);
    let mut lines = list.lines();
    assert!(lines.next().unwrap().starts_with("ID "), "{list}");
    let line = lines.next().unwrap();
    assert!(
        line.starts_with(&id) && line.contains("revoked") && line.contains(" UTC  cli"),
        "{list}"
    );
    let (ok, stderr) = collector(&["token", "revoke", "--data-dir", data, "nope"]);
    assert!(!ok && stderr.contains("no enrollment token"), "{stderr}");

    let api = stdout_of(&[
        "api-token",
        "create",
        "--data-dir",
        data,
        "--role",
        "researcher",
        "--name",
        "alice",
    ]);
    assert!(api.trim().starts_with("sxa_"), "{api}");
    let (ok, stderr) = collector(&[
        "api-token",
        "create",
        "--data-dir",
        data,
        "--role",
        "boss",
        "--name",
        "x",
    ]);
    assert!(!ok && stderr.contains("not a role"), "{stderr}");
    let (ok, stderr) = collector(&["probe", "revoke", "--data-dir", data, "0123456789abcdef"]);
    assert!(!ok && stderr.contains("no probe"), "{stderr}");
}

#[test]
fn rollups_rebuild_recomputes_figures_and_rollups_from_results() {
    use sixmap_collector::store::{FigureStore, SledStore, Store};
    use sixmap_shared::UnixMicros;
    use sixmap_shared::prefixes::Enrichment;
    let dir = tempfile::tempdir().unwrap();
    let day = 20_400 * 86_400_000_000i64;
    {
        let store = SledStore::open(dir.path()).unwrap();
        let origin = Enrichment {
            asn: Some(1),
            as_name: None,
            country: Some("XA".parse().unwrap()),
        };
        let results: Vec<_> = (1..=5)
            .map(|s| {
                sixmap_collector::testing::ping_v6(
                    "00000000000000a1".parse().unwrap(),
                    s,
                    UnixMicros(day + s as i64),
                    Some(std::time::Duration::from_millis(20)),
                    origin.clone(),
                )
            })
            .collect();
        store.insert_results(&results).unwrap();
        store.flush().unwrap();
        assert_eq!(store.figures_cursor().unwrap(), None);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sixmap-collector"))
        .args([
            "rollups",
            "rebuild",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("figures rebuilt from 5 results"),
        "{stdout}"
    );
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.figures_cursor().unwrap(), Some(5), "the log head");
    let rollups = store.rollups("XA").unwrap();
    assert_eq!(rollups.len(), 1, "{rollups:?}");
    assert_eq!(rollups[0].0, "2025-11-08");
    // An empty directory is refused with a message, not a panic.
    let empty = tempfile::tempdir().unwrap();
    let (ok, stderr) = collector(&[
        "rollups",
        "rebuild",
        "--data-dir",
        empty.path().to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("holds no sixmap store"), "{stderr}");
}
