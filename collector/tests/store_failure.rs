//! Issue #19: a store that cannot commit is never served around. The collector binary runs
//! on a small tmpfs (needs root, as CI is) that is then filled up: the next batch's failed
//! write or flush makes the collector exit non-zero, for systemd to restart it, instead of
//! serving with acks that never come.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

mod common;

use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_proto::{encode, v1};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A tmpfs of `size` at a fresh directory, unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (CI runs as root)"
        );
        Self { _dir: dir, path }
    }

    /// Writes a file until the file system is full.
    fn fill(&self) {
        let mut file = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![0xa5u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn serve(data: &Path) -> common::Served {
    let config = data.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n\
             [default_ping]\ntargets = [\"::1\"]\n[limits]\nstore_flush_timeout_s = 5\n"
        ),
    )
    .unwrap();
    common::serve(
        Path::new(env!("CARGO_BIN_EXE_sixmap-collector")),
        &config,
        Stdio::piped(),
        None,
    )
}

async fn healthz(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_healthz_fail_and_the_collector_exit_non_zero() {
    let fs = Tmpfs::mount("24m");
    let data = fs.path.join("data");
    let (fingerprint, token) = {
        let mut prepared = common::prepare(&data, 1, 0);
        (prepared.ca_fingerprint, prepared.tokens.remove(0))
    };
    let mut served = serve(&data);
    let url = format!("https://{}", served.grpc);

    // Enroll and open a session; the welcome's assignments give the task to report on.
    let (probe_id, mut client) = common::enroll(&url, &fingerprint, token).await;
    let (tx, rx) = mpsc::channel(64);
    tx.send(common::hello(&probe_id)).await.unwrap();
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let task = loop {
        let message = tokio::time::timeout(Duration::from_secs(20), inbound.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(collector_message::Kind::Assign(a)) = message.kind {
            break TaskId::new(a.task_id).unwrap();
        }
    };
    assert!(healthz(served.http).await.starts_with("HTTP/1.1 200"));

    fs.fill();
    eprintln!("disk filled");
    // Past the 2 s the last outcome is kept, the check writes again and fails.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let health = healthz(served.http).await;
    eprintln!("healthz: {}", health.lines().next().unwrap_or(""));
    let probe: ProbeId = probe_id.parse().unwrap();
    // Batches until the collector gives up on its store.
    let started = Instant::now();
    let mut sequence = 0u64;
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the collector kept running on a full disk"
        );
        let results = (0..200)
            .map(|_| {
                sequence += 1;
                let mut stored = sixmap_collector::testing::ping_v6(
                    probe.clone(),
                    sequence,
                    UnixMicros::now(),
                    Some(Duration::from_millis(3)),
                    Enrichment::default(),
                );
                stored.result.task_id = task;
                encode::result(&stored.result)
            })
            .collect();
        // Never blocks: a collector that stopped reading must not stall the test.
        let _ = tx.try_send(v1::ProbeMessage {
            kind: Some(probe_message::Kind::Results(v1::ResultBatch {
                batch_id: sequence,
                results,
                losses: Vec::new(),
            })),
        });
        // Drain what came back, so the session's stream never stalls on us.
        while let Ok(Ok(Some(message))) =
            tokio::time::timeout(Duration::from_millis(50), inbound.message()).await
        {
            if let Some(collector_message::Kind::Ack(ack)) = message.kind
                && !ack.rejected.is_empty()
            {
                eprintln!("batch {}: {} rejected", ack.batch_id, ack.rejected.len());
            }
        }
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut served.child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "exited with {status}\n{stderr}");
    assert!(stderr.contains("store failed"), "{stderr}");
    // sled may still fit /healthz's small record into space it holds already: then that
    // check rightly says 200 (it did commit); the batches needing new space fail.
    eprintln!(
        "healthz on the full disk: {}",
        health.lines().next().unwrap_or("")
    );
    eprintln!(
        "collector's last words: {}",
        stderr.lines().rfind(|l| l.contains("store")).unwrap_or("")
    );
}
