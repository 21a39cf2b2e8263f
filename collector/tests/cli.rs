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
