//! HTTP JSON API of campaigns under `/api/v1/campaigns` (what the CLI uses).
//!
//! - `GET /api/v1/campaigns`: summaries.
//! - `POST /api/v1/campaigns` with `{"format": "toml"|"json", "spec": "<text>"}` (or `"spec"`
//!   as a JSON object): 201 with the campaign; 400 naming the spec field; 403 over budget. The
//!   owner is the calling API token's holder (an `owner` in the body is ignored).
//! - `GET /api/v1/campaigns/{id}`: the campaign and its progress.
//! - `POST /api/v1/campaigns/{id}/cancel` with optional `{"reason": "..."}`.
//!
//! Writes to a campaign (cancel, declared figures) are for its owner (the name of the API
//! token that created it) and admins; others get 403.
//! - `GET /api/v1/campaigns/{id}/report?format=json|csv|html`.
//! - `POST /api/v1/campaigns/{id}/declared` with a CSV body (`asn,metric,value,as_of,source`).
//!
//! Store work runs on the readers' bounded pool (`limits::readers`); reports are long
//! responses and hold a permit of the shared budget (`limits::streams`) until sent.

use super::{CampaignError, Campaigns, report};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sixmap_shared::UnixMicros;
use std::sync::Arc;

pub fn router(campaigns: Arc<Campaigns>) -> Router {
    Router::new()
        .route("/api/v1/campaigns", get(list).post(create))
        .route("/api/v1/campaigns/plan", post(plan))
        .route("/api/v1/campaigns/{id}", get(show))
        .route("/api/v1/campaigns/{id}/cancel", post(cancel))
        .route("/api/v1/campaigns/{id}/report", get(report_of))
        .route("/api/v1/campaigns/{id}/declared", post(declared))
        .with_state(campaigns)
}

/// HTTP status of a campaign error.
pub fn status_of(e: &CampaignError) -> StatusCode {
    match e {
        CampaignError::Spec(_) | CampaignError::Declared(_) => StatusCode::BAD_REQUEST,
        CampaignError::NotFound(_) => StatusCode::NOT_FOUND,
        CampaignError::OverBudget(_) | CampaignError::NotOwner { .. } => StatusCode::FORBIDDEN,
        CampaignError::Ended(..) => StatusCode::CONFLICT,
        CampaignError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        CampaignError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[derive(Debug)]
pub(super) struct ApiError(pub(super) CampaignError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = match &self.0 {
            CampaignError::Spec(e) => Some(e.field.clone()),
            _ => None,
        };
        (
            status_of(&self.0),
            Json(serde_json::json!({ "error": self.0.to_string(), "field": field })),
        )
            .into_response()
    }
}

pub(super) fn bad(field: &str, reason: String) -> ApiError {
    ApiError(CampaignError::Spec(super::spec::SpecFieldError {
        field: field.into(),
        reason,
    }))
}

/// Store work on the readers' bounded pool (`limits::readers`) like the rest of the HTTP
/// API, so campaign requests never take the threads ingest needs; a request that goes away
/// stops its report's scan.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CampaignError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::limits::readers::read_blocking(move || Ok(work()))
        .await
        .map_err(|e| ApiError(CampaignError::Store(e)))?
        .map_err(ApiError)
}

pub(super) fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| bad("id", format!("{text:?} is not a campaign id")))
}

async fn list(State(c): State<Arc<Campaigns>>) -> Result<Json<serde_json::Value>, ApiError> {
    let summaries = blocking(move || c.summaries()).await?;
    Ok(Json(serde_json::json!({ "campaigns": summaries })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Accepted from older clients and ignored: the owner is the calling token's holder
    /// (budgets and write access are per owner, so a caller cannot act as another).
    #[serde(default, rename = "owner")]
    _owner: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    format: Option<String>,
    spec: serde_json::Value,
}

async fn create(
    State(c): State<Arc<Campaigns>>,
    caller: Option<crate::http_auth::Caller>,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| bad("body", e.body_text()))?;
    let (format, text) = spec_text(body)?;
    // The access table lets only campaigners and admins write here, so a caller is known;
    // the owner is always the caller (the body's `owner` is ignored), so no one can create a
    // campaign in another's name or spend another's budget.
    let owner = match caller {
        Some(caller) => caller.name,
        None => return Err(bad("owner", "this needs an API token".into())),
    };
    let record = blocking(move || c.create(&owner, &format, &text, UnixMicros::now())).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

/// `POST /api/v1/campaigns/plan`, the body of a create: what creating it would select and
/// cost (`super::plan`), creating nothing.
async fn plan(
    State(c): State<Arc<Campaigns>>,
    caller: crate::http_auth::Caller,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<super::plan::Plan>, ApiError> {
    let Json(body) = body.map_err(|e| bad("body", e.body_text()))?;
    let (format, text) = spec_text(body)?;
    let owner = caller.name;
    Ok(Json(
        blocking(move || c.plan(&owner, &format, &text, UnixMicros::now())).await?,
    ))
}

/// The spec's format and text from a create body (text, or a JSON object).
fn spec_text(body: CreateBody) -> Result<(String, String), ApiError> {
    match body.spec {
        serde_json::Value::String(text) => Ok((body.format.unwrap_or_else(|| "toml".into()), text)),
        object @ serde_json::Value::Object(_) => Ok(("json".into(), object.to_string())),
        _ => Err(bad(
            "spec",
            "must be the spec's text or a JSON object".into(),
        )),
    }
}

async fn show(
    State(c): State<Arc<Campaigns>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(blocking(move || c.show(id, UnixMicros::now())).await?))
}

#[derive(Debug, Default, Deserialize)]
struct CancelBody {
    #[serde(default)]
    reason: String,
}

/// The caller as a campaign writer. The access table lets only campaigners and admins
/// write under `/api/v1/campaigns`, so a caller is always known here.
fn writer(caller: &crate::http_auth::Caller) -> super::Writer<'_> {
    super::Writer {
        name: &caller.name,
        admin: caller.role == crate::store::Role::Admin,
    }
}

async fn cancel(
    State(c): State<Arc<Campaigns>>,
    caller: crate::http_auth::Caller,
    Path(id): Path<String>,
    body: String,
) -> Result<Json<super::CampaignRecord>, ApiError> {
    let id = parse_id(&id)?;
    let body: CancelBody = if body.trim().is_empty() {
        CancelBody::default()
    } else {
        serde_json::from_str(&body).map_err(|e| bad("body", e.to_string()))?
    };
    Ok(Json(
        blocking(move || c.cancel(id, writer(&caller), &body.reason, UnixMicros::now())).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    format: Option<String>,
}

async fn report_of(
    State(c): State<Arc<Campaigns>>,
    Path(id): Path<String>,
    params: Result<Query<ReportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let Query(params) = params.map_err(|e| bad("query", e.body_text()))?;
    let format = params.format.unwrap_or_else(|| "json".into());
    if !["json", "csv", "html"].contains(&format.as_str()) {
        return Err(bad(
            "format",
            format!("{format:?} is not json, csv or html"),
        ));
    }
    let report = blocking(move || c.report(id, UnixMicros::now())).await?;
    Ok(match format.as_str() {
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report::to_csv(&report),
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report::to_html(&report),
        )
            .into_response(),
        _ => Json(report).into_response(),
    })
}

async fn declared(
    State(c): State<Arc<Campaigns>>,
    caller: crate::http_auth::Caller,
    Path(id): Path<String>,
    body: String,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let record = blocking(move || c.import_declared(id, writer(&caller), &body)).await?;
    Ok(Json(
        serde_json::json!({ "campaign": record.id, "declared": record.declared }),
    ))
}
