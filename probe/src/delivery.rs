//! The delivery state machine: which results wait in the outbox, which are on their way to the
//! collector, what to drop when the outbox is full, and what an ack releases.
//!
//! It does no I/O and never reads a clock: the outbox (`crate::outbox`) persists what this
//! decides, and the caller passes the time in. That keeps it testable deterministically,
//! including crashes (rebuild from what was persisted) — see the model-based test below.
//!
//! Guarantees, given that the caller persists every `Change` before acting on the next event:
//! - a result leaves the outbox only when the collector acked it (stored or rejected), or
//!   when it was evicted for space, and then a loss record that counts it is persisted in the
//!   same atomic write;
//! - results in flight are never evicted, so a result is never both delivered and counted
//!   as lost; the size bound can therefore be passed by at most the in-flight window.

use sixmap_shared::health::{LossReason, OutboxLoss};
use sixmap_shared::{BootEpoch, ProbeId, ResultKey, UnixMicros};
use std::collections::{BTreeMap, BTreeSet};

/// Position of a result (or a loss record) in production order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxKey {
    pub boot_epoch: BootEpoch,
    pub sequence: u64,
}

impl OutboxKey {
    pub fn of(key: &ResultKey) -> Self {
        Self {
            boot_epoch: key.boot_epoch,
            sequence: key.sequence,
        }
    }

    /// Big-endian bytes, so that byte order is production order in the store.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.boot_epoch.to_be_bytes());
        bytes[8..].copy_from_slice(&self.sequence.to_be_bytes());
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let epoch: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let sequence: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
        (bytes.len() == 16).then(|| Self {
            boot_epoch: u64::from_be_bytes(epoch),
            sequence: u64::from_be_bytes(sequence),
        })
    }
}

/// What the outbox holds undelivered: the summary the ledger records beside it (after every
/// commit and ack), so that losing the outbox is counted as a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Undelivered {
    /// Results waiting, plus results counted by loss records not yet delivered.
    pub count: u64,
    /// Some pending loss record has an unknown count.
    pub count_unknown: bool,
    pub bytes: u64,
    pub first: Option<OutboxKey>,
    pub last: Option<OutboxKey>,
    pub oldest_started_at: Option<UnixMicros>,
    pub newest_started_at: Option<UnixMicros>,
}

impl Undelivered {
    pub fn is_empty(&self) -> bool {
        self.count == 0 && !self.count_unknown
    }
}

/// What the outbox knows about a stored result without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    pub bytes: u64,
    pub started_at: UnixMicros,
}

/// What the caller must write, atomically, before the next event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Results to delete (evicted for space).
    pub evicted: Vec<OutboxKey>,
    /// Loss records to insert or overwrite.
    pub losses: Vec<OutboxLoss>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.evicted.is_empty() && self.losses.is_empty()
    }

    fn merge(&mut self, other: Change) {
        self.evicted.extend(other.evicted);
        for loss in other.losses {
            match self.losses.iter_mut().find(|l| l.key == loss.key) {
                Some(existing) => *existing = loss,
                None => self.losses.push(loss),
            }
        }
    }
}

/// A batch to send: which stored results and loss records it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    pub batch_id: u64,
    pub results: Vec<OutboxKey>,
    pub losses: Vec<OutboxKey>,
}

/// What an ack released: entries to delete from the store (no flush needed: if the delete is
/// lost in a crash, the result is sent again and the collector deduplicates it).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    pub results: Vec<OutboxKey>,
    pub losses: Vec<OutboxKey>,
}

#[derive(Debug, Clone, Default)]
struct InFlight {
    results: Vec<OutboxKey>,
    losses: Vec<OutboxKey>,
}

/// Bytes a batch's envelope may add per result (field tag, length prefix).
const PER_ENTRY_OVERHEAD: u64 = 11;

#[derive(Debug)]
pub struct Delivery {
    probe_id: ProbeId,
    boot_epoch: BootEpoch,
    max_bytes: u64,
    next_sequence: u64,
    next_loss_sequence: u64,
    next_batch: u64,
    entries: BTreeMap<OutboxKey, EntryMeta>,
    bytes: u64,
    losses: BTreeMap<OutboxKey, OutboxLoss>,
    in_flight: BTreeMap<u64, InFlight>,
    in_flight_results: BTreeSet<OutboxKey>,
    in_flight_losses: BTreeSet<OutboxKey>,
    /// Loss records that may have reached the collector: never modified again, because the
    /// collector keeps the first version it stores under a key.
    sealed_losses: BTreeSet<OutboxKey>,
    /// Results evicted since start, for status.
    evicted_total: u64,
}

impl Delivery {
    /// A state machine over what the outbox holds after a (re)start. `boot_epoch` must be new:
    /// sequences restart at 1 in it.
    pub fn restore(
        probe_id: ProbeId,
        boot_epoch: BootEpoch,
        max_bytes: u64,
        entries: impl IntoIterator<Item = (OutboxKey, EntryMeta)>,
        losses: impl IntoIterator<Item = OutboxLoss>,
    ) -> Self {
        let entries: BTreeMap<_, _> = entries.into_iter().collect();
        let losses: BTreeMap<_, _> = losses
            .into_iter()
            .map(|l| (OutboxKey::of(&l.key), l))
            .collect();
        let bytes = entries.values().map(|e| e.bytes).sum();
        Self {
            probe_id,
            boot_epoch,
            max_bytes,
            next_sequence: 1,
            next_loss_sequence: 1,
            next_batch: 1,
            entries,
            bytes,
            sealed_losses: losses.keys().copied().collect(),
            losses,
            in_flight: BTreeMap::new(),
            in_flight_results: BTreeSet::new(),
            in_flight_losses: BTreeSet::new(),
            evicted_total: 0,
        }
    }

    pub fn probe_id(&self) -> &ProbeId {
        &self.probe_id
    }

    /// The idempotency key the next result will get.
    pub fn next_key(&self) -> ResultKey {
        ResultKey {
            probe_id: self.probe_id.clone(),
            boot_epoch: self.boot_epoch,
            sequence: self.next_sequence,
        }
    }

    /// Records a result stored under `next_key()`, evicting the oldest results not in flight
    /// if the outbox is over its bound.
    pub fn produced(&mut self, meta: EntryMeta, now: UnixMicros) -> Change {
        let key = OutboxKey {
            boot_epoch: self.boot_epoch,
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        self.entries.insert(key, meta);
        self.bytes += meta.bytes;
        self.evict_to_bound(key, now)
    }

    fn evict_to_bound(&mut self, newest: OutboxKey, now: UnixMicros) -> Change {
        let mut change = Change::default();
        while self.bytes > self.max_bytes {
            // The newest result is kept even alone over the bound: dropping what was just
            // measured in favour of nothing helps no one.
            let victim = self
                .entries
                .keys()
                .find(|k| **k != newest && !self.in_flight_results.contains(k))
                .copied();
            let Some(victim) = victim else { break };
            let Some(meta) = self.entries.remove(&victim) else {
                break;
            };
            self.bytes -= meta.bytes;
            self.evicted_total += 1;
            change.evicted.push(victim);
            let loss = self.record_loss(LossReason::OutboxFull, victim, meta, now);
            change.merge(Change {
                evicted: Vec::new(),
                losses: vec![loss],
            });
        }
        change
    }

    /// Extends the newest never-sent loss record of the same reason, or starts a new one.
    fn record_loss(
        &mut self,
        reason: LossReason,
        victim: OutboxKey,
        meta: EntryMeta,
        now: UnixMicros,
    ) -> OutboxLoss {
        let victim_key = ResultKey {
            probe_id: self.probe_id.clone(),
            boot_epoch: victim.boot_epoch,
            sequence: victim.sequence,
        };
        let open = self
            .losses
            .iter_mut()
            .rev()
            .find(|(k, l)| !self.sealed_losses.contains(k) && l.reason == reason);
        if let Some((_, loss)) = open {
            loss.count += 1;
            loss.bytes += meta.bytes;
            if loss.first.as_ref().is_none_or(|f| victim_key < *f) {
                loss.first = Some(victim_key.clone());
            }
            if loss.last.as_ref().is_none_or(|l| victim_key > *l) {
                loss.last = Some(victim_key);
            }
            loss.oldest_started_at = Some(
                loss.oldest_started_at
                    .map_or(meta.started_at, |t| t.min(meta.started_at)),
            );
            loss.newest_started_at = Some(
                loss.newest_started_at
                    .map_or(meta.started_at, |t| t.max(meta.started_at)),
            );
            loss.recorded_at = now;
            return loss.clone();
        }
        let loss = OutboxLoss {
            key: self.new_loss_key(),
            reason,
            count: 1,
            count_unknown: false,
            bytes: meta.bytes,
            first: Some(victim_key.clone()),
            last: Some(victim_key),
            oldest_started_at: Some(meta.started_at),
            newest_started_at: Some(meta.started_at),
            recorded_at: now,
            detail: String::new(),
        };
        self.losses.insert(OutboxKey::of(&loss.key), loss.clone());
        loss
    }

    fn new_loss_key(&mut self) -> ResultKey {
        let key = ResultKey {
            probe_id: self.probe_id.clone(),
            boot_epoch: self.boot_epoch,
            sequence: self.next_loss_sequence,
        };
        self.next_loss_sequence += 1;
        key
    }

    /// Records that a whole earlier outbox was lost (unreadable and moved aside, or gone):
    /// `lost` is what the ledger says it held, `None` when nothing is known (count unknown).
    pub fn outbox_lost(
        &mut self,
        reason: LossReason,
        lost: Option<Undelivered>,
        detail: String,
        now: UnixMicros,
    ) -> Change {
        let lost = lost.unwrap_or(Undelivered {
            count_unknown: true,
            ..Undelivered::default()
        });
        let probe_id = self.probe_id.clone();
        let key = |k: OutboxKey| ResultKey {
            probe_id: probe_id.clone(),
            boot_epoch: k.boot_epoch,
            sequence: k.sequence,
        };
        let loss = OutboxLoss {
            key: self.new_loss_key(),
            reason,
            count: lost.count,
            count_unknown: lost.count_unknown,
            bytes: lost.bytes,
            first: lost.first.map(key),
            last: lost.last.map(key),
            oldest_started_at: lost.oldest_started_at,
            newest_started_at: lost.newest_started_at,
            recorded_at: now,
            detail,
        };
        self.losses.insert(OutboxKey::of(&loss.key), loss.clone());
        Change {
            evicted: Vec::new(),
            losses: vec![loss],
        }
    }

    /// A stored result could not be read back: it is dropped and counted as lost.
    pub fn unreadable(&mut self, key: OutboxKey, now: UnixMicros) -> Change {
        let Some(meta) = self.entries.remove(&key) else {
            return Change::default();
        };
        self.bytes -= meta.bytes;
        self.forget_in_flight(key);
        let loss = self.record_loss(LossReason::UnreadableEntry, key, meta, now);
        Change {
            evicted: vec![key],
            losses: vec![loss],
        }
    }

    fn forget_in_flight(&mut self, key: OutboxKey) {
        if self.in_flight_results.remove(&key) {
            for batch in self.in_flight.values_mut() {
                batch.results.retain(|k| *k != key);
            }
        }
    }

    /// Picks the next batch from what is neither acked nor in flight, oldest first, within
    /// `max_results` and `max_bytes`, or `None` if nothing waits or `max_in_flight` batches are
    /// already unacked.
    pub fn next_batch(
        &mut self,
        max_results: usize,
        max_bytes: u64,
        max_in_flight: usize,
    ) -> Option<BatchPlan> {
        if self.in_flight.len() >= max_in_flight {
            return None;
        }
        let max_results = max_results.max(1);
        let losses: Vec<OutboxKey> = self
            .losses
            .keys()
            .filter(|k| !self.in_flight_losses.contains(k))
            .take(max_results)
            .copied()
            .collect();
        let mut results = Vec::new();
        let mut bytes = 0;
        for (key, meta) in &self.entries {
            if results.len() == max_results {
                break;
            }
            if self.in_flight_results.contains(key) {
                continue;
            }
            let size = meta.bytes + PER_ENTRY_OVERHEAD;
            if !results.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            results.push(*key);
        }
        if results.is_empty() && losses.is_empty() {
            return None;
        }
        let batch_id = self.next_batch;
        self.next_batch += 1;
        self.in_flight_results.extend(results.iter().copied());
        self.in_flight_losses.extend(losses.iter().copied());
        self.sealed_losses.extend(losses.iter().copied());
        self.in_flight.insert(
            batch_id,
            InFlight {
                results: results.clone(),
                losses: losses.clone(),
            },
        );
        Some(BatchPlan {
            batch_id,
            results,
            losses,
        })
    }

    /// Applies an ack. Entries of the batch that the ack does not name stay and are sent again.
    /// Keys the ack names outside the batch are ignored: acks release only what was sent.
    pub fn acked(
        &mut self,
        batch_id: u64,
        stored_or_rejected: &[OutboxKey],
        stored_losses: &[OutboxKey],
    ) -> Released {
        let Some(batch) = self.in_flight.remove(&batch_id) else {
            return Released::default();
        };
        let mut released = Released::default();
        let named: BTreeSet<_> = stored_or_rejected.iter().copied().collect();
        for key in batch.results {
            self.in_flight_results.remove(&key);
            if named.contains(&key)
                && let Some(meta) = self.entries.remove(&key)
            {
                self.bytes -= meta.bytes;
                released.results.push(key);
            }
        }
        let named: BTreeSet<_> = stored_losses.iter().copied().collect();
        for key in batch.losses {
            self.in_flight_losses.remove(&key);
            if named.contains(&key) && self.losses.remove(&key).is_some() {
                self.sealed_losses.remove(&key);
                released.losses.push(key);
            }
        }
        released
    }

    /// The connection ended: nothing is in flight any more; everything waits to be resent.
    pub fn disconnected(&mut self) {
        self.in_flight.clear();
        self.in_flight_results.clear();
        self.in_flight_losses.clear();
    }

    pub fn pending_results(&self) -> usize {
        self.entries.len()
    }

    pub fn pending_bytes(&self) -> u64 {
        self.bytes
    }

    pub fn pending_losses(&self) -> impl Iterator<Item = &OutboxLoss> {
        self.losses.values()
    }

    pub fn loss(&self, key: OutboxKey) -> Option<&OutboxLoss> {
        self.losses.get(&key)
    }

    /// What only the outbox remembers: results waiting and results counted by loss records
    /// not yet delivered, for the ledger. Cheap (loss records are few): called at every
    /// commit. Times come from the first and last waiting result in key order.
    pub fn undelivered(&self) -> Undelivered {
        let first_entry = self.entries.first_key_value();
        let last_entry = self.entries.last_key_value();
        let losses = self.losses.values();
        let key = |k: &ResultKey| OutboxKey::of(k);
        Undelivered {
            count: self.entries.len() as u64 + losses.clone().map(|l| l.count).sum::<u64>(),
            count_unknown: losses.clone().any(|l| l.count_unknown),
            bytes: self.bytes + losses.clone().map(|l| l.bytes).sum::<u64>(),
            first: first_entry
                .map(|(k, _)| *k)
                .into_iter()
                .chain(losses.clone().filter_map(|l| l.first.as_ref().map(key)))
                .min(),
            last: last_entry
                .map(|(k, _)| *k)
                .into_iter()
                .chain(losses.clone().filter_map(|l| l.last.as_ref().map(key)))
                .max(),
            oldest_started_at: first_entry
                .map(|(_, m)| m.started_at)
                .into_iter()
                .chain(losses.clone().filter_map(|l| l.oldest_started_at))
                .min(),
            newest_started_at: last_entry
                .map(|(_, m)| m.started_at)
                .into_iter()
                .chain(losses.filter_map(|l| l.newest_started_at))
                .max(),
        }
    }

    pub fn oldest_started_at(&self) -> Option<UnixMicros> {
        self.entries.values().map(|e| e.started_at).min()
    }

    pub fn evicted_total(&self) -> u64 {
        self.evicted_total
    }

    pub fn batches_in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests;
