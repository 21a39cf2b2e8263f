//! Human-readable text of results for `sixmap-probe measure`, one function per kind (in the
//! style of ping, traceroute, dig and curl -v), kept apart from the measurements so that no
//! kind depends on another's presentation.

use crate::engine::Produced;
use crate::rawnet::build::TCP_RST;
use crate::tls::x509;
use sixmap_shared::measurement::{
    ConnectOutcome, DnsResponse, DnsResult, DualStackResult, ExtHeaderResult, Family, HopAnswer,
    HttpResult, IcmpError, Outcome, PingReply, PingResult, PmtuResult, QuicResult, TcpResult,
    TlsResult, TracerouteResult, query_type_name, rcode_name,
};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Human-readable lines for `sixmap-probe measure`, in the style of iputils ping.
pub fn ping(ping: &PingResult) -> String {
    let mut out = String::new();
    for reply in &ping.replies {
        out.push_str(&reply_line(reply, reply.sequence));
    }
    for error in &ping.errors {
        out.push_str(&format!(
            "from {}: {}\n",
            error.from,
            icmp_error_words(error)
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

/// An ICMP error in words, its numbers after: `destination unreachable: no route (ICMPv6
/// type 1 code 0)`. The family is the sender's: ICMPv6 from an IPv6 address, else ICMP.
pub fn icmp_error_words(error: &IcmpError) -> String {
    let (t, c) = (error.icmp_type, error.icmp_code);
    let v6 = error.from.is_ipv6() && !is_v4_mapped(error.from);
    let mtu = error.mtu.map_or(String::new(), |m| format!(", mtu {m}"));
    let words = if v6 {
        match (t, c) {
            (1, 0) => "destination unreachable: no route".to_owned(),
            (1, 1) => "destination unreachable: administratively prohibited".to_owned(),
            (1, 2) => "destination unreachable: beyond the scope of the source address".to_owned(),
            (1, 3) => "destination unreachable: address unreachable".to_owned(),
            (1, 4) => "destination unreachable: port unreachable".to_owned(),
            (1, 5) => "destination unreachable: source address failed policy".to_owned(),
            (1, 6) => "destination unreachable: reject route".to_owned(),
            (1, _) => "destination unreachable".to_owned(),
            (2, _) => format!("packet too big{mtu}"),
            (3, 0) => "time exceeded: hop limit reached in transit".to_owned(),
            (3, 1) => "time exceeded: fragment reassembly".to_owned(),
            (3, _) => "time exceeded".to_owned(),
            (4, 0) => "parameter problem: erroneous header field".to_owned(),
            (4, 1) => "parameter problem: unrecognized next header".to_owned(),
            (4, 2) => "parameter problem: unrecognized IPv6 option".to_owned(),
            (4, _) => "parameter problem".to_owned(),
            _ => "ICMPv6 error".to_owned(),
        }
    } else {
        match (t, c) {
            (3, 0) => "destination unreachable: network unreachable".to_owned(),
            (3, 1) => "destination unreachable: host unreachable".to_owned(),
            (3, 2) => "destination unreachable: protocol unreachable".to_owned(),
            (3, 3) => "destination unreachable: port unreachable".to_owned(),
            (3, 4) => format!("destination unreachable: fragmentation needed{mtu}"),
            (3, 9 | 10 | 13) => "destination unreachable: administratively prohibited".to_owned(),
            (3, _) => "destination unreachable".to_owned(),
            (5, _) => "redirect".to_owned(),
            (11, 0) => "time exceeded: TTL reached in transit".to_owned(),
            (11, _) => "time exceeded: fragment reassembly".to_owned(),
            (12, _) => "parameter problem".to_owned(),
            _ => "ICMP error".to_owned(),
        }
    };
    let family = if v6 { "ICMPv6" } else { "ICMP" };
    format!("{words} ({family} type {t} code {c})")
}

fn is_v4_mapped(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(a) if a.to_ipv4_mapped().is_some())
}

/// One echo reply as iputils ping writes it, under `sequence` (the reply's own, or the
/// request's in a live `measure ping`, where each request is a measurement of its own).
fn reply_line(reply: &PingReply, sequence: impl std::fmt::Display) -> String {
    format!(
        "reply from {}: seq={sequence} hlim={} time={:.3} ms{}\n",
        reply.from,
        reply
            .hop_limit
            .map(|h| h.to_string())
            .unwrap_or_else(|| "?".into()),
        reply.rtt_ns as f64 / 1e6,
        if reply.duplicate { " (DUP!)" } else { "" }
    )
}

/// One request of a live `sixmap-probe measure ping` (one echo request per measurement):
/// its reply, its ICMP errors in words, or why nothing came, under the request's `sequence`.
pub fn ping_request(sequence: u32, produced: &Produced, timeout_ms: u64) -> String {
    let mut out = String::new();
    match &produced.outcome {
        Outcome::Ping(r) => {
            for reply in &r.replies {
                out.push_str(&reply_line(reply, sequence));
            }
            for error in &r.errors {
                out.push_str(&format!(
                    "from {}: seq={sequence} {}\n",
                    error.from,
                    icmp_error_words(error)
                ));
            }
            if out.is_empty() {
                out.push_str(&format!(
                    "no reply: seq={sequence} (nothing within {timeout_ms} ms)\n"
                ));
            }
        }
        Outcome::Failed(e) => {
            out.push_str(&format!(
                "seq={sequence} failed: {:?}: {}\n",
                e.class, e.message
            ));
        }
        other => out.push_str(&format!("seq={sequence}: not a ping result: {other:?}\n")),
    }
    out
}

/// What a live `measure ping` counts, for its last line.
#[derive(Debug, Default)]
pub struct PingTally {
    sent: u32,
    received: u32,
    errors: u32,
    rtts_ns: Vec<u64>,
}

impl PingTally {
    pub fn add(&mut self, produced: &Produced) {
        if let Outcome::Ping(r) = &produced.outcome {
            self.sent += u32::from(r.sent);
            self.received += u32::from(r.received);
            self.errors += r.errors.len() as u32;
            self.rtts_ns
                .extend(r.replies.iter().filter(|r| !r.duplicate).map(|r| r.rtt_ns));
        }
    }

    /// `--- 5 sent, 4 received, 20% loss, 1 ICMP error; rtt min/avg/max 1.0/2.0/3.0 ms`.
    pub fn summary(&self) -> String {
        let loss = if self.sent == 0 {
            100.0
        } else {
            100.0 * f64::from(self.sent.saturating_sub(self.received)) / f64::from(self.sent)
        };
        let mut out = format!(
            "--- {} sent, {} received, {loss:.0}% loss",
            self.sent, self.received
        );
        if self.errors > 0 {
            out.push_str(&format!(
                ", {} ICMP error{}",
                self.errors,
                if self.errors == 1 { "" } else { "s" }
            ));
        }
        if let (Some(min), Some(max)) = (self.rtts_ns.iter().min(), self.rtts_ns.iter().max()) {
            let avg = self.rtts_ns.iter().sum::<u64>() as f64 / self.rtts_ns.len() as f64;
            out.push_str(&format!(
                "; rtt min/avg/max {:.3}/{:.3}/{:.3} ms",
                *min as f64 / 1e6,
                avg / 1e6,
                *max as f64 / 1e6
            ));
        }
        out.push('\n');
        out
    }
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
        "traceroute ({}, flow label {:#07x}): {:?} after {} hops, {} packets sent{}\n",
        result.protocol.name(),
        result.flow_label,
        result.stop,
        result.hops.len(),
        result.packets_sent,
        if result.reused_hops > 0 {
            format!(
                " ({} hops marked = copied from an earlier trace of the run)",
                result.reused_hops
            )
        } else {
            String::new()
        }
    );
    for (i, hop) in result.hops.iter().enumerate() {
        out.push_str(&format!("{:>3} ", hop.hop_limit));
        // Copied from an earlier trace of the run (stop set), not probed by this one.
        if i < usize::from(result.reused_hops) {
            out.push_str(" =");
        }
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
            let _ = write!(out, ", AAAA synthesised by DNS64 (NAT64 prefix {prefix})");
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

/// A readiness result: one table per check (`measure readiness`). In a module of its own so
/// that its small helpers stay apart from the other kinds'.
mod readiness_text {
    use sixmap_shared::measurement::{ConnectOutcome, Family, Presence, ReadinessResult};
    use std::fmt::Write as _;

    fn yes_no(value: Option<bool>) -> &'static str {
        match value {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        }
    }

    fn or_dash<T: ToString>(value: Option<T>) -> String {
        value.map_or_else(|| "-".to_owned(), |v| v.to_string())
    }

    fn connect(outcome: Option<ConnectOutcome>) -> &'static str {
        outcome.map_or("-", ConnectOutcome::words)
    }

    /// `  (why)` after a row, when there is something to say.
    fn note(detail: &Option<String>) -> String {
        detail
            .as_ref()
            .map_or_else(String::new, |d| format!("  ({d})"))
    }

    pub fn readiness(r: &ReadinessResult) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "resolver: {}", or_dash(r.resolver));
        if let Some(prefix) = r.dns64_prefix {
            let _ = writeln!(
                out,
                "DNS64 prefix {prefix}: AAAA answers under it are not counted"
            );
        }
        let dns = &r.dns;
        let _ = writeln!(
            out,
            "\nDNS: NS lookup {}{}",
            dns.ns_lookup.status.words(),
            note(&dns.ns_lookup.detail)
        );
        if !dns.servers.is_empty() {
            let _ = writeln!(
                out,
                "  {:<32} {:<12} {:<40} answers over IPv6",
                "name server", "AAAA", "address"
            );
        }
        for s in &dns.servers {
            let _ = writeln!(
                out,
                "  {:<32} {:<12} {:<40} {}{}",
                s.name,
                s.has_aaaa.words(),
                or_dash(s.address),
                yes_no(s.answers_over_v6),
                note(&s.detail)
            );
        }
        if let Some(mail) = &r.mail {
            let state = if mail.null_mx {
                "null MX: the domain takes no mail".to_owned()
            } else {
                format!("MX lookup {}", mail.mx_lookup.status.words())
            };
            let _ = writeln!(out, "\nMail: {state}{}", note(&mail.mx_lookup.detail));
            if !mail.exchangers.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:<5} {:<32} {:<12} {:<40} port 25 over IPv6",
                    "pref", "exchanger", "AAAA", "address"
                );
            }
            for x in &mail.exchangers {
                let _ = writeln!(
                    out,
                    "  {:<5} {:<32} {:<12} {:<40} {}{}",
                    x.preference,
                    x.name,
                    x.has_aaaa.words(),
                    or_dash(x.address),
                    connect(x.smtp_v6),
                    note(&x.detail)
                );
            }
        }
        let web = &r.web;
        let _ = writeln!(
            out,
            "\nWeb: {}: AAAA {}{}, A {}{}",
            web.host,
            web.aaaa.words(),
            web.v6_address
                .map_or_else(String::new, |a| format!(" ({a})")),
            web.a.words(),
            web.v4_address
                .map_or_else(String::new, |a| format!(" ({a})")),
        );
        for (name, lookup) in [("AAAA", &web.aaaa_lookup), ("A", &web.a_lookup)] {
            if let Some(detail) = &lookup.detail {
                let _ = writeln!(out, "  {name} lookup {}: {detail}", lookup.status.words());
            }
        }
        for (family, connected, status, error) in [
            (
                "IPv6",
                web.https_v6_connect,
                web.https_v6_status,
                &web.v6_error,
            ),
            (
                "IPv4",
                web.https_v4_connect,
                web.https_v4_status,
                &web.v4_error,
            ),
        ] {
            let _ = writeln!(
                out,
                "  https over {family}: connect {}, status {}{}",
                connect(connected),
                or_dash(status),
                note(error)
            );
        }
        let _ = writeln!(
            out,
            "  certificate verified over IPv6: {}; same certificate: {}; same content: {} (bytes v6 {}, v4 {})",
            yes_no(web.v6_certificate_verified),
            yes_no(web.same_certificate),
            yes_no(web.same_content),
            or_dash(web.v6_body_bytes),
            or_dash(web.v4_body_bytes),
        );
        if let Some(url) = &web.final_url {
            let _ = writeln!(out, "  redirected to {url}");
        }
        if let Some(sub) = &r.subresources {
            let from = match sub.html_from {
                Some(Family::V6) => "the IPv6 page",
                Some(Family::V4) => "the IPv4 page (none over IPv6)",
                None => "no page",
            };
            let _ = writeln!(
                out,
                "\nSubresources: {} host{} from {from}{}",
                sub.hosts.len(),
                if sub.hosts.len() == 1 { "" } else { "s" },
                if sub.truncated {
                    ", more not checked"
                } else {
                    ""
                }
            );
            if !sub.hosts.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:<40} {:<12} {:<20} status",
                    "host", "AAAA", "fetched over IPv6"
                );
            }
            for h in &sub.hosts {
                let _ = writeln!(
                    out,
                    "  {:<40} {:<12} {:<20} {}{}",
                    if h.same_host {
                        format!("{} (the page's)", h.host)
                    } else {
                        h.host.clone()
                    },
                    h.has_aaaa.words(),
                    yes_no(h.fetched_v6),
                    or_dash(h.status_v6),
                    note(&h.detail)
                );
            }
            if sub.html_from.is_some() {
                let failing: Vec<&str> = sub.failing_hosts().map(|h| h.host.as_str()).collect();
                let undecided = sub
                    .hosts
                    .iter()
                    .any(|h| h.has_aaaa == Presence::Inconclusive || h.fetched_v6.is_none());
                let verdict = match (failing.is_empty(), undecided || sub.truncated) {
                    (false, _) => format!("no: {}", failing.join(", ")),
                    (true, true) => "not decided (hosts not checked or inconclusive)".to_owned(),
                    (true, false) => "yes".to_owned(),
                };
                let _ = writeln!(out, "  page works IPv6-only: {verdict}");
            }
        }
        out
    }
}
pub use readiness_text::readiness;

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
        Outcome::Readiness(r) => readiness(r),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::measurement::{
        ErrorClass, IcmpSocketKind, MeasurementError, PingReply, TimestampSource,
    };
    use sixmap_shared::{ClockState, TaskId, UnixMicros};

    fn produced(outcome: Outcome) -> Produced {
        Produced {
            task_id: TaskId::new(1).unwrap(),
            started_at: UnixMicros(0),
            duration_us: 0,
            family_requested: Family::V6,
            family_used: Some(Family::V6),
            source: None,
            destination: None,
            clock_state: ClockState::Unknown,
            outcome,
        }
    }

    fn ping_of(replies: Vec<PingReply>, errors: Vec<IcmpError>) -> Outcome {
        Outcome::Ping(PingResult {
            sent: 1,
            received: replies.len() as u16,
            replies,
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Datagram,
            errors,
        })
    }

    #[test]
    fn icmp_errors_are_in_words_with_their_numbers() {
        let error = |from: &str, icmp_type, icmp_code, mtu| IcmpError {
            icmp_type,
            icmp_code,
            from: from.parse().unwrap(),
            mtu,
        };
        assert_eq!(
            icmp_error_words(&error("2001:db8::1", 1, 0, None)),
            "destination unreachable: no route (ICMPv6 type 1 code 0)"
        );
        assert_eq!(
            icmp_error_words(&error("2001:db8::1", 1, 1, None)),
            "destination unreachable: administratively prohibited (ICMPv6 type 1 code 1)"
        );
        assert_eq!(
            icmp_error_words(&error("2001:db8::1", 2, 0, Some(1280))),
            "packet too big, mtu 1280 (ICMPv6 type 2 code 0)"
        );
        assert_eq!(
            icmp_error_words(&error("2001:db8::1", 3, 0, None)),
            "time exceeded: hop limit reached in transit (ICMPv6 type 3 code 0)"
        );
        // The same numbers mean other things in ICMP (v4): 3 is unreachable there.
        assert_eq!(
            icmp_error_words(&error("192.0.2.1", 3, 1, None)),
            "destination unreachable: host unreachable (ICMP type 3 code 1)"
        );
        assert_eq!(
            icmp_error_words(&error("::ffff:192.0.2.1", 11, 0, None)),
            "time exceeded: TTL reached in transit (ICMP type 11 code 0)"
        );
        assert_eq!(
            icmp_error_words(&error("2001:db8::1", 200, 7, None)),
            "ICMPv6 error (ICMPv6 type 200 code 7)"
        );
    }

    #[test]
    fn a_live_ping_prints_each_request_and_tallies_them() {
        let from: IpAddr = "2001:db8::1".parse().unwrap();
        let reply = |rtt_ns| PingReply {
            sequence: 0,
            rtt_ns,
            hop_limit: Some(57),
            duplicate: false,
            from,
        };
        let answered = produced(ping_of(vec![reply(2_000_000)], vec![]));
        assert_eq!(
            ping_request(4, &answered, 1000),
            "reply from 2001:db8::1: seq=4 hlim=57 time=2.000 ms\n"
        );
        let refused = produced(ping_of(
            vec![],
            vec![IcmpError {
                icmp_type: 1,
                icmp_code: 4,
                from,
                mtu: None,
            }],
        ));
        assert_eq!(
            ping_request(5, &refused, 1000),
            "from 2001:db8::1: seq=5 destination unreachable: port unreachable (ICMPv6 type 1 \
             code 4)\n"
        );
        let lost = produced(ping_of(vec![], vec![]));
        assert_eq!(
            ping_request(6, &lost, 1000),
            "no reply: seq=6 (nothing within 1000 ms)\n"
        );
        let failed = produced(Outcome::Failed(MeasurementError {
            class: ErrorClass::Network,
            message: "no route".into(),
        }));
        assert_eq!(
            ping_request(7, &failed, 1000),
            "seq=7 failed: Network: no route\n"
        );
        let mut tally = PingTally::default();
        for p in [
            &answered,
            &refused,
            &lost,
            &produced(ping_of(vec![reply(4_000_000)], vec![])),
        ] {
            tally.add(p);
        }
        assert_eq!(
            tally.summary(),
            "--- 4 sent, 2 received, 50% loss, 1 ICMP error; rtt min/avg/max 2.000/3.000/4.000 \
             ms\n"
        );
        assert_eq!(
            PingTally::default().summary(),
            "--- 0 sent, 0 received, 100% loss\n"
        );
    }
}
