//! The gRPC `CampaignService`, served next to `ProbeControl`; documents are the HTTP API's
//! JSON bodies.

use super::http::status_of;
use super::{CampaignError, Campaigns, report};
use crate::auth;
use crate::store::{ApiTokenRecord, Role, Store};
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
}

impl std::fmt::Debug for CampaignGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignGrpc").finish_non_exhaustive()
    }
}

impl CampaignGrpc {
    pub fn new(campaigns: Arc<Campaigns>, store: Arc<dyn Store>) -> Self {
        Self { campaigns, store }
    }

    /// The caller's token, if it may do what needs `needed` (`None`: any valid token).
    fn authorize<T>(
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
        let token = auth::api_token(&*self.store, bearer.trim())
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(|| Status::unauthenticated("unknown or revoked API token"))?;
        match needed {
            Some(role) if !token.role.allows(role) => Err(Status::permission_denied(format!(
                "this needs a {role} token; yours is {}",
                token.role
            ))),
            _ => Ok(token),
        }
    }

    fn audit(&self, token: &ApiTokenRecord, action: &str, target: &str, outcome: &str) {
        let identity = format!("api:{} ({})", token.name, token.role);
        auth::audit(&*self.store, &identity, action, target, outcome);
    }
}

fn status(e: CampaignError) -> Status {
    let message = e.to_string();
    match status_of(&e) {
        StatusCode::BAD_REQUEST => Status::invalid_argument(message),
        StatusCode::NOT_FOUND => Status::not_found(message),
        StatusCode::FORBIDDEN => Status::permission_denied(message),
        StatusCode::CONFLICT => Status::failed_precondition(message),
        _ => Status::unavailable(message),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CampaignError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)
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
        let token = self.authorize(&request, Some(Role::Campaigner))?;
        let r = request.into_inner();
        let c = self.campaigns.clone();
        let format = if r.format.is_empty() {
            "toml".to_owned()
        } else {
            r.format
        };
        // The owner is the token's holder (budgets are per owner); the request's field is ignored.
        let owner = token.name.clone();
        let created = blocking(move || c.create(&owner, &format, &r.spec, UnixMicros::now())).await;
        let outcome = if created.is_ok() { "ok" } else { "refused" };
        self.audit(&token, "grpc campaign create", "campaigns", outcome);
        document(&created?)
    }

    async fn list(
        &self,
        request: Request<v1::ListCampaignsRequest>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        self.authorize(&request, None)?;
        let c = self.campaigns.clone();
        let summaries = blocking(move || c.summaries()).await?;
        document(&serde_json::json!({ "campaigns": summaries }))
    }

    async fn show(
        &self,
        request: Request<v1::CampaignRef>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        self.authorize(&request, None)?;
        let id = request.into_inner().id;
        let c = self.campaigns.clone();
        document(&blocking(move || c.show(id, UnixMicros::now())).await?)
    }

    async fn cancel(
        &self,
        request: Request<v1::CancelCampaignRequest>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        let token = self.authorize(&request, Some(Role::Campaigner))?;
        let r = request.into_inner();
        let c = self.campaigns.clone();
        let id = r.id;
        let (name, admin) = (token.name.clone(), token.role == Role::Admin);
        let cancelled = blocking(move || {
            c.cancel(
                r.id,
                super::Writer { name: &name, admin },
                &r.reason,
                UnixMicros::now(),
            )
        })
        .await;
        let outcome = match &cancelled {
            Ok(_) => "ok",
            Err(status) if status.code() == tonic::Code::PermissionDenied => "denied",
            Err(_) => "refused",
        };
        self.audit(
            &token,
            "grpc campaign cancel",
            &format!("campaign {id}"),
            outcome,
        );
        document(&cancelled?)
    }

    async fn report(
        &self,
        request: Request<v1::ReportRequest>,
    ) -> Result<Response<v1::ReportDocument>, Status> {
        self.authorize(&request, None)?;
        let r = request.into_inner();
        let c = self.campaigns.clone();
        let report = blocking(move || c.report(r.id, UnixMicros::now())).await?;
        let (content_type, body) = match r.format.as_str() {
            "" | "json" => (
                "application/json",
                serde_json::to_string(&report).map_err(|e| Status::internal(e.to_string()))?,
            ),
            "csv" => ("text/csv; charset=utf-8", report::to_csv(&report)),
            "html" => ("text/html; charset=utf-8", report::to_html(&report)),
            other => {
                return Err(Status::invalid_argument(format!(
                    "`format`: {other:?} is not json, csv or html"
                )));
            }
        };
        Ok(Response::new(v1::ReportDocument {
            content_type: content_type.into(),
            body,
        }))
    }
}
