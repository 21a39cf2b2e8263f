//! What the collector stores about who may do what: enrollment tokens, API tokens, the
//! certificate → probe index, and the audit log. Secrets are never stored, only their SHA-256
//! (they are 256-bit random values, so a slow password hash would add nothing).

use super::StoreError;
use serde::{Deserialize, Serialize};
use sixmap_shared::{ProbeId, UnixMicros};
use std::net::IpAddr;

/// A one-time enrollment token, stored under the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTokenRecord {
    /// Short public name of the token (start of its hash), for listing and revoking.
    pub id: String,
    /// Who the token was given to; enrollment caps count probes per owner.
    pub owner: String,
    pub created_at: UnixMicros,
    pub created_by: String,
    pub expires_at: Option<UnixMicros>,
    /// Set once, when a probe enrolled with it.
    pub used_at: Option<UnixMicros>,
    pub used_by: Option<ProbeId>,
    pub revoked_at: Option<UnixMicros>,
    /// The enrollment that used it, kept so a retry after a lost reply (same token, same CSR)
    /// gets the same probe id and certificate instead of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<EnrollmentOutcome>,
}

impl EnrollmentTokenRecord {
    /// The record as listings show it: without the certificate kept for repeated
    /// enrollments (a kilobyte per used token).
    pub fn for_listing(self) -> Self {
        Self {
            enrollment: None,
            ..self
        }
    }
}

/// What an enrollment answered, stored with the token it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentOutcome {
    /// SHA-256 (hex) of the public key (SubjectPublicKeyInfo) the CSR was for: a retry must
    /// be for the same key (its CSR differs: signatures are randomised).
    pub public_key_sha256: String,
    /// The issued client certificate, DER in lowercase hex.
    pub certificate_hex: String,
    /// Where the enrollment came from, for the probe record a retry may have to recreate.
    #[serde(default)]
    pub enrolled_from: Option<IpAddr>,
    #[serde(default)]
    pub enrolled_prefix: Option<(IpAddr, u8)>,
}

/// The owner-index networks of a probe enrolled from `from` (in routed prefix `prefix`):
/// its site (the /64, or the IPv4 address) and its routed prefix. Enrollment caps count
/// an owner's unrevoked probes per network.
pub fn owner_networks(from: IpAddr, prefix: Option<(IpAddr, u8)>) -> Vec<String> {
    let (site, len) = site_of(from);
    let mut networks = vec![format!("site {site}/{len}")];
    if let Some((network, len)) = prefix {
        networks.push(format!("prefix {network}/{len}"));
    }
    networks
}

/// The /64 of an IPv6 address (IPv4 and IPv4-mapped: the address itself), as (network,
/// length).
pub fn site_of(address: IpAddr) -> (IpAddr, u8) {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), 32),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                (IpAddr::V6(bits.into()), 64)
            }
        },
        IpAddr::V4(_) => (address, 32),
    }
}

/// An enrollment to record in one step ([`AuthStore::record_enrollment`]).
#[derive(Debug, Clone)]
pub struct NewEnrollment {
    pub token_hash: String,
    /// The token as checked; the enrollment is recorded only if it is still so.
    pub expected: EnrollmentTokenRecord,
    /// The token marked used, with its [`EnrollmentOutcome`].
    pub used: EnrollmentTokenRecord,
    pub probe: ProbeId,
    /// SHA-256 of the issued certificate's DER.
    pub fingerprint: String,
    pub owner: String,
    /// [`owner_networks`] of the probe.
    pub networks: Vec<String>,
    /// The "ok" entry of the audit log.
    pub audit: AuditEntry,
}

/// What an API token may do. Admins may do everything; the others only their own part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages tokens, probes and configuration; reads everything, including the audit log.
    Admin,
    /// Creates and runs measurement campaigns.
    Campaigner,
    /// Reads raw results and exports.
    Researcher,
}

impl Role {
    /// Whether a caller with this role may do what needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Campaigner => "campaigner",
            Role::Researcher => "researcher",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Role::Admin),
            "campaigner" => Ok(Role::Campaigner),
            "researcher" => Ok(Role::Researcher),
            _ => Err(format!(
                "{text:?} is not a role: admin, campaigner or researcher"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bearer token for the HTTP API, stored under the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub id: String,
    /// Who holds it, e.g. "ministry-campaigns" or "alice"; recorded in the audit log.
    pub name: String,
    pub role: Role,
    pub created_at: UnixMicros,
    pub revoked_at: Option<UnixMicros>,
}

/// One write, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: UnixMicros,
    /// "api:<name> (<role>)", "anonymous", "cli", or "enrollment-token:<id> (owner <owner>)".
    pub identity: String,
    /// e.g. "POST /api/v1/probes/{id}/revoke", "enroll", "token create".
    pub action: String,
    /// What it acted on: a path, probe id or token id.
    pub target: String,
    /// "ok", or the refusal/failure with its HTTP status or gRPC code.
    pub outcome: String,
}

pub trait AuthStore {
    fn put_enrollment_token(
        &self,
        hash: &str,
        token: &EnrollmentTokenRecord,
    ) -> Result<(), StoreError>;
    fn enrollment_token(&self, hash: &str) -> Result<Option<EnrollmentTokenRecord>, StoreError>;
    /// Every enrollment token with its hash, in hash order.
    fn enrollment_tokens(&self) -> Result<Vec<(String, EnrollmentTokenRecord)>, StoreError>;
    /// Replaces `expected` by `new` atomically; false if the stored token was not `expected`
    /// (someone else used or revoked it meanwhile). This is what makes tokens single-use.
    fn replace_enrollment_token(
        &self,
        hash: &str,
        expected: &EnrollmentTokenRecord,
        new: &EnrollmentTokenRecord,
    ) -> Result<bool, StoreError>;

    fn put_api_token(&self, hash: &str, token: &ApiTokenRecord) -> Result<(), StoreError>;
    fn api_token(&self, hash: &str) -> Result<Option<ApiTokenRecord>, StoreError>;
    fn api_tokens(&self) -> Result<Vec<(String, ApiTokenRecord)>, StoreError>;

    /// Records which probe a client certificate (by SHA-256 of its DER) was issued to.
    fn bind_certificate(&self, fingerprint: &str, probe: &ProbeId) -> Result<(), StoreError>;
    fn certificate_probe(&self, fingerprint: &str) -> Result<Option<ProbeId>, StoreError>;

    /// Records an enrollment: the token goes from `expected` to `used`, the certificate is
    /// bound to the probe, the probe is indexed under its owner's networks and the audit
    /// entry appended — in one transaction where the backend has them (sled); ClickHouse
    /// writes them in that order after the token's claim, and a retry of the enrollment
    /// repairs what a crash left out. False (nothing written) if the token was not
    /// `expected` any more.
    fn record_enrollment(&self, enrollment: &NewEnrollment) -> Result<bool, StoreError>;
    /// How many unrevoked probes of `owner` are indexed under `network` (see
    /// [`owner_networks`]): one counter read in sled, whatever the size of the fleet or of the
    /// owner's share; in ClickHouse that owner's index entries in that network.
    fn owner_probe_count(&self, owner: &str, network: &str) -> Result<usize, StoreError>;
    /// Whether `probe` is counted under `owner` and `network`.
    fn owner_has_probe(
        &self,
        owner: &str,
        network: &str,
        probe: &ProbeId,
    ) -> Result<bool, StoreError>;
    /// Adds (`present`) or removes a probe's owner-index entries (revocation; indexing
    /// probes enrolled before the index existed).
    fn index_owner_probe(
        &self,
        owner: &str,
        networks: &[String],
        probe: &ProbeId,
        present: bool,
    ) -> Result<(), StoreError>;
    /// Whether probes enrolled before the owner index existed have been indexed.
    fn owner_index_complete(&self) -> Result<bool, StoreError>;
    fn mark_owner_index_complete(&self) -> Result<(), StoreError>;

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Newest first, at most `limit`.
    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}
