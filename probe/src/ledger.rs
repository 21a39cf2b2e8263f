//! The outbox ledger: a small record beside the outbox (`ledger` in the state
//! directory) of what only the outbox remembers, so that losing the outbox (damaged storage,
//! a deleted or emptied directory) is always counted as a loss instead of vanishing.
//!
//! It holds the outbox's instance id (a random number also stored inside the outbox, so a
//! replaced or emptied outbox is told apart from the one the ledger describes), the boot
//! epoch that wrote it, a sequence reservation, and a summary of what was undelivered: how
//! many results (waiting, or counted by loss records not yet acked), their bytes, the first
//! and last key, and their time range.
//!
//! Writing it must not wear out an SD card. The record is rewritten in place (`pwrite`, no
//! rename) after every outbox commit and ack: that only dirties one page cache page, which
//! the kernel writes back every few seconds however often it changes. It is made durable
//! (fsync) only at start, at a clean stop, and when the epoch's sequence passes its
//! reservation (every `RESERVE_STRIDE` results). What a crash leaves:
//! - the process dies (kill -9, panic, OOM), the machine stays up: the page cache still has
//!   the last record, so it is exact (the boot id it carries is still the kernel's);
//! - a clean stop (Ctrl-C, SIGTERM, an error) writes a durable record marked clean: exact;
//! - a power cut: the record on disk may be some seconds old. It is then used only as bounds:
//!   nothing before its first undelivered key was lost, and no result of its epoch has a
//!   sequence above the durable reservation; the count is marked unknown.
//!
//! Two slots (at 0 and 512 bytes) alternate, each with a generation and a checksum, so a
//! write torn by a power cut leaves the previous record readable.

use crate::delivery::{OutboxKey, Undelivered};
use sixmap_shared::{BootEpoch, ProbeId, UnixMicros};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "ledger";
const MAGIC: &[u8; 4] = b"SXL1";
const SLOT_BYTES: u64 = 512;
/// Results an epoch may produce past the last durable record before the next fsync.
pub const RESERVE_STRIDE: u64 = 1024;
const RECORD_LEN: usize = 4 + 8 + 16 + 8 + 16 + 1 + 8 * 5 + 16 * 2 + 8 * 2 + 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub probe_id: ProbeId,
    /// Instance id of the outbox this record describes (also stored inside it).
    pub outbox_id: u64,
    /// Kernel boot id when written: the same after a restart means no power cut came between.
    pub boot_id: [u8; 16],
    /// Written at a clean stop: nothing changed after it.
    pub clean: bool,
    pub epoch: BootEpoch,
    /// No result of `epoch` has a sequence above this (made durable before it is passed).
    pub reserved: u64,
    /// The sequence the next result of `epoch` would get.
    pub next_sequence: u64,
    pub undelivered: Undelivered,
}

impl Record {
    /// Whether the record is known to be the last state of its outbox.
    pub fn is_exact(&self, boot_id: [u8; 16]) -> bool {
        self.clean || (boot_id != [0; 16] && boot_id == self.boot_id)
    }

    /// What was lost if the outbox this record describes is gone: exact, or (after a power
    /// cut) an unknown count within bounds. `None` when nothing was undelivered.
    pub fn lost(&self, boot_id: [u8; 16]) -> Option<Undelivered> {
        if self.is_exact(boot_id) {
            return (!self.undelivered.is_empty()).then_some(self.undelivered);
        }
        let u = &self.undelivered;
        let next = OutboxKey {
            boot_epoch: self.epoch,
            sequence: self.next_sequence,
        };
        let bound = OutboxKey {
            boot_epoch: self.epoch,
            sequence: self.reserved.max(self.next_sequence.saturating_sub(1)),
        };
        Some(Undelivered {
            count: 0,
            count_unknown: true,
            bytes: 0,
            first: Some(u.first.map_or(next, |f| f.min(next))),
            last: Some(u.last.map_or(bound, |l| l.max(bound))),
            oldest_started_at: u.oldest_started_at,
            newest_started_at: None,
        })
    }

    fn encode(&self, generation: u64) -> [u8; RECORD_LEN] {
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&generation.to_be_bytes());
        let mut id = [0u8; 16];
        let text = self.probe_id.as_str().as_bytes();
        let n = text.len().min(16);
        id[..n].copy_from_slice(&text[..n]);
        out.extend_from_slice(&id);
        out.extend_from_slice(&self.outbox_id.to_be_bytes());
        out.extend_from_slice(&self.boot_id);
        let u = &self.undelivered;
        let flags = u8::from(self.clean)
            | u8::from(u.count_unknown) << 1
            | u8::from(u.first.is_some()) << 2
            | u8::from(u.last.is_some()) << 3;
        out.push(flags);
        for v in [
            self.epoch,
            self.reserved,
            self.next_sequence,
            u.count,
            u.bytes,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        let zero = OutboxKey {
            boot_epoch: 0,
            sequence: 0,
        };
        out.extend_from_slice(&u.first.unwrap_or(zero).to_bytes());
        out.extend_from_slice(&u.last.unwrap_or(zero).to_bytes());
        for t in [u.oldest_started_at, u.newest_started_at] {
            out.extend_from_slice(&t.map_or(0, |t| t.0).to_be_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum);
        let mut record = [0; RECORD_LEN];
        record.copy_from_slice(&out);
        record
    }

    /// The record and its generation, if `bytes` hold a whole, intact one.
    fn decode(bytes: &[u8]) -> Option<(u64, Self)> {
        let bytes = bytes.get(..RECORD_LEN)?;
        let (body, sum) = bytes.split_at(RECORD_LEN - 8);
        if body.get(..4)? != MAGIC || checksum(body) != sum {
            return None;
        }
        let mut at = 4;
        let mut take = |n: usize| {
            let part = body.get(at..at + n);
            at += n;
            part
        };
        let u64_at = |b: Option<&[u8]>| Some(u64::from_be_bytes(b?.try_into().ok()?));
        let generation = u64_at(take(8))?;
        let id = take(16)?;
        let probe_id = std::str::from_utf8(id)
            .ok()?
            .trim_end_matches('\0')
            .parse()
            .ok()?;
        let outbox_id = u64_at(take(8))?;
        let boot_id: [u8; 16] = take(16)?.try_into().ok()?;
        let flags = *take(1)?.first()?;
        let epoch = u64_at(take(8))?;
        let reserved = u64_at(take(8))?;
        let next_sequence = u64_at(take(8))?;
        let count = u64_at(take(8))?;
        let bytes_lost = u64_at(take(8))?;
        let first = OutboxKey::from_bytes(take(16)?)?;
        let last = OutboxKey::from_bytes(take(16)?)?;
        let time = |v: u64| (v != 0).then_some(UnixMicros(v as i64));
        let oldest = time(u64_at(take(8))?);
        let newest = time(u64_at(take(8))?);
        Some((
            generation,
            Self {
                probe_id,
                outbox_id,
                boot_id,
                clean: flags & 1 != 0,
                epoch,
                reserved,
                next_sequence,
                undelivered: Undelivered {
                    count,
                    count_unknown: flags & 2 != 0,
                    bytes: bytes_lost,
                    first: (flags & 4 != 0).then_some(first),
                    last: (flags & 8 != 0).then_some(last),
                    oldest_started_at: oldest,
                    newest_started_at: newest,
                },
            },
        ))
    }
}

fn checksum(bytes: &[u8]) -> [u8; 8] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut sum = [0; 8];
    sum.copy_from_slice(&digest.as_ref()[..8]);
    sum
}

/// The kernel's boot id (changes at every boot); zeros where it cannot be read.
pub fn boot_id() -> [u8; 16] {
    let mut id = [0; 16];
    let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
        return id;
    };
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    if hex.len() != 32 {
        return id;
    }
    for (byte, pair) in id.iter_mut().zip(hex.chunks(2)) {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        *byte = digit(pair[0]) << 4 | digit(pair[1]);
    }
    id
}

#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    generation: u64,
}

impl Ledger {
    /// Opens (or creates, mode 0600) the ledger of `state_dir`; returns it with the newest
    /// intact record, if any.
    pub fn open(state_dir: &Path) -> std::io::Result<(Self, Option<Record>)> {
        let path = state_dir.join(FILE_NAME);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        let mut newest: Option<(u64, Record)> = None;
        for slot in 0..2 {
            let mut buf = [0; RECORD_LEN];
            if file.read_exact_at(&mut buf, slot * SLOT_BYTES).is_err() {
                continue;
            }
            if let Some((generation, record)) = Record::decode(&buf)
                && newest.as_ref().is_none_or(|(g, _)| generation > *g)
            {
                newest = Some((generation, record));
            }
        }
        let generation = newest.as_ref().map_or(0, |(g, _)| *g);
        Ok((
            Self {
                path,
                file,
                generation,
            },
            newest.map(|(_, r)| r),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record` over the older slot; `durable` waits until it is on disk.
    pub fn write(&mut self, record: &Record, durable: bool) -> std::io::Result<()> {
        let generation = self.generation + 1;
        self.file
            .write_all_at(&record.encode(generation), (generation % 2) * SLOT_BYTES)?;
        self.generation = generation;
        if durable {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let key = |boot_epoch, sequence| OutboxKey {
            boot_epoch,
            sequence,
        };
        Record {
            probe_id: "0123456789abcdef".parse().unwrap(),
            outbox_id: 77,
            boot_id: [5; 16],
            clean: false,
            epoch: 4,
            reserved: 2048,
            next_sequence: 1200,
            undelivered: Undelivered {
                count: 300,
                count_unknown: false,
                bytes: 9000,
                first: Some(key(3, 17)),
                last: Some(key(4, 1199)),
                oldest_started_at: Some(UnixMicros(10)),
                newest_started_at: Some(UnixMicros(20)),
            },
        }
    }

    #[test]
    fn records_round_trip_and_the_newest_intact_slot_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, none) = Ledger::open(dir.path()).unwrap();
        assert_eq!(none, None);
        let first = record();
        ledger.write(&first, true).unwrap();
        let mut second = record();
        second.undelivered.count = 301;
        ledger.write(&second, false).unwrap();
        drop(ledger);
        let (_, read) = Ledger::open(dir.path()).unwrap();
        assert_eq!(read, Some(second));

        // A torn write of the newer slot (generation 2, slot 0): the older one is read.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        file.write_all_at(&[0xff; 40], 60).unwrap();
        let (mut ledger, read) = Ledger::open(dir.path()).unwrap();
        assert_eq!(read, Some(first.clone()));
        // The next write goes over the torn slot, never over the intact one.
        let mut third = record();
        third.undelivered.count = 5;
        ledger.write(&third, false).unwrap();
        let (_, read) = Ledger::open(dir.path()).unwrap();
        assert_eq!(read, Some(third));
    }

    #[test]
    fn exact_after_a_crash_in_the_same_boot_bounds_after_a_power_cut() {
        let r = record();
        assert_eq!(r.lost([5; 16]), Some(r.undelivered));
        let clean = Record {
            clean: true,
            ..record()
        };
        assert_eq!(clean.lost([6; 16]), Some(r.undelivered));
        let bounds = r.lost([6; 16]).unwrap();
        assert!(bounds.count_unknown);
        assert_eq!(bounds.first, r.undelivered.first);
        assert_eq!(
            bounds.last,
            Some(OutboxKey {
                boot_epoch: 4,
                sequence: 2048
            })
        );
        let mut nothing = record();
        nothing.undelivered = Undelivered::default();
        assert_eq!(nothing.lost([5; 16]), None);
        // After a power cut even an empty record bounds what the epoch may have produced since.
        let bounds = nothing.lost([6; 16]).unwrap();
        assert_eq!(
            (
                bounds.first.unwrap().sequence,
                bounds.last.unwrap().sequence
            ),
            (1200, 2048)
        );
    }

    #[test]
    fn the_boot_id_is_read() {
        // Linux always has it; zeros would make every crash look like a power cut.
        assert_ne!(boot_id(), [0; 16]);
        assert_eq!(boot_id(), boot_id());
    }
}
