//! The task-table language: one `[[tasks]]` table of the collector's config, or one
//! measurement table of a campaign spec, checked into measurement specs. Both reuse
//! [`table_tasks`], so they accept the same keys with the same errors.

use serde::Deserialize;
use sixmap_shared::config::ConfigError;
use sixmap_shared::measurement::{
    DnsSpec, DnsTransport, DualInner, DualStackSpec, ExtHeaderSpec, ExtHeaderType, Family,
    HttpSpec, MeasurementKind, MeasurementSpec, PingSpec, PmtuSpec, QuicSpec, ReadinessSpec,
    SpecError, SpecKind, Target, TcpSpec, TlsSpec, TraceProtocol, TracerouteSpec, parse_query_type,
};
use sixmap_shared::session::MIN_TASK_INTERVAL;
use std::time::Duration;

use super::DefaultTask;

/// The longest interval of a default task, as for campaigns (`schedule.every_s`): an
/// interval beyond it (`every_s = 18446744073709551615`) would only overflow schedules.
pub const MAX_TASK_INTERVAL: Duration = Duration::from_secs(7 * 86_400);

/// One `[[tasks]]` table: a measurement of one kind, run by every connected probe against each
/// of its targets. Kind-specific keys carry the names of the wire spec's fields
/// (`measurement.proto`), and a key that the kind does not take is an error, so a typo or a
/// key meant for another kind cannot be silently ignored. Every kind-specific key may be
/// left out; the default is given with each.
///
/// Common keys:
/// - `kind` (required): `ping`, `traceroute`, `dns`, `tcp`, `tls`, `http`, `quic`, `pmtu`,
///   `ext_headers`, `dual_stack` or `readiness`.
/// - `targets`: addresses or host names (for `dns`, the resolvers); at least one, except for
///   `http`, where the URL's host is the target when `targets` is left out.
/// - `every_s` (required): seconds between runs.
/// - `timeout_ms` (required): the whole run, 1..=60000.
/// - `family`: `"v6"` or `"v4"`; default the literal's own family, and `v6` for names.
/// - `max_packets`: packets one run may send, 1..=1024; default 0, the kind's own bound.
///
/// Keys per kind:
/// - `ping`: `count` (1..=64, default 3), `interval_ms` (>= 10, default 1000),
///   `payload_size` (10..=1452 bytes, default 56).
/// - `traceroute`: `protocol` (`icmp`, `udp` or `tcp`; default `icmp`), `first_hop`
///   (default 1), `max_hops` (1..=64, default 30), `probes_per_hop` (1..=5, default 3),
///   `max_silent_hops` (1..=32, default 5), `port` (default 33434 udp, 80 tcp),
///   `flow_label` (0..=0xFFFFF, default 0).
/// - `dns`: `query_name` (required), `query_type` (a name such as `"AAAA"` or a number;
///   default AAAA), `transport` (`udp` or `tcp`; default `udp`), `recursion_desired`
///   (default true), `system_resolver` (default false: ask the target; true: ask the probe
///   host's own resolver, the target then being only the name measured), `port` (the resolver's;
///   default 53).
/// - `tcp`: `port` (required, 1..=65535).
/// - `tls` and `quic`: `port` (default 443), `server_name` (SNI; default the target's host
///   name), `alpn` (list; default none for tls, `["h3"]` for quic).
/// - `http`: `url` (required, `http://` or `https://`), `method` (`GET` or `HEAD`; default
///   `GET`), `max_body_bytes` (default 65536, at most 1 MiB).
/// - `pmtu`: `max_size` (1280..=9000 bytes, default 1500), `protocol` (`icmp` or `udp`;
///   default `icmp`).
/// - `ext_headers`: `headers` (list of `hbh`, `dst`, `frag`; default all three),
///   `option_bytes` (multiple of 8 up to 256, default 8).
/// - `dual_stack` (targets must be host names): `inner` (`ping`, `tcp` or `http`; default
///   `tcp`), `port` (tcp and http only; default 80).
/// - `readiness` (targets must be domain names): `path` (the page; default `/`), `web_host`
///   (the web site's host; default the domain), `check_mail` (default true),
///   `check_subresources` (default true), `max_subresource_hosts` (1..=32, default 16).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTable {
    pub kind: String,
    #[serde(default)]
    pub targets: Vec<String>,
    pub every_s: u64,
    pub timeout_ms: u64,
    pub family: Option<String>,
    #[serde(default)]
    pub max_packets: u32,
    pub count: Option<u32>,
    pub interval_ms: Option<u32>,
    pub payload_size: Option<u32>,
    pub protocol: Option<String>,
    pub first_hop: Option<u32>,
    pub max_hops: Option<u32>,
    pub probes_per_hop: Option<u32>,
    pub max_silent_hops: Option<u32>,
    pub port: Option<u32>,
    pub flow_label: Option<u32>,
    pub query_name: Option<String>,
    pub query_type: Option<QueryType>,
    pub transport: Option<String>,
    pub recursion_desired: Option<bool>,
    pub system_resolver: Option<bool>,
    pub server_name: Option<String>,
    pub alpn: Option<Vec<String>>,
    pub url: Option<String>,
    pub method: Option<String>,
    pub max_body_bytes: Option<u32>,
    pub max_size: Option<u32>,
    pub headers: Option<Vec<String>>,
    pub option_bytes: Option<u32>,
    pub inner: Option<String>,
    /// DNS over HTTPS: the endpoint's path (`/dns-query` when absent); readiness: the page.
    pub path: Option<String>,
    pub web_host: Option<String>,
    pub check_mail: Option<bool>,
    pub check_subresources: Option<bool>,
    pub max_subresource_hosts: Option<u32>,
}

/// A DNS query type as written in the config: `"AAAA"`, `"28"` or `28`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QueryType {
    Number(i64),
    Name(String),
}

/// The kind-specific keys of a task table, with whether each is set.
fn kind_keys(t: &TaskTable) -> [(&'static str, bool); 28] {
    [
        ("count", t.count.is_some()),
        ("interval_ms", t.interval_ms.is_some()),
        ("payload_size", t.payload_size.is_some()),
        ("protocol", t.protocol.is_some()),
        ("first_hop", t.first_hop.is_some()),
        ("max_hops", t.max_hops.is_some()),
        ("probes_per_hop", t.probes_per_hop.is_some()),
        ("max_silent_hops", t.max_silent_hops.is_some()),
        ("port", t.port.is_some()),
        ("flow_label", t.flow_label.is_some()),
        ("query_name", t.query_name.is_some()),
        ("query_type", t.query_type.is_some()),
        ("transport", t.transport.is_some()),
        ("recursion_desired", t.recursion_desired.is_some()),
        ("system_resolver", t.system_resolver.is_some()),
        ("server_name", t.server_name.is_some()),
        ("alpn", t.alpn.is_some()),
        ("url", t.url.is_some()),
        ("method", t.method.is_some()),
        ("max_body_bytes", t.max_body_bytes.is_some()),
        ("max_size", t.max_size.is_some()),
        ("headers", t.headers.is_some()),
        ("option_bytes", t.option_bytes.is_some()),
        ("path", t.path.is_some()),
        ("web_host", t.web_host.is_some()),
        ("check_mail", t.check_mail.is_some()),
        ("check_subresources", t.check_subresources.is_some()),
        ("max_subresource_hosts", t.max_subresource_hosts.is_some()),
    ]
}

/// The kind-specific keys each kind takes.
fn keys_of(kind: MeasurementKind) -> &'static [&'static str] {
    match kind {
        MeasurementKind::Ping => &["count", "interval_ms", "payload_size"],
        MeasurementKind::Traceroute => &[
            "protocol",
            "first_hop",
            "max_hops",
            "probes_per_hop",
            "max_silent_hops",
            "port",
            "flow_label",
        ],
        MeasurementKind::Dns => &[
            "query_name",
            "query_type",
            "transport",
            "recursion_desired",
            "system_resolver",
            "port",
            "server_name",
            "path",
        ],
        MeasurementKind::Tcp => &["port"],
        MeasurementKind::Tls | MeasurementKind::Quic => &["port", "server_name", "alpn"],
        MeasurementKind::Http => &["url", "method", "max_body_bytes"],
        MeasurementKind::Pmtu => &["max_size", "protocol"],
        MeasurementKind::ExtHeaders => &["headers", "option_bytes"],
        MeasurementKind::DualStack => &["inner", "port"],
        MeasurementKind::Readiness => &[
            "path",
            "web_host",
            "check_mail",
            "check_subresources",
            "max_subresource_hosts",
        ],
    }
}

/// The config key behind a field the shared constructors name (`tcp.port` -> `port`).
fn config_key(field: &str) -> &str {
    match field {
        "target.family" => "family",
        f if f.starts_with("target.") => "targets",
        f => f.split_once('.').map_or(f, |(_, key)| key),
    }
}

/// The tasks of one `[[tasks]]` table; errors name `key` and the table's own key.
/// Campaign specs reuse it for their measurement tables, so both accept the same keys.
pub fn table_tasks(
    table: &TaskTable,
    key: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<DefaultTask>, ConfigError> {
    let at = |name: &str, reason: String| invalid(&format!("{key}.{name}"), reason);
    let spec_error = |e: SpecError| match e {
        SpecError::Field { field, reason } => at(config_key(field), reason),
        other => invalid(key, other.to_string()),
    };
    let kind = MeasurementKind::ALL
        .into_iter()
        .find(|k| k.name() == table.kind)
        .ok_or_else(|| {
            let names: Vec<_> = MeasurementKind::ALL.iter().map(|k| k.name()).collect();
            at(
                "kind",
                format!("{:?} is not one of {}", table.kind, names.join(", ")),
            )
        })?;
    let allowed = keys_of(kind);
    if let Some((name, _)) = kind_keys(table)
        .into_iter()
        .find(|(name, set)| *set && !allowed.contains(name))
    {
        return Err(at(
            name,
            format!(
                "not a key of kind {kind} (its keys: {})",
                allowed.join(", ")
            ),
        ));
    }
    let every = Duration::from_secs(table.every_s);
    if every < MIN_TASK_INTERVAL || every > MAX_TASK_INTERVAL {
        return Err(at(
            "every_s",
            format!(
                "must be {}..={} (a week)",
                MIN_TASK_INTERVAL.as_secs(),
                MAX_TASK_INTERVAL.as_secs()
            ),
        ));
    }
    let family = match table.family.as_deref() {
        None => None,
        Some("v6") => Some(Family::V6),
        Some("v4") => Some(Family::V4),
        Some(other) => return Err(at("family", format!("{other:?} is not \"v6\" or \"v4\""))),
    };
    let required = |name: &str| at(name, format!("required for kind {kind}"));
    let protocol = |default: TraceProtocol| {
        table
            .protocol
            .as_deref()
            .map_or(Ok(default), TraceProtocol::parse)
    };
    let spec_kind = match kind {
        MeasurementKind::Ping => PingSpec::new(
            table.count.unwrap_or(3),
            table.interval_ms.unwrap_or(0),
            table.payload_size.unwrap_or(0),
        )
        .map(SpecKind::Ping),
        MeasurementKind::Traceroute => protocol(TraceProtocol::Icmp).and_then(|protocol| {
            TracerouteSpec::new(
                protocol,
                table.first_hop.unwrap_or(0),
                table.max_hops.unwrap_or(0),
                table.probes_per_hop.unwrap_or(0),
                table.max_silent_hops.unwrap_or(0),
                table.port.unwrap_or(0),
                table.flow_label.unwrap_or(0),
            )
            .map(SpecKind::Traceroute)
        }),
        MeasurementKind::Dns => {
            let query_name = table
                .query_name
                .as_deref()
                .ok_or_else(|| required("query_name"))?;
            let query_type = match &table.query_type {
                None => 0,
                Some(QueryType::Name(name)) => {
                    u32::from(parse_query_type(name).map_err(spec_error)?)
                }
                Some(QueryType::Number(n)) => u32::try_from(*n)
                    .ok()
                    .filter(|n| (1..=u32::from(u16::MAX)).contains(n))
                    .ok_or_else(|| at("query_type", format!("{n} is not 1..=65535")))?,
            };
            let transport = match table.transport.as_deref() {
                None | Some("udp") => DnsTransport::Udp,
                Some("tcp") => DnsTransport::Tcp,
                Some("tls") => DnsTransport::Tls,
                Some("https") => DnsTransport::Https,
                Some(other) => {
                    return Err(at(
                        "transport",
                        format!("{other:?} is not udp, tcp, tls or https"),
                    ));
                }
            };
            DnsSpec::new(
                query_name,
                query_type,
                transport,
                table.recursion_desired.unwrap_or(true),
            )
            .and_then(|spec| spec.with_port(table.port.unwrap_or(0)))
            .and_then(|spec| spec.with_server_name(table.server_name.as_deref().unwrap_or("")))
            .and_then(|spec| spec.with_path(table.path.as_deref().unwrap_or("")))
            .map(|spec| {
                SpecKind::Dns(spec.with_system_resolver(table.system_resolver.unwrap_or(false)))
            })
        }
        MeasurementKind::Tcp => {
            TcpSpec::new(table.port.ok_or_else(|| required("port"))?).map(SpecKind::Tcp)
        }
        MeasurementKind::Tls => TlsSpec::new(
            table.port.unwrap_or(0),
            table.server_name.as_deref(),
            table.alpn.clone().unwrap_or_default(),
        )
        .map(SpecKind::Tls),
        MeasurementKind::Http => HttpSpec::new(
            table.url.as_deref().ok_or_else(|| required("url"))?,
            table.method.as_deref().unwrap_or(""),
            table.max_body_bytes.unwrap_or(0),
        )
        .map(SpecKind::Http),
        MeasurementKind::Quic => QuicSpec::new(
            table.port.unwrap_or(0),
            table.server_name.as_deref(),
            table.alpn.clone().unwrap_or_default(),
        )
        .map(SpecKind::Quic),
        MeasurementKind::Pmtu => protocol(TraceProtocol::Icmp)
            .and_then(|protocol| PmtuSpec::new(table.max_size.unwrap_or(0), protocol))
            .map(SpecKind::Pmtu),
        MeasurementKind::ExtHeaders => table
            .headers
            .iter()
            .flatten()
            .map(|h| ExtHeaderType::parse(h))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|headers| ExtHeaderSpec::new(headers, table.option_bytes.unwrap_or(0)))
            .map(SpecKind::ExtHeaders),
        MeasurementKind::DualStack => table
            .inner
            .as_deref()
            .map_or(Ok(DualInner::Tcp), DualInner::parse)
            .and_then(|inner| DualStackSpec::new(inner, table.port.unwrap_or(0)))
            .map(SpecKind::DualStack),
        MeasurementKind::Readiness => ReadinessSpec::new(
            table.path.as_deref().unwrap_or(""),
            table.web_host.as_deref().unwrap_or(""),
            table.check_mail.unwrap_or(true),
            table.check_subresources.unwrap_or(true),
            table.max_subresource_hosts.unwrap_or(0),
        )
        .map(SpecKind::Readiness),
    }
    .map_err(spec_error)?;
    let targets = match (&spec_kind, table.targets.is_empty()) {
        (SpecKind::Http(http), true) => vec![http.url().host.clone()],
        (_, true) => return Err(at("targets", "at least one target is needed".into())),
        (_, false) => table.targets.clone(),
    };
    targets
        .iter()
        .map(|text| {
            let in_target = |e: SpecError| match e {
                SpecError::Field { field, reason } => {
                    at(config_key(field), format!("target {text:?}: {reason}"))
                }
                other => invalid(key, other.to_string()),
            };
            let target = Target::parse(text).map_err(in_target)?;
            let family = family.unwrap_or_else(|| target.default_family());
            let spec = MeasurementSpec::new(
                target,
                family,
                Duration::from_millis(table.timeout_ms),
                spec_kind.clone(),
            )
            .map_err(in_target)?
            .with_max_packets(table.max_packets)
            .map_err(spec_error)?;
            Ok(DefaultTask { spec, every })
        })
        .collect()
}
