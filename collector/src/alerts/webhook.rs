//! One webhook request: a small HTTP/1.1 POST over tokio, under one deadline from connect
//! to status line. Only the status line is read (at most [`MAX_STATUS_LINE`] bytes) and the
//! connection is then closed, so a receiver that never answers costs the deadline and one
//! that answers a huge body costs nothing: it never reaches memory.

use super::Alert;
use super::hmac;
use crate::config::Webhook;
use sixmap_shared::UnixMicros;
use sixmap_shared::version::SOFTWARE_VERSION;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest status line read; a longer one is an error.
const MAX_STATUS_LINE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connecting to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding the alert: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("answer is not an HTTP/1.x status line")]
    BadStatusLine,
    #[error("answered status {0}")]
    Status(u16),
}

/// The request's bytes: headers, then the alert as JSON. `now` is the signed timestamp.
pub fn request(hook: &Webhook, alert: &Alert, now: UnixMicros) -> Result<Vec<u8>, WebhookError> {
    let body = serde_json::to_vec(alert)?;
    let timestamp = now.0.div_euclid(1_000_000);
    let signature = hmac::signature(&hook.secret, timestamp, &body);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sixmap-collector/{SOFTWARE_VERSION}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nX-Sixmap-Alert-Id: {}\r\n\
         X-Sixmap-Timestamp: {timestamp}\r\nX-Sixmap-Signature: {signature}\r\n\
         Connection: close\r\n\r\n",
        hook.path,
        hook.authority,
        body.len(),
        alert.id,
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// The status code of a status line (`HTTP/1.1 204 No Content`).
pub fn status_of(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// POSTs `alert` to `hook`; `Ok` only for a 2xx status within `timeout`.
pub async fn post(
    hook: &Webhook,
    alert: &Alert,
    now: UnixMicros,
    timeout: Duration,
) -> Result<(), WebhookError> {
    let bytes = request(hook, alert, now)?;
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(authority_with_port(&hook.authority))
            .await
            .map_err(|source| WebhookError::Connect {
                authority: hook.authority.clone(),
                source,
            })?;
        stream.write_all(&bytes).await?;
        let mut line = Vec::with_capacity(64);
        let mut buf = [0u8; 256];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(WebhookError::BadStatusLine);
            }
            line.extend_from_slice(&buf[..n]);
            if let Some(end) = line.windows(2).position(|w| w == b"\r\n") {
                line.truncate(end);
                break;
            }
            if line.len() > MAX_STATUS_LINE {
                return Err(WebhookError::BadStatusLine);
            }
        }
        match status_of(&line) {
            Some(code) if (200..300).contains(&code) => Ok(()),
            Some(code) => Err(WebhookError::Status(code)),
            None => Err(WebhookError::BadStatusLine),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| WebhookError::Timeout(timeout))?
}

/// `host` alone means port 80.
fn authority_with_port(authority: &str) -> String {
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content"), Some(204));
        assert_eq!(status_of(b"HTTP/1.0 500"), Some(500));
        assert_eq!(status_of(b"HTTP/2 200 OK"), None);
        assert_eq!(status_of(b"HTTP/1.1 20 OK"), None);
        assert_eq!(status_of(b"garbage"), None);
    }

    #[test]
    fn default_port() {
        assert_eq!(authority_with_port("example.org"), "example.org:80");
        assert_eq!(authority_with_port("example.org:8080"), "example.org:8080");
        assert_eq!(authority_with_port("[::1]"), "[::1]:80");
        assert_eq!(authority_with_port("[::1]:9"), "[::1]:9");
    }

    #[test]
    fn the_request_is_signed_over_timestamp_and_body() {
        let hook = Webhook {
            name: "w".into(),
            authority: "[::1]:9".into(),
            path: "/in".into(),
            secret: b"0123456789abcdef".to_vec(),
        };
        let alert = Alert {
            id: "abc".into(),
            rule: "r".into(),
            kind: "probe_offline".into(),
            subject: "probe:x".into(),
            created_at: UnixMicros(1),
            summary: "s".into(),
            evidence: serde_json::json!({}),
            links: vec![],
        };
        let bytes = request(&hook, &alert, UnixMicros(1_700_000_000_500_000)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /in HTTP/1.1\r\nHost: [::1]:9\r\n"));
        assert!(head.contains("X-Sixmap-Alert-Id: abc\r\n"));
        assert!(head.contains("X-Sixmap-Timestamp: 1700000000\r\n"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        let expected = hmac::signature(b"0123456789abcdef", 1_700_000_000, body.as_bytes());
        assert!(head.contains(&format!("X-Sixmap-Signature: {expected}\r\n")));
        assert_eq!(serde_json::from_str::<Alert>(body).unwrap(), alert);
    }
}
