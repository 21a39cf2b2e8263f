//! The per-owner enrollment caps, made atomic within this collector.

use crate::store::auth::{owner_networks, site_of};
use crate::store::{Store, StoreError};
use sixmap_shared::ProbeId;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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
    use super::super::token::{from_hex, to_hex};
    use super::*;
    use crate::store::{AuthStore, ProbeRecord};
    use sixmap_shared::UnixMicros;

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
        crate::auth::revoke_probe(&store, &existing[0].id, UnixMicros(1)).unwrap();
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
}
