//! Who may enroll probes and use the API: enrollment tokens, API tokens, probe revocation and
//! the enrollment caps that keep one owner from farming probes.
//!
//! Token formats (secrets are 32 random bytes, lowercase hex; only their SHA-256 is stored):
//! - enrollment token: `<secret>.<CA fingerprint>`; the probe pins the collector's CA with the
//!   fingerprint before it sends the token, so the token is never shown to an impostor;
//! - API token: `sxa_<secret>`, sent as `Authorization: Bearer sxa_…`.

pub use crate::store::auth::{owner_networks, site_of};
use crate::store::{
    ApiTokenRecord, AuditEntry, EnrollmentTokenRecord, ProbeRecord, Role, Store, StoreError,
};
use sixmap_shared::digest::{hex_lower, is_hex_lower, sha256_hex};
use sixmap_shared::enrollment::{EnrollmentToken, TOKEN_SECRET_BYTES};
use sixmap_shared::{ProbeId, UnixMicros};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET_BYTES: usize = TOKEN_SECRET_BYTES;
const API_TOKEN_PREFIX: &str = "sxa_";
/// Enrollment tokens expire after this unless told otherwise: a token sitting in a mailbox for
/// months is a liability.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 86_400);
/// The longest an enrollment token may live: a year covers any mailing of probes, and a
/// bound keeps `expires_in = 99999999999999d` from meaning "never".
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 86_400);
const MAX_NAME_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("random number source failed: {0}")]
    Random(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no {what} with id {id:?}")]
    NotFound { what: &'static str, id: String },
}

fn secret() -> Result<String, AuthError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex_lower(&bytes))
}

/// Short public id of a token: the start of its hash, enough to tell tokens apart.
fn token_id(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// Owners and API token names: people read them in listings and the audit log.
pub fn check_name(what: &str, name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ' '));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "{what} {name:?}: 1..={MAX_NAME_LEN} letters, digits, spaces or - _ . @"
        )))
    }
}

/// Parses "90s", "30m", "12h", "7d" (or a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, AuthError> {
    let bad = || AuthError::Invalid(format!("{text:?} is not a duration like 30m, 12h or 7d"));
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        's' => n,
        'm' => n.checked_mul(60).ok_or_else(bad)?,
        'h' => n.checked_mul(3600).ok_or_else(bad)?,
        'd' => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(seconds))
}

fn plus(now: UnixMicros, lifetime: Duration) -> UnixMicros {
    let micros = i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX);
    UnixMicros(now.0.saturating_add(micros))
}

/// Creates a one-time enrollment token for `owner`; returns the token text (shown once, never
/// stored) and its record.
pub fn create_enrollment_token(
    store: &dyn Store,
    ca_fingerprint: &str,
    owner: &str,
    lifetime: Duration,
    created_by: &str,
    now: UnixMicros,
) -> Result<(String, EnrollmentTokenRecord), AuthError> {
    let (token, hash, record) =
        new_enrollment_token(ca_fingerprint, owner, lifetime, created_by, now)?;
    store.put_enrollment_token(&hash, &record)?;
    store.flush()?;
    Ok((token, record))
}

/// A new enrollment token, not yet stored: its text, the hash to store it under, and its
/// record. [`create_enrollment_token`] stores and flushes it; bulk tools store many and flush
/// once.
pub fn new_enrollment_token(
    ca_fingerprint: &str,
    owner: &str,
    lifetime: Duration,
    created_by: &str,
    now: UnixMicros,
) -> Result<(String, String, EnrollmentTokenRecord), AuthError> {
    check_name("owner", owner)?;
    if lifetime > MAX_TOKEN_LIFETIME {
        return Err(AuthError::Invalid(format!(
            "`expires_in`: {} s is longer than the maximum token lifetime of {} days",
            lifetime.as_secs(),
            MAX_TOKEN_LIFETIME.as_secs() / 86_400
        )));
    }
    let secret = secret()?;
    let hash = sha256_hex(secret.as_bytes());
    let record = EnrollmentTokenRecord {
        id: token_id(&hash),
        owner: owner.to_owned(),
        created_at: now,
        created_by: created_by.to_owned(),
        expires_at: Some(plus(now, lifetime)),
        used_at: None,
        used_by: None,
        revoked_at: None,
        enrollment: None,
    };
    let token = EnrollmentToken {
        secret: &secret,
        ca_fingerprint,
    };
    Ok((token.to_string(), hash, record))
}

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
/// [`consume_enrollment_token`] then marks it used atomically.
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

/// Revokes an unused enrollment token by its id.
pub fn revoke_enrollment_token(
    store: &dyn Store,
    id: &str,
    now: UnixMicros,
) -> Result<EnrollmentTokenRecord, AuthError> {
    let not_found = || AuthError::NotFound {
        what: "enrollment token",
        id: id.to_owned(),
    };
    let (hash, record) = store
        .enrollment_tokens()?
        .into_iter()
        .find(|(_, r)| r.id == id)
        .ok_or_else(not_found)?;
    let revoked = EnrollmentTokenRecord {
        revoked_at: Some(now),
        ..record.clone()
    };
    if !store.replace_enrollment_token(&hash, &record, &revoked)? {
        return Err(AuthError::Invalid(format!(
            "enrollment token {id} changed meanwhile; try again"
        )));
    }
    store.flush()?;
    Ok(revoked)
}

/// Revokes a probe: its certificate is refused at its next hello and its open session ends at
/// its next heartbeat.
pub fn revoke_probe(
    store: &dyn Store,
    probe: &ProbeId,
    now: UnixMicros,
) -> Result<ProbeRecord, AuthError> {
    let mut record = store.probe(probe)?.ok_or_else(|| AuthError::NotFound {
        what: "probe",
        id: probe.to_string(),
    })?;
    if record.revoked_at.is_none() {
        record.revoked_at = Some(now);
        store.update_probe(&record)?;
        // Revoked probes no longer count against their owner's enrollment caps.
        if let (Some(owner), Some(from)) = (&record.owner, record.enrolled_from) {
            let networks = owner_networks(from, record.enrolled_prefix);
            store.index_owner_probe(owner, &networks, &record.id, false)?;
        }
        store.flush()?;
    }
    Ok(record)
}

/// Creates an API token; returns the token text (shown once) and its record.
pub fn create_api_token(
    store: &dyn Store,
    role: Role,
    name: &str,
    now: UnixMicros,
) -> Result<(String, ApiTokenRecord), AuthError> {
    check_name("name", name)?;
    let secret = secret()?;
    let hash = sha256_hex(secret.as_bytes());
    let record = ApiTokenRecord {
        id: token_id(&hash),
        name: name.to_owned(),
        role,
        created_at: now,
        revoked_at: None,
    };
    store.put_api_token(&hash, &record)?;
    store.flush()?;
    Ok((format!("{API_TOKEN_PREFIX}{secret}"), record))
}

/// Revokes an API token by its id.
pub fn revoke_api_token(
    store: &dyn Store,
    id: &str,
    now: UnixMicros,
) -> Result<ApiTokenRecord, AuthError> {
    let (hash, mut record) = store
        .api_tokens()?
        .into_iter()
        .find(|(_, r)| r.id == id)
        .ok_or_else(|| AuthError::NotFound {
            what: "API token",
            id: id.to_owned(),
        })?;
    record.revoked_at.get_or_insert(now);
    store.put_api_token(&hash, &record)?;
    store.flush()?;
    Ok(record)
}

/// The API token a bearer value names, if it is one of ours and not revoked.
pub fn api_token(store: &dyn Store, bearer: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
    let Some(secret) = bearer
        .strip_prefix(API_TOKEN_PREFIX)
        .filter(|s| is_hex_lower(s, 2 * SECRET_BYTES))
    else {
        return Ok(None);
    };
    Ok(store
        .api_token(&sha256_hex(secret.as_bytes()))?
        .filter(|t| t.revoked_at.is_none()))
}

/// Refuses gRPC metadata with more than one `authorization` entry: which would count is
/// not for the server to guess (as two `Authorization` headers on the HTTP API).
pub fn single_authorization(metadata: &tonic::metadata::MetadataMap) -> Result<(), tonic::Status> {
    if metadata.get_all("authorization").iter().nth(1).is_some() {
        return Err(tonic::Status::invalid_argument(
            "`authorization` metadata is given more than once; send one",
        ));
    }
    Ok(())
}

/// Records a write in the audit log. A failure to record is logged, and does not undo the
/// write it describes (which has already happened).
pub fn audit(store: &dyn Store, identity: &str, action: &str, target: &str, outcome: &str) {
    let entry = AuditEntry {
        at: UnixMicros::now(),
        identity: identity.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
    };
    if let Err(e) = store.append_audit(&entry).and_then(|()| store.flush()) {
        tracing::error!(error = %e, ?entry, "cannot write the audit log");
    }
}

/// Limits on probes per token owner, checked at enrollment against the address the
/// enrollment comes from (the TCP peer: a probe cannot choose it freely, unlike the addresses
/// it reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollmentCaps {
    /// Probes of one owner in one IPv6 /64 (one IPv4 address for IPv4 peers).
    pub per_64: usize,
    /// Probes of one owner in one routed prefix (from the imported prefix data); not checked
    /// when the prefix data does not know the address.
    pub per_routed_prefix: usize,
}

/// Indexes the unrevoked probes enrolled before the owner index existed (once per store).
pub fn complete_owner_index(store: &dyn Store) -> Result<(), StoreError> {
    if store.owner_index_complete()? {
        return Ok(());
    }
    let mut indexed = 0usize;
    for probe in store.probes()? {
        if let (None, Some(owner), Some(from)) =
            (probe.revoked_at, &probe.owner, probe.enrolled_from)
        {
            let networks = owner_networks(from, probe.enrolled_prefix);
            store.index_owner_probe(owner, &networks, &probe.id, true)?;
            indexed += 1;
        }
    }
    store.mark_owner_index_complete()?;
    store.flush()?;
    tracing::info!(indexed, "owner index of enrolled probes built");
    Ok(())
}

/// An enrollment between its cap check and the moment its probe is in the store.
#[derive(Debug, Clone)]
struct Pending {
    owner: String,
    networks: Vec<String>,
    probe: ProbeId,
}

/// Makes the per-owner caps atomic within this collector: the cap check counts the owner's
/// stored probes (a counter kept with the owner index: one read, whatever the size of the
/// fleet) plus the enrollments that passed the check but are not stored yet, and registers
/// the new one, under one lock. Of 60 parallel enrollments against a cap of 3,
/// exactly 3 pass. Slow store writes (ClickHouse's claim) happen outside the lock.
///
/// Collectors sharing a ClickHouse store each apply this to their own enrollments only: a
/// cap can then be exceeded by enrollments racing at different collectors (documented in
/// docs/security.md).
#[derive(Debug, Default)]
pub struct EnrollmentGate {
    pending: Mutex<Vec<Pending>>,
    /// Whether `complete_owner_index` ran in this process.
    index_checked: std::sync::atomic::AtomicBool,
}

/// A passed cap check; dropping it (once the probe is stored, or the enrollment failed)
/// leaves the count to the store.
#[derive(Debug)]
pub struct Reservation {
    gate: Arc<EnrollmentGate>,
    probe: ProbeId,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        lock(&self.gate.pending).retain(|p| p.probe != self.probe);
    }
}

impl Reservation {
    /// Runs `store_it` (the write that puts the probe into the owner index) under the gate's
    /// lock and ends the reservation in the same step, so a cap check sees the enrollment
    /// either pending or stored, never neither: checking the counter and then the pending
    /// list while the write lands between them would count it nowhere.
    pub fn commit<T>(self, store_it: impl FnOnce() -> T) -> T {
        let gate = self.gate.clone();
        let mut pending = lock(&gate.pending);
        let outcome = store_it();
        pending.retain(|p| p.probe != self.probe);
        drop(pending);
        outcome
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The list stays consistent even if a holder panicked (each change is one call).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EnrollmentGate {
    /// Checks the caps for one more probe `probe` of `owner` enrolling from `from` (in routed
    /// prefix `prefix`) and reserves its place; `Err` names the cap that refuses it.
    pub fn reserve(
        self: &Arc<Self>,
        store: &dyn Store,
        owner: &str,
        from: IpAddr,
        prefix: Option<(IpAddr, u8)>,
        caps: EnrollmentCaps,
        probe: &ProbeId,
    ) -> Result<Result<Reservation, String>, StoreError> {
        let mut pending = lock(&self.pending);
        if !self
            .index_checked
            .load(std::sync::atomic::Ordering::Acquire)
        {
            complete_owner_index(store)?;
            self.index_checked
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let networks = owner_networks(from, prefix);
        let site = site_of(from);
        for (network, cap) in networks.iter().zip([caps.per_64, caps.per_routed_prefix]) {
            // Stored probes (one counter), plus enrollments in progress: an enrollment leaves
            // `pending` in the same locked step that stores it (`Reservation::commit`).
            let count = store.owner_probe_count(owner, network)?
                + pending
                    .iter()
                    .filter(|p| p.owner == owner && p.networks.contains(network))
                    .count();
            if count >= cap {
                return Ok(Err(if network.starts_with("site ") {
                    format!(
                        "owner {owner:?} already has {count} probes in {}/{}, the most this collector allows per network site: measurements from one place count once, so more probes there would only skew the maps",
                        site.0, site.1
                    )
                } else {
                    let (network, len) = prefix.unwrap_or(site);
                    format!(
                        "owner {owner:?} already has {count} probes in the routed prefix {network}/{len}, the most this collector allows per owner and prefix"
                    )
                }));
            }
        }
        pending.push(Pending {
            owner: owner.to_owned(),
            networks,
            probe: probe.clone(),
        });
        Ok(Ok(Reservation {
            gate: self.clone(),
            probe: probe.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuthStore;

    fn probe(owner: &str, from: &str) -> ProbeRecord {
        ProbeRecord {
            id: ProbeId::random().unwrap(),
            hostname: String::new(),
            enrolled_at: UnixMicros(0),
            last_seen: None,
            software_version: None,
            boot_epoch: None,
            local_addresses: Vec::new(),
            self_test: None,
            last_v6_success: None,
            tags: Vec::new(),
            location: None,
            origin: None,
            owner: Some(owner.into()),
            enrolled_from: Some(from.parse().unwrap()),
            enrolled_prefix: Some(("2001:db8::".parse().unwrap(), 32)),
            certificate_sha256: None,
            revoked_at: None,
        }
    }

    #[test]
    fn caps_count_one_owners_probes_per_site_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let caps = EnrollmentCaps {
            per_64: 2,
            per_routed_prefix: 3,
        };
        let prefix = Some(("2001:db8::".parse().unwrap(), 32));
        // Probes stored before the owner index existed are indexed at the first check.
        let existing = [
            probe("alice", "2001:db8:1:1::5"),
            probe("bob", "2001:db8:1:1::6"),
        ];
        for p in &existing {
            store.create_probe(p).unwrap();
        }
        let gate = Arc::new(EnrollmentGate::default());
        let from: IpAddr = "2001:db8:1:1::9".parse().unwrap();
        let id = || ProbeId::random().unwrap();
        let second = gate
            .reserve(&store, "alice", from, prefix, caps, &id())
            .unwrap()
            .unwrap();
        // The reserved (not yet stored) probe counts: alice is at her /64 cap.
        let refusal = gate
            .reserve(&store, "alice", from, prefix, caps, &id())
            .unwrap()
            .unwrap_err();
        assert!(refusal.contains("2001:db8:1:1::/64"), "{refusal}");
        drop(second);
        let third = probe("alice", "2001:db8:3:1::1");
        store.create_probe(&third).unwrap();
        store
            .index_owner_probe(
                "alice",
                &owner_networks(third.enrolled_from.unwrap(), prefix),
                &third.id,
                true,
            )
            .unwrap();
        // Another /64 of the same prefix is fine until the prefix cap.
        let other: IpAddr = "2001:db8:2:1::9".parse().unwrap();
        let fourth = gate
            .reserve(&store, "alice", other, prefix, caps, &id())
            .unwrap()
            .unwrap();
        let refusal = gate
            .reserve(&store, "alice", other, prefix, caps, &id())
            .unwrap()
            .unwrap_err();
        assert!(refusal.contains("routed prefix 2001:db8::/32"), "{refusal}");
        drop(fourth);
        // Without prefix data only the site cap applies; revoked probes do not count.
        assert!(
            gate.reserve(&store, "alice", other, None, caps, &id())
                .unwrap()
                .is_ok()
        );
        let held = gate
            .reserve(&store, "alice", from, None, caps, &id())
            .unwrap()
            .unwrap();
        assert!(
            gate.reserve(&store, "alice", from, None, caps, &id())
                .unwrap()
                .is_err()
        );
        revoke_probe(&store, &existing[0].id, UnixMicros(1)).unwrap();
        assert!(
            gate.reserve(&store, "alice", from, None, caps, &id())
                .unwrap()
                .is_ok()
        );
        drop(held);
        assert_eq!(site_of("192.0.2.7".parse().unwrap()).1, 32);
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 254, 255])),
            Some(vec![0, 1, 254, 255])
        );
        assert_eq!(from_hex("0g"), None);
    }

    #[test]
    fn durations_and_names() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(check_name("owner", "Uni Example").is_ok());
        assert!(check_name("owner", "").is_err());
        assert!(check_name("owner", "a\nb").is_err());
        assert_eq!(
            token_secret(&format!("{}.{}", "a".repeat(64), "b".repeat(64))),
            Some(&*"a".repeat(64))
        );
        assert_eq!(token_secret("abc.def"), None);
    }
}
