//! The export CLI's client for a running collector's `GET /api/v1/export`: HTTP/1.1 over a
//! plain TCP stream (the collector's HTTP listener serves plain HTTP; put a TLS reverse
//! proxy in front for remote access), the body streamed to the output as it arrives, the
//! row counts read from the trailers. A body cut short (no final chunk: the collector aborts
//! the transfer when an export fails) is an error; a complete body without trailers (a proxy
//! that drops them) is accepted without counts.

use super::ExportStats;
use super::http::{ROWS_TRAILER, SKIPPED_TRAILER};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "--url {0:?}: expected http://HOST:PORT (the collector serves plain HTTP; use a reverse proxy for HTTPS)"
    )]
    Url(String),
    #[error("collector at {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("collector at {addr} answered {status}: {message}")]
    Status {
        addr: String,
        status: u16,
        message: String,
    },
    #[error("collector at {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

/// `http://host:port` → `host:port`.
pub fn authority(url: &str) -> Result<String, RemoteError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| RemoteError::Url(url.into()))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(RemoteError::Url(url.into()));
    }
    Ok(authority.to_owned())
}

/// Percent-encodes a query component.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fetches `/api/v1/export?<query>` into `out`; `progress` gets the bytes received so far.
/// The counts are `None` when the trailers did not arrive.
pub fn fetch(
    url: &str,
    token: Option<&str>,
    query: &str,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<Option<ExportStats>, RemoteError> {
    let addr = authority(url)?;
    let io = |source| RemoteError::Io {
        addr: addr.clone(),
        source,
    };
    let protocol = |reason: &str| RemoteError::Protocol {
        addr: addr.clone(),
        reason: reason.to_owned(),
    };
    // The CLI's synchronous export client: blocking name resolution is what it wants.
    #[allow(clippy::disallowed_methods)]
    let socket = addr
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| RemoteError::Url(url.into()))?;
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(10)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .map_err(io)?;
    let mut request = format!(
        "GET /api/v1/export?{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nTE: trailers\r\nAccept: */*\r\n"
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;

    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(io)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol("malformed status line"))?;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(io)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    if status != 200 {
        let mut body = Vec::new();
        let _ = reader.take(64 * 1024).read_to_end(&mut body);
        let text = String::from_utf8_lossy(&body).into_owned();
        let message = serde_json::from_str::<serde_json::Value>(text.trim())
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(RemoteError::Status {
            addr,
            status,
            message,
        });
    }
    if !chunked {
        // Every complete export ends with its counts in trailers, which need chunking.
        return Err(protocol(
            "the response is not chunked, so it carries no row counts",
        ));
    }
    let mut received = 0u64;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(io)? == 0 {
            return Err(protocol("the export ended early (the collector logs why)"));
        }
        let size_text = line.trim_end().split(';').next().unwrap_or("").trim();
        let mut size =
            u64::from_str_radix(size_text, 16).map_err(|_| protocol("malformed chunk size"))?;
        if size == 0 {
            break;
        }
        while size > 0 {
            let want = usize::try_from(size.min(buffer.len() as u64)).unwrap_or(buffer.len());
            let n = reader.read(&mut buffer[..want]).map_err(io)?;
            if n == 0 {
                return Err(protocol("the export ended early (the collector logs why)"));
            }
            out.write_all(&buffer[..n]).map_err(io)?;
            size -= n as u64;
            received += n as u64;
        }
        progress(received);
        line.clear();
        reader.read_line(&mut line).map_err(io)?;
    }
    let mut stats = (None, None);
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(io)? == 0 {
            break;
        }
        let trailer = line.trim_end();
        if trailer.is_empty() {
            break;
        }
        if let Some((name, value)) = trailer.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().parse::<u64>().ok();
            if name == ROWS_TRAILER {
                stats.0 = value;
            } else if name == SKIPPED_TRAILER {
                stats.1 = value;
            }
        }
    }
    out.flush().map_err(io)?;
    Ok(match stats {
        (Some(rows), Some(skipped)) => Some(ExportStats { rows, skipped }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_plain_http_authorities() {
        assert_eq!(authority("http://[::1]:7480/").unwrap(), "[::1]:7480");
        let err = authority("https://collector.example:7480").unwrap_err();
        assert!(err.to_string().contains("plain HTTP"), "{err}");
        assert!(authority("http://host:1/api").is_err());
    }

    #[test]
    fn query_values_round_trip_through_encoding() {
        let value = "2026-03-01T00:00:00Z&x=1 +/";
        let pairs = super::super::http::query_pairs(&format!("from={}", encode(value))).unwrap();
        assert_eq!(pairs, [("from".to_owned(), value.to_owned())]);
    }
}
