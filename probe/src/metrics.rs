//! The probe's Prometheus metrics (see `docs/metrics.md`), and the opt-in listener that serves
//! them (`metrics_listen`).
//!
//! One set per process: the session, the engine's results and the packet budget bump the
//! handles in [`metrics()`]. The listener is the probe's only inbound socket and exists only
//! when its owner configures it; it answers `GET /metrics` and nothing else, reads at most
//! [`MAX_REQUEST_BYTES`] within [`READ_TIMEOUT`], serves a few clients at a time and closes
//! every connection after one answer.

use sixmap_shared::measurement::Outcome;
use sixmap_shared::metrics::{CONTENT_TYPE, Counter, Family, Gauge, Registry};
use sixmap_shared::version::SOFTWARE_VERSION;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// A scraper's request head is a few hundred bytes; anything longer is refused.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head (and to take the answer).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; further ones wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 4;

/// The probe's metric handles.
#[derive(Debug)]
pub struct ProbeMetrics {
    registry: Registry,
    pub outbox_results: Arc<Gauge>,
    pub outbox_bytes: Arc<Gauge>,
    pub outbox_loss_records: Arc<Gauge>,
    pub results_produced: Arc<Counter>,
    pub results_acked: Arc<Counter>,
    pub results_rejected: Arc<Counter>,
    pub measurements: Arc<Counter>,
    pub measurement_errors: Arc<Family<Counter>>,
    pub budget_refusals: Arc<Counter>,
    pub connected: Arc<Gauge>,
    pub sessions_established: Arc<Counter>,
    pub session_failures: Arc<Family<Counter>>,
    pub collector: Arc<Family<Gauge>>,
}

impl ProbeMetrics {
    fn new() -> Self {
        let r = Registry::new();
        let build = r.gauge_family(
            "sixmap_probe_build_info",
            "Always 1; the probe's version is the label.",
            &["version"],
        );
        build.with(&[SOFTWARE_VERSION]).set(1);
        Self {
            outbox_results: r.gauge(
                "sixmap_probe_outbox_results",
                "Results in the outbox waiting for an ack (in flight included).",
            ),
            outbox_bytes: r.gauge(
                "sixmap_probe_outbox_bytes",
                "Bytes of the results waiting in the outbox.",
            ),
            outbox_loss_records: r.gauge(
                "sixmap_probe_outbox_loss_records",
                "Loss records not yet delivered.",
            ),
            results_produced: r.counter(
                "sixmap_probe_results_produced_total",
                "Results made durable in the outbox since start.",
            ),
            results_acked: r.counter(
                "sixmap_probe_results_acked_total",
                "Results the collector acked as stored (new or duplicate) since start.",
            ),
            results_rejected: r.counter(
                "sixmap_probe_results_rejected_total",
                "Results the collector rejected for good (dropped from the outbox) since start.",
            ),
            measurements: r.counter(
                "sixmap_probe_measurements_total",
                "Measurements finished (a result made), failed ones included.",
            ),
            measurement_errors: r.counter_family(
                "sixmap_probe_measurement_errors_total",
                "Measurements that could not run, by class: policy, resolution, permission, network, unsupported, internal.",
                &["class"],
            ),
            budget_refusals: r.counter(
                "sixmap_probe_packet_budget_refusals_total",
                "Measurements refused because the packet budget had no room for their worst case.",
            ),
            connected: r.gauge(
                "sixmap_probe_connected",
                "1 while a session with a collector is established, else 0.",
            ),
            sessions_established: r.counter(
                "sixmap_probe_sessions_established_total",
                "Sessions a collector welcomed since start (reconnections included).",
            ),
            session_failures: r.counter_family(
                "sixmap_probe_session_failures_total",
                "Session attempts that ended, by stage: before_welcome (connect, TLS, refused) or after_welcome (a session that broke).",
                &["stage"],
            ),
            collector: r.gauge_family(
                "sixmap_probe_collector",
                "1 for the collector in use (or being tried), 0 for the other configured ones.",
                &["url"],
            ),
            registry: r,
        }
    }

    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// Counts one finished measurement.
    pub fn measured(&self, outcome: &Outcome) {
        self.measurements.inc();
        if let Outcome::Failed(error) = outcome {
            self.measurement_errors.with(&[error.class.label()]).inc();
        }
    }

    /// Marks `current` as the collector in use among `all`.
    pub fn use_collector(&self, all: &[String], current: &str) {
        for url in all {
            self.collector
                .with(&[url])
                .set(i64::from(url.as_str() == current));
        }
    }
}

static METRICS: LazyLock<ProbeMetrics> = LazyLock::new(ProbeMetrics::new);

/// This process's probe metrics.
pub fn metrics() -> &'static ProbeMetrics {
    &METRICS
}

/// Serves `/metrics` on `listener` until the process ends.
pub async fn serve(listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving /metrics");
    }
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = answer(stream).await {
                        debug!(%peer, error = %e, "metrics request failed");
                    }
                });
            }
            Err(e) => {
                // E.g. out of file descriptors: wait instead of spinning.
                warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Binds `addr` and serves `/metrics` on it in the background.
pub async fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(bound)
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    Bad(&'static str),
}

/// Parses the request line of an HTTP/1.x request head. Pure.
fn parse(head: &[u8]) -> Request {
    let Some(line_end) = head.iter().position(|b| *b == b'\n') else {
        return Request::Bad("no request line");
    };
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Request::Bad("request line is not UTF-8");
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad("request line is not `METHOD target HTTP/1.x`");
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Bad("only HTTP/1.x is served");
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match (method, path) {
        ("GET", "/metrics") => Request::Metrics { head_only: false },
        ("HEAD", "/metrics") => Request::Metrics { head_only: true },
        (_, "/metrics") => Request::MethodNotAllowed,
        _ => Request::NotFound,
    }
}

/// The whole response to `request`.
fn response(request: &Request) -> Vec<u8> {
    let (status, content_type, body, head_only) = match request {
        Request::Metrics { head_only } => ("200 OK", CONTENT_TYPE, metrics().render(), *head_only),
        Request::NotFound => (
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n".into(),
            false,
        ),
        Request::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "use GET\n".into(),
            false,
        ),
        Request::Bad(why) => ("400 Bad Request", "text/plain", format!("{why}\n"), false),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Reads the request head (bounded in size and time) and writes one response.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let request = loop {
        let read = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf)).await;
        let n = match read {
            Ok(result) => result?,
            Err(_) => break Request::Bad("request head not received in time"),
        };
        if n == 0 {
            // Closed before a whole head: nobody to answer.
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break parse(&head);
        }
        if head.len() > MAX_REQUEST_BYTES {
            break Request::Bad("request head too large");
        }
    };
    let bytes = response(&request);
    tokio::time::timeout(READ_TIMEOUT, stream.write_all(&bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))??;
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::measurement::{ErrorClass, MeasurementError};

    #[test]
    fn names_are_valid_and_values_move() {
        let m = ProbeMetrics::new();
        m.registry.check().unwrap();
        m.measured(&Outcome::Failed(MeasurementError {
            class: ErrorClass::Resolution,
            message: "no AAAA".into(),
        }));
        m.use_collector(&["https://a:1".into(), "https://b:1".into()], "https://b:1");
        let text = m.render();
        for needle in [
            "sixmap_probe_measurements_total 1\n",
            "sixmap_probe_measurement_errors_total{class=\"resolution\"} 1\n",
            "sixmap_probe_collector{url=\"https://a:1\"} 0\n",
            "sixmap_probe_collector{url=\"https://b:1\"} 1\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
    }

    #[test]
    fn request_lines_are_parsed_strictly() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            parse(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics { head_only: true }
        );
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::MethodNotAllowed
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert!(matches!(parse(b"GET /metrics\r\n\r\n"), Request::Bad(_)));
        assert!(matches!(
            parse(b"GET /metrics SPDY/3\r\n\r\n"),
            Request::Bad(_)
        ));
        assert!(matches!(
            parse(b"\xff\xfe /metrics HTTP/1.1\r\n"),
            Request::Bad(_)
        ));
        assert!(matches!(parse(b"no newline"), Request::Bad(_)));
    }

    #[test]
    fn hostile_heads_never_panic() {
        // A small xorshift: every byte pattern the parser may see, reproducibly.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..600 {
            let head: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    [
                        b'G',
                        b'E',
                        b'T',
                        b' ',
                        b'/',
                        b'\r',
                        b'\n',
                        (state >> 56) as u8,
                    ][(state % 8) as usize]
                })
                .collect();
            let _ = response(&parse(&head));
        }
    }

    #[tokio::test]
    async fn the_listener_answers_scrapes_and_refuses_the_rest() {
        let addr = start("[::1]:0".parse().unwrap()).await.unwrap();
        // The server may close before reading all of an oversized request, which resets the
        // connection: what was read until then is the answer.
        let exchange = |request: Vec<u8>| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let _ = stream.write_all(&request).await;
            let mut out = Vec::new();
            let _ = stream.read_to_end(&mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        };
        let ok = exchange(b"GET /metrics HTTP/1.1\r\nHost: p\r\n\r\n".to_vec()).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("sixmap_probe_build_info{version="), "{ok}");
        let missing = exchange(b"GET /secrets HTTP/1.1\r\n\r\n".to_vec()).await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_REQUEST_BYTES + 2048));
        let refused = exchange(huge).await;
        assert!(
            refused.is_empty() || refused.starts_with("HTTP/1.1 400"),
            "{refused}"
        );
        // A client that sends half a head and waits is cut off, and others are still served.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /met").await.unwrap();
        let again = exchange(b"GET /metrics HTTP/1.0\r\n\r\n".to_vec()).await;
        assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
    }
}
