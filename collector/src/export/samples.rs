//! Synthetic stored results of every Atlas kind and a few others, deterministic in their
//! index: for the export tests, the dumps' tests and `export_bench`. Realistic in shape
//! (answers, lost packets, silent hops, ICMP errors, failures), not in distribution.

use crate::store::StoredResult;
use sixmap_shared::measurement::{
    ClockInfo, ClockState, ConnectOutcome, DnsRecord, DnsResponse, DnsResult, DnsTransport,
    ErrorClass, HopAnswer, HopReply, HttpResult, IcmpSocketKind, MeasurementError,
    MeasurementResult, PingReply, PingResult, TcpResult, TimestampSource, TraceProtocol, TraceStop,
    TracerouteHop, TracerouteResult,
};
use sixmap_shared::prefixes::Enrichment;
use sixmap_shared::{Family, Outcome, ProbeId, ResultKey, TaskId, UnixMicros};
use std::net::{IpAddr, Ipv6Addr};

/// How many different results [`sample`] cycles through.
pub const VARIANTS: u64 = 12;

fn v6(a: u16, b: u16, c: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, a, b, 0, 0, 0, c))
}

/// Probe `n`'s id: 16 hex digits.
pub fn probe(n: u64) -> ProbeId {
    format!("{:016x}", 0x5eed_0000_0000_0000u64 | n)
        .parse()
        .unwrap_or_else(|_| unreachable!("16 hex digits"))
}

fn rtt(i: u64, base_us: u64) -> u64 {
    (base_us + (i * 7919) % 5000) * 1000
}

/// The outcome of variant `i % VARIANTS`.
pub fn outcome(i: u64) -> Outcome {
    let dst = v6(0xd, 0, 1);
    match i % VARIANTS {
        0 | 1 => {
            let sent = 3u16;
            let replies: Vec<PingReply> = (0..sent)
                .filter(|s| i.is_multiple_of(VARIANTS) || *s != 1)
                .map(|s| PingReply {
                    sequence: s,
                    rtt_ns: rtt(i + u64::from(s), 8_000),
                    hop_limit: Some(57),
                    duplicate: false,
                    from: dst,
                })
                .collect();
            Outcome::Ping(PingResult {
                sent,
                received: replies.len() as u16,
                replies,
                timestamp_source: TimestampSource::Kernel,
                socket_kind: IcmpSocketKind::Datagram,
                errors: Vec::new(),
            })
        }
        2 => Outcome::Ping(PingResult {
            sent: 3,
            received: 0,
            replies: Vec::new(),
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Datagram,
            errors: Vec::new(),
        }),
        3 | 4 => {
            let reached = i % VARIANTS == 3;
            let mut hops: Vec<TracerouteHop> = (1..=5u8)
                .map(|h| TracerouteHop {
                    hop_limit: h,
                    replies: (0..3u64)
                        .map(|k| {
                            (h != 3 || k == 1).then(|| HopReply {
                                from: v6(0xa, u16::from(h), 1),
                                rtt_ns: rtt(i + k, 1000 * u64::from(h)),
                                answer: HopAnswer::Icmp {
                                    icmp_type: 3,
                                    icmp_code: 0,
                                    mtu: None,
                                },
                            })
                        })
                        .collect(),
                })
                .collect();
            let last = if reached {
                HopAnswer::Icmp {
                    icmp_type: 129,
                    icmp_code: 0,
                    mtu: None,
                }
            } else {
                HopAnswer::Icmp {
                    icmp_type: 1,
                    icmp_code: 4,
                    mtu: None,
                }
            };
            hops.push(TracerouteHop {
                hop_limit: 6,
                replies: (0..3)
                    .map(|k| {
                        Some(HopReply {
                            from: dst,
                            rtt_ns: rtt(i + k, 9000),
                            answer: last,
                        })
                    })
                    .collect(),
            });
            Outcome::Traceroute(TracerouteResult {
                protocol: if reached {
                    TraceProtocol::Icmp
                } else {
                    TraceProtocol::Udp
                },
                flow_label: (i % 0xfffff) as u32,
                hops,
                reached_destination: reached,
                stop: if reached {
                    TraceStop::Reached
                } else {
                    TraceStop::Unreachable
                },
                packets_sent: 18,
                reused_hops: 0,
            })
        }
        5 => Outcome::Dns(DnsResult {
            query_name: "www.example.org".into(),
            query_type: 28,
            transport_used: DnsTransport::Udp,
            rtt_ns: Some(rtt(i, 3000)),
            response: Some(DnsResponse {
                rcode: 0,
                flags: 0x8180,
                answers: vec![
                    DnsRecord {
                        name: "www.example.org.".into(),
                        record_type: 5,
                        ttl: 300,
                        data: "web.example.org.".into(),
                    },
                    DnsRecord {
                        name: "web.example.org.".into(),
                        record_type: 28,
                        ttl: 60,
                        data: format!("2001:db8:80::{:x}", i % 0xffff),
                    },
                ],
            }),
            failure: None,
            failure_class: None,
            session: None,
        }),
        6 => Outcome::Dns(DnsResult {
            query_name: "nx.example.org".into(),
            query_type: 1,
            transport_used: DnsTransport::Tcp,
            rtt_ns: Some(rtt(i, 4000)),
            response: Some(DnsResponse {
                rcode: 3,
                flags: 0x8180,
                answers: Vec::new(),
            }),
            failure: None,
            failure_class: None,
            session: None,
        }),
        7 => Outcome::Dns(DnsResult {
            query_name: "slow.example.org".into(),
            query_type: 28,
            transport_used: DnsTransport::Udp,
            rtt_ns: None,
            response: None,
            failure: Some("timeout after 5000 ms".into()),
            failure_class: None,
            session: None,
        }),
        8 => Outcome::Http(HttpResult {
            connect: ConnectOutcome::Connected,
            status: Some(if i % 24 == 8 { 200 } else { 404 }),
            http_version: Some("HTTP/1.1".into()),
            dns_ns: None,
            connect_ns: Some(rtt(i, 9000)),
            tls_ns: None,
            first_byte_ns: Some(rtt(i, 20_000)),
            total_ns: rtt(i, 25_000),
            body_bytes: 1256 + i % 100,
            body_truncated: false,
            failure: None,
        }),
        9 => Outcome::Http(HttpResult {
            connect: ConnectOutcome::Refused,
            status: None,
            http_version: None,
            dns_ns: None,
            connect_ns: None,
            tls_ns: None,
            first_byte_ns: None,
            total_ns: rtt(i, 100),
            body_bytes: 0,
            body_truncated: false,
            failure: Some("connection refused".into()),
        }),
        10 => Outcome::Tcp(TcpResult {
            port: 443,
            outcome: ConnectOutcome::Connected,
            connect_ns: Some(rtt(i, 9000)),
            icmp_error: None,
        }),
        _ => Outcome::Failed(MeasurementError {
            class: ErrorClass::Resolution,
            message: "no AAAA record for \"v4only.example.org\", sorry".into(),
        }),
    }
}

/// Result `i`: probe `i % probes`, started `step_us` after result `i - 1`.
pub fn sample(i: u64, probes: u64, start: UnixMicros, step_us: i64) -> StoredResult {
    let probe_n = i % probes.max(1);
    let outcome = outcome(i);
    let dst = match &outcome {
        Outcome::Failed(_) => None,
        _ => Some(v6(0xd, 0, 1)),
    };
    let asn = [3320u32, 3209, 6805][(probe_n % 3) as usize];
    StoredResult {
        result: MeasurementResult {
            key: ResultKey {
                probe_id: probe(probe_n),
                boot_epoch: 1,
                sequence: i / probes.max(1) + 1,
            },
            task_id: TaskId::new(1 + i % VARIANTS).unwrap_or_else(|_| unreachable!("> 0")),
            started_at: UnixMicros(start.0 + step_us * i as i64),
            duration_us: 2_000_000 + i % 1000,
            family_requested: Family::V6,
            family_used: dst.map(|_| Family::V6),
            source: Some(v6(0x5, probe_n as u16, 0x10)),
            destination: dst,
            software_version: "0.1.0".into(),
            clock: ClockInfo {
                state: if i.is_multiple_of(5) {
                    ClockState::Unknown
                } else {
                    ClockState::Synchronized
                },
                offset_us: None,
            },
            outcome,
        },
        probe_origin: Some(Enrichment {
            asn: Some(asn),
            as_name: Some(format!("AS{asn} name, with a comma")),
            country: "DE".parse().ok(),
        }),
        target_origin: i.is_multiple_of(2).then(|| Enrichment {
            asn: Some(3333),
            as_name: Some("RIPE-NCC".into()),
            country: "NL".parse().ok(),
        }),
        blame: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_is_valid() {
        for i in 0..VARIANTS * 2 {
            let s = sample(i, 7, UnixMicros(1_700_000_000_000_000), 1_000_000);
            s.result
                .validate()
                .unwrap_or_else(|e| panic!("sample {i}: {e}"));
        }
    }
}
