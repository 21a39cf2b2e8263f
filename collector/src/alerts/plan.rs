//! What the delivery task does next, free of I/O and of the clock (the time is a
//! parameter), so every decision is unit-tested deterministically: which alert a webhook
//! gets next (its oldest undelivered one, one at a time, so a receiver sees them in order),
//! how long it waits after a failure (exponential, capped), and which alerts are dropped
//! when the outbox is full.

use super::StoredAlert;
use sixmap_shared::UnixMicros;
use std::time::Duration;

/// Retry pauses: `base`, doubled after each consecutive failure, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The pause after `failures` consecutive failures (at least 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

/// One webhook's delivery state in memory. After a restart it starts fresh (the next alert
/// is tried at once); what was delivered is in the store, never here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookState {
    /// Consecutive failed attempts.
    pub failures: u32,
    /// No attempt before this time.
    pub retry_at: Option<UnixMicros>,
}

/// What a webhook's task does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// POST this alert.
    Send(String),
    /// Its last attempt failed: nothing before this time.
    WaitUntil(UnixMicros),
    /// Nothing to deliver.
    Idle,
}

impl WebhookState {
    /// The next step for `webhook` given the stored alerts.
    pub fn next(&self, webhook: &str, alerts: &[StoredAlert], now: UnixMicros) -> Step {
        let oldest = alerts
            .iter()
            .filter(|a| !a.delivered_to(webhook))
            .min_by(|a, b| {
                (a.alert.created_at, &a.alert.id).cmp(&(b.alert.created_at, &b.alert.id))
            });
        match (oldest, self.retry_at) {
            (None, _) => Step::Idle,
            (Some(_), Some(at)) if now < at => Step::WaitUntil(at),
            (Some(alert), _) => Step::Send(alert.alert.id.clone()),
        }
    }

    /// Records a 2xx: the next alert goes at once.
    pub fn delivered(&mut self) {
        *self = Self::default();
    }

    /// Records a failed attempt (error, timeout, non-2xx) at `now`; returns when to retry.
    pub fn failed(&mut self, now: UnixMicros, backoff: Backoff) -> UnixMicros {
        self.failures = self.failures.saturating_add(1);
        let pause = i64::try_from(backoff.delay(self.failures).as_micros()).unwrap_or(i64::MAX);
        let at = UnixMicros(now.0.saturating_add(pause));
        self.retry_at = Some(at);
        at
    }
}

/// Which alerts to drop so that at most `cap` remain: delivered ones first (oldest first),
/// then undelivered ones (oldest first; the caller counts and logs those). Returns
/// (ids to drop, how many of them were undelivered).
pub fn evict(alerts: &[StoredAlert], webhooks: &[String], cap: usize) -> (Vec<String>, usize) {
    let excess = alerts.len().saturating_sub(cap);
    if excess == 0 {
        return (Vec::new(), 0);
    }
    let mut order: Vec<&StoredAlert> = alerts.iter().collect();
    // Fully delivered first, then by age.
    order.sort_by(|a, b| {
        let key = |s: &StoredAlert| (!s.delivered_to_all(webhooks), s.alert.created_at);
        key(a)
            .cmp(&key(b))
            .then_with(|| a.alert.id.cmp(&b.alert.id))
    });
    let dropped: Vec<&StoredAlert> = order.into_iter().take(excess).collect();
    let undelivered = dropped
        .iter()
        .filter(|a| !a.delivered_to_all(webhooks))
        .count();
    (
        dropped.into_iter().map(|a| a.alert.id.clone()).collect(),
        undelivered,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Alert, Delivery};
    use std::collections::BTreeMap;

    fn alert(id: &str, created: i64) -> StoredAlert {
        StoredAlert {
            alert: Alert {
                id: id.into(),
                rule: "r".into(),
                kind: "probe_offline".into(),
                subject: id.into(),
                created_at: UnixMicros(created),
                summary: String::new(),
                evidence: serde_json::Value::Null,
                links: Vec::new(),
            },
            deliveries: BTreeMap::new(),
        }
    }

    fn delivered(mut a: StoredAlert, to: &str) -> StoredAlert {
        a.deliveries.insert(
            to.into(),
            Delivery {
                delivered_at: Some(UnixMicros(1)),
                ..Delivery::default()
            },
        );
        a
    }

    const B: Backoff = Backoff {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(60),
    };

    #[test]
    fn backoff_doubles_and_is_capped() {
        let delays: Vec<u64> = (1..=9).map(|f| B.delay(f).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(B.delay(u32::MAX), Duration::from_secs(60));
        assert_eq!(B.delay(0), Duration::from_secs(1));
    }

    #[test]
    fn sends_the_oldest_undelivered_alert_of_each_webhook() {
        let alerts = vec![
            alert("c", 30),
            delivered(alert("a", 10), "w1"),
            alert("b", 20),
        ];
        let state = WebhookState::default();
        assert_eq!(
            state.next("w1", &alerts, UnixMicros(0)),
            Step::Send("b".into())
        );
        assert_eq!(
            state.next("w2", &alerts, UnixMicros(0)),
            Step::Send("a".into())
        );
        let all = vec![delivered(alert("a", 10), "w1")];
        assert_eq!(state.next("w1", &all, UnixMicros(0)), Step::Idle);
    }

    #[test]
    fn a_failure_waits_then_retries_the_same_alert_and_a_success_resets() {
        let alerts = vec![alert("a", 10), alert("b", 20)];
        let mut state = WebhookState::default();
        let now = UnixMicros(1_000_000);
        assert_eq!(state.failed(now, B), UnixMicros(2_000_000));
        assert_eq!(
            state.next("w", &alerts, UnixMicros(1_500_000)),
            Step::WaitUntil(UnixMicros(2_000_000))
        );
        assert_eq!(
            state.next("w", &alerts, UnixMicros(2_000_000)),
            Step::Send("a".into())
        );
        assert_eq!(
            state.failed(UnixMicros(2_000_000), B),
            UnixMicros(4_000_000)
        );
        state.delivered();
        assert_eq!(state, WebhookState::default());
        let rest = vec![delivered(alert("a", 10), "w"), alert("b", 20)];
        assert_eq!(
            state.next("w", &rest, UnixMicros(2_000_001)),
            Step::Send("b".into())
        );
    }

    #[test]
    fn eviction_drops_delivered_alerts_first_then_the_oldest_undelivered() {
        let hooks = vec!["w".to_string()];
        let alerts = vec![
            alert("new", 50),
            delivered(alert("old-done", 5), "w"),
            alert("old", 10),
            alert("mid", 20),
        ];
        assert_eq!(evict(&alerts, &hooks, 4), (vec![], 0));
        assert_eq!(evict(&alerts, &hooks, 3), (vec!["old-done".into()], 0));
        assert_eq!(
            evict(&alerts, &hooks, 1),
            (vec!["old-done".into(), "old".into(), "mid".into()], 2)
        );
    }
}
