//! The national map kept in memory: a recent [`Snapshot`] that every map request answers
//! from, so a request costs O(active probes) in memory whatever the stored volume and however
//! many clients ask (issue #18: map endpoints p99 ≤ 50 ms; issue #19: no public request runs
//! unbounded store work).
//!
//! A background task ([`run`]) takes a new snapshot when the figures moved (their ingest-log
//! cursor changed) or, for a store without figures, on a timer, and at least every
//! [`REFRESH_AT_LEAST`] (probes' last-seen times and tags change without results). Between
//! two snapshots it waits at least [`REFRESH_MIN`] and ten times the last one's cost, so
//! taking them never uses more than about a tenth of a core. A request finding no snapshot,
//! or one older than [`SERVE_FOR`] (the refresher failing or stuck), takes one itself on the
//! readers' pool, as before this view existed: a store error then reaches the caller instead
//! of being served around.

use crate::maps::Snapshot;
use crate::rollup::MinSample;
use crate::store::{Store, StoreError};
use sixmap_shared::UnixMicros;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Shortest time between two background snapshots.
pub const REFRESH_MIN: Duration = Duration::from_secs(1);
/// Longest time between two background snapshots.
pub const REFRESH_AT_LEAST: Duration = Duration::from_secs(30);
/// How often the refresher looks at the figures' cursor.
const POLL: Duration = Duration::from_millis(500);
/// A snapshot older than this is not served: the request takes a new one.
pub const SERVE_FOR: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
struct Taken {
    snapshot: Arc<Snapshot>,
    at: Instant,
}

/// The current snapshot, shared by the HTTP handlers and the refresher.
#[derive(Debug, Clone, Default)]
pub struct MapView {
    current: Arc<RwLock<Option<Taken>>>,
    /// The minimum-sample rule the map routes publish under.
    rule: MinSample,
}

impl MapView {
    /// A view whose routes publish under `rule` (the collector's `[publication]`).
    pub fn with_rule(rule: MinSample) -> Self {
        Self {
            current: Arc::default(),
            rule,
        }
    }

    pub fn rule(&self) -> MinSample {
        self.rule
    }

    /// The snapshot to answer from: the kept one if fresh enough, else a new one taken now
    /// (on the caller's thread: call it from the readers' pool).
    pub fn snapshot(&self, store: &dyn Store) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(kept) = self.kept(SERVE_FOR) {
            return Ok(kept);
        }
        let taken = Arc::new(Snapshot::take(store, UnixMicros::now())?);
        self.keep(taken.clone(), Instant::now());
        Ok(taken)
    }

    /// The kept snapshot if younger than `age`.
    fn kept(&self, age: Duration) -> Option<Arc<Snapshot>> {
        let current = self.current.read().ok()?;
        current
            .as_ref()
            .filter(|t| t.at.elapsed() <= age)
            .map(|t| t.snapshot.clone())
    }

    fn keep(&self, snapshot: Arc<Snapshot>, at: Instant) {
        if let Ok(mut current) = self.current.write() {
            // A slow request's snapshot must not replace a newer one.
            if current.as_ref().is_none_or(|t| t.at <= at) {
                *current = Some(Taken { snapshot, at });
            }
        }
    }
}

/// What makes the refresher take a new snapshot.
#[derive(Debug, Default)]
struct Due {
    last_taken: Option<Instant>,
    last_cost: Duration,
    cursor: Option<Option<u64>>,
}

impl Due {
    /// Whether to take one now, given the figures' cursor (`None` if the store keeps none).
    fn now(&self, cursor: Option<Option<u64>>, now: Instant) -> bool {
        let Some(last) = self.last_taken else {
            return true;
        };
        let since = now.saturating_duration_since(last);
        if since < REFRESH_MIN.max(self.last_cost * 10) {
            return false;
        }
        let figures_moved = cursor.is_some() && cursor != self.cursor;
        // Without figures nothing says when results arrived: refresh as often as allowed.
        let no_figures = cursor.is_none();
        figures_moved || no_figures || since >= REFRESH_AT_LEAST
    }
}

/// Keeps `view` current (see the module doc). Runs until the process ends.
pub async fn run(view: MapView, store: Arc<dyn Store>) {
    let mut due = Due::default();
    loop {
        let probe = store.clone();
        let cursor = match tokio::task::spawn_blocking(move || figures_cursor(&*probe)).await {
            Ok(Ok(cursor)) => cursor,
            Ok(Err(e)) => {
                warn!(error = %e, "map view: cannot read the figures' position");
                tokio::time::sleep(REFRESH_MIN).await;
                continue;
            }
            Err(_) => return,
        };
        if due.now(cursor, Instant::now()) {
            let started = Instant::now();
            let source = store.clone();
            let taken =
                tokio::task::spawn_blocking(move || Snapshot::take(&*source, UnixMicros::now()))
                    .await;
            let cost = started.elapsed();
            match taken {
                Ok(Ok(snapshot)) => {
                    debug!(ms = cost.as_millis() as u64, "map view refreshed");
                    view.keep(Arc::new(snapshot), started);
                }
                // Not served around: past SERVE_FOR requests take their own and see the error.
                Ok(Err(e)) => warn!(error = %e, "map view not refreshed"),
                Err(_) => return,
            }
            due = Due {
                last_taken: Some(started),
                last_cost: cost,
                cursor,
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The figures' cursor, or `None` when the store keeps no figures.
fn figures_cursor(store: &dyn Store) -> Result<Option<Option<u64>>, StoreError> {
    if !store.keeps_figures() {
        return Ok(None);
    }
    store.figures_cursor().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ProbeRecord, SledStore};
    use sixmap_shared::ProbeId;
    use sixmap_shared::prefixes::Enrichment;

    fn active_probe(store: &dyn Store, n: u64, country: &str) {
        store
            .create_probe(&ProbeRecord {
                id: format!("{n:016x}").parse::<ProbeId>().unwrap(),
                hostname: String::new(),
                enrolled_at: UnixMicros(0),
                last_seen: Some(UnixMicros::now()),
                software_version: None,
                boot_epoch: Some(1),
                local_addresses: Vec::new(),
                self_test: None,
                last_v6_success: None,
                tags: Vec::new(),
                location: None,
                origin: Some(Enrichment {
                    asn: Some(64_500),
                    as_name: None,
                    country: Some(country.parse().unwrap()),
                }),
                owner: None,
                enrolled_from: None,
                enrolled_prefix: None,
                certificate_sha256: None,
                revoked_at: None,
                directory_listed: false,
            })
            .unwrap();
    }

    fn countries(snapshot: &Snapshot) -> Vec<String> {
        snapshot
            .countries()
            .countries
            .iter()
            .map(|c| c.country.to_string())
            .collect()
    }

    #[test]
    fn requests_answer_from_the_kept_snapshot_and_replace_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let view = MapView::default();
        active_probe(&store, 1, "NL");
        // No snapshot yet: the first request takes one.
        assert_eq!(countries(&view.snapshot(&store).unwrap()), ["NL"]);
        // A flood of requests meanwhile reads nothing from the store: a probe that appeared
        // since is not seen until the next refresh.
        active_probe(&store, 2, "DE");
        for _ in 0..1000 {
            assert_eq!(countries(&view.snapshot(&store).unwrap()), ["NL"]);
        }
        // The refresher's newer snapshot is served; a slower, older one never replaces it.
        let fresh = Arc::new(Snapshot::take(&store, UnixMicros::now()).unwrap());
        view.keep(fresh, Instant::now());
        let older = Instant::now().checked_sub(Duration::from_secs(5)).unwrap();
        view.keep(
            Arc::new(Snapshot::take(&store, UnixMicros(0)).unwrap()),
            older,
        );
        assert_eq!(countries(&view.snapshot(&store).unwrap()), ["DE", "NL"]);
        // A snapshot older than SERVE_FOR (refresher stuck) is not served: the request
        // takes its own.
        let stale = MapView::default();
        // The monotonic clock counts from boot: a build of these tests takes longer.
        let long_ago = Instant::now()
            .checked_sub(SERVE_FOR + Duration::from_secs(1))
            .unwrap();
        stale.keep(
            Arc::new(Snapshot::take(&store, UnixMicros::now()).unwrap()),
            long_ago,
        );
        active_probe(&store, 3, "FR");
        assert_eq!(
            countries(&stale.snapshot(&store).unwrap()),
            ["DE", "FR", "NL"]
        );
    }

    #[test]
    fn refreshes_follow_the_figures_and_stay_a_small_share_of_time() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut due = Due::default();
        assert!(due.now(Some(Some(1)), t0), "first one at once");
        due = Due {
            last_taken: Some(t0),
            last_cost: Duration::from_millis(20),
            cursor: Some(Some(1)),
        };
        assert!(!due.now(Some(Some(2)), at(500)), "not within REFRESH_MIN");
        assert!(due.now(Some(Some(2)), at(1_000)), "figures moved");
        assert!(!due.now(Some(Some(1)), at(5_000)), "nothing moved");
        assert!(due.now(Some(Some(1)), at(30_000)), "at least every 30 s");
        assert!(due.now(None, at(1_000)), "no figures: on the timer");
        let slow = Due {
            last_cost: Duration::from_millis(400),
            ..due
        };
        assert!(!slow.now(Some(Some(2)), at(3_999)), "ten times its cost");
        assert!(slow.now(Some(Some(2)), at(4_000)));
    }
}
