//! The export's read of the store: rows read in order on one thread, decoded and filtered on
//! several, handed to the writer in order on the caller's thread.
//!
//! Decoding a stored row costs about twice what writing it as JSON does, so with one thread
//! reading and decoding, an export ran at the pace of its decoding while the writer's core
//! waited (issue #18: 222k rows/s against the JSONL writer's 630k).
//!
//! Chunks travel with credits: the writer hands each chunk's emptied buffers back once it has
//! written it, and the reader starts a chunk only with buffers in hand. So at most
//! [`IN_FLIGHT`] chunks exist at once (read, being decoded, or waiting their turn), memory is
//! bounded whatever the threads' pace, and the buffers are reused instead of reallocated.

use super::ExportError;
use crate::limits::readers;
use crate::store::{ResultFilter, ScanPlan, Store, StoreError, StoredResult, Undecoded};
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

/// Results per chunk.
const CHUNK: usize = 512;
/// Chunks alive at once, each `CHUNK` undecoded rows and up to `CHUNK` results.
const IN_FLIGHT: usize = 8;
/// Decoding threads at most (the machine's cores, up to this).
const MAX_DECODERS: usize = 4;

/// A chunk's buffers: rows as read, and the results the filter kept.
type Buffers = (Vec<Undecoded>, Vec<StoredResult>);
/// A chunk in the order it was read, its rows or its results.
type Numbered<T> = (u64, T);
type Decoded = Numbered<(Vec<Undecoded>, Result<Vec<StoredResult>, StoreError>)>;

/// Calls `take` with the results `filter` selects, chunk by chunk, in (start time, key)
/// order, until it fails or the results end. Rows are decoded on up to [`MAX_DECODERS`]
/// threads. The reading is part of the calling reader job (`limits::readers`): it stops when
/// the request goes.
pub(super) fn in_order(
    store: &dyn Store,
    filter: &ResultFilter,
    take: &mut dyn FnMut(&[StoredResult]) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let plan = ScanPlan::new(store, filter, None)?;
    let decoders = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_DECODERS);
    let (credit_tx, credit_rx) = sync_channel::<Buffers>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        credit_tx
            .send((Vec::with_capacity(CHUNK), Vec::with_capacity(CHUNK)))
            .map_err(|_| StoreError::Backend("the export's credits were dropped".into()))?;
    }
    // Never full: a chunk is sent only with one of the IN_FLIGHT credits.
    let (rows_tx, rows_rx) = sync_channel::<Numbered<Buffers>>(IN_FLIGHT);
    let rows_rx = Arc::new(Mutex::new(rows_rx));
    let (done_tx, done_rx) = sync_channel::<Decoded>(IN_FLIGHT);
    let job = readers::job();
    std::thread::scope(|scope| {
        let plan = &plan;
        let reader = {
            let job = job.clone();
            scope.spawn(move || job.enter(|| read(store, plan, &credit_rx, &rows_tx)))
        };
        let decoders: Vec<_> = (0..decoders)
            .map(|_| {
                let (job, rows_rx, done_tx) = (job.clone(), rows_rx.clone(), done_tx.clone());
                scope.spawn(move || job.enter(|| decode(plan, &rows_rx, &done_tx)))
            })
            .collect();
        // Only the decoders hold senders now: the loop below ends when they all have.
        drop((done_tx, rows_rx));
        let written = write_in_order(&done_rx, &credit_tx, take);
        // Ends the reader and the decoders at their next send or credit if this stopped early.
        drop((done_rx, credit_tx));
        let mut outcome = written;
        for decoder in decoders {
            if decoder.join().is_err() && outcome.is_ok() {
                outcome = Err(panicked("decoder").into());
            }
        }
        let read = reader.join().unwrap_or_else(|_| Err(panicked("reader")));
        // The writer's failure first: it is why the reader may have stopped.
        outcome.and(read.map_err(ExportError::from))
    })
}

fn panicked(which: &str) -> StoreError {
    StoreError::Backend(format!("the export's store {which} panicked"))
}

/// The reader thread: rows in order, in chunks, each started with a credit.
fn read(
    store: &dyn Store,
    plan: &ScanPlan<'_>,
    credits: &Receiver<Buffers>,
    rows: &SyncSender<Numbered<Buffers>>,
) -> Result<(), StoreError> {
    let mut chunk: Option<Buffers> = None;
    let mut number = 0u64;
    let mut open = true;
    let mut gone = false;
    store.scan_undecoded_between(plan.from, plan.to, &mut |row| {
        if readers::cancelled() {
            gone = true;
            return false;
        }
        if chunk.is_none() {
            // None: the writer stopped.
            chunk = credits.recv().ok();
        }
        let Some((undecoded, _)) = chunk.as_mut() else {
            open = false;
            return false;
        };
        undecoded.push(row);
        if undecoded.len() == CHUNK
            && let Some(full) = chunk.take()
        {
            open = rows.send((number, full)).is_ok();
            number += 1;
        }
        open
    })?;
    if gone {
        return Err(StoreError::Cancelled);
    }
    if open && let Some(last) = chunk.filter(|(rows, _)| !rows.is_empty()) {
        // The writer may have stopped meanwhile; then nobody wants the rest.
        let _ = rows.send((number, last));
    }
    Ok(())
}

/// A decoder thread: takes the next chunk read, decodes its rows and keeps what the filter
/// selects.
fn decode(
    plan: &ScanPlan<'_>,
    rows: &Mutex<Receiver<Numbered<Buffers>>>,
    done: &SyncSender<Decoded>,
) {
    loop {
        // The lock is held only while waiting for the next chunk, never while decoding.
        let next = rows.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((number, (mut undecoded, mut results))) = next else {
            return;
        };
        // A panic decoding one row becomes that chunk's error: the writer waits for every
        // chunk by number, so a chunk that never came would hold the export forever.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for row in undecoded.drain(..) {
                if readers::cancelled() {
                    return Err(StoreError::Cancelled);
                }
                let stored = row.decode()?;
                if plan.selects(&stored) {
                    results.push(stored);
                }
            }
            Ok(())
        }))
        .unwrap_or_else(|_| Err(panicked("decoder")));
        undecoded.clear();
        if done
            .send((number, (undecoded, decoded.map(|()| results))))
            .is_err()
        {
            return;
        }
    }
}

/// The caller's thread: chunks put back in reading order, each given to `take`, its buffers
/// then returned as a credit.
fn write_in_order(
    done: &Receiver<Decoded>,
    credits: &SyncSender<Buffers>,
    take: &mut dyn FnMut(&[StoredResult]) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    // At most IN_FLIGHT chunks wait here: the reader starts no more.
    let mut waiting: BTreeMap<u64, (Vec<Undecoded>, Vec<StoredResult>)> = BTreeMap::new();
    let mut next = 0u64;
    for (number, (undecoded, decoded)) in done {
        waiting.insert(number, (undecoded, decoded?));
        while let Some((undecoded, mut results)) = waiting.remove(&next) {
            take(&results)?;
            results.clear();
            // The reader may have finished: a credit nobody takes is fine.
            let _ = credits.send((undecoded, results));
            next += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::samples;
    use crate::store::{KindFilter, SledStore, scan_filtered};
    use sixmap_shared::{ResultKey, UnixMicros};

    fn store_of(results: usize) -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let start = UnixMicros(1_772_323_200_000_000);
        let results: Vec<_> = (0..results as u64)
            .map(|i| samples::sample(i, 7, start, 1_000))
            .collect();
        store.insert_results(&results).unwrap();
        (dir, store)
    }

    fn keys_of_plain_scan(store: &SledStore, filter: &ResultFilter) -> Vec<ResultKey> {
        let mut keys = Vec::new();
        scan_filtered(store, filter, None, &mut |stored| {
            keys.push(stored.result.key);
            true
        })
        .unwrap();
        keys
    }

    /// More chunks than are ever in flight, through several decoders, with a filter that
    /// leaves chunks partly or wholly empty: the plain scan's results in its order.
    #[test]
    fn results_come_in_scan_order_with_the_filter_applied() {
        let (_dir, store) = store_of(IN_FLIGHT * CHUNK * 2 + 77);
        let failed = ResultFilter {
            kind: Some(KindFilter::Failed),
            ..ResultFilter::default()
        };
        for filter in [ResultFilter::default(), failed] {
            let expected = keys_of_plain_scan(&store, &filter);
            assert!(!expected.is_empty());
            let mut got = Vec::new();
            in_order(&store, &filter, &mut |chunk| {
                got.extend(chunk.iter().map(|stored| stored.result.key.clone()));
                Ok(())
            })
            .unwrap();
            assert_eq!(got.len(), expected.len());
            assert!(got == expected, "same results, same order");
        }
    }

    /// A writer that fails ends the export with its error; no chunk is offered after it
    /// and the reader and decoders stop (the call returns).
    #[test]
    fn a_failing_writer_stops_the_export() {
        let (_dir, store) = store_of(IN_FLIGHT * CHUNK * 3);
        let mut calls = 0;
        let error = in_order(&store, &ResultFilter::default(), &mut |_| {
            calls += 1;
            if calls == 2 {
                return Err(std::io::Error::other("disk full").into());
            }
            Ok(())
        })
        .unwrap_err();
        assert!(error.to_string().contains("disk full"), "{error}");
        assert_eq!(calls, 2);
    }

    #[test]
    fn an_empty_selection_writes_nothing() {
        let (_dir, store) = store_of(10);
        let none = ResultFilter {
            to: Some(UnixMicros(0)),
            ..ResultFilter::default()
        };
        in_order(&store, &none, &mut |chunk| {
            panic!("{} results offered", chunk.len())
        })
        .unwrap();
    }
}
