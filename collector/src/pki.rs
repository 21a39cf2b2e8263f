//! The collector's own certificate authority and the TLS it serves probes with.
//!
//! Threat model, in short (the README's security section has the long form):
//! - Probes trust exactly one CA for the collector: this one. They learn its SHA-256
//!   fingerprint from the enrollment token (given to the volunteer out of band), pin it for the
//!   enrollment handshake, and keep the CA certificate itself afterwards. A network attacker
//!   without the CA key can therefore neither read tokens nor pose as the collector.
//! - The CA signs a fresh server certificate at every start (kept in memory only) and one
//!   client certificate per enrolled probe (extended key usage clientAuth only, so a probe's
//!   certificate cannot serve as a collector's). The CA key never leaves `<data_dir>/pki/`
//!   (mode 0600, directory 0700).
//! - The collector's gRPC port speaks TLS 1.3 only. A client certificate is optional at the
//!   TLS layer (enrollment has none yet) but, when presented, must chain to this CA; the
//!   `Session` call then refuses any connection without one (see
//!   [`crate::control::probe_identity`]).

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sixmap_shared::digest::sha256_hex;
use sixmap_shared::{ProbeId, UnixMicros};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name in the collector's server certificate, and the one probes verify.
pub use sixmap_shared::session::COLLECTOR_TLS_NAME as SERVER_NAME;
/// Largest CSR accepted at enrollment (a P-256 or Ed25519 CSR is a few hundred bytes).
pub const MAX_CSR_BYTES: usize = 4096;
const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
/// Years a probe certificate is valid. Revocation, not expiry, is how the collector ends a
/// probe's access; renewal is not implemented yet, so this is long.
const PROBE_CERT_YEARS: i32 = 10;
const CA_YEARS: i32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS client verifier: {0}")]
    Verifier(String),
    #[error("certificate signing request: {0}")]
    BadCsr(String),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PkiError + 'a {
    move |source| PkiError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The calendar year of `now` (UTC), for certificate validity in whole years.
fn year_of(now: UnixMicros) -> i32 {
    // Mean Gregorian year; off by at most a day around New Year, which validity starting on
    // 1 January of the year before absorbs.
    1970 + i32::try_from(now.0 / 1_000_000 / 31_556_952).unwrap_or(0)
}

/// The collector's CA: its certificate, fingerprint and signing key.
pub struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    fingerprint: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Pki")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Writes a new file readable only by its owner; fails if it exists, so two processes
/// creating the CA at once cannot overwrite each other's key.
fn create_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create", path))?;
    file.write_all(contents).map_err(io("write", path))?;
    file.sync_all().map_err(io("sync", path))
}

impl Pki {
    /// Loads the CA from `<data_dir>/pki/`, creating it on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, PkiError> {
        Self::load_or_create_in(&data_dir.join("pki"))
    }

    /// Loads the CA from `dir` (the `pki_dir` setting), creating it on first use. Collectors
    /// sharing one store share this directory, so they issue and trust the same certificates.
    pub fn load_or_create_in(dir: &Path) -> Result<Self, PkiError> {
        let dir = dir.to_path_buf();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io("create", &dir))?;
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        // The certificate is written last, so it marks a complete CA; a key without one is
        // what a crash during creation leaves, and has signed nothing.
        if !cert_path.exists() {
            Self::create(&cert_path, &key_path)?;
        }
        let key_pem = std::fs::read_to_string(&key_path).map_err(io("read", &key_path))?;
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io("read", &cert_path))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Corrupt {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        let corrupt_cert = |reason: String| PkiError::Corrupt {
            path: cert_path.clone(),
            reason,
        };
        let ca_der =
            pem_certificate(&cert_pem).ok_or_else(|| corrupt_cert("no certificate".into()))?;
        let issuer =
            Issuer::from_ca_cert_der(&ca_der, key).map_err(|e| corrupt_cert(e.to_string()))?;
        Ok(Self {
            fingerprint: sha256_hex(&ca_der),
            ca_der,
            ca_pem: cert_pem,
            issuer,
        })
    }

    fn create(cert_path: &Path, key_path: &Path) -> Result<(), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        let mut tag = [0u8; 4];
        // A random suffix tells CAs of different collectors apart in people's tools.
        getrandom::fill(&mut tag).map_err(|e| PkiError::Verifier(e.to_string()))?;
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        name.push(DnType::CommonName, format!("sixmap collector CA {tag}"));
        params.distinguished_name = name;
        // pathlen 0: the CA signs leaf certificates only.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let year = year_of(UnixMicros::now());
        params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(year + CA_YEARS, 1, 1);
        let cert = params.self_signed(&key)?;
        // Certificate first: a key without a certificate would be recreated, not trusted.
        let tmp = cert_path.with_extension("pem.tmp");
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(key_path);
        create_private(&tmp, cert.pem().as_bytes())?;
        create_private(key_path, key.serialize_pem().as_bytes())?;
        std::fs::rename(&tmp, cert_path).map_err(io("rename into place", cert_path))?;
        tracing::info!(fingerprint = %sha256_hex(cert.der()), "created the collector's CA");
        Ok(())
    }

    /// SHA-256 of the CA certificate, lowercase hex: what enrollment tokens carry.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Checks a probe's CSR (parse, and its signature: proof that the probe holds the key) and
    /// signs a client certificate for its public key. Only the key is taken from the request:
    /// subject (CN = probe id), usages and validity are the collector's.
    pub fn issue_probe_certificate(
        &self,
        probe: &ProbeId,
        csr_der: &[u8],
        now: UnixMicros,
    ) -> Result<CertificateDer<'static>, PkiError> {
        if csr_der.is_empty() || csr_der.len() > MAX_CSR_BYTES {
            return Err(PkiError::BadCsr(format!(
                "must be 1..={MAX_CSR_BYTES} bytes of DER, got {}",
                csr_der.len()
            )));
        }
        let csr = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, probe.as_str());
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let year = year_of(now);
        params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(year + PROBE_CERT_YEARS, 1, 1);
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.der().clone())
    }

    /// A server certificate for this run (new key each start, never written to disk) and the
    /// rustls configuration of the gRPC listener. The certificate names [`SERVER_NAME`], which
    /// probes check, and `public_names` (`[tls]`), which other gRPC clients check against
    /// the name they dialled.
    pub fn server_config(
        &self,
        public_names: &[PublicName],
    ) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAME);
        params.subject_alt_names = vec![SanType::DnsName(SERVER_NAME.try_into()?)];
        for name in public_names {
            params.subject_alt_names.push(match name {
                PublicName::Dns(dns) => SanType::DnsName(dns.as_str().try_into()?),
                PublicName::Ip(ip) => SanType::IpAddress(*ip),
            });
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let year = year_of(UnixMicros::now());
        params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
        let cert = params.signed_by(&key, &self.issuer)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        // Enrollment comes without a client certificate; `Session` refuses such
        // connections itself.
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Verifier(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                // The CA goes along so a probe that pinned it by fingerprint finds it.
                vec![cert.der().clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// One subject alternative name of the server certificate besides [`SERVER_NAME`] (from
/// `[tls] public_names`, checked by `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicName {
    /// A host name, lowercase, without a trailing dot.
    Dns(String),
    Ip(std::net::IpAddr),
}

impl std::fmt::Display for PublicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// TLS handshakes under way at once, at most; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// [`tls_incoming_gated`] with the default connection limits and no first-call deadline
/// in effect (a server without [`crate::limits::grpc::RequestSeen`] could not disarm it),
/// for test servers.
pub fn tls_incoming(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    tcp_keepalive: std::time::Duration,
    handshake_timeout: std::time::Duration,
) -> tokio_stream::wrappers::ReceiverStream<
    std::io::Result<tokio_rustls::server::TlsStream<crate::limits::grpc::Guarded>>,
> {
    let limits = crate::limits::Limits {
        grpc_anonymous_request_timeout: std::time::Duration::from_secs(24 * 3600),
        ..crate::limits::Limits::default()
    };
    let gate = crate::limits::grpc::GrpcGate::new(&limits);
    tls_incoming_gated(listener, config, tcp_keepalive, handshake_timeout, gate)
}

/// Accepted connections after their TLS handshake, for tonic's `serve_with_incoming`.
/// Handshakes run concurrently (a slow or silent client holds up nobody) and are bounded in
/// number and time; failed ones are logged and dropped. The connection limits of the port
/// (per source, in total, the reserve for certified probes, the first-call deadline of
/// anonymous connections) are `gate`'s (`limits::grpc`).
pub fn tls_incoming_gated(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    tcp_keepalive: std::time::Duration,
    handshake_timeout: std::time::Duration,
    gate: crate::limits::grpc::GrpcGate,
) -> tokio_stream::wrappers::ReceiverStream<
    std::io::Result<tokio_rustls::server::TlsStream<crate::limits::grpc::Guarded>>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        // Ends when the server dropped the stream (it stopped serving).
        while !tx.is_closed() {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a gRPC connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let stream = match gate.admit(stream, peer) {
                Ok(stream) => stream,
                Err(refusal) => {
                    // Closed at once: the source holds its share already.
                    tracing::debug!(%peer, ?refusal, "gRPC connection refused");
                    continue;
                }
            };
            // TCP_NODELAY (small acks must not wait for Nagle) and keepalive.
            crate::limits::tune_accepted(stream.tcp(), tcp_keepalive);
            let (acceptor, tx, gate) = (acceptor.clone(), tx.clone(), gate.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(mut tls)) => {
                        drop(permit);
                        let certified = tls.get_ref().1.peer_certificates().is_some();
                        if let Err(refusal) = gate.established(tls.get_mut().0, certified) {
                            tracing::info!(%peer, certified, ?refusal, "gRPC connection refused: limit reached");
                            return;
                        }
                        let _ = tx.send(Ok(tls)).await;
                    }
                    // A probe with a certificate from another CA ends here.
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The first certificate of a PEM text.
fn pem_certificate(text: &str) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(text.as_bytes()).next()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ca_is_created_once_private_and_signs_probe_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let again = Pki::load_or_create(dir.path()).unwrap();
        assert_eq!(pki.fingerprint(), again.fingerprint());
        assert_eq!(pki.fingerprint().len(), 64);
        let key = dir.path().join("pki").join(CA_KEY_FILE);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = std::fs::metadata(dir.path().join("pki"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);

        let probe_key = KeyPair::generate().unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&probe_key)
            .unwrap();
        let probe = ProbeId::random().unwrap();
        let cert = pki
            .issue_probe_certificate(&probe, csr.der(), UnixMicros::now())
            .unwrap();
        assert!(!cert.is_empty());
        assert!(pki.server_config(&[]).is_ok());
        let mut tampered = csr.der().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            pki.issue_probe_certificate(&probe, &tampered, UnixMicros::now()),
            Err(PkiError::BadCsr(_))
        ));
        assert!(
            pki.issue_probe_certificate(&probe, &[], UnixMicros::now())
                .is_err()
        );
    }
}
