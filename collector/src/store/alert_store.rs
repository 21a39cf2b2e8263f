//! [`AlertStore`]: where a backend keeps the alert outbox of `crate::alerts` (alert id →
//! JSON record with its delivery state per webhook). A supertrait of `Store`, like
//! `FigureStore`, so each backend implements it in its own file.
//!
//! The default bodies keep no alerts (ClickHouse today): the alert task then logs the
//! refusal and delivers nothing.

use super::StoreError;

pub trait AlertStore {
    /// Stores a new alert unless one with this id is stored (the same event detected twice,
    /// by this process or before a restart): true when it was new.
    fn insert_alert(&self, id: &str, json: &[u8]) -> Result<bool, StoreError> {
        let _ = (id, json);
        Err(no_alerts())
    }
    /// Replaces a stored alert's record (its delivery state); a dropped alert stays dropped.
    fn update_alert(&self, id: &str, json: &[u8]) -> Result<(), StoreError> {
        let _ = (id, json);
        Err(no_alerts())
    }
    /// Every stored alert, by id. Bounded by the outbox's cap (`crate::alerts`).
    fn alerts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Err(no_alerts())
    }
    /// Drops alerts (the outbox over its cap).
    fn delete_alerts(&self, ids: &[String]) -> Result<(), StoreError> {
        let _ = ids;
        Err(no_alerts())
    }
}

fn no_alerts() -> StoreError {
    StoreError::Backend("this storage backend keeps no alerts".into())
}
