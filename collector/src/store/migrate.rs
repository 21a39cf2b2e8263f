//! Moves results of the earlier sled layout into the time-ordered one (`sled_store`).
//!
//! The earlier layout: `results` result key → JSON `StoredResult` (format byte 1),
//! `results_by_time` start time ‖ result key → (), `campaign_results` campaign id ‖ result
//! key → (), and for a while `ingest_log` (`p` ‖ position → result key, `h` → head).
//!
//! Each step moves one chunk in one sled transaction that writes the new entries and deletes
//! the old ones together, so a crash at any point leaves every row in exactly one layout and
//! the next start continues with what is left: nothing is lost or moved twice. Campaign
//! index entries go first, while the rows they point at can still be read for their start
//! times. The old trees are dropped once empty. Migrated rows are not put in the ingest log
//! (figures are rebuilt from the raw results after a migration).

use super::result_codec::{self, RESULT_KEY_LEN};
pub use super::sled_db::Migrated;
use super::sled_db::{BY_CAMPAIGN, BY_KEY, LOG_HEAD, ROW, backend, decode, key_of};
use super::sled_log::read_log_head;
use super::{StoreError, StoredResult};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::time::{Duration, Instant};
use tracing::info;

/// Rows moved per atomic step.
pub(super) const CHUNK: usize = 2_000;

const OLD_RESULTS: &str = "results";
const OLD_BY_TIME: &str = "results_by_time";
const OLD_CAMPAIGN: &str = "campaign_results";
const OLD_LOG: &str = "ingest_log";
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

/// Migrates what is left of the earlier layout into `new` (the `results_v2` tree), in
/// chunks of `chunk` rows; with `max_chunks`, stops after that many (tests: an interrupted
/// migration).
pub(super) fn run(
    db: &sled::Db,
    new: &sled::Tree,
    chunk: usize,
    max_chunks: Option<usize>,
) -> Result<Migrated, StoreError> {
    let names = db.tree_names();
    let present = |name: &str| names.iter().any(|t| t.as_ref() == name.as_bytes());
    let mut done = Migrated::default();
    if ![OLD_RESULTS, OLD_BY_TIME, OLD_CAMPAIGN, OLD_LOG]
        .into_iter()
        .any(present)
    {
        done.complete = true;
        return Ok(done);
    }
    let chunk = chunk.max(1);
    let tree = |name: &str| db.open_tree(name).map_err(backend);
    let (results, by_time, campaign, log) = (
        tree(OLD_RESULTS)?,
        tree(OLD_BY_TIME)?,
        tree(OLD_CAMPAIGN)?,
        tree(OLD_LOG)?,
    );
    // Positions of the first ingest log go on in the new one: they never go back.
    let old_head = read_log_head_of_old(&log)?;
    if old_head > read_log_head(new)? {
        new.insert(LOG_HEAD, &old_head.to_be_bytes())
            .map_err(backend)?;
    }
    let total = results.len();
    if total > 0 {
        info!(
            results = total,
            "migrating results to the time-ordered layout"
        );
    }
    let started = Instant::now();
    let mut reported = Instant::now();
    let mut steps = 0usize;
    let mut budget_left = || {
        steps += 1;
        max_chunks.is_none_or(|max| steps <= max)
    };

    // 1. The campaign index, while the rows it points at still tell their start times.
    loop {
        let entries: Vec<sled::IVec> = campaign
            .iter()
            .keys()
            .take(chunk)
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        if entries.is_empty() {
            break;
        }
        if !budget_left() {
            return Ok(done);
        }
        let mut moves = Vec::with_capacity(entries.len());
        for entry in entries {
            let split = entry.len().saturating_sub(RESULT_KEY_LEN);
            let key = entry.get(split..).unwrap_or_default();
            let time = match results.get(key).map_err(backend)? {
                Some(value) => Some(result_codec::time_bytes(
                    decode::<StoredResult>(key, &value)?.result.started_at,
                )),
                None => new
                    .get(key_of(BY_KEY, &[key]))
                    .map_err(backend)?
                    .and_then(|t| <[u8; 8]>::try_from(t.as_ref()).ok()),
            };
            // No row in either layout: an index entry of nothing, dropped.
            let target = time.map(|t| (key_of(BY_CAMPAIGN, &[&entry]), t));
            moves.push((entry, target));
        }
        (&campaign, new)
            .transaction(|(campaign, new)| {
                for (old, target) in &moves {
                    campaign.remove(old)?;
                    if let Some((key, time)) = target {
                        new.insert(key.as_slice(), &time[..])?;
                    }
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_error)?;
        done.campaign_entries += moves.len() as u64;
    }

    // 2. The rows, with their time index entries.
    loop {
        let rows: Vec<(sled::IVec, sled::IVec)> = results
            .iter()
            .take(chunk)
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        if rows.is_empty() {
            break;
        }
        if !budget_left() {
            return Ok(done);
        }
        let mut moves = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            let stored: StoredResult = decode(&key, &value)?;
            let time = result_codec::time_bytes(stored.result.started_at);
            let old_time_key = [&time[..], &key[..]].concat();
            let row = key_of(ROW, &[&time, &key]);
            moves.push((
                key,
                old_time_key,
                row,
                time,
                result_codec::encode_value(&stored),
            ));
        }
        (&results, &by_time, new)
            .transaction(|(results, by_time, new)| {
                for (key, old_time_key, row, time, value) in &moves {
                    results.remove(key)?;
                    by_time.remove(old_time_key.as_slice())?;
                    let index = key_of(BY_KEY, &[key]);
                    // Already in the new layout (written twice): the new row stays.
                    if new.get(index.as_slice())?.is_none() {
                        new.insert(index, &time[..])?;
                        new.insert(row.as_slice(), value.as_slice())?;
                    }
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_error)?;
        done.results += moves.len() as u64;
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            let rate = done.results as f64 / started.elapsed().as_secs_f64().max(1e-3);
            info!(
                moved = done.results,
                of = total,
                per_second = rate as u64,
                "migrating results"
            );
        }
    }

    // 3. What is left are index entries without rows; the old trees go.
    db.flush().map_err(backend)?;
    for name in [OLD_BY_TIME, OLD_CAMPAIGN, OLD_LOG, OLD_RESULTS] {
        db.drop_tree(name).map_err(backend)?;
    }
    db.flush().map_err(backend)?;
    done.complete = true;
    if total > 0 {
        info!(
            results = done.results,
            campaign_entries = done.campaign_entries,
            seconds = started.elapsed().as_secs_f64(),
            "results migrated to the time-ordered layout"
        );
    }
    Ok(done)
}

/// The newest position of the first ingest log (`p` ‖ position entries, `h` → head).
fn read_log_head_of_old(log: &sled::Tree) -> Result<u64, StoreError> {
    let word = |bytes: &[u8]| <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).ok();
    let recorded = log
        .get(b"h")
        .map_err(backend)?
        .and_then(|v| word(&v))
        .unwrap_or(0);
    let last = log
        .scan_prefix(b"p")
        .keys()
        .next_back()
        .transpose()
        .map_err(backend)?
        .and_then(|k| word(k.get(1..).unwrap_or_default()))
        .unwrap_or(0);
    Ok(recorded.max(last))
}

#[cfg(test)]
mod tests {
    use super::super::{ResultQuery, SledStore, Store};
    use super::*;
    use sixmap_shared::prefixes::Enrichment;
    use sixmap_shared::{ProbeId, TaskId, UnixMicros};

    /// The writer of the earlier layout, as the release before this one stored results:
    /// JSON rows by result key, a time index, a campaign index written with the row.
    fn write_old_layout(dir: &std::path::Path, results: &[StoredResult], campaign_task: TaskId) {
        let db =
            super::super::sled_store::open_waiting_for_lock(dir, super::super::DEFAULT_CACHE_MB)
                .unwrap();
        let rows = db.open_tree(OLD_RESULTS).unwrap();
        let by_time = db.open_tree(OLD_BY_TIME).unwrap();
        let campaign = db.open_tree(OLD_CAMPAIGN).unwrap();
        db.open_tree("campaign_tasks")
            .unwrap()
            .insert(campaign_task.get().to_be_bytes(), &7u64.to_be_bytes())
            .unwrap();
        for r in results {
            let key = result_codec::result_key_bytes(&r.result.key);
            rows.insert(key, super::super::sled_db::encode(r).unwrap())
                .unwrap();
            let time = result_codec::time_bytes(r.result.started_at);
            by_time.insert([&time[..], &key[..]].concat(), &[]).unwrap();
            if r.result.task_id == campaign_task {
                campaign
                    .insert([&7u64.to_be_bytes()[..], &key[..]].concat(), &[])
                    .unwrap();
            }
        }
        db.flush().unwrap();
    }

    /// The writer of the layout before index blocks, as the release before this one stored
    /// results: time-ordered compact rows, one `k` index entry per result, campaign entries.
    fn write_per_result_index_layout(
        dir: &std::path::Path,
        results: &[StoredResult],
        campaign_task: TaskId,
    ) {
        let db =
            super::super::sled_store::open_waiting_for_lock(dir, super::super::DEFAULT_CACHE_MB)
                .unwrap();
        let tree = db.open_tree(super::super::sled_db::RESULTS_TREE).unwrap();
        db.open_tree("campaign_tasks")
            .unwrap()
            .insert(campaign_task.get().to_be_bytes(), &7u64.to_be_bytes())
            .unwrap();
        for r in results {
            let key = result_codec::result_key_bytes(&r.result.key);
            let time = result_codec::time_bytes(r.result.started_at);
            tree.insert(key_of(BY_KEY, &[&key]), &time).unwrap();
            tree.insert(key_of(ROW, &[&time, &key]), result_codec::encode_value(r))
                .unwrap();
            if r.result.task_id == campaign_task {
                tree.insert(key_of(BY_CAMPAIGN, &[&7u64.to_be_bytes(), &key]), &time)
                    .unwrap();
            }
        }
        db.flush().unwrap();
    }

    #[test]
    fn a_store_with_one_index_entry_per_result_is_converted_to_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let (results, task) = old_results();
        write_per_result_index_layout(dir.path(), &results, task);
        // Interrupted after some chunks (each one atomic) without a flush, as by a crash.
        {
            let db = super::super::sled_store::open_waiting_for_lock(
                dir.path(),
                super::super::DEFAULT_CACHE_MB,
            )
            .unwrap();
            let tree = db.open_tree(super::super::sled_db::RESULTS_TREE).unwrap();
            let done =
                super::super::sled_index::convert_per_result_entries(&tree, 17, Some(5)).unwrap();
            assert_eq!(done, 85);
            assert_eq!(tree.scan_prefix([BY_KEY]).count(), 300 - 85);
            assert!(tree.scan_prefix([b'b']).count() > 0);
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated().index_entries, 300 - 85);
        assert_eq!(store.migrated().results, 0);
        assert_eq!(
            store.results.scan_prefix([BY_KEY]).count(),
            0,
            "no entry left"
        );
        check_migrated(&store, &results);
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated().index_entries, 0, "nothing left to convert");
        check_migrated(&store, &results);
    }

    /// 300 results of 3 probes with times out of key order, every third enriched, every
    /// fifth of the campaign's task.
    fn old_results() -> (Vec<StoredResult>, TaskId) {
        let campaign_task = TaskId::new(42).unwrap();
        let probes: Vec<ProbeId> = ["00000000000000aa", "0000000000000bbb", "00000000000ccccc"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        let results = (0..300u64)
            .map(|i| {
                let enrichment = Enrichment {
                    asn: (i % 3 == 0).then_some(64_500 + i as u32),
                    as_name: (i % 6 == 0).then(|| format!("AS name {i}")),
                    country: (i % 3 == 0).then(|| "NL".parse().unwrap()),
                };
                let mut r = crate::testing::ping_v6(
                    probes[(i % 3) as usize].clone(),
                    i + 1,
                    UnixMicros(1_000_000 * ((i * 7919) % 300) as i64 - 5),
                    (i % 4 != 0).then(|| std::time::Duration::from_micros(100 + i)),
                    enrichment,
                );
                if i % 3 != 0 {
                    r.probe_origin = None;
                    r.target_origin = None;
                }
                if i % 5 == 0 {
                    r.result.task_id = campaign_task;
                }
                r
            })
            .collect();
        (results, campaign_task)
    }

    fn everything(store: &SledStore) -> Vec<StoredResult> {
        let mut all = Vec::new();
        store
            .scan_results_between(UnixMicros(i64::MIN), UnixMicros(i64::MAX), &mut |r| {
                all.push(r);
                true
            })
            .unwrap();
        all
    }

    fn check_migrated(store: &SledStore, expected: &[StoredResult]) {
        let mut by_time = expected.to_vec();
        by_time.sort_by(|a, b| {
            (a.result.started_at, &a.result.key).cmp(&(b.result.started_at, &b.result.key))
        });
        assert_eq!(
            everything(store),
            by_time,
            "every row, identical, in time order"
        );
        let mut campaign = Vec::new();
        store
            .campaign_results(7, &mut |r| {
                campaign.push(r);
                true
            })
            .unwrap();
        let mut in_campaign: Vec<_> = expected
            .iter()
            .filter(|r| r.result.task_id.get() == 42)
            .cloned()
            .collect();
        in_campaign.sort_by(|a, b| a.result.key.cmp(&b.result.key));
        assert_eq!(campaign, in_campaign);
        let probe: ProbeId = "0000000000000bbb".parse().unwrap();
        let newest = store
            .results(&ResultQuery {
                probe: Some(probe.clone()),
                limit: 3,
            })
            .unwrap();
        let sequences: Vec<u64> = newest.iter().map(|r| r.result.key.sequence).collect();
        assert_eq!(sequences, vec![299, 296, 293]);
        assert_eq!(
            store.ingest_log_head().unwrap(),
            0,
            "migrated rows are not logged"
        );
        // Ingest after the migration: resends of migrated results are duplicates.
        let again = store.insert_results(&expected[..2]).unwrap();
        assert_eq!(again, vec![super::super::Inserted::Duplicate; 2]);
        let names = store.db.tree_names();
        for old in [OLD_RESULTS, OLD_BY_TIME, OLD_CAMPAIGN] {
            assert!(
                !names.iter().any(|n| n.as_ref() == old.as_bytes()),
                "{old} is dropped"
            );
        }
    }

    #[test]
    fn a_store_of_the_earlier_layout_reads_back_identical_after_migration() {
        let dir = tempfile::tempdir().unwrap();
        let (results, task) = old_results();
        write_old_layout(dir.path(), &results, task);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.migrated(),
            Migrated {
                results: 300,
                campaign_entries: 60,
                complete: true,
                index_entries: 300,
                cell_entries: 60,
            }
        );
        check_migrated(&store, &results);
        drop(store);
        // Opening again has nothing left to do.
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.migrated().results, 0);
        check_migrated(&store, &results);
    }

    #[test]
    fn an_interrupted_migration_resumes_without_loss_or_double() {
        let dir = tempfile::tempdir().unwrap();
        let (results, task) = old_results();
        write_old_layout(dir.path(), &results, task);
        // Stopped after a few chunks, mid-campaign-index and then mid-rows, without the
        // final flush: as after a crash, each finished chunk is whole.
        for stop_after in [2, 9] {
            // The previous round's handle lets go of the lock from sled's background thread.
            let db = super::super::sled_store::open_waiting_for_lock(
                dir.path(),
                super::super::DEFAULT_CACHE_MB,
            )
            .unwrap();
            let new = db.open_tree(super::super::sled_db::RESULTS_TREE).unwrap();
            let partial = run(&db, &new, 17, Some(stop_after)).unwrap();
            assert!(!partial.complete);
            db.flush().unwrap();
            let old = db.open_tree(OLD_RESULTS).unwrap().len();
            let moved = new.scan_prefix([ROW]).count();
            assert_eq!(old + moved, 300, "every row in exactly one layout");
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert!(store.migrated().complete);
        check_migrated(&store, &results);
    }
}
