//! The ClickHouse store: every collector sharing one ClickHouse (or one cluster) sees the
//! same probes, tokens, campaigns and results, so any collector serves any probe.
//!
//! Design (see `schema` for the tables):
//! - **Results** are one row each: typed columns for what queries filter and sort on and what
//!   figures count (time, key, task, campaign, kind, family, destination, origins, reached,
//!   global destination, ping RTT), and the result itself in `raw`, in the compact form the
//!   sled store keeps (`store::result_codec`: the probe's protobuf plus the enrichment), so a
//!   read gives back exactly what was stored. Rows of schema 1 hold JSON in `json` instead
//!   and are read as such.
//! - **Ingest** asks ClickHouse nothing: a batch becomes TabSeparated rows queued in memory
//!   ([`pending`]), and [`Store::flush`] (the group commit, for every session at once) sends
//!   everything queued in one INSERT; acks wait for that flush. Idempotency is the table's:
//!   `results` is a `ReplacingMergeTree` on (start time, result key), a resent result (same
//!   key, same start time) is simply inserted again, and every read keeps one row per key
//!   with `LIMIT 1 BY`, so no answer counts a result twice, before or after merges. The
//!   new / duplicate split of an ack is what this collector saw lately (counts only).
//! - **Durability**: an INSERT that returned 200 is committed (visible to every later
//!   query, and on its shard with `insert_distributed_sync=1`) and survives a crash of the
//!   ClickHouse process, since the part is in the OS page cache and on disk soon after.
//!   ClickHouse 18.16 does not fsync parts (newer releases can with `fsync_after_insert`,
//!   which 18.16 does not accept), so a power loss of the server within the kernel's
//!   writeback delay (about 30 s) can lose acknowledged rows; replication is ClickHouse's
//!   answer to that, not fsync.
//! - **Mutable records** (probes, tokens, campaigns, rollups) are versioned rows in
//!   `ReplacingMergeTree(version)` tables, read newest version first with `LIMIT 1 BY`.
//!   Versions come from [`VersionClock`]: microseconds, strictly increasing per process.
//! - **Compare-and-swap** has no transaction to lean on: see [`claims`] for how single-use
//!   enrollment tokens and campaign ids are decided between collectors.
//! - **Task ids** are a hash of the task definition, so every collector computes the same
//!   id without coordination; a hash collision is detected and refused.

mod alerts;
mod auth;
mod claims;
pub mod client;
pub mod figures;
mod pending;
mod records;
mod results;
mod rows;
pub mod schema;

use super::{Inserted, ProbeRecord, ResultQuery, Store, StoreError, StoredResult, TagEvent};
use super::{Undecoded, result_codec};
use client::{Endpoint, HttpClient};
use schema::Layout;
use sixmap_shared::health::OutboxLoss;
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How to reach ClickHouse, validated (see `[store.clickhouse]` in `crate::config`).
#[derive(Clone)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
    pub table_prefix: String,
    /// Cluster (in the servers' `remote_servers`) for Distributed tables.
    pub cluster: Option<String>,
    /// With a cluster: the HTTP interface of every shard, where the local tables are created
    /// (defaults to `url` only).
    pub shard_urls: Vec<String>,
    /// Deadline of each request (and of each chunk of a streamed answer).
    pub timeout: Duration,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("table_prefix", &self.table_prefix)
            .field("cluster", &self.cluster)
            .field("shard_urls", &self.shard_urls)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ClickHouseConfig {
    /// A local server's defaults: `http://127.0.0.1:8123`, database `sixmap`, user `default`.
    pub fn local(url: &str, database: &str) -> Self {
        Self {
            url: url.to_owned(),
            database: database.to_owned(),
            user: "default".into(),
            password: String::new(),
            table_prefix: String::new(),
            cluster: None,
            shard_urls: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    fn endpoint(&self, url: &str) -> Endpoint {
        let mut base = url.to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        Endpoint {
            base,
            user: self.user.clone(),
            password: self.password.clone(),
        }
    }
}

/// Record versions: wall-clock microseconds, strictly increasing within this process, so a
/// later write of the same record always wins here (across collectors, the later clock wins).
#[derive(Debug, Default)]
struct VersionClock(AtomicU64);

impl VersionClock {
    fn next(&self) -> u64 {
        let now = u64::try_from(UnixMicros::now().0).unwrap_or(0);
        let mut last = self.0.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .0
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

#[derive(Debug)]
pub struct ClickHouseStore {
    client: HttpClient,
    layout: Layout,
    versions: VersionClock,
    /// Definitions whose task id is known to be stored (a pure function, so safe to cache).
    known_tasks: Mutex<HashSet<String>>,
    /// Task → campaign links seen; links never change once written.
    campaign_links: Mutex<HashMap<u64, u64>>,
    /// Tasks found linked to no campaign, and when (see `results::campaigns_of`).
    unlinked_tasks: Mutex<HashMap<u64, std::time::Instant>>,
    /// Result rows waiting for the next flush.
    pending: pending::Pending,
    /// (probe, task) assignments seen: assignments are never removed, and ingest asks for
    /// every result, so this saves a query per result.
    known_assignments: Mutex<HashSet<(String, u64)>>,
    /// How long a claimant waits before reading the claims (see [`claims`]).
    settle: Duration,
    /// The figures folder's lag and lease times (see [`figures`]).
    fold_timing: figures::FoldTiming,
    /// This process in the folder lease (random).
    holder: u64,
    lease: Mutex<figures::Lease>,
}

impl ClickHouseStore {
    /// Connects, creates or migrates the schema (on every shard with a cluster), and checks
    /// the server answers.
    pub fn open(config: &ClickHouseConfig) -> Result<Self, StoreError> {
        Self::open_with(config, false)
    }

    /// Like [`open`](Self::open), keeping every statement sent (for tests that replay them on
    /// another ClickHouse version).
    pub fn open_recording(config: &ClickHouseConfig) -> Result<Self, StoreError> {
        Self::open_with(config, true)
    }

    fn open_with(config: &ClickHouseConfig, record: bool) -> Result<Self, StoreError> {
        let layout = Layout {
            database: config.database.clone(),
            table_prefix: config.table_prefix.clone(),
            cluster: config.cluster.clone(),
        };
        let mut client = HttpClient::new(config.endpoint(&config.url), config.timeout)?;
        if record {
            client.record();
        }
        let version = client.query("SELECT version() FORMAT TabSeparated")?;
        tracing::info!(url = %config.url, server_version = version.trim(), database = %config.database, cluster = ?config.cluster, "ClickHouse store");
        if config.cluster.is_some() {
            // Local tables must exist on every shard before the Distributed ones are used.
            for url in &config.shard_urls {
                if url.trim_end_matches('/') == config.url.trim_end_matches('/') {
                    continue;
                }
                let shard = HttpClient::new(config.endpoint(url), config.timeout)?;
                layout.migrate(&shard)?;
            }
        }
        layout.migrate(&client)?;
        Ok(Self {
            client,
            layout,
            versions: VersionClock::default(),
            known_tasks: Mutex::new(HashSet::new()),
            campaign_links: Mutex::new(HashMap::new()),
            unlinked_tasks: Mutex::new(HashMap::new()),
            pending: pending::Pending::default(),
            known_assignments: Mutex::new(HashSet::new()),
            settle: claims::SETTLE,
            fold_timing: figures::FoldTiming::for_timeout(config.timeout),
            holder: rows::nonce()?,
            lease: Mutex::new(figures::Lease::default()),
        })
    }

    /// Other figures timing (tests: a short lag and lease, with a short request timeout).
    pub fn with_fold_timing(mut self, timing: figures::FoldTiming) -> Self {
        self.fold_timing = timing;
        self
    }

    /// Statements sent so far, when opened with [`open_recording`](Self::open_recording).
    pub fn recorded(&self) -> Vec<client::Sent> {
        self.client.recorded()
    }

    /// Every statement that creates this store's schema (plain tables), for checking it on
    /// other ClickHouse versions.
    pub fn schema_statements(database: &str) -> Vec<String> {
        Layout {
            database: database.to_owned(),
            table_prefix: String::new(),
            cluster: None,
        }
        .schema_statements()
    }

    fn table(&self, name: &str) -> String {
        self.layout.table(name)
    }
}

impl Drop for ClickHouseStore {
    fn drop(&mut self) {
        // Results queued but never flushed were never acked (acks wait for a flush); sending
        // them still saves the probes a resend.
        let waiting = self.pending.waiting();
        if waiting > 0
            && let Err(e) = self.flush_results()
        {
            tracing::warn!(waiting, error = %e, "queued results not sent to ClickHouse at close (never acked: probes resend them)");
        }
    }
}

impl Store for ClickHouseStore {
    fn create_probe(&self, probe: &ProbeRecord) -> Result<(), StoreError> {
        self.create_probe_row(probe)
    }

    fn update_probe(&self, probe: &ProbeRecord) -> Result<(), StoreError> {
        self.put_probe_row(probe)
    }

    fn probe(&self, id: &ProbeId) -> Result<Option<ProbeRecord>, StoreError> {
        self.probe_row(id)
    }

    fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        self.probe_rows()
    }

    fn task_id(&self, definition: &str) -> Result<TaskId, StoreError> {
        self.task_id_for(definition)
    }

    fn record_assignment(&self, probe: &ProbeId, task: TaskId) -> Result<(), StoreError> {
        self.insert_assignment(probe, task)
    }

    fn is_assigned(&self, probe: &ProbeId, task: TaskId) -> Result<bool, StoreError> {
        self.assignment_exists(probe, task)
    }

    fn insert_results(&self, results: &[StoredResult]) -> Result<Vec<Inserted>, StoreError> {
        self.insert_result_rows(results)
    }

    fn results(&self, query: &ResultQuery) -> Result<Vec<StoredResult>, StoreError> {
        self.result_rows(query)
    }

    fn scan_results_between(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        result_codec::decode_each(|rows| self.scan_time(from, to, rows), visit)
    }

    fn scan_undecoded_between(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(Undecoded) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_time(from, to, visit)
    }

    fn put_rollup(&self, day: &str, country: &str, json: &[u8]) -> Result<(), StoreError> {
        self.put_rollup_row(day, country, json)
    }

    fn rollups(&self, country: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.rollup_rows(country)
    }

    fn rollups_of_day(&self, day: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.rollup_rows_of_day(day)
    }

    fn insert_losses(&self, losses: &[OutboxLoss]) -> Result<Vec<Inserted>, StoreError> {
        self.insert_loss_rows(losses)
    }

    fn losses(&self, query: &ResultQuery) -> Result<Vec<OutboxLoss>, StoreError> {
        self.loss_rows(query)
    }

    fn record_tag_event(&self, probe: &ProbeId, event: &TagEvent) -> Result<(), StoreError> {
        self.insert_tag_event(probe, event)
    }

    fn tag_history(&self, probe: &ProbeId) -> Result<Vec<TagEvent>, StoreError> {
        self.tag_events(probe)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Results wait here for one INSERT per flush; every other write was an INSERT that
        // ClickHouse acknowledged: committed (see the module docs for what that means on disk).
        self.flush_results()
    }

    fn ingest_log_after(
        &self,
        after: u64,
        max: usize,
        visit: &mut dyn FnMut(u64, StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        self.log_after(after, max, visit)
    }

    fn ingest_log_head(&self) -> Result<u64, StoreError> {
        Ok(self.log_head())
    }

    fn prune_ingest_log(&self, _upto: u64) -> Result<(), StoreError> {
        // The log is the results table: nothing to forget.
        Ok(())
    }

    fn next_campaign_id(&self) -> Result<u64, StoreError> {
        self.claim_campaign_id()
    }

    fn put_campaign(&self, id: u64, json: &[u8]) -> Result<(), StoreError> {
        self.put_campaign_row(id, json)
    }

    fn campaign(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.campaign_row(id)
    }

    fn campaigns(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.campaign_rows()
    }

    fn link_campaign_task(&self, task: TaskId, campaign: u64) -> Result<(), StoreError> {
        self.insert_campaign_link(task, campaign)
    }

    fn campaign_tasks(&self, campaign: u64) -> Result<Vec<TaskId>, StoreError> {
        self.campaign_task_ids(campaign)
    }

    fn campaign_results(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_campaign(campaign, visit)
    }

    fn campaign_cells(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(super::CampaignCell) -> bool,
    ) -> Result<(), StoreError> {
        self.campaign_cells_of(campaign, visit)
    }
}
