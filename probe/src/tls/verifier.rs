//! Certificate verification that records its verdict instead of aborting the handshake, so a
//! measurement of a server with a bad certificate still learns the version, cipher suite,
//! ALPN and chain, and says exactly what is wrong with the certificate.
//!
//! The verdict is rustls' own WebPKI verifier's; signatures over the handshake are still
//! checked for real (a server that cannot prove it holds the key fails the handshake).

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::sync::{Arc, Mutex};

/// What the verifier saw: the chain as the server sent it (leaf first) and the verdict.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub chain: Vec<CertificateDer<'static>>,
    /// `None` until the server's certificate was seen; then `Ok` or the reason it failed.
    pub verdict: Option<Result<(), String>>,
}

#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    recorded: Mutex<Recorded>,
}

impl RecordingVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, String> {
        let inner = webpki(roots, provider)?;
        Ok(Arc::new(Self {
            inner,
            recorded: Mutex::new(Recorded::default()),
        }))
    }

    pub fn recorded(&self) -> Recorded {
        self.recorded.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// rustls' standard verifier, for connections that must stop on a bad certificate (HTTPS).
pub fn webpki(
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| format!("certificate verifier: {e}"))
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ())
            .map_err(|e| describe(&e));
        if let Ok(mut recorded) = self.recorded.lock() {
            recorded.chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
            recorded.verdict = Some(verdict);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A rustls error in words a report reader understands; certificate problems are named
/// ("unknown issuer", "expired", "name mismatch", ...).
pub fn describe(error: &Error) -> String {
    match error {
        Error::InvalidCertificate(e) => format!("certificate not verified: {}", certificate(e)),
        Error::AlertReceived(alert) => format!("the server sent TLS alert {alert:?}"),
        Error::NoApplicationProtocol => "no ALPN protocol in common with the server".to_owned(),
        Error::PeerIncompatible(e) => format!("the server is incompatible: {e:?}"),
        Error::PeerMisbehaved(e) => format!("the server misbehaved: {e:?}"),
        Error::InappropriateHandshakeMessage { .. } | Error::InappropriateMessage { .. } => {
            format!("unexpected TLS message: {error}")
        }
        Error::InvalidMessage(e) => format!("invalid TLS message from the server: {e:?}"),
        other => other.to_string(),
    }
}

fn certificate(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => "unknown issuer".to_owned(),
        CertificateError::Expired => "expired".to_owned(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "expired (not after {} s, now {} s since the epoch)",
            not_after.as_secs(),
            time.as_secs()
        ),
        CertificateError::NotValidYet => "not yet valid".to_owned(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "not yet valid (not before {} s, now {} s since the epoch)",
            not_before.as_secs(),
            time.as_secs()
        ),
        CertificateError::NotValidForName => "name mismatch".to_owned(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "name mismatch: {} is not among {}",
            server_name(expected),
            if presented.is_empty() {
                "no names".to_owned()
            } else {
                presented
                    .iter()
                    .map(|p| presented_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        CertificateError::Revoked => "revoked".to_owned(),
        CertificateError::BadSignature => "bad signature".to_owned(),
        CertificateError::BadEncoding => "badly encoded".to_owned(),
        CertificateError::UnhandledCriticalExtension => "unhandled critical extension".to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "not valid for server authentication".to_owned()
        }
        other => format!("{other:?}"),
    }
}

/// webpki lists presented names as `DnsName("a.example")` / `IpAddress(192.0.2.1)`: keep the
/// name.
fn presented_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
        .unwrap_or(presented)
}

fn server_name(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use std::time::Duration;

    fn cert(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn verifier(trust_fixture_ca: bool) -> Arc<RecordingVerifier> {
        let mut roots = RootCertStore::empty();
        let anchor = if trust_fixture_ca {
            include_str!("testdata/ca.pem")
        } else {
            // Any other CA: the leaf's issuer is then unknown.
            include_str!("testdata/leaf.pem")
        };
        roots.add(cert(anchor)).unwrap();
        RecordingVerifier::new(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap()
    }

    /// 2027-01-01, inside the fixtures' validity.
    fn in_validity() -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(1_798_761_600))
    }

    fn verdict(v: &RecordingVerifier, name: &str, now: UnixTime) -> Result<(), String> {
        let leaf = cert(include_str!("testdata/leaf.pem"));
        let name = ServerName::try_from(name.to_owned()).unwrap();
        // The handshake is never aborted, whatever the verdict.
        assert!(v.verify_server_cert(&leaf, &[], &name, &[], now).is_ok());
        let recorded = v.recorded();
        assert_eq!(recorded.chain, vec![leaf]);
        recorded.verdict.unwrap()
    }

    #[test]
    fn verdicts_are_recorded_and_named() {
        let trusted = verifier(true);
        assert_eq!(verdict(&trusted, "fixture.test", in_validity()), Ok(()));
        assert_eq!(verdict(&trusted, "2001:db8::443", in_validity()), Ok(()));
        let err = verdict(&trusted, "other.test", in_validity()).unwrap_err();
        assert_eq!(
            err,
            "certificate not verified: name mismatch: other.test is not among fixture.test, 2001:db8::443"
        );
        // 2127, after not_after (2126-10-30).
        let later = UnixTime::since_unix_epoch(Duration::from_secs(4_955_000_000));
        let err = verdict(&trusted, "fixture.test", later).unwrap_err();
        assert!(err.contains("expired"), "{err}");
        let earlier = UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000));
        let err = verdict(&trusted, "fixture.test", earlier).unwrap_err();
        assert!(err.contains("not yet valid"), "{err}");
        let err = verdict(&verifier(false), "fixture.test", in_validity()).unwrap_err();
        assert!(err.contains("unknown issuer"), "{err}");
    }
}
