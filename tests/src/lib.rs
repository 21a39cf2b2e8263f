//! Harness for sixmap's end-to-end tests: real collector and probe processes on real sockets.
//!
//! Processes are killed when their handle drops, also when a test panics.

#![allow(clippy::expect_used, clippy::panic)]

pub mod bench;
pub mod delivery;
pub mod lab;
pub mod loadgen;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of a workspace binary, next to the test executable's `deps` directory.
/// `cargo test --workspace` builds them because the probe and collector crates have
/// integration tests of their own.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (or `cargo test --workspace`, which builds it)",
        path.display()
    );
    path
}

/// A child process killed on drop; its stderr is kept in a file for failure messages.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pub name: String,
    log: PathBuf,
}

impl Process {
    /// Takes charge of a child started elsewhere (e.g. inside a lab namespace); `log` is where
    /// its stderr goes.
    pub fn from_child(child: Child, name: &str, log: PathBuf) -> Self {
        Self {
            child,
            name: name.to_owned(),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_for(timeout, || self.child.try_wait().ok().flatten())
    }

    /// Stops the process as systemd does (SIGTERM), waiting up to `timeout` for it to exit
    /// before killing it. Returns whether it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        // kill(1) rather than libc: the test crates stay free of unsafe code. The child is not
        // reaped yet, so its pid cannot have been reused.
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !sent {
            self.kill();
            return false;
        }
        let exited = self.wait_exit(timeout).is_some();
        if !exited {
            self.kill();
        }
        exited
    }

    /// Kills without warning, like a power cut or `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `name` with `args`; its stderr goes to `log`.
fn spawn(name: &str, args: &[&str], log: PathBuf) -> (Process, std::process::ChildStdout) {
    let stderr = std::fs::File::create(&log).expect("create log file");
    let mut child = Command::new(binary(name))
        .args(args)
        .env("RUST_LOG", "info,sixmap_collector=debug,sixmap_probe=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    (
        Process {
            child,
            name: name.to_owned(),
            log,
        },
        stdout,
    )
}

/// A running collector and the addresses it bound.
#[derive(Debug)]
pub struct Collector {
    pub process: Process,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// An admin API token made for this run; [`Collector::get_json`] sends it.
    pub admin: String,
}

/// Runs a `sixmap-collector` admin command (the collector must not be running on its data
/// dir) and returns what it printed on stdout.
pub fn collector_command(args: &[&str]) -> String {
    let out = Command::new(binary("sixmap-collector"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sixmap-collector {args:?}: {e}"));
    assert!(
        out.status.success(),
        "sixmap-collector {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A new one-time enrollment token from a running collector's admin API.
pub fn enrollment_token(http: SocketAddr, admin: &str, owner: &str) -> String {
    let body = format!("{{\"owner\": \"{owner}\", \"expires_in\": \"1d\"}}");
    let (status, answer) = http_request(
        http,
        "POST",
        "/api/v1/enrollment-tokens",
        Some(admin),
        &body,
    );
    assert_eq!(status, 201, "creating an enrollment token: {answer}");
    let json: serde_json::Value =
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    json["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {answer}"))
        .to_owned()
}

impl Collector {
    /// Starts `sixmap-collector serve` on ephemeral loopback ports (unless `extra` names a
    /// `--grpc-listen`) with `data_dir`, after making an admin API token for the test.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let data = data_dir.to_str().expect("utf-8 path");
        // The token must land in the store the collector will use, which its config names.
        let mut token_args = vec!["api-token", "create", "--data-dir", data];
        if let Some(at) = extra.iter().position(|a| *a == "--config") {
            token_args.extend_from_slice(&extra[at..(at + 2).min(extra.len())]);
        }
        token_args.extend_from_slice(&["--role", "admin", "--name", "e2e"]);
        let admin = collector_command(&token_args);
        let mut args = vec!["serve", "--data-dir", data, "--http-listen", "[::1]:0"];
        if !extra.contains(&"--grpc-listen") {
            args.extend_from_slice(&["--grpc-listen", "[::1]:0"]);
        }
        args.extend_from_slice(extra);
        let log_dir = data_dir.parent().unwrap_or(data_dir);
        // One log per data dir: tests running several collectors keep each one's log.
        let name = data_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("data");
        let log = log_dir.join(format!(
            "sixmap-collector-{}-{name}.log",
            std::process::id()
        ));
        let (process, stdout) = spawn("sixmap-collector", &args, log);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("collector did not report its ports:\n{}", process.log()));
        let field = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        Self {
            grpc: field("grpc="),
            http: field("http="),
            process,
            admin,
        }
    }

    /// The URL probes are configured with.
    pub fn url(&self) -> String {
        format!("https://{}", self.grpc)
    }

    /// A new one-time enrollment token for `owner`.
    pub fn enrollment_token(&self, owner: &str) -> String {
        enrollment_token(self.http, &self.admin, owner)
    }

    /// GET on the collector's HTTP API as its admin, parsed as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_request(self.http, "GET", path, Some(&self.admin), "");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

/// Starts `sixmap-probe run --config <config>`; its log is `<config>.log`, so probes sharing a
/// directory keep separate logs.
pub fn start_probe(config: &Path) -> Process {
    let (process, _stdout) = spawn(
        "sixmap-probe",
        &["run", "--config", config.to_str().expect("utf-8 path")],
        config.with_extension("log"),
    );
    process
}

/// Minimal blocking HTTP/1.1 GET without a token; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, None, "")
}

/// Minimal blocking HTTP/1.1 request with an optional bearer token; returns status and body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: sixmap\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A loopback TCP port free at the time of the call, for a collector that must come back on
/// the same address after a restart.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("[::1]:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Position of a result in a probe's production order: (boot epoch, sequence).
pub type Seq = (u64, u64);

/// What a probe's debug log says it did: results made durable in its outbox (with their
/// start time) and results it dropped from a full outbox.
#[derive(Debug, Default, Clone)]
pub struct ProbeLog {
    pub produced: std::collections::BTreeMap<Seq, i64>,
    pub dropped: std::collections::BTreeSet<Seq>,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(name))
}

fn parse_key(text: &str) -> Option<Seq> {
    let mut parts = text.split('/').skip(1);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl ProbeLog {
    /// Adds the lines of one probe process's log (a restarted probe starts a new log).
    pub fn add(&mut self, log: &str) {
        for line in log.lines() {
            if line.contains("result produced") {
                let key = field(line, "key=").and_then(parse_key);
                let at = field(line, "started_at=").and_then(|t| t.parse().ok());
                if let (Some(key), Some(at)) = (key, at) {
                    self.produced.insert(key, at);
                }
            } else if line.contains("result dropped from the outbox")
                && let Some(key) = field(line, "key=").and_then(parse_key)
            {
                self.dropped.insert(key);
            }
        }
    }
}

/// A result as the collector's API returns it, reduced to what delivery tests compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredResult {
    pub task_id: u64,
    pub started_at: i64,
}

/// Every result the collector stored for `probe`, by key; panics if a key appears twice.
pub fn stored_results(
    collector: &Collector,
    probe: &str,
) -> std::collections::BTreeMap<Seq, StoredResult> {
    let body = collector.get_json(&format!("/api/v1/results?probe={probe}&limit=10000"));
    let results = body["results"].as_array().expect("results array");
    assert!(
        results.len() < 10_000,
        "test produced too many results to list"
    );
    let mut stored = std::collections::BTreeMap::new();
    for r in results {
        let key = (
            r["key"]["boot_epoch"].as_u64().expect("boot_epoch"),
            r["key"]["sequence"].as_u64().expect("sequence"),
        );
        let value = StoredResult {
            task_id: r["task_id"].as_u64().expect("task_id"),
            started_at: r["started_at"].as_i64().expect("started_at"),
        };
        assert!(
            stored.insert(key, value).is_none(),
            "result {key:?} listed twice"
        );
    }
    stored
}

/// The probe's `status.json`, if written.
pub fn probe_status(state_dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(state_dir.join("status.json")).ok()?;
    serde_json::from_str(&text).ok()
}
