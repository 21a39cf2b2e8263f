//! The sled store's shared vocabulary: the handle and its trees, the results tree's key
//! prefixes, and the helpers every `sled_*` module uses. A leaf: it imports no other `sled_*`
//! module, so the modules that implement the store's traits (`sled_store`, `sled_auth`,
//! `sled_figures`) and the layouts they use (`sled_index`, `sled_log`, `migrate`) all depend
//! on it and never on each other in a circle.

use super::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// Values in JSON (records, and results written before the compact layout).
pub(super) const FORMAT_JSON: u8 = 1;

/// The tree of results, indexes and log (module doc).
pub(super) const RESULTS_TREE: &str = "results_v2";
pub(super) const ROW: u8 = b'r';
pub(super) const BY_KEY: u8 = b'k';
pub(super) const BY_CAMPAIGN: u8 = b'c';
pub(super) const LOG: u8 = b'l';
pub(super) const LOG_HEAD: &[u8] = b"h";
/// Campaign cells (`sled_cells`) and how far they were built from the campaign index.
pub(super) const CELL: u8 = b's';
pub(super) const CELLS_CURSOR: &[u8] = b"t";
/// The ingest-log head the campaign cells count up to, written with every stored batch by
/// releases that keep cells; behind [`LOG_HEAD`] at open when a release without cells
/// stored results meanwhile (a rollback), and the cells are then rebuilt (`sled_cells`).
pub(super) const CELLS_HEAD: &[u8] = b"u";

/// sled's page cache when the config says nothing: with it the collector stays under 1 GiB
/// resident at full ingest (sled's own default is 1 GiB of cache alone).
pub const DEFAULT_CACHE_MB: u64 = 256;

#[derive(Debug, Clone)]
pub struct SledStore {
    pub(super) db: sled::Db,
    /// Tokens, certificates and the audit log (`sled_auth`).
    pub(super) auth: AuthTrees,
    /// Figures kept at ingest (`sled_figures`).
    pub(super) figures: FigureTrees,
    pub(super) probes: sled::Tree,
    pub(super) tasks: sled::Tree,
    pub(super) assignments: sled::Tree,
    pub(super) losses: sled::Tree,
    pub(super) tag_history: sled::Tree,
    pub(super) rollups: sled::Tree,
    pub(super) campaigns: sled::Tree,
    pub(super) campaign_tasks: sled::Tree,
    pub(super) results: sled::Tree,
    /// Held while a batch is checked for duplicates, given log positions and written, so
    /// positions increase in commit order (a reader never sees a position before a smaller
    /// one that commits later) and two writers of one key cannot both store it. Holds the
    /// newest position given.
    pub(super) writer: Arc<Mutex<u64>>,
    /// `campaign_tasks`, read by every result stored: task id → campaign id. Updated under
    /// its write lock together with the tree.
    pub(super) campaign_of: Arc<RwLock<HashMap<u64, u64>>>,
    /// What opening it migrated from the earlier layout.
    pub(super) migrated: Migrated,
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

/// `prefix` ‖ the parts, as one key.
pub(super) fn key_of(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    key.push(prefix);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

pub(super) fn log_key(position: u64) -> Vec<u8> {
    key_of(LOG, &[&position.to_be_bytes()])
}

pub(super) fn u64_of(key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("expected 8 bytes, found {}", bytes.len()),
        })
}

pub(super) fn poisoned() -> StoreError {
    StoreError::Backend("store lock poisoned".into())
}

/// The trees behind `AuthStore` (`sled_auth`), opened with the rest of the store.
#[derive(Debug, Clone)]
pub(super) struct AuthTrees {
    pub(super) enrollment_tokens: sled::Tree,
    pub(super) api_tokens: sled::Tree,
    pub(super) certificates: sled::Tree,
    pub(super) audit: sled::Tree,
    pub(super) owner_index: sled::Tree,
    pub(super) owner_counts: sled::Tree,
    pub(super) meta: sled::Tree,
}

/// The tree behind `FigureStore` (`sled_figures`).
#[derive(Debug, Clone)]
pub(super) struct FigureTrees {
    pub(super) figures: sled::Tree,
}

/// What a migration did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Results moved into the time-ordered layout.
    pub results: u64,
    /// Campaign index entries moved.
    pub campaign_entries: u64,
    /// Whether no row of the earlier layout is left.
    pub complete: bool,
    /// Per-result index entries converted to index blocks (`sled_index`).
    pub index_entries: u64,
    /// Campaign index entries counted into campaign cells (`sled_cells`).
    pub cell_entries: u64,
}
