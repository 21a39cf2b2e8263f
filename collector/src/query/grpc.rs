//! The gRPC `QueryService` (`proto/sixmap/v1/query.proto`), served next to `ProbeControl`.
//!
//! `StreamResults` scans on a blocking thread that feeds a small bounded channel: the scan
//! advances only as fast as the client reads, and stops at the next result once the client
//! has gone (the channel's receiver is dropped with the response stream).
//!
//! A stream counts against the process's budget of long responses (`limits::streams`,
//! shared with HTTP exports; per source too) and scans on one of the readers' threads
//! (`limits::readers`). A client that reads nothing for the write timeout loses its stream
//! (DEADLINE_EXCEEDED after what was buffered): HTTP/2 flow control would otherwise keep the
//! scan, its thread and its permit waiting for as long as the connection lives.

use super::aggregate::{AggregateRequest, Aggregates, aggregate};
use super::{ParamError, aggregate_budget};
use crate::auth;
use crate::limits::readers::Readers;
use crate::limits::streams::Streams;
use crate::store::{ResultCursor, ResultFilter, Role, Store, StoreError, scan_filtered};
use sixmap_proto::v1::query_service_server::QueryService;
use sixmap_proto::{decode, encode, v1};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Results buffered between the scan and a client: enough to keep a fast client busy, few
/// enough that a stalled client holds little memory.
const STREAM_BUFFER: usize = 32;
/// Streams at once when the service stands alone (the collector shares its `[limits]`
/// budget with HTTP instead, see [`QueryGrpc::with_limits`]).
pub const MAX_STREAMS: u64 = 16;

/// Counters of the query streams, for tests and metrics.
#[derive(Debug, Default)]
pub struct QueryStats {
    /// Streams whose scan is still running.
    pub active_streams: AtomicU64,
    /// Results handed to streams since start.
    pub results_streamed: AtomicU64,
}

/// Decrements `active_streams` when a scan ends, however it ends.
struct Active(Arc<QueryStats>);

impl Active {
    fn start(stats: Arc<QueryStats>) -> Self {
        stats.active_streams.fetch_add(1, Ordering::AcqRel);
        Self(stats)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Callers authenticate like on the HTTP API: a researcher's (or admin's) API token in the
/// `authorization` metadata, unless raw data is public.
#[derive(Clone)]
pub struct QueryGrpc {
    store: Arc<dyn Store>,
    raw_data_public: bool,
    stats: Arc<QueryStats>,
    streams: Streams,
    readers: Readers,
    write_timeout: Duration,
}

impl std::fmt::Debug for QueryGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryGrpc")
            .field("raw_data_public", &self.raw_data_public)
            .finish_non_exhaustive()
    }
}

impl QueryGrpc {
    pub fn new(store: Arc<dyn Store>, raw_data_public: bool) -> Self {
        let limits = crate::limits::Limits {
            max_streams: MAX_STREAMS as usize,
            ..crate::limits::Limits::default()
        };
        Self {
            store,
            raw_data_public,
            stats: Arc::default(),
            streams: Streams::new(&limits),
            readers: Readers::new(limits.reader_threads),
            write_timeout: limits.stream_write_timeout,
        }
    }

    /// Uses the process's long-response budget, readers and write timeout.
    pub fn with_limits(mut self, shared: &crate::limits::Shared, write_timeout: Duration) -> Self {
        self.streams = shared.streams.clone();
        self.readers = shared.readers.clone();
        self.write_timeout = write_timeout;
        self
    }

    pub fn stats(&self) -> Arc<QueryStats> {
        self.stats.clone()
    }

    async fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        crate::auth::single_authorization(request.metadata())?;
        let header = request.metadata().get("authorization");
        if self.raw_data_public && header.is_none() {
            return Ok(());
        }
        let bearer = header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "this needs a researcher's API token: send `authorization: Bearer sxa_…` metadata",
                )
            })?;
        let store = self.store.clone();
        let token = crate::store::run_blocking(move || auth::api_token(&*store, &bearer))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(|| Status::unauthenticated("unknown or revoked API token"))?;
        if self.raw_data_public || token.role.allows(Role::Researcher) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "this needs a researcher token; yours is {}",
                token.role
            )))
        }
    }
}

fn invalid(e: ParamError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn filter(wire: Option<&v1::ResultFilter>) -> Result<ResultFilter, Status> {
    let pairs = decode::filter_params(wire);
    ResultFilter::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_str())), &[])
        .map_err(|e| invalid(e.into()))
}

fn unavailable(e: StoreError) -> Status {
    tracing::warn!(error = %e, "query failed in the store");
    Status::unavailable(e.to_string())
}

fn aggregate_reply(a: Aggregates) -> v1::AggregateReply {
    v1::AggregateReply {
        group_by: a.group_by.to_owned(),
        side: a.side.to_owned(),
        rows: a
            .rows
            .into_iter()
            .map(|r| v1::AggregateRow {
                country: r.country.flatten(),
                asn: r.asn.flatten(),
                day: r.day,
                count: r.count,
                success: r.success,
                success_share: r.success_share,
                pings_answered: r.pings_answered,
                median_rtt_ms: r.median_rtt_ms,
            })
            .collect(),
        results: a.results,
        truncated: a.truncated,
        scanned_until: a.scanned_until.map(|t| t.0),
    }
}

#[tonic::async_trait]
impl QueryService for QueryGrpc {
    type StreamResultsStream = ResultStream;

    async fn stream_results(
        &self,
        request: Request<v1::ResultQuery>,
    ) -> Result<Response<Self::StreamResultsStream>, Status> {
        self.authorize(&request).await?;
        let remote = request.remote_addr();
        let query = request.into_inner();
        let filter = filter(query.filter.as_ref())?;
        let after = match query.cursor.as_str() {
            "" => None,
            text => Some(
                text.parse::<ResultCursor>()
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
            ),
        };
        let limit = match query.limit {
            0 => u64::MAX,
            n => n,
        };
        let permit = self
            .streams
            .try_start(remote.map(|a| a.ip()))
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        let reader = self.readers.acquire().await.map_err(unavailable)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let store = self.store.clone();
        let active = Active::start(self.stats.clone());
        let stalled = Arc::new(AtomicBool::new(false));
        let stalled_flag = stalled.clone();
        let write_timeout = self.write_timeout;
        let runtime = tokio::runtime::Handle::current();
        tracing::debug!(?filter, "query stream started");
        tokio::task::spawn_blocking(move || {
            let (_permit, _reader) = (permit, reader);
            let stats = active.0.clone();
            let mut sent = 0u64;
            let mut client_gone = false;
            // Waits for room in the channel at most `write_timeout`: a client that reads
            // nothing for that long is taken as gone.
            let send = |item| {
                runtime
                    .block_on(tx.send_timeout(item, write_timeout))
                    .map_err(|e| match e {
                        mpsc::error::SendTimeoutError::Timeout(_) => Unsent::Stalled,
                        mpsc::error::SendTimeoutError::Closed(_) => Unsent::Gone,
                    })
            };
            let scanned = scan_filtered(&*store, &filter, after.as_ref(), &mut |stored| {
                let cursor = ResultCursor::of(&stored).to_string();
                let item = encode::query_result(
                    &stored.result,
                    stored.probe_origin.as_ref(),
                    stored.target_origin.as_ref(),
                    stored.blame.as_ref(),
                    cursor,
                );
                match send(Ok(item)) {
                    Ok(()) => {}
                    Err(Unsent::Stalled) => {
                        stalled_flag.store(true, Ordering::Release);
                        client_gone = true;
                        return false;
                    }
                    Err(Unsent::Gone) => {
                        client_gone = true;
                        return false;
                    }
                }
                stats.results_streamed.fetch_add(1, Ordering::Relaxed);
                sent += 1;
                sent < limit
            });
            if let Err(e) = scanned {
                let _ = send(Err(unavailable(e)));
            }
            tracing::debug!(sent, client_gone, "query stream ended");
            drop(active);
        });
        Ok(Response::new(ResultStream {
            inner: ReceiverStream::new(rx),
            stalled,
            write_timeout,
            ended: false,
        }))
    }

    async fn aggregate(
        &self,
        request: Request<v1::AggregateQuery>,
    ) -> Result<Response<v1::AggregateReply>, Status> {
        self.authorize(&request).await?;
        let query = request.into_inner();
        let mut pairs = decode::filter_params(query.filter.as_ref());
        pairs.push(("group_by", query.group_by));
        if !query.side.is_empty() {
            pairs.push(("side", query.side));
        }
        let request = AggregateRequest::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_str())))
            .map_err(invalid)?;
        let store = self.store.clone();
        // On the readers' pool: a call the client cancels stops its scan.
        let aggregates = self
            .readers
            .run(move || aggregate(&*store, &request, aggregate_budget()))
            .await
            .map_err(unavailable)?;
        Ok(Response::new(aggregate_reply(aggregates)))
    }
}

/// Why a result could not be handed to the client.
enum Unsent {
    /// It read nothing for the write timeout.
    Stalled,
    /// It went away.
    Gone,
}

#[derive(Debug)]
/// The results of a stream, then DEADLINE_EXCEEDED instead of a clean end when the scan gave
/// up on a client that stopped reading (so a truncated stream never looks complete).
pub struct ResultStream {
    inner: ReceiverStream<Result<v1::QueryResult, Status>>,
    stalled: Arc<AtomicBool>,
    write_timeout: Duration,
    ended: bool,
}

impl tokio_stream::Stream for ResultStream {
    type Item = Result<v1::QueryResult, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.ended {
            return std::task::Poll::Ready(None);
        }
        match std::pin::Pin::new(&mut self.inner).poll_next(cx) {
            std::task::Poll::Ready(None) if self.stalled.load(Ordering::Acquire) => {
                self.ended = true;
                std::task::Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                    "the stream read nothing for {} s and was ended",
                    self.write_timeout.as_secs()
                )))))
            }
            other => other,
        }
    }
}
