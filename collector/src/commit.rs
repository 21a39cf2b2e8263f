//! Group commit: one store flush makes every batch written before it durable.
//!
//! A flush (an fsync) costs about as much for one batch as for a thousand, and with many
//! probe sessions each flushing its own batch they queue behind each other's fsyncs. So a
//! session writes its batch, then waits here; one flusher flushes for all who wait, at most
//! one flush at a time, and batches written meanwhile wait for the next one. "Acked ⇒
//! durable" still holds: a waiter is released only by a flush that started after it joined,
//! hence after its write returned.

use crate::fatal::Fatal;
use crate::figures::feed::Feed;
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;

type Flush = dyn Fn() -> Result<(), StoreError> + Send + Sync;

/// Shortest time from one flush's start to the next one's: what an ack may wait at most
/// beyond the flush itself when the store is idle, and what keeps flushes out of the
/// writers' way under load.
pub const FLUSH_GAP: std::time::Duration = std::time::Duration::from_millis(20);

/// Flushes the store for every session waiting, one flush at a time.
pub struct GroupCommit {
    flush: Arc<Flush>,
    state: Mutex<State>,
    /// Batch writes running at once: about one per core. sled serialises transactions, so
    /// hundreds of sessions writing at once on blocking threads mostly contend.
    writers: Arc<tokio::sync::Semaphore>,
    /// Where store failures go, and how long a flush may take before it counts as one.
    fatal: OnceLock<(Fatal, Duration)>,
    /// Where the batches written here hand their figure deltas to the folder.
    feed: OnceLock<Arc<Feed>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Sessions whose writes the next flush must cover.
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
    /// A flusher task is running; it takes `waiting` before each flush.
    flushing: bool,
}

impl GroupCommit {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Self::with_flush(move || {
            let started = std::time::Instant::now();
            let flushed = store.flush();
            crate::metrics::metrics()
                .store_flush
                .observe_duration(started.elapsed());
            flushed
        })
    }

    /// With any flush (a blocking call), e.g. a counting one in tests.
    pub fn with_flush(
        flush: impl Fn() -> Result<(), StoreError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Self {
            flush: Arc::new(flush),
            state: Mutex::new(State::default()),
            writers: Arc::new(tokio::sync::Semaphore::new(cores)),
            fatal: OnceLock::new(),
            feed: OnceLock::new(),
        })
    }

    /// Reports failed writes and flushes (and flushes slower than `flush_timeout`) to
    /// `fatal`. Set once; later calls are ignored.
    pub fn report_failures_to(&self, fatal: Fatal, flush_timeout: Duration) {
        let _ = self.fatal.set((fatal, flush_timeout));
    }

    /// Batches written through this hand their figure deltas to `feed` (the folder's). Set
    /// once; later calls are ignored.
    pub fn hand_figures_to(&self, feed: Arc<Feed>) {
        let _ = self.feed.set(feed);
    }

    /// The folder's feed, if the figures are folded here.
    pub fn figures_feed(&self) -> Option<Arc<Feed>> {
        self.feed.get().cloned()
    }

    fn failed(&self, what: &str, e: &StoreError) {
        // A corrupt record or a duplicate probe is about the data, not the store.
        if matches!(e, StoreError::Backend(_))
            && let Some((fatal, _)) = self.fatal.get()
        {
            fatal.trigger(format!("store {what} failed: {e}"));
        }
    }

    /// Runs a batch's store writes on a blocking thread, at most about one per core at once.
    pub async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self
            .writers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("batch writers closed".into()))?;
        let written = crate::store::run_blocking(work).await;
        if let Err(e) = &written {
            self.failed("write", e);
        }
        written
    }

    /// Returns once a flush that started after this call has completed: everything the
    /// caller wrote before calling is durable.
    pub async fn flush(self: &Arc<Self>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let start_flusher = {
            let mut state = self
                .state
                .lock()
                .map_err(|_| StoreError::Backend("group commit state poisoned".into()))?;
            state.waiting.push(tx);
            !std::mem::replace(&mut state.flushing, true)
        };
        if start_flusher {
            // A task of its own: a session that goes away while waiting must not stop the
            // flushes others wait for.
            tokio::spawn(self.clone().flush_while_waited_for());
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Backend(e)),
            Err(_) => Err(StoreError::Backend("group commit flusher ended".into())),
        }
    }

    async fn flush_while_waited_for(self: Arc<Self>) {
        let mut last_start: Option<tokio::time::Instant> = None;
        loop {
            // Flushes back to back slow the writers down (sled's flush contends with its
            // writes: 30 % fewer rows/s with a flush every 5 ms than every 20 ms): batches
            // written meanwhile wait a little and share the next flush instead.
            if let Some(last) = last_start {
                tokio::time::sleep_until(last + FLUSH_GAP).await;
            }
            last_start = Some(tokio::time::Instant::now());
            let waiters = {
                let Ok(mut state) = self.state.lock() else {
                    // Poisoned: dropping the waiters' senders fails them.
                    return;
                };
                if state.waiting.is_empty() {
                    state.flushing = false;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            let flush = self.flush.clone();
            let flushing = crate::store::run_blocking(move || flush());
            let outcome = match self.fatal.get() {
                Some((_, timeout)) => match tokio::time::timeout(*timeout, flushing).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(StoreError::Backend(format!(
                        "a flush took longer than {} s",
                        timeout.as_secs()
                    ))),
                },
                None => flushing.await,
            };
            if let Err(e) = &outcome {
                self.failed("flush", e);
            }
            let outcome = outcome.map_err(|e| e.to_string());
            for waiter in waiters {
                // A session that went away does not care.
                let _ = waiter.send(outcome.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_share_flushes_and_each_gets_one_that_started_after_it() {
        let started = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicU64::new(0));
        let (s, f) = (started.clone(), finished.clone());
        let commit = GroupCommit::with_flush(move || {
            s.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            f.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200u64 {
            let (commit, started, finished) = (commit.clone(), started.clone(), finished.clone());
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(i % 50)).await;
                // Flushes begun before this point cannot cover a write made here.
                let begun = started.load(Ordering::SeqCst);
                commit.flush().await.unwrap();
                assert!(
                    finished.load(Ordering::SeqCst) > begun,
                    "released by a flush that started before the wait"
                );
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let flushes = started.load(Ordering::SeqCst);
        assert!(flushes < 100, "{flushes} flushes for 200 waiters");
        // Idle again: the next waiter starts a new flusher.
        commit.flush().await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), flushes + 1);
    }

    #[tokio::test]
    async fn a_failed_flush_fails_its_waiters_only() {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let commit = GroupCommit::with_flush(move || {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(StoreError::Backend("disk full".into()))
            } else {
                Ok(())
            }
        });
        let err = commit.flush().await.unwrap_err().to_string();
        assert!(err.contains("disk full"), "{err}");
        commit.flush().await.unwrap();
    }

    #[tokio::test]
    async fn failed_and_stuck_flushes_and_failed_writes_are_fatal() {
        let fails =
            GroupCommit::with_flush(|| Err(StoreError::Backend("Too many open files".into())));
        let fatal = Fatal::default();
        fails.report_failures_to(fatal.clone(), Duration::from_secs(30));
        assert!(fails.flush().await.is_err());
        assert!(fatal.reason().unwrap().contains("Too many open files"));

        let stuck = GroupCommit::with_flush(|| {
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        });
        let fatal = Fatal::default();
        stuck.report_failures_to(fatal.clone(), Duration::from_millis(300));
        assert!(stuck.flush().await.is_err());
        assert!(fatal.reason().unwrap().contains("longer than"));

        let writes = GroupCommit::with_flush(|| Ok(()));
        let fatal = Fatal::default();
        writes.report_failures_to(fatal.clone(), Duration::from_secs(30));
        let refused: Result<(), _> = writes
            .write(|| {
                Err(StoreError::Corrupt {
                    key: "k".into(),
                    reason: "bad".into(),
                })
            })
            .await;
        assert!(refused.is_err());
        assert!(
            fatal.reason().is_none(),
            "a corrupt record is not a broken store"
        );
        let failed: Result<(), _> = writes
            .write(|| Err(StoreError::Backend("No space left on device".into())))
            .await;
        assert!(failed.is_err());
        assert!(fatal.reason().unwrap().contains("No space left"));
    }
}
