//! [`AuthStore`] on ClickHouse: tokens and certificate bindings as versioned records, the
//! audit log as appended rows. Single use of enrollment tokens rests on `claims`.
//!
//! The owner index is the `owner_probes` table: one versioned row per (owner, network,
//! probe) saying whether the probe counts, sorted by owner and network, so
//! [`AuthStore::owner_probe_count`] reads that owner's rows in that network only, whatever
//! the size of the fleet. An enrollment's rows (token, certificate binding, index entry,
//! audit) are written one after the other, not in a transaction; a retry of the enrollment
//! rewrites what a crash left out. The per-owner caps are atomic within one collector because
//! the enrollment gate (`enroll::gate::EnrollmentGate`) holds an enrollment's reservation until its
//! index entry and probe record are written (`control`); collectors sharing one ClickHouse
//! store do not see each other's enrollments in progress.

use super::ClickHouseStore;
use super::rows::{self, quote};
use crate::store::StoreError;
use crate::store::auth::{
    ApiTokenRecord, AuditEntry, AuthStore, EnrollmentTokenRecord, NewEnrollment,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sixmap_shared::ProbeId;

impl ClickHouseStore {
    fn put_secret_record<T: Serialize>(
        &self,
        name: &str,
        hash: &str,
        version: u64,
        record: &T,
    ) -> Result<(), StoreError> {
        self.insert_rows(
            name,
            &[json!({ "hash": hash, "version": version, "json": rows::to_json(record)? })],
        )
    }

    /// The newest version of a token record, with its version.
    fn secret_record<T: DeserializeOwned>(
        &self,
        name: &str,
        hash: &str,
    ) -> Result<Option<(u64, T)>, StoreError> {
        let table = self.table(name);
        self.select(&format!(
            "SELECT version, json FROM {table} WHERE hash = {} ORDER BY version DESC LIMIT 1 \
             FORMAT TabSeparated",
            quote(hash)
        ))?
        .into_iter()
        .next()
        .map(|fields| match <[Vec<u8>; 2]>::try_from(fields) {
            Ok([version, json]) => {
                Ok((rows::number(&table, &version)?, rows::json(&table, &json)?))
            }
            Err(_) => Err(rows::corrupt(&table, "expected version, json")),
        })
        .transpose()
    }

    fn secret_records<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let table = self.table(name);
        self.select(&format!(
            "SELECT hash, json FROM {table} ORDER BY hash, version DESC LIMIT 1 BY hash \
             FORMAT TabSeparated"
        ))?
        .into_iter()
        .map(|fields| match <[Vec<u8>; 2]>::try_from(fields) {
            Ok([hash, json]) => Ok((rows::text(&table, &hash)?, rows::json(&table, &json)?)),
            Err(_) => Err(rows::corrupt(&table, "expected hash, json")),
        })
        .collect()
    }
}

impl AuthStore for ClickHouseStore {
    fn put_enrollment_token(
        &self,
        hash: &str,
        token: &EnrollmentTokenRecord,
    ) -> Result<(), StoreError> {
        self.put_secret_record("enrollment_tokens", hash, self.versions.next(), token)
    }

    fn enrollment_token(&self, hash: &str) -> Result<Option<EnrollmentTokenRecord>, StoreError> {
        Ok(self
            .secret_record("enrollment_tokens", hash)?
            .map(|(_, record)| record))
    }

    fn enrollment_tokens(&self) -> Result<Vec<(String, EnrollmentTokenRecord)>, StoreError> {
        self.secret_records("enrollment_tokens")
    }

    fn replace_enrollment_token(
        &self,
        hash: &str,
        expected: &EnrollmentTokenRecord,
        new: &EnrollmentTokenRecord,
    ) -> Result<bool, StoreError> {
        let Some((version, current)) =
            self.secret_record::<EnrollmentTokenRecord>("enrollment_tokens", hash)?
        else {
            return Ok(false);
        };
        if &current != expected {
            return Ok(false);
        }
        // One claim per (token, stored version): of the collectors replacing this version,
        // at most one wins (see `claims`).
        if !self.claim("enrollment_token", &format!("{hash}/{version}"))? {
            return Ok(false);
        }
        self.put_secret_record(
            "enrollment_tokens",
            hash,
            self.versions.next().max(version + 1),
            new,
        )?;
        Ok(true)
    }

    fn put_api_token(&self, hash: &str, token: &ApiTokenRecord) -> Result<(), StoreError> {
        self.put_secret_record("api_tokens", hash, self.versions.next(), token)
    }

    fn api_token(&self, hash: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        Ok(self
            .secret_record("api_tokens", hash)?
            .map(|(_, record)| record))
    }

    fn api_tokens(&self) -> Result<Vec<(String, ApiTokenRecord)>, StoreError> {
        self.secret_records("api_tokens")
    }

    fn bind_certificate(&self, fingerprint: &str, probe: &ProbeId) -> Result<(), StoreError> {
        self.insert_rows(
            "certificates",
            &[json!({
                "fingerprint": fingerprint,
                "version": self.versions.next(),
                "probe_id": probe.as_str(),
            })],
        )
    }

    fn certificate_probe(&self, fingerprint: &str) -> Result<Option<ProbeId>, StoreError> {
        let table = self.table("certificates");
        self.select(&format!(
            "SELECT probe_id FROM {table} WHERE fingerprint = {} ORDER BY version DESC \
             LIMIT 1 FORMAT TabSeparated",
            quote(fingerprint)
        ))?
        .into_iter()
        .next()
        .map(|fields| {
            rows::text(&table, fields.first().map_or(&[][..], Vec::as_slice))?
                .parse::<ProbeId>()
                .map_err(|e| rows::corrupt(&table, e))
        })
        .transpose()
    }

    fn record_enrollment(&self, e: &NewEnrollment) -> Result<bool, StoreError> {
        // The token's claim decides; the rest follows (and is rewritten by a retry).
        if !self.replace_enrollment_token(&e.token_hash, &e.expected, &e.used)? {
            return Ok(false);
        }
        self.bind_certificate(&e.fingerprint, &e.probe)?;
        self.index_owner_probe(&e.owner, &e.networks, &e.probe, true)?;
        self.append_audit(&e.audit)?;
        Ok(true)
    }

    fn owner_probe_count(&self, owner: &str, network: &str) -> Result<usize, StoreError> {
        let table = self.table("owner_probes");
        let answer = self.client.query(&format!(
            "SELECT count() FROM (SELECT argMax(present, version) AS counted FROM {table} \
             WHERE owner = {} AND network = {} GROUP BY probe_id) WHERE counted = 1 \
             FORMAT TabSeparated",
            quote(owner),
            quote(network)
        ))?;
        rows::number(&table, answer.trim().as_bytes())
    }

    fn owner_has_probe(
        &self,
        owner: &str,
        network: &str,
        probe: &ProbeId,
    ) -> Result<bool, StoreError> {
        let table = self.table("owner_probes");
        let answer = self.client.query(&format!(
            "SELECT argMax(present, version) FROM {table} \
             WHERE owner = {} AND network = {} AND probe_id = {} FORMAT TabSeparated",
            quote(owner),
            quote(network),
            quote(probe.as_str())
        ))?;
        Ok(answer.trim() == "1")
    }

    fn index_owner_probe(
        &self,
        owner: &str,
        networks: &[String],
        probe: &ProbeId,
        present: bool,
    ) -> Result<(), StoreError> {
        if networks.is_empty() {
            return Ok(());
        }
        let version = self.versions.next();
        let entries: Vec<serde_json::Value> = networks
            .iter()
            .map(|network| {
                json!({
                    "owner": owner,
                    "network": network,
                    "probe_id": probe.as_str(),
                    "version": version,
                    "present": u8::from(present),
                })
            })
            .collect();
        self.insert_rows("owner_probes", &entries)
    }

    fn owner_index_complete(&self) -> Result<bool, StoreError> {
        let table = self.table("markers");
        let answer = self.client.query(&format!(
            "SELECT count() FROM {table} WHERE name = 'owner_index_complete' FORMAT TabSeparated"
        ))?;
        Ok(answer.trim() != "0")
    }

    fn mark_owner_index_complete(&self) -> Result<(), StoreError> {
        self.insert_rows(
            "markers",
            &[json!({ "name": "owner_index_complete", "version": self.versions.next() })],
        )
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.insert_rows(
            "audit",
            &[json!({
                "at": entry.at.0,
                "nonce": self.append_nonce()?,
                "json": rows::to_json(entry)?,
            })],
        )
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let table = self.table("audit");
        self.select_json(
            &table,
            &format!(
                "SELECT json FROM {table} ORDER BY at DESC, nonce DESC LIMIT 1 BY at, nonce \
                 LIMIT {limit} FORMAT TabSeparated"
            ),
        )
    }
}
