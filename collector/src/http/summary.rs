//! The dashboard's one-line summaries of results ("3 replies, 3.1 ms"), per kind.

use sixmap_shared::measurement::{
    ConnectOutcome, DualLeg, Family, MeasurementResult, Outcome, QuicFailure, TraceStop,
    query_type_name, rcode_name,
};

/// A short line about a result for the dashboard's probe list: what came back and how fast.
pub(crate) fn summarize(result: &MeasurementResult) -> String {
    summarize_outcome(&result.outcome)
}

fn ms(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// " 3.1 ms" or nothing.
fn in_ms(ns: Option<u64>) -> String {
    ns.map(|ns| format!(" {}", ms(ns))).unwrap_or_default()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn summarize_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed(e) => format!("failed ({:?}): {}", e.class, e.message),
        Outcome::Ping(p) => match p.min_rtt() {
            Some(rtt) => format!(
                "ping {}/{} replies, min RTT {:.3} ms",
                p.received,
                p.sent,
                rtt.as_secs_f64() * 1000.0
            ),
            None => format!("ping 0/{} replies", p.sent),
        },
        Outcome::Traceroute(t) => {
            // The last hop limit probed is the path length when the destination answered.
            let hops = t.hops.last().map_or(0, |h| usize::from(h.hop_limit));
            let end = match t.stop {
                TraceStop::Reached => "reached",
                TraceStop::Unreachable => "unreachable",
                TraceStop::SilentHops => "stopped after silent hops",
                TraceStop::MaxHops => "max hops without reaching",
                TraceStop::Timeout => "timed out",
            };
            format!(
                "traceroute {} {}, {end}",
                t.protocol.name(),
                plural(hops, "hop")
            )
        }
        Outcome::Dns(d) => {
            let qtype = query_type_name(d.query_type);
            match (&d.response, &d.failure) {
                (Some(r), _) => format!(
                    "dns {qtype} {} {}{}",
                    rcode_name(r.rcode),
                    plural(r.answers.len(), "answer"),
                    in_ms(d.rtt_ns)
                ),
                (None, failure) => format!(
                    "dns {qtype} no response: {}",
                    failure.as_deref().unwrap_or("unknown")
                ),
            }
        }
        Outcome::Tcp(t) => format!(
            "tcp {} {}{}",
            t.port,
            t.outcome.words(),
            in_ms(t.connect_ns)
        ),
        Outcome::Tls(t) => {
            if t.handshake_ok {
                format!(
                    "tls {} handshake{}, certificate {}",
                    t.version.as_deref().unwrap_or("?"),
                    in_ms(t.handshake_ns),
                    if t.certificate_verified {
                        "verified"
                    } else {
                        "not verified"
                    }
                )
            } else if t.connect != ConnectOutcome::Connected {
                format!("tls connect {}", t.connect.words())
            } else {
                format!(
                    "tls handshake failed: {}",
                    t.failure.as_deref().unwrap_or("unknown")
                )
            }
        }
        Outcome::Http(h) => match h.status {
            Some(status) => format!("http {status} in {}", ms(h.total_ns)),
            None if h.connect != ConnectOutcome::Connected => {
                format!("http connect {}", h.connect.words())
            }
            None => format!(
                "http no response: {}",
                h.failure.as_deref().unwrap_or("unknown")
            ),
        },
        Outcome::Quic(q) => match q.failure {
            None => format!(
                "quic handshake{}{}",
                in_ms(q.handshake_ns),
                q.alpn
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            ),
            Some(QuicFailure::UdpBlocked) => "quic failed: UDP blocked".into(),
            Some(QuicFailure::Handshake) => "quic failed: handshake".into(),
            Some(QuicFailure::Certificate) => "quic failed: certificate".into(),
        },
        Outcome::Pmtu(p) => {
            let mtu = match p.path_mtu {
                0 => "pmtu unknown".to_owned(),
                mtu => format!("pmtu {mtu}"),
            };
            match (p.black_hole, p.black_hole_hop) {
                (true, Some(hop)) => format!("{mtu} (black hole at hop {hop})"),
                (true, None) => format!("{mtu} (black hole)"),
                (false, _) => mtu,
            }
        }
        Outcome::ExtHeaders(e) => {
            let each: Vec<String> = e
                .outcomes
                .iter()
                .map(|o| {
                    let fate = match (o.survived, o.dropped_at_hop) {
                        (true, _) => "ok".to_owned(),
                        (false, Some(hop)) => format!("dropped at hop {hop}"),
                        (false, None) => "dropped".to_owned(),
                    };
                    format!("{} {fate}", o.header.name())
                })
                .collect();
            format!("ext headers: {}", each.join(", "))
        }
        Outcome::DualStack(d) => {
            let leg = |leg: &DualLeg| {
                if leg.outcome.reached_destination() {
                    "ok"
                } else {
                    "failed"
                }
            };
            let choice = match d.happy_eyeballs_choice {
                Some(Family::V6) => "v6",
                Some(Family::V4) => "v4",
                None => "none",
            };
            format!(
                "dual-stack v6 {}, v4 {}, Happy Eyeballs picks {choice}",
                leg(&d.v6),
                leg(&d.v4)
            )
        }
        Outcome::Readiness(r) => {
            let web = &r.web;
            let https = match web.https_v6_status {
                Some(status) => format!("https over v6 {status}"),
                None => "no https over v6".to_owned(),
            };
            format!(
                "readiness {}: AAAA {}, A {}, {https}",
                web.host,
                web.aaaa.words(),
                web.a.words()
            )
        }
    }
}

#[cfg(test)]
mod summarize_tests {
    use super::summarize_outcome;
    use sixmap_shared::measurement::*;

    fn hop(hop_limit: u8) -> TracerouteHop {
        TracerouteHop {
            hop_limit,
            replies: vec![None],
        }
    }

    #[test]
    fn each_kind_gets_its_own_line() {
        let trace = Outcome::Traceroute(TracerouteResult {
            protocol: TraceProtocol::Udp,
            flow_label: 0,
            hops: (1..=8).map(hop).collect(),
            reached_destination: true,
            stop: TraceStop::Reached,
            packets_sent: 24,
        });
        assert_eq!(summarize_outcome(&trace), "traceroute udp 8 hops, reached");

        let dns = Outcome::Dns(DnsResult {
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
                    ttl: 60,
                    data: "2001:db8::1".into(),
                }],
            }),
            failure: None,
            failure_class: None,
            session: None,
        });
        assert_eq!(summarize_outcome(&dns), "dns AAAA NOERROR 1 answer 3.1 ms");

        let tcp = Outcome::Tcp(TcpResult {
            port: 443,
            outcome: ConnectOutcome::Connected,
            connect_ns: Some(1_200_000),
            icmp_error: None,
        });
        assert_eq!(summarize_outcome(&tcp), "tcp 443 connected 1.2 ms");

        let http = Outcome::Http(HttpResult {
            connect: ConnectOutcome::Connected,
            status: Some(200),
            http_version: Some("HTTP/1.1".into()),
            dns_ns: None,
            connect_ns: Some(1_000_000),
            tls_ns: None,
            first_byte_ns: Some(40_000_000),
            total_ns: 45_000_000,
            body_bytes: 10,
            body_truncated: false,
            failure: None,
        });
        assert_eq!(summarize_outcome(&http), "http 200 in 45 ms");

        let pmtu = Outcome::Pmtu(PmtuResult {
            path_mtu: 1280,
            black_hole: true,
            black_hole_hop: Some(3),
            black_hole_from: None,
            too_big: vec![],
            packets_sent: 12,
        });
        assert_eq!(summarize_outcome(&pmtu), "pmtu 1280 (black hole at hop 3)");

        let quic = Outcome::Quic(QuicResult {
            handshake_ok: false,
            version: None,
            alpn: None,
            handshake_ns: None,
            failure: Some(QuicFailure::UdpBlocked),
            failure_detail: None,
        });
        assert_eq!(summarize_outcome(&quic), "quic failed: UDP blocked");

        let ext = Outcome::ExtHeaders(ExtHeaderResult {
            outcomes: vec![
                ExtHeaderOutcome {
                    header: ExtHeaderType::HopByHop,
                    survived: false,
                    dropped_at_hop: Some(2),
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
            packets_sent: 20,
        });
        assert_eq!(
            summarize_outcome(&ext),
            "ext headers: hbh dropped at hop 2, frag ok"
        );

        let leg = |outcome| {
            Box::new(DualLeg {
                source: None,
                destination: None,
                duration_us: 1,
                outcome,
            })
        };
        let timed_out = Outcome::Tcp(TcpResult {
            port: 443,
            outcome: ConnectOutcome::Timeout,
            connect_ns: None,
            icmp_error: None,
        });
        let dual = Outcome::DualStack(DualStackResult {
            v6: leg(timed_out),
            v4: leg(tcp),
            happy_eyeballs_choice: Some(Family::V4),
            v6_hops: None,
            v4_hops: None,
            v6_nat64_prefix: None,
            v4_via_clat: false,
        });
        assert_eq!(
            summarize_outcome(&dual),
            "dual-stack v6 failed, v4 ok, Happy Eyeballs picks v4"
        );
    }
}
