//! Enrollment benchmark (issue #18 item 6): enrollment time must not grow with the fleet.
//!
//! Enrolls PROBES probes (default 20,000) over real gRPC/TLS against an in-process collector on
//! a sled store, each with its own token and owner (a fleet of volunteers), and prints the
//! time per enrollment for each block of 1,000: the first and last blocks must be alike.
//! Then the cap check alone on a store of PROBES probe records: the owner index (now) against
//! reading every probe record (what each enrollment did before).
//!
//! Run: `cargo run --release -p sixmap-collector --example enroll_bench [PROBES]`

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may stop at the first failure

use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::pki::Pki;
use sixmap_collector::store::{AuthStore, ProbeRecord, SledStore, Store};
use sixmap_probe::collector_tls;
use sixmap_proto::v1;
use sixmap_proto::v1::probe_control_client::ProbeControlClient;
use sixmap_shared::config::parse_toml;
use sixmap_shared::{ProbeId, UnixMicros};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BLOCK: usize = 1000;
/// Enrollments in flight at once, over this many TLS connections.
const CONCURRENCY: usize = 16;
const CHANNELS: usize = 4;

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

async fn enroll_over_grpc(probes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let tokens: Vec<String> = {
        let store = SledStore::open(dir.path()).unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let now = UnixMicros::now();
        let tokens = (0..probes)
            .map(|i| {
                let (token, hash, record) = auth::new_enrollment_token(
                    pki.fingerprint(),
                    &format!("volunteer-{i}"),
                    Duration::from_secs(86_400),
                    "bench",
                    now,
                )
                .unwrap();
                store.put_enrollment_token(&hash, &record).unwrap();
                token
            })
            .collect();
        store.flush().unwrap();
        tokens
    };
    eprintln!("{probes} tokens made in {:.1?}", started.elapsed());
    let fingerprint = Pki::load_or_create(dir.path())
        .unwrap()
        .fingerprint()
        .to_owned();
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    let url = format!("https://{}", running.grpc_addr);
    let tls = collector_tls::enrollment_config(&fingerprint).unwrap();
    let mut clients = Vec::new();
    for _ in 0..CHANNELS {
        let channel = collector_tls::channel(&url, tls.clone(), |e| e)
            .await
            .unwrap();
        clients.push(ProbeControlClient::new(channel));
    }
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    // (index in completion order, latency) per enrollment; completion times per block.
    let done = Arc::new(std::sync::Mutex::new(Vec::with_capacity(probes)));
    let begin = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let (tokens, next, done) = (tokens.clone(), next.clone(), done.clone());
            let mut client = clients[w % CHANNELS].clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(token) = tokens.get(i) else { break };
                    let key = rcgen::KeyPair::generate().unwrap();
                    let csr = rcgen::CertificateParams::default()
                        .serialize_request(&key)
                        .unwrap();
                    let sent = Instant::now();
                    client
                        .enroll(v1::EnrollRequest {
                            token: token.clone(),
                            hostname: format!("bench-{i}"),
                            software_version: "0.1.0".into(),
                            csr_der: csr.der().to_vec(),
                        })
                        .await
                        .unwrap();
                    done.lock().unwrap().push((sent.elapsed(), begin.elapsed()));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let total = begin.elapsed();
    let done = done.lock().unwrap().clone();
    println!(
        "enrollments over gRPC/TLS: {probes} in {total:.1?} ({CONCURRENCY} at once over {CHANNELS} connections)"
    );
    println!("block (enrolled before)  wall time per enrollment  median latency");
    let mut previous_end = Duration::ZERO;
    for (b, block) in done.chunks(BLOCK).enumerate() {
        let end = block.last().map_or(previous_end, |(_, at)| *at);
        let per = (end - previous_end) / u32::try_from(block.len()).unwrap();
        previous_end = end;
        let latency = median(block.iter().map(|(l, _)| *l).collect());
        println!(
            "{:>7}                  {:>8.2} ms                {:>8.2} ms",
            b * BLOCK,
            per.as_secs_f64() * 1000.0,
            latency.as_secs_f64() * 1000.0
        );
    }
    drop(running);
}

/// The cap check alone, on a store of `probes` enrolled probes: odd ones of distinct owners
/// and /64s, even ones all of owner "big" in one /64 (as the loadgen enrolls).
fn cap_check(probes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let now = UnixMicros::now();
    for i in 0..probes {
        let big = i.is_multiple_of(2);
        let from: std::net::IpAddr = if big {
            format!("2001:db8:ffff:ffff::{:x}", i + 1)
        } else {
            format!("2001:db8:{:x}:{:x}::1", i / 65_536, i % 65_536)
        }
        .parse()
        .unwrap();
        let owner = if big {
            "big".to_owned()
        } else {
            format!("volunteer-{i}")
        };
        store
            .create_probe(&ProbeRecord {
                software_version: Some("0.1.0".into()),
                owner: Some(owner),
                enrolled_from: Some(from),
                ..ProbeRecord::new(
                    format!("{i:016x}").parse::<ProbeId>().unwrap(),
                    format!("bench-{i}"),
                    now,
                )
            })
            .unwrap();
    }
    sixmap_collector::enroll::gate::complete_owner_index(&store).unwrap();
    let network = auth::owner_networks("2001:db8:0:7::1".parse().unwrap(), None);
    let big_network = auth::owner_networks("2001:db8:ffff:ffff::1".parse().unwrap(), None);
    let time = |f: &dyn Fn()| {
        median(
            (0..21)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .collect(),
        )
    };
    // What each enrollment did before: read every probe record, keep the owner's.
    let before = time(&|| {
        let mine = store
            .probes()
            .unwrap()
            .iter()
            .filter(|p| p.owner.as_deref() == Some("big"))
            .count();
        assert_eq!(mine, probes.div_ceil(2));
    });
    let after_big = time(&|| {
        assert_eq!(
            store.owner_probe_count("big", &big_network[0]).unwrap(),
            probes.div_ceil(2)
        );
    });
    let after = time(&|| {
        assert_eq!(
            store.owner_probe_count("volunteer-7", &network[0]).unwrap(),
            1
        );
    });
    println!(
        "cap check with {probes} probes stored: reading every probe record (before) {:.3} ms; owner index (now) {:.4} ms for an owner with one probe, {:.4} ms for an owner with {} probes in one /64",
        before.as_secs_f64() * 1000.0,
        after.as_secs_f64() * 1000.0,
        after_big.as_secs_f64() * 1000.0,
        probes.div_ceil(2)
    );
}

#[tokio::main]
async fn main() {
    let probes: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("PROBES is a number"))
        .unwrap_or(20_000);
    enroll_over_grpc(probes).await;
    cap_check(probes);
}
