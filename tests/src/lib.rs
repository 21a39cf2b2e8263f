//! Harness for sixmap's end-to-end tests: real collector and probe processes on real sockets.
//!
//! Processes are killed when their handle drops, also when a test panics.

#![allow(clippy::expect_used, clippy::panic)]

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
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_for(timeout, || self.child.try_wait().ok().flatten())
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

fn spawn(name: &str, args: &[&str], log_dir: &Path) -> (Process, std::process::ChildStdout) {
    let log = log_dir.join(format!("{name}-{}.log", std::process::id()));
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
}

impl Collector {
    /// Starts `sixmap-collector serve` on ephemeral loopback ports (unless `extra` names a
    /// `--grpc-listen`) with `data_dir`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let data = data_dir.to_str().expect("utf-8 path");
        let mut args = vec!["serve", "--data-dir", data, "--http-listen", "[::1]:0"];
        if !extra.contains(&"--grpc-listen") {
            args.extend_from_slice(&["--grpc-listen", "[::1]:0"]);
        }
        args.extend_from_slice(extra);
        let log_dir = data_dir.parent().unwrap_or(data_dir);
        let (process, stdout) = spawn("sixmap-collector", &args, log_dir);
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
        }
    }

    /// GET on the collector's HTTP API, parsed as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_get(self.http, path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

/// Starts `sixmap-probe run --config <config>`.
pub fn start_probe(config: &Path) -> Process {
    let log_dir = config.parent().expect("config in a directory");
    let (process, _stdout) = spawn(
        "sixmap-probe",
        &["run", "--config", config.to_str().expect("utf-8 path")],
        log_dir,
    );
    process
}

/// Minimal blocking HTTP/1.1 GET; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: sixmap\r\nConnection: close\r\n\r\n"
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
