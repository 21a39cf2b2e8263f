//! Where the collector keeps probes, task assignments and results.
//!
//! [`Store`] is the seam for backends: sled (embedded, the default) now, ClickHouse later.
//! Methods are synchronous and quick except [`Store::flush`]; async callers run `flush` on a
//! blocking thread.

mod sled_store;

pub use sled_store::SledStore;

use serde::{Deserialize, Serialize};
use sixmap_shared::measurement::MeasurementResult;
use sixmap_shared::{ProbeId, ProbeSecret, TaskId, UnixMicros};
use std::net::IpAddr;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("probe {0} is already registered")]
    ProbeExists(ProbeId),
}

/// What the collector knows about an enrolled probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub id: ProbeId,
    pub secret: ProbeSecret,
    pub hostname: String,
    pub enrolled_at: UnixMicros,
    pub last_seen: Option<UnixMicros>,
    pub software_version: Option<String>,
    pub boot_epoch: Option<u64>,
    pub local_addresses: Vec<IpAddr>,
}

/// Whether an inserted result was new or already stored under the same idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    Duplicate,
}

#[derive(Debug, Clone, Default)]
pub struct ResultQuery {
    pub probe: Option<ProbeId>,
    /// Newest first, at most this many.
    pub limit: usize,
}

/// Runs store work on a blocking thread, so async workers never wait on disk I/O.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
}

pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Registers a newly enrolled probe; fails if the id exists.
    fn create_probe(&self, probe: &ProbeRecord) -> Result<(), StoreError>;
    /// Replaces an existing probe's record (last seen, version...).
    fn update_probe(&self, probe: &ProbeRecord) -> Result<(), StoreError>;
    fn probe(&self, id: &ProbeId) -> Result<Option<ProbeRecord>, StoreError>;
    fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError>;

    /// The stable task id for a task definition, created on first use.
    fn task_id(&self, definition: &str) -> Result<TaskId, StoreError>;
    fn record_assignment(&self, probe: &ProbeId, task: TaskId) -> Result<(), StoreError>;
    fn is_assigned(&self, probe: &ProbeId, task: TaskId) -> Result<bool, StoreError>;

    /// Stores results unless their idempotency key is already present.
    fn insert_results(&self, results: &[MeasurementResult]) -> Result<Vec<Inserted>, StoreError>;
    fn results(&self, query: &ResultQuery) -> Result<Vec<MeasurementResult>, StoreError>;

    /// Makes everything written so far durable. Acks are sent only after this returns.
    fn flush(&self) -> Result<(), StoreError>;
}
