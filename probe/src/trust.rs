//! The probe's trust anchors for TLS, HTTPS and QUIC: the system's certificate store plus an
//! optional PEM file of extra authorities (a lab or an enterprise CA).
//!
//! The system store (`rustls-native-certs`: `/etc/ssl/certs` on Debian and Raspberry Pi OS,
//! or `SSL_CERT_FILE` / `SSL_CERT_DIR`) rather than a bundle compiled in (`webpki-roots`):
//! a probe measures what a client on that host would see, the distribution keeps the store
//! current through its own updates while a compiled-in bundle ages with the probe binary
//! (probes on Raspberry Pis are updated rarely), and an operator can add a CA the usual way.
//! The `.deb` depends on `ca-certificates`, so the store is there.
//!
//! Loading parses every certificate of the store (a few milliseconds, more on a Pi), so the
//! result is kept for a few minutes and shared by the measurements of that period.

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a loaded store is reused before the files are read again.
const CACHE_FOR: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the extra CA file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the extra CA file {} is not valid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("the extra CA file {} holds no certificate", path.display())]
    Empty { path: PathBuf },
    #[error("certificate {index} of the extra CA file {} is not a usable trust anchor: {reason}", path.display())]
    Anchor {
        path: PathBuf,
        index: usize,
        reason: String,
    },
    #[error(
        "no trust anchors: the system certificate store is empty or unreadable ({system}) and no extra CA file was given; install ca-certificates or pass --ca-file"
    )]
    NoAnchors { system: String },
}

/// Where the anchors came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub system: usize,
    pub extra: usize,
}

#[derive(Debug)]
struct Cached {
    loaded: Instant,
    extra: Option<PathBuf>,
    store: Arc<RootCertStore>,
}

static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

/// The system store plus `extra` (PEM), from the cache when it is fresh.
pub fn anchors(extra: Option<&Path>) -> Result<Arc<RootCertStore>, TrustError> {
    if let Ok(cache) = CACHE.lock()
        && let Some(cached) = cache.as_ref()
        && cached.extra.as_deref() == extra
        && cached.loaded.elapsed() < CACHE_FOR
    {
        return Ok(Arc::clone(&cached.store));
    }
    let (store, _) = load(extra)?;
    let store = Arc::new(store);
    if let Ok(mut cache) = CACHE.lock() {
        *cache = Some(Cached {
            loaded: Instant::now(),
            extra: extra.map(Path::to_path_buf),
            store: Arc::clone(&store),
        });
    }
    Ok(store)
}

/// Reads the system store and `extra` now, without the cache.
pub fn load(extra: Option<&Path>) -> Result<(RootCertStore, Counts), TrustError> {
    let mut store = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    // Certificates the store holds that webpki cannot use as anchors are skipped, as every
    // TLS client does; one bad file must not make every other anchor unusable.
    let (system, _ignored) = store.add_parsable_certificates(native.certs);
    let extra_count = match extra {
        Some(path) => add_pem_file(&mut store, path)?,
        None => 0,
    };
    if store.is_empty() {
        let system = match native.errors.first() {
            Some(e) => e.to_string(),
            None => "no certificate found".to_owned(),
        };
        return Err(TrustError::NoAnchors { system });
    }
    Ok((
        store,
        Counts {
            system,
            extra: extra_count,
        },
    ))
}

/// Adds every certificate of a PEM file; any unreadable or unusable one is an error, since
/// the operator named this file on purpose.
fn add_pem_file(store: &mut RootCertStore, path: &Path) -> Result<usize, TrustError> {
    let bytes = std::fs::read(path).map_err(|source| TrustError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut added = 0;
    for (index, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|e| TrustError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        store.add(cert).map_err(|e| TrustError::Anchor {
            path: path.to_path_buf(),
            index: index + 1,
            reason: e.to_string(),
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(TrustError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = include_str!("tls/testdata/ca.pem");

    #[test]
    fn extra_file_adds_its_anchors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, CA).unwrap();
        let (store, counts) = load(Some(&path)).unwrap();
        assert_eq!(counts.extra, 1);
        assert_eq!(store.len(), counts.system + 1);
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load(Some(&missing)).unwrap_err().to_string();
        assert!(
            err.contains("missing.pem") && err.contains("cannot read"),
            "{err}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "just text\n").unwrap();
        let err = load(Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load(Some(&garbage)).unwrap_err().to_string();
        assert!(
            err.contains("garbage.pem") && err.contains("certificate 1"),
            "{err}"
        );
    }
}
