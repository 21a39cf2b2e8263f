//! The enrollment token as the enrolling probe presents it: its checks, the refusals sent
//! back, and the key a CSR asks a certificate for (how a retry is recognised). Tokens are
//! created and revoked by the operator ([`crate::auth`]).

use crate::store::{EnrollmentTokenRecord, Store, StoreError};
use sixmap_shared::UnixMicros;
use sixmap_shared::digest::sha256_hex;
use sixmap_shared::enrollment::EnrollmentToken;

/// Why an enrollment token was refused; the message goes to the volunteer as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("enrollment token not accepted: it is not of the form <secret>.<fingerprint>")]
    Malformed,
    #[error("enrollment token not accepted: this collector never issued it")]
    Unknown,
    #[error(
        "enrollment token {0} has already been used: ask the collector's operator for a new one"
    )]
    Used(String),
    #[error("enrollment token {0} has expired: ask the collector's operator for a new one")]
    Expired(String),
    #[error("enrollment token {0} was revoked by the collector's operator")]
    Revoked(String),
}

/// The secret part of an enrollment token (the probe keeps the fingerprint part).
pub fn token_secret(token: &str) -> Option<&str> {
    EnrollmentToken::parse(token).map(|t| t.secret)
}

/// Looks an enrollment token up and checks it can be used now. Returns its hash and record;
/// [`super::Enroller`] then marks it used atomically.
pub fn check_enrollment_token(
    store: &dyn Store,
    token: &str,
    now: UnixMicros,
) -> Result<Result<(String, EnrollmentTokenRecord), TokenRefusal>, StoreError> {
    let Some(secret) = token_secret(token) else {
        return Ok(Err(TokenRefusal::Malformed));
    };
    let hash = sha256_hex(secret.as_bytes());
    let Some(record) = store.enrollment_token(&hash)? else {
        return Ok(Err(TokenRefusal::Unknown));
    };
    let id = record.id.clone();
    Ok(if record.revoked_at.is_some() {
        Err(TokenRefusal::Revoked(id))
    } else if record.used_at.is_some() {
        Err(TokenRefusal::Used(id))
    } else if record.expires_at.is_some_and(|t| t <= now) {
        Err(TokenRefusal::Expired(id))
    } else {
        Ok((hash, record))
    })
}

/// The stored hash of an enrollment token, if it has the token's form.
pub fn enrollment_token_hash(token: &str) -> Option<String> {
    token_secret(token).map(|secret| sha256_hex(secret.as_bytes()))
}

/// SHA-256 (hex) of the public key a CSR asks a certificate for; `None` if it is no CSR. A
/// probe retrying its enrollment sends a new CSR for the same key (ECDSA signatures are
/// randomised), so retries are recognised by the key, not the CSR's bytes.
pub fn csr_key_sha256(csr_der: &[u8]) -> Option<String> {
    let csr = rcgen::CertificateSigningRequestParams::from_der(&csr_der.to_vec().into()).ok()?;
    Some(sha256_hex(&rcgen::PublicKeyData::subject_public_key_info(
        &csr.public_key,
    )))
}

/// Lowercase hex of `bytes` (certificates kept with their enrollment).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex text; `None` if it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The public id of an enrollment token (start of its hash), for refusals; "-" if malformed.
pub fn public_id(token: &str) -> String {
    enrollment_token_hash(token).map_or_else(|| "-".into(), |h| h.chars().take(12).collect())
}
