//! A bounded pool of threads for store reads made by the API (maps, probes, results, query
//! pages, exports, result streams). tokio's blocking pool is shared with ingest's batch
//! writes and flushes; readers waiting on their clients (a stalled export) or many map
//! requests at once could otherwise take all of its threads and stop ingest (issue #19).
//!
//! The HTTP layers put the collector's [`Readers`] in a task-local for the request, so
//! handlers call [`read_blocking`] without carrying it; the gRPC query service holds its
//! own handle.
//!
//! A job stops when the request that started it is gone: the future awaiting it is dropped
//! (the client closed its connection, the request timeout passed) or, for a streamed body,
//! the body is dropped. The job's thread cannot be interrupted, so the scan loops of long
//! reads (`store::scan_filtered_bounded`, the map scan, exports, campaign reports) call
//! [`check`] (or [`cancelled`]) per row; it answers for the job running on the calling
//! thread, so the store and the formats need no token passed through them.

use crate::store::StoreError;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct Readers {
    permits: Arc<Semaphore>,
    max: usize,
    stopped: Arc<AtomicU64>,
}

tokio::task_local! {
    static CURRENT: Readers;
}

thread_local! {
    /// The flags of the reader job running on this thread.
    static JOB: RefCell<Option<Arc<Flags>>> = const { RefCell::new(None) };
}

#[derive(Debug, Default)]
struct Flags {
    /// Set when the job's request is gone.
    stop: AtomicBool,
    /// Set when a scan loop of the job saw `stop` and ended early.
    seen: AtomicBool,
}

/// Whether the request behind the reader job on this thread is gone; the caller then ends
/// its scan. False outside a job (background work such as rollups is never stopped this
/// way).
pub fn cancelled() -> bool {
    JOB.with(|job| {
        job.borrow().as_ref().is_some_and(|flags| {
            let stop = flags.stop.load(Ordering::Relaxed);
            if stop {
                flags.seen.store(true, Ordering::Relaxed);
            }
            stop
        })
    })
}

/// [`cancelled`] as an error, for scan loops to end with.
pub fn check() -> Result<(), StoreError> {
    if cancelled() {
        Err(StoreError::Cancelled)
    } else {
        Ok(())
    }
}

/// Stops its job when dropped: held by the future awaiting the job, or by a streamed body.
#[derive(Debug)]
pub struct StopOnDrop(Arc<Flags>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
}

/// The stop flag of the job on this thread, to carry to a helper thread the job starts
/// (the export's store reader): [`Job::enter`] makes [`check`] answer there too.
#[derive(Debug, Clone, Default)]
pub struct Job(Option<Arc<Flags>>);

/// This thread's job (none outside one).
pub fn job() -> Job {
    Job(JOB.with(|job| job.borrow().clone()))
}

impl Job {
    /// Runs `work` on this thread as part of the job.
    pub fn enter<T>(self, work: impl FnOnce() -> T) -> T {
        struct Restore(Option<Arc<Flags>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                JOB.with(|job| *job.borrow_mut() = previous);
            }
        }
        let previous = JOB.with(|job| std::mem::replace(&mut *job.borrow_mut(), self.0));
        let _restore = Restore(previous);
        work()
    }
}

/// Runs `work` as the reader job of this thread with `flags`; counts it in `stopped` if it
/// ended early because its request went away.
fn as_job<T>(flags: Arc<Flags>, stopped: &AtomicU64, work: impl FnOnce() -> T) -> T {
    let metrics = crate::metrics::metrics();
    let _running = Running::start(&metrics.reader_jobs_running);
    let out = Job(Some(flags.clone())).enter(work);
    if flags.seen.load(Ordering::Relaxed) {
        stopped.fetch_add(1, Ordering::Relaxed);
        metrics.reader_jobs_stopped.inc();
    }
    out
}

/// One job in `sixmap_collector_reader_jobs_running`, also if the job panics.
struct Running<'a>(&'a sixmap_shared::metrics::Gauge);

impl<'a> Running<'a> {
    fn start(gauge: &'a sixmap_shared::metrics::Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Readers {
    pub fn new(threads: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(threads)),
            max: threads,
            stopped: Arc::default(),
        }
    }

    /// Jobs that ended early because their request went away, since start.
    pub fn stopped(&self) -> u64 {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Threads reading now.
    pub fn in_use(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Waits for a reader thread.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, StoreError> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("reader pool closed".into()))
    }

    /// Runs `future` (an HTTP request) with these readers as the current ones.
    pub async fn scope<F: std::future::Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// The request's readers, or the process-wide default outside a request.
    pub fn current() -> Self {
        CURRENT.try_with(Self::clone).unwrap_or_else(|_| {
            static DEFAULT: OnceLock<Readers> = OnceLock::new();
            DEFAULT
                .get_or_init(|| Readers::new(super::LimitsConfig::default().reader_threads))
                .clone()
        })
    }

    /// Runs store reads on a blocking thread once one of this pool's permits is free. If
    /// this future is dropped first, the job is asked to stop ([`check`]).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self.acquire().await?;
        let (_stop, job) = self.job(permit, work);
        crate::store::run_blocking(job).await
    }

    /// `work` as a job holding `permit`, and the guard that stops it.
    fn job<T>(
        &self,
        permit: OwnedSemaphorePermit,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> (StopOnDrop, impl FnOnce() -> T + Send + 'static) {
        let flags = Arc::new(Flags::default());
        let stop = StopOnDrop(flags.clone());
        let stopped = self.stopped.clone();
        (stop, move || {
            let _permit = permit;
            as_job(flags, &stopped, work)
        })
    }

    /// Starts `work` on a blocking thread holding `permit` without waiting for it: for a
    /// streamed response, whose body keeps the returned guard (dropping it stops the job).
    pub fn spawn(
        &self,
        permit: OwnedSemaphorePermit,
        work: impl FnOnce() + Send + 'static,
    ) -> StopOnDrop {
        let (stop, job) = self.job(permit, work);
        tokio::task::spawn_blocking(job);
        stop
    }
}

/// [`Readers::run`] on the current request's readers.
pub async fn read_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    Readers::current().run(work).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_dropped_request_stops_its_job_and_frees_its_thread() {
        let readers = Readers::new(1);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let pool = readers.clone();
        let job = async move {
            pool.run(move || -> Result<(), StoreError> {
                let _ = started_tx.send(());
                // A scan that would go on for ever unless stopped.
                loop {
                    check()?;
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .await
        };
        let waiter = tokio::spawn(job);
        started_rx.await.unwrap();
        assert_eq!(readers.in_use(), 1);
        waiter.abort();
        tokio::time::timeout(Duration::from_secs(30), async {
            while readers.in_use() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the stopped job still holds its reader thread");
        assert_eq!(readers.stopped(), 1);
        // A job that ends by itself is not counted, and outside a job nothing is cancelled.
        assert!(!readers.run(|| Ok(cancelled())).await.unwrap());
        assert_eq!(readers.stopped(), 1);
        assert!(!cancelled());
    }

    #[tokio::test]
    async fn a_dropped_body_stops_its_spawned_job() {
        let readers = Readers::new(1);
        let permit = readers.acquire().await.unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let guard = readers.spawn(permit, move || {
            while !cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = tx.send(());
        });
        drop(guard);
        tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("the job did not see its stop");
        // The permit goes back once the job is counted.
        while readers.in_use() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(readers.stopped(), 1);
    }
}
