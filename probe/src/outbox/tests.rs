use super::*;
use crate::ledger::Ledger;
use sixmap_shared::TaskId;
use sixmap_shared::health::LossReason;
use sixmap_shared::measurement::{
    ClockInfo, ClockState, Family, IcmpError, IcmpSocketKind, Outcome, PingReply, PingResult,
    TimestampSource,
};
use sixmap_shared::session::{MAX_BATCH_RESULTS, ProbeMessage, Rejection};
use std::net::IpAddr;

/// A boot epoch source for `Outbox::open`.
fn epoch(n: BootEpoch) -> impl FnOnce() -> Result<BootEpoch, StateError> {
    move || Ok(n)
}

fn probe() -> ProbeId {
    "0a0b0c0d0e0f1011".parse().unwrap()
}

/// A ping result; `big` makes it the largest a probe can produce.
fn result(key: ResultKey, started_at: i64, big: bool) -> MeasurementResult {
    let far: IpAddr = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
    let (replies, errors) = if big {
        (
            (0..64)
                .map(|sequence| PingReply {
                    sequence,
                    rtt_ns: u64::MAX,
                    hop_limit: Some(255),
                    duplicate: false,
                    from: far,
                })
                .collect(),
            (0..256)
                .map(|_| IcmpError {
                    icmp_type: 255,
                    icmp_code: 255,
                    from: far,
                    mtu: Some(u32::MAX),
                })
                .collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    MeasurementResult {
        key,
        task_id: TaskId::new(7).unwrap(),
        started_at: UnixMicros(started_at),
        duration_us: 5,
        family_requested: Family::V6,
        family_used: Some(Family::V6),
        source: Some(far),
        destination: Some(far),
        software_version: "0.1.0".into(),
        clock: ClockInfo {
            state: ClockState::Synchronized,
            offset_us: Some(-3),
        },
        outcome: Outcome::Ping(PingResult {
            sent: if big { 64 } else { 1 },
            received: if big { 64 } else { 0 },
            replies,
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Raw,
            errors,
        }),
    }
}

fn produce(outbox: &mut Outbox, n: usize, big: bool) -> Vec<ResultKey> {
    let mut keys = Vec::new();
    for i in 0..n {
        let key = outbox.next_key();
        outbox.stage(&result(key.clone(), 1000 + i as i64, big), UnixMicros(1));
        keys.push(key);
    }
    outbox.commit().unwrap();
    keys
}

fn ack_all(batch: &ResultBatch) -> Ack {
    Ack {
        batch_id: batch.batch_id,
        stored: batch.results.iter().map(|r| r.key.clone()).collect(),
        rejected: Vec::new(),
        stored_losses: batch.losses.iter().map(|l| l.key.clone()).collect(),
    }
}

#[test]
fn results_survive_restart_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut outbox =
            Outbox::open(dir.path(), &probe(), epoch(1), 1 << 20, UnixMicros(1)).unwrap();
        produce(&mut outbox, 3, false);
        // Sent but never acked: the crash (drop) keeps them.
        assert!(outbox.next_batch(10, 8, UnixMicros(2)).unwrap().is_some());
    }
    let mut outbox = Outbox::open(dir.path(), &probe(), epoch(2), 1 << 20, UnixMicros(3)).unwrap();
    assert_eq!(outbox.stats().results, 3);
    assert_eq!(outbox.stats().oldest_started_at, Some(UnixMicros(1000)));
    assert_eq!(outbox.next_key().boot_epoch, 2);
    let batch = outbox.next_batch(2, 8, UnixMicros(4)).unwrap().unwrap();
    assert_eq!(batch.results.len(), 2);
    let sent = &batch.results[0];
    assert_eq!(*sent, result(sent.key.clone(), 1000, false));
    // One stored, one rejected: both leave. The third was never sent.
    let mut ack = ack_all(&batch);
    let rejected = ack.stored.pop().unwrap();
    ack.rejected.push(Rejection {
        key: rejected,
        reason: "bad".into(),
    });
    outbox.acked(&ack).unwrap();
    assert_eq!(outbox.stats().results, 1);
    drop(outbox);
    let outbox = Outbox::open(dir.path(), &probe(), epoch(3), 1 << 20, UnixMicros(5)).unwrap();
    assert_eq!(outbox.stats().results, 1);
    drop(outbox);
    assert_eq!(inspect(dir.path()).unwrap().unwrap().results, 1);
}

#[test]
fn a_full_batch_of_the_largest_results_fits_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(dir.path(), &probe(), epoch(1), 1 << 30, UnixMicros(1)).unwrap();
    produce(&mut outbox, MAX_BATCH_RESULTS * 2, true);
    let mut sent = 0;
    while let Some(batch) = outbox
        .next_batch(MAX_BATCH_RESULTS, usize::MAX, UnixMicros(2))
        .unwrap()
    {
        sent += batch.results.len();
        let len = encode::probe_message_len(&ProbeMessage::Results(batch));
        assert!(len <= MAX_MESSAGE_BYTES, "{len}");
    }
    assert_eq!(sent, MAX_BATCH_RESULTS * 2);
}

#[test]
fn overflow_is_recorded_persisted_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let bound = MIN_MAX_BYTES;
    let keys;
    {
        let mut outbox =
            Outbox::open(dir.path(), &probe(), epoch(1), bound, UnixMicros(1)).unwrap();
        keys = produce(&mut outbox, 2000, false);
        let stats = outbox.stats();
        assert!(stats.bytes <= bound, "{stats:?}");
        assert!(stats.evicted_since_start > 0);
        assert_eq!(stats.results + stats.evicted_since_start, 2000);
    }
    let mut outbox = Outbox::open(dir.path(), &probe(), epoch(2), bound, UnixMicros(2)).unwrap();
    let losses = outbox.pending_losses();
    assert_eq!(losses.len(), 1);
    let loss = &losses[0];
    let kept = outbox.stats().results;
    assert_eq!(loss.reason, LossReason::OutboxFull, "{loss:?}");
    assert_eq!(loss.count + kept, 2000);
    assert_eq!(loss.first.as_ref(), Some(&keys[0]));
    assert_eq!(loss.last.as_ref(), Some(&keys[loss.count as usize - 1]));
    assert_eq!(loss.oldest_started_at, Some(UnixMicros(1000)));
    // The loss record travels with the first batch and leaves when acked.
    let batch = outbox.next_batch(10, 8, UnixMicros(3)).unwrap().unwrap();
    assert_eq!(batch.losses.len(), 1);
    outbox.acked(&ack_all(&batch)).unwrap();
    assert!(outbox.pending_losses().is_empty());
}

#[test]
fn a_corrupt_outbox_is_moved_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut outbox =
            Outbox::open(dir.path(), &probe(), epoch(1), 1 << 20, UnixMicros(1)).unwrap();
        produce(&mut outbox, 5, false);
    }
    // Overwrite every file of the store with garbage.
    for entry in walk(&dir.path().join(DIR_NAME)) {
        std::fs::write(&entry, vec![0xa5; 4096]).unwrap();
    }
    let outbox = Outbox::open(dir.path(), &probe(), epoch(2), 1 << 20, UnixMicros(77)).unwrap();
    let losses = outbox.pending_losses();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert_eq!(losses[0].reason, LossReason::OutboxCorrupt);
    assert!(
        losses[0].detail.contains("outbox.corrupt-77"),
        "{}",
        losses[0].detail
    );
    assert!(dir.path().join("outbox.corrupt-77").exists());
    assert_eq!(outbox.stats().results, 0);
}

#[test]
fn an_outbox_of_another_identity_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut outbox =
            Outbox::open(dir.path(), &probe(), epoch(1), 1 << 20, UnixMicros(1)).unwrap();
        produce(&mut outbox, 2, false);
    }
    let other: ProbeId = "ffffffffffffffff".parse().unwrap();
    let outbox = Outbox::open(dir.path(), &other, epoch(1), 1 << 20, UnixMicros(9)).unwrap();
    assert_eq!(outbox.stats().results, 0);
    assert!(dir.path().join("outbox.probe-0a0b0c0d0e0f1011-9").exists());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn an_outbox_held_by_another_handle_is_an_error_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Outbox::open(dir.path(), &probe(), epoch(1), 1 << 20, UnixMicros(1)).unwrap();
    let started = std::time::Instant::now();
    // sled's lock is per process (flock), so a second handle in this process sees it only
    // through sled's own check; either way nothing may be moved aside.
    match Outbox::open(dir.path(), &probe(), epoch(2), 1 << 20, UnixMicros(2)) {
        Err(e) => assert!(e.to_string().contains("another process"), "{e}"),
        Ok(outbox) => assert!(outbox.pending_losses().is_empty()),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let moved: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("outbox."))
        .collect();
    assert!(moved.is_empty(), "{moved:?}");
}

/// Item 8 of issue 19: a damaged outbox was recorded as a loss of count 0 although its
/// results were lost. The ledger makes it exact.
#[test]
fn a_damaged_outbox_is_counted_exactly_from_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let keys;
    {
        let mut outbox =
            Outbox::open(dir.path(), &probe(), epoch(1), 1 << 20, UnixMicros(1)).unwrap();
        keys = produce(&mut outbox, 300, false);
        // 100 delivered: they are not lost.
        let batch = outbox.next_batch(100, 8, UnixMicros(2)).unwrap().unwrap();
        outbox.acked(&ack_all(&batch)).unwrap();
    }
    for entry in walk(&dir.path().join(DIR_NAME)) {
        std::fs::write(&entry, vec![0xa5; 4096]).unwrap();
    }
    let outbox = Outbox::open(dir.path(), &probe(), epoch(2), 1 << 20, UnixMicros(77)).unwrap();
    let losses = outbox.pending_losses();
    assert_eq!(losses.len(), 1, "{losses:?}");
    let loss = &losses[0];
    assert_eq!(loss.reason, LossReason::OutboxCorrupt);
    assert_eq!((loss.count, loss.count_unknown), (200, false), "{loss:?}");
    assert_eq!(loss.first.as_ref(), Some(&keys[100]));
    assert_eq!(loss.last.as_ref(), Some(&keys[299]));
    assert_eq!(loss.oldest_started_at, Some(UnixMicros(1100)));
    // No path of the volunteer's machine in what the collector publishes.
    let state = dir.path().to_str().unwrap();
    assert!(!loss.detail.contains(state), "{}", loss.detail);
    assert!(!loss.detail.contains('/'), "{}", loss.detail);
    assert!(loss.detail.contains("outbox.corrupt-77"), "{}", loss.detail);
}

/// Item 8: an emptied (deleted) outbox lost a pending loss record and a whole epoch without
/// trace. Now both are counted, and the new loss is itself in the next ledger record.
#[test]
fn a_deleted_outbox_and_its_pending_loss_record_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let bound = MIN_MAX_BYTES;
    let produced;
    {
        let mut outbox =
            Outbox::open(dir.path(), &probe(), epoch(1), bound, UnixMicros(1)).unwrap();
        // Over the bound: an eviction loss record waits beside the results.
        produce(&mut outbox, 2000, false);
        assert_eq!(outbox.pending_losses().len(), 1);
        produced = outbox.stats().results + outbox.pending_losses()[0].count;
        assert_eq!(produced, 2000);
    }
    std::fs::remove_dir_all(dir.path().join(DIR_NAME)).unwrap();
    {
        let outbox = Outbox::open(dir.path(), &probe(), epoch(2), bound, UnixMicros(9)).unwrap();
        let losses = outbox.pending_losses();
        assert_eq!(losses.len(), 1, "{losses:?}");
        assert_eq!(losses[0].reason, LossReason::OutboxMissing);
        assert_eq!((losses[0].count, losses[0].count_unknown), (2000, false));
        assert_eq!(losses[0].first.as_ref().unwrap().boot_epoch, 1);
        assert_eq!(losses[0].first.as_ref().unwrap().sequence, 1);
        assert_eq!(losses[0].last.as_ref().unwrap().sequence, 2000);
        assert_eq!(losses[0].key.boot_epoch, 2);
    }
    // Emptied again before that record was delivered: still counted.
    std::fs::remove_dir_all(dir.path().join(DIR_NAME)).unwrap();
    let outbox = Outbox::open(dir.path(), &probe(), epoch(3), bound, UnixMicros(10)).unwrap();
    let losses = outbox.pending_losses();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert_eq!(losses[0].count, 2000);
    // An intact outbox is not a loss, nor is a restart with nothing undelivered.
    drop(outbox);
    let outbox = Outbox::open(dir.path(), &probe(), epoch(4), bound, UnixMicros(11)).unwrap();
    assert_eq!(outbox.pending_losses().len(), 1);
}

/// After a power cut the ledger on disk may be seconds old: the loss is then marked as of
/// unknown count, bounded by the last durable record.
#[test]
fn after_a_power_cut_the_loss_has_an_unknown_count_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut outbox =
            Outbox::open(dir.path(), &probe(), epoch(5), 1 << 20, UnixMicros(1)).unwrap();
        produce(&mut outbox, 10, false);
    }
    // As a power cut leaves it: not marked clean, written in an earlier boot.
    let (mut ledger, record) = Ledger::open(dir.path()).unwrap();
    let mut record = record.unwrap();
    assert!(record.clean);
    record.clean = false;
    record.boot_id = [9; 16];
    ledger.write(&record, true).unwrap();
    drop(ledger);
    std::fs::remove_dir_all(dir.path().join(DIR_NAME)).unwrap();
    let outbox = Outbox::open(dir.path(), &probe(), epoch(6), 1 << 20, UnixMicros(2)).unwrap();
    let losses = outbox.pending_losses();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert!(losses[0].count_unknown);
    assert_eq!(losses[0].count, 0);
    let (first, last) = (
        losses[0].first.clone().unwrap(),
        losses[0].last.clone().unwrap(),
    );
    assert_eq!((first.boot_epoch, first.sequence), (5, 1));
    assert_eq!(
        (last.boot_epoch, last.sequence),
        (5, crate::ledger::RESERVE_STRIDE)
    );
}

/// Item 13: the outbox and the ledger are private (0700 directories, 0600 files) whatever
/// the umask, and the state directory too.
#[test]
fn the_outbox_and_the_ledger_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    crate::identity::ensure_state_dir(&state).unwrap();
    {
        let mut outbox = Outbox::open(&state, &probe(), epoch(1), 1 << 20, UnixMicros(1)).unwrap();
        produce(&mut outbox, 3, false);
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join(DIR_NAME)), 0o700);
    assert_eq!(mode(&state.join("ledger")), 0o600);
    for file in walk(&state.join(DIR_NAME)) {
        assert_eq!(
            mode(&file) & 0o077,
            0,
            "{} is {:o}",
            file.display(),
            mode(&file)
        );
    }
    // An older version's world-readable files are made private at the next start.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = walk(&state.join(DIR_NAME)).remove(0);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    crate::identity::ensure_state_dir(&state).unwrap();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&db), 0o600);
}

/// Item 14: a start that fails on the outbox lock does not take a boot epoch.
#[test]
fn a_start_refused_by_the_lock_takes_no_boot_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let _held = Outbox::open(
        state,
        &probe(),
        || crate::identity::next_boot_epoch(state),
        1 << 20,
        UnixMicros(1),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(state.join("boot_epoch")).unwrap(),
        "1\n"
    );
    // A second probe process is stood in for by a second handle: the lock is a flock on the
    // storage engine's file, which a second open file description conflicts with.
    let mut asked = false;
    let second = Outbox::open(
        state,
        &probe(),
        || {
            asked = true;
            crate::identity::next_boot_epoch(state)
        },
        1 << 20,
        UnixMicros(2),
    );
    let error = second.expect_err("a second open of a held outbox must fail");
    assert!(error.to_string().contains("another process"), "{error}");
    assert!(!asked, "the epoch was taken before the lock");
    assert_eq!(
        std::fs::read_to_string(state.join("boot_epoch")).unwrap(),
        "1\n"
    );
}

#[test]
fn a_failure_with_an_over_long_error_text_is_sent_cut_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(dir.path(), &probe(), epoch(1), 1 << 20, UnixMicros(1)).unwrap();
    let key = outbox.next_key();
    let mut failed = result(key.clone(), 1000, false);
    failed.outcome = Outcome::Failed(sixmap_shared::measurement::MeasurementError {
        class: sixmap_shared::measurement::ErrorClass::Network,
        message: "x".repeat(5000),
    });
    outbox.stage(&failed, UnixMicros(1));
    outbox.commit().unwrap();
    let batch = outbox.next_batch(10, 8, UnixMicros(2)).unwrap().unwrap();
    assert_eq!(batch.results.len(), 1, "sent, not dropped as damage");
    assert!(batch.losses.is_empty(), "{:?}", batch.losses);
    match &batch.results[0].outcome {
        Outcome::Failed(e) => {
            assert!(e.message.len() <= sixmap_shared::measurement::MAX_ERROR_MESSAGE_LEN);
            assert!(e.message.starts_with("xxxx") && e.message.ends_with('…'));
        }
        other => panic!("{other:?}"),
    }
}
