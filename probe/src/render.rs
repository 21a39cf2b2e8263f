//! Human-readable text of results for `sixmap-probe measure`, one function per kind (in the
//! style of ping, traceroute, dig and curl -v), kept apart from the measurements so that no
//! kind depends on another's presentation.

use crate::engine::Produced;
use crate::rawnet::build::TCP_RST;
use crate::tls::x509;
use sixmap_shared::measurement::{
    ConnectOutcome, DnsResponse, DnsResult, DualStackResult, ExtHeaderResult, Family, HopAnswer,
    HttpResult, Outcome, PingResult, PmtuResult, QuicResult, TcpResult, TlsResult,
    TracerouteResult, query_type_name, rcode_name,
};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Human-readable lines for `sixmap-probe measure`, in the style of iputils ping.
pub fn ping(ping: &PingResult) -> String {
    let mut out = String::new();
    for reply in &ping.replies {
        out.push_str(&format!(
            "reply from {}: seq={} hlim={} time={:.3} ms{}\n",
            reply.from,
            reply.sequence,
            reply
                .hop_limit
                .map(|h| h.to_string())
                .unwrap_or_else(|| "?".into()),
            reply.rtt_ns as f64 / 1e6,
            if reply.duplicate { " (DUP!)" } else { "" }
        ));
    }
    for error in &ping.errors {
        out.push_str(&format!(
            "ICMP error type {} code {} from {}\n",
            error.icmp_type, error.icmp_code, error.from
        ));
    }
    out.push_str(&format!(
        "--- {} sent, {} received, {:.0}% loss ({:?} socket, {:?} timestamps)\n",
        ping.sent,
        ping.received,
        ping.loss() * 100.0,
        ping.socket_kind,
        ping.timestamp_source
    ));
    out
}

fn hop_answer(answer: &HopAnswer) -> String {
    match *answer {
        HopAnswer::Icmp { icmp_type: 3, .. } | HopAnswer::Icmp { icmp_type: 129, .. } => {
            String::new()
        }
        HopAnswer::Icmp {
            icmp_type: 1,
            icmp_code,
            ..
        } => format!(
            " !{}",
            match icmp_code {
                0 => "N (no route)",
                1 => "X (administratively prohibited)",
                2 => "S (beyond scope)",
                3 => "H (address unreachable)",
                4 => "P (port unreachable)",
                5 => "F (source address failed policy)",
                6 => "R (reject route)",
                _ => "? (unreachable)",
            }
        ),
        HopAnswer::Icmp {
            icmp_type: 2, mtu, ..
        } => format!(" (packet too big, mtu {})", mtu.unwrap_or(0)),
        HopAnswer::Icmp {
            icmp_type,
            icmp_code,
            ..
        } => format!(" (ICMPv6 type {icmp_type} code {icmp_code})"),
        HopAnswer::Tcp { flags } => {
            if flags & TCP_RST != 0 {
                " [RST]".into()
            } else {
                " [SYN-ACK]".into()
            }
        }
    }
}

/// Human-readable lines for `sixmap-probe measure`, in the style of traceroute.
pub fn traceroute(result: &TracerouteResult) -> String {
    let mut out = format!(
        "traceroute ({}, flow label {:#07x}): {:?} after {} hops, {} packets sent\n",
        result.protocol.name(),
        result.flow_label,
        result.stop,
        result.hops.len(),
        result.packets_sent
    );
    for hop in &result.hops {
        out.push_str(&format!("{:>3} ", hop.hop_limit));
        let mut previous: Option<IpAddr> = None;
        for reply in &hop.replies {
            match reply {
                None => out.push_str(" *"),
                Some(reply) => {
                    if previous != Some(reply.from) {
                        out.push_str(&format!(" {}", reply.from));
                        previous = Some(reply.from);
                    }
                    out.push_str(&format!(
                        "  {:.3} ms{}",
                        reply.rtt_ns as f64 / 1e6,
                        hop_answer(&reply.answer)
                    ));
                }
            }
        }
        out.push('\n');
    }
    out
}

fn flag_names(flags: u16) -> String {
    [
        (0x8000, "qr"),
        (DnsResponse::FLAG_AA, "aa"),
        (DnsResponse::FLAG_TC, "tc"),
        (0x0100, "rd"),
        (DnsResponse::FLAG_RA, "ra"),
        (0x0020, "ad"),
        (0x0010, "cd"),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(" ")
}

/// Human-readable lines for `sixmap-probe measure`, in the spirit of dig.
pub fn dns(result: &DnsResult) -> String {
    let mut out = format!(
        ";; {} {} over {}",
        if result.query_name.is_empty() {
            "."
        } else {
            &result.query_name
        },
        query_type_name(result.query_type),
        result.transport_used.name().to_ascii_uppercase()
    );
    if let Some(ns) = result.rtt_ns {
        let _ = write!(out, " in {:.3} ms", ns as f64 / 1e6);
    }
    out.push('\n');
    if let Some(session) = &result.session {
        let ms =
            |ns: Option<u64>| ns.map_or("-".to_owned(), |ns| format!("{:.3} ms", ns as f64 / 1e6));
        let _ = write!(
            out,
            ";; connect {}, TLS {}",
            ms(session.connect_ns),
            ms(session.tls_ns)
        );
        if let Some(version) = &session.tls_version {
            let _ = write!(out, " ({version})");
        }
        if let Some(status) = session.http_status {
            let _ = write!(out, ", HTTP status {status}");
        }
        out.push('\n');
    }
    if let Some(failure) = &result.failure {
        match result.failure_class {
            Some(class) => {
                let _ = writeln!(out, ";; no answer ({}): {failure}", class.name());
            }
            None => {
                let _ = writeln!(out, ";; no answer: {failure}");
            }
        }
    }
    if let Some(response) = &result.response {
        let _ = writeln!(
            out,
            ";; {}, flags: {}; {} answers",
            rcode_name(response.rcode),
            flag_names(response.flags),
            response.answers.len()
        );
        for a in &response.answers {
            let _ = writeln!(
                out,
                "{}\t{}\tIN\t{}\t{}",
                a.name,
                a.ttl,
                query_type_name(a.record_type),
                a.data
            );
        }
    }
    out
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn tcp(result: &TcpResult) -> String {
    let outcome = result.outcome.words();
    let mut out = format!("port {}: {outcome}", result.port);
    if let Some(ns) = result.connect_ns {
        out.push_str(&format!(" after {:.3} ms", ns as f64 / 1e6));
    }
    out.push('\n');
    if let Some(icmp) = &result.icmp_error {
        out.push_str(&format!(
            "ICMP error type {} code {} from {}\n",
            icmp.icmp_type, icmp.icmp_code, icmp.from
        ));
    }
    out
}

fn millis(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn tls(result: &TlsResult) -> String {
    let mut out = String::new();
    let time = |ns: Option<u64>| ns.map(millis).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "connect: {:?} ({})",
        result.connect,
        time(result.connect_ns)
    );
    if result.connect == ConnectOutcome::Connected {
        let _ = writeln!(
            out,
            "handshake: {} ({})",
            if result.handshake_ok { "ok" } else { "failed" },
            time(result.handshake_ns)
        );
    }
    if result.handshake_ok {
        let _ = writeln!(
            out,
            "version: {}, cipher suite: {}, ALPN: {}",
            result.version.as_deref().unwrap_or("?"),
            result.cipher_suite.as_deref().unwrap_or("?"),
            result.alpn.as_deref().unwrap_or("none")
        );
    }
    for (i, cert) in result.chain.iter().enumerate() {
        let _ = writeln!(out, "certificate {i}: {}", cert.subject);
        let _ = writeln!(out, "  issuer: {}", cert.issuer);
        let date = |t: Option<sixmap_shared::UnixMicros>| {
            t.map(x509::iso8601).unwrap_or_else(|| "?".into())
        };
        let _ = writeln!(
            out,
            "  valid: {} .. {}",
            date(cert.not_before),
            date(cert.not_after)
        );
    }
    if !result.chain.is_empty() {
        let _ = writeln!(
            out,
            "certificate verified: {}",
            if result.certificate_verified {
                "yes"
            } else {
                "no"
            }
        );
    }
    if let Some(failure) = &result.failure {
        let _ = writeln!(out, "failure: {failure}");
    }
    out
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn http(result: &HttpResult) -> String {
    let mut out = String::new();
    let time = |ns: Option<u64>| ns.map(millis).unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "connect: {:?}", result.connect);
    if let Some(status) = result.status {
        let _ = writeln!(
            out,
            "status: {status} ({})",
            result.http_version.as_deref().unwrap_or("?")
        );
        let _ = writeln!(
            out,
            "body: {} bytes{}",
            result.body_bytes,
            if result.body_truncated {
                " (truncated at the cap)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "timings: dns {}, connect {}, tls {}, first byte {}, total {}",
        time(result.dns_ns),
        time(result.connect_ns),
        time(result.tls_ns),
        time(result.first_byte_ns),
        millis(result.total_ns)
    );
    if let Some(failure) = &result.failure {
        let _ = writeln!(out, "failure: {failure}");
    }
    out
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn quic(result: &QuicResult) -> String {
    let mut out = String::new();
    let handshake = if result.handshake_ok {
        "ok"
    } else if result.version.is_some() {
        "completed, certificate rejected"
    } else {
        "failed"
    };
    let _ = writeln!(
        out,
        "handshake: {handshake} ({})",
        result
            .handshake_ns
            .map(millis)
            .unwrap_or_else(|| "-".into())
    );
    if let Some(version) = result.version {
        let _ = writeln!(
            out,
            "QUIC version: {version}, ALPN: {}",
            result.alpn.as_deref().unwrap_or("none")
        );
    }
    if let Some(failure) = result.failure {
        let _ = writeln!(
            out,
            "failure: {failure:?}: {}",
            result.failure_detail.as_deref().unwrap_or("")
        );
    }
    out
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn pmtu(result: &PmtuResult) -> String {
    let mut out = if result.path_mtu == 0 {
        "path MTU unknown: the destination did not answer 1280-byte probes\n".to_owned()
    } else {
        format!("path MTU {} bytes\n", result.path_mtu)
    };
    for error in &result.too_big {
        out.push_str(&format!(
            "packet too big from {}: mtu {}\n",
            error.from,
            error.mtu.unwrap_or(0)
        ));
    }
    if result.black_hole {
        out.push_str("black hole: larger packets vanish without Packet Too Big");
        match (result.black_hole_hop, result.black_hole_from) {
            (Some(hop), Some(from)) => {
                out.push_str(&format!(" at hop {hop}, just after {from}"));
            }
            (Some(hop), None) => out.push_str(&format!(" at hop {hop}")),
            _ => out.push_str(" (hop not located)"),
        }
        out.push('\n');
    }
    out.push_str(&format!("{} packets sent\n", result.packets_sent));
    out
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn exthdr(result: &ExtHeaderResult) -> String {
    let mut out = String::new();
    for outcome in &result.outcomes {
        out.push_str(&format!("{:<4} ", outcome.header.name()));
        if outcome.survived {
            out.push_str("survived");
        } else {
            out.push_str("dropped");
            match (outcome.dropped_at_hop, outcome.last_responder) {
                (Some(hop), Some(from)) => out.push_str(&format!(" at hop {hop}, after {from}")),
                (Some(hop), None) => out.push_str(&format!(" at hop {hop}")),
                _ => out.push_str(" (hop not located)"),
            }
        }
        if let Some(error) = &outcome.icmp_error {
            out.push_str(&format!(
                "; ICMPv6 type {} code {} from {}",
                error.icmp_type, error.icmp_code, error.from
            ));
        }
        out.push('\n');
    }
    out.push_str(&format!("{} packets sent\n", result.packets_sent));
    out
}

fn leg_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed(e) => format!("failed ({:?}): {}", e.class, e.message),
        Outcome::Ping(r) => format!(
            "ping {}/{} replies, min rtt {}",
            r.received,
            r.sent,
            r.min_rtt()
                .map_or("-".into(), |d| format!("{:.3} ms", d.as_secs_f64() * 1e3))
        ),
        Outcome::Tcp(r) => tcp(r).trim_end().to_owned(),
        Outcome::Http(r) => format!(
            "http {:?} status {}",
            r.connect,
            r.status.map_or("-".into(), |s| s.to_string())
        ),
        other => format!("{:?}", other.kind()),
    }
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn dualstack(result: &DualStackResult) -> String {
    let mut out = String::new();
    for (name, leg, hops) in [
        ("IPv6", &result.v6, result.v6_hops),
        ("IPv4", &result.v4, result.v4_hops),
    ] {
        let endpoint = |a: Option<IpAddr>| a.map_or("?".to_owned(), |a| a.to_string());
        let _ = write!(
            out,
            "{name}: {} -> {}: {}",
            endpoint(leg.source),
            endpoint(leg.destination),
            leg_outcome(&leg.outcome)
        );
        if let Some(hops) = hops {
            let _ = write!(out, ", {hops} hops");
        }
        if name == "IPv6"
            && let Some(prefix) = result.v6_nat64_prefix
        {
            let _ = write!(
                out,
                ", AAAA synthesised by DNS64 (NAT64 prefix {prefix}/96)"
            );
        }
        if name == "IPv4" && result.v4_via_clat {
            let _ = write!(out, ", through the host's CLAT (464XLAT)");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "happy eyeballs would use: {}",
        match result.happy_eyeballs_choice {
            Some(Family::V6) => "IPv6",
            Some(Family::V4) => "IPv4",
            None => "neither",
        }
    );
    out
}

pub fn produced(produced: &Produced) -> String {
    let mut out = String::new();
    if let Some(destination) = produced.destination {
        let source = produced
            .source
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".into());
        out.push_str(&format!("{source} -> {destination}\n"));
    }
    out.push_str(&match &produced.outcome {
        Outcome::Failed(_) => String::new(),
        Outcome::Ping(r) => ping(r),
        Outcome::Traceroute(r) => traceroute(r),
        Outcome::Dns(r) => dns(r),
        Outcome::Tcp(r) => tcp(r),
        Outcome::Tls(r) => tls(r),
        Outcome::Http(r) => http(r),
        Outcome::Quic(r) => quic(r),
        Outcome::Pmtu(r) => pmtu(r),
        Outcome::ExtHeaders(r) => exthdr(r),
        Outcome::DualStack(r) => dualstack(r),
    });
    out
}
