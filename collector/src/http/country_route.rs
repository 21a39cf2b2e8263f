//! What the per-country side routes (`/api/v1/maps/countries/{country}/coverage`, `/breaks`,
//! `/dns`) share: the country from the path with no query parameters, and a figure read on a
//! reader thread, answered as JSON or as a 503 naming the store's error (never served around).

use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sixmap_shared::prefixes::CountryCode;

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message, "status": 400 })),
    )
        .into_response()
}

/// The country the path names (two letters, any case), or the 400 to answer; these routes
/// take no query parameters.
#[allow(clippy::result_large_err)]
pub fn country_of(country: &str, query: Option<&str>) -> Result<CountryCode, Response> {
    if query.is_some_and(|q| !q.is_empty()) {
        return Err(bad_request(
            "unknown parameter: this route takes no query parameters".into(),
        ));
    }
    country.to_ascii_uppercase().parse().map_err(|_| {
        let shown: String = country.chars().take(20).collect();
        bad_request(format!("{shown:?} is not a country code (two letters)"))
    })
}

/// `work` on a reader thread: its value as JSON, or a 503 naming the error (`what` and
/// `country` go to the log).
pub async fn json_or_503<T: Serialize + Send + 'static>(
    what: &'static str,
    country: CountryCode,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Response {
    match crate::store::run_blocking(work).await {
        Ok(value) => Json(value).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, %country, what, "country figure not read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": e.to_string(), "status": 503 })),
            )
                .into_response()
        }
    }
}
