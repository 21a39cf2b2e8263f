//! [`AlertStore`] on ClickHouse: the `alerts` table (schema 4), versioned rows like the other
//! records, newest version read with `LIMIT 1 BY id`; a deletion is a newer row with
//! `present = 0`, so a dropped alert is never stored again. A new alert is stored once
//! across collectors by the claim protocol (`claims`, scope `alert`, per id and minute):
//! two collectors detecting the same event in the same minute insert one row; across a
//! minute boundary both may, which costs one more delivery (receivers deduplicate by id).

use super::ClickHouseStore;
use super::rows::{self, quote};
use crate::store::{AlertStore, StoreError};
use serde_json::json;
use sixmap_shared::UnixMicros;

fn text(json: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(json)
        .map_err(|e| StoreError::Backend(format!("alert record is not UTF-8 text: {e}")))
}

impl ClickHouseStore {
    fn put_alert_row(&self, id: &str, json: &str, present: bool) -> Result<(), StoreError> {
        self.insert_rows(
            "alerts",
            &[json!({
                "id": id,
                "version": self.versions.next(),
                "present": u8::from(present),
                "json": json,
            })],
        )
    }

    /// The newest row of `id`: whether it is present.
    fn alert_present(&self, id: &str) -> Result<Option<bool>, StoreError> {
        let table = self.table("alerts");
        Ok(self
            .select(&format!(
                "SELECT present FROM {table} WHERE id = {} ORDER BY version DESC LIMIT 1 \
                 FORMAT TabSeparated",
                quote(id)
            ))?
            .into_iter()
            .next()
            .map(|fields| fields.first().is_some_and(|f| f.as_slice() == b"1")))
    }
}

impl AlertStore for ClickHouseStore {
    fn insert_alert(&self, id: &str, json: &[u8]) -> Result<bool, StoreError> {
        if self.alert_present(id)?.is_some() {
            return Ok(false);
        }
        // Claimed per minute: when every claimant lost (each was slower than the claim's
        // settle time) nobody stores it, and a claim on the id alone would block it for
        // good; the next evaluation, a minute later, claims afresh. A row stored meanwhile
        // is found above first.
        let minute = UnixMicros::now().0.div_euclid(60_000_000);
        if !self.claim("alert", &format!("{id}:{minute}"))? {
            return Ok(false);
        }
        self.put_alert_row(id, text(json)?, true)?;
        Ok(true)
    }

    fn update_alert(&self, id: &str, json: &[u8]) -> Result<(), StoreError> {
        // Only an alert still stored is updated: one dropped meanwhile stays dropped.
        if self.alert_present(id)? == Some(true) {
            self.put_alert_row(id, text(json)?, true)?;
        }
        Ok(())
    }

    fn alerts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let table = self.table("alerts");
        let mut out = Vec::new();
        for fields in self.select(&format!(
            "SELECT id, present, json FROM {table} ORDER BY id, version DESC LIMIT 1 BY id \
             FORMAT TabSeparated"
        ))? {
            let Ok([id, present, json]) = <[Vec<u8>; 3]>::try_from(fields) else {
                return Err(rows::corrupt(&table, "expected id, present, json"));
            };
            if present.as_slice() == b"1" {
                out.push((rows::text(&table, &id)?, json));
            }
        }
        Ok(out)
    }

    fn delete_alerts(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                json!({
                    "id": id,
                    "version": self.versions.next(),
                    "present": 0u8,
                    "json": "",
                })
            })
            .collect();
        self.insert_rows("alerts", &rows)
    }

    fn set_alerts_pending(
        &self,
        webhook: &str,
        ids: &[String],
        pending: bool,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                json!({
                    "webhook": webhook,
                    "id": id,
                    "version": self.versions.next(),
                    "pending": u8::from(pending),
                })
            })
            .collect();
        self.insert_rows("alert_pending", &rows)
    }

    fn pending_alerts(&self, webhook: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let (alerts, pending) = (self.table("alerts"), self.table("alert_pending"));
        // The webhook's newest index rows that say pending, then those alerts' newest rows:
        // the outbox is read only for them. GLOBAL: with a cluster the subquery runs once.
        let mut out = Vec::new();
        for fields in self.select(&format!(
            "SELECT id, present, json FROM {alerts} WHERE id GLOBAL IN (SELECT id FROM \
             (SELECT id, pending FROM {pending} WHERE webhook = {hook} \
             ORDER BY id, version DESC LIMIT 1 BY id) WHERE pending = 1) \
             ORDER BY id, version DESC LIMIT 1 BY id FORMAT TabSeparated",
            hook = quote(webhook)
        ))? {
            let Ok([id, present, json]) = <[Vec<u8>; 3]>::try_from(fields) else {
                return Err(rows::corrupt(&alerts, "expected id, present, json"));
            };
            if present.as_slice() == b"1" {
                out.push((rows::text(&alerts, &id)?, json));
            }
        }
        Ok(out)
    }

    fn alert_rules(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let table = self.table("alert_rules");
        let mut out = Vec::new();
        for fields in self.select(&format!(
            "SELECT id, present, json FROM {table} ORDER BY id, version DESC LIMIT 1 BY id \
             FORMAT TabSeparated"
        ))? {
            let Ok([id, present, json]) = <[Vec<u8>; 3]>::try_from(fields) else {
                return Err(rows::corrupt(&table, "expected id, present, json"));
            };
            if present.as_slice() == b"1" {
                out.push((rows::text(&table, &id)?, json));
            }
        }
        Ok(out)
    }

    fn insert_alert_rule(&self, id: &str, json: &[u8]) -> Result<bool, StoreError> {
        // Two collectors creating the same id at once: the claim lets one through. It names
        // the id's newest version too, so an id deleted (a newer row) can be created again.
        let (present, version) = self.rule_state(id)?;
        if present || !self.claim("alert-rule", &format!("{id}:{version}"))? {
            return Ok(false);
        }
        self.put_rule_row(id, text(json)?, true)?;
        Ok(true)
    }

    fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
        if !self.rule_state(id)?.0 {
            return Ok(false);
        }
        self.put_rule_row(id, "", false)?;
        Ok(true)
    }
}

impl ClickHouseStore {
    fn put_rule_row(&self, id: &str, json: &str, present: bool) -> Result<(), StoreError> {
        self.insert_rows(
            "alert_rules",
            &[json!({
                "id": id,
                "version": self.versions.next(),
                "present": u8::from(present),
                "json": json,
            })],
        )
    }

    /// Whether rule `id` is stored, and the version of its newest row (0: none). Merges keep
    /// the newest row, so the version only grows.
    fn rule_state(&self, id: &str) -> Result<(bool, u64), StoreError> {
        let table = self.table("alert_rules");
        let newest = self
            .select(&format!(
                "SELECT present, version FROM {table} WHERE id = {} ORDER BY version DESC \
                 LIMIT 1 FORMAT TabSeparated",
                quote(id)
            ))?
            .into_iter()
            .next();
        match newest.as_deref() {
            None => Ok((false, 0)),
            Some([present, version]) => {
                Ok((present.as_slice() == b"1", rows::number(&table, version)?))
            }
            Some(_) => Err(rows::corrupt(&table, "expected present, version")),
        }
    }
}
