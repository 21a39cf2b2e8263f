//! DNS over TLS (RFC 7858) and over HTTPS (RFC 8484): TCP connect, TLS handshake with the
//! probe's trust anchors and rustls' verifier (a certificate that does not verify ends the
//! exchange, and is reported as such), then one query.
//!
//! - DoT: the query in TCP's 2-byte length framing inside TLS (`transport::framed`), so a
//!   response is at most 64 KiB whatever the server announces.
//! - DoH: one POST of `application/dns-message` over HTTP/2 (ALPN `h2`), with hyper's client
//!   connection, which the probe already carries for its gRPC session. HTTP/2 only: RFC 8484
//!   names it the minimum recommended version, and unbound's DoH speaks nothing else. The
//!   body is read through a 64 KiB limit (a DNS message's largest size), so a server sending
//!   endless data cannot grow memory; the response head is bounded by h2's header list limit.

use super::transport::{self, Failure};
use super::wire::{Message, Query};
use crate::tls::{self, connect};
use http_body_util::{BodyExt, Full, Limited};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use sixmap_shared::measurement::{ConnectOutcome, DnsFailureClass, DnsSession, DnsTransport};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The media type of RFC 8484 section 6, sent and required back.
const DNS_MESSAGE: &str = "application/dns-message";
/// The largest DNS message, and so the largest DoH body read.
const MAX_MESSAGE: usize = 65_535;
/// Response header bytes accepted from a DoH server (hyper's own default is larger).
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// Why the exchange failed, by layer, in words.
#[derive(Debug)]
pub struct Problem {
    pub class: DnsFailureClass,
    pub text: String,
}

impl Problem {
    fn new(class: DnsFailureClass, text: impl Into<String>) -> Self {
        Self {
            class,
            text: tls::bounded(text.into()),
        }
    }
}

impl From<Failure> for Problem {
    fn from(failure: Failure) -> Self {
        Self::new(failure.class(), failure.to_string())
    }
}

/// What one encrypted exchange gave: its phases, and the answer or why there is none.
#[derive(Debug)]
pub struct Exchange {
    pub session: DnsSession,
    /// From the query sent over the established session to the whole response read.
    pub rtt: Option<Duration>,
    pub answer: Result<(Vec<u8>, Message), Problem>,
}

/// Where and how to ask: the TLS configuration (built before the clock starts), the name to
/// verify, the DoH path.
pub struct Setup {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
    pub path: String,
    /// The `:authority` of DoH requests: the server name, or the bracketed address.
    pub authority: String,
}

/// The ALPN protocols offered: `h2` for DoH; none for DoT (RFC 7858 needs none, and a server
/// with an ALPN list of its own may refuse an unknown one).
pub fn alpn(transport: DnsTransport) -> Vec<String> {
    match transport {
        DnsTransport::Https => vec!["h2".to_owned()],
        _ => Vec::new(),
    }
}

pub async fn exchange(
    server: SocketAddr,
    transport: DnsTransport,
    setup: Setup,
    query: &Query,
    deadline: Instant,
) -> Exchange {
    let mut session = DnsSession::default();
    let failed = |session: DnsSession, problem: Problem| Exchange {
        session,
        rtt: None,
        answer: Err(problem),
    };
    let attempt = match connect::connect(server.ip(), server.port(), deadline).await {
        Ok(attempt) => attempt,
        Err(e) => {
            return failed(
                session,
                Problem::new(DnsFailureClass::Other, format!("TCP socket: {e}")),
            );
        }
    };
    if attempt.outcome != ConnectOutcome::Timeout {
        session.connect_ns = Some(tls::nanos(attempt.elapsed));
    }
    let Some(stream) = attempt.stream else {
        let class = match attempt.outcome {
            ConnectOutcome::Refused => DnsFailureClass::Refused,
            ConnectOutcome::Unreachable => DnsFailureClass::Unreachable,
            ConnectOutcome::Timeout | ConnectOutcome::Connected => DnsFailureClass::Timeout,
        };
        let text = attempt
            .detail
            .unwrap_or_else(|| format!("no TCP connection to {server}"));
        return failed(session, Problem::new(class, text));
    };

    let started = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(setup.config);
    let tls_stream =
        match tokio::time::timeout_at(deadline, connector.connect(setup.name, stream)).await {
            Err(_) => {
                let text = format!(
                    "timeout: the TLS handshake did not finish within {} ms",
                    started.elapsed().as_millis()
                );
                return failed(session, Problem::new(DnsFailureClass::Timeout, text));
            }
            Ok(Err(e)) => {
                let class = if is_certificate(&e) {
                    DnsFailureClass::Certificate
                } else {
                    DnsFailureClass::Tls
                };
                return failed(session, Problem::new(class, tls::describe_io(&e)));
            }
            Ok(Ok(tls_stream)) => tls_stream,
        };
    session.tls_ns = Some(tls::nanos(started.elapsed()));
    let (_, connection) = tls_stream.get_ref();
    session.tls_version = connection.protocol_version().map(tls::version_name);
    let h2 = connection.alpn_protocol() == Some(b"h2");

    let sent = Instant::now();
    let answer = match transport {
        DnsTransport::Https if !h2 => Err(Problem::new(
            DnsFailureClass::Http,
            "the server did not agree to HTTP/2 in ALPN (DoH is asked over HTTP/2 only)",
        )),
        DnsTransport::Https => {
            let doh = doh(
                tls_stream,
                server,
                &setup.path,
                &setup.authority,
                query,
                &mut session,
            );
            within(deadline, doh).await
        }
        _ => {
            let dot = async {
                transport::framed(tls_stream, server, query)
                    .await
                    .map_err(Problem::from)
            };
            within(deadline, dot).await
        }
    };
    Exchange {
        rtt: answer.is_ok().then(|| sent.elapsed()),
        session,
        answer,
    }
}

async fn within<T>(
    deadline: Instant,
    work: impl Future<Output = Result<T, Problem>>,
) -> Result<T, Problem> {
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or_else(|_| {
            Err(Problem::new(
                DnsFailureClass::Timeout,
                "timeout: no answer over the encrypted session before the deadline",
            ))
        })
}

/// True when the handshake failed because the certificate did not verify.
fn is_certificate(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
}

/// One POST over HTTP/2; the status goes into `session`, the body must be one DNS message
/// answering `query`.
async fn doh<S>(
    stream: S,
    server: SocketAddr,
    path: &str,
    authority: &str,
    query: &Query,
    session: &mut DnsSession,
) -> Result<(Vec<u8>, Message), Problem>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |text: String| Problem::new(DnsFailureClass::Http, text);
    let (mut sender, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .max_header_list_size(MAX_HEADER_LIST)
            .handshake::<_, Full<VecDeque<u8>>>(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| http(format!("HTTP/2 connection: {e}")))?;
    // The connection task ends when the sender and the response are dropped (or the server
    // closes); aborting it on return bounds it by this exchange whatever the server does.
    let driver = AbortOnDrop(tokio::spawn(connection));
    let request = hyper::Request::post(format!("https://{authority}{path}"))
        .header(hyper::header::CONTENT_TYPE, DNS_MESSAGE)
        .header(hyper::header::ACCEPT, DNS_MESSAGE)
        .header(
            hyper::header::USER_AGENT,
            format!(
                "sixmap-probe/{} (IPv6 measurement)",
                sixmap_shared::version::SOFTWARE_VERSION
            ),
        )
        .body(Full::new(VecDeque::from(query.bytes.clone())))
        .map_err(|e| http(format!("the DoH request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http(format!("no HTTP/2 response from {server}: {e}")))?;
    let status = response.status().as_u16();
    session.http_status = Some(status);
    if status != 200 {
        return Err(http(format!("HTTP status {status} from {server}")));
    }
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if !content_type
        .as_deref()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(DNS_MESSAGE))
    {
        return Err(http(format!(
            "the response's content type is {content_type:?}, not {DNS_MESSAGE}"
        )));
    }
    let body = Limited::new(response.into_body(), MAX_MESSAGE)
        .collect()
        .await
        .map_err(|e| {
            let text = if e.is::<http_body_util::LengthLimitError>() {
                format!("the response body is larger than a DNS message ({MAX_MESSAGE} bytes)")
            } else {
                format!("reading the response body: {e}")
            };
            Problem::new(DnsFailureClass::Malformed, text)
        })?
        .to_bytes()
        .to_vec();
    drop(driver);
    let message = transport::single(&body, server, query)?;
    Ok((body, message))
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
