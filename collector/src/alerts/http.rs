//! `GET /api/v1/alerts` (admin or researcher: `http_auth`'s access table): stored alerts,
//! newest first, paged by a cursor, each with its delivery state per configured webhook.
//! Owners' details stay out of it: the probe owner in an alert's evidence goes to the
//! webhooks only.

use super::{Delivery, StoredAlert};
use crate::store::Store;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone)]
struct Api {
    store: Arc<dyn Store>,
    webhooks: Arc<Vec<String>>,
}

pub fn router(store: Arc<dyn Store>, webhooks: Vec<String>) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(list))
        .with_state(Api {
            store,
            webhooks: Arc::new(webhooks),
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct Listed {
    #[serde(flatten)]
    alert: super::Alert,
    /// Per configured webhook; `delivered_at` null while it is pending.
    deliveries: BTreeMap<String, Delivery>,
    /// Delivered to every configured webhook.
    delivered: bool,
}

#[derive(Debug, Serialize)]
struct Page {
    alerts: Vec<Listed>,
    /// Pass as `cursor` for the next (older) page; null on the last one.
    next_cursor: Option<String>,
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Parses `<created_at>.<id>`.
fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let (time, id) = text.split_once('.')?;
    let ok = id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| Some((time.parse().ok()?, id.to_owned())))?
}

/// One page, newest first, of `alerts` (the store's whole outbox, bounded by its cap).
fn page(
    mut alerts: Vec<StoredAlert>,
    webhooks: &[String],
    limit: usize,
    cursor: Option<(i64, String)>,
) -> Page {
    alerts
        .sort_by(|a, b| (b.alert.created_at, &b.alert.id).cmp(&(a.alert.created_at, &a.alert.id)));
    let older = |a: &StoredAlert| match &cursor {
        None => true,
        Some((time, id)) => (a.alert.created_at.0, &a.alert.id) < (*time, id),
    };
    let mut chosen: Vec<StoredAlert> = alerts.into_iter().filter(older).take(limit + 1).collect();
    let more = chosen.len() > limit;
    chosen.truncate(limit);
    let next_cursor = more
        .then(|| {
            chosen
                .last()
                .map(|a| format!("{}.{}", a.alert.created_at.0, a.alert.id))
        })
        .flatten();
    let alerts = chosen
        .into_iter()
        .map(|stored| {
            let delivered = stored.delivered_to_all(webhooks);
            let mut alert = stored.alert;
            if let Some(evidence) = alert.evidence.as_object_mut() {
                evidence.remove("owner");
            }
            let deliveries = webhooks
                .iter()
                .map(|w| {
                    (
                        w.clone(),
                        stored.deliveries.get(w).cloned().unwrap_or_default(),
                    )
                })
                .collect();
            Listed {
                alert,
                deliveries,
                delivered,
            }
        })
        .collect();
    Page {
        alerts,
        next_cursor,
    }
}

async fn list(
    State(api): State<Api>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => return bad_request(e.body_text()),
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return bad_request(format!("query parameter `limit`: must be 1..={MAX_LIMIT}"));
    }
    let cursor = match params.cursor.as_deref().map(parse_cursor) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return bad_request(
                "query parameter `cursor`: not a `next_cursor` of this endpoint".into(),
            );
        }
    };
    let store = api.store.clone();
    match crate::limits::readers::read_blocking(move || super::stored(&*store)).await {
        Ok(alerts) => Json(page(alerts, &api.webhooks, limit, cursor)).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Alert;
    use sixmap_shared::UnixMicros;

    fn alert(id: &str, t: i64) -> StoredAlert {
        StoredAlert {
            alert: Alert {
                id: id.into(),
                rule: "r".into(),
                kind: "probe_offline".into(),
                subject: "s".into(),
                created_at: UnixMicros(t),
                summary: String::new(),
                evidence: serde_json::json!({"owner": "alice@example.org", "probe": "p"}),
                links: vec![],
            },
            deliveries: BTreeMap::new(),
        }
    }

    #[test]
    fn pages_newest_first_without_owner_details() {
        let hooks = vec!["a".to_string(), "b".to_string()];
        let mut done = alert("0c", 3);
        done.deliveries.insert(
            "a".into(),
            Delivery {
                delivered_at: Some(UnixMicros(4)),
                attempts: 1,
                ..Delivery::default()
            },
        );
        let all = vec![alert("0a", 1), done, alert("0b", 2)];
        let first = page(all.clone(), &hooks, 2, None);
        let ids: Vec<&str> = first.alerts.iter().map(|a| a.alert.id.as_str()).collect();
        assert_eq!(ids, ["0c", "0b"]);
        assert!(!first.alerts[0].delivered, "b has not got it");
        assert_eq!(first.alerts[0].deliveries["a"].attempts, 1);
        assert_eq!(first.alerts[0].deliveries["b"], Delivery::default());
        let json = serde_json::to_string(&first).unwrap();
        assert!(!json.contains("alice"), "{json}");
        let cursor = parse_cursor(first.next_cursor.as_deref().unwrap());
        let second = page(all, &hooks, 2, cursor);
        assert_eq!(second.alerts.len(), 1);
        assert_eq!(second.alerts[0].alert.id, "0a");
        assert_eq!(second.next_cursor, None);
        assert_eq!(parse_cursor("x.0a"), None);
        assert_eq!(parse_cursor("5.zz"), None);
    }
}
