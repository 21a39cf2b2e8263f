//! Ingest throughput of the collector's real path minus the network: decode, validate,
//! check the assignment, insert with dedup into sled, flush, build the ack.
//!
//! cargo run --release -p sixmap-collector --example ingest_bench [BATCHES] [BATCH_SIZE]
//!
//! Prints results per second with durable acks (one flush per batch), and the same inserts
//! without per-batch flushes for comparison.
//!
//! With `SIXMAP_BENCH_CLICKHOUSE=http://127.0.0.1:8123` the store is ClickHouse (a fresh
//! database on that server) instead of sled, and a full time-ordered scan is timed too.

use sixmap_collector::ingest::ingest_batch;
use sixmap_collector::store::{ClickHouseConfig, ClickHouseStore, SledStore, Store};
use sixmap_proto::{decode, encode, v1};
use sixmap_shared::measurement::{
    ClockInfo, ClockState, Family, IcmpSocketKind, MeasurementResult, Outcome, PingReply,
    PingResult, TimestampSource,
};
use sixmap_shared::{ProbeId, ResultKey, UnixMicros};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

const TARGET: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

fn result(probe: &ProbeId, task: sixmap_shared::TaskId, sequence: u64) -> MeasurementResult {
    MeasurementResult {
        key: ResultKey {
            probe_id: probe.clone(),
            boot_epoch: 1,
            sequence,
        },
        task_id: task,
        started_at: UnixMicros(1_795_000_000_000_000 + sequence as i64),
        duration_us: 2_000_000,
        family_requested: Family::V6,
        family_used: Some(Family::V6),
        source: Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2))),
        destination: Some(TARGET),
        software_version: "0.1.0".into(),
        clock: ClockInfo {
            state: ClockState::Synchronized,
            offset_us: Some(120),
        },
        outcome: Outcome::Ping(PingResult {
            sent: 3,
            received: 3,
            replies: (0..3)
                .map(|i| PingReply {
                    sequence: i,
                    rtt_ns: 12_345_678,
                    hop_limit: Some(57),
                    duplicate: false,
                    from: TARGET,
                })
                .collect(),
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Datagram,
            errors: vec![],
        }),
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let batches: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(400);
    let batch_size: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(256);
    let dir = tempfile::tempdir()?;
    let clickhouse = std::env::var("SIXMAP_BENCH_CLICKHOUSE").ok();
    let store: Box<dyn Store> = match &clickhouse {
        Some(url) => {
            let database = format!("bench_{}", ProbeId::random()?.as_str());
            println!("store: ClickHouse at {url}, database {database}");
            Box::new(ClickHouseStore::open(&ClickHouseConfig::local(
                url, &database,
            ))?)
        }
        None => Box::new(SledStore::open(dir.path())?),
    };
    let store = &*store;
    let probe = ProbeId::random()?;
    let task = store.task_id("bench")?;
    // No prefix data: enrichment lookups miss, as on a collector without imports.
    let prefixes = sixmap_shared::prefixes::PrefixData::new();
    store.record_assignment(&probe, task)?;

    let wire: Vec<v1::ResultBatch> = (0..batches)
        .map(|b| v1::ResultBatch {
            losses: Vec::new(),
            batch_id: b,
            results: (0..batch_size)
                .map(|i| encode::result(&result(&probe, task, 1 + b * batch_size + i)))
                .collect(),
        })
        .collect();

    let started = Instant::now();
    let mut latencies = Vec::with_capacity(wire.len());
    for batch in &wire {
        let t = Instant::now();
        // Decoded as the session's edge does, so the figure keeps covering decoding.
        let (ack, _) = ingest_batch(store, &prefixes, &probe, decode::received_batch(batch))?
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(ack.stored.len() as u64 == batch_size, "not all stored");
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let total = batches * batch_size;
    println!(
        "ingest (durable acks): {total} results in {batches} batches of {batch_size}: {:.0} results/s, \
         batch latency p50 {:.2} ms p99 {:.2} ms",
        total as f64 / elapsed.as_secs_f64(),
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies[latencies.len() * 99 / 100].as_secs_f64() * 1e3,
    );

    // Same volume again as duplicates: the dedup path.
    let started = Instant::now();
    for batch in &wire {
        ingest_batch(store, &prefixes, &probe, decode::received_batch(batch))?
            .map_err(anyhow::Error::msg)?;
    }
    println!(
        "re-ingest of duplicates: {:.0} results/s",
        total as f64 / started.elapsed().as_secs_f64()
    );
    if clickhouse.is_some() {
        let started = Instant::now();
        let mut scanned = 0u64;
        store.scan_results_between(UnixMicros(i64::MIN), UnixMicros(i64::MAX), &mut |_| {
            scanned += 1;
            true
        })?;
        anyhow::ensure!(scanned == total, "scanned {scanned} of {total}");
        println!(
            "time-ordered scan of everything: {:.0} results/s",
            total as f64 / started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let bytes: u64 = walk_size(dir.path());
    println!(
        "store size on disk: {:.1} MiB ({:.0} bytes/result)",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / total as f64
    );
    Ok(())
}

fn walk_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
