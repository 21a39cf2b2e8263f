//! `GET /api/v1/maps/countries/{country}/breaks`: where IPv6 breaks for the country's probes
//! ([`super::rollup::country`]), public like the maps and behind their cache.

use super::rollup;
use crate::rollup::MinSample;
use crate::store::{Store, StoreError};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sixmap_shared::UnixMicros;
use sixmap_shared::prefixes::CountryCode;
use std::sync::Arc;

pub fn router(store: Arc<dyn Store>, rule: MinSample) -> Router {
    Router::new()
        .route(
            "/api/v1/maps/countries/{country}/breaks",
            get(country_breaks),
        )
        .with_state((store, rule))
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message, "status": 400 })),
    )
        .into_response()
}

async fn country_breaks(
    State((store, rule)): State<(Arc<dyn Store>, MinSample)>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if query.as_deref().is_some_and(|q| !q.is_empty()) {
        return bad_request("unknown parameter: this route takes no query parameters".into());
    }
    let Ok(code) = country.to_ascii_uppercase().parse::<CountryCode>() else {
        let shown: String = country.chars().take(20).collect();
        return bad_request(format!("{shown:?} is not a country code (two letters)"));
    };
    let work = move || -> Result<rollup::CountryBreaks, StoreError> {
        rollup::country(store.as_ref(), code, rule, UnixMicros::now())
    };
    match crate::store::run_blocking(work).await {
        Ok(breaks) => Json(breaks).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, country = %code, "breaks not read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": e.to_string(), "status": 503 })),
            )
                .into_response()
        }
    }
}
