//! Campaign cells in the sled store: per campaign, task and probe, the counts a report needs
//! and the row key of the latest result, kept in the results tree and written in the same
//! `apply_batch` as the results they count (`sled_store::insert_results_logged`), so a
//! report reads one cell per (task, probe) and one row per cell, never every result.
//!
//! Key: `s` ‖ campaign id ‖ task id (8 bytes big-endian each) ‖ probe id (16 hex digits).
//! Value ([`CELL_FORMAT`]): results and reached (8 bytes each), the latest result's row key
//! (start time ‖ result key: it sorts like `store::is_newer`), the number of failure classes
//! (1 byte), then per class its label (1 byte length, ASCII) and count (8 bytes).
//!
//! Stores written before cells existed are given them when opened ([`build_from_index`]):
//! the `c` campaign index is folded in chunks, each chunk's cells and the cursor (`t` → last
//! index key folded) in one atomic batch, so a crash leaves every index entry either counted
//! once or not yet, and the next open continues after the cursor. When the index is done the
//! cursor becomes [`BUILT`] and opening skips the fold.
//!
//! Every stored batch also records the ingest-log head its cells count up to (`u`). A release
//! without cells (a rollback) stores results without counting them and without moving `u`:
//! at the next open `u` is behind the log head, so the cells are deleted and built again.

use super::result_codec::{self, RESULT_KEY_LEN, ROW_KEY_LEN};
use super::sled_db::{BY_CAMPAIGN, CELL, CELLS_CURSOR, CELLS_HEAD, LOG_HEAD, ROW, backend, key_of};
use super::{StoreError, failure_class};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use tracing::info;

/// The only cell value format so far.
const CELL_FORMAT: u8 = 1;
/// The cursor once every campaign index entry is counted in cells.
const BUILT: &[u8] = b"built";
pub(super) const CELL_KEY_LEN: usize = 1 + 8 + 8 + 16;

/// One stored cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cell {
    pub(super) results: u64,
    pub(super) reached: u64,
    pub(super) failures: BTreeMap<String, u64>,
    pub(super) latest: [u8; ROW_KEY_LEN],
}

impl Cell {
    fn new(latest: [u8; ROW_KEY_LEN]) -> Self {
        Self {
            results: 0,
            reached: 0,
            failures: BTreeMap::new(),
            latest,
        }
    }

    /// Counts one new result (`class`: its `failure_class`), stored under `row`.
    fn add(&mut self, class: Option<&str>, row: &[u8; ROW_KEY_LEN]) {
        self.results += 1;
        match class {
            None => self.reached += 1,
            Some(class) => *self.failures.entry(class.to_owned()).or_default() += 1,
        }
        // Row keys sort by start time, then result key: newest by `store::is_newer`.
        if row > &self.latest {
            self.latest = *row;
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 16 + ROW_KEY_LEN + 1 + self.failures.len() * 20);
        out.push(CELL_FORMAT);
        out.extend_from_slice(&self.results.to_be_bytes());
        out.extend_from_slice(&self.reached.to_be_bytes());
        out.extend_from_slice(&self.latest);
        // Classes are a handful of short labels (`ErrorClass::label`, `unreached`).
        let classes: Vec<_> = self
            .failures
            .iter()
            .filter(|(label, _)| label.len() <= usize::from(u8::MAX))
            .take(usize::from(u8::MAX))
            .collect();
        out.push(classes.len() as u8);
        for (label, n) in classes {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
            out.extend_from_slice(&n.to_be_bytes());
        }
        out
    }

    pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("campaign cell: {reason}"),
        };
        let mut reader = Reader { bytes, at: 0 };
        let mut take = |n: usize| reader.take(n).ok_or_else(|| corrupt("truncated"));
        if take(1)? != [CELL_FORMAT] {
            return Err(corrupt("unknown format"));
        }
        let word = |b: &[u8]| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(b);
            u64::from_be_bytes(raw)
        };
        let results = word(take(8)?);
        let reached = word(take(8)?);
        let mut latest = [0u8; ROW_KEY_LEN];
        latest.copy_from_slice(take(ROW_KEY_LEN)?);
        let classes = take(1)?[0];
        let mut failures = BTreeMap::new();
        for _ in 0..classes {
            let len = usize::from(take(1)?[0]);
            let label = std::str::from_utf8(take(len)?)
                .map_err(|_| corrupt("class label is not UTF-8"))?
                .to_owned();
            failures.insert(label, word(take(8)?));
        }
        Ok(Self {
            results,
            reached,
            failures,
            latest,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let part = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(part)
    }
}

/// The key of the cell of (`campaign`, `task`) and the probe of `result_key`.
pub(super) fn cell_key(
    campaign: u64,
    task: u64,
    result_key: &[u8; RESULT_KEY_LEN],
) -> [u8; CELL_KEY_LEN] {
    let mut key = [0u8; CELL_KEY_LEN];
    key[0] = CELL;
    key[1..9].copy_from_slice(&campaign.to_be_bytes());
    key[9..17].copy_from_slice(&task.to_be_bytes());
    key[17..].copy_from_slice(&result_key[..16]);
    key
}

/// The cells one batch changes, each read once from the tree and written once.
#[derive(Default)]
pub(super) struct Changes {
    cells: HashMap<[u8; CELL_KEY_LEN], Cell>,
}

impl Changes {
    /// Counts a new result (`class`: its `failure_class`) stored under `row` in cell `key`.
    pub(super) fn add(
        &mut self,
        tree: &sled::Tree,
        key: [u8; CELL_KEY_LEN],
        class: Option<&str>,
        row: &[u8; ROW_KEY_LEN],
    ) -> Result<(), StoreError> {
        let cell = match self.cells.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let stored = tree.get(key).map_err(backend)?;
                let cell = match stored.map(|bytes| Cell::decode(&key, &bytes)) {
                    Some(Ok(cell)) => cell,
                    // A damaged cell must not stop the probe's results from being stored
                    // (the batch would be refused and resent forever): it starts again from
                    // this result, and its report undercounts until the cells are rebuilt.
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "damaged campaign cell replaced; its counts restart");
                        Cell::new(*row)
                    }
                    None => Cell::new(*row),
                };
                e.insert(cell)
            }
        };
        cell.add(class, row);
        Ok(())
    }

    /// Puts the changed cells in `batch`.
    pub(super) fn write(&self, batch: &mut sled::Batch) {
        for (key, cell) in &self.cells {
            batch.insert(&key[..], cell.encode());
        }
    }
}

/// Folds the `c` campaign index entries not yet counted into cells, `chunk` entries per
/// atomic step; with `max_chunks`, stops after that many (tests: an interrupted build).
/// Returns the entries folded. Runs at open, before any writer.
pub(super) fn build_from_index(
    tree: &sled::Tree,
    chunk: usize,
    max_chunks: Option<usize>,
) -> Result<u64, StoreError> {
    let mut cursor = tree.get(CELLS_CURSOR).map_err(backend)?;
    let log_head = tree.get(LOG_HEAD).map_err(backend)?.unwrap_or_default();
    if cursor.as_deref() == Some(BUILT) {
        match tree.get(CELLS_HEAD).map_err(backend)? {
            Some(counted) if counted == log_head => return Ok(0),
            // Built by a release that kept cells but not this marker: they count everything.
            None => {
                tree.insert(CELLS_HEAD, log_head).map_err(backend)?;
                return Ok(0);
            }
            Some(_) => {
                tracing::warn!(
                    "results were stored by a release without campaign cells (a rollback?): \
                     rebuilding the cells from the campaign index"
                );
                delete_cells(tree, chunk)?;
                cursor = None;
            }
        }
    } else if cursor.is_some()
        && tree.get(CELLS_HEAD).map_err(backend)?.as_deref() != Some(&log_head[..])
    {
        // An interrupted build resumes after its cursor, but campaign index keys sort by
        // campaign and result key, not by time: results stored meanwhile by a release without
        // cells may sort before the cursor and would never be counted. Start again.
        tracing::warn!(
            "results were stored while the campaign cells were half built: building them again"
        );
        delete_cells(tree, chunk)?;
        cursor = None;
    }
    if cursor.is_none() {
        // The log head the build counts up to (nothing stores results while the store opens).
        tree.insert(CELLS_HEAD, log_head.clone()).map_err(backend)?;
    }
    let chunk = chunk.max(1);
    let mut after: Bound<Vec<u8>> = match cursor {
        Some(last) => Bound::Excluded(last.to_vec()),
        None => Bound::Included(vec![BY_CAMPAIGN]),
    };
    let mut folded = 0u64;
    let mut steps = 0usize;
    // A large store takes minutes (one row read per entry): say how far it got.
    let mut reported = std::time::Instant::now();
    loop {
        let entries: Vec<(sled::IVec, sled::IVec)> = tree
            .range::<Vec<u8>, _>((after.clone(), Bound::Unbounded))
            .take_while(|e| {
                e.as_ref()
                    .map_or(true, |(k, _)| k.first() == Some(&BY_CAMPAIGN))
            })
            .take(chunk)
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let Some((last, _)) = entries.last() else {
            // Nothing stores results while the store opens: the log head is still `log_head`.
            let mut done = sled::Batch::default();
            done.insert(CELLS_CURSOR, BUILT);
            done.insert(CELLS_HEAD, log_head.clone());
            tree.apply_batch(done).map_err(backend)?;
            if folded > 0 {
                info!(
                    entries = folded,
                    "campaign cells built from the campaign index"
                );
            }
            return Ok(folded);
        };
        steps += 1;
        if max_chunks.is_some_and(|max| steps > max) {
            return Ok(folded);
        }
        let last = last.to_vec();
        let mut changes = Changes::default();
        for (index, time) in &entries {
            // `c` ‖ campaign ‖ result key → start time.
            let (Some(campaign), Some(result_key)) = (
                index.get(1..9),
                index
                    .get(9..)
                    .and_then(|k| <[u8; RESULT_KEY_LEN]>::try_from(k).ok()),
            ) else {
                return Err(StoreError::Corrupt {
                    key: String::from_utf8_lossy(index).into_owned(),
                    reason: "campaign index key of the wrong length".into(),
                });
            };
            let started_at = result_codec::parse_time(index, time)?;
            let mut row = [0u8; ROW_KEY_LEN];
            row[..8].copy_from_slice(&result_codec::time_bytes(started_at));
            row[8..].copy_from_slice(&result_key);
            // An index entry whose row is gone counts nothing, as reads skip it.
            let Some(value) = tree.get(key_of(ROW, &[&row])).map_err(backend)? else {
                continue;
            };
            let stored = result_codec::decode_value(&row, &value)?;
            let mut campaign_id = [0u8; 8];
            campaign_id.copy_from_slice(campaign);
            let key = cell_key(
                u64::from_be_bytes(campaign_id),
                stored.result.task_id.get(),
                &result_key,
            );
            changes.add(tree, key, failure_class(&stored.result.outcome), &row)?;
        }
        let mut batch = sled::Batch::default();
        changes.write(&mut batch);
        batch.insert(CELLS_CURSOR, last.as_slice());
        tree.apply_batch(batch).map_err(backend)?;
        folded += entries.len() as u64;
        after = Bound::Excluded(last);
        if reported.elapsed() >= std::time::Duration::from_secs(5) {
            info!(
                entries = folded,
                "building campaign cells from the campaign index"
            );
            reported = std::time::Instant::now();
        }
    }
}

/// Deletes every cell in atomic chunks, then the build's cursor. A crash in between leaves
/// the cursor at [`BUILT`] with the stale head, so the next open deletes the rest.
fn delete_cells(tree: &sled::Tree, chunk: usize) -> Result<(), StoreError> {
    loop {
        let mut batch = sled::Batch::default();
        let mut deleted = 0;
        for key in tree.scan_prefix([CELL]).keys().take(chunk.max(1)) {
            batch.remove(key.map_err(backend)?);
            deleted += 1;
        }
        if deleted == 0 {
            return tree.remove(CELLS_CURSOR).map(drop).map_err(backend);
        }
        tree.apply_batch(batch).map_err(backend)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SledStore, Store, StoredResult, fold_cells};
    use crate::testing::ping_v6;
    use sixmap_shared::prefixes::Enrichment;
    use sixmap_shared::{ProbeId, TaskId, UnixMicros};
    use std::time::Duration;

    fn cells(store: &SledStore, campaign: u64) -> Vec<crate::store::CampaignCell> {
        let mut out = Vec::new();
        store
            .campaign_cells(campaign, &mut |c| {
                out.push(c);
                true
            })
            .unwrap();
        out
    }

    /// A damaged cell does not stop ingest: it starts again from the next result.
    #[test]
    fn a_damaged_cell_is_replaced_and_results_are_still_stored() {
        let dir = tempfile::tempdir().unwrap();
        let probe: ProbeId = "00000000000000aa".parse().unwrap();
        let task = TaskId::new(5).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.link_campaign_task(task, 3).unwrap();
        let result = |sequence: u64| {
            let at = UnixMicros(1_790_000_000_000_000 + sequence as i64);
            let mut r = ping_v6(probe.clone(), sequence, at, None, Enrichment::default());
            r.result.task_id = task;
            r
        };
        store.insert_results(&[result(1)]).unwrap();
        let key = store
            .results
            .scan_prefix([CELL])
            .keys()
            .next()
            .unwrap()
            .unwrap();
        store.results.insert(key, &b"\xffdamaged"[..]).unwrap();
        assert_eq!(
            store.insert_results(&[result(2)]).unwrap(),
            vec![crate::store::Inserted::New]
        );
        let read = cells(&store, 3);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].results, 1, "counted again from the next result");
    }

    /// A store written before cells existed (its `c` index but no cells) gets them at open:
    /// built in atomic chunks, resumed after an interruption, never counting an entry twice.
    #[test]
    fn cells_are_built_from_the_campaign_index_resumably() {
        let dir = tempfile::tempdir().unwrap();
        let probes: Vec<ProbeId> = ["00000000000000aa", "0000000000000bbb"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let tasks = [TaskId::new(5).unwrap(), TaskId::new(6).unwrap()];
        let mut results: Vec<StoredResult> = Vec::new();
        for (i, probe) in probes.iter().enumerate() {
            for sequence in 1..=60u64 {
                let rtt = (sequence % 3 != 0).then_some(Duration::from_millis(sequence));
                // Out of key order in time, with ties.
                let at = UnixMicros(1_790_000_000_000_000 + ((sequence * 7) % 11) as i64);
                let mut r = ping_v6(probe.clone(), sequence, at, rtt, Enrichment::default());
                r.result.task_id = tasks[(sequence as usize + i) % 2];
                results.push(r);
            }
        }
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.link_campaign_task(tasks[0], 3).unwrap();
            store.link_campaign_task(tasks[1], 4).unwrap();
            store.insert_results(&results).unwrap();
            // As the previous release left it: no cells, no cursor.
            let mut batch = sled::Batch::default();
            for entry in store.results.scan_prefix([CELL]).keys() {
                batch.remove(entry.unwrap());
            }
            batch.remove(CELLS_CURSOR);
            store.results.apply_batch(batch).unwrap();
            assert!(cells(&store, 3).is_empty());
            // Interrupted after three chunks of seven.
            assert_eq!(build_from_index(&store.results, 7, Some(3)).unwrap(), 21);
            assert_ne!(
                store.results.get(CELLS_CURSOR).unwrap().as_deref(),
                Some(BUILT)
            );
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated().cell_entries, 120 - 21);
        for (campaign, task) in [(3, tasks[0]), (4, tasks[1])] {
            let expected = fold_cells(results.iter().filter(|r| r.result.task_id == task).cloned());
            assert_eq!(expected.len(), 2);
            assert!(cells(&store, campaign) == expected, "campaign {campaign}");
        }
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated().cell_entries, 0, "nothing left to build");
        assert_eq!(cells(&store, 3).iter().map(|c| c.results).sum::<u64>(), 60);
    }

    /// Results stored while a build was interrupted (a rollback between two opens) may sort
    /// before its cursor: the next open builds the cells again from the start.
    #[test]
    fn a_build_interrupted_by_a_rollback_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let probe: ProbeId = "00000000000000aa".parse().unwrap();
        let task = TaskId::new(5).unwrap();
        let results: Vec<StoredResult> = (1..=30u64)
            .map(|sequence| {
                let at = UnixMicros(1_790_000_000_000_000 + sequence as i64);
                let mut r = ping_v6(probe.clone(), sequence, at, None, Enrichment::default());
                r.result.task_id = task;
                r
            })
            .collect();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.link_campaign_task(task, 3).unwrap();
            store.insert_results(&results[..20]).unwrap();
            // As the release before cells left it, then a build interrupted after two chunks.
            let mut batch = sled::Batch::default();
            for entry in store.results.scan_prefix([CELL]).keys() {
                batch.remove(entry.unwrap());
            }
            batch.remove(CELLS_CURSOR);
            batch.remove(CELLS_HEAD);
            store.results.apply_batch(batch).unwrap();
            assert_eq!(build_from_index(&store.results, 5, Some(2)).unwrap(), 10);
            // The old release again: ten more results. (This release also counts them in
            // cells, which only makes a resumed build count them twice; the old release's
            // mark is the head it leaves behind.)
            store.insert_results(&results[20..]).unwrap();
            assert_ne!(
                store.results.get(CELLS_HEAD).unwrap(),
                None,
                "the batch wrote the head"
            );
            store.results.remove(CELLS_HEAD).unwrap();
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.migrated().cell_entries,
            30,
            "built again from the start"
        );
        assert!(cells(&store, 3) == fold_cells(results.iter().cloned()));
    }

    /// A rollback to a release without cells, which stores campaign results without counting
    /// them, then an upgrade: the cells are rebuilt at open and count every result once.
    #[test]
    fn cells_are_rebuilt_after_results_stored_by_a_release_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let probe: ProbeId = "00000000000000aa".parse().unwrap();
        let task = TaskId::new(5).unwrap();
        let results: Vec<StoredResult> = (1..=40u64)
            .map(|sequence| {
                let at = UnixMicros(1_790_000_000_000_000 + sequence as i64);
                let rtt = (sequence % 4 != 0).then_some(Duration::from_millis(sequence));
                let mut r = ping_v6(probe.clone(), sequence, at, rtt, Enrichment::default());
                r.result.task_id = task;
                r
            })
            .collect();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.link_campaign_task(task, 3).unwrap();
            store.insert_results(&results[..25]).unwrap();
            // What the cells and their head were after the first 25.
            let before: Vec<(sled::IVec, sled::IVec)> = store
                .results
                .scan_prefix([CELL])
                .chain(
                    store
                        .results
                        .get(CELLS_HEAD)
                        .transpose()
                        .map(|v| v.map(|v| (sled::IVec::from(CELLS_HEAD), v))),
                )
                .collect::<Result<_, _>>()
                .unwrap();
            // The old release stores the other 15: rows, index and log, and no cells.
            store.insert_results(&results[25..]).unwrap();
            for (key, value) in before {
                store.results.insert(key, value).unwrap();
            }
            assert_eq!(cells(&store, 3)[0].results, 25, "the rollback's undercount");
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert!(cells(&store, 3) == fold_cells(results.iter().cloned()));
        assert_eq!(store.migrated().cell_entries, 40);
        drop(store);
        // Counted: the next open builds nothing.
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated().cell_entries, 0);
        assert_eq!(cells(&store, 3)[0].results, 40);
    }

    #[test]
    fn a_cell_reads_back_as_written_and_a_damaged_one_is_refused() {
        let mut cell = Cell::new([7; ROW_KEY_LEN]);
        cell.add(Some("network"), &[9; ROW_KEY_LEN]);
        cell.add(None, &[8; ROW_KEY_LEN]);
        cell.add(Some("unreached"), &[1; ROW_KEY_LEN]);
        let bytes = cell.encode();
        let back = Cell::decode(b"k", &bytes).unwrap();
        assert_eq!(back, cell);
        assert_eq!(
            (back.results, back.reached, back.latest),
            (3, 1, [9; ROW_KEY_LEN])
        );
        for cut in 0..bytes.len() {
            assert!(Cell::decode(b"k", &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// How long opening a store of the previous release takes to build its cells; run with
    /// `cargo test -p sixmap-collector --lib cells_build_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark: prints figures"]
    fn cells_build_cost() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let task = TaskId::new(5).unwrap();
        store.link_campaign_task(task, 1).unwrap();
        let probes: Vec<ProbeId> = (0..6).map(|_| ProbeId::random().unwrap()).collect();
        for probe in &probes {
            for first in (1..=33_300u64).step_by(100) {
                let batch: Vec<StoredResult> = (first..first + 100)
                    .map(|sequence| {
                        let at = UnixMicros(1_790_000_000_000_000 + sequence as i64);
                        let mut r =
                            ping_v6(probe.clone(), sequence, at, None, Enrichment::default());
                        r.result.task_id = task;
                        r
                    })
                    .collect();
                store.insert_results(&batch).unwrap();
            }
        }
        let mut batch = sled::Batch::default();
        for entry in store.results.scan_prefix([CELL]).keys() {
            batch.remove(entry.unwrap());
        }
        batch.remove(CELLS_CURSOR);
        store.results.apply_batch(batch).unwrap();
        let started = std::time::Instant::now();
        let folded = build_from_index(&store.results, crate::store::migrate::CHUNK, None).unwrap();
        eprintln!(
            "cells built from {folded} campaign index entries in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        assert_eq!(
            cells(&store, 1).iter().map(|c| c.results).sum::<u64>(),
            folded
        );
    }
}
