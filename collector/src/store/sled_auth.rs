//! [`AuthStore`] on sled. Trees: `enrollment_tokens` and `api_tokens` (SHA-256 hex of the
//! secret → JSON record), `certificates` (SHA-256 hex of a client certificate → probe id),
//! `audit` (time ‖ counter → JSON entry).

use super::auth::{ApiTokenRecord, AuditEntry, AuthStore, EnrollmentTokenRecord};
use super::sled_store::{backend, decode, encode};
use super::{SledStore, StoreError};
use sixmap_shared::ProbeId;

/// The trees behind [`AuthStore`], opened with the rest of the store.
#[derive(Debug, Clone)]
pub(super) struct AuthTrees {
    enrollment_tokens: sled::Tree,
    api_tokens: sled::Tree,
    certificates: sled::Tree,
    audit: sled::Tree,
}

impl AuthTrees {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(Self {
            enrollment_tokens: tree("enrollment_tokens")?,
            api_tokens: tree("api_tokens")?,
            certificates: tree("certificates")?,
            audit: tree("audit")?,
        })
    }
}

fn all<T: serde::de::DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<(String, T)>, StoreError> {
    tree.iter()
        .map(|entry| {
            let (key, value) = entry.map_err(backend)?;
            Ok((
                String::from_utf8_lossy(&key).into_owned(),
                decode(&key, &value)?,
            ))
        })
        .collect()
}

fn get<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &str,
) -> Result<Option<T>, StoreError> {
    tree.get(key)
        .map_err(backend)?
        .map(|value| decode(key.as_bytes(), &value))
        .transpose()
}

impl AuthStore for SledStore {
    fn put_enrollment_token(
        &self,
        hash: &str,
        token: &EnrollmentTokenRecord,
    ) -> Result<(), StoreError> {
        self.auth
            .enrollment_tokens
            .insert(hash, encode(token)?)
            .map_err(backend)?;
        Ok(())
    }

    fn enrollment_token(&self, hash: &str) -> Result<Option<EnrollmentTokenRecord>, StoreError> {
        get(&self.auth.enrollment_tokens, hash)
    }

    fn enrollment_tokens(&self) -> Result<Vec<(String, EnrollmentTokenRecord)>, StoreError> {
        all(&self.auth.enrollment_tokens)
    }

    fn replace_enrollment_token(
        &self,
        hash: &str,
        expected: &EnrollmentTokenRecord,
        new: &EnrollmentTokenRecord,
    ) -> Result<bool, StoreError> {
        let Some(current) = self.auth.enrollment_tokens.get(hash).map_err(backend)? else {
            return Ok(false);
        };
        // Compare decoded records, not bytes: equal records may have been encoded differently.
        let decoded: EnrollmentTokenRecord = decode(hash.as_bytes(), &current)?;
        if &decoded != expected {
            return Ok(false);
        }
        let swapped = self
            .auth
            .enrollment_tokens
            .compare_and_swap(hash, Some(current), Some(encode(new)?))
            .map_err(backend)?;
        Ok(swapped.is_ok())
    }

    fn put_api_token(&self, hash: &str, token: &ApiTokenRecord) -> Result<(), StoreError> {
        self.auth
            .api_tokens
            .insert(hash, encode(token)?)
            .map_err(backend)?;
        Ok(())
    }

    fn api_token(&self, hash: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        get(&self.auth.api_tokens, hash)
    }

    fn api_tokens(&self) -> Result<Vec<(String, ApiTokenRecord)>, StoreError> {
        all(&self.auth.api_tokens)
    }

    fn bind_certificate(&self, fingerprint: &str, probe: &ProbeId) -> Result<(), StoreError> {
        self.auth
            .certificates
            .insert(fingerprint, probe.as_str())
            .map_err(backend)?;
        Ok(())
    }

    fn certificate_probe(&self, fingerprint: &str) -> Result<Option<ProbeId>, StoreError> {
        self.auth
            .certificates
            .get(fingerprint)
            .map_err(backend)?
            .map(|raw| {
                String::from_utf8_lossy(&raw)
                    .parse::<ProbeId>()
                    .map_err(|e| StoreError::Corrupt {
                        key: fingerprint.to_owned(),
                        reason: e.to_string(),
                    })
            })
            .transpose()
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut key = ((entry.at.0 as u64) ^ (1 << 63)).to_be_bytes().to_vec();
        // Two writes in the same microsecond must both be kept.
        key.extend_from_slice(&self.db.generate_id().map_err(backend)?.to_be_bytes());
        self.auth
            .audit
            .insert(key, encode(entry)?)
            .map_err(backend)?;
        Ok(())
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.auth
            .audit
            .iter()
            .rev()
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                decode(&key, &value)
            })
            .collect()
    }
}
