//! `GET /healthz`: 200 only while the store can commit. The check writes one small record
//! (the assignment of task 1 to probe `0000000000000000`, which no enrolled probe has; the
//! same key each time) and flushes, within [`CHECK_TIMEOUT`]. Its outcome is kept for
//! [`CACHE_FOR`] and only one check runs at a time (a check stuck in the store is not started
//! again), so `/healthz` cannot be used to hammer the disk with fsyncs. After a fatal store
//! failure ([`crate::fatal`]) it answers 503 at once.

use crate::fatal::Fatal;
use crate::store::{Store, StoreError};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sixmap_shared::{ProbeId, TaskId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
pub const CACHE_FOR: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Health {
    store: Arc<dyn Store>,
    fatal: Fatal,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
    /// A check's blocking store work is running (possibly stuck past its timeout).
    running: Arc<AtomicBool>,
    /// One check at a time; waiters then read its outcome.
    turn: tokio::sync::Mutex<()>,
}

pub fn router(store: Arc<dyn Store>, fatal: Fatal) -> Router {
    let health = Arc::new(Health {
        store,
        fatal,
        last: Mutex::new(None),
        running: Arc::default(),
        turn: tokio::sync::Mutex::new(()),
    });
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(health)
}

fn commit_probe(store: &dyn Store) -> Result<(), StoreError> {
    let probe: ProbeId = "0000000000000000"
        .parse()
        .map_err(|e| StoreError::Backend(format!("health probe id: {e}")))?;
    let task = TaskId::new(1).map_err(|e| StoreError::Backend(e.to_string()))?;
    store.record_assignment(&probe, task)?;
    store.flush()
}

impl Health {
    fn cached(&self) -> Option<Result<(), String>> {
        let last = self.last.lock().ok()?;
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, outcome)| outcome.clone())
    }

    async fn check(&self) -> Result<(), String> {
        if let Some(outcome) = self.cached() {
            return outcome;
        }
        let _turn = self.turn.lock().await;
        if let Some(outcome) = self.cached() {
            return outcome;
        }
        let outcome = if self.running.swap(true, Ordering::AcqRel) {
            Err("the previous store check has not finished".to_owned())
        } else {
            let store = self.store.clone();
            let running = self.running.clone();
            let work = crate::store::run_blocking(move || {
                let done = commit_probe(&*store);
                running.store(false, Ordering::Release);
                done
            });
            match tokio::time::timeout(CHECK_TIMEOUT, work).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("the store cannot commit: {e}")),
                Err(_) => Err(format!(
                    "the store did not commit within {} s",
                    CHECK_TIMEOUT.as_secs()
                )),
            }
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), outcome.clone()));
        }
        outcome
    }
}

async fn healthz(State(health): State<Arc<Health>>) -> Response {
    if let Some(reason) = health.fatal.reason() {
        return unhealthy(format!("the store failed: {reason}"));
    }
    match health.check().await {
        Ok(()) => "ok\n".into_response(),
        Err(message) => {
            tracing::warn!(%message, "health check failed");
            unhealthy(message)
        }
    }
}

fn unhealthy(message: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("unhealthy: {message}\n"),
    )
        .into_response()
}
