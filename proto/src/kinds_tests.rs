//! Wire round trips and field-named errors for every measurement kind, specs and results.

use crate::{decode, encode, v1};
use prost::Message;
use sixmap_shared::ids::{ResultKey, TaskId};
use sixmap_shared::measurement::*;
use sixmap_shared::session::{Assignment, MAX_MESSAGE_BYTES};
use sixmap_shared::time::UnixMicros;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn spec(target: &str, kind: SpecKind) -> MeasurementSpec {
    let target = Target::parse(target).unwrap();
    let family = target.default_family();
    MeasurementSpec::new(target, family, Duration::from_secs(20), kind).unwrap()
}

/// One realistic spec of every kind, non-default values wherever the kind has them.
pub(crate) fn specs() -> Vec<MeasurementSpec> {
    vec![
        spec(
            "2001:db8::1",
            SpecKind::Ping(PingSpec::new(5, 200, 1232).unwrap()),
        ),
        spec(
            "www.example.org",
            SpecKind::Traceroute(
                TracerouteSpec::new(TraceProtocol::TcpSyn, 2, 40, 2, 8, 443, 0x1_2345).unwrap(),
            ),
        )
        .with_max_packets(90)
        .unwrap(),
        spec(
            "2001:4860:4860::8888",
            SpecKind::Dns(
                DnsSpec::new("_443._tcp.Example.ORG.", 33, DnsTransport::Tcp, true).unwrap(),
            ),
        ),
        spec("2001:db8::80", SpecKind::Tcp(TcpSpec::new(8080).unwrap())),
        spec(
            "2001:db8::443",
            SpecKind::Tls(
                TlsSpec::new(
                    8443,
                    Some("www.example.org"),
                    vec!["h2".into(), "http/1.1".into()],
                )
                .unwrap(),
            ),
        ),
        spec(
            "www.example.org",
            SpecKind::Http(
                HttpSpec::new("https://www.example.org:8443/a?b=c", "HEAD", 4096).unwrap(),
            ),
        ),
        spec(
            "quic.example.org",
            SpecKind::Quic(QuicSpec::new(0, None, vec![]).unwrap()),
        ),
        spec(
            "2001:db8::9",
            SpecKind::Pmtu(PmtuSpec::new(9000, TraceProtocol::Udp).unwrap()),
        ),
        spec(
            "2001:db8::9",
            SpecKind::ExtHeaders(
                ExtHeaderSpec::new(vec![ExtHeaderType::Fragment, ExtHeaderType::HopByHop], 16)
                    .unwrap(),
            ),
        ),
        spec(
            "dual.example.org",
            SpecKind::DualStack(DualStackSpec::new(DualInner::Http, 8080).unwrap()),
        ),
        // A question about the target, asked of the probe host's own resolver.
        spec(
            "www.example.org",
            SpecKind::Dns(
                DnsSpec::new("www.example.org", 1, DnsTransport::Udp, true)
                    .unwrap()
                    .with_system_resolver(true),
            ),
        ),
        // Last, so the indexes other tests use stay.
        spec(
            "2001:db8::53",
            SpecKind::Dns(
                DnsSpec::new("example.org", 28, DnsTransport::Udp, false)
                    .unwrap()
                    .with_port(5353)
                    .unwrap(),
            ),
        ),
        // DoT with a name to verify and the default port; DoH on another port and path.
        spec(
            "2001:db8::853",
            SpecKind::Dns(
                DnsSpec::new("example.org", 28, DnsTransport::Tls, true)
                    .unwrap()
                    .with_server_name("dns.example.org")
                    .unwrap(),
            ),
        ),
        spec(
            "2001:db8::443",
            SpecKind::Dns(
                DnsSpec::new("example.org", 65, DnsTransport::Https, true)
                    .unwrap()
                    .with_port(8443)
                    .unwrap()
                    .with_path("/resolve")
                    .unwrap(),
            ),
        ),
        spec(
            "example.gov",
            SpecKind::Readiness(
                ReadinessSpec::new("/portal?lang=fr", "www.example.gov", true, false, 24).unwrap(),
            ),
        ),
    ]
}

#[test]
fn every_spec_kind_round_trips() {
    let specs = specs();
    let kinds: HashSet<_> = specs.iter().map(|s| s.measurement_kind()).collect();
    assert_eq!(
        kinds.len(),
        MeasurementKind::ALL.len(),
        "a kind lacks a sample"
    );
    for (i, spec) in specs.into_iter().enumerate() {
        let a = Assignment {
            task_id: TaskId::new(1 + i as u64).unwrap(),
            spec,
            interval: Some(Duration::from_secs(300)),
            not_before: None,
        };
        // Through bytes as well, as a probe receives it.
        let bytes = encode::assignment(&a).encode_to_vec();
        let wire = v1::TaskAssignment::decode(bytes.as_slice()).unwrap();
        assert_eq!(decode::assignment(&wire).unwrap(), a);
    }
}

pub(crate) fn base(outcome: Outcome) -> MeasurementResult {
    MeasurementResult {
        key: ResultKey {
            probe_id: "0123456789abcdef".parse().unwrap(),
            boot_epoch: 4,
            sequence: 77,
        },
        task_id: TaskId::new(12).unwrap(),
        started_at: UnixMicros(1_763_000_000_000_000),
        duration_us: 1_250_000,
        family_requested: Family::V6,
        family_used: Some(Family::V6),
        source: Some(ip("2001:db8:100::2")),
        destination: Some(ip("2001:db8::1")),
        software_version: "0.2.0".into(),
        clock: ClockInfo {
            state: ClockState::Synchronized,
            offset_us: Some(1_500),
        },
        outcome,
    }
}

fn icmp(icmp_type: u8, icmp_code: u8, from: &str, mtu: Option<u32>) -> IcmpError {
    IcmpError {
        icmp_type,
        icmp_code,
        from: ip(from),
        mtu,
    }
}

fn hop_reply(from: &str, rtt_ns: u64, answer: HopAnswer) -> Option<HopReply> {
    Some(HopReply {
        from: ip(from),
        rtt_ns,
        answer,
    })
}

const TIME_EXCEEDED: HopAnswer = HopAnswer::Icmp {
    icmp_type: 3,
    icmp_code: 0,
    mtu: None,
};

fn traceroute() -> TracerouteResult {
    TracerouteResult {
        protocol: TraceProtocol::TcpSyn,
        flow_label: 0x1_2345,
        hops: vec![
            TracerouteHop {
                hop_limit: 1,
                replies: vec![
                    hop_reply("2001:db8:100::1", 800_000, TIME_EXCEEDED),
                    hop_reply("2001:db8:100::1", 750_000, TIME_EXCEEDED),
                    None,
                ],
            },
            TracerouteHop {
                hop_limit: 2,
                replies: vec![None, None, None],
            },
            TracerouteHop {
                hop_limit: 3,
                replies: vec![
                    hop_reply(
                        "2001:db8:3::1",
                        9_000_000,
                        HopAnswer::Icmp {
                            icmp_type: 2,
                            icmp_code: 0,
                            mtu: Some(1280),
                        },
                    ),
                    hop_reply("2001:db8:3::2", 9_100_000, TIME_EXCEEDED),
                    None,
                ],
            },
            TracerouteHop {
                hop_limit: 5,
                replies: vec![
                    hop_reply("2001:db8::1", 12_000_000, HopAnswer::Tcp { flags: 0x12 }),
                    hop_reply("2001:db8::1", 12_500_000, HopAnswer::Tcp { flags: 0x14 }),
                ],
            },
        ],
        reached_destination: true,
        stop: TraceStop::Reached,
        packets_sent: 12,
        reused_hops: 0,
    }
}

fn ping_outcome(from: &str, hop_limit: u8) -> Outcome {
    Outcome::Ping(PingResult {
        sent: 3,
        received: 2,
        replies: vec![
            PingReply {
                sequence: 0,
                rtt_ns: 21_000_000,
                hop_limit: Some(hop_limit),
                duplicate: false,
                from: ip(from),
            },
            PingReply {
                sequence: 2,
                rtt_ns: 20_500_000,
                hop_limit: Some(hop_limit),
                duplicate: false,
                from: ip(from),
            },
        ],
        timestamp_source: TimestampSource::Kernel,
        socket_kind: IcmpSocketKind::Datagram,
        errors: vec![],
    })
}

/// One realistic result of every kind (and a few second shapes: failures, absent options).
pub(crate) fn outcomes() -> Vec<Outcome> {
    vec![
        ping_outcome("2001:db8::1", 57),
        Outcome::Traceroute(traceroute()),
        Outcome::Dns(DnsResult {
            query_name: "example.org".into(),
            query_type: 28,
            transport_used: DnsTransport::Udp,
            rtt_ns: Some(3_100_000),
            response: Some(DnsResponse {
                rcode: 0,
                flags: 0x8180,
                answers: vec![DnsRecord {
                    name: "example.org".into(),
                    record_type: 28,
                    ttl: 3600,
                    data: "2606:2800:21f:cb07:6820:80da:af6b:8b2c".into(),
                }],
            }),
            failure: None,
            failure_class: None,
            session: None,
        }),
        Outcome::Dns(DnsResult {
            query_name: String::new(),
            query_type: 2,
            transport_used: DnsTransport::Tcp,
            rtt_ns: None,
            response: None,
            failure: Some("timeout after 5000 ms".into()),
            failure_class: None,
            session: None,
        }),
        Outcome::Tcp(TcpResult {
            port: 443,
            outcome: ConnectOutcome::Connected,
            connect_ns: Some(1_200_000),
            icmp_error: None,
        }),
        Outcome::Tcp(TcpResult {
            port: 25,
            outcome: ConnectOutcome::Unreachable,
            connect_ns: None,
            icmp_error: Some(icmp(1, 1, "2001:db8:3::1", None)),
        }),
        Outcome::Tls(TlsResult {
            connect: ConnectOutcome::Connected,
            connect_ns: Some(1_100_000),
            handshake_ok: true,
            handshake_ns: Some(9_800_000),
            version: Some("TLSv1.3".into()),
            cipher_suite: Some("TLS_AES_128_GCM_SHA256".into()),
            alpn: Some("h2".into()),
            chain: vec![
                CertificateSummary {
                    subject: "CN=www.example.org".into(),
                    issuer: "CN=Example CA".into(),
                    not_before: Some(UnixMicros(1_750_000_000_000_000)),
                    not_after: Some(UnixMicros(1_780_000_000_000_000)),
                },
                CertificateSummary {
                    subject: "CN=Example CA".into(),
                    issuer: "CN=Example Root".into(),
                    not_before: None,
                    not_after: None,
                },
            ],
            certificate_verified: true,
            failure: None,
        }),
        Outcome::Http(HttpResult {
            connect: ConnectOutcome::Connected,
            status: Some(200),
            http_version: Some("HTTP/1.1".into()),
            dns_ns: None,
            connect_ns: Some(1_000_000),
            tls_ns: Some(8_000_000),
            first_byte_ns: Some(30_000_000),
            total_ns: 45_000_000,
            body_bytes: 4096,
            body_truncated: true,
            failure: None,
        }),
        Outcome::Http(HttpResult {
            connect: ConnectOutcome::Timeout,
            status: None,
            http_version: None,
            dns_ns: Some(2_000_000),
            connect_ns: None,
            tls_ns: None,
            first_byte_ns: None,
            total_ns: 10_000_000_000,
            body_bytes: 0,
            body_truncated: false,
            failure: Some("connect timed out".into()),
        }),
        Outcome::Quic(QuicResult {
            handshake_ok: true,
            version: Some(1),
            alpn: Some("h3".into()),
            handshake_ns: Some(20_100_000),
            failure: None,
            failure_detail: None,
        }),
        Outcome::Quic(QuicResult {
            handshake_ok: false,
            version: None,
            alpn: None,
            handshake_ns: None,
            failure: Some(QuicFailure::UdpBlocked),
            failure_detail: Some("no datagram back within 5 s".into()),
        }),
        Outcome::Pmtu(PmtuResult {
            path_mtu: 1280,
            black_hole: true,
            black_hole_hop: Some(3),
            black_hole_from: Some(ip("2001:db8:3::1")),
            too_big: vec![icmp(2, 0, "2001:db8:2::1", Some(1400))],
            packets_sent: 24,
            fault_path: Some(FaultPath {
                hops: vec![
                    PathHop {
                        hop_limit: 1,
                        address: ip("2001:db8:1::1"),
                    },
                    PathHop {
                        hop_limit: 3,
                        address: ip("2001:db8:3::1"),
                    },
                ],
                probed_up_to: 6,
                reached_destination: false,
                packets_sent: 7,
            }),
        }),
        Outcome::ExtHeaders(ExtHeaderResult {
            outcomes: vec![
                ExtHeaderOutcome {
                    header: ExtHeaderType::HopByHop,
                    survived: false,
                    dropped_at_hop: Some(2),
                    last_responder: Some(ip("2001:db8:100::1")),
                    icmp_error: Some(icmp(4, 1, "2001:db8:2::1", None)),
                },
                ExtHeaderOutcome {
                    header: ExtHeaderType::DestinationOptions,
                    survived: true,
                    dropped_at_hop: None,
                    last_responder: None,
                    icmp_error: None,
                },
                ExtHeaderOutcome {
                    header: ExtHeaderType::Fragment,
                    survived: true,
                    dropped_at_hop: None,
                    last_responder: None,
                    icmp_error: None,
                },
            ],
            packets_sent: 30,
            fault_path: Some(FaultPath {
                hops: vec![PathHop {
                    hop_limit: 1,
                    address: ip("2001:db8:100::1"),
                }],
                probed_up_to: 4,
                reached_destination: true,
                packets_sent: 4,
            }),
        }),
        Outcome::DualStack(dual_stack()),
        Outcome::Readiness(Box::new(readiness())),
        Outcome::Failed(MeasurementError {
            class: ErrorClass::Policy,
            message: "target 10.0.0.1 is private".into(),
        }),
        Outcome::Dns(DnsResult {
            query_name: "example.org".into(),
            query_type: 28,
            transport_used: DnsTransport::Https,
            rtt_ns: Some(2_000_000),
            response: Some(DnsResponse {
                rcode: 0,
                flags: 0x8180,
                answers: vec![],
            }),
            failure: None,
            failure_class: None,
            session: Some(DnsSession {
                connect_ns: Some(900_000),
                tls_ns: Some(4_000_000),
                http_status: Some(200),
                tls_version: Some("TLSv1.3".into()),
            }),
        }),
        Outcome::Dns(DnsResult {
            query_name: "example.org".into(),
            query_type: 28,
            transport_used: DnsTransport::Tls,
            rtt_ns: None,
            response: None,
            failure: Some("certificate not verified: name mismatch".into()),
            failure_class: Some(DnsFailureClass::Certificate),
            session: Some(DnsSession {
                connect_ns: Some(900_000),
                ..DnsSession::default()
            }),
        }),
        Outcome::DualStack(dual_stack_broken()),
    ]
}

fn lookup(status: LookupStatus, detail: Option<&str>) -> Lookup {
    Lookup {
        status,
        detail: detail.map(str::to_owned),
    }
}

/// A readiness result with every optional part present and every field off its default.
fn readiness() -> ReadinessResult {
    ReadinessResult {
        resolver: Some(ip("2001:db8::53")),
        dns64_prefix: Some("64:ff9b::".parse().unwrap()),
        dns: DnsReadiness {
            ns_lookup: lookup(LookupStatus::Found, None),
            servers: vec![
                NameServerCheck {
                    name: "ns1.example.gov".into(),
                    has_aaaa: Presence::Yes,
                    address: Some("2001:db8::1".parse().unwrap()),
                    answers_over_v6: Some(false),
                    detail: Some("not authoritative (AA unset)".into()),
                },
                NameServerCheck {
                    name: "ns2.example.net".into(),
                    has_aaaa: Presence::Inconclusive,
                    address: None,
                    answers_over_v6: None,
                    detail: Some("AAAA lookup: SERVFAIL".into()),
                },
            ],
        },
        mail: Some(MailReadiness {
            mx_lookup: lookup(LookupStatus::Found, None),
            null_mx: false,
            exchangers: vec![MailExchangerCheck {
                name: "mx.example.gov".into(),
                preference: 10,
                has_aaaa: Presence::Yes,
                address: Some("2001:db8::25".parse().unwrap()),
                smtp_v6: Some(ConnectOutcome::Refused),
                detail: None,
            }],
        }),
        web: WebReadiness {
            host: "www.example.gov".into(),
            aaaa: Presence::No,
            a: Presence::Yes,
            aaaa_lookup: lookup(LookupStatus::Found, Some("synthesised by DNS64")),
            a_lookup: lookup(LookupStatus::Found, None),
            v6_address: None,
            v4_address: Some("192.0.2.80".parse().unwrap()),
            https_v6_connect: None,
            https_v4_connect: Some(ConnectOutcome::Connected),
            https_v6_status: None,
            https_v4_status: Some(200),
            v6_certificate_verified: None,
            v6_error: Some("no AAAA record of its own".into()),
            v4_error: None,
            same_certificate: None,
            same_content: None,
            v6_body_bytes: None,
            v4_body_bytes: Some(0),
            final_url: Some("https://www.example.gov/portal/?lang=fr".into()),
            v6_inconclusive: true,
        },
        subresources: Some(SubresourceReadiness {
            html_from: Some(Family::V4),
            hosts: vec![
                SubresourceHost {
                    host: "cdn.example.net".into(),
                    same_host: false,
                    has_aaaa: Presence::Yes,
                    url: "https://cdn.example.net/app.js".into(),
                    fetched_v6: Some(true),
                    status_v6: Some(304),
                    detail: None,
                },
                SubresourceHost {
                    host: "192.0.2.7".into(),
                    same_host: false,
                    has_aaaa: Presence::No,
                    url: "http://192.0.2.7/logo.png".into(),
                    fetched_v6: None,
                    status_v6: None,
                    detail: Some("an IPv4 address literal".into()),
                },
            ],
            truncated: true,
        }),
    }
}

fn dual_stack() -> DualStackResult {
    DualStackResult {
        // 192.0.2.1 through DNS64 and NAT64; IPv4 from a CLAT address.
        v6: Box::new(DualLeg {
            source: Some(ip("2001:db8:100::2")),
            destination: Some(ip("64:ff9b::c000:201")),
            duration_us: 2_100_000,
            outcome: ping_outcome("64:ff9b::c000:201", 57),
        }),
        v4: Box::new(DualLeg {
            source: Some(ip("192.0.0.2")),
            destination: Some(ip("192.0.2.1")),
            duration_us: 5_000_000,
            outcome: Outcome::Failed(MeasurementError {
                class: ErrorClass::Network,
                message: "no IPv4 route".into(),
            }),
        }),
        happy_eyeballs_choice: Some(Family::V6),
        v6_hops: Some(8),
        v4_hops: None,
        v6_nat64_prefix: Some("64:ff9b::".parse().unwrap()),
        v4_via_clat: true,
        v6_fault_path: None,
    }
}

/// IPv6 silent where IPv4 answers, with the IPv6 path traced after.
fn dual_stack_broken() -> DualStackResult {
    DualStackResult {
        v6: Box::new(DualLeg {
            source: Some(ip("2001:db8:100::2")),
            destination: Some(ip("2001:db8:80::1")),
            duration_us: 3_000_000,
            outcome: Outcome::Ping(PingResult {
                sent: 3,
                received: 0,
                replies: vec![],
                timestamp_source: TimestampSource::Kernel,
                socket_kind: IcmpSocketKind::Datagram,
                errors: vec![],
            }),
        }),
        v4: Box::new(DualLeg {
            source: Some(ip("192.0.2.7")),
            destination: Some(ip("198.51.100.1")),
            duration_us: 2_000_000,
            outcome: ping_outcome("198.51.100.1", 57),
        }),
        happy_eyeballs_choice: Some(Family::V4),
        v6_hops: None,
        v4_hops: Some(8),
        v6_nat64_prefix: None,
        v4_via_clat: false,
        v6_fault_path: Some(FaultPath {
            hops: vec![
                PathHop {
                    hop_limit: 1,
                    address: ip("fe80::1"),
                },
                PathHop {
                    hop_limit: 2,
                    address: ip("2001:db8:2::1"),
                },
            ],
            probed_up_to: 5,
            reached_destination: false,
            packets_sent: 8,
        }),
    }
}

#[test]
fn every_result_kind_round_trips() {
    let outcomes = outcomes();
    let kinds: HashSet<_> = outcomes.iter().filter_map(Outcome::kind).collect();
    assert_eq!(
        kinds.len(),
        MeasurementKind::ALL.len(),
        "a kind lacks a sample"
    );
    for outcome in outcomes {
        let domain = base(outcome);
        assert_eq!(domain.validate(), Ok(()), "{domain:?}");
        let bytes = encode::result(&domain).encode_to_vec();
        let wire = v1::MeasurementResult::decode(bytes.as_slice()).unwrap();
        assert_eq!(decode::result(&wire).unwrap(), domain);
    }
}

fn wire_of(outcome: Outcome) -> v1::MeasurementResult {
    encode::result(&base(outcome))
}

fn field_of(wire: &v1::MeasurementResult) -> String {
    decode::result(wire).unwrap_err().field
}

fn traceroute_wire(wire: &mut v1::MeasurementResult) -> &mut v1::TracerouteResult {
    match wire.kind.as_mut() {
        Some(v1::measurement_result::Kind::Traceroute(t)) => t,
        _ => unreachable!(),
    }
}

fn dual_wire(wire: &mut v1::MeasurementResult) -> &mut v1::DualStackResult {
    match wire.kind.as_mut() {
        Some(v1::measurement_result::Kind::DualStack(d)) => d,
        _ => unreachable!(),
    }
}

#[test]
fn bad_result_fields_are_named() {
    use v1::measurement_result::Kind as W;
    let trace = || wire_of(Outcome::Traceroute(traceroute()));

    // Enum numbers this version does not know, and required enums left unspecified.
    let mut wire = trace();
    traceroute_wire(&mut wire).protocol = 99;
    assert_eq!(field_of(&wire), "traceroute.protocol");
    let mut wire = trace();
    traceroute_wire(&mut wire).stop = 0;
    assert_eq!(field_of(&wire), "traceroute.stop");
    for (outcome, field) in [
        (4, "tcp.outcome"),
        (6, "tls.connect"),
        (7, "http.connect"),
        (9, "quic.failure"),
        (12, "ext_headers.outcomes[0].header"),
    ] {
        let mut wire = wire_of(outcomes().swap_remove(outcome));
        match wire.kind.as_mut() {
            Some(W::Tcp(t)) => t.outcome = 0,
            Some(W::Tls(t)) => t.connect = 42,
            Some(W::Http(h)) => h.connect = 0,
            Some(W::Quic(q)) => q.failure = 17,
            Some(W::ExtHeaders(e)) => e.outcomes[0].header = 0,
            _ => unreachable!(),
        }
        assert_eq!(field_of(&wire), field);
    }

    // Addresses.
    let mut wire = trace();
    traceroute_wire(&mut wire).hops[2].replies[1].from = "2001:db8::zz".into();
    assert_eq!(field_of(&wire), "traceroute.hops[2].replies[1].from");
    let mut wire = wire_of(outcomes().swap_remove(11));
    if let Some(W::Pmtu(p)) = wire.kind.as_mut() {
        p.black_hole_from = "router-3".into();
    }
    assert_eq!(field_of(&wire), "pmtu.black_hole_from");

    // Out-of-range numbers.
    let mut wire = wire_of(outcomes().swap_remove(4));
    if let Some(W::Tcp(t)) = wire.kind.as_mut() {
        t.port = 70_000;
    }
    assert_eq!(field_of(&wire), "tcp.port");
    let mut wire = trace();
    traceroute_wire(&mut wire).hops[0].hop_limit = 300;
    assert_eq!(field_of(&wire), "traceroute.hops[0].hop_limit");

    // Hop limits must increase: caught by the shared validation, named there.
    let mut wire = trace();
    traceroute_wire(&mut wire).hops[1].hop_limit = 1;
    assert_eq!(field_of(&wire), "traceroute.hops.hop_limit");

    // A TCP answer carries no ICMP fields.
    let mut wire = trace();
    traceroute_wire(&mut wire).hops[3].replies[0].icmp_type = 1;
    assert_eq!(field_of(&wire), "traceroute.hops[3].replies[0].tcp_flags");

    // Response fields without a response.
    let mut wire = wire_of(outcomes().swap_remove(3));
    if let Some(W::Dns(d)) = wire.kind.as_mut() {
        d.rcode = 2;
    }
    assert_eq!(field_of(&wire), "dns.answered");
}

#[test]
fn dual_stack_legs_are_decoded_on_their_own() {
    let dual = || wire_of(Outcome::DualStack(dual_stack()));

    // A leg nested in a leg is refused before it is decoded.
    let mut wire = dual();
    let nested = dual_wire(&mut dual()).clone();
    if let Some(v6) = dual_wire(&mut wire).v6.as_mut() {
        v6.kind = Some(v1::measurement_result::Kind::DualStack(Box::new(nested)));
    }
    assert_eq!(field_of(&wire), "dual_stack.v6.dual_stack");

    // Errors inside a leg keep the leg's path and the inner field.
    let mut wire = dual();
    if let Some(Some(v1::measurement_result::Kind::Ping(p))) =
        dual_wire(&mut wire).v6.as_mut().map(|l| l.kind.as_mut())
    {
        p.replies[1].from = "nope".into();
    }
    assert_eq!(field_of(&wire), "dual_stack.v6.ping.replies[1].from");
    let mut wire = dual();
    if let Some(Some(v1::measurement_result::Kind::Ping(p))) =
        dual_wire(&mut wire).v6.as_mut().map(|l| l.kind.as_mut())
    {
        p.received = 3;
    }
    assert_eq!(field_of(&wire), "dual_stack.v6.ping.received");
    let mut wire = dual();
    if let Some(v4) = dual_wire(&mut wire).v4.as_mut() {
        v4.destination_address = "192.0.2".into();
    }
    assert_eq!(field_of(&wire), "dual_stack.v4.destination_address");
    let mut wire = dual();
    dual_wire(&mut wire).v6_nat64_prefix = "64:ff9b::/95".into();
    assert_eq!(field_of(&wire), "dual_stack.v6_nat64_prefix");
    // A length RFC 6052 does not allow, and a length without a prefix.
    for (prefix, length) in [("64:ff9b::", 95), ("64:ff9b::", 256), ("", 64)] {
        let mut wire = dual();
        dual_wire(&mut wire).v6_nat64_prefix = prefix.into();
        dual_wire(&mut wire).v6_nat64_prefix_length = length;
        assert_eq!(field_of(&wire), "dual_stack.v6_nat64_prefix", "{length}");
    }
    // Flags that disagree with the legs: a prefix with bits after its length, one the
    // destination is not under, a CLAT flag on an ordinary source.
    for (prefix, length) in [("64:ff9b::1", 0), ("2001:db8:64::", 0), ("2001:db8::", 32)] {
        let mut wire = dual();
        dual_wire(&mut wire).v6_nat64_prefix = prefix.into();
        dual_wire(&mut wire).v6_nat64_prefix_length = length;
        assert_eq!(field_of(&wire), "dual_stack.v6_nat64_prefix", "{prefix}");
    }
    let mut wire = dual();
    if let Some(v4) = dual_wire(&mut wire).v4.as_mut() {
        v4.source_address = "192.0.2.9".into();
    }
    assert_eq!(field_of(&wire), "dual_stack.v4_via_clat");

    let mut wire = dual();
    dual_wire(&mut wire).v4 = None;
    assert_eq!(field_of(&wire), "dual_stack.v4");
    let mut wire = dual();
    dual_wire(&mut wire).happy_eyeballs_choice = 5;
    assert_eq!(field_of(&wire), "dual_stack.happy_eyeballs_choice");

    // A leg needs no key or task of its own, and the encoder sends none.
    let mut wire = dual();
    let leg = dual_wire(&mut wire).v6.as_deref().cloned().unwrap();
    assert!(leg.key.is_none() && leg.task_id == 0 && leg.software_version.is_empty());
}

#[test]
fn bad_spec_fields_are_named() {
    use v1::measurement_spec::Kind as W;
    let field_of = |index: usize, change: &dyn Fn(&mut v1::MeasurementSpec)| {
        let mut wire = encode::spec(&specs()[index]);
        change(&mut wire);
        decode::spec(&wire).unwrap_err().field
    };
    fn kind(wire: &mut v1::MeasurementSpec) -> &mut W {
        wire.kind.as_mut().unwrap()
    }

    assert_eq!(
        field_of(1, &|w| if let W::Traceroute(t) = kind(w) {
            t.protocol = 0;
        }),
        "traceroute.protocol"
    );
    assert_eq!(
        field_of(1, &|w| if let W::Traceroute(t) = kind(w) {
            t.first_hop = 50;
        }),
        "traceroute.first_hop"
    );
    assert_eq!(
        field_of(2, &|w| if let W::Dns(d) = kind(w) {
            d.transport = 7;
        }),
        "dns.transport"
    );
    assert_eq!(
        field_of(2, &|w| if let W::Dns(d) = kind(w) {
            d.query_type = 70_000;
        }),
        "dns.query_type"
    );
    assert_eq!(
        field_of(3, &|w| if let W::Tcp(t) = kind(w) {
            t.port = 65_536;
        }),
        "tcp.port"
    );
    assert_eq!(
        field_of(4, &|w| if let W::Tls(t) = kind(w) {
            t.server_name = "not a name".into();
        }),
        "tls.server_name"
    );
    assert_eq!(
        field_of(5, &|w| if let W::Http(h) = kind(w) {
            h.url = "ftp://example.org/".into();
        }),
        "http.url"
    );
    assert_eq!(
        field_of(7, &|w| if let W::Pmtu(p) = kind(w) {
            p.protocol = 3;
        }),
        "pmtu.protocol"
    );
    assert_eq!(
        field_of(8, &|w| if let W::ExtHeaders(e) = kind(w) {
            e.headers.push(0);
        }),
        "ext_headers.headers[2]"
    );
    assert_eq!(
        field_of(9, &|w| if let W::DualStack(d) = kind(w) {
            d.inner = 2;
        }),
        "dual_stack.inner"
    );
    assert_eq!(
        field_of(9, &|w| if let W::DualStack(d) = kind(w) {
            d.hostname = "other.example.org".into();
        }),
        "dual_stack.hostname"
    );
    // A dual-stack spec needs a name: refused by the shared constructor, naming the target.
    assert_eq!(
        field_of(9, &|w| {
            if let Some(t) = w.target.as_mut() {
                t.kind = Some(v1::target::Kind::Address("2001:db8::1".into()));
            }
            if let W::DualStack(d) = kind(w) {
                d.hostname.clear();
            }
        }),
        "target.hostname"
    );
    assert_eq!(
        field_of(0, &|w| if let Some(b) = w.budget.as_mut() {
            b.max_packets = 5000;
        }),
        "budget.max_packets"
    );
}

fn far(i: u16) -> IpAddr {
    IpAddr::V6(std::net::Ipv6Addr::new(
        0x2001, 0xdb8, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, i,
    ))
}

/// The largest traceroute a spec allows: 64 hop limits, 5 answered probes each.
fn largest_traceroute(hops: u8, replies: u8) -> TracerouteResult {
    TracerouteResult {
        protocol: TraceProtocol::Udp,
        flow_label: TracerouteSpec::MAX_FLOW_LABEL,
        hops: (1..=hops)
            .map(|hop_limit| TracerouteHop {
                hop_limit,
                replies: (0..replies)
                    .map(|i| {
                        hop_reply(
                            &far(0xff00 | u16::from(i)).to_string(),
                            u64::MAX,
                            HopAnswer::Icmp {
                                icmp_type: 255,
                                icmp_code: 255,
                                mtu: Some(u32::MAX),
                            },
                        )
                    })
                    .collect(),
            })
            .collect(),
        reached_destination: false,
        stop: TraceStop::MaxHops,
        packets_sent: u32::MAX,
        reused_hops: 0,
    }
}

#[test]
fn the_largest_results_fit_the_message_limit() {
    let mut largest = base(Outcome::Traceroute(largest_traceroute(
        TracerouteSpec::MAX_HOPS as u8,
        TracerouteSpec::MAX_PROBES_PER_HOP as u8,
    )));
    largest.software_version = "9".repeat(MAX_SOFTWARE_VERSION_LEN);
    assert_eq!(largest.validate(), Ok(()));
    // What a probe can actually produce stays small next to a batch, like ping.
    let len = encode::result(&largest).encoded_len();
    assert!(len < MAX_MESSAGE_BYTES / 64, "{len} bytes");

    // The validators' own bounds (255 hops x 16 slots; 256 DNS answers of 4 KiB) are far
    // beyond any spec, yet such a result must still travel, alone, in one message.
    let mut largest = base(Outcome::Traceroute(largest_traceroute(255, 16)));
    assert_eq!(largest.validate(), Ok(()));
    let len = encode::result(&largest).encoded_len();
    assert!(len < MAX_MESSAGE_BYTES / 8, "{len} bytes");
    largest.outcome = Outcome::Dns(DnsResult {
        query_name: "x".repeat(253),
        query_type: u16::MAX,
        transport_used: DnsTransport::Tcp,
        rtt_ns: Some(u64::MAX),
        response: Some(DnsResponse {
            rcode: 0xFFF,
            flags: u16::MAX,
            // The validator's limit (not exported by shared).
            answers: (0..256)
                .map(|_| DnsRecord {
                    name: "n".repeat(255),
                    record_type: u16::MAX,
                    ttl: u32::MAX,
                    data: "d".repeat(4096),
                })
                .collect(),
        }),
        failure: None,
        failure_class: None,
        session: None,
    });
    assert_eq!(largest.validate(), Ok(()));
    let len = encode::result(&largest).encoded_len();
    assert!(len < MAX_MESSAGE_BYTES / 2, "{len} bytes");
}

/// Writes the seed corpus of the `wire_decode` fuzz target (one file per sample message, its
/// first byte the target's message selector) into `$SIXMAP_FUZZ_SEEDS`:
/// `SIXMAP_FUZZ_SEEDS=fuzz/corpus/wire_decode cargo test -p sixmap-proto write_fuzz_seeds -- --ignored`
#[test]
#[ignore = "writes files; run by hand to refresh the fuzz seeds"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("SIXMAP_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    let mut write = |selector: u8, bytes: Vec<u8>| {
        let mut data = vec![selector];
        data.extend(bytes);
        std::fs::write(dir.join(format!("seed-{selector}-{n:03}")), data).unwrap();
        n += 1;
    };
    for (i, spec) in specs().into_iter().enumerate() {
        let a = Assignment {
            task_id: TaskId::new(i as u64 + 1).unwrap(),
            spec: spec.clone(),
            interval: Some(Duration::from_secs(300)),
            not_before: None,
        };
        write(0, encode::assignment(&a).encode_to_vec());
        write(4, encode::spec(&spec).encode_to_vec());
        let message = v1::CollectorMessage {
            kind: Some(v1::collector_message::Kind::Assign(encode::assignment(&a))),
        };
        write(7, message.encode_to_vec());
    }
    let results: Vec<v1::MeasurementResult> = outcomes().into_iter().map(wire_of).collect();
    for result in &results {
        write(1, result.encode_to_vec());
    }
    let batch = v1::ResultBatch {
        batch_id: 3,
        results,
        losses: Vec::new(),
    };
    write(2, batch.encode_to_vec());
    let hello = v1::Hello {
        probe_id: "0123456789abcdef".into(),
        probe_secret: "s".repeat(32),
        software_version: "0.2.0".into(),
        boot_epoch: 4,
        capabilities: vec![
            v1::MeasurementKind::Ping.into(),
            v1::MeasurementKind::Dns.into(),
        ],
        local_addresses: vec!["2001:db8::2".into(), "192.0.2.1".into()],
        probe_time_us: 1_763_000_000_000_000,
        location: None,
    };
    write(3, hello.encode_to_vec());
    let message = v1::ProbeMessage {
        kind: Some(v1::probe_message::Kind::Hello(hello)),
    };
    write(7, message.encode_to_vec());
}

fn readiness_wire(wire: &mut v1::MeasurementResult) -> &mut v1::ReadinessResult {
    match wire.kind.as_mut() {
        Some(v1::measurement_result::Kind::Readiness(r)) => r,
        _ => unreachable!(),
    }
}

#[test]
fn readiness_without_mail_or_subresources_round_trips() {
    let mut r = readiness();
    r.mail = None;
    r.subresources = None;
    r.dns.servers.clear();
    r.dns.ns_lookup = lookup(LookupStatus::Failed, Some("timeout"));
    let domain = base(Outcome::Readiness(Box::new(r)));
    let wire = encode::result(&domain);
    assert_eq!(decode::result(&wire).unwrap(), domain);
}

#[test]
fn readiness_same_host_is_derived_at_decode_not_read_from_the_wire() {
    let mut wire = wire_of(Outcome::Readiness(Box::new(readiness())));
    // A probe claiming the IPv4-only literal host is the page's own would hide it from the
    // page's readiness.
    readiness_wire(&mut wire)
        .subresources
        .as_mut()
        .unwrap()
        .hosts[1]
        .same_host = true;
    let Outcome::Readiness(decoded) = decode::result(&wire).unwrap().outcome else {
        unreachable!()
    };
    let sub = decoded.subresources.as_ref().unwrap();
    assert!(!sub.hosts[1].same_host);
    let failing: Vec<_> = sub.failing_hosts().map(|h| h.host.as_str()).collect();
    assert_eq!(failing, ["192.0.2.7"]);
    // The final URL's host is the page's own, claimed or not.
    let mut wire = wire_of(Outcome::Readiness(Box::new(readiness())));
    let r = readiness_wire(&mut wire);
    r.subresources.as_mut().unwrap().hosts[0].host = "www.example.gov".into();
    r.subresources.as_mut().unwrap().hosts[0].url = "https://www.example.gov/app.js".into();
    let Outcome::Readiness(decoded) = decode::result(&wire).unwrap().outcome else {
        unreachable!()
    };
    assert!(decoded.subresources.unwrap().hosts[0].same_host);
}

#[test]
fn hostile_readiness_results_are_refused_naming_the_field() {
    let readiness = || wire_of(Outcome::Readiness(Box::new(readiness())));
    type Damage = Box<dyn Fn(&mut v1::ReadinessResult)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("readiness.dns", Box::new(|r| r.dns = None)),
        ("readiness.web", Box::new(|r| r.web = None)),
        (
            "readiness.dns.servers",
            Box::new(|r| {
                let d = r.dns.as_mut().unwrap();
                let s = d.servers[0].clone();
                d.servers = vec![s; 100_000];
            }),
        ),
        (
            "readiness.subresources.hosts",
            Box::new(|r| {
                let s = r.subresources.as_mut().unwrap();
                let h = s.hosts[0].clone();
                s.hosts = vec![h; 33];
            }),
        ),
        (
            "readiness.dns.servers[0].has_aaaa",
            Box::new(|r| r.dns.as_mut().unwrap().servers[0].has_aaaa = 0),
        ),
        (
            "readiness.dns.servers[1].address",
            Box::new(|r| r.dns.as_mut().unwrap().servers[1].address = "192.0.2.1".into()),
        ),
        (
            "readiness.dns.ns_lookup.status",
            Box::new(|r| r.dns.as_mut().unwrap().ns_lookup.as_mut().unwrap().status = 99),
        ),
        (
            "readiness.mail.exchangers[0].preference",
            Box::new(|r| r.mail.as_mut().unwrap().exchangers[0].preference = 70_000),
        ),
        (
            "readiness.mail.exchangers[0].smtp_v6",
            Box::new(|r| r.mail.as_mut().unwrap().exchangers[0].smtp_v6 = 42),
        ),
        (
            "readiness.web.v4_address",
            Box::new(|r| r.web.as_mut().unwrap().v4_address = "2001:db8::1".into()),
        ),
        (
            "readiness.web.a_lookup",
            Box::new(|r| r.web.as_mut().unwrap().a_lookup = None),
        ),
        (
            "readiness.web.aaaa",
            Box::new(|r| r.dns64_prefix = String::new()),
        ),
        (
            "readiness.web.https_v4_connect",
            Box::new(|r| r.web.as_mut().unwrap().https_v4_connect = 0),
        ),
        (
            "readiness.subresources.hosts.host",
            Box::new(|r| r.subresources.as_mut().unwrap().hosts[0].host = "<script>".into()),
        ),
        (
            "readiness.dns.servers.detail",
            Box::new(|r| r.dns.as_mut().unwrap().servers[0].detail = "x".repeat(513)),
        ),
    ];
    for (expected, damage) in cases {
        let mut wire = readiness();
        damage(readiness_wire(&mut wire));
        assert_eq!(field_of(&wire), expected);
    }
}

#[test]
fn readiness_spec_is_refused_for_an_address_or_a_bad_key() {
    let mut wire = encode::spec(&specs().pop().unwrap());
    wire.target = Some(v1::Target {
        kind: Some(v1::target::Kind::Address("2001:db8::1".into())),
        family: 0,
    });
    assert_eq!(decode::spec(&wire).unwrap_err().field, "target.hostname");
    let mut wire = encode::spec(&specs().pop().unwrap());
    if let Some(v1::measurement_spec::Kind::Readiness(r)) = wire.kind.as_mut() {
        r.max_subresource_hosts = 33;
    }
    assert_eq!(
        decode::spec(&wire).unwrap_err().field,
        "readiness.max_subresource_hosts"
    );
}

fn fault_path_wire(wire: &mut v1::MeasurementResult) -> &mut v1::FaultPath {
    use v1::measurement_result::Kind as W;
    match wire.kind.as_mut() {
        Some(W::DualStack(d)) => d.v6_fault_path.as_mut().unwrap(),
        Some(W::Pmtu(p)) => p.fault_path.as_mut().unwrap(),
        Some(W::ExtHeaders(e)) => e.fault_path.as_mut().unwrap(),
        _ => unreachable!(),
    }
}

fn fault_path_of(result: &MeasurementResult) -> Option<&FaultPath> {
    match &result.outcome {
        Outcome::DualStack(d) => d.v6_fault_path.as_ref(),
        Outcome::Pmtu(p) => p.fault_path.as_ref(),
        Outcome::ExtHeaders(e) => e.fault_path.as_ref(),
        _ => None,
    }
}

/// Every fault path a probe can send, damaged in each way the decoder refuses: the result is
/// refused, naming the field (a path that does not match a failure would be blamed on a
/// network).
#[test]
fn hostile_fault_paths_are_refused_naming_the_field() {
    use v1::measurement_result::Kind as W;
    let samples: Vec<(&str, v1::MeasurementResult)> = vec![
        (
            "dual_stack.v6_fault_path",
            wire_of(Outcome::DualStack(dual_stack_broken())),
        ),
        ("pmtu.fault_path", wire_of(outcomes().swap_remove(11))),
        (
            "ext_headers.fault_path",
            wire_of(outcomes().swap_remove(12)),
        ),
    ];
    type Damage = Box<dyn Fn(&mut v1::FaultPath)>;
    let far = |n: u32| v1::PathHop {
        hop_limit: n,
        address: format!("2001:db8:{n:x}::1"),
    };
    let cases: Vec<(&str, Damage)> = vec![
        ("probed_up_to", Box::new(|p| p.probed_up_to = 0)),
        ("probed_up_to", Box::new(|p| p.probed_up_to = 65)),
        ("probed_up_to", Box::new(|p| p.probed_up_to = 256)),
        (
            "hops[0].address",
            Box::new(|p| p.hops[0].address = "::ffff:192.0.2.1".into()),
        ),
        (
            "hops[0].address",
            Box::new(|p| p.hops[0].address = "192.0.2.1".into()),
        ),
        (
            "hops[0].address",
            Box::new(|p| p.hops[0].address = "ff02::1".into()),
        ),
        (
            "hops[0].address",
            Box::new(|p| p.hops[0].address = "::".into()),
        ),
        (
            "hops[0].address",
            Box::new(|p| p.hops[0].address = "router".into()),
        ),
        ("hops[0].hop_limit", Box::new(|p| p.hops[0].hop_limit = 0)),
        ("hops[0].hop_limit", Box::new(|p| p.hops[0].hop_limit = 300)),
        (
            "hops[1].hop_limit",
            Box::new(move |p| {
                p.hops = vec![far(2), far(2)];
            }),
        ),
        (
            "hops[1].hop_limit",
            Box::new(move |p| {
                p.hops = vec![far(3), far(2)];
            }),
        ),
        (
            "hops",
            Box::new(move |p| {
                p.probed_up_to = 64;
                p.hops = (1..=65).map(far).collect();
            }),
        ),
        // Within the wire's bounds but not a path: hops above what was probed, fewer
        // packets than answers.
        (
            "",
            Box::new(move |p| {
                p.probed_up_to = 2;
                p.hops = vec![far(1), far(3)];
            }),
        ),
        ("", Box::new(|p| p.packets_sent = 0)),
    ];
    for (path, sample) in &samples {
        assert!(decode::result(sample).is_ok(), "{path}");
        for (field, damage) in &cases {
            let mut wire = sample.clone();
            damage(fault_path_wire(&mut wire));
            let want = if field.is_empty() {
                (*path).to_owned()
            } else {
                format!("{path}.{field}")
            };
            assert_eq!(field_of(&wire), want, "{path} {field}");
            // What a store or a probe's outbox kept before the rules were this strict still
            // reads back, without the path: one such row must not end every scan.
            let good = decode::result(sample).expect("the undamaged sample decodes");
            let bytes = wire.encode_to_vec();
            let kept = decode::stored_result(&bytes, good.key, good.started_at)
                .unwrap_or_else(|e| panic!("{path} {field}: stored row unreadable: {e}"));
            let queued = decode::outbox_result(&bytes)
                .unwrap_or_else(|e| panic!("{path} {field}: outbox entry unreadable: {e}"));
            for read in [&kept, &queued] {
                assert!(fault_path_of(read).is_none(), "{path} {field}: path kept");
                assert_eq!(read.task_id, good.task_id, "{path} {field}");
            }
        }
    }

    // A path that matches no failure.
    let mut wire = wire_of(Outcome::DualStack(dual_stack_broken()));
    if let Some(W::DualStack(d)) = wire.kind.as_mut() {
        d.v4 = d.v6.clone();
    }
    assert_eq!(field_of(&wire), "dual_stack.v6_fault_path");
    let mut wire = wire_of(Outcome::DualStack(dual_stack()));
    if let Some(W::DualStack(d)) = wire.kind.as_mut() {
        let broken = wire_of(Outcome::DualStack(dual_stack_broken()));
        if let Some(W::DualStack(b)) = broken.kind {
            d.v6_fault_path = b.v6_fault_path;
        }
        // The v4 leg works too: still IPv6 worked.
        d.v4 = d.v6.clone();
        d.v4_via_clat = false;
    }
    let err = decode::result(&wire).unwrap_err();
    assert_eq!(err.field, "dual_stack.v6_fault_path");
    assert!(err.reason.contains("IPv6 leg reached"), "{err}");
    let mut wire = wire_of(Outcome::DualStack(dual_stack_broken()));
    if let Some(W::DualStack(d)) = wire.kind.as_mut() {
        d.v6.as_mut().unwrap().destination_address = String::new();
    }
    assert_eq!(field_of(&wire), "dual_stack.v6_fault_path");
    let mut wire = wire_of(outcomes().swap_remove(11));
    if let Some(W::Pmtu(p)) = wire.kind.as_mut() {
        p.black_hole = false;
        p.black_hole_hop = 0;
        p.black_hole_from = String::new();
    }
    assert_eq!(field_of(&wire), "pmtu.fault_path");
    let mut wire = wire_of(outcomes().swap_remove(12));
    if let Some(W::ExtHeaders(e)) = wire.kind.as_mut() {
        for o in &mut e.outcomes {
            o.survived = true;
            o.dropped_at_hop = 0;
        }
    }
    assert_eq!(field_of(&wire), "ext_headers.fault_path");
}
