//! Result rows waiting for the next flush, so every session's batches written before a group
//! commit go to ClickHouse in one INSERT (one part to merge instead of one per batch).
//!
//! Exactly once without a lookup: every row is inserted, a resent result included, and the
//! `results` table (a `ReplacingMergeTree` on start time and result key) plus reads that
//! keep one row per key (`LIMIT 1 BY`) make a key count once in every answer. What
//! [`Pending::mark_seen`] remembers only tells the caller which results it has seen before
//! (for the new / duplicate counts of an ack); it never decides whether a row is written, so
//! a forgotten or colliding key cannot lose a result.

use super::super::StoreError;
use hyper::body::Bytes;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Most bytes of rows waiting for a flush: past it, writes fail (ClickHouse is not keeping
/// up or not answering) instead of the collector's memory growing without bound.
pub const MAX_PENDING_BYTES: usize = 256 << 20;
/// Result keys remembered as seen (8 bytes of hash each, twice).
const RECENT_KEYS: usize = 1 << 20;

#[derive(Debug, Default)]
struct Buffer {
    /// TabSeparated rows.
    rows: Vec<u8>,
    count: usize,
}

#[derive(Debug, Default)]
struct Recent {
    keys: HashSet<u64>,
    order: VecDeque<u64>,
}

#[derive(Debug, Default)]
pub struct Pending {
    buffer: Mutex<Buffer>,
    /// Held for the whole of a flush: one flush at a time, so a flush that finds the buffer
    /// empty returns only after the flush that took the rows written before it completed.
    flushing: Mutex<()>,
    recent: Mutex<Recent>,
}

fn poisoned(what: &str) -> StoreError {
    StoreError::Backend(format!("ClickHouse {what} state poisoned"))
}

impl Pending {
    /// Queues rows for the next flush.
    pub fn add(&self, rows: &[u8], count: usize) -> Result<(), StoreError> {
        let mut buffer = self.buffer.lock().map_err(|_| poisoned("pending rows"))?;
        if buffer.rows.len() + rows.len() > MAX_PENDING_BYTES {
            return Err(StoreError::Backend(format!(
                "{} results ({} MiB) are waiting for ClickHouse, the most kept in memory: \
                 ClickHouse is not keeping up or not answering",
                buffer.count,
                buffer.rows.len() >> 20
            )));
        }
        buffer.rows.extend_from_slice(rows);
        buffer.count += count;
        Ok(())
    }

    /// Rows waiting (for logs and tests).
    pub fn waiting(&self) -> usize {
        self.buffer.lock().map_or(0, |b| b.count)
    }

    /// For each key hash, whether it was seen before; remembers them all.
    pub fn mark_seen(&self, hashes: &[u64]) -> Vec<bool> {
        let Ok(mut recent) = self.recent.lock() else {
            return vec![false; hashes.len()];
        };
        hashes
            .iter()
            .map(|&hash| {
                if !recent.keys.insert(hash) {
                    return true;
                }
                recent.order.push_back(hash);
                if recent.order.len() > RECENT_KEYS
                    && let Some(old) = recent.order.pop_front()
                {
                    recent.keys.remove(&old);
                }
                false
            })
            .collect()
    }

    /// Sends every waiting row with `insert` (one call). Returns once rows queued before this
    /// call are in ClickHouse. On failure the rows are queued again, ahead of newer ones, so
    /// a later flush cannot report success for them without sending them.
    pub fn flush(
        &self,
        insert: impl FnOnce(Bytes) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let _one_at_a_time = self.flushing.lock().map_err(|_| poisoned("flush"))?;
        let taken = {
            let mut buffer = self.buffer.lock().map_err(|_| poisoned("pending rows"))?;
            std::mem::take(&mut *buffer)
        };
        if taken.count == 0 {
            return Ok(());
        }
        let count = taken.count;
        let started = std::time::Instant::now();
        let rows = Bytes::from(taken.rows);
        match insert(rows.clone()) {
            Ok(()) => {
                tracing::debug!(
                    rows = count,
                    ms = started.elapsed().as_millis(),
                    "ClickHouse results flushed"
                );
                Ok(())
            }
            Err(e) => {
                let mut buffer = self.buffer.lock().map_err(|_| poisoned("pending rows"))?;
                let newer = std::mem::take(&mut *buffer);
                let mut again = rows.to_vec();
                again.extend_from_slice(&newer.rows);
                *buffer = Buffer {
                    rows: again,
                    count: count + newer.count,
                };
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_flush_keeps_its_rows_for_the_next() {
        let pending = Pending::default();
        pending.add(b"a\n", 1).unwrap();
        let failed = pending.flush(|_| Err(StoreError::Backend("down".into())));
        assert!(failed.is_err());
        pending.add(b"b\n", 1).unwrap();
        let mut sent = Vec::new();
        pending
            .flush(|rows| {
                sent = rows.to_vec();
                Ok(())
            })
            .unwrap();
        assert_eq!(sent, b"a\nb\n");
        assert_eq!(pending.waiting(), 0);
        // Nothing waiting: no INSERT at all.
        pending.flush(|_| panic!("nothing to send")).unwrap();
    }

    #[test]
    fn writes_past_the_bound_fail_instead_of_growing() {
        let pending = Pending::default();
        let big = vec![b'x'; MAX_PENDING_BYTES];
        pending.add(&big, 1).unwrap();
        let error = pending.add(b"y\n", 1).unwrap_err().to_string();
        assert!(error.contains("not keeping up"), "{error}");
    }

    #[test]
    fn seen_keys_are_remembered_and_bounded() {
        let pending = Pending::default();
        assert_eq!(pending.mark_seen(&[1, 2, 1]), vec![false, false, true]);
        assert_eq!(pending.mark_seen(&[2, 3]), vec![true, false]);
        let many: Vec<u64> = (10..10 + RECENT_KEYS as u64).collect();
        pending.mark_seen(&many);
        // The oldest were forgotten.
        assert_eq!(pending.mark_seen(&[1]), vec![false]);
    }
}
