//! Who may enroll probes and use the API: creating and revoking enrollment tokens, API
//! tokens, probe revocation, the audit log. The enrollment itself (token checks, caps,
//! certificate) is [`crate::enroll`].
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

/// What a revoked probe is told, at its hello or when it repeats its enrollment; `None` if
/// `record` is not revoked.
pub fn revocation_message(record: &ProbeRecord) -> Option<String> {
    record.revoked_at.map(|at| {
        format!(
            "probe {} was revoked by the collector's operator (at {} us since 1970): it may no longer report; ask the operator, and enroll again with a new token if they agree",
            record.id, at.0
        )
    })
}

/// Revokes a probe: its certificate is refused at its next hello and its open session ends at
/// its next heartbeat.
pub fn revoke_probe(
    store: &dyn Store,
    probe: &ProbeId,
    now: UnixMicros,
) -> Result<ProbeRecord, AuthError> {
    let _writing = crate::store::probe_record_lock(probe);
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

/// Records one listing answer at most when the caller asks for no number: enough for a screen.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Records one listing answers at most, whatever the caller asks: listings are paged so that one
/// request stays bounded however many probes and tokens the collector has.
pub const MAX_LIST_LIMIT: usize = 1000;
/// The longest `after` cursor a listing accepts: ids are 12 (tokens) or 16 (probes) characters.
const MAX_CURSOR_LEN: usize = 64;

/// One page of a listing in id order, and the id to ask `after` for the next one (`None`: this
/// was the last page).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Where a listing starts and how much it returns, as a caller asked: `limit` is brought into
/// 1..=[`MAX_LIST_LIMIT`] (default [`DEFAULT_LIST_LIMIT`]); an over-long cursor is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: Option<usize>,
}

impl PageRequest {
    fn limit(&self) -> usize {
        self.limit
            .unwrap_or(DEFAULT_LIST_LIMIT)
            .clamp(1, MAX_LIST_LIMIT)
    }

    fn check(&self) -> Result<(), AuthError> {
        match &self.after {
            Some(after) if after.len() > MAX_CURSOR_LEN => Err(AuthError::Invalid(format!(
                "`after`: {} characters; ids are at most {MAX_CURSOR_LEN}",
                after.len()
            ))),
            _ => Ok(()),
        }
    }

    /// The page of `items` this request selects, by the id `key` gives.
    pub fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> &str) -> Page<T> {
        items.sort_by(|a, b| key(a).cmp(key(b)));
        if let Some(after) = &self.after {
            items.retain(|item| key(item) > after.as_str());
        }
        let limit = self.limit();
        let next = (items.len() > limit).then(|| key(&items[limit - 1]).to_owned());
        items.truncate(limit);
        Page { items, next }
    }
}

/// A probe as the admin listing shows it: who enrolled it, from where, and whether it is
/// revoked (not its self-test or tags: those are `/api/v1/probes`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeListing {
    pub id: ProbeId,
    pub hostname: String,
    pub owner: Option<String>,
    pub enrolled_at: UnixMicros,
    pub enrolled_from: Option<std::net::IpAddr>,
    pub last_seen: Option<UnixMicros>,
    pub software_version: Option<String>,
    pub revoked_at: Option<UnixMicros>,
}

impl From<ProbeRecord> for ProbeListing {
    fn from(p: ProbeRecord) -> Self {
        Self {
            id: p.id,
            hostname: p.hostname,
            owner: p.owner,
            enrolled_at: p.enrolled_at,
            enrolled_from: p.enrolled_from,
            last_seen: p.last_seen,
            software_version: p.software_version,
            revoked_at: p.revoked_at,
        }
    }
}

/// API tokens without their secrets (only hashes are stored anyway), one page.
pub fn list_api_tokens(
    store: &dyn Store,
    request: &PageRequest,
) -> Result<Page<ApiTokenRecord>, AuthError> {
    request.check()?;
    let records = store.api_tokens()?.into_iter().map(|(_, r)| r).collect();
    Ok(request.page(records, |r| &r.id))
}

/// Enrollment tokens without their secrets or kept certificates, one page.
pub fn list_enrollment_tokens(
    store: &dyn Store,
    request: &PageRequest,
) -> Result<Page<EnrollmentTokenRecord>, AuthError> {
    request.check()?;
    let records = store
        .enrollment_tokens()?
        .into_iter()
        .map(|(_, r)| r.for_listing())
        .collect();
    Ok(request.page(records, |r| &r.id))
}

/// Enrolled probes, revoked ones too, one page. The store reads every probe record (the
/// `Store` trait has no ranged read of probes); what crosses the wire stays bounded.
pub fn list_probes(
    store: &dyn Store,
    request: &PageRequest,
) -> Result<Page<ProbeListing>, AuthError> {
    request.check()?;
    let probes: Vec<ProbeListing> = store.probes()?.into_iter().map(Into::into).collect();
    // Probe ids are fixed-width lowercase hex, so text order is id order.
    Ok(request.page(probes, |p| p.id.as_str()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enroll::token::token_secret;

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

    #[test]
    fn listings_page_in_id_order_within_the_cap() {
        let ids: Vec<String> = (0..2500).rev().map(|i| format!("{i:05}")).collect();
        let ask = |after: Option<&str>, limit| PageRequest {
            after: after.map(str::to_owned),
            limit,
        };
        let first = ask(None, Some(3)).page(ids.clone(), |s| s);
        assert_eq!(first.items, ["00000", "00001", "00002"]);
        assert_eq!(first.next.as_deref(), Some("00002"));
        let second = ask(Some("00002"), Some(3)).page(ids.clone(), |s| s);
        assert_eq!(second.items, ["00003", "00004", "00005"]);
        // Asking for more than the cap gets the cap, and a cursor to go on.
        let capped = ask(None, Some(usize::MAX)).page(ids.clone(), |s| s);
        assert_eq!(capped.items.len(), MAX_LIST_LIMIT);
        assert_eq!(capped.next.as_deref(), Some("00999"));
        assert_eq!(ask(None, None).page(ids.clone(), |s| s).items.len(), 100);
        assert_eq!(ask(None, Some(0)).page(ids.clone(), |s| s).items.len(), 1);
        let last = ask(Some("02497"), Some(10)).page(ids.clone(), |s| s);
        assert_eq!((last.items.len(), last.next), (2, None));
        assert!(ask(Some(&"x".repeat(65)), None).check().is_err());
    }
}
