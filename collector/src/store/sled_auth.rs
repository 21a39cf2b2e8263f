//! [`AuthStore`] on sled. Trees: `enrollment_tokens` and `api_tokens` (SHA-256 hex of the
//! secret → JSON record), `certificates` (SHA-256 hex of a client certificate → probe id),
//! `audit` (time ‖ counter → JSON entry), `owner_index` (owner ‖ 0 ‖ network ‖ 0 ‖ probe id
//! → (), unrevoked probes only) with `owner_counts` (owner ‖ 0 ‖ network ‖ 0 → number of
//! its entries, u64 big-endian, changed in the same transaction), `auth_meta` (flags such as
//! "owner index complete").

use super::StoreError;
use super::auth::{ApiTokenRecord, AuditEntry, AuthStore, EnrollmentTokenRecord, NewEnrollment};
use super::sled_db::{AuthTrees, SledStore, backend, decode, encode};
use sixmap_shared::ProbeId;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

const OWNER_INDEX_COMPLETE: &[u8] = b"owner_index_complete";

/// `owner ‖ 0 ‖ network ‖ 0`: owners and networks never contain a NUL (`auth::check_name`).
fn owner_prefix(owner: &str, network: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(owner.len() + network.len() + 2);
    key.extend_from_slice(owner.as_bytes());
    key.push(0);
    key.extend_from_slice(network.as_bytes());
    key.push(0);
    key
}

fn owner_key(owner: &str, network: &str, probe: &ProbeId) -> Vec<u8> {
    let mut key = owner_prefix(owner, network);
    key.extend_from_slice(probe.as_str().as_bytes());
    key
}

fn count_of(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(0, u64::from_be_bytes)
}

type Tx<'a> = &'a sled::transaction::TransactionalTree;

/// Adds (`present`) or removes `probe`'s entry under (`owner`, `network`) and keeps the
/// count in step, inside a transaction; does nothing if the entry is already so.
fn set_owner_entry(
    index: Tx<'_>,
    counts: Tx<'_>,
    owner: &str,
    network: &str,
    probe: &ProbeId,
    present: bool,
) -> sled::transaction::ConflictableTransactionResult<(), StoreError> {
    let key = owner_key(owner, network, probe);
    if index.get(&key)?.is_some() == present {
        return Ok(());
    }
    let count_key = owner_prefix(owner, network);
    let count = count_of(counts.get(&count_key)?.as_deref());
    let count = if present {
        index.insert(key, &[][..])?;
        count.saturating_add(1)
    } else {
        index.remove(key)?;
        count.saturating_sub(1)
    };
    counts.insert(count_key, &count.to_be_bytes()[..])?;
    Ok(())
}

fn transaction_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    }
}

/// Audit keys sort by time (sign bit flipped), then a unique id: two writes in the same
/// microsecond are both kept.
fn audit_key(entry: &AuditEntry, id: u64) -> Vec<u8> {
    let mut key = ((entry.at.0 as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    key
}

impl AuthTrees {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        Ok(Self {
            enrollment_tokens: tree("enrollment_tokens")?,
            api_tokens: tree("api_tokens")?,
            certificates: tree("certificates")?,
            audit: tree("audit")?,
            owner_index: tree("owner_index")?,
            owner_counts: tree("owner_counts")?,
            meta: tree("auth_meta")?,
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

    fn record_enrollment(&self, e: &NewEnrollment) -> Result<bool, StoreError> {
        let t = &self.auth;
        let audit_key = audit_key(&e.audit, self.db.generate_id().map_err(backend)?);
        let (used, audit) = (encode(&e.used)?, encode(&e.audit)?);
        let hash = e.token_hash.as_str();
        // One sled transaction over the five trees: all of it is written or none.
        (
            &t.enrollment_tokens,
            &t.certificates,
            &t.owner_index,
            &t.owner_counts,
            &t.audit,
        )
            .transaction(|(tokens, certificates, index, counts, log)| {
                let Some(current) = tokens.get(hash)? else {
                    return Ok(false);
                };
                // Compare decoded records, not bytes: equal records may be encoded differently.
                let decoded: EnrollmentTokenRecord = decode(hash.as_bytes(), &current)
                    .map_err(ConflictableTransactionError::Abort)?;
                if decoded != e.expected {
                    return Ok(false);
                }
                tokens.insert(hash.as_bytes(), used.as_slice())?;
                certificates.insert(e.fingerprint.as_bytes(), e.probe.as_str().as_bytes())?;
                for network in &e.networks {
                    set_owner_entry(index, counts, &e.owner, network, &e.probe, true)?;
                }
                log.insert(audit_key.as_slice(), audit.as_slice())?;
                Ok(true)
            })
            .map_err(transaction_error)
    }

    fn owner_probe_count(&self, owner: &str, network: &str) -> Result<usize, StoreError> {
        let count = self
            .auth
            .owner_counts
            .get(owner_prefix(owner, network))
            .map_err(backend)?;
        Ok(usize::try_from(count_of(count.as_deref())).unwrap_or(usize::MAX))
    }

    fn owner_has_probe(
        &self,
        owner: &str,
        network: &str,
        probe: &ProbeId,
    ) -> Result<bool, StoreError> {
        self.auth
            .owner_index
            .contains_key(owner_key(owner, network, probe))
            .map_err(backend)
    }

    fn index_owner_probe(
        &self,
        owner: &str,
        networks: &[String],
        probe: &ProbeId,
        present: bool,
    ) -> Result<(), StoreError> {
        let t = &self.auth;
        (&t.owner_index, &t.owner_counts)
            .transaction(|(index, counts)| {
                for network in networks {
                    set_owner_entry(index, counts, owner, network, probe, present)?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    fn owner_index_complete(&self) -> Result<bool, StoreError> {
        self.auth
            .meta
            .contains_key(OWNER_INDEX_COMPLETE)
            .map_err(backend)
    }

    fn mark_owner_index_complete(&self) -> Result<(), StoreError> {
        self.auth
            .meta
            .insert(OWNER_INDEX_COMPLETE, &[][..])
            .map_err(backend)?;
        Ok(())
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let key = audit_key(entry, self.db.generate_id().map_err(backend)?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::auth::{EnrollmentOutcome, owner_networks};
    use sixmap_shared::UnixMicros;

    fn token() -> EnrollmentTokenRecord {
        EnrollmentTokenRecord {
            id: "t1".into(),
            owner: "alice".into(),
            created_at: UnixMicros(1),
            created_by: "cli".into(),
            expires_at: None,
            used_at: None,
            used_by: None,
            revoked_at: None,
            enrollment: None,
        }
    }

    #[test]
    fn an_enrollment_is_recorded_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let fresh = token();
        store.put_enrollment_token("h1", &fresh).unwrap();
        let probe: ProbeId = "00000000000000b1".parse().unwrap();
        let networks = owner_networks("2001:db8:1:1::5".parse().unwrap(), None);
        let enrollment = NewEnrollment {
            token_hash: "h1".into(),
            expected: fresh.clone(),
            used: EnrollmentTokenRecord {
                used_at: Some(UnixMicros(2)),
                used_by: Some(probe.clone()),
                enrollment: Some(EnrollmentOutcome {
                    public_key_sha256: "k".into(),
                    certificate_hex: "00".into(),
                    enrolled_from: None,
                    enrolled_prefix: None,
                }),
                ..fresh.clone()
            },
            probe: probe.clone(),
            fingerprint: "f1".into(),
            owner: "alice".into(),
            networks: networks.clone(),
            audit: AuditEntry {
                at: UnixMicros(2),
                identity: "enrollment-token:t1 (owner alice)".into(),
                action: "enroll".into(),
                target: probe.to_string(),
                outcome: "ok".into(),
            },
        };
        assert!(store.record_enrollment(&enrollment).unwrap());
        assert_eq!(
            store.enrollment_token("h1").unwrap().unwrap().used_by,
            Some(probe.clone())
        );
        assert_eq!(store.certificate_probe("f1").unwrap(), Some(probe.clone()));
        assert_eq!(store.owner_probe_count("alice", &networks[0]).unwrap(), 1);
        assert!(
            store
                .owner_has_probe("alice", &networks[0], &probe)
                .unwrap()
        );
        assert_eq!(store.audit(10).unwrap()[0].outcome, "ok");
        // A second enrollment expecting the fresh token writes nothing at all.
        let other: ProbeId = "00000000000000b2".parse().unwrap();
        let late = NewEnrollment {
            probe: other.clone(),
            fingerprint: "f2".into(),
            ..enrollment
        };
        assert!(!store.record_enrollment(&late).unwrap());
        assert_eq!(store.certificate_probe("f2").unwrap(), None);
        assert_eq!(store.owner_probe_count("alice", &networks[0]).unwrap(), 1);
        assert!(
            !store
                .owner_has_probe("alice", &networks[0], &other)
                .unwrap()
        );
        assert_eq!(store.audit(10).unwrap().len(), 1);
        // Unindexing (revocation) frees the place, once however often it is done; other
        // owners are apart; indexing twice counts once.
        assert_eq!(store.owner_probe_count("bob", &networks[0]).unwrap(), 0);
        for _ in 0..2 {
            store
                .index_owner_probe("alice", &networks, &probe, false)
                .unwrap();
        }
        assert_eq!(store.owner_probe_count("alice", &networks[0]).unwrap(), 0);
        for _ in 0..2 {
            store
                .index_owner_probe("alice", &networks, &other, true)
                .unwrap();
        }
        assert_eq!(store.owner_probe_count("alice", &networks[0]).unwrap(), 1);
        assert!(!store.owner_index_complete().unwrap());
        store.mark_owner_index_complete().unwrap();
        assert!(store.owner_index_complete().unwrap());
    }
}
