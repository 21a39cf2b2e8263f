//! The probe's on-disk outbox (sled): results wait here until the collector acks them.
//!
//! `crate::delivery` decides; this module persists its decisions. A result counts as produced
//! only after `commit` has written and flushed it. Deletions after an ack are not flushed: if
//! one is lost in a crash the result is sent again and the collector deduplicates it.
//!
//! Layout of the one tree: `r` ‖ boot epoch ‖ sequence → result; `l` ‖ boot epoch ‖ sequence →
//! loss record; `meta/probe_id` → the probe the outbox belongs to. Values start with a format
//! byte; a result value then holds its start time (8 bytes) and the protobuf-encoded result
//! (`sixmap_proto::encode::outbox_result`), the wire form, so the format on disk stays
//! readable across versions as the wire does. Uploading reads it back into a domain result
//! without validating it again: the collector judges what was stored.

use crate::delivery::{BatchPlan, Change, Delivery, EntryMeta, OutboxKey};
use crate::identity::{StateError, create_private_dir, make_private};
use crate::ledger::{self, Ledger, RESERVE_STRIDE, Record};
use sixmap_proto::{decode, encode};
use sixmap_shared::health::{LossReason, OutboxLoss};
use sixmap_shared::measurement::{MAX_ERROR_MESSAGE_LEN, Outcome};
use sixmap_shared::session::{Ack, MAX_MESSAGE_BYTES, ResultBatch};
use sixmap_shared::{BootEpoch, MeasurementResult, ProbeId, ResultKey, UnixMicros};
use std::path::{Path, PathBuf};
use tracing::{debug, error, info, warn};

/// Bytes of results a batch may carry, leaving room for the envelope and HTTP/2 framing.
pub const BATCH_BYTE_BUDGET: u64 = (MAX_MESSAGE_BYTES / 2) as u64;
/// Default bound of the outbox.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Smallest bound accepted: room for a few hundred typical results.
pub const MIN_MAX_BYTES: u64 = 64 * 1024;

const FORMAT: u8 = 1;
const RESULT_PREFIX: u8 = b'r';
const LOSS_PREFIX: u8 = b'l';
const PROBE_ID_KEY: &[u8] = b"meta/probe_id";
/// A random id made with the outbox; the ledger names it (see `crate::ledger`).
const OUTBOX_ID_KEY: &[u8] = b"meta/outbox_id";
const DIR_NAME: &str = "outbox";

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {action}: {reason}")]
    Io {
        path: PathBuf,
        action: &'static str,
        reason: String,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// Outbox figures for status and heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxStats {
    pub results: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub oldest_started_at: Option<UnixMicros>,
    pub loss_records: u64,
    pub evicted_since_start: u64,
}

#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    db: sled::Db,
    max_bytes: u64,
    delivery: Delivery,
    staged: sled::Batch,
    staged_count: usize,
    /// What the staged batch does, logged once it is durable (tests read these lines).
    staged_log: Vec<StagedEvent>,
    ledger: Ledger,
    outbox_id: u64,
    boot_id: [u8; 16],
    /// The highest sequence of this epoch a durable ledger record allows.
    reserved: u64,
}

#[derive(Debug)]
enum StagedEvent {
    Produced(ResultKey, UnixMicros),
    Dropped(OutboxKey),
}

fn entry_key(prefix: u8, key: OutboxKey) -> [u8; 17] {
    let mut bytes = [0; 17];
    bytes[0] = prefix;
    bytes[1..].copy_from_slice(&key.to_bytes());
    bytes
}

fn result_value(result: &MeasurementResult) -> Vec<u8> {
    // What is stored must read back (`decode::outbox_result` checks it as the collector will):
    // an over-long error text from the OS or a peer is cut, not a reason to lose the result.
    let bounded;
    let result = match &result.outcome {
        Outcome::Failed(e) if e.message.len() > MAX_ERROR_MESSAGE_LEN => {
            let mut copy = result.clone();
            if let Outcome::Failed(e) = &mut copy.outcome {
                e.bound_message();
            }
            bounded = copy;
            &bounded
        }
        _ => result,
    };
    let wire = encode::outbox_result(result);
    let mut value = Vec::with_capacity(9 + wire.len());
    value.push(FORMAT);
    value.extend_from_slice(&result.started_at.0.to_be_bytes());
    value.extend_from_slice(&wire);
    value
}

/// Start time and payload of a stored result, if the value is well-formed.
fn split_result_value(value: &[u8]) -> Option<(UnixMicros, &[u8])> {
    let (&format, rest) = value.split_first()?;
    let time: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    (format == FORMAT).then(|| (UnixMicros(i64::from_be_bytes(time)), &rest[8..]))
}

fn loss_value(loss: &OutboxLoss) -> Vec<u8> {
    let mut value = vec![FORMAT];
    value.extend_from_slice(&encode::outbox_loss(loss));
    value
}

fn read_loss(value: &[u8]) -> Option<OutboxLoss> {
    let (&format, wire) = value.split_first()?;
    if format != FORMAT {
        return None;
    }
    decode::outbox_loss(wire).ok()
}

/// Why sled would not open the outbox.
enum OpenFailure {
    /// Damaged files: moved aside and replaced.
    Corrupt(String),
    /// Anything else (another process holds it, permissions, a full disk): never a reason
    /// to throw data away, so the probe stops and says why.
    Unavailable(String),
}

/// Bound of sled's page cache.
const CACHE_BYTES: u64 = 2 * 1024 * 1024;

/// How long to wait for a lock that a closing handle in this process may still hold
/// (sled releases it from a background thread).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled, turning a panic inside it (seen with damaged files) into an error.
fn open_db(path: &Path) -> Result<sled::Db, OpenFailure> {
    let started = std::time::Instant::now();
    loop {
        let attempt = {
            let path = path.to_owned();
            std::panic::catch_unwind(move || {
                sled::Config::new()
                    .path(path)
                    // sled caches up to 1 GiB by default: an offline probe's memory would
                    // grow with its outbox.
                    .cache_capacity(CACHE_BYTES)
                    // sled's background flusher stays (every 500 ms): `commit` flushes what
                    // must be durable, but deletions after acks must reach the disk soon too,
                    // or after a power cut the probe resends (and reports as waiting) results
                    // the collector already has.
                    .open()
            })
        };
        match attempt {
            Ok(Ok(db)) => return Ok(db),
            Err(_) => {
                return Err(OpenFailure::Corrupt(
                    "the storage engine panicked while opening it".into(),
                ));
            }
            Ok(Err(sled::Error::Io(e))) if is_locked(&e) && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok(Err(sled::Error::Io(e))) if is_locked(&e) => {
                return Err(OpenFailure::Unavailable(
                    "another process has it open (is a second sixmap-probe using this state directory?)".into(),
                ));
            }
            Ok(Err(sled::Error::Io(e))) if environmental(e.kind()) => {
                return Err(OpenFailure::Unavailable(e.to_string()));
            }
            Ok(Err(e)) => return Err(OpenFailure::Corrupt(e.to_string())),
        }
    }
}

/// sled reports a held lock as an `Other` error whose text carries the OS error.
fn is_locked(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// I/O errors about the machine rather than the files' contents. Any other error counts as
/// damage: the outbox is moved aside (kept for inspection), never retried in a crash loop.
fn environmental(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::PermissionDenied
            | K::WouldBlock
            | K::StorageFull
            | K::ReadOnlyFilesystem
            | K::OutOfMemory
    )
}

fn unavailable(path: &Path, action: &'static str) -> impl FnOnce(OpenFailure) -> OutboxError {
    let path = path.to_owned();
    move |failure| OutboxError::Io {
        path,
        action,
        reason: match failure {
            OpenFailure::Corrupt(reason) | OpenFailure::Unavailable(reason) => reason,
        },
    }
}

/// Moves a damaged or foreign outbox out of the way; returns where it went.
fn move_aside(path: &Path, why: &str, now: UnixMicros) -> Result<PathBuf, OutboxError> {
    let aside = path.with_file_name(format!("{DIR_NAME}.{why}-{}", now.0));
    std::fs::rename(path, &aside).map_err(|e| OutboxError::Io {
        path: path.to_owned(),
        action: "move aside",
        reason: e.to_string(),
    })?;
    Ok(aside)
}

impl Outbox {
    /// Opens `state_dir/outbox`, taking its lock, and only then asks `next_epoch` for the boot
    /// epoch of this run: a start that fails on the lock (a second probe process) must not use
    /// up an epoch. A corrupt outbox is moved aside, replaced by an empty one, and the loss is
    /// recorded as data; an outbox of another probe identity is moved aside. When the outbox
    /// the ledger describes is gone (damaged, deleted, emptied), what it held undelivered is
    /// recorded as a loss: exact, or an unknown count within bounds (see `crate::ledger`).
    pub fn open(
        state_dir: &Path,
        probe_id: &ProbeId,
        next_epoch: impl FnOnce() -> Result<BootEpoch, StateError>,
        max_bytes: u64,
        now: UnixMicros,
    ) -> Result<Self, OutboxError> {
        let path = state_dir.join(DIR_NAME);
        let io = |action: &'static str| {
            let path = path.clone();
            move |e: sled::Error| OutboxError::Io {
                path,
                action,
                reason: e.to_string(),
            }
        };
        let (ledger, previous) = Ledger::open(state_dir).map_err(|e| OutboxError::Io {
            path: state_dir.join("ledger"),
            action: "open ledger",
            reason: e.to_string(),
        })?;
        // A ledger of another identity says nothing about this probe's results.
        let previous = previous.filter(|r| &r.probe_id == probe_id);
        create_private_dir(&path)?;
        let mut lost: Option<(LossReason, String)> = None;
        let db = match open_db(&path) {
            Ok(db) => db,
            Err(failure @ OpenFailure::Unavailable(_)) => {
                return Err(unavailable(&path, "open")(failure));
            }
            Err(OpenFailure::Corrupt(reason)) => {
                let aside = move_aside(&path, "corrupt", now)?;
                error!(outbox = %path.display(), moved_to = %aside.display(), %reason, "outbox unreadable: moved aside, starting empty");
                // The detail is published by the collector: a file name, never a path of the
                // volunteer's machine or the storage engine's message (it may hold one).
                let name = aside
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                lost = Some((
                    LossReason::OutboxCorrupt,
                    format!(
                        "outbox unreadable at start (damaged storage files); moved aside as {name} in the probe's state directory"
                    ),
                ));
                create_private_dir(&path)?;
                open_db(&path).map_err(unavailable(&path, "create"))?
            }
        };
        let owner = db.get(PROBE_ID_KEY).map_err(io("read"))?;
        let db = match owner {
            Some(owner) if owner.as_ref() != probe_id.as_str().as_bytes() => {
                drop(db);
                let owner = String::from_utf8_lossy(&owner).into_owned();
                let aside = move_aside(&path, &format!("probe-{owner}"), now)?;
                warn!(outbox = %path.display(), moved_to = %aside.display(), previous_probe = %owner, "outbox belongs to another probe identity: moved aside");
                create_private_dir(&path)?;
                open_db(&path).map_err(unavailable(&path, "create"))?
            }
            _ => db,
        };
        // The lock is held from here on: only now is this run's epoch taken.
        let boot_epoch = next_epoch()?;
        let outbox_id = match db.get(OUTBOX_ID_KEY).map_err(io("read"))? {
            Some(id) => u64::from_be_bytes(id.as_ref().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        let outbox_id = if outbox_id == 0 {
            // A new outbox, or one written before outbox ids existed (it has a probe id).
            let fresh = db.get(PROBE_ID_KEY).map_err(io("read"))?.is_none();
            if fresh
                && lost.is_none()
                && let Some(previous) = &previous
            {
                lost = Some((
                    LossReason::OutboxMissing,
                    format!(
                        "outbox missing or emptied since boot epoch {} (it was deleted or replaced while the probe was stopped)",
                        previous.epoch
                    ),
                ));
            }
            let mut id = [0u8; 8];
            getrandom::fill(&mut id).map_err(|e| OutboxError::Io {
                path: path.clone(),
                action: "make an outbox id",
                reason: e.to_string(),
            })?;
            let id = u64::from_be_bytes(id).max(1);
            db.insert(OUTBOX_ID_KEY, &id.to_be_bytes())
                .map_err(io("write"))?;
            id
        } else {
            if lost.is_none()
                && let Some(previous) = &previous
                && previous.outbox_id != outbox_id
            {
                lost = Some((
                    LossReason::OutboxMissing,
                    format!(
                        "outbox replaced by another one since boot epoch {}",
                        previous.epoch
                    ),
                ));
            }
            outbox_id
        };
        db.insert(PROBE_ID_KEY, probe_id.as_str().as_bytes())
            .map_err(io("write"))?;
        make_private(&path);

        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for item in db.scan_prefix([RESULT_PREFIX]) {
            let (key, value) = item.map_err(io("read"))?;
            let Some(key) = OutboxKey::from_bytes(&key[1..]) else {
                continue;
            };
            match split_result_value(&value) {
                Some((started_at, payload)) => entries.push((
                    key,
                    EntryMeta {
                        bytes: payload.len() as u64,
                        started_at,
                    },
                )),
                None => {
                    entries.push((
                        key,
                        EntryMeta {
                            bytes: 0,
                            started_at: UnixMicros(0),
                        },
                    ));
                    unreadable.push(key);
                }
            }
        }
        let mut losses = Vec::new();
        for item in db.scan_prefix([LOSS_PREFIX]) {
            let (key, value) = item.map_err(io("read"))?;
            match read_loss(&value) {
                Some(loss) => losses.push(loss),
                None => {
                    // Nothing to recover it from; its results were already gone.
                    error!(key = ?key, "unreadable loss record dropped");
                    db.remove(key).map_err(io("write"))?;
                }
            }
        }
        let delivery = Delivery::restore(probe_id.clone(), boot_epoch, max_bytes, entries, losses);
        let mut outbox = Self {
            path,
            db,
            max_bytes,
            delivery,
            staged: sled::Batch::default(),
            staged_count: 0,
            staged_log: Vec::new(),
            ledger,
            outbox_id,
            boot_id: ledger::boot_id(),
            reserved: 0,
        };
        for key in unreadable {
            let change = outbox.delivery.unreadable(key, now);
            outbox.stage_change(change);
        }
        if let Some((reason, detail)) = lost {
            let known = previous.as_ref().map(|p| p.lost(outbox.boot_id));
            match known {
                // The ledger says nothing was undelivered: nothing was lost.
                Some(None) => {
                    info!(
                        ?reason,
                        "the previous outbox is gone but held nothing undelivered"
                    )
                }
                Some(Some(lost)) => {
                    warn!(
                        ?reason,
                        count = lost.count,
                        count_unknown = lost.count_unknown,
                        "the previous outbox is gone: recording what it held undelivered as lost"
                    );
                    let change = outbox.delivery.outbox_lost(reason, Some(lost), detail, now);
                    outbox.stage_change(change);
                }
                None => {
                    warn!(
                        ?reason,
                        "the previous outbox is gone and no ledger says what it held: recording a loss of unknown count"
                    );
                    let change = outbox.delivery.outbox_lost(reason, None, detail, now);
                    outbox.stage_change(change);
                }
            }
        }
        outbox.staged_count += 1;
        outbox.commit()?;
        // This run's first record: durable, so a power cut at any later point still finds
        // the new outbox id and a reservation bounding this epoch.
        outbox.reserved = RESERVE_STRIDE;
        outbox.write_ledger(false, true)?;
        Ok(outbox)
    }

    fn ledger_record(&self, clean: bool) -> Record {
        Record {
            probe_id: self.delivery.probe_id().clone(),
            outbox_id: self.outbox_id,
            boot_id: self.boot_id,
            clean,
            epoch: self.delivery.next_key().boot_epoch,
            reserved: self.reserved,
            next_sequence: self.delivery.next_key().sequence,
            undelivered: self.delivery.undelivered(),
        }
    }

    fn write_ledger(&mut self, clean: bool, durable: bool) -> Result<(), OutboxError> {
        let record = self.ledger_record(clean);
        self.ledger
            .write(&record, durable)
            .map_err(|e| OutboxError::Io {
                path: self.ledger.path().to_owned(),
                action: "write ledger",
                reason: e.to_string(),
            })
    }

    fn io(&self, action: &'static str) -> impl FnOnce(sled::Error) -> OutboxError + '_ {
        move |e| OutboxError::Io {
            path: self.path.clone(),
            action,
            reason: e.to_string(),
        }
    }

    fn stage_change(&mut self, change: Change) {
        for key in change.evicted {
            self.staged.remove(&entry_key(RESULT_PREFIX, key));
            self.staged_log.push(StagedEvent::Dropped(key));
        }
        for loss in &change.losses {
            let key = entry_key(LOSS_PREFIX, OutboxKey::of(&loss.key));
            self.staged.insert(&key, loss_value(loss));
        }
        self.staged_count += 1;
    }

    /// The idempotency key the next staged result must carry.
    pub fn next_key(&self) -> ResultKey {
        self.delivery.next_key()
    }

    /// Adds a result built with `next_key()`. It is not produced until `commit` returns.
    pub fn stage(&mut self, result: &MeasurementResult, now: UnixMicros) {
        let value = result_value(result);
        let meta = EntryMeta {
            bytes: (value.len() - 9) as u64,
            started_at: result.started_at,
        };
        self.staged
            .insert(&entry_key(RESULT_PREFIX, OutboxKey::of(&result.key)), value);
        self.staged_log
            .push(StagedEvent::Produced(result.key.clone(), result.started_at));
        let change = self.delivery.produced(meta, now);
        self.stage_change(change);
    }

    /// Writes everything staged in one atomic batch and flushes it to disk.
    pub fn commit(&mut self) -> Result<(), OutboxError> {
        if self.staged_count == 0 {
            return Ok(());
        }
        let produced = self.delivery.next_key().sequence.saturating_sub(1);
        if produced > self.reserved {
            // Durable before any result past the old reservation is: after a power cut the
            // ledger still bounds this epoch's sequences.
            self.reserved = produced + RESERVE_STRIDE;
            self.write_ledger(false, true)?;
        }
        let batch = std::mem::take(&mut self.staged);
        self.staged_count = 0;
        self.db.apply_batch(batch).map_err(self.io("write"))?;
        self.db.flush().map_err(self.io("flush"))?;
        self.write_ledger(false, false)?;
        let mut dropped = 0;
        for event in std::mem::take(&mut self.staged_log) {
            match event {
                StagedEvent::Produced(key, started_at) => {
                    debug!(%key, started_at = started_at.0, "result produced");
                }
                StagedEvent::Dropped(key) => {
                    dropped += 1;
                    debug!(key = %format_args!("{}/{}/{}", self.delivery.probe_id(), key.boot_epoch, key.sequence), "result dropped from the outbox");
                }
            }
        }
        if dropped > 0 {
            // A full outbox drops at every commit while the collector is away: rate-limited.
            let stats = self.stats();
            match crate::lograte::check("outbox full") {
                crate::lograte::Verdict::First => warn!(
                    dropped,
                    bytes = stats.bytes,
                    max_bytes = self.max_bytes,
                    "outbox full: dropped the oldest undelivered results (recorded as a loss)"
                ),
                crate::lograte::Verdict::Summary { repeated, over } => warn!(
                    dropped,
                    bytes = stats.bytes,
                    max_bytes = self.max_bytes,
                    repeated,
                    over_s = over.as_secs(),
                    "outbox full: dropped the oldest undelivered results (recorded as a loss; repeated {repeated} times)"
                ),
                crate::lograte::Verdict::Suppressed => {}
            }
        }
        Ok(())
    }

    /// The next batch to upload, if any waits and the in-flight window has room.
    pub fn next_batch(
        &mut self,
        max_results: usize,
        max_in_flight: usize,
        now: UnixMicros,
    ) -> Result<Option<ResultBatch>, OutboxError> {
        loop {
            let Some(plan) =
                self.delivery
                    .next_batch(max_results, BATCH_BYTE_BUDGET, max_in_flight)
            else {
                return Ok(None);
            };
            let BatchPlan {
                batch_id,
                results: keys,
                losses,
            } = plan;
            let mut results = Vec::with_capacity(keys.len());
            let mut damaged = false;
            for key in keys {
                let value = self
                    .db
                    .get(entry_key(RESULT_PREFIX, key))
                    .map_err(self.io("read"))?;
                let result = value
                    .as_deref()
                    .and_then(split_result_value)
                    .and_then(|(_, payload)| decode::outbox_result(payload).ok());
                match result {
                    Some(result) => results.push(result),
                    None => {
                        error!(
                            ?key,
                            "outbox entry unreadable: dropped and recorded as lost"
                        );
                        let change = self.delivery.unreadable(key, now);
                        self.stage_change(change);
                        damaged = true;
                    }
                }
            }
            if damaged {
                self.commit()?;
            }
            let losses: Vec<_> = losses
                .iter()
                .filter_map(|k| self.delivery.loss(*k).cloned())
                .collect();
            if results.is_empty() && losses.is_empty() {
                // Everything planned was unreadable: that batch id stays unacked, harmlessly,
                // until the connection ends. Plan again.
                continue;
            }
            return Ok(Some(ResultBatch {
                batch_id,
                results,
                losses,
            }));
        }
    }

    /// Releases what the collector stored or rejected. Not flushed (see the module doc).
    pub fn acked(&mut self, ack: &Ack) -> Result<(), OutboxError> {
        let own = |k: &&ResultKey| &k.probe_id == self.delivery.probe_id();
        let results: Vec<_> = ack
            .stored
            .iter()
            .chain(ack.rejected.iter().map(|r| &r.key))
            .filter(own)
            .map(OutboxKey::of)
            .collect();
        let losses: Vec<_> = ack
            .stored_losses
            .iter()
            .filter(own)
            .map(OutboxKey::of)
            .collect();
        let released = self.delivery.acked(ack.batch_id, &results, &losses);
        let mut batch = sled::Batch::default();
        for key in released.results {
            batch.remove(&entry_key(RESULT_PREFIX, key));
        }
        for key in released.losses {
            batch.remove(&entry_key(LOSS_PREFIX, key));
        }
        self.db.apply_batch(batch).map_err(self.io("write"))?;
        self.write_ledger(false, false)
    }

    pub fn disconnected(&mut self) {
        self.delivery.disconnected();
    }

    pub fn stats(&self) -> OutboxStats {
        OutboxStats {
            results: self.delivery.pending_results() as u64,
            bytes: self.delivery.pending_bytes(),
            max_bytes: self.max_bytes,
            oldest_started_at: self.delivery.oldest_started_at(),
            loss_records: self.delivery.pending_losses().count() as u64,
            evicted_since_start: self.delivery.evicted_total(),
        }
    }

    /// Loss records not yet delivered.
    pub fn pending_losses(&self) -> Vec<OutboxLoss> {
        self.delivery.pending_losses().cloned().collect()
    }
}

impl Drop for Outbox {
    /// A clean stop (shutdown signal, error, end of a test) leaves a durable record marked
    /// clean, so even a reboot right after keeps the ledger exact.
    fn drop(&mut self) {
        // Acked deletions are only flushed by sled's background flusher; a clean stop makes
        // them durable so the outbox it leaves holds exactly what the collector lacks.
        if let Err(e) = self.db.flush() {
            warn!(error = %e, path = %self.path.display(), "cannot flush the outbox at stop");
        }
        if let Err(e) = self.write_ledger(true, true) {
            warn!(error = %e, "cannot record the outbox ledger at stop");
        }
    }
}

/// Figures of an outbox no daemon holds open, for `sixmap-probe status`.
pub fn inspect(state_dir: &Path) -> Result<Option<OutboxStats>, String> {
    let path = state_dir.join(DIR_NAME);
    if !path.exists() {
        return Ok(None);
    }
    let db = open_db(&path).map_err(|failure| match failure {
        OpenFailure::Corrupt(reason) => format!("{} is damaged: {reason}", path.display()),
        OpenFailure::Unavailable(reason) => format!("{}: {reason}", path.display()),
    })?;
    let mut stats = OutboxStats {
        results: 0,
        bytes: 0,
        max_bytes: 0,
        oldest_started_at: None,
        loss_records: 0,
        evicted_since_start: 0,
    };
    for item in db.scan_prefix([RESULT_PREFIX]) {
        let (_, value) = item.map_err(|e| e.to_string())?;
        stats.results += 1;
        if let Some((started_at, payload)) = split_result_value(&value) {
            stats.bytes += payload.len() as u64;
            stats.oldest_started_at = Some(
                stats
                    .oldest_started_at
                    .map_or(started_at, |t| t.min(started_at)),
            );
        }
    }
    stats.loss_records = db.scan_prefix([LOSS_PREFIX]).count() as u64;
    Ok(Some(stats))
}

#[cfg(test)]
mod tests;
