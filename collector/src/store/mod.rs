//! Where the collector keeps probes, task assignments and results.
//!
//! [`Store`] is the seam for backends: sled (embedded, the default) and ClickHouse (shared by
//! several collectors; `clickhouse`).
//! Methods are synchronous and quick except [`Store::flush`]; async callers run `flush` on a
//! blocking thread.

pub mod alert_store;
pub mod auth;
pub mod clickhouse;
pub mod figure_store;
pub mod filter;
mod migrate;
mod result_codec;
mod sled_alerts;
mod sled_auth;
mod sled_cells;
mod sled_db;
mod sled_figures;
mod sled_index;
mod sled_log;
mod sled_store;

pub use alert_store::AlertStore;
pub use auth::{ApiTokenRecord, AuditEntry, AuthStore, EnrollmentTokenRecord, Role};
pub use clickhouse::{ClickHouseConfig, ClickHouseStore};
pub use figure_store::{FigureStore, FigureWrite};
pub use filter::{
    KindFilter, ResultCursor, ResultFilter, ScanBudget, ScanEnd, ScanPlan, TargetFilter,
    scan_filtered, scan_filtered_bounded,
};
pub use migrate::Migrated;
pub use result_codec::Undecoded;
pub use sled_db::{DEFAULT_CACHE_MB, SledStore};

/// Held around every read-modify-write of a probe record (session updates, revocation, the
/// directory listing): the store has no compare-and-swap of records, so without it a write
/// made from a stale copy undid another (an owner toggling their listing could undo an
/// operator's revocation). One collector process; collectors sharing a store do not share it.
/// Striped by probe, so sessions of different probes do not wait for each other.
pub fn probe_record_lock(probe: &ProbeId) -> std::sync::MutexGuard<'static, ()> {
    use std::hash::{Hash, Hasher};
    static LOCKS: [std::sync::Mutex<()>; 64] = [const { std::sync::Mutex::new(()) }; 64];
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    probe.hash(&mut hasher);
    let stripe = usize::try_from(hasher.finish() % 64).unwrap_or(0);
    // Nothing guarded can be left half-done by a panic: the record is written whole.
    LOCKS[stripe]
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

use serde::{Deserialize, Serialize};
use sixmap_shared::health::{OutboxLoss, ProbeTag, SelfTest, TagName};
use sixmap_shared::measurement::MeasurementResult;
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("probe {0} is already registered")]
    ProbeExists(ProbeId),
    /// A read stopped because the request it served was dropped (its client went away or
    /// its deadline passed): `limits::readers::check`.
    #[error("the read was stopped: its client went away or its deadline passed")]
    Cancelled,
}

/// What the collector knows about an enrolled probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub id: ProbeId,
    pub hostname: String,
    pub enrolled_at: UnixMicros,
    pub last_seen: Option<UnixMicros>,
    pub software_version: Option<String>,
    pub boot_epoch: Option<u64>,
    pub local_addresses: Vec<IpAddr>,
    /// The probe's latest self-test.
    #[serde(default)]
    pub self_test: Option<SelfTest>,
    /// Start of the newest successful measurement over IPv6, for the v6-works tag.
    #[serde(default)]
    pub last_v6_success: Option<UnixMicros>,
    /// Tags computed by the collector (never sent by the probe), with since when they hold.
    #[serde(default)]
    pub tags: Vec<ProbeTag>,
    /// Where the volunteer says the probe is, rounded to a tenth of a degree.
    #[serde(default)]
    pub location: Option<sixmap_shared::session::CoarseLocation>,
    /// Origin AS and country of the probe's address, from the prefix data at its last hello.
    #[serde(default)]
    pub origin: Option<Enrichment>,
    /// Owner of the enrollment token it enrolled with (enrollment caps count per owner).
    #[serde(default)]
    pub owner: Option<String>,
    /// Address its enrollment came from, and the routed prefix holding it then.
    #[serde(default)]
    pub enrolled_from: Option<IpAddr>,
    #[serde(default)]
    pub enrolled_prefix: Option<(IpAddr, u8)>,
    /// SHA-256 (hex) of the client certificate issued at enrollment.
    #[serde(default)]
    pub certificate_sha256: Option<String>,
    /// Set when an admin revoked the probe: it is refused at hello from then on.
    #[serde(default)]
    pub revoked_at: Option<UnixMicros>,
    /// Its owner agreed to list it in the public probe directory (`directory`); off unless
    /// they say so.
    #[serde(default)]
    pub directory_listed: bool,
}

impl ProbeRecord {
    /// A probe enrolled at `enrolled_at`, not seen since, with nothing else known yet; the
    /// other fields are set by struct update (`ProbeRecord { owner, ..ProbeRecord::new(..) }`).
    pub fn new(id: ProbeId, hostname: impl Into<String>, enrolled_at: UnixMicros) -> Self {
        Self {
            id,
            hostname: hostname.into(),
            enrolled_at,
            last_seen: None,
            software_version: None,
            boot_epoch: None,
            local_addresses: Vec::new(),
            self_test: None,
            last_v6_success: None,
            tags: Vec::new(),
            location: None,
            origin: None,
            owner: None,
            enrolled_from: None,
            enrolled_prefix: None,
            certificate_sha256: None,
            revoked_at: None,
            directory_listed: false,
        }
    }
}

/// A result as stored: the probe's result and what the prefix data said at ingest about the
/// addresses involved. The enrichment sits beside the result, so the result stays exactly
/// what the probe sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResult {
    #[serde(flatten)]
    pub result: MeasurementResult,
    /// Origin AS and country of the probe's source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_origin: Option<Enrichment>,
    /// Origin AS and country of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_origin: Option<Enrichment>,
    /// Where the failure the result shows lies and whose network that is (`crate::blame`),
    /// for results that carry a fault path; made at ingest from the prefix data then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blame: Option<crate::blame::Blame>,
}

impl From<MeasurementResult> for StoredResult {
    fn from(result: MeasurementResult) -> Self {
        Self {
            result,
            probe_origin: None,
            target_origin: None,
            blame: None,
        }
    }
}

/// What a campaign's reports need of the results of one (task, probe): kept by the store as
/// results come in, so a report or a progress check reads one cell per (task, probe), not
/// every result (issue #18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignCell {
    pub task_id: TaskId,
    pub probe_id: ProbeId,
    /// Results stored (each result key once).
    pub results: u64,
    /// Of those, results whose destination answered.
    pub reached: u64,
    /// The others, by [`failure_class`].
    pub failures: BTreeMap<String, u64>,
    /// The newest result by [`is_newer`].
    pub latest: StoredResult,
}

impl CampaignCell {
    /// A cell holding one result.
    pub fn new(first: StoredResult) -> Self {
        let mut cell = Self {
            task_id: first.result.task_id,
            probe_id: first.result.key.probe_id.clone(),
            results: 0,
            reached: 0,
            failures: BTreeMap::new(),
            latest: first.clone(),
        };
        cell.count(&first);
        cell
    }

    /// Counts one more result of this cell (never the same result key twice: callers
    /// deduplicate) and keeps it if it is the newest.
    pub fn add(&mut self, result: StoredResult) {
        self.count(&result);
        if is_newer(&result, &self.latest) {
            self.latest = result;
        }
    }

    fn count(&mut self, result: &StoredResult) {
        self.results += 1;
        match failure_class(&result.result.outcome) {
            None => self.reached += 1,
            Some(class) => *self.failures.entry(class.to_owned()).or_default() += 1,
        }
    }
}

/// Why a result did not reach its destination: `unreached` when the measurement ran but
/// nothing answered, else the class of the failure to run (`resolution`, `network`...);
/// `None` when the destination answered.
pub fn failure_class(outcome: &sixmap_shared::measurement::Outcome) -> Option<&'static str> {
    use sixmap_shared::measurement::Outcome;
    if outcome.reached_destination() {
        return None;
    }
    Some(match outcome {
        Outcome::Failed(e) => e.class.label(),
        _ => "unreached",
    })
}

/// Whether `a` is newer than `b`: later start, ties broken by the larger result key, so the
/// latest result is the same whatever order a store reads results in.
pub fn is_newer(a: &StoredResult, b: &StoredResult) -> bool {
    (a.result.started_at, &a.result.key) > (b.result.started_at, &b.result.key)
}

/// The cells of `results` (each result key once), by (task, probe): what a store without
/// cells of its own answers, and the reference the stores' cells are tested against.
pub fn fold_cells(results: impl IntoIterator<Item = StoredResult>) -> Vec<CampaignCell> {
    let mut cells: BTreeMap<(TaskId, ProbeId), CampaignCell> = BTreeMap::new();
    for r in results {
        match cells.entry((r.result.task_id, r.result.key.probe_id.clone())) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(r),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(CampaignCell::new(r));
            }
        }
    }
    cells.into_values().collect()
}

/// A change of a probe's tags, kept as history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagEvent {
    pub at: UnixMicros,
    pub added: Vec<TagName>,
    pub removed: Vec<TagName>,
}

/// Whether an inserted result was new or already stored under the same idempotency key.
/// ClickHouse asks nothing at ingest: there `Duplicate` means seen lately by this collector,
/// and a result stored earlier elsewhere counts as `New` (stored again, read once).
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

pub trait Store:
    AuthStore + FigureStore + AlertStore + Send + Sync + std::fmt::Debug + 'static
{
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
    fn insert_results(&self, results: &[StoredResult]) -> Result<Vec<Inserted>, StoreError>;

    /// [`Store::insert_results`], also saying where the new results went in the ingest log:
    /// the position of the first; the others follow in the order of their `New` outcomes.
    /// `None` where the store gives no positions (the default), or nothing was new.
    fn insert_results_logged(
        &self,
        results: &[StoredResult],
    ) -> Result<(Vec<Inserted>, Option<u64>), StoreError> {
        Ok((self.insert_results(results)?, None))
    }
    fn results(&self, query: &ResultQuery) -> Result<Vec<StoredResult>, StoreError>;

    /// Results that started in `[from, to)`, oldest first, calling `visit` for each; stops
    /// early when `visit` returns false.
    fn scan_results_between(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError>;

    /// [`Store::scan_results_between`] handing each result over before it is decoded, so
    /// the caller can decode on other threads. The default decodes here.
    fn scan_undecoded_between(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(Undecoded) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_results_between(from, to, &mut |stored| visit(Undecoded::ready(stored)))
    }

    /// Stores a day's rollup for a country (JSON), replacing an earlier one.
    fn put_rollup(&self, day: &str, country: &str, json: &[u8]) -> Result<(), StoreError>;
    /// A country's stored daily rollups, oldest first, as (day, JSON).
    fn rollups(&self, country: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Every rollup stored for one day (`YYYY-MM-DD`), as (key, JSON), ordered by key: the
    /// countries by code, the networks as `asn:N`, and the countries' operators' parts as
    /// `parts:CC` (`daily::parts_key`). O(rollups of that day).
    fn rollups_of_day(&self, day: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Stores probes' loss records unless their key is already present (first version wins).
    fn insert_losses(&self, losses: &[OutboxLoss]) -> Result<Vec<Inserted>, StoreError>;
    /// Loss records, newest key first per probe.
    fn losses(&self, query: &ResultQuery) -> Result<Vec<OutboxLoss>, StoreError>;

    /// Appends to a probe's tag history.
    fn record_tag_event(&self, probe: &ProbeId, event: &TagEvent) -> Result<(), StoreError>;
    /// A probe's tag history, oldest first.
    fn tag_history(&self, probe: &ProbeId) -> Result<Vec<TagEvent>, StoreError>;

    /// Makes everything written so far durable. Acks are sent only after this returns.
    fn flush(&self) -> Result<(), StoreError>;

    // The ingest log: every new result once, in the order it was stored, so figures kept
    // beside the results (`crate::figures`) are folded in exactly once, whatever the results'
    // start times. A duplicate is never logged. Written in the same commit as the result.

    /// Results logged after position `after`, in log order, at most `max`, calling `visit`
    /// with each one's position (positions only increase); stops when `visit` returns false.
    fn ingest_log_after(
        &self,
        after: u64,
        max: usize,
        visit: &mut dyn FnMut(u64, StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        let _ = (after, max, visit);
        Err(StoreError::Backend(
            "this storage backend keeps no ingest log".into(),
        ))
    }
    /// The newest log position (0 when the log is empty): where a rebuild from raw results
    /// stands, so the fold continues after it.
    fn ingest_log_head(&self) -> Result<u64, StoreError> {
        Err(StoreError::Backend(
            "this storage backend keeps no ingest log".into(),
        ))
    }
    /// Forgets log entries up to and including `upto` (already folded into durable figures).
    fn prune_ingest_log(&self, upto: u64) -> Result<(), StoreError> {
        let _ = upto;
        Err(StoreError::Backend(
            "this storage backend keeps no ingest log".into(),
        ))
    }

    // Campaigns (see `crate::campaign`). Default bodies keep other backends compiling until
    // they store campaigns; the collector then refuses campaign requests with this error.

    /// A new campaign id, never 0 and never reused.
    fn next_campaign_id(&self) -> Result<u64, StoreError> {
        Err(unsupported())
    }
    /// Stores a campaign record (JSON), replacing an earlier version.
    fn put_campaign(&self, id: u64, json: &[u8]) -> Result<(), StoreError> {
        let _ = (id, json);
        Err(unsupported())
    }
    fn campaign(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = id;
        Err(unsupported())
    }
    /// Every campaign record, by id.
    fn campaigns(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Err(unsupported())
    }
    /// Marks `task` as a task of `campaign`: results of it stored from then on are indexed
    /// under the campaign.
    fn link_campaign_task(&self, task: TaskId, campaign: u64) -> Result<(), StoreError> {
        let _ = (task, campaign);
        Err(unsupported())
    }
    /// The tasks linked to a campaign.
    fn campaign_tasks(&self, campaign: u64) -> Result<Vec<TaskId>, StoreError> {
        let _ = campaign;
        Err(unsupported())
    }
    /// The results of a campaign's tasks, by result key; stops when `visit` returns false.
    fn campaign_results(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        let _ = (campaign, visit);
        Err(unsupported())
    }
    /// The cells of a campaign (one per task and probe with results), by task then probe;
    /// stops when `visit` returns false. The default folds [`Store::campaign_results`]:
    /// stores that keep cells answer in O(cells) instead.
    fn campaign_cells(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(CampaignCell) -> bool,
    ) -> Result<(), StoreError> {
        let mut results = Vec::new();
        self.campaign_results(campaign, &mut |r| {
            results.push(r);
            true
        })?;
        for cell in fold_cells(results) {
            if !visit(cell) {
                break;
            }
        }
        Ok(())
    }
}

fn unsupported() -> StoreError {
    StoreError::Backend("this storage backend does not keep campaigns".into())
}
