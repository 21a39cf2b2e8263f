//! Map query benchmark: a synthetic sled store of enriched results (written straight to the
//! store in bulk, no network), then the latency of the public reads behind the national map,
//! the daily series and the aggregates: "scan" computes them from the results as before
//! figures existed, "figures" reads the figures kept at ingest (`figures`).
//!
//! Run: `cargo run --release -p sixmap-collector --example map_bench [RESULTS] [PROBES]
//! [--no-scan] [--store clickhouse]` or `--series-only` (the year of one country's series
//! alone) (defaults: 1,000,000 results from 2,000 probes over 30
//! days, in 40 countries of 10 networks each; sled). `--no-scan` skips the scan reference
//! (minutes at 10 M results). With `--store clickhouse` the results go through the
//! ClickHouse store into a ClickHouse server the benchmark starts (Debian's binary, as the
//! tests do), and the figures are folded incrementally as a collector's folder does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may stop at the first failure

/// The daemon's allocator (`sixmap-collector`'s main.rs), so the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use sixmap_collector::figures::{Source, fold};
use sixmap_collector::query::aggregate::{self, AggregateRequest, GroupBy, Side};
use sixmap_collector::store::ResultFilter;
use sixmap_collector::store::clickhouse::figures::FoldTiming;
use sixmap_collector::store::{
    ClickHouseConfig, ClickHouseStore, ProbeRecord, SledStore, Store, StoredResult,
};
use sixmap_collector::{daily, maps, query, testing};
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
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--series-only") {
        return year_of_series();
    }
    let clickhouse = match args.iter().position(|a| a == "--store") {
        Some(i) => {
            let backend = args.get(i + 1).cloned().unwrap_or_default();
            args.drain(i..(i + 2).min(args.len()));
            match backend.as_str() {
                "clickhouse" => true,
                "sled" => false,
                other => anyhow::bail!("--store takes sled or clickhouse, not {other:?}"),
            }
        }
        None => false,
    };
    let mut args = args.into_iter();
    let total: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let probes: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    // `--no-scan`: skip the scan reference (minutes at 10 M results).
    let with_scan = args.next().as_deref() != Some("--no-scan");
    let per_probe = (total / probes).max(1);
    let dir = tempfile::tempdir()?;
    let now = UnixMicros::now();
    // Kept alive for the whole run (the server stops when dropped).
    let mut _server = None;
    let store: Box<dyn Store> = if clickhouse {
        let server = testing::clickhouse::require()
            .ok_or_else(|| anyhow::anyhow!("no ClickHouse server binary installed"))?;
        let store = ClickHouseStore::open(&ClickHouseConfig::local(&server.url(), "map_bench"))?
            .with_fold_timing(FoldTiming {
                lag: Duration::ZERO,
                hold: Duration::from_secs(600),
                expiry: Duration::from_secs(1200),
            });
        // Figures built on the empty database (what the folder does first), then folded
        // incrementally after the results are in.
        fold::rebuild(&store, &sixmap_shared::prefixes::PrefixData::new(), now)?;
        _server = Some(server);
        Box::new(store)
    } else {
        Box::new(SledStore::open(dir.path())?)
    };
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
            last_seen: Some(now),
            software_version: Some("0.1.0".into()),
            boot_epoch: Some(1),
            tags: if !p.is_multiple_of(7) {
                vec![ProbeTag {
                    name: TagName::new("v6-works")?,
                    since: UnixMicros(start),
                }]
            } else {
                Vec::new()
            },
            origin: Some(origin.clone()),
            ..ProbeRecord::new(probe_id(p), String::new(), UnixMicros(start))
        })?;
        for s in 0..per_probe {
            // Spread evenly over the 30 days.
            let at = start + (s as i64 * DAYS * DAY_US) / per_probe as i64 + p as i64;
            batch.push(result(p, s + 1, at, &origin));
            if batch.len() == batch.capacity() {
                store.insert_results(&batch)?;
                batch.clear();
                if clickhouse {
                    store.flush()?;
                }
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

    let prefixes = sixmap_shared::prefixes::PrefixData::new();
    let store = &*store;
    if clickhouse {
        // What the collector's folder does, from the first result to the last.
        let t = Instant::now();
        let mut folded = 0;
        loop {
            let before = store.figures_cursor()?;
            let round =
                fold::fold_once(store, &prefixes, fold::FOLD_CHUNK, fold::hours_since(now))?;
            folded += round.folded;
            if round.folded == 0 && store.figures_cursor()? == before {
                break;
            }
        }
        println!(
            "figures folded incrementally (the folder's rounds of {}): {folded} results in {:.1} s, {:.0} results/s",
            fold::FOLD_CHUNK,
            t.elapsed().as_secs_f64(),
            folded as f64 / t.elapsed().as_secs_f64()
        );
    } else {
        let disk = fs_size(dir.path());
        println!(
            "store on disk: {:.1} MB, {:.0} bytes per stored result",
            disk as f64 / 1e6,
            disk as f64 / stored as f64
        );
        let t = Instant::now();
        fold::rebuild(store, &prefixes, now)?;
        println!(
            "figures rebuilt from all results (what `rollups rebuild` does): {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let rule = sixmap_collector::rollup::MinSample::default();
    let rollups = daily::refresh(store, &prefixes, now, DAYS + 1, rule)?;
    println!(
        "daily rollups, all {} days from figures: {rollups} stored in {:.2} s",
        DAYS + 1,
        t.elapsed().as_secs_f64()
    );
    let aa = country(0);
    let request = |group_by| AggregateRequest {
        filter: ResultFilter::default(),
        group_by,
        side: Side::Probe,
    };
    let today = now.0.div_euclid(DAY_US);
    // Scan runs are few: each reads the last day (maps) or up to 1 M results (aggregates).
    let scan_runs = if stored > 2_000_000 { 3 } else { 5 };
    // What a map request costs now: the answer from the snapshot kept in memory
    // (`map_view`), serialised as the handler does; the snapshot is taken in the background.
    let snapshot = maps::Snapshot::take(store, now)?;
    println!(
        "[view   ] snapshot taken (background, >= 1 s apart):  {}",
        time(20, || maps::Snapshot::take(store, now).unwrap())
    );
    println!(
        "[view   ] GET /api/v1/maps/countries:            {}",
        time(2000, || serde_json::to_vec(&snapshot.countries()).unwrap())
    );
    println!(
        "[view   ] GET /api/v1/maps/countries/AA:         {}",
        time(2000, || serde_json::to_vec(&snapshot.country(aa)).unwrap())
    );
    let sources = if with_scan {
        vec![(Source::Scan, scan_runs), (Source::Figures, 200)]
    } else {
        vec![(Source::Figures, 200)]
    };
    for (source, runs) in sources {
        let name = match source {
            Source::Scan => "scan   ",
            Source::Figures => "figures",
        };
        println!(
            "[{name}] GET /api/v1/maps/countries:            {}",
            time(runs, || maps::countries_from(store, now, source).unwrap())
        );
        println!(
            "[{name}] GET /api/v1/maps/countries/AA:         {}",
            time(runs, || maps::country_from(store, aa, now, source).unwrap())
        );
        println!(
            "[{name}] daily rollups, today + yesterday:      {}",
            // On ClickHouse storing them is one INSERT per day and group: a few runs.
            time(
                if clickhouse { runs.min(5) } else { runs },
                || match source {
                    Source::Scan => {
                        for back in 0..2 {
                            let day = sixmap_shared::UnixMicros(now.0 - back * DAY_US);
                            daily::compute_day_from(store, &prefixes, day, Source::Scan, rule)
                                .unwrap();
                        }
                    }
                    Source::Figures => {
                        daily::store_days(store, &[today - 1, today], rule).unwrap();
                    }
                }
            )
        );
        for group_by in [GroupBy::Country, GroupBy::AsnDay] {
            println!(
                "[{name}] GET /api/v1/query/aggregates?group_by={:<11} {}",
                group_by.name(),
                time(runs, || {
                    let a = match source {
                        Source::Scan => aggregate::aggregate_scan(
                            store,
                            &request(group_by),
                            query::aggregate_budget(),
                        )
                        .unwrap(),
                        Source::Figures => {
                            aggregate::from_figures(store, &request(group_by), u64::MAX).unwrap()
                        }
                    };
                    (a.results, a.truncated)
                })
            );
        }
    }
    if with_scan {
        let a = aggregate::aggregate_scan(
            store,
            &request(GroupBy::Country),
            query::aggregate_budget(),
        )?;
        println!(
            "(the scan aggregate stops at its budget: {} results read, truncated: {})",
            a.results, a.truncated
        );
    }
    println!(
        "GET /api/v1/maps/countries/AA/series:    {}",
        time(200, || daily::series(store, aa).unwrap())
    );
    println!(
        "GET /api/v1/maps/networks/AS64512/series: {}",
        time(200, || daily::network_series(store, 64_512).unwrap())
    );
    if !clickhouse {
        year_of_series()?;
    }
    Ok(())
}

/// The series routes over a year of stored days of one large country: 200 probes a day in
/// 12 operators, one of them a lone probe under the minimum sample (so its part is left out
/// of every national figure), one result per probe and day. A series request reads every
/// stored day of its key.
fn year_of_series() -> anyhow::Result<()> {
    const YEAR: i64 = 365;
    const PROBES: u64 = 200;
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let now = UnixMicros::now();
    let start = now.0 - YEAR * DAY_US;
    let zz: CountryCode = "ZZ".parse()?;
    let mut batch = Vec::new();
    for p in 0..PROBES {
        // Operator 0 has probe 0 alone; the others share the rest.
        let operator = if p == 0 { 0 } else { 1 + p % 11 };
        let origin = Enrichment {
            asn: Some(65_000 + operator as u32),
            as_name: None,
            country: Some(zz),
        };
        for day in 0..YEAR {
            batch.push(result(
                p,
                day as u64 + 1,
                start + day * DAY_US + 1_000,
                &origin,
            ));
        }
    }
    store.insert_results(&batch)?;
    store.flush()?;
    let prefixes = sixmap_shared::prefixes::PrefixData::new();
    fold::rebuild(&store, &prefixes, now)?;
    let days = sixmap_collector::figures::read::days(&store)?;
    let rule = sixmap_collector::rollup::MinSample::default();
    daily::store_days(&store, &days, rule)?;
    println!(
        "a year of one country's days ({PROBES} probes a day, one operator under the minimum), {} stored days:",
        days.len()
    );
    println!(
        "GET /api/v1/maps/countries/ZZ/series:     {}",
        time(50, || daily::series_with(&store, zz, rule).unwrap())
    );
    println!(
        "GET /api/v1/maps/networks/AS65001/series: {}",
        time(50, || daily::network_series_with(&store, 65_001, rule)
            .unwrap())
    );
    Ok(())
}

fn fs_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => fs_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
