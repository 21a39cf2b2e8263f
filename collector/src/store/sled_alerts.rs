//! [`AlertStore`] on sled: one `alerts` tree, alert id → JSON record. Each write is flushed
//! by the caller (`crate::alerts`), so a detected alert or a recorded delivery survives a
//! crash.
//!
//! A dropped alert (outbox over its cap) leaves a marker, byte 0 then the drop time: the rules
//! detect a lasting event again at every evaluation, and without the marker it would be
//! stored and delivered anew each time (ClickHouse keeps a "dropped" row the same way).
//! Markers are pruned after [`MARKER_DAYS`], longer than any rule's window.

use super::StoreError;
use super::alert_store::AlertStore;
use super::sled_db::{SledStore, backend};

const TREE: &str = "alerts";
/// The delivery index: `<webhook> 0x00 <alert id>` → empty, while the alert is pending there.
const PENDING: &str = "alerts_pending";
/// Rules made over the API: rule id → JSON.
const RULES: &str = "alert_rules";

/// First byte of a dropped alert's marker (a JSON record never starts with it).
const DROPPED: u8 = 0;
/// How long a dropped alert's marker stays.
const MARKER_DAYS: i64 = 8;

impl SledStore {
    fn alerts_tree(&self) -> Result<sled::Tree, StoreError> {
        // sled keeps opened trees in a map, so this is a lookup after the first call.
        self.db.open_tree(TREE).map_err(backend)
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(backend)
    }
}

fn pending_key(webhook: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(webhook.len() + 1 + id.len());
    key.extend_from_slice(webhook.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

impl AlertStore for SledStore {
    fn insert_alert(&self, id: &str, json: &[u8]) -> Result<bool, StoreError> {
        let swapped = self
            .alerts_tree()?
            .compare_and_swap(id.as_bytes(), None as Option<&[u8]>, Some(json))
            .map_err(backend)?;
        Ok(swapped.is_ok())
    }

    fn update_alert(&self, id: &str, json: &[u8]) -> Result<(), StoreError> {
        // Only an alert still stored is updated: one dropped meanwhile is not brought back.
        self.alerts_tree()?
            .fetch_and_update(id.as_bytes(), |old| {
                old.map(|old| {
                    if old.first() == Some(&DROPPED) {
                        old.to_vec()
                    } else {
                        json.to_vec()
                    }
                })
            })
            .map_err(backend)?;
        Ok(())
    }

    fn alerts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.alerts_tree()?.iter() {
            let (key, value) = entry.map_err(backend)?;
            if value.first() != Some(&DROPPED) {
                out.push((String::from_utf8_lossy(&key).into_owned(), value.to_vec()));
            }
        }
        Ok(out)
    }

    fn delete_alerts(&self, ids: &[String]) -> Result<(), StoreError> {
        let tree = self.alerts_tree()?;
        let now = sixmap_shared::UnixMicros::now().0;
        let mut batch = sled::Batch::default();
        // Markers older than MARKER_DAYS go.
        for entry in tree.iter() {
            let (key, value) = entry.map_err(backend)?;
            if let Some(at) = marker_time(&value)
                && now.saturating_sub(at) > MARKER_DAYS * 86_400_000_000
            {
                batch.remove(key);
            }
        }
        let mut marker = vec![DROPPED];
        marker.extend_from_slice(&now.to_be_bytes());
        for id in ids {
            batch.insert(id.as_bytes(), marker.as_slice());
        }
        tree.apply_batch(batch).map_err(backend)
    }

    fn set_alerts_pending(
        &self,
        webhook: &str,
        ids: &[String],
        pending: bool,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for id in ids {
            let key = pending_key(webhook, id);
            if pending {
                batch.insert(key, &[] as &[u8]);
            } else {
                batch.remove(key);
            }
        }
        self.tree(PENDING)?.apply_batch(batch).map_err(backend)
    }

    fn pending_alerts(&self, webhook: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let alerts = self.alerts_tree()?;
        let mut out = Vec::new();
        for entry in self.tree(PENDING)?.scan_prefix(pending_key(webhook, "")) {
            let (key, _) = entry.map_err(backend)?;
            let id = &key[webhook.len() + 1..];
            if let Some(value) = alerts.get(id).map_err(backend)?
                && value.first() != Some(&DROPPED)
            {
                out.push((String::from_utf8_lossy(id).into_owned(), value.to_vec()));
            }
        }
        Ok(out)
    }

    fn alert_rules(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree(RULES)?
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), value.to_vec()))
            })
            .collect()
    }

    fn insert_alert_rule(&self, id: &str, json: &[u8]) -> Result<bool, StoreError> {
        let swapped = self
            .tree(RULES)?
            .compare_and_swap(id.as_bytes(), None as Option<&[u8]>, Some(json))
            .map_err(backend)?;
        Ok(swapped.is_ok())
    }

    fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .tree(RULES)?
            .remove(id.as_bytes())
            .map_err(backend)?
            .is_some())
    }
}

/// The drop time of a marker; `None` for a stored alert.
fn marker_time(value: &[u8]) -> Option<i64> {
    match value {
        [DROPPED, at @ ..] => <[u8; 8]>::try_from(at).ok().map(i64::from_be_bytes),
        _ => None,
    }
}
