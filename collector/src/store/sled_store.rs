//! The embedded store: one sled directory, no server.
//!
//! Layout (one tree each): `probes` id → JSON record; `tasks` definition → task id;
//! `assignments` probe id ‖ task id → (); `results` probe id ‖ boot epoch ‖ sequence → JSON;
//! `results_by_time` start time ‖ result key → () (the newest results across probes);
//! `losses` loss key → JSON (probes' records of undelivered results); `tag_history` probe id ‖
//! time ‖ counter → JSON tag event; `rollups` country ‖ '/' ‖ day → JSON daily figures;
//! `campaigns` campaign id → JSON record; `campaign_tasks` task id → campaign id;
//! `campaign_results` campaign id ‖ result key → () (written with the result it indexes).
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
        Ok(Self {
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
        (&self.results, &self.results_by_time, &self.campaign_results)
            .transaction(|(results, by_time, by_campaign)| {
                let mut outcome = Vec::with_capacity(encoded.len());
                for (key, time, value, campaign) in &encoded {
                    if results.get(key)?.is_some() {
                        outcome.push(Inserted::Duplicate);
                    } else {
                        results.insert(key.as_slice(), value.as_slice())?;
                        by_time.insert(time.as_slice(), &[])?;
                        if let Some(index) = campaign {
                            by_campaign.insert(index.as_slice(), &[])?;
                        }
                        outcome.push(Inserted::New);
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(outcome)
            })
            .map_err(|e: TransactionError<()>| StoreError::Backend(format!("{e:?}")))
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
