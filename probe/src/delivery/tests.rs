//! Unit tests, and a model-based test: random sequences of produce / send / deliver / ack /
//! disconnect / crash, checked after every step against a model of the disk, the network and
//! the collector. Seeds are fixed so a failure replays exactly; the failing seed and the
//! operations are printed.

use super::*;
use std::collections::VecDeque;

fn probe() -> ProbeId {
    "00112233445566aa".parse().unwrap()
}

fn meta(bytes: u64, t: i64) -> EntryMeta {
    EntryMeta {
        bytes,
        started_at: UnixMicros(t),
    }
}

fn key(epoch: u64, sequence: u64) -> OutboxKey {
    OutboxKey {
        boot_epoch: epoch,
        sequence,
    }
}

#[test]
fn keys_sort_in_production_order_as_bytes() {
    let a = key(1, 300);
    let b = key(2, 1);
    assert!(a < b);
    assert!(a.to_bytes() < b.to_bytes());
    assert_eq!(OutboxKey::from_bytes(&b.to_bytes()), Some(b));
    assert_eq!(OutboxKey::from_bytes(&[1, 2, 3]), None);
}

#[test]
fn eviction_drops_the_oldest_and_records_it() {
    let mut d = Delivery::restore(probe(), 1, 250, [], []);
    assert!(d.produced(meta(100, 10), UnixMicros(1)).is_empty());
    assert!(d.produced(meta(100, 20), UnixMicros(2)).is_empty());
    let change = d.produced(meta(100, 30), UnixMicros(3));
    assert_eq!(change.evicted, vec![key(1, 1)]);
    assert_eq!(change.losses.len(), 1);
    let loss = &change.losses[0];
    assert_eq!(loss.count, 1);
    assert_eq!(loss.reason, LossReason::OutboxFull);
    assert_eq!(loss.first.as_ref().unwrap().sequence, 1);
    assert_eq!(loss.oldest_started_at, Some(UnixMicros(10)));
    // The next eviction extends the same, never-sent record.
    let change = d.produced(meta(100, 40), UnixMicros(4));
    assert_eq!(change.evicted, vec![key(1, 2)]);
    let loss = &change.losses[0];
    assert_eq!((loss.count, loss.bytes), (2, 200));
    assert_eq!(loss.last.as_ref().unwrap().sequence, 2);
    assert_eq!(loss.newest_started_at, Some(UnixMicros(20)));
    assert_eq!(d.pending_results(), 2);
    assert_eq!(d.pending_bytes(), 200);
}

#[test]
fn in_flight_results_are_never_evicted_and_sent_losses_never_change() {
    let mut d = Delivery::restore(probe(), 1, 150, [], []);
    d.produced(meta(100, 1), UnixMicros(1));
    let batch = d.next_batch(10, 1 << 20, 8).unwrap();
    assert_eq!(batch.results, vec![key(1, 1)]);
    // Over the bound, but the only older result is in flight.
    assert!(d.produced(meta(100, 2), UnixMicros(2)).is_empty());
    let change = d.produced(meta(100, 3), UnixMicros(3));
    assert_eq!(change.evicted, vec![key(1, 2)]);
    let first_loss = change.losses[0].key.clone();
    let batch2 = d.next_batch(10, 1 << 20, 8).unwrap();
    assert_eq!(batch2.losses, vec![OutboxKey::of(&first_loss)]);
    d.disconnected();
    // The record was sent once: a new eviction starts a new record.
    let change = d.produced(meta(100, 4), UnixMicros(4));
    assert_eq!(change.losses.len(), 1);
    assert_ne!(change.losses[0].key, first_loss);
}

#[test]
fn acks_release_only_what_they_name_from_that_batch() {
    let mut d = Delivery::restore(probe(), 3, 1 << 20, [], []);
    for t in 0..4 {
        d.produced(meta(10, t), UnixMicros(t));
    }
    let batch = d.next_batch(3, 1 << 20, 8).unwrap();
    assert_eq!(batch.results.len(), 3);
    // Key 4 was not in the batch: ignored. Key 2 was not named: sent again later.
    let released = d.acked(batch.batch_id, &[key(3, 1), key(3, 3), key(3, 4)], &[]);
    assert_eq!(released.results, vec![key(3, 1), key(3, 3)]);
    let again = d.next_batch(3, 1 << 20, 8).unwrap();
    assert_eq!(again.results, vec![key(3, 2), key(3, 4)]);
    assert_eq!(d.acked(99, &[key(3, 2)], &[]), Released::default());
}

#[test]
fn batches_respect_count_bytes_and_window() {
    let mut d = Delivery::restore(probe(), 1, 1 << 30, [], []);
    for t in 0..10 {
        d.produced(meta(1000, t), UnixMicros(t));
    }
    let b = d.next_batch(4, 2500, 2).unwrap();
    assert_eq!(b.results.len(), 2, "byte budget");
    let b = d.next_batch(1, 2500, 2).unwrap();
    assert_eq!(b.results.len(), 1, "count");
    assert!(d.next_batch(4, 2500, 2).is_none(), "window full");
    // A result larger than the budget still travels, alone.
    let mut d = Delivery::restore(probe(), 1, 1 << 30, [], []);
    d.produced(meta(5000, 0), UnixMicros(0));
    assert_eq!(d.next_batch(4, 100, 2).unwrap().results.len(), 1);
}

#[test]
fn restore_continues_with_what_the_disk_holds() {
    let old = [(key(1, 5), meta(10, 1)), (key(1, 6), meta(20, 2))];
    let mut d = Delivery::restore(probe(), 2, 1 << 20, old, []);
    assert_eq!(d.pending_results(), 2);
    assert_eq!(d.pending_bytes(), 30);
    assert_eq!(d.oldest_started_at(), Some(UnixMicros(1)));
    assert_eq!(d.next_key().boot_epoch, 2);
    assert_eq!(d.next_key().sequence, 1);
    let b = d.next_batch(10, 1 << 20, 8).unwrap();
    assert_eq!(b.results, vec![key(1, 5), key(1, 6)]);
}

#[test]
fn unreadable_and_corrupt_outboxes_are_recorded() {
    let mut d = Delivery::restore(probe(), 1, 1 << 20, [(key(1, 1), meta(10, 5))], []);
    let change = d.unreadable(key(1, 1), UnixMicros(9));
    assert_eq!(change.evicted, vec![key(1, 1)]);
    assert_eq!(change.losses[0].reason, LossReason::UnreadableEntry);
    assert_eq!(d.pending_results(), 0);
    let change = d.outbox_lost(
        LossReason::OutboxCorrupt,
        None,
        "moved aside".into(),
        UnixMicros(10),
    );
    assert_eq!(change.losses[0].reason, LossReason::OutboxCorrupt);
    assert_eq!(change.losses[0].count, 0);
    assert!(change.losses[0].count_unknown);
    assert_eq!(d.pending_losses().count(), 2);
    // Both records count in what only the outbox remembers.
    let undelivered = d.undelivered();
    assert_eq!(undelivered.count, 1);
    assert!(undelivered.count_unknown);
    assert_eq!(undelivered.first, Some(key(1, 1)));
}

// ---- model-based test ----

/// splitmix64: tiny, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Produce(u64),
    Send,
    /// The collector receives the oldest batch on the wire and stores it; the ack may be lost.
    Deliver {
        lose_ack: bool,
        reject_one: bool,
        omit_one: bool,
    },
    /// The probe receives the oldest ack on the wire.
    ReceiveAck,
    Disconnect,
    Crash,
}

fn pick(rng: &mut Rng) -> Op {
    match rng.below(100) {
        0..=39 => Op::Produce(50 + rng.below(400)),
        40..=59 => Op::Send,
        60..=79 => Op::Deliver {
            lose_ack: rng.below(10) == 0,
            reject_one: rng.below(20) == 0,
            omit_one: rng.below(10) == 0,
        },
        80..=93 => Op::ReceiveAck,
        94..=97 => Op::Disconnect,
        _ => Op::Crash,
    }
}

struct Ack {
    batch_id: u64,
    results: Vec<OutboxKey>,
    losses: Vec<OutboxKey>,
}

struct World {
    max_bytes: u64,
    epoch: u64,
    delivery: Delivery,
    /// What the probe's outbox holds: exactly what was persisted.
    disk_results: BTreeMap<OutboxKey, EntryMeta>,
    disk_losses: BTreeMap<OutboxKey, OutboxLoss>,
    /// Batches sent and not yet received by the collector, then acks on their way back.
    wire: VecDeque<BatchPlan>,
    acks: VecDeque<Ack>,
    /// Everything ever produced, and what happened to it.
    produced: BTreeMap<OutboxKey, EntryMeta>,
    evicted: BTreeSet<OutboxKey>,
    rejected: BTreeSet<OutboxKey>,
    /// The collector: first version of each key wins, like its dedup.
    stored_results: BTreeSet<OutboxKey>,
    stored_losses: BTreeMap<OutboxKey, OutboxLoss>,
    /// Results the collector stored whose ack never reached the probe.
    ack_lost: BTreeSet<OutboxKey>,
    clock: i64,
}

impl World {
    fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            epoch: 1,
            delivery: Delivery::restore(probe(), 1, max_bytes, [], []),
            disk_results: BTreeMap::new(),
            disk_losses: BTreeMap::new(),
            wire: VecDeque::new(),
            acks: VecDeque::new(),
            produced: BTreeMap::new(),
            evicted: BTreeSet::new(),
            rejected: BTreeSet::new(),
            stored_results: BTreeSet::new(),
            stored_losses: BTreeMap::new(),
            ack_lost: BTreeSet::new(),
            clock: 0,
        }
    }

    fn persist(&mut self, change: Change) {
        for key in change.evicted {
            assert!(
                self.disk_results.remove(&key).is_some(),
                "evicted {key:?} not on disk"
            );
            self.evicted.insert(key);
        }
        for loss in change.losses {
            self.disk_losses.insert(OutboxKey::of(&loss.key), loss);
        }
    }

    fn apply(&mut self, op: Op) {
        self.clock += 1;
        let now = UnixMicros(self.clock);
        match op {
            Op::Produce(bytes) => {
                let key = OutboxKey::of(&self.delivery.next_key());
                let meta = meta(bytes, self.clock);
                // The result is written in the same atomic write as the change it causes.
                self.disk_results.insert(key, meta);
                self.produced.insert(key, meta);
                let change = self.delivery.produced(meta, now);
                self.persist(change);
            }
            Op::Send => {
                if let Some(plan) = self.delivery.next_batch(4, 1000, 3) {
                    for k in &plan.results {
                        assert!(self.disk_results.contains_key(k), "sent {k:?} not on disk");
                    }
                    self.wire.push_back(plan);
                }
            }
            Op::Deliver {
                lose_ack,
                reject_one,
                omit_one,
            } => {
                let Some(plan) = self.wire.pop_front() else {
                    return;
                };
                let mut acked = Vec::new();
                for (i, k) in plan.results.iter().enumerate() {
                    if omit_one && i == 0 {
                        continue; // e.g. a storage error for this one: not named, resent later
                    }
                    if reject_one && i == plan.results.len() - 1 {
                        if !self.stored_results.contains(k) {
                            self.rejected.insert(*k);
                        }
                    } else {
                        self.stored_results.insert(*k);
                    }
                    acked.push(*k);
                }
                for k in &plan.losses {
                    let record = self.disk_losses.get(k).expect("sent loss on disk").clone();
                    self.stored_losses.entry(*k).or_insert(record);
                }
                if lose_ack {
                    self.ack_lost.extend(acked);
                } else {
                    self.acks.push_back(Ack {
                        batch_id: plan.batch_id,
                        results: acked,
                        losses: plan.losses.clone(),
                    });
                }
            }
            Op::ReceiveAck => {
                let Some(ack) = self.acks.pop_front() else {
                    return;
                };
                let released = self.delivery.acked(ack.batch_id, &ack.results, &ack.losses);
                for k in released.results {
                    assert!(
                        self.stored_results.contains(&k) || self.rejected.contains(&k),
                        "released {k:?} that the collector does not have"
                    );
                    self.disk_results.remove(&k);
                }
                for k in released.losses {
                    self.disk_losses.remove(&k);
                }
            }
            Op::Disconnect => {
                self.wire.clear();
                self.lose_acks_on_the_wire();
                self.delivery.disconnected();
            }
            Op::Crash => {
                self.wire.clear();
                self.lose_acks_on_the_wire();
                self.epoch += 1;
                self.delivery = Delivery::restore(
                    probe(),
                    self.epoch,
                    self.max_bytes,
                    self.disk_results.clone(),
                    self.disk_losses.values().cloned(),
                );
            }
        }
    }

    fn lose_acks_on_the_wire(&mut self) {
        for ack in self.acks.drain(..) {
            self.ack_lost.extend(ack.results);
        }
    }

    fn check(&self) {
        // Counted as lost yet delivered is only possible when the probe never heard the ack.
        for k in self.evicted.intersection(&self.stored_results) {
            assert!(
                self.ack_lost.contains(k),
                "{k:?} delivered and acked, yet evicted"
            );
        }
        for k in self.produced.keys() {
            let accounted = self.disk_results.contains_key(k)
                || self.stored_results.contains(k)
                || self.rejected.contains(k)
                || self.evicted.contains(k);
            assert!(accounted, "{k:?} vanished");
        }
        // A result is counted as lost only if it was never acked to the probe: evicted results
        // were not in flight. (It may still be at the collector if an ack was lost.)
        let mut loss_count = 0;
        for (k, l) in &self.disk_losses {
            if let Some(stored) = self.stored_losses.get(k) {
                assert_eq!(stored, l, "a loss record changed after it was sent");
            }
            loss_count += l.count;
        }
        loss_count += self
            .stored_losses
            .iter()
            .filter(|(k, _)| !self.disk_losses.contains_key(k))
            .map(|(_, l)| l.count)
            .sum::<u64>();
        assert_eq!(
            loss_count,
            self.evicted.len() as u64,
            "loss records vs evictions"
        );
        assert_eq!(self.delivery.pending_results(), self.disk_results.len());
        let disk_bytes: u64 = self.disk_results.values().map(|m| m.bytes).sum();
        assert_eq!(self.delivery.pending_bytes(), disk_bytes);
    }

    /// Reconnects and lets everything through until the outbox is empty.
    fn drain(&mut self) {
        self.apply(Op::Disconnect);
        for _ in 0..100_000 {
            if self.disk_results.is_empty() && self.disk_losses.is_empty() {
                return;
            }
            self.apply(Op::Send);
            self.apply(Op::Deliver {
                lose_ack: false,
                reject_one: false,
                omit_one: false,
            });
            self.apply(Op::ReceiveAck);
        }
        panic!("outbox did not drain");
    }
}

#[test]
fn model_random_operations_never_lose_or_miscount() {
    for seed in 0..400u64 {
        let mut rng = Rng(seed);
        // Small bounds force evictions; large ones exercise plain delivery.
        let max_bytes = [600, 2_000, 1 << 20][(seed % 3) as usize];
        let mut world = World::new(max_bytes);
        let mut trace = Vec::new();
        let steps = 50 + rng.below(400);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for _ in 0..steps {
                let op = pick(&mut rng);
                trace.push(op);
                world.apply(op);
                world.check();
            }
            world.drain();
            world.check();
            // Everything produced reached the collector, was rejected, or is counted as lost,
            // and every lost key lies inside a stored loss record's range.
            for k in world.produced.keys() {
                assert!(
                    world.stored_results.contains(k)
                        || world.rejected.contains(k)
                        || world.evicted.contains(k),
                    "{k:?} neither delivered nor counted as lost"
                );
            }
            for k in &world.evicted {
                let covered = world.stored_losses.values().any(|l| {
                    let (Some(first), Some(last)) = (&l.first, &l.last) else {
                        return false;
                    };
                    OutboxKey::of(first) <= *k && *k <= OutboxKey::of(last)
                });
                assert!(covered, "evicted {k:?} outside every loss record");
            }
            let stored_count: u64 = world.stored_losses.values().map(|l| l.count).sum();
            assert_eq!(stored_count, world.evicted.len() as u64);
        }));
        if let Err(panic) = outcome {
            eprintln!("seed {seed}, max_bytes {max_bytes}, operations: {trace:?}");
            std::panic::resume_unwind(panic);
        }
    }
}
