//! The gRPC `CampaignService`, served next to `ProbeControl`; documents are the HTTP API's
//! JSON bodies.
//!
//! Every store access (the token check, the campaign work, the audit entry) runs on the
//! process's bounded reader pool (`limits::readers`), like the HTTP API's campaign routes:
//! many calls at once wait for a reader thread instead of each taking one of tokio's blocking
//! threads, which ingest's batch writes and flushes need (issue #19). A call whose client goes
//! away stops its report's scan. Reports also take a place in the long-response budget
//! (`limits::streams`), as they do over HTTP.

use super::http::status_of;
use super::{CampaignError, Campaigns, report};
use crate::auth;
use crate::limits::readers::Readers;
use crate::limits::streams::Streams;
use crate::store::{ApiTokenRecord, Role, Store, StoreError};
use axum::http::StatusCode;
use sixmap_proto::v1;
use sixmap_proto::v1::campaign_service_server::CampaignService;
use sixmap_shared::UnixMicros;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The gRPC face of campaigns. Callers authenticate like on the HTTP API, with an API token in
/// the `authorization` metadata (`Bearer sxa_…`): writes need a campaigner (or admin), reads
/// any valid token. Writes are audited.
#[derive(Clone)]
pub struct CampaignGrpc {
    campaigns: Arc<Campaigns>,
    store: Arc<dyn Store>,
    readers: Readers,
    streams: Streams,
}

impl std::fmt::Debug for CampaignGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignGrpc").finish_non_exhaustive()
    }
}

impl CampaignGrpc {
    pub fn new(campaigns: Arc<Campaigns>, store: Arc<dyn Store>) -> Self {
        let limits = crate::limits::Limits::default();
        Self {
            campaigns,
            store,
            readers: Readers::new(limits.reader_threads),
            streams: Streams::new(&limits),
        }
    }

    /// Uses the process's reader pool and long-response budget, shared with the HTTP API and
    /// the query service.
    pub fn with_limits(mut self, shared: &crate::limits::Shared) -> Self {
        self.readers = shared.readers.clone();
        self.streams = shared.streams.clone();
        self
    }

    /// Runs campaign store work on a reader thread; if the call goes away first, its scan is
    /// asked to stop.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, CampaignError> + Send + 'static,
    ) -> Result<T, Status> {
        self.readers
            .run(move || Ok(work()))
            .await
            .map_err(unavailable)?
            .map_err(status)
    }

    /// The caller's token, if it may do what needs `needed` (`None`: any valid token).
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        needed: Option<Role>,
    ) -> Result<ApiTokenRecord, Status> {
        auth::single_authorization(request.metadata())?;
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(
                    "this needs an API token: send `authorization: Bearer sxa_…` metadata",
                )
            })?;
        let (store, bearer) = (self.store.clone(), bearer.trim().to_owned());
        let token = self
            .readers
            .run(move || auth::api_token(&*store, &bearer))
            .await
            .map_err(unavailable)?
            .ok_or_else(|| Status::unauthenticated("unknown or revoked API token"))?;
        match needed {
            Some(role) if !token.role.allows(role) => Err(Status::permission_denied(format!(
                "this needs a {role} token; yours is {}",
                token.role
            ))),
            _ => Ok(token),
        }
    }

    /// Runs a write and writes its audit entry in the same reader job: a call dropped while
    /// it waits (client gone, request timeout) then leaves both undone or both done, never a
    /// write without its entry. `outcome` names the result for the log ("ok", "refused"...);
    /// a failure to write the entry is logged by `auth::audit`.
    async fn audited<T: Send + 'static>(
        &self,
        token: &ApiTokenRecord,
        action: &'static str,
        target: String,
        outcome: fn(&Result<T, CampaignError>) -> &'static str,
        work: impl FnOnce() -> Result<T, CampaignError> + Send + 'static,
    ) -> Result<T, Status> {
        let identity = format!("api:{} ({})", token.name, token.role);
        let store = self.store.clone();
        self.blocking(move || {
            let done = work();
            auth::audit(&*store, &identity, action, &target, outcome(&done));
            done
        })
        .await
    }
}

fn unavailable(e: StoreError) -> Status {
    Status::unavailable(e.to_string())
}

fn status(e: CampaignError) -> Status {
    let message = e.to_string();
    match status_of(&e) {
        StatusCode::BAD_REQUEST => Status::invalid_argument(message),
        StatusCode::NOT_FOUND => Status::not_found(message),
        StatusCode::FORBIDDEN => Status::permission_denied(message),
        StatusCode::CONFLICT => Status::failed_precondition(message),
        StatusCode::TOO_MANY_REQUESTS => Status::resource_exhausted(message),
        _ => Status::unavailable(message),
    }
}

fn document(value: &impl serde::Serialize) -> Result<Response<v1::CampaignDocument>, Status> {
    serde_json::to_string(value)
        .map(|json| Response::new(v1::CampaignDocument { json }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl CampaignService for CampaignGrpc {
    async fn create(
        &self,
        request: Request<v1::CreateCampaignRequest>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        let token = self.authorize(&request, Some(Role::Campaigner)).await?;
        let r = request.into_inner();
        let c = self.campaigns.clone();
        let format = if r.format.is_empty() {
            "toml".to_owned()
        } else {
            r.format
        };
        // The owner is the token's holder (budgets are per owner); the request's field is ignored.
        let owner = token.name.clone();
        let created = self
            .audited(
                &token,
                "grpc campaign create",
                "campaigns".into(),
                |done| if done.is_ok() { "ok" } else { "refused" },
                move || c.create(&owner, &format, &r.spec, UnixMicros::now()),
            )
            .await;
        document(&created?)
    }

    async fn list(
        &self,
        request: Request<v1::ListCampaignsRequest>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        self.authorize(&request, None).await?;
        let c = self.campaigns.clone();
        let summaries = self.blocking(move || c.summaries()).await?;
        document(&serde_json::json!({ "campaigns": summaries }))
    }

    async fn show(
        &self,
        request: Request<v1::CampaignRef>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        self.authorize(&request, None).await?;
        let id = request.into_inner().id;
        let c = self.campaigns.clone();
        document(&self.blocking(move || c.show(id, UnixMicros::now())).await?)
    }

    async fn cancel(
        &self,
        request: Request<v1::CancelCampaignRequest>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        let token = self.authorize(&request, Some(Role::Campaigner)).await?;
        let r = request.into_inner();
        let c = self.campaigns.clone();
        let id = r.id;
        let (name, admin) = (token.name.clone(), token.role == Role::Admin);
        let cancelled = self
            .audited(
                &token,
                "grpc campaign cancel",
                format!("campaign {id}"),
                |done| match done {
                    Ok(_) => "ok",
                    Err(CampaignError::NotOwner { .. }) => "denied",
                    Err(_) => "refused",
                },
                move || {
                    c.cancel(
                        r.id,
                        super::Writer { name: &name, admin },
                        &r.reason,
                        UnixMicros::now(),
                    )
                },
            )
            .await;
        document(&cancelled?)
    }

    async fn report(
        &self,
        request: Request<v1::ReportRequest>,
    ) -> Result<Response<v1::ReportDocument>, Status> {
        self.authorize(&request, None).await?;
        // A place in the long-response budget for the whole call, as over HTTP.
        let _long = self
            .streams
            .try_start(request.remote_addr().map(|a| a.ip()))
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        let r = request.into_inner();
        let c = self.campaigns.clone();
        let report = self
            .blocking(move || c.report(r.id, UnixMicros::now()))
            .await?;
        let (content_type, body) = match r.format.as_str() {
            "" | "json" => (
                "application/json",
                serde_json::to_string(&report).map_err(|e| Status::internal(e.to_string()))?,
            ),
            "csv" => ("text/csv; charset=utf-8", report::to_csv(&report)),
            "html" => ("text/html; charset=utf-8", report::to_html(&report)),
            other => {
                return Err(Status::invalid_argument(format!(
                    "`format`: {other:?} is not json, csv or html (PDF reports are served over HTTP: \
                     ?format=pdf)"
                )));
            }
        };
        Ok(Response::new(v1::ReportDocument {
            content_type: content_type.into(),
            body,
        }))
    }
}
