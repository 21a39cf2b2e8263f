//! Probes, task ids and assignments, rollups, tag history and campaigns: small versioned
//! records, newest version read with `LIMIT 1 BY`.

use super::ClickHouseStore;
use super::rows::{self, quote};
use crate::store::{ProbeRecord, StoreError, TagEvent};
use serde_json::json;
use sixmap_shared::{ProbeId, TaskId};

/// Most (probe, task) pairs remembered as assigned (about 100 bytes each).
const MAX_KNOWN_ASSIGNMENTS: usize = 1_000_000;

/// A task id from a definition: the first 63 bits of its SHA-256, never 0.
pub fn task_id_of(definition: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, definition.as_bytes());
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&digest.as_ref()[..8]);
    (u64::from_be_bytes(raw) >> 1).max(1)
}

fn utf8<'a>(what: &str, bytes: &'a [u8]) -> Result<&'a str, StoreError> {
    std::str::from_utf8(bytes)
        .map_err(|e| StoreError::Backend(format!("{what} is not UTF-8 text: {e}")))
}

impl ClickHouseStore {
    /// Inserts rows (JSON objects) into a table in one INSERT.
    pub(super) fn insert_rows(
        &self,
        name: &str,
        rows: &[serde_json::Value],
    ) -> Result<(), StoreError> {
        self.client.insert(
            &format!("INSERT INTO {} FORMAT JSONEachRow", self.table(name)),
            rows::each_row(rows),
        )
    }

    /// The answer's lines, split into fields.
    pub(super) fn select(&self, sql: &str) -> Result<Vec<Vec<Vec<u8>>>, StoreError> {
        Ok(rows::lines(&self.client.query(sql)?).collect())
    }

    /// The single-column JSON values of an answer.
    pub(super) fn select_json<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        sql: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.select(sql)?
            .iter()
            .map(|f| rows::json(table, f.first().map_or(&[][..], Vec::as_slice)))
            .collect()
    }

    pub(super) fn create_probe_row(&self, probe: &ProbeRecord) -> Result<(), StoreError> {
        // Probe ids are 128-bit random values made at enrollment, so two collectors never
        // create the same one at once; the check catches a retried enrollment.
        if self.probe_row(&probe.id)?.is_some() {
            return Err(StoreError::ProbeExists(probe.id.clone()));
        }
        self.put_probe_row(probe)
    }

    pub(super) fn put_probe_row(&self, probe: &ProbeRecord) -> Result<(), StoreError> {
        self.insert_rows(
            "probes",
            &[json!({
                "id": probe.id.as_str(),
                "version": self.versions.next(),
                "json": rows::to_json(probe)?,
            })],
        )
    }

    pub(super) fn probe_row(&self, id: &ProbeId) -> Result<Option<ProbeRecord>, StoreError> {
        let table = self.table("probes");
        Ok(self
            .select_json(
                &table,
                &format!(
                    "SELECT json FROM {table} WHERE id = {} ORDER BY version DESC LIMIT 1 \
                     FORMAT TabSeparated",
                    quote(id.as_str())
                ),
            )?
            .pop())
    }

    pub(super) fn probe_rows(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        let table = self.table("probes");
        self.select_json(
            &table,
            &format!(
                "SELECT json FROM {table} ORDER BY id, version DESC LIMIT 1 BY id \
                 FORMAT TabSeparated"
            ),
        )
    }

    pub(super) fn task_id_for(&self, definition: &str) -> Result<TaskId, StoreError> {
        let id = task_id_of(definition);
        let task = TaskId::new(id).map_err(|e| StoreError::Backend(e.to_string()))?;
        let known = |store: &Self| {
            store
                .known_tasks
                .lock()
                .map(|known| known.contains(definition))
                .unwrap_or(false)
        };
        if known(self) {
            return Ok(task);
        }
        let table = self.table("tasks");
        let stored = self.select(&format!(
            "SELECT definition FROM {table} WHERE task_id = {id} FORMAT TabSeparated"
        ))?;
        for fields in &stored {
            let other = rows::text(&table, fields.first().map_or(&[][..], Vec::as_slice))?;
            if other != definition {
                return Err(StoreError::Corrupt {
                    key: format!("{table}/{id}"),
                    reason: format!(
                        "task id {id} of {definition:?} is already the id of {other:?} \
                         (hash collision)"
                    ),
                });
            }
        }
        if stored.is_empty() {
            self.insert_rows(
                "tasks",
                &[json!({ "task_id": id, "definition": definition })],
            )?;
        }
        if let Ok(mut known) = self.known_tasks.lock() {
            known.insert(definition.to_owned());
        }
        Ok(task)
    }

    pub(super) fn insert_assignment(
        &self,
        probe: &ProbeId,
        task: TaskId,
    ) -> Result<(), StoreError> {
        self.insert_rows(
            "assignments",
            &[json!({ "probe_id": probe.as_str(), "task_id": task.get() })],
        )
    }

    pub(super) fn assignment_exists(
        &self,
        probe: &ProbeId,
        task: TaskId,
    ) -> Result<bool, StoreError> {
        let key = (probe.as_str().to_owned(), task.get());
        if self
            .known_assignments
            .lock()
            .is_ok_and(|known| known.contains(&key))
        {
            return Ok(true);
        }
        let answer = self.client.query(&format!(
            "SELECT count() FROM {} WHERE probe_id = {} AND task_id = {} FORMAT TabSeparated",
            self.table("assignments"),
            quote(probe.as_str()),
            task.get()
        ))?;
        let assigned = answer.trim() != "0";
        if assigned && let Ok(mut known) = self.known_assignments.lock() {
            // Bounded: past this many pairs, start over rather than grow without limit.
            if known.len() >= MAX_KNOWN_ASSIGNMENTS {
                known.clear();
            }
            known.insert(key);
        }
        Ok(assigned)
    }

    pub(super) fn put_rollup_row(
        &self,
        day: &str,
        country: &str,
        json: &[u8],
    ) -> Result<(), StoreError> {
        self.insert_rows(
            "rollups",
            &[json!({
                "country": country,
                "day": day,
                "version": self.versions.next(),
                "json": utf8("rollup", json)?,
            })],
        )
    }

    pub(super) fn rollup_rows(&self, country: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let table = self.table("rollups");
        self.select(&format!(
            "SELECT day, json FROM {table} WHERE country = {} \
             ORDER BY day, version DESC LIMIT 1 BY day FORMAT TabSeparated",
            quote(country)
        ))?
        .into_iter()
        .map(|fields| match <[Vec<u8>; 2]>::try_from(fields) {
            Ok([day, json]) => Ok((rows::text(&table, &day)?, json)),
            Err(_) => Err(rows::corrupt(&table, "expected day, json")),
        })
        .collect()
    }

    pub(super) fn rollup_rows_of_day(
        &self,
        day: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let table = self.table("rollups");
        self.select(&format!(
            "SELECT country, json FROM {table} WHERE day = {} \
             ORDER BY country, version DESC LIMIT 1 BY country FORMAT TabSeparated",
            quote(day)
        ))?
        .into_iter()
        .map(|fields| match <[Vec<u8>; 2]>::try_from(fields) {
            Ok([key, json]) => Ok((rows::text(&table, &key)?, json)),
            Err(_) => Err(rows::corrupt(&table, "expected country, json")),
        })
        .collect()
    }

    /// An ordering value for appended rows: microseconds then 10 random bits, so rows of one
    /// microsecond from several collectors do not collide.
    pub(super) fn append_nonce(&self) -> Result<u64, StoreError> {
        Ok((self.versions.next() << 10) | (rows::nonce()? & 0x3ff))
    }

    pub(super) fn insert_tag_event(
        &self,
        probe: &ProbeId,
        event: &TagEvent,
    ) -> Result<(), StoreError> {
        self.insert_rows(
            "tag_history",
            &[json!({
                "probe_id": probe.as_str(),
                "at": event.at.0,
                "nonce": self.append_nonce()?,
                "json": rows::to_json(event)?,
            })],
        )
    }

    pub(super) fn tag_events(&self, probe: &ProbeId) -> Result<Vec<TagEvent>, StoreError> {
        let table = self.table("tag_history");
        self.select_json(
            &table,
            &format!(
                "SELECT json FROM {table} WHERE probe_id = {} ORDER BY at, nonce \
                 LIMIT 1 BY at, nonce FORMAT TabSeparated",
                quote(probe.as_str())
            ),
        )
    }

    pub(super) fn put_campaign_row(&self, id: u64, json: &[u8]) -> Result<(), StoreError> {
        self.insert_rows(
            "campaigns",
            &[json!({
                "id": id,
                "version": self.versions.next(),
                "json": utf8("campaign record", json)?,
            })],
        )
    }

    pub(super) fn campaign_row(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .select(&format!(
                "SELECT json FROM {} WHERE id = {id} ORDER BY version DESC LIMIT 1 \
                 FORMAT TabSeparated",
                self.table("campaigns")
            ))?
            .into_iter()
            .next()
            .and_then(|mut fields| fields.pop()))
    }

    pub(super) fn campaign_rows(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let table = self.table("campaigns");
        self.select(&format!(
            "SELECT id, json FROM {table} ORDER BY id, version DESC LIMIT 1 BY id \
             FORMAT TabSeparated"
        ))?
        .into_iter()
        .map(|fields| match <[Vec<u8>; 2]>::try_from(fields) {
            Ok([id, json]) => Ok((rows::number(&table, &id)?, json)),
            Err(_) => Err(rows::corrupt(&table, "expected id, json")),
        })
        .collect()
    }

    pub(super) fn insert_campaign_link(
        &self,
        task: TaskId,
        campaign: u64,
    ) -> Result<(), StoreError> {
        self.insert_rows(
            "campaign_tasks",
            &[json!({
                "task_id": task.get(),
                "campaign": campaign,
                "version": self.versions.next(),
            })],
        )?;
        if let Ok(mut links) = self.campaign_links.lock() {
            links.insert(task.get(), campaign);
        }
        Ok(())
    }

    pub(super) fn campaign_task_ids(&self, campaign: u64) -> Result<Vec<TaskId>, StoreError> {
        let table = self.table("campaign_tasks");
        self.select(&format!(
            "SELECT task_id, campaign FROM {table} ORDER BY task_id, version DESC \
             LIMIT 1 BY task_id FORMAT TabSeparated"
        ))?
        .into_iter()
        .filter_map(|fields| match <[Vec<u8>; 2]>::try_from(fields) {
            Ok([task, linked]) => match rows::number::<u64>(&table, &linked) {
                Ok(linked) if linked == campaign => Some(
                    rows::number::<u64>(&table, &task)
                        .and_then(|t| TaskId::new(t).map_err(|e| rows::corrupt(&table, e))),
                ),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            },
            Err(_) => Some(Err(rows::corrupt(&table, "expected task_id, campaign"))),
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_stable_nonzero_and_63_bit() {
        let a = task_id_of("ping ::1");
        assert_eq!(a, task_id_of("ping ::1"));
        assert_ne!(a, task_id_of("ping ::2"));
        assert!(a > 0 && a < (1 << 63));
    }
}
