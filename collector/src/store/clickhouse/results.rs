//! Results and loss records: idempotent batched inserts, deduplicated reads, and scans in
//! pages so neither side holds a whole time range in memory.

use super::ClickHouseStore;
use super::rows::{self, quote};
use crate::store::result_codec;
use crate::store::{
    CampaignCell, Inserted, ResultQuery, StoreError, StoredResult, Undecoded, failure_class,
    is_newer,
};
use serde_json::json;
use sixmap_shared::health::OutboxLoss;
use sixmap_shared::{ResultKey, UnixMicros};
use std::collections::{BTreeMap, HashSet};

/// How long a task found linked to no campaign is taken as unlinked.
const LINK_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Rows per page of a scan: one sorted page at a time on the server, streamed to us.
const PAGE: usize = 5000;

type Key = (String, u64, u64);

fn key_of(key: &ResultKey) -> Key {
    (
        key.probe_id.as_str().to_owned(),
        key.boot_epoch,
        key.sequence,
    )
}

/// `(probe_id, boot_epoch, sequence) IN (…)` for these keys.
fn keys_in<'a>(keys: impl Iterator<Item = &'a ResultKey>) -> String {
    let tuples: Vec<String> = keys
        .map(|k| {
            format!(
                "({}, {}, {})",
                quote(k.probe_id.as_str()),
                k.boot_epoch,
                k.sequence
            )
        })
        .collect();
    format!(
        "(probe_id, boot_epoch, sequence) IN ({})",
        tuples.join(", ")
    )
}

fn stored_keys(answer: &str, table: &str) -> Result<HashSet<Key>, StoreError> {
    rows::lines(answer)
        .map(|f| match f.as_slice() {
            [probe, epoch, sequence] => Ok((
                rows::text(table, probe)?,
                rows::number(table, epoch)?,
                rows::number(table, sequence)?,
            )),
            _ => Err(rows::corrupt(
                table,
                "expected probe_id, boot_epoch, sequence",
            )),
        })
        .collect()
}

/// Sort columns of a paged scan; a page continues after the last row's values.
#[derive(Clone, Copy)]
enum Order {
    /// (started_at, probe_id, boot_epoch, sequence): time order.
    Time,
    /// (probe_id, boot_epoch, sequence): result key order.
    Key,
}

impl Order {
    fn columns(self) -> &'static [&'static str] {
        match self {
            Order::Time => &["started_at", "probe_id", "boot_epoch", "sequence"],
            Order::Key => &["probe_id", "boot_epoch", "sequence"],
        }
    }
}

/// Rows strictly after `last` in the order of `columns` (18.16 has no tuple comparison).
fn after(columns: &[&str], last: &[String]) -> String {
    let mut alternatives = Vec::new();
    for i in 0..columns.len() {
        let mut terms: Vec<String> = (0..i)
            .map(|j| format!("{} = {}", columns[j], last[j]))
            .collect();
        terms.push(format!("{} > {}", columns[i], last[i]));
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    format!("({})", alternatives.join(" OR "))
}

/// The columns an INSERT of results writes: the flush's stamp ([`stamp_rows`]), then what
/// [`push_row`] writes (`json` stays empty: the result is in `raw`).
const INSERT_COLUMNS: &str = "inserted_at, started_at, probe_id, boot_epoch, sequence, task_id, campaign, \
     kind, family, destination, probe_asn, probe_country, target_asn, target_country, \
     reached, global, ping_rtt_ns, raw";

/// The columns a read of results selects: what [`decode_row`] needs.
const READ_COLUMNS: &str = "started_at, probe_id, boot_epoch, sequence, raw, json";

/// One TabSeparated field: the bytes, with the escapes ClickHouse reads back.
pub(super) fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            b => out.push(b),
        }
    }
}

/// A result's row, TabSeparated, in [`INSERT_COLUMNS`] order.
fn push_row(out: &mut Vec<u8>, stored: &StoredResult, campaign: u64) {
    use sixmap_shared::measurement::{Family, Outcome};
    use std::io::Write as _;
    let r = &stored.result;
    let origin = |e: &Option<sixmap_shared::prefixes::Enrichment>| {
        let asn = e.as_ref().and_then(|e| e.asn).unwrap_or(0);
        let country = e
            .as_ref()
            .and_then(|e| e.country)
            .map(|c| c.to_string())
            .unwrap_or_default();
        (asn, country)
    };
    let (probe_asn, probe_country) = origin(&stored.probe_origin);
    let (target_asn, target_country) = origin(&stored.target_origin);
    let family = match r.family_used.unwrap_or(r.family_requested) {
        Family::V6 => "v6",
        Family::V4 => "v4",
    };
    let ping_rtt_ns = match &r.outcome {
        Outcome::Ping(ping) => ping
            .min_rtt()
            .map_or(-1, |rtt| i64::try_from(rtt.as_nanos()).unwrap_or(i64::MAX)),
        _ => -1,
    };
    let global = r
        .destination
        .is_some_and(|d| sixmap_shared::policy::classify(d).is_none());
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{campaign}\t{}\t{family}\t{}\t{probe_asn}\t{probe_country}\t\
         {target_asn}\t{target_country}\t{}\t{}\t{ping_rtt_ns}\t",
        r.started_at.0,
        r.key.probe_id.as_str(),
        r.key.boot_epoch,
        r.key.sequence,
        r.task_id.get(),
        r.outcome.kind().map_or("failed", |k| k.name()),
        r.destination.map(|d| d.to_string()).unwrap_or_default(),
        u8::from(r.outcome.reached_destination()),
        u8::from(global),
    );
    push_escaped(out, &result_codec::encode_value(stored));
    out.push(b'\n');
}

/// `rows` (TabSeparated lines, escaped so a line never holds a raw newline) with `stamp` as
/// their first field.
fn stamp_rows(rows: &[u8], stamp: u64) -> Vec<u8> {
    let prefix = format!("{stamp}\t");
    let lines = rows.iter().filter(|&&b| b == b'\n').count();
    let mut out = Vec::with_capacity(rows.len() + lines * prefix.len());
    for line in rows.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    out
}

/// A hash of a result key, for [`super::pending::Pending::mark_seen`].
fn key_hash(key: &ResultKey) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.probe_id.as_str().hash(&mut hasher);
    key.boot_epoch.hash(&mut hasher);
    key.sequence.hash(&mut hasher);
    hasher.finish()
}

/// A result from the fields of [`READ_COLUMNS`]: the compact value when there is one, else
/// the JSON a schema-1 row holds.
fn decode_row(table: &str, fields: &[Vec<u8>]) -> Result<StoredResult, StoreError> {
    let [at, probe, epoch, sequence, raw, json] = fields else {
        return Err(rows::corrupt(table, "wrong number of columns"));
    };
    if raw.is_empty() {
        return rows::json(table, json);
    }
    result_codec::decode_value(&row_key(table, [at, probe, epoch, sequence])?, raw)
}

/// [`decode_row`] with the compact value's decoding left to the caller ([`Undecoded`]).
fn undecoded_row(table: &str, fields: Vec<Vec<u8>>) -> Result<Undecoded, StoreError> {
    let Ok([at, probe, epoch, sequence, raw, json]) = <[Vec<u8>; 6]>::try_from(fields) else {
        return Err(rows::corrupt(table, "wrong number of columns"));
    };
    if raw.is_empty() {
        return rows::json(table, &json).map(Undecoded::ready);
    }
    Ok(Undecoded::row(
        row_key(table, [&at, &probe, &epoch, &sequence])?,
        raw,
    ))
}

/// The sled row key (`result_codec`) of a row's start time and result key fields.
fn row_key(table: &str, [at, probe, epoch, sequence]: [&[u8]; 4]) -> Result<Vec<u8>, StoreError> {
    let at: i64 = rows::number(table, at)?;
    if probe.len() != 16 {
        return Err(rows::corrupt(
            table,
            format!("probe id {:?}", String::from_utf8_lossy(probe)),
        ));
    }
    let mut row = Vec::with_capacity(result_codec::ROW_KEY_LEN);
    row.extend_from_slice(&result_codec::time_bytes(UnixMicros(at)));
    row.extend_from_slice(probe);
    row.extend_from_slice(&rows::number::<u64>(table, epoch)?.to_be_bytes());
    row.extend_from_slice(&rows::number::<u64>(table, sequence)?.to_be_bytes());
    Ok(row)
}

impl ClickHouseStore {
    /// Queues a batch for the next flush (no request to ClickHouse but, for a task not seen
    /// lately, one lookup of its campaign). Results repeated within the batch are written
    /// once; a result stored before is written again and counted once by every read (see
    /// [`super::pending`]). `Duplicate` means seen before by this collector lately.
    pub(super) fn insert_result_rows(
        &self,
        results: &[StoredResult],
    ) -> Result<Vec<Inserted>, StoreError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let campaigns = self.campaigns_of(results.iter().map(|r| r.result.task_id.get()))?;
        let hashes: Vec<u64> = results.iter().map(|r| key_hash(&r.result.key)).collect();
        let seen_before = self.pending.mark_seen(&hashes);
        let mut in_batch = HashSet::with_capacity(results.len());
        let mut outcome = Vec::with_capacity(results.len());
        let mut rows = Vec::with_capacity(results.len() * 512);
        let mut count = 0;
        for (stored, seen) in results.iter().zip(seen_before) {
            if !in_batch.insert(key_of(&stored.result.key)) {
                outcome.push(Inserted::Duplicate);
                continue;
            }
            outcome.push(if seen {
                Inserted::Duplicate
            } else {
                Inserted::New
            });
            let task = stored.result.task_id.get();
            push_row(
                &mut rows,
                stored,
                campaigns.get(&task).copied().unwrap_or(0),
            );
            count += 1;
        }
        self.pending.add(&rows, count)?;
        Ok(outcome)
    }

    /// Sends the queued results in one INSERT (see [`super::pending::Pending::flush`]),
    /// every row stamped with this flush's insertion stamp (the figures' ingest log position,
    /// `super::figures`): taken when the INSERT starts, so a row becomes visible within the
    /// request timeout of its stamp; rows of a failed flush get a new stamp when sent again.
    pub(super) fn flush_results(&self) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {} ({INSERT_COLUMNS}) FORMAT TabSeparated",
            self.table("results")
        );
        self.pending.flush(|rows| {
            let started = std::time::Instant::now();
            let stamp = self.versions.next();
            let sent = self
                .client
                .insert_bytes(&sql, stamp_rows(&rows, stamp).into());
            if sent.is_ok() && started.elapsed() >= self.fold_timing.lag {
                // The folder may have passed this stamp already: the figures can miss these
                // rows until `sixmap-collector rollups rebuild`.
                tracing::error!(elapsed = ?started.elapsed(), lag = ?self.fold_timing.lag, "a results INSERT took longer than the figures' fold lag");
            }
            sent
        })
    }

    /// One INSERT for the rows of a batch that were not stored yet (none: no request).
    fn insert_new_rows(
        &self,
        table: &str,
        new_rows: &[serde_json::Value],
    ) -> Result<(), StoreError> {
        if !new_rows.is_empty() {
            self.client.insert(
                &format!("INSERT INTO {table} FORMAT JSONEachRow"),
                rows::each_row(new_rows),
            )?;
        }
        Ok(())
    }

    pub(super) fn result_rows(&self, query: &ResultQuery) -> Result<Vec<StoredResult>, StoreError> {
        // Reads see every result written before them, queued ones included.
        self.flush_results()?;
        let table = self.table("results");
        let sql = match &query.probe {
            Some(probe) => format!(
                "SELECT {READ_COLUMNS} FROM {table} WHERE probe_id = {} \
                 ORDER BY boot_epoch DESC, sequence DESC \
                 LIMIT 1 BY probe_id, boot_epoch, sequence LIMIT {} FORMAT TabSeparated",
                quote(probe.as_str()),
                query.limit
            ),
            None => format!(
                "SELECT {READ_COLUMNS} FROM {table} \
                 ORDER BY started_at DESC, probe_id DESC, boot_epoch DESC, sequence DESC \
                 LIMIT 1 BY probe_id, boot_epoch, sequence LIMIT {} FORMAT TabSeparated",
                query.limit
            ),
        };
        rows::byte_lines(&self.client.query_bytes(&sql)?)
            .map(|fields| decode_row(&table, &fields))
            .collect()
    }

    pub(super) fn scan_time(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(Undecoded) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_pages(
            &format!("started_at >= {} AND started_at < {}", from.0, to.0),
            Order::Time,
            visit,
        )
    }

    /// Every result (one copy per key) whose first copy was inserted at stamp `head` or
    /// before: what the figures at cursor `head` count (`super::figures`).
    pub(super) fn scan_inserted_upto(
        &self,
        head: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        result_codec::decode_each(
            |rows| self.scan_pages(&format!("inserted_at <= {head}"), Order::Time, rows),
            visit,
        )
    }

    /// The figures' ingest log from `after` (exclusive) to `upto` (inclusive): each result
    /// whose first copy has a stamp in that range, once, in stamp order, with its stamp.
    /// Two queries, whatever the number of rows: the rows, and which of their keys have a
    /// copy stamped at `after` or before (folded already).
    pub(super) fn first_insertions(
        &self,
        after: u64,
        upto: u64,
    ) -> Result<Vec<(u64, StoredResult)>, StoreError> {
        let table = self.table("results");
        let round = format!("inserted_at > {after} AND inserted_at <= {upto}");
        let earlier = stored_keys(
            &self.client.query(&format!(
                "SELECT DISTINCT probe_id, boot_epoch, sequence FROM {table} \
                 WHERE inserted_at <= {after} \
                 AND started_at IN (SELECT started_at FROM {table} WHERE {round}) \
                 AND (probe_id, boot_epoch, sequence) IN \
                 (SELECT probe_id, boot_epoch, sequence FROM {table} WHERE {round}) \
                 FORMAT TabSeparated"
            ))?,
            &table,
        )?;
        let answer = self.client.query_bytes(&format!(
            "SELECT inserted_at, {READ_COLUMNS} FROM {table} WHERE {round} \
             ORDER BY inserted_at FORMAT TabSeparated"
        ))?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for fields in rows::byte_lines(&answer) {
            let Some((stamp, rest)) = fields.split_first() else {
                return Err(rows::corrupt(&table, "empty line"));
            };
            let stamp: u64 = rows::number(&table, stamp)?;
            let [_, probe, epoch, sequence, ..] = rest else {
                return Err(rows::corrupt(&table, "wrong number of columns"));
            };
            let key = (
                rows::text(&table, probe)?,
                rows::number::<u64>(&table, epoch)?,
                rows::number::<u64>(&table, sequence)?,
            );
            if earlier.contains(&key) || !seen.insert(key) {
                continue;
            }
            out.push((stamp, decode_row(&table, rest)?));
        }
        Ok(out)
    }

    pub(super) fn scan_campaign(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        result_codec::decode_each(
            |rows| self.scan_pages(&format!("campaign = {campaign}"), Order::Key, rows),
            visit,
        )
    }

    /// The cells of a campaign (`Store::campaign_cells`) in three reads, none returning a row
    /// per stored result that reached its destination: the result keys per (task, probe)
    /// (deduplicated, then grouped, with how many have `reached` set), the rows at each cell's
    /// latest start time (the rows' wide columns are never sorted: only the start times are
    /// aggregated), and the rows that did not reach (for their failure class, which no column
    /// holds; rows of schema 1 have no `reached` and are read here too, and count as failures
    /// only if they did not reach).
    ///
    /// A cell's `reached` is the rows flagged `reached` in the first read plus the schema-1
    /// rows of the third that reached: never a difference of counts taken at two moments.
    /// Rows stored between the reads (a lost target's probes keep storing failures) cannot
    /// change it, so `target_lost_v6`, whose alert id holds it, gets the same id at every
    /// evaluation while the target stays lost.
    pub(super) fn campaign_cells_of(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(CampaignCell) -> bool,
    ) -> Result<(), StoreError> {
        self.flush_results()?;
        let table = self.table("results");
        let counts = self.client.query_bytes(&format!(
            "SELECT task_id, probe_id, count(), countIf(reached = 1) FROM (SELECT task_id, \
             probe_id, boot_epoch, sequence, reached FROM {table} WHERE campaign = {campaign} \
             LIMIT 1 BY probe_id, boot_epoch, sequence) \
             GROUP BY task_id, probe_id FORMAT TabSeparated"
        ))?;
        // (results, of which flagged `reached`) per (task, probe).
        let mut results: BTreeMap<(u64, String), (u64, u64)> = BTreeMap::new();
        for fields in rows::byte_lines(&counts) {
            let [task, probe, count, reached] = fields.as_slice() else {
                return Err(rows::corrupt(
                    &table,
                    "expected task_id, probe_id, count, reached",
                ));
            };
            results.insert(
                (rows::number(&table, task)?, rows::text(&table, probe)?),
                (rows::number(&table, count)?, rows::number(&table, reached)?),
            );
        }
        // GLOBAL: with a cluster the subquery runs once over every shard, not per shard on
        // its local rows (18.16 refuses a distributed subquery in a distributed IN).
        let latest = self.client.query_bytes(&format!(
            "SELECT {READ_COLUMNS} FROM {table} WHERE campaign = {campaign} \
             AND (task_id, probe_id, started_at) GLOBAL IN (SELECT task_id, probe_id, \
             max(started_at) FROM {table} WHERE campaign = {campaign} \
             GROUP BY task_id, probe_id) FORMAT TabSeparated"
        ))?;
        let mut newest: BTreeMap<(u64, String), StoredResult> = BTreeMap::new();
        for fields in rows::byte_lines(&latest) {
            let r = decode_row(&table, &fields)?;
            let key = (
                r.result.task_id.get(),
                r.result.key.probe_id.as_str().to_owned(),
            );
            // Ties of start time go to the larger result key (copies are equal).
            if newest.get(&key).is_none_or(|old| is_newer(&r, old)) {
                newest.insert(key, r);
            }
        }
        // Results stored by another collector between these reads may show in one and not
        // another: a cell is then as of one of them (a row seen counts at least once), as
        // any report taken during ingest is as of about its time.
        let mut cells: BTreeMap<(u64, String), CampaignCell> = BTreeMap::new();
        for (key, r) in newest {
            let (n, flagged) = results.get(&key).copied().unwrap_or((1, 0));
            cells.insert(
                key,
                CampaignCell {
                    task_id: r.result.task_id,
                    probe_id: r.result.key.probe_id.clone(),
                    results: n,
                    reached: flagged,
                    failures: BTreeMap::new(),
                    latest: r,
                },
            );
        }
        // One streamed answer, in no order: the counts do not depend on it.
        let mut lines = self.client.stream(&format!(
            "SELECT {READ_COLUMNS} FROM {table} WHERE campaign = {campaign} AND reached = 0 \
             LIMIT 1 BY probe_id, boot_epoch, sequence FORMAT TabSeparated"
        ))?;
        while let Some(line) = lines.next_line()? {
            // An error after the answer started comes as text in the body (the status was
            // already 200).
            if line.starts_with(b"Code: ") {
                return Err(StoreError::Backend(format!(
                    "ClickHouse failed while reading the cells of campaign {campaign}: {}",
                    String::from_utf8_lossy(&line)
                )));
            }
            let r = decode_row(&table, &rows::fields(&line))?;
            let key = (
                r.result.task_id.get(),
                r.result.key.probe_id.as_str().to_owned(),
            );
            let Some(cell) = cells.get_mut(&key) else {
                continue;
            };
            match failure_class(&r.result.outcome) {
                Some(class) => *cell.failures.entry(class.to_owned()).or_default() += 1,
                // A schema-1 row (no `reached` column) that reached.
                None => cell.reached += 1,
            }
        }
        for cell in cells.values_mut() {
            let failed: u64 = cell.failures.values().sum();
            // Rows stored between the reads may show in a later read only.
            cell.results = cell.results.max(failed + cell.reached);
        }
        for cell in cells.into_values() {
            if !visit(cell) {
                break;
            }
        }
        Ok(())
    }

    /// Visits the deduplicated rows matching `filter` in `order`, one page per query, each
    /// page streamed line by line.
    fn scan_pages(
        &self,
        filter: &str,
        order: Order,
        visit: &mut dyn FnMut(Undecoded) -> bool,
    ) -> Result<(), StoreError> {
        self.flush_results()?;
        let table = self.table("results");
        let columns = order.columns();
        let listed = columns.join(", ");
        let mut last: Option<Vec<String>> = None;
        loop {
            let continuation = last
                .as_ref()
                .map(|last| format!(" AND {}", after(columns, last)))
                .unwrap_or_default();
            let mut lines = self.client.stream(&format!(
                "SELECT {READ_COLUMNS} FROM {table} WHERE {filter}{continuation} \
                 ORDER BY {listed} LIMIT 1 BY probe_id, boot_epoch, sequence LIMIT {PAGE} \
                 FORMAT TabSeparated"
            ))?;
            let mut count = 0;
            while let Some(line) = lines.next_line()? {
                count += 1;
                // An error after the answer started comes as text in the body (the status
                // was already 200).
                if line.starts_with(b"Code: ") {
                    return Err(StoreError::Backend(format!(
                        "ClickHouse failed while scanning {table}: {}",
                        String::from_utf8_lossy(&line)
                    )));
                }
                let fields = rows::fields(&line);
                let [at, probe, epoch, sequence, ..] = fields.as_slice() else {
                    return Err(rows::corrupt(&table, "wrong number of columns"));
                };
                // Sort values as SQL literals for the next page's condition.
                let key = vec![
                    quote(&rows::text(&table, probe)?),
                    rows::number::<u64>(&table, epoch)?.to_string(),
                    rows::number::<u64>(&table, sequence)?.to_string(),
                ];
                last = Some(match order {
                    Order::Key => key,
                    Order::Time => {
                        let mut values = vec![rows::number::<i64>(&table, at)?.to_string()];
                        values.extend(key);
                        values
                    }
                });
                if !visit(undecoded_row(&table, fields)?) {
                    return Ok(());
                }
            }
            if count < PAGE {
                return Ok(());
            }
        }
    }

    /// Campaigns of the given tasks, for those linked to one. A task found unlinked is asked
    /// about again only after [`LINK_RECHECK`], so batches of ordinary tasks cost no query;
    /// a link made by another collector is seen within that delay (links made here at once).
    fn campaigns_of(
        &self,
        tasks: impl Iterator<Item = u64>,
    ) -> Result<std::collections::HashMap<u64, u64>, StoreError> {
        let tasks: HashSet<u64> = tasks.collect();
        let mut found = std::collections::HashMap::new();
        let mut unknown = Vec::new();
        {
            let links = self
                .campaign_links
                .lock()
                .map_err(|_| StoreError::Backend("campaign link cache poisoned".into()))?;
            let unlinked = self
                .unlinked_tasks
                .lock()
                .map_err(|_| StoreError::Backend("campaign link cache poisoned".into()))?;
            for task in tasks {
                match links.get(&task) {
                    Some(&campaign) => {
                        found.insert(task, campaign);
                    }
                    None if unlinked
                        .get(&task)
                        .is_some_and(|checked| checked.elapsed() < LINK_RECHECK) => {}
                    None => unknown.push(task),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(found);
        }
        let unknown_list: Vec<String> = unknown.iter().map(u64::to_string).collect();
        let table = self.table("campaign_tasks");
        let answer = self.client.query(&format!(
            "SELECT task_id, campaign FROM {table} WHERE task_id IN ({}) \
             ORDER BY version DESC LIMIT 1 BY task_id FORMAT TabSeparated",
            unknown_list.join(", ")
        ))?;
        let mut links = self
            .campaign_links
            .lock()
            .map_err(|_| StoreError::Backend("campaign link cache poisoned".into()))?;
        for fields in rows::lines(&answer) {
            let [task, campaign] = fields.as_slice() else {
                return Err(rows::corrupt(&table, "expected task_id, campaign"));
            };
            let (task, campaign) = (rows::number(&table, task)?, rows::number(&table, campaign)?);
            links.insert(task, campaign);
            found.insert(task, campaign);
        }
        if let Ok(mut unlinked) = self.unlinked_tasks.lock() {
            let now = std::time::Instant::now();
            // Bounded: entries are refreshed, and the map is cleared when it grows large.
            if unlinked.len() > 100_000 {
                unlinked.clear();
            }
            for task in unknown.into_iter().filter(|t| !found.contains_key(t)) {
                unlinked.insert(task, now);
            }
        }
        Ok(found)
    }

    pub(super) fn insert_loss_rows(
        &self,
        losses: &[OutboxLoss],
    ) -> Result<Vec<Inserted>, StoreError> {
        if losses.is_empty() {
            return Ok(Vec::new());
        }
        let table = self.table("losses");
        let stored = stored_keys(
            &self.client.query(&format!(
                "SELECT DISTINCT probe_id, boot_epoch, sequence FROM {table} WHERE {} \
                 FORMAT TabSeparated",
                keys_in(losses.iter().map(|l| &l.key))
            ))?,
            &table,
        )?;
        let mut seen = HashSet::new();
        let mut outcome = Vec::with_capacity(losses.len());
        let mut new_rows = Vec::new();
        for loss in losses {
            let key = key_of(&loss.key);
            if stored.contains(&key) || !seen.insert(key) {
                outcome.push(Inserted::Duplicate);
                continue;
            }
            outcome.push(Inserted::New);
            new_rows.push(json!({
                "probe_id": loss.key.probe_id.as_str(),
                "boot_epoch": loss.key.boot_epoch,
                "sequence": loss.key.sequence,
                "inserted_at": self.versions.next(),
                "json": rows::to_json(loss)?,
            }));
        }
        self.insert_new_rows(&table, &new_rows)?;
        Ok(outcome)
    }

    pub(super) fn loss_rows(&self, query: &ResultQuery) -> Result<Vec<OutboxLoss>, StoreError> {
        let table = self.table("losses");
        let filter = query
            .probe
            .as_ref()
            .map(|p| format!("WHERE probe_id = {}", quote(p.as_str())))
            .unwrap_or_default();
        // Newest key first; of two racing versions of one record, the first stored.
        let answer = self.client.query(&format!(
            "SELECT json FROM {table} {filter} \
             ORDER BY probe_id DESC, boot_epoch DESC, sequence DESC, inserted_at ASC \
             LIMIT 1 BY probe_id, boot_epoch, sequence LIMIT {} FORMAT TabSeparated",
            query.limit
        ))?;
        rows::lines(&answer)
            .map(|f| rows::json(&table, f.first().map_or(&[][..], Vec::as_slice)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_gets_the_stamp_first() {
        assert_eq!(stamp_rows(b"a\tb\nc\\n\n", 7), b"7\ta\tb\n7\tc\\n\n");
        assert!(stamp_rows(b"", 7).is_empty());
    }

    #[test]
    fn continuation_is_a_lexicographic_after() {
        assert_eq!(
            after(&["a", "b"], &["1".into(), "'x'".into()]),
            "((a > 1) OR (a = 1 AND b > 'x'))"
        );
    }
}
