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

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use serde::Deserialize;
use sixmap_shared::config::ConfigError;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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
        Ok(Limits {
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
            http_max_connections: count(
                "http_max_connections",
                self.http_max_connections,
                1_000_000,
            )?,
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

#[derive(Debug, Clone)]
struct HttpGuards {
    in_progress: Arc<Semaphore>,
    limits: Arc<Limits>,
}

/// The request-level limits around every route: concurrency first (cheap refusal), then the
/// declared body size, then the timeout over the handler, its body reading included.
async fn guard(State(guards): State<HttpGuards>, request: Request, next: Next) -> Response {
    let Ok(_permit) = guards.in_progress.clone().try_acquire_owned() else {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the collector is at its limit of {} requests in progress; retry shortly",
                guards.limits.http_max_concurrent_requests
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return response;
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
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!("request not completed within {} s", timeout.as_secs()),
        ),
    }
}

/// The HTTP router with the request-level limits applied. Bodies read by extractors (JSON,
/// bytes) are capped too, so a chunked body without Content-Length gets 413 as well.
pub fn http_layers(router: Router, limits: &Limits) -> Router {
    let guards = HttpGuards {
        in_progress: Arc::new(Semaphore::new(limits.http_max_concurrent_requests)),
        limits: Arc::new(limits.clone()),
    };
    router
        .layer(DefaultBodyLimit::max(limits.http_max_body_bytes))
        .layer(middleware::from_fn_with_state(guards, guard))
}

/// Serves `router` (with [`http_layers`] applied by the caller or not) on `listener` over
/// HTTP/1.1 with the connection-level limits: a header timeout, a cap on open connections,
/// TCP keepalive. Each request carries `ConnectInfo<SocketAddr>` of its peer.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: Limits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let connections = Arc::new(Semaphore::new(limits.http_max_connections));
    loop {
        // Waiting for a slot before accepting leaves further clients in the kernel's backlog
        // instead of accepting connections the collector would not serve.
        let Ok(slot) = connections.clone().acquire_owned().await else {
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
        tune_accepted(&stream, limits.tcp_keepalive);
        let service = router.clone().layer(Extension(ConnectInfo(peer)));
        let header_timeout = limits.http_header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                // Request line and headers: 64 KiB at most.
                .max_buf_size(64 * 1024);
            let served = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
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
        ] {
            let w: Wrapper = parse_toml(&format!("[limits]\n{line}\n")).unwrap();
            let err = w.limits.validate(None).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        assert!(parse_toml::<Wrapper>("[limits]\nhttp_body = 1\n").is_err());
    }
}
