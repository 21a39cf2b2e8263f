//! The gRPC `CampaignService`, served next to `ProbeControl`; documents are the HTTP API's
//! JSON bodies.

use super::http::status_of;
use super::{CampaignError, Campaigns, report};
use axum::http::StatusCode;
use sixmap_proto::v1;
use sixmap_proto::v1::campaign_service_server::CampaignService;
use sixmap_shared::UnixMicros;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct CampaignGrpc {
    campaigns: Arc<Campaigns>,
}

impl CampaignGrpc {
    pub fn new(campaigns: Arc<Campaigns>) -> Self {
        Self { campaigns }
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
        let r = request.into_inner();
        let c = self.campaigns.clone();
        let format = if r.format.is_empty() {
            "toml".to_owned()
        } else {
            r.format
        };
        let record =
            blocking(move || c.create(&r.owner, &format, &r.spec, UnixMicros::now())).await?;
        document(&record)
    }

    async fn list(
        &self,
        _request: Request<v1::ListCampaignsRequest>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        let c = self.campaigns.clone();
        let summaries = blocking(move || c.summaries()).await?;
        document(&serde_json::json!({ "campaigns": summaries }))
    }

    async fn show(
        &self,
        request: Request<v1::CampaignRef>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        let id = request.into_inner().id;
        let c = self.campaigns.clone();
        document(&blocking(move || c.show(id, UnixMicros::now())).await?)
    }

    async fn cancel(
        &self,
        request: Request<v1::CancelCampaignRequest>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        let r = request.into_inner();
        let c = self.campaigns.clone();
        document(&blocking(move || c.cancel(r.id, &r.reason, UnixMicros::now())).await?)
    }

    async fn report(
        &self,
        request: Request<v1::ReportRequest>,
    ) -> Result<Response<v1::ReportDocument>, Status> {
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
