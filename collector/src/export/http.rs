//! `GET /api/v1/export?format=jsonl|csv|parquet|atlas&<filter>`: a streamed export.
//!
//! A blocking task scans the store and writes the format into a bounded channel of 64 KiB
//! chunks, so memory stays bounded and a slow client slows the scan instead of filling RAM;
//! a client that goes away ends the scan at its next chunk. Parquet needs no temporary file:
//! its writer only appends, the footer last. The counts go out as HTTP trailers
//! (`X-Sixmap-Rows`, `X-Sixmap-Skipped`) to clients that send `TE: trailers` (our CLI).
//! Access is that of raw results (`http_auth::required`).
//!
//! An export is a long response (`limits::streams`: a permit held until the body ends or
//! the client goes) and scans on one of the readers' threads (`limits::readers`). A client
//! that stops reading is disconnected after the write timeout (`limits::serve_http`); the
//! dropped body stops the scan at its next row (`limits::readers::check`), and its thread
//! is free again.

use super::{ExportStats, Format};
use crate::store::{ResultFilter, Store};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body::Frame;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tracing::{info, warn};

pub const ROWS_TRAILER: &str = "x-sixmap-rows";
pub const SKIPPED_TRAILER: &str = "x-sixmap-skipped";
const CHUNK: usize = 64 * 1024;

pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/api/v1/export", get(export))
        .with_state(store)
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// Decodes `application/x-www-form-urlencoded` pairs; `None` on bad percent-encoding.
pub fn query_pairs(query: &str) -> Option<Vec<(String, String)>> {
    fn decode(text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(name)?, decode(value)?))
        })
        .collect()
}

/// The format and filter of an export request, or the 400 message naming what is wrong.
pub fn parse_request(query: Option<&str>) -> Result<(Format, ResultFilter), String> {
    let pairs = query_pairs(query.unwrap_or(""))
        .ok_or_else(|| "the query string is not valid percent-encoded UTF-8".to_owned())?;
    let mut format = None;
    for (name, value) in &pairs {
        if name == "format" {
            format = Some(
                value
                    .parse::<Format>()
                    .map_err(|e| format!("parameter `format`: {e}"))?,
            );
        }
    }
    let format = format
        .ok_or_else(|| "parameter `format` is required: jsonl, csv, parquet or atlas".to_owned())?;
    let filter = ResultFilter::from_pairs(
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        &["format"],
    )
    .map_err(|e| e.to_string())?;
    Ok((format, filter))
}

async fn export(State(store): State<Arc<dyn Store>>, RawQuery(query): RawQuery) -> Response {
    let (format, filter) = match parse_request(query.as_deref()) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    let (tx, rx) = mpsc::channel(8);
    let sender = tx.clone();
    let readers = crate::limits::readers::Readers::current();
    let reader = match readers.acquire().await {
        Ok(permit) => permit,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": e.to_string() })),
            )
                .into_response();
        }
    };
    // The body holds the job's stop guard: a client that goes (or is cut off by the write
    // timeout) stops the scan at its next row, even one that writes nothing.
    let stop = readers.spawn(reader, move || {
        let started = std::time::Instant::now();
        let out = ChannelWriter {
            tx: sender,
            buffer: Vec::with_capacity(CHUNK),
        };
        match super::export(store.as_ref(), &filter, format, out, &mut |_| {}) {
            Ok(stats) => {
                info!(%format, rows = stats.rows, skipped = stats.skipped,
                      seconds = started.elapsed().as_secs_f64(), "export served");
                let _ = tx.blocking_send(Ok(Frame::trailers(trailers(stats))));
            }
            Err(e) => {
                warn!(%format, error = %e, "export ended early");
                // An error frame aborts the chunked body, so the client sees a truncated
                // transfer rather than a complete-looking file.
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let mut response = Response::new(Body::new(ChannelBody { rx, _stop: stop }));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"sixmap-export.{}\"",
        format.extension()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::TRAILER,
        HeaderValue::from_static("x-sixmap-rows, x-sixmap-skipped"),
    );
    response
}

fn trailers(stats: ExportStats) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(ROWS_TRAILER, HeaderValue::from(stats.rows));
    map.insert(SKIPPED_TRAILER, HeaderValue::from(stats.skipped));
    map
}

type Chunk = Result<Frame<Bytes>, std::io::Error>;

/// The blocking export's output: 64 KiB chunks into the channel the response body reads.
struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx
            .blocking_send(Ok(Frame::data(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

struct ChannelBody {
    rx: mpsc::Receiver<Chunk>,
    _stop: crate::limits::readers::StopOnDrop,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_what_is_wrong() {
        let err = parse_request(Some("type=ping")).unwrap_err();
        assert!(err.contains("format"), "{err}");
        let err = parse_request(Some("format=xml")).unwrap_err();
        assert!(err.contains("format") && err.contains("xml"), "{err}");
        let err = parse_request(Some("format=csv&probee=1")).unwrap_err();
        assert!(err.contains("probee"), "{err}");
        let (format, filter) =
            parse_request(Some("format=atlas&from=2026-03-01T00%3A00%3A00Z&type=ping")).unwrap();
        assert_eq!(format, Format::Atlas);
        assert!(filter.from.is_some() && filter.kind.is_some());
    }
}
