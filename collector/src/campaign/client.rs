//! The CLI's HTTP client for the campaign API: HTTP/1.1 over a plain TCP stream, one request
//! per connection. A few dozen lines instead of an HTTP client crate and its dependencies.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--collector {0:?}: expected http://HOST:PORT (HTTPS needs a reverse proxy for now)")]
    Url(String),
    #[error("cannot reach the collector at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("collector at {0}: malformed HTTP response")]
    Response(String),
}

/// A collector's HTTP API base, `http://host:port`.
#[derive(Debug, Clone)]
pub struct Client {
    authority: String,
    /// API token sent as `Authorization: Bearer …` (campaign writes need a campaigner's).
    token: Option<String>,
}

/// An HTTP response: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The body as text (invalid UTF-8 replaced), for JSON, CSV and HTML.
    pub body: String,
    /// The body as received, for binary bodies (a PDF report).
    pub bytes: Vec<u8>,
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
            authority: authority.to_owned(),
            token: None,
        })
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

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
    ) -> Result<Reply, ClientError> {
        let connect = |e| ClientError::Connect {
            addr: self.authority.clone(),
            source: e,
        };
        // A synchronous client of the CLI: blocking name resolution is what it wants.
        #[allow(clippy::disallowed_methods)]
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(connect)?
            .next()
            .ok_or_else(|| ClientError::Url(self.authority.clone()))?;
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(connect)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
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
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(connect)?;
        parse_response(&raw).ok_or_else(|| ClientError::Response(self.authority.clone()))
    }
}

fn parse_response(raw: &[u8]) -> Option<Reply> {
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
    Some(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        bytes: body,
    })
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
        assert_eq!((r.status, r.body.as_str()), (201, "{}"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, "abcde");
        assert!(Client::new("https://x:1").is_err());
        assert!(Client::new("http://[::1]:7480/").is_ok());
    }
}
