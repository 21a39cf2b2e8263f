//! [`AlertStore`] on sled: one `alerts` tree, alert id → JSON record. Each write is flushed
//! by the caller (`crate::alerts`), so a detected alert or a recorded delivery survives a
//! crash.

use super::StoreError;
use super::alert_store::AlertStore;
use super::sled_db::{SledStore, backend};

const TREE: &str = "alerts";

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
            .fetch_and_update(id.as_bytes(), |old| old.map(|_| json.to_vec()))
            .map_err(backend)?;
        Ok(())
    }

    fn alerts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.alerts_tree()?
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), value.to_vec()))
            })
            .collect()
    }

    fn delete_alerts(&self, ids: &[String]) -> Result<(), StoreError> {
        let tree = self.alerts_tree()?;
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(id.as_bytes());
        }
        tree.apply_batch(batch).map_err(backend)
    }
}
