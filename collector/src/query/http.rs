//! `GET /api/v1/query/results`, `GET /api/v1/query/aggregates` and the OpenAPI description
//! at `GET /api/v1/openapi.json`. Access: `http_auth::required` (the query routes like raw
//! results, the description public).

use super::aggregate::{AggregateRequest, Aggregates, aggregate};
use super::page::{Page, page};
use super::{PageRequest, ParamError, aggregate_budget, page_budget};
use crate::store::{Store, StoreError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Instant;

pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/api/v1/query/results", get(results))
        .route("/api/v1/query/aggregates", get(aggregates))
        .route("/api/v1/query/dns-scorecard", get(dns_scorecard))
        .route("/api/v1/openapi.json", get(openapi))
        .with_state(store)
}

#[derive(Debug)]
enum QueryError {
    Param(ParamError),
    Malformed(String),
    Store(StoreError),
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::Param(e) => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({
                    "error": e.to_string(), "parameter": e.parameter(), "status": 400,
                }),
            ),
            Self::Malformed(message) => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": message, "status": 400 }),
            ),
            Self::Store(e) => {
                tracing::warn!(error = %e, "query failed in the store");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "error": e.to_string(), "status": 503 }),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn pairs(query: Pairs) -> Result<Vec<(String, String)>, QueryError> {
    query
        .map(|Query(pairs)| pairs)
        .map_err(|e| QueryError::Malformed(e.body_text()))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, QueryError> {
    crate::limits::readers::read_blocking(work)
        .await
        .map_err(QueryError::Store)
}

/// Results the filter selects, oldest first, one page at a time.
async fn results(
    State(store): State<Arc<dyn Store>>,
    query: Pairs,
) -> Result<Json<Page>, QueryError> {
    let pairs = pairs(query)?;
    let request = PageRequest::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .map_err(QueryError::Param)?;
    let started = Instant::now();
    let page = blocking(move || page(&*store, &request, page_budget())).await?;
    tracing::debug!(
        results = page.results.len(),
        more = page.next_cursor.is_some(),
        ms = started.elapsed().as_millis() as u64,
        "query page served"
    );
    Ok(Json(page))
}

/// Counts, success shares and median ping RTTs by country, AS and/or day.
async fn aggregates(
    State(store): State<Arc<dyn Store>>,
    query: Pairs,
) -> Result<Json<Aggregates>, QueryError> {
    let pairs = pairs(query)?;
    let request = AggregateRequest::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .map_err(QueryError::Param)?;
    let started = Instant::now();
    let aggregates = blocking(move || aggregate(&*store, &request, aggregate_budget())).await?;
    tracing::debug!(
        groups = aggregates.rows.len(),
        results = aggregates.results,
        truncated = aggregates.truncated,
        ms = started.elapsed().as_millis() as u64,
        "query aggregates served"
    );
    Ok(Json(aggregates))
}

/// The DNS-over-IPv6 scorecard per operator (`dns_scorecard`).
async fn dns_scorecard(
    State(store): State<Arc<dyn Store>>,
    query: Pairs,
) -> Result<Json<super::dns_scorecard::Scorecard>, QueryError> {
    let pairs = pairs(query)?;
    let request = super::dns_scorecard::Request::from_pairs(
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    )
    .map_err(|e| QueryError::Param(e.into()))?;
    let started = Instant::now();
    let card = blocking(move || {
        super::dns_scorecard::request(
            &*store,
            &request,
            sixmap_shared::UnixMicros::now(),
            super::dns_scorecard::budget(),
        )
    })
    .await?;
    tracing::debug!(
        operators = card.rows.len(),
        results = card.results,
        truncated = card.truncated,
        source = ?card.source,
        ms = started.elapsed().as_millis() as u64,
        "dns scorecard served"
    );
    Ok(Json(card))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::SPEC,
    )
        .into_response()
}
