//! The folder: new results from the store's ingest log into the stored figures, exactly once;
//! and the rebuild from raw results.
//!
//! A background task ([`run`]) folds what the log holds every [`FOLD_EVERY`], so published
//! figures lag stored results by about that much; where sessions handed over a batch's
//! deltas (`super::feed`) it takes those instead of reading the results back. Each round reads at most [`FOLD_CHUNK`]
//! log entries, merges their deltas into the stored rows, writes the rows and the position
//! folded up to in one atomic write, makes it durable, and only then prunes the log: a crash
//! at any point leaves either the whole round or none of it, and the log still holds what the
//! figures lack. Only this task writes figures, so reading a row and writing it back races
//! with nothing.
//!
//! [`rebuild`] recomputes every figure from a scan of all results and sets the cursor to the
//! log head read before the scan. It must not run while results are being stored (a result
//! logged during the scan would be both scanned and folded): the collector runs it at start
//! before it serves probes ([`ensure`], when no figures exist yet, e.g. a new store or one
//! written before figures), and `sixmap-collector rollups rebuild` runs it on a stopped
//! collector's store.

use super::feed::{Feed, Next};
use super::read::corrupt;
use super::{DAY_US, Figure, FigureKey, FigureSet, HOUR_US, kind, range_start};
use crate::rollup::MinSample;
use crate::store::{FigureWrite, Store, StoreError};
use sixmap_shared::UnixMicros;
use sixmap_shared::prefixes::PrefixData;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the folder looks at the ingest log: the lag of the published figures.
pub const FOLD_EVERY: Duration = Duration::from_millis(500);
/// Log entries folded per atomic write.
pub const FOLD_CHUNK: usize = 10_000;
/// Hourly rows are kept this many hours (the map reads the last 25).
pub const HOURS_KEPT: i64 = 48;
/// How often the stored daily rollups of the days that changed are recomputed from figures.
pub const ROLLUPS_EVERY: Duration = Duration::from_secs(5);
/// Days of rollups recomputed from figures at start.
pub const ROLLUP_BACKFILL_DAYS: i64 = 30;

/// Hour rows start at or after this (µs) at time `now`.
pub fn hours_since(now: UnixMicros) -> i64 {
    (now.0.div_euclid(HOUR_US) - HOURS_KEPT).saturating_mul(HOUR_US)
}

/// What one fold round did.
#[derive(Debug, Default)]
pub struct Round {
    pub folded: usize,
    /// Days (numbers) whose probe-day rows changed.
    pub days: BTreeSet<i64>,
    /// The round stopped where handed-over deltas take over: more is ready at once.
    pub more_waiting: bool,
    /// Of `folded`, the results read back from the ingest log (not handed over).
    pub from_log: usize,
}

/// Folds up to `max` logged results into the stored figures (see the module doc), reading
/// them from the ingest log.
pub fn fold_once(
    store: &dyn Store,
    prefixes: &PrefixData,
    max: usize,
    hours_since: i64,
) -> Result<Round, StoreError> {
    fold_round(store, prefixes, None, max, hours_since)
}

/// [`fold_once`] taking the deltas sessions handed over (`feed`) where they continue from
/// the cursor, and the log elsewhere.
pub fn fold_once_fed(
    store: &dyn Store,
    prefixes: &PrefixData,
    feed: &Feed,
    max: usize,
    hours_since: i64,
) -> Result<Round, StoreError> {
    fold_round(store, prefixes, Some(feed), max, hours_since)
}

/// The figures of the logged results after `cursor`: at most `max`, none after `upto`.
fn read_log(
    store: &dyn Store,
    prefixes: &PrefixData,
    cursor: u64,
    max: usize,
    upto: Option<u64>,
    hours_since: i64,
) -> Result<(FigureSet, u64, usize), StoreError> {
    let mut set = FigureSet::default();
    let mut last = cursor;
    let mut folded = 0;
    store.ingest_log_after(cursor, max, &mut |position, stored| {
        if upto.is_some_and(|upto| position > upto) {
            return false;
        }
        set.fold(&stored, prefixes, hours_since);
        last = position;
        folded += 1;
        true
    })?;
    Ok((set, last, folded))
}

fn fold_round(
    store: &dyn Store,
    prefixes: &PrefixData,
    feed: Option<&Feed>,
    max: usize,
    hours_since: i64,
) -> Result<Round, StoreError> {
    let cursor = store.figures_cursor()?.ok_or_else(|| {
        StoreError::Backend("figures were never built: rebuild them first".into())
    })?;
    let mut from_log = true;
    let (set, last, folded, more_waiting) = match feed.map(|feed| feed.next(cursor, max)) {
        Some(Next::Deltas { set, last, results }) => {
            from_log = false;
            (set, last, results, false)
        }
        Some(Next::Log { upto }) => {
            let (set, last, folded) = read_log(store, prefixes, cursor, max, upto, hours_since)?;
            match upto {
                // Positions are given in commit order with their log entry: the log holds
                // every one up to a handed-over delta. If it does not, the figures would stop
                // here for good; they go on, and `rollups rebuild` recounts.
                Some(upto) if folded == 0 && upto > cursor => {
                    tracing::warn!(
                        from = cursor + 1,
                        upto,
                        "ingest log positions missing before handed-over figures; skipped (run `sixmap-collector rollups rebuild` to recount)"
                    );
                    store.put_figures(&[], upto)?;
                    return Ok(Round {
                        more_waiting: true,
                        ..Round::default()
                    });
                }
                Some(upto) => (set, last, folded, last == upto),
                None => (set, last, folded, false),
            }
        }
        None => {
            let (set, last, folded) = read_log(store, prefixes, cursor, max, None, hours_since)?;
            (set, last, folded, false)
        }
    };
    if folded == 0 {
        return Ok(Round::default());
    }
    let days = set
        .rows
        .keys()
        .filter_map(|key| match key {
            FigureKey::ProbeDay { day, .. } => Some(*day),
            _ => None,
        })
        .collect();
    let keys: Vec<Vec<u8>> = set.rows.keys().map(FigureKey::encode).collect();
    let stored_rows = store.figures_many(&keys)?;
    let mut rows: Vec<FigureWrite> = Vec::with_capacity(set.rows.len());
    for ((key, mut figure), stored) in keys
        .into_iter()
        .zip(set.rows.into_values())
        .zip(stored_rows)
    {
        if let Some(stored) = stored {
            let mut stored = Figure::decode(&stored).map_err(|e| corrupt(&key, e))?;
            stored.merge(&figure);
            figure = stored;
        }
        rows.push((key, Some(figure.encode())));
    }
    store.put_figures(&rows, last)?;
    // Durable before the log forgets what they hold (and it covers the logged results too).
    store.flush()?;
    store.prune_ingest_log(last)?;
    Ok(Round {
        folded,
        days,
        more_waiting,
        from_log: if from_log { folded } else { 0 },
    })
}

/// Every figure computed from all stored results: the reference the incremental path must
/// equal. Returns the figures and how many results were read.
pub fn compute(
    store: &dyn Store,
    prefixes: &PrefixData,
    hours_since: i64,
) -> Result<(FigureSet, u64), StoreError> {
    compute_upto(store, prefixes, hours_since, None)
}

/// [`compute`] of the results the figures at log position `head` count, where the store can
/// tell (`FigureStore::results_logged_upto`); all results otherwise or with `None`.
pub fn compute_upto(
    store: &dyn Store,
    prefixes: &PrefixData,
    hours_since: i64,
    head: Option<u64>,
) -> Result<(FigureSet, u64), StoreError> {
    let mut set = FigureSet::default();
    let mut results = 0u64;
    let mut visit = |stored: crate::store::StoredResult| {
        set.fold(&stored, prefixes, hours_since);
        results += 1;
        if results.is_multiple_of(1_000_000) {
            tracing::info!(results, "figures rebuild: results read");
        }
        true
    };
    let bounded = match head {
        Some(head) => store.results_logged_upto(head, &mut visit)?,
        None => false,
    };
    if !bounded {
        store.scan_results_between(UnixMicros(i64::MIN), UnixMicros(i64::MAX), &mut visit)?;
    }
    Ok((set, results))
}

/// Replaces the stored figures by [`compute`]'s; the store must not be ingesting (module
/// doc). Returns the number of results read.
pub fn rebuild(
    store: &dyn Store,
    prefixes: &PrefixData,
    now: UnixMicros,
) -> Result<u64, StoreError> {
    let head = store.ingest_log_head()?;
    let (set, results) = compute_upto(store, prefixes, hours_since(now), Some(head))?;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = set
        .rows
        .iter()
        .map(|(key, figure)| (key.encode(), figure.encode()))
        .collect();
    store.replace_figures(&rows, head)?;
    store.flush()?;
    store.prune_ingest_log(head)?;
    tracing::info!(
        results,
        rows = rows.len(),
        "figures rebuilt from raw results"
    );
    Ok(results)
}

/// What `sixmap-collector rollups rebuild` did.
#[derive(Debug)]
pub struct Rebuilt {
    /// Results read, when the store keeps figures.
    pub results: Option<u64>,
    pub days: usize,
    pub rollups: usize,
}

impl std::fmt::Display for Rebuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.results {
            Some(results) => write!(
                f,
                "figures rebuilt from {results} results; daily rollups of {} days recomputed ({} stored)",
                self.days, self.rollups
            ),
            None => write!(
                f,
                "this store keeps no figures: daily rollups of the last {} days recomputed from results ({} stored)",
                self.days, self.rollups
            ),
        }
    }
}

/// Every figure from the raw results, then every day's rollups from them; on a store that
/// keeps no figures, the last [`ROLLUP_BACKFILL_DAYS`] days' rollups from scans. The store must
/// not be ingesting.
pub fn rebuild_everything(
    store: &dyn Store,
    prefixes: &PrefixData,
    now: UnixMicros,
    rule: MinSample,
) -> Result<Rebuilt, StoreError> {
    if !store.keeps_figures() {
        let rollups = crate::daily::refresh(store, prefixes, now, ROLLUP_BACKFILL_DAYS, rule)?;
        return Ok(Rebuilt {
            results: None,
            days: ROLLUP_BACKFILL_DAYS as usize,
            rollups,
        });
    }
    let results = rebuild(store, prefixes, now)?;
    let days = super::read::days(store)?;
    let rollups = crate::daily::store_days(store, &days, rule)?;
    Ok(Rebuilt {
        results: Some(results),
        days: days.len(),
        rollups,
    })
}

/// Builds the figures if the store keeps them but has none yet. Call before serving probes.
pub fn ensure(store: &dyn Store, prefixes: &PrefixData, now: UnixMicros) -> Result<(), StoreError> {
    if store.keeps_figures()
        && !store.figures_built_by_folder()
        && store.figures_cursor()?.is_none()
    {
        tracing::info!("no figures yet: building them from the stored results");
        rebuild(store, prefixes, now)?;
    }
    Ok(())
}

/// Deletes hourly rows that started before `hours_since`.
pub fn prune_hours(store: &dyn Store, hours_since: i64) -> Result<usize, StoreError> {
    let Some(cursor) = store.figures_cursor()? else {
        return Ok(0);
    };
    let mut old: Vec<FigureWrite> = Vec::new();
    store.figure_rows(
        &range_start(kind::HOUR, i64::MIN),
        &range_start(kind::HOUR, hours_since.div_euclid(HOUR_US)),
        &mut |key, _| {
            old.push((key.to_vec(), None));
            true
        },
    )?;
    if !old.is_empty() {
        store.put_figures(&old, cursor)?;
    }
    Ok(old.len())
}

/// Folds until the log is empty; the days that changed.
fn fold_all(
    store: &dyn Store,
    prefixes: &PrefixData,
    feed: &Feed,
    now: UnixMicros,
) -> Result<(usize, usize, BTreeSet<i64>), StoreError> {
    let mut days = BTreeSet::new();
    let (mut total, mut from_log) = (0, 0);
    loop {
        let round = fold_once_fed(store, prefixes, feed, FOLD_CHUNK, hours_since(now))?;
        total += round.folded;
        from_log += round.from_log;
        days.extend(round.days);
        if round.folded < FOLD_CHUNK && !round.more_waiting {
            return Ok((total, from_log, days));
        }
    }
}

/// The folder task: folds every [`FOLD_EVERY`], refreshes the daily rollups of changed days
/// every [`ROLLUPS_EVERY`], and drops hourly rows past [`HOURS_KEPT`].
pub async fn run(
    store: Arc<dyn Store>,
    prefixes: Arc<PrefixData>,
    feed: Arc<Feed>,
    rule: MinSample,
) {
    let today = UnixMicros::now().0.div_euclid(DAY_US);
    let mut dirty: BTreeSet<i64> = (today - ROLLUP_BACKFILL_DAYS + 1..=today).collect();
    let mut rollups_at: Option<Instant> = None;
    let mut pruned_at: Option<Instant> = None;
    loop {
        let now = UnixMicros::now();
        if store.figures_built_by_folder() {
            // No figures yet: the folder that gets to write them builds them.
            let (worker, p) = (store.clone(), prefixes.clone());
            let built = crate::store::run_blocking(move || match worker.figures_cursor()? {
                Some(_) => Ok(Vec::new()),
                None => {
                    rebuild(&*worker, &p, now)?;
                    super::read::days(&*worker)
                }
            })
            .await;
            match built {
                Ok(days) => dirty.extend(days),
                Err(e) => tracing::debug!(error = %e, "figures not built here"),
            }
        }
        let (worker, p, f) = (store.clone(), prefixes.clone(), feed.clone());
        match crate::store::run_blocking(move || fold_all(&*worker, &p, &f, now)).await {
            Ok((folded, from_log, days)) => {
                if folded > 0 {
                    tracing::debug!(folded, from_log, "results folded into figures");
                }
                dirty.extend(days);
            }
            Err(e) => tracing::warn!(error = %e, "figures not folded; retrying"),
        }
        if !dirty.is_empty() && rollups_at.is_none_or(|t| t.elapsed() >= ROLLUPS_EVERY) {
            rollups_at = Some(Instant::now());
            let days: Vec<i64> = dirty.iter().copied().collect();
            let worker = store.clone();
            match crate::store::run_blocking(move || {
                crate::daily::store_days(&*worker, &days, rule)
            })
            .await
            {
                Ok(stored) => {
                    tracing::debug!(stored, "daily rollups refreshed from figures");
                    dirty.clear();
                }
                Err(e) => tracing::warn!(error = %e, "daily rollups not refreshed"),
            }
        }
        if pruned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(600)) {
            pruned_at = Some(Instant::now());
            let worker = store.clone();
            if let Err(e) =
                crate::store::run_blocking(move || prune_hours(&*worker, hours_since(now))).await
            {
                tracing::warn!(error = %e, "old hourly figures not pruned");
            }
        }
        tokio::time::sleep(FOLD_EVERY).await;
    }
}
