//! Campaigns (issue #8): a regulator says "measure this, from there, this often", the
//! collector turns it into tasks for matching probes, follows progress and builds a report.
//!
//! - [`spec`]: the spec format and its validation (errors name the field).
//! - this module: [`Campaigns`], the service behind the gRPC, HTTP and CLI front ends:
//!   creation (probe selection, stratification, budgets), assignment to probes at hello and
//!   to connected probes at once, cancellation, the end of a schedule, progress.
//! - [`report`]: the published figures (pure), and their CSV and HTML renderings.
//! - [`http`], [`grpc`]: the front ends; [`client`]: the CLI's HTTP client.
//!
//! A campaign's tasks get ids from the same sequence as default tasks (definitions
//! `campaign:<id>:...`), so they never collide; the store indexes their results under the
//! campaign as they are stored, so a report reads only its own results.

pub mod apply;
pub mod cli;
mod declared;
mod escape;
pub mod grpc;
pub mod http;
pub mod pdf;
pub mod plan;
pub mod presence;
mod progress;
pub mod quick;
pub mod quick_cli;
pub mod quick_http;
pub mod readiness;
mod registry;
pub mod report;
mod selection;
mod slots;
pub mod spec;

use crate::store::{CampaignCell, ProbeRecord, Store, StoreError};
use serde::{Deserialize, Serialize};
use sixmap_shared::measurement::MeasurementKind;
use sixmap_shared::session::{Assignment, Cancel, CollectorMessage};
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use spec::{CampaignSpec, CampaignTaskSpec, SpecFieldError};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

pub use declared::parse_declared;
pub use progress::Progress;
use registry::Pushed;
pub use registry::SessionSender;
use selection::{campaign_probe, empty_selection, probe_matches, select};
use slots::not_before;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error(transparent)]
    Spec(#[from] SpecFieldError),
    #[error("no campaign {0}")]
    NotFound(u64),
    #[error("over budget: {0}")]
    OverBudget(String),
    #[error("campaign {0} has ended ({1}); nothing to change")]
    Ended(u64, String),
    #[error("invalid declared figures: {0}")]
    Declared(String),
    #[error("campaign {id} belongs to {owner:?}: only its owner or an admin may change it")]
    NotOwner { id: u64, owner: String },
    /// A quick measurement refused by the per-owner rate (`quick::MAX_PER_MINUTE`).
    #[error("too many measurements: {0}")]
    TooMany(String),
    /// `campaign apply` asked to change what a running campaign keeps (`apply::CHANGEABLE`).
    #[error("cannot apply: {0}")]
    Unchangeable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Active,
    /// A one-off campaign with every result in, or a periodic one past its stop time.
    Finished,
    Cancelled,
    /// The total budget was spent.
    BudgetSpent,
}

impl CampaignStatus {
    /// The word the API writes (its serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
            Self::BudgetSpent => "budget_spent",
        }
    }
}

/// One task of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignTask {
    pub task_id: TaskId,
    #[serde(flatten)]
    pub task: CampaignTaskSpec,
}

/// A probe chosen for a campaign, with the origin it had then (reports group by it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignProbe {
    pub probe: ProbeId,
    pub asn: Option<u32>,
    pub as_name: Option<String>,
    pub country: Option<String>,
    pub assigned_at: UnixMicros,
    /// The NAT64 prefix the probe's self-test found then (RFC 7050): AAAA answers under it
    /// were synthesised by its resolver, even when the prefix is the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat64_prefix: Option<sixmap_shared::nat64::Nat64Prefix>,
}

/// A figure an operator declares (activation rate, forecast...), shown beside ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredFigure {
    pub asn: u32,
    pub metric: String,
    pub value: f64,
    pub as_of: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub id: u64,
    /// Who commissioned it: the name of the API token that created it. Only this owner (any
    /// of their tokens) or an admin may change it.
    pub owner: String,
    pub created_at: UnixMicros,
    pub status: CampaignStatus,
    pub status_reason: Option<String>,
    pub ended_at: Option<UnixMicros>,
    pub spec: CampaignSpec,
    /// The spec exactly as submitted, embedded in every report.
    pub spec_text: String,
    pub tasks: Vec<CampaignTask>,
    pub probes: Vec<CampaignProbe>,
    /// Probes that matched after creation but were not given the campaign: the hourly budget
    /// had no room.
    #[serde(default)]
    pub skipped_over_budget: BTreeSet<ProbeId>,
    #[serde(default)]
    pub declared: Vec<DeclaredFigure>,
    /// When its owner or an admin published it: its report is then public at
    /// `/reports/{id}` (`http::public_router`). Kept in the record, so publishing needs no
    /// store change; absent in records written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<UnixMicros>,
}

impl CampaignRecord {
    pub fn is_active(&self) -> bool {
        self.status == CampaignStatus::Active
    }

    fn task(&self, id: TaskId) -> Option<&CampaignTask> {
        self.tasks.iter().find(|t| t.task_id == id)
    }
}

/// A summary for lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignSummary {
    pub id: u64,
    pub name: String,
    pub owner: String,
    pub status: CampaignStatus,
    pub created_at: UnixMicros,
    pub targets: usize,
    pub tasks: usize,
    pub probes: usize,
    /// When its report was made public at `/reports/{id}`; null while it is not.
    #[serde(default)]
    pub published_at: Option<UnixMicros>,
}

/// Who asks to change a campaign: the caller's API token holder, and whether it is an admin.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub name: &'a str,
    pub admin: bool,
}

/// Whether `by` may read `record`: a quick measurement is its owner's (its targets and
/// results are theirs, as its follower already holds); any other campaign every reader's.
fn readable(record: &CampaignRecord, by: Writer<'_>) -> bool {
    record.spec.quick.is_none() || by.check(record).is_ok()
}

impl Writer<'_> {
    /// Refuses unless this writer owns `record` or is an admin.
    fn check(&self, record: &CampaignRecord) -> Result<(), CampaignError> {
        if self.admin || self.name == record.owner {
            Ok(())
        } else {
            Err(CampaignError::NotOwner {
                id: record.id,
                owner: record.owner.clone(),
            })
        }
    }
}

/// The campaign service: state shared by the gRPC, HTTP and control-plane paths.
#[derive(Debug)]
pub struct Campaigns {
    store: Arc<dyn Store>,
    lab_mode: bool,
    owner_hourly_limit: Option<u64>,
    /// The minimum-sample rule reports publish under.
    publication: crate::rollup::MinSample,
    /// Named in the heading of every report.
    publisher: crate::config::Publisher,
    /// Prints reports to PDF (headless Chromium, one at a time).
    pdf: pdf::PdfMaker,
    /// Signs published reports (`export::sign`); none in tests that do not need it.
    signer: Option<Arc<crate::export::sign::OpenDataKey>>,
    /// Connected probes' session streams, to assign and cancel without waiting for a
    /// reconnect.
    sessions: Mutex<HashMap<ProbeId, SessionSender>>,
    /// Serialises read-modify-write of campaign records (one collector process).
    records: Mutex<()>,
    /// Campaigns whose tasks (active) or cancels (ended) this process has pushed to its
    /// connected probes. With several collectors on one store, a campaign created or ended
    /// at another collector shows up here as new at the next tick.
    pushed: Mutex<Pushed>,
    /// Recent quick measurements per owner, for their rate (`quick`).
    quick_rate: Mutex<quick::OwnerRate>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves nothing half-written that we rely on.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn corrupt(id: u64, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: format!("campaigns/{id}"),
        reason: e.to_string(),
    }
}

impl Campaigns {
    pub fn new(store: Arc<dyn Store>, lab_mode: bool, owner_hourly_limit: Option<u64>) -> Self {
        Self {
            store,
            lab_mode,
            owner_hourly_limit,
            publication: crate::rollup::MinSample::default(),
            publisher: crate::config::Publisher::default(),
            pdf: pdf::PdfMaker::default(),
            signer: None,
            sessions: Mutex::new(HashMap::new()),
            records: Mutex::new(()),
            pushed: Mutex::new(Pushed::default()),
            quick_rate: Mutex::new(quick::OwnerRate::default()),
        }
    }

    /// Reports publish under `rule` (the collector's `[publication]`).
    pub fn with_publication(mut self, rule: crate::rollup::MinSample) -> Self {
        self.publication = rule;
        self
    }

    /// Reports are headed with `publisher` (the collector's `[publication]`).
    pub fn with_publisher(mut self, publisher: crate::config::Publisher) -> Self {
        self.publisher = publisher;
        self
    }

    /// Reports print to PDF with `maker` (default: the machine's Chromium, if any).
    pub fn with_pdf(mut self, maker: pdf::PdfMaker) -> Self {
        self.pdf = maker;
        self
    }

    pub fn pdf(&self) -> &pdf::PdfMaker {
        &self.pdf
    }

    /// Published reports are signed with `key` (the `Sixmap-Signature` header).
    pub fn with_signer(mut self, key: Arc<crate::export::sign::OpenDataKey>) -> Self {
        self.signer = Some(key);
        self
    }

    pub fn signer(&self) -> Option<&Arc<crate::export::sign::OpenDataKey>> {
        self.signer.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn lab_mode(&self) -> bool {
        self.lab_mode
    }

    fn load(&self, id: u64) -> Result<CampaignRecord, CampaignError> {
        let bytes = self
            .store
            .campaign(id)?
            .ok_or(CampaignError::NotFound(id))?;
        Ok(serde_json::from_slice(&bytes).map_err(|e| corrupt(id, e))?)
    }

    fn save(&self, record: &CampaignRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(record).map_err(|e| corrupt(record.id, e))?;
        self.store.put_campaign(record.id, &json)
    }

    pub fn all(&self) -> Result<Vec<CampaignRecord>, StoreError> {
        self.store
            .campaigns()?
            .into_iter()
            .map(|(id, bytes)| serde_json::from_slice(&bytes).map_err(|e| corrupt(id, e)))
            .collect()
    }

    pub fn get(&self, id: u64) -> Result<CampaignRecord, CampaignError> {
        self.load(id)
    }

    /// The campaigns `by` may read: every campaign, but quick measurements only their
    /// owner's (or an admin's), as [`Campaigns::quick`] decides.
    pub fn summaries(&self, by: Writer<'_>) -> Result<Vec<CampaignSummary>, CampaignError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|r| readable(r, by))
            .map(|r| CampaignSummary {
                id: r.id,
                name: r.spec.name.clone(),
                owner: r.owner.clone(),
                status: r.status,
                created_at: r.created_at,
                targets: r.spec.targets.len(),
                tasks: r.tasks.len(),
                probes: r.probes.len(),
                published_at: r.published_at,
            })
            .collect())
    }

    /// Creates a campaign from a spec in `format`; blocking (store I/O). Assigns it at once to
    /// the chosen probes that are connected; the others get it when they connect.
    pub fn create(
        &self,
        owner: &str,
        format: &str,
        text: &str,
        now: UnixMicros,
    ) -> Result<CampaignRecord, CampaignError> {
        let owner = owner.trim();
        if owner.is_empty() || owner.len() > 128 {
            return Err(SpecFieldError {
                field: "owner".into(),
                reason: "required, 1..=128 bytes".into(),
            }
            .into());
        }
        let input = spec::parse(format, text)?;
        let (spec, task_specs) = spec::validate(&input, now, self.lab_mode)?;
        let probes = self.store.probes()?;
        let chosen = select(&spec, &probes, now);
        if chosen.is_empty() {
            return Err(empty_selection(&spec, &probes).into());
        }
        self.create_selected(owner, spec, task_specs, chosen, text, now)
    }

    /// The common end of [`Self::create`] and quick measurements ([`quick`]): the spec's and
    /// the owner's budgets checked for `chosen`, then the campaign stored and its tasks sent
    /// to the connected probes among them.
    fn create_selected(
        &self,
        owner: &str,
        spec: CampaignSpec,
        task_specs: Vec<CampaignTaskSpec>,
        chosen: Vec<ProbeRecord>,
        text: &str,
        now: UnixMicros,
    ) -> Result<CampaignRecord, CampaignError> {
        let per_probe_hour = spec.tests_per_probe_hour(task_specs.len());
        let hourly = per_probe_hour * chosen.len() as u64;
        if let Some(limit) = spec.budget.per_hour
            && hourly > limit
        {
            return Err(CampaignError::OverBudget(format!(
                "`budget.per_hour`: {} probes × {} tasks make {hourly} probe-tests per hour, \
                 more than the budget of {limit}; select fewer probes (selection.per_operator), \
                 fewer targets or a longer schedule.every_s",
                chosen.len(),
                task_specs.len()
            )));
        }
        if let (Some(limit), Some(per_probe)) = (
            spec.budget.total,
            spec.tests_per_probe_total(task_specs.len()),
        ) {
            let total = per_probe * chosen.len() as u64;
            if total > limit {
                return Err(CampaignError::OverBudget(format!(
                    "`budget.total`: the schedule makes {total} probe-tests in all, more than \
                     the budget of {limit}"
                )));
            }
        }
        let _guard = lock(&self.records);
        if let Some(limit) = self.owner_hourly_limit {
            let committed: u64 = self
                .all()?
                .iter()
                .filter(|r| r.is_active() && r.owner == owner)
                .map(|r| r.spec.tests_per_probe_hour(r.tasks.len()) * r.probes.len() as u64)
                .sum();
            if committed + hourly > limit {
                return Err(CampaignError::OverBudget(format!(
                    "owner {owner:?} may commission {limit} probe-tests per hour across active \
                     campaigns; {committed} are committed and this campaign adds {hourly} \
                     (cancel a campaign or ask the collector's operator to raise \
                     campaign_owner_hourly_limit)"
                )));
            }
        }
        let id = self.store.next_campaign_id()?;
        let mut tasks = Vec::with_capacity(task_specs.len());
        for task in task_specs {
            let task_id = self
                .store
                .task_id(&format!("campaign:{id}:{:?}", task.spec))?;
            self.store.link_campaign_task(task_id, id)?;
            tasks.push(CampaignTask { task_id, task });
        }
        let record = CampaignRecord {
            id,
            owner: owner.to_owned(),
            created_at: now,
            status: CampaignStatus::Active,
            status_reason: None,
            ended_at: None,
            spec,
            spec_text: text.to_owned(),
            tasks,
            probes: chosen.iter().map(|p| campaign_probe(p, now)).collect(),
            skipped_over_budget: BTreeSet::new(),
            declared: Vec::new(),
            published_at: None,
        };
        for probe in &record.probes {
            for task in &record.tasks {
                self.store.record_assignment(&probe.probe, task.task_id)?;
            }
        }
        self.save(&record)?;
        self.store.flush()?;
        info!(campaign = id, owner, name = %record.spec.name, probes = record.probes.len(), tasks = record.tasks.len(), "campaign created");
        self.push_assignments(&record, now, false)?;
        lock(&self.pushed).active.insert(record.id);
        Ok(record)
    }

    /// The assignments of `record` for `probe`, leaving out one-off tasks it already answered.
    fn assignments_of(
        &self,
        record: &CampaignRecord,
        probe: &ProbeId,
        answered: &HashSet<TaskId>,
        now: UnixMicros,
    ) -> Vec<Assignment> {
        let once = record.spec.schedule.every.is_none();
        record
            .tasks
            .iter()
            .filter(|t| !(once && answered.contains(&t.task_id)))
            .map(|t| Assignment {
                task_id: t.task_id,
                spec: t.task.spec.clone(),
                interval: record.spec.schedule.every,
                not_before: not_before(record, probe, t.task_id, now),
            })
            .collect()
    }

    /// Tasks of one campaign `probe` has results for.
    fn answered(&self, campaign: u64, probe: &ProbeId) -> Result<HashSet<TaskId>, StoreError> {
        let mut answered = HashSet::new();
        self.store.campaign_results(campaign, &mut |r| {
            if &r.result.key.probe_id == probe {
                answered.insert(r.result.task_id);
            }
            true
        })?;
        Ok(answered)
    }

    /// Campaign tasks for a probe saying hello: those of campaigns it was chosen for, and of
    /// periodic campaigns it now matches (if stratification and the hourly budget leave room).
    /// Blocking.
    pub fn assignments_for(
        &self,
        probe: &ProbeRecord,
        now: UnixMicros,
    ) -> Result<Vec<Assignment>, StoreError> {
        let _guard = lock(&self.records);
        let records = self.all()?;
        let mut out = Vec::new();
        for mut record in records.into_iter().filter(CampaignRecord::is_active) {
            if record.spec.schedule.stop.is_some_and(|stop| stop <= now) {
                continue;
            }
            let chosen = record.probes.iter().any(|p| p.probe == probe.id);
            if !chosen {
                if record.spec.schedule.every.is_none() || !probe_matches(&record.spec, probe) {
                    continue;
                }
                let asn = probe.origin.as_ref().and_then(|o| o.asn);
                if let Some(k) = record.spec.selection.per_operator
                    && record.probes.iter().filter(|p| p.asn == asn).count() >= k as usize
                {
                    continue;
                }
                let per_probe = record.spec.tests_per_probe_hour(record.tasks.len());
                if let Some(limit) = record.spec.budget.per_hour
                    && per_probe * (record.probes.len() as u64 + 1) > limit
                {
                    if record.skipped_over_budget.insert(probe.id.clone()) {
                        warn!(campaign = record.id, probe = %probe.id, "probe matches but the campaign's hourly budget is full");
                        self.save(&record)?;
                    }
                    continue;
                }
                record.probes.push(campaign_probe(probe, now));
                for task in &record.tasks {
                    self.store.record_assignment(&probe.id, task.task_id)?;
                }
                self.save(&record)?;
                info!(campaign = record.id, probe = %probe.id, "probe joined a periodic campaign");
            }
            let answered = if record.spec.schedule.every.is_none() {
                self.answered(record.id, &probe.id)?
            } else {
                HashSet::new()
            };
            out.extend(self.assignments_of(&record, &probe.id, &answered, now));
        }
        Ok(out)
    }

    /// Tasks of campaigns that ended in the last 30 days that `probe` was given, with the
    /// reason: sent as cancels at hello, since a probe away when its campaign ended kept
    /// running them. Blocking.
    pub fn ended_tasks_for(
        &self,
        probe: &ProbeId,
        now: UnixMicros,
    ) -> Result<Vec<(TaskId, String)>, StoreError> {
        const RECENTLY: i64 = 30 * 86_400 * 1_000_000;
        let records = self.all()?;
        Ok(records
            .iter()
            .filter(|r| {
                r.ended_at
                    .is_some_and(|t| now.0.saturating_sub(t.0) < RECENTLY)
            })
            .filter(|r| r.probes.iter().any(|p| &p.probe == probe))
            .flat_map(|r| {
                let reason = format!(
                    "campaign {}: {}",
                    r.id,
                    r.status_reason.as_deref().unwrap_or("ended")
                );
                r.tasks.iter().map(move |t| (t.task_id, reason.clone()))
            })
            .collect())
    }

    /// Starts a probe's session on the campaign side, after its greeting: registers the
    /// session for pushes, then sends the probe's campaign tasks and cancels for the tasks of
    /// campaigns that ended while it was away. Registering first means a campaign created
    /// meanwhile reaches the probe one way or the other (a task sent twice is harmless: the
    /// probe keeps an identical assignment). False if the session is over; a store failure
    /// is returned for the session to end with it.
    pub async fn greet(
        self: &Arc<Self>,
        probe: &ProbeRecord,
        tx: &SessionSender,
    ) -> Result<bool, StoreError> {
        self.connected(&probe.id, tx.clone());
        let this = self.clone();
        let record = probe.clone();
        let work = crate::store::run_blocking(move || {
            let now = UnixMicros::now();
            Ok((
                this.assignments_for(&record, now)?,
                this.ended_tasks_for(&record.id, now)?,
            ))
        })
        .await;
        let (assignments, ended) = match work {
            Ok(found) => found,
            Err(e) => {
                warn!(probe = %probe.id, error = %e, "campaign tasks not computed");
                return Err(e);
            }
        };
        if !assignments.is_empty() || !ended.is_empty() {
            info!(probe = %probe.id, tasks = assignments.len(), cancelled = ended.len(), "campaign tasks sent");
        }
        let cancels = ended
            .into_iter()
            .map(|(task_id, reason)| CollectorMessage::Cancel(Cancel { task_id, reason }));
        for message in assignments
            .into_iter()
            .map(CollectorMessage::Assign)
            .chain(cancels)
        {
            if tx.send(message).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Ends a campaign: records why and tells connected probes to stop its tasks.
    fn end(
        &self,
        mut record: CampaignRecord,
        status: CampaignStatus,
        reason: String,
        now: UnixMicros,
    ) -> Result<CampaignRecord, StoreError> {
        record.status = status;
        record.status_reason = Some(reason.clone());
        record.ended_at = Some(now);
        self.save(&record)?;
        self.store.flush()?;
        info!(campaign = record.id, ?status, reason, "campaign ended");
        self.push_cancels(&record, &reason);
        lock(&self.pushed).ended.insert(record.id);
        Ok(record)
    }

    /// Cancels a campaign; blocking.
    pub fn cancel(
        &self,
        id: u64,
        by: Writer<'_>,
        reason: &str,
        now: UnixMicros,
    ) -> Result<CampaignRecord, CampaignError> {
        let _guard = lock(&self.records);
        let record = self.load(id)?;
        by.check(&record)?;
        if !record.is_active() {
            return Err(CampaignError::Ended(id, format!("{:?}", record.status)));
        }
        let reason = if reason.trim().is_empty() {
            "cancelled".to_owned()
        } else {
            format!("cancelled: {}", reason.trim())
        };
        Ok(self.end(record, CampaignStatus::Cancelled, reason, now)?)
    }

    /// The campaign's cells (per task and probe: counts and the latest result), what
    /// reports and progress read; O(cells), not O(results) in stores that keep them.
    pub fn cells(&self, id: u64) -> Result<Vec<CampaignCell>, StoreError> {
        let mut out = Vec::new();
        let mut gone = false;
        self.store.campaign_cells(id, &mut |cell| {
            // The request behind this read went away: stop (`limits::readers`).
            gone = crate::limits::readers::cancelled();
            out.push(cell);
            !gone
        })?;
        if gone {
            return Err(StoreError::Cancelled);
        }
        Ok(out)
    }

    /// Ends campaigns whose schedule is over, whose total budget is spent, or (one-off) whose
    /// every result is in. Blocking; run periodically.
    pub fn tick(&self, now: UnixMicros) -> Result<(), StoreError> {
        let _guard = lock(&self.records);
        let records = self.all()?;
        self.push_others(&records, now)?;
        for record in records.into_iter().filter(CampaignRecord::is_active) {
            if let Some(stop) = record.spec.schedule.stop
                && stop <= now
            {
                self.end(
                    record,
                    CampaignStatus::Finished,
                    "schedule stop reached".into(),
                    now,
                )?;
                continue;
            }
            // A quick measurement is followed live until its deadline; a probe that has not
            // answered by then is told to drop the task, so it cannot run long after.
            if let Some(quick) = &record.spec.quick
                && quick.deadline <= now
            {
                self.end(
                    record,
                    CampaignStatus::Finished,
                    "quick measurement deadline passed".into(),
                    now,
                )?;
                continue;
            }
            let once = record.spec.schedule.every.is_none();
            // Reading the cells every tick is only needed to end the campaign on them.
            if !once && record.spec.budget.total.is_none() {
                continue;
            }
            let cells = self.cells(record.id)?;
            let spent: u64 = cells.iter().map(|c| c.results).sum();
            if let Some(total) = record.spec.budget.total
                && spent >= total
            {
                self.end(
                    record,
                    CampaignStatus::BudgetSpent,
                    format!("total budget of {total} probe-tests spent"),
                    now,
                )?;
                continue;
            }
            if record.spec.schedule.every.is_none() && self.progress(&record, &cells, now).complete
            {
                self.end(
                    record,
                    CampaignStatus::Finished,
                    "every result is in".into(),
                    now,
                )?;
            }
        }
        Ok(())
    }

    /// Marks a campaign published: its report is then public at `/reports/{id}`, without a
    /// token (`http::public_router`). For its owner or an admin; publishing again keeps the
    /// first date, so the permanent URL's "published" date does not move.
    pub fn publish(
        &self,
        id: u64,
        by: Writer<'_>,
        now: UnixMicros,
    ) -> Result<CampaignRecord, CampaignError> {
        let _guard = lock(&self.records);
        let mut record = self.load(id)?;
        by.check(&record)?;
        if record.published_at.is_none() {
            record.published_at = Some(now);
            self.save(&record)?;
            self.store.flush()?;
            info!(campaign = id, by = by.name, "campaign published");
        }
        Ok(record)
    }

    /// The report of a published campaign, as the public sees it; `NotFound` for one that
    /// does not exist or is not published, alike, so the public route reveals nothing about
    /// unpublished campaigns.
    pub fn public_report(&self, id: u64, now: UnixMicros) -> Result<report::Report, CampaignError> {
        match self.load(id) {
            Ok(record) if record.published_at.is_some() => self.report(id, now),
            Ok(_) | Err(CampaignError::NotFound(_)) => Err(CampaignError::NotFound(id)),
            Err(e) => Err(e),
        }
    }

    /// Replaces the campaign's declared figures with those of a CSV file
    /// (`asn,metric,value,as_of,source`, header line optional).
    pub fn import_declared(
        &self,
        id: u64,
        by: Writer<'_>,
        csv: &str,
    ) -> Result<CampaignRecord, CampaignError> {
        let figures = parse_declared(csv).map_err(CampaignError::Declared)?;
        let _guard = lock(&self.records);
        let mut record = self.load(id)?;
        by.check(&record)?;
        record.declared = figures;
        self.save(&record)?;
        self.store.flush()?;
        Ok(record)
    }
}

/// Keeps campaign states current: ends finished ones every few seconds.
pub async fn run_ticker(campaigns: Arc<Campaigns>) {
    loop {
        let worker = campaigns.clone();
        if let Err(e) = crate::store::run_blocking(move || worker.tick(UnixMicros::now())).await {
            warn!(error = %e, "campaign states not refreshed");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

impl Campaigns {
    /// The report of a campaign now; blocking.
    pub fn report(&self, id: u64, now: UnixMicros) -> Result<report::Report, CampaignError> {
        let record = self.load(id)?;
        let cells = self.cells(id)?;
        let progress = self.progress(&record, &cells, now);
        let mut report = report::build(&record, &cells, progress, now, self.publication);
        report.publisher = self.publisher.clone();
        if let Some(readiness) = report.readiness.as_mut() {
            readiness.trend = Some(self.readiness_trend(&record, &cells, now)?);
        }
        Ok(report)
    }

    /// The readiness score per UTC day: from the rows kept at ingest
    /// (`figures::readiness`) where the store keeps figures, else from the campaign's
    /// stored results; blocking.
    fn readiness_trend(
        &self,
        record: &CampaignRecord,
        cells: &[CampaignCell],
        now: UnixMicros,
    ) -> Result<readiness::Trend, CampaignError> {
        if crate::figures::read::ready(&*self.store)? {
            self.readiness_trend_kept(record, cells, now)
        } else {
            self.readiness_trend_scanned(record, now)
        }
    }

    /// The trend from the kept rows: one row per (readiness task, day) for the newest
    /// [`readiness::MAX_TREND_DAYS`] days up to the campaign's newest result (its cells say
    /// which) or today, whichever is earlier, each holding one entry per probe: O(domains ×
    /// days) rows, and at most [`readiness::MAX_TREND_RESULTS`] probe entries are read (then
    /// the trend says it is partial). Whether older days exist costs one row per task.
    fn readiness_trend_kept(
        &self,
        record: &CampaignRecord,
        cells: &[CampaignCell],
        now: UnixMicros,
    ) -> Result<readiness::Trend, CampaignError> {
        let tasks: Vec<(TaskId, &str)> = record
            .tasks
            .iter()
            .filter(|t| t.task.spec.measurement_kind() == MeasurementKind::Readiness)
            .map(|t| (t.task_id, t.task.target.as_str()))
            .collect();
        let ids: HashSet<TaskId> = tasks.iter().map(|(id, _)| *id).collect();
        let mut trend = readiness::TrendBuilder::until(now);
        let today = readiness::day_number(now);
        let newest = cells
            .iter()
            .filter(|c| ids.contains(&c.task_id))
            .map(|c| readiness::day_number(c.latest.result.started_at).min(today))
            .max();
        if let Some(newest) = newest {
            trend.saw_day(newest);
            let from = readiness::trend_start(newest);
            let (mut gone, mut full) = (false, false);
            for (task, target) in &tasks {
                crate::figures::read::readiness_days(
                    &*self.store,
                    *task,
                    from,
                    newest.saturating_add(1),
                    &mut |day, row| {
                        for (probe, entry) in row.probes {
                            // Bounded work per report: every probe entry counts.
                            if !trend.skip() {
                                full = true;
                                return false;
                            }
                            trend.add_observed(day, target, &probe, entry.order, entry.tallies);
                        }
                        gone = crate::limits::readers::cancelled();
                        !gone
                    },
                )?;
                if gone {
                    return Err(StoreError::Cancelled.into());
                }
                if full {
                    break;
                }
                let mut older = false;
                crate::figures::read::readiness_days(
                    &*self.store,
                    *task,
                    i64::MIN,
                    from,
                    &mut |_, _| {
                        older = true;
                        false
                    },
                )?;
                if older {
                    trend.older_days_left();
                }
            }
        }
        Ok(trend.finish(&record.spec.targets, &record.spec.entities))
    }

    /// The trend from the campaign's stored results (only readiness results are kept; at
    /// most `readiness::MAX_TREND_RESULTS` results of any kind are read): stores without
    /// figures, and the reference the kept rows are tested against; blocking.
    fn readiness_trend_scanned(
        &self,
        record: &CampaignRecord,
        now: UnixMicros,
    ) -> Result<readiness::Trend, CampaignError> {
        let target_of: HashMap<TaskId, &str> = record
            .tasks
            .iter()
            .filter(|t| t.task.spec.measurement_kind() == MeasurementKind::Readiness)
            .map(|t| (t.task_id, t.task.target.as_str()))
            .collect();
        let mut trend = readiness::TrendBuilder::until(now);
        let mut gone = false;
        self.store.campaign_results(record.id, &mut |r| {
            gone = crate::limits::readers::cancelled();
            match target_of.get(&r.result.task_id) {
                Some(target) => trend.add(target, r) && !gone,
                None => trend.skip() && !gone,
            }
        })?;
        if gone {
            return Err(StoreError::Cancelled.into());
        }
        Ok(trend.finish(&record.spec.targets, &record.spec.entities))
    }

    /// The report of campaign `id` as `by` may read it: another owner's quick measurement is
    /// "not found", like an unknown id; blocking.
    pub fn report_for(
        &self,
        id: u64,
        by: Writer<'_>,
        now: UnixMicros,
    ) -> Result<report::Report, CampaignError> {
        if !readable(&self.load(id)?, by) {
            return Err(CampaignError::NotFound(id));
        }
        self.report(id, now)
    }

    /// [`Campaigns::show`] as `by` may read it (see [`Campaigns::report_for`]).
    pub fn show_for(
        &self,
        id: u64,
        by: Writer<'_>,
        now: UnixMicros,
    ) -> Result<serde_json::Value, CampaignError> {
        if !readable(&self.load(id)?, by) {
            return Err(CampaignError::NotFound(id));
        }
        self.show(id, now)
    }

    /// A campaign with its progress, as `show` prints it; blocking.
    pub fn show(&self, id: u64, now: UnixMicros) -> Result<serde_json::Value, CampaignError> {
        let record = self.load(id)?;
        let cells = self.cells(id)?;
        let progress = self.progress(&record, &cells, now);
        Ok(serde_json::json!({ "campaign": record, "progress": progress }))
    }
}

#[cfg(test)]
mod tests {
    use super::selection::stable_hash;
    use super::*;

    #[test]
    fn declared_figures_parse_and_name_bad_lines() {
        let ok = parse_declared(
            "asn,metric,value,as_of,source\n64500,activation_rate,0.71,2026-09-30,\"Q3 report, p. 4\"\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].source, "Q3 report, p. 4");
        let err = parse_declared("asn,metric,value,as_of,source\nAS1,x,abc,2026,y\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("abc"), "{err}");
    }

    #[test]
    fn stable_hash_is_stable() {
        // Fixed values: stratified picks must survive restarts and toolchain upgrades.
        assert_eq!(stable_hash(&[b""]), stable_hash(&[b""]));
        assert_ne!(stable_hash(&[b"a", b"b"]), stable_hash(&[b"ab"]));
    }

    use crate::store::SledStore;
    use sixmap_shared::prefixes::Enrichment;

    pub(super) const NOW: UnixMicros = UnixMicros(1_790_000_000_000_000);

    pub(super) fn probe(n: u8, asn: Option<u32>, country: &str) -> ProbeRecord {
        ProbeRecord {
            last_seen: Some(NOW),
            origin: asn.map(|asn| Enrichment {
                asn: Some(asn),
                as_name: Some(format!("AS{asn} name")),
                country: country.parse().ok(),
            }),
            ..ProbeRecord::new(format!("{n:016x}").parse().unwrap(), format!("p{n}"), NOW)
        }
    }

    pub(super) fn service(
        dir: &std::path::Path,
        probes: &[ProbeRecord],
        limit: Option<u64>,
    ) -> Campaigns {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).unwrap());
        for p in probes {
            store.create_probe(p).unwrap();
        }
        Campaigns::new(store, false, limit)
    }

    pub(super) const SPEC: &str = "name = \"t\"\ntargets = [\"example.org\"]\n\
        [[measurements]]\nkind = \"ping\"\ntimeout_ms = 5000\n";

    pub(super) fn fleet() -> Vec<ProbeRecord> {
        vec![
            probe(1, Some(64500), "XA"),
            probe(2, Some(64500), "XA"),
            probe(3, Some(64500), "XA"),
            probe(4, Some(64501), "XA"),
            probe(5, Some(64502), "XB"),
            probe(6, None, "XA"),
        ]
    }

    #[test]
    fn selection_filters_and_stratifies_stably() {
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), None);
        let all = c.create("reg", "toml", SPEC, NOW).unwrap();
        assert_eq!(all.probes.len(), 6);
        let spec = format!("{SPEC}[selection]\ncountries = [\"XA\"]\nper_operator = 2\n");
        let picked = c.create("reg", "toml", &spec, NOW).unwrap();
        let asns: Vec<_> = picked.probes.iter().map(|p| p.asn).collect();
        assert_eq!(asns, [Some(64500), Some(64500), Some(64501)]);
        // The same picks from another store with the same probes: by hash, not by chance.
        let dir2 = tempfile::tempdir().unwrap();
        let again = service(dir2.path(), &fleet(), None)
            .create("reg", "toml", &spec, NOW)
            .unwrap();
        let ids = |r: &CampaignRecord| r.probes.iter().map(|p| p.probe.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&picked), ids(&again));
        // Campaign task ids are their own.
        assert!(
            picked
                .tasks
                .iter()
                .all(|t| !all.tasks.iter().any(|a| a.task_id == t.task_id))
        );
    }

    #[test]
    fn a_selection_matching_no_probe_names_the_criterion() {
        let dir = tempfile::tempdir().unwrap();
        let empty = service(dir.path(), &[], None);
        let err = empty
            .create("reg", "toml", SPEC, NOW)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`selection`") && err.contains("no probe is enrolled"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), None);
        for (selection, field) in [
            ("countries = [\"XC\"]", "selection.countries"),
            ("countries = [\"XB\"]\nasns = [64500]", "selection.asns"),
            ("tags = [\"v6-works\"]", "selection.tags"),
        ] {
            let spec = format!("{SPEC}[selection]\n{selection}\n");
            let err = c.create("reg", "toml", &spec, NOW).unwrap_err().to_string();
            assert!(err.contains(&format!("`{field}`")), "{err}");
        }
    }

    #[test]
    fn budgets_are_checked_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), Some(10));
        // 6 probes × 1 task once: 6 probe-tests.
        let spec = format!("{SPEC}[budget]\nper_hour = 5\n");
        let err = c.create("reg", "toml", &spec, NOW).unwrap_err().to_string();
        assert!(
            err.contains("budget.per_hour") && err.contains("6 probe-tests"),
            "{err}"
        );
        let first = c.create("reg", "toml", SPEC, NOW).unwrap();
        let err = c.create("reg", "toml", SPEC, NOW).unwrap_err();
        assert!(matches!(err, CampaignError::OverBudget(_)), "{err}");
        assert!(
            err.to_string().contains("\"reg\"") && err.to_string().contains("6 are committed"),
            "{err}"
        );
        // Another owner has their own limit; a cancelled campaign no longer counts.
        c.create("other", "toml", SPEC, NOW).unwrap();
        let reg = Writer {
            name: "reg",
            admin: false,
        };
        c.cancel(first.id, reg, "test", NOW).unwrap();
        c.create("reg", "toml", SPEC, NOW).unwrap();
        let err = c.cancel(first.id, reg, "again", NOW).unwrap_err();
        assert!(matches!(err, CampaignError::Ended(..)), "{err}");
    }

    #[test]
    fn only_the_owner_or_an_admin_changes_a_campaign() {
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), None);
        let record = c.create("reg", "toml", SPEC, NOW).unwrap();
        let other = Writer {
            name: "other",
            admin: false,
        };
        let err = c.cancel(record.id, other, "mine now", NOW).unwrap_err();
        assert!(
            matches!(&err, CampaignError::NotOwner { owner, .. } if owner == "reg"),
            "{err}"
        );
        let csv = "asn,metric,value,as_of,source\n64500,activation,0.5,2026-01-01,x\n";
        let err = c.import_declared(record.id, other, csv).unwrap_err();
        assert!(matches!(err, CampaignError::NotOwner { .. }), "{err}");
        assert!(c.get(record.id).unwrap().is_active());
        assert!(c.get(record.id).unwrap().declared.is_empty());
        let admin = Writer {
            name: "ops",
            admin: true,
        };
        c.import_declared(record.id, admin, csv).unwrap();
        c.cancel(record.id, admin, "by the operator", NOW).unwrap();
    }

    #[test]
    fn periodic_campaigns_reach_probes_that_join_later() {
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet()[..1], None);
        let spec = format!(
            "{SPEC}[selection]\nper_operator = 1\n[schedule]\nevery_s = 600\nspread_s = 300\n"
        );
        let record = c.create("reg", "toml", &spec, NOW).unwrap();
        let late = probe(5, Some(64502), "XB");
        c.store.create_probe(&late).unwrap();
        let later = UnixMicros(NOW.0 + 1_000_000);
        let assigned = c.assignments_for(&late, later).unwrap();
        assert_eq!(assigned.len(), 1);
        let a = &assigned[0];
        assert_eq!(a.interval, Some(Duration::from_secs(600)));
        let at = a.not_before.unwrap();
        assert!(at > later && at.0 < NOW.0 + 600_000_000, "{at:?}");
        assert!(c.store.is_assigned(&late.id, a.task_id).unwrap());
        assert_eq!(c.get(record.id).unwrap().probes.len(), 2);
        // Its operator already has its one probe: a second one is not given the campaign.
        let second = probe(7, Some(64502), "XB");
        assert!(c.assignments_for(&second, later).unwrap().is_empty());
        // A probe chosen earlier gets the same slot on every reconnect.
        assert_eq!(c.assignments_for(&late, later).unwrap(), assigned);
    }

    #[test]
    fn progress_counts_the_slots_that_passed() {
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet()[..2], None);
        let spec = format!("{SPEC}[schedule]\nevery_s = 600\nspread_s = 300\n");
        let record = c.create("reg", "toml", &spec, NOW).unwrap();
        let at = |s: i64| UnixMicros(NOW.0 + s * 1_000_000);
        // Before the start nothing is due; once the spread is over, one run per probe; ten
        // intervals later, eleven.
        assert_eq!(c.progress(&record, &[], NOW).results_expected, 0);
        assert_eq!(c.progress(&record, &[], at(300)).results_expected, 2);
        assert_eq!(c.progress(&record, &[], at(6300)).results_expected, 22);
        let once = c.create("reg", "toml", SPEC, NOW).unwrap();
        let p = c.progress(&once, &[], at(10));
        assert_eq!((p.results_expected, p.complete), (2, false));
    }

    /// A small deterministic generator (xorshift64*): reproducible from the printed seed.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    /// A random result of `task` from `probe`: answered or not, failed to run for one of two
    /// reasons, or an HTTP answer of a random status and size; start times from a small set,
    /// so results of one cell often start at the same time (the tie rule decides).
    fn random_result(
        rng: &mut Random,
        probe: &ProbeId,
        task: TaskId,
        http: bool,
        sequence: u64,
    ) -> crate::store::StoredResult {
        use sixmap_shared::measurement::{
            ConnectOutcome, ErrorClass, HttpResult, MeasurementError, Outcome,
        };
        let at = UnixMicros(NOW.0 + rng.below(6) as i64 * 1_000_000);
        let rtt = (rng.below(3) != 0).then(|| Duration::from_micros(500 + rng.below(9_000)));
        let mut r =
            crate::testing::ping_v6(probe.clone(), sequence, at, rtt, Enrichment::default());
        r.result.task_id = task;
        r.result.key.boot_epoch = 1 + rng.below(2);
        // HTTP tasks mostly get HTTP answers, so both families' pages are often compared.
        let pick = if http { 2 + rng.below(3) } else { rng.below(6) };
        r.result.outcome = match pick {
            0 => Outcome::Failed(MeasurementError {
                class: ErrorClass::Resolution,
                message: "no AAAA".into(),
            }),
            1 => Outcome::Failed(MeasurementError {
                class: ErrorClass::Network,
                message: "no route".into(),
            }),
            2..=4 if http || pick < 4 => Outcome::Http(HttpResult {
                connect: ConnectOutcome::Connected,
                status: [None, Some(200), Some(302), Some(503)][rng.below(4) as usize],
                http_version: None,
                dns_ns: None,
                connect_ns: None,
                tls_ns: None,
                first_byte_ns: None,
                total_ns: 1,
                body_bytes: rng.below(3),
                body_truncated: false,
                failure: None,
            }),
            _ => r.result.outcome,
        };
        r
    }

    /// Reports and progress from the store's cells equal those from every stored result
    /// (today's fold, `store::fold_cells`): random results of several tasks, targets and
    /// families, resent within and across batches, with results of a task of no campaign.
    #[test]
    fn reports_from_cells_equal_reports_from_every_result() {
        #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("seed {seed}");
        let mut rng = Random(seed);
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), None);
        let spec = "name = \"d\"\ntargets = [\"a.example\", \"b.example\", \"2a00:1450:4001:800::200e\"]\n\
            [[measurements]]\nkind = \"ping\"\nfamily = \"both\"\ntimeout_ms = 2000\n\
            [[measurements]]\nkind = \"http\"\nfamily = \"both\"\nurl = \"http://{target}/\"\ntimeout_ms = 2000\n\
            [[measurements]]\nkind = \"tcp\"\nport = 443\ntimeout_ms = 2000\n";
        let record = c.create("reg", "toml", spec, NOW).unwrap();
        let other = c.create("reg", "toml", SPEC, NOW).unwrap();
        assert!(record.tasks.len() >= 12, "{} tasks", record.tasks.len());
        let mut tasks: Vec<TaskId> = record.tasks.iter().map(|t| t.task_id).collect();
        tasks.push(other.tasks[0].task_id);
        // A task of no campaign: stored, counted nowhere.
        tasks.push(c.store.task_id("ping outside any campaign").unwrap());
        let mut all = Vec::new();
        for probe in &record.probes {
            for sequence in 1..=60 + rng.below(60) {
                let task = tasks[rng.below(tasks.len() as u64) as usize];
                let http = record.task(task).is_some_and(|t| {
                    t.task.spec.measurement_kind()
                        == sixmap_shared::measurement::MeasurementKind::Http
                });
                all.push(random_result(&mut rng, &probe.probe, task, http, sequence));
            }
        }
        // The same key from another boot is another result; the dedup key is the whole key.
        let mut sent = 0;
        while sent < all.len() {
            let size = 1 + rng.below(40) as usize;
            let mut batch = all[sent..(sent + size).min(all.len())].to_vec();
            sent += batch.len();
            if rng.below(2) == 0 {
                batch.push(all[rng.below(sent as u64) as usize].clone());
            }
            if rng.below(4) == 0 {
                batch.push(batch[0].clone());
            }
            c.store.insert_results(&batch).unwrap();
        }
        let mut unique: HashMap<sixmap_shared::ResultKey, crate::store::StoredResult> =
            HashMap::new();
        for r in &all {
            unique
                .entry(r.result.key.clone())
                .or_insert_with(|| r.clone());
        }
        let now = UnixMicros(NOW.0 + 3_600_000_000);
        for campaign in [&record, &other] {
            let from_cells = c.cells(campaign.id).unwrap();
            let mut stored = Vec::new();
            c.store
                .campaign_results(campaign.id, &mut |r| {
                    stored.push(r);
                    true
                })
                .unwrap();
            let from_results = crate::store::fold_cells(stored);
            let expected = crate::store::fold_cells(
                unique
                    .values()
                    .filter(|r| campaign.task(r.result.task_id).is_some())
                    .cloned(),
            );
            assert!(from_cells == expected, "cells differ (seed {seed})");
            assert!(from_results == expected, "results differ (seed {seed})");
            let progress = c.progress(campaign, &from_cells, now);
            assert_eq!(progress, c.progress(campaign, &from_results, now));
            assert_eq!(
                progress.results_in,
                expected.iter().map(|cell| cell.results).sum::<u64>()
            );
            let report = |cells: &[CampaignCell]| {
                let progress = c.progress(campaign, cells, now);
                serde_json::to_string(&report::build(
                    campaign,
                    cells,
                    progress,
                    now,
                    crate::rollup::MinSample::default(),
                ))
                .unwrap()
            };
            let expected = report(&from_results);
            assert!(
                report(&from_cells) == expected,
                "reports differ (seed {seed})"
            );
            let served = serde_json::to_string(&c.report(campaign.id, now).unwrap()).unwrap();
            assert!(served == expected, "served report differs (seed {seed})");
        }
        // The report has figures to compare: results counted per target, failures by class.
        let big = c.report(record.id, now).unwrap();
        assert!(big.targets.iter().all(|t| !t.results.is_empty()));
        assert!(big.progress.failures.contains_key("resolution"));
        assert!(big.progress.reached > 0);
        assert!(
            big.targets.iter().any(|t| t
                .same_content_v4_v6
                .as_ref()
                .is_some_and(|s| s.compared > 0)),
            "no page compared over both families (seed {seed})"
        );
        // The same cells after a reopen.
        let before = c.cells(record.id).unwrap();
        drop(c);
        let c = Campaigns::new(Arc::new(SledStore::open(dir.path()).unwrap()), false, None);
        assert!(c.cells(record.id).unwrap() == before);
    }

    /// The readiness trend from the rows kept at ingest (`figures::readiness`) equals the
    /// trend from a scan of the campaign's results, on random results: several probes and
    /// days, a probe measuring a domain more than once a day, replays, failed runs, a
    /// campaign that measures more than readiness, days older than the trend shows, and the
    /// rows folded in rounds as results arrive.
    #[test]
    fn the_readiness_trend_kept_at_ingest_equals_the_scan() {
        use super::readiness::tests::{good, partial, v4only};
        use sixmap_shared::measurement::{ErrorClass, MeasurementError, Outcome};
        #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("seed {seed}");
        let mut rng = Random(seed);
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), None);
        let spec = "name = \"r\"\ntargets = [\"a.gov.example\", \"b.gov.example\", \"c.gov.example\"]\n\
            [[entities]]\nname = \"M\"\ndomains = [\"a.gov.example\", \"b.gov.example\"]\n\
            [[measurements]]\nkind = \"readiness\"\ntimeout_ms = 30000\n\
            [[measurements]]\nkind = \"ping\"\ntimeout_ms = 5000\n";
        let record = c.create("reg", "toml", spec, NOW).unwrap();
        let prefixes = sixmap_shared::prefixes::PrefixData::new();
        // A new store's figures, built before any result (as at the collector's start).
        crate::figures::fold::rebuild(&*c.store, &prefixes, NOW).unwrap();
        const DAY: i64 = 86_400_000_000;
        let fixtures = [good(), partial(), v4only()];
        let mut all = Vec::new();
        for probe in &record.probes {
            for sequence in 1..=50 {
                let task = &record.tasks[rng.below(record.tasks.len() as u64) as usize];
                // Mostly the last 8 days; a few long before what the trend shows.
                let day = if rng.below(40) == 0 {
                    -400 - rng.below(30) as i64
                } else {
                    -(rng.below(8) as i64)
                };
                let at = UnixMicros(NOW.0 + day * DAY + rng.below(DAY as u64) as i64);
                let mut r = crate::testing::ping_v6(
                    probe.probe.clone(),
                    sequence,
                    at,
                    Some(Duration::from_millis(3)),
                    Enrichment::default(),
                );
                r.result.task_id = task.task_id;
                r.result.key.boot_epoch = 1 + rng.below(2);
                if task.task.spec.measurement_kind() == MeasurementKind::Readiness {
                    r.result.outcome = match rng.below(8) {
                        0 => Outcome::Failed(MeasurementError {
                            class: ErrorClass::Internal,
                            message: "readiness produced an invalid result".into(),
                        }),
                        n => Outcome::Readiness(Box::new(fixtures[n as usize % 3].clone())),
                    };
                }
                all.push(r);
            }
        }
        // One result dated decades ahead (a probe's clock, or a hostile probe) must not move
        // the window past every real day.
        let readiness_task = record
            .tasks
            .iter()
            .find(|t| t.task.spec.measurement_kind() == MeasurementKind::Readiness)
            .unwrap();
        let mut ahead = all[0].clone();
        ahead.result.key.sequence = 10_000;
        ahead.result.started_at = UnixMicros(NOW.0 + 30_000 * DAY);
        ahead.result.task_id = readiness_task.task_id;
        ahead.result.outcome = Outcome::Readiness(Box::new(good()));
        all.push(ahead);
        let mut sent = 0;
        while sent < all.len() {
            let size = 1 + rng.below(30) as usize;
            let mut batch = all[sent..(sent + size).min(all.len())].to_vec();
            sent += batch.len();
            if rng.below(2) == 0 {
                batch.push(all[rng.below(sent as u64) as usize].clone());
            }
            c.store.insert_results(&batch).unwrap();
            if rng.below(3) == 0 {
                crate::figures::fold::fold_once(
                    &*c.store,
                    &prefixes,
                    1 + rng.below(40) as usize,
                    i64::MIN,
                )
                .unwrap();
            }
        }
        while crate::figures::fold::fold_once(&*c.store, &prefixes, 100, i64::MIN)
            .unwrap()
            .folded
            > 0
        {}
        let cells = c.cells(record.id).unwrap();
        let kept = c.readiness_trend_kept(&record, &cells, NOW).unwrap();
        let scanned = c.readiness_trend_scanned(&record, NOW).unwrap();
        assert!(kept == scanned, "seed {seed}: {kept:#?}\n{scanned:#?}");
        assert!(
            kept.days.len() >= 6,
            "seed {seed}: {} days",
            kept.days.len()
        );
        assert!(kept.days.iter().all(|d| d.entities.contains_key("M")));
        // The report takes the kept rows (this store keeps figures) and so the same trend.
        let report = c.report(record.id, NOW).unwrap();
        assert!(report.readiness.unwrap().trend == Some(kept.clone()));
        // A rebuild from raw results gives the same rows, so the same trend.
        crate::figures::fold::rebuild(&*c.store, &prefixes, NOW).unwrap();
        assert!(c.readiness_trend_kept(&record, &cells, NOW).unwrap() == kept);
    }

    /// The cost of a report over a campaign of many results, from cells and (as before
    /// cells) from every result. Figures in `docs/benchmarks.md`; run with
    /// `cargo test -p sixmap-collector --release --lib report_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark: prints figures"]
    fn report_cost_from_cells_and_from_every_result() {
        let n: u64 = std::env::var("SIXMAP_REPORT_RESULTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let dir = tempfile::tempdir().unwrap();
        let c = service(dir.path(), &fleet(), None);
        let spec = "name = \"b\"\ntargets = [\"a.example\", \"b.example\"]\n\
            [[measurements]]\nkind = \"ping\"\nfamily = \"both\"\ntimeout_ms = 2000\n\
            [[measurements]]\nkind = \"http\"\nfamily = \"both\"\nurl = \"http://{target}/\"\ntimeout_ms = 2000\n";
        let record = c.create("reg", "toml", spec, NOW).unwrap();
        let mut rng = Random(0x5eed);
        let per_probe = n / record.probes.len() as u64;
        let started = std::time::Instant::now();
        for probe in &record.probes {
            let mut batch = Vec::with_capacity(100);
            for sequence in 1..=per_probe {
                let task = record.tasks[rng.below(record.tasks.len() as u64) as usize].task_id;
                batch.push(random_result(&mut rng, &probe.probe, task, false, sequence));
                if batch.len() == 100 {
                    c.store.insert_results(&batch).unwrap();
                    batch.clear();
                }
            }
            c.store.insert_results(&batch).unwrap();
        }
        c.store.flush().unwrap();
        let ingest = started.elapsed();
        // The same results as tasks of no campaign: no `c` index entry and no cell written,
        // so the difference bounds what campaign results cost at ingest.
        let plain = c.store.task_id("ping outside any campaign").unwrap();
        let started = std::time::Instant::now();
        for probe in &record.probes {
            let mut batch = Vec::with_capacity(100);
            for sequence in 1..=per_probe {
                let mut r = random_result(&mut rng, &probe.probe, plain, false, sequence);
                r.result.key.boot_epoch += 10;
                batch.push(r);
                if batch.len() == 100 {
                    c.store.insert_results(&batch).unwrap();
                    batch.clear();
                }
            }
            c.store.insert_results(&batch).unwrap();
        }
        c.store.flush().unwrap();
        let ingest_plain = started.elapsed();
        let now = UnixMicros(NOW.0 + 3_600_000_000);
        let time = |f: &dyn Fn() -> String| {
            let started = std::time::Instant::now();
            let out = f();
            (started.elapsed(), out)
        };
        let (from_cells, a) =
            time(&|| serde_json::to_string(&c.report(record.id, now).unwrap()).unwrap());
        let (from_results, b) = time(&|| {
            let mut all = Vec::new();
            c.store
                .campaign_results(record.id, &mut |r| {
                    all.push(r);
                    true
                })
                .unwrap();
            let cells = crate::store::fold_cells(all);
            let progress = c.progress(&record, &cells, now);
            serde_json::to_string(&report::build(
                &record,
                &cells,
                progress,
                now,
                crate::rollup::MinSample::default(),
            ))
            .unwrap()
        });
        assert!(a == b, "the two reports differ");
        let cells = c.cells(record.id).unwrap().len();
        eprintln!(
            "{} results, {cells} cells (ingest {:.2} s; of no campaign {:.2} s): report from \
             cells {:.2} ms, from every result {:.1} ms ({:.0}x)",
            per_probe * record.probes.len() as u64,
            ingest.as_secs_f64(),
            ingest_plain.as_secs_f64(),
            from_cells.as_secs_f64() * 1e3,
            from_results.as_secs_f64() * 1e3,
            from_results.as_secs_f64() / from_cells.as_secs_f64()
        );
    }
}
