//! The ingest path's hand-off to the folder: each stored batch's figure deltas, in memory.
//!
//! The session that stores a batch holds its results decoded already; folding them there
//! (`FigureSet::fold`, the same code the folder runs) and handing the delta over costs a few
//! rows per batch, where reading them back from the ingest log cost a lookup and a protobuf
//! decode per result (a tenth of the collector's CPU at full ingest). The log stays the
//! durable record: the folder reads it wherever the feed has no delta (after a restart, a
//! delta dropped because the folder fell behind, a session that stored a batch but stopped
//! before handing its delta over, a store that gives no log positions). A delta is keyed by
//! the log positions of its results, so one is never folded twice: the folder takes only
//! deltas that start right after its cursor, and drops those at or before it.

use super::FigureSet;
use crate::store::StoredResult;
use sixmap_shared::prefixes::PrefixData;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Deltas kept at most (about a batch each): beyond this the folder is far behind, and the
/// results wait for it in the log instead of in memory.
pub const MAX_PENDING: usize = 8_192;
/// Figure rows kept at most over all deltas: a batch of results with scattered times and
/// targets makes a delta of hundreds of rows, so the count of deltas alone does not bound
/// the memory (a row with its sketch is a few hundred bytes).
pub const MAX_PENDING_ROWS: usize = 250_000;

/// A batch's delta: the figures of the results at log positions `first..=last`.
#[derive(Debug)]
struct Delta {
    last: u64,
    set: FigureSet,
}

/// Deltas handed from sessions to the folder (module doc).
#[derive(Debug, Default)]
pub struct Feed {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    deltas: BTreeMap<u64, Delta>,
    /// Figure rows over all `deltas`.
    rows: usize,
}

impl Pending {
    fn remove_first(&mut self) -> Option<(u64, Delta)> {
        let (first, delta) = self.deltas.pop_first()?;
        self.rows = self.rows.saturating_sub(delta.set.rows.len());
        Some((first, delta))
    }
}

/// What the folder should fold next, after its cursor.
#[derive(Debug)]
pub enum Next {
    /// Deltas of the positions right after the cursor, merged, up to `last`.
    Deltas {
        set: FigureSet,
        last: u64,
        results: usize,
    },
    /// No delta starts right after the cursor: read the log, up to `upto` when a later delta
    /// is waiting (so the log read ends where the deltas take over).
    Log { upto: Option<u64> },
}

impl Feed {
    /// Hands over the figures of `new`, the results a batch stored at log positions `first`,
    /// `first + 1`, … in order. `hours_since` as for [`FigureSet::fold`].
    pub fn offer<'a>(
        &self,
        first: u64,
        new: impl ExactSizeIterator<Item = &'a StoredResult>,
        prefixes: &PrefixData,
        hours_since: i64,
    ) {
        let Some(last) = u64::try_from(new.len())
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| first.checked_add(n - 1))
        else {
            return;
        };
        let mut set = FigureSet::default();
        for stored in new {
            set.fold(stored, prefixes, hours_since);
        }
        let rows = set.rows.len();
        let mut pending = self.lock();
        if pending.deltas.len() < MAX_PENDING && pending.rows + rows <= MAX_PENDING_ROWS {
            pending.rows += rows;
            if let Some(replaced) = pending.deltas.insert(first, Delta { last, set }) {
                pending.rows -= replaced.set.rows.len();
            }
        }
    }

    /// The deltas that continue from `cursor` (the last position folded), at most `max`
    /// results unless a single delta holds more.
    pub fn next(&self, cursor: u64, max: usize) -> Next {
        let mut taken = Vec::new();
        let mut results = 0usize;
        let mut last = cursor;
        {
            let mut pending = self.lock();
            // Folded already (through the log), whole or in part: a delta cannot be split.
            while pending
                .deltas
                .first_key_value()
                .is_some_and(|(first, _)| *first <= cursor)
            {
                pending.remove_first();
            }
            while let Some((first, delta)) = pending.deltas.first_key_value() {
                let n = usize::try_from(delta.last - first + 1).unwrap_or(usize::MAX);
                if *first != last + 1 || (results > 0 && results.saturating_add(n) > max) {
                    break;
                }
                let Some((_, delta)) = pending.remove_first() else {
                    break;
                };
                last = delta.last;
                results = results.saturating_add(n);
                taken.push(delta.set);
            }
            if taken.is_empty() {
                return Next::Log {
                    upto: pending.deltas.keys().next().map(|first| first - 1),
                };
            }
        }
        let mut set = FigureSet::default();
        for delta in taken {
            set.merge(delta);
        }
        Next::Deltas { set, last, results }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding it leaves a map of whole deltas: still usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::prefixes::Enrichment;
    use sixmap_shared::{ProbeId, UnixMicros};

    fn stored(probe: &ProbeId, sequence: u64) -> StoredResult {
        crate::testing::ping_v6(
            probe.clone(),
            sequence,
            UnixMicros(1_700_000_000_000_000 + sequence as i64),
            None,
            Enrichment::default(),
        )
    }

    fn offer(feed: &Feed, first: u64, results: &[StoredResult]) {
        feed.offer(first, results.iter(), &PrefixData::default(), 0);
    }

    fn count(set: &FigureSet) -> u64 {
        set.rows
            .values()
            .filter_map(|f| match f {
                super::super::Figure::Tally(t) => Some(t.count),
                _ => None,
            })
            .sum::<u64>()
            / 2
    }

    #[test]
    fn deltas_are_taken_in_position_order_from_the_cursor_and_never_twice() {
        let probe = ProbeId::random().unwrap();
        let r: Vec<StoredResult> = (1..=10).map(|s| stored(&probe, s)).collect();
        let feed = Feed::default();
        // Sessions hand over out of order; positions 1..=3 and 4..=5 and 8..=10.
        offer(&feed, 4, &r[3..5]);
        offer(&feed, 1, &r[0..3]);
        offer(&feed, 8, &r[7..10]);
        match feed.next(0, 100) {
            Next::Deltas { set, last, results } => {
                assert_eq!((last, results), (5, 5));
                assert_eq!(count(&set), 5);
            }
            other => panic!("{other:?}"),
        }
        // 6..=7 never handed over: the log, up to where the next delta starts.
        assert!(matches!(feed.next(5, 100), Next::Log { upto: Some(7) }));
        // The log was read up to 8 (into the delta 8..=10): that delta is dropped, not split.
        assert!(matches!(feed.next(8, 100), Next::Log { upto: None }));
        // A late hand-over of positions the log already gave is dropped too.
        offer(&feed, 6, &r[5..7]);
        assert!(matches!(feed.next(10, 100), Next::Log { upto: None }));
    }

    #[test]
    fn a_round_takes_at_most_max_results_but_at_least_one_delta() {
        let probe = ProbeId::random().unwrap();
        let r: Vec<StoredResult> = (1..=6).map(|s| stored(&probe, s)).collect();
        let feed = Feed::default();
        offer(&feed, 1, &r[0..3]);
        offer(&feed, 4, &r[3..6]);
        assert!(matches!(
            feed.next(0, 2),
            Next::Deltas {
                last: 3,
                results: 3,
                ..
            }
        ));
        assert!(matches!(
            feed.next(3, 5),
            Next::Deltas {
                last: 6,
                results: 3,
                ..
            }
        ));
        offer(&feed, 7, &[]);
        assert!(matches!(feed.next(6, 5), Next::Log { upto: None }));
    }

    #[test]
    fn memory_is_bounded_and_what_is_dropped_waits_in_the_log() {
        let probe = ProbeId::random().unwrap();
        let one = [stored(&probe, 1)];
        let feed = Feed::default();
        for position in 1..=(MAX_PENDING as u64 + 10) {
            offer(&feed, position, &one);
        }
        assert_eq!(feed.lock().deltas.len(), MAX_PENDING);
        match feed.next(0, usize::MAX) {
            Next::Deltas { last, .. } => assert_eq!(last, MAX_PENDING as u64),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            feed.next(MAX_PENDING as u64, 10),
            Next::Log { upto: None }
        ));
    }

    #[test]
    fn memory_is_bounded_by_figure_rows_too() {
        let probe = ProbeId::random().unwrap();
        // Results a day apart: each makes its own day rows, so a delta has many rows.
        let scattered: Vec<StoredResult> = (0..200)
            .map(|i| {
                crate::testing::ping_v6(
                    probe.clone(),
                    i + 1,
                    UnixMicros(1_700_000_000_000_000 + i as i64 * super::super::DAY_US),
                    None,
                    Enrichment::default(),
                )
            })
            .collect();
        let feed = Feed::default();
        let mut position = 1;
        for _ in 0..MAX_PENDING {
            offer(&feed, position, &scattered);
            position += scattered.len() as u64;
        }
        let pending = feed.lock();
        assert!(pending.rows <= MAX_PENDING_ROWS, "{}", pending.rows);
        assert!(pending.deltas.len() < MAX_PENDING);
        assert_eq!(
            pending.rows,
            pending
                .deltas
                .values()
                .map(|d| d.set.rows.len())
                .sum::<usize>()
        );
    }
}
