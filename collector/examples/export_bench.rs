//! Export benchmark, in two parts, each printing rows/s, MB/s and peak RSS per format:
//!
//! 1. the writers alone: N synthetic results of every kind (`export::samples`: pings,
//!    traceroutes, DNS, HTTP, TCP and failures) made in memory and written to a file, which
//!    measures the formats themselves;
//! 2. end to end: a sled store of the same N results, then a full export in each format
//!    (`export::export`, as the CLI and the HTTP endpoint do), which adds the store's scan.
//!
//! Run: `cargo run --release -p sixmap-collector --example export_bench -- [--results N]
//! [--dir D] [--writers-only]` (default 1,000,000 results from 2,000 probes over 30 days).
//! With `--dir`, the store is built there once and reused by later runs with the same N.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may stop at the first failure

/// The daemon's allocator (`sixmap-collector`'s main.rs), so the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use sixmap_collector::export::{self, Format, samples};
use sixmap_collector::store::{ResultFilter, SledStore, Store};
use sixmap_shared::UnixMicros;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    results: u64,
    #[arg(long, default_value_t = 2_000)]
    probes: u64,
    /// Keep the store here (reused when it holds the same number of results).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the store part.
    #[arg(long)]
    writers_only: bool,
    /// Skip the writers-alone part.
    #[arg(long)]
    store_only: bool,
    /// Only these formats (comma-separated), e.g. `--formats jsonl` for a profile of one.
    #[arg(long, value_delimiter = ',', default_values_t = Format::ALL)]
    formats: Vec<Format>,
}

fn header(title: &str) {
    println!("{title}");
    println!(
        "{:<8} {:>10} {:>9} {:>10} {:>8} {:>9} {:>9}",
        "format", "rows", "skipped", "rows/s", "MB", "MB/s", "peak RSS"
    );
}

fn line(format: Format, stats: export::ExportStats, seconds: f64, bytes: u64) {
    let mb = bytes as f64 / 1e6;
    println!(
        "{:<8} {:>10} {:>9} {:>10.0} {:>8.1} {:>9.1} {:>6.0} MB",
        format.name(),
        stats.rows,
        stats.skipped,
        (stats.rows + stats.skipped) as f64 / seconds,
        mb,
        mb / seconds,
        peak_rss_mb()
    );
}

fn start_and_step(results: u64) -> (UnixMicros, i64) {
    // 30 days of results.
    let step = (30 * 86_400_000_000 / results.max(1) as i64).max(1);
    (UnixMicros(1_772_323_200_000_000), step)
}

/// The writers alone, fed results made in memory.
fn writers_alone(args: &Args, dir: &std::path::Path) {
    let (start, step) = start_and_step(args.results);
    header("writers alone (results made in memory)");
    for format in Format::ALL {
        let path = dir.join(format!("mem.{}", format.extension()));
        let file = std::fs::File::create(&path).unwrap();
        reset_peak();
        let started = Instant::now();
        let mut writer = export::writer(format, file).unwrap();
        let mut stats = export::ExportStats::default();
        for i in 0..args.results {
            if writer
                .write(&samples::sample(i, args.probes, start, step))
                .unwrap()
            {
                stats.rows += 1;
            } else {
                stats.skipped += 1;
            }
        }
        writer.finish().unwrap();
        let seconds = started.elapsed().as_secs_f64();
        line(
            format,
            stats,
            seconds,
            std::fs::metadata(&path).unwrap().len(),
        );
        std::fs::remove_file(&path).unwrap();
    }
}

/// Peak resident set size since the last reset, in MB (Linux `VmHWM`).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets the peak RSS so each export's own peak is measured (Linux ≥ 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let args = Args::parse();
    let temp = tempfile::tempdir().unwrap();
    if !args.store_only {
        writers_alone(&args, temp.path());
    }
    if args.writers_only {
        return;
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().join("store"));
    let marker = dir.join("export_bench.count");
    let store = SledStore::open(&dir).unwrap();
    let have = std::fs::read_to_string(&marker).ok();
    if have.as_deref() != Some(&args.results.to_string()) {
        let started = Instant::now();
        let (start, step) = start_and_step(args.results);
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..args.results {
            batch.push(samples::sample(i, args.probes, start, step));
            if batch.len() == batch.capacity() {
                store.insert_results(&batch).unwrap();
                batch.clear();
            }
        }
        store.insert_results(&batch).unwrap();
        store.flush().unwrap();
        std::fs::write(&marker, args.results.to_string()).unwrap();
        eprintln!(
            "filled {} results in {:.1} s",
            args.results,
            started.elapsed().as_secs_f64()
        );
    }
    header("end to end from the sled store (export::export: the CLI's and the endpoint's path)");
    for &format in &args.formats {
        let path = temp.path().join(format!("out.{}", format.extension()));
        let file = std::fs::File::create(&path).unwrap();
        reset_peak();
        let started = Instant::now();
        let stats =
            export::export(&store, &ResultFilter::default(), format, file, &mut |_| {}).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        line(
            format,
            stats,
            seconds,
            std::fs::metadata(&path).unwrap().len(),
        );
        std::fs::remove_file(&path).unwrap();
    }
}
