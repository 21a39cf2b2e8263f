//! The collector's Prometheus metrics (`GET /metrics`, see `docs/metrics.md`).
//!
//! One set per process, like the process's sockets: the code that does the work bumps the
//! handles in [`metrics()`] (sessions in `control`, batches and acks in `control`, store
//! flushes in `ingest`, HTTP requests in [`track_http`]). Several collectors in one test
//! process share these counters; the end-to-end tests run each collector as its own process.

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sixmap_shared::metrics::{
    CONTENT_TYPE, Counter, Family, Gauge, Histogram, LATENCY_BUCKETS, Registry,
};
use sixmap_shared::version::SOFTWARE_VERSION;
use std::sync::{Arc, LazyLock};

/// Why results were rejected, as `sixmap_collector_results_rejected_total{reason}` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The result could not be decoded (a field out of range, an unknown kind...).
    Malformed,
    /// The result's key names another probe than the session's.
    ForeignProbe,
    /// The task was never assigned to this probe.
    UnassignedTask,
}

impl RejectReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::ForeignProbe => "foreign_probe",
            Self::UnassignedTask => "unassigned_task",
        }
    }
}

/// The collector's metric handles.
#[derive(Debug)]
pub struct CollectorMetrics {
    registry: Registry,
    pub sessions_open: Arc<Gauge>,
    pub sessions_opened: Arc<Counter>,
    pub enrollments: Arc<Family<Counter>>,
    pub batches: Arc<Counter>,
    pub results_received: Arc<Counter>,
    pub results_stored: Arc<Family<Counter>>,
    pub results_rejected: Arc<Family<Counter>>,
    pub loss_records: Arc<Counter>,
    pub lost_results: Arc<Counter>,
    pub acks_sent: Arc<Counter>,
    pub ack_latency: Arc<Histogram>,
    pub store_flush: Arc<Histogram>,
    pub http_requests: Arc<Family<Counter>>,
    pub reader_jobs_running: Arc<Gauge>,
    pub reader_jobs_stopped: Arc<Counter>,
    pub alerts_dropped: Arc<Counter>,
    pub alert_deliveries: Arc<Family<Counter>>,
}

impl CollectorMetrics {
    fn new() -> Self {
        let r = Registry::new();
        let build = r.gauge_family(
            "sixmap_collector_build_info",
            "Always 1; the collector's version is the label.",
            &["version"],
        );
        build.with(&[SOFTWARE_VERSION]).set(1);
        Self {
            sessions_open: r.gauge(
                "sixmap_collector_sessions_open",
                "Probe sessions admitted and not yet ended.",
            ),
            sessions_opened: r.counter(
                "sixmap_collector_sessions_opened_total",
                "Probe sessions admitted (after hello) since start.",
            ),
            enrollments: r.counter_family(
                "sixmap_collector_enrollments_total",
                "Enrollment attempts by outcome: ok, refused_token (unknown, used, expired or revoked token), refused_cap (per-owner cap), invalid (bad hostname or CSR).",
                &["outcome"],
            ),
            batches: r.counter(
                "sixmap_collector_result_batches_total",
                "Result batches received from probes.",
            ),
            results_received: r.counter(
                "sixmap_collector_results_received_total",
                "Results received in batches, before validation.",
            ),
            results_stored: r.counter_family(
                "sixmap_collector_results_stored_total",
                "Results accepted and made durable: new, or duplicate (already stored, e.g. resent after a lost ack or a failover).",
                &["outcome"],
            ),
            results_rejected: r.counter_family(
                "sixmap_collector_results_rejected_total",
                "Results rejected for good (the probe drops them), by reason: malformed, foreign_probe, unassigned_task.",
                &["reason"],
            ),
            loss_records: r.counter(
                "sixmap_collector_loss_records_total",
                "New loss records stored (probes dropped results when their outbox was full).",
            ),
            lost_results: r.counter(
                "sixmap_collector_lost_results_total",
                "Results counted by the new loss records.",
            ),
            acks_sent: r.counter(
                "sixmap_collector_acks_sent_total",
                "Acks sent to probes (one per batch stored).",
            ),
            ack_latency: r.histogram(
                "sixmap_collector_ack_latency_seconds",
                "From a batch received to its ack sent (validate, store, flush).",
                LATENCY_BUCKETS,
            ),
            store_flush: r.histogram(
                "sixmap_collector_store_flush_seconds",
                "Duration of the store flush that makes a batch durable before its ack.",
                LATENCY_BUCKETS,
            ),
            http_requests: r.counter_family(
                "sixmap_collector_http_requests_total",
                "HTTP requests by route template (\"unmatched\" for unknown paths) and status class (2xx, 4xx...).",
                &["route", "status"],
            ),
            reader_jobs_running: r.gauge(
                "sixmap_collector_reader_jobs_running",
                "API store reads running now on the readers' pool (at most [limits] reader_threads).",
            ),
            reader_jobs_stopped: r.counter(
                "sixmap_collector_reader_jobs_stopped_total",
                "API store reads that stopped early because their request went away (timed out, client left).",
            ),
            alerts_dropped: r.counter(
                "sixmap_collector_alerts_dropped_total",
                "Alerts dropped from a full alert outbox ([alerts] max_stored) before every webhook had them.",
            ),
            alert_deliveries: r.counter_family(
                "sixmap_collector_alert_deliveries_total",
                "Webhook requests carrying an alert, by outcome: ok (2xx) or failed (error, timeout, other status).",
                &["outcome"],
            ),
            registry: r,
        }
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// Counts one enrollment attempt.
    pub fn enrollment(&self, outcome: &str) {
        self.enrollments.with(&[outcome]).inc();
    }

    /// Counts an admitted session until the guard drops.
    pub fn session(&self) -> SessionGuard {
        self.sessions_opened.inc();
        self.sessions_open.inc();
        SessionGuard(self.sessions_open.clone())
    }
}

/// Holds one `sessions_open`; the session task keeps it until the session ends.
#[derive(Debug)]
pub struct SessionGuard(Arc<Gauge>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

static METRICS: LazyLock<CollectorMetrics> = LazyLock::new(CollectorMetrics::new);

/// This process's collector metrics.
pub fn metrics() -> &'static CollectorMetrics {
    &METRICS
}

/// `GET /metrics`; access is decided by `http_auth::required` (`metrics_public`).
pub fn router() -> Router {
    Router::new().route("/metrics", get(serve))
}

async fn serve() -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics().render()).into_response()
}

/// Middleware counting every HTTP response by route template and status class. Templates,
/// not paths: a path holds ids, and each label value is a series kept forever.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics().http_requests.with(&[&route, class]).inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_build_info_is_set() {
        let m = CollectorMetrics::new();
        m.registry.check().unwrap();
        let text = m.render();
        assert!(
            text.contains(&format!(
                "sixmap_collector_build_info{{version=\"{SOFTWARE_VERSION}\"}} 1"
            )),
            "{text}"
        );
        let guard = m.session();
        assert_eq!((m.sessions_open.get(), m.sessions_opened.get()), (1, 1));
        drop(guard);
        assert_eq!(m.sessions_open.get(), 0);
    }
}
