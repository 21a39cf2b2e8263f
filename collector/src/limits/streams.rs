//! One budget of long responses for the whole process: HTTP exports, query result pages,
//! campaign reports, quick measurements' results and gRPC `QueryService.StreamResults` each hold a [`StreamPermit`] from
//! before their work starts until their body is finished or their client has gone. A slow
//! reader cannot keep one for long: the HTTP connection's write timeout
//! ([`super::serve_http`]) and the gRPC stream's send timeout drop it.

use super::sources::{PerSource, SourceSlot};
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

#[derive(Debug, Clone)]
pub struct Streams {
    max: usize,
    in_use: Arc<AtomicUsize>,
    per_source: PerSource,
}

/// Why a long response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefused {
    #[error(
        "the collector serves {0} long responses (exports, result pages, reports) at once; retry shortly"
    )]
    Full(usize),
    #[error("your address already has {0} long responses in progress; finish one first")]
    PerSource(usize),
}

/// A place in the budget; released on drop.
#[derive(Debug)]
pub struct StreamPermit {
    in_use: Arc<AtomicUsize>,
    _source: Option<SourceSlot>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Streams {
    pub fn new(limits: &super::Limits) -> Self {
        Self {
            max: limits.max_streams,
            in_use: Arc::default(),
            per_source: PerSource::new(limits.max_streams_per_source, &limits.source_exempt),
        }
    }

    /// Long responses in progress now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    pub fn try_start(&self, peer: Option<IpAddr>) -> Result<StreamPermit, StreamRefused> {
        let source = match peer {
            Some(ip) => Some(
                self.per_source
                    .try_take(ip)
                    .ok_or(StreamRefused::PerSource(self.per_source.cap()))?,
            ),
            None => None,
        };
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map_err(|_| StreamRefused::Full(self.max))?;
        Ok(StreamPermit {
            in_use: self.in_use.clone(),
            _source: source,
        })
    }
}

/// Whether a request's response is a long one that counts against the budget.
pub fn is_long(path: &str) -> bool {
    // Published reports (`/reports/{id}...`) are made like the campaign reports below.
    if path == "/api/v1/export" || path == "/api/v1/query/results" || path.starts_with("/reports/")
    {
        return true;
    }
    // A quick measurement's results, followed or not (`campaign::quick_http`).
    let results = path
        .strip_prefix("/api/v1/measurements/")
        .is_some_and(|rest| rest.ends_with("/results"));
    results
        || path
            .strip_prefix("/api/v1/campaigns/")
            .is_some_and(|rest| rest.ends_with("/report"))
}

/// Middleware: long responses take a permit before the handler runs (503 with Retry-After
/// when none is left) and hold it in their body until it is finished or dropped.
pub async fn hold_for_body(
    State(streams): State<Streams>,
    request: Request,
    next: Next,
) -> Response {
    if !is_long(request.uri().path()) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let permit = match streams.try_start(peer) {
        Ok(permit) => permit,
        Err(refused) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "error": refused.to_string(), "status": 503 })),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
    };
    let response = next.run(request).await;
    response.map(|body| {
        Body::new(Permitted {
            inner: body,
            _permit: permit,
        })
    })
}

/// A response body that holds its stream permit until it ends or is dropped.
struct Permitted {
    inner: Body,
    _permit: StreamPermit,
}

impl http_body::Body for Permitted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_in_total_and_per_source() {
        let limits = super::super::Limits {
            max_streams: 3,
            max_streams_per_source: 2,
            source_exempt: Vec::new(),
            ..super::super::Limits::default()
        };
        let streams = Streams::new(&limits);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "192.0.2.1".parse().unwrap();
        let p1 = streams.try_start(Some(a)).unwrap();
        let _p2 = streams.try_start(Some(a)).unwrap();
        assert_eq!(
            streams.try_start(Some(a)).unwrap_err(),
            StreamRefused::PerSource(2)
        );
        let _p3 = streams.try_start(Some(b)).unwrap();
        assert_eq!(
            streams.try_start(Some(b)).unwrap_err(),
            StreamRefused::Full(3)
        );
        assert_eq!(streams.in_use(), 3);
        drop(p1);
        assert!(streams.try_start(Some(b)).is_ok());
        assert!(is_long("/api/v1/campaigns/7/report"));
        assert!(is_long("/reports/7") && is_long("/reports/7.pdf"));
        assert!(is_long("/api/v1/export"));
        assert!(!is_long("/api/v1/campaigns/7"));
        assert!(is_long("/api/v1/measurements/7/results"));
        assert!(!is_long("/api/v1/measurements"));
        assert!(!is_long("/api/v1/probes"));
    }
}
