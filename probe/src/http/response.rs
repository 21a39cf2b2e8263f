//! Reading an HTTP/1.1 response from a server that may be hostile: the head is capped, the
//! body is counted (never stored) up to the caller's cap, and anything malformed is an
//! [`HttpError`], never a panic or unbounded memory.

use std::io;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::time::Instant;

/// Most bytes of one response head (status line and headers) read before giving up.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most bytes of a chunk-size line (with extensions).
const MAX_CHUNK_LINE: usize = 1024;
/// Interim (1xx) responses skipped before the final one at most.
const MAX_INTERIM: usize = 8;
/// Longest piece of a malformed line quoted in an error.
const QUOTE: usize = 80;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("reading the response: {0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection {0}")]
    Closed(&'static str),
    #[error("the response head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("malformed status line: {0}")]
    StatusLine(String),
    #[error("malformed header line: {0}")]
    HeaderLine(String),
    #[error("invalid Content-Length: {0}")]
    ContentLength(String),
    #[error("malformed chunk size line: {0}")]
    ChunkSize(String),
    #[error("a chunk is not followed by CRLF")]
    ChunkEnd,
    #[error("more than {MAX_INTERIM} interim (1xx) responses")]
    TooManyInterim,
    #[error("the body ended after {got} of {expected} bytes (Content-Length)")]
    ShortBody { got: u64, expected: u64 },
}

/// A response's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// "HTTP/1.1" or "HTTP/1.0".
    pub version: String,
    pub status: u16,
    /// Names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What has been read so far; the caller keeps it when the deadline cuts the reading short.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub first_byte: Option<Instant>,
    pub head: Option<Head>,
    pub body_bytes: u64,
    pub body_truncated: bool,
    /// Keep the body bytes read in `body` (never more than the caller's cap), for a caller
    /// that reads the page (readiness); the measurement of HTTP itself only counts them.
    pub keep_body: bool,
    pub body: Vec<u8>,
}

/// Reads the final response to a request (skipping interim 1xx responses) and counts its
/// body up to `max_body` bytes.
pub async fn read<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    head_request: bool,
    max_body: u64,
    progress: &mut Progress,
) -> Result<(), HttpError> {
    let mut interim = 0;
    let head = loop {
        let head = read_head(reader, progress).await?;
        // 101 ends HTTP/1.1 on this connection; other 1xx are followed by the real answer.
        if (100..200).contains(&head.status) && head.status != 101 {
            interim += 1;
            if interim > MAX_INTERIM {
                return Err(HttpError::TooManyInterim);
            }
            continue;
        }
        break head;
    };
    let framing = framing(&head, head_request)?;
    progress.head = Some(head);
    match framing {
        Framing::None => Ok(()),
        Framing::Length(length) => read_length(reader, length, max_body, progress).await,
        Framing::UntilClose => read_until_close(reader, max_body, progress).await,
        Framing::Chunked => read_chunked(reader, max_body, progress).await,
    }
}

/// The status line and headers, up to the blank line.
async fn read_head<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    progress: &mut Progress,
) -> Result<Head, HttpError> {
    let mut budget = MAX_HEAD;
    let mut line = Vec::new();
    if !read_line(reader, &mut line, &mut budget, progress).await? {
        return Err(HttpError::Closed("before sending a response"));
    }
    let (version, status) = status_line(&line)?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if !read_line(reader, &mut line, &mut budget, progress).await? {
            return Err(HttpError::Closed("in the middle of the response headers"));
        }
        if line.is_empty() {
            break;
        }
        headers.push(header_line(&line)?);
    }
    Ok(Head {
        version,
        status,
        headers,
    })
}

/// Reads one line into `line` without its line ending (CRLF, or a bare LF as RFC 9112
/// allows), charging it to `budget`. `false` at EOF before any byte of the line.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    budget: &mut usize,
    progress: &mut Progress,
) -> Result<bool, HttpError> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if line.is_empty() {
                return Ok(false);
            }
            return Err(HttpError::Closed("in the middle of a line"));
        }
        progress.first_byte.get_or_insert_with(Instant::now);
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if take > *budget {
            return Err(HttpError::HeadTooLarge);
        }
        *budget -= take;
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(true);
        }
    }
}

/// `HTTP/1.1 200 OK` → ("HTTP/1.1", 200).
pub fn status_line(line: &[u8]) -> Result<(String, u16), HttpError> {
    let bad = || HttpError::StatusLine(quote(line));
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().ok_or_else(bad)?;
    let code = parts.next().ok_or_else(bad)?;
    let digits = version.strip_prefix("HTTP/").ok_or_else(bad)?.as_bytes();
    let version_ok =
        matches!(digits, [major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit());
    if !version_ok || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let status: u16 = code.parse().map_err(|_| bad())?;
    if status < 100 {
        return Err(bad());
    }
    Ok((version.to_owned(), status))
}

/// `Name: value` → ("name", "value").
pub fn header_line(line: &[u8]) -> Result<(String, String), HttpError> {
    let bad = || HttpError::HeaderLine(quote(line));
    let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // A token (RFC 9110 5.1); no space before the colon and no obsolete line folding.
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if name.is_empty() || !name.iter().all(token) {
        return Err(bad());
    }
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        return Err(bad());
    }
    Ok((
        String::from_utf8_lossy(name).to_ascii_lowercase(),
        String::from_utf8_lossy(value)
            .trim_matches([' ', '\t'])
            .to_owned(),
    ))
}

/// The body's delimitation for a response to GET (or HEAD).
pub fn framing(head: &Head, head_request: bool) -> Result<Framing, HttpError> {
    if head_request || matches!(head.status, 100..=199 | 204 | 304) {
        return Ok(Framing::None);
    }
    let codings: Vec<String> = head
        .values("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        // A response whose final coding is not chunked is delimited by the close.
        return Ok(if last == "chunked" {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in head.values("content-length").flat_map(|v| v.split(',')) {
        let value = value.trim();
        let parsed =
            (!value.is_empty() && value.len() <= 19 && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| HttpError::ContentLength(quote(value.as_bytes())))?;
        match length {
            Some(previous) if previous != parsed => {
                return Err(HttpError::ContentLength(format!(
                    "conflicting values {previous} and {parsed}"
                )));
            }
            _ => length = Some(parsed),
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

async fn read_length<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    length: u64,
    max_body: u64,
    progress: &mut Progress,
) -> Result<(), HttpError> {
    let want = length.min(max_body);
    let got = count(reader, want, progress).await?;
    if got < want {
        return Err(HttpError::ShortBody {
            got,
            expected: length,
        });
    }
    progress.body_truncated = length > max_body;
    Ok(())
}

async fn read_until_close<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max_body: u64,
    progress: &mut Progress,
) -> Result<(), HttpError> {
    count(reader, max_body, progress).await?;
    if progress.body_bytes >= max_body {
        // At the cap: truncated if anything more comes before the close.
        progress.body_truncated = !reader.fill_buf().await?.is_empty();
    }
    Ok(())
}

async fn read_chunked<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max_body: u64,
    progress: &mut Progress,
) -> Result<(), HttpError> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut budget = MAX_CHUNK_LINE;
        if !read_line(reader, &mut line, &mut budget, progress)
            .await
            .map_err(|e| match e {
                HttpError::HeadTooLarge => HttpError::ChunkSize(quote(&line)),
                other => other,
            })?
        {
            return Err(HttpError::Closed("before the last chunk"));
        }
        let size = chunk_size(&line)?;
        if size == 0 {
            break;
        }
        let room = max_body.saturating_sub(progress.body_bytes);
        let want = size.min(room);
        let got = count(reader, want, progress).await?;
        if got < want {
            return Err(HttpError::Closed("in the middle of a chunk"));
        }
        if size > room {
            // The cap falls inside this chunk: the rest is not read.
            progress.body_truncated = true;
            return Ok(());
        }
        line.clear();
        let mut budget = 2;
        let ended = read_line(reader, &mut line, &mut budget, progress)
            .await
            .map_err(|_| HttpError::ChunkEnd)?;
        if !ended || !line.is_empty() {
            return Err(HttpError::ChunkEnd);
        }
        if progress.body_bytes >= max_body {
            // At the cap between chunks: truncated unless the last chunk follows.
            line.clear();
            let mut budget = MAX_CHUNK_LINE;
            if read_line(reader, &mut line, &mut budget, progress).await? {
                progress.body_truncated = chunk_size(&line)? != 0;
            }
            return Ok(());
        }
    }
    // Trailer fields, up to the blank line; their content is not needed.
    let mut budget = MAX_HEAD;
    loop {
        line.clear();
        if !read_line(reader, &mut line, &mut budget, progress).await? || line.is_empty() {
            return Ok(());
        }
    }
}

/// The size of a chunk-size line (`1a;ext=1` → 26).
pub fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let bad = || HttpError::ChunkSize(quote(line));
    let hex = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if hex.is_empty() || hex.len() > 16 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    let text = std::str::from_utf8(hex).map_err(|_| bad())?;
    u64::from_str_radix(text, 16).map_err(|_| bad())
}

/// Consumes up to `want` body bytes, counting them; fewer only at EOF.
async fn count<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    want: u64,
    progress: &mut Progress,
) -> Result<u64, HttpError> {
    let mut got = 0;
    while got < want {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            break;
        }
        let take = available
            .len()
            .min(usize::try_from(want - got).unwrap_or(usize::MAX));
        if progress.keep_body {
            progress
                .body
                .extend_from_slice(available.get(..take).unwrap_or_default());
        }
        reader.consume(take);
        got += take as u64;
        progress.body_bytes += take as u64;
    }
    Ok(got)
}

/// The start of a line as printable text, for error messages.
fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(QUOTE)];
    let mut text: String = shown.escape_ascii().to_string();
    if bytes.len() > QUOTE {
        text.push('…');
    }
    format!("\"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, BufReader};

    async fn read_all(
        bytes: &[u8],
        head_request: bool,
        max_body: u64,
    ) -> (Result<(), HttpError>, Progress) {
        let mut progress = Progress::default();
        let mut reader = bytes;
        let result = read(&mut reader, head_request, max_body, &mut progress).await;
        (result, progress)
    }

    async fn ok(bytes: &[u8], max_body: u64) -> (u16, u64, bool) {
        let (result, progress) = read_all(bytes, false, max_body).await;
        result.unwrap();
        let head = progress.head.unwrap();
        (head.status, progress.body_bytes, progress.body_truncated)
    }

    async fn err(bytes: &[u8]) -> String {
        read_all(bytes, false, 1 << 20)
            .await
            .0
            .unwrap_err()
            .to_string()
    }

    const LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nServer: x\r\n\r\nhello world";
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: 1\r\n\r\n";
    const CLOSE: &[u8] = b"HTTP/1.0 200 OK\nContent-Type: text/plain\n\nabc";

    #[tokio::test]
    async fn bodies_are_counted_by_their_framing_up_to_the_cap() {
        assert_eq!(ok(LENGTH, 1000).await, (200, 11, false));
        assert_eq!(ok(LENGTH, 11).await, (200, 11, false));
        assert_eq!(ok(LENGTH, 4).await, (200, 4, true));
        assert_eq!(ok(CHUNKED, 1000).await, (200, 11, false));
        assert_eq!(ok(CHUNKED, 11).await, (200, 11, false));
        assert_eq!(ok(CHUNKED, 7).await, (200, 7, true));
        assert_eq!(ok(CHUNKED, 5).await, (200, 5, true));
        assert_eq!(ok(CLOSE, 1000).await, (200, 3, false));
        assert_eq!(ok(CLOSE, 3).await, (200, 3, false));
        assert_eq!(ok(CLOSE, 2).await, (200, 2, true));
        let (_, progress) = read_all(CLOSE, false, 10).await;
        assert_eq!(progress.head.unwrap().version, "HTTP/1.0");
        // HEAD, 204 and 304 have no body whatever their headers say.
        let (result, progress) = read_all(LENGTH, true, 1000).await;
        result.unwrap();
        assert_eq!(progress.body_bytes, 0);
        for status in ["204 No Content", "304 Not Modified"] {
            let response = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
            assert_eq!(ok(response.as_bytes(), 100).await.1, 0);
        }
        // Interim responses are skipped; a redirect is the answer.
        let response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(ok(response, 100).await, (301, 0, false));
        // Repeated identical lengths are one length.
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(ok(response, 100).await, (200, 2, false));
        // A final coding other than chunked: delimited by the close.
        let response =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\nabcd";
        assert_eq!(ok(response, 100).await, (200, 4, false));
    }

    #[tokio::test]
    async fn hostile_responses_are_failures() {
        for (bytes, want) in [
            (
                &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
                "malformed status line: \"SSH-2.0",
            ),
            (
                b"\x16\x03\x01\x00\xff\x01\r\n",
                "malformed status line: \"\\x16",
            ),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"),
            (b"HTTP/1.1 099 Low\r\n\r\n", "malformed status line"),
            (b"HTTP/11 200 OK\r\n\r\n", "malformed status line"),
            (b"", "closed the connection before sending a response"),
            (
                b"HTTP/1.1 200 OK\r\nServer: x\r\n",
                "in the middle of the response headers",
            ),
            (
                b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                "malformed header line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
                "malformed header line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nBad Name: b\r\n\r\n",
                "malformed header line",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "conflicting values 1 and 2",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
                "ended after 5 of 100 bytes",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "malformed chunk size line: \"zz\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
                "malformed chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
                "not followed by CRLF",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                "in the middle of a chunk",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "before the last chunk",
            ),
        ] {
            let error = err(bytes).await;
            assert!(error.contains(want), "{bytes:?}: {error}");
        }
        let mut interim = Vec::new();
        for _ in 0..20 {
            interim.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        assert!(err(&interim).await.contains("interim"));
    }

    #[tokio::test]
    async fn endless_heads_and_huge_chunks_stay_bounded() {
        // One endless header line, and endless short header lines.
        let mut reader =
            BufReader::new((&b"HTTP/1.1 200 OK\r\nX: "[..]).chain(tokio::io::repeat(b'a')));
        let mut progress = Progress::default();
        let error = read(&mut reader, false, 100, &mut progress)
            .await
            .unwrap_err();
        assert!(matches!(error, HttpError::HeadTooLarge), "{error}");
        let mut lines = b"HTTP/1.1 200 OK\r\n".to_vec();
        while lines.len() <= MAX_HEAD {
            lines.extend_from_slice(b"X-Filler: 0123456789\r\n");
        }
        assert!(err(&lines).await.contains("larger than 65536"));
        // A chunk of 2^64 - 1 bytes and an endless close-delimited body: read to the cap.
        for start in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
        ] {
            let mut reader = BufReader::new(start.chain(tokio::io::repeat(b'a')));
            let mut progress = Progress::default();
            read(&mut reader, false, 1 << 20, &mut progress)
                .await
                .unwrap();
            assert_eq!(
                (progress.body_bytes, progress.body_truncated),
                (1 << 20, true)
            );
        }
    }

    #[test]
    fn lines_parse() {
        assert_eq!(
            status_line(b"HTTP/1.1 404 Not Found").unwrap(),
            ("HTTP/1.1".to_owned(), 404)
        );
        assert_eq!(status_line(b"HTTP/1.0 200").unwrap().1, 200);
        assert_eq!(
            header_line(b"Content-Type:  text/plain \t").unwrap(),
            ("content-type".to_owned(), "text/plain".to_owned())
        );
        assert_eq!(chunk_size(b"1A ; name=value").unwrap(), 26);
        assert_eq!(chunk_size(b"ffffffffffffffff").unwrap(), u64::MAX);
        assert!(chunk_size(b"").is_err());
    }
}
