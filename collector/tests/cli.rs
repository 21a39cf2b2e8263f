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
