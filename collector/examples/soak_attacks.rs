//! Soak of issue #19: a release collector (the `sixmap-collector` binary beside this
//! example) under the idle-connection, stalled-export and map-flood attacks, alone and all
//! together, while enrolled probes deliver; prints per phase the probes' ingest (results
//! acked per second, ack latency) and a map visitor's `/api/v1/probes` latency (p50, p99).
//!
//! ```text
//! cargo build --release -p sixmap-collector --bin sixmap-collector --example soak_attacks
//! ulimit -n 65536; target/release/examples/soak_attacks [PHASE_SECONDS] [--split-cores]
//! ```
//!
//! Attackers come from 127.0.0.2-127.0.0.17 (16 sources; `source_exempt = []` so loopback
//! counts like any other source), the probes from ::1, the visitor from 127.0.0.1. Everything
//! stays on loopback and every loop ends with its phase. Defaults of `[limits]` otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark may fail loudly

// The collector tests' harness: preparing the store, reading the ports, enrolling.
#[path = "../tests/common/mod.rs"]
mod common;

use rustls::pki_types::ServerName;
use sixmap_probe::collector_tls;
use sixmap_proto::v1::probe_control_client::ProbeControlClient;
use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_proto::{encode, v1};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const PROBES: usize = 8;
const BATCH: u64 = 10;
const BATCH_EVERY: Duration = Duration::from_millis(100);
const STORED: u64 = 30_000;

fn attacker(i: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, 2 + (i % 16) as u8])
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))?
}

#[derive(Default)]
struct Meter {
    acked: AtomicU64,
    ack_us: Mutex<Vec<u64>>,
    probes_ms: Mutex<Vec<f64>>,
    probes_failed: AtomicU64,
}

impl Meter {
    fn take(&self) -> (u64, Vec<u64>, Vec<f64>, u64) {
        (
            self.acked.swap(0, Ordering::AcqRel),
            std::mem::take(&mut *self.ack_us.lock().unwrap()),
            std::mem::take(&mut *self.probes_ms.lock().unwrap()),
            self.probes_failed.swap(0, Ordering::AcqRel),
        )
    }
}

fn percentile<T: Copy + PartialOrd>(values: &mut [T], p: f64) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    Some(values[i])
}

/// One probe: a session, a batch every [`BATCH_EVERY`], acks timed.
async fn deliver(
    probe: ProbeId,
    mut client: ProbeControlClient<Channel>,
    meter: Arc<Meter>,
    stop: Arc<AtomicBool>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tx.send(common::hello(probe.as_str())).await.unwrap();
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let task = loop {
        let message = inbound.message().await.unwrap().unwrap();
        if let Some(collector_message::Kind::Assign(a)) = message.kind {
            break TaskId::new(a.task_id).unwrap();
        }
    };
    let sent_at: Arc<Mutex<std::collections::HashMap<u64, Instant>>> = Arc::default();
    let acks = {
        let (sent_at, meter) = (sent_at.clone(), meter.clone());
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if let Some(collector_message::Kind::Ack(ack)) = message.kind
                    && let Some(at) = sent_at.lock().unwrap().remove(&ack.batch_id)
                {
                    meter
                        .ack_us
                        .lock()
                        .unwrap()
                        .push(at.elapsed().as_micros() as u64);
                    meter.acked.fetch_add(BATCH, Ordering::AcqRel);
                }
            }
        })
    };
    let mut sequence = 0u64;
    let mut batch_id = 0u64;
    while !stop.load(Ordering::Acquire) {
        batch_id += 1;
        let results = (0..BATCH)
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
        sent_at.lock().unwrap().insert(batch_id, Instant::now());
        if tx
            .send(v1::ProbeMessage {
                kind: Some(probe_message::Kind::Results(v1::ResultBatch {
                    batch_id,
                    results,
                    losses: Vec::new(),
                })),
            })
            .await
            .is_err()
        {
            eprintln!("probe {probe}: session ended");
            break;
        }
        tokio::time::sleep(BATCH_EVERY).await;
    }
    drop(tx);
    acks.abort();
}

async fn get(from: IpAddr, to: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = connect_from(from, to).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The map visitor: `/api/v1/probes` every 100 ms.
async fn visit(http: SocketAddr, meter: Arc<Meter>, stop: Arc<AtomicBool>) {
    let me: IpAddr = "127.0.0.1".parse().unwrap();
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        let answer =
            tokio::time::timeout(Duration::from_secs(10), get(me, http, "/api/v1/probes")).await;
        match answer {
            Ok(Ok(a)) if a.starts_with("HTTP/1.1 200") => meter
                .probes_ms
                .lock()
                .unwrap()
                .push(started.elapsed().as_secs_f64() * 1000.0),
            _ => {
                meter.probes_failed.fetch_add(1, Ordering::AcqRel);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 2,000 idle TCP connections on the HTTP port and 2,000 idle TLS connections (no client
/// certificate, nothing sent after the handshake) on the gRPC port, reopened when closed.
async fn idle_attack(
    http: SocketAddr,
    grpc: SocketAddr,
    fingerprint: String,
    stop: Arc<AtomicBool>,
) {
    let tls = collector_tls::enrollment_config(&fingerprint).unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4000 {
        let (stop, connector) = (stop.clone(), connector.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let mut buf = [0u8; 256];
                if i % 2 == 0 {
                    if let Ok(mut s) = connect_from(attacker(i), http).await {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await;
                    }
                } else if let Ok(tcp) = connect_from(attacker(i), grpc).await {
                    let name = ServerName::try_from(sixmap_collector::pki::SERVER_NAME).unwrap();
                    if let Ok(Ok(mut s)) =
                        tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
                            .await
                    {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// 600 exports whose clients read the headers and then nothing, re-requested when dropped.
async fn export_attack(http: SocketAddr, stop: Arc<AtomicBool>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..600 {
        let stop = stop.clone();
        tasks.spawn(async move {
            while !stop.load(Ordering::Acquire) {
                if let Ok(mut s) = connect_from(attacker(i), http).await {
                    let _ = s
                        .write_all(b"GET /api/v1/export?format=jsonl HTTP/1.1\r\nHost: x\r\n\r\n")
                        .await;
                    let mut head = [0u8; 12];
                    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
                        .await;
                    if &head == b"HTTP/1.1 200" {
                        // Never read again; wait until the collector drops us.
                        let mut probe = [0u8; 1];
                        let _ = tokio::time::timeout(Duration::from_secs(60), async {
                            loop {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                if stop.load(Ordering::Acquire) {
                                    return;
                                }
                                // peek: a closed connection reads 0 or errors
                                match tokio::time::timeout(
                                    Duration::from_millis(1),
                                    s.peek(&mut probe),
                                )
                                .await
                                {
                                    Ok(Ok(0)) | Ok(Err(_)) => return,
                                    _ => {}
                                }
                            }
                        })
                        .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// 250 clients asking for `/api/v1/probes` and the world map as fast as they are answered.
async fn map_flood(http: SocketAddr, stop: Arc<AtomicBool>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..250 {
        let stop = stop.clone();
        tasks.spawn(async move {
            let path = if i % 2 == 0 {
                "/api/v1/probes"
            } else {
                "/api/v1/maps/countries"
            };
            while !stop.load(Ordering::Acquire) {
                if tokio::time::timeout(Duration::from_secs(10), get(attacker(i), http, path))
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn threads_and_rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:") / 1024)
}

fn main() {
    let phase = Duration::from_secs(
        std::env::args()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    // `--split-cores`: the collector on CPU 0, this process (attackers, probes, visitor) on
    // the others, so the attackers' own CPU is not taken from the collector: what an attacker
    // on another machine would do. `taskset` (util-linux) sets the affinities.
    let split_cores = std::env::args().any(|a| a == "--split-cores");
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("sixmap-collector");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (fingerprint, tokens) = {
        let prepared = common::prepare(&data, PROBES, STORED);
        (prepared.ca_fingerprint, prepared.tokens)
    };
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\ngrpc_listen = \"[::]:0\"\nhttp_listen = \"[::]:0\"\nraw_data_public = true\n\
             [default_ping]\ntargets = [\"::1\"]\n[limits]\nsource_exempt = []\n"
        ),
    )
    .unwrap();
    let served = common::serve(
        &binary,
        &config,
        std::fs::File::create(dir.path().join("collector.log"))
            .unwrap()
            .into(),
        Some("warn"),
    );
    let mut child = served.child;
    let pid = child.id();
    if split_cores {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert!(cpus >= 2, "--split-cores needs two CPUs");
        let others = format!("1-{}", cpus - 1);
        for (cpu, target) in [("0", pid), (others.as_str(), std::process::id())] {
            let status = std::process::Command::new("taskset")
                .args(["-a", "-p", "-c", cpu, &target.to_string()])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("taskset (util-linux)");
            assert!(status.success(), "taskset -c {cpu} {target}");
        }
        println!("collector pinned to CPU 0, attackers and probes to CPUs {others}");
    }
    let port = |addr: SocketAddr| addr.port();
    let (grpc_port, http_port) = (port(served.grpc), port(served.http));
    let grpc6 = SocketAddr::new("::1".parse().unwrap(), grpc_port);
    let grpc4 = SocketAddr::new("127.0.0.1".parse().unwrap(), grpc_port);
    let http4 = SocketAddr::new("127.0.0.1".parse().unwrap(), http_port);
    println!(
        "collector {} pid {pid}; phases of {} s; {PROBES} probes, {} results/s offered",
        binary.display(),
        phase.as_secs(),
        PROBES as u64 * BATCH * 1000 / BATCH_EVERY.as_millis() as u64
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let url = format!("https://{grpc6}");
        let meter = Arc::new(Meter::default());
        let stop_all = Arc::new(AtomicBool::new(false));
        for token in tokens {
            let (probe, client) = common::enroll(&url, &fingerprint, token).await;
            let probe: ProbeId = probe.parse().unwrap();
            tokio::spawn(deliver(probe, client, meter.clone(), stop_all.clone()));
        }
        tokio::spawn(visit(http4, meter.clone(), stop_all.clone()));
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>10} {:>10} {:>7} {:>8} {:>7}",
            "phase",
            "acked/s",
            "ack p50",
            "ack p99",
            "probes p50",
            "probes p99",
            "failed",
            "threads",
            "RSS MB"
        );
        let phases: [(&str, [bool; 3]); 6] = [
            ("baseline", [false, false, false]),
            ("idle connections", [true, false, false]),
            ("stalled exports", [false, true, false]),
            ("map flood", [false, false, true]),
            ("all three together", [true, true, true]),
            ("recovery", [false, false, false]),
        ];
        for (name, [idle, exports, flood]) in phases {
            let stop = Arc::new(AtomicBool::new(false));
            let mut attacks = Vec::new();
            if idle {
                attacks.push(tokio::spawn(idle_attack(
                    http4,
                    grpc4,
                    fingerprint.clone(),
                    stop.clone(),
                )));
            }
            if exports {
                attacks.push(tokio::spawn(export_attack(http4, stop.clone())));
            }
            if flood {
                attacks.push(tokio::spawn(map_flood(http4, stop.clone())));
            }
            // The first seconds of a phase are the attack ramping up; measure the rest.
            tokio::time::sleep(Duration::from_secs(3)).await;
            meter.take();
            let started = Instant::now();
            let mut peak_threads = 0;
            let mut peak_rss = 0;
            while started.elapsed() < phase {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let (t, r) = threads_and_rss(pid);
                peak_threads = peak_threads.max(t);
                peak_rss = peak_rss.max(r);
            }
            let (acked, mut ack_us, mut probes_ms, failed) = meter.take();
            let seconds = started.elapsed().as_secs_f64();
            let ms = |us: Option<u64>| {
                us.map_or("-".to_owned(), |us| format!("{:.1}", us as f64 / 1000.0))
            };
            let p = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
            println!(
                "{:<28} {:>9.0} {:>9} {:>9} {:>10} {:>10} {:>7} {:>8} {:>7}",
                name,
                acked as f64 / seconds,
                ms(percentile(&mut ack_us, 0.5)),
                ms(percentile(&mut ack_us, 0.99)),
                p(percentile(&mut probes_ms, 0.5)),
                p(percentile(&mut probes_ms, 0.99)),
                failed,
                peak_threads,
                peak_rss
            );
            stop.store(true, Ordering::Release);
            for attack in attacks {
                attack.abort();
            }
            // Let the attackers' sockets close before the next phase.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        stop_all.store(true, Ordering::Release);
    });
    let _ = child.kill();
    let _ = child.wait();
    println!("(ms; failed = /api/v1/probes requests that got no 200 within 10 s)");
}
