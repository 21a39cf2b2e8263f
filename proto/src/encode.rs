//! Domain types into wire messages. Infallible: domain types are valid by construction.

use crate::enums::*;
use crate::v1;
use sixmap_shared::ResultKey;
use sixmap_shared::blame::{Blame, BlameHop};
use sixmap_shared::health::{OutboxLoss, ProbeTag, SelfTest};
use sixmap_shared::measurement::{
    CertificateSummary, DnsResult, DualLeg, DualStackResult, ExtHeaderResult, FaultPath, HopAnswer,
    HttpMethod, HttpResult, IcmpError, MeasurementResult, MeasurementSpec, Outcome, PingResult,
    PmtuResult, QuicResult, ReadinessResult, SpecKind, Target, TcpResult, TlsResult,
    TracerouteResult,
};
use sixmap_shared::session::{
    Ack, Assignment, CollectorMessage, Heartbeat, Hello, ProbeMessage, ResultBatch, Welcome,
};

fn millis_u32(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

pub fn spec(spec: &MeasurementSpec) -> v1::MeasurementSpec {
    let target = match &spec.target {
        Target::Address(a) => v1::target::Kind::Address(a.to_string()),
        Target::Hostname(h) => v1::target::Kind::Hostname(h.clone()),
    };
    use v1::measurement_spec::Kind as W;
    // Every field is written with the value the spec resolved (defaults applied), so a probe
    // with different defaults still runs exactly what the collector validated.
    let kind = match &spec.kind {
        SpecKind::Ping(p) => W::Ping(v1::PingSpec {
            count: u32::from(p.count()),
            interval_ms: millis_u32(p.interval()),
            payload_size: u32::from(p.payload_size()),
        }),
        SpecKind::Traceroute(t) => W::Traceroute(v1::TracerouteSpec {
            protocol: trace_protocol_to_wire(t.protocol()).into(),
            first_hop: u32::from(t.first_hop()),
            max_hops: u32::from(t.max_hops()),
            probes_per_hop: u32::from(t.probes_per_hop()),
            max_silent_hops: u32::from(t.max_silent_hops()),
            port: u32::from(t.port()),
            flow_label: t.flow_label(),
        }),
        SpecKind::Dns(d) => W::Dns(v1::DnsSpec {
            query_name: d.query_name().to_owned(),
            query_type: u32::from(d.query_type()),
            transport: dns_transport_to_wire(d.transport()).into(),
            recursion_desired: d.recursion_desired(),
            system_resolver: d.system_resolver(),
            // 0 for 53, so a spec of before ports could be chosen keeps its bytes.
            // 0 for the transport's own, so a spec of before ports could be chosen keeps its
            // bytes.
            port: if d.port() == d.transport().default_port() {
                0
            } else {
                u32::from(d.port())
            },
            server_name: d.server_name().unwrap_or_default().to_owned(),
            path: match d.path() {
                sixmap_shared::measurement::DOH_PATH => String::new(),
                path => path.to_owned(),
            },
        }),
        SpecKind::Tcp(t) => W::Tcp(v1::TcpSpec {
            port: u32::from(t.port()),
        }),
        SpecKind::Tls(t) => W::Tls(v1::TlsSpec {
            port: u32::from(t.port()),
            server_name: t.server_name().unwrap_or_default().to_owned(),
            alpn: t.alpn().to_vec(),
        }),
        SpecKind::Http(h) => W::Http(v1::HttpSpec {
            url: h.url().to_string(),
            method: match h.method() {
                HttpMethod::Get => "GET",
                HttpMethod::Head => "HEAD",
            }
            .to_owned(),
            max_body_bytes: h.max_body_bytes(),
        }),
        SpecKind::Quic(q) => W::Quic(v1::QuicSpec {
            port: u32::from(q.port()),
            server_name: q.server_name().unwrap_or_default().to_owned(),
            alpn: q.alpn().to_vec(),
        }),
        SpecKind::Pmtu(p) => W::Pmtu(v1::PmtuSpec {
            max_size: u32::from(p.max_size()),
            protocol: trace_protocol_to_wire(p.protocol()).into(),
        }),
        SpecKind::ExtHeaders(e) => W::ExtHeaders(v1::ExtHeaderSpec {
            headers: e
                .headers()
                .iter()
                .map(|h| ext_header_to_wire(*h).into())
                .collect(),
            option_bytes: u32::from(e.option_bytes()),
        }),
        SpecKind::DualStack(d) => W::DualStack(v1::DualStackSpec {
            // The domain keeps the name only as the target (a dual-stack spec always has a
            // host name there); the wire repeats it here as the message documents.
            hostname: match &spec.target {
                Target::Hostname(h) => h.clone(),
                Target::Address(_) => String::new(),
            },
            inner: dual_inner_to_wire(d.inner()).into(),
            port: u32::from(d.port()),
        }),
        SpecKind::Readiness(r) => W::Readiness(v1::ReadinessSpec {
            path: r.path().to_owned(),
            web_host: r.web_host().unwrap_or_default().to_owned(),
            check_mail: r.check_mail(),
            check_subresources: r.check_subresources(),
            max_subresource_hosts: u32::from(r.max_subresource_hosts()),
        }),
    };
    v1::MeasurementSpec {
        target: Some(v1::Target {
            kind: Some(target),
            family: family_to_wire(spec.family).into(),
        }),
        budget: Some(v1::Budget {
            timeout_ms: millis_u32(spec.timeout),
            max_packets: spec.max_packets.map_or(0, u32::from),
        }),
        kind: Some(kind),
    }
}

pub fn assignment(a: &Assignment) -> v1::TaskAssignment {
    v1::TaskAssignment {
        task_id: a.task_id.get(),
        spec: Some(spec(&a.spec)),
        interval_s: a
            .interval
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0),
        not_before_us: a.not_before.map(|t| t.0).unwrap_or(0),
    }
}

pub fn result_key(key: &ResultKey) -> v1::ResultKey {
    v1::ResultKey {
        probe_id: key.probe_id.to_string(),
        boot_epoch: key.boot_epoch,
        sequence: key.sequence,
    }
}

fn icmp_error(e: &IcmpError) -> v1::IcmpError {
    v1::IcmpError {
        icmp_type: u32::from(e.icmp_type),
        icmp_code: u32::from(e.icmp_code),
        from: e.from.to_string(),
        mtu: e.mtu.unwrap_or(0),
    }
}

fn ping_result(p: &PingResult) -> v1::PingResult {
    v1::PingResult {
        sent: u32::from(p.sent),
        received: u32::from(p.received),
        replies: p
            .replies
            .iter()
            .map(|r| v1::PingReply {
                sequence: u32::from(r.sequence),
                rtt_ns: r.rtt_ns,
                hop_limit: r.hop_limit.map(u32::from).unwrap_or(0),
                duplicate: r.duplicate,
                from: r.from.to_string(),
            })
            .collect(),
        timestamp_source: timestamp_to_wire(p.timestamp_source).into(),
        socket_kind: socket_to_wire(p.socket_kind).into(),
        errors: p.errors.iter().map(icmp_error).collect(),
    }
}

fn traceroute_result(t: &TracerouteResult) -> v1::TracerouteResult {
    v1::TracerouteResult {
        hops: t
            .hops
            .iter()
            .map(|hop| v1::TracerouteHop {
                hop_limit: u32::from(hop.hop_limit),
                replies: hop
                    .replies
                    .iter()
                    .map(|slot| match slot {
                        // No answer: an all-default reply, recognised by its empty `from`.
                        None => v1::TracerouteReply::default(),
                        Some(reply) => {
                            let mut wire = v1::TracerouteReply {
                                from: reply.from.to_string(),
                                rtt_ns: reply.rtt_ns,
                                ..Default::default()
                            };
                            match reply.answer {
                                HopAnswer::Icmp {
                                    icmp_type,
                                    icmp_code,
                                    mtu,
                                } => {
                                    wire.icmp_type = u32::from(icmp_type);
                                    wire.icmp_code = u32::from(icmp_code);
                                    wire.mtu = mtu.unwrap_or(0);
                                }
                                HopAnswer::Tcp { flags } => wire.tcp_flags = u32::from(flags),
                            }
                            wire
                        }
                    })
                    .collect(),
            })
            .collect(),
        reached_destination: t.reached_destination,
        packets_sent: t.packets_sent,
        flow_label: t.flow_label,
        protocol: trace_protocol_to_wire(t.protocol).into(),
        stop: trace_stop_to_wire(t.stop).into(),
        reused_hops: u32::from(t.reused_hops),
    }
}

fn dns_result(d: &DnsResult) -> v1::DnsResult {
    let response = d.response.as_ref();
    let session = d.session.as_ref();
    v1::DnsResult {
        rcode: response.map_or(0, |r| u32::from(r.rcode)),
        answers: response
            .map(|r| {
                r.answers
                    .iter()
                    .map(|a| v1::DnsRecord {
                        name: a.name.clone(),
                        record_type: u32::from(a.record_type),
                        ttl: a.ttl,
                        data: a.data.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        flags: response.map_or(0, |r| u32::from(r.flags)),
        rtt_ns: d.rtt_ns.unwrap_or(0),
        transport_used: dns_transport_to_wire(d.transport_used).into(),
        query_name: d.query_name.clone(),
        query_type: u32::from(d.query_type),
        answered: response.is_some(),
        failure: d.failure.clone().unwrap_or_default(),
        failure_class: dns_failure_to_wire(d.failure_class).into(),
        encrypted: d.session.is_some(),
        connect_ns: session.and_then(|s| s.connect_ns).unwrap_or(0),
        tls_ns: session.and_then(|s| s.tls_ns).unwrap_or(0),
        http_status: session.and_then(|s| s.http_status).map_or(0, u32::from),
        tls_version: session
            .and_then(|s| s.tls_version.clone())
            .unwrap_or_default(),
    }
}

fn tcp_result(t: &TcpResult) -> v1::TcpResult {
    v1::TcpResult {
        outcome: connect_to_wire(t.outcome).into(),
        connect_ns: t.connect_ns.unwrap_or(0),
        icmp_error: t.icmp_error.as_ref().map(icmp_error),
        port: u32::from(t.port),
    }
}

fn certificate(c: &CertificateSummary) -> v1::CertificateSummary {
    v1::CertificateSummary {
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        not_before_us: c.not_before.map_or(0, |t| t.0),
        not_after_us: c.not_after.map_or(0, |t| t.0),
    }
}

fn tls_result(t: &TlsResult) -> v1::TlsResult {
    v1::TlsResult {
        connect: connect_to_wire(t.connect).into(),
        handshake_ok: t.handshake_ok,
        version: t.version.clone().unwrap_or_default(),
        cipher_suite: t.cipher_suite.clone().unwrap_or_default(),
        alpn: t.alpn.clone().unwrap_or_default(),
        chain: t.chain.iter().map(certificate).collect(),
        connect_ns: t.connect_ns.unwrap_or(0),
        handshake_ns: t.handshake_ns.unwrap_or(0),
        failure: t.failure.clone().unwrap_or_default(),
        certificate_verified: t.certificate_verified,
    }
}

fn http_result(h: &HttpResult) -> v1::HttpResult {
    v1::HttpResult {
        status: h.status.map_or(0, u32::from),
        dns_ns: h.dns_ns.unwrap_or(0),
        connect_ns: h.connect_ns.unwrap_or(0),
        tls_ns: h.tls_ns.unwrap_or(0),
        first_byte_ns: h.first_byte_ns.unwrap_or(0),
        total_ns: h.total_ns,
        body_bytes: h.body_bytes,
        body_truncated: h.body_truncated,
        failure: h.failure.clone().unwrap_or_default(),
        connect: connect_to_wire(h.connect).into(),
        http_version: h.http_version.clone().unwrap_or_default(),
    }
}

fn quic_result(q: &QuicResult) -> v1::QuicResult {
    v1::QuicResult {
        handshake_ok: q.handshake_ok,
        version: q.version.unwrap_or(0),
        alpn: q.alpn.clone().unwrap_or_default(),
        handshake_ns: q.handshake_ns.unwrap_or(0),
        failure: quic_failure_to_wire(q.failure).into(),
        failure_detail: q.failure_detail.clone().unwrap_or_default(),
    }
}

fn pmtu_result(p: &PmtuResult) -> v1::PmtuResult {
    v1::PmtuResult {
        path_mtu: p.path_mtu,
        black_hole: p.black_hole,
        black_hole_hop: p.black_hole_hop.map_or(0, u32::from),
        black_hole_from: p.black_hole_from.map(|a| a.to_string()).unwrap_or_default(),
        too_big: p.too_big.iter().map(icmp_error).collect(),
        packets_sent: p.packets_sent,
        fault_path: p.fault_path.as_ref().map(fault_path),
    }
}

fn fault_path(p: &FaultPath) -> v1::FaultPath {
    v1::FaultPath {
        hops: p
            .hops
            .iter()
            .map(|h| v1::PathHop {
                hop_limit: u32::from(h.hop_limit),
                address: h.address.to_string(),
            })
            .collect(),
        probed_up_to: u32::from(p.probed_up_to),
        reached_destination: p.reached_destination,
        packets_sent: p.packets_sent,
    }
}

fn ext_header_result(e: &ExtHeaderResult) -> v1::ExtHeaderResult {
    v1::ExtHeaderResult {
        outcomes: e
            .outcomes
            .iter()
            .map(|o| v1::ExtHeaderOutcome {
                header: ext_header_to_wire(o.header).into(),
                survived: o.survived,
                dropped_at_hop: o.dropped_at_hop.map_or(0, u32::from),
                icmp_error: o.icmp_error.as_ref().map(icmp_error),
                last_responder: o.last_responder.map(|a| a.to_string()).unwrap_or_default(),
            })
            .collect(),
        packets_sent: e.packets_sent,
        fault_path: e.fault_path.as_ref().map(fault_path),
    }
}

/// A leg carries only what differs per family; key, task, clock and versions are the
/// enclosing result's.
fn dual_leg(leg: &DualLeg) -> v1::MeasurementResult {
    let (error, kind) = outcome(&leg.outcome);
    v1::MeasurementResult {
        duration_us: leg.duration_us,
        source_address: leg.source.map(|a| a.to_string()).unwrap_or_default(),
        destination_address: leg.destination.map(|a| a.to_string()).unwrap_or_default(),
        error,
        kind,
        ..Default::default()
    }
}

fn dual_stack_result(d: &DualStackResult) -> v1::DualStackResult {
    v1::DualStackResult {
        v6: Some(Box::new(dual_leg(&d.v6))),
        v4: Some(Box::new(dual_leg(&d.v4))),
        happy_eyeballs_choice: d
            .happy_eyeballs_choice
            .map_or(v1::AddressFamily::Unspecified, family_to_wire)
            .into(),
        v6_hops: d.v6_hops.map_or(0, u32::from),
        v4_hops: d.v4_hops.map_or(0, u32::from),
        v6_nat64_prefix: nat64_network(d.v6_nat64_prefix),
        v6_nat64_prefix_length: nat64_length(d.v6_nat64_prefix),
        v4_via_clat: d.v4_via_clat,
        v6_fault_path: d.v6_fault_path.as_ref().map(fault_path),
    }
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn lookup(l: &sixmap_shared::measurement::Lookup) -> v1::Lookup {
    v1::Lookup {
        status: lookup_status_to_wire(l.status).into(),
        detail: text(&l.detail),
    }
}

fn optional_connect(outcome: Option<sixmap_shared::measurement::ConnectOutcome>) -> i32 {
    outcome
        .map_or(v1::ConnectOutcome::Unspecified, connect_to_wire)
        .into()
}

fn readiness_result(r: &ReadinessResult) -> v1::ReadinessResult {
    let address = |a: Option<std::net::Ipv6Addr>| a.map(|a| a.to_string()).unwrap_or_default();
    let web = &r.web;
    v1::ReadinessResult {
        resolver: r.resolver.map(|a| a.to_string()).unwrap_or_default(),
        dns64_prefix: nat64_network(r.dns64_prefix),
        dns64_prefix_length: nat64_length(r.dns64_prefix),
        dns: Some(v1::DnsReadiness {
            ns_lookup: Some(lookup(&r.dns.ns_lookup)),
            servers: r
                .dns
                .servers
                .iter()
                .map(|s| v1::NameServerCheck {
                    name: s.name.clone(),
                    has_aaaa: presence_to_wire(s.has_aaaa).into(),
                    address: address(s.address),
                    answers_over_v6: s.answers_over_v6,
                    detail: text(&s.detail),
                })
                .collect(),
        }),
        mail: r.mail.as_ref().map(|m| v1::MailReadiness {
            mx_lookup: Some(lookup(&m.mx_lookup)),
            null_mx: m.null_mx,
            exchangers: m
                .exchangers
                .iter()
                .map(|x| v1::MailExchangerCheck {
                    name: x.name.clone(),
                    preference: u32::from(x.preference),
                    has_aaaa: presence_to_wire(x.has_aaaa).into(),
                    address: address(x.address),
                    smtp_v6: optional_connect(x.smtp_v6),
                    detail: text(&x.detail),
                })
                .collect(),
        }),
        web: Some(v1::WebReadiness {
            host: web.host.clone(),
            aaaa: presence_to_wire(web.aaaa).into(),
            a: presence_to_wire(web.a).into(),
            aaaa_lookup: Some(lookup(&web.aaaa_lookup)),
            a_lookup: Some(lookup(&web.a_lookup)),
            v6_address: address(web.v6_address),
            v4_address: web.v4_address.map(|a| a.to_string()).unwrap_or_default(),
            https_v6_connect: optional_connect(web.https_v6_connect),
            https_v4_connect: optional_connect(web.https_v4_connect),
            https_v6_status: web.https_v6_status.map_or(0, u32::from),
            https_v4_status: web.https_v4_status.map_or(0, u32::from),
            v6_certificate_verified: web.v6_certificate_verified,
            v6_error: text(&web.v6_error),
            v4_error: text(&web.v4_error),
            same_certificate: web.same_certificate,
            same_content: web.same_content,
            v6_body_bytes: web.v6_body_bytes,
            v4_body_bytes: web.v4_body_bytes,
            final_url: text(&web.final_url),
            v6_inconclusive: web.v6_inconclusive,
        }),
        subresources: r.subresources.as_ref().map(|s| v1::SubresourceReadiness {
            html_from: s
                .html_from
                .map_or(v1::AddressFamily::Unspecified, family_to_wire)
                .into(),
            hosts: s
                .hosts
                .iter()
                .map(|h| v1::SubresourceHost {
                    host: h.host.clone(),
                    same_host: h.same_host,
                    has_aaaa: presence_to_wire(h.has_aaaa).into(),
                    url: h.url.clone(),
                    fetched_v6: h.fetched_v6,
                    status_v6: h.status_v6.map_or(0, u32::from),
                    detail: text(&h.detail),
                })
                .collect(),
            truncated: s.truncated,
        }),
    }
}

/// The `error` field and the `kind` oneof of a result (or of a dual-stack leg).
fn outcome(
    outcome: &Outcome,
) -> (
    Option<v1::MeasurementError>,
    Option<v1::measurement_result::Kind>,
) {
    use v1::measurement_result::Kind as W;
    let kind = match outcome {
        Outcome::Failed(e) => {
            let error = v1::MeasurementError {
                class: error_class_to_wire(e.class).into(),
                message: e.message.clone(),
            };
            return (Some(error), None);
        }
        Outcome::Ping(p) => W::Ping(ping_result(p)),
        Outcome::Traceroute(t) => W::Traceroute(traceroute_result(t)),
        Outcome::Dns(d) => W::Dns(dns_result(d)),
        Outcome::Tcp(t) => W::Tcp(tcp_result(t)),
        Outcome::Tls(t) => W::Tls(tls_result(t)),
        Outcome::Http(h) => W::Http(http_result(h)),
        Outcome::Quic(q) => W::Quic(quic_result(q)),
        Outcome::Pmtu(p) => W::Pmtu(pmtu_result(p)),
        Outcome::ExtHeaders(e) => W::ExtHeaders(ext_header_result(e)),
        Outcome::DualStack(d) => W::DualStack(Box::new(dual_stack_result(d))),
        Outcome::Readiness(r) => W::Readiness(readiness_result(r)),
    };
    (None, Some(kind))
}

pub fn result(r: &MeasurementResult) -> v1::MeasurementResult {
    let (error, kind) = outcome(&r.outcome);
    v1::MeasurementResult {
        key: Some(result_key(&r.key)),
        task_id: r.task_id.get(),
        started_at_us: r.started_at.0,
        duration_us: r.duration_us,
        family_requested: family_to_wire(r.family_requested).into(),
        family_used: r
            .family_used
            .map(family_to_wire)
            .unwrap_or(v1::AddressFamily::Unspecified)
            .into(),
        source_address: r.source.map(|a| a.to_string()).unwrap_or_default(),
        destination_address: r.destination.map(|a| a.to_string()).unwrap_or_default(),
        software_version: r.software_version.clone(),
        clock_state: clock_to_wire(r.clock.state).into(),
        clock_offset_us: r.clock.offset_us.unwrap_or(0),
        error,
        kind,
    }
}

/// A result as a store keeps it: its protobuf bytes without the key and the start time, which
/// the store holds in the row's key ([`crate::decode::stored_result`] puts them back).
pub fn stored_result(r: &MeasurementResult) -> Vec<u8> {
    use prost::Message;
    let mut wire = result(r);
    wire.key = None;
    wire.started_at_us = 0;
    wire.encode_to_vec()
}

/// A result as the probe's outbox keeps it: the wire message's bytes, so uploading a batch
/// needs no other form ([`crate::decode::outbox_result`] reads it back).
pub fn outbox_result(r: &MeasurementResult) -> Vec<u8> {
    use prost::Message;
    result(r).encode_to_vec()
}

/// A loss record as the probe's outbox keeps it ([`crate::decode::outbox_loss`]).
pub fn outbox_loss(l: &OutboxLoss) -> Vec<u8> {
    use prost::Message;
    loss(l).encode_to_vec()
}

pub fn heartbeat(h: &Heartbeat) -> v1::Heartbeat {
    v1::Heartbeat {
        probe_time_us: h.probe_time.0,
        pending_results: h.pending_results,
        pending_bytes: h.pending_bytes,
    }
}

pub fn batch(b: &ResultBatch) -> v1::ResultBatch {
    v1::ResultBatch {
        batch_id: b.batch_id,
        results: b.results.iter().map(result).collect(),
        losses: b.losses.iter().map(loss).collect(),
    }
}

/// What a probe sends on its session stream, encoded at the probe's edge.
pub fn probe_message(m: &ProbeMessage) -> v1::ProbeMessage {
    use v1::probe_message::Kind;
    let kind = match m {
        ProbeMessage::Hello(h) => Kind::Hello(hello(h)),
        ProbeMessage::Heartbeat(h) => Kind::Heartbeat(heartbeat(h)),
        ProbeMessage::Results(b) => Kind::Results(batch(b)),
        ProbeMessage::SelfTest(t) => Kind::SelfTest(self_test(t)),
    };
    v1::ProbeMessage { kind: Some(kind) }
}

/// Bytes `m` takes on the wire (without gRPC framing), to check it against
/// [`sixmap_shared::session::MAX_MESSAGE_BYTES`].
pub fn probe_message_len(m: &ProbeMessage) -> usize {
    use prost::Message;
    probe_message(m).encoded_len()
}

/// What the collector sends on a session stream, encoded at the collector's edge.
pub fn collector_message(m: &CollectorMessage) -> v1::CollectorMessage {
    use v1::collector_message::Kind;
    let kind = match m {
        CollectorMessage::Welcome(w) => Kind::Welcome(welcome(w)),
        CollectorMessage::Assign(a) => Kind::Assign(assignment(a)),
        CollectorMessage::Ack(a) => Kind::Ack(ack(a)),
        CollectorMessage::Cancel(c) => Kind::Cancel(v1::Cancel {
            task_id: c.task_id.get(),
            reason: c.reason.clone(),
        }),
        CollectorMessage::Tags(t) => Kind::Tags(tags(t)),
    };
    v1::CollectorMessage { kind: Some(kind) }
}

pub fn hello(h: &Hello) -> v1::Hello {
    v1::Hello {
        probe_id: h.probe_id.to_string(),
        probe_secret: String::new(),
        software_version: h.software_version.to_string(),
        boot_epoch: h.boot_epoch,
        capabilities: h
            .capabilities
            .iter()
            .map(|k| kind_to_wire(*k).into())
            .collect(),
        local_addresses: h.local_addresses.iter().map(|a| a.to_string()).collect(),
        probe_time_us: h.probe_time.0,
        location: h.location.map(|l| v1::CoarseLocation {
            latitude_e1: l.latitude_e1(),
            longitude_e1: l.longitude_e1(),
        }),
    }
}

pub fn welcome(w: &Welcome) -> v1::Welcome {
    v1::Welcome {
        server_time_us: w.server_time.0,
        collector_version: w.collector_version.clone(),
        heartbeat_interval_s: u32::try_from(w.heartbeat_interval.as_secs()).unwrap_or(u32::MAX),
        max_batch_results: u32::try_from(w.max_batch_results).unwrap_or(u32::MAX),
    }
}

pub fn ack(a: &Ack) -> v1::Ack {
    v1::Ack {
        batch_id: a.batch_id,
        stored: a.stored.iter().map(result_key).collect(),
        rejected: a
            .rejected
            .iter()
            .map(|r| v1::Rejection {
                key: Some(result_key(&r.key)),
                reason: r.reason.clone(),
            })
            .collect(),
        stored_losses: a.stored_losses.iter().map(result_key).collect(),
    }
}

pub fn loss(l: &OutboxLoss) -> v1::OutboxLoss {
    v1::OutboxLoss {
        key: Some(result_key(&l.key)),
        reason: loss_reason_to_wire(l.reason).into(),
        count: l.count,
        bytes: l.bytes,
        first: l.first.as_ref().map(result_key),
        last: l.last.as_ref().map(result_key),
        oldest_started_at_us: l.oldest_started_at.map_or(0, |t| t.0),
        newest_started_at_us: l.newest_started_at.map_or(0, |t| t.0),
        recorded_at_us: l.recorded_at.0,
        detail: l.detail.clone(),
        count_unknown: l.count_unknown,
    }
}

pub fn self_test(t: &SelfTest) -> v1::SelfTest {
    v1::SelfTest {
        tested_at_us: t.tested_at.0,
        default_route_v6: t.default_route_v6,
        default_route_v4: t.default_route_v4,
        v4_addresses: t.v4_addresses.iter().map(|a| a.to_string()).collect(),
        v6_route_interface: t.v6_route_interface.clone().unwrap_or_default(),
        v6_route_interface_kind: interface_kind_to_wire(t.v6_route_interface_kind).into(),
        v6_route_mtu: t.v6_route_mtu.unwrap_or(0),
        aaaa_name: t.aaaa_name.clone(),
        aaaa_resolved: t.aaaa_resolved,
        nat64_prefix: nat64_network(t.nat64_prefix),
        nat64_prefix_length: nat64_length(t.nat64_prefix),
        clat: t.clat,
        global_v6_address: t.global_v6_address,
        collector_v6: t.collector_v6,
    }
}

pub fn tags(tags: &[ProbeTag]) -> v1::ProbeTags {
    v1::ProbeTags {
        tags: tags
            .iter()
            .map(|t| v1::ProbeTag {
                name: t.name.to_string(),
                since_us: t.since.0,
            })
            .collect(),
    }
}

/// What the prefix data said about an address (query service).
pub fn origin(e: &sixmap_shared::prefixes::Enrichment) -> v1::Origin {
    v1::Origin {
        asn: e.asn,
        as_name: e.as_name.clone().unwrap_or_default(),
        country: e.country.map(|c| c.to_string()).unwrap_or_default(),
    }
}

/// A stored result on the query stream: the result as the probe sent it, the enrichment
/// and fault attribution beside it, and the cursor that resumes a stream after it.
pub fn query_result(
    r: &MeasurementResult,
    probe_origin: Option<&sixmap_shared::prefixes::Enrichment>,
    target_origin: Option<&sixmap_shared::prefixes::Enrichment>,
    blame: Option<&Blame>,
    cursor: String,
) -> v1::QueryResult {
    v1::QueryResult {
        result: Some(result(r)),
        probe_origin: probe_origin.map(origin),
        target_origin: target_origin.map(origin),
        cursor,
        blame: blame.map(fault_attribution),
    }
}

pub fn fault_attribution(b: &Blame) -> v1::FaultAttribution {
    let hop = |h: &BlameHop| v1::FaultHop {
        hop_limit: u32::from(h.hop_limit),
        address: h.address.map(|a| a.to_string()).unwrap_or_default(),
        asn: h.asn,
    };
    v1::FaultAttribution {
        failure: fault_failure_to_wire(b.failure).into(),
        placement: placement_to_wire(b.placement).into(),
        responsible_asn: b.responsible_asn,
        last_answering: b.last_answering.as_ref().map(hop),
        first_silent: b.first_silent.as_ref().map(hop),
        boundary: b.boundary,
        probe_asn: b.probe_asn,
        probe_country: b.probe_country.map(|c| c.to_string()).unwrap_or_default(),
        destination_asn: b.destination_asn,
    }
}

/// A NAT64 prefix's network address on the wire (empty: none).
fn nat64_network(prefix: Option<sixmap_shared::nat64::Nat64Prefix>) -> String {
    prefix.map(|p| p.network().to_string()).unwrap_or_default()
}

/// Its length in the field beside it: 0 for a /96, so that a /96 reads the same to
/// collectors from before the field.
fn nat64_length(prefix: Option<sixmap_shared::nat64::Nat64Prefix>) -> u32 {
    prefix
        .map(|p| p.length())
        .filter(|&length| length != 96)
        .map_or(0, u32::from)
}
