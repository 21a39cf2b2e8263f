//! Measurement specifications and results as the rest of sixmap sees them: validated,
//! independent of the wire. Every kind the protocol names is listed in [`MeasurementKind`];
//! each has its spec (checked on construction) and its result (checked by `validate`).

mod connect;
mod dns;
mod dual;
mod path;
mod readiness;
mod traceroute;

pub use connect::{
    CertificateSummary, ConnectOutcome, HttpMethod, HttpResult, HttpSpec, HttpUrl, QuicFailure,
    QuicResult, QuicSpec, TcpResult, TcpSpec, TlsResult, TlsSpec,
};
pub use dns::{
    DNS_PORT, DOH_PATH, DOH_PORT, DOT_PORT, DnsFailureClass, DnsRecord, DnsResponse, DnsResult,
    DnsSession, DnsSpec, DnsTransport, MAX_DNS_ANSWERS, QUERY_TYPES, parse_query_type,
    query_type_name, rcode_name,
};
pub use dual::{
    CONNECTION_ATTEMPT_DELAY, DualInner, DualLeg, DualStackResult, DualStackSpec,
    happy_eyeballs_choice, hops_from_reply_hop_limit,
};
pub use path::{
    ExtHeaderOutcome, ExtHeaderResult, ExtHeaderSpec, ExtHeaderType, PmtuResult, PmtuSpec,
};
pub use readiness::{
    DEFAULT_SUBRESOURCE_HOSTS, DnsReadiness, Lookup, LookupStatus, MAX_READINESS_DETAIL_LEN,
    MAX_READINESS_MAIL_EXCHANGERS, MAX_READINESS_NAME_SERVERS, MAX_READINESS_PATH_LEN,
    MAX_READINESS_URL_LEN, MAX_SUBRESOURCE_HOSTS, MailExchangerCheck, MailReadiness,
    NameServerCheck, Presence, ReadinessResult, ReadinessSpec, SubresourceHost,
    SubresourceReadiness, WebReadiness,
};
pub use traceroute::{
    HopAnswer, HopReply, TraceProtocol, TraceStop, TracerouteHop, TracerouteResult, TracerouteSpec,
};

use crate::ids::{ResultKey, TaskId};
use crate::time::UnixMicros;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasurementKind {
    Ping,
    Traceroute,
    Dns,
    Tcp,
    Tls,
    Http,
    Quic,
    Pmtu,
    ExtHeaders,
    DualStack,
    Readiness,
}

impl MeasurementKind {
    pub const ALL: [Self; 11] = [
        Self::Ping,
        Self::Traceroute,
        Self::Dns,
        Self::Tcp,
        Self::Tls,
        Self::Http,
        Self::Quic,
        Self::Pmtu,
        Self::ExtHeaders,
        Self::DualStack,
        Self::Readiness,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Traceroute => "traceroute",
            Self::Dns => "dns",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Http => "http",
            Self::Quic => "quic",
            Self::Pmtu => "pmtu",
            Self::ExtHeaders => "ext_headers",
            Self::DualStack => "dual_stack",
            Self::Readiness => "readiness",
        }
    }
}

impl fmt::Display for MeasurementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    V6,
    V4,
}

impl Family {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => Self::V6,
            _ => Self::V4,
        }
    }
}

/// A spec field that failed validation: `field` is the path within the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("`{field}`: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("measurement kind `{0}` is not supported by this probe version")]
    Unsupported(MeasurementKind),
}

fn field(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError::Field {
        field,
        reason: reason.into(),
    }
}

const MAX_HOSTNAME_LEN: usize = 253;

/// Where a measurement goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Address(IpAddr),
    /// A syntactically valid DNS name (letters, digits, hyphens, dots; at most 253 bytes).
    Hostname(String),
}

impl Target {
    /// An IP address literal, or else a host name.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        match text.parse() {
            Ok(address) => Ok(Self::Address(address)),
            Err(_) => Self::hostname(text),
        }
    }

    /// The family a measurement of this target uses unless told otherwise: the literal's
    /// own, and IPv6 for names.
    pub fn default_family(&self) -> Family {
        match self {
            Self::Address(address) => Family::of(*address),
            Self::Hostname(_) => Family::V6,
        }
    }

    pub fn hostname(name: &str) -> Result<Self, SpecError> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let labels_ok = !name.is_empty()
            && name.len() <= MAX_HOSTNAME_LEN
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if labels_ok {
            Ok(Self::Hostname(name.to_ascii_lowercase()))
        } else {
            Err(field(
                "target.hostname",
                format!("{name:?} is not a valid DNS name"),
            ))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(a) => a.fmt(f),
            Self::Hostname(h) => f.write_str(h),
        }
    }
}

/// One measurement to run: target, limits and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementSpec {
    pub target: Target,
    pub family: Family,
    /// The whole measurement ends by this deadline.
    pub timeout: Duration,
    /// Packets the measurement may send; `None` leaves the kind's own bound.
    pub max_packets: Option<u16>,
    pub kind: SpecKind,
}

pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_PACKETS: u32 = 1024;

impl MeasurementSpec {
    pub fn new(
        target: Target,
        family: Family,
        timeout: Duration,
        kind: SpecKind,
    ) -> Result<Self, SpecError> {
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(field(
                "budget.timeout_ms",
                format!("must be 1..={} ms", MAX_TIMEOUT.as_millis()),
            ));
        }
        if let Target::Address(address) = target
            && Family::of(address) != family
        {
            return Err(field(
                "target.family",
                format!("address {address} is not {family:?}"),
            ));
        }
        if matches!(kind, SpecKind::DualStack(_)) && !matches!(target, Target::Hostname(_)) {
            return Err(field(
                "target.hostname",
                "a dual-stack measurement needs a host name with A and AAAA records",
            ));
        }
        if matches!(kind, SpecKind::Readiness(_)) && !matches!(target, Target::Hostname(_)) {
            return Err(field(
                "target.hostname",
                "a readiness measurement needs the domain's name",
            ));
        }
        Ok(Self {
            target,
            family,
            timeout,
            max_packets: None,
            kind,
        })
    }

    /// Bounds the packets sent; 0 keeps the kind's own bound.
    pub fn with_max_packets(mut self, max_packets: u32) -> Result<Self, SpecError> {
        self.max_packets = match max_packets {
            0 => None,
            n if n <= MAX_PACKETS => Some(n as u16),
            _ => {
                return Err(field(
                    "budget.max_packets",
                    format!("must be 0 (default) or 1..={MAX_PACKETS}"),
                ));
            }
        };
        Ok(self)
    }

    pub fn measurement_kind(&self) -> MeasurementKind {
        self.kind.measurement_kind()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpecKind {
    Ping(PingSpec),
    Traceroute(TracerouteSpec),
    Dns(DnsSpec),
    Tcp(TcpSpec),
    Tls(TlsSpec),
    Http(HttpSpec),
    Quic(QuicSpec),
    Pmtu(PmtuSpec),
    ExtHeaders(ExtHeaderSpec),
    DualStack(DualStackSpec),
    Readiness(ReadinessSpec),
}

impl SpecKind {
    pub fn measurement_kind(&self) -> MeasurementKind {
        match self {
            Self::Ping(_) => MeasurementKind::Ping,
            Self::Traceroute(_) => MeasurementKind::Traceroute,
            Self::Dns(_) => MeasurementKind::Dns,
            Self::Tcp(_) => MeasurementKind::Tcp,
            Self::Tls(_) => MeasurementKind::Tls,
            Self::Http(_) => MeasurementKind::Http,
            Self::Quic(_) => MeasurementKind::Quic,
            Self::Pmtu(_) => MeasurementKind::Pmtu,
            Self::ExtHeaders(_) => MeasurementKind::ExtHeaders,
            Self::DualStack(_) => MeasurementKind::DualStack,
            Self::Readiness(_) => MeasurementKind::Readiness,
        }
    }
}

/// ICMPv6 echo: `count` requests, `interval` apart, each with `payload_size` bytes of payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingSpec {
    count: u16,
    interval: Duration,
    payload_size: u16,
}

impl PingSpec {
    pub const MAX_COUNT: u32 = 64;
    pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// 1500-byte MTU minus IPv6 (40) and ICMPv6 (8) headers.
    pub const MAX_PAYLOAD: u32 = 1452;
    pub const DEFAULT_PAYLOAD: u16 = 56;
    /// Bytes our own payload needs to match replies: an 8-byte cookie and a 2-byte sequence.
    pub const MIN_PAYLOAD: u16 = 10;

    /// `interval_ms` 0 and `payload_size` 0 select the defaults.
    pub fn new(count: u32, interval_ms: u32, payload_size: u32) -> Result<Self, SpecError> {
        if count == 0 || count > Self::MAX_COUNT {
            return Err(field(
                "ping.count",
                format!("must be 1..={}", Self::MAX_COUNT),
            ));
        }
        let interval = match interval_ms {
            0 => Self::DEFAULT_INTERVAL,
            ms => Duration::from_millis(u64::from(ms)),
        };
        if interval < Self::MIN_INTERVAL {
            return Err(field(
                "ping.interval_ms",
                format!(
                    "must be 0 (default) or >= {}",
                    Self::MIN_INTERVAL.as_millis()
                ),
            ));
        }
        let payload_size = match payload_size {
            0 => Self::DEFAULT_PAYLOAD,
            n if (u32::from(Self::MIN_PAYLOAD)..=Self::MAX_PAYLOAD).contains(&n) => {
                u16::try_from(n).map_err(|_| field("ping.payload_size", "too large"))?
            }
            _ => {
                return Err(field(
                    "ping.payload_size",
                    format!(
                        "must be 0 (default) or {}..={}",
                        Self::MIN_PAYLOAD,
                        Self::MAX_PAYLOAD
                    ),
                ));
            }
        };
        Ok(Self {
            count: u16::try_from(count).map_err(|_| field("ping.count", "too large"))?,
            interval,
            payload_size,
        })
    }

    pub fn count(&self) -> u16 {
        self.count
    }
    pub fn interval(&self) -> Duration {
        self.interval
    }
    pub fn payload_size(&self) -> u16 {
        self.payload_size
    }
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    Synchronized,
    Unsynchronized,
    Unknown,
}

/// The probe's clock when it produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockInfo {
    pub state: ClockState,
    /// Probe clock minus collector clock, if estimated.
    pub offset_us: Option<i64>,
}

/// A measurement result, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementResult {
    pub key: ResultKey,
    pub task_id: TaskId,
    pub started_at: UnixMicros,
    pub duration_us: u64,
    pub family_requested: Family,
    pub family_used: Option<Family>,
    pub source: Option<IpAddr>,
    pub destination: Option<IpAddr>,
    pub software_version: String,
    pub clock: ClockInfo,
    pub outcome: Outcome,
}

pub const MAX_SOFTWARE_VERSION_LEN: usize = 64;

impl MeasurementResult {
    /// Checks the cross-field invariants that single fields cannot express.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.key.sequence == 0 {
            return Err(field("key.sequence", "must be > 0"));
        }
        if self.software_version.is_empty()
            || self.software_version.len() > MAX_SOFTWARE_VERSION_LEN
        {
            return Err(field(
                "software_version",
                format!("must be 1..={MAX_SOFTWARE_VERSION_LEN} bytes"),
            ));
        }
        if let (Some(used), Some(destination)) = (self.family_used, self.destination)
            && Family::of(destination) != used
        {
            return Err(field(
                "family_used",
                format!("{used:?} does not match destination {destination}"),
            ));
        }
        self.outcome.validate()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The measurement could not run at all.
    Failed(MeasurementError),
    Ping(PingResult),
    Traceroute(TracerouteResult),
    Dns(DnsResult),
    Tcp(TcpResult),
    Tls(TlsResult),
    Http(HttpResult),
    Quic(QuicResult),
    Pmtu(PmtuResult),
    ExtHeaders(ExtHeaderResult),
    DualStack(DualStackResult),
    /// Boxed: the largest result by far, and rare.
    Readiness(Box<ReadinessResult>),
}

impl Outcome {
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            Outcome::Failed(error) if error.message.len() > MAX_ERROR_MESSAGE_LEN => Err(field(
                "error.message",
                format!("longer than {MAX_ERROR_MESSAGE_LEN} bytes"),
            )),
            Outcome::Failed(_) => Ok(()),
            Outcome::Ping(r) => r.validate(),
            Outcome::Traceroute(r) => r.validate(),
            Outcome::Dns(r) => r.validate(),
            Outcome::Tcp(r) => r.validate(),
            Outcome::Tls(r) => r.validate(),
            Outcome::Http(r) => r.validate(),
            Outcome::Quic(r) => r.validate(),
            Outcome::Pmtu(r) => r.validate(),
            Outcome::ExtHeaders(r) => r.validate(),
            Outcome::DualStack(r) => r.validate(),
            Outcome::Readiness(r) => r.validate(),
        }
    }

    /// Whether the destination answered at all (a refused TCP connection counts: the host
    /// is reachable). For dual-stack, whether the IPv6 leg's destination answered.
    pub fn reached_destination(&self) -> bool {
        match self {
            Outcome::Failed(_) => false,
            Outcome::Ping(r) => r.received > 0,
            Outcome::Traceroute(r) => r.reached_destination,
            Outcome::Dns(r) => r.response.is_some(),
            Outcome::Tcp(r) => matches!(
                r.outcome,
                ConnectOutcome::Connected | ConnectOutcome::Refused
            ),
            Outcome::Tls(r) => r.connect == ConnectOutcome::Connected,
            Outcome::Http(r) => r.status.is_some(),
            Outcome::Quic(r) => r.handshake_ok,
            Outcome::Pmtu(r) => r.path_mtu > 0,
            Outcome::ExtHeaders(_) => false,
            Outcome::DualStack(r) => r.v6.outcome.reached_destination(),
            // The domain's web site answered over IPv6.
            Outcome::Readiness(r) => r.web.https_v6_status.is_some(),
        }
    }

    /// The kind of measurement this outcome answers; `None` for a failure to run.
    pub fn kind(&self) -> Option<MeasurementKind> {
        Some(match self {
            Outcome::Failed(_) => return None,
            Outcome::Ping(_) => MeasurementKind::Ping,
            Outcome::Traceroute(_) => MeasurementKind::Traceroute,
            Outcome::Dns(_) => MeasurementKind::Dns,
            Outcome::Tcp(_) => MeasurementKind::Tcp,
            Outcome::Tls(_) => MeasurementKind::Tls,
            Outcome::Http(_) => MeasurementKind::Http,
            Outcome::Quic(_) => MeasurementKind::Quic,
            Outcome::Pmtu(_) => MeasurementKind::Pmtu,
            Outcome::ExtHeaders(_) => MeasurementKind::ExtHeaders,
            Outcome::DualStack(_) => MeasurementKind::DualStack,
            Outcome::Readiness(_) => MeasurementKind::Readiness,
        })
    }
}

pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Policy,
    Resolution,
    Permission,
    Network,
    Unsupported,
    Internal,
}

impl ErrorClass {
    /// The class as it appears in metrics labels, progress figures and exports (the same word
    /// as its serde name).
    pub fn label(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Resolution => "resolution",
            Self::Permission => "permission",
            Self::Network => "network",
            Self::Unsupported => "unsupported",
            Self::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementError {
    pub class: ErrorClass,
    pub message: String,
}

impl MeasurementError {
    /// Cuts the message to [`MAX_ERROR_MESSAGE_LEN`] bytes (at a character boundary, ending
    /// in "…"), the most a result may carry: an OS or peer error text of any length then
    /// still makes a valid result instead of one the collector refuses.
    pub fn bound_message(&mut self) {
        if self.message.len() <= MAX_ERROR_MESSAGE_LEN {
            return;
        }
        let ellipsis = '…';
        let mut end = MAX_ERROR_MESSAGE_LEN - ellipsis.len_utf8();
        while !self.message.is_char_boundary(end) {
            end -= 1;
        }
        self.message.truncate(end);
        self.message.push(ellipsis);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampSource {
    Kernel,
    Userspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IcmpSocketKind {
    Datagram,
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReply {
    pub sequence: u16,
    pub rtt_ns: u64,
    pub hop_limit: Option<u8>,
    pub duplicate: bool,
    pub from: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpError {
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub from: IpAddr,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResult {
    pub sent: u16,
    pub received: u16,
    pub replies: Vec<PingReply>,
    pub timestamp_source: TimestampSource,
    pub socket_kind: IcmpSocketKind,
    pub errors: Vec<IcmpError>,
}

impl PingResult {
    pub fn validate(&self) -> Result<(), SpecError> {
        if u32::from(self.sent) > PingSpec::MAX_COUNT {
            return Err(field(
                "ping.sent",
                format!("more than {}", PingSpec::MAX_COUNT),
            ));
        }
        let mut answered = HashSet::new();
        for reply in &self.replies {
            if reply.sequence >= self.sent {
                return Err(field(
                    "ping.replies.sequence",
                    format!("{} but only {} sent", reply.sequence, self.sent),
                ));
            }
            let first = answered.insert(reply.sequence);
            if first == reply.duplicate {
                return Err(field(
                    "ping.replies.duplicate",
                    format!("wrong duplicate flag for sequence {}", reply.sequence),
                ));
            }
        }
        if answered.len() != usize::from(self.received) {
            return Err(field(
                "ping.received",
                format!(
                    "{} but replies answer {} sequence numbers",
                    self.received,
                    answered.len()
                ),
            ));
        }
        if self.errors.len() > usize::from(self.sent) * 4 {
            return Err(field("ping.errors", "more ICMP errors than plausible"));
        }
        Ok(())
    }

    /// Fraction of requests without any reply, 0.0..=1.0.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        1.0 - f64::from(self.received) / f64::from(self.sent)
    }

    /// Smallest RTT among first replies.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.replies
            .iter()
            .filter(|r| !r.duplicate)
            .map(|r| Duration::from_nanos(r.rtt_ns))
            .min()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn long_error_messages_are_cut_to_the_limit_at_a_character_boundary() {
        for filler in ["a", "é", "€"] {
            let mut e = MeasurementError {
                class: ErrorClass::Network,
                message: filler.repeat(2000),
            };
            e.bound_message();
            assert!(
                e.message.len() <= MAX_ERROR_MESSAGE_LEN,
                "{}",
                e.message.len()
            );
            assert!(e.message.len() > MAX_ERROR_MESSAGE_LEN - 8);
            assert!(e.message.ends_with('…'));
        }
        let mut short = MeasurementError {
            class: ErrorClass::Network,
            message: "no route".into(),
        };
        short.bound_message();
        assert_eq!(short.message, "no route");
    }

    use super::*;

    #[test]
    fn ping_spec_bounds_name_the_field() {
        assert!(PingSpec::new(3, 0, 0).is_ok());
        let err = PingSpec::new(0, 0, 0).unwrap_err().to_string();
        assert!(err.contains("ping.count"), "{err}");
        let err = PingSpec::new(1, 5, 0).unwrap_err().to_string();
        assert!(err.contains("ping.interval_ms"), "{err}");
        let err = PingSpec::new(1, 0, 5000).unwrap_err().to_string();
        assert!(err.contains("ping.payload_size"), "{err}");
        let spec = PingSpec::new(2, 0, 0).unwrap();
        assert_eq!(spec.interval(), PingSpec::DEFAULT_INTERVAL);
        assert_eq!(spec.payload_size(), PingSpec::DEFAULT_PAYLOAD);
    }

    #[test]
    fn spec_family_must_match_literal_address() {
        let ping = SpecKind::Ping(PingSpec::new(1, 0, 0).unwrap());
        let v4 = Target::Address("192.0.2.1".parse().unwrap());
        let err = MeasurementSpec::new(v4, Family::V6, Duration::from_secs(1), ping.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("target.family"), "{err}");
        let err = MeasurementSpec::new(
            Target::Address("::1".parse().unwrap()),
            Family::V6,
            Duration::ZERO,
            ping,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("budget.timeout_ms"), "{err}");
    }

    #[test]
    fn hostnames_are_checked() {
        assert_eq!(
            Target::hostname("Example.ORG.").unwrap(),
            Target::Hostname("example.org".into())
        );
        for bad in ["", "a..b", "-a.org", "a b.org", &"x".repeat(64)] {
            assert!(Target::hostname(bad).is_err(), "{bad}");
        }
    }

    fn reply(sequence: u16, duplicate: bool) -> PingReply {
        PingReply {
            sequence,
            rtt_ns: 1000,
            hop_limit: Some(64),
            duplicate,
            from: "::1".parse().unwrap(),
        }
    }

    #[test]
    fn ping_result_counts_must_agree() {
        let mut result = PingResult {
            sent: 3,
            received: 2,
            replies: vec![reply(0, false), reply(2, false), reply(2, true)],
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Raw,
            errors: vec![],
        };
        assert_eq!(result.validate(), Ok(()));
        assert!((result.loss() - 1.0 / 3.0).abs() < 1e-9);
        result.received = 3;
        assert!(
            result
                .validate()
                .unwrap_err()
                .to_string()
                .contains("ping.received")
        );
        result.received = 2;
        result.replies.push(reply(7, false));
        assert!(
            result
                .validate()
                .unwrap_err()
                .to_string()
                .contains("sequence")
        );
        result.replies.pop();
        result.replies[2].duplicate = false;
        assert!(
            result
                .validate()
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
    }
}
