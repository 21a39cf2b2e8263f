//! Figures on ClickHouse (`crate::figures`): the same fold as sled's, driven by the collector,
//! with the `results` table itself as the ingest log, so maps, rollups and aggregates read
//! O(groups) rows here too.
//!
//! - **The log** is `results` in insertion order: every flush stamps its rows with one
//!   insertion stamp (µs on the collector's clock, strictly increasing per collector). The
//!   folder takes the stamps up to `now - lag`, where the lag exceeds the request timeout
//!   (an INSERT is visible within it) plus [`CLOCK_SKEW`] between collectors, so a stamp it
//!   passed never gains rows later. A round (`Store::ingest_log_after`) is two queries
//!   whatever its size: its rows, and which of their keys have a copy stamped before the round
//!   (folded already); of several copies in the round the first is folded. A resend (same
//!   key, another INSERT) therefore counts once, through any collector.
//! - **The figures** are versioned rows of the `figures` table (`ReplacingMergeTree(version)`,
//!   newest wins), keys in hex (they sort as the byte keys do), an empty value for a deleted
//!   row. The fold cursor and the folder's lease are rows of the same table, and a round's
//!   rows, cursor and lease heartbeat are one INSERT (one part on one shard): a crash leaves
//!   all or none of them.
//! - **One folder** across collectors: a lease. A collector takes it by claiming the next
//!   lease term (`claims`), after the lease row stayed unchanged for [`FoldTiming::expiry`]
//!   on its own clock (or there is none); the holder renews it with every round and every
//!   [`FoldTiming::hold`] / 3 when idle, and stops writing once it has not renewed for
//!   [`FoldTiming::hold`]. The expiry exceeds the hold plus the request timeout, so the last
//!   write of a holder that stalled has landed before another takes over. No clocks of two
//!   machines are compared for the lease.
//! - **A rebuild** needs the lease. It reads the results stamped up to `now - lag` (one copy
//!   per key), so other collectors may keep ingesting: what they store later is folded after
//!   it, and a later copy of a key it read is seen as one. It writes the cursor away, then
//!   every row, then the cursor, so a crash in between leaves no cursor. The folder builds
//!   the figures that way when there are none (a new database, or one from before figures),
//!   instead of the collector's start: `sixmap-collector rollups rebuild` waits for the lease
//!   of stopped collectors to expire.

use super::ClickHouseStore;
use super::rows::{self, quote};
use crate::store::figure_store::{FigureStore, FigureWrite};
use crate::store::{StoreError, StoredResult};
use sixmap_shared::UnixMicros;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How far the clocks of collectors sharing a ClickHouse may disagree (NTP does far better).
pub const CLOCK_SKEW: Duration = Duration::from_secs(5);
/// Lease renewal without rounds, as a fraction of the hold time.
const RENEWALS_PER_HOLD: u32 = 3;
/// Figure keys read per query (SQL text stays well under ClickHouse's 256 KiB limit).
const KEYS_PER_QUERY: usize = 2000;
/// The cursor's row (`~` sorts after every hex key, so range reads never see it).
const CURSOR: &str = "~cursor";
/// The folder lease's row: `term holder`.
const LEASE: &str = "~lease";

/// The folder's timing (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct FoldTiming {
    /// Stamps younger than this are not folded yet.
    pub lag: Duration,
    /// A holder writes only within this long after its last renewal.
    pub hold: Duration,
    /// A lease row unchanged this long is taken over.
    pub expiry: Duration,
}

impl FoldTiming {
    /// Timing for requests that end within `timeout`.
    pub fn for_timeout(timeout: Duration) -> Self {
        let hold = Duration::from_secs(10);
        Self {
            lag: timeout + CLOCK_SKEW,
            hold,
            expiry: hold + timeout + CLOCK_SKEW,
        }
    }
}

/// What this collector knows of the folder lease.
#[derive(Debug, Default)]
pub(super) struct Lease {
    /// The term this collector holds, and when it last renewed it (request start).
    held: Option<(u64, Instant)>,
    /// The lease row last seen (version, 0 for none) and since when, for the expiry.
    seen: Option<(u64, Instant)>,
    /// The last term this collector claimed and lost.
    lost: Option<u64>,
}

/// A versioned row of `figures`: (version, value).
type Row = (u64, Vec<u8>);

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(table: &str, text: &[u8]) -> Result<Vec<u8>, StoreError> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(rows::corrupt(table, "figure key is not hex")),
    };
    if !text.len().is_multiple_of(2) {
        return Err(rows::corrupt(table, "figure key has an odd length"));
    }
    text.chunks(2)
        .map(|pair| Ok((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

/// One TabSeparated row of `figures`.
fn push_row(out: &mut Vec<u8>, key: &str, version: u64, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(format!("\t{version}\t").as_bytes());
    super::results::push_escaped(out, value);
    out.push(b'\n');
}

fn lease_value(term: u64, holder: u64) -> Vec<u8> {
    format!("{term} {holder}").into_bytes()
}

fn parse_lease(table: &str, value: &[u8]) -> Result<(u64, u64), StoreError> {
    let text = std::str::from_utf8(value).map_err(|e| rows::corrupt(table, e))?;
    let mut parts = text.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(term), Some(holder), None) => Ok((
            rows::number(table, term.as_bytes())?,
            rows::number(table, holder.as_bytes())?,
        )),
        _ => Err(rows::corrupt(table, "lease row is not 'term holder'")),
    }
}

impl ClickHouseStore {
    /// The newest version of each of `keys` (hex) that has one (deleted rows included).
    fn figure_versions(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, Row>, StoreError> {
        let table = self.table("figures");
        let mut out = std::collections::HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let list: Vec<String> = chunk.iter().map(|k| quote(k)).collect();
            let answer = self.client.query_bytes(&format!(
                "SELECT key, version, value FROM {table} WHERE key IN ({}) \
                 ORDER BY key, version DESC LIMIT 1 BY key FORMAT TabSeparated",
                list.join(", ")
            ))?;
            for fields in rows::byte_lines(&answer) {
                let [key, version, value] = fields.as_slice() else {
                    return Err(rows::corrupt(&table, "expected key, version, value"));
                };
                out.insert(
                    rows::text(&table, key)?,
                    (rows::number(&table, version)?, value.clone()),
                );
            }
        }
        Ok(out)
    }

    fn figure_row(&self, key: &str) -> Result<Option<Row>, StoreError> {
        Ok(self.figure_versions(&[key.to_owned()])?.remove(key))
    }

    /// One INSERT of `figures` rows.
    fn insert_figure_rows(&self, rows: Vec<u8>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.client.insert_bytes(
            &format!(
                "INSERT INTO {} (key, version, value) FORMAT TabSeparated",
                self.table("figures")
            ),
            rows.into(),
        )
    }

    fn lease_state(&self) -> Result<std::sync::MutexGuard<'_, Lease>, StoreError> {
        self.lease
            .lock()
            .map_err(|_| StoreError::Backend("figures lease state poisoned".into()))
    }

    /// Whether this collector holds the folder lease now, taking it when it is free or
    /// expired and renewing it when due (see the module doc).
    pub(super) fn fold_lease(&self) -> Result<bool, StoreError> {
        let table = self.table("figures");
        let row = self.figure_row(LEASE)?;
        let current = row
            .as_ref()
            .filter(|(_, value)| !value.is_empty())
            .map(|(version, value)| parse_lease(&table, value).map(|lease| (*version, lease)))
            .transpose()?;
        let timing = self.fold_timing;
        let mut state = self.lease_state()?;
        if let (Some((term, renewed)), Some((_, (stored_term, holder)))) = (state.held, current)
            && term == stored_term
            && holder == self.holder
        {
            if renewed.elapsed() >= timing.hold {
                tracing::warn!(term, "figures lease not renewed in time: folding stops");
                state.held = None;
                return Ok(false);
            }
            if renewed.elapsed() >= timing.hold / RENEWALS_PER_HOLD {
                let started = Instant::now();
                let mut rows = Vec::new();
                push_row(
                    &mut rows,
                    LEASE,
                    self.versions.next().max(row.map_or(0, |r| r.0) + 1),
                    &lease_value(term, self.holder),
                );
                drop(state);
                self.insert_figure_rows(rows)?;
                self.lease_state()?.held = Some((term, started));
            }
            return Ok(true);
        }
        // Held by another collector (or by this one in a term it lost track of).
        state.held = None;
        let version = row.as_ref().map(|r| r.0);
        let seen_version = version.unwrap_or(0);
        let expired = match state.seen {
            Some((seen, since)) if seen == seen_version => since.elapsed() >= timing.expiry,
            // No lease yet, and never tried: take it now.
            None if version.is_none() => true,
            _ => {
                state.seen = Some((seen_version, Instant::now()));
                false
            }
        };
        if !expired {
            return Ok(false);
        }
        // A term that had claims cannot be won any more (`claims`, step 1); if every claimant
        // of one lost, the next try is for the next term.
        let term =
            (current.map_or(0, |(_, (term, _))| term) + 1).max(state.lost.map_or(0, |t| t + 1));
        drop(state);
        let started = Instant::now();
        if !self.claim("figures_lease", &term.to_string())? {
            tracing::debug!(term, "figures lease taken by another collector");
            let mut state = self.lease_state()?;
            state.lost = Some(term);
            // Wait a whole expiry again: the winner's lease row may be on its way.
            state.seen = Some((seen_version, Instant::now()));
            return Ok(false);
        }
        let mut rows = Vec::new();
        push_row(
            &mut rows,
            LEASE,
            self.versions.next().max(version.unwrap_or(0) + 1),
            &lease_value(term, self.holder),
        );
        self.insert_figure_rows(rows)?;
        let mut state = self.lease_state()?;
        state.held = Some((term, started));
        state.seen = None;
        state.lost = None;
        tracing::info!(term, "this collector folds the figures (lease taken)");
        Ok(true)
    }

    /// The lease term to write under: held and renewed within the hold time.
    fn writing_term(&self) -> Result<u64, StoreError> {
        let state = self.lease_state()?;
        match state.held {
            Some((term, renewed)) if renewed.elapsed() < self.fold_timing.hold => Ok(term),
            _ => Err(StoreError::Backend(
                "this collector does not hold the figures lease (another collector folds; \
                 stop every collector before `rollups rebuild`, and retry after the lease \
                 expires)"
                    .into(),
            )),
        }
    }

    /// A version newer than every stored figure row (the cursor's is the newest written).
    fn next_figure_version(&self) -> Result<u64, StoreError> {
        let newest = self.figure_row(CURSOR)?.map_or(0, |r| r.0);
        let lease = self.figure_row(LEASE)?.map_or(0, |r| r.0);
        Ok(self.versions.next().max(newest.max(lease) + 1))
    }

    /// Rows, cursor and lease heartbeat in one INSERT.
    fn write_round(
        &self,
        rows: &[FigureWrite],
        cursor: Option<u64>,
        version: u64,
    ) -> Result<(), StoreError> {
        let term = self.writing_term()?;
        let started = Instant::now();
        let mut body = Vec::with_capacity(rows.len() * 128);
        for (key, value) in rows {
            push_row(
                &mut body,
                &hex(key),
                version,
                value.as_deref().unwrap_or_default(),
            );
        }
        let cursor = cursor.map(|c| c.to_string()).unwrap_or_default();
        push_row(&mut body, CURSOR, version, cursor.as_bytes());
        push_row(&mut body, LEASE, version, &lease_value(term, self.holder));
        self.insert_figure_rows(body)?;
        self.lease_state()?.held = Some((term, started));
        Ok(())
    }

    /// Log positions: the newest stamp the folder may take now.
    fn settled_stamp(&self) -> u64 {
        let lag = i64::try_from(self.fold_timing.lag.as_micros()).unwrap_or(i64::MAX);
        u64::try_from(UnixMicros::now().0.saturating_sub(lag)).unwrap_or(0)
    }

    pub(super) fn log_after(
        &self,
        after: u64,
        max: usize,
        visit: &mut dyn FnMut(u64, StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        if !self.fold_lease()? {
            return Ok(());
        }
        let bound = self.settled_stamp();
        if bound <= after {
            return Ok(());
        }
        let table = self.table("results");
        let upto: u64 = rows::number(
            &table,
            self.client
                .query(&format!(
                    "SELECT max(inserted_at) FROM (SELECT inserted_at FROM {table} \
                     WHERE inserted_at > {after} AND inserted_at <= {bound} \
                     ORDER BY inserted_at LIMIT {max}) FORMAT TabSeparated"
                ))?
                .trim()
                .as_bytes(),
        )?;
        if upto <= after {
            return Ok(());
        }
        let firsts = self.first_insertions(after, upto)?;
        if firsts.is_empty() {
            // Only copies of results folded before: move the cursor past them.
            self.write_round(&[], Some(upto), self.next_figure_version()?)?;
            return Ok(());
        }
        for (stamp, stored) in firsts {
            if !visit(stamp, stored) {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn log_head(&self) -> u64 {
        self.settled_stamp()
    }

    /// Every result the figures at `head` count, for a rebuild.
    pub(super) fn results_upto(
        &self,
        head: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_inserted_upto(head, visit)
    }
}

impl FigureStore for ClickHouseStore {
    fn keeps_figures(&self) -> bool {
        true
    }

    fn figures_built_by_folder(&self) -> bool {
        true
    }

    fn figures_cursor(&self) -> Result<Option<u64>, StoreError> {
        let table = self.table("figures");
        match self.figure_row(CURSOR)? {
            Some((_, value)) if !value.is_empty() => Ok(Some(rows::number(&table, &value)?)),
            _ => Ok(None),
        }
    }

    fn figure(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .figure_row(&hex(key))?
            .map(|(_, value)| value)
            .filter(|value| !value.is_empty()))
    }

    fn figures_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let hexed: Vec<String> = keys.iter().map(|k| hex(k)).collect();
        let mut found = self.figure_versions(&hexed)?;
        Ok(hexed
            .iter()
            .map(|k| found.remove(k).map(|r| r.1).filter(|v| !v.is_empty()))
            .collect())
    }

    fn figure_rows(
        &self,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // One range: the same newest-version-per-key query as several.
        self.figure_ranges(&[(from.to_vec(), to.to_vec())], visit)
    }

    fn figure_ranges(
        &self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let within: Vec<String> = ranges
            .iter()
            .filter(|(from, to)| from < to)
            .map(|(from, to)| {
                format!(
                    "(key >= {} AND key < {})",
                    quote(&hex(from)),
                    quote(&hex(to))
                )
            })
            .collect();
        if within.is_empty() {
            return Ok(());
        }
        let table = self.table("figures");
        let answer = self.client.query_bytes(&format!(
            "SELECT key, value FROM {table} WHERE {} \
             ORDER BY key, version DESC LIMIT 1 BY key FORMAT TabSeparated",
            within.join(" OR ")
        ))?;
        for fields in rows::byte_lines(&answer) {
            let [key, value] = fields.as_slice() else {
                return Err(rows::corrupt(&table, "expected key, value"));
            };
            if value.is_empty() {
                continue;
            }
            if !visit(&unhex(&table, key)?, value) {
                break;
            }
        }
        Ok(())
    }

    fn put_figures(&self, rows: &[FigureWrite], cursor: u64) -> Result<(), StoreError> {
        self.write_round(rows, Some(cursor), self.next_figure_version()?)
    }

    fn replace_figures(&self, rows: &[(Vec<u8>, Vec<u8>)], cursor: u64) -> Result<(), StoreError> {
        // The lease of a stopped collector expires: wait for it (a running one keeps it).
        let deadline = Instant::now() + self.fold_timing.expiry + self.settle * 3;
        while !self.fold_lease()? {
            if Instant::now() >= deadline {
                self.writing_term()?;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // No cursor while rows are replaced: a crash now leaves figures that `ready` refuses.
        let first = self.next_figure_version()?;
        self.write_round(&[], None, first)?;
        let version = first + 1;
        let table = self.table("figures");
        let mut writes: Vec<FigureWrite> = Vec::new();
        let new: std::collections::HashSet<String> = rows.iter().map(|(k, _)| hex(k)).collect();
        for fields in rows::byte_lines(&self.client.query_bytes(&format!(
            "SELECT DISTINCT key FROM {table} WHERE key < '~' FORMAT TabSeparated"
        ))?) {
            let key = rows::text(&table, fields.first().map_or(&[][..], Vec::as_slice))?;
            if !new.contains(&key) {
                writes.push((unhex(&table, key.as_bytes())?, None));
            }
        }
        writes.extend(rows.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
        for chunk in writes.chunks(100_000) {
            self.write_round(chunk, None, version)?;
        }
        self.write_round(&[], Some(cursor), version + 1)
    }

    fn results_logged_upto(
        &self,
        head: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<bool, StoreError> {
        self.results_upto(head, visit)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_sort_as_the_bytes_and_come_back() {
        let keys: [&[u8]; 4] = [b"", b"\x00\xff", b"\x01", b"D\x80\x00"];
        let mut sorted = keys.to_vec();
        sorted.sort();
        let mut by_hex = keys.to_vec();
        by_hex.sort_by_key(|k| hex(k));
        assert_eq!(sorted, by_hex);
        for key in keys {
            assert_eq!(unhex("t", hex(key).as_bytes()).unwrap(), key);
        }
        assert!(unhex("t", b"0g").is_err());
        assert!(hex(b"\xff\xff").as_str() < CURSOR);
    }

    #[test]
    fn lease_rows_parse_back() {
        assert_eq!(parse_lease("t", &lease_value(3, 99)).unwrap(), (3, 99));
        assert!(parse_lease("t", b"3").is_err());
    }
}
