//! The sled store's ingest log entries: one per stored batch, not one per result.
//!
//! The figures' folder counts every new result once (`crate::figures::fold`). While the
//! collector runs it gets each batch's figure deltas in memory from the session that stored
//! it (`crate::figures::feed`); the log is what survives a restart, and what the folder reads
//! when a delta is missing. An entry per result cost two more tree updates per result (its
//! insert, and its removal once folded); an entry holding the rows' values doubled the bytes
//! sled writes per result. An entry per batch holds the batch's row keys only, and pruning
//! removes one entry per batch.
//!
//! Key: `l` ‖ position of the batch's first new result (u64, big-endian); its results have
//! the positions that follow, in order. Value ([`FORMAT_KEYS`]): the format byte, the count
//! (u32 BE), then each result's row key ([`ROW_KEY_LEN`] bytes). Earlier entries are read too:
//! [`FORMAT_BATCH`] (each row key followed by its value's length (u32 BE) and the value) and
//! the first layout (exactly `ROW_KEY_LEN` bytes, one row key, no format byte). Where an entry
//! holds no value the row is read from the results.

use super::StoreError;
use super::result_codec::ROW_KEY_LEN;
use super::sled_db::{LOG, LOG_HEAD, backend, u64_of};

/// The format byte of an entry of row keys (the layout written now; see the module doc).
/// A first-layout entry is exactly `ROW_KEY_LEN` bytes long; an entry with a
/// header never is (header and at least one row key).
pub(super) const FORMAT_KEYS: u8 = 0xB2;
/// The format byte of an entry holding row keys and values (read only).
pub(super) const FORMAT_BATCH: u8 = 0xB1;
const HEADER_LEN: usize = 1 + 4;

/// Builds one entry.
#[derive(Debug)]
pub(super) struct EntryWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl EntryWriter {
    pub(super) fn with_capacity(results: usize) -> Self {
        let mut out = Vec::with_capacity(HEADER_LEN + results * ROW_KEY_LEN);
        out.push(FORMAT_KEYS);
        out.extend_from_slice(&0u32.to_be_bytes());
        Self {
            bytes: out,
            count: 0,
        }
    }

    /// Adds a result by its row key (without the tree prefix).
    pub(super) fn push(&mut self, row: &[u8]) {
        debug_assert_eq!(row.len(), ROW_KEY_LEN);
        self.bytes.extend_from_slice(row);
        self.count += 1;
    }

    pub(super) fn count(&self) -> u32 {
        self.count
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.bytes[1..HEADER_LEN].copy_from_slice(&self.count.to_be_bytes());
        self.bytes
    }
}

/// An entry as [`FORMAT_BATCH`] wrote it: row keys with their values (tests of upgrades).
#[cfg(test)]
pub(super) fn batch_entry_with_values(rows: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = vec![FORMAT_BATCH];
    out.extend_from_slice(&u32::try_from(rows.len()).unwrap_or(u32::MAX).to_be_bytes());
    for (row, value) in rows {
        out.extend_from_slice(row);
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// One result of an entry: its row key and, unless the entry is legacy, its value.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoggedRow<'a> {
    pub row: &'a [u8],
    pub value: Option<&'a [u8]>,
}

fn corrupt(position: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: format!("ingest log entry {position}"),
        reason: reason.into(),
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(raw))
}

/// How many results the entry at `first` holds.
pub(super) fn count(first: u64, entry: &[u8]) -> Result<u64, StoreError> {
    if entry.len() == ROW_KEY_LEN {
        return Ok(1);
    }
    match entry.first() {
        Some(&(FORMAT_BATCH | FORMAT_KEYS)) => u32_at(entry, 1)
            .map(u64::from)
            .ok_or_else(|| corrupt(first, "truncated header")),
        Some(format) => Err(corrupt(first, format!("unknown format {format}"))),
        None => Err(corrupt(first, "empty entry")),
    }
}

/// The results of the entry at `first`, in position order.
pub(super) fn rows(first: u64, entry: &[u8]) -> Result<Vec<LoggedRow<'_>>, StoreError> {
    if entry.len() == ROW_KEY_LEN {
        return Ok(vec![LoggedRow {
            row: entry,
            value: None,
        }]);
    }
    let n = count(first, entry)?;
    if entry.first() == Some(&FORMAT_KEYS) {
        let keys = entry.get(HEADER_LEN..).unwrap_or_default();
        if u64::try_from(keys.len()).ok() != n.checked_mul(ROW_KEY_LEN as u64) {
            return Err(corrupt(
                first,
                format!("{} bytes of row keys for {n} results", keys.len()),
            ));
        }
        return Ok(keys
            .chunks_exact(ROW_KEY_LEN)
            .map(|row| LoggedRow { row, value: None })
            .collect());
    }
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(1 << 16));
    let mut at = HEADER_LEN;
    for _ in 0..n {
        let row = entry
            .get(at..at + ROW_KEY_LEN)
            .ok_or_else(|| corrupt(first, "truncated row key"))?;
        at += ROW_KEY_LEN;
        let len = u32_at(entry, at).ok_or_else(|| corrupt(first, "truncated value length"))?;
        at += 4;
        let len = usize::try_from(len).map_err(|_| corrupt(first, "value too long"))?;
        let value = entry
            .get(at..at + len)
            .ok_or_else(|| corrupt(first, "truncated value"))?;
        at += len;
        out.push(LoggedRow {
            row,
            value: Some(value),
        });
    }
    if at != entry.len() {
        return Err(corrupt(first, "bytes after the last result"));
    }
    Ok(out)
}

/// The newest log position: the head record, or the last entry if newer.
pub(super) fn read_log_head(results: &sled::Tree) -> Result<u64, StoreError> {
    let recorded = match results.get(LOG_HEAD).map_err(backend)? {
        Some(bytes) => u64_of(LOG_HEAD, &bytes)?,
        None => 0,
    };
    let last = match results
        .scan_prefix([LOG])
        .next_back()
        .transpose()
        .map_err(backend)?
    {
        Some((key, entry)) => {
            let first = u64_of(&key, key.get(1..).unwrap_or_default())?;
            first.saturating_add(count(first, &entry)?.saturating_sub(1))
        }
        None => 0,
    };
    Ok(recorded.max(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_named() {
        let row = |i: u8| [i; ROW_KEY_LEN];
        let mut writer = EntryWriter::with_capacity(0);
        for i in 1..=3 {
            writer.push(&row(i));
        }
        assert_eq!(writer.count(), 3);
        let entry = writer.finish();
        assert_eq!(entry.len(), HEADER_LEN + 3 * ROW_KEY_LEN);
        assert_eq!(count(5, &entry).unwrap(), 3);
        let read = rows(5, &entry).unwrap();
        let keys: Vec<&[u8]> = read.iter().map(|r| r.row).collect();
        assert_eq!(keys, vec![&row(1)[..], &row(2)[..], &row(3)[..]]);
        assert!(read.iter().all(|r| r.value.is_none()));

        // The layout with values, as the previous release wrote it.
        let batch =
            batch_entry_with_values(&[(&row(1), b"one"), (&row(2), b""), (&row(3), &[7; 300])]);
        assert_eq!(count(5, &batch).unwrap(), 3);
        let read = rows(5, &batch).unwrap();
        assert_eq!(read[0].row, &row(1));
        assert_eq!(read[0].value, Some(&b"one"[..]));
        assert_eq!(read[1].value, Some(&b""[..]));
        assert_eq!(read[2].value.map(<[u8]>::len), Some(300));

        // A first-layout entry: one row key, no value.
        let legacy_entry = row(4);
        let legacy = rows(9, &legacy_entry).unwrap();
        assert_eq!(legacy.len(), 1);
        assert!(legacy[0].value.is_none());
        assert_eq!(count(9, &row(4)).unwrap(), 1);

        for damaged in [&entry, &batch] {
            for cut in [1, HEADER_LEN + 3, damaged.len() - 1] {
                let err = rows(5, &damaged[..cut]).unwrap_err().to_string();
                assert!(err.contains("ingest log entry 5"), "{err}");
            }
            let mut longer = damaged.clone();
            longer.push(0);
            assert!(rows(5, &longer).is_err());
        }
        assert!(count(5, &[9, 0, 0, 0, 1]).is_err());
        assert!(count(5, &[]).is_err());
    }
}
