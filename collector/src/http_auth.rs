//! Who may use the HTTP API, and the record of every write.
//!
//! Callers identify with `Authorization: Bearer sxa_…` (API tokens: `sixmap-collector
//! api-token create`). One middleware ([`protect`]) resolves the token into a [`Caller`],
//! applies the access table ([`required`]: the only place that says which path needs which
//! role), and writes every non-GET request to the audit log with its outcome. Handlers that
//! need to know who calls (campaign ownership, per-campaigner budgets) take a [`Caller`]
//! argument, or `Option<Caller>` where anonymous access is allowed.
//!
//! Refusals are JSON: `{"error": "...", "status": 401|403}`. 401: no token, or one this
//! collector does not know (mistyped or revoked). 403: a valid token whose role may not do it.

use crate::auth;
use crate::pki::Pki;
use crate::store::{AuditEntry, Role, Store, StoreError};
use axum::extract::{FromRequestParts, OptionalFromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sixmap_shared::{ProbeId, UnixMicros};
use std::sync::Arc;

/// What may be read without a token (config keys `raw_data_public`, `maps_public`,
/// `metrics_public`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Raw results (also through the query API), probes (with their addresses), loss records.
    pub raw_data_public: bool,
    /// The maps, their API, their assets and the dashboard page.
    pub maps_public: bool,
    /// `/metrics` (counts and latencies, no personal data); otherwise admins only.
    pub metrics_public: bool,
}

/// The authenticated caller of an HTTP request: the API token's holder and role.
///
/// Take it as a handler argument to require a token (a request without one is refused with
/// 401 before the handler runs), or as `Option<Caller>` to serve anonymous callers too. Use
/// [`Caller::require`] for role checks beyond the access table, and [`Caller::identity`] as
/// the name to record (audit log, owner of a campaign, budget account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The API token's id (start of its hash): stable, not secret.
    pub token_id: String,
    /// The token's holder as given at creation.
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// `api:<name> (<role>)`, as the audit log shows callers.
    pub fn identity(&self) -> String {
        format!("api:{} ({})", self.name, self.role)
    }

    /// Refuses with 403 unless this caller's role allows `needed` (admins may do everything).
    pub fn require(&self, needed: Role) -> Result<(), AuthRejection> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(AuthRejection::forbidden(self, needed))
        }
    }
}

/// A refusal: 401 (who are you?) or 403 (not with this role), as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    pub status: StatusCode,
    pub message: String,
}

impl AuthRejection {
    fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    fn forbidden(caller: &Caller, needed: Role) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "API token {:?} has role {}; this needs role {needed} (or admin)",
                caller.name, caller.role
            ),
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({
            "error": self.message,
            "status": self.status.as_u16(),
        }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"sixmap\""),
            );
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            AuthRejection::unauthorized(
                "this needs an API token: send `Authorization: Bearer sxa_…`",
            )
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Public,
    /// Any valid API token.
    AnyToken,
    /// A token of this role, or an admin's.
    Role(Role),
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// **The access table.** Writes (anything but GET and HEAD) always need a token: campaign
/// writes a campaigner's, quick measurements (`/api/v1/measurements`, reads too) any role's,
/// all others an admin's. Reads: maps public by default, raw data
/// (results, probes with their addresses, losses) for researchers unless configured public,
/// the audit log, token listings and the admin view of probes (`/api/v1/admin/…`) for admins.
pub fn required(method: &Method, path: &str, access: Access) -> Need {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    // Quick measurements: any role may start one (researchers and regulators alike); each
    // caller sees only their own, budgets and rates are per caller (`campaign::quick`).
    if under("/api/v1/measurements") {
        return Need::AnyToken;
    }
    // The probe directory (`directory`): its list and page public, an owner's view and
    // listing changes for any token (each caller touches only their own probes).
    if path == "/directory" || (path == "/api/v1/directory" && is_read(method)) {
        return Need::Public;
    }
    if under("/api/v1/directory") {
        return Need::AnyToken;
    }
    if !is_read(method) {
        return if under("/api/v1/campaigns") {
            Need::Role(Role::Campaigner)
        } else {
            Need::Role(Role::Admin)
        };
    }
    if path == "/healthz" || path == "/api/v1/openapi.json" {
        return Need::Public;
    }
    // Reports their campaign's owner or an admin published: public by that act, whatever
    // `maps_public` says; unpublished ids are 404 there (`campaign::http::public_router`).
    // The key that signs them and the dumps is public as they are.
    if under("/reports") || path == crate::export::sign::KEY_URL {
        return Need::Public;
    }
    if path == "/metrics" {
        return if access.metrics_public {
            Need::Public
        } else {
            Need::Role(Role::Admin)
        };
    }
    if under("/api/v1/audit")
        || under("/api/v1/alert-rules")
        || under("/api/v1/enrollment-tokens")
        || under("/api/v1/api-tokens")
        || under("/api/v1/admin")
    {
        return Need::Role(Role::Admin);
    }
    let map = path == "/" || under("/map") || under("/api/v1/maps") || under("/assets");
    if map {
        return if access.maps_public {
            Need::Public
        } else {
            Need::AnyToken
        };
    }
    // Alerts name probes and their outages: researchers and admins, never public.
    if under("/api/v1/alerts") {
        return Need::Role(Role::Researcher);
    }
    // Campaign progress: campaigners follow theirs, researchers read results.
    if under("/api/v1/campaigns") {
        return Need::AnyToken;
    }
    // Raw data, and whatever else is added later until the table names it.
    if access.raw_data_public
        && (under("/api/v1/results")
            || under("/api/v1/query")
            || under("/api/v1/probes")
            || under("/api/v1/losses")
            || under("/api/v1/export"))
    {
        Need::Public
    } else {
        Need::Role(Role::Researcher)
    }
}

#[derive(Debug, Clone)]
struct AuthState {
    store: Arc<dyn Store>,
    pki: Arc<Pki>,
    access: Access,
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    crate::store::run_blocking(work).await.map_err(|e| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "error": e.to_string(), "status": 503 })),
        )
            .into_response()
    })
}

/// The caller named by the request's bearer token: `Ok(None)` without one, 401 for a token
/// that is not (or no longer) valid.
async fn caller(state: &AuthState, parts: &Parts) -> Result<Option<Caller>, Response> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // Which one would count? Proxies and servers disagree: refuse rather than guess.
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the `Authorization` header is given more than once; send one".into(),
        ));
    }
    let bearer = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            AuthRejection::unauthorized("Authorization must be `Bearer sxa_…`").into_response()
        })?
        .to_owned();
    let store = state.store.clone();
    let token = blocking(move || auth::api_token(&*store, &bearer)).await?;
    match token {
        Some(t) => Ok(Some(Caller {
            token_id: t.id,
            name: t.name,
            role: t.role,
        })),
        None => Err(AuthRejection::unauthorized(
            "API token not recognised: mistyped, revoked, or from another collector",
        )
        .into_response()),
    }
}

fn check(need: Need, caller: Option<&Caller>) -> Result<(), AuthRejection> {
    match (need, caller) {
        (Need::Public, _) => Ok(()),
        (_, None) => Err(AuthRejection::unauthorized(
            "this needs an API token: send `Authorization: Bearer sxa_…`",
        )),
        (Need::AnyToken, Some(_)) => Ok(()),
        (Need::Role(role), Some(caller)) => caller.require(role),
    }
}

/// Gives the router's own 404 and 405 answers (no route, no such method) the API's JSON
/// error body; answers that already have a body type are left alone.
async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(200).collect();
    let response = next.run(request).await;
    let status = response.status();
    if (status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED)
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let message = if status == StatusCode::NOT_FOUND {
            format!("no such resource: {path:?} (see /api/v1/openapi.json)")
        } else {
            format!("{method} is not allowed on {path:?}")
        };
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = error(status, message);
        let (new_parts, body) = body.into_parts();
        parts.headers.extend(new_parts.headers);
        return Response::from_parts(parts, body);
    }
    response
}

async fn middleware(State(state): State<AuthState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let write = !is_read(&method);
    let resolved = caller(&state, &parts).await;
    let identity = match &resolved {
        Ok(Some(c)) => c.identity(),
        _ => "anonymous".to_owned(),
    };
    let response = match resolved {
        Err(response) => response,
        Ok(caller) => match check(required(&method, &path, state.access), caller.as_ref()) {
            Err(rejection) => rejection.into_response(),
            Ok(()) => {
                if let Some(caller) = caller {
                    parts.extensions.insert(caller);
                }
                next.run(Request::from_parts(parts, body)).await
            }
        },
    };
    if write {
        let status = response.status();
        let outcome = if status.is_success() {
            format!("ok ({})", status.as_u16())
        } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            format!("denied ({})", status.as_u16())
        } else {
            format!("failed ({})", status.as_u16())
        };
        let store = state.store.clone();
        let action = format!("{method} {path}");
        let _ = blocking(move || {
            auth::audit(&*store, &identity, &action, &path, &outcome);
            Ok(())
        })
        .await;
    }
    response
}

/// Adds the admin endpoints to `router` and puts every route behind the access table and the
/// audit log.
pub fn protect(router: Router, store: Arc<dyn Store>, pki: Arc<Pki>, access: Access) -> Router {
    let state = AuthState { store, pki, access };
    router
        .merge(
            Router::new()
                .route("/api/v1/audit", get(audit_log))
                .route(
                    "/api/v1/enrollment-tokens",
                    get(list_enrollment_tokens).post(create_enrollment_token),
                )
                .route(
                    "/api/v1/enrollment-tokens/{id}/revoke",
                    post(revoke_enrollment_token),
                )
                .route(
                    "/api/v1/api-tokens",
                    get(list_api_tokens).post(create_api_token),
                )
                .route("/api/v1/api-tokens/{id}/revoke", post(revoke_api_token))
                .route("/api/v1/admin/probes", get(list_probes))
                .route("/api/v1/probes/{id}/revoke", post(revoke_probe))
                .with_state(state.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(state, middleware))
        .layer(axum::middleware::from_fn(json_errors))
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message, "status": status.as_u16() })),
    )
        .into_response()
}

fn auth_error(e: auth::AuthError) -> Response {
    match e {
        auth::AuthError::NotFound { .. } => error(StatusCode::NOT_FOUND, e.to_string()),
        auth::AuthError::Invalid(_) => error(StatusCode::BAD_REQUEST, e.to_string()),
        _ => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    limit: Option<usize>,
}

/// The audit log, newest first (admins).
async fn audit_log(
    State(state): State<AuthState>,
    caller: Caller,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Response> {
    caller
        .require(Role::Admin)
        .map_err(IntoResponse::into_response)?;
    let Query(params) = params.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = params.limit.unwrap_or(100).clamp(1, 10_000);
    let store = state.store.clone();
    let entries: Vec<AuditEntry> = blocking(move || store.audit(limit)).await?;
    Ok(Json(
        serde_json::json!({ "count": entries.len(), "entries": entries }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEnrollmentToken {
    owner: String,
    /// e.g. "7d"; default 7 days.
    expires_in: Option<String>,
}

/// Creates an enrollment token (admins); the token text is in the answer only.
async fn create_enrollment_token(
    State(state): State<AuthState>,
    caller: Caller,
    body: Result<Json<NewEnrollmentToken>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Response> {
    caller
        .require(Role::Admin)
        .map_err(IntoResponse::into_response)?;
    let Json(body) = body.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let lifetime = match &body.expires_in {
        Some(text) => auth::parse_duration(text)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("`expires_in`: {e}")))?,
        None => auth::DEFAULT_TOKEN_LIFETIME,
    };
    let (store, pki) = (state.store.clone(), state.pki.clone());
    let created_by = caller.identity();
    let made = crate::store::run_blocking(move || {
        Ok(auth::create_enrollment_token(
            &*store,
            pki.fingerprint(),
            &body.owner,
            lifetime,
            &created_by,
            UnixMicros::now(),
        ))
    })
    .await
    .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let (token, record) = made.map_err(auth_error)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "record": record })),
    )
        .into_response())
}

/// `?limit=N&after=ID` of the listings: a page of at most [`auth::MAX_LIST_LIMIT`] in id order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<usize>,
    after: Option<String>,
}

/// Checks the caller is an admin and reads the listing's parameters (a refusal answers as
/// JSON `{"error", "status"}` like every other).
fn list_request(
    caller: &Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<auth::PageRequest, AuthRejection> {
    caller.require(Role::Admin)?;
    let Query(params) = params.map_err(|e| AuthRejection {
        status: StatusCode::BAD_REQUEST,
        message: e.body_text(),
    })?;
    Ok(auth::PageRequest {
        after: params.after,
        limit: params.limit,
    })
}

/// Runs an admin listing on the readers' pool (it reads every record of its kind), and
/// answers `{<name>: [...], "next": ID or null}`.
async fn listing<T: serde::Serialize + Send + 'static>(
    name: &'static str,
    store: Arc<dyn Store>,
    request: auth::PageRequest,
    list: fn(&dyn Store, &auth::PageRequest) -> Result<auth::Page<T>, auth::AuthError>,
) -> Result<Json<serde_json::Value>, Response> {
    let page = crate::limits::readers::read_blocking(move || Ok(list(&*store, &request)))
        .await
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
        .map_err(auth_error)?;
    let mut body = serde_json::Map::new();
    body.insert(
        name.into(),
        serde_json::to_value(page.items)
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
    );
    body.insert("next".into(), page.next.into());
    Ok(Json(serde_json::Value::Object(body)))
}

/// Enrollment tokens without their secrets (admins), one page.
async fn list_enrollment_tokens(
    State(state): State<AuthState>,
    caller: Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Response> {
    let request = list_request(&caller, params).map_err(IntoResponse::into_response)?;
    listing("tokens", state.store, request, auth::list_enrollment_tokens).await
}

/// API tokens without their secrets (admins), one page.
async fn list_api_tokens(
    State(state): State<AuthState>,
    caller: Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Response> {
    let request = list_request(&caller, params).map_err(IntoResponse::into_response)?;
    listing("api_tokens", state.store, request, auth::list_api_tokens).await
}

/// Enrolled probes as admins see them (owner, enrollment address, revocation), one page.
async fn list_probes(
    State(state): State<AuthState>,
    caller: Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Response> {
    let request = list_request(&caller, params).map_err(IntoResponse::into_response)?;
    listing("probes", state.store, request, auth::list_probes).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiToken {
    role: Role,
    name: String,
}

/// Creates an API token (admins); its text is in this answer only.
async fn create_api_token(
    State(state): State<AuthState>,
    caller: Caller,
    body: Result<Json<NewApiToken>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Response> {
    caller
        .require(Role::Admin)
        .map_err(IntoResponse::into_response)?;
    let Json(body) = body.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
    let store = state.store.clone();
    let (token, record) = crate::store::run_blocking(move || {
        Ok(auth::create_api_token(
            &*store,
            body.role,
            &body.name,
            UnixMicros::now(),
        ))
    })
    .await
    .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
    .map_err(auth_error)?;
    tracing::info!(token = %record.id, role = %record.role, by = %caller.identity(), "API token created");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "record": record })),
    )
        .into_response())
}

/// Revokes an API token (admins): the next request with it is refused with 401.
async fn revoke_api_token(
    State(state): State<AuthState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Response> {
    caller
        .require(Role::Admin)
        .map_err(IntoResponse::into_response)?;
    let store = state.store.clone();
    let record = crate::store::run_blocking(move || {
        Ok(auth::revoke_api_token(&*store, &id, UnixMicros::now()))
    })
    .await
    .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
    .map_err(auth_error)?;
    tracing::warn!(token = %record.id, by = %caller.identity(), "API token revoked");
    Ok(Json(serde_json::json!({ "record": record })))
}

/// Revokes an enrollment token (admins): no probe can enroll with it from then on.
async fn revoke_enrollment_token(
    State(state): State<AuthState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Response> {
    caller
        .require(Role::Admin)
        .map_err(IntoResponse::into_response)?;
    let store = state.store.clone();
    let record = crate::store::run_blocking(move || {
        Ok(auth::revoke_enrollment_token(
            &*store,
            &id,
            UnixMicros::now(),
        ))
    })
    .await
    .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
    .map_err(auth_error)?;
    tracing::warn!(token = %record.id, owner = %record.owner, by = %caller.identity(), "enrollment token revoked");
    Ok(Json(serde_json::json!({ "record": record.for_listing() })))
}

/// Revokes a probe (admins): refused at its next hello, its session ends at its next
/// heartbeat.
async fn revoke_probe(
    State(state): State<AuthState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Response> {
    caller
        .require(Role::Admin)
        .map_err(IntoResponse::into_response)?;
    let probe: ProbeId = id.parse().map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("probe id in the path: {e}"),
        )
    })?;
    let store = state.store.clone();
    let revoked = crate::store::run_blocking(move || {
        Ok(auth::revoke_probe(&*store, &probe, UnixMicros::now()))
    })
    .await
    .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
    .map_err(auth_error)?;
    tracing::warn!(probe = %revoked.id, by = %caller.identity(), "probe revoked");
    Ok(Json(serde_json::json!({
        "probe": revoked.id, "revoked_at": revoked.revoked_at,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_table() {
        let private = Access {
            raw_data_public: false,
            maps_public: true,
            metrics_public: true,
        };
        let get = Method::GET;
        assert_eq!(required(&get, "/map", private), Need::Public);
        assert_eq!(required(&get, "/map/DE", private), Need::Public);
        assert_eq!(
            required(&get, "/api/v1/maps/countries", private),
            Need::Public
        );
        assert_eq!(
            required(&get, "/assets/maps-common.js", private),
            Need::Public
        );
        // The key that verifies dumps and reports; nothing else under its directory.
        assert_eq!(required(&get, "/open-data/key.pem", private), Need::Public);
        assert_eq!(
            required(&get, "/open-data/other", private),
            Need::Role(Role::Researcher)
        );
        assert_eq!(
            required(&get, "/api/v1/results", private),
            Need::Role(Role::Researcher)
        );
        assert_eq!(
            required(&get, "/api/v1/probes/ab/tags", private),
            Need::Role(Role::Researcher)
        );
        assert_eq!(
            required(&get, "/api/v1/audit", private),
            Need::Role(Role::Admin)
        );
        // A path that only starts like a public one is not public.
        assert_eq!(
            required(&get, "/mapx", private),
            Need::Role(Role::Researcher)
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/campaigns", private),
            Need::Role(Role::Campaigner)
        );
        // Quick measurements: any token, never anonymous, not even when raw data is public.
        assert_eq!(
            required(&Method::POST, "/api/v1/measurements", private),
            Need::AnyToken
        );
        assert_eq!(
            required(&get, "/api/v1/measurements/3/results", private),
            Need::AnyToken
        );
        assert_eq!(
            required(&Method::POST, "/api/v1/measurementsx", private),
            Need::Role(Role::Admin)
        );
        assert_eq!(
            required(&Method::DELETE, "/api/v1/probes/ab/tags", private),
            Need::Role(Role::Admin)
        );
        assert_eq!(
            required(&Method::POST, "/map", private),
            Need::Role(Role::Admin)
        );
        let open = Access {
            raw_data_public: true,
            maps_public: false,
            metrics_public: false,
        };
        assert_eq!(required(&get, "/api/v1/results", open), Need::Public);
        assert_eq!(
            required(&get, "/api/v1/query/results", private),
            Need::Role(Role::Researcher)
        );
        assert_eq!(
            required(&get, "/api/v1/query/aggregates", open),
            Need::Public
        );
        assert_eq!(
            required(&get, "/api/v1/openapi.json", private),
            Need::Public
        );
        assert_eq!(required(&get, "/map", open), Need::AnyToken);
        // Admin listings stay admin's even where raw data is public.
        for path in [
            "/api/v1/api-tokens",
            "/api/v1/enrollment-tokens",
            "/api/v1/admin/probes",
            "/api/v1/alert-rules",
        ] {
            assert_eq!(
                required(&get, path, open),
                Need::Role(Role::Admin),
                "{path}"
            );
        }
        assert_eq!(
            required(&Method::POST, "/api/v1/api-tokens/ab/revoke", open),
            Need::Role(Role::Admin)
        );
        assert_eq!(required(&get, "/healthz", open), Need::Public);
        assert_eq!(required(&get, "/metrics", private), Need::Public);
        assert_eq!(required(&get, "/metrics", open), Need::Role(Role::Admin));
        assert_eq!(
            required(&get, "/metrics/x", private),
            Need::Role(Role::Researcher)
        );
        assert!(Role::Admin.allows(Role::Campaigner));
        assert!(!Role::Researcher.allows(Role::Campaigner));
    }
}
