//! DNS queries to a resolver reached over the spec's target address.

use super::{SpecError, field};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsTransport {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858): TCP framing inside TLS, port 853.
    Tls,
    /// DNS over HTTPS (RFC 8484): a POST of `application/dns-message` over HTTP/1.1 in TLS,
    /// port 443.
    Https,
}

impl DnsTransport {
    /// The port a spec of this transport asks unless it names another.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => DNS_PORT,
            Self::Tls => DOT_PORT,
            Self::Https => DOH_PORT,
        }
    }

    /// Encrypted transports verify a server certificate and report TLS timings.
    pub fn is_encrypted(self) -> bool {
        matches!(self, Self::Tls | Self::Https)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Https => "https",
        }
    }
}

/// Common query types by name, for CLIs and campaign specs; any other type is given by number.
pub const QUERY_TYPES: [(&str, u16); 12] = [
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("DS", 43),
    ("DNSKEY", 48),
    ("HTTPS", 65),
];

pub const TYPE_AAAA: u16 = 28;

/// A query type from its name ("AAAA") or number ("28").
pub fn parse_query_type(text: &str) -> Result<u16, SpecError> {
    if let Some((_, number)) = QUERY_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
    {
        return Ok(*number);
    }
    match text.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(field(
            "dns.query_type",
            format!("{text:?} is neither a known type name nor a number 1..=65535"),
        )),
    }
}

pub fn query_type_name(number: u16) -> String {
    QUERY_TYPES
        .iter()
        .find(|(_, n)| *n == number)
        .map(|(name, _)| (*name).to_owned())
        .unwrap_or_else(|| format!("TYPE{number}"))
}

/// The mnemonic of a DNS response code (RFC 1035, RFC 6891 for BADVERS), `RCODE<n>` for
/// the rest: probe output and the collector's pages use the same words.
pub fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        n => format!("RCODE{n}"),
    }
}

/// The resolver's port unless a spec names another.
pub const DNS_PORT: u16 = 53;
/// DNS over TLS (RFC 7858 section 3.1).
pub const DOT_PORT: u16 = 853;
/// DNS over HTTPS.
pub const DOH_PORT: u16 = 443;
/// The DoH path when a spec names none (RFC 8484's example, what public resolvers serve).
pub const DOH_PATH: &str = "/dns-query";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSpec {
    query_name: String,
    query_type: u16,
    transport: DnsTransport,
    recursion_desired: bool,
    /// Ask the probe host's own resolver instead of the target (see `with_system_resolver`).
    /// Absent in specs stored before the field existed: those asked the target.
    #[serde(default)]
    system_resolver: bool,
    /// The resolver's port ([`DNS_PORT`] in specs written before it could be chosen).
    #[serde(default = "default_port")]
    port: u16,
    /// DoT/DoH: the name sent as SNI and verified against the certificate (none: the
    /// resolver's address is verified, as RFC 7858's opportunistic profile cannot be
    /// measured meaningfully). Ignored over UDP and TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_name: Option<String>,
    /// DoH: the URI path of the resolver's endpoint ([`DOH_PATH`] when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

fn default_port() -> u16 {
    DNS_PORT
}

/// As derived, but `system_resolver` only when set and the port only when it is not 53: task ids come from this text
/// (`DefaultTask::definition`, campaign tasks), and a spec that existed before ports could be
/// chosen must keep its id.
impl std::fmt::Debug for DnsSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("DnsSpec");
        s.field("query_name", &self.query_name)
            .field("query_type", &self.query_type)
            .field("transport", &self.transport)
            .field("recursion_desired", &self.recursion_desired);
        if self.system_resolver {
            s.field("system_resolver", &self.system_resolver);
        }
        if self.port != DNS_PORT {
            s.field("port", &self.port);
        }
        if let Some(name) = &self.server_name {
            s.field("server_name", name);
        }
        if let Some(path) = &self.path {
            s.field("path", path);
        }
        s.finish()
    }
}

impl DnsSpec {
    /// `query_type` 0 selects AAAA. Names may contain underscores (`_443._tcp.example.org`).
    pub fn new(
        query_name: &str,
        query_type: u32,
        transport: DnsTransport,
        recursion_desired: bool,
    ) -> Result<Self, SpecError> {
        let name = query_name.strip_suffix('.').unwrap_or(query_name);
        let valid = name.len() <= 253
            && (name.is_empty()
                || name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }));
        if !valid {
            return Err(field(
                "dns.query_name",
                format!("{query_name:?} is not a valid DNS name"),
            ));
        }
        let query_type = match query_type {
            0 => TYPE_AAAA,
            n => u16::try_from(n)
                .map_err(|_| field("dns.query_type", "must be 0 (AAAA) or 1..=65535"))?,
        };
        Ok(Self {
            query_name: name.to_ascii_lowercase(),
            query_type,
            transport,
            recursion_desired,
            system_resolver: false,
            port: transport.default_port(),
            server_name: None,
            path: None,
        })
    }

    /// The same spec asking the resolver at `port` (0 = the transport's port: 53, 853 or 443,
    /// as on the wire).
    pub fn with_port(self, port: u32) -> Result<Self, SpecError> {
        let port = match port {
            0 => self.transport.default_port(),
            n => u16::try_from(n).map_err(|_| field("dns.port", "must be 1..=65535 (0 = 53)"))?,
        };
        Ok(Self { port, ..self })
    }

    /// Sends the query to the probe host's own resolver (the first `nameserver` of its
    /// `/etc/resolv.conf`) instead of the target, which is then only the name measured (a
    /// label, neither resolved nor contacted): what the name's users get from their resolvers.
    pub fn with_system_resolver(mut self, system_resolver: bool) -> Self {
        self.system_resolver = system_resolver;
        self
    }

    /// The same spec verifying `name` (DoT, DoH); empty = none. Refused over UDP and TCP,
    /// where nothing would verify it.
    pub fn with_server_name(self, name: &str) -> Result<Self, SpecError> {
        if name.is_empty() {
            return Ok(Self {
                server_name: None,
                ..self
            });
        }
        if !self.transport.is_encrypted() {
            return Err(field(
                "dns.server_name",
                "only DNS over TLS or HTTPS verifies a server name",
            ));
        }
        let valid = name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(field(
                "dns.server_name",
                format!("{name:?} is not a host name"),
            ));
        }
        Ok(Self {
            server_name: Some(name.to_ascii_lowercase()),
            ..self
        })
    }

    /// The same spec with the DoH endpoint at `path` (empty = [`DOH_PATH`]). An absolute
    /// path without a query or fragment (the query carries `?dns=` in GET, not used here),
    /// printable ASCII only: it goes into the request line.
    pub fn with_path(self, path: &str) -> Result<Self, SpecError> {
        if path.is_empty() || path == DOH_PATH {
            return Ok(Self { path: None, ..self });
        }
        if self.transport != DnsTransport::Https {
            return Err(field("dns.path", "only DNS over HTTPS has a path"));
        }
        let valid = path.starts_with('/')
            && path.len() <= 1024
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !valid {
            return Err(field(
                "dns.path",
                format!("{path:?} is not an absolute path of printable ASCII without ? or #"),
            ));
        }
        Ok(Self {
            path: Some(path.to_owned()),
            ..self
        })
    }

    /// The name verified over TLS, if the spec names one.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }
    /// The DoH endpoint's path.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(DOH_PATH)
    }

    /// The name without a trailing dot; empty for the root.
    pub fn query_name(&self) -> &str {
        &self.query_name
    }
    pub fn query_type(&self) -> u16 {
        self.query_type
    }
    pub fn transport(&self) -> DnsTransport {
        self.transport
    }
    pub fn recursion_desired(&self) -> bool {
        self.recursion_desired
    }
    pub fn system_resolver(&self) -> bool {
        self.system_resolver
    }
    /// The resolver's port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub name: String,
    pub record_type: u16,
    pub ttl: u32,
    /// Presentation format of the RDATA where the probe knows the type, else `\# len hex`.
    pub data: String,
}

/// Why an exchange got no usable answer, by the layer that failed: what a scorecard counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsFailureClass {
    /// No answer (or no connection) before the deadline.
    Timeout,
    /// A TCP RST or an ICMP port unreachable.
    Refused,
    /// An ICMP destination unreachable, or no route.
    Unreachable,
    /// The TLS handshake failed for another reason than the certificate.
    Tls,
    /// The certificate did not verify (unknown issuer, name mismatch, expired, ...).
    Certificate,
    /// DoH: the server answered with an HTTP status other than 200, or no HTTP at all.
    Http,
    /// The server's DNS message (or its framing) was malformed, or the connection closed
    /// before one.
    Malformed,
    /// A local socket error.
    Other,
}

impl DnsFailureClass {
    pub fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Tls => "tls",
            Self::Certificate => "certificate",
            Self::Http => "http",
            Self::Malformed => "malformed",
            Self::Other => "other",
        }
    }
}

/// The connection phases of DNS over TLS or HTTPS, beside the query's `rtt_ns` (from the
/// query sent, over the established session, to its answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSession {
    /// TCP connect (to the SYN-ACK or the refusal).
    pub connect_ns: Option<u64>,
    /// TLS handshake, when it completed.
    pub tls_ns: Option<u64>,
    /// DoH: the response's HTTP status.
    pub http_status: Option<u16>,
    /// The TLS version negotiated ("TLSv1.3").
    pub tls_version: Option<String>,
}

/// The resolver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsResponse {
    pub rcode: u16,
    /// Header flags as on the wire (QR, AA, TC, RD, RA, AD, CD bits of the second 16-bit word).
    pub flags: u16,
    pub answers: Vec<DnsRecord>,
}

impl DnsResponse {
    pub const FLAG_TC: u16 = 0x0200;
    pub const FLAG_AA: u16 = 0x0400;
    pub const FLAG_RA: u16 = 0x0080;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsResult {
    pub query_name: String,
    pub query_type: u16,
    /// UDP, or TCP when asked for or when a truncated UDP answer was retried over TCP.
    pub transport_used: DnsTransport,
    /// Time from sending the query to the (last) response.
    pub rtt_ns: Option<u64>,
    pub response: Option<DnsResponse>,
    /// Why no response was obtained (timeout, refused connection, unreachable, malformed).
    pub failure: Option<String>,
    /// The failure's class (absent in results stored before classes existed, and from probes
    /// older than them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<DnsFailureClass>,
    /// DoT/DoH: connection phases; `None` over UDP and TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<DnsSession>,
}

pub const MAX_DNS_ANSWERS: usize = 256;
const MAX_DNS_TEXT: usize = 4096;

impl DnsResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.response.is_some() == self.failure.is_some() {
            return Err(field(
                "dns.failure",
                "exactly one of a response and a failure must be set",
            ));
        }
        if self
            .failure
            .as_ref()
            .is_some_and(|f| f.len() > MAX_DNS_TEXT)
        {
            return Err(field("dns.failure", "too long"));
        }
        if self.failure_class.is_some() && self.failure.is_none() {
            return Err(field("dns.failure_class", "set without a failure"));
        }
        if self.session.is_some() != self.transport_used.is_encrypted() {
            return Err(field(
                "dns.session",
                "phases are set exactly for DNS over TLS or HTTPS",
            ));
        }
        if self
            .session
            .as_ref()
            .and_then(|s| s.tls_version.as_ref())
            .is_some_and(|v| v.len() > 32)
        {
            return Err(field("dns.session.tls_version", "too long"));
        }
        if let Some(response) = &self.response {
            if response.rcode > 0x0FFF {
                return Err(field("dns.rcode", "more than 12 bits"));
            }
            if response.answers.len() > MAX_DNS_ANSWERS {
                return Err(field("dns.answers", format!("more than {MAX_DNS_ANSWERS}")));
            }
            if response
                .answers
                .iter()
                .any(|a| a.name.len() > 255 || a.data.len() > MAX_DNS_TEXT)
            {
                return Err(field("dns.answers", "a name or data field is too long"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_chosen_without_changing_old_specs() {
        let spec = DnsSpec::new("example.org", 28, DnsTransport::Udp, true).unwrap();
        assert_eq!(spec.port(), 53);
        // The text task ids come from is what it was before ports existed.
        let text = format!("{spec:?}");
        assert_eq!(
            text,
            "DnsSpec { query_name: \"example.org\", query_type: 28, transport: Udp, \
             recursion_desired: true }"
        );
        assert_eq!(spec.clone().with_port(0).unwrap(), spec);
        assert_eq!(spec.clone().with_port(53).unwrap(), spec);
        let other = spec.clone().with_port(5353).unwrap();
        assert_eq!(other.port(), 5353);
        assert!(format!("{other:?}").ends_with("recursion_desired: true, port: 5353 }"));
        let e = spec.clone().with_port(65_536).unwrap_err().to_string();
        assert!(e.contains("dns.port"), "{e}");
        // Specs stored before ports could be chosen read back with port 53.
        let old = r#"{"query_name":"example.org","query_type":28,"transport":"udp","recursion_desired":true}"#;
        let read: DnsSpec = serde_json::from_str(old).unwrap();
        assert_eq!(read, spec);
    }

    #[test]
    fn encrypted_specs_take_their_port_name_and_path() {
        let dot = DnsSpec::new("example.org", 28, DnsTransport::Tls, true).unwrap();
        assert_eq!(dot.port(), DOT_PORT);
        assert_eq!(dot.clone().with_port(0).unwrap().port(), DOT_PORT);
        let doh = DnsSpec::new("example.org", 28, DnsTransport::Https, true).unwrap();
        assert_eq!((doh.port(), doh.path()), (DOH_PORT, DOH_PATH));
        let named = dot.clone().with_server_name("DNS.Example.org").unwrap();
        assert_eq!(named.server_name(), Some("dns.example.org"));
        assert!(format!("{named:?}").contains("server_name: \"dns.example.org\""));
        for bad in ["a..b", "-", "a b", "x_y.org"] {
            assert!(dot.clone().with_server_name(bad).is_err(), "{bad}");
        }
        assert_eq!(doh.clone().with_path("/q").unwrap().path(), "/q");
        for bad in ["q", "/a?dns=x", "/a b", "/#"] {
            assert!(doh.clone().with_path(bad).is_err(), "{bad}");
        }
        // Nothing verifies a name over UDP or TCP, and only DoH has a path.
        let udp = DnsSpec::new("example.org", 28, DnsTransport::Udp, true).unwrap();
        assert!(udp.clone().with_server_name("dns.example.org").is_err());
        assert!(dot.with_path("/q").is_err());
        assert_eq!(udp.clone().with_server_name("").unwrap(), udp);
    }

    #[test]
    fn encrypted_results_carry_phases_and_classes() {
        let mut result = DnsResult {
            query_name: "example.org".into(),
            query_type: 28,
            transport_used: DnsTransport::Tls,
            rtt_ns: None,
            response: None,
            failure: Some("refused".into()),
            failure_class: Some(DnsFailureClass::Refused),
            session: Some(DnsSession::default()),
        };
        result.validate().unwrap();
        // Phases exactly for the encrypted transports.
        result.transport_used = DnsTransport::Tcp;
        assert!(result.validate().is_err());
        result.session = None;
        result.validate().unwrap();
        // A class needs a failure.
        result.failure = None;
        result.response = Some(DnsResponse {
            rcode: 0,
            flags: 0,
            answers: vec![],
        });
        assert!(result.validate().is_err());
        result.failure_class = None;
        result.validate().unwrap();
        // Results stored before the fields existed read back without them.
        let old = r#"{"query_name":"a","query_type":1,"transport_used":"udp","rtt_ns":null,"response":null,"failure":"timeout"}"#;
        let read: DnsResult = serde_json::from_str(old).unwrap();
        assert_eq!((read.failure_class, read.session), (None, None));
    }
}
