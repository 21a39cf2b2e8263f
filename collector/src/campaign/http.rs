//! HTTP JSON API of campaigns under `/api/v1/campaigns` (what the CLI uses).
//!
//! - `GET /api/v1/campaigns`: summaries.
//! - `POST /api/v1/campaigns` with `{"format": "toml"|"json", "spec": "<text>"}` (or `"spec"`
//!   as a JSON object): 201 with the campaign; 400 naming the spec field; 403 over budget. The
//!   owner is the calling API token's holder (an `owner` in the body is ignored).
//! - `POST /api/v1/campaigns/apply`, the body of a create: creates the campaign (201) or
//!   brings the caller's campaign of the spec's name in line with it (200): `{"applied":
//!   "created"|"updated"|"unchanged", "campaign": {...}, "changed": [keys]}`; 409 naming the
//!   keys a running campaign cannot change, or when it has ended (`super::apply`).
//! - `GET /api/v1/campaigns/{id}`: the campaign and its progress.
//! - `POST /api/v1/campaigns/{id}/cancel` with optional `{"reason": "..."}`.
//!
//! Writes to a campaign (cancel, declared figures) are for its owner (the name of the API
//! token that created it) and admins; others get 403.
//! - `GET /api/v1/campaigns/{id}/report?format=json|csv|html|pdf` (PDF: the HTML printed by
//!   headless Chromium, `pdf`; 503 when this collector has none or is printing another).
//! - `POST /api/v1/campaigns/{id}/declared` with a CSV body (`asn,metric,value,as_of,source`).
//! - `POST /api/v1/campaigns/{id}/publish`: the owner or an admin makes its report public
//!   (audited like every write, `http_auth`).
//!
//! Public, no token ([`public_router`]): `GET /reports/{id}` (HTML), `/reports/{id}.json`,
//! `.csv`, `.pdf` for published campaigns, each signed (`Sixmap-Signature`, `export::sign`);
//! any other id is 404, whether it exists or not, so
//! the route reveals nothing about unpublished campaigns. Anonymous like the maps: the
//! anonymous share of requests, the long-response budget per source and the public cache
//! (one computation per moment for all callers) bound what clients can make it cost.
//!
//! Store work runs on the readers' bounded pool (`limits::readers`); reports are long
//! responses and hold a permit of the shared budget (`limits::streams`) until sent.

use super::{CampaignError, Campaigns, report};
use crate::i18n::Negotiated;
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
        .route("/api/v1/campaigns/apply", post(apply))
        .route("/api/v1/campaigns/{id}", get(show))
        .route("/api/v1/campaigns/{id}/cancel", post(cancel))
        .route("/api/v1/campaigns/{id}/report", get(report_of))
        .route("/api/v1/campaigns/{id}/declared", post(declared))
        .route("/api/v1/campaigns/{id}/publish", post(publish))
        .with_state(campaigns)
}

/// The published reports, public (`http_auth::required`: `/reports` needs no token).
pub fn public_router(campaigns: Arc<Campaigns>) -> Router {
    Router::new()
        .route("/reports/{file}", get(public_report))
        .with_state(campaigns)
}

/// HTTP status of a campaign error.
pub fn status_of(e: &CampaignError) -> StatusCode {
    match e {
        CampaignError::Spec(_) | CampaignError::Declared(_) => StatusCode::BAD_REQUEST,
        CampaignError::NotFound(_) => StatusCode::NOT_FOUND,
        CampaignError::OverBudget(_) | CampaignError::NotOwner { .. } => StatusCode::FORBIDDEN,
        CampaignError::Ended(..) | CampaignError::Unchangeable(_) => StatusCode::CONFLICT,
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

async fn list(
    State(c): State<Arc<Campaigns>>,
    caller: crate::http_auth::Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let summaries = blocking(move || c.summaries(writer(&caller))).await?;
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

/// `POST /api/v1/campaigns/apply`: create or update by name (`super::apply`).
async fn apply(
    State(c): State<Arc<Campaigns>>,
    caller: crate::http_auth::Caller,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| bad("body", e.body_text()))?;
    let (format, text) = spec_text(body)?;
    let owner = caller.name;
    let applied = blocking(move || c.apply(&owner, &format, &text, UnixMicros::now())).await?;
    let status = match applied {
        super::apply::Applied::Created { .. } => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(applied)).into_response())
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
    caller: crate::http_auth::Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(
        blocking(move || c.show_for(id, writer(&caller), UnixMicros::now())).await?,
    ))
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
    /// Read by [`Negotiated`]; named here so `deny_unknown_fields` lets it through.
    #[allow(dead_code)]
    lang: Option<String>,
}

async fn report_of(
    State(c): State<Arc<Campaigns>>,
    caller: crate::http_auth::Caller,
    Path(id): Path<String>,
    params: Result<Query<ReportParams>, axum::extract::rejection::QueryRejection>,
    lang: Negotiated,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let Query(params) = params.map_err(|e| bad("query", e.body_text()))?;
    let format = params.format.unwrap_or_else(|| "json".into());
    if !FORMATS.contains(&format.as_str()) {
        return Err(bad(
            "format",
            format!("{format:?} is not json, csv, html or pdf"),
        ));
    }
    let maker = c.pdf().clone();
    let report = blocking(move || c.report_for(id, writer(&caller), UnixMicros::now())).await?;
    Ok(render(&report, &format, &maker, &lang).await)
}

const FORMATS: [&str; 4] = ["json", "csv", "html", "pdf"];

/// `report` in `format` (one of [`FORMATS`]); HTML and PDF in `lang`, JSON and CSV (data
/// for programs) in English whatever the language.
async fn render(
    report: &report::Report,
    format: &str,
    maker: &super::pdf::PdfMaker,
    lang: &Negotiated,
) -> Response {
    let mut response = render_in(report, format, maker, lang.language()).await;
    if matches!(format, "html" | "pdf") {
        response.headers_mut().extend(lang.headers());
    }
    response
}

async fn render_in(
    report: &report::Report,
    format: &str,
    maker: &super::pdf::PdfMaker,
    lang: &crate::i18n::Language,
) -> Response {
    match format {
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report::to_csv(report),
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report::to_html_in(report, lang),
        )
            .into_response(),
        "pdf" => match maker.render(&report::to_html_in(report, lang)).await {
            Ok(bytes) => (
                [
                    (header::CONTENT_TYPE, "application/pdf".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"campaign-{}.pdf\"", report.campaign.id),
                    ),
                ],
                bytes,
            )
                .into_response(),
            Err(e) => {
                let status = match e {
                    super::pdf::PdfError::Unavailable
                    | super::pdf::PdfError::Busy
                    | super::pdf::PdfError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
                    super::pdf::PdfError::Failed(_) | super::pdf::PdfError::Io(_) => {
                        tracing::warn!(error = %e, campaign = report.campaign.id, "PDF report failed");
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                };
                let mut response = (
                    status,
                    Json(serde_json::json!({ "error": e.to_string(), "status": status.as_u16() })),
                )
                    .into_response();
                if matches!(e, super::pdf::PdfError::Busy) {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                }
                response
            }
        },
        _ => Json(report).into_response(),
    }
}

async fn publish(
    State(c): State<Arc<Campaigns>>,
    caller: crate::http_auth::Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let record = blocking(move || c.publish(id, writer(&caller), UnixMicros::now())).await?;
    Ok(Json(serde_json::json!({
        "campaign": record.id,
        "published_at": record.published_at,
        "url": format!("/reports/{}", record.id),
    })))
}

/// The same 404 for an unknown id, an unpublished campaign and a name that is no report.
fn not_published() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": "no published report here", "status": 404 })),
    )
        .into_response()
}

/// `GET /reports/{id}[.json|.csv|.html|.pdf][?lang=]`: a published campaign's report, no
/// token; HTML and PDF in the reader's language.
async fn public_report(
    State(c): State<Arc<Campaigns>>,
    Path(file): Path<String>,
    lang: Negotiated,
) -> Response {
    let (id, format) = match file.split_once('.') {
        None => (file.as_str(), "html"),
        Some((id, ext)) if FORMATS.contains(&ext) => (id, ext),
        Some(_) => return not_published(),
    };
    // Digits only: `+7` or `07` would name the same campaign under another URL.
    let Some(id) = (!id.is_empty()
        && id.len() <= 20
        && id.bytes().all(|b| b.is_ascii_digit())
        && !id.starts_with('0'))
    .then(|| id.parse::<u64>().ok())
    .flatten() else {
        return not_published();
    };
    let maker = c.pdf().clone();
    let signer = c.signer().cloned();
    match blocking(move || c.public_report(id, UnixMicros::now())).await {
        // Signed as served, whatever the format (`export::sign`); errors are not signed.
        Ok(report) => match (render(&report, format, &maker, &lang).await, signer) {
            (response, Some(key)) if response.status().is_success() => {
                key.sign_response(response).await
            }
            (response, _) => response,
        },
        Err(ApiError(CampaignError::NotFound(_))) => not_published(),
        Err(e) => e.into_response(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::pdf::PdfMaker;
    use crate::store::{ProbeRecord, SledStore, Store};
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn probe() -> ProbeRecord {
        ProbeRecord {
            last_seen: Some(UnixMicros::now()),
            ..ProbeRecord::new("0000000000000001".parse().unwrap(), "p1", UnixMicros::now())
        }
    }

    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }

    /// Over the real HTTP server: a client that asks for a published report's PDF and hangs
    /// up stops the job, its browser and the browser's children.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_hangs_up_stops_its_pdf() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
        store.create_probe(&probe()).unwrap();
        // A browser that never finishes, and says who it and its child are.
        let pids = dir.path().join("pids");
        let fake = dir.path().join("fake-chromium");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nsleep 600 &\necho $$ $! > {}\nwait\n",
                pids.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let campaigns = Arc::new(
            Campaigns::new(store, false, None)
                .with_pdf(PdfMaker::with_program(Some(fake), Duration::from_secs(600))),
        );
        let spec = "name = \"t\"\ntargets = [\"example.org\"]\n\
            [[measurements]]\nkind = \"ping\"\ntimeout_ms = 5000\n";
        let record = campaigns
            .create("reg", "toml", spec, UnixMicros::now())
            .unwrap();
        let owner = super::super::Writer {
            name: "reg",
            admin: false,
        };
        campaigns
            .publish(record.id, owner, UnixMicros::now())
            .unwrap();
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::limits::serve_http(
            listener,
            public_router(campaigns),
            crate::limits::Limits::default(),
        ));
        let id = record.id;
        let pid_file = pids.clone();
        let started = tokio::task::spawn_blocking(move || {
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            write!(client, "GET /reports/{id}.pdf HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            for _ in 0..500 {
                if std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n')) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Nothing came back while the browser runs; the client gives up.
            client
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut byte = [0u8; 1];
            assert!(client.read(&mut byte).is_err(), "no answer yet");
            drop(client);
        });
        started.await.unwrap();
        let text = std::fs::read_to_string(&pids).unwrap();
        let pids: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(pids.len(), 2, "{text}");
        let mut gone = false;
        for _ in 0..300 {
            if pids.iter().all(|p| !alive(p)) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gone, "{pids:?} still running after the client hung up");
    }
}
