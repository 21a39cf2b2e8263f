//! Resource limits of the collector's two servers, so that a slow, hostile or broken client
//! is cut off with a clear status and never takes the collector (or other probes) down.
//!
//! gRPC (tonic): one message-size limit for both directions
//! ([`sixmap_shared::session::MAX_MESSAGE_BYTES`], the probe uses the same), a timeout until
//! the response starts, a cap on streams per connection, a global cap on admitted probe
//! sessions, HTTP/2 keepalive pings (a dead probe's session ends within interval + timeout)
//! and TCP keepalive.
//!
//! HTTP (axum over hyper, served by [`serve_http`] instead of `axum::serve`, which sets no
//! timer and so no header timeout): a header-read timeout (slowloris), a request timeout
//! (408), a body size limit (413), a cap on requests in progress (503) and on open
//! connections, and TCP keepalive.
//!
//! Against anonymous clients that would stall the collector (issue #19): per-source caps and
//! a reserve for identified callers on both ports (`grpc`, [`serve_http`]; sources in
//! `sources`), a first-call deadline for anonymous gRPC connections, one bounded budget of
//! long responses for the whole process (`streams`: exports, query pages, campaign reports,
//! gRPC result streams) with a write timeout for readers that stop reading, and a bounded
//! pool of threads for store reads (`readers`), so readers never take the blocking threads
//! that ingest writes and flushes need.

pub mod grpc;
pub mod readers;
pub mod sources;
pub mod streams;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use serde::Deserialize;
use sixmap_shared::config::ConfigError;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

/// The `[limits]` table of the collector config. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Probe sessions admitted at once; further probes are refused with RESOURCE_EXHAUSTED
    /// and retry with backoff.
    pub grpc_max_sessions: usize,
    /// Concurrent gRPC streams (and requests in progress) per connection. A probe needs one
    /// session and, once, an enrollment.
    pub grpc_streams_per_connection: usize,
    /// Time a new gRPC connection has to finish its TLS handshake; a silent one is closed
    /// (without this, a client that connects and sends nothing holds its socket forever:
    /// HTTP/2 keepalive only starts after the handshakes).
    pub grpc_handshake_timeout_s: u64,
    /// Time a gRPC call may take until its response starts (enrollment; a session's hello and
    /// admission). A session's stream itself lives on.
    pub grpc_request_timeout_s: u64,
    /// HTTP/2 PING interval and how long to wait for the answer: a dead probe's session is
    /// closed after about their sum.
    pub grpc_keepalive_interval_s: u64,
    pub grpc_keepalive_timeout_s: u64,
    /// Idle time before TCP keepalive probes, on both listeners (kernel then probes every
    /// 15 s, 4 times).
    pub tcp_keepalive_s: u64,
    /// Largest HTTP request body accepted (413 beyond).
    pub http_max_body_bytes: usize,
    /// Time a client has to send a request's headers; the connection is closed after it
    /// (slowloris). Also the limit for an idle keep-alive connection.
    pub http_header_timeout_s: u64,
    /// Time a request may take until its response starts, reading its body included (408).
    pub http_request_timeout_s: u64,
    /// HTTP requests in progress at once (503 with Retry-After beyond).
    pub http_max_concurrent_requests: usize,
    /// Open HTTP connections at once; further ones wait in the listen backlog.
    pub http_max_connections: usize,
    /// Of those, the last ones serve only requests with an `Authorization` header (others get
    /// 503); they also have a short header timeout. A quarter of them is the share of
    /// requests in progress kept for authenticated callers.
    pub http_reserved_connections: usize,
    /// Open HTTP connections per source (IPv4 address, IPv6 /64); more are closed at once.
    pub http_max_connections_per_source: usize,
    /// Established gRPC connections at once.
    pub grpc_max_connections: usize,
    /// Of those, the last ones only for connections with a probe's client certificate, so
    /// enrolled probes get in while anonymous clients fill their share.
    pub grpc_reserved_connections: usize,
    /// gRPC connections per source that are in their handshake or have no client
    /// certificate; more are closed at once.
    pub grpc_max_connections_per_source: usize,
    /// Time a gRPC connection without a client certificate has after its handshake to start
    /// a call; it is closed otherwise.
    pub grpc_anonymous_request_timeout_s: u64,
    /// TLS handshakes a source may start per second on the gRPC port, after a burst of
    /// `grpc_max_connections_per_source`; more connections are closed before their
    /// handshake. A handshake costs the collector about 0.1 ms of CPU: a client that
    /// connects, handshakes and leaves in a loop would otherwise take a core.
    pub grpc_handshakes_per_source_per_s: u32,
    /// Sources never refused by the per-source caps (address or address/length), e.g. a
    /// reverse proxy on the same host.
    pub source_exempt: Vec<String>,
    /// Long responses (exports, query result pages, campaign reports, gRPC result streams)
    /// at once in the whole process, and per source; 503 / RESOURCE_EXHAUSTED beyond.
    pub max_streams: usize,
    pub max_streams_per_source: usize,
    /// A client that reads nothing of a response for this long is disconnected (its store
    /// scan stops).
    pub stream_write_timeout_s: u64,
    /// Threads reading the store for the API at once (below tokio's blocking pool of 512,
    /// so ingest's writes and flushes always find a thread). More than `max_streams`: a long
    /// response holds its thread while its client reads (or until the write timeout), so
    /// the rest are what short reads (the map, the probe list) always have.
    pub reader_threads: usize,
    /// A group-commit flush of the store that takes longer than this is taken as a broken
    /// store: the collector exits (non-zero) for its supervisor to restart it.
    pub store_flush_timeout_s: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            grpc_max_sessions: 10_000,
            grpc_streams_per_connection: 8,
            grpc_handshake_timeout_s: 10,
            grpc_request_timeout_s: 30,
            grpc_keepalive_interval_s: 30,
            grpc_keepalive_timeout_s: 20,
            tcp_keepalive_s: 60,
            http_max_body_bytes: 1 << 20,
            http_header_timeout_s: 10,
            http_request_timeout_s: 30,
            http_max_concurrent_requests: 256,
            http_max_connections: 1024,
            http_reserved_connections: 64,
            http_max_connections_per_source: 16,
            grpc_max_connections: 12_288,
            grpc_reserved_connections: 10_240,
            grpc_max_connections_per_source: 32,
            grpc_anonymous_request_timeout_s: 10,
            grpc_handshakes_per_source_per_s: 8,
            source_exempt: vec!["::1".into(), "127.0.0.0/8".into()],
            max_streams: 32,
            max_streams_per_source: 4,
            stream_write_timeout_s: 30,
            reader_threads: 48,
            store_flush_timeout_s: 60,
        }
    }
}

/// Checked limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub grpc_max_sessions: usize,
    pub grpc_streams_per_connection: usize,
    pub grpc_handshake_timeout: Duration,
    pub grpc_request_timeout: Duration,
    pub grpc_keepalive_interval: Duration,
    pub grpc_keepalive_timeout: Duration,
    pub tcp_keepalive: Duration,
    pub http_max_body_bytes: usize,
    pub http_header_timeout: Duration,
    pub http_request_timeout: Duration,
    pub http_max_concurrent_requests: usize,
    pub http_max_connections: usize,
    pub http_reserved_connections: usize,
    pub http_max_connections_per_source: usize,
    pub grpc_max_connections: usize,
    pub grpc_reserved_connections: usize,
    pub grpc_max_connections_per_source: usize,
    pub grpc_anonymous_request_timeout: Duration,
    pub grpc_handshakes_per_source_per_s: u32,
    pub source_exempt: Vec<sources::Exempt>,
    pub max_streams: usize,
    pub max_streams_per_source: usize,
    pub stream_write_timeout: Duration,
    pub reader_threads: usize,
    pub store_flush_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // The defaults are valid by construction; the test below checks it.
        LimitsConfig::default()
            .validate(None)
            .unwrap_or_else(|_| unreachable!("default limits are valid"))
    }
}

impl LimitsConfig {
    pub fn validate(self, source: Option<&Path>) -> Result<Limits, ConfigError> {
        let invalid = |key: &str, reason: String| {
            ConfigError::invalid(format!("limits.{key}"), source, reason)
        };
        let count = |key: &str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(key, format!("{value} is outside 1..={max}")))
            }
        };
        let seconds = |key: &str, value: u64, max: u64| {
            if (1..=max).contains(&value) {
                Ok(Duration::from_secs(value))
            } else {
                Err(invalid(key, format!("{value} s is outside 1..={max} s")))
            }
        };
        let reserve = |key: &str, value: usize, of: usize| {
            if value < of {
                Ok(value)
            } else {
                Err(invalid(
                    key,
                    format!("{value} leaves nothing for anonymous clients of {of} in all"),
                ))
            }
        };
        let http_max_connections =
            count("http_max_connections", self.http_max_connections, 1_000_000)?;
        let grpc_max_connections =
            count("grpc_max_connections", self.grpc_max_connections, 1_000_000)?;
        let source_exempt = self
            .source_exempt
            .iter()
            .map(|text| text.parse().map_err(|e| invalid("source_exempt", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Limits {
            http_reserved_connections: reserve(
                "http_reserved_connections",
                self.http_reserved_connections,
                http_max_connections,
            )?,
            http_max_connections_per_source: count(
                "http_max_connections_per_source",
                self.http_max_connections_per_source,
                1_000_000,
            )?,
            grpc_max_connections,
            grpc_reserved_connections: reserve(
                "grpc_reserved_connections",
                self.grpc_reserved_connections,
                grpc_max_connections,
            )?,
            grpc_max_connections_per_source: count(
                "grpc_max_connections_per_source",
                self.grpc_max_connections_per_source,
                1_000_000,
            )?,
            grpc_anonymous_request_timeout: seconds(
                "grpc_anonymous_request_timeout_s",
                self.grpc_anonymous_request_timeout_s,
                600,
            )?,
            grpc_handshakes_per_source_per_s: u32::try_from(count(
                "grpc_handshakes_per_source_per_s",
                usize::try_from(self.grpc_handshakes_per_source_per_s).unwrap_or(usize::MAX),
                1_000_000,
            )?)
            .unwrap_or(u32::MAX),
            source_exempt,
            max_streams: count("max_streams", self.max_streams, 100_000)?,
            max_streams_per_source: count(
                "max_streams_per_source",
                self.max_streams_per_source,
                100_000,
            )?,
            stream_write_timeout: seconds(
                "stream_write_timeout_s",
                self.stream_write_timeout_s,
                3600,
            )?,
            // tokio's blocking pool holds 512 threads; readers must leave most of it.
            reader_threads: if self.reader_threads > self.max_streams {
                count("reader_threads", self.reader_threads, 256)?
            } else {
                // Long responses could otherwise take every reader thread and starve the
                // short reads (seen in the soak: 32 stalled exports held all 32).
                return Err(invalid(
                    "reader_threads",
                    format!(
                        "{} leaves no thread for short reads: it must be more than max_streams ({})",
                        self.reader_threads, self.max_streams
                    ),
                ));
            },
            store_flush_timeout: seconds(
                "store_flush_timeout_s",
                self.store_flush_timeout_s,
                3600,
            )?,
            grpc_max_sessions: count("grpc_max_sessions", self.grpc_max_sessions, 1_000_000)?,
            grpc_streams_per_connection: count(
                "grpc_streams_per_connection",
                self.grpc_streams_per_connection,
                1024,
            )?,
            grpc_handshake_timeout: seconds(
                "grpc_handshake_timeout_s",
                self.grpc_handshake_timeout_s,
                600,
            )?,
            grpc_request_timeout: seconds(
                "grpc_request_timeout_s",
                self.grpc_request_timeout_s,
                600,
            )?,
            grpc_keepalive_interval: seconds(
                "grpc_keepalive_interval_s",
                self.grpc_keepalive_interval_s,
                3600,
            )?,
            grpc_keepalive_timeout: seconds(
                "grpc_keepalive_timeout_s",
                self.grpc_keepalive_timeout_s,
                600,
            )?,
            tcp_keepalive: seconds("tcp_keepalive_s", self.tcp_keepalive_s, 7200)?,
            // At least 1 KiB: smaller would refuse any JSON body worth sending.
            http_max_body_bytes: if (1024..=(256 << 20)).contains(&self.http_max_body_bytes) {
                self.http_max_body_bytes
            } else {
                return Err(invalid(
                    "http_max_body_bytes",
                    format!(
                        "{} is outside 1024..={} bytes",
                        self.http_max_body_bytes,
                        256 << 20
                    ),
                ));
            },
            http_header_timeout: seconds("http_header_timeout_s", self.http_header_timeout_s, 600)?,
            http_request_timeout: seconds(
                "http_request_timeout_s",
                self.http_request_timeout_s,
                3600,
            )?,
            http_max_concurrent_requests: count(
                "http_max_concurrent_requests",
                self.http_max_concurrent_requests,
                1_000_000,
            )?,
            http_max_connections,
        })
    }
}

/// TCP settings of an accepted connection on either listener: no Nagle delay for small
/// messages, and keepalive so a peer that vanished without a FIN is noticed.
pub fn tune_accepted(stream: &TcpStream, keepalive: Duration) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let params = socket2::TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(Duration::from_secs(15))
        .with_retries(4);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&params) {
        debug!(error = %e, "cannot set TCP keepalive");
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONNECTION, "close")],
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Marks a connection that took one of the reserved slots (`http_reserved_connections`):
/// its requests need an `Authorization` header.
#[derive(Debug, Clone, Copy)]
pub struct ReservedSlot(pub bool);

#[derive(Debug, Clone)]
struct HttpGuards {
    in_progress: Arc<Semaphore>,
    /// The share of `in_progress` requests without an `Authorization` header may use.
    anonymous: Arc<Semaphore>,
    limits: Arc<Limits>,
    readers: readers::Readers,
}

fn busy(message: String) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// The request-level limits around every route: concurrency first (cheap refusal), then the
/// declared body size, then the timeout over the handler, its body reading included.
async fn guard(State(guards): State<HttpGuards>, request: Request, next: Next) -> Response {
    let authenticated = request.headers().contains_key(header::AUTHORIZATION);
    let reserved_slot = request
        .extensions()
        .get::<ReservedSlot>()
        .is_some_and(|r| r.0);
    if reserved_slot && !authenticated {
        return busy(
            "the collector's connections for anonymous clients are all in use; retry shortly"
                .to_owned(),
        );
    }
    // Anonymous requests need a place in their share first, so a flood of them leaves
    // the rest to callers with a token.
    let _anonymous = if authenticated {
        None
    } else {
        match guards.anonymous.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return busy(format!(
                    "the collector is at its limit of {} anonymous requests in progress; retry shortly",
                    guards.anonymous_share()
                ));
            }
        }
    };
    let Ok(_permit) = guards.in_progress.clone().try_acquire_owned() else {
        return busy(format!(
            "the collector is at its limit of {} requests in progress; retry shortly",
            guards.limits.http_max_concurrent_requests
        ));
    };
    let max = guards.limits.http_max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than the limit of {max} bytes"),
        );
    }
    let timeout = guards.limits.http_request_timeout;
    let readers = guards.readers.clone();
    match tokio::time::timeout(timeout, readers.scope(next.run(request))).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!("request not completed within {} s", timeout.as_secs()),
        ),
    }
}

impl HttpGuards {
    fn anonymous_share(&self) -> usize {
        anonymous_requests(&self.limits)
    }
}

/// Requests in progress without a token: all but a quarter of the reserved connections' worth
/// (at least one request is kept for callers with a token).
fn anonymous_requests(limits: &Limits) -> usize {
    let kept = (limits.http_reserved_connections / 4).max(1);
    limits
        .http_max_concurrent_requests
        .saturating_sub(kept)
        .max(1)
}

/// The shared state of the HTTP limits that other parts use too: the long-response budget
/// (shared with the gRPC query service) and the readers' pool.
#[derive(Debug, Clone)]
pub struct Shared {
    pub streams: streams::Streams,
    pub readers: readers::Readers,
}

impl Shared {
    pub fn new(limits: &Limits) -> Self {
        Self {
            streams: streams::Streams::new(limits),
            readers: readers::Readers::new(limits.reader_threads),
        }
    }
}

/// The HTTP router with the request-level limits applied. Bodies read by extractors (JSON,
/// bytes) are capped too, so a chunked body without Content-Length gets 413 as well.
pub fn http_layers(router: Router, limits: &Limits) -> Router {
    http_layers_with(router, limits, &Shared::new(limits))
}

/// [`http_layers`] with the process's shared stream budget and readers.
pub fn http_layers_with(router: Router, limits: &Limits, shared: &Shared) -> Router {
    let guards = HttpGuards {
        in_progress: Arc::new(Semaphore::new(limits.http_max_concurrent_requests)),
        anonymous: Arc::new(Semaphore::new(anonymous_requests(limits))),
        limits: Arc::new(limits.clone()),
        readers: shared.readers.clone(),
    };
    router
        .layer(DefaultBodyLimit::max(limits.http_max_body_bytes))
        .layer(middleware::from_fn_with_state(
            shared.streams.clone(),
            streams::hold_for_body,
        ))
        .layer(middleware::from_fn_with_state(guards, guard))
}

/// A connection's stream with a write timeout: when the peer has accepted none of our bytes
/// for `timeout` (it stopped reading), writes fail and hyper drops the connection, and with
/// it the response body (an export's scan then stops at its next chunk).
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => {
                let timeout = self.timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stalled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client read nothing within the write timeout",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Waits for a connection slot: a general one, or else one of the reserve (`true`).
async fn connection_slot(
    general: &Arc<Semaphore>,
    reserve: &Arc<Semaphore>,
) -> Option<(OwnedSemaphorePermit, bool)> {
    if let Ok(p) = general.clone().try_acquire_owned() {
        return Some((p, false));
    }
    if let Ok(p) = reserve.clone().try_acquire_owned() {
        return Some((p, true));
    }
    tokio::select! {
        p = general.clone().acquire_owned() => p.ok().map(|p| (p, false)),
        p = reserve.clone().acquire_owned() => p.ok().map(|p| (p, true)),
    }
}

/// Serves `router` (with [`http_layers`] applied by the caller or not) on `listener` over
/// HTTP/1.1 with the connection-level limits: a header timeout (also for a connection that
/// sends nothing), a cap on open connections with a reserve for authenticated callers, a cap
/// per source, a write timeout, TCP keepalive. Each request carries `ConnectInfo<SocketAddr>`
/// of its peer.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: Limits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let reserved = limits.http_reserved_connections;
    let general = Arc::new(Semaphore::new(limits.http_max_connections - reserved));
    let reserve = Arc::new(Semaphore::new(reserved));
    let per_source = sources::PerSource::new(
        limits.http_max_connections_per_source,
        &limits.source_exempt,
    );
    loop {
        // Waiting for a slot before accepting leaves further clients in the kernel's backlog
        // instead of accepting connections the collector would not serve.
        let Some((slot, in_reserve)) = connection_slot(&general, &reserve).await else {
            return Ok(());
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: transient, so wait instead of spinning.
                warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(source_slot) = per_source.try_take(peer.ip()) else {
            debug!(%peer, "HTTP connection refused: its source holds its cap");
            continue;
        };
        tune_accepted(&stream, limits.tcp_keepalive);
        let service = router
            .clone()
            .layer(Extension(ConnectInfo(peer)))
            .layer(Extension(ReservedSlot(in_reserve)));
        // A reserved slot must be used by an authenticated request soon.
        let header_timeout = if in_reserve {
            limits.http_header_timeout.min(Duration::from_secs(3))
        } else {
            limits.http_header_timeout
        };
        let io = WriteDeadline {
            inner: stream,
            timeout: limits.stream_write_timeout,
            stalled: None,
        };
        tokio::spawn(async move {
            let _slots = (slot, source_slot);
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                // Request line and headers: 64 KiB at most.
                .max_buf_size(64 * 1024);
            let served = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                .await;
            if let Err(e) = served {
                debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::config::parse_toml;

    #[test]
    fn defaults_are_valid_and_keys_are_checked() {
        assert_eq!(Limits::default().grpc_max_sessions, 10_000);
        #[derive(Deserialize)]
        struct Wrapper {
            limits: LimitsConfig,
        }
        let w: Wrapper =
            parse_toml("[limits]\nhttp_request_timeout_s = 5\ngrpc_max_sessions = 2\n").unwrap();
        let limits = w.limits.validate(None).unwrap();
        assert_eq!(limits.http_request_timeout, Duration::from_secs(5));
        assert_eq!(limits.grpc_max_sessions, 2);
        for (line, key) in [
            ("grpc_max_sessions = 0", "limits.grpc_max_sessions"),
            ("http_max_body_bytes = 10", "limits.http_max_body_bytes"),
            ("http_header_timeout_s = 0", "limits.http_header_timeout_s"),
            ("reader_threads = 32", "limits.reader_threads"),
            (
                "max_streams = 4\nreader_threads = 4",
                "more than max_streams (4)",
            ),
        ] {
            let w: Wrapper = parse_toml(&format!("[limits]\n{line}\n")).unwrap();
            let err = w.limits.validate(None).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        assert!(parse_toml::<Wrapper>("[limits]\nhttp_body = 1\n").is_err());
    }
}
