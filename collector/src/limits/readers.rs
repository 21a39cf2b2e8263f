//! A bounded pool of threads for store reads made by the API (maps, probes, results, query
//! pages, exports, result streams). tokio's blocking pool is shared with ingest's batch
//! writes and flushes; readers waiting on their clients (a stalled export) or many map
//! requests at once could otherwise take all of its threads and stop ingest (issue #19).
//!
//! The HTTP layers put the collector's [`Readers`] in a task-local for the request, so
//! handlers call [`read_blocking`] without carrying it; the gRPC query service holds its
//! own handle.

use crate::store::StoreError;
use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct Readers {
    permits: Arc<Semaphore>,
    max: usize,
}

tokio::task_local! {
    static CURRENT: Readers;
}

impl Readers {
    pub fn new(threads: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(threads)),
            max: threads,
        }
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

    /// Runs store reads on a blocking thread once one of this pool's permits is free.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self.acquire().await?;
        crate::store::run_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
    }
}

/// [`Readers::run`] on the current request's readers.
pub async fn read_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    Readers::current().run(work).await
}
