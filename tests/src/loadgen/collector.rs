//! The collector under load: its config, starting the real `sixmap-collector` binary on a
//! data directory, its admin API token, and a small HTTP client for its admin API.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which store the collector writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sled,
    ClickHouse { url: String, database: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::ClickHouse { .. } => "clickhouse",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(
        "{path} is missing: build it with `cargo build --release -p sixmap-collector` (or pass --collector-bin)"
    )]
    Binary { path: PathBuf },
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("`sixmap-collector {args}` failed: {stderr}")]
    Command { args: String, stderr: String },
    #[error("the collector did not report its ports within 60 s; its log {log}:\n{tail}")]
    NoPorts { log: PathBuf, tail: String },
    #[error("the collector's line {0:?} names no grpc= or http= address")]
    BadPorts(String),
    #[error("HTTP {method} {path}: {reason}")]
    Http {
        method: String,
        path: String,
        reason: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CollectorError {
    let what = what.into();
    move |source| CollectorError::Io { what, source }
}

/// The collector config for a load run: loopback listeners on free ports, enrollment caps
/// and the session cap out of the way (every simulated probe enrolls from ::1), and one
/// `[[tasks]]` table per kind the simulated probes report, so every result is of a task the
/// collector assigned ([`crate::loadgen::results::KINDS`]).
pub fn config_toml(data_dir: &Path, backend: &Backend, max_sessions: usize) -> String {
    let store = match backend {
        Backend::Sled => String::new(),
        // The shape of the ClickHouse backend's config (issue #11, part 1).
        Backend::ClickHouse { url, database } => format!(
            "\n[store]\nbackend = \"clickhouse\"\n[store.clickhouse]\nurl = {url:?}\ndatabase = {database:?}\n"
        ),
    };
    format!(
        r#"data_dir = {data_dir:?}
grpc_listen = "[::1]:0"
http_listen = "[::1]:0"
max_probes_per_owner_per_64 = 1000000
max_probes_per_owner_per_prefix = 1000000
heartbeat_interval_s = 30
raw_data_public = false

[limits]
grpc_max_sessions = {max_sessions}
# Handshakes of thousands of probes connecting at once queue behind each other.
grpc_handshake_timeout_s = 60
grpc_request_timeout_s = 120
{store}
[[tasks]]
kind = "ping"
targets = ["2a00:1450:4001:800::200e"]
every_s = 60
timeout_ms = 10000

[[tasks]]
kind = "traceroute"
targets = ["2a00:1450:4001:800::200e"]
every_s = 900
timeout_ms = 30000

[[tasks]]
kind = "dns"
targets = ["2001:4860:4860::8888"]
query_name = "www.example-operator.net"
every_s = 300
timeout_ms = 5000

[[tasks]]
kind = "http"
url = "https://www.example-operator.net/"
every_s = 600
timeout_ms = 20000

[[tasks]]
kind = "tcp"
targets = ["2a00:1450:4001:800::200e"]
port = 443
every_s = 300
timeout_ms = 10000

[[tasks]]
kind = "tls"
targets = ["www.example-operator.net"]
every_s = 600
timeout_ms = 10000
"#,
        data_dir = data_dir.display().to_string(),
    )
}

/// `sixmap-collector` next to this executable (cargo puts all of a profile's binaries there).
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("sixmap-collector")))
        .unwrap_or_else(|| PathBuf::from("sixmap-collector"))
}

/// Runs an offline admin command (the collector must not be running on the data dir).
pub fn command(binary: &Path, args: &[&str]) -> Result<String, CollectorError> {
    if !binary.exists() {
        return Err(CollectorError::Binary {
            path: binary.to_owned(),
        });
    }
    let out = Command::new(binary)
        .args(args)
        .output()
        .map_err(io(format!("run {}", binary.display())))?;
    if !out.status.success() {
        return Err(CollectorError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes an admin API token in the store the collector on `data_dir` will use: its sled
/// store (the collector stopped), or the backend its config names (written here first, as
/// [`Process::start`] writes it).
pub fn admin_token(
    binary: &Path,
    data_dir: &Path,
    backend: &Backend,
    max_sessions: usize,
) -> Result<String, CollectorError> {
    let config = data_dir.with_extension("toml");
    std::fs::write(&config, config_toml(data_dir, backend, max_sessions))
        .map_err(io(format!("write {}", config.display())))?;
    let config = config.display().to_string();
    command(
        binary,
        &[
            "api-token",
            "create",
            "--config",
            &config,
            "--role",
            "admin",
            "--name",
            "loadgen",
        ],
    )
}

/// A running `sixmap-collector serve`, killed when dropped.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub log: PathBuf,
}

impl Process {
    /// Writes the config next to the data dir and starts the collector on it; its log
    /// (stderr, `RUST_LOG=log_filter`) goes to `<data_dir>.log`.
    pub fn start(
        binary: &Path,
        data_dir: &Path,
        backend: &Backend,
        max_sessions: usize,
        log_filter: &str,
    ) -> Result<Self, CollectorError> {
        if !binary.exists() {
            return Err(CollectorError::Binary {
                path: binary.to_owned(),
            });
        }
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, config_toml(data_dir, backend, max_sessions))
            .map_err(io(format!("write {}", config.display())))?;
        let log = data_dir.with_extension("log");
        let stderr =
            std::fs::File::create(&log).map_err(io(format!("create {}", log.display())))?;
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(io(format!("start {}", binary.display())))?;
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            if let Some(line) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep reading so the collector never blocks on a full pipe.
            for _ in lines {}
        });
        let mut process = Self {
            child,
            grpc: SocketAddr::from(([0u16; 8], 0)),
            http: SocketAddr::from(([0u16; 8], 0)),
            log: log.clone(),
        };
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
            return Err(CollectorError::NoPorts { log, tail });
        };
        let field = |key: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
        };
        match (field("grpc="), field("http=")) {
            (Some(grpc), Some(http)) => {
                process.grpc = grpc;
                process.http = http;
                Ok(process)
            }
            _ => Err(CollectorError::BadPorts(line)),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the collector (SIGKILL: acked data is durable by the collector's own rule, and
    /// enrollment flushes before it answers).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process has exited (crashed) by itself.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP/1.1 request (`Connection: close`) with a bearer token; returns status and body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: &str,
    body: &str,
) -> Result<(u16, String), CollectorError> {
    let failed = |reason: String| CollectorError::Http {
        method: method.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: sixmap\r\nAuthorization: Bearer {bearer}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| failed("no answer within 60 s".into()))?
        .map_err(|e| failed(e.to_string()))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| failed("no end of headers".into()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| failed(format!("no status in {head:?}")))?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_backend_and_every_kind() {
        let sled = config_toml(Path::new("/tmp/x"), &Backend::Sled, 30_000);
        assert!(!sled.contains("[store]"));
        assert!(sled.contains("grpc_max_sessions = 30000"));
        for kind in crate::loadgen::results::KINDS {
            assert!(sled.contains(&format!("kind = \"{kind}\"")), "{kind}");
        }
        let clickhouse = config_toml(
            Path::new("/tmp/x"),
            &Backend::ClickHouse {
                url: "http://127.0.0.1:8123".into(),
                database: "sixmap".into(),
            },
            10,
        );
        assert!(clickhouse.contains(
            "[store]\nbackend = \"clickhouse\"\n[store.clickhouse]\nurl = \"http://127.0.0.1:8123\"\ndatabase = \"sixmap\""
        ));
    }
}
