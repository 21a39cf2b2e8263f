//! Simulated probes enroll as the real one does: a one-time token from the admin API, a key
//! pair made here, a CSR, the CA pinned by the token's fingerprint; the answer is a client
//! certificate. Thousands enroll concurrently, and identities are kept in a file so a later
//! run against a copy of the same collector data needs no enrollment.
//!
//! The identities file: `SXLG1\n`, then per probe four length-prefixed fields (u32 big
//! endian): probe id, certificate DER, PKCS#8 key DER, CA certificate DER.

use super::collector::{CollectorError, http_request};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sixmap_probe::collector_tls;
use sixmap_proto::v1;
use sixmap_shared::ProbeId;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const MAGIC: &[u8] = b"SXLG1\n";

/// One enrolled probe's identity.
#[derive(Debug, Clone)]
pub struct Identity {
    pub probe_id: ProbeId,
    pub certificate: Vec<u8>,
    pub key_pkcs8: Vec<u8>,
    pub ca: Vec<u8>,
}

impl Identity {
    /// The TLS config of its sessions: the collector's CA as the only root, its certificate.
    pub fn tls(&self) -> Result<Arc<rustls::ClientConfig>, EnrollError> {
        collector_tls::session_config(
            CertificateDer::from(self.ca.clone()),
            CertificateDer::from(self.certificate.clone()),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone())),
        )
        .map_err(|e| EnrollError::Tls(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("identities file {path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Collector(#[from] CollectorError),
    #[error("creating an enrollment token: HTTP {status}: {body}")]
    Token { status: u16, body: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("key pair or CSR: {0}")]
    Key(String),
    #[error("cannot reach the collector for enrollment: {0}")]
    Connect(String),
    #[error("enrollment refused: {0}")]
    Refused(String),
    #[error("the collector answered an invalid probe id {0:?}")]
    ProbeId(String),
}

fn file_error(path: &Path, reason: impl Into<String>) -> EnrollError {
    EnrollError::File {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads the identities file; a missing file is no identities.
pub fn load(path: &Path) -> Result<Vec<Identity>, EnrollError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(file_error(path, e.to_string())),
    };
    let mut rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| file_error(path, "not a loadgen identities file"))?;
    let field = |rest: &mut &[u8]| -> Result<Vec<u8>, EnrollError> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| file_error(path, "truncated length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(file_error(path, "truncated field"));
        }
        let (value, tail) = tail.split_at(len);
        *rest = tail;
        Ok(value.to_vec())
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let id = field(&mut rest)?;
        let id = String::from_utf8(id).map_err(|_| file_error(path, "probe id is not UTF-8"))?;
        let probe_id = id
            .parse()
            .map_err(|_| file_error(path, format!("invalid probe id {id:?}")))?;
        out.push(Identity {
            probe_id,
            certificate: field(&mut rest)?,
            key_pkcs8: field(&mut rest)?,
            ca: field(&mut rest)?,
        });
    }
    Ok(out)
}

/// Appends identities to the file (created with its header if new) and syncs it.
pub fn append(path: &Path, identities: &[Identity]) -> Result<(), EnrollError> {
    let fail = |e: std::io::Error| file_error(path, e.to_string());
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    let mut bytes = Vec::new();
    if new {
        bytes.extend_from_slice(MAGIC);
    }
    for identity in identities {
        for field in [
            identity.probe_id.as_str().as_bytes(),
            &identity.certificate,
            &identity.key_pkcs8,
            &identity.ca,
        ] {
            let len = u32::try_from(field.len()).map_err(|_| file_error(path, "field too big"))?;
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(field);
        }
    }
    file.write_all(&bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Where to enroll: the collector's gRPC and HTTP addresses and an admin API token.
#[derive(Debug, Clone)]
pub struct Target {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub admin: String,
}

async fn token(target: &Target) -> Result<String, EnrollError> {
    let body = r#"{"owner": "loadgen", "expires_in": "1d"}"#;
    let (status, answer) = http_request(
        target.http,
        "POST",
        "/api/v1/enrollment-tokens",
        &target.admin,
        body,
    )
    .await?;
    if status != 201 {
        return Err(EnrollError::Token {
            status,
            body: answer,
        });
    }
    let json: serde_json::Value =
        serde_json::from_str(&answer).map_err(|e| EnrollError::Token {
            status,
            body: format!("{e}: {answer}"),
        })?;
    json["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or(EnrollError::Token {
            status,
            body: answer,
        })
}

/// Enrolls one probe over `client` (a connection that pins the CA).
async fn enroll_one(
    target: &Target,
    mut client: v1::probe_control_client::ProbeControlClient<tonic::transport::Channel>,
    index: usize,
) -> Result<Identity, EnrollError> {
    let token = token(target).await?;
    let key = rcgen::KeyPair::generate().map_err(|e| EnrollError::Key(e.to_string()))?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .map_err(|e| EnrollError::Key(e.to_string()))?;
    let response = client
        .enroll(v1::EnrollRequest {
            token,
            hostname: format!("loadgen-{index}"),
            software_version: sixmap_shared::version::SOFTWARE_VERSION.into(),
            csr_der: csr.der().to_vec(),
        })
        .await
        .map_err(|s| EnrollError::Refused(format!("{:?}: {}", s.code(), s.message())))?
        .into_inner();
    let probe_id = response
        .probe_id
        .parse()
        .map_err(|_| EnrollError::ProbeId(response.probe_id.clone()))?;
    Ok(Identity {
        probe_id,
        certificate: response.certificate_der,
        key_pkcs8: key.serialize_der(),
        ca: response.ca_certificate_der,
    })
}

/// The CA fingerprint an enrollment token carries (`<secret>.<fingerprint>`).
fn fingerprint(token: &str) -> Option<&str> {
    token.rsplit_once('.').map(|(_, f)| f)
}

/// Enrolls `count` new probes, `concurrency` at a time, over a few shared connections (a
/// connection carries a handful of concurrent calls, `limits.grpc_streams_per_connection`).
pub async fn enroll(
    target: &Target,
    count: usize,
    first_index: usize,
    concurrency: usize,
) -> Result<Vec<Identity>, EnrollError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    // One token first, to learn the CA fingerprint to pin (it stays unused and expires).
    let first = token(target).await?;
    let pin = fingerprint(&first)
        .ok_or_else(|| EnrollError::Token {
            status: 201,
            body: format!("token {first:?} carries no CA fingerprint"),
        })?
        .to_owned();
    let url = format!("https://{}", target.grpc);
    let connections = concurrency.div_ceil(4).clamp(1, 64);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let tls =
            collector_tls::enrollment_config(&pin).map_err(|e| EnrollError::Tls(e.to_string()))?;
        let client =
            collector_tls::connect(&url, tls, |e| e.connect_timeout(Duration::from_secs(30)))
                .await
                .map_err(|e| EnrollError::Connect(e.to_string()))?;
        clients.push(client);
    }
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| EnrollError::Connect(e.to_string()))?;
        let client = clients[i % clients.len()].clone();
        let target = target.clone();
        tasks.spawn(async move {
            let _permit = permit;
            enroll_one(&target, client, first_index + i).await
        });
    }
    let mut out = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        let identity =
            joined.map_err(|e| EnrollError::Connect(format!("enrollment task: {e}")))??;
        out.push(identity);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_survive_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identities.bin");
        assert!(load(&path).unwrap().is_empty());
        let identity = |n: u8| Identity {
            probe_id: ProbeId::random().unwrap(),
            certificate: vec![n; 300],
            key_pkcs8: vec![n + 1; 138],
            ca: vec![n + 2; 400],
        };
        let (a, b, c) = (identity(1), identity(2), identity(3));
        append(&path, &[a.clone(), b.clone()]).unwrap();
        append(&path, std::slice::from_ref(&c)).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.len(), 3);
        for (got, want) in loaded.iter().zip([&a, &b, &c]) {
            assert_eq!(got.probe_id, want.probe_id);
            assert_eq!(got.certificate, want.certificate);
            assert_eq!(got.key_pkcs8, want.key_pkcs8);
            assert_eq!(got.ca, want.ca);
        }
        // A truncated file is an error naming it, not a panic.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("identities.bin"), "{err}");
    }

    #[test]
    fn the_pin_comes_from_the_token() {
        assert_eq!(fingerprint("s3cret.abcdef"), Some("abcdef"));
        assert_eq!(fingerprint("nodot"), None);
    }
}
