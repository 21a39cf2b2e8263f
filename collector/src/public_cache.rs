//! A short-lived cache with single flight for the public map and probe-list responses
//! (`/api/v1/probes`, `/api/v1/maps/...`, published campaign reports `/reports/...`: a PDF
//! asked for by many at once is printed once): they are the same for every caller the access
//! table lets through, and change slowly, so many anonymous clients asking at once cost one
//! computation per [`FRESH_FOR`] instead of one each (issue #19: 250 clients made
//! `/api/v1/probes` go from 15 ms to 823 ms median). Waiters share the computation of the
//! first; if it is dropped (its client left, a timeout), the next waiter computes. Keys are
//! bounded ([`MAX_ENTRIES`]); past that, responses are computed without caching.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

pub const FRESH_FOR: Duration = Duration::from_secs(2);
pub const MAX_ENTRIES: usize = 1024;
/// Larger responses are not kept.
pub const MAX_BODY: usize = 16 << 20;

#[derive(Debug, Clone)]
struct Cached {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

type Cell = Arc<OnceCell<Cached>>;

#[derive(Debug, Clone, Default)]
pub struct PublicCache {
    entries: Arc<Mutex<HashMap<String, (Instant, Cell)>>>,
}

fn cacheable(method: &Method, path: &str) -> bool {
    method == Method::GET
        && (path == "/api/v1/probes"
            || path == "/api/v1/directory"
            || path.starts_with("/api/v1/maps/")
            || path.starts_with("/reports/"))
}

impl PublicCache {
    /// The cell for `key`: the fresh one, or a new one; `None` when full of fresh entries.
    fn cell(&self, key: &str) -> Option<Cell> {
        let mut entries = self.entries.lock().ok()?;
        if let Some((at, cell)) = entries.get(key)
            && at.elapsed() < FRESH_FOR
        {
            return Some(cell.clone());
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
            if entries.len() >= MAX_ENTRIES {
                return None;
            }
        }
        let cell = Cell::default();
        entries.insert(key.to_owned(), (Instant::now(), cell.clone()));
        Some(cell)
    }
}

/// The cache key: the URI, and for report pages and PDFs and map SVGs (which answer in the language asked
/// for, `crate::i18n::Negotiated`) the code of the language negotiated for the request, so a
/// French reader never gets the English page computed a moment before, while every English
/// reader shares one computation whatever their browser's header says (one PDF print, not one
/// per header variant; and a header cannot make entries of its own). A report's JSON and CSV
/// are the same in every language and key on the URI alone.
fn key(request: &Request) -> String {
    let uri = request.uri().to_string();
    let path = request.uri().path();
    // Map SVGs (`?format=svg`) are drawn in the reader's language too.
    let svg = path.starts_with("/api/v1/maps/")
        && request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "format=svg"));
    if !svg && (!path.starts_with("/reports/") || path.ends_with(".json") || path.ends_with(".csv"))
    {
        return uri;
    }
    let catalog = request
        .extensions()
        .get::<std::sync::Arc<crate::i18n::Catalog>>()
        .cloned()
        .unwrap_or_else(crate::i18n::builtin);
    let accept = request
        .headers()
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    // An unknown `?lang=` is a 400 naming the query's code, which the URI already keys.
    let code = catalog
        .negotiate(crate::i18n::page::query_lang(request.uri().query()), accept)
        .map(|l| l.code.clone())
        .unwrap_or_default();
    format!("{uri}\n{code}")
}

/// Middleware for the public read routes.
pub async fn serve(State(cache): State<PublicCache>, request: Request, next: Next) -> Response {
    if !cacheable(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let key = key(&request);
    let Some(cell) = cache.cell(&key) else {
        return next.run(request).await;
    };
    let mut request = Some(request);
    let computed = cell
        .get_or_try_init(|| async {
            let Some(request) = request.take() else {
                return Err(());
            };
            let response = next.run(request).await;
            let (parts, body) = response.into_parts();
            match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(body) => Ok(Cached {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                }),
                Err(_) => Err(()),
            }
        })
        .await;
    match computed {
        Ok(cached) => {
            let mut response = Response::new(Body::from(cached.body.clone()));
            *response.status_mut() = cached.status;
            *response.headers_mut() = cached.headers.clone();
            response
        }
        Err(()) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": "the response could not be computed; retry shortly", "status": 503
            })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn request(uri: &str, accept: &str) -> Request {
        Request::builder()
            .uri(uri)
            .header(axum::http::header::ACCEPT_LANGUAGE, accept)
            .body(Body::empty())
            .unwrap()
    }

    /// A map SVG is drawn in the reader's language: a French reader never gets the English
    /// drawing computed a moment before. JSON and CSV have no language and share one entry.
    #[test]
    fn map_svgs_are_keyed_by_language_and_json_is_not() {
        let svg = "/api/v1/maps/countries?format=svg";
        assert_ne!(key(&request(svg, "fr")), key(&request(svg, "en")));
        assert_eq!(key(&request(svg, "en-GB")), key(&request(svg, "en")));
        let json = "/api/v1/maps/countries";
        assert_eq!(key(&request(json, "fr")), key(&request(json, "en")));
        let csv = "/api/v1/maps/countries/DE?format=csv";
        assert_eq!(key(&request(csv, "fr")), csv);
    }

    async fn get_body(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    /// Reports answer in the reader's language: a French reader never gets the English
    /// report computed a moment before, while readers who get the same language share one
    /// computation whatever their header says, and JSON is shared by every language.
    #[tokio::test]
    async fn reports_are_cached_per_negotiated_language() {
        let computed = Arc::new(AtomicUsize::new(0));
        let counter = computed.clone();
        let report = move |headers: HeaderMap| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let lang = headers
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                format!("report for {lang}")
            }
        };
        let app = Router::new().route("/reports/{file}", get(report)).layer(
            axum::middleware::from_fn_with_state(PublicCache::default(), serve),
        );
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let ask = |path: &'static str, accept: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let header = if accept.is_empty() {
                String::new()
            } else {
                format!("Accept-Language: {accept}\r\n")
            };
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        };
        let count = || computed.load(Ordering::SeqCst);
        assert!(
            ask("/reports/1", "en-US,en;q=0.9")
                .await
                .ends_with("report for en-US,en;q=0.9")
        );
        assert!(ask("/reports/1", "fr").await.ends_with("report for fr"));
        assert_eq!(count(), 2);
        // Other English headers (and none) get the English report already made.
        assert!(
            ask("/reports/1", "en-US,en;q=0.5")
                .await
                .ends_with("report for en-US,en;q=0.9")
        );
        assert!(
            ask("/reports/1", "")
                .await
                .ends_with("report for en-US,en;q=0.9")
        );
        assert!(ask("/reports/1", "fr-CA").await.ends_with("report for fr"));
        assert_eq!(count(), 2, "served from the cache");
        // An explicit ?lang= keys on the URI, and wins over the header.
        assert!(
            ask("/reports/1?lang=ar", "fr")
                .await
                .ends_with("report for fr")
        );
        assert_eq!(count(), 3);
        // A flood of header variants makes no entry of its own.
        for accept in ["de", "es,fr;q=0.1", "zz", "fr,fr,fr,fr", "*"] {
            ask("/reports/1", accept).await;
        }
        assert_eq!(count(), 3, "every variant maps to en or fr");
        // JSON is the same in every language: one computation for all.
        ask("/reports/1.json", "fr").await;
        ask("/reports/1.json", "ar").await;
        assert_eq!(count(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_computation() {
        let computed = Arc::new(AtomicUsize::new(0));
        let counter = computed.clone();
        let app = Router::new()
            .route(
                "/api/v1/maps/countries",
                get(move || {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "figures"
                    }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                PublicCache::default(),
                serve,
            ));
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut calls = Vec::new();
        for _ in 0..50 {
            calls.push(tokio::spawn(get_body(addr, "/api/v1/maps/countries")));
        }
        for call in calls {
            let answer = call.await.unwrap();
            assert!(
                answer.starts_with("HTTP/1.1 200") && answer.ends_with("figures"),
                "{answer}"
            );
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        tokio::time::sleep(FRESH_FOR + Duration::from_millis(100)).await;
        assert!(
            get_body(addr, "/api/v1/maps/countries")
                .await
                .ends_with("figures")
        );
        assert_eq!(
            computed.load(Ordering::SeqCst),
            2,
            "a stale entry was served"
        );
    }
}
