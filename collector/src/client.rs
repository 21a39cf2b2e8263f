//! The command line's HTTP client for a running collector's API (the `campaign` commands and
//! the admin commands with `--url`): HTTP/1.1 over a plain TCP stream, one request per
//! connection. A few dozen lines instead of an HTTP client crate and its dependencies. Every
//! error names the collector's URL, so a script's log says which collector refused.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where the CLI finds the collector when no flag says: `SIXMAP_COLLECTOR`.
pub const URL_ENV: &str = "SIXMAP_COLLECTOR";
/// The API token the CLI sends when no flag gives one: `SIXMAP_API_TOKEN`.
pub const TOKEN_ENV: &str = "SIXMAP_API_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "collector URL {0:?}: expected http://HOST:PORT (the collector serves plain HTTP; put a TLS reverse proxy in front for remote access)"
    )]
    Url(String),
    #[error("cannot reach the collector at {url}: {source}")]
    Connect { url: String, source: std::io::Error },
    #[error("collector at {0}: malformed HTTP response")]
    Response(String),
    #[error("collector at {url}: {what}: {message} (HTTP {status})")]
    Status {
        url: String,
        what: String,
        status: u16,
        message: String,
    },
}

/// A collector's HTTP API base, `http://host:port`.
#[derive(Debug, Clone)]
pub struct Client {
    /// `http://host:port`, as errors show it.
    url: String,
    authority: String,
    /// API token sent as `Authorization: Bearer …`.
    token: Option<String>,
}

/// An HTTP response: status and body, and the collector it came from.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The body as text (invalid UTF-8 replaced), for JSON, CSV and HTML.
    pub body: String,
    /// The body as received, for binary bodies (a PDF report).
    pub bytes: Vec<u8>,
    pub url: String,
}

impl Reply {
    /// The body of a 2xx reply; otherwise an error with the collector's message (the
    /// `error` of its JSON body), its URL and `what` the caller was doing.
    pub fn into_ok(self, what: &str) -> Result<String, ClientError> {
        if (200..300).contains(&self.status) {
            return Ok(self.body);
        }
        let message = serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(self.body);
        Err(ClientError::Status {
            url: self.url,
            what: what.to_owned(),
            status: self.status,
            message,
        })
    }
}

impl Client {
    pub fn new(url: &str) -> Result<Self, ClientError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::Url(url.into()))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(ClientError::Url(url.into()));
        }
        Ok(Self {
            url: format!("http://{authority}"),
            authority: authority.to_owned(),
            token: None,
        })
    }

    /// `http://host:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether requests carry an API token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Sends `token` as the bearer token with every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    pub fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, content_type: &str, body: &str) -> Result<Reply, ClientError> {
        self.request("POST", path, Some((content_type, body)))
    }

    pub fn delete(&self, path: &str) -> Result<Reply, ClientError> {
        self.request("DELETE", path, None)
    }

    /// GET `path` and hand each line of the body to `on_line` as it arrives (a streamed,
    /// chunked JSON-lines response: `GET /api/v1/measurements/{id}/results?follow=true`),
    /// until the body ends or `on_line` returns false. A refusal (non-2xx) is an error with
    /// the collector's message, as [`Reply::into_ok`] makes it. `idle` bounds the wait for
    /// each read.
    pub fn get_lines(
        &self,
        path: &str,
        what: &str,
        idle: Duration,
        on_line: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), ClientError> {
        let connect = |e| ClientError::Connect {
            url: self.url.clone(),
            source: e,
        };
        let stream = self.send("GET", path, None, idle)?;
        let mut reader = std::io::BufReader::new(stream);
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut line = Vec::new();
            // The head is small: 64 KiB bounds what a broken server can make us hold.
            let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(connect)?;
            if n == 0 || head.len() > 64 * 1024 {
                return Err(ClientError::Response(self.url.clone()));
            }
            head.extend_from_slice(&line);
        }
        let head_text = String::from_utf8_lossy(&head).into_owned();
        let status: u16 = head_text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Response(self.url.clone()))?;
        let chunked = head_text.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("transfer-encoding:") && l.contains("chunked")
        });
        if !(200..300).contains(&status) {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest).map_err(connect)?;
            let mut raw = head;
            raw.extend_from_slice(&rest);
            self.reply(&raw)?.into_ok(what)?;
            return Ok(());
        }
        let mut pending: Vec<u8> = Vec::new();
        let mut deliver = |pending: &mut Vec<u8>| -> bool {
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() && !on_line(text) {
                    return false;
                }
            }
            true
        };
        loop {
            let data = if chunked {
                let mut size_line = String::new();
                std::io::BufRead::read_line(&mut reader, &mut size_line).map_err(connect)?;
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| ClientError::Response(self.url.clone()))?;
                if size == 0 {
                    break;
                }
                let mut data = vec![0; size + 2];
                reader.read_exact(&mut data).map_err(connect)?;
                data.truncate(size);
                data
            } else {
                let mut data = vec![0; 16 * 1024];
                let n = reader.read(&mut data).map_err(connect)?;
                if n == 0 {
                    break;
                }
                data.truncate(n);
                data
            };
            pending.extend_from_slice(&data);
            if !deliver(&mut pending) {
                return Ok(());
            }
            // A line longer than 16 MiB is no result line.
            if pending.len() > 16 << 20 {
                return Err(ClientError::Response(self.url.clone()));
            }
        }
        pending.push(b'\n');
        deliver(&mut pending);
        Ok(())
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> Result<Reply, ClientError> {
        let connect = |e| ClientError::Connect {
            url: self.url.clone(),
            source: e,
        };
        let mut stream = self.send(method, path, body, Duration::from_secs(120))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(connect)?;
        self.reply(&raw)
    }

    /// The reply of a whole HTTP/1.1 response read from this collector.
    fn reply(&self, raw: &[u8]) -> Result<Reply, ClientError> {
        let (status, body) =
            parse_response(raw).ok_or_else(|| ClientError::Response(self.url.clone()))?;
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            bytes: body,
            url: self.url.clone(),
        })
    }

    /// Connects and sends a request; the stream is left to read the response from.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
        read_timeout: Duration,
    ) -> Result<TcpStream, ClientError> {
        let connect = |e| ClientError::Connect {
            url: self.url.clone(),
            source: e,
        };
        // A synchronous client of the CLI: blocking name resolution is what it wants.
        #[allow(clippy::disallowed_methods)]
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(connect)?
            .next()
            .ok_or_else(|| ClientError::Url(self.url.clone()))?;
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(connect)?;
        stream
            .set_read_timeout(Some(read_timeout))
            .map_err(connect)?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\n",
            self.authority
        );
        if let Some(token) = &self.token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some((content_type, body)) = body {
            request.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            request.push_str("\r\n");
        }
        stream.write_all(request.as_bytes()).map_err(connect)?;
        Ok(stream)
    }
}

/// Status and body (de-chunked) of a whole HTTP/1.1 response.
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some((status, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.0, r.1.as_slice()), (201, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.1, b"abcde");
        assert!(Client::new("https://x:1").is_err());
        assert!(Client::new("http://[::1]:7480/").is_ok());
    }

    /// A one-connection server answering `response` in the given pieces, a pause between
    /// them (so the client reads lines as they come, not at the end).
    fn serve_once(pieces: Vec<&'static [u8]>) -> Client {
        let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf);
            for piece in pieces {
                socket.write_all(piece).unwrap();
                socket.flush().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Client::new(&format!("http://{addr}")).unwrap()
    }

    #[test]
    fn streamed_lines_arrive_one_by_one_and_refusals_are_errors() {
        let client = serve_once(vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            b"4\r\n{\"a\"\r\n",
            b"5\r\n:1}\n{\r\n",
            b"7\r\n\"b\":2}\n\r\n",
            b"0\r\n\r\n",
        ]);
        let mut lines = Vec::new();
        client
            .get_lines("/x", "follow", Duration::from_secs(5), &mut |l| {
                lines.push(l.to_owned());
                true
            })
            .unwrap();
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}"]);
        // The caller may stop early.
        let client = serve_once(vec![b"HTTP/1.1 200 OK\r\n\r\none\ntwo\nthree\n"]);
        let mut n = 0;
        client
            .get_lines("/x", "follow", Duration::from_secs(5), &mut |_| {
                n += 1;
                false
            })
            .unwrap();
        assert_eq!(n, 1);
        let client = serve_once(vec![
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 31\r\n\r\n{\"error\": \"no campaign 9\", \"x\":1}",
        ]);
        let e = client
            .get_lines("/x", "follow", Duration::from_secs(5), &mut |_| true)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("follow: no campaign 9 (HTTP 404)"), "{e}");
    }

    #[test]
    fn refusals_name_the_collector_and_its_message() {
        let reply = |status: u16, body: &str| Reply {
            status,
            body: body.into(),
            bytes: body.as_bytes().to_vec(),
            url: "http://[::1]:7480".into(),
        };
        assert_eq!(reply(200, "{}").into_ok("list").unwrap(), "{}");
        let e = reply(403, r#"{"error": "needs role admin", "status": 403}"#)
            .into_ok("revoke")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "collector at http://[::1]:7480: revoke: needs role admin (HTTP 403)"
        );
        // A body that is not the API's JSON (a proxy's page) is shown as it is.
        let e = reply(502, "Bad Gateway").into_ok("list").unwrap_err();
        assert!(
            e.to_string().ends_with("list: Bad Gateway (HTTP 502)"),
            "{e}"
        );
        let e = Client::new("https://x:1").unwrap_err().to_string();
        assert!(e.contains("\"https://x:1\""), "{e}");
    }
}
