//! HTTP(S) measurement: one GET or HEAD over HTTP/1.1 with phase timings (name resolution,
//! TCP connect, TLS handshake, first response byte, total), the status, and the body size up
//! to a cap. Redirects are reported, not followed.
//!
//! The client is hand-written (`response` reads what comes back): a measurement needs the
//! phases apart, one request per connection, and a strict bound on what a hostile server can
//! make the probe read or hold, which a general-purpose client does not give as plainly.
//! HTTPS uses the TLS measurement's connector with rustls' verifier as is: an invalid
//! certificate ends the request, and the failure names the problem.

pub mod response;

use crate::context::{Context, failure};
use crate::tls::{self, connect, nanos};
use response::{HttpError, Progress};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::ServerName;
use sixmap_shared::measurement::{
    ConnectOutcome, ErrorClass, HttpMethod, HttpResult, HttpSpec, HttpUrl, MeasurementError,
};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;

/// The only protocol the client speaks, offered in ALPN over TLS.
const ALPN: &str = "http/1.1";

pub async fn run(
    ctx: &Context<'_>,
    spec: &HttpSpec,
    destination: IpAddr,
) -> Result<HttpResult, MeasurementError> {
    let url = spec.url();
    let dns_ns = ctx.resolve_ns;
    // Set up TLS before the clock matters: loading trust anchors is not the network's time.
    let tls_config = if url.https {
        let provider = tls::provider();
        let verifier: Arc<dyn ServerCertVerifier> =
            tls::verifier::webpki(tls::anchors(ctx)?, Arc::clone(&provider))
                .map_err(|e| failure(ErrorClass::Internal, e))?;
        let config = tls::client_config(provider, &[ALPN.to_owned()], verifier)?;
        Some((Arc::new(config), server_name(url)?))
    } else {
        None
    };
    let request = request(spec);

    let started_connect = Instant::now();
    let attempt = connect::connect(destination, url.port, ctx.deadline)
        .await
        .map_err(|e| failure(ErrorClass::Network, format!("TCP socket: {e}")))?;
    let mut result = HttpResult {
        connect: attempt.outcome,
        status: None,
        http_version: None,
        dns_ns,
        connect_ns: (attempt.outcome != ConnectOutcome::Timeout).then(|| nanos(attempt.elapsed)),
        tls_ns: None,
        first_byte_ns: None,
        total_ns: 0,
        body_bytes: 0,
        body_truncated: false,
        failure: attempt.detail,
    };
    let total = |result: &mut HttpResult| {
        result.total_ns = dns_ns.unwrap_or(0) + nanos(started_connect.elapsed());
    };
    let Some(stream) = attempt.stream else {
        total(&mut result);
        return Ok(result);
    };

    let outcome = match tls_config {
        None => {
            exchange(
                ctx,
                stream,
                &request,
                spec,
                &mut result,
                &mut Progress::default(),
            )
            .await
        }
        Some((config, name)) => {
            let handshake_started = Instant::now();
            let connector = tokio_rustls::TlsConnector::from(config);
            match tokio::time::timeout_at(ctx.deadline, connector.connect(name, stream)).await {
                Err(_) => Err(format!(
                    "the TLS handshake did not finish within {} ms",
                    handshake_started.elapsed().as_millis()
                )),
                Ok(Err(e)) => Err(tls::describe_io(&e)),
                Ok(Ok(tls_stream)) => {
                    result.tls_ns = Some(nanos(handshake_started.elapsed()));
                    exchange(
                        ctx,
                        tls_stream,
                        &request,
                        spec,
                        &mut result,
                        &mut Progress::default(),
                    )
                    .await
                }
            }
        }
    };
    result.failure = outcome.err().map(tls::bounded);
    total(&mut result);
    Ok(result)
}

/// Sends the request and reads the response into `result`, within the deadline; the error
/// says why the exchange did not complete (what was read until then stays in `result`).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &Context<'_>,
    stream: S,
    request: &[u8],
    spec: &HttpSpec,
    result: &mut HttpResult,
    progress: &mut Progress,
) -> Result<(), String> {
    let mut stream = BufReader::new(stream);
    let mut sent = None;
    let outcome = tokio::time::timeout_at(ctx.deadline, async {
        stream
            .get_mut()
            .write_all(request)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        stream
            .get_mut()
            .flush()
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        sent = Some(Instant::now());
        response::read(
            &mut stream,
            spec.method() == HttpMethod::Head,
            u64::from(spec.max_body_bytes()),
            progress,
        )
        .await
        .map_err(|e: HttpError| e.to_string())
    })
    .await;
    if let (Some(sent), Some(first)) = (sent, progress.first_byte) {
        result.first_byte_ns = Some(nanos(first.saturating_duration_since(sent)));
    }
    if let Some(head) = &progress.head {
        result.status = Some(head.status);
        result.http_version = Some(head.version.clone());
    }
    result.body_bytes = progress.body_bytes;
    result.body_truncated = progress.body_truncated;
    match outcome {
        Ok(done) => done,
        Err(_) => Err(match (&progress.head, sent) {
            (_, None) => "timed out sending the request".to_owned(),
            (None, Some(_)) if progress.first_byte.is_none() => {
                "no response before the deadline".to_owned()
            }
            (None, Some(_)) => "timed out reading the response head".to_owned(),
            (Some(_), Some(_)) => format!(
                "timed out reading the body after {} bytes",
                progress.body_bytes
            ),
        }),
    }
}

/// One GET as the readiness measurement makes it: the response's head and body (at most
/// `max_body` bytes) are kept, and over HTTPS the server's leaf certificate and whether it
/// verified for the URL's host. A bad certificate does not stop the request (the verdict
/// is recorded instead), so the page is still compared over both families.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub result: Option<HttpResult>,
    pub head: Option<response::Head>,
    pub body: Vec<u8>,
    /// DER of the leaf certificate, when a TLS handshake got that far.
    pub leaf: Option<Vec<u8>>,
    pub certificate_verified: Option<bool>,
}

impl Fetched {
    /// The value of a response header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .as_ref()?
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Fetches `spec`'s URL from `destination` by the time `ctx.deadline` says; see [`Fetched`].
pub async fn fetch(
    ctx: &Context<'_>,
    spec: &HttpSpec,
    destination: IpAddr,
) -> Result<Fetched, MeasurementError> {
    let url = spec.url();
    let mut fetched = Fetched::default();
    let recorder = if url.https {
        let provider = tls::provider();
        let recorder =
            tls::verifier::RecordingVerifier::new(tls::anchors(ctx)?, Arc::clone(&provider))
                .map_err(|e| failure(ErrorClass::Internal, e))?;
        let verifier: Arc<dyn ServerCertVerifier> = recorder.clone();
        let config = tls::client_config(provider, &[ALPN.to_owned()], verifier)?;
        Some((recorder, Arc::new(config), server_name(url)?))
    } else {
        None
    };
    let request = request(spec);
    let started_connect = Instant::now();
    let attempt = connect::connect(destination, url.port, ctx.deadline)
        .await
        .map_err(|e| failure(ErrorClass::Network, format!("TCP socket: {e}")))?;
    let mut result = HttpResult {
        connect: attempt.outcome,
        status: None,
        http_version: None,
        dns_ns: None,
        connect_ns: (attempt.outcome != ConnectOutcome::Timeout).then(|| nanos(attempt.elapsed)),
        tls_ns: None,
        first_byte_ns: None,
        total_ns: 0,
        body_bytes: 0,
        body_truncated: false,
        failure: attempt.detail,
    };
    let mut progress = Progress {
        keep_body: true,
        ..Progress::default()
    };
    if let Some(stream) = attempt.stream {
        let outcome = match &recorder {
            None => exchange(ctx, stream, &request, spec, &mut result, &mut progress).await,
            Some((_, config, name)) => {
                let handshake_started = Instant::now();
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                match tokio::time::timeout_at(ctx.deadline, connector.connect(name.clone(), stream))
                    .await
                {
                    Err(_) => Err(format!(
                        "the TLS handshake did not finish within {} ms",
                        handshake_started.elapsed().as_millis()
                    )),
                    Ok(Err(e)) => Err(tls::describe_io(&e)),
                    Ok(Ok(tls_stream)) => {
                        result.tls_ns = Some(nanos(handshake_started.elapsed()));
                        exchange(ctx, tls_stream, &request, spec, &mut result, &mut progress).await
                    }
                }
            }
        };
        result.failure = outcome.err().map(tls::bounded);
    }
    if let Some((recorder, _, _)) = &recorder {
        let recorded = recorder.recorded();
        fetched.leaf = recorded.chain.first().map(|c| c.as_ref().to_vec());
        fetched.certificate_verified = recorded.verdict.map(|v| v.is_ok());
    }
    result.total_ns = nanos(started_connect.elapsed());
    fetched.result = Some(result);
    fetched.head = progress.head.take();
    fetched.body = std::mem::take(&mut progress.body);
    Ok(fetched)
}

/// The request: origin-form target, Host from the URL's authority, one request per
/// connection, and a User-Agent saying who measures.
pub fn request(spec: &HttpSpec) -> Vec<u8> {
    let method = match spec.method() {
        HttpMethod::Get => "GET",
        HttpMethod::Head => "HEAD",
    };
    let url = spec.url();
    format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sixmap-probe/{} (IPv6 measurement)\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority(),
        sixmap_shared::version::SOFTWARE_VERSION
    )
    .into_bytes()
}

/// SNI and the name verified: the URL's host (an address literal sends no SNI and is checked
/// against the certificate's addresses), whatever address is measured.
fn server_name(url: &HttpUrl) -> Result<ServerName<'static>, MeasurementError> {
    match url.host.parse::<IpAddr>() {
        Ok(address) => Ok(ServerName::IpAddress(address.into())),
        Err(_) => tls::dns_name(&url.host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testserver::{ca, context, plain, tls};
    use std::time::Duration;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\nsixmap lab: hello over IPv6\n";

    async fn measure(url: String, method: &str, max: u32, trust: bool) -> HttpResult {
        let spec = HttpSpec::new(&url, method, max).unwrap();
        let ca = ca(trust);
        let mut ctx = context(ca.as_deref(), None, Duration::from_secs(3));
        ctx.resolve_ns = Some(1000);
        run(&ctx, &spec, "::1".parse().unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn plain_get_and_head_report_status_body_and_phases() {
        let (address, server) = plain(OK.to_vec()).await;
        let result = measure(
            format!("http://fixture.test:{}/a?b", address.port()),
            "GET",
            0,
            true,
        )
        .await;
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        assert_eq!(result.failure, None, "{result:?}");
        assert_eq!(
            (result.status, result.body_bytes, result.body_truncated),
            (Some(200), 28, false)
        );
        assert_eq!(result.http_version.as_deref(), Some("HTTP/1.1"));
        assert_eq!(result.dns_ns, Some(1000));
        assert!(result.connect_ns.is_some() && result.first_byte_ns.is_some());
        assert_eq!(result.tls_ns, None);
        assert!(result.total_ns >= 1000 + result.connect_ns.unwrap());
        result.validate().unwrap();
        let version = sixmap_shared::version::SOFTWARE_VERSION;
        assert!(
            request.starts_with(&format!(
                "GET /a?b HTTP/1.1\r\nHost: fixture.test:{}\r\nUser-Agent: sixmap-probe/{version} ",
                address.port()
            )) && request.contains("\r\nConnection: close\r\n"),
            "{request}"
        );
        let (address, server) =
            plain(b"HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\n".to_vec()).await;
        let result = measure(format!("http://[::1]:{}/", address.port()), "HEAD", 0, true).await;
        let request = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(
            request.starts_with(&format!(
                "HEAD / HTTP/1.1\r\nHost: [::1]:{}\r\n",
                address.port()
            )),
            "{request}"
        );
        assert_eq!(
            (result.status, result.body_bytes, result.failure.as_deref()),
            (Some(200), 0, None)
        );
        assert!(crate::render::http(&result).contains("status: 200"));
    }

    #[tokio::test]
    async fn https_verifies_and_names_a_bad_certificate() {
        let (address, server) = tls(&["http/1.1"], OK.to_vec()).await;
        let result = measure(
            format!("https://fixture.test:{}/", address.port()),
            "GET",
            10,
            true,
        )
        .await;
        server.await.unwrap();
        assert_eq!(result.failure, None, "{result:?}");
        assert_eq!(
            (result.status, result.body_bytes, result.body_truncated),
            (Some(200), 10, true)
        );
        assert!(result.tls_ns.is_some());

        let (address, server) = tls(&["http/1.1"], OK.to_vec()).await;
        let result = measure(
            format!("https://fixture.test:{}/", address.port()),
            "GET",
            0,
            false,
        )
        .await;
        let _ = server.await;
        assert_eq!(
            (result.connect, result.status, result.tls_ns),
            (ConnectOutcome::Connected, None, None)
        );
        assert!(
            result
                .failure
                .as_deref()
                .unwrap()
                .contains("unknown issuer"),
            "{result:?}"
        );
        result.validate().unwrap();
    }

    #[tokio::test]
    async fn hostile_and_silent_servers_fail_with_partial_results() {
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        while endless.len() < 200_000 {
            endless.extend_from_slice(b"X-Filler: 0123456789\r\n");
        }
        let (address, _server) = plain(endless).await;
        let result = measure(format!("http://[::1]:{}/", address.port()), "GET", 0, true).await;
        assert_eq!(result.status, None);
        assert!(result.failure.unwrap().contains("larger than 65536"));

        // Headers, then silence: the deadline ends it, the status is kept.
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let started = Instant::now();
        let result = measure(format!("http://[::1]:{port}/"), "GET", 0, true).await;
        assert!(started.elapsed() < Duration::from_millis(3500));
        server.abort();
        assert_eq!((result.status, result.body_bytes), (Some(200), 3));
        assert_eq!(
            result.failure.as_deref(),
            Some("timed out reading the body after 3 bytes")
        );
    }
}
