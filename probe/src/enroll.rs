//! Enrollment: the first start's exchange of the one-time token for an identity (probe id,
//! client certificate, the pinned CA), and on every later start loading that identity and the
//! TLS configuration of sessions from the state directory.

use crate::backoff::Backoff;
use crate::collector_tls;
use crate::config::Settings;
use crate::failover::Refusal;
use crate::identity::{self, Identity};
use crate::link::{BACKOFF_BASE, BACKOFF_MAX, End, ProbeError, classify, connect, pause, rotation};
use sixmap_proto::v1;
use sixmap_shared::version::SOFTWARE_VERSION;
use std::sync::Arc;
use tonic::Code;
use tracing::{info, warn};

/// Who this probe is, and the TLS configuration its sessions present.
#[derive(Debug)]
pub struct Enrolled {
    pub identity: Identity,
    pub tls: Arc<rustls::ClientConfig>,
}

/// The enrollment token's two parts: the secret the collector checks and the fingerprint of
/// the collector's CA the probe pins.
fn token_fingerprint(token: &str) -> Option<&str> {
    sixmap_shared::enrollment::EnrollmentToken::parse(token).map(|t| t.ca_fingerprint)
}

/// Loads the identity and the TLS configuration of sessions, enrolling first if there is no
/// identity. Retries while the collector is away.
pub async fn load_or_enroll(settings: &Settings) -> Result<Enrolled, ProbeError> {
    identity::ensure_state_dir(&settings.state_dir)?;
    if let Some(message) = identity::revoked(&settings.state_dir) {
        return Err(ProbeError::Revoked(format!(
            "{message} (remove {} and identity.toml from {} to enroll again with a new token)",
            "revoked",
            settings.state_dir.display()
        )));
    }
    let session_tls = |identity: Identity| -> Result<_, ProbeError> {
        let credentials = identity::load_credentials(&settings.state_dir)?;
        let tls =
            collector_tls::session_config(credentials.ca, credentials.certificate, credentials.key)
                .map_err(|e| {
                    ProbeError::Config(format!("TLS setup with the stored identity: {e}"))
                })?;
        Ok(Enrolled { identity, tls })
    };
    if let Some(identity) = identity::load_identity(&settings.state_dir)? {
        // Collectors sharing a store share a CA, so the identity is valid at each of them;
        // the one that issued it must be among them, or the config names another site.
        if !settings.collectors.contains(&identity.collector) {
            return Err(ProbeError::Config(format!(
                "the identity in {} was issued by {}, but the config names {}: list that collector too if it shares their store, or move identity.toml aside to enroll with the new one",
                settings.state_dir.display(),
                identity.collector,
                settings.collectors.join(", ")
            )));
        }
        return session_tls(identity);
    }
    let Some(token) = settings.enrollment_token.clone() else {
        return Err(ProbeError::Config(format!(
            "no identity in {} and no enrollment_token in the config: ask the collector's operator for a token",
            settings.state_dir.display()
        )));
    };
    let Some(fingerprint) = token_fingerprint(&token).map(str::to_owned) else {
        return Err(ProbeError::Config(
            "enrollment_token is not of the form <64 hex digits>.<64 hex digits>: copy the whole token".into(),
        ));
    };
    // The key pair is made before the first attempt and kept, whatever happens next.
    let key = identity::load_or_create_key(&settings.state_dir)?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .map_err(|e| ProbeError::Config(format!("cannot make a certificate request: {e}")))?;
    let tls = collector_tls::enrollment_config(&fingerprint)
        .map_err(|e| ProbeError::Config(format!("TLS setup for enrollment: {e}")))?;
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_MAX);
    // Any collector of the list can enroll: they share the CA the token names.
    let mut collectors = rotation(settings)?;
    loop {
        let collector = collectors.current().to_owned();
        let attempt = async {
            let mut client = connect(&collector, tls.clone()).await?;
            client
                .enroll(v1::EnrollRequest {
                    token: token.clone(),
                    hostname: settings.hostname.clone(),
                    software_version: SOFTWARE_VERSION.to_owned(),
                    csr_der: csr.der().to_vec(),
                })
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| match s.code() {
                    // Over the owner's cap, or a request the collector cannot use: retrying
                    // the same request changes nothing.
                    Code::ResourceExhausted | Code::InvalidArgument => {
                        End::Fatal(ProbeError::Refused(format!("enrollment: {}", s.message())))
                    }
                    _ => classify("enrollment", s),
                })
        };
        match attempt.await {
            Ok(response) => {
                if sixmap_shared::digest::sha256_hex(&response.ca_certificate_der) != fingerprint {
                    return Err(ProbeError::Refused(
                        "the collector sent a CA certificate other than the one the token names"
                            .into(),
                    ));
                }
                let identity = Identity {
                    probe_id: response.probe_id.parse().map_err(|e| {
                        ProbeError::Refused(format!("collector sent a bad probe id: {e}"))
                    })?,
                    collector: collector.clone(),
                    ca_sha256: fingerprint.clone(),
                };
                identity::save_enrollment(
                    &settings.state_dir,
                    &identity,
                    &response.certificate_der,
                    &response.ca_certificate_der,
                )?;
                info!(probe = %identity.probe_id, %collector, "enrolled");
                return session_tls(identity);
            }
            Err(End::Fatal(ProbeError::Refused(reason))) => match collectors.refused() {
                // Collectors sharing a store answer a token alike; one that refuses may be
                // set up with another store, so the others are asked before giving up.
                Refusal::TryNext(p) => {
                    let delay = pause(&mut backoff, p);
                    warn!(%reason, %collector, next = %collectors.current(), retry_in = ?delay, "enrollment refused; asking the next collector");
                    tokio::time::sleep(delay).await;
                }
                Refusal::GiveUp => return Err(ProbeError::Refused(reason)),
            },
            Err(End::Fatal(e)) => return Err(e),
            Err(End::Retry(reason)) => {
                let delay = pause(&mut backoff, collectors.failed(false));
                warn!(%reason, %collector, next = %collectors.current(), retry_in = ?delay, "enrollment failed");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
