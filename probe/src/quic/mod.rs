//! QUIC handshake measurement (quinn, QUIC v1, rustls on ring): does a QUIC handshake with
//! the server's name and ALPN (h3 unless the spec says otherwise) complete, how long it took,
//! and if not, whether UDP is blocked, the handshake failed, or the certificate was rejected.
//!
//! The certificate is judged by the TLS measurement's recording verifier, so a bad
//! certificate is told apart from a failed handshake. The connection is closed with
//! CONNECTION_CLOSE (code 0) once the handshake is done; no HTTP/3 request is sent.

pub mod socket;

use crate::context::{Context, failure};
use crate::tls::verifier::RecordingVerifier;
use crate::tls::{self, nanos};
use quinn::crypto::rustls::{HandshakeData, QuicClientConfig};
use quinn::{ConnectionError, Endpoint, EndpointConfig, IdleTimeout, TransportConfig};
use rustls::client::danger::ServerCertVerifier;
use sixmap_shared::measurement::{ErrorClass, MeasurementError, QuicFailure, QuicResult, QuicSpec};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// QUIC version 1 (RFC 9000), the only one offered.
pub const QUIC_V1: u32 = 1;
/// Longest wait for the close to be sent and the connection drained.
const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// How the wait for the handshake ended.
enum Ended {
    Handshake(Result<quinn::Connection, ConnectionError>),
    Icmp(std::io::Error),
    Deadline,
}

pub async fn run(
    ctx: &Context<'_>,
    spec: &QuicSpec,
    destination: IpAddr,
) -> Result<QuicResult, MeasurementError> {
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        failure(ErrorClass::Internal, format!("{what}: {e}"))
    };
    let provider = tls::provider();
    let recorder = RecordingVerifier::new(tls::anchors(ctx)?, Arc::clone(&provider))
        .map_err(|e| failure(ErrorClass::Internal, e))?;
    let verifier: Arc<dyn ServerCertVerifier> = recorder.clone();
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| internal("TLS configuration", &e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    crypto.alpn_protocols = spec.alpn().iter().map(|p| p.as_bytes().to_vec()).collect();
    let crypto =
        QuicClientConfig::try_from(Arc::new(crypto)).map_err(|e| internal("QUIC TLS", &e))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.version(QUIC_V1);
    let mut transport = TransportConfig::default();
    // quinn's handshake gives up at the idle timeout (30 s by default): let the measurement's
    // deadline decide instead.
    transport.max_idle_timeout(IdleTimeout::try_from(ctx.remaining()).ok());
    config.transport_config(Arc::new(transport));
    // An address literal is sent as no SNI and checked against the certificate's addresses.
    let name = spec
        .server_name()
        .or(ctx.target_name)
        .map_or_else(|| destination.to_string(), str::to_owned);

    let server = SocketAddr::new(destination, spec.port());
    let mut result = QuicResult {
        handshake_ok: false,
        version: None,
        alpn: None,
        handshake_ns: None,
        failure: None,
        failure_detail: None,
    };
    let (udp, watch) = match socket::open(server) {
        Ok(sockets) => sockets,
        Err(e) if crate::tls::connect::classify(&e).is_some() => {
            result.failure = Some(QuicFailure::UdpBlocked);
            result.failure_detail = Some(format!("UDP to {server}: {e}"));
            return Ok(result);
        }
        Err(e) => return Err(failure(ErrorClass::Network, format!("UDP socket: {e}"))),
    };
    let runtime = Arc::new(quinn::TokioRuntime);
    let wrapped = quinn::Runtime::wrap_udp_socket(&*runtime, udp)
        .map_err(|e| failure(ErrorClass::Network, format!("UDP socket: {e}")))?;
    let (counting, received) = socket::Counting::new(wrapped);
    let endpoint =
        Endpoint::new_with_abstract_socket(EndpointConfig::default(), None, counting, runtime)
            .map_err(|e| internal("QUIC endpoint", &e))?;

    let started = Instant::now();
    let connecting = endpoint
        .connect_with(config, server, &name)
        .map_err(|e| internal("QUIC connect", &e))?;
    let ended = tokio::select! {
        outcome = connecting => Ended::Handshake(outcome),
        e = socket::error(&watch) => Ended::Icmp(e),
        () = tokio::time::sleep_until(ctx.deadline) => Ended::Deadline,
    };
    let elapsed = started.elapsed();
    let answered = received.load(Ordering::Relaxed) > 0;
    let (failure_class, detail) = match ended {
        Ended::Handshake(Ok(connection)) => {
            result.handshake_ns = Some(nanos(elapsed));
            result.version = Some(QUIC_V1);
            result.alpn = connection
                .handshake_data()
                .and_then(|data| data.downcast::<HandshakeData>().ok())
                .and_then(|data| data.protocol)
                .map(|p| String::from_utf8_lossy(&p).into_owned());
            connection.close(0u32.into(), b"sixmap: handshake measured");
            match recorder.recorded().verdict {
                Some(Ok(())) => (None, None),
                Some(Err(reason)) => (Some(QuicFailure::Certificate), Some(reason)),
                None => (
                    Some(QuicFailure::Certificate),
                    Some("the server presented no certificate".to_owned()),
                ),
            }
        }
        Ended::Handshake(Err(e)) => classify(&e, answered, elapsed),
        Ended::Icmp(e) => (Some(QuicFailure::UdpBlocked), Some(socket::describe(&e))),
        Ended::Deadline => silent(answered, elapsed),
    };
    result.handshake_ok = failure_class.is_none();
    result.failure = failure_class;
    result.failure_detail = detail.map(tls::bounded);
    endpoint.close(0u32.into(), b"sixmap: done");
    if result.version.is_some() {
        // Let the endpoint send the CONNECTION_CLOSE before the socket goes away.
        let _ = tokio::time::timeout(CLOSE_WAIT.min(ctx.remaining()), endpoint.wait_idle()).await;
    }
    Ok(result)
}

/// A handshake that ended in an error.
fn classify(
    error: &ConnectionError,
    answered: bool,
    elapsed: Duration,
) -> (Option<QuicFailure>, Option<String>) {
    let detail = match error {
        ConnectionError::TimedOut => return silent(answered, elapsed),
        ConnectionError::VersionMismatch => {
            "the server does not support QUIC version 1 (version negotiation)".to_owned()
        }
        ConnectionError::ConnectionClosed(close) => {
            format!("the server closed the connection: {close}")
        }
        ConnectionError::ApplicationClosed(close) => {
            format!("the server closed the connection: {close}")
        }
        ConnectionError::Reset => "the server reset the connection (stateless reset)".to_owned(),
        other => format!("handshake failed: {other}"),
    };
    (Some(QuicFailure::Handshake), Some(detail))
}

/// The deadline (or quinn's idle timeout) passed without a handshake.
fn silent(answered: bool, elapsed: Duration) -> (Option<QuicFailure>, Option<String>) {
    if answered {
        (
            Some(QuicFailure::Handshake),
            Some(format!(
                "the server answered but the handshake did not finish within {} ms",
                elapsed.as_millis()
            )),
        )
    } else {
        (
            Some(QuicFailure::UdpBlocked),
            Some(format!(
                "no UDP datagram came back within {} ms",
                elapsed.as_millis()
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testserver::{ca, context, server_config};
    use quinn::crypto::rustls::QuicServerConfig;

    /// A QUIC server on ::1 offering `alpn`, accepting connections until dropped.
    fn server(alpn: &[&str]) -> (Endpoint, u16) {
        let crypto = QuicServerConfig::try_from(server_config(alpn)).unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let endpoint = Endpoint::server(config, "[::1]:0".parse().unwrap()).unwrap();
        let port = endpoint.local_addr().unwrap().port();
        let accepting = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                tokio::spawn(async move {
                    if let Ok(connection) = incoming.await {
                        let _ = connection.closed().await;
                    }
                });
            }
        });
        (endpoint, port)
    }

    async fn measure(port: u16, trust: bool, alpn: &[&str], timeout: Duration) -> QuicResult {
        let spec = QuicSpec::new(
            u32::from(port),
            None,
            alpn.iter().map(|p| (*p).to_owned()).collect(),
        )
        .unwrap();
        let ca = ca(trust);
        let ctx = context(ca.as_deref(), Some("fixture.test"), timeout);
        let result = run(&ctx, &spec, "::1".parse().unwrap()).await.unwrap();
        result.validate().unwrap();
        result
    }

    #[tokio::test]
    async fn handshake_with_h3_and_a_trusted_certificate() {
        let (_server, port) = server(&["h3"]);
        let result = measure(port, true, &[], Duration::from_secs(5)).await;
        assert!(result.handshake_ok, "{result:?}");
        assert_eq!(result.version, Some(1));
        assert_eq!(result.alpn.as_deref(), Some("h3"));
        assert!(result.handshake_ns.is_some());
        assert!(crate::render::quic(&result).contains("handshake: ok"));
    }

    #[tokio::test]
    async fn certificate_and_handshake_failures_are_told_apart() {
        let (_server, port) = server(&["h3"]);
        let result = measure(port, false, &[], Duration::from_secs(5)).await;
        assert_eq!(result.failure, Some(QuicFailure::Certificate), "{result:?}");
        assert!(result.failure_detail.unwrap().contains("unknown issuer"));
        // The handshake itself completed.
        assert_eq!(
            (result.version, result.alpn.as_deref()),
            (Some(1), Some("h3"))
        );

        let result = measure(port, true, &["hq-interop"], Duration::from_secs(5)).await;
        assert_eq!(result.failure, Some(QuicFailure::Handshake), "{result:?}");
        assert!(!result.handshake_ok && result.version.is_none());
    }

    #[tokio::test]
    async fn closed_and_silent_ports_are_udp_blocked() {
        let silent = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = Instant::now();
        let result = measure(port, true, &[], Duration::from_millis(1500)).await;
        assert!(started.elapsed() >= Duration::from_millis(1400));
        assert_eq!(result.failure, Some(QuicFailure::UdpBlocked), "{result:?}");
        assert!(
            result
                .failure_detail
                .unwrap()
                .contains("no UDP datagram came back")
        );
        drop(silent);

        let started = Instant::now();
        let result = measure(port, true, &[], Duration::from_secs(5)).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(result.failure, Some(QuicFailure::UdpBlocked), "{result:?}");
        assert!(result.failure_detail.unwrap().contains("port unreachable"));
    }
}
