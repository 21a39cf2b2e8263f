//! Enrollment, collector side (issue #22 item 5): a volunteer's probe presents a one-time
//! token and a CSR, and leaves with a probe id and a certificate. This module owns the whole
//! flow, run as one blocking step on the store's pool ([`Enroller::enroll`]):
//!
//! 1. the token is checked ([`token`]); a token already used *for the same key* is a retry
//!    after a lost reply and gets the same answer again;
//! 2. the per-owner caps reserve a place ([`gate`]);
//! 3. the certificate is issued, and the token's use, the certificate binding, the owner
//!    index, the audit entry and the probe record are written and flushed.
//!
//! The gRPC front end (`control.rs`) only decodes the request and maps [`EnrollError`] to a
//! status; nothing here knows the wire format.

pub mod gate;
pub mod token;

use crate::auth;
use crate::enrich;
use crate::metrics::metrics;
use crate::pki::Pki;
use crate::store::auth::{EnrollmentOutcome, NewEnrollment};
use crate::store::{AuditEntry, EnrollmentTokenRecord, ProbeRecord, Store, StoreError};
use gate::{EnrollmentCaps, EnrollmentGate};
use sixmap_shared::digest::sha256_hex;
use sixmap_shared::enrollment::EnrollRequest;
use sixmap_shared::prefixes::PrefixData;
use sixmap_shared::{ProbeId, UnixMicros};
use std::net::IpAddr;
use std::sync::Arc;
use token::TokenRefusal;
use tracing::info;

/// A probe enrolled (or an enrollment repeated): its id and its certificate (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub probe: ProbeId,
    pub certificate_der: Vec<u8>,
}

/// Why an enrollment got no certificate; each message goes to the volunteer as is.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// A field of the request is wrong (`field`: what is wrong with it).
    #[error("invalid field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error(transparent)]
    Token(#[from] TokenRefusal),
    /// A per-owner cap refuses one more probe.
    #[error("enrollment refused: {0}")]
    Cap(String),
    /// A repeated enrollment of a probe revoked since.
    #[error("{0}")]
    Revoked(String),
    /// Something on this side is wrong (no peer address, a stored certificate that is not
    /// hex, no randomness).
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The enrollment service: what the flow reads (store, CA, prefix data, caps) and the gate
/// that makes the caps atomic within this collector.
#[derive(Debug)]
pub struct Enroller {
    store: Arc<dyn Store>,
    pki: Arc<Pki>,
    prefixes: Arc<PrefixData>,
    caps: EnrollmentCaps,
    gate: Arc<EnrollmentGate>,
}

impl Enroller {
    pub fn new(
        store: Arc<dyn Store>,
        pki: Arc<Pki>,
        prefixes: Arc<PrefixData>,
        caps: EnrollmentCaps,
    ) -> Self {
        Self {
            store,
            pki,
            prefixes,
            caps,
            gate: Arc::default(),
        }
    }

    /// Enrolls the probe that sent `request` from `peer`; blocking (store reads and writes,
    /// certificate issue). Every refusal is audited and counted.
    pub fn enroll(
        &self,
        request: &EnrollRequest,
        peer: Option<IpAddr>,
        now: UnixMicros,
    ) -> Result<Enrolled, EnrollError> {
        let Some(key_sha256) = token::csr_key_sha256(&request.csr_der) else {
            metrics().enrollment("invalid");
            return Err(EnrollError::Invalid {
                field: "csr_der",
                reason: "not a PKCS #10 certificate signing request".into(),
            });
        };
        let store = &*self.store;
        let (hash, token) = match token::check_enrollment_token(store, &request.token, now)? {
            Ok(found) => found,
            Err(refusal) => {
                // A retry after a lost reply: the same token and CSR get the same answer.
                if matches!(refusal, TokenRefusal::Used(_))
                    && let Some(answer) = self.repeat(request, &key_sha256)?
                {
                    return Ok(answer);
                }
                let target = match &refusal {
                    TokenRefusal::Used(id)
                    | TokenRefusal::Expired(id)
                    | TokenRefusal::Revoked(id) => id.clone(),
                    TokenRefusal::Malformed | TokenRefusal::Unknown => "-".into(),
                };
                self.audit("anonymous", &target, &format!("refused: {refusal}"));
                metrics().enrollment("refused_token");
                return Err(refusal.into());
            }
        };
        let identity = format!("enrollment-token:{} (owner {})", token.id, token.owner);
        let Some(from) = peer else {
            return Err(EnrollError::Internal(
                "enrollment without a peer address".into(),
            ));
        };
        let prefix = enrich::routed_prefix(&self.prefixes, from);
        let id = ProbeId::random().map_err(|e| EnrollError::Internal(e.to_string()))?;
        let certificate = self
            .pki
            .issue_probe_certificate(&id, &request.csr_der, now)
            .map_err(|e| {
                metrics().enrollment("invalid");
                EnrollError::Invalid {
                    field: "csr_der",
                    reason: e.to_string(),
                }
            })?;
        let reservation =
            match self
                .gate
                .reserve(store, &token.owner, from, prefix, self.caps, &id)?
            {
                Ok(reservation) => reservation,
                Err(refusal) => {
                    self.audit(&identity, &token.id, &format!("refused: {refusal}"));
                    metrics().enrollment("refused_cap");
                    return Err(EnrollError::Cap(refusal));
                }
            };
        let fingerprint = sha256_hex(&certificate);
        let record = probe_record(
            id.clone(),
            request,
            now,
            &token.owner,
            (Some(from), prefix),
            fingerprint.clone(),
        );
        let enrollment = NewEnrollment {
            token_hash: hash,
            used: EnrollmentTokenRecord {
                used_at: Some(now),
                used_by: Some(id.clone()),
                enrollment: Some(EnrollmentOutcome {
                    public_key_sha256: key_sha256.clone(),
                    certificate_hex: token::to_hex(&certificate),
                    enrolled_from: Some(from),
                    enrolled_prefix: prefix,
                }),
                ..token.clone()
            },
            expected: token,
            probe: id.clone(),
            fingerprint,
            owner: record.owner.clone().unwrap_or_default(),
            networks: auth::owner_networks(from, prefix),
            audit: AuditEntry {
                at: now,
                identity: identity.clone(),
                action: "enroll".into(),
                target: id.to_string(),
                outcome: "ok".into(),
            },
        };
        // The token, certificate binding, owner index and "ok" audit entry in one
        // transaction; the probe record after it (a retry recreates it if a crash came
        // between). The reservation holds the cap until both writes have returned: one
        // written after the reservation ended was once counted nowhere in between (5 of 60
        // parallel enrollments got in against 3).
        let recorded = reservation.commit(|| {
            if !store.record_enrollment(&enrollment)? {
                return Ok::<_, StoreError>(false);
            }
            store.create_probe(&record)?;
            Ok(true)
        })?;
        if !recorded {
            // Another enrollment with this token won the race; if it was for the same key, it
            // was this probe's own retry, and this one gets the same answer.
            if let Some(answer) = self.repeat(request, &key_sha256)? {
                return Ok(answer);
            }
            let refusal = TokenRefusal::Used(token::public_id(&request.token));
            self.audit(&identity, "-", &format!("refused: {refusal}"));
            metrics().enrollment("refused_token");
            return Err(refusal.into());
        }
        store.flush()?;
        metrics().enrollment("ok");
        info!(probe = %record.id, hostname = ?record.hostname, owner = ?record.owner, %from, "probe enrolled");
        Ok(Enrolled {
            probe: record.id,
            certificate_der: certificate.to_vec(),
        })
    }

    /// The answer to an enrollment whose token was used by an enrollment for the same key:
    /// the same probe id and certificate (the reply was lost, or two attempts raced), with
    /// whatever a crash left unwritten written now. `None` if the token was used otherwise.
    fn repeat(
        &self,
        request: &EnrollRequest,
        key_sha256: &str,
    ) -> Result<Option<Enrolled>, EnrollError> {
        let Some(hash) = token::enrollment_token_hash(&request.token) else {
            return Ok(None);
        };
        let store = &*self.store;
        let Some(token) = store.enrollment_token(&hash)? else {
            return Ok(None);
        };
        let (Some(probe), Some(outcome)) = (token.used_by.clone(), token.enrollment.clone()) else {
            return Ok(None);
        };
        if outcome.public_key_sha256 != key_sha256 || token.revoked_at.is_some() {
            return Ok(None);
        }
        let Some(certificate) = token::from_hex(&outcome.certificate_hex) else {
            return Err(EnrollError::Internal(format!(
                "enrollment token {}: stored certificate is not hex",
                token.id
            )));
        };
        let fingerprint = sha256_hex(&certificate);
        let existing = store.probe(&probe)?;
        if existing.is_none() {
            // Only when a crash came between the enrollment and its probe record.
            store.create_probe(&probe_record(
                probe.clone(),
                request,
                token.used_at.unwrap_or_else(UnixMicros::now),
                &token.owner,
                (outcome.enrolled_from, outcome.enrolled_prefix),
                fingerprint.clone(),
            ))?;
            store.bind_certificate(&fingerprint, &probe)?;
            // The owner index too (idempotent): on ClickHouse the enrollment's writes follow
            // one another, and one that failed after the token's claim left the probe out of
            // the count of its owner's caps, letting a cap be exceeded for good.
            if let Some(from) = outcome.enrolled_from {
                store.index_owner_probe(
                    &token.owner,
                    &auth::owner_networks(from, outcome.enrolled_prefix),
                    &probe,
                    true,
                )?;
            }
            store.flush()?;
        }
        if let Some(message) = existing.as_ref().and_then(auth::revocation_message) {
            return Err(EnrollError::Revoked(message));
        }
        self.audit(
            &format!("enrollment-token:{} (owner {})", token.id, token.owner),
            probe.as_str(),
            "ok (repeated: same token and key, same certificate)",
        );
        metrics().enrollment("repeated");
        info!(probe = %probe, "enrollment repeated: same certificate sent again");
        Ok(Some(Enrolled {
            probe,
            certificate_der: certificate,
        }))
    }

    /// Records an enrollment attempt in the audit log (a failure to record is logged there).
    fn audit(&self, identity: &str, target: &str, outcome: &str) {
        auth::audit(&*self.store, identity, "enroll", target, outcome);
    }
}

/// The record of a newly enrolled probe: what its enrollment tells (who, from where, which
/// certificate); the rest comes with its sessions.
fn probe_record(
    id: ProbeId,
    request: &EnrollRequest,
    enrolled_at: UnixMicros,
    owner: &str,
    (enrolled_from, enrolled_prefix): (Option<IpAddr>, Option<(IpAddr, u8)>),
    fingerprint: String,
) -> ProbeRecord {
    ProbeRecord {
        software_version: Some(request.software_version.clone()),
        owner: Some(owner.to_owned()),
        enrolled_from,
        enrolled_prefix,
        certificate_sha256: Some(fingerprint),
        ..ProbeRecord::new(id, request.hostname.clone(), enrolled_at)
    }
}
