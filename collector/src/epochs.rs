//! Boot epochs a probe skipped: flagged as a loss record of unknown count made by the
//! collector (reason `epoch_gap`), so a gap in a probe's key space is visible in
//! `/api/v1/losses` even when the probe itself could not say what happened (its state
//! directory was reset, its outbox and ledger both lost).
//!
//! Each hello carries the probe's boot epoch, which grows by one at every start that got
//! past opening its outbox. When a hello's epoch is more than one above the last hello's,
//! the epochs between never said hello to any collector of this store; when it is below,
//! the probe's boot counter went back and its new keys may collide with stored ones (a
//! collision is taken as a duplicate and dropped). Both are recorded once, under a key no
//! probe uses (sequence `GAP_SEQUENCE` in the new epoch), so a repeated hello stores nothing
//! new. The record's count is 0 and marked unknown: it never adds to `lost_results`, so when
//! the probe's own loss record for those epochs arrives it is not counted twice.

use crate::store::{Store, StoreError};
use sixmap_shared::health::{LossReason, OutboxLoss};
use sixmap_shared::{BootEpoch, ProbeId, ResultKey, UnixMicros};

/// Sequence of collector-made loss records: above anything a probe produces, and exact in
/// JSON clients that read numbers as doubles.
pub const GAP_SEQUENCE: u64 = (1 << 53) - 1;

/// The loss record to store when a probe's hello says `current` after `previous`, if any.
pub fn gap(
    probe: &ProbeId,
    previous: Option<BootEpoch>,
    current: BootEpoch,
    now: UnixMicros,
) -> Option<OutboxLoss> {
    let previous = previous?;
    let key = |boot_epoch, sequence| ResultKey {
        probe_id: probe.clone(),
        boot_epoch,
        sequence,
    };
    let (first, last, detail) = if current > previous.saturating_add(1) {
        let (from, to) = (previous + 1, current - 1);
        (
            key(from, 1),
            key(to, GAP_SEQUENCE),
            format!(
                "boot epochs {from}..={to} never said hello to this collector (epoch {previous}, then {current}); any results they produced are unaccounted unless the probe delivers them or its own loss record covers them"
            ),
        )
    } else if current < previous {
        (
            key(current, 1),
            key(previous, GAP_SEQUENCE),
            format!(
                "boot epoch went back from {previous} to {current} (state directory reset or restored?): new results whose keys were already stored are taken as duplicates and dropped"
            ),
        )
    } else {
        return None;
    };
    Some(OutboxLoss {
        key: key(current, GAP_SEQUENCE),
        reason: LossReason::EpochGap,
        count: 0,
        count_unknown: true,
        bytes: 0,
        first: Some(first),
        last: Some(last),
        oldest_started_at: None,
        newest_started_at: None,
        recorded_at: now,
        detail,
    })
}

/// Stores a gap record (first version wins, so a repeated hello changes nothing).
pub fn record(store: &dyn Store, loss: OutboxLoss) -> Result<(), StoreError> {
    tracing::warn!(probe = %loss.key.probe_id, detail = %loss.detail, "probe boot epochs skipped");
    store.insert_losses(&[loss]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> ProbeId {
        "0123456789abcdef".parse().unwrap()
    }

    #[test]
    fn only_jumps_and_regressions_are_gaps() {
        let now = UnixMicros(5);
        assert_eq!(gap(&probe(), None, 7, now), None);
        assert_eq!(gap(&probe(), Some(6), 7, now), None);
        assert_eq!(gap(&probe(), Some(7), 7, now), None);
        let jump = gap(&probe(), Some(3), 7, now).unwrap();
        assert_eq!(jump.reason, LossReason::EpochGap);
        assert_eq!((jump.count, jump.count_unknown), (0, true));
        assert_eq!(jump.key.boot_epoch, 7);
        assert_eq!(jump.key.sequence, GAP_SEQUENCE);
        let first = jump.first.unwrap();
        let last = jump.last.unwrap();
        assert_eq!((first.boot_epoch, last.boot_epoch), (4, 6));
        let back = gap(&probe(), Some(9), 2, now).unwrap();
        assert_eq!(back.first.as_ref().unwrap().boot_epoch, 2);
        assert!(back.detail.contains("went back"), "{}", back.detail);
        // It travels the query service like any loss record.
        let wire = sixmap_proto::encode::loss(&back);
        assert_eq!(sixmap_proto::decode::loss(&wire).unwrap(), back);
    }

    /// What `/api/v1/losses` serves: the record once however often the hello repeats, with
    /// nothing added to the lost-result sum, beside the probe's own record when it comes.
    #[test]
    fn a_gap_is_stored_once_and_never_counted_twice() {
        use crate::store::{ResultQuery, SledStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        for _ in 0..3 {
            record(&store, gap(&probe(), Some(2), 6, UnixMicros(9)).unwrap()).unwrap();
        }
        let own = OutboxLoss {
            key: ResultKey {
                probe_id: probe(),
                boot_epoch: 6,
                sequence: 1,
            },
            reason: LossReason::OutboxMissing,
            count: 40,
            count_unknown: false,
            bytes: 0,
            first: None,
            last: None,
            oldest_started_at: None,
            newest_started_at: None,
            recorded_at: UnixMicros(10),
            detail: String::new(),
        };
        store.insert_losses(&[own]).unwrap();
        let losses = store
            .losses(&ResultQuery {
                probe: Some(probe()),
                limit: 100,
            })
            .unwrap();
        assert_eq!(losses.len(), 2, "{losses:?}");
        let gaps: Vec<_> = losses
            .iter()
            .filter(|l| l.reason == LossReason::EpochGap)
            .collect();
        assert_eq!(gaps.len(), 1);
        assert!(gaps[0].count_unknown);
        assert_eq!(losses.iter().map(|l| l.count).sum::<u64>(), 40);
    }
}
