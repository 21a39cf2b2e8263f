//! HTTP: the JSON API under `/api/v1`, the dashboard at `/`, the national map pages at
//! `/map` and `/map/{CC}`, and the files they use at `/assets/<name>` (vendored, embedded in
//! the binary: see `collector/assets/README.md`). The pages fetch nothing from elsewhere.

use crate::store::{ResultQuery, Store, StoreError, StoredResult, TagEvent};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sixmap_shared::health::{OutboxLoss, ProbeTag, SelfTest};
use sixmap_shared::measurement::{
    ConnectOutcome, DualLeg, Family, MeasurementResult, Outcome, QuicFailure, TraceStop,
    query_type_name, rcode_name,
};
use sixmap_shared::{ProbeId, UnixMicros};
use std::net::IpAddr;
use std::sync::Arc;

use crate::map_view::MapView;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub fn router(store: Arc<dyn Store>, maps: MapView) -> Router {
    // The map pages answer from the snapshot kept in memory (`map_view`).
    let map_routes = Router::new()
        .route("/api/v1/maps/countries", get(map_countries))
        .route("/api/v1/maps/countries/{country}", get(map_country))
        .with_state((store.clone(), maps));
    Router::new()
        .route("/", get(dashboard))
        .route("/api/v1/results", get(results))
        .route("/api/v1/probes", get(probes))
        .route("/api/v1/probes/{id}/tags", get(tag_history))
        .route("/api/v1/losses", get(losses))
        .route("/api/v1/maps/countries/{country}/series", get(map_series))
        .route("/api/v1/maps/networks/{asn}/series", get(network_series))
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
async fn map_countries(
    State((store, maps)): State<(Arc<dyn Store>, MapView)>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::maps::Countries>, ApiError> {
    no_parameters(query)?;
    let snapshot = run_blocking(move || maps.snapshot(&*store)).await?;
    Ok(Json(snapshot.countries()))
}

/// One country's stored daily figures and their projected trend.
async fn map_series(
    State(store): State<Arc<dyn Store>>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::daily::Series>, ApiError> {
    no_parameters(query)?;
    let code = country_in_path(&country)?;
    Ok(Json(
        run_blocking(move || crate::daily::series(&*store, code)).await?,
    ))
}

/// One network's (origin AS) stored daily figures and their projected trend.
async fn network_series(
    State(store): State<Arc<dyn Store>>,
    Path(asn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<crate::daily::NetworkSeries>, ApiError> {
    no_parameters(query)?;
    let asn: u32 = asn
        .strip_prefix("AS")
        .unwrap_or(&asn)
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("AS number in the path: {asn:?} is not one")))?;
    Ok(Json(
        run_blocking(move || crate::daily::network_series(&*store, asn)).await?,
    ))
}

/// One country: figures, operator ranking, probes.
async fn map_country(
    State((store, maps)): State<(Arc<dyn Store>, MapView)>,
    Path(country): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    no_parameters(query)?;
    let code = country_in_path(&country)?;
    let snapshot = run_blocking(move || maps.snapshot(&*store)).await?;
    let detail = snapshot.country(code);
    Ok(match detail {
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

/// A short line about a result for the dashboard's probe list: what came back and how fast.
fn summarize(result: &MeasurementResult) -> String {
    summarize_outcome(&result.outcome)
}

fn ms(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// " 3.1 ms" or nothing.
fn in_ms(ns: Option<u64>) -> String {
    ns.map(|ns| format!(" {}", ms(ns))).unwrap_or_default()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn summarize_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed(e) => format!("failed ({:?}): {}", e.class, e.message),
        Outcome::Ping(p) => match p.min_rtt() {
            Some(rtt) => format!(
                "ping {}/{} replies, min RTT {:.3} ms",
                p.received,
                p.sent,
                rtt.as_secs_f64() * 1000.0
            ),
            None => format!("ping 0/{} replies", p.sent),
        },
        Outcome::Traceroute(t) => {
            // The last hop limit probed is the path length when the destination answered.
            let hops = t.hops.last().map_or(0, |h| usize::from(h.hop_limit));
            let end = match t.stop {
                TraceStop::Reached => "reached",
                TraceStop::Unreachable => "unreachable",
                TraceStop::SilentHops => "stopped after silent hops",
                TraceStop::MaxHops => "max hops without reaching",
                TraceStop::Timeout => "timed out",
            };
            format!(
                "traceroute {} {}, {end}",
                t.protocol.name(),
                plural(hops, "hop")
            )
        }
        Outcome::Dns(d) => {
            let qtype = query_type_name(d.query_type);
            match (&d.response, &d.failure) {
                (Some(r), _) => format!(
                    "dns {qtype} {} {}{}",
                    rcode_name(r.rcode),
                    plural(r.answers.len(), "answer"),
                    in_ms(d.rtt_ns)
                ),
                (None, failure) => format!(
                    "dns {qtype} no response: {}",
                    failure.as_deref().unwrap_or("unknown")
                ),
            }
        }
        Outcome::Tcp(t) => format!(
            "tcp {} {}{}",
            t.port,
            t.outcome.words(),
            in_ms(t.connect_ns)
        ),
        Outcome::Tls(t) => {
            if t.handshake_ok {
                format!(
                    "tls {} handshake{}, certificate {}",
                    t.version.as_deref().unwrap_or("?"),
                    in_ms(t.handshake_ns),
                    if t.certificate_verified {
                        "verified"
                    } else {
                        "not verified"
                    }
                )
            } else if t.connect != ConnectOutcome::Connected {
                format!("tls connect {}", t.connect.words())
            } else {
                format!(
                    "tls handshake failed: {}",
                    t.failure.as_deref().unwrap_or("unknown")
                )
            }
        }
        Outcome::Http(h) => match h.status {
            Some(status) => format!("http {status} in {}", ms(h.total_ns)),
            None if h.connect != ConnectOutcome::Connected => {
                format!("http connect {}", h.connect.words())
            }
            None => format!(
                "http no response: {}",
                h.failure.as_deref().unwrap_or("unknown")
            ),
        },
        Outcome::Quic(q) => match q.failure {
            None => format!(
                "quic handshake{}{}",
                in_ms(q.handshake_ns),
                q.alpn
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            ),
            Some(QuicFailure::UdpBlocked) => "quic failed: UDP blocked".into(),
            Some(QuicFailure::Handshake) => "quic failed: handshake".into(),
            Some(QuicFailure::Certificate) => "quic failed: certificate".into(),
        },
        Outcome::Pmtu(p) => {
            let mtu = match p.path_mtu {
                0 => "pmtu unknown".to_owned(),
                mtu => format!("pmtu {mtu}"),
            };
            match (p.black_hole, p.black_hole_hop) {
                (true, Some(hop)) => format!("{mtu} (black hole at hop {hop})"),
                (true, None) => format!("{mtu} (black hole)"),
                (false, _) => mtu,
            }
        }
        Outcome::ExtHeaders(e) => {
            let each: Vec<String> = e
                .outcomes
                .iter()
                .map(|o| {
                    let fate = match (o.survived, o.dropped_at_hop) {
                        (true, _) => "ok".to_owned(),
                        (false, Some(hop)) => format!("dropped at hop {hop}"),
                        (false, None) => "dropped".to_owned(),
                    };
                    format!("{} {fate}", o.header.name())
                })
                .collect();
            format!("ext headers: {}", each.join(", "))
        }
        Outcome::DualStack(d) => {
            let leg = |leg: &DualLeg| {
                if leg.outcome.reached_destination() {
                    "ok"
                } else {
                    "failed"
                }
            };
            let choice = match d.happy_eyeballs_choice {
                Some(Family::V6) => "v6",
                Some(Family::V4) => "v4",
                None => "none",
            };
            format!(
                "dual-stack v6 {}, v4 {}, Happy Eyeballs picks {choice}",
                leg(&d.v6),
                leg(&d.v4)
            )
        }
    }
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

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

/// Vendored files for the map pages: name under `/assets/`, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "countries-110m.json",
        "application/json",
        include_bytes!("../assets/countries-110m.json"),
    ),
    (
        "iso3166.json",
        "application/json",
        include_bytes!("../assets/iso3166.json"),
    ),
    (
        "topojson-client.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/topojson-client.min.js"),
    ),
    (
        "maps-common.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/maps-common.js"),
    ),
];

/// Assets change only with the binary; a day of caching spares the atlas on every page view.
const ASSET_CACHE: &str = "public, max-age=86400";

/// The map pages may load scripts, data and styles from this collector only.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
form-action 'none'";

async fn asset(Path(name): Path<String>) -> Response {
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

fn page(html: &'static str) -> Response {
    (
        [(axum::http::header::CONTENT_SECURITY_POLICY, PAGE_CSP)],
        Html(html),
    )
        .into_response()
}

/// The world map of IPv6 by country.
async fn map_page() -> Response {
    page(include_str!("map.html"))
}

/// One country's page; the page itself fetches `/api/v1/maps/countries/{CC}`. A code in
/// lower or mixed case is redirected to its upper-case form; anything else that is not two
/// letters is refused with a plain-text message.
async fn country_page(Path(country): Path<String>) -> Response {
    match country.parse::<sixmap_shared::prefixes::CountryCode>() {
        Ok(_) => page(include_str!("country.html")),
        Err(_) if country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()) => {
            axum::response::Redirect::permanent(&format!("/map/{}", country.to_ascii_uppercase()))
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

#[cfg(test)]
mod summarize_tests {
    use super::summarize_outcome;
    use sixmap_shared::measurement::*;

    fn hop(hop_limit: u8) -> TracerouteHop {
        TracerouteHop {
            hop_limit,
            replies: vec![None],
        }
    }

    #[test]
    fn each_kind_gets_its_own_line() {
        let trace = Outcome::Traceroute(TracerouteResult {
            protocol: TraceProtocol::Udp,
            flow_label: 0,
            hops: (1..=8).map(hop).collect(),
            reached_destination: true,
            stop: TraceStop::Reached,
            packets_sent: 24,
        });
        assert_eq!(summarize_outcome(&trace), "traceroute udp 8 hops, reached");

        let dns = Outcome::Dns(DnsResult {
            query_name: "example.org".into(),
            query_type: 28,
            transport_used: DnsTransport::Udp,
            rtt_ns: Some(3_100_000),
            response: Some(DnsResponse {
                rcode: 0,
                flags: 0x8180,
                answers: vec![DnsRecord {
                    name: "example.org".into(),
                    record_type: 28,
                    ttl: 60,
                    data: "2001:db8::1".into(),
                }],
            }),
            failure: None,
        });
        assert_eq!(summarize_outcome(&dns), "dns AAAA NOERROR 1 answer 3.1 ms");

        let tcp = Outcome::Tcp(TcpResult {
            port: 443,
            outcome: ConnectOutcome::Connected,
            connect_ns: Some(1_200_000),
            icmp_error: None,
        });
        assert_eq!(summarize_outcome(&tcp), "tcp 443 connected 1.2 ms");

        let http = Outcome::Http(HttpResult {
            connect: ConnectOutcome::Connected,
            status: Some(200),
            http_version: Some("HTTP/1.1".into()),
            dns_ns: None,
            connect_ns: Some(1_000_000),
            tls_ns: None,
            first_byte_ns: Some(40_000_000),
            total_ns: 45_000_000,
            body_bytes: 10,
            body_truncated: false,
            failure: None,
        });
        assert_eq!(summarize_outcome(&http), "http 200 in 45 ms");

        let pmtu = Outcome::Pmtu(PmtuResult {
            path_mtu: 1280,
            black_hole: true,
            black_hole_hop: Some(3),
            black_hole_from: None,
            too_big: vec![],
            packets_sent: 12,
        });
        assert_eq!(summarize_outcome(&pmtu), "pmtu 1280 (black hole at hop 3)");

        let quic = Outcome::Quic(QuicResult {
            handshake_ok: false,
            version: None,
            alpn: None,
            handshake_ns: None,
            failure: Some(QuicFailure::UdpBlocked),
            failure_detail: None,
        });
        assert_eq!(summarize_outcome(&quic), "quic failed: UDP blocked");

        let ext = Outcome::ExtHeaders(ExtHeaderResult {
            outcomes: vec![
                ExtHeaderOutcome {
                    header: ExtHeaderType::HopByHop,
                    survived: false,
                    dropped_at_hop: Some(2),
                    last_responder: None,
                    icmp_error: None,
                },
                ExtHeaderOutcome {
                    header: ExtHeaderType::Fragment,
                    survived: true,
                    dropped_at_hop: None,
                    last_responder: None,
                    icmp_error: None,
                },
            ],
            packets_sent: 20,
        });
        assert_eq!(
            summarize_outcome(&ext),
            "ext headers: hbh dropped at hop 2, frag ok"
        );

        let leg = |outcome| {
            Box::new(DualLeg {
                source: None,
                destination: None,
                duration_us: 1,
                outcome,
            })
        };
        let timed_out = Outcome::Tcp(TcpResult {
            port: 443,
            outcome: ConnectOutcome::Timeout,
            connect_ns: None,
            icmp_error: None,
        });
        let dual = Outcome::DualStack(DualStackResult {
            v6: leg(timed_out),
            v4: leg(tcp),
            happy_eyeballs_choice: Some(Family::V4),
            v6_hops: None,
            v4_hops: None,
        });
        assert_eq!(
            summarize_outcome(&dual),
            "dual-stack v6 failed, v4 ok, Happy Eyeballs picks v4"
        );
    }
}
