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

/// First byte of a dropped alert's marker (a JSON record never starts with it).
const DROPPED: u8 = 0;
/// How long a dropped alert's marker stays.
const MARKER_DAYS: i64 = 8;

impl SledStore {
    fn alerts_tree(&self) -> Result<sled::Tree, StoreError> {
        // sled keeps opened trees in a map, so this is a lookup after the first call.
        self.db.open_tree(TREE).map_err(backend)
    }
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
}

/// The drop time of a marker; `None` for a stored alert.
fn marker_time(value: &[u8]) -> Option<i64> {
    match value {
        [DROPPED, at @ ..] => <[u8; 8]>::try_from(at).ok().map(i64::from_be_bytes),
        _ => None,
    }
}
