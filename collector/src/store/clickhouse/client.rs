//! A small blocking client for ClickHouse's HTTP interface.
//!
//! The [`Store`](super::super::Store) trait is synchronous and is called from blocking threads
//! and, for quick reads, from async tasks. Requests therefore run on a private single-thread
//! tokio runtime owned by this client (its own thread), and callers wait on them with a
//! tiny park/unpark executor: that never enters the caller's runtime, so it neither panics
//! inside an async context nor deadlocks a current-thread runtime.
//!
//! Every request has a deadline; a response body is read with a deadline per chunk, so a
//! long export streams as long as data keeps coming. A non-200 answer becomes an error
//! carrying ClickHouse's exception text (it sends it as the body).

use super::super::StoreError;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// Longest error body kept from ClickHouse.
const MAX_ERROR_BODY: usize = 4096;
/// Chunks of a streamed answer buffered ahead of the reader.
const STREAM_BUFFER: usize = 16;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct Endpoint {
    /// `http://host:port/` (with the trailing slash).
    pub base: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches logs.
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A statement as sent, kept when recording is on (see [`HttpClient::record`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sent {
    pub sql: String,
    /// Rows sent with an INSERT (bytes above ASCII written as TabSeparated `\xHH` escapes,
    /// which ClickHouse reads as the same bytes, so the text replays anywhere).
    pub data: Option<String>,
}

pub struct HttpClient {
    endpoint: Endpoint,
    handle: tokio::runtime::Handle,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    /// Dropping it ends the runtime's thread.
    _stop: tokio::sync::oneshot::Sender<()>,
    recorded: Option<Mutex<Vec<Sent>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn backend(text: String) -> StoreError {
    StoreError::Backend(text)
}

/// The start of a statement, for error messages.
fn head(sql: &str) -> String {
    let line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// Percent-encodes a query-string value.
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

impl HttpClient {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Result<Self, StoreError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("clickhouse-http".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Serves spawned requests until the client is dropped.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| backend(format!("cannot start the ClickHouse client thread: {e}")))?;
        let handle = handle_rx
            .recv()
            .map_err(|e| backend(format!("ClickHouse client thread ended: {e}")))?
            .map_err(|e| backend(format!("cannot start the ClickHouse client runtime: {e}")))?;
        let mut connector = HttpConnector::new();
        // Requests are written as headers then body: without TCP_NODELAY, Nagle's algorithm
        // and the server's delayed ACK would hold the body back for tens of milliseconds.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            // Below the server's keep_alive_timeout (3 s by default), so a pooled connection
            // is not reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(2))
            .build(connector);
        Ok(Self {
            endpoint,
            handle,
            client,
            timeout,
            _stop: stop,
            recorded: None,
        })
    }

    /// Keeps every statement sent from now on (tests replay them on other ClickHouse versions).
    pub fn record(&mut self) {
        self.recorded = Some(Mutex::new(Vec::new()));
    }

    pub fn recorded(&self) -> Vec<Sent> {
        self.recorded
            .as_ref()
            .and_then(|r| r.lock().ok().map(|r| r.clone()))
            .unwrap_or_default()
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn keep(&self, sql: &str, data: Option<&str>) {
        if let Some(recorded) = &self.recorded
            && let Ok(mut recorded) = recorded.lock()
        {
            recorded.push(Sent {
                sql: sql.to_owned(),
                data: data.map(str::to_owned),
            });
        }
    }

    /// The request URL: credentials, and `insert_distributed_sync` so an INSERT into a
    /// Distributed table returns only once the rows reached their shards.
    fn url(&self, query_in_url: Option<&str>) -> String {
        let mut url = format!(
            "{}?user={}&password={}&insert_distributed_sync=1",
            self.endpoint.base,
            encode_component(&self.endpoint.user),
            encode_component(&self.endpoint.password)
        );
        if let Some(query) = query_in_url {
            url.push_str("&query=");
            url.push_str(&encode_component(query));
        }
        url
    }

    /// Sends one request and returns the response once its status is 200.
    fn send(
        &self,
        sql: &str,
        data: Option<Bytes>,
    ) -> impl Future<Output = Result<hyper::Response<Incoming>, StoreError>> + Send + 'static {
        // With rows, the statement goes in the URL and the rows in the body; without, the
        // statement is the body (no URL length limit).
        let (url, body) = match data {
            Some(rows) => (self.url(Some(sql)), rows),
            None => (self.url(None), Bytes::from(sql.to_owned())),
        };
        let client = self.client.clone();
        let timeout = self.timeout;
        let what = head(sql);
        let base = self.endpoint.base.clone();
        async move {
            let mut attempt = 0;
            let response = loop {
                attempt += 1;
                let request = hyper::Request::post(url.as_str())
                    .body(Full::new(body.clone()))
                    .map_err(|e| backend(format!("bad ClickHouse request for {what}: {e}")))?;
                match tokio::time::timeout(timeout, client.request(request)).await {
                    Err(_) => {
                        return Err(backend(format!(
                            "ClickHouse at {base} did not answer within {timeout:?}: {what}"
                        )));
                    }
                    Ok(Ok(response)) => break response,
                    // A pooled connection the server closed meanwhile fails like this; one
                    // retry is safe because every statement the store sends is idempotent
                    // (reads dedup by key, rows carry their own versions and nonces).
                    Ok(Err(e)) if attempt < 2 => {
                        tracing::debug!(error = ?e, "ClickHouse request failed, retrying once");
                    }
                    Ok(Err(e)) => {
                        return Err(backend(format!("ClickHouse at {base} unreachable: {e:?}")));
                    }
                }
            };
            if response.status() == hyper::StatusCode::OK {
                return Ok(response);
            }
            let status = response.status();
            let mut body = response.into_body();
            let mut text = Vec::new();
            while text.len() < MAX_ERROR_BODY {
                match tokio::time::timeout(timeout, body.frame()).await {
                    Ok(Some(Ok(frame))) => {
                        if let Ok(chunk) = frame.into_data() {
                            text.extend_from_slice(&chunk);
                        }
                    }
                    _ => break,
                }
            }
            text.truncate(MAX_ERROR_BODY);
            Err(backend(format!(
                "ClickHouse refused {what}: HTTP {status}: {}",
                String::from_utf8_lossy(&text).trim()
            )))
        }
    }

    /// Runs a statement and returns the whole answer.
    pub fn query(&self, sql: &str) -> Result<String, StoreError> {
        String::from_utf8(self.query_bytes(sql)?)
            .map_err(|e| backend(format!("ClickHouse answer is not UTF-8: {e}")))
    }

    /// Runs a statement and returns the whole answer as bytes (binary columns).
    pub fn query_bytes(&self, sql: &str) -> Result<Vec<u8>, StoreError> {
        self.keep(sql, None);
        let response = self.send(sql, None);
        let timeout = self.timeout;
        let what = head(sql);
        let answer = self.run(async move {
            let response = response.await?;
            let collected = tokio::time::timeout(timeout, response.into_body().collect())
                .await
                .map_err(|_| backend(format!("ClickHouse answer to {what} timed out")))?
                .map_err(|e| backend(format!("reading ClickHouse answer to {what}: {e}")))?;
            Ok(collected.to_bytes())
        })?;
        Ok(answer.to_vec())
    }

    /// Runs `INSERT INTO … FORMAT …` with `rows` as its data.
    pub fn insert(&self, sql: &str, rows: String) -> Result<(), StoreError> {
        self.insert_bytes(sql, Bytes::from(rows))
    }

    /// Runs `INSERT INTO … FORMAT …` with `rows` (any bytes, e.g. TabSeparated with binary
    /// strings) as its data.
    pub fn insert_bytes(&self, sql: &str, rows: Bytes) -> Result<(), StoreError> {
        if self.recorded.is_some() {
            self.keep(sql, Some(&ascii_escaped(&rows)));
        }
        let response = self.send(sql, Some(rows));
        let timeout = self.timeout;
        self.run(async move {
            let response = response.await?;
            // Drain the (empty) answer so the connection goes back to the pool.
            let _ = tokio::time::timeout(timeout, response.into_body().collect()).await;
            Ok(())
        })
    }

    /// Runs a query whose answer is read line by line as it arrives.
    pub fn stream(&self, sql: &str) -> Result<Lines, StoreError> {
        self.keep(sql, None);
        let response = self.send(sql, None);
        let timeout = self.timeout;
        let what = head(sql);
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let mut body = match response.await {
                Ok(response) => {
                    let _ = ready_tx.send(Ok(()));
                    response.into_body()
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            loop {
                let chunk = match tokio::time::timeout(timeout, body.frame()).await {
                    Err(_) => Err(backend(format!(
                        "ClickHouse stopped sending the answer to {what} for {timeout:?}"
                    ))),
                    Ok(None) => return,
                    Ok(Some(Err(e))) => {
                        Err(backend(format!("reading ClickHouse answer to {what}: {e}")))
                    }
                    Ok(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => Ok(data),
                        Err(_) => continue,
                    },
                };
                let failed = chunk.is_err();
                // The reader went away (it stopped early): dropping the body closes the
                // connection, which makes ClickHouse cancel the query.
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        block_on(ready_rx).map_err(|_| backend("ClickHouse client stopped".into()))??;
        Ok(Lines {
            chunks: rx,
            buffer: Vec::new(),
            done: false,
        })
    }

    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        block_on(self.handle.spawn(work))
            .map_err(|e| backend(format!("ClickHouse request task failed: {e}")))?
    }
}

/// The lines of a streamed answer.
#[derive(Debug)]
pub struct Lines {
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, StoreError>>,
    buffer: Vec<u8>,
    done: bool,
}

impl Lines {
    /// The next line without its newline; `None` at the end of the answer.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.done {
                return Ok((!self.buffer.is_empty()).then(|| std::mem::take(&mut self.buffer)));
            }
            match block_on(self.chunks.recv()) {
                Some(chunk) => self.buffer.extend_from_slice(&chunk?),
                None => self.done = true,
            }
        }
    }
}

/// TabSeparated data as ASCII text: bytes above 0x7f become `\xHH`, which ClickHouse's
/// TabSeparated parser reads back as the same byte.
fn ascii_escaped(rows: &[u8]) -> String {
    let mut out = String::with_capacity(rows.len());
    for &b in rows {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits for a future on the calling thread, outside any tokio runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(
            encode_component("INSERT INTO a.b FORMAT x&y=1"),
            "INSERT%20INTO%20a.b%20FORMAT%20x%26y%3D1"
        );
        assert_eq!(encode_component("é"), "%C3%A9");
    }

    #[test]
    fn heads_are_short_single_lines() {
        assert_eq!(head("SELECT 1\n  FROM  t"), "SELECT 1 FROM t");
        assert!(head(&"x ".repeat(200)).ends_with('…'));
    }
}
