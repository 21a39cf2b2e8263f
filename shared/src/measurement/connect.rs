//! Connection-level measurements: TCP connect, TLS handshake, HTTP(S) request, QUIC handshake.

use super::{IcmpError, SpecError, field};
use serde::{Deserialize, Serialize};

/// How a TCP connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectOutcome {
    Connected,
    /// RST: the host is up and the port closed.
    Refused,
    /// No answer at all (filtered, black-holed, host down without an ICMP error).
    Timeout,
    /// An ICMP destination-unreachable error, or no route locally.
    Unreachable,
}

impl ConnectOutcome {
    /// The outcome in words, for people (CLI output, dashboards, reports).
    pub fn words(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Refused => "refused",
            Self::Timeout => "timed out",
            Self::Unreachable => "unreachable",
        }
    }
}

fn port(field_name: &'static str, raw: u32, default: u16) -> Result<u16, SpecError> {
    match raw {
        0 => Ok(default),
        n => u16::try_from(n).map_err(|_| field(field_name, "must be 0 (default) or 1..=65535")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpSpec {
    port: u16,
}

impl TcpSpec {
    pub fn new(port: u32) -> Result<Self, SpecError> {
        match port {
            1..=65535 => Ok(Self { port: port as u16 }),
            _ => Err(field("tcp.port", "must be 1..=65535")),
        }
    }
    pub fn port(&self) -> u16 {
        self.port
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpResult {
    pub port: u16,
    pub outcome: ConnectOutcome,
    /// Time to the SYN-ACK (connected) or to the RST / error.
    pub connect_ns: Option<u64>,
    /// The ICMP error behind `unreachable`, when the kernel reported it.
    pub icmp_error: Option<IcmpError>,
}

pub const MAX_ALPN: usize = 8;
const MAX_TEXT: usize = 4096;

fn alpn_list(field_name: &'static str, alpn: Vec<String>) -> Result<Vec<String>, SpecError> {
    if alpn.len() > MAX_ALPN {
        return Err(field(field_name, format!("at most {MAX_ALPN} protocols")));
    }
    if let Some(bad) = alpn
        .iter()
        .find(|p| p.is_empty() || p.len() > 255 || !p.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(field(
            field_name,
            format!("{bad:?} is not 1..=255 printable ASCII bytes"),
        ));
    }
    Ok(alpn)
}

fn checked_server_name(
    field_name: &'static str,
    name: Option<&str>,
) -> Result<Option<String>, SpecError> {
    match name {
        None | Some("") => Ok(None),
        Some(name) => match super::Target::hostname(name) {
            Ok(super::Target::Hostname(h)) => Ok(Some(h)),
            _ => Err(field(field_name, format!("{name:?} is not a DNS name"))),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSpec {
    port: u16,
    server_name: Option<String>,
    alpn: Vec<String>,
}

impl TlsSpec {
    /// `port` 0 selects 443; no `server_name` means the target's host name (none for literals).
    pub fn new(port: u32, server_name: Option<&str>, alpn: Vec<String>) -> Result<Self, SpecError> {
        Ok(Self {
            port: self::port("tls.port", port, 443)?,
            server_name: checked_server_name("tls.server_name", server_name)?,
            alpn: alpn_list("tls.alpn", alpn)?,
        })
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }
    pub fn alpn(&self) -> &[String] {
        &self.alpn
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    pub not_before: Option<crate::UnixMicros>,
    pub not_after: Option<crate::UnixMicros>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsResult {
    pub connect: ConnectOutcome,
    pub connect_ns: Option<u64>,
    pub handshake_ok: bool,
    pub handshake_ns: Option<u64>,
    /// e.g. "TLSv1.3".
    pub version: Option<String>,
    pub cipher_suite: Option<String>,
    pub alpn: Option<String>,
    /// Leaf first, as the server sent it.
    pub chain: Vec<CertificateSummary>,
    /// The chain verified against the probe's trust anchors for the server name.
    pub certificate_verified: bool,
    /// Handshake or verification failure; `None` when the handshake succeeded and verified.
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Head,
}

/// A checked `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpUrl {
    pub https: bool,
    /// Host as written in the URL (name, or address without brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| field("http.url", format!("{url:?}: {reason}"));
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        if url.len() > 2048 {
            return Err(bad("longer than 2048 bytes"));
        }
        if !url.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("contains spaces or non-ASCII bytes"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let path = path.split('#').next().unwrap_or("/").to_owned();
        if authority.contains('@') {
            return Err(bad("user information is not allowed"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in the host"))?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("bracketed host is not an IPv6 address"))?;
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("bad port"))?,
            };
            (host.to_owned(), port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, p)) => (
                    host,
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad("bad port"))?,
                ),
                None => (authority, default_port),
            };
            if host.parse::<std::net::Ipv4Addr>().is_err() {
                super::Target::hostname(host).map_err(|_| bad("bad host name"))?;
            }
            (host.to_ascii_lowercase(), port)
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self {
            https,
            host,
            port,
            path,
        })
    }

    /// The Host header value.
    pub fn authority(&self) -> String {
        let default_port = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSpec {
    url: HttpUrl,
    method: HttpMethod,
    max_body_bytes: u32,
}

impl HttpSpec {
    pub const DEFAULT_MAX_BODY: u32 = 65_536;
    pub const MAX_BODY: u32 = 1 << 20;

    /// `method` "" selects GET; `max_body_bytes` 0 selects 64 KiB.
    pub fn new(url: &str, method: &str, max_body_bytes: u32) -> Result<Self, SpecError> {
        let method = match method {
            "" | "GET" | "get" => HttpMethod::Get,
            "HEAD" | "head" => HttpMethod::Head,
            other => {
                return Err(field(
                    "http.method",
                    format!("{other:?} is not GET or HEAD"),
                ));
            }
        };
        let max_body_bytes = match max_body_bytes {
            0 => Self::DEFAULT_MAX_BODY,
            n if n <= Self::MAX_BODY => n,
            _ => {
                return Err(field(
                    "http.max_body_bytes",
                    format!("must be 0 (default) or 1..={}", Self::MAX_BODY),
                ));
            }
        };
        Ok(Self {
            url: HttpUrl::parse(url)?,
            method,
            max_body_bytes,
        })
    }
    pub fn url(&self) -> &HttpUrl {
        &self.url
    }
    pub fn method(&self) -> HttpMethod {
        self.method
    }
    pub fn max_body_bytes(&self) -> u32 {
        self.max_body_bytes
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResult {
    pub connect: ConnectOutcome,
    pub status: Option<u16>,
    /// e.g. "HTTP/1.1".
    pub http_version: Option<String>,
    /// Name resolution, when the target was a name.
    pub dns_ns: Option<u64>,
    pub connect_ns: Option<u64>,
    pub tls_ns: Option<u64>,
    /// From the request sent to the first response byte.
    pub first_byte_ns: Option<u64>,
    pub total_ns: u64,
    pub body_bytes: u64,
    pub body_truncated: bool,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuicSpec {
    port: u16,
    server_name: Option<String>,
    alpn: Vec<String>,
}

impl QuicSpec {
    /// `port` 0 selects 443; an empty ALPN list offers "h3".
    pub fn new(port: u32, server_name: Option<&str>, alpn: Vec<String>) -> Result<Self, SpecError> {
        let alpn = if alpn.is_empty() {
            vec!["h3".to_owned()]
        } else {
            alpn_list("quic.alpn", alpn)?
        };
        Ok(Self {
            port: self::port("quic.port", port, 443)?,
            server_name: checked_server_name("quic.server_name", server_name)?,
            alpn,
        })
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }
    pub fn alpn(&self) -> &[String] {
        &self.alpn
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuicFailure {
    /// Nothing came back over UDP (or an ICMP error said the port or host is unreachable).
    UdpBlocked,
    /// The server answered but the handshake failed (version, ALPN, TLS alert...).
    Handshake,
    /// The server's certificate did not verify.
    Certificate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuicResult {
    pub handshake_ok: bool,
    /// QUIC version as on the wire (1 for RFC 9000).
    pub version: Option<u32>,
    pub alpn: Option<String>,
    pub handshake_ns: Option<u64>,
    pub failure: Option<QuicFailure>,
    pub failure_detail: Option<String>,
}

fn text_ok(field_name: &'static str, text: &Option<String>) -> Result<(), SpecError> {
    if text.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
        return Err(field(field_name, format!("longer than {MAX_TEXT} bytes")));
    }
    Ok(())
}

impl TcpResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.port == 0 {
            return Err(field("tcp.port", "must be 1..=65535"));
        }
        Ok(())
    }
}

impl TlsResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        text_ok("tls.failure", &self.failure)?;
        if self.handshake_ok && self.connect != ConnectOutcome::Connected {
            return Err(field("tls.handshake_ok", "a handshake needs a connection"));
        }
        if self.chain.len() > 16 {
            return Err(field("tls.chain", "more than 16 certificates"));
        }
        if self
            .chain
            .iter()
            .any(|c| c.subject.len() > MAX_TEXT || c.issuer.len() > MAX_TEXT)
        {
            return Err(field("tls.chain", "a subject or issuer is too long"));
        }
        Ok(())
    }
}

impl HttpResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        text_ok("http.failure", &self.failure)?;
        if self.status.is_some_and(|s| !(100..=999).contains(&s)) {
            return Err(field("http.status", "must be 100..=999"));
        }
        if self.status.is_some() && self.connect != ConnectOutcome::Connected {
            return Err(field("http.status", "a status needs a connection"));
        }
        Ok(())
    }
}

impl QuicResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        text_ok("quic.failure_detail", &self.failure_detail)?;
        if self.handshake_ok == self.failure.is_some() {
            return Err(field(
                "quic.failure",
                "set exactly when the handshake did not succeed",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_errors_name_the_field() {
        let u = HttpUrl::parse("https://[2001:db8::1]:8443/a?b=c#frag").unwrap();
        assert!(u.https);
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.port, 8443);
        assert_eq!(u.path, "/a?b=c");
        assert_eq!(u.authority(), "[2001:db8::1]:8443");
        let u = HttpUrl::parse("http://Dual.LAB").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("dual.lab", 80, "/")
        );
        assert_eq!(u.to_string(), "http://dual.lab/");
        for bad in [
            "ftp://x.org/",
            "http://",
            "http://user@x.org/",
            "http://x.org:0/",
            "http://[::1/",
            "http://a b/",
        ] {
            let err = HttpUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("http.url"), "{bad}: {err}");
        }
        assert!(
            HttpSpec::new("http://x.org/", "POST", 0)
                .unwrap_err()
                .to_string()
                .contains("http.method")
        );
    }

    #[test]
    fn alpn_and_ports_are_checked() {
        assert!(TlsSpec::new(0, Some("dual.lab"), vec!["h2".into()]).is_ok());
        assert!(
            TlsSpec::new(70000, None, vec![])
                .unwrap_err()
                .to_string()
                .contains("tls.port")
        );
        assert!(
            TlsSpec::new(0, None, vec![String::new()])
                .unwrap_err()
                .to_string()
                .contains("tls.alpn")
        );
        assert_eq!(QuicSpec::new(0, None, vec![]).unwrap().alpn(), ["h3"]);
        assert!(
            TcpSpec::new(0)
                .unwrap_err()
                .to_string()
                .contains("tcp.port")
        );
    }
}
