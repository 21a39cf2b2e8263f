//! The gRPC `CampaignService`, served next to `ProbeControl`; documents are the HTTP API's
//! JSON bodies.
//!
//! Every store access (the token check, the campaign work, the audit entry) runs on the
//! process's bounded reader pool (`limits::readers`), like the HTTP API's campaign routes:
//! many calls at once wait for a reader thread instead of each taking one of tokio's blocking
//! threads, which ingest's batch writes and flushes need (issue #19). A call whose client goes
//! away stops its report's scan. Reports also take a place in the long-response budget
//! (`limits::streams`), as they do over HTTP.
//!
//! `Measure` and `FollowMeasurement` are quick measurements (`quick`, `quick_http`) over gRPC:
//! the same request JSON, owner rules and follower as over HTTP, each line of the HTTP
//! response one `CampaignDocument` of the stream. A follower holds a place in the
//! long-response budget until it ends; it ends when the client goes or takes nothing for the
//! collector's stream write timeout.

use super::http::status_of;
use super::quick_http::{Followed, follow, started};
use super::{CampaignError, CampaignRecord, Campaigns, Writer, report};
use crate::auth;
use crate::limits::readers::Readers;
use crate::limits::streams::Streams;
use crate::store::{ApiTokenRecord, Role, Store, StoreError};
use axum::http::StatusCode;
use sixmap_proto::v1;
use sixmap_proto::v1::campaign_service_server::CampaignService;
use sixmap_shared::UnixMicros;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Documents a measurement stream buffers for a slow client.
const MEASURE_BUFFER: usize = 16;

/// A quick measurement's documents as they come.
pub type MeasureStream = Pin<Box<dyn Stream<Item = Result<v1::CampaignDocument, Status>> + Send>>;

/// A followed measurement's lines, ended at once with `DEADLINE_EXCEEDED` when its follower
/// gave up on a client that read nothing: the lines still buffered are dropped with the
/// receiver rather than kept for a client that may never read them. (What HTTP/2 already
/// holds for the stream is bounded by its flow-control window.)
struct CutShort {
    lines: Option<mpsc::Receiver<axum::body::Bytes>>,
    stalled: Option<oneshot::Receiver<Duration>>,
}

impl Stream for CutShort {
    type Item = Result<v1::CampaignDocument, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        // The stall first: what is still buffered is not served after it.
        if let Some(stalled) = self.stalled.as_mut() {
            match Pin::new(stalled).poll(cx) {
                Poll::Ready(Ok(stall)) => {
                    self.stalled = None;
                    self.lines = None;
                    return Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                        "the client read nothing for {} ms: the stream is ended",
                        stall.as_millis()
                    )))));
                }
                // The follower ended without stalling.
                Poll::Ready(Err(_)) => self.stalled = None,
                Poll::Pending => {}
            }
        }
        let Some(lines) = self.lines.as_mut() else {
            return Poll::Ready(None);
        };
        match lines.poll_recv(cx) {
            Poll::Ready(Some(line)) => Poll::Ready(Some(
                String::from_utf8(line.to_vec())
                    .map(|json| v1::CampaignDocument {
                        json: json.trim_end().to_owned(),
                    })
                    .map_err(|e| Status::internal(e.to_string())),
            )),
            Poll::Ready(None) => {
                self.lines = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The gRPC face of campaigns. Callers authenticate like on the HTTP API, with an API token in
/// the `authorization` metadata (`Bearer sxa_…`): writes need a campaigner (or admin), reads
/// any valid token. Writes are audited.
#[derive(Clone)]
pub struct CampaignGrpc {
    campaigns: Arc<Campaigns>,
    store: Arc<dyn Store>,
    readers: Readers,
    streams: Streams,
    /// How long a measurement stream waits for its client to take a document.
    write_timeout: Duration,
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
            write_timeout: limits.stream_write_timeout,
        }
    }

    /// Uses the process's reader pool and long-response budget, shared with the HTTP API and
    /// the query service.
    pub fn with_limits(mut self, shared: &crate::limits::Shared) -> Self {
        self.readers = shared.readers.clone();
        self.streams = shared.streams.clone();
        self
    }

    /// A measurement stream whose client takes nothing for `timeout` is ended (the query
    /// service's `stream_write_timeout`).
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Follows `record` into a stream that first carries `first` (if any): the follower runs
    /// on its own task with the long-response `permit` until the measurement ends, the client
    /// goes, or it stalls.
    fn follow_stream(
        &self,
        record: CampaignRecord,
        first: Option<serde_json::Value>,
        permit: crate::limits::streams::StreamPermit,
    ) -> MeasureStream {
        let (tx, rx) = mpsc::channel(MEASURE_BUFFER);
        let (stalled_tx, stalled) = oneshot::channel();
        let (campaigns, stall) = (self.campaigns.clone(), self.write_timeout);
        let id = record.id;
        tokio::spawn(async move {
            let ended = match first {
                Some(first) => {
                    let line = axum::body::Bytes::from(first.to_string());
                    match tx.send_timeout(line, stall).await {
                        Ok(()) => follow(campaigns, record, tx.clone(), stall).await,
                        Err(mpsc::error::SendTimeoutError::Timeout(_)) => Followed::Stalled,
                        Err(mpsc::error::SendTimeoutError::Closed(_)) => Followed::Gone,
                    }
                }
                None => follow(campaigns, record, tx.clone(), stall).await,
            };
            if ended != Followed::Done {
                tracing::debug!(
                    measurement = id,
                    ?ended,
                    "gRPC measurement stream cut short"
                );
            }
            if ended == Followed::Stalled {
                let _ = stalled_tx.send(stall);
            }
            // The place is given back before the stream's end is seen (the last sender
            // dropped), so a client that saw the end can start another at once.
            drop(permit);
            drop(tx);
        });
        Box::pin(CutShort {
            lines: Some(rx),
            stalled: Some(stalled),
        })
    }

    /// A place in the long-response budget for a measurement stream.
    fn long_response<T>(
        &self,
        request: &Request<T>,
    ) -> Result<crate::limits::streams::StreamPermit, Status> {
        self.streams
            .try_start(request.remote_addr().map(|a| a.ip()))
            .map_err(|e| Status::resource_exhausted(e.to_string()))
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
    type MeasureStream = MeasureStream;
    type FollowMeasurementStream = MeasureStream;

    async fn measure(
        &self,
        request: Request<v1::MeasureRequest>,
    ) -> Result<Response<MeasureStream>, Status> {
        let token = self.authorize(&request, None).await?;
        // The budget place first: a measurement started must be followable.
        let permit = self.long_response(&request)?;
        let body = request.into_inner().json;
        let ask: super::quick::Request = serde_json::from_str(&body)
            .map_err(|e| Status::invalid_argument(format!("`json`: {e}")))?;
        let (c, owner) = (self.campaigns.clone(), token.name.clone());
        let record = self
            .audited(
                &token,
                "grpc measurement start",
                "measurements".into(),
                |done| if done.is_ok() { "ok" } else { "refused" },
                move || c.create_quick(&owner, &ask, UnixMicros::now()),
            )
            .await?;
        let first = started(&record);
        Ok(Response::new(self.follow_stream(
            record,
            Some(first),
            permit,
        )))
    }

    async fn follow_measurement(
        &self,
        request: Request<v1::CampaignRef>,
    ) -> Result<Response<MeasureStream>, Status> {
        let token = self.authorize(&request, None).await?;
        let permit = self.long_response(&request)?;
        let id = request.into_inner().id;
        let c = self.campaigns.clone();
        let record = self
            .blocking(move || {
                let by = Writer {
                    name: &token.name,
                    admin: token.role == Role::Admin,
                };
                c.quick(id, by)
            })
            .await?;
        Ok(Response::new(self.follow_stream(record, None, permit)))
    }

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
        let token = self.authorize(&request, None).await?;
        let c = self.campaigns.clone();
        let (name, admin) = (token.name.clone(), token.role == Role::Admin);
        let summaries = self
            .blocking(move || c.summaries(super::Writer { name: &name, admin }))
            .await?;
        document(&serde_json::json!({ "campaigns": summaries }))
    }

    async fn show(
        &self,
        request: Request<v1::CampaignRef>,
    ) -> Result<Response<v1::CampaignDocument>, Status> {
        let token = self.authorize(&request, None).await?;
        let id = request.into_inner().id;
        let c = self.campaigns.clone();
        let (name, admin) = (token.name.clone(), token.role == Role::Admin);
        document(
            &self
                .blocking(move || {
                    c.show_for(id, super::Writer { name: &name, admin }, UnixMicros::now())
                })
                .await?,
        )
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
        let token = self.authorize(&request, None).await?;
        // A place in the long-response budget for the whole call, as over HTTP.
        let _long = self
            .streams
            .try_start(request.remote_addr().map(|a| a.ip()))
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        let r = request.into_inner();
        let c = self.campaigns.clone();
        let (name, admin) = (token.name.clone(), token.role == Role::Admin);
        let report = self
            .blocking(move || {
                c.report_for(
                    r.id,
                    super::Writer { name: &name, admin },
                    UnixMicros::now(),
                )
            })
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

#[cfg(test)]
mod tests {
    use super::super::tests::{fleet, probe, service};
    use super::*;
    use crate::auth;
    use tokio_stream::StreamExt;

    fn authed<T>(token: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    /// The service over a fleet whose probe 1 is connected, and tokens of alice and bob
    /// (researchers) and of an admin.
    fn setup(dir: &std::path::Path) -> (CampaignGrpc, Arc<Campaigns>, [String; 3]) {
        let c = Arc::new(service(dir, &fleet(), None));
        let (tx, rx) = mpsc::channel(8);
        c.connected(&probe(1, None, "").id, tx);
        std::mem::forget(rx);
        let store = c.store().clone();
        let token = |role, name| {
            auth::create_api_token(&*store, role, name, UnixMicros::now())
                .unwrap()
                .0
        };
        let tokens = [
            token(Role::Researcher, "alice"),
            token(Role::Researcher, "bob"),
            token(Role::Admin, "ops"),
        ];
        (CampaignGrpc::new(c.clone(), store), c, tokens)
    }

    fn ask(json: serde_json::Value) -> v1::MeasureRequest {
        v1::MeasureRequest {
            json: json.to_string(),
        }
    }

    const PING: &str = r#"{"kind": "ping", "target": "example.org", "probes": 1}"#;

    async fn next(stream: &mut MeasureStream) -> Option<serde_json::Value> {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a document or the end within 5 s")
            .map(|doc| serde_json::from_str(&doc.unwrap().json).unwrap())
    }

    /// Stores `n` ping results of probe 1 for the measurement's task.
    fn store_results(c: &Campaigns, task_id: u64, n: u64) {
        let results: Vec<_> = (1..=n)
            .map(|seq| {
                let mut r = crate::testing::ping_v6(
                    probe(1, None, "").id,
                    seq,
                    UnixMicros::now(),
                    Some(Duration::from_millis(1)),
                    Default::default(),
                );
                r.result.task_id = TaskId::new(task_id).unwrap();
                r
            })
            .collect();
        c.store().insert_results(&results).unwrap();
    }

    use sixmap_shared::TaskId;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_measurement_streams_its_start_each_result_then_done() {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, c, [alice, bob, admin]) = setup(dir.path());
        let mut stream = grpc
            .measure(authed(&alice, v1::MeasureRequest { json: PING.into() }))
            .await
            .unwrap()
            .into_inner();
        let start = next(&mut stream).await.unwrap();
        let id = start["id"].as_u64().unwrap();
        let task_id = start["tasks"][0]["task_id"].as_u64().unwrap();
        assert_eq!(start["probes"].as_array().unwrap().len(), 1, "{start}");
        assert!(start["deadline"].is_u64(), "{start}");
        store_results(&c, task_id, 1);
        let result = next(&mut stream).await.unwrap();
        assert_eq!(result["task_id"], task_id, "{result}");
        let done = next(&mut stream).await.unwrap();
        assert_eq!(done["done"]["answered"], 1, "{done}");
        assert_eq!(done["done"]["reason"], "every probe answered", "{done}");
        assert!(
            next(&mut stream).await.is_none(),
            "the stream ends after done"
        );
        assert_eq!(grpc.streams.in_use(), 0);

        // Its owner and an admin may follow it afterwards (stored results, then done).
        for token in [&alice, &admin] {
            let mut again = grpc
                .follow_measurement(authed(token, v1::CampaignRef { id }))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(next(&mut again).await.unwrap()["task_id"], task_id);
            assert!(next(&mut again).await.unwrap()["done"].is_object());
        }
        // Another user's id, an unknown id and a campaign are all "not found" alike.
        let plain = c
            .create("bob", "toml", super::super::tests::SPEC, UnixMicros::now())
            .unwrap();
        for (token, id) in [(&bob, id), (&bob, 999_999), (&bob, plain.id)] {
            let err = grpc
                .follow_measurement(authed(token, v1::CampaignRef { id }))
                .await
                .err()
                .expect("refused");
            assert_eq!(err.code(), tonic::Code::NotFound, "{id}: {err}");
        }

        // The HTTP request's validation, errors naming the key.
        let refused = |token: &str, request| {
            let grpc = grpc.clone();
            let request = authed(token, request);
            async move { grpc.measure(request).await.err().expect("refused") }
        };
        let err = refused(&alice, ask(serde_json::json!({"kind": "ping"}))).await;
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(err.message().starts_with("`json`"), "{err}");
        let err = refused(
            &alice,
            ask(serde_json::json!({"kind": "ping", "target": "example.org", "from": ["XC"]})),
        )
        .await;
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(err.message().contains("from[0]"), "{err}");
        let err = refused(
            &alice,
            ask(serde_json::json!({"kind": "ping", "target": "example.org", "probes": 51})),
        )
        .await;
        assert!(err.message().contains("probes"), "{err}");
        let err = grpc
            .measure(Request::new(v1::MeasureRequest { json: PING.into() }))
            .await
            .err()
            .expect("refused");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
        // Refusals hold no place in the long-response budget.
        assert_eq!(grpc.streams.in_use(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_that_stops_reading_or_goes_lets_go_of_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, c, [alice, ..]) = setup(dir.path());
        let grpc = grpc.with_write_timeout(Duration::from_millis(200));
        let mut stream = grpc
            .measure(authed(&alice, v1::MeasureRequest { json: PING.into() }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(grpc.streams.in_use(), 1);
        let start = next(&mut stream).await.unwrap();
        let task_id = start["tasks"][0]["task_id"].as_u64().unwrap();
        // More results than the stream buffers, and a client that reads no more.
        store_results(&c, task_id, MEASURE_BUFFER as u64 + 4);
        let released = async {
            while grpc.streams.in_use() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), released)
            .await
            .expect("the stalled follower lets go of its place");
        // The stream ends at once with a status saying why; what was buffered is dropped,
        // not kept for a client that may never read it.
        let err = stream
            .next()
            .await
            .expect("an item")
            .expect_err("cut short");
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err}");
        assert!(err.message().contains("read nothing for 200 ms"), "{err}");
        assert!(stream.next().await.is_none());

        // A client that goes: the follower (waiting for results that never come) ends.
        let stream = grpc
            .measure(authed(&alice, v1::MeasureRequest { json: PING.into() }))
            .await
            .unwrap()
            .into_inner();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(grpc.streams.in_use(), 1, "still following");
        drop(stream);
        let released = async {
            while grpc.streams.in_use() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), released)
            .await
            .expect("a client gone ends its follower");
    }
}
