//! `GET /api/v1/maps/countries/{country}/breaks`: where IPv6 breaks for the country's probes
//! ([`super::rollup::country`]), public like the maps and behind their cache.

use super::rollup;
use crate::rollup::MinSample;
use crate::store::{Store, StoreError};
use axum::extract::{Path, RawQuery, State};

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use sixmap_shared::UnixMicros;

use std::sync::Arc;

pub fn router(store: Arc<dyn Store>, rule: MinSample) -> Router {
    Router::new()
        .route(
            "/api/v1/maps/countries/{country}/breaks",
            get(country_breaks),
        )
        .with_state((store, rule))
}

async fn country_breaks(
    State((store, rule)): State<(Arc<dyn Store>, MinSample)>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let code = match crate::http::country_route::country_of(&country, query.as_deref()) {
        Ok(code) => code,
        Err(refused) => return refused,
    };
    let work = move || -> Result<rollup::CountryBreaks, StoreError> {
        rollup::country(store.as_ref(), code, rule, UnixMicros::now())
    };
    crate::http::country_route::json_or_503("breaks", code, work).await
}
