//! The pages (dashboard, world map, country map) and the vendored files they use at
//! `/assets/<name>`, embedded in the binary (see `collector/assets/README.md`). The pages
//! fetch nothing from elsewhere; the JSON they read comes from the API ([`super`]). Each page
//! is served in the request's language (`crate::i18n`: `?lang=`, else `Accept-Language`),
//! its static text filled in here and its script handed the strings it formats.

use crate::i18n::Negotiated;
use crate::i18n::page::localise;
use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

pub(super) async fn dashboard(lang: Negotiated) -> Response {
    page(include_str!("../dashboard.html"), &lang)
}

/// Vendored files for the map pages: name under `/assets/`, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "countries-110m.json",
        "application/json",
        include_bytes!("../../assets/countries-110m.json"),
    ),
    (
        "iso3166.json",
        "application/json",
        include_bytes!("../../assets/iso3166.json"),
    ),
    (
        "topojson-client.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/topojson-client.min.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/i18n.js"),
    ),
    (
        "maps-common.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/maps-common.js"),
    ),
    (
        "coverage.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/coverage.js"),
    ),
    (
        "breaks.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/breaks.js"),
    ),
    (
        "dnsv6.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dnsv6.js"),
    ),
];

/// Assets change only with the binary; a day of caching spares the atlas on every page view.
const ASSET_CACHE: &str = "public, max-age=86400";

/// The map pages may load scripts, data and styles from this collector only.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
form-action 'none'";

pub(super) async fn asset(Path(name): Path<String>) -> Response {
    use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [(CONTENT_TYPE, *content_type), (CACHE_CONTROL, ASSET_CACHE)],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no asset {name:?}") })),
        )
            .into_response(),
    }
}

fn page(html: &'static str, lang: &Negotiated) -> Response {
    let languages = lang.catalog().languages();
    (
        [(axum::http::header::CONTENT_SECURITY_POLICY, PAGE_CSP)],
        lang.headers(),
        Html(localise(html, lang.language(), languages)),
    )
        .into_response()
}

/// The world map of IPv6 by country.
pub(super) async fn map_page(lang: Negotiated) -> Response {
    page(include_str!("../map.html"), &lang)
}

/// One country's page; the page itself fetches `/api/v1/maps/countries/{CC}`. A code in
/// lower or mixed case is redirected to its upper-case form; anything else that is not two
/// letters is refused with a plain-text message.
pub(super) async fn country_page(
    Path(country): Path<String>,
    lang: Negotiated,
    uri: axum::http::Uri,
) -> Response {
    match country.parse::<sixmap_shared::prefixes::CountryCode>() {
        Ok(_) => page(include_str!("../country.html"), &lang),
        Err(_) if country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()) => {
            // The query (a `?lang=` choice) goes along.
            let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            axum::response::Redirect::permanent(&format!(
                "/map/{}{query}",
                country.to_ascii_uppercase()
            ))
            .into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                ),
                (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            format!(
                "country in the path: {e}; for example /map/NL, or see the world map at /map\n"
            ),
        )
            .into_response(),
    }
}
