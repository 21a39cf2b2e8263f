//! HTTP: the JSON API under `/api/v1` (this module), the dashboard at `/`, the national map
//! pages at `/map` and `/map/{CC}` and their files at `/assets/<name>` ([`pages`]), the
//! dashboard's result summaries ([`summary`]).

use crate::store::{ResultQuery, Store, StoreError, StoredResult, TagEvent};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sixmap_shared::health::{OutboxLoss, ProbeTag, SelfTest};
use sixmap_shared::{ProbeId, UnixMicros};
use std::net::IpAddr;
use std::sync::Arc;

use crate::i18n::Negotiated;
use crate::map_view::MapView;

pub mod country_route;
mod csv;
mod pages;
mod summary;
/// One-line result summaries, also printed by `sixmap-collector measure`.
pub(crate) use summary::summarize;

use pages::{asset, country_page, dashboard, map_page};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub fn router(store: Arc<dyn Store>, maps: MapView) -> Router {
    // The map pages answer from the snapshot kept in memory (`map_view`).
    let map_routes = Router::new()
        .route("/api/v1/maps/countries", get(map_countries))
        .route("/api/v1/maps/countries/{country}", get(map_country))
        .route("/api/v1/maps/countries/{country}/series", get(map_series))
        .route(
            "/api/v1/maps/countries/{country}/drilldown",
            get(country_drilldown),
        )
        .route(
            "/api/v1/maps/countries/{country}/drilldown/{asn}",
            get(operator_drilldown),
        )
        .route("/api/v1/maps/networks/{asn}/series", get(network_series))
        .with_state((store.clone(), maps));
    Router::new()
        .route("/", get(dashboard))
        .route("/api/v1/results", get(results))
        .route("/api/v1/probes", get(probes))
        .route("/api/v1/probes/{id}/tags", get(tag_history))
        .route("/api/v1/losses", get(losses))
        .route("/map", get(map_page))
        .route("/map/{country}", get(country_page))
        .route("/assets/{name}", get(asset))
        .with_state(store)
        .merge(map_routes)
}

#[derive(Debug)]
enum ApiError {
    BadRequest(String),
    Store(StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::Store(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Store reads on the readers' bounded pool (`limits::readers`), never ingest's threads.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    crate::limits::readers::read_blocking(work)
        .await
        .map_err(ApiError::Store)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsParams {
    probe: Option<String>,
    limit: Option<usize>,
}

/// The map routes take no query parameters: one given is a mistake, named in a 400.
fn no_parameters(query: Option<String>) -> Result<(), ApiError> {
    match query.as_deref().filter(|q| !q.is_empty()) {
        None => Ok(()),
        Some(query) => {
            let name: String = query
                .split(['&', '='])
                .next()
                .unwrap_or_default()
                .chars()
                .take(40)
                .collect();
            Err(ApiError::BadRequest(format!(
                "unknown parameter `{name}`: this route takes no query parameters"
            )))
        }
    }
}

/// What a map route answers with (`?format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    /// The map itself, drawn on the server (`crate::map_svg`), in the request's language.
    Svg,
}

/// The map routes' parameters: `date=YYYY-MM-DD` (a past UTC day, answered from the stored
/// daily rollups), `format=json|csv|svg` and, with `svg` only, `lang` (the drawing's language,
/// chosen by the `Negotiated` extractor); any other parameter, a repeated one, a malformed
/// day or an unknown format is a 400 naming it. Returns the day and the format.
fn map_parameters(query: Option<String>) -> Result<(Option<UnixMicros>, Format), ApiError> {
    let mut date = None;
    let mut format: Option<Format> = None;
    let mut lang = false;
    for pair in query.as_deref().unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let shown: String = name.chars().take(40).collect();
        let repeated = match name {
            "date" => date.is_some(),
            "format" => format.is_some(),
            "lang" => std::mem::replace(&mut lang, true),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter `{shown}`: this route takes only `date` (YYYY-MM-DD), \
                     `format` (json, csv or svg) and, with svg, `lang`"
                )));
            }
        };
        if repeated {
            return Err(ApiError::BadRequest(format!(
                "query parameter `{name}`: given more than once"
            )));
        }
        let shown: String = value.chars().take(40).collect();
        match name {
            "format" => {
                format = Some(match value {
                    "json" => Format::Json,
                    "csv" => Format::Csv,
                    "svg" => Format::Svg,
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "query parameter `format`: {shown:?} is not json, csv or svg"
                        )));
                    }
                });
            }
            "date" => {
                date = Some(crate::daily::parse_day(value).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "query parameter `date`: {shown:?} is not a UTC day YYYY-MM-DD"
                    ))
                })?);
            }
            // A language code as the catalog spells it (`fr`), nothing more: the negotiation
            // would read `fr-x1`, `FR` or ` fr` as French too, and each spelling would be a
            // drawing of its own in the public cache, which anyone could then fill.
            "lang" if !(value.len() <= 8 && value.bytes().all(|b| b.is_ascii_lowercase())) => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter `lang`: {shown:?} is not a language code as listed \
                     (lowercase letters, e.g. fr)"
                )));
            }
            _ => {}
        }
    }
    let format = format.unwrap_or(Format::Json);
    if lang && format != Format::Svg {
        return Err(ApiError::BadRequest(
            "query parameter `lang`: only with format=svg (JSON and CSV have no language)".into(),
        ));
    }
    Ok((date, format))
}

/// An SVG map: shown inline by a browser, saved under a name that says what and when.
fn svg_response(name: String, body: String, lang: &Negotiated) -> Response {
    use axum::http::header;
    (
        [
            (
                header::CONTENT_TYPE,
                "image/svg+xml; charset=utf-8".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{name}.svg\""),
            ),
            // Opened on its own, the file may run nothing and load nothing.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'".to_owned(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        lang.headers(),
        body,
    )
        .into_response()
}

fn atlas_failed(e: &crate::map_svg::atlas::AtlasError) -> Response {
    tracing::error!(error = %e, "map SVG: the embedded atlas");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({ "error": e.to_string() })),
    )
        .into_response()
}

/// "As of" the live snapshot, or the stored day, in words.
fn svg_when(lang: &crate::i18n::Language, date: Option<&str>, generated_at: UnixMicros) -> String {
    match date {
        Some(day) => lang.fmt("svg.on_day", &[("day", day)]),
        None => lang.fmt(
            "svg.as_of",
            &[
                ("time", &lang.date_time(generated_at)),
                ("hours", &lang.integer(crate::maps::WINDOW.as_secs() / 3600)),
            ],
        ),
    }
}

/// A CSV download; its file name says what and when.
fn csv_response(name: String, body: String) -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A country code in a path, in any case (`de` is `DE`), as `probe_country` in queries.
fn country_in_path(text: &str) -> Result<sixmap_shared::prefixes::CountryCode, ApiError> {
    text.to_ascii_uppercase()
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("country in the path: {e}")))
}

fn parse_probe(text: &str, what: &str) -> Result<ProbeId, ApiError> {
    text.parse::<ProbeId>()
        .map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))
}

fn result_query(
    params: Result<Query<ResultsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<ResultQuery, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let probe = params
        .probe
        .map(|p| parse_probe(&p, "query parameter `probe`"))
        .transpose()?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "query parameter `limit`: must be 1..={MAX_LIMIT}"
        )));
    }
    Ok(ResultQuery { probe, limit })
}

#[derive(Debug, Serialize)]
struct LossesBody {
    count: usize,
    /// Results counted in these records.
    lost_results: u64,
    losses: Vec<OutboxLoss>,
}

/// Probes' records of results they dropped before delivery (outbox full, damaged outbox).
async fn losses(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<ResultsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LossesBody>, ApiError> {
    let query = result_query(params)?;
    let losses = run_blocking(move || store.losses(&query)).await?;
    Ok(Json(LossesBody {
        count: losses.len(),
        lost_results: losses.iter().map(|l| l.count).sum(),
        losses,
    }))
}

#[derive(Debug, Serialize)]
struct TagsBody {
    probe: ProbeId,
    tags: Vec<ProbeTag>,
    self_test: Option<SelfTest>,
    /// Every change, oldest first.
    history: Vec<TagEvent>,
}

async fn tag_history(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let probe = parse_probe(&id, "probe id in the path")?;
    let found = run_blocking(move || {
        let Some(record) = store.probe(&probe)? else {
            return Ok(None);
        };
        let history = store.tag_history(&probe)?;
        Ok(Some(TagsBody {
            probe,
            tags: record.tags,
            self_test: record.self_test,
            history,
        }))
    })
    .await?;
    Ok(match found {
        Some(body) => Json(body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no probe {id}") })),
        )
            .into_response(),
    })
}

/// Per-country IPv6 figures for the world map.
/// With `?date=`, that day's stored figures instead.
async fn map_countries(
    State((store, maps)): State<(Arc<dyn Store>, MapView)>,
    RawQuery(query): RawQuery,
    lang: Negotiated,
) -> Result<Response, ApiError> {
    let (date, format) = map_parameters(query)?;
    let rule = maps.rule();
    if let Some(day) = date {
        let on = run_blocking(move || crate::daily::countries_on(&*store, day, rule)).await?;
        return Ok(match format {
            Format::Csv => csv_response(
                format!("ipv6-by-country-{}", on.date),
                csv::countries_on(&on),
            ),
            Format::Json => Json(on).into_response(),
            Format::Svg => {
                // The day's rows name their method; a day stored before ids has none.
                let mut ids: Vec<&str> = on
                    .countries
                    .iter()
                    .filter_map(|c| c.figures.method_id.as_deref())
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let world = crate::map_svg::World {
                    cells: on
                        .countries
                        .iter()
                        .map(|c| crate::map_svg::Cell {
                            country: c.country.to_string(),
                            probes: c.figures.probes,
                            share: c.figures.v6_works.as_ref().map(|s| s.balanced.clone()),
                        })
                        .collect(),
                    when: svg_when(lang.language(), Some(&on.date), UnixMicros(0)),
                    method_id: if ids.is_empty() {
                        crate::daily::METHOD_ID.to_owned()
                    } else {
                        ids.join(", ")
                    },
                    min_probes: on.min_probes,
                };
                match crate::map_svg::world(&world, lang.language()) {
                    Ok(svg) => svg_response(format!("ipv6-by-country-{}", on.date), svg, &lang),
                    Err(e) => atlas_failed(e),
                }
            }
        });
    }
    let snapshot = run_blocking(move || maps.snapshot(&*store)).await?;
    let countries = snapshot.countries_with(rule);
    Ok(match format {
        Format::Csv => csv_response("ipv6-by-country".into(), csv::countries(&countries)),
        Format::Json => Json(countries).into_response(),
        Format::Svg => {
            let world = crate::map_svg::World {
                cells: countries
                    .countries
                    .iter()
                    .map(|c| crate::map_svg::Cell {
                        country: c.country.to_string(),
                        probes: c.probes,
                        share: c.v6_works.as_ref().map(|s| s.balanced.clone()),
                    })
                    .collect(),
                when: svg_when(lang.language(), None, countries.generated_at),
                method_id: countries.method_id.to_owned(),
                min_probes: countries.min_probes,
            };
            match crate::map_svg::world(&world, lang.language()) {
                Ok(svg) => svg_response(
                    format!(
                        "ipv6-by-country-{}",
                        crate::daily::day_label(countries.generated_at)
                    ),
                    svg,
                    &lang,
                ),
                Err(e) => atlas_failed(e),
            }
        }
    })
}

/// One country's stored daily figures and their projected trend.
async fn map_series(
    State((store, maps)): State<(Arc<dyn Store>, MapView)>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::daily::Series>, ApiError> {
    no_parameters(query)?;
    let code = country_in_path(&country)?;
    let rule = maps.rule();
    Ok(Json(
        run_blocking(move || crate::daily::series_with(&*store, code, rule)).await?,
    ))
}

/// What stands behind a country's cell: n, weights, probes left out and why (from the
/// snapshot in memory: O(probes of the country)).
async fn country_drilldown(
    State((store, maps)): State<(Arc<dyn Store>, MapView)>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    no_parameters(query)?;
    let code = country_in_path(&country)?;
    drilldown(store, maps, code, None).await
}

/// The same for one operator's cell in a country.
async fn operator_drilldown(
    State((store, maps)): State<(Arc<dyn Store>, MapView)>,
    Path((country, asn)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    no_parameters(query)?;
    let code = country_in_path(&country)?;
    let asn = parse_asn(&asn)?;
    drilldown(store, maps, code, Some(asn)).await
}

/// An AS number in a path: `64500` or `AS64500`, digits only and no leading zero, so each AS
/// has one spelling (one entry in the public cache).
fn parse_asn(text: &str) -> Result<u32, ApiError> {
    let digits = text.strip_prefix("AS").unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    digits.parse().ok().filter(|_| canonical).ok_or_else(|| {
        let shown: String = text.chars().take(40).collect();
        ApiError::BadRequest(format!("AS number in the path: {shown:?} is not one"))
    })
}

async fn drilldown(
    store: Arc<dyn Store>,
    maps: MapView,
    code: sixmap_shared::prefixes::CountryCode,
    asn: Option<u32>,
) -> Result<Response, ApiError> {
    let rule = maps.rule();
    let snapshot = run_blocking(move || maps.snapshot(&*store)).await?;
    Ok(match snapshot.drilldown(code, asn, rule) {
        Some(cell) => Json(cell).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": match asn {
                    None => format!("no active probe with prefix data in {code}"),
                    Some(asn) => format!("no active probe of AS{asn} in {code}"),
                }
            })),
        )
            .into_response(),
    })
}

/// One network's (origin AS) stored daily figures and their projected trend.
async fn network_series(
    State((store, maps)): State<(Arc<dyn Store>, MapView)>,
    Path(asn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::daily::NetworkSeries>, ApiError> {
    no_parameters(query)?;
    let asn = parse_asn(&asn)?;
    let rule = maps.rule();
    Ok(Json(
        run_blocking(move || crate::daily::network_series_with(&*store, asn, rule)).await?,
    ))
}

/// One country: figures, operator ranking, probes. With `?date=`, that day's stored figures
/// (the country's; operators are not kept per country and day).
async fn map_country(
    State((store, maps)): State<(Arc<dyn Store>, MapView)>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
    lang: Negotiated,
) -> Result<Response, ApiError> {
    let (date, format) = map_parameters(query)?;
    let code = country_in_path(&country)?;
    let rule = maps.rule();
    if let Some(day) = date {
        let on = run_blocking(move || crate::daily::country_on(&*store, code, day, rule)).await?;
        return Ok(match on {
            Some(on) if format == Format::Csv => csv_response(
                format!("ipv6-{code}-{}", on.figures.day),
                csv::country_on(&on, rule.min_probes),
            ),
            Some(on) if format == Format::Svg => {
                let f = &on.figures;
                let view = crate::map_svg::CountryView {
                    country: code.to_string(),
                    probes: f.probes,
                    operators: f.operators,
                    share: f.v6_works.as_ref().map(|s| s.balanced.clone()),
                    // Stored days keep no probe locations.
                    dots: Vec::new(),
                    when: svg_when(lang.language(), Some(&f.day), UnixMicros(0)),
                    method_id: f
                        .method_id
                        .clone()
                        .unwrap_or_else(|| crate::daily::METHOD_ID.to_owned()),
                    min_probes: rule.min_probes,
                };
                match crate::map_svg::country(&view, lang.language()) {
                    Ok(svg) => svg_response(format!("ipv6-{code}-{}", f.day), svg, &lang),
                    Err(e) => atlas_failed(e),
                }
            }
            Some(on) => Json(on).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({
                    "error": format!(
                        "no stored figures for {code} on {}",
                        crate::daily::day_label(day)
                    )
                })),
            )
                .into_response(),
        });
    }
    let snapshot = run_blocking(move || maps.snapshot(&*store)).await?;
    let detail = snapshot.country_with(code, rule);
    Ok(match detail {
        Some(detail) if format == Format::Csv => {
            csv_response(format!("ipv6-operators-{code}"), csv::operators(&detail))
        }
        Some(detail) if format == Format::Svg => {
            let view = crate::map_svg::CountryView {
                country: code.to_string(),
                probes: detail.probe_count,
                operators: detail.operator_count,
                share: detail.v6_works.as_ref().map(|s| s.balanced.clone()),
                dots: detail
                    .probes
                    .iter()
                    .filter_map(|p| {
                        let [lat, lon] = p.location?;
                        Some(crate::map_svg::Dot {
                            lon,
                            lat,
                            works: p.v6_works,
                        })
                    })
                    .collect(),
                when: svg_when(lang.language(), None, detail.generated_at),
                method_id: detail.method_id.to_owned(),
                min_probes: detail.min_probes,
            };
            match crate::map_svg::country(&view, lang.language()) {
                Ok(svg) => svg_response(
                    format!(
                        "ipv6-{code}-{}",
                        crate::daily::day_label(detail.generated_at)
                    ),
                    svg,
                    &lang,
                ),
                Err(e) => atlas_failed(e),
            }
        }
        Some(detail) => Json(detail).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": format!("no active probe with prefix data in {code}")
            })),
        )
            .into_response(),
    })
}

#[derive(Debug, Serialize)]
struct ResultsBody {
    count: usize,
    results: Vec<StoredResult>,
}

async fn results(
    State(store): State<Arc<dyn Store>>,
    params: Result<Query<ResultsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ResultsBody>, ApiError> {
    let query = result_query(params)?;
    let results = run_blocking(move || store.results(&query)).await?;
    Ok(Json(ResultsBody {
        count: results.len(),
        results,
    }))
}

/// A probe as the public API shows it: never its secret.
#[derive(Debug, Serialize)]
struct ProbeView {
    id: ProbeId,
    hostname: String,
    enrolled_at: UnixMicros,
    last_seen: Option<UnixMicros>,
    software_version: Option<String>,
    local_addresses: Vec<IpAddr>,
    tags: Vec<ProbeTag>,
    /// Degrees, rounded to a tenth.
    location: Option<[f64; 2]>,
    /// Origin AS and country of the probe's address.
    origin: Option<sixmap_shared::prefixes::Enrichment>,
    last_result: Option<LastResult>,
}

#[derive(Debug, Serialize)]
struct LastResult {
    started_at: UnixMicros,
    destination: Option<IpAddr>,
    summary: String,
}

async fn probes(State(store): State<Arc<dyn Store>>) -> Result<Json<Vec<ProbeView>>, ApiError> {
    let views = run_blocking(move || {
        store
            .probes()?
            .into_iter()
            .map(|p| {
                let last = store
                    .results(&ResultQuery {
                        probe: Some(p.id.clone()),
                        limit: 1,
                    })?
                    .into_iter()
                    .next();
                Ok(ProbeView {
                    last_result: last.map(|r| LastResult {
                        started_at: r.result.started_at,
                        destination: r.result.destination,
                        summary: summarize(&r.result),
                    }),
                    id: p.id,
                    hostname: p.hostname,
                    enrolled_at: p.enrolled_at,
                    last_seen: p.last_seen,
                    software_version: p.software_version,
                    local_addresses: p.local_addresses,
                    tags: p.tags,
                    location: p.location.map(|l| [l.latitude(), l.longitude()]),
                    origin: p.origin,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await?;
    Ok(Json(views))
}
