//! The embedded store: one sled directory, no server.
//!
//! Layout (one tree each): `probes` id → JSON record; `tasks` definition → task id;
//! `assignments` probe id ‖ task id → (); `losses` loss key → JSON (probes' records of
//! undelivered results); `tag_history` probe id ‖ time ‖ counter → JSON tag event; `rollups`
//! country ‖ '/' ‖ day → JSON daily figures, and '@' ‖ day ‖ '/' ‖ country → empty (the
//! day's index); `campaigns` campaign id → JSON record;
//! `campaign_tasks` task id → campaign id (also held in memory).
//!
//! Results live in one tree, `results_v2`, so that a result, its indexes and its ingest log
//! entry are written by one atomic `apply_batch` (no transaction over several trees); a
//! one-byte prefix keeps each part a contiguous range (row keys and values: `result_codec`):
//! - `r` ‖ start time ‖ result key → the result (format byte 2: enrichment, then the
//!   protobuf): the rows themselves in time order, so scans by time read sequentially;
//! - `b` ‖ probe ‖ boot epoch ‖ sequence / 64 → the start times of those results stored: the
//!   dedup index, and per probe (blocks sort by probe, boot epoch, sequence) the newest-first
//!   index (`sled_index`; stores with one `k` ‖ result key entry per result are converted
//!   when opened);
//! - `c` ‖ campaign id ‖ result key → start time: the results of a campaign's tasks;
//! - `s` ‖ campaign id ‖ task id ‖ probe → the campaign cell: results, reached, failures by
//!   class and the latest row key, written with the results it counts (`sled_cells`); `t` →
//!   how far cells were built from the `c` index of a store written before them;
//! - `l` ‖ log position → the ingest log, every new result once, in commit order: one entry
//!   per stored batch holding its new rows (`sled_log`);
//! - `h` → the newest log position ever given (kept when the log is pruned).
//!
//! Stores of the earlier layout (`results` as JSON + `results_by_time`) are migrated when
//! opened (`migrate`). Other values start with a format byte (1 = JSON).

use super::Undecoded;
use super::result_codec::{self, RESULT_KEY_LEN, ROW_KEY_LEN};
use super::sled_db::{
    self, AuthTrees, BY_CAMPAIGN, CELLS_HEAD, DEFAULT_CACHE_MB, FigureTrees, LOG_HEAD, Migrated,
    RESULTS_TREE, ROW, SledStore, backend, decode, encode, key_of, log_key, poisoned, u64_of,
};
use super::sled_log::read_log_head;
use super::{CampaignCell, failure_class};
use super::{Inserted, ProbeRecord, ResultQuery, Store, StoreError, StoredResult, TagEvent};
use super::{sled_cells, sled_index, sled_log};
use sixmap_shared::health::OutboxLoss;
use sixmap_shared::{ProbeId, ResultKey, TaskId, UnixMicros};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

/// The key of a loss record (the same shape as a result key).
fn loss_key(key: &ResultKey) -> [u8; RESULT_KEY_LEN] {
    result_codec::result_key_bytes(key)
}

fn assignment_key(probe: &ProbeId, task: TaskId) -> Vec<u8> {
    let mut bytes = probe.as_str().as_bytes().to_vec();
    bytes.extend_from_slice(&task.get().to_be_bytes());
    bytes
}

/// How long opening waits for the store's file lock: a handle of this process that was just
/// dropped releases it from sled's background thread a moment later (a restart in-process,
/// tests reopening a store). Another process holding it is refused after this wait.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn open_waiting_for_lock(dir: &Path, cache_mb: u64) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_mb.saturating_mul(1024 * 1024))
            .open();
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot open store at {}: {e}",
                    dir.display()
                )));
            }
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with the default cache, migrating an earlier
    /// layout first.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_MB)
    }

    /// [`SledStore::open`] with sled's page cache bounded to `cache_mb` MiB.
    pub fn open_with_cache(dir: &Path, cache_mb: u64) -> Result<Self, StoreError> {
        let db = open_waiting_for_lock(dir, cache_mb)?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let results = tree(RESULTS_TREE)?;
        let mut migrated = super::migrate::run(&db, &results, super::migrate::CHUNK, None)?;
        migrated.index_entries =
            sled_index::convert_per_result_entries(&results, super::migrate::CHUNK, None)?;
        migrated.cell_entries =
            sled_cells::build_from_index(&results, super::migrate::CHUNK, None)?;
        let head = read_log_head(&results)?;
        let campaign_tasks = tree("campaign_tasks")?;
        let mut campaign_of = HashMap::new();
        for entry in campaign_tasks.iter() {
            let (task, campaign) = entry.map_err(backend)?;
            campaign_of.insert(u64_of(&task, &task)?, u64_of(&task, &campaign)?);
        }
        Ok(Self {
            probes: tree("probes")?,
            tasks: tree("tasks")?,
            assignments: tree("assignments")?,
            losses: tree("losses")?,
            tag_history: tree("tag_history")?,
            rollups: {
                let rollups = tree("rollups")?;
                index_rollup_days(&rollups)?;
                rollups
            },
            campaigns: tree("campaigns")?,
            campaign_tasks,
            results,
            writer: Arc::new(Mutex::new(head)),
            campaign_of: Arc::new(RwLock::new(campaign_of)),
            migrated,
            auth: AuthTrees::open(&db)?,
            figures: FigureTrees::open(&db)?,
            db,
        })
    }

    /// What opening the store moved from the earlier layout (`sixmap-collector migrate`).
    pub fn migrated(&self) -> Migrated {
        self.migrated
    }

    /// The row of a result, by its row key (time ‖ result key).
    fn row(&self, row: &[u8]) -> Result<Option<StoredResult>, StoreError> {
        self.results
            .get(key_of(ROW, &[row]))
            .map_err(backend)?
            .map(|value| result_codec::decode_value(row, &value))
            .transpose()
    }

    /// The row an index entry (`prefix` ‖ ... ‖ result key → start time) points at.
    fn indexed(&self, index_key: &[u8], time: &[u8]) -> Result<Option<StoredResult>, StoreError> {
        let start = index_key.len().saturating_sub(RESULT_KEY_LEN);
        let result_key = index_key.get(start..).unwrap_or_default();
        let started_at = result_codec::parse_time(index_key, time)?;
        let mut row = [0u8; ROW_KEY_LEN];
        row[..8].copy_from_slice(&result_codec::time_bytes(started_at));
        row[8..].copy_from_slice(result_key);
        self.row(&row)
    }
}

/// Marks a rollups tree whose every rollup has its `@day/key` entry (`put_rollup`).
const ROLLUP_DAYS_INDEXED: &[u8] = b"#days indexed";

/// Gives the rollups stored before the day index existed their `@day/key` entries, once per
/// store (idempotent, so an interrupted run is simply run again at the next open): without
/// them `?date=` of an older day would find no country.
fn index_rollup_days(rollups: &sled::Tree) -> Result<(), StoreError> {
    if rollups.contains_key(ROLLUP_DAYS_INDEXED).map_err(backend)? {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    let mut indexed = 0usize;
    for key in rollups.iter().keys() {
        let key = key.map_err(backend)?;
        if matches!(key.first(), Some(b'@' | b'#')) {
            continue;
        }
        let text = String::from_utf8_lossy(&key);
        if let Some((name, day)) = text.rsplit_once('/') {
            batch.insert(format!("@{day}/{name}").as_bytes(), &[][..]);
            indexed += 1;
        }
    }
    batch.insert(ROLLUP_DAYS_INDEXED, &[][..]);
    rollups.apply_batch(batch).map_err(backend)?;
    if indexed > 0 {
        tracing::info!(indexed, "daily rollups indexed by day");
    }
    Ok(())
}

impl Store for SledStore {
    fn create_probe(&self, probe: &ProbeRecord) -> Result<(), StoreError> {
        let swapped = self
            .probes
            .compare_and_swap(
                probe.id.as_str(),
                None as Option<&[u8]>,
                Some(encode(probe)?),
            )
            .map_err(backend)?;
        swapped.map_err(|_| StoreError::ProbeExists(probe.id.clone()))
    }

    fn update_probe(&self, probe: &ProbeRecord) -> Result<(), StoreError> {
        self.probes
            .insert(probe.id.as_str(), encode(probe)?)
            .map_err(backend)?;
        Ok(())
    }

    fn probe(&self, id: &ProbeId) -> Result<Option<ProbeRecord>, StoreError> {
        self.probes
            .get(id.as_str())
            .map_err(backend)?
            .map(|bytes| decode(id.as_str().as_bytes(), &bytes))
            .transpose()
    }

    fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        self.probes
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                decode(&key, &value)
            })
            .collect()
    }

    fn task_id(&self, definition: &str) -> Result<TaskId, StoreError> {
        loop {
            if let Some(existing) = self.tasks.get(definition).map_err(backend)? {
                let raw: [u8; 8] =
                    existing
                        .as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            key: definition.to_owned(),
                            reason: "task id is not 8 bytes".into(),
                        })?;
                return TaskId::new(u64::from_be_bytes(raw)).map_err(|e| StoreError::Corrupt {
                    key: definition.to_owned(),
                    reason: e.to_string(),
                });
            }
            // generate_id is monotonic across restarts; +1 keeps 0 (proto3's default) unused.
            let id = self.db.generate_id().map_err(backend)? + 1;
            let created = self
                .tasks
                .compare_and_swap(
                    definition,
                    None as Option<&[u8]>,
                    Some(&id.to_be_bytes()[..]),
                )
                .map_err(backend)?;
            if created.is_ok() {
                return TaskId::new(id).map_err(|e| StoreError::Backend(e.to_string()));
            }
            // Lost a race with another session: loop and read the winner's id.
        }
    }

    fn record_assignment(&self, probe: &ProbeId, task: TaskId) -> Result<(), StoreError> {
        self.assignments
            .insert(assignment_key(probe, task), &[])
            .map_err(backend)?;
        Ok(())
    }

    fn is_assigned(&self, probe: &ProbeId, task: TaskId) -> Result<bool, StoreError> {
        self.assignments
            .contains_key(assignment_key(probe, task))
            .map_err(backend)
    }

    fn insert_results(&self, results: &[StoredResult]) -> Result<Vec<Inserted>, StoreError> {
        self.insert_results_logged(results)
            .map(|(outcome, _)| outcome)
    }

    fn insert_results_logged(
        &self,
        results: &[StoredResult],
    ) -> Result<(Vec<Inserted>, Option<u64>), StoreError> {
        // Encoding needs no lock: only the duplicate check and the write are serialised.
        let encoded: Vec<_> = {
            let campaign_of = self.campaign_of.read().map_err(|_| poisoned())?;
            results
                .iter()
                .map(|r| {
                    let key = result_codec::result_key_bytes(&r.result.key);
                    let time = result_codec::time_bytes(r.result.started_at);
                    // With the failure class its cell counts it under.
                    let campaign = campaign_of
                        .get(&r.result.task_id.get())
                        .map(|c| (*c, r.result.task_id.get(), failure_class(&r.result.outcome)));
                    (key, time, result_codec::encode_value(r), campaign)
                })
                .collect()
        };
        let mut head = self.writer.lock().map_err(|_| poisoned())?;
        let mut batch = sled::Batch::default();
        let mut outcome = Vec::with_capacity(encoded.len());
        // A batch's results are mostly consecutive sequence numbers of one probe: a few
        // index blocks, each read once here and written once below.
        let mut blocks: HashMap<sled_index::BlockKey, sled_index::Block> = HashMap::new();
        let mut logged = sled_log::EntryWriter::with_capacity(encoded.len());
        // The campaign cells the batch's new results count in (a batch is one probe's: a
        // few tasks), each read once here and written with the results.
        let mut cells = sled_cells::Changes::default();
        for (key, time, value, campaign) in encoded {
            let (block_key, slot) = sled_index::locate(&key);
            let block = match blocks.entry(block_key) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(sled_index::load(&self.results, &block_key)?),
            };
            // Stored already, or a key twice in one batch: stored once, like a resend.
            if !block.insert(slot, time) {
                outcome.push(Inserted::Duplicate);
                continue;
            }
            let row = key_of(ROW, &[&time, &key]);
            if let Some((campaign, task, class)) = campaign {
                // Indexed and counted with the result itself, so a report never misses a
                // stored result nor counts one twice.
                batch.insert(key_of(BY_CAMPAIGN, &[&campaign.to_be_bytes(), &key]), &time);
                let mut row_key = [0u8; ROW_KEY_LEN];
                row_key[..8].copy_from_slice(&time);
                row_key[8..].copy_from_slice(&key);
                cells.add(
                    &self.results,
                    sled_cells::cell_key(campaign, task, &key),
                    class,
                    &row_key,
                )?;
            }
            logged.push(&row[1..]);
            batch.insert(row, value);
            outcome.push(Inserted::New);
        }
        if logged.count() > 0 {
            for (key, block) in &blocks {
                if block.changed() {
                    batch.insert(&key[..], block.encode());
                }
            }
            cells.write(&mut batch);
            let first = *head + 1;
            let last = *head + u64::from(logged.count());
            batch.insert(log_key(first), logged.finish());
            batch.insert(LOG_HEAD, &last.to_be_bytes());
            // The cells count this batch too (`sled_cells::build_from_index`).
            batch.insert(CELLS_HEAD, &last.to_be_bytes());
            self.results.apply_batch(batch).map_err(backend)?;
            *head = last;
            return Ok((outcome, Some(first)));
        }
        Ok((outcome, None))
    }

    fn results(&self, query: &ResultQuery) -> Result<Vec<StoredResult>, StoreError> {
        let mut out = Vec::new();
        match &query.probe {
            Some(probe) => {
                let prefix = sled_index::probe_prefix(probe.as_str().as_bytes());
                'blocks: for entry in self.results.scan_prefix(prefix).rev() {
                    let (block_key, value) = entry.map_err(backend)?;
                    let block = sled_index::Block::decode(&block_key, &value)?;
                    for (slot, time) in block.newest_first() {
                        if out.len() >= query.limit {
                            break 'blocks;
                        }
                        let key = sled_index::result_key(&block_key, slot)?;
                        out.extend(self.row(&[&time[..], &key[..]].concat())?);
                    }
                }
            }
            None => {
                for entry in self.results.scan_prefix([ROW]).rev().take(query.limit) {
                    let (row, value) = entry.map_err(backend)?;
                    out.push(result_codec::decode_value(&row[1..], &value)?);
                }
            }
        }
        Ok(out)
    }

    fn scan_results_between(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        result_codec::decode_each(|rows| self.scan_undecoded_between(from, to, rows), visit)
    }

    fn scan_undecoded_between(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(Undecoded) -> bool,
    ) -> Result<(), StoreError> {
        if from >= to {
            return Ok(());
        }
        let bound = |t: UnixMicros| key_of(ROW, &[&result_codec::time_bytes(t)]);
        // The rows themselves, in time order: one sequential read, no lookups.
        for entry in self.results.range(bound(from)..bound(to)) {
            let (row, value) = entry.map_err(backend)?;
            if !visit(Undecoded::sled_row(row, value)) {
                break;
            }
        }
        Ok(())
    }

    fn ingest_log_after(
        &self,
        after: u64,
        max: usize,
        visit: &mut dyn FnMut(u64, StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        let Some(wanted) = after.checked_add(1) else {
            return Ok(());
        };
        // The entry holding `wanted` may start before it: begin at the last entry at or
        // before it.
        let start = match self
            .results
            .range(log_key(0)..=log_key(wanted))
            .next_back()
            .transpose()
            .map_err(backend)?
        {
            Some((key, _)) => key.to_vec(),
            None => log_key(wanted),
        };
        let mut left = max;
        for entry in self.results.range(start..=log_key(u64::MAX)) {
            let (key, entry) = entry.map_err(backend)?;
            let first = u64_of(&key, key.get(1..).unwrap_or_default())?;
            for (position, logged) in (first..).zip(sled_log::rows(first, &entry)?) {
                if position < wanted {
                    continue;
                }
                if left == 0 {
                    return Ok(());
                }
                left -= 1;
                let stored = match logged.value {
                    Some(value) => result_codec::decode_value(logged.row, value)?,
                    // Written in the result's own batch: a logged result is always there.
                    None => self.row(logged.row)?.ok_or_else(|| StoreError::Corrupt {
                        key: format!("ingest log position {position}"),
                        reason: "the logged result is not stored".into(),
                    })?,
                };
                if !visit(position, stored) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn ingest_log_head(&self) -> Result<u64, StoreError> {
        self.writer.lock().map(|head| *head).map_err(|_| poisoned())
    }

    fn prune_ingest_log(&self, upto: u64) -> Result<(), StoreError> {
        // Whole entries only: one partly folded stays until the rest is.
        let mut batch = sled::Batch::default();
        for entry in self.results.range(log_key(0)..=log_key(upto)) {
            let (key, entry) = entry.map_err(backend)?;
            let first = u64_of(&key, key.get(1..).unwrap_or_default())?;
            let last = first.saturating_add(sled_log::count(first, &entry)?.saturating_sub(1));
            if last <= upto {
                batch.remove(key);
            }
        }
        self.results.apply_batch(batch).map_err(backend)
    }

    fn put_rollup(&self, day: &str, country: &str, json: &[u8]) -> Result<(), StoreError> {
        // With an index entry `@day/key` (empty), so a day's rollups are found without reading
        // every key's; `@` starts no country code or `asn:` key. Both or neither are written.
        let mut batch = sled::Batch::default();
        batch.insert(format!("{country}/{day}").as_bytes(), json);
        batch.insert(format!("@{day}/{country}").as_bytes(), &[][..]);
        self.rollups.apply_batch(batch).map_err(backend)?;
        Ok(())
    }

    fn rollups_of_day(&self, day: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut found = Vec::new();
        for entry in self.rollups.scan_prefix(format!("@{day}/")) {
            let (key, _) = entry.map_err(backend)?;
            let key = String::from_utf8_lossy(&key);
            let Some((_, country)) = key.split_once('/') else {
                continue;
            };
            if let Some(json) = self
                .rollups
                .get(format!("{country}/{day}"))
                .map_err(backend)?
            {
                found.push((country.to_owned(), json.to_vec()));
            }
        }
        Ok(found)
    }

    fn rollups(&self, country: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.rollups
            .scan_prefix(format!("{country}/"))
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                let day = String::from_utf8_lossy(&key)
                    .split_once('/')
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or_default();
                Ok((day, value.to_vec()))
            })
            .collect()
    }

    fn insert_losses(&self, losses: &[OutboxLoss]) -> Result<Vec<Inserted>, StoreError> {
        losses
            .iter()
            .map(|loss| {
                let swapped = self
                    .losses
                    .compare_and_swap(
                        loss_key(&loss.key),
                        None as Option<&[u8]>,
                        Some(encode(loss)?),
                    )
                    .map_err(backend)?;
                Ok(match swapped {
                    Ok(()) => Inserted::New,
                    Err(_) => Inserted::Duplicate,
                })
            })
            .collect()
    }

    fn losses(&self, query: &ResultQuery) -> Result<Vec<OutboxLoss>, StoreError> {
        let prefix = query
            .probe
            .as_ref()
            .map(|p| p.as_str().as_bytes().to_vec())
            .unwrap_or_default();
        self.losses
            .scan_prefix(prefix)
            .rev()
            .take(query.limit)
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                decode(&key, &value)
            })
            .collect()
    }

    fn record_tag_event(&self, probe: &ProbeId, event: &TagEvent) -> Result<(), StoreError> {
        let mut key = probe.as_str().as_bytes().to_vec();
        key.extend_from_slice(&((event.at.0 as u64) ^ (1 << 63)).to_be_bytes());
        // Two changes in the same microsecond must not overwrite each other.
        key.extend_from_slice(&self.db.generate_id().map_err(backend)?.to_be_bytes());
        self.tag_history
            .insert(key, encode(event)?)
            .map_err(backend)?;
        Ok(())
    }

    fn tag_history(&self, probe: &ProbeId) -> Result<Vec<TagEvent>, StoreError> {
        self.tag_history
            .scan_prefix(probe.as_str())
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                decode(&key, &value)
            })
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn next_campaign_id(&self) -> Result<u64, StoreError> {
        // Shares the monotonic generator with task ids; +1 keeps 0 unused.
        Ok(self.db.generate_id().map_err(backend)? + 1)
    }

    fn put_campaign(&self, id: u64, json: &[u8]) -> Result<(), StoreError> {
        self.campaigns
            .insert(id.to_be_bytes(), json)
            .map_err(backend)?;
        Ok(())
    }

    fn campaign(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .campaigns
            .get(id.to_be_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn campaigns(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.campaigns
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                let raw: [u8; 8] = key.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    key: format!("campaigns/{key:?}"),
                    reason: "campaign id is not 8 bytes".into(),
                })?;
                Ok((u64::from_be_bytes(raw), value.to_vec()))
            })
            .collect()
    }

    fn link_campaign_task(&self, task: TaskId, campaign: u64) -> Result<(), StoreError> {
        // Tree and memory change under the same lock, so no result stored meanwhile can
        // read the link from one and not the other.
        let mut campaign_of = self.campaign_of.write().map_err(|_| poisoned())?;
        self.campaign_tasks
            .insert(task.get().to_be_bytes(), &campaign.to_be_bytes())
            .map_err(backend)?;
        campaign_of.insert(task.get(), campaign);
        Ok(())
    }

    fn campaign_tasks(&self, campaign: u64) -> Result<Vec<TaskId>, StoreError> {
        let campaign_of = self.campaign_of.read().map_err(|_| poisoned())?;
        let mut tasks: Vec<TaskId> = campaign_of
            .iter()
            .filter(|(_, linked)| **linked == campaign)
            .filter_map(|(task, _)| TaskId::new(*task).ok())
            .collect();
        tasks.sort();
        Ok(tasks)
    }

    fn campaign_results(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        let prefix = key_of(BY_CAMPAIGN, &[&campaign.to_be_bytes()]);
        for entry in self.results.scan_prefix(prefix) {
            let (index, time) = entry.map_err(backend)?;
            let Some(stored) = self.indexed(&index, &time)? else {
                continue;
            };
            if !visit(stored) {
                break;
            }
        }
        Ok(())
    }

    fn campaign_cells(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(CampaignCell) -> bool,
    ) -> Result<(), StoreError> {
        let prefix = key_of(sled_db::CELL, &[&campaign.to_be_bytes()]);
        for entry in self.results.scan_prefix(prefix) {
            let (key, value) = entry.map_err(backend)?;
            let cell = sled_cells::Cell::decode(&key, &value)?;
            let corrupt = |reason: &str| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: reason.into(),
            };
            let task = key
                .get(9..17)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .and_then(|b| TaskId::new(u64::from_be_bytes(b)).ok())
                .ok_or_else(|| corrupt("campaign cell key without a task id"))?;
            // The latest row is never deleted (rows are kept forever); one missing is damage.
            let latest = self
                .row(&cell.latest)?
                .ok_or_else(|| corrupt("the latest result of a campaign cell is missing"))?;
            let probe_id = latest.result.key.probe_id.clone();
            let keep_going = visit(CampaignCell {
                task_id: task,
                probe_id,
                results: cell.results,
                reached: cell.reached,
                failures: cell.failures,
                latest,
            });
            if !keep_going {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::UnixMicros;
    use sixmap_shared::measurement::{
        ClockInfo, ClockState, ErrorClass, Family, MeasurementError, MeasurementResult, Outcome,
    };

    fn result(probe: &ProbeId, epoch: u64, sequence: u64, at: i64) -> MeasurementResult {
        MeasurementResult {
            key: ResultKey {
                probe_id: probe.clone(),
                boot_epoch: epoch,
                sequence,
            },
            task_id: TaskId::new(1).unwrap(),
            started_at: UnixMicros(at),
            duration_us: 1,
            family_requested: Family::V6,
            family_used: None,
            source: None,
            destination: None,
            software_version: "0.1.0".into(),
            clock: ClockInfo {
                state: ClockState::Unknown,
                offset_us: None,
            },
            outcome: Outcome::Failed(MeasurementError {
                class: ErrorClass::Network,
                message: "no route".into(),
            }),
        }
    }

    #[test]
    fn rollups_by_key_and_by_day() {
        // As `records_behave_like_sled` in tests/clickhouse.rs.
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.put_rollup("2026-01-02", "DE", b"{\"v\":1}").unwrap();
        store.put_rollup("2026-01-01", "DE", b"{\"v\":2}").unwrap();
        store.put_rollup("2026-01-02", "DE", b"{\"v\":3}").unwrap();
        store.put_rollup("2026-01-01", "FR", b"{\"v\":4}").unwrap();
        store
            .put_rollup("2026-01-01", "asn:64500", b"{\"v\":5}")
            .unwrap();
        // The day index is no country's rollup.
        assert_eq!(
            store.rollups("DE").unwrap(),
            vec![
                ("2026-01-01".to_owned(), b"{\"v\":2}".to_vec()),
                ("2026-01-02".to_owned(), b"{\"v\":3}".to_vec()),
            ]
        );
        assert_eq!(
            store.rollups_of_day("2026-01-01").unwrap(),
            vec![
                ("DE".to_owned(), b"{\"v\":2}".to_vec()),
                ("FR".to_owned(), b"{\"v\":4}".to_vec()),
                ("asn:64500".to_owned(), b"{\"v\":5}".to_vec()),
            ]
        );
        assert_eq!(store.rollups_of_day("2026-01-03").unwrap(), vec![]);
        // Rollups stored before the day index (no `@` entries, no marker) get it at open.
        let mut stripped = sled::Batch::default();
        for key in store.rollups.iter().keys() {
            let key = key.unwrap();
            if matches!(key.first(), Some(b'@' | b'#')) {
                stripped.remove(key);
            }
        }
        store.rollups.apply_batch(stripped).unwrap();
        assert_eq!(store.rollups_of_day("2026-01-01").unwrap(), vec![]);
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.rollups_of_day("2026-01-01").unwrap().len(), 3);
        assert_eq!(
            store.rollups("DE").unwrap().len(),
            2,
            "the marker is no rollup"
        );
    }

    #[test]
    fn results_are_deduplicated_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let probe = ProbeId::random().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let batch = [
                result(&probe, 1, 1, 10).into(),
                result(&probe, 1, 2, 20).into(),
            ];
            assert_eq!(
                store.insert_results(&batch).unwrap(),
                vec![Inserted::New, Inserted::New]
            );
            let again = [
                result(&probe, 1, 2, 20).into(),
                result(&probe, 2, 1, 30).into(),
            ];
            assert_eq!(
                store.insert_results(&again).unwrap(),
                vec![Inserted::Duplicate, Inserted::New]
            );
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let newest = store
            .results(&ResultQuery {
                probe: Some(probe.clone()),
                limit: 2,
            })
            .unwrap();
        let keys: Vec<_> = newest
            .iter()
            .map(|r| (r.result.key.boot_epoch, r.result.key.sequence))
            .collect();
        assert_eq!(keys, vec![(2, 1), (1, 2)]);
        let all = store
            .results(&ResultQuery {
                probe: None,
                limit: 10,
            })
            .unwrap();
        assert_eq!(all.len(), 3);
    }

    fn logged(store: &SledStore, after: u64) -> Vec<(u64, u64)> {
        let mut seen = Vec::new();
        store
            .ingest_log_after(after, usize::MAX, &mut |position, r| {
                seen.push((position, r.result.key.sequence));
                true
            })
            .unwrap();
        seen
    }

    #[test]
    fn the_ingest_log_holds_new_results_once_in_commit_order() {
        let dir = tempfile::tempdir().unwrap();
        let probe = ProbeId::random().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            assert_eq!(store.ingest_log_head().unwrap(), 0);
            // Start times out of order: the log follows commits, not measurement time.
            store
                .insert_results(&[
                    result(&probe, 1, 1, 50).into(),
                    result(&probe, 1, 2, 10).into(),
                ])
                .unwrap();
            // A resend, a key twice in one batch and one new result.
            let outcome = store
                .insert_results(&[
                    result(&probe, 1, 2, 10).into(),
                    result(&probe, 1, 3, 5).into(),
                    result(&probe, 1, 3, 5).into(),
                ])
                .unwrap();
            assert_eq!(
                outcome,
                vec![Inserted::Duplicate, Inserted::New, Inserted::Duplicate]
            );
            let all = logged(&store, 0);
            let sequences: Vec<u64> = all.iter().map(|(_, s)| *s).collect();
            assert_eq!(
                sequences,
                vec![1, 2, 3],
                "every new result once, in commit order"
            );
            assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "{all:?}");
            assert_eq!(store.ingest_log_head().unwrap(), all[2].0);
            assert_eq!(logged(&store, all[0].0), all[1..].to_vec());
            let mut first = Vec::new();
            store
                .ingest_log_after(0, 1, &mut |p, _| {
                    first.push(p);
                    true
                })
                .unwrap();
            assert_eq!(first, vec![all[0].0], "at most `max`");
            store.prune_ingest_log(all[1].0).unwrap();
            assert_eq!(logged(&store, 0), all[2..].to_vec());
            store.flush().unwrap();
        }
        // Reopened: the pruned log, the head and the positions go on from where they were.
        let store = SledStore::open(dir.path()).unwrap();
        let kept = logged(&store, 0);
        assert_eq!(kept.len(), 1);
        let head = store.ingest_log_head().unwrap();
        assert_eq!(head, kept[0].0);
        store.prune_ingest_log(head).unwrap();
        assert!(logged(&store, 0).is_empty());
        assert_eq!(
            store.ingest_log_head().unwrap(),
            head,
            "the head outlives pruning"
        );
        store.flush().unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.ingest_log_head().unwrap(), head);
        store
            .insert_results(&[result(&probe, 2, 1, 1).into()])
            .unwrap();
        let after = logged(&store, head);
        assert_eq!(after.len(), 1);
        assert!(
            after[0].0 > head,
            "positions never go back: {after:?} after {head}"
        );
    }

    #[test]
    fn log_entries_of_earlier_layouts_are_still_read_and_pruned() {
        // A store stopped before its log was folded, written when the log held one row key
        // per result: after the upgrade the folder must still read those results once.
        let dir = tempfile::tempdir().unwrap();
        let probe = ProbeId::random().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .insert_results(&[
                result(&probe, 1, 1, 50).into(),
                result(&probe, 1, 2, 60).into(),
            ])
            .unwrap();
        let legacy = result(&probe, 1, 3, 70);
        store.insert_results(&[legacy.clone().into()]).unwrap();
        // Rewrite the last batch's entry (position 3) as the first layout wrote it.
        let row = result_codec::row_key(legacy.started_at, &legacy.key);
        store.results.insert(log_key(3), &row[..]).unwrap();
        // And the first batch's (positions 1 and 2) as the previous release wrote it, each
        // row key with the row's value.
        let rows: Vec<(Vec<u8>, Vec<u8>)> = store
            .results
            .scan_prefix([ROW])
            .take(2)
            .map(|entry| {
                let (key, value) = entry.unwrap();
                (key[1..].to_vec(), value.to_vec())
            })
            .collect();
        let pairs: Vec<(&[u8], &[u8])> = rows.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        store
            .results
            .insert(log_key(1), sled_log::batch_entry_with_values(&pairs))
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.ingest_log_head().unwrap(), 3);
        assert_eq!(logged(&store, 0), vec![(1, 1), (2, 2), (3, 3)]);
        assert_eq!(
            logged(&store, 1),
            vec![(2, 2), (3, 3)],
            "from inside a batch"
        );
        store.prune_ingest_log(1).unwrap();
        assert_eq!(
            logged(&store, 1),
            vec![(2, 2), (3, 3)],
            "a batch partly folded stays until all of it is"
        );
        store.prune_ingest_log(2).unwrap();
        assert_eq!(logged(&store, 0), vec![(3, 3)]);
        store.prune_ingest_log(3).unwrap();
        assert!(logged(&store, 0).is_empty());
    }

    #[test]
    fn a_reader_following_the_log_misses_nothing_while_writers_race() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let probe = ProbeId::random().unwrap();
                    for b in 0..40u64 {
                        let batch: Vec<StoredResult> = (0..10)
                            .map(|i| {
                                result(&probe, 1, b * 10 + i + 1, (w * 1000 + b) as i64).into()
                            })
                            .collect();
                        store.insert_results(&batch).unwrap();
                    }
                })
            })
            .collect();
        // Follow the log as the figures do: always after the last position seen.
        let mut after = 0;
        let mut seen = 0usize;
        let mut done = false;
        while !done {
            done = writers.iter().all(|w| w.is_finished());
            store
                .ingest_log_after(after, 64, &mut |position, _| {
                    assert!(position > after);
                    after = position;
                    seen += 1;
                    true
                })
                .unwrap();
        }
        for w in writers {
            w.join().unwrap();
        }
        store
            .ingest_log_after(after, usize::MAX, &mut |_, _| {
                seen += 1;
                true
            })
            .unwrap();
        assert_eq!(seen, 3 * 40 * 10);
    }

    #[test]
    fn task_ids_are_stable_and_nonzero() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let a = store.task_id("ping ::1").unwrap();
        let b = store.task_id("ping 2001:db8::1").unwrap();
        assert_ne!(a, b);
        assert_eq!(store.task_id("ping ::1").unwrap(), a);
        let probe = ProbeId::random().unwrap();
        assert!(!store.is_assigned(&probe, a).unwrap());
        store.record_assignment(&probe, a).unwrap();
        assert!(store.is_assigned(&probe, a).unwrap());
        assert!(!store.is_assigned(&probe, b).unwrap());
    }

    /// A damaged row is an error for every reader of it, the export's decoders included: never
    /// skipped, never served around.
    #[test]
    fn a_damaged_row_fails_scans_and_exports() {
        let dir = tempfile::tempdir().unwrap();
        let probe = ProbeId::random().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let batch: Vec<StoredResult> = (1..=3000)
            .map(|n| result(&probe, 1, n, 10 * n as i64).into())
            .collect();
        store.insert_results(&batch).unwrap();
        let row = store
            .results
            .scan_prefix([ROW])
            .keys()
            .nth(2500)
            .unwrap()
            .unwrap();
        store.results.insert(row, &b"\x09damaged"[..]).unwrap();
        let scanned =
            store.scan_results_between(UnixMicros(0), UnixMicros(i64::MAX), &mut |_| true);
        assert!(
            matches!(scanned, Err(StoreError::Corrupt { .. })),
            "{scanned:?}"
        );
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let exported = crate::export::export_with(
            &store,
            &crate::store::ResultFilter::default(),
            crate::export::writer(crate::export::Format::Jsonl, SharedBuffer(lines.clone()))
                .unwrap(),
            &mut |_| {},
        );
        let error = exported.unwrap_err().to_string();
        assert!(error.contains("unknown value format 9"), "{error}");
        // The chunks before the damaged one may have been written, never one after it.
        let written = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        assert!(written <= 2500, "nothing after the damaged row: {written}");
    }

    /// A writer into a buffer the test reads afterwards.
    struct SharedBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SharedBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
