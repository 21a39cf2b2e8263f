//! Alert rules over the API (admins only: `http_auth`'s access table): `GET`, `POST
//! /api/v1/alert-rules` and `DELETE /api/v1/alert-rules/{id}`. Rules made here are stored
//! (`AlertStore::insert_alert_rule`) and evaluated with the config's from the next
//! evaluation on; the config's are listed too, read-only. Bodies are the keys of
//! `[[alerts.rules]]` as JSON, checked by the same [`RuleToml::validate`]; a refusal names
//! the field. At most [`MAX_RULES`] rules in all, config and stored.

use crate::config::{MAX_RULES, Rule, RuleToml};
use crate::store::{Store, StoreError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use tracing::{info, warn};

/// Largest accepted body: a rule is small, and its lists are capped by `validate` anyway.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Api {
    store: Arc<dyn Store>,
    /// The config's rules as written: listed, never changed here.
    config: Arc<Vec<RuleToml>>,
    /// The configured destinations' names (webhooks and emails).
    destinations: Arc<Vec<String>>,
}

pub fn router(store: Arc<dyn Store>, config: Vec<RuleToml>, destinations: Vec<String>) -> Router {
    Router::new()
        .route("/api/v1/alert-rules", get(list).post(create))
        .route("/api/v1/alert-rules/{id}", delete(remove))
        .with_state(Api {
            store,
            config: Arc::new(config),
            destinations: Arc::new(destinations),
        })
}

/// A rule as listed: where it comes from and its keys.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Listed {
    /// `config` (read-only here) or `api`.
    pub source: &'static str,
    #[serde(flatten)]
    pub rule: RuleToml,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("`{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("rule `{0}` exists")]
    Exists(String),
    #[error("rule `{0}` is from the config file: read-only over the API")]
    ReadOnly(String),
    #[error("no rule `{0}`")]
    NotFound(String),
    #[error(
        "no webhook or email is configured ([[alerts.webhooks]], [[alerts.emails]]): \
         a new rule's alerts would reach nobody"
    )]
    NoDestination,
    #[error("at most {MAX_RULES} rules (config and API together): delete one first")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RulesError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Exists(_) | Self::ReadOnly(_) | Self::Full | Self::NoDestination => {
                StatusCode::CONFLICT
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for RulesError {
    fn into_response(self) -> Response {
        let status = self.status();
        (
            status,
            Json(serde_json::json!({ "error": self.to_string(), "status": status.as_u16() })),
        )
            .into_response()
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> RulesError {
    RulesError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// The stored rules as written, by id; a record that no longer reads is skipped and logged
/// (it cannot be evaluated, and one bad record must not stop the others).
pub fn stored(store: &dyn Store) -> Result<Vec<RuleToml>, StoreError> {
    Ok(store
        .alert_rules()?
        .into_iter()
        .filter_map(
            |(id, json)| match serde_json::from_slice::<RuleToml>(&json) {
                Ok(rule) => Some(rule),
                Err(e) => {
                    warn!(rule = %id, error = %e, "stored alert rule unreadable, skipped");
                    None
                }
            },
        )
        .collect())
}

/// The stored rules, validated, for evaluation: ids the config also uses are left to the
/// config's rule (the API refuses them; a config changed later wins).
pub fn stored_rules(store: &dyn Store, config: &[Rule]) -> Result<Vec<Rule>, StoreError> {
    Ok(stored(store)?
        .into_iter()
        .filter(|r| !config.iter().any(|c| c.id == r.id))
        .filter_map(|r| {
            let id = r.id.clone();
            r.validate()
                .map_err(|(field, reason)| {
                    warn!(rule = %id, field, reason, "stored alert rule invalid, skipped");
                })
                .ok()
        })
        .collect())
}

/// Parses a rule body, naming the field at fault: an unknown key, a value of the wrong
/// type, a missing `id` or `kind`, then whatever [`RuleToml::validate`] finds.
pub fn parse(body: &[u8]) -> Result<(RuleToml, Rule), RulesError> {
    if body.len() > MAX_BODY {
        return Err(invalid("body", format!("at most {MAX_BODY} bytes")));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid("body", format!("not JSON: {e}")))?;
    let serde_json::Value::Object(object) = &value else {
        return Err(invalid("body", "must be a JSON object of a rule's keys"));
    };
    // Each key on its own, so a type error names its key (serde's own message does not).
    let blank = RuleToml {
        id: String::new(),
        kind: String::new(),
        campaigns: Vec::new(),
        countries: Vec::new(),
        networks: Vec::new(),
        points: None,
        min_probes: None,
        hours: None,
        min_tests: None,
    };
    for (key, v) in object {
        let mut probe = serde_json::to_value(&blank)
            .map_err(|e| invalid("body", e.to_string()))?
            .as_object()
            .cloned()
            .unwrap_or_default();
        probe.insert(key.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<RuleToml>(serde_json::Value::Object(probe)) {
            let text = e.to_string();
            return Err(if text.starts_with("unknown field") {
                invalid(
                    key,
                    "not a rule key (id, kind, campaigns, countries, networks, points, \
                     min_probes, hours, min_tests)",
                )
            } else {
                invalid(key, text)
            });
        }
    }
    for required in ["id", "kind"] {
        if !object.contains_key(required) {
            return Err(invalid(required, "is required"));
        }
    }
    let written: RuleToml =
        serde_json::from_value(value.clone()).map_err(|e| invalid("body", e.to_string()))?;
    let rule = written
        .clone()
        .validate()
        .map_err(|(field, reason)| invalid(&field, reason))?;
    Ok((written, rule))
}

/// Held around the count-then-insert of a new rule, so two requests at once cannot both take
/// the last place (one process; collectors sharing a ClickHouse store may exceed the cap by
/// their number, once).
static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Stores a new rule after the checks; returns it as listed. With no destination configured
/// the rule is refused: it would be evaluated and stored for nobody to hear of.
pub fn add(
    store: &dyn Store,
    config: &[RuleToml],
    destinations: &[String],
    body: &[u8],
) -> Result<Listed, RulesError> {
    let (written, _) = parse(body)?;
    if destinations.is_empty() {
        return Err(RulesError::NoDestination);
    }
    if config.iter().any(|c| c.id == written.id) {
        return Err(RulesError::Exists(written.id));
    }
    let _one = CREATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stored = store.alert_rules()?;
    if stored.iter().any(|(id, _)| *id == written.id) {
        return Err(RulesError::Exists(written.id));
    }
    if config.len() + stored.len() >= MAX_RULES {
        return Err(RulesError::Full);
    }
    let json = serde_json::to_vec(&written).map_err(|e| invalid("body", e.to_string()))?;
    if !store.insert_alert_rule(&written.id, &json)? {
        return Err(RulesError::Exists(written.id));
    }
    store.flush()?;
    Ok(Listed {
        source: "api",
        rule: written,
    })
}

/// Deletes a stored rule; the config's are read-only.
pub fn rm(store: &dyn Store, config: &[RuleToml], id: &str) -> Result<(), RulesError> {
    if config.iter().any(|c| c.id == id) {
        return Err(RulesError::ReadOnly(id.to_owned()));
    }
    if !store.delete_alert_rule(id)? {
        return Err(RulesError::NotFound(id.to_owned()));
    }
    store.flush()?;
    Ok(())
}

/// Every rule: the config's, then the stored ones, each by id.
pub fn all(store: &dyn Store, config: &[RuleToml]) -> Result<Vec<Listed>, StoreError> {
    let mut listed: Vec<Listed> = config
        .iter()
        .map(|r| Listed {
            source: "config",
            rule: r.clone(),
        })
        .collect();
    listed.extend(stored(store)?.into_iter().map(|rule| Listed {
        source: "api",
        rule,
    }));
    Ok(listed)
}

async fn list(State(api): State<Api>) -> Response {
    let (store, config) = (api.store.clone(), api.config.clone());
    match crate::store::run_blocking(move || all(&*store, &config)).await {
        Ok(rules) => Json(serde_json::json!({ "rules": rules })).into_response(),
        Err(e) => RulesError::Store(e).into_response(),
    }
}

async fn create(State(api): State<Api>, body: Bytes) -> Response {
    let (store, config, destinations) = (
        api.store.clone(),
        api.config.clone(),
        api.destinations.clone(),
    );
    let made = tokio::task::spawn_blocking(move || add(&*store, &config, &destinations, &body))
        .await
        .unwrap_or_else(|e| Err(StoreError::Backend(format!("rule task failed: {e}")).into()));
    match made {
        Ok(listed) => {
            info!(rule = %listed.rule.id, kind = %listed.rule.kind, "alert rule created over the API");
            (StatusCode::CREATED, Json(listed)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn remove(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let (store, config, id2) = (api.store.clone(), api.config.clone(), id.clone());
    let done = tokio::task::spawn_blocking(move || rm(&*store, &config, &id2))
        .await
        .unwrap_or_else(|e| Err(StoreError::Backend(format!("rule task failed: {e}")).into()));
    match done {
        Ok(()) => {
            info!(rule = %id, "alert rule deleted over the API");
            Json(serde_json::json!({ "deleted": id })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn config() -> Vec<RuleToml> {
        vec![
            serde_json::from_value(serde_json::json!({
                "id": "from-config", "kind": "probe_offline", "hours": 6.0
            }))
            .unwrap(),
        ]
    }

    #[test]
    fn bad_bodies_name_their_field() {
        for (body, field) in [
            ("[]", "`body`"),
            ("{", "`body`"),
            (r#"{"kind": "probe_offline", "hours": 1}"#, "`id`"),
            (r#"{"id": "a", "hours": 1}"#, "`kind`"),
            (
                r#"{"id": "a", "kind": "probe_offline", "hours": "six"}"#,
                "`hours`",
            ),
            (
                r#"{"id": "a", "kind": "probe_offline", "hours": 1, "colour": 1}"#,
                "`colour`",
            ),
            (r#"{"id": "a", "kind": "probe_offline"}"#, "`hours`"),
            (
                r#"{"id": "a", "kind": "probe_offline", "hours": 0}"#,
                "`hours`",
            ),
            (
                r#"{"id": "a b", "kind": "probe_offline", "hours": 1}"#,
                "`id`",
            ),
            (r#"{"id": "a", "kind": "nope"}"#, "`kind`"),
            (
                r#"{"id": "a", "kind": "share_drop", "points": 5}"#,
                "`countries`",
            ),
            (
                r#"{"id": "a", "kind": "share_drop", "points": 5, "countries": ["XYZ"]}"#,
                "`countries`",
            ),
            (
                r#"{"id": "a", "kind": "target_lost_v6", "campaigns": [-1]}"#,
                "`campaigns`",
            ),
            (
                r#"{"id": "a", "kind": "target_lost_v6", "hours": 2}"#,
                "`hours`",
            ),
        ] {
            let error = parse(body.as_bytes()).unwrap_err();
            assert!(
                matches!(error, RulesError::Invalid { .. }) && error.to_string().starts_with(field),
                "{body}: {error}"
            );
        }
        let (written, rule) =
            parse(br#"{"id": "lost", "kind": "target_lost_v6", "min_probes": 2}"#).unwrap();
        assert_eq!(rule.id, "lost");
        assert_eq!(written.min_probes, Some(2));
    }

    #[test]
    fn rules_are_stored_listed_capped_and_config_rules_are_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let config = config();
        let body = |id: &str| format!(r#"{{"id": "{id}", "kind": "probe_offline", "hours": 2}}"#);
        // Nobody to tell: refused before anything is stored.
        assert!(matches!(
            add(&store, &config, &[], body("api-0").as_bytes()),
            Err(RulesError::NoDestination)
        ));
        assert!(stored(&store).unwrap().is_empty());
        let dest = vec!["ops".to_owned()];
        let body = |id: &str| format!(r#"{{"id": "{id}", "kind": "probe_offline", "hours": 2}}"#);
        let made = add(&store, &config, &dest, body("api-1").as_bytes()).unwrap();
        assert_eq!(made.source, "api");
        assert!(matches!(
            add(&store, &config, &dest, body("api-1").as_bytes()),
            Err(RulesError::Exists(_))
        ));
        assert!(matches!(
            add(&store, &config, &dest, body("from-config").as_bytes()),
            Err(RulesError::Exists(_))
        ));
        let listed = all(&store, &config).unwrap();
        let ids: Vec<(&str, &str)> = listed
            .iter()
            .map(|l| (l.source, l.rule.id.as_str()))
            .collect();
        assert_eq!(ids, [("config", "from-config"), ("api", "api-1")]);
        let rules = stored_rules(&store, &[]).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].id, "api-1");
        // The cap counts config and stored rules together.
        for i in 2..MAX_RULES {
            add(&store, &config, &dest, body(&format!("api-{i}")).as_bytes()).unwrap();
        }
        assert!(matches!(
            add(&store, &config, &dest, body("one-more").as_bytes()),
            Err(RulesError::Full)
        ));
        assert!(matches!(
            rm(&store, &config, "from-config"),
            Err(RulesError::ReadOnly(_))
        ));
        assert!(matches!(
            rm(&store, &config, "nope"),
            Err(RulesError::NotFound(_))
        ));
        rm(&store, &config, "api-1").unwrap();
        assert!(matches!(
            rm(&store, &config, "api-1"),
            Err(RulesError::NotFound(_))
        ));
        // Room again, and the deleted id can be used again.
        add(&store, &config, &dest, body("api-1").as_bytes()).unwrap();
        assert_eq!(all(&store, &config).unwrap().len(), MAX_RULES);
    }
}
