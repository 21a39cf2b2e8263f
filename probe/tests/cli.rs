//! The probe binary: bad input gets a clear message and a non-zero exit; a manual ping works.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use std::process::Command;

fn probe(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sixmap-probe"))
        .args(args)
        .output()
        .expect("run sixmap-probe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cases = [
        (
            "unknown key",
            format!("collector = \"https://[::1]:1\"\nstate_dir = {state:?}\ncolour = 1\n"),
            "colour",
        ),
        ("malformed", "collector = \n".to_owned(), "line 1"),
        (
            "missing key",
            format!("state_dir = {state:?}\n"),
            "collector",
        ),
        (
            "bad url",
            format!("collector = \"[::1]:7400\"\nstate_dir = {state:?}\n"),
            "`collector`",
        ),
        (
            "plain http",
            format!("collector = \"http://[::1]:7400\"\nstate_dir = {state:?}\n"),
            "https://",
        ),
        (
            "token without the CA fingerprint",
            format!(
                "collector = \"https://[::1]:1\"\nstate_dir = {state:?}\nenrollment_token = \"old-style\"\n"
            ),
            "<64 hex digits>.<64 hex digits>",
        ),
        (
            "no token",
            format!("collector = \"https://[::1]:1\"\nstate_dir = {state:?}\n"),
            "enrollment_token",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join("probe.toml");
        std::fs::write(&path, text).unwrap();
        let (ok, _, stderr) = probe(&["run", "--config", path.to_str().unwrap()]);
        assert!(!ok, "{name}: must fail");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn corrupt_state_is_reported_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("identity.toml"), "garbage = [").unwrap();
    let (ok, _, stderr) = probe(&[
        "run",
        "--collector",
        "https://[::1]:1",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("identity.toml") && stderr.contains("corrupt"),
        "{stderr}"
    );
}

#[test]
fn manual_ping_obeys_the_target_policy() {
    let (ok, _, stderr) = probe(&["measure", "ping", "::1", "-c", "1"]);
    assert!(!ok);
    assert!(
        stderr.contains("Policy") && stderr.contains("lab_mode"),
        "{stderr}"
    );
    let (ok, _, stderr) = probe(&["measure", "ping", "ff02::1", "--lab-mode"]);
    assert!(!ok && stderr.contains("Multicast"), "{stderr}");
    let (ok, _, stderr) = probe(&["measure", "ping", "::1", "-c", "0"]);
    assert!(!ok && stderr.contains("ping.count"), "{stderr}");
}

#[test]
fn manual_ping_of_loopback_in_lab_mode() {
    let (ok, stdout, stderr) = probe(&[
        "measure",
        "ping",
        "::1",
        "-c",
        "2",
        "-i",
        "50",
        "--lab-mode",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 sent, 2 received, 0% loss"), "{stdout}");
    assert!(stdout.contains("hlim=64"), "{stdout}");
}

/// A one-shot DNS server on `[::1]` at a port of its own: answers the first query with one
/// AAAA record, `2001:db8::53`.
fn one_answer_dns_server() -> (u16, std::thread::JoinHandle<()>) {
    let socket = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut query = [0u8; 512];
        let (len, from) = socket.recv_from(&mut query).unwrap();
        let query = &query[..len];
        // The question: the name's labels up to the root, then type and class.
        let mut end = 12;
        while query[end] != 0 {
            end += 1 + usize::from(query[end]);
        }
        end += 5;
        let mut answer = Vec::new();
        answer.extend_from_slice(&query[..2]); // the query's id
        answer.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]); // NOERROR, 1 + 1
        answer.extend_from_slice(&query[12..end]);
        answer.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        let address: std::net::Ipv6Addr = "2001:db8::53".parse().unwrap();
        answer.extend_from_slice(&address.octets());
        socket.send_to(&answer, from).unwrap();
    });
    (port, server)
}

#[test]
fn manual_dns_asks_the_resolver_at_the_given_port() {
    let (port, server) = one_answer_dns_server();
    let port = port.to_string();
    let (ok, stdout, stderr) = probe(&[
        "measure",
        "dns",
        "::1",
        "example.org",
        "-p",
        &port,
        "--lab-mode",
        "--timeout-ms",
        "5000",
    ]);
    server.join().unwrap();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("NOERROR"), "{stdout}");
    assert!(stdout.contains("2001:db8::53"), "{stdout}");
    // Ports beyond 16 bits are refused by name.
    let (ok, _, stderr) = probe(&["measure", "dns", "::1", "example.org", "-p", "70000"]);
    assert!(!ok && stderr.contains("dns.port"), "{stderr}");
}

/// The binary starts without std's `main` (`process_start`): a closed stdout must still be
/// reopened on `/dev/null`, or the first descriptor the probe opens (its event loop's) would
/// become "stdout" and receive the measurement's report.
#[test]
fn closed_stdout_is_not_reused_by_the_probe() {
    let out = Command::new("sh")
        .args(["-c", r#"exec "$0" "$@" >&-"#])
        .arg(env!("CARGO_BIN_EXE_sixmap-probe"))
        .args(["measure", "ping", "::1", "-c", "1", "--lab-mode"])
        .output()
        .expect("run sixmap-probe under sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// And SIGPIPE is ignored, as under std's `main`: a write to a closed pipe is an error the
/// probe handles, never the end of the daemon.
#[test]
fn a_closed_pipe_does_not_kill_the_probe() {
    use std::os::unix::process::ExitStatusExt as _;
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_sixmap-probe"))
        .args(["measure", "ping", "::1", "-c", "1", "--lab-mode"])
        .stdout(writer)
        .output()
        .expect("run sixmap-probe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "{:?}", out.status);
    // It did write (and was told the pipe is broken), and said so.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Broken pipe"), "{stderr}");
}
