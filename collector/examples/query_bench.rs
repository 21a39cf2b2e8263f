//! Query service benchmark: a synthetic sled store of enriched pings, then the cost of the
//! research queries: a page, paging through a selective filter, a filter that matches
//! nothing (bounded by the page scan budget), and aggregates.
//!
//! Run: `cargo run --release -p sixmap-collector --example query_bench [RESULTS]`
//! (default 300,000 results from 1,000 probes in 40 countries over 30 days).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may stop at the first failure

use sixmap_collector::query::aggregate::{AggregateRequest, aggregate};
use sixmap_collector::query::page::page;
use sixmap_collector::query::{PAGE_MAX_SCANNED, PageRequest};
use sixmap_collector::store::ScanBudget;
use sixmap_collector::store::{SledStore, Store};
use sixmap_collector::testing;
use sixmap_shared::UnixMicros;
use sixmap_shared::prefixes::Enrichment;
use std::time::{Duration, Instant};

const PROBES: u64 = 1_000;
const DAY_US: i64 = 86_400_000_000;

fn origin(probe: u64) -> Enrichment {
    let c = probe % 40;
    let letters = [b'A' + (c / 26) as u8, b'A' + (c % 26) as u8];
    Enrichment {
        asn: Some(64_500 + (probe % 400) as u32),
        as_name: None,
        country: Some(std::str::from_utf8(&letters).unwrap().parse().unwrap()),
    }
}

fn request(pairs: &[(&str, &str)]) -> PageRequest {
    PageRequest::from_pairs(pairs.iter().copied()).unwrap()
}

fn main() -> anyhow::Result<()> {
    let total: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(300_000);
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path())?;
    let start = UnixMicros::now().0 - 30 * DAY_US;
    let step = 30 * DAY_US / total as i64;
    let built = Instant::now();
    let mut batch = Vec::with_capacity(4096);
    for i in 0..total {
        let probe = i % PROBES;
        let rtt = (!probe.is_multiple_of(7)).then(|| Duration::from_millis(5 + i % 80));
        batch.push(testing::ping_v6(
            format!("{probe:016x}").parse()?,
            i + 1,
            UnixMicros(start + step * i as i64),
            rtt,
            origin(probe),
        ));
        if batch.len() == batch.capacity() {
            store.insert_results(&batch)?;
            batch.clear();
        }
    }
    store.insert_results(&batch)?;
    store.flush()?;
    println!(
        "{total} results stored in {:.1} s",
        built.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let first = page(
        &store,
        &request(&[("limit", "1000")]),
        ScanBudget::rows(PAGE_MAX_SCANNED),
    )?;
    println!(
        "first page of 1000, no filter:           {:>8.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(first.results.len(), 1000);

    // One country in 40: every page reads up to the scan budget.
    let t = Instant::now();
    let (mut pages, mut seen) = (0, 0);
    let mut next = request(&[("probe_country", "AB"), ("limit", "10000")]);
    loop {
        let p = page(&store, &next, ScanBudget::rows(PAGE_MAX_SCANNED))?;
        pages += 1;
        seen += p.results.len();
        match p.next_cursor {
            Some(c) => next.after = Some(c),
            None => break,
        }
    }
    println!(
        "all {seen} results of one country:    {:>8.1} ms in {pages} pages",
        t.elapsed().as_secs_f64() * 1e3
    );

    let t = Instant::now();
    let none = page(
        &store,
        &request(&[("probe_country", "ZZ")]),
        ScanBudget::rows(PAGE_MAX_SCANNED),
    )?;
    println!(
        "a page matching nothing (budget {PAGE_MAX_SCANNED}): {:>8.1} ms, cursor: {}",
        t.elapsed().as_secs_f64() * 1e3,
        none.next_cursor.is_some()
    );

    for group_by in ["country", "asn,day"] {
        let t = Instant::now();
        let request = AggregateRequest::from_pairs([("group_by", group_by)]).unwrap();
        let a = aggregate(&store, &request, ScanBudget::UNLIMITED)?;
        println!(
            "aggregate by {group_by:<8} over {} results: {:>8.1} ms, {} groups, truncated {}",
            a.results,
            t.elapsed().as_secs_f64() * 1e3,
            a.rows.len(),
            a.truncated
        );
    }
    Ok(())
}
