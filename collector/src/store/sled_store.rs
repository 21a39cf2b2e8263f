//! The embedded store: one sled directory, no server.
//!
//! Layout (one tree each): `probes` id → JSON record; `tasks` definition → task id;
//! `assignments` probe id ‖ task id → (); `results` probe id ‖ boot epoch ‖ sequence → JSON;
//! `results_by_time` start time ‖ result key → () (the newest results across probes);
//! `losses` loss key → JSON (probes' records of undelivered results); `tag_history` probe id ‖
//! time ‖ counter → JSON tag event; `rollups` country ‖ '/' ‖ day → JSON daily figures;
//! `campaigns` campaign id → JSON record; `campaign_tasks` task id → campaign id;
//! `campaign_results` campaign id ‖ result key → () (written with the result it indexes);
//! `ingest_log` `p` ‖ position → result key (every new result once, in commit order, written
//! with the result) and `h` → the newest position ever given (kept when the log is pruned).
//! Result keys sort by probe, then time of production, so per-probe scans are prefix scans.
//! A result and its time-index entry are written in one transaction.
//! Values start with a format byte so the encoding can change without a migration of old data.

use super::{Inserted, ProbeRecord, ResultQuery, Store, StoreError, StoredResult, TagEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sixmap_shared::health::OutboxLoss;
use sixmap_shared::measurement::MeasurementResult;
use sixmap_shared::{ProbeId, ResultKey, TaskId, UnixMicros};
use std::path::Path;

const FORMAT_JSON: u8 = 1;

#[derive(Debug, Clone)]
pub struct SledStore {
    pub(super) db: sled::Db,
    /// Tokens, certificates and the audit log (`sled_auth`).
    pub(super) auth: super::sled_auth::AuthTrees,
    /// Figures kept at ingest (`sled_figures`).
    pub(super) figures: super::sled_figures::FigureTrees,
    probes: sled::Tree,
    tasks: sled::Tree,
    assignments: sled::Tree,
    results: sled::Tree,
    results_by_time: sled::Tree,
    losses: sled::Tree,
    tag_history: sled::Tree,
    rollups: sled::Tree,
    campaigns: sled::Tree,
    campaign_tasks: sled::Tree,
    campaign_results: sled::Tree,
    ingest_log: sled::Tree,
    /// Held while a batch is checked for duplicates, given log positions and written, so
    /// positions increase in commit order: a reader never sees a position before a smaller
    /// one that commits later. Holds the newest position given.
    log_head: std::sync::Arc<std::sync::Mutex<u64>>,
}

const LOG_ENTRY: u8 = b'p';
const LOG_HEAD: &[u8] = b"h";

fn log_key(position: u64) -> [u8; 9] {
    let mut key = [LOG_ENTRY; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

fn u64_value(key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("expected 8 bytes, found {}", bytes.len()),
        })
}

/// The newest log position: the head record, or the last entry if newer.
fn read_log_head(log: &sled::Tree) -> Result<u64, StoreError> {
    let recorded = match log.get(LOG_HEAD).map_err(backend)? {
        Some(bytes) => u64_value(LOG_HEAD, &bytes)?,
        None => 0,
    };
    let last = match log
        .scan_prefix([LOG_ENTRY])
        .next_back()
        .transpose()
        .map_err(backend)?
    {
        Some((key, _)) => u64_value(&key, key.get(1..).unwrap_or_default())?,
        None => 0,
    };
    Ok(recorded.max(last))
}

pub(super) fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![FORMAT_JSON];
    serde_json::to_writer(&mut bytes, value).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(bytes)
}

pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&FORMAT_JSON, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))
        }
        Some((format, _)) => Err(corrupt(format!("unknown value format {format}"))),
        None => Err(corrupt("empty value".into())),
    }
}

fn result_key(key: &ResultKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(key.probe_id.as_str().as_bytes());
    bytes.extend_from_slice(&key.boot_epoch.to_be_bytes());
    bytes.extend_from_slice(&key.sequence.to_be_bytes());
    bytes
}

/// Start time made to sort as unsigned big-endian bytes (sign bit flipped), then the result key.
fn time_key(result: &MeasurementResult) -> Vec<u8> {
    let mut bytes = ((result.started_at.0 as u64) ^ (1 << 63))
        .to_be_bytes()
        .to_vec();
    bytes.extend_from_slice(&result_key(&result.key));
    bytes
}

fn assignment_key(probe: &ProbeId, task: TaskId) -> Vec<u8> {
    let mut bytes = probe.as_str().as_bytes().to_vec();
    bytes.extend_from_slice(&task.get().to_be_bytes());
    bytes
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open().map_err(|e| {
            StoreError::Backend(format!("cannot open store at {}: {e}", dir.display()))
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let ingest_log = tree("ingest_log")?;
        let head = read_log_head(&ingest_log)?;
        Ok(Self {
            ingest_log,
            log_head: std::sync::Arc::new(std::sync::Mutex::new(head)),
            probes: tree("probes")?,
            tasks: tree("tasks")?,
            assignments: tree("assignments")?,
            results: tree("results")?,
            results_by_time: tree("results_by_time")?,
            losses: tree("losses")?,
            tag_history: tree("tag_history")?,
            rollups: tree("rollups")?,
            campaigns: tree("campaigns")?,
            campaign_tasks: tree("campaign_tasks")?,
            campaign_results: tree("campaign_results")?,
            auth: super::sled_auth::AuthTrees::open(&db)?,
            figures: super::sled_figures::FigureTrees::open(&db)?,
            db,
        })
    }
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
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let encoded = results
            .iter()
            .map(|r| {
                let key = result_key(&r.result.key);
                // A campaign task's result is indexed under its campaign in the same
                // transaction, so a report never misses a stored result.
                let campaign = self
                    .campaign_tasks
                    .get(r.result.task_id.get().to_be_bytes())
                    .map_err(backend)?
                    .map(|id| {
                        let mut index = id.to_vec();
                        index.extend_from_slice(&key);
                        index
                    });
                Ok((key, time_key(&r.result), encode(r)?, campaign))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut head = self
            .log_head
            .lock()
            .map_err(|_| StoreError::Backend("ingest log lock poisoned".into()))?;
        let (outcome, newest) = (
            &self.results,
            &self.results_by_time,
            &self.campaign_results,
            &self.ingest_log,
        )
            .transaction(|(results, by_time, by_campaign, log)| {
                let mut outcome = Vec::with_capacity(encoded.len());
                let mut position = *head;
                for (key, time, value, campaign) in &encoded {
                    // A key twice in one batch is stored once, like a resend.
                    if results.get(key)?.is_some() {
                        outcome.push(Inserted::Duplicate);
                    } else {
                        results.insert(key.as_slice(), value.as_slice())?;
                        by_time.insert(time.as_slice(), &[])?;
                        if let Some(index) = campaign {
                            by_campaign.insert(index.as_slice(), &[])?;
                        }
                        position += 1;
                        log.insert(&log_key(position), key.as_slice())?;
                        outcome.push(Inserted::New);
                    }
                }
                if position != *head {
                    log.insert(LOG_HEAD, &position.to_be_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<()>>((outcome, position))
            })
            .map_err(|e: TransactionError<()>| StoreError::Backend(format!("{e:?}")))?;
        *head = newest;
        Ok(outcome)
    }

    fn results(&self, query: &ResultQuery) -> Result<Vec<StoredResult>, StoreError> {
        let read = |key: &[u8]| -> Result<Option<StoredResult>, StoreError> {
            self.results
                .get(key)
                .map_err(backend)?
                .map(|value| decode(key, &value))
                .transpose()
        };
        let mut out = Vec::new();
        match &query.probe {
            Some(probe) => {
                for entry in self
                    .results
                    .scan_prefix(probe.as_str())
                    .rev()
                    .take(query.limit)
                {
                    let (key, value) = entry.map_err(backend)?;
                    out.push(decode(&key, &value)?);
                }
            }
            None => {
                for entry in self.results_by_time.iter().rev().take(query.limit) {
                    let (time_key, _) = entry.map_err(backend)?;
                    // The result key follows the 8-byte time prefix.
                    if let Some(result) = read(time_key.get(8..).unwrap_or_default())? {
                        out.push(result);
                    }
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
        let bound = |t: UnixMicros| ((t.0 as u64) ^ (1 << 63)).to_be_bytes();
        for entry in self.results_by_time.range(bound(from)..bound(to)) {
            let (time_key, _) = entry.map_err(backend)?;
            let key = time_key.get(8..).unwrap_or_default();
            let Some(value) = self.results.get(key).map_err(backend)? else {
                continue;
            };
            if !visit(decode(key, &value)?) {
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
        let Some(first) = after.checked_add(1) else {
            return Ok(());
        };
        for entry in self
            .ingest_log
            .range(log_key(first)..=log_key(u64::MAX))
            .take(max)
        {
            let (log_key, result_key) = entry.map_err(backend)?;
            let position = u64_value(&log_key, log_key.get(1..).unwrap_or_default())?;
            // Written in the result's own transaction: a logged result is always there.
            let value = self
                .results
                .get(&result_key)
                .map_err(backend)?
                .ok_or_else(|| StoreError::Corrupt {
                    key: format!("ingest_log/{position}"),
                    reason: "the logged result is not stored".into(),
                })?;
            if !visit(position, decode(&result_key, &value)?) {
                break;
            }
        }
        Ok(())
    }

    fn ingest_log_head(&self) -> Result<u64, StoreError> {
        self.log_head
            .lock()
            .map(|head| *head)
            .map_err(|_| StoreError::Backend("ingest log lock poisoned".into()))
    }

    fn prune_ingest_log(&self, upto: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for entry in self.ingest_log.range(log_key(0)..=log_key(upto)) {
            let (key, _) = entry.map_err(backend)?;
            batch.remove(key);
        }
        self.ingest_log.apply_batch(batch).map_err(backend)
    }

    fn put_rollup(&self, day: &str, country: &str, json: &[u8]) -> Result<(), StoreError> {
        self.rollups
            .insert(format!("{country}/{day}"), json)
            .map_err(backend)?;
        Ok(())
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
                        result_key(&loss.key),
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
        self.campaign_tasks
            .insert(task.get().to_be_bytes(), &campaign.to_be_bytes())
            .map_err(backend)?;
        Ok(())
    }

    fn campaign_tasks(&self, campaign: u64) -> Result<Vec<TaskId>, StoreError> {
        let mut tasks = Vec::new();
        for entry in self.campaign_tasks.iter() {
            let (task, linked) = entry.map_err(backend)?;
            if linked.as_ref() != campaign.to_be_bytes() {
                continue;
            }
            let raw = <[u8; 8]>::try_from(task.as_ref())
                .ok()
                .map(u64::from_be_bytes)
                .and_then(|raw| TaskId::new(raw).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    key: format!("campaign_tasks/{task:?}"),
                    reason: "task id is not 8 bytes or is 0".into(),
                })?;
            tasks.push(raw);
        }
        Ok(tasks)
    }

    fn campaign_results(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        for entry in self.campaign_results.scan_prefix(campaign.to_be_bytes()) {
            let (index, _) = entry.map_err(backend)?;
            let key = index.get(8..).unwrap_or_default();
            let Some(value) = self.results.get(key).map_err(backend)? else {
                continue;
            };
            if !visit(decode(key, &value)?) {
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
        ClockInfo, ClockState, ErrorClass, Family, MeasurementError, Outcome,
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
                            .map(|i| result(&probe, 1, b * 10 + i, (w * 1000 + b) as i64).into())
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
}
