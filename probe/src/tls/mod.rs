//! TLS handshake measurement (rustls, TLS 1.2 and 1.3, ring): TCP connect, handshake with
//! SNI and ALPN, and what the server presented, whether or not its certificate verifies.
//!
//! - `connect`: TCP connect, classified (shared with HTTP).
//! - `verifier`: the verifier that records rustls' WebPKI verdict instead of aborting.
//! - `x509`: subject, issuer and validity for the chain summary.

pub mod connect;
#[cfg(test)]
pub(crate) mod testserver;
pub mod verifier;
pub mod x509;

use crate::context::{Context, failure};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use sixmap_shared::measurement::{
    ConnectOutcome, ErrorClass, MeasurementError, TlsResult, TlsSpec,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use verifier::RecordingVerifier;

/// Longest wait for the server to take our close_notify before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

pub async fn run(
    ctx: &Context<'_>,
    spec: &TlsSpec,
    destination: IpAddr,
) -> Result<TlsResult, MeasurementError> {
    let provider = provider();
    let recorder = RecordingVerifier::new(anchors(ctx)?, Arc::clone(&provider))
        .map_err(|e| failure(ErrorClass::Internal, e))?;
    let verifier: Arc<dyn ServerCertVerifier> = recorder.clone();
    let config = client_config(provider, spec.alpn(), verifier)?;
    let name = server_name(spec.server_name().or(ctx.target_name), destination)?;

    let attempt = connect::connect(destination, spec.port(), ctx.deadline)
        .await
        .map_err(|e| failure(ErrorClass::Network, format!("TCP socket: {e}")))?;
    let mut result = TlsResult {
        connect: attempt.outcome,
        connect_ns: (attempt.outcome != ConnectOutcome::Timeout).then(|| nanos(attempt.elapsed)),
        handshake_ok: false,
        handshake_ns: None,
        version: None,
        cipher_suite: None,
        alpn: None,
        chain: Vec::new(),
        certificate_verified: false,
        failure: attempt.detail,
    };
    let Some(stream) = attempt.stream else {
        return Ok(result);
    };

    let started = Instant::now();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = tokio::time::timeout_at(ctx.deadline, connector.connect(name, stream)).await;
    let handshake_error = match handshake {
        Err(_) => Some(format!(
            "the TLS handshake did not finish within {} ms",
            started.elapsed().as_millis()
        )),
        Ok(Err(e)) => Some(describe_io(&e)),
        Ok(Ok(mut tls)) => {
            result.handshake_ns = Some(nanos(started.elapsed()));
            result.handshake_ok = true;
            let (_, session) = tls.get_ref();
            result.version = session.protocol_version().map(version_name);
            result.cipher_suite = session
                .negotiated_cipher_suite()
                .map(|s| suite_name(s.suite()));
            result.alpn = session
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            // A polite close_notify, so the server logs a clean close, not an error.
            let _ = tokio::time::timeout(CLOSE_WAIT.min(ctx.remaining()), tls.shutdown()).await;
            None
        }
    };

    let recorded = recorder.recorded();
    result.chain = recorded
        .chain
        .iter()
        .take(MAX_CHAIN)
        .map(|c| x509::summary(c))
        .collect();
    let certificate_problem = match recorded.verdict {
        Some(Ok(())) => {
            result.certificate_verified = true;
            None
        }
        Some(Err(reason)) => Some(reason),
        None => None,
    };
    result.failure = match (handshake_error, certificate_problem) {
        (None, problem) => problem,
        (Some(error), None) => Some(error),
        (Some(error), Some(problem)) => Some(format!("{error}; {problem}")),
    }
    .map(bounded);
    Ok(result)
}

/// The result allows 16 certificates; real chains have 2 to 4.
const MAX_CHAIN: usize = 16;

/// The one crypto provider of the probe (ring: small, builds on every Pi without cmake).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trust anchors, or a measurement error saying what is wrong with them.
pub fn anchors(ctx: &Context<'_>) -> Result<Arc<RootCertStore>, MeasurementError> {
    crate::trust::anchors(ctx.extra_ca_file)
        .map_err(|e| failure(ErrorClass::Internal, e.to_string()))
}

/// A client config for TLS 1.3 and 1.2 with the given verifier and ALPN list.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    alpn: &[String],
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<ClientConfig, MeasurementError> {
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| failure(ErrorClass::Internal, format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}

/// The name to verify and, for DNS names, to send as SNI: the given name, else the address
/// (rustls sends no SNI for an address, and checks the certificate's IP addresses).
pub fn server_name(
    name: Option<&str>,
    destination: IpAddr,
) -> Result<ServerName<'static>, MeasurementError> {
    match name {
        Some(name) => dns_name(name),
        None => Ok(ServerName::IpAddress(destination.into())),
    }
}

/// A DNS name to send as SNI and to verify.
pub fn dns_name(name: &str) -> Result<ServerName<'static>, MeasurementError> {
    ServerName::try_from(name.to_owned()).map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("{name:?} is not a server name: {e}"),
        )
    })
}

/// A handshake error from tokio-rustls in words.
pub fn describe_io(error: &std::io::Error) -> String {
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return verifier::describe(tls);
    }
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the TLS handshake".to_owned()
        }
        std::io::ErrorKind::ConnectionReset => {
            "the server reset the connection during the TLS handshake".to_owned()
        }
        _ => format!("TLS handshake: {error}"),
    }
}

/// "TLSv1.3" rather than rustls' "TLSv1_3".
pub fn version_name(version: ProtocolVersion) -> String {
    match version {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The IANA name, e.g. "TLS13_AES_256_GCM_SHA384".
fn suite_name(suite: rustls::CipherSuite) -> String {
    suite
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{suite:?}"))
}

/// Failure texts quote what the server chose (certificate names, close reasons); results
/// allow 4096 bytes, so keep well under.
const MAX_FAILURE: usize = 1024;

pub(crate) fn bounded(mut text: String) -> String {
    if text.len() > MAX_FAILURE {
        let mut end = MAX_FAILURE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::testserver::{ca, context, tls};
    use super::*;

    fn spec(name: Option<&str>, port: u16, alpn: &[&str]) -> TlsSpec {
        TlsSpec::new(
            u32::from(port),
            name,
            alpn.iter().map(|p| (*p).to_owned()).collect(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_trusted_server_verifies_with_version_suite_alpn_and_chain() {
        let (address, server) = tls(&["h2", "http/1.1"], Vec::new()).await;
        let ca = ca(true);
        let ctx = context(ca.as_deref(), Some("fixture.test"), Duration::from_secs(5));
        let result = run(
            &ctx,
            &spec(None, address.port(), &["http/1.1"]),
            address.ip(),
        )
        .await
        .unwrap();
        server.await.unwrap();
        assert_eq!(result.connect, ConnectOutcome::Connected);
        assert!(result.handshake_ok, "{result:?}");
        assert!(result.certificate_verified, "{result:?}");
        assert_eq!(result.failure, None);
        assert_eq!(result.version.as_deref(), Some("TLSv1.3"));
        assert!(
            result
                .cipher_suite
                .as_deref()
                .unwrap()
                .starts_with("TLS13_")
        );
        assert_eq!(result.alpn.as_deref(), Some("http/1.1"));
        assert!(result.connect_ns.is_some() && result.handshake_ns.is_some());
        assert_eq!(result.chain.len(), 1);
        assert_eq!(result.chain[0].subject, "CN=fixture.test");
        assert_eq!(
            result.chain[0].issuer,
            "C=DE, O=sixmap test, CN=sixmap test CA"
        );
        result.validate().unwrap();
        let text = crate::render::tls(&result);
        assert!(text.contains("certificate verified: yes"), "{text}");
    }

    #[tokio::test]
    async fn a_tls12_only_server_is_measured_as_such() {
        let config = super::testserver::server_config_for(&[], &[&rustls::version::TLS12]);
        let (address, server) = super::testserver::tls_with(config, Vec::new()).await;
        let ca = ca(true);
        let ctx = context(ca.as_deref(), Some("fixture.test"), Duration::from_secs(5));
        let result = run(&ctx, &spec(None, address.port(), &[]), address.ip())
            .await
            .unwrap();
        server.await.unwrap();
        assert!(
            result.handshake_ok && result.certificate_verified,
            "{result:?}"
        );
        assert_eq!(result.version.as_deref(), Some("TLSv1.2"));
        assert!(
            result
                .cipher_suite
                .as_deref()
                .unwrap()
                .starts_with("TLS_ECDHE_ECDSA_"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn bad_certificates_are_recorded_not_fatal() {
        // Unknown issuer: the fixture CA is not trusted.
        let (address, server) = tls(&[], Vec::new()).await;
        let untrusted = ca(false);
        let ctx = context(
            untrusted.as_deref(),
            Some("fixture.test"),
            Duration::from_secs(5),
        );
        let result = run(&ctx, &spec(None, address.port(), &[]), address.ip())
            .await
            .unwrap();
        server.await.unwrap();
        assert!(
            result.handshake_ok && !result.certificate_verified,
            "{result:?}"
        );
        assert!(
            result
                .failure
                .as_deref()
                .unwrap()
                .contains("unknown issuer"),
            "{result:?}"
        );
        assert_eq!(result.alpn, None);
        assert_eq!(result.chain.len(), 1);

        // Name mismatch: SNI from the spec wins over the target name.
        let (address, server) = tls(&[], Vec::new()).await;
        let ca = ca(true);
        let ctx = context(ca.as_deref(), Some("fixture.test"), Duration::from_secs(5));
        let result = run(
            &ctx,
            &spec(Some("wrong.test"), address.port(), &[]),
            address.ip(),
        )
        .await
        .unwrap();
        server.await.unwrap();
        assert!(
            result.handshake_ok && !result.certificate_verified,
            "{result:?}"
        );
        let failure = result.failure.unwrap();
        assert!(
            failure.contains("name mismatch") && failure.contains("wrong.test"),
            "{failure}"
        );

        // An address literal: no SNI, the certificate's IP addresses are checked (::1 is not
        // among them).
        let (address, server) = tls(&[], Vec::new()).await;
        let ctx = context(ca.as_deref(), None, Duration::from_secs(5));
        let result = run(&ctx, &spec(None, address.port(), &[]), address.ip())
            .await
            .unwrap();
        server.await.unwrap();
        assert!(
            result.failure.as_deref().unwrap().contains("::1"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn alpn_mismatch_and_non_tls_servers_fail_the_handshake() {
        let (address, server) = tls(&["h2"], Vec::new()).await;
        let ca = ca(true);
        let ctx = context(ca.as_deref(), Some("fixture.test"), Duration::from_secs(5));
        let result = run(
            &ctx,
            &spec(None, address.port(), &["http/1.1"]),
            address.ip(),
        )
        .await
        .unwrap();
        let _ = server.await;
        assert!(!result.handshake_ok);
        assert!(
            result
                .failure
                .as_deref()
                .unwrap()
                .contains("NoApplicationProtocol"),
            "{result:?}"
        );
        result.validate().unwrap();

        let (address, server) =
            super::testserver::plain(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()).await;
        let result = run(&ctx, &spec(None, address.port(), &[]), address.ip())
            .await
            .unwrap();
        let _ = server.await;
        assert!(!result.handshake_ok);
        assert!(result.failure.is_some(), "{result:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ca = ca(true);
        let ctx = context(ca.as_deref(), Some("fixture.test"), Duration::from_secs(5));
        let result = run(&ctx, &spec(None, port, &[]), "::1".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(result.connect, ConnectOutcome::Refused);
        assert!(!result.handshake_ok && result.chain.is_empty());
        assert!(result.failure.unwrap().contains("refused"));
    }

    #[test]
    fn failure_texts_are_bounded() {
        assert_eq!(bounded("short".into()), "short");
        let long = bounded("é".repeat(2000));
        assert!(long.len() <= MAX_FAILURE + '…'.len_utf8() && long.ends_with('…'));
    }

    #[test]
    fn a_missing_extra_ca_file_is_a_clear_error() {
        let ca = std::path::Path::new("/nonexistent/ca.pem");
        let ctx = crate::context::for_test(Some(ca), None, Duration::from_secs(1));
        let err = anchors(&ctx).unwrap_err();
        assert!(err.message.contains("/nonexistent/ca.pem"), "{err:?}");
    }
}
