//! The sled store's result-key index in blocks: one entry per 64 consecutive sequence
//! numbers of a probe's boot epoch, not one per result.
//!
//! The index answers "is this result stored already?" (deduplication of resends) and "which
//! are this probe's newest results?" (per-probe pages). With an entry per result it cost a
//! lookup and an insert per stored result, each a sled node copy; a probe's batch holds
//! consecutive sequence numbers, so with blocks a batch of 100 reads and writes two or three
//! entries.
//!
//! Key: `b` ‖ probe id (16 hex digits) ‖ boot epoch (u64 BE) ‖ sequence / 64 (u64 BE), so a
//! probe's blocks sort by epoch and sequence like its result keys. Value: [`FORMAT`], then
//! per stored result, in sequence order, the sequence's low six bits (one byte) and the
//! result's start time (8 bytes, `result_codec::time_bytes`).
//!
//! Stores written with one entry per result (`k` ‖ result key → start time) are converted
//! when opened ([`convert_per_result_entries`]), in chunks that each write the blocks and
//! delete the entries they replace in one atomic batch: a crash leaves every entry in
//! exactly one form, and the next start continues.

use super::StoreError;
use super::result_codec::RESULT_KEY_LEN;
use super::sled_db::{BY_KEY, backend};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::info;

pub(super) const BLOCK: u8 = b'b';
/// Sequence numbers per block.
const SPAN_BITS: u32 = 6;
const LOW_MASK: u64 = (1 << SPAN_BITS) - 1;
const FORMAT: u8 = 1;
const ENTRY_LEN: usize = 1 + 8;
pub(super) const BLOCK_KEY_LEN: usize = 1 + 16 + 8 + 8;
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub(super) type BlockKey = [u8; BLOCK_KEY_LEN];

fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

fn sequence_of(result_key: &[u8; RESULT_KEY_LEN]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&result_key[24..]);
    u64::from_be_bytes(raw)
}

/// The block a result key belongs to, and its slot in it.
pub(super) fn locate(result_key: &[u8; RESULT_KEY_LEN]) -> (BlockKey, u8) {
    let sequence = sequence_of(result_key);
    let mut key = [0u8; BLOCK_KEY_LEN];
    key[0] = BLOCK;
    key[1..25].copy_from_slice(&result_key[..24]);
    key[25..].copy_from_slice(&(sequence >> SPAN_BITS).to_be_bytes());
    // The mask keeps six bits: the cast cannot truncate.
    (key, (sequence & LOW_MASK) as u8)
}

/// The prefix of every block of `probe` (its 16 hex digits).
pub(super) fn probe_prefix(probe: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(1 + probe.len());
    prefix.push(BLOCK);
    prefix.extend_from_slice(probe);
    prefix
}

/// The result key of slot `low` in block `key`.
pub(super) fn result_key(key: &[u8], low: u8) -> Result<[u8; RESULT_KEY_LEN], StoreError> {
    if key.len() != BLOCK_KEY_LEN {
        return Err(corrupt(
            key,
            format!("index block key of {} bytes", key.len()),
        ));
    }
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&key[25..]);
    let block = u64::from_be_bytes(raw);
    let mut out = [0u8; RESULT_KEY_LEN];
    out[..24].copy_from_slice(&key[1..25]);
    out[24..].copy_from_slice(&((block << SPAN_BITS) | u64::from(low)).to_be_bytes());
    Ok(out)
}

/// One block's slots: low bits → start time bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Block {
    slots: BTreeMap<u8, [u8; 8]>,
    changed: bool,
}

impl Block {
    pub(super) fn decode(key: &[u8], value: &[u8]) -> Result<Self, StoreError> {
        let Some((&format, entries)) = value.split_first() else {
            return Err(corrupt(key, "empty index block"));
        };
        if format != FORMAT {
            return Err(corrupt(key, format!("unknown index block format {format}")));
        }
        if entries.len() % ENTRY_LEN != 0 {
            return Err(corrupt(key, "index block of a partial entry"));
        }
        let mut slots = BTreeMap::new();
        for entry in entries.chunks_exact(ENTRY_LEN) {
            let mut time = [0u8; 8];
            time.copy_from_slice(&entry[1..]);
            if entry[0] > LOW_MASK as u8 || slots.insert(entry[0], time).is_some() {
                return Err(corrupt(
                    key,
                    format!("index block slot {} invalid", entry[0]),
                ));
            }
        }
        Ok(Self {
            slots,
            changed: false,
        })
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.slots.len() * ENTRY_LEN);
        out.push(FORMAT);
        for (low, time) in &self.slots {
            out.push(*low);
            out.extend_from_slice(time);
        }
        out
    }

    /// Records slot `low`; false if it was already there (the result is stored).
    pub(super) fn insert(&mut self, low: u8, time: [u8; 8]) -> bool {
        if self.slots.contains_key(&low) {
            return false;
        }
        self.slots.insert(low, time);
        self.changed = true;
        true
    }

    pub(super) fn changed(&self) -> bool {
        self.changed
    }

    /// Slots newest sequence first: (low bits, start time bytes).
    pub(super) fn newest_first(&self) -> impl Iterator<Item = (u8, [u8; 8])> + '_ {
        self.slots.iter().rev().map(|(low, time)| (*low, *time))
    }
}

/// Reads the block at `key`, empty if none.
pub(super) fn load(tree: &sled::Tree, key: &BlockKey) -> Result<Block, StoreError> {
    match tree.get(key).map_err(backend)? {
        Some(value) => Block::decode(key, &value),
        None => Ok(Block::default()),
    }
}

/// Converts per-result index entries (`k` ‖ result key → start time) into blocks, `chunk`
/// entries per atomic step; with `max_chunks`, stops after that many (tests: an interrupted
/// conversion). Returns how many entries it converted.
pub(super) fn convert_per_result_entries(
    tree: &sled::Tree,
    chunk: usize,
    max_chunks: Option<usize>,
) -> Result<u64, StoreError> {
    let total = tree.scan_prefix([BY_KEY]).count();
    if total == 0 {
        return Ok(0);
    }
    info!(
        entries = total,
        "converting the result index to blocks of 64 sequence numbers"
    );
    let started = Instant::now();
    let mut reported = Instant::now();
    let mut converted = 0u64;
    for _ in 0..max_chunks.unwrap_or(usize::MAX) {
        let entries: Vec<(sled::IVec, sled::IVec)> = tree
            .scan_prefix([BY_KEY])
            .take(chunk.max(1))
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        if entries.is_empty() {
            break;
        }
        let mut blocks: BTreeMap<BlockKey, Block> = BTreeMap::new();
        let mut batch = sled::Batch::default();
        for (key, time) in &entries {
            let result_key: [u8; RESULT_KEY_LEN] = key
                .get(1..)
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| corrupt(key, "index entry of the wrong length"))?;
            let time: [u8; 8] = time
                .as_ref()
                .try_into()
                .map_err(|_| corrupt(key, "index entry's start time is not 8 bytes"))?;
            let (block_key, low) = locate(&result_key);
            let block = match blocks.entry(block_key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(load(tree, &block_key)?),
            };
            // A slot already in a block keeps its start time (the row it points at).
            block.insert(low, time);
            batch.remove(key);
        }
        for (key, block) in &blocks {
            if block.changed() {
                batch.insert(&key[..], block.encode());
            }
        }
        tree.apply_batch(batch).map_err(backend)?;
        converted += entries.len() as u64;
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            info!(converted, of = total, "converting the result index");
        }
    }
    info!(
        converted,
        seconds = started.elapsed().as_secs_f64(),
        "result index converted to blocks"
    );
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(probe: &str, epoch: u64, sequence: u64) -> [u8; RESULT_KEY_LEN] {
        let mut out = [0u8; RESULT_KEY_LEN];
        out[..16].copy_from_slice(probe.as_bytes());
        out[16..24].copy_from_slice(&epoch.to_be_bytes());
        out[24..].copy_from_slice(&sequence.to_be_bytes());
        out
    }

    #[test]
    fn keys_map_to_blocks_and_back() {
        for sequence in [0, 1, 63, 64, 65, 1000, u64::MAX] {
            let k = key("00000000000000aa", 7, sequence);
            let (block, low) = locate(&k);
            assert_eq!(result_key(&block, low).unwrap(), k, "sequence {sequence}");
        }
        let (a, _) = locate(&key("00000000000000aa", 7, 63));
        let (b, _) = locate(&key("00000000000000aa", 7, 64));
        let (c, _) = locate(&key("00000000000000aa", 8, 0));
        assert!(a < b && b < c, "blocks sort like result keys");
        assert!(a.starts_with(&probe_prefix(b"00000000000000aa")));
    }

    #[test]
    fn blocks_round_trip_refuse_duplicates_and_name_damage() {
        let mut block = Block::default();
        assert!(block.insert(5, [1; 8]));
        assert!(block.insert(2, [2; 8]));
        assert!(!block.insert(5, [9; 8]), "a slot is stored once");
        assert!(block.changed());
        let decoded = Block::decode(b"k", &block.encode()).unwrap();
        assert!(!decoded.changed());
        let slots: Vec<_> = decoded.newest_first().collect();
        assert_eq!(slots, vec![(5, [1; 8]), (2, [2; 8])]);
        for bad in [
            &[][..],
            &[2][..],
            &[1, 5, 0][..],
            &[1, 64, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            let err = Block::decode(b"bkey", bad).unwrap_err().to_string();
            assert!(err.contains("bkey"), "{err}");
        }
        let twice = [
            &[1u8][..],
            &[3, 0, 0, 0, 0, 0, 0, 0, 0],
            &[3, 0, 0, 0, 0, 0, 0, 0, 1],
        ]
        .concat();
        assert!(Block::decode(b"b", &twice).is_err());
    }
}
