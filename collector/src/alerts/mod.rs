//! Alerts (issue #21): rules evaluated every `[alerts] evaluate_every_s` over what the
//! collector already keeps (probe records, the stored daily rollups, campaign cells:
//! O(probes + watched groups + cells), never a scan of results) raise alerts into a durable outbox in the store; one
//! delivery task per webhook POSTs them, signed, until a 2xx is recorded.
//!
//! - `plan`: what to send next, backoff, what to drop when full (pure, no I/O, no clock).
//! - `rules`: the rules as pure functions of their inputs (`share_drop`, `probe_offline`,
//!   `target_lost_v6`).
//! - `hmac`: HMAC-SHA256 (RFC 2104) for `X-Sixmap-Signature`.
//! - `webhook`: one POST with a deadline; the answer's body is never read.
//! - `smtp`: one email through the configured SMTP relay, with a deadline. Emails are
//!   destinations like webhooks (the same outbox, index, retries and guarantees; accepted
//!   means the relay's 250 after the message).
//! - `http`: `GET /api/v1/alerts`.
//! - `rules_api`: rules over the API (`/api/v1/alert-rules`), stored beside the config's.
//!
//! Each webhook's delivery reads only the alerts pending for it (the store's delivery index,
//! `AlertStore::pending_alerts`): an alert is marked pending for every webhook when stored,
//! and no longer when a 2xx is recorded there. At start the index is checked against the
//! outbox once (a webhook added to the config, a crash between storing and marking).
//!
//! Delivery guarantees: an alert's id is derived from its rule and its event (e.g. rule,
//! probe and the last-seen time of the outage), so detecting it again, after a restart
//! too, finds it stored and adds nothing. An alert is stored and flushed before any
//! attempt; its delivery to a webhook is recorded (and flushed) only after a 2xx. A crash
//! between the 2xx and that record sends it once more: at least once on the wire, with the
//! id in `X-Sixmap-Alert-Id` so receivers deduplicate; never re-sent after the record.

pub mod cli;
pub mod hmac;
pub mod http;
pub mod plan;
pub mod rules;
pub mod rules_api;
pub mod smtp;
pub mod webhook;

use crate::config::{Alerts, Email, Webhook};
use crate::store::{Store, StoreError};
use plan::{Step, WebhookState};
use serde::{Deserialize, Serialize};
use sixmap_shared::UnixMicros;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

/// An alert as sent to webhooks (the request body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable: [`alert_id`] of the rule and the event.
    pub id: String,
    pub rule: String,
    /// `share_drop`, `probe_offline` or `target_lost_v6`.
    pub kind: String,
    /// What it is about: `country:DE`, `asn:64500`, `probe:<id>`, `campaign:<id>:target:<t>`.
    pub subject: String,
    pub created_at: UnixMicros,
    /// One line for people.
    pub summary: String,
    /// The figures behind it (sample sizes, shares and their intervals, times).
    pub evidence: serde_json::Value,
    /// API paths of the series or probe the evidence comes from.
    pub links: Vec<String>,
}

/// One webhook's delivery of one alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// When a 2xx was recorded; never sent again after.
    pub delivered_at: Option<UnixMicros>,
    pub attempts: u32,
    pub last_attempt: Option<UnixMicros>,
    /// Why the last attempt failed (status or error), for `GET /api/v1/alerts`.
    pub last_error: Option<String>,
}

/// An alert in the outbox, with its delivery state per webhook (by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub alert: Alert,
    #[serde(default)]
    pub deliveries: BTreeMap<String, Delivery>,
}

impl StoredAlert {
    pub fn delivered_to(&self, webhook: &str) -> bool {
        self.deliveries
            .get(webhook)
            .is_some_and(|d| d.delivered_at.is_some())
    }

    pub fn delivered_to_all(&self, webhooks: &[String]) -> bool {
        webhooks.iter().all(|w| self.delivered_to(w))
    }
}

/// The id of the alert `rule` raises for `event` (subject and what distinguishes this
/// occurrence: a day, a last-seen time): 128 bits of SHA-256, hex.
pub fn alert_id(rule: &str, event: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{rule}\u{0}{event}").as_bytes(),
    );
    sixmap_shared::digest::hex_lower(&digest.as_ref()[..16])
}

fn corrupt(id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: format!("alerts/{id}"),
        reason: e.to_string(),
    }
}

fn to_json(alert: &StoredAlert) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(alert).map_err(|e| corrupt(&alert.alert.id, e))
}

/// Every stored alert.
pub fn stored(store: &dyn Store) -> Result<Vec<StoredAlert>, StoreError> {
    store
        .alerts()?
        .into_iter()
        .map(|(id, json)| serde_json::from_slice(&json).map_err(|e| corrupt(&id, e)))
        .collect()
}

/// New alerts stored at once (threads), see [`record`].
const PARALLEL_INSERTS: usize = 16;

/// Stores the alerts not stored yet, drops the oldest over `max_stored` and flushes: after
/// it returns, they survive a crash. Returns how many were new.
pub fn record(
    store: &dyn Store,
    alerts: Vec<Alert>,
    webhooks: &[String],
    max_stored: usize,
) -> Result<usize, StoreError> {
    // One id once (the same event from two rules' views cannot differ, and a store's
    // insert-if-absent needs no race with itself).
    let mut ids = std::collections::HashSet::new();
    let mut records = Vec::new();
    for alert in alerts {
        if ids.insert(alert.id.clone()) {
            let record = StoredAlert {
                alert,
                deliveries: BTreeMap::new(),
            };
            let json = to_json(&record)?;
            records.push((record.alert, json));
        }
    }
    // Inserted a few at a time in parallel: on ClickHouse each new id waits for its claim
    // to settle (about a second), so an outage that raises hundreds of alerts at once costs
    // seconds, not minutes.
    let mut new = 0;
    for chunk in records.chunks(PARALLEL_INSERTS) {
        let outcomes: Vec<Result<bool, StoreError>> = std::thread::scope(|scope| {
            let running: Vec<_> = chunk
                .iter()
                .map(|(alert, json)| scope.spawn(move || store.insert_alert(&alert.id, json)))
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StoreError::Backend("alert insert panicked".into()))
                    })
                })
                .collect()
        });
        let mut fresh = Vec::new();
        for ((alert, _), outcome) in chunk.iter().zip(outcomes) {
            if outcome? {
                new += 1;
                fresh.push(alert.id.clone());
                info!(alert = %alert.id, rule = %alert.rule, kind = %alert.kind, "alert raised");
            }
        }
        if !fresh.is_empty() {
            for webhook in webhooks {
                if let Err(e) = store.set_alerts_pending(webhook, &fresh, true) {
                    // Stored but not marked: the next evaluation sees them as known and would
                    // never mark them; the evaluation loop reconciles before its next round.
                    RECONCILE_NEEDED.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
    }
    if new > 0 {
        let _outbox = outbox_lock();
        let all = stored(store)?;
        let (drop, undelivered) = plan::evict(&all, webhooks, max_stored);
        if !drop.is_empty() {
            store.delete_alerts(&drop)?;
            for webhook in webhooks {
                store.set_alerts_pending(webhook, &drop, false)?;
            }
            let metrics = crate::metrics::metrics();
            metrics.alerts_dropped.add(undelivered as u64);
            if undelivered > 0 {
                warn!(
                    dropped = drop.len(),
                    undelivered,
                    max_stored,
                    "alert outbox full: oldest alerts dropped, some never delivered"
                );
            }
        }
        store.flush()?;
    }
    Ok(new)
}

/// Held around every read-modify-write of stored alerts in this process: each webhook's task
/// rewrites the whole alert record, and two tasks (or a task and the eviction) writing at once
/// would drop each other's changes, a recorded 2xx included, and the alert would go out again.
static OUTBOX: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn outbox_lock() -> std::sync::MutexGuard<'static, ()> {
    // The guarded data is in the store; a panicked holder left nothing half-changed here.
    OUTBOX
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Records an attempt's outcome for one webhook and flushes it. A 2xx (`error` None) is
/// what makes the alert delivered there.
fn record_attempt(
    store: &dyn Store,
    id: &str,
    webhook: &str,
    now: UnixMicros,
    error: Option<String>,
) -> Result<(), StoreError> {
    let _outbox = outbox_lock();
    // Read from the webhook's pending alerts, not the outbox: it is pending there until this
    // records its 2xx.
    let mut alert = None;
    for (stored_id, json) in store.pending_alerts(webhook)? {
        if stored_id == id {
            alert = Some(serde_json::from_slice::<StoredAlert>(&json).map_err(|e| corrupt(id, e))?);
        }
    }
    let Some(mut alert) = alert else {
        // Dropped meanwhile (outbox over its cap): nothing to record.
        return Ok(());
    };
    let delivery = alert.deliveries.entry(webhook.to_owned()).or_default();
    delivery.attempts = delivery.attempts.saturating_add(1);
    delivery.last_attempt = Some(now);
    let delivered = error.is_none();
    match error {
        None => {
            delivery.delivered_at = Some(now);
            delivery.last_error = None;
        }
        Some(e) => delivery.last_error = Some(e),
    }
    store.update_alert(id, &to_json(&alert)?)?;
    if delivered {
        // After the record: a crash between the two leaves it in the index, and the
        // delivery skips it (delivered) until the start-up check removes it.
        store.set_alerts_pending(webhook, &[id.to_owned()], false)?;
    }
    store.flush()
}

/// The alerts pending for `webhook` (the delivery index), without those already delivered
/// there.
pub fn pending(store: &dyn Store, webhook: &str) -> Result<Vec<StoredAlert>, StoreError> {
    let mut out = Vec::new();
    for (id, json) in store.pending_alerts(webhook)? {
        let alert: StoredAlert = serde_json::from_slice(&json).map_err(|e| corrupt(&id, e))?;
        if !alert.delivered_to(webhook) {
            out.push(alert);
        }
    }
    Ok(out)
}

/// Set when alerts were stored but their pending marks could not be written (a store error,
/// not a crash): the evaluation loop then reconciles, as a start would.
static RECONCILE_NEEDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Brings the delivery index in line with the outbox, reading it whole once (at start):
/// each configured webhook's undelivered alerts pending, its delivered ones not. Covers a
/// webhook new in the config (it gets every stored alert) and a crash between storing an
/// alert and marking it. Returns how many were marked pending.
pub fn reconcile(store: &dyn Store, webhooks: &[String]) -> Result<usize, StoreError> {
    let _outbox = outbox_lock();
    let all = stored(store)?;
    let mut marked = 0;
    for webhook in webhooks {
        let (done, open): (Vec<&StoredAlert>, Vec<&StoredAlert>) =
            all.iter().partition(|a| a.delivered_to(webhook));
        let ids = |list: Vec<&StoredAlert>| -> Vec<String> {
            list.into_iter().map(|a| a.alert.id.clone()).collect()
        };
        marked += open.len();
        store.set_alerts_pending(webhook, &ids(open), true)?;
        store.set_alerts_pending(webhook, &ids(done), false)?;
    }
    store.flush()?;
    Ok(marked)
}

/// Starts the evaluation task and one delivery task per webhook, after checking the delivery
/// index. They run without rules in the config too: rules may come over the API.
pub fn spawn(store: Arc<dyn Store>, settings: Alerts) {
    tokio::spawn(start(store, settings));
}

async fn start(store: Arc<dyn Store>, settings: Alerts) {
    let names = settings.destinations();
    let s = store.clone();
    match crate::store::run_blocking(move || reconcile(&*s, &names)).await {
        Ok(marked) => debug!(marked, "alert delivery index checked"),
        // Deliveries still run on the index as it is; the next start checks again.
        Err(e) => warn!(error = %e, "alert delivery index not checked"),
    }
    let settings = Arc::new(settings);
    let wake: Arc<Vec<Arc<Notify>>> = Arc::new(
        settings
            .destinations()
            .iter()
            .map(|_| Arc::new(Notify::new()))
            .collect(),
    );
    let destinations = settings
        .webhooks
        .iter()
        .cloned()
        .map(Destination::Webhook)
        .chain(settings.emails.iter().cloned().map(Destination::Email));
    for (i, to) in destinations.enumerate() {
        tokio::spawn(deliver(
            store.clone(),
            settings.clone(),
            to,
            wake[i].clone(),
        ));
    }
    tokio::spawn(evaluate(store, settings, wake));
}

async fn evaluate(store: Arc<dyn Store>, settings: Arc<Alerts>, wake: Arc<Vec<Arc<Notify>>>) {
    let names = settings.destinations();
    let up_since = UnixMicros::now();
    loop {
        let now = UnixMicros::now();
        let (s, mut rules, names2, cap) = (
            store.clone(),
            settings.rules.clone(),
            names.clone(),
            settings.max_stored,
        );
        let outcome = crate::store::run_blocking(move || {
            if RECONCILE_NEEDED.swap(false, std::sync::atomic::Ordering::SeqCst)
                && let Err(e) = reconcile(&*s, &names2)
            {
                RECONCILE_NEEDED.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(e);
            }
            // The API's rules as they are now: one made or deleted counts from here on.
            let api = rules_api::stored_rules(&*s, &rules)?;
            rules.extend(api);
            let alerts = rules::evaluate(&*s, &rules, now, up_since)?;
            record(&*s, alerts, &names2, cap)
        })
        .await;
        match outcome {
            Ok(0) => debug!("alert rules evaluated, nothing new"),
            Ok(new) => {
                debug!(new, "alert rules evaluated");
                for notify in wake.iter() {
                    notify.notify_one();
                }
            }
            Err(e) => warn!(error = %e, "alert rules not evaluated"),
        }
        tokio::time::sleep(settings.evaluate_every).await;
    }
}

/// Where alerts go: a webhook or an email through a relay. Each has a name, the key of its
/// deliveries.
#[derive(Debug, Clone)]
enum Destination {
    Webhook(Webhook),
    Email(Email),
}

impl Destination {
    fn name(&self) -> &str {
        match self {
            Self::Webhook(w) => &w.name,
            Self::Email(e) => &e.name,
        }
    }

    /// One attempt: `Ok` once accepted (a 2xx, the relay's 250), else why not.
    async fn send(
        &self,
        alert: &Alert,
        now: UnixMicros,
        timeout: std::time::Duration,
    ) -> Result<(), String> {
        match self {
            Self::Webhook(w) => webhook::post(w, alert, now, timeout)
                .await
                .map_err(|e| e.to_string()),
            Self::Email(e) => smtp::send(e, alert, now, timeout)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// One destination's delivery loop: one request at a time, oldest alert first.
async fn deliver(store: Arc<dyn Store>, settings: Arc<Alerts>, to: Destination, wake: Arc<Notify>) {
    let hook_name = to.name().to_owned();
    let hook = &HookName { name: hook_name };
    let mut state = WebhookState::default();
    let metrics = crate::metrics::metrics();
    loop {
        let now = UnixMicros::now();
        let (s, name) = (store.clone(), hook.name.clone());
        let alerts = match crate::store::run_blocking(move || pending(&*s, &name)).await {
            Ok(alerts) => alerts,
            Err(e) => {
                warn!(webhook = %hook.name, error = %e, "alert outbox not read");
                let _ = tokio::time::timeout(settings.backoff.cap, wake.notified()).await;
                continue;
            }
        };
        let alert = match state.next(&hook.name, &alerts, now) {
            Step::Idle => {
                // New alerts wake us; the timer covers a wake-up sent before we waited.
                let _ = tokio::time::timeout(settings.evaluate_every, wake.notified()).await;
                continue;
            }
            Step::WaitUntil(at) => {
                let pause = at.saturating_since(now);
                tokio::time::sleep(pause).await;
                continue;
            }
            Step::Send(id) => match alerts.into_iter().find(|a| a.alert.id == id) {
                Some(alert) => alert.alert,
                None => continue,
            },
        };
        let sent_at = UnixMicros::now();
        let error = to.send(&alert, sent_at, settings.timeout).await.err();
        metrics
            .alert_deliveries
            .with(&[if error.is_none() { "ok" } else { "failed" }])
            .inc();
        let (s, id, name, e2) = (
            store.clone(),
            alert.id.clone(),
            hook.name.clone(),
            error.clone(),
        );
        let recorded =
            crate::store::run_blocking(move || record_attempt(&*s, &id, &name, sent_at, e2)).await;
        match (error, recorded) {
            (None, Ok(())) => {
                info!(webhook = %hook.name, alert = %alert.id, "alert delivered");
                state.delivered();
            }
            (None, Err(e)) => {
                // Sent but not recorded: it goes again (the receiver dedups by id).
                warn!(webhook = %hook.name, alert = %alert.id, error = %e, "alert delivered but not recorded");
                state.failed(UnixMicros::now(), settings.backoff);
            }
            (Some(e), _) => {
                let at = state.failed(UnixMicros::now(), settings.backoff);
                warn!(webhook = %hook.name, alert = %alert.id, error = %e, failures = state.failures, retry_in_ms = at.saturating_since(UnixMicros::now()).as_millis() as u64, "alert delivery failed");
            }
        }
    }
}

/// The name a delivery loop logs under (`hook.name`, as before there were emails).
struct HookName {
    name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AlertStore, SledStore};

    fn alert(id: &str, t: i64) -> Alert {
        Alert {
            id: id.into(),
            rule: "r".into(),
            kind: "probe_offline".into(),
            subject: "probe:x".into(),
            created_at: UnixMicros(t),
            summary: String::new(),
            evidence: serde_json::Value::Null,
            links: Vec::new(),
        }
    }

    #[test]
    fn the_outbox_stores_an_event_once_keeps_deliveries_across_reopen_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = vec!["w".to_string()];
        {
            let store = SledStore::open(dir.path()).unwrap();
            assert_eq!(
                record(&store, vec![alert("a", 1), alert("a", 1)], &hooks, 3).unwrap(),
                1
            );
            record_attempt(
                &store,
                "a",
                "w",
                UnixMicros(5),
                Some("answered status 500".into()),
            )
            .unwrap();
            record_attempt(&store, "a", "w", UnixMicros(6), None).unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        // The same event detected again after the reopen: nothing new, state kept.
        assert_eq!(record(&store, vec![alert("a", 9)], &hooks, 3).unwrap(), 0);
        let a = &stored(&store).unwrap()[0];
        assert_eq!(a.alert.created_at, UnixMicros(1));
        assert_eq!(
            a.deliveries["w"],
            Delivery {
                delivered_at: Some(UnixMicros(6)),
                attempts: 2,
                last_attempt: Some(UnixMicros(6)),
                last_error: None,
            }
        );
        let dropped = crate::metrics::metrics().alerts_dropped.get();
        assert_eq!(
            record(
                &store,
                vec![alert("b", 2), alert("c", 3), alert("d", 4), alert("e", 5)],
                &hooks,
                3
            )
            .unwrap(),
            4
        );
        let mut left: Vec<String> = stored(&store)
            .unwrap()
            .into_iter()
            .map(|s| s.alert.id)
            .collect();
        left.sort();
        // The delivered one went first, then the oldest undelivered.
        assert_eq!(left, ["c", "d", "e"]);
        assert!(crate::metrics::metrics().alerts_dropped.get() > dropped);
        // A dropped alert is not brought back by a late delivery record.
        record_attempt(&store, "b", "w", UnixMicros(7), None).unwrap();
        assert_eq!(stored(&store).unwrap().len(), 3);
        // Nor by the rules detecting its event again: it stays dropped, not raised anew.
        assert_eq!(record(&store, vec![alert("b", 8)], &hooks, 3).unwrap(), 0);
        assert_eq!(stored(&store).unwrap().len(), 3);
    }

    /// A delivery reads what is pending for its webhook only: new alerts are pending for
    /// every webhook, a 2xx takes one out for that webhook, eviction takes them out for all,
    /// and the start-up check adds a new webhook's backlog and repairs a lost mark.
    #[test]
    fn the_pending_index_holds_what_each_webhook_has_not_had() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let hooks = vec!["ops".to_string(), "pager".to_string()];
        let ids = |list: Vec<StoredAlert>| -> Vec<String> {
            let mut ids: Vec<String> = list.into_iter().map(|a| a.alert.id).collect();
            ids.sort();
            ids
        };
        record(&store, vec![alert("a", 1), alert("b", 2)], &hooks, 10).unwrap();
        assert_eq!(ids(pending(&store, "ops").unwrap()), ["a", "b"]);
        record_attempt(&store, "a", "ops", UnixMicros(5), None).unwrap();
        // A failure keeps it pending.
        record_attempt(&store, "b", "ops", UnixMicros(5), Some("500".into())).unwrap();
        assert_eq!(ids(pending(&store, "ops").unwrap()), ["b"]);
        assert_eq!(ids(pending(&store, "pager").unwrap()), ["a", "b"]);
        // The index, not the outbox: an alert stored without its mark (a crash between the
        // two) is not seen until the start-up check puts it back.
        store
            .insert_alert(
                "c",
                &to_json(&StoredAlert {
                    alert: alert("c", 3),
                    deliveries: BTreeMap::new(),
                })
                .unwrap(),
            )
            .unwrap();
        assert_eq!(ids(pending(&store, "ops").unwrap()), ["b"]);
        // A webhook new in the config gets the whole backlog from the check.
        let three = vec!["ops".to_string(), "pager".to_string(), "new".to_string()];
        assert_eq!(reconcile(&store, &three).unwrap(), 2 + 3 + 3);
        assert_eq!(ids(pending(&store, "ops").unwrap()), ["b", "c"]);
        assert_eq!(ids(pending(&store, "new").unwrap()), ["a", "b", "c"]);
        // Evicted alerts leave every webhook's index.
        record(&store, vec![alert("d", 4)], &three, 2).unwrap();
        assert_eq!(ids(pending(&store, "new").unwrap()), ["c", "d"]);
        assert_eq!(ids(pending(&store, "ops").unwrap()), ["c", "d"]);
    }

    /// Two webhooks' tasks recording at the same moment keep each other's records: neither
    /// overwrites the other's 2xx (which would send the alert there again).
    #[test]
    fn webhooks_recording_at_once_keep_each_others_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let hooks = vec!["ops".to_string(), "pager".to_string()];
        record(&store, vec![alert("a", 1)], &hooks, 10).unwrap();
        std::thread::scope(|s| {
            for hook in ["ops", "pager"] {
                let store = &store;
                s.spawn(move || {
                    for t in 0..40 {
                        let error = (t < 39).then(|| "answered status 500".to_string());
                        record_attempt(store, "a", hook, UnixMicros(t), error).unwrap();
                    }
                });
            }
        });
        let a = &stored(&store).unwrap()[0];
        for hook in ["ops", "pager"] {
            assert_eq!(
                a.deliveries[hook].attempts, 40,
                "{hook}: {:?}",
                a.deliveries
            );
            assert_eq!(
                a.deliveries[hook].delivered_at,
                Some(UnixMicros(39)),
                "{hook}"
            );
        }
    }
}
