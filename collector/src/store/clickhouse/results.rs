//! Results and loss records: idempotent batched inserts, deduplicated reads, and scans in
//! pages so neither side holds a whole time range in memory.

use super::ClickHouseStore;
use super::rows::{self, quote};
use crate::store::{Inserted, ResultQuery, StoreError, StoredResult};
use serde_json::json;
use sixmap_shared::health::OutboxLoss;
use sixmap_shared::{ResultKey, UnixMicros};
use std::collections::HashSet;

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

impl ClickHouseStore {
    pub(super) fn insert_result_rows(
        &self,
        results: &[StoredResult],
    ) -> Result<Vec<Inserted>, StoreError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let table = self.table("results");
        // A retransmitted result is the same result, with the same start time: bounding the
        // lookup by time lets ClickHouse use the primary key.
        let (first, last) = results.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
            (lo.min(r.result.started_at.0), hi.max(r.result.started_at.0))
        });
        let stored = stored_keys(
            &self.client.query(&format!(
                "SELECT probe_id, boot_epoch, sequence FROM {table} \
                 WHERE started_at >= {first} AND started_at <= {last} AND {} \
                 FORMAT TabSeparated",
                keys_in(results.iter().map(|r| &r.result.key))
            ))?,
            &table,
        )?;
        let campaigns = self.campaigns_of(results.iter().map(|r| r.result.task_id.get()))?;
        let mut seen = HashSet::new();
        let mut outcome = Vec::with_capacity(results.len());
        let mut new_rows = Vec::new();
        for stored_result in results {
            let key = key_of(&stored_result.result.key);
            if stored.contains(&key) || !seen.insert(key) {
                outcome.push(Inserted::Duplicate);
                continue;
            }
            outcome.push(Inserted::New);
            let r = &stored_result.result;
            let campaign = campaigns.get(&r.task_id.get()).copied().unwrap_or(0);
            let origin = |e: &Option<sixmap_shared::prefixes::Enrichment>| {
                let asn = e.as_ref().and_then(|e| e.asn).unwrap_or(0);
                let country = e
                    .as_ref()
                    .and_then(|e| e.country)
                    .map(|c| c.to_string())
                    .unwrap_or_default();
                (asn, country)
            };
            let (probe_asn, probe_country) = origin(&stored_result.probe_origin);
            let (target_asn, target_country) = origin(&stored_result.target_origin);
            new_rows.push(json!({
                "started_at": r.started_at.0,
                "probe_id": r.key.probe_id.as_str(),
                "boot_epoch": r.key.boot_epoch,
                "sequence": r.key.sequence,
                "task_id": r.task_id.get(),
                "campaign": campaign,
                "kind": r.outcome.kind().map_or("failed", |k| k.name()),
                "family": match r.family_used.unwrap_or(r.family_requested) {
                    sixmap_shared::measurement::Family::V6 => "v6",
                    sixmap_shared::measurement::Family::V4 => "v4",
                },
                "destination": r.destination.map(|d| d.to_string()).unwrap_or_default(),
                "probe_asn": probe_asn,
                "probe_country": probe_country,
                "target_asn": target_asn,
                "target_country": target_country,
                "json": rows::to_json(stored_result)?,
            }));
        }
        self.insert_new_rows(&table, &new_rows)?;
        Ok(outcome)
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
        let table = self.table("results");
        let sql = match &query.probe {
            Some(probe) => format!(
                "SELECT json FROM {table} WHERE probe_id = {} \
                 ORDER BY boot_epoch DESC, sequence DESC \
                 LIMIT 1 BY probe_id, boot_epoch, sequence LIMIT {} FORMAT TabSeparated",
                quote(probe.as_str()),
                query.limit
            ),
            None => format!(
                "SELECT json FROM {table} \
                 ORDER BY started_at DESC, probe_id DESC, boot_epoch DESC, sequence DESC \
                 LIMIT 1 BY probe_id, boot_epoch, sequence LIMIT {} FORMAT TabSeparated",
                query.limit
            ),
        };
        rows::lines(&self.client.query(&sql)?)
            .map(|f| rows::json(&table, f.first().map_or(&[][..], Vec::as_slice)))
            .collect()
    }

    pub(super) fn scan_time(
        &self,
        from: UnixMicros,
        to: UnixMicros,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_pages(
            &format!("started_at >= {} AND started_at < {}", from.0, to.0),
            Order::Time,
            visit,
        )
    }

    pub(super) fn scan_campaign(
        &self,
        campaign: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_pages(&format!("campaign = {campaign}"), Order::Key, visit)
    }

    /// Visits the deduplicated rows matching `filter` in `order`, one page per query, each
    /// page streamed line by line.
    fn scan_pages(
        &self,
        filter: &str,
        order: Order,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<(), StoreError> {
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
                "SELECT {listed}, json FROM {table} WHERE {filter}{continuation} \
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
                let mut fields = rows::fields(&line);
                let Some(json) = fields.pop() else {
                    return Err(rows::corrupt(&table, "empty line"));
                };
                if fields.len() != columns.len() {
                    return Err(rows::corrupt(&table, "wrong number of columns"));
                }
                // Sort values as SQL literals for the next page's condition.
                let values = columns
                    .iter()
                    .zip(&fields)
                    .map(|(column, value)| {
                        let text = rows::text(&table, value)?;
                        Ok(if *column == "probe_id" {
                            quote(&text)
                        } else {
                            rows::number::<i128>(&table, value)?.to_string()
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                last = Some(values);
                if !visit(rows::json(&table, &json)?) {
                    return Ok(());
                }
            }
            if count < PAGE {
                return Ok(());
            }
        }
    }

    /// Campaigns of the given tasks, for those linked to one.
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
            for task in tasks {
                match links.get(&task) {
                    Some(&campaign) => {
                        found.insert(task, campaign);
                    }
                    None => unknown.push(task.to_string()),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(found);
        }
        let table = self.table("campaign_tasks");
        let answer = self.client.query(&format!(
            "SELECT task_id, campaign FROM {table} WHERE task_id IN ({}) \
             ORDER BY version DESC LIMIT 1 BY task_id FORMAT TabSeparated",
            unknown.join(", ")
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
    fn continuation_is_a_lexicographic_after() {
        assert_eq!(
            after(&["a", "b"], &["1".into(), "'x'".into()]),
            "((a > 1) OR (a = 1 AND b > 'x'))"
        );
    }
}
