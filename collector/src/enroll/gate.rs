//! The per-owner enrollment caps, made atomic within this collector.

use crate::store::auth::{owner_networks, site_of};
use crate::store::{Store, StoreError};
use sixmap_shared::ProbeId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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
    networks: Vec<String>,
    probe: ProbeId,
}

/// One owner's enrollments in progress. Its lock is the owner's critical section: cap checks
/// and reservations hold it, so they are atomic for that owner.
type OwnerPending = Arc<Mutex<Vec<Pending>>>;

/// Makes the per-owner caps atomic within this collector: the cap check counts the owner's
/// stored probes (a counter kept with the owner index: one read, whatever the size of the
/// fleet) plus the enrollments that passed the check but are not stored yet, and registers
/// the new one, under that owner's lock. Of 60 parallel enrollments of one owner against a
/// cap of 3, exactly 3 pass.
///
/// The lock is per owner because the caps are, and it is not held through the write that
/// stores a probe (see [`Reservation::commit`]): on ClickHouse that write waits about a second
/// for its claim to settle, and one lock through it let one enrollment per second through the
/// whole collector (or per owner). Owners' entries leave the map when nobody holds or waits for them, so the map
/// is as large as the enrollments in flight, not the set of owners ever seen.
///
/// Collectors sharing a ClickHouse store each apply this to their own enrollments only: a
/// cap can then be exceeded by enrollments racing at different collectors (documented in
/// docs/security.md).
#[derive(Debug, Default)]
pub struct EnrollmentGate {
    owners: Mutex<HashMap<String, OwnerPending>>,
    /// Held while `complete_owner_index` runs, so it runs once even if the first enrollments
    /// of several owners arrive together.
    index_lock: Mutex<()>,
    /// Whether `complete_owner_index` ran in this process.
    index_checked: AtomicBool,
}

/// A passed cap check; dropping it (once the probe is stored, or the enrollment failed)
/// leaves the count to the store.
#[derive(Debug)]
pub struct Reservation {
    gate: Arc<EnrollmentGate>,
    owner: String,
    /// `Some` until dropped: `Drop` hands it back to the gate.
    pending: Option<OwnerPending>,
    probe: ProbeId,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            lock(&pending).retain(|p| p.probe != self.probe);
            self.gate.release(&self.owner, pending);
        }
    }
}

impl Reservation {
    /// Runs `store_it` (the write that puts the probe into the owner index), then ends the
    /// reservation. The write runs outside the owner's lock: on ClickHouse it waits about a
    /// second for its token claim to settle, and holding the lock through it let one
    /// enrollment per second through per owner (a fleet enrolled under one owner took
    /// minutes). A cap check meanwhile sees the probe pending until it is in the index, and
    /// the reservation stays until the write has returned, so the enrollment is always
    /// counted (see `reserve`).
    pub fn commit<T>(self, store_it: impl FnOnce() -> T) -> T {
        store_it()
        // `Drop` takes the probe out of the pending list and releases the owner's entry.
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The state stays consistent even if a holder panicked (each change is one call).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EnrollmentGate {
    /// The owner's pending list, created if the owner has none in flight. The caller must
    /// hand it back with [`release`](Self::release).
    fn acquire(&self, owner: &str) -> OwnerPending {
        lock(&self.owners)
            .entry(owner.to_owned())
            .or_default()
            .clone()
    }

    /// Hands back the owner's entry from [`acquire`](Self::acquire), and removes it from the
    /// map if nobody else holds it (no reservation, no cap check in progress) and nothing is
    /// pending. The caller must not hold `pending`'s lock.
    fn release(&self, owner: &str, pending: OwnerPending) {
        let mut owners = lock(&self.owners);
        // Under the map's lock no new holder can appear; two references are the map's and
        // the caller's, so nobody else can hold the inner lock and taking it cannot block.
        if Arc::strong_count(&pending) == 2 && lock(&pending).is_empty() {
            owners.remove(owner);
        }
        // The caller's reference goes while the map is still locked: of two holders releasing
        // at once, the second then sees itself as the last and removes the entry.
        drop(pending);
        drop(owners);
    }

    /// How many owners have an entry (enrollments in flight); for tests of the cleanup.
    #[cfg(test)]
    fn owners_in_flight(&self) -> usize {
        lock(&self.owners).len()
    }

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
        if !self.index_checked.load(Ordering::Acquire) {
            let _building = lock(&self.index_lock);
            if !self.index_checked.load(Ordering::Acquire) {
                complete_owner_index(store)?;
                self.index_checked.store(true, Ordering::Release);
            }
        }
        let owner_pending = self.acquire(owner);
        // The cap check under the owner's lock; registers `probe` as pending if it passes.
        let check = || -> Result<Result<(), String>, StoreError> {
            let mut pending = lock(&owner_pending);
            let networks = owner_networks(from, prefix);
            let site = site_of(from);
            for (network, cap) in networks.iter().zip([caps.per_64, caps.per_routed_prefix]) {
                // Enrollments in progress whose probe is not in the index yet, then the
                // index's counter: in this order, a write landing meanwhile is counted twice
                // at worst, never nowhere. Pending entries leave only under this lock, after
                // their write (`commit`).
                // The counter is read before and after: when it moved, a write landed in
                // between and may be counted twice, so the check is made again (a spurious
                // refusal ends a probe for good: exit status 78). After a few tries the
                // double-counting answer stands, which errs on the side of the cap.
                let mut count = 0;
                for _ in 0..4 {
                    let before = store.owner_probe_count(owner, network)?;
                    let mut unstored = 0;
                    for p in pending.iter().filter(|p| p.networks.contains(network)) {
                        if !store.owner_has_probe(owner, network, &p.probe)? {
                            unstored += 1;
                        }
                    }
                    let after = store.owner_probe_count(owner, network)?;
                    count = unstored + after;
                    if before == after {
                        break;
                    }
                }
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
                networks,
                probe: probe.clone(),
            });
            Ok(Ok(()))
        };
        match check() {
            Ok(Ok(())) => Ok(Ok(Reservation {
                gate: self.clone(),
                owner: owner.to_owned(),
                pending: Some(owner_pending),
                probe: probe.clone(),
            })),
            Ok(Err(refusal)) => {
                self.release(owner, owner_pending);
                Ok(Err(refusal))
            }
            Err(e) => {
                self.release(owner, owner_pending);
                Err(e)
            }
        }
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
            owner: Some(owner.into()),
            enrolled_from: Some(from.parse().unwrap()),
            enrolled_prefix: Some(("2001:db8::".parse().unwrap(), 32)),
            ..ProbeRecord::new(ProbeId::random().unwrap(), String::new(), UnixMicros(0))
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
    /// The gate serialises one owner's enrollments, not everybody's: while owner A's store
    /// write is in progress (on ClickHouse about a second per enrollment), owner B's
    /// enrollment is checked and stored. With one lock for all owners, B waited for A.
    #[test]
    fn owners_enroll_in_parallel_and_leave_no_entry_behind() {
        use std::sync::mpsc;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let caps = EnrollmentCaps {
            per_64: 1,
            per_routed_prefix: 1,
        };
        let gate = Arc::new(EnrollmentGate::default());
        let from: IpAddr = "2001:db8:1:1::9".parse().unwrap();
        let (inside_tx, inside_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let (gate_ref, store) = (&gate, &store);
        std::thread::scope(|s| {
            let gate = gate_ref;
            let a = s.spawn(move || {
                let held = gate
                    .reserve(
                        store,
                        "alice",
                        from,
                        None,
                        caps,
                        &ProbeId::random().unwrap(),
                    )
                    .unwrap()
                    .unwrap();
                held.commit(|| {
                    inside_tx.send(()).unwrap();
                    // Holds alice's critical section until the test lets go.
                    let _ = go_rx.recv();
                });
            });
            inside_rx.recv().unwrap();
            let b = s.spawn(move || {
                let bob = gate
                    .reserve(store, "bob", from, None, caps, &ProbeId::random().unwrap())
                    .unwrap()
                    .unwrap();
                bob.commit(|| ());
                let _ = done_tx.send(());
            });
            // Bob, from the same /64, enrolls meanwhile. The timeout only ends the test when
            // the gate is shared: bob then waits for alice's write, which never ends by itself.
            let bob_done = done_rx.recv_timeout(Duration::from_secs(30));
            go_tx.send(()).unwrap();
            a.join().unwrap();
            b.join().unwrap();
            assert!(
                bob_done.is_ok(),
                "bob's enrollment waited for alice's store write"
            );
        });
        // Entries live only while an owner has enrollments in flight.
        assert_eq!(gate.owners_in_flight(), 0);
    }

    /// One owner's enrollments overlap too (ClickHouse's write waits about a second each),
    /// and the count stays exact: a probe whose write has landed in the index while it is
    /// still pending counts once, and a pending one not yet written counts as well.
    #[test]
    fn one_owners_enrollments_overlap_and_each_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let caps = EnrollmentCaps {
            per_64: 2,
            per_routed_prefix: 10,
        };
        let gate = Arc::new(EnrollmentGate::default());
        let from: IpAddr = "2001:db8:1:1::9".parse().unwrap();
        let networks = owner_networks(from, None);
        let first = ProbeId::random().unwrap();
        let reserve = |id: &ProbeId| gate.reserve(&store, "alice", from, None, caps, id).unwrap();
        let held = reserve(&first).unwrap();
        held.commit(|| {
            // Alice's first write lands in the index and has not returned yet.
            store
                .index_owner_probe("alice", &networks, &first, true)
                .unwrap();
            // Her second enrollment is checked meanwhile: the first counts once, so there is
            // room for it.
            let second = reserve(&ProbeId::random().unwrap()).expect("room for a second probe");
            // A third is refused: one stored, one pending.
            let refusal = reserve(&ProbeId::random().unwrap()).unwrap_err();
            assert!(refusal.contains("already has 2 probes"), "{refusal}");
            drop(second);
        });
        // The first is stored: one more fits, not two.
        let again = reserve(&ProbeId::random().unwrap()).unwrap();
        assert!(reserve(&ProbeId::random().unwrap()).is_err());
        drop(again);
        assert_eq!(gate.owners_in_flight(), 0);
    }
}
