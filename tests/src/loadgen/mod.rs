//! `sixmap-loadgen`: many simulated probes against a real collector over real gRPC sessions
//! (mTLS, hello, assignments, result batches, acks), to measure ingest throughput, ack
//! latency and the collector's memory per idle session; plus a raw sled baseline so the
//! collector's ingest is reported as a ratio to what its store can do at all.
//!
//! Work directory layout (sled backend):
//! - `enrolled/collector/`: data dir of a stopped collector where the probes are enrolled,
//!   `enrolled/identities.bin` their identities ([`enroll`]), `enrolled/admin-token`. Kept
//!   between runs: enrolling thousands of probes takes a while, copying their store does not.
//! - `run/collector/`: a fresh copy of `enrolled/collector` for each run, and its config and
//!   log beside it (`run/collector.toml`, `run/collector.log`); left for inspection.
//! - `baseline/`: the raw sled baseline's database, removed before each baseline.

pub mod baseline;
pub mod collector;
pub mod enroll;
pub mod procstat;
pub mod report;
pub mod results;
mod rlimit;
pub mod session;

use collector::{Backend, Process};
use enroll::Identity;
use procstat::Pid;
use report::Cost;
use session::Session;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};

pub use rlimit::raise_nofile;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Collector(#[from] collector::CollectorError),
    #[error(transparent)]
    Enroll(#[from] enroll::EnrollError),
    #[error(transparent)]
    Session(#[from] session::SessionError),
    #[error(transparent)]
    Baseline(#[from] baseline::BaselineError),
    #[error(transparent)]
    Template(#[from] results::TemplateError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Run(String),
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LoadError {
    let path = path.to_owned();
    move |source| LoadError::Io { what, path, source }
}

/// Where the collector comes from: started here on a copy of the enrolled store, or running
/// already (then its config must assign the tasks of [`results::KINDS`]).
#[derive(Debug, Clone)]
pub enum CollectorSource {
    Spawn {
        binary: PathBuf,
        backend: Backend,
        /// `RUST_LOG` of the collector.
        log_filter: String,
    },
    External {
        grpc: std::net::SocketAddr,
        http: std::net::SocketAddr,
        admin: String,
        pid: Option<u32>,
    },
}

#[derive(Debug, Clone)]
pub struct Setup {
    pub source: CollectorSource,
    pub work_dir: PathBuf,
    /// Enrollments in progress at once.
    pub enroll_concurrency: usize,
    /// Sessions being opened (TLS handshake, hello, greeting) at once.
    pub connect_concurrency: usize,
    /// Ignore enrolled identities of earlier runs.
    pub fresh: bool,
}

/// A collector ready for load and the identities of `count` probes enrolled with it.
#[derive(Debug)]
pub struct Ready {
    pub process: Option<Process>,
    pub grpc: std::net::SocketAddr,
    pub pid: Option<u32>,
    pub identities: Vec<Identity>,
    pub data_dir: Option<PathBuf>,
    pub backend: String,
}

const ENROLL_CHUNK: usize = 1000;

async fn enroll_into(
    target: &enroll::Target,
    have: usize,
    want: usize,
    concurrency: usize,
    save: Option<&Path>,
) -> Result<Vec<Identity>, LoadError> {
    let mut out = Vec::new();
    let started = Instant::now();
    let mut done = have;
    while done < want {
        let n = ENROLL_CHUNK.min(want - done);
        let chunk = enroll::enroll(target, n, done, concurrency).await?;
        if let Some(path) = save {
            enroll::append(path, &chunk)?;
        }
        done += n;
        out.extend(chunk);
        info!(
            enrolled = done,
            of = want,
            seconds = started.elapsed().as_secs_f64(),
            "enrolling simulated probes"
        );
    }
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), LoadError> {
    std::fs::create_dir_all(to).map_err(io_error("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io_error("read", from))? {
        let entry = entry.map_err(io_error("read", from))?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io_error("read", &entry.path()))?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io_error("copy", &entry.path()))?;
        }
    }
    Ok(())
}

fn remove_dir(path: &Path) -> Result<(), LoadError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", path)(e)),
    }
}

/// Starts (or reaches) the collector with at least `count` enrolled probes.
pub async fn prepare(setup: &Setup, count: usize, max_sessions: usize) -> Result<Ready, LoadError> {
    match &setup.source {
        CollectorSource::External {
            grpc,
            http,
            admin,
            pid,
        } => {
            let target = enroll::Target {
                grpc: *grpc,
                http: *http,
                admin: admin.clone(),
            };
            let identities = enroll_into(&target, 0, count, setup.enroll_concurrency, None).await?;
            Ok(Ready {
                process: None,
                grpc: *grpc,
                pid: *pid,
                identities,
                data_dir: None,
                backend: "external".into(),
            })
        }
        CollectorSource::Spawn {
            binary,
            backend,
            log_filter,
        } => {
            std::fs::create_dir_all(&setup.work_dir)
                .map_err(io_error("create", &setup.work_dir))?;
            let run = setup.work_dir.join("run");
            remove_dir(&run)?;
            std::fs::create_dir_all(&run).map_err(io_error("create", &run))?;
            let data_dir = run.join("collector");
            if *backend != Backend::Sled {
                // Probes and certificates live in the backend's store: no template to copy.
                let admin = collector::admin_token(binary, &data_dir, backend, max_sessions)?;
                let process = Process::start(binary, &data_dir, backend, max_sessions, log_filter)?;
                let target = enroll::Target {
                    grpc: process.grpc,
                    http: process.http,
                    admin,
                };
                let identities =
                    enroll_into(&target, 0, count, setup.enroll_concurrency, None).await?;
                return Ok(Ready {
                    grpc: process.grpc,
                    pid: Some(process.pid()),
                    process: Some(process),
                    identities,
                    data_dir: Some(data_dir),
                    backend: backend.name().into(),
                });
            }
            let enrolled = setup.work_dir.join("enrolled");
            if setup.fresh {
                remove_dir(&enrolled)?;
            }
            let template = enrolled.join("collector");
            let ids_path = enrolled.join("identities.bin");
            let token_path = enrolled.join("admin-token");
            std::fs::create_dir_all(&enrolled).map_err(io_error("create", &enrolled))?;
            let mut identities = enroll::load(&ids_path)?;
            if identities.len() < count {
                let admin = match std::fs::read_to_string(&token_path) {
                    Ok(token) => token.trim().to_owned(),
                    Err(_) => {
                        let token =
                            collector::admin_token(binary, &template, backend, max_sessions)?;
                        std::fs::write(&token_path, &token)
                            .map_err(io_error("write", &token_path))?;
                        token
                    }
                };
                let mut process =
                    Process::start(binary, &template, backend, max_sessions, log_filter)?;
                let target = enroll::Target {
                    grpc: process.grpc,
                    http: process.http,
                    admin,
                };
                let more = enroll_into(
                    &target,
                    identities.len(),
                    count,
                    setup.enroll_concurrency,
                    Some(&ids_path),
                )
                .await?;
                identities.extend(more);
                process.stop();
            }
            identities.truncate(count);
            copy_dir(&template, &data_dir)?;
            let process = Process::start(binary, &data_dir, backend, max_sessions, log_filter)?;
            Ok(Ready {
                grpc: process.grpc,
                pid: Some(process.pid()),
                process: Some(process),
                identities,
                data_dir: Some(data_dir),
                backend: backend.name().into(),
            })
        }
    }
}

/// Samples a process's RSS every 250 ms until dropped; the largest seen.
#[derive(Debug)]
struct RssSampler {
    max: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: Pid) -> Self {
        let max = Arc::new(AtomicU64::new(0));
        let seen = max.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(memory) = procstat::memory(pid) {
                    seen.fetch_max(memory.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Self { max, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.max.load(Ordering::Relaxed)
    }
}

/// CPU time and RSS of the collector (when its pid is known) and of the loadgen itself, from
/// the start of a measured phase to its end.
#[derive(Debug)]
struct Meters {
    collector: Option<(Pid, f64, RssSampler)>,
    own_cpu0: f64,
    own_rss: RssSampler,
}

impl Meters {
    fn start(collector_pid: Option<Pid>) -> Self {
        Self {
            collector: collector_pid.map(|pid| (pid, cpu(pid), RssSampler::start(pid))),
            own_cpu0: cpu(Pid::Own),
            own_rss: RssSampler::start(Pid::Own),
        }
    }

    /// The collector's cost (if measured) and the loadgen's.
    fn finish(self) -> (Option<Cost>, Cost) {
        let cost = |pid: Pid, cpu0: f64, rss: RssSampler| Cost {
            cpu_seconds: cpu(pid) - cpu0,
            rss_max_kib: rss.stop(),
            hwm_kib: procstat::memory(pid).map_or(0, |m| m.hwm_kib),
        };
        let collector = self.collector.map(|(pid, cpu0, rss)| cost(pid, cpu0, rss));
        (collector, cost(Pid::Own, self.own_cpu0, self.own_rss))
    }
}

/// CPU seconds of a process so far; 0 if unreadable (the loss is reported as such).
fn cpu(pid: Pid) -> f64 {
    procstat::cpu_seconds(pid).unwrap_or_else(|e| {
        warn!(error = %e, "cannot read CPU time");
        0.0
    })
}

fn boot_epoch() -> u64 {
    // Unique per run, so a collector that outlives runs (--connect) never sees a key twice.
    u64::try_from(sixmap_shared::UnixMicros::now().0 / 1_000_000).unwrap_or(1)
}

/// Opens sessions for `identities`, `concurrency` at a time; fails on the first that fails.
async fn open_all(
    grpc: std::net::SocketAddr,
    identities: &[Identity],
    concurrency: usize,
) -> Result<Vec<Session>, LoadError> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let epoch = boot_epoch();
    let mut tasks = tokio::task::JoinSet::new();
    for identity in identities {
        let (permits, identity) = (permits.clone(), identity.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            Session::open(grpc, &identity, epoch, true).await
        });
    }
    let mut sessions = Vec::with_capacity(identities.len());
    while let Some(joined) = tasks.join_next().await {
        let session = joined.map_err(|e| LoadError::Run(format!("session task: {e}")))??;
        sessions.push(session);
    }
    Ok(sessions)
}

/// Parameters of an ingest run.
#[derive(Debug, Clone)]
pub struct IngestPlan {
    pub probes: usize,
    pub batch_size: usize,
    pub window: usize,
    pub duration: Duration,
    pub baseline: bool,
    pub seed: u64,
}

/// N probes send batches as fast as the collector acks them for the duration.
pub async fn ingest(setup: &Setup, plan: &IngestPlan) -> Result<report::Ingest, LoadError> {
    let factory = Arc::new(results::Factory::new(plan.seed)?);
    let mut ready = prepare(setup, plan.probes, plan.probes + 16).await?;
    info!(probes = plan.probes, "opening sessions");
    let sessions = open_all(ready.grpc, &ready.identities, setup.connect_concurrency).await?;
    let collector_pid = ready.pid.map(Pid::Other);
    let (go, start) = watch::channel(false);
    let stop_at = Instant::now() + Duration::from_millis(200) + plan.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let (factory, start) = (factory.clone(), start.clone());
        let (batch, window, seed) = (plan.batch_size, plan.window, plan.seed ^ (i as u64 + 1));
        tasks.spawn(async move {
            session
                .ingest(&factory, seed, batch, window, start, stop_at)
                .await
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let load_before = report::load_average();
    let meters = Meters::start(collector_pid);
    let started = Instant::now();
    let _ = go.send(true);
    let mut tally = session::IngestTally::default();
    while let Some(joined) = tasks.join_next().await {
        let one = joined.map_err(|e| LoadError::Run(format!("probe task: {e}")))??;
        tally.batches += one.batches;
        tally.sent += one.sent;
        tally.acked += one.acked;
        tally.rejected += one.rejected;
        tally.latencies_us.extend(one.latencies_us);
        tally.rejection = tally.rejection.or(one.rejection);
    }
    let seconds = started.elapsed().as_secs_f64();
    let (collector, loadgen) = meters.finish();
    let load_after = report::load_average();
    if let Some(process) = ready.process.as_mut() {
        if process.exited() {
            return Err(LoadError::Run(format!(
                "the collector exited during the run: see {}",
                process.log.display()
            )));
        }
        process.stop();
    }
    tally.latencies_us.sort_unstable();
    // The baseline runs after the collector stopped, so the two never compete for the CPU.
    let baseline = if plan.baseline {
        let dir = setup.work_dir.join("baseline");
        remove_dir(&dir)?;
        let volume = tally.acked.max(plan.batch_size as u64 * 100);
        let factory = factory.clone();
        let batch = plan.batch_size;
        Some(
            tokio::task::spawn_blocking(move || baseline::run(&dir, &factory, volume, batch))
                .await
                .map_err(|e| LoadError::Run(format!("baseline task: {e}")))??,
        )
    } else {
        None
    };
    Ok(report::Ingest {
        backend: ready.backend.clone(),
        probes: plan.probes,
        batch_size: plan.batch_size,
        window: plan.window,
        seconds,
        sent: tally.sent,
        acked: tally.acked,
        rejected: tally.rejected,
        batches: tally.batches,
        latencies_us: tally.latencies_us,
        collector,
        loadgen,
        baseline,
        load_before,
        load_after,
        data_dir: ready.data_dir.as_ref().map(|d| d.display().to_string()),
        rejection: tally.rejection,
    })
}

/// The raw sled baseline alone.
pub fn baseline_only(
    work_dir: &Path,
    results: u64,
    batch_size: usize,
    seed: u64,
) -> Result<baseline::Baseline, LoadError> {
    let factory = results::Factory::new(seed)?;
    let dir = work_dir.join("baseline");
    remove_dir(&dir)?;
    Ok(baseline::run(&dir, &factory, results, batch_size)?)
}

/// Parameters of an idle run.
#[derive(Debug, Clone)]
pub struct IdlePlan {
    pub sessions: usize,
    pub hold: Duration,
    /// Collector RSS is recorded every this many sessions.
    pub step: usize,
}

/// Opens idle sessions (heartbeats only) up to the number wanted, recording the collector's
/// memory every `step` sessions, then holds them and counts those still open.
pub async fn idle(setup: &Setup, plan: &IdlePlan) -> Result<report::Idle, LoadError> {
    let mut ready = prepare(setup, plan.sessions, plan.sessions + 16).await?;
    let collector_pid = ready.pid.map(Pid::Other);
    // Let the store settle (its page cache fills at start).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_base_kib = collector_pid
        .and_then(|p| procstat::memory(p).ok())
        .map_or(0, |m| m.rss_kib);
    let meters = Meters::start(collector_pid);
    let (stop, stopped) = watch::channel(false);
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(setup.connect_concurrency.max(1)));
    let epoch = boot_epoch();
    let mut holders = tokio::task::JoinSet::new();
    let started = Instant::now();
    for identity in &ready.identities {
        let (permits, opened_tx, stopped) = (permits.clone(), opened_tx.clone(), stopped.clone());
        let identity = identity.clone();
        let grpc = ready.grpc;
        holders.spawn(async move {
            let permit = permits.acquire_owned().await;
            let session = Session::open(grpc, &identity, epoch, false).await;
            drop(permit);
            match session {
                Ok(session) => {
                    let _ = opened_tx.send(Ok(()));
                    session.idle(stopped).await
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e.to_string()));
                    false
                }
            }
        });
    }
    drop(opened_tx);
    let (mut opened, mut failed, mut first_failure) = (0usize, 0usize, None);
    let mut steps = Vec::new();
    // Each holder reports once (and keeps its sender while it holds the session).
    for _ in 0..ready.identities.len() {
        let Some(outcome) = opened_rx.recv().await else {
            break;
        };
        match outcome {
            Ok(()) => {
                opened += 1;
                if opened % plan.step.max(1) == 0 || opened == plan.sessions {
                    let rss = collector_pid
                        .and_then(|p| procstat::memory(p).ok())
                        .map_or(0, |m| m.rss_kib);
                    info!(
                        sessions = opened,
                        collector_rss_mib = rss / 1024,
                        "sessions open"
                    );
                    steps.push(report::IdleStep {
                        sessions: opened,
                        rss_kib: rss,
                    });
                }
            }
            Err(reason) => {
                failed += 1;
                if first_failure.is_none() {
                    warn!(%reason, "session failed to open");
                    first_failure = Some(reason);
                }
            }
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    info!(
        opened,
        failed,
        seconds = connect_seconds,
        "holding sessions"
    );
    let held_from = Instant::now();
    tokio::time::sleep(plan.hold).await;
    // After the hold, with every session still open: the steady-state memory.
    if let Some(pid) = collector_pid
        && let Ok(memory) = procstat::memory(pid)
        && opened > 0
    {
        steps.push(report::IdleStep {
            sessions: opened,
            rss_kib: memory.rss_kib,
        });
    }
    let hold_seconds = held_from.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let mut held = 0usize;
    while let Some(joined) = holders.join_next().await {
        if joined.unwrap_or(false) {
            held += 1;
        }
    }
    let (collector, loadgen) = meters.finish();
    if let Some(process) = ready.process.as_mut() {
        if process.exited() {
            return Err(LoadError::Run(format!(
                "the collector exited during the run: see {}",
                process.log.display()
            )));
        }
        process.stop();
    }
    Ok(report::Idle {
        backend: ready.backend.clone(),
        wanted: plan.sessions,
        held,
        opened,
        failed,
        first_failure,
        hold_seconds,
        connect_seconds,
        rss_base_kib,
        steps,
        collector,
        loadgen,
    })
}
