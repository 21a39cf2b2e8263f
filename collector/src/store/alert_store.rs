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
    /// The delivery index: marks alerts pending for `webhook` (stored, no 2xx recorded there
    /// yet) or no longer pending.
    fn set_alerts_pending(
        &self,
        webhook: &str,
        ids: &[String],
        pending: bool,
    ) -> Result<(), StoreError> {
        let _ = (webhook, ids, pending);
        Err(no_alerts())
    }
    /// The stored alerts pending for `webhook`, by id: what its delivery reads, never the
    /// whole outbox. Index entries of dropped alerts are left out.
    fn pending_alerts(&self, webhook: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let _ = webhook;
        Err(no_alerts())
    }
    /// The alert rules made over the API (`crate::alerts::rules_api`), by id.
    fn alert_rules(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Err(no_alerts())
    }
    /// Stores a rule unless one with this id is stored: true when it was new.
    fn insert_alert_rule(&self, id: &str, json: &[u8]) -> Result<bool, StoreError> {
        let _ = (id, json);
        Err(no_alerts())
    }
    /// Deletes a stored rule: true when it was there.
    fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
        let _ = id;
        Err(no_alerts())
    }
}

fn no_alerts() -> StoreError {
    StoreError::Backend("this storage backend keeps no alerts".into())
}
