//! What the collector stores about who may do what: enrollment tokens, API tokens, the
//! certificate → probe index, and the audit log. Secrets are never stored, only their SHA-256
//! (they are 256-bit random values, so a slow password hash would add nothing).

use super::StoreError;
use serde::{Deserialize, Serialize};
use sixmap_shared::{ProbeId, UnixMicros};

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

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Newest first, at most `limit`.
    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}
