//! TLS to the collector: TLS 1.3 only, and the collector's own CA as the only trust anchor.
//!
//! - Enrollment: the probe has no certificate yet and knows the collector's CA only by the
//!   SHA-256 fingerprint in its enrollment token. [`PinnedCa`] accepts the server only if the
//!   chain it presents contains a CA certificate with that fingerprint and the server
//!   certificate verifies against it; so the token is sent to the real collector only.
//! - Sessions: the CA certificate received (and checked against the fingerprint) at enrollment
//!   is the only root, and the probe presents the client certificate the collector issued.
//!
//! The system trust store plays no part: a public CA cannot vouch for a collector.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sixmap_proto::v1::probe_control_client::ProbeControlClient;
use sixmap_shared::digest::sha256_hex;
use sixmap_shared::session::COLLECTOR_TLS_NAME;
use std::sync::Arc;
use tonic::transport::{Channel, Endpoint, Uri};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, rustls::Error> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
}

fn finish(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// For enrollment: trust the server only under the CA whose fingerprint the token carries.
pub fn enrollment_config(ca_fingerprint: &str) -> Result<Arc<ClientConfig>, rustls::Error> {
    let verifier = PinnedCa {
        fingerprint: ca_fingerprint.to_owned(),
        provider: provider(),
    };
    Ok(finish(
        builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    ))
}

/// For sessions: the collector's CA as the only root, and the probe's own certificate.
pub fn session_config(
    ca: CertificateDer<'static>,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    Ok(finish(
        builder()?
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![certificate], key)?,
    ))
}

/// Verifies the server against the CA certificate in its own chain whose SHA-256 is pinned.
#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256_hex(c) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the collector did not present the CA named by the enrollment token's fingerprint: wrong collector address, or someone in between"
                        .into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("collector URL {0:?} must be https://host:port")]
    Url(String),
    #[error("cannot reach collector {url}: {source}")]
    Transport {
        url: String,
        source: tonic::transport::Error,
    },
}

/// A gRPC client over our own TLS connector. Tonic's built-in TLS cannot be limited to TLS 1.3
/// or given a custom verifier, so TLS happens in the connector and tonic is handed the
/// endpoint as `http://` (the scheme only names the layer above our TLS).
pub async fn connect(
    collector: &str,
    tls: Arc<ClientConfig>,
    configure: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<ProbeControlClient<Channel>, ConnectError> {
    channel(collector, tls, configure)
        .await
        .map(ProbeControlClient::new)
}

/// A gRPC channel to the collector over our TLS connector, for any of its services.
pub async fn channel(
    collector: &str,
    tls: Arc<ClientConfig>,
    configure: impl FnOnce(Endpoint) -> Endpoint,
) -> Result<Channel, ConnectError> {
    let rest = collector
        .strip_prefix("https://")
        .ok_or_else(|| ConnectError::Url(collector.to_owned()))?;
    let endpoint = Endpoint::from_shared(format!("http://{rest}"))
        .map_err(|_| ConnectError::Url(collector.to_owned()))?;
    let connector = tower::service_fn(move |uri: Uri| {
        let tls = tls.clone();
        async move {
            let invalid =
                |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
            let host = uri
                .host()
                .ok_or_else(|| invalid("collector URL has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(COLLECTOR_TLS_NAME)
                .map_err(|_| invalid("collector TLS name"))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let channel = configure(endpoint)
        .connect_with_connector(connector)
        .await
        .map_err(|source| ConnectError::Transport {
            url: collector.to_owned(),
            source,
        })?;
    Ok(channel)
}
