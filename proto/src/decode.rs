//! Wire messages into validated domain types. Every error names the offending field, as a
//! path from the message that was decoded (e.g. `results[3].ping.replies[0].from`).

use crate::enums::*;
use crate::v1;
use sixmap_shared::health::{
    MAX_LOSS_DETAIL_LEN, MAX_NAME_LEN, MAX_SELF_TEST_V4_ADDRESSES, OutboxLoss, ProbeTag, SelfTest,
    TagName,
};
use sixmap_shared::ids::{ProbeId, ResultKey, TaskId};
use sixmap_shared::measurement::{
    CertificateSummary, ClockInfo, DnsRecord, DnsResponse, DnsResult, DnsSession, DnsSpec, DualLeg,
    DualStackResult, DualStackSpec, ExtHeaderOutcome, ExtHeaderResult, ExtHeaderSpec, Family,
    FaultPath, HopAnswer, HopReply, HttpResult, HttpSpec, IcmpError, MAX_ERROR_MESSAGE_LEN,
    MeasurementError, MeasurementResult, MeasurementSpec, Outcome, PathHop, PingReply, PingResult,
    PingSpec, PmtuResult, PmtuSpec, QuicResult, QuicSpec, SpecKind, Target, TcpResult, TcpSpec,
    TlsResult, TlsSpec, TracerouteHop, TracerouteResult, TracerouteSpec,
};
use sixmap_shared::measurement::{
    DnsReadiness, Lookup, MAX_READINESS_MAIL_EXCHANGERS, MAX_READINESS_NAME_SERVERS,
    MAX_SUBRESOURCE_HOSTS, MailExchangerCheck, MailReadiness, NameServerCheck, ReadinessResult,
    ReadinessSpec, SubresourceHost, SubresourceReadiness, WebReadiness,
};
use sixmap_shared::nat64::Nat64Prefix;
use sixmap_shared::session::{
    Ack, Assignment, Cancel, CoarseLocation, CollectorMessage, Heartbeat, Hello, MAX_BATCH_RESULTS,
    MAX_LOCAL_ADDRESSES, MIN_TASK_INTERVAL, ProbeMessage, ReceivedBatch, ReceivedCollectorMessage,
    ReceivedProbeMessage, Rejection, Welcome,
};
use sixmap_shared::time::UnixMicros;
use sixmap_shared::version::Version;
use std::net::IpAddr;
use std::time::Duration;

/// A field that failed validation: the domain's
/// [`FieldError`](sixmap_shared::session::FieldError), so received messages can carry it per
/// item.
pub use sixmap_shared::session::FieldError as WireError;
pub use sixmap_shared::session::{BatchItem, DecodedItem, LossItem};

fn address(field: &str, text: &str) -> Result<IpAddr, WireError> {
    text.parse()
        .map_err(|_| WireError::new(field, format!("{text:?} is not an IP address")))
}

fn optional_address(field: &str, text: &str) -> Result<Option<IpAddr>, WireError> {
    if text.is_empty() {
        Ok(None)
    } else {
        address(field, text).map(Some)
    }
}

fn enum_value<E: TryFrom<i32>>(field: &str, raw: i32) -> Result<E, WireError> {
    E::try_from(raw).map_err(|_| WireError::new(field, format!("unknown enum value {raw}")))
}

/// A required enum field: a number this version does not know and UNSPECIFIED (which `map`
/// turns into `None`) are both refused, naming the field.
fn required<W: TryFrom<i32>, D>(
    field: &str,
    raw: i32,
    map: fn(W) -> Option<D>,
) -> Result<D, WireError> {
    map(enum_value(field, raw)?)
        .ok_or_else(|| WireError::new(field, "unspecified, but a value is required"))
}

fn small<T: TryFrom<u32>>(field: &str, raw: u32) -> Result<T, WireError> {
    T::try_from(raw).map_err(|_| WireError::new(field, format!("{raw} is out of range")))
}

/// A NAT64 prefix (RFC 6052): its network address (empty = none) and, in the field beside it,
/// its length (0 = 96, what probes sent before the length field existed).
fn nat64_prefix(field: &str, text: &str, length: u32) -> Result<Option<Nat64Prefix>, WireError> {
    if text.is_empty() {
        if length != 0 {
            return Err(WireError::new(
                field,
                format!("a prefix length ({length}) without a prefix"),
            ));
        }
        return Ok(None);
    }
    let network = text
        .parse()
        .map_err(|_| WireError::new(field, format!("{text:?} is not an IPv6 address")))?;
    let length = match length {
        0 => 96,
        n => u8::try_from(n).map_err(|_| {
            WireError::new(
                field,
                format!("prefix length {n} is not one of 32, 40, 48, 56, 64 or 96"),
            )
        })?,
    };
    Nat64Prefix::new(network, length)
        .map(Some)
        .map_err(|e| WireError::new(field, e.to_string()))
}

/// A small number where 0 means unknown.
fn optional_small<T: TryFrom<u32>>(field: &str, raw: u32) -> Result<Option<T>, WireError> {
    match raw {
        0 => Ok(None),
        n => small(field, n).map(Some),
    }
}

/// A duration or count where 0 means unknown.
fn nonzero(raw: u64) -> Option<u64> {
    (raw != 0).then_some(raw)
}

/// Text where empty means unknown or none.
fn optional_text(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn probe_id(field: &str, raw: &str) -> Result<ProbeId, WireError> {
    raw.parse()
        .map_err(|e: sixmap_shared::IdError| WireError::new(field, e.to_string()))
}

fn task_id(field: &str, raw: u64) -> Result<TaskId, WireError> {
    TaskId::new(raw).map_err(|e| WireError::new(field, e.to_string()))
}

pub fn result_key(key: Option<&v1::ResultKey>) -> Result<ResultKey, WireError> {
    let key = key.ok_or_else(|| WireError::missing("key"))?;
    if key.sequence == 0 {
        return Err(WireError::new("key.sequence", "must be > 0"));
    }
    Ok(ResultKey {
        probe_id: probe_id("key.probe_id", &key.probe_id)?,
        boot_epoch: key.boot_epoch,
        sequence: key.sequence,
    })
}

pub fn spec(wire: &v1::MeasurementSpec) -> Result<MeasurementSpec, WireError> {
    let target = wire
        .target
        .as_ref()
        .ok_or_else(|| WireError::missing("target"))?;
    let family =
        family_from_wire(enum_value("target.family", target.family)?).unwrap_or(Family::V6);
    let target = match &target.kind {
        Some(v1::target::Kind::Address(a)) => Target::Address(address("target.address", a)?),
        Some(v1::target::Kind::Hostname(h)) => Target::hostname(h)?,
        None => return Err(WireError::missing("target.address")),
    };
    let budget = wire
        .budget
        .as_ref()
        .ok_or_else(|| WireError::missing("budget"))?;
    let timeout = Duration::from_millis(u64::from(budget.timeout_ms));
    use v1::measurement_spec::Kind as W;
    // Each kind goes through its shared constructor, so the wire accepts exactly what the
    // domain does and errors carry the constructor's field name (`traceroute.max_hops`).
    let kind = match &wire.kind {
        Some(W::Ping(p)) => SpecKind::Ping(PingSpec::new(p.count, p.interval_ms, p.payload_size)?),
        Some(W::Traceroute(t)) => SpecKind::Traceroute(TracerouteSpec::new(
            required("traceroute.protocol", t.protocol, trace_protocol_from_wire)?,
            t.first_hop,
            t.max_hops,
            t.probes_per_hop,
            t.max_silent_hops,
            t.port,
            t.flow_label,
        )?),
        Some(W::Dns(d)) => SpecKind::Dns(
            DnsSpec::new(
                &d.query_name,
                d.query_type,
                required("dns.transport", d.transport, dns_transport_from_wire)?,
                d.recursion_desired,
            )?
            .with_system_resolver(d.system_resolver)
            .with_port(d.port)?
            .with_server_name(&d.server_name)?
            .with_path(&d.path)?,
        ),
        Some(W::Tcp(t)) => SpecKind::Tcp(TcpSpec::new(t.port)?),
        Some(W::Tls(t)) => {
            SpecKind::Tls(TlsSpec::new(t.port, Some(&t.server_name), t.alpn.clone())?)
        }
        Some(W::Http(h)) => SpecKind::Http(HttpSpec::new(&h.url, &h.method, h.max_body_bytes)?),
        Some(W::Quic(q)) => {
            SpecKind::Quic(QuicSpec::new(q.port, Some(&q.server_name), q.alpn.clone())?)
        }
        Some(W::Pmtu(p)) => SpecKind::Pmtu(PmtuSpec::new(
            p.max_size,
            required("pmtu.protocol", p.protocol, trace_protocol_from_wire)?,
        )?),
        Some(W::ExtHeaders(e)) => {
            let headers = e
                .headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    required(
                        &format!("ext_headers.headers[{i}]"),
                        *h,
                        ext_header_from_wire,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            SpecKind::ExtHeaders(ExtHeaderSpec::new(headers, e.option_bytes)?)
        }
        Some(W::DualStack(d)) => {
            let inner = enum_value::<v1::MeasurementKind>("dual_stack.inner", d.inner)?;
            let inner = dual_inner_from_wire(inner)
                .ok_or_else(|| WireError::new("dual_stack.inner", "must be PING, TCP or HTTP"))?;
            // The name is carried twice; two different names would leave the probe guessing.
            if !d.hostname.is_empty() {
                let same = match (&target, Target::hostname(&d.hostname)) {
                    (Target::Hostname(t), Ok(Target::Hostname(h))) => *t == h,
                    _ => false,
                };
                if !same {
                    return Err(WireError::new(
                        "dual_stack.hostname",
                        format!("{:?} differs from the target", d.hostname),
                    ));
                }
            }
            SpecKind::DualStack(DualStackSpec::new(inner, d.port)?)
        }
        Some(W::Readiness(r)) => SpecKind::Readiness(ReadinessSpec::new(
            &r.path,
            &r.web_host,
            r.check_mail,
            r.check_subresources,
            r.max_subresource_hosts,
        )?),
        // prost leaves a oneof variant from a newer peer unset: say so, as the compatibility
        // rules ask, rather than only "missing".
        None => {
            return Err(WireError::new(
                "kind",
                "unset, or a measurement kind this version does not support",
            ));
        }
    };
    Ok(
        MeasurementSpec::new(target, family, timeout, kind)?
            .with_max_packets(budget.max_packets)?,
    )
}

pub fn assignment(wire: &v1::TaskAssignment) -> Result<Assignment, WireError> {
    let task_id = task_id("task_id", wire.task_id)?;
    let spec = spec(
        wire.spec
            .as_ref()
            .ok_or_else(|| WireError::missing("spec"))?,
    )
    .map_err(|e| e.within("spec"))?;
    let interval = match wire.interval_s {
        0 => None,
        s => Some(Duration::from_secs(u64::from(s))),
    };
    if interval.is_some_and(|i| i < MIN_TASK_INTERVAL) {
        return Err(WireError::new("interval_s", "below the minimum interval"));
    }
    Ok(Assignment {
        task_id,
        spec,
        interval,
        not_before: (wire.not_before_us != 0).then_some(UnixMicros(wire.not_before_us)),
    })
}

fn icmp_error(field: &str, e: &v1::IcmpError) -> Result<IcmpError, WireError> {
    Ok(IcmpError {
        icmp_type: small(&format!("{field}.icmp_type"), e.icmp_type)?,
        icmp_code: small(&format!("{field}.icmp_code"), e.icmp_code)?,
        from: address(&format!("{field}.from"), &e.from)?,
        mtu: (e.mtu != 0).then_some(e.mtu),
    })
}

fn ping_result(p: &v1::PingResult) -> Result<PingResult, WireError> {
    let replies = p
        .replies
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let field = format!("ping.replies[{i}]");
            Ok(PingReply {
                sequence: small(&format!("{field}.sequence"), r.sequence)?,
                rtt_ns: r.rtt_ns,
                hop_limit: match r.hop_limit {
                    0 => None,
                    h => Some(small(&format!("{field}.hop_limit"), h)?),
                },
                duplicate: r.duplicate,
                from: address(&format!("{field}.from"), &r.from)?,
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    let errors = p
        .errors
        .iter()
        .enumerate()
        .map(|(i, e)| icmp_error(&format!("ping.errors[{i}]"), e))
        .collect::<Result<Vec<_>, _>>()?;
    let result = PingResult {
        sent: small("ping.sent", p.sent)?,
        received: small("ping.received", p.received)?,
        replies,
        timestamp_source: timestamp_from_wire(enum_value(
            "ping.timestamp_source",
            p.timestamp_source,
        )?)
        .ok_or_else(|| WireError::missing("ping.timestamp_source"))?,
        socket_kind: socket_from_wire(enum_value("ping.socket_kind", p.socket_kind)?)
            .ok_or_else(|| WireError::missing("ping.socket_kind"))?,
        errors,
    };
    result.validate()?;
    Ok(result)
}

fn traceroute_result(t: &v1::TracerouteResult) -> Result<TracerouteResult, WireError> {
    let hops = t
        .hops
        .iter()
        .enumerate()
        .map(|(i, hop)| {
            let field = format!("traceroute.hops[{i}]");
            let replies = hop
                .replies
                .iter()
                .enumerate()
                .map(|(j, r)| traceroute_reply(&format!("{field}.replies[{j}]"), r))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TracerouteHop {
                hop_limit: small(&format!("{field}.hop_limit"), hop.hop_limit)?,
                replies,
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    Ok(TracerouteResult {
        protocol: required("traceroute.protocol", t.protocol, trace_protocol_from_wire)?,
        flow_label: t.flow_label,
        hops,
        reached_destination: t.reached_destination,
        stop: required("traceroute.stop", t.stop, trace_stop_from_wire)?,
        packets_sent: t.packets_sent,
        reused_hops: small("traceroute.reused_hops", t.reused_hops)?,
    })
}

/// One probe slot: an empty `from` is a probe without answer.
fn traceroute_reply(field: &str, r: &v1::TracerouteReply) -> Result<Option<HopReply>, WireError> {
    if r.from.is_empty() {
        return Ok(None);
    }
    let answer = if r.tcp_flags != 0 {
        if r.icmp_type != 0 || r.icmp_code != 0 || r.mtu != 0 {
            return Err(WireError::new(
                format!("{field}.tcp_flags"),
                "a TCP answer has no icmp_type, icmp_code or mtu",
            ));
        }
        HopAnswer::Tcp {
            flags: small(&format!("{field}.tcp_flags"), r.tcp_flags)?,
        }
    } else {
        HopAnswer::Icmp {
            icmp_type: small(&format!("{field}.icmp_type"), r.icmp_type)?,
            icmp_code: small(&format!("{field}.icmp_code"), r.icmp_code)?,
            mtu: (r.mtu != 0).then_some(r.mtu),
        }
    };
    Ok(Some(HopReply {
        from: address(&format!("{field}.from"), &r.from)?,
        rtt_ns: r.rtt_ns,
        answer,
    }))
}

fn dns_result(d: &v1::DnsResult) -> Result<DnsResult, WireError> {
    let response = if d.answered {
        let answers = d
            .answers
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Ok(DnsRecord {
                    name: a.name.clone(),
                    record_type: small(&format!("dns.answers[{i}].record_type"), a.record_type)?,
                    ttl: a.ttl,
                    data: a.data.clone(),
                })
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        Some(DnsResponse {
            rcode: small("dns.rcode", d.rcode)?,
            flags: small("dns.flags", d.flags)?,
            answers,
        })
    } else {
        // Response fields without a response would be dropped silently: refuse instead.
        if d.rcode != 0 || d.flags != 0 || !d.answers.is_empty() {
            return Err(WireError::new(
                "dns.answered",
                "false, but rcode, flags or answers are set",
            ));
        }
        None
    };
    Ok(DnsResult {
        query_name: d.query_name.clone(),
        query_type: small("dns.query_type", d.query_type)?,
        transport_used: required(
            "dns.transport_used",
            d.transport_used,
            dns_transport_from_wire,
        )?,
        rtt_ns: nonzero(d.rtt_ns),
        response,
        failure: optional_text(&d.failure),
        failure_class: dns_failure_from_wire(enum_value("dns.failure_class", d.failure_class)?),
        session: d.encrypted.then(|| DnsSession {
            connect_ns: nonzero(d.connect_ns),
            tls_ns: nonzero(d.tls_ns),
            http_status: u16::try_from(d.http_status).ok().filter(|s| *s != 0),
            tls_version: optional_text(&d.tls_version),
        }),
    })
}

fn optional_icmp_error(
    field: &str,
    e: Option<&v1::IcmpError>,
) -> Result<Option<IcmpError>, WireError> {
    e.map(|e| icmp_error(field, e)).transpose()
}

fn tcp_result(t: &v1::TcpResult) -> Result<TcpResult, WireError> {
    Ok(TcpResult {
        port: small("tcp.port", t.port)?,
        outcome: required("tcp.outcome", t.outcome, connect_from_wire)?,
        connect_ns: nonzero(t.connect_ns),
        icmp_error: optional_icmp_error("tcp.icmp_error", t.icmp_error.as_ref())?,
    })
}

fn tls_result(t: &v1::TlsResult) -> Result<TlsResult, WireError> {
    Ok(TlsResult {
        connect: required("tls.connect", t.connect, connect_from_wire)?,
        connect_ns: nonzero(t.connect_ns),
        handshake_ok: t.handshake_ok,
        handshake_ns: nonzero(t.handshake_ns),
        version: optional_text(&t.version),
        cipher_suite: optional_text(&t.cipher_suite),
        alpn: optional_text(&t.alpn),
        chain: t
            .chain
            .iter()
            .map(|c| CertificateSummary {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                not_before: optional_time(c.not_before_us),
                not_after: optional_time(c.not_after_us),
            })
            .collect(),
        certificate_verified: t.certificate_verified,
        failure: optional_text(&t.failure),
    })
}

fn http_result(h: &v1::HttpResult) -> Result<HttpResult, WireError> {
    Ok(HttpResult {
        connect: required("http.connect", h.connect, connect_from_wire)?,
        status: optional_small("http.status", h.status)?,
        http_version: optional_text(&h.http_version),
        dns_ns: nonzero(h.dns_ns),
        connect_ns: nonzero(h.connect_ns),
        tls_ns: nonzero(h.tls_ns),
        first_byte_ns: nonzero(h.first_byte_ns),
        total_ns: h.total_ns,
        body_bytes: h.body_bytes,
        body_truncated: h.body_truncated,
        failure: optional_text(&h.failure),
    })
}

fn quic_result(q: &v1::QuicResult) -> Result<QuicResult, WireError> {
    // FAILURE_NONE is a meaningful value here (no failure), so only unknown numbers fail.
    let failure = quic_failure_from_wire(enum_value("quic.failure", q.failure)?);
    Ok(QuicResult {
        handshake_ok: q.handshake_ok,
        version: (q.version != 0).then_some(q.version),
        alpn: optional_text(&q.alpn),
        handshake_ns: nonzero(q.handshake_ns),
        failure,
        failure_detail: optional_text(&q.failure_detail),
    })
}

fn pmtu_result(p: &v1::PmtuResult) -> Result<PmtuResult, WireError> {
    Ok(PmtuResult {
        path_mtu: p.path_mtu,
        black_hole: p.black_hole,
        black_hole_hop: optional_small("pmtu.black_hole_hop", p.black_hole_hop)?,
        black_hole_from: optional_address("pmtu.black_hole_from", &p.black_hole_from)?,
        too_big: p
            .too_big
            .iter()
            .enumerate()
            .map(|(i, e)| icmp_error(&format!("pmtu.too_big[{i}]"), e))
            .collect::<Result<_, _>>()?,
        packets_sent: p.packets_sent,
        fault_path: p
            .fault_path
            .as_ref()
            .map(|f| fault_path("pmtu.fault_path", f))
            .transpose()?,
    })
}

fn fault_path(field: &str, p: &v1::FaultPath) -> Result<FaultPath, WireError> {
    // Bounded before anything is allocated per hop.
    if p.hops.len() > FaultPath::MAX_HOPS {
        return Err(WireError::new(
            format!("{field}.hops"),
            format!("more than {} hops", FaultPath::MAX_HOPS),
        ));
    }
    let mut previous = 0;
    let hops = p
        .hops
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let hop_limit = small(&format!("{field}.hops[{i}].hop_limit"), h.hop_limit)?;
            if hop_limit <= previous {
                return Err(WireError::new(
                    format!("{field}.hops[{i}].hop_limit"),
                    format!(
                        "{hop_limit} after {previous}: hop limits must be strictly increasing and > 0"
                    ),
                ));
            }
            previous = hop_limit;
            let at = format!("{field}.hops[{i}].address");
            let address = address(&at, &h.address)?;
            if !PathHop::answers_from(address) {
                return Err(WireError::new(
                    at,
                    format!("{address} is not an IPv6 unicast address"),
                ));
            }
            Ok(PathHop { hop_limit, address })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    let probed_up_to = small(&format!("{field}.probed_up_to"), p.probed_up_to)?;
    if probed_up_to == 0 || u32::from(probed_up_to) > TracerouteSpec::MAX_HOPS {
        return Err(WireError::new(
            format!("{field}.probed_up_to"),
            format!("{probed_up_to} is not in 1..={}", TracerouteSpec::MAX_HOPS),
        ));
    }
    let path = FaultPath {
        hops,
        probed_up_to,
        reached_destination: p.reached_destination,
        packets_sent: p.packets_sent,
    };
    // The rest (hops within what was probed, packets): with the field's name.
    path.validate("fault_path")
        .map_err(|e| WireError::new(field, WireError::from(e).reason))?;
    Ok(path)
}

fn ext_header_result(e: &v1::ExtHeaderResult) -> Result<ExtHeaderResult, WireError> {
    let outcomes = e
        .outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let field = format!("ext_headers.outcomes[{i}]");
            Ok(ExtHeaderOutcome {
                header: required(&format!("{field}.header"), o.header, ext_header_from_wire)?,
                survived: o.survived,
                dropped_at_hop: optional_small(
                    &format!("{field}.dropped_at_hop"),
                    o.dropped_at_hop,
                )?,
                last_responder: optional_address(
                    &format!("{field}.last_responder"),
                    &o.last_responder,
                )?,
                icmp_error: optional_icmp_error(
                    &format!("{field}.icmp_error"),
                    o.icmp_error.as_ref(),
                )?,
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    Ok(ExtHeaderResult {
        outcomes,
        packets_sent: e.packets_sent,
        fault_path: e
            .fault_path
            .as_ref()
            .map(|f| fault_path("ext_headers.fault_path", f))
            .transpose()?,
    })
}

/// One leg of a dual-stack result: a nested `MeasurementResult` of which only the addresses,
/// the duration and the outcome are read (it has no key or task of its own).
fn dual_leg(field: &str, wire: Option<&v1::MeasurementResult>) -> Result<DualLeg, WireError> {
    let wire = wire.ok_or_else(|| WireError::missing(field))?;
    let leg = || -> Result<DualLeg, WireError> {
        // Refused before its outcome is decoded, so nesting can never recurse further.
        if matches!(wire.kind, Some(v1::measurement_result::Kind::DualStack(_))) {
            return Err(WireError::new(
                "dual_stack",
                "a leg cannot itself be dual-stack",
            ));
        }
        let outcome = outcome(wire.error.as_ref(), wire.kind.as_ref())?;
        // Validated here as well as with the whole result, so that the error keeps the
        // leg's inner field name.
        outcome.validate()?;
        Ok(DualLeg {
            source: optional_address("source_address", &wire.source_address)?,
            destination: optional_address("destination_address", &wire.destination_address)?,
            duration_us: wire.duration_us,
            outcome,
        })
    };
    leg().map_err(|e| e.within(field))
}

fn dual_stack_result(d: &v1::DualStackResult) -> Result<DualStackResult, WireError> {
    Ok(DualStackResult {
        v6: Box::new(dual_leg("dual_stack.v6", d.v6.as_deref())?),
        v4: Box::new(dual_leg("dual_stack.v4", d.v4.as_deref())?),
        happy_eyeballs_choice: family_from_wire(enum_value(
            "dual_stack.happy_eyeballs_choice",
            d.happy_eyeballs_choice,
        )?),
        v6_hops: optional_small("dual_stack.v6_hops", d.v6_hops)?,
        v4_hops: optional_small("dual_stack.v4_hops", d.v4_hops)?,
        v6_nat64_prefix: nat64_prefix(
            "dual_stack.v6_nat64_prefix",
            &d.v6_nat64_prefix,
            d.v6_nat64_prefix_length,
        )?,
        v4_via_clat: d.v4_via_clat,
        v6_fault_path: d
            .v6_fault_path
            .as_ref()
            .map(|f| fault_path("dual_stack.v6_fault_path", f))
            .transpose()?,
    })
}

fn lookup(field: &str, wire: Option<&v1::Lookup>) -> Result<Lookup, WireError> {
    let wire = wire.ok_or_else(|| WireError::missing(field))?;
    Ok(Lookup {
        status: required(
            &format!("{field}.status"),
            wire.status,
            lookup_status_from_wire,
        )?,
        detail: optional_text(&wire.detail),
    })
}

fn optional_v6(field: &str, text: &str) -> Result<Option<std::net::Ipv6Addr>, WireError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| WireError::new(field, format!("{text:?} is not an IPv6 address")))
}

fn optional_connect(
    field: &str,
    raw: i32,
) -> Result<Option<sixmap_shared::measurement::ConnectOutcome>, WireError> {
    Ok(connect_from_wire(enum_value(field, raw)?))
}

/// A repeated field's length is checked before its items are decoded, so a hostile list is
/// refused without work proportional to its length.
fn bounded<T>(field: &str, items: &[T], max: usize) -> Result<(), WireError> {
    if items.len() > max {
        return Err(WireError::new(field, format!("more than {max} items")));
    }
    Ok(())
}

fn readiness_result(r: &v1::ReadinessResult) -> Result<ReadinessResult, WireError> {
    let dns = r
        .dns
        .as_ref()
        .ok_or_else(|| WireError::missing("readiness.dns"))?;
    bounded(
        "readiness.dns.servers",
        &dns.servers,
        MAX_READINESS_NAME_SERVERS,
    )?;
    let servers = dns
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let f = format!("readiness.dns.servers[{i}]");
            Ok(NameServerCheck {
                name: s.name.clone(),
                has_aaaa: required(&format!("{f}.has_aaaa"), s.has_aaaa, presence_from_wire)?,
                address: optional_v6(&format!("{f}.address"), &s.address)?,
                answers_over_v6: s.answers_over_v6,
                detail: optional_text(&s.detail),
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    let mail = match &r.mail {
        None => None,
        Some(m) => {
            bounded(
                "readiness.mail.exchangers",
                &m.exchangers,
                MAX_READINESS_MAIL_EXCHANGERS,
            )?;
            let exchangers = m
                .exchangers
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let f = format!("readiness.mail.exchangers[{i}]");
                    Ok(MailExchangerCheck {
                        name: x.name.clone(),
                        preference: small(&format!("{f}.preference"), x.preference)?,
                        has_aaaa: required(
                            &format!("{f}.has_aaaa"),
                            x.has_aaaa,
                            presence_from_wire,
                        )?,
                        address: optional_v6(&format!("{f}.address"), &x.address)?,
                        smtp_v6: optional_connect(&format!("{f}.smtp_v6"), x.smtp_v6)?,
                        detail: optional_text(&x.detail),
                    })
                })
                .collect::<Result<Vec<_>, WireError>>()?;
            Some(MailReadiness {
                mx_lookup: lookup("readiness.mail.mx_lookup", m.mx_lookup.as_ref())?,
                null_mx: m.null_mx,
                exchangers,
            })
        }
    };
    let w = r
        .web
        .as_ref()
        .ok_or_else(|| WireError::missing("readiness.web"))?;
    let web = WebReadiness {
        host: w.host.clone(),
        aaaa: required("readiness.web.aaaa", w.aaaa, presence_from_wire)?,
        a: required("readiness.web.a", w.a, presence_from_wire)?,
        aaaa_lookup: lookup("readiness.web.aaaa_lookup", w.aaaa_lookup.as_ref())?,
        a_lookup: lookup("readiness.web.a_lookup", w.a_lookup.as_ref())?,
        v6_address: optional_v6("readiness.web.v6_address", &w.v6_address)?,
        v4_address: if w.v4_address.is_empty() {
            None
        } else {
            Some(w.v4_address.parse().map_err(|_| {
                WireError::new(
                    "readiness.web.v4_address",
                    format!("{:?} is not an IPv4 address", w.v4_address),
                )
            })?)
        },
        https_v6_connect: optional_connect("readiness.web.https_v6_connect", w.https_v6_connect)?,
        https_v4_connect: optional_connect("readiness.web.https_v4_connect", w.https_v4_connect)?,
        https_v6_status: optional_small("readiness.web.https_v6_status", w.https_v6_status)?,
        https_v4_status: optional_small("readiness.web.https_v4_status", w.https_v4_status)?,
        v6_certificate_verified: w.v6_certificate_verified,
        v6_error: optional_text(&w.v6_error),
        v4_error: optional_text(&w.v4_error),
        same_certificate: w.same_certificate,
        same_content: w.same_content,
        v6_body_bytes: w.v6_body_bytes,
        v4_body_bytes: w.v4_body_bytes,
        final_url: optional_text(&w.final_url),
        v6_inconclusive: w.v6_inconclusive,
    };
    let subresources = match &r.subresources {
        None => None,
        Some(s) => {
            bounded(
                "readiness.subresources.hosts",
                &s.hosts,
                usize::from(MAX_SUBRESOURCE_HOSTS),
            )?;
            let hosts = s
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let f = format!("readiness.subresources.hosts[{i}]");
                    Ok(SubresourceHost {
                        host: h.host.clone(),
                        same_host: false,
                        has_aaaa: required(
                            &format!("{f}.has_aaaa"),
                            h.has_aaaa,
                            presence_from_wire,
                        )?,
                        url: h.url.clone(),
                        fetched_v6: h.fetched_v6,
                        status_v6: optional_small(&format!("{f}.status_v6"), h.status_v6)?,
                        detail: optional_text(&h.detail),
                    })
                })
                .collect::<Result<Vec<_>, WireError>>()?;
            Some(SubresourceReadiness {
                html_from: family_from_wire(enum_value(
                    "readiness.subresources.html_from",
                    s.html_from,
                )?),
                hosts,
                truncated: s.truncated,
            })
        }
    };
    let mut result = ReadinessResult {
        resolver: optional_address("readiness.resolver", &r.resolver)?,
        dns64_prefix: nat64_prefix(
            "readiness.dns64_prefix",
            &r.dns64_prefix,
            r.dns64_prefix_length,
        )?,
        dns: DnsReadiness {
            ns_lookup: lookup("readiness.dns.ns_lookup", dns.ns_lookup.as_ref())?,
            servers,
        },
        mail,
        web,
        subresources,
    };
    // Whether a host is the page's own (exempt from the page's readiness) is derived here
    // from the web part, whatever the wire says.
    result.derive_same_hosts();
    Ok(result)
}

/// The outcome carried by a result's `error` field or `kind` oneof (an error wins).
fn outcome(
    error: Option<&v1::MeasurementError>,
    kind: Option<&v1::measurement_result::Kind>,
) -> Result<Outcome, WireError> {
    use v1::measurement_result::Kind as W;
    Ok(match (error, kind) {
        (Some(e), _) => {
            if e.message.len() > MAX_ERROR_MESSAGE_LEN {
                return Err(WireError::new("error.message", "too long"));
            }
            Outcome::Failed(MeasurementError {
                class: error_class_from_wire(enum_value("error.class", e.class)?)
                    .ok_or_else(|| WireError::missing("error.class"))?,
                message: e.message.clone(),
            })
        }
        (None, Some(W::Ping(p))) => Outcome::Ping(ping_result(p)?),
        (None, Some(W::Traceroute(t))) => Outcome::Traceroute(traceroute_result(t)?),
        (None, Some(W::Dns(d))) => Outcome::Dns(dns_result(d)?),
        (None, Some(W::Tcp(t))) => Outcome::Tcp(tcp_result(t)?),
        (None, Some(W::Tls(t))) => Outcome::Tls(tls_result(t)?),
        (None, Some(W::Http(h))) => Outcome::Http(http_result(h)?),
        (None, Some(W::Quic(q))) => Outcome::Quic(quic_result(q)?),
        (None, Some(W::Pmtu(p))) => Outcome::Pmtu(pmtu_result(p)?),
        (None, Some(W::ExtHeaders(e))) => Outcome::ExtHeaders(ext_header_result(e)?),
        (None, Some(W::DualStack(d))) => Outcome::DualStack(dual_stack_result(d)?),
        (None, Some(W::Readiness(r))) => Outcome::Readiness(Box::new(readiness_result(r)?)),
        (None, None) => {
            return Err(WireError::new(
                "kind",
                "neither a result nor an error (or a result kind this version does not support)",
            ));
        }
    })
}

pub fn result(wire: &v1::MeasurementResult) -> Result<MeasurementResult, WireError> {
    let result = result_with(
        wire,
        result_key(wire.key.as_ref())?,
        UnixMicros(wire.started_at_us),
    )?;
    result.validate()?;
    Ok(result)
}

/// A result kept by a store as [`crate::encode::stored_result`] wrote it, with the key and
/// start time the store kept beside it. A damaged value is an error naming the field, never
/// a panic; the cross-field checks of `validate` ran when the result was accepted and are
/// not repeated, so a store never refuses to read back what it once stored.
pub fn stored_result(
    bytes: &[u8],
    key: ResultKey,
    started_at: UnixMicros,
) -> Result<MeasurementResult, WireError> {
    use prost::Message;
    let wire = v1::MeasurementResult::decode(bytes)
        .map_err(|e| WireError::new("result", format!("not a protobuf result: {e}")))?;
    kept_result(wire, key, started_at)
}

/// A result a store or an outbox kept, decoded. A fault path the rules refuse today (an older
/// probe's path of an empty trace, or rules made stricter since it was accepted) is left out
/// rather than making the whole result unreadable, which would also end every scan that meets
/// it: the path is auxiliary, and its attribution was made when the result arrived.
fn kept_result(
    wire: v1::MeasurementResult,
    key: ResultKey,
    started_at: UnixMicros,
) -> Result<MeasurementResult, WireError> {
    match result_with(&wire, key.clone(), started_at) {
        Err(e) if e.field.contains("fault_path") => {
            let mut wire = wire;
            without_fault_paths(&mut wire);
            result_with(&wire, key, started_at)
        }
        decoded => decoded,
    }
}

fn without_fault_paths(wire: &mut v1::MeasurementResult) {
    use v1::measurement_result::Kind as W;
    match wire.kind.as_mut() {
        Some(W::Pmtu(p)) => p.fault_path = None,
        Some(W::ExtHeaders(e)) => e.fault_path = None,
        Some(W::DualStack(d)) => d.v6_fault_path = None,
        _ => {}
    }
}

fn result_with(
    wire: &v1::MeasurementResult,
    key: ResultKey,
    started_at: UnixMicros,
) -> Result<MeasurementResult, WireError> {
    let outcome = outcome(wire.error.as_ref(), wire.kind.as_ref())?;
    let result = MeasurementResult {
        key,
        task_id: task_id("task_id", wire.task_id)?,
        started_at,
        duration_us: wire.duration_us,
        family_requested: family_from_wire(enum_value("family_requested", wire.family_requested)?)
            .ok_or_else(|| WireError::missing("family_requested"))?,
        family_used: family_from_wire(enum_value("family_used", wire.family_used)?),
        source: optional_address("source_address", &wire.source_address)?,
        destination: optional_address("destination_address", &wire.destination_address)?,
        software_version: wire.software_version.clone(),
        clock: ClockInfo {
            state: clock_from_wire(enum_value("clock_state", wire.clock_state)?),
            offset_us: (wire.clock_offset_us != 0).then_some(wire.clock_offset_us),
        },
        outcome,
    };
    Ok(result)
}

/// Decodes each of a batch's `items` (its field `field`, counted in `unit`) on its own, so one
/// bad item does not sink the rest; a failed item keeps its key when that could be read. More
/// than [`MAX_BATCH_RESULTS`] items refuse the whole batch.
fn batch_items<W, T>(
    field: &str,
    unit: &str,
    items: &[W],
    one: impl Fn(&W) -> Result<T, WireError>,
    key: impl Fn(&W) -> Option<&v1::ResultKey>,
) -> Result<Vec<DecodedItem<T>>, WireError> {
    if items.len() > MAX_BATCH_RESULTS {
        return Err(WireError::new(
            field,
            format!("{} {unit}, limit is {MAX_BATCH_RESULTS}", items.len()),
        ));
    }
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            one(item).map_err(|e| {
                let key = result_key(key(item)).ok();
                (key, e.within(&format!("{field}[{i}]")))
            })
        })
        .collect())
}

/// Decodes a batch's results, each on its own.
pub fn batch(wire: &v1::ResultBatch) -> Result<Vec<BatchItem>, WireError> {
    batch_items("results", "results", &wire.results, result, |r| {
        r.key.as_ref()
    })
}

/// An enrollment request with every field within bounds (hostname and version free of
/// control characters, the CSR and token of bounded size); the error names the field.
/// Bounds are checked before anything is copied: a 3 MB version string is refused unread.
pub fn enroll_request(
    wire: &v1::EnrollRequest,
) -> Result<sixmap_shared::enrollment::EnrollRequest, WireError> {
    use sixmap_shared::enrollment::EnrollRequest;
    let invalid =
        |e: sixmap_shared::enrollment::EnrollFieldError| WireError::new(e.field, e.reason);
    EnrollRequest::check(
        &wire.token,
        &wire.hostname,
        &wire.software_version,
        &wire.csr_der,
    )
    .map_err(invalid)?;
    EnrollRequest::new(
        wire.token.clone(),
        wire.hostname.clone(),
        wire.software_version.clone(),
        wire.csr_der.clone(),
    )
    .map_err(invalid)
}

pub fn hello(wire: &v1::Hello) -> Result<Hello, WireError> {
    if wire.local_addresses.len() > MAX_LOCAL_ADDRESSES {
        return Err(WireError::new(
            "local_addresses",
            format!("more than {MAX_LOCAL_ADDRESSES}"),
        ));
    }
    Ok(Hello {
        // `probe_secret` is ignored: the session's client certificate is the identity.
        probe_id: probe_id("probe_id", &wire.probe_id)?,
        software_version: Version::parse(&wire.software_version).ok_or_else(|| {
            WireError::new(
                "software_version",
                format!("{:?} is not major.minor.patch", wire.software_version),
            )
        })?,
        boot_epoch: wire.boot_epoch,
        // Unknown kinds come from newer probes: ignore them rather than refuse the probe.
        capabilities: wire
            .capabilities
            .iter()
            .filter_map(|k| v1::MeasurementKind::try_from(*k).ok())
            .filter_map(kind_from_wire)
            .collect(),
        local_addresses: wire
            .local_addresses
            .iter()
            .enumerate()
            .map(|(i, a)| address(&format!("local_addresses[{i}]"), a))
            .collect::<Result<_, _>>()?,
        probe_time: UnixMicros(wire.probe_time_us),
        location: wire
            .location
            .as_ref()
            .map(|l| {
                CoarseLocation::from_tenths(l.latitude_e1, l.longitude_e1).ok_or_else(|| {
                    WireError::new(
                        "location",
                        format!(
                            "latitude_e1 {} / longitude_e1 {} is outside -900..=900 / -1800..=1800",
                            l.latitude_e1, l.longitude_e1
                        ),
                    )
                })
            })
            .transpose()?,
    })
}

pub fn welcome(wire: &v1::Welcome) -> Result<Welcome, WireError> {
    if wire.heartbeat_interval_s == 0 {
        return Err(WireError::new("heartbeat_interval_s", "must be >= 1"));
    }
    if wire.max_batch_results == 0 {
        return Err(WireError::new("max_batch_results", "must be >= 1"));
    }
    Ok(Welcome {
        server_time: UnixMicros(wire.server_time_us),
        collector_version: wire.collector_version.clone(),
        heartbeat_interval: Duration::from_secs(u64::from(wire.heartbeat_interval_s)),
        max_batch_results: usize::try_from(wire.max_batch_results)
            .unwrap_or(MAX_BATCH_RESULTS)
            .min(MAX_BATCH_RESULTS),
    })
}

pub fn ack(wire: &v1::Ack) -> Result<Ack, WireError> {
    Ok(Ack {
        batch_id: wire.batch_id,
        stored: wire
            .stored
            .iter()
            .enumerate()
            .map(|(i, k)| result_key(Some(k)).map_err(|e| e.within(&format!("stored[{i}]"))))
            .collect::<Result<_, _>>()?,
        rejected: wire
            .rejected
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Rejection {
                    key: result_key(r.key.as_ref())
                        .map_err(|e| e.within(&format!("rejected[{i}]")))?,
                    reason: r.reason.clone(),
                })
            })
            .collect::<Result<_, WireError>>()?,
        stored_losses: wire
            .stored_losses
            .iter()
            .enumerate()
            .map(|(i, k)| result_key(Some(k)).map_err(|e| e.within(&format!("stored_losses[{i}]"))))
            .collect::<Result<_, _>>()?,
    })
}

fn optional_key(field: &str, key: Option<&v1::ResultKey>) -> Result<Option<ResultKey>, WireError> {
    key.map(|k| result_key(Some(k)).map_err(|e| e.within(field)))
        .transpose()
}

fn optional_time(raw: i64) -> Option<UnixMicros> {
    (raw != 0).then_some(UnixMicros(raw))
}

pub fn loss(wire: &v1::OutboxLoss) -> Result<OutboxLoss, WireError> {
    let reason = enum_value::<v1::LossReason>("reason", wire.reason)?;
    let reason = loss_reason_from_wire(reason).ok_or_else(|| WireError::missing("reason"))?;
    if wire.detail.len() > MAX_LOSS_DETAIL_LEN {
        return Err(WireError::new(
            "detail",
            format!(
                "{} bytes, limit is {MAX_LOSS_DETAIL_LEN}",
                wire.detail.len()
            ),
        ));
    }
    let loss = OutboxLoss {
        key: result_key(wire.key.as_ref())?,
        reason,
        count: wire.count,
        count_unknown: wire.count_unknown,
        bytes: wire.bytes,
        first: optional_key("first", wire.first.as_ref())?,
        last: optional_key("last", wire.last.as_ref())?,
        oldest_started_at: optional_time(wire.oldest_started_at_us),
        newest_started_at: optional_time(wire.newest_started_at_us),
        recorded_at: UnixMicros(wire.recorded_at_us),
        detail: wire.detail.clone(),
    };
    if let (Some(first), Some(last)) = (&loss.first, &loss.last)
        && first > last
    {
        return Err(WireError::new("last", "comes before `first`"));
    }
    for (field, key) in [("first", &loss.first), ("last", &loss.last)] {
        if key
            .as_ref()
            .is_some_and(|k| k.probe_id != loss.key.probe_id)
        {
            return Err(WireError::new(
                format!("{field}.probe_id"),
                "differs from key.probe_id",
            ));
        }
    }
    if let (Some(oldest), Some(newest)) = (loss.oldest_started_at, loss.newest_started_at)
        && oldest > newest
    {
        return Err(WireError::new(
            "newest_started_at_us",
            "is before oldest_started_at_us",
        ));
    }
    Ok(loss)
}

/// Decodes a batch's loss records, each on its own.
pub fn batch_losses(wire: &v1::ResultBatch) -> Result<Vec<LossItem>, WireError> {
    batch_items("losses", "records", &wire.losses, loss, |l| l.key.as_ref())
}

pub fn self_test(wire: &v1::SelfTest) -> Result<SelfTest, WireError> {
    if wire.v4_addresses.len() > MAX_SELF_TEST_V4_ADDRESSES {
        return Err(WireError::new(
            "v4_addresses",
            format!("more than {MAX_SELF_TEST_V4_ADDRESSES}"),
        ));
    }
    let v4_addresses = wire
        .v4_addresses
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse().map_err(|_| {
                WireError::new(
                    format!("v4_addresses[{i}]"),
                    format!("{a:?} is not an IPv4 address"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    for (field, text) in [
        ("v6_route_interface", &wire.v6_route_interface),
        ("aaaa_name", &wire.aaaa_name),
    ] {
        if text.len() > MAX_NAME_LEN {
            return Err(WireError::new(
                field,
                format!("longer than {MAX_NAME_LEN} bytes"),
            ));
        }
    }
    let nat64_prefix = nat64_prefix("nat64_prefix", &wire.nat64_prefix, wire.nat64_prefix_length)?;
    Ok(SelfTest {
        tested_at: UnixMicros(wire.tested_at_us),
        default_route_v6: wire.default_route_v6,
        default_route_v4: wire.default_route_v4,
        v4_addresses,
        v6_route_interface: (!wire.v6_route_interface.is_empty())
            .then(|| wire.v6_route_interface.clone()),
        v6_route_interface_kind: interface_kind_from_wire(wire.v6_route_interface_kind),
        v6_route_mtu: (wire.v6_route_mtu != 0).then_some(wire.v6_route_mtu),
        aaaa_name: wire.aaaa_name.clone(),
        aaaa_resolved: wire.aaaa_resolved,
        nat64_prefix,
        clat: wire.clat,
        global_v6_address: wire.global_v6_address,
        collector_v6: wire.collector_v6,
    })
}

/// Upper bound on tags in one message.
const MAX_TAGS: usize = 64;

pub fn tags(wire: &v1::ProbeTags) -> Result<Vec<ProbeTag>, WireError> {
    if wire.tags.len() > MAX_TAGS {
        return Err(WireError::new("tags", format!("more than {MAX_TAGS}")));
    }
    wire.tags
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(ProbeTag {
                name: TagName::new(&t.name)
                    .map_err(|e| WireError::new(format!("tags[{i}].name"), e.to_string()))?,
                since: UnixMicros(t.since_us),
            })
        })
        .collect()
}

pub fn heartbeat(wire: &v1::Heartbeat) -> Heartbeat {
    Heartbeat {
        probe_time: UnixMicros(wire.probe_time_us),
        pending_results: wire.pending_results,
        pending_bytes: wire.pending_bytes,
    }
}

/// A batch as the collector ingests it: every result and loss record decoded on its own, so
/// one bad item does not sink the rest; too many of either refuses the whole batch.
pub fn received_batch(wire: &v1::ResultBatch) -> ReceivedBatch {
    ReceivedBatch {
        batch_id: wire.batch_id,
        result_count: wire.results.len(),
        items: batch(wire).and_then(|results| Ok((results, batch_losses(wire)?))),
    }
}

/// What a probe sent on its session stream, decoded once at the collector's edge. A result
/// batch is decoded item by item ([`received_batch`]); an error in any other message names
/// the field from the message (`hello.probe_id`), and a message of no known kind is an error
/// of field `kind`.
pub fn probe_message(wire: v1::ProbeMessage) -> Result<ReceivedProbeMessage, WireError> {
    use v1::probe_message::Kind;
    match wire.kind {
        Some(Kind::Hello(h)) => hello(&h)
            .map(ProbeMessage::Hello)
            .map_err(|e| e.within("hello")),
        Some(Kind::Heartbeat(h)) => Ok(ProbeMessage::Heartbeat(heartbeat(&h))),
        Some(Kind::Results(b)) => Ok(ProbeMessage::Results(received_batch(&b))),
        Some(Kind::SelfTest(t)) => self_test(&t)
            .map(ProbeMessage::SelfTest)
            .map_err(|e| e.within("self_test")),
        None => Err(WireError::new("kind", "empty or unknown session message")),
    }
}

/// What the collector sent on a session stream, decoded once at the probe's edge. An
/// assignment the probe cannot use is not an error of the message but its content
/// ([`sixmap_shared::session::AssignmentItem`]): the probe reports the refusal as the task's
/// result. Other errors name the field from the message (`ack.stored[0]`).
pub fn collector_message(
    wire: v1::CollectorMessage,
) -> Result<ReceivedCollectorMessage, WireError> {
    use v1::collector_message::Kind;
    match wire.kind {
        Some(Kind::Welcome(w)) => welcome(&w)
            .map(CollectorMessage::Welcome)
            .map_err(|e| e.within("welcome")),
        Some(Kind::Assign(a)) => Ok(CollectorMessage::Assign(
            assignment(&a).map_err(|e| (TaskId::new(a.task_id).ok(), e)),
        )),
        Some(Kind::Ack(a)) => ack(&a)
            .map(CollectorMessage::Ack)
            .map_err(|e| e.within("ack")),
        Some(Kind::Cancel(c)) => Ok(CollectorMessage::Cancel(Cancel {
            task_id: task_id("task_id", c.task_id).map_err(|e| e.within("cancel"))?,
            reason: c.reason,
        })),
        Some(Kind::Tags(t)) => tags(&t)
            .map(CollectorMessage::Tags)
            .map_err(|e| e.within("tags")),
        None => Err(WireError::new("kind", "empty or unknown session message")),
    }
}

/// A result as the probe's outbox keeps it ([`crate::encode::outbox_result`]), checked as
/// the collector checks it: the outbox stores only results that pass (it bounds error texts
/// before storing), so one that does not is damage.
pub fn outbox_result(bytes: &[u8]) -> Result<MeasurementResult, WireError> {
    use prost::Message;
    let wire = v1::MeasurementResult::decode(bytes)
        .map_err(|e| WireError::new("result", format!("not a protobuf result: {e}")))?;
    let key = result_key(wire.key.as_ref())?;
    let started_at = UnixMicros(wire.started_at_us);
    kept_result(wire, key, started_at)
}

/// A loss record as the probe's outbox keeps it ([`crate::encode::outbox_loss`]).
pub fn outbox_loss(bytes: &[u8]) -> Result<OutboxLoss, WireError> {
    use prost::Message;
    let wire = v1::OutboxLoss::decode(bytes)
        .map_err(|e| WireError::new("loss", format!("not a protobuf loss record: {e}")))?;
    loss(&wire)
}

/// A query filter as named parameters, with the names of the HTTP query API (`from`, `to`,
/// `probe`, `task`, `campaign`, `probe_asn`, `probe_country`, `target_asn`, `target_country`,
/// `target`, `type`; times in µs). Unset fields are left out. The collector validates the
/// pairs with the same parser as its HTTP API, so both interfaces accept and refuse the same
/// filters, and errors name the field by these names.
pub fn filter_params(wire: Option<&v1::ResultFilter>) -> Vec<(&'static str, String)> {
    let Some(f) = wire else {
        return Vec::new();
    };
    let numbers = [
        ("from", f.from.map(|v| v.to_string())),
        ("to", f.to.map(|v| v.to_string())),
        ("task", f.task.map(|v| v.to_string())),
        ("campaign", f.campaign.map(|v| v.to_string())),
        ("probe_asn", f.probe_asn.map(|v| v.to_string())),
        ("target_asn", f.target_asn.map(|v| v.to_string())),
    ];
    let texts = [
        ("probe", &f.probe),
        ("probe_country", &f.probe_country),
        ("target_country", &f.target_country),
        ("target", &f.target),
        ("type", &f.r#type),
    ];
    numbers
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .chain(
            texts
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(name, value)| (name, value.clone())),
        )
        .collect()
}

/// What the prefix data said about an address; empty text means unknown.
pub fn origin(wire: &v1::Origin) -> Result<sixmap_shared::prefixes::Enrichment, WireError> {
    let country = match wire.country.as_str() {
        "" => None,
        text => Some(
            text.parse()
                .map_err(|e: sixmap_shared::prefixes::CountryCodeError| {
                    WireError::new("country", e.to_string())
                })?,
        ),
    };
    Ok(sixmap_shared::prefixes::Enrichment {
        asn: wire.asn,
        as_name: optional_text(&wire.as_name),
        country,
    })
}

/// A result from the query stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueriedResult {
    pub result: MeasurementResult,
    pub probe_origin: Option<sixmap_shared::prefixes::Enrichment>,
    pub target_origin: Option<sixmap_shared::prefixes::Enrichment>,
    /// Resumes a stream after this result.
    pub cursor: String,
    /// The collector's fault attribution of the result's failure, if it made one.
    pub blame: Option<sixmap_shared::blame::Blame>,
}

pub fn query_result(wire: &v1::QueryResult) -> Result<QueriedResult, WireError> {
    let result = wire
        .result
        .as_ref()
        .ok_or_else(|| WireError::missing("result"))
        .and_then(|r| self::result(r).map_err(|e| e.within("result")))?;
    let probe_origin = wire
        .probe_origin
        .as_ref()
        .map(|o| origin(o).map_err(|e| e.within("probe_origin")))
        .transpose()?;
    let target_origin = wire
        .target_origin
        .as_ref()
        .map(|o| origin(o).map_err(|e| e.within("target_origin")))
        .transpose()?;
    let blame = wire
        .blame
        .as_ref()
        .map(|b| fault_attribution(b).map_err(|e| e.within("blame")))
        .transpose()?;
    Ok(QueriedResult {
        result,
        probe_origin,
        target_origin,
        cursor: wire.cursor.clone(),
        blame,
    })
}

pub fn fault_attribution(
    wire: &v1::FaultAttribution,
) -> Result<sixmap_shared::blame::Blame, WireError> {
    use sixmap_shared::blame::{Blame, BlameHop};
    let hop = |field: &str, h: Option<&v1::FaultHop>| -> Result<Option<BlameHop>, WireError> {
        let Some(h) = h else {
            return Ok(None);
        };
        let hop_limit: u8 = small(&format!("{field}.hop_limit"), h.hop_limit)?;
        if hop_limit == 0 {
            return Err(WireError::new(
                format!("{field}.hop_limit"),
                "required, 1..=255",
            ));
        }
        Ok(Some(BlameHop {
            hop_limit,
            address: optional_address(&format!("{field}.address"), &h.address)?,
            asn: h.asn,
        }))
    };
    let probe_country = match wire.probe_country.as_str() {
        "" => None,
        text => Some(
            text.parse()
                .map_err(|e: sixmap_shared::prefixes::CountryCodeError| {
                    WireError::new("probe_country", e.to_string())
                })?,
        ),
    };
    Ok(Blame {
        failure: required("failure", wire.failure, fault_failure_from_wire)?,
        placement: required("placement", wire.placement, placement_from_wire)?,
        responsible_asn: wire.responsible_asn,
        last_answering: hop("last_answering", wire.last_answering.as_ref())?,
        first_silent: hop("first_silent", wire.first_silent.as_ref())?,
        boundary: wire.boundary,
        probe_asn: wire.probe_asn,
        probe_country,
        destination_asn: wire.destination_asn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;
    use sixmap_shared::measurement::{
        ClockState, IcmpSocketKind, MeasurementKind, TimestampSource,
    };

    fn sample_result() -> MeasurementResult {
        MeasurementResult {
            key: ResultKey {
                probe_id: "0123456789abcdef".parse().unwrap(),
                boot_epoch: 3,
                sequence: 9,
            },
            task_id: TaskId::new(5).unwrap(),
            started_at: UnixMicros(1_700_000_000_000_000),
            duration_us: 2_000,
            family_requested: Family::V6,
            family_used: Some(Family::V6),
            source: Some("::1".parse().unwrap()),
            destination: Some("::1".parse().unwrap()),
            software_version: "0.1.0".into(),
            clock: ClockInfo {
                state: ClockState::Synchronized,
                offset_us: Some(-40),
            },
            outcome: Outcome::Ping(PingResult {
                sent: 2,
                received: 1,
                replies: vec![PingReply {
                    sequence: 1,
                    rtt_ns: 45_000,
                    hop_limit: Some(64),
                    duplicate: false,
                    from: "::1".parse().unwrap(),
                }],
                timestamp_source: TimestampSource::Kernel,
                socket_kind: IcmpSocketKind::Raw,
                errors: vec![],
            }),
        }
    }

    #[test]
    fn stored_results_round_trip_without_their_key_and_refuse_damage() {
        let original = sample_result();
        let bytes = encode::stored_result(&original);
        let full = {
            use prost::Message;
            encode::result(&original).encode_to_vec()
        };
        assert!(
            bytes.len() + 20 < full.len(),
            "{} vs {}",
            bytes.len(),
            full.len()
        );
        let back = stored_result(&bytes, original.key.clone(), original.started_at).unwrap();
        assert_eq!(back, original);
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                stored_result(&bytes[..cut], original.key.clone(), original.started_at).is_err(),
                "cut at {cut}"
            );
        }
        assert!(stored_result(&[0xff; 8], original.key.clone(), original.started_at).is_err());
    }

    #[test]
    fn the_largest_valid_result_is_small_next_to_the_message_limit() {
        use prost::Message;
        use sixmap_shared::session::MAX_MESSAGE_BYTES;
        let far: IpAddr = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let mut largest = sample_result();
        largest.source = Some(far);
        largest.destination = Some(far);
        largest.software_version = "9".repeat(64);
        largest.outcome = Outcome::Ping(PingResult {
            sent: 64,
            received: 64,
            replies: (0..64)
                .map(|sequence| PingReply {
                    sequence,
                    rtt_ns: u64::MAX,
                    hop_limit: Some(255),
                    duplicate: false,
                    from: far,
                })
                .collect(),
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Raw,
            errors: (0..256)
                .map(|_| IcmpError {
                    icmp_type: 255,
                    icmp_code: 255,
                    from: far,
                    mtu: Some(u32::MAX),
                })
                .collect(),
        });
        assert_eq!(largest.validate(), Ok(()));
        // Probes split batches by size as well as count; this bound keeps even
        // size-limited batches large.
        let len = encode::result(&largest).encoded_len();
        assert!(len < MAX_MESSAGE_BYTES / 64, "{len} bytes");
    }

    #[test]
    fn results_round_trip() {
        let domain = sample_result();
        assert_eq!(result(&encode::result(&domain)).unwrap(), domain);
    }

    #[test]
    fn bad_result_fields_are_named() {
        let mut wire = encode::result(&sample_result());
        wire.source_address = "not-an-ip".into();
        let err = result(&wire).unwrap_err();
        assert_eq!(err.field, "source_address");

        let mut wire = encode::result(&sample_result());
        wire.task_id = 0;
        assert_eq!(result(&wire).unwrap_err().field, "task_id");

        let mut wire = encode::result(&sample_result());
        if let Some(v1::measurement_result::Kind::Ping(p)) = &mut wire.kind {
            p.replies[0].from = "x".into();
        }
        assert_eq!(result(&wire).unwrap_err().field, "ping.replies[0].from");

        let mut wire = encode::result(&sample_result());
        wire.kind = None;
        assert_eq!(result(&wire).unwrap_err().field, "kind");

        let mut wire = encode::result(&sample_result());
        wire.family_requested = 99;
        assert!(
            result(&wire)
                .unwrap_err()
                .to_string()
                .contains("family_requested")
        );
    }

    #[test]
    fn one_bad_result_does_not_sink_the_batch() {
        let good = encode::result(&sample_result());
        let mut bad = good.clone();
        bad.destination_address = "2001:db8::zz".into();
        let decoded = batch(&v1::ResultBatch {
            batch_id: 1,
            results: vec![good, bad],
            losses: Vec::new(),
        })
        .unwrap();
        assert!(decoded[0].is_ok());
        let (key, err) = decoded[1].clone().unwrap_err();
        assert_eq!(key.unwrap().sequence, 9);
        assert_eq!(err.field, "results[1].destination_address");
    }

    fn sample_loss() -> OutboxLoss {
        let key = |sequence| ResultKey {
            probe_id: "0123456789abcdef".parse().unwrap(),
            boot_epoch: 2,
            sequence,
        };
        OutboxLoss {
            key: key(1),
            reason: sixmap_shared::LossReason::OutboxFull,
            count: 40,
            count_unknown: true,
            bytes: 12_000,
            first: Some(key(3)),
            last: Some(key(50)),
            oldest_started_at: Some(UnixMicros(100)),
            newest_started_at: Some(UnixMicros(200)),
            recorded_at: UnixMicros(300),
            detail: String::new(),
        }
    }

    #[test]
    fn loss_records_round_trip_and_errors_name_the_field() {
        let domain = sample_loss();
        assert_eq!(loss(&encode::loss(&domain)).unwrap(), domain);
        let mut wire = encode::loss(&domain);
        wire.reason = 0;
        assert_eq!(loss(&wire).unwrap_err().field, "reason");
        let mut wire = encode::loss(&domain);
        wire.first = wire.last.clone().map(|mut k| {
            k.sequence += 1;
            k
        });
        assert_eq!(loss(&wire).unwrap_err().field, "last");
        let mut wire = encode::loss(&domain);
        if let Some(k) = wire.last.as_mut() {
            k.probe_id = "ffffffffffffffff".into();
        }
        assert_eq!(loss(&wire).unwrap_err().field, "last.probe_id");
        let mut wire = encode::loss(&domain);
        wire.detail = "x".repeat(MAX_LOSS_DETAIL_LEN + 1);
        assert_eq!(loss(&wire).unwrap_err().field, "detail");
        let mut bad = encode::loss(&domain);
        bad.oldest_started_at_us = 500;
        let decoded = batch_losses(&v1::ResultBatch {
            batch_id: 1,
            results: Vec::new(),
            losses: vec![encode::loss(&domain), bad],
        })
        .unwrap();
        assert!(decoded[0].is_ok());
        let (key, err) = decoded[1].clone().unwrap_err();
        assert_eq!(key.unwrap().sequence, 1);
        assert_eq!(err.field, "losses[1].newest_started_at_us");
    }

    #[test]
    fn self_tests_and_tags_round_trip_and_validate() {
        let domain = SelfTest {
            tested_at: UnixMicros(5),
            default_route_v6: true,
            default_route_v4: false,
            v4_addresses: vec!["192.0.0.2".parse().unwrap()],
            v6_route_interface: Some("eth0".into()),
            v6_route_interface_kind: sixmap_shared::InterfaceKind::Ethernet,
            v6_route_mtu: Some(1500),
            aaaa_name: "www.ripe.net".into(),
            aaaa_resolved: Some(true),
            nat64_prefix: Some("64:ff9b::".parse().unwrap()),
            clat: true,
            global_v6_address: true,
            collector_v6: Some(false),
        };
        assert_eq!(self_test(&encode::self_test(&domain)).unwrap(), domain);
        let mut wire = encode::self_test(&domain);
        wire.v4_addresses[0] = "2001:db8::1".into();
        assert_eq!(self_test(&wire).unwrap_err().field, "v4_addresses[0]");
        let mut wire = encode::self_test(&domain);
        wire.nat64_prefix = "nope".into();
        assert_eq!(self_test(&wire).unwrap_err().field, "nat64_prefix");
        // An interface kind from a newer probe is read as unknown, not refused.
        let mut wire = encode::self_test(&domain);
        wire.v6_route_interface_kind = 99;
        assert_eq!(
            self_test(&wire).unwrap().v6_route_interface_kind,
            sixmap_shared::InterfaceKind::Unknown
        );

        let tag_list = vec![ProbeTag {
            name: TagName::new("v6-works").unwrap(),
            since: UnixMicros(9),
        }];
        assert_eq!(tags(&encode::tags(&tag_list)).unwrap(), tag_list);
        let mut wire = encode::tags(&tag_list);
        wire.tags[0].name = "V6 Works".into();
        assert_eq!(tags(&wire).unwrap_err().field, "tags[0].name");
    }

    #[test]
    fn assignments_round_trip_and_validate() {
        let a = Assignment {
            task_id: TaskId::new(11).unwrap(),
            spec: MeasurementSpec::new(
                Target::Address("::1".parse().unwrap()),
                Family::V6,
                Duration::from_secs(5),
                SpecKind::Ping(PingSpec::new(3, 200, 0).unwrap()),
            )
            .unwrap(),
            interval: Some(Duration::from_secs(30)),
            not_before: None,
        };
        assert_eq!(assignment(&encode::assignment(&a)).unwrap(), a);

        let mut wire = encode::assignment(&a);
        if let Some(v1::measurement_spec::Kind::Ping(p)) =
            wire.spec.as_mut().and_then(|s| s.kind.as_mut())
        {
            p.count = 1000;
        }
        assert_eq!(assignment(&wire).unwrap_err().field, "spec.ping.count");

        let mut wire = encode::assignment(&a);
        if let Some(s) = wire.spec.as_mut() {
            s.kind = Some(v1::measurement_spec::Kind::Tcp(v1::TcpSpec {
                port: 70_000,
            }));
        }
        assert_eq!(assignment(&wire).unwrap_err().field, "spec.tcp.port");
    }

    #[test]
    fn hello_checks_identity_and_version() {
        let wire = v1::Hello {
            probe_id: "0123456789abcdef".into(),
            probe_secret: String::new(),
            software_version: "0.1.0".into(),
            boot_epoch: 1,
            capabilities: vec![1, 999],
            local_addresses: vec!["2001:db8::5".into()],
            probe_time_us: 0,
            location: Some(v1::CoarseLocation {
                latitude_e1: 524,
                longitude_e1: 49,
            }),
        };
        let h = hello(&wire).unwrap();
        assert_eq!(h.location.map(|l| l.latitude()), Some(52.4));
        assert_eq!(h.capabilities, vec![MeasurementKind::Ping]);
        assert_eq!(hello(&encode::hello(&h)).unwrap(), h);
        let mut bad = wire.clone();
        bad.software_version = "1.0".into();
        assert_eq!(hello(&bad).unwrap_err().field, "software_version");
        let mut bad = wire.clone();
        bad.probe_id = "nope".into();
        assert_eq!(hello(&bad).unwrap_err().field, "probe_id");
        let mut bad = wire;
        bad.location = Some(v1::CoarseLocation {
            latitude_e1: 901,
            longitude_e1: 0,
        });
        assert_eq!(hello(&bad).unwrap_err().field, "location");
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[test]
    fn filters_become_named_parameters_and_origins_are_checked() {
        assert!(filter_params(None).is_empty());
        let wire = v1::ResultFilter {
            from: Some(5),
            task: Some(0),
            probe_country: "NL".into(),
            r#type: "ping".into(),
            ..Default::default()
        };
        let mut pairs = filter_params(Some(&wire));
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                ("from", "5".to_owned()),
                ("probe_country", "NL".to_owned()),
                ("task", "0".to_owned()),
                ("type", "ping".to_owned()),
            ]
        );
        let bad = v1::QueryResult {
            result: None,
            ..Default::default()
        };
        assert_eq!(query_result(&bad).unwrap_err().field, "result");
        let bad_origin = v1::Origin {
            country: "Netherlands".into(),
            ..Default::default()
        };
        assert_eq!(origin(&bad_origin).unwrap_err().field, "country");
    }

    #[test]
    fn a_fault_attribution_travels_with_its_result_and_bad_fields_are_named() {
        use sixmap_shared::blame::{Blame, BlameHop, Failure, Placement};
        let blame = Blame {
            failure: Failure::PmtuBlackHole,
            placement: Placement::Transit,
            responsible_asn: Some(64510),
            last_answering: Some(BlameHop {
                hop_limit: 2,
                address: Some("2001:db8:2::1".parse().unwrap()),
                asn: Some(64510),
            }),
            first_silent: Some(BlameHop {
                hop_limit: 3,
                address: None,
                asn: None,
            }),
            boundary: false,
            probe_asn: Some(64500),
            probe_country: "XA".parse().ok(),
            destination_asn: None,
        };
        let result = crate::kinds_tests::base(crate::kinds_tests::outcomes().swap_remove(11));
        let wire = crate::encode::query_result(&result, None, None, Some(&blame), "c".into());
        let decoded = query_result(&wire).unwrap();
        assert_eq!(decoded.blame, Some(blame));
        assert_eq!(decoded.result, result);
        // Every failure and placement has its wire value, and back.
        for failure in Failure::ALL {
            for placement in Placement::ALL {
                let b = Blame {
                    failure,
                    placement,
                    ..blame
                };
                assert_eq!(
                    fault_attribution(&crate::encode::fault_attribution(&b)),
                    Ok(b)
                );
            }
        }
        let none = crate::encode::query_result(&result, None, None, None, "c".into());
        assert_eq!(query_result(&none).unwrap().blame, None);

        type Damage = fn(&mut v1::FaultAttribution);
        let cases: [(&str, Damage); 7] = [
            ("blame.failure", |b| b.failure = 0),
            ("blame.failure", |b| b.failure = 42),
            ("blame.placement", |b| b.placement = 0),
            ("blame.probe_country", |b| {
                b.probe_country = "Atlantis".into()
            }),
            ("blame.last_answering.address", |b| {
                b.last_answering.as_mut().unwrap().address = "router".into();
            }),
            ("blame.last_answering.hop_limit", |b| {
                b.last_answering.as_mut().unwrap().hop_limit = 256;
            }),
            ("blame.first_silent.hop_limit", |b| {
                b.first_silent.as_mut().unwrap().hop_limit = 0;
            }),
        ];
        for (field, damage) in cases {
            let mut bad = wire.clone();
            damage(bad.blame.as_mut().unwrap());
            assert_eq!(query_result(&bad).unwrap_err().field, field);
        }
    }
}
