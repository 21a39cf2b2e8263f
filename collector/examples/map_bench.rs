//! Map query benchmark: a synthetic sled store of enriched results, then the latency of the
//! queries behind the national map.
//!
//! Run: `cargo run --release -p sixmap-collector --example map_bench [RESULTS] [PROBES]`
//! (defaults: 1,000,000 results from 2,000 probes over 30 days, in 40 countries of 10
//! networks each). The store takes about 1.3 KB per result on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may stop at the first failure

use sixmap_collector::store::{ProbeRecord, SledStore, Store, StoredResult};
use sixmap_collector::{daily, maps, testing};
use sixmap_shared::health::{ProbeTag, TagName};
use sixmap_shared::prefixes::{CountryCode, Enrichment};
use sixmap_shared::{ProbeId, UnixMicros};
use std::time::{Duration, Instant};

const DAY_US: i64 = 86_400_000_000;
const DAYS: i64 = 30;

/// Two uppercase letters for country number `i` (synthetic, "AA".."BN").
fn country(i: u64) -> CountryCode {
    let letters = [b'A' + (i / 26) as u8, b'A' + (i % 26) as u8];
    std::str::from_utf8(&letters).unwrap().parse().unwrap()
}

fn probe_id(i: u64) -> ProbeId {
    format!("{i:016x}").parse().unwrap()
}

fn result(probe: u64, sequence: u64, at: i64, origin: &Enrichment) -> StoredResult {
    // Every 7th probe's IPv6 fails; RTTs vary by probe and time.
    let works = !probe.is_multiple_of(7);
    let rtt = Duration::from_nanos(5_000_000 + (probe * 997 + sequence * 31) % 80_000_000);
    testing::ping_v6(
        probe_id(probe),
        sequence,
        UnixMicros(at),
        works.then_some(rtt),
        origin.clone(),
    )
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:>9.2} ms   p99 {:>9.2} ms   ({} runs)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.len()
    )
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> String {
    let samples = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    percentiles(samples)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let probes: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let per_probe = (total / probes).max(1);
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let now = UnixMicros::now();
    let start = now.0 - DAYS * DAY_US;

    let built = Instant::now();
    let mut batch = Vec::with_capacity(4096);
    for p in 0..probes {
        let origin = Enrichment {
            asn: Some(64_512 + (p % 400) as u32),
            as_name: Some(format!("Operator {}", p % 400)),
            country: Some(country(p % 400 / 10)),
        };
        store.create_probe(&ProbeRecord {
            id: probe_id(p),
            hostname: String::new(),
            enrolled_at: UnixMicros(start),
            last_seen: Some(now),
            software_version: Some("0.1.0".into()),
            boot_epoch: Some(1),
            local_addresses: Vec::new(),
            self_test: None,
            last_v6_success: None,
            tags: if !p.is_multiple_of(7) {
                vec![ProbeTag {
                    name: TagName::new("v6-works")?,
                    since: UnixMicros(start),
                }]
            } else {
                Vec::new()
            },
            location: None,
            origin: Some(origin.clone()),
            owner: None,
            enrolled_from: None,
            enrolled_prefix: None,
            certificate_sha256: None,
            revoked_at: None,
        })?;
        for s in 0..per_probe {
            // Spread evenly over the 30 days.
            let at = start + (s as i64 * DAYS * DAY_US) / per_probe as i64 + p as i64;
            batch.push(result(p, s + 1, at, &origin));
            if batch.len() == batch.capacity() {
                store.insert_results(&batch)?;
                batch.clear();
            }
        }
    }
    store.insert_results(&batch)?;
    store.flush()?;
    let stored = probes * per_probe;
    println!(
        "built: {stored} results from {probes} probes over {DAYS} days in 40 countries x 10 networks, {:.1} s",
        built.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let rollups = daily::refresh(
        &store,
        &sixmap_shared::prefixes::PrefixData::new(),
        now,
        DAYS + 1,
    )?;
    println!(
        "daily rollups, all {} days recomputed: {rollups} stored in {:.1} s",
        DAYS + 1,
        t.elapsed().as_secs_f64()
    );
    println!(
        "daily rollups, today + yesterday:       {}",
        time(5, || daily::refresh(
            &store,
            &sixmap_shared::prefixes::PrefixData::new(),
            now,
            2
        )
        .unwrap())
    );
    println!(
        "GET /api/v1/maps/countries:             {}",
        time(5, || maps::countries(&store, now).unwrap())
    );
    let aa = country(0);
    println!(
        "GET /api/v1/maps/countries/AA:          {}",
        time(5, || maps::country(&store, aa, now).unwrap())
    );
    println!(
        "GET /api/v1/maps/countries/AA/series:   {}",
        time(200, || daily::series(&store, aa).unwrap())
    );
    println!(
        "GET /api/v1/maps/networks/AS64512/series: {}",
        time(200, || daily::network_series(&store, 64_512).unwrap())
    );
    Ok(())
}
