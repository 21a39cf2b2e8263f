//! The probe's own limits on what it sends, enforced whatever the collector assigns: a packet
//! budget for the whole probe (a token bucket charged with a measurement's worst case before
//! it starts) and the worst-case packet count of every measurement kind, derived from its spec.
//!
//! Together with the target policy (`sixmap_shared::policy`) this is what keeps a volunteer's
//! probe harmless if its collector is compromised: a task over budget is refused before any
//! packet and reported as a `Policy` failure, like a refused target.

use sixmap_shared::measurement::{
    DualInner, DualStackSpec, HttpSpec, MeasurementSpec, ReadinessSpec, SpecKind, TracerouteSpec,
};
use std::sync::Mutex;
use tokio::time::Instant;

/// Default packets per minute for the whole probe: 10 per second on average, less than one
/// web page load, yet enough for the largest single measurement (an extension-header test,
/// 512 packets) and a handful of pings and traceroutes every minute.
pub const DEFAULT_PACKETS_PER_MINUTE: u32 = 600;
/// Bounds of `packet_budget_per_minute` in the probe config.
pub const MIN_PACKETS_PER_MINUTE: u32 = 10;
pub const MAX_PACKETS_PER_MINUTE: u32 = 60_000;

/// Default cap on measurements running at the same time: a Raspberry Pi runs eight with room
/// to spare, and the packet budget, not this cap, bounds the traffic.
pub const DEFAULT_MAX_CONCURRENT: usize = 8;
pub const MAX_CONCURRENT_LIMIT: usize = 64;

/// Packets of one TCP connection at worst: up to six SYNs within the longest timeout (Linux
/// retransmits after 1, 3, 7, 15 and 31 s), the handshake's ACK, a FIN, its ACK and a RST.
const TCP_CONNECTION: u32 = 10;
/// A TLS handshake on top of the connection: ClientHello, ACKs of the server's flight (up to
/// 16 certificates), Finished and close_notify.
const TLS_HANDSHAKE: u32 = 8;
/// A QUIC handshake: the padded Initial and its retransmissions within the timeout,
/// Handshake-level ACKs and Finished, and the CONNECTION_CLOSE.
const QUIC_HANDSHAKE: u32 = 16;
/// Smallest IPv6 TCP segment payload (1280-byte minimum MTU minus IPv6 and TCP headers):
/// with delayed ACKs the probe sends one ACK per two received segments.
const MIN_SEGMENT: u32 = 1220;

/// Packets a path MTU measurement sends at most unless the spec's budget is smaller: search
/// rounds (at most 14 probes each) and one hop scan.
pub const PMTU_PACKETS: u32 = 256;
/// Packets an extension-header measurement sends at most unless the spec's budget is smaller.
pub const EXTHDR_PACKETS: u32 = 512;
/// Echo requests per family of a dual-stack ping: enough for a minimum RTT without making the
/// pair slow.
const DUAL_PING_COUNT: u32 = 3;

/// Echo requests each leg of a dual-stack ping sends: the spec's budget covers both legs.
pub fn dual_ping_count(max_packets: Option<u16>) -> u32 {
    max_packets.map_or(DUAL_PING_COUNT, |n| {
        (u32::from(n) / 2).clamp(1, DUAL_PING_COUNT)
    })
}

/// The most packets `spec` can make the probe send. Kinds with a raw-socket prober
/// (traceroute, PMTU, extension headers) are bounded by their prober's limit and the spec's
/// `max_packets`; the others by their spec and the protocol's retransmission rules.
pub fn worst_case_packets(spec: &MeasurementSpec) -> u32 {
    kind_packets(&spec.kind, spec.max_packets)
}

fn kind_packets(kind: &SpecKind, max_packets: Option<u16>) -> u32 {
    let capped = |own: u32| max_packets.map_or(own, |max| own.min(u32::from(max)));
    match kind {
        SpecKind::Ping(ping) => u32::from(ping.count()),
        SpecKind::Traceroute(trace) => capped(traceroute(trace)),
        SpecKind::Dns(dns) => match dns.transport() {
            // One datagram, and a TCP retry if the answer is truncated.
            sixmap_shared::measurement::DnsTransport::Udp => 1 + TCP_CONNECTION + 1,
            sixmap_shared::measurement::DnsTransport::Tcp => TCP_CONNECTION + 1,
            // The handshake, the query (and an HTTP request head: two segments at most), and
            // one ACK per two segments of the largest DNS message the probe reads.
            sixmap_shared::measurement::DnsTransport::Tls
            | sixmap_shared::measurement::DnsTransport::Https => {
                TCP_CONNECTION + TLS_HANDSHAKE + 2 + u32::from(u16::MAX).div_ceil(2 * MIN_SEGMENT)
            }
        },
        SpecKind::Tcp(_) => TCP_CONNECTION,
        SpecKind::Tls(_) => TCP_CONNECTION + TLS_HANDSHAKE,
        SpecKind::Http(http) => http_packets(http),
        SpecKind::Quic(_) => QUIC_HANDSHAKE,
        SpecKind::Pmtu(_) => capped(PMTU_PACKETS),
        SpecKind::ExtHeaders(_) => capped(EXTHDR_PACKETS),
        // Both families at once, and the fault path when IPv6 fails and IPv4 works.
        SpecKind::DualStack(dual) => {
            let legs = dual_legs_packets(dual, max_packets);
            legs + dual_fault_packets(max_packets, legs)
        }
        SpecKind::Readiness(readiness) => readiness_allowance(readiness, max_packets),
    }
}

/// Both legs of a dual-stack measurement: twice the inner measurement they run.
pub fn dual_legs_packets(dual: &DualStackSpec, max_packets: Option<u16>) -> u32 {
    2 * match dual.inner() {
        DualInner::Ping => dual_ping_count(max_packets),
        DualInner::Tcp => TCP_CONNECTION,
        DualInner::Http => {
            TCP_CONNECTION + 2 + HttpSpec::DEFAULT_MAX_BODY.div_ceil(2 * MIN_SEGMENT)
        }
    }
}

/// The fault-path trace a dual-stack measurement adds when IPv6 fails and IPv4 works
/// (`faultpath::PACKETS`), within what the spec's budget leaves after the legs.
pub fn dual_fault_packets(max_packets: Option<u16>, legs: u32) -> u32 {
    max_packets.map_or(crate::faultpath::PACKETS, |max| {
        u32::from(max)
            .saturating_sub(legs)
            .min(crate::faultpath::PACKETS)
    })
}

/// Packets of one DNS lookup over UDP at worst: the datagram and a TCP retry if truncated.
pub const READINESS_LOOKUP: u32 = 1 + TCP_CONNECTION + 1;
/// Packets of the network's NAT64 prefix discovery (RFC 7050) at worst: the C library's
/// `ipv4only.arpa` lookup (A and AAAA, with retries) when the direct query fails. Usually the
/// prefix is cached (nothing sent) or one datagram asks for it; the rest is given back.
pub const READINESS_DISCOVERY: u32 = 2 * READINESS_LOOKUP;
/// Packets of one TCP connect-and-close (the mail check's port 25).
pub const READINESS_CONNECT: u32 = TCP_CONNECTION;
/// Body bytes a readiness page fetch reads at most: enough for the head and body of nearly
/// every portal's HTML, small enough that both families fit a default budget.
pub const READINESS_PAGE_BODY: u32 = 256 * 1024;
/// Body bytes a subresource fetch reads at most: its status is what counts.
pub const READINESS_SUBRESOURCE_BODY: u32 = 16 * 1024;
/// Packets of one HTTPS request reading at most `body` bytes.
pub fn readiness_fetch(body: u32) -> u32 {
    TCP_CONNECTION + TLS_HANDSHAKE + 2 + body.div_ceil(2 * MIN_SEGMENT) + 2
}
/// Packets a readiness measurement may send when its spec gives no `max_packets`: it stays
/// within the default per-minute budget beside other tasks. Checks that would go beyond are
/// not run, and the result says so.
pub const READINESS_DEFAULT_PACKETS: u32 = 400;
// A readiness task with the default allowance must fit the default per-minute budget.
const _: () = assert!(READINESS_DEFAULT_PACKETS <= DEFAULT_PACKETS_PER_MINUTE);

/// The packets a readiness measurement is charged and may send: every check it can run at
/// worst, bounded by the spec's `max_packets` or [`READINESS_DEFAULT_PACKETS`]. The runner
/// charges each step's worst case against this allowance before the step, so what it sends
/// never exceeds it.
pub fn readiness_allowance(spec: &ReadinessSpec, max_packets: Option<u16>) -> u32 {
    use sixmap_shared::measurement::{MAX_READINESS_MAIL_EXCHANGERS, MAX_READINESS_NAME_SERVERS};
    let servers = MAX_READINESS_NAME_SERVERS as u32;
    // The NS lookup, then per server its AAAA lookup and one SOA query over IPv6.
    let dns = READINESS_LOOKUP + servers * 2 * READINESS_LOOKUP;
    let mail = if spec.check_mail() {
        READINESS_LOOKUP
            + MAX_READINESS_MAIL_EXCHANGERS as u32 * (READINESS_LOOKUP + READINESS_CONNECT)
    } else {
        0
    };
    // A and AAAA, then the page over each family (with its redirects).
    let web = 2 * READINESS_LOOKUP
        + 2 * (1 + READINESS_MAX_REDIRECTS) * readiness_fetch(READINESS_PAGE_BODY);
    let subresources = if spec.check_subresources() {
        u32::from(spec.max_subresource_hosts())
            * (READINESS_LOOKUP + readiness_fetch(READINESS_SUBRESOURCE_BODY))
    } else {
        0
    };
    let own = READINESS_DISCOVERY + dns + mail + web + subresources;
    own.min(max_packets.map_or(READINESS_DEFAULT_PACKETS, u32::from))
}

/// Redirects a readiness page fetch follows (to a `www.` host, to https).
pub const READINESS_MAX_REDIRECTS: u32 = 3;

fn traceroute(spec: &TracerouteSpec) -> u32 {
    spec.packet_budget()
}

fn http_packets(spec: &HttpSpec) -> u32 {
    let tls = if spec.url().https { TLS_HANDSHAKE } else { 0 };
    // The request (two segments at most) and one ACK per two segments of the bounded body;
    // headers are bounded well below one body's worth.
    TCP_CONNECTION + tls + 2 + spec.max_body_bytes().div_ceil(2 * MIN_SEGMENT) + 2
}

/// Why the budget refused a measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRefusal {
    #[error(
        "needs up to {needed} packets, more than the probe's whole packet budget of {per_minute} per minute (packet_budget_per_minute in the probe config)"
    )]
    Never { needed: u32, per_minute: u32 },
    #[error(
        "packet budget exhausted: needs up to {needed} packets, {available} of {per_minute} per minute left; the task runs again at its next interval"
    )]
    Exhausted {
        needed: u32,
        available: u32,
        per_minute: u32,
    },
}

/// A token bucket of packets for the whole probe: `per_minute` tokens at most, refilled
/// continuously at `per_minute` per minute. Measurements take their worst case up front, so
/// the traffic in any minute stays below two budgets' worth even in bursts.
#[derive(Debug)]
pub struct PacketBudget {
    per_minute: u32,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens in micro-packets, so slow refills are not lost to rounding.
    micro: u64,
    at: Instant,
}

const MICRO: u64 = 1_000_000;

impl PacketBudget {
    /// A full bucket.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_minute,
            state: Mutex::new(Bucket {
                micro: u64::from(per_minute) * MICRO,
                at: Instant::now(),
            }),
        }
    }

    pub fn limit(&self) -> u32 {
        self.per_minute
    }

    /// Takes `needed` packets, or says why not (and takes nothing).
    pub fn try_take(&self, needed: u32) -> Result<(), BudgetRefusal> {
        if needed > self.per_minute {
            crate::metrics::metrics().budget_refusals.inc();
            return Err(BudgetRefusal::Never {
                needed,
                per_minute: self.per_minute,
            });
        }
        let mut bucket = self.bucket();
        let want = u64::from(needed) * MICRO;
        if bucket.micro < want {
            crate::metrics::metrics().budget_refusals.inc();
            return Err(BudgetRefusal::Exhausted {
                needed,
                available: u32::try_from(bucket.micro / MICRO).unwrap_or(u32::MAX),
                per_minute: self.per_minute,
            });
        }
        bucket.micro -= want;
        Ok(())
    }

    /// Gives back packets a measurement took but never sent (it was refused before its first
    /// packet, e.g. by the target policy after DNS).
    pub fn refund(&self, packets: u32) {
        let mut bucket = self.bucket();
        let full = u64::from(self.per_minute) * MICRO;
        bucket.micro = (bucket.micro + u64::from(packets) * MICRO).min(full);
    }

    /// Packets available now.
    pub fn available(&self) -> u32 {
        u32::try_from(self.bucket().micro / MICRO).unwrap_or(u32::MAX)
    }

    /// The bucket, refilled up to now.
    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        // A poisoned lock only means another thread panicked while holding plain integers.
        let mut bucket = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.at);
        let refill = u64::try_from(
            elapsed.as_micros() * u128::from(self.per_minute) * u128::from(MICRO) / 60_000_000,
        )
        .unwrap_or(u64::MAX);
        let full = u64::from(self.per_minute) * MICRO;
        bucket.micro = bucket.micro.saturating_add(refill).min(full);
        bucket.at = now;
        bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::Target;
    use sixmap_shared::measurement::{
        DnsSpec, DnsTransport, ExtHeaderSpec, Family, PingSpec, PmtuSpec, QuicSpec, TcpSpec,
        TlsSpec, TraceProtocol,
    };
    use std::time::Duration;

    fn spec(kind: SpecKind) -> MeasurementSpec {
        let target = match kind {
            SpecKind::DualStack(_) => Target::hostname("example.org").unwrap(),
            _ => Target::Address("2001:4860::1".parse().unwrap()),
        };
        MeasurementSpec::new(target, Family::V6, Duration::from_secs(10), kind).unwrap()
    }

    #[test]
    fn worst_cases_follow_the_spec_bounds() {
        let ping = |n| spec(SpecKind::Ping(PingSpec::new(n, 0, 0).unwrap()));
        assert_eq!(worst_case_packets(&ping(5)), 5);
        assert_eq!(worst_case_packets(&ping(PingSpec::MAX_COUNT)), 64);

        let trace = TracerouteSpec::new(TraceProtocol::Udp, 0, 0, 0, 0, 0, 0).unwrap();
        let full = spec(SpecKind::Traceroute(trace));
        assert_eq!(worst_case_packets(&full), 30 * 3);
        assert_eq!(
            worst_case_packets(&full.clone().with_max_packets(40).unwrap()),
            40
        );
        let biggest = TracerouteSpec::new(TraceProtocol::Icmp, 1, 64, 5, 0, 0, 0).unwrap();
        assert_eq!(
            worst_case_packets(&spec(SpecKind::Traceroute(biggest))),
            320
        );

        let pmtu = spec(SpecKind::Pmtu(
            PmtuSpec::new(0, TraceProtocol::Icmp).unwrap(),
        ));
        assert_eq!(worst_case_packets(&pmtu), 256);
        assert_eq!(worst_case_packets(&pmtu.with_max_packets(20).unwrap()), 20);
        let ext = spec(SpecKind::ExtHeaders(ExtHeaderSpec::new(vec![], 0).unwrap()));
        assert_eq!(worst_case_packets(&ext), 512);

        let dns = |t| {
            spec(SpecKind::Dns(
                DnsSpec::new("example.org", 0, t, true).unwrap(),
            ))
        };
        assert_eq!(worst_case_packets(&dns(DnsTransport::Udp)), 12);
        assert_eq!(worst_case_packets(&dns(DnsTransport::Tcp)), 11);
        assert_eq!(
            worst_case_packets(&spec(SpecKind::Tcp(TcpSpec::new(443).unwrap()))),
            10
        );
        let tls = TlsSpec::new(443, None, vec![]).unwrap();
        assert_eq!(worst_case_packets(&spec(SpecKind::Tls(tls))), 18);
        let quic = QuicSpec::new(443, None, vec![]).unwrap();
        assert_eq!(worst_case_packets(&spec(SpecKind::Quic(quic))), 16);

        let http = |url, body| spec(SpecKind::Http(HttpSpec::new(url, "GET", body).unwrap()));
        // 64 KiB default body: 27 ACKs; the largest (1 MiB) over TLS stays below 500.
        assert_eq!(
            worst_case_packets(&http("http://example.org/", 0)),
            10 + 2 + 27 + 2
        );
        let largest = worst_case_packets(&http("https://example.org/", HttpSpec::MAX_BODY));
        assert_eq!(largest, 10 + 8 + 2 + 430 + 2);

        let dual = |inner, port| {
            spec(SpecKind::DualStack(
                DualStackSpec::new(inner, port).unwrap(),
            ))
        };
        // The legs, plus the fault path's 40 when IPv6 fails and IPv4 works.
        assert_eq!(worst_case_packets(&dual(DualInner::Ping, 0)), 6 + 40);
        assert_eq!(worst_case_packets(&dual(DualInner::Tcp, 443)), 20 + 40);
        assert_eq!(
            worst_case_packets(&dual(DualInner::Http, 80)),
            2 * (10 + 2 + 27) + 40
        );
        // A spec budget bounds the legs and the trace together.
        let bounded = dual(DualInner::Ping, 0).with_max_packets(16).unwrap();
        assert_eq!(worst_case_packets(&bounded), 16);
        let tight = dual(DualInner::Ping, 0).with_max_packets(4).unwrap();
        assert_eq!(worst_case_packets(&tight), 4);
    }

    #[test]
    fn readiness_is_bounded_by_its_allowance() {
        let readiness = |mail, sub, max| {
            let kind = SpecKind::Readiness(ReadinessSpec::new("", "", mail, sub, max).unwrap());
            MeasurementSpec::new(
                Target::hostname("example.gov").unwrap(),
                Family::V6,
                Duration::from_secs(30),
                kind,
            )
            .unwrap()
        };
        let full = readiness(true, true, 32);
        assert_eq!(worst_case_packets(&full), READINESS_DEFAULT_PACKETS);
        // The spec's own bound wins, up to what every check could send at worst.
        assert_eq!(
            worst_case_packets(&full.clone().with_max_packets(1000).unwrap()),
            1000
        );
        let small = readiness(false, false, 0).with_max_packets(1024).unwrap();
        // The NAT64 discovery, the NS set and 16 servers twice, A and AAAA, four page
        // fetches per family.
        let own = 24 + 12 + 16 * 2 * 12 + 2 * 12 + 2 * 4 * readiness_fetch(READINESS_PAGE_BODY);
        assert_eq!(worst_case_packets(&small), own.min(1024));
        assert_eq!(worst_case_packets(&full.with_max_packets(40).unwrap()), 40);
    }

    #[test]
    fn the_default_budget_fits_every_single_measurement() {
        // The largest of all: the extension-header test without a max_packets bound.
        let ext = spec(SpecKind::ExtHeaders(ExtHeaderSpec::new(vec![], 0).unwrap()));
        assert!(worst_case_packets(&ext) <= DEFAULT_PACKETS_PER_MINUTE);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_refuses_then_refills() {
        let budget = PacketBudget::per_minute(600);
        assert_eq!(budget.try_take(500), Ok(()));
        assert_eq!(
            budget.try_take(200),
            Err(BudgetRefusal::Exhausted {
                needed: 200,
                available: 100,
                per_minute: 600
            })
        );
        // Nothing was taken by the refusal.
        assert_eq!(budget.available(), 100);
        assert!(matches!(
            budget.try_take(601),
            Err(BudgetRefusal::Never { .. })
        ));
        // 10 packets per second come back.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(budget.available(), 200);
        assert_eq!(budget.try_take(200), Ok(()));
        budget.refund(50);
        assert_eq!(budget.available(), 50);
        // Never more than one minute's worth, however long it waits.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(budget.available(), 600);
        budget.refund(600);
        assert_eq!(budget.available(), 600);
    }
}
