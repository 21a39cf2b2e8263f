//! ClickHouse servers for tests: each one its own process, config, data directory and free
//! ports under the system temp dir, stopped and removed on drop.
//!
//! Works with Debian's `clickhouse-server` (18.16, config root `<yandex>`) and with the
//! single `clickhouse` binary of current releases (`clickhouse server`), which still reads
//! `<yandex>` configs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer `/ping`.
const START_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug)]
pub struct ClickHouseServer {
    child: Child,
    dir: PathBuf,
    pub http_port: u16,
    pub tcp_port: u16,
}

/// The server binary and the arguments before `--config-file`.
fn binary() -> Option<(PathBuf, Vec<&'static str>)> {
    let in_path = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    };
    in_path("clickhouse-server")
        .map(|path| (path, Vec::new()))
        .or_else(|| in_path("clickhouse").map(|path| (path, vec!["server"])))
}

/// A server for a test, or `None` (with a note) when ClickHouse is not installed; in CI
/// (`CI=true`) a missing server fails the test instead.
pub fn require() -> Option<ClickHouseServer> {
    require_with("")
}

/// Whether ClickHouse is installed; if not, says the test is skipped, or fails it in CI.
#[allow(clippy::panic)] // test support: a test that cannot run in CI must fail loudly
pub fn available() -> bool {
    if binary().is_some() {
        return true;
    }
    let why = "ClickHouse is not installed (apt-get install clickhouse-server)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("ClickHouse test cannot run in CI: {why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// Like [`require`], with extra top-level config (e.g. `<remote_servers>`).
#[allow(clippy::panic)] // test support: a test that cannot get its server must fail loudly
pub fn require_with(extra_config: &str) -> Option<ClickHouseServer> {
    if !available() {
        return None;
    }
    match ClickHouseServer::start(extra_config) {
        Ok(server) => Some(server),
        Err(e) => panic!("cannot start a ClickHouse server: {e}"),
    }
}

/// A port free right now on loopback.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn config(dir: &Path, http_port: u16, tcp_port: u16, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/error.log</errorlog><size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
  <users>
    <default>
      <password></password>
      <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <profiles><default></default></profiles>
  <quotas><default></default></quotas>
  {extra}
</yandex>
"#
    )
}

impl ClickHouseServer {
    /// Starts a server on free ports and waits until it answers.
    pub fn start(extra_config: &str) -> Result<Self, String> {
        let ports = || -> std::io::Result<(u16, u16)> { Ok((free_port()?, free_port()?)) };
        let (http_port, tcp_port) = ports().map_err(|e| format!("no free port: {e}"))?;
        Self::start_on(http_port, tcp_port, extra_config)
    }

    /// Starts a server on the given ports (a cluster config names its shards' ports first).
    pub fn start_on(http_port: u16, tcp_port: u16, extra_config: &str) -> Result<Self, String> {
        let (program, args) = binary().ok_or("no ClickHouse server binary")?;
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(|e| e.to_string())?;
        let tag: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("sixmap-clickhouse-{tag}"));
        for sub in ["log", "data", "tmp", "user_files", "format_schemas"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let config_path = dir.join("config.xml");
        std::fs::write(
            &config_path,
            config(&dir, http_port, tcp_port, extra_config),
        )
        .map_err(|e| format!("writing {}: {e}", config_path.display()))?;
        let child = Command::new(&program)
            .args(args)
            .arg(format!("--config-file={}", config_path.display()))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.display()))?;
        let mut server = Self {
            child,
            dir,
            http_port,
            tcp_port,
        };
        server.wait_ready()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.join("log/error.log")).unwrap_or_default();
                return Err(format!("ClickHouse exited with {status}: {}", log.trim()));
            }
            if ping(self.http_port) {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "ClickHouse on port {} did not answer /ping within {START_TIMEOUT:?}",
                    self.http_port
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Whether `/ping` answers "Ok." (a plain HTTP/1.0 request; no client library needed).
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /ping HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.contains("Ok.")
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The store a collector test runs on: sled in `data_dir`, or with
/// `SIXMAP_TEST_STORE=clickhouse` a ClickHouse server of the test's own. Returns the config
/// lines that select it (to append to the test's collector config), the server (keep it
/// alive for the test), and the store (drop it before the collector opens a sled store).
#[allow(clippy::expect_used)] // test support: a test that cannot get its store must fail
pub fn test_store(
    data_dir: &Path,
) -> (
    String,
    Option<ClickHouseServer>,
    Box<dyn crate::store::Store>,
) {
    if std::env::var("SIXMAP_TEST_STORE").is_ok_and(|v| v == "clickhouse") {
        let server = ClickHouseServer::start("").expect("starting ClickHouse for the test");
        let store = crate::store::ClickHouseStore::open(&crate::store::ClickHouseConfig::local(
            &server.url(),
            "sixmap",
        ))
        .expect("opening the ClickHouse store");
        // A short request timeout: the figures fold results that are that much (+ 5 s) old.
        let lines = format!(
            "\n[store]\nbackend = \"clickhouse\"\n[store.clickhouse]\nurl = \"{}\"\ntimeout_s = 5\n",
            server.url()
        );
        (lines, Some(server), Box::new(store))
    } else {
        let store = crate::store::SledStore::open(data_dir).expect("opening the sled store");
        (String::new(), None, Box::new(store))
    }
}
