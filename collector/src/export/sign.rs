//! The open-data signing key: Ed25519, kept with the collector's CA (`<pki_dir>/open-data.key`,
//! 0600 like `ca.key`), so whoever can check a daily dump or a published report against the
//! public key knows this collector made it and nobody changed it since.
//!
//! A key of its own rather than the CA's: the CA's key signs certificates probes trust, and a
//! signature over arbitrary bytes (a dump) must never be something a certificate could be
//! built from. Ed25519 because standard tools verify it without parameters to choose (openssl
//! 3 `pkeyutl -verify -rawin`, Python `cryptography`); `ring` (already the crypto provider of
//! rustls and rcgen here) signs, rcgen writes the PEM files.
//!
//! Published: the public key as PEM at `GET /open-data/key.pem` ([`router`]) and by
//! `sixmap-collector open-data-key`; signatures are the raw 64 bytes (`.sig` files beside
//! dumps) or their base64 (the `Sixmap-Signature` header of `/reports/{id}`). docs/export.md
//! has the verification commands.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rcgen::{KeyPair, PKCS_ED25519, PublicKeyData};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The private key's file in the PKI directory.
pub const KEY_FILE: &str = "open-data.key";
/// The public key beside it (PEM, SubjectPublicKeyInfo), for people who read the directory.
pub const PUBLIC_FILE: &str = "open-data.pem";
/// Where the collector serves the public key.
pub const KEY_URL: &str = "/open-data/key.pem";
/// The response header carrying a published report's signature (base64 of the raw 64 bytes).
pub const SIGNATURE_HEADER: &str = "sixmap-signature";
/// The response header naming the signing key (its [`OpenDataKey::key_id`]).
pub const KEY_ID_HEADER: &str = "sixmap-signing-key";

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an Ed25519 key ({reason})")]
    Corrupt { path: PathBuf, reason: String },
    #[error("signing key: {0}")]
    Key(#[from] rcgen::Error),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SignError + 'a {
    move |source| SignError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The collector's open-data signing key.
pub struct OpenDataKey {
    pair: ring::signature::Ed25519KeyPair,
    public_pem: String,
    key_id: String,
}

impl std::fmt::Debug for OpenDataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("OpenDataKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl OpenDataKey {
    /// Loads the key from `pki_dir`, creating it (0600, directory 0700) on first use.
    pub fn load_or_create_in(pki_dir: &Path) -> Result<Self, SignError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(pki_dir)
            .map_err(io("create", pki_dir))?;
        let path = pki_dir.join(KEY_FILE);
        if !path.exists() {
            let pair = KeyPair::generate_for(&PKCS_ED25519)?;
            // Written whole under a name of this process's own, then linked into place:
            // `hard_link` fails when the key exists, so two processes starting at once cannot
            // overwrite each other's key, and a crash mid-write leaves no empty key behind (a
            // key that later changed would break every published key id).
            let temporary = pki_dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
            let _ = std::fs::remove_file(&temporary);
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)
                .and_then(|mut file| {
                    file.write_all(pair.serialize_pem().as_bytes())?;
                    file.sync_all()
                });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&temporary);
                return Err(io("write", &temporary)(e));
            }
            let linked = std::fs::hard_link(&temporary, &path);
            let _ = std::fs::remove_file(&temporary);
            match linked {
                Ok(()) => {
                    std::fs::File::open(pki_dir)
                        .and_then(|dir| dir.sync_all())
                        .map_err(io("sync", pki_dir))?;
                }
                // Another process made it first: theirs is the key.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("create", &path)(e)),
            }
        }
        let key = Self::load(&path)?;
        // The public half beside it, rewritten whenever it differs (it is derived, not secret).
        let public_path = pki_dir.join(PUBLIC_FILE);
        if std::fs::read_to_string(&public_path).ok().as_deref() != Some(key.public_pem()) {
            std::fs::write(&public_path, key.public_pem()).map_err(io("write", &public_path))?;
        }
        Ok(key)
    }

    /// Loads an existing key file (PKCS#8 PEM).
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let pem = std::fs::read_to_string(path).map_err(io("read", path))?;
        let corrupt = |reason: String| SignError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let pair = KeyPair::from_pem(&pem).map_err(|e| corrupt(e.to_string()))?;
        if pair.algorithm() != &PKCS_ED25519 {
            return Err(corrupt("another algorithm".into()));
        }
        let signing =
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pair.serialize_der())
                .map_err(|e| corrupt(e.to_string()))?;
        Ok(Self {
            key_id: key_id_of(&pair.subject_public_key_info()),
            public_pem: pair.public_key_pem(),
            pair: signing,
        })
    }

    /// The detached Ed25519 signature of `bytes` (64 bytes).
    pub fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.pair.sign(bytes).as_ref().to_vec()
    }

    /// The public key, PEM (SubjectPublicKeyInfo), as openssl reads it with `-pubin`.
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// The raw 32-byte public key.
    pub fn public_raw(&self) -> &[u8] {
        ring::signature::KeyPair::public_key(&self.pair).as_ref()
    }

    /// SHA-256 of the public key's DER (SubjectPublicKeyInfo), hex: what
    /// `openssl pkey -pubin -in key.pem -outform DER | sha256sum` prints.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `response` with the signature of its body in [`SIGNATURE_HEADER`]: the body is read
    /// whole (reports are bounded: HTML, JSON, CSV or one PDF) and sent on unchanged.
    pub async fn sign_response(&self, response: Response) -> Response {
        let (mut parts, body) = response.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_SIGNED_BYTES).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "a report to sign could not be read");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(serde_json::json!({
                        "error": "the report could not be signed", "status": 500
                    })),
                )
                    .into_response();
            }
        };
        let signature = super::dns_wire::base64(&self.sign(&bytes));
        if let (Ok(signature), Ok(id)) = (
            HeaderValue::from_str(&signature),
            HeaderValue::from_str(&self.key_id),
        ) {
            parts.headers.insert(SIGNATURE_HEADER, signature);
            parts.headers.insert(KEY_ID_HEADER, id);
        }
        Response::from_parts(parts, axum::body::Body::from(bytes))
    }
}

/// Largest body [`OpenDataKey::sign_response`] reads: far above any report (a PDF of a large
/// campaign is a few MB), a bound on memory all the same.
const MAX_SIGNED_BYTES: usize = 256 << 20;

fn key_id_of(public_spki_der: &[u8]) -> String {
    sixmap_shared::digest::sha256_hex(public_spki_der)
}

/// `GET /open-data/key.pem`: the public key (public in the access table, `http_auth`).
pub fn router(key: Arc<OpenDataKey>) -> Router {
    // The path written out: the OpenAPI test reads routes from the source.
    Router::new().route(
        "/open-data/key.pem",
        get(move || {
            let key = key.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/x-pem-file")],
                    key.public_pem().to_owned(),
                )
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_private_stable_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let key = OpenDataKey::load_or_create_in(&pki).unwrap();
        let mode = std::fs::metadata(pki.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = OpenDataKey::load_or_create_in(&pki).unwrap();
        assert_eq!(key.public_pem(), again.public_pem(), "loaded, not replaced");
        assert_eq!(
            std::fs::read_to_string(pki.join(PUBLIC_FILE)).unwrap(),
            key.public_pem()
        );
        assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        let signature = key.sign(b"day");
        assert_eq!(signature.len(), 64);
        let public =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.public_raw());
        assert!(public.verify(b"day", &signature).is_ok());
        assert!(public.verify(b"dax", &signature).is_err());
        assert!(!format!("{key:?}").contains("BEGIN"), "Debug shows no key");
    }

    fn script(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(name)
    }

    /// One HTTP/1.1 GET over `addr`: the header block and the body.
    fn get(addr: std::net::SocketAddr, path: &str) -> (String, Vec<u8>) {
        use std::io::Read;
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        write!(
            client,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        client.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split + 2].to_vec()).unwrap();
        assert!(!head.contains("chunked"), "{head}");
        (head, raw[split + 4..].to_vec())
    }

    /// A published report as served at `/reports/{id}` (HTML, JSON, CSV) verifies with the
    /// documented openssl procedure (docs/verify-report.sh) against the key served at
    /// `/open-data/key.pem`; one byte changed in the body, or another key, fails it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn served_reports_verify_with_openssl() {
        use crate::campaign::{Campaigns, Writer};
        use crate::store::{SledStore, Store};
        use sixmap_shared::UnixMicros;
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(OpenDataKey::load_or_create_in(&dir.path().join("pki")).unwrap());
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
        store
            .create_probe(&crate::store::ProbeRecord {
                last_seen: Some(UnixMicros::now()),
                ..crate::store::ProbeRecord::new(
                    "0000000000000001".parse().unwrap(),
                    "p1",
                    UnixMicros::now(),
                )
            })
            .unwrap();
        let campaigns = Arc::new(Campaigns::new(store, false, None).with_signer(key.clone()));
        let spec = "name = \"t\"\ntargets = [\"example.org\"]\n\
            [[measurements]]\nkind = \"ping\"\ntimeout_ms = 5000\n";
        let record = campaigns
            .create("reg", "toml", spec, UnixMicros::now())
            .unwrap();
        let owner = Writer {
            name: "reg",
            admin: false,
        };
        campaigns
            .publish(record.id, owner, UnixMicros::now())
            .unwrap();
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::limits::serve_http(
            listener,
            crate::campaign::http::public_router(campaigns).merge(router(key.clone())),
            crate::limits::Limits::default(),
        ));
        let id = record.id;
        let files = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let (_, pem) = get(addr, KEY_URL);
            let pem_path = files.join("served.pem");
            std::fs::write(&pem_path, &pem).unwrap();
            let other = files.join("other.pem");
            std::fs::write(
                &other,
                OpenDataKey::load_or_create_in(&files.join("other"))
                    .unwrap()
                    .public_pem(),
            )
            .unwrap();
            let verify = |key: &Path, head: &Path, body: &Path| {
                std::process::Command::new("sh")
                    .arg(script("verify-report.sh"))
                    .args([key, head, body])
                    .output()
                    .expect("sh and openssl 3 run the documented verification")
            };
            for file in [format!("{id}"), format!("{id}.json"), format!("{id}.csv")] {
                let (head, body) = get(addr, &format!("/reports/{file}"));
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let (head_path, body_path) = (files.join("headers"), files.join("body"));
                std::fs::write(&head_path, &head).unwrap();
                std::fs::write(&body_path, &body).unwrap();
                let ok = verify(&pem_path, &head_path, &body_path);
                assert!(
                    ok.status.success(),
                    "{file}: {}{}",
                    String::from_utf8_lossy(&ok.stdout),
                    String::from_utf8_lossy(&ok.stderr)
                );
                assert!(String::from_utf8_lossy(&ok.stdout).contains("Verified Successfully"));
                assert!(!verify(&other, &head_path, &body_path).status.success());
                let mut changed = body.clone();
                let last = changed.len() - 2;
                changed[last] ^= 1;
                std::fs::write(&body_path, &changed).unwrap();
                assert!(
                    !verify(&pem_path, &head_path, &body_path).status.success(),
                    "{file}: a changed body must fail"
                );
            }
        })
        .await
        .unwrap();
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let err = OpenDataKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("not an Ed25519 key"), "{err}");
    }
}
