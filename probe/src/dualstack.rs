//! The paired dual-stack measurement: the same name over IPv6 and IPv4 at the same moment.
//!
//! The name is resolved once to both families (the system resolver, as applications do),
//! each address is checked against the target policy, then the inner measurement runs over
//! both families concurrently, so both legs see the same network conditions. From the legs
//! come what a Happy Eyeballs (RFC 8305) client would have picked and, for ping, path lengths.
//!
//! When IPv6 fails on the network while IPv4 works, the IPv6 path is traced right after
//! (`faultpath`, the inner measurement's protocol) for the collector's fault attribution;
//! the legs end up to a third of the timeout early (at most `faultpath::TIME`) to leave it
//! that time.
//!
//! What a user of a translated network gets is said too: an AAAA that DNS64 synthesised
//! (RFC 6147: the IPv6 leg then reaches an IPv4-only service through NAT64) comes with its NAT64
//! prefix, and an IPv4 leg sent from a CLAT address (464XLAT) is flagged.

use crate::context::{Context, failure};
use crate::sock::source_address_for;
use sixmap_shared::measurement::{
    ConnectOutcome, DualInner, DualLeg, DualStackResult, DualStackSpec, ErrorClass, Family,
    HttpSpec, MeasurementError, Outcome, PingSpec, SpecKind, TcpSpec, TraceProtocol,
    happy_eyeballs_choice, hops_from_reply_hop_limit,
};
use sixmap_shared::nat64::Nat64Prefix;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Bound on the RFC 7050 lookup that confirms a synthesised AAAA; it runs beside the legs.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Spacing of the ping inner measurement's echo requests (their number is
/// [`crate::safety::dual_ping_count`]): a minimum RTT without making the pair slow.
const PING_INTERVAL_MS: u32 = 200;

/// The time both legs keep, whatever the fault-path trace would like (in [`run`]).
const LEG_FLOOR: Duration = Duration::from_secs(6);

pub async fn run(
    ctx: &Context<'_>,
    spec: &DualStackSpec,
) -> Result<DualStackResult, MeasurementError> {
    let name = ctx.target_name.ok_or_else(|| {
        failure(
            ErrorClass::Internal,
            "a dual-stack measurement needs a host name",
        )
    })?;
    let resolving = Instant::now();
    let addresses = resolve(name).await?;
    let resolve_ns = nanos(resolving.elapsed());
    let kind = inner_kind(spec, name, ctx.max_packets)?;
    // A failing leg may wait until its deadline (a ping's unanswered echoes): the legs end
    // early enough to leave the fault-path trace its time, at most a third of what is left,
    // and never below LEG_FLOOR: a slow but working IPv6 handshake (TCP retransmits its SYN
    // after 1 s and 3 s) must not be cut into a failure to make room for the trace.
    let reserve = crate::faultpath::TIME
        .min(ctx.remaining() / 3)
        .min(ctx.remaining().saturating_sub(LEG_FLOOR));
    let leg_ctx = Context {
        resolve_ns: Some(resolve_ns),
        deadline: ctx.deadline.checked_sub(reserve).unwrap_or(ctx.deadline),
        ..*ctx
    };
    // An AAAA that embeds one of the name's A answers may be a network-specific NAT64
    // prefix's synthesis: the translator would deliver the IPv6 leg to that IPv4 address, so
    // the policy judges it too (a private A record is refused over IPv6 as over IPv4).
    let embedded = match addresses.v6 {
        Some(IpAddr::V6(v6)) => embedded_answer(v6, &addresses.a_answers).map(IpAddr::V4),
        _ => None,
    };
    let discovery_timeout = DISCOVERY_TIMEOUT.min(ctx.remaining());
    let (v6, v4, v6_nat64_prefix) = tokio::join!(
        leg(&leg_ctx, &kind, name, Family::V6, addresses.v6, embedded),
        leg(&leg_ctx, &kind, name, Family::V4, addresses.v4, None),
        synthesis_prefix(addresses.v6, &addresses.a_answers, discovery_timeout),
    );
    let v4_via_clat = matches!(v4.source, Some(IpAddr::V4(source))
        if crate::selftest::has_clat(&[source], &[]));
    // IPv6 broken where IPv4 works: trace the IPv6 path so the collector can say where it
    // breaks, with the inner measurement's protocol (a filter may drop only that).
    let v6_fault_path = match fault_destination(&v6, &v4) {
        Some(destination) => {
            let (protocol, port) = match spec.inner() {
                DualInner::Ping => (TraceProtocol::Icmp, 0),
                DualInner::Tcp | DualInner::Http => (TraceProtocol::TcpSyn, spec.port()),
            };
            let legs = crate::safety::dual_legs_packets(spec, ctx.max_packets);
            let packets = crate::safety::dual_fault_packets(ctx.max_packets, legs);
            crate::faultpath::trace(ctx, destination, protocol, port, packets).await
        }
        None => None,
    };
    let result = DualStackResult {
        happy_eyeballs_choice: happy_eyeballs_choice(
            success_time(&v6.outcome),
            success_time(&v4.outcome),
        ),
        v6_hops: hops(&v6.outcome),
        v4_hops: hops(&v4.outcome),
        v6_nat64_prefix,
        v4_via_clat,
        v6_fault_path,
        v6: Box::new(v6),
        v4: Box::new(v4),
    };
    result.validate().map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("dual_stack produced an invalid result: {e}"),
        )
    })?;
    Ok(result)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The first address of each family the name resolves to, and every IPv4 answer (to
/// recognise a synthesised AAAA by the address it embeds).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Addresses {
    v6: Option<IpAddr>,
    v4: Option<IpAddr>,
    a_answers: Vec<Ipv4Addr>,
}

async fn resolve(name: &str) -> Result<Addresses, MeasurementError> {
    let found = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|e| failure(ErrorClass::Resolution, format!("{name}: {e}")))?;
    let mut addresses = Addresses {
        v6: None,
        v4: None,
        a_answers: Vec::new(),
    };
    for socket in found {
        // IPv4-mapped answers count as IPv4: that is what goes on the wire.
        let ip = match socket.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V6(_) => addresses.v6 = addresses.v6.or(Some(ip)),
            IpAddr::V4(v4) => {
                addresses.v4 = addresses.v4.or(Some(ip));
                if !addresses.a_answers.contains(&v4) {
                    addresses.a_answers.push(v4);
                }
            }
        }
    }
    if addresses.v6.is_none() && addresses.v4.is_none() {
        return Err(failure(
            ErrorClass::Resolution,
            format!("{name} has neither an AAAA nor an A record"),
        ));
    }
    Ok(addresses)
}

/// The NAT64 prefix the v6 leg's address was synthesised under, if it was. An address under
/// the well-known prefix is one by definition. Otherwise a synthesised AAAA embeds one of the
/// name's A answers (DNS64 passes the A records through) at one of RFC 6052's positions;
/// only such an address is checked against the prefix the resolver reveals for
/// ipv4only.arpa (RFC 7050), so on ordinary networks no extra lookup is made.
pub(crate) async fn synthesis_prefix(
    v6: Option<IpAddr>,
    a_answers: &[Ipv4Addr],
    timeout: Duration,
) -> Option<Nat64Prefix> {
    let Some(IpAddr::V6(v6)) = v6 else {
        return None;
    };
    if Nat64Prefix::WELL_KNOWN.contains(v6) {
        return Some(Nat64Prefix::WELL_KNOWN);
    }
    embedded_answer(v6, a_answers)?;
    let discovered = tokio::time::timeout(timeout, crate::selftest::discover_nat64_prefix())
        .await
        .ok()
        .flatten()?;
    // The network's prefix must place one of the name's A answers where this address has it.
    discovered
        .extract(v6)
        .is_some_and(|v4| a_answers.contains(&v4))
        .then_some(discovered)
}

/// The A answer `address` embeds at one of RFC 6052's positions, if any: what a translator
/// would deliver the IPv6 leg to, were `address` a synthesis.
fn embedded_answer(address: Ipv6Addr, answers: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    Nat64Prefix::discover(address, answers)?.extract(address)
}

/// The measurement each leg runs.
fn inner_kind(
    spec: &DualStackSpec,
    name: &str,
    max_packets: Option<u16>,
) -> Result<SpecKind, MeasurementError> {
    let invalid = |e: sixmap_shared::measurement::SpecError| {
        failure(ErrorClass::Internal, format!("inner measurement: {e}"))
    };
    Ok(match spec.inner() {
        DualInner::Ping => {
            let count = crate::safety::dual_ping_count(max_packets);
            SpecKind::Ping(PingSpec::new(count, PING_INTERVAL_MS, 0).map_err(invalid)?)
        }
        DualInner::Tcp => SpecKind::Tcp(TcpSpec::new(u32::from(spec.port())).map_err(invalid)?),
        DualInner::Http => SpecKind::Http(
            HttpSpec::new(&format!("http://{name}:{}/", spec.port()), "GET", 0).map_err(invalid)?,
        ),
    })
}

/// One family's half: policy check (of the address, and of `embedded`, where a translator
/// may deliver it), then the inner measurement through the context's dispatch.
async fn leg(
    ctx: &Context<'_>,
    kind: &SpecKind,
    name: &str,
    family: Family,
    address: Option<IpAddr>,
    embedded: Option<IpAddr>,
) -> DualLeg {
    let started = Instant::now();
    let mut leg = DualLeg {
        source: None,
        destination: address,
        duration_us: 0,
        outcome: Outcome::Failed(failure(ErrorClass::Internal, "not run")),
    };
    leg.outcome = match address {
        None => Outcome::Failed(failure(
            ErrorClass::Resolution,
            format!(
                "{name} has no {} record",
                match family {
                    Family::V6 => "AAAA",
                    Family::V4 => "A",
                }
            ),
        )),
        Some(address) => match ctx
            .policy
            .check(address)
            .and_then(|()| embedded.map_or(Ok(()), |e| ctx.policy.check(e)))
        {
            Err(violation) => Outcome::Failed(failure(ErrorClass::Policy, violation.to_string())),
            Ok(()) => {
                leg.source = source_address_for(address).ok();
                (ctx.dispatch)(ctx, kind, address)
                    .await
                    .unwrap_or_else(Outcome::Failed)
            }
        },
    };
    leg.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    leg
}

/// How long the leg took to succeed, in the sense Happy Eyeballs races on: the TCP handshake
/// (tcp, http), or for ping the fastest echo. `None` when the leg did not work.
fn success_time(outcome: &Outcome) -> Option<Duration> {
    match outcome {
        Outcome::Tcp(r) if r.outcome == ConnectOutcome::Connected => {
            r.connect_ns.map(Duration::from_nanos)
        }
        Outcome::Http(r) if r.connect == ConnectOutcome::Connected => {
            r.connect_ns.map(Duration::from_nanos)
        }
        Outcome::Ping(r) => r.min_rtt(),
        _ => None,
    }
}

/// Where to trace the IPv6 path: the v6 leg's destination, when IPv6 failed there on the
/// network while IPv4 worked (what the collector accepts a fault path with).
fn fault_destination(v6: &DualLeg, v4: &DualLeg) -> Option<IpAddr> {
    v6.destination
        .filter(|_| v6_fault(&v6.outcome, &v4.outcome))
}

/// Whether the IPv6 leg failed on the network while the IPv4 leg reached its destination:
/// what a fault path is traced for. A v6 leg that never ran (no AAAA, refused by the policy)
/// has no path to trace.
fn v6_fault(v6: &Outcome, v4: &Outcome) -> bool {
    let v6_ran = match v6 {
        Outcome::Failed(e) => e.class == ErrorClass::Network,
        _ => true,
    };
    v6_ran && !v6.reached_destination() && v4.reached_destination()
}

/// Path length from the hop limit of the first echo reply.
fn hops(outcome: &Outcome) -> Option<u8> {
    let Outcome::Ping(r) = outcome else {
        return None;
    };
    r.replies
        .iter()
        .find(|reply| !reply.duplicate)
        .and_then(|reply| reply.hop_limit)
        .and_then(hops_from_reply_hop_limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::measurement::{
        IcmpSocketKind, PingReply, PingResult, TcpResult, TimestampSource,
    };

    fn tcp(outcome: ConnectOutcome, ms: u64) -> Outcome {
        Outcome::Tcp(TcpResult {
            port: 80,
            outcome,
            connect_ns: Some(ms * 1_000_000),
            icmp_error: None,
        })
    }

    #[test]
    fn a_fault_path_is_traced_only_when_v6_fails_on_the_network_and_v4_works() {
        let connected = tcp(ConnectOutcome::Connected, 3);
        let timed_out = tcp(ConnectOutcome::Timeout, 3);
        assert!(v6_fault(&timed_out, &connected));
        assert!(!v6_fault(&connected, &connected));
        assert!(!v6_fault(&timed_out, &timed_out));
        let network = Outcome::Failed(failure(ErrorClass::Network, "unreachable"));
        assert!(v6_fault(&network, &connected));
        let no_aaaa = Outcome::Failed(failure(ErrorClass::Resolution, "no AAAA"));
        assert!(!v6_fault(&no_aaaa, &connected));
        let refused = Outcome::Failed(failure(ErrorClass::Policy, "private"));
        assert!(!v6_fault(&refused, &connected));
    }

    /// Every pair of legs the probe can produce: where it traces a fault path, the result
    /// passes the collector's wire decoder (which refuses a path matching no failure).
    #[test]
    fn every_fault_path_the_probe_traces_is_accepted_by_the_decoder() {
        use sixmap_shared::ids::{ResultKey, TaskId};
        use sixmap_shared::measurement::{
            ClockInfo, ClockState, FaultPath, MeasurementResult, PathHop,
        };
        let ping = |received: u16| {
            Outcome::Ping(PingResult {
                sent: 1,
                received,
                replies: (0..received)
                    .map(|sequence| PingReply {
                        sequence,
                        rtt_ns: 1_000_000,
                        hop_limit: Some(60),
                        duplicate: false,
                        from: "2001:db8:80::1".parse().unwrap(),
                    })
                    .collect(),
                timestamp_source: TimestampSource::Kernel,
                socket_kind: IcmpSocketKind::Datagram,
                errors: vec![],
            })
        };
        let outcomes = || {
            vec![
                ping(0),
                ping(1),
                tcp(ConnectOutcome::Connected, 3),
                tcp(ConnectOutcome::Refused, 3),
                tcp(ConnectOutcome::Timeout, 3),
                tcp(ConnectOutcome::Unreachable, 3),
                Outcome::Failed(failure(ErrorClass::Network, "unreachable")),
                Outcome::Failed(failure(ErrorClass::Resolution, "no AAAA")),
                Outcome::Failed(failure(ErrorClass::Policy, "private")),
            ]
        };
        let leg = |destination: Option<&str>, outcome| DualLeg {
            source: None,
            destination: destination.map(|d| d.parse().unwrap()),
            duration_us: 1,
            outcome,
        };
        let mut traced = 0;
        for v6 in outcomes() {
            for v4 in outcomes() {
                for v6_destination in [Some("2001:db8:80::1"), None] {
                    let v6 = leg(v6_destination, v6.clone());
                    let v4 = leg(Some("192.0.2.80"), v4.clone());
                    let Some(destination) = fault_destination(&v6, &v4) else {
                        continue;
                    };
                    traced += 1;
                    assert_eq!(Some(destination), v6.destination);
                    let dual = DualStackResult {
                        v6: Box::new(v6),
                        v4: Box::new(v4),
                        happy_eyeballs_choice: Some(Family::V4),
                        v6_hops: None,
                        v4_hops: None,
                        v6_nat64_prefix: None,
                        v4_via_clat: false,
                        v6_fault_path: Some(FaultPath {
                            hops: vec![PathHop {
                                hop_limit: 1,
                                address: "2001:db8:1::1".parse().unwrap(),
                            }],
                            probed_up_to: 4,
                            reached_destination: false,
                            packets_sent: 8,
                        }),
                    };
                    let result = MeasurementResult {
                        key: ResultKey {
                            probe_id: "0a0b0c0d0e0f1011".parse().unwrap(),
                            boot_epoch: 1,
                            sequence: 1,
                        },
                        task_id: TaskId::new(7).unwrap(),
                        started_at: sixmap_shared::UnixMicros(1_700_000_000_000_000),
                        duration_us: 5,
                        family_requested: Family::V6,
                        family_used: Some(Family::V6),
                        source: None,
                        destination: None,
                        software_version: "0.1.0".into(),
                        clock: ClockInfo {
                            state: ClockState::Synchronized,
                            offset_us: None,
                        },
                        outcome: Outcome::DualStack(dual),
                    };
                    let wire = sixmap_proto::encode::result(&result);
                    let decoded = sixmap_proto::decode::result(&wire)
                        .unwrap_or_else(|e| panic!("{e}: {:?}", result.outcome));
                    assert_eq!(decoded, result);
                }
            }
        }
        // IPv6 failing on the network (4 ways) while IPv4 reached (3 ways), towards an address.
        assert_eq!(traced, 12);
    }

    #[test]
    fn only_working_legs_have_a_time() {
        assert_eq!(
            success_time(&tcp(ConnectOutcome::Connected, 3)),
            Some(Duration::from_millis(3))
        );
        assert_eq!(success_time(&tcp(ConnectOutcome::Refused, 3)), None);
        assert_eq!(
            success_time(&Outcome::Failed(failure(ErrorClass::Resolution, "x"))),
            None
        );
    }

    #[test]
    fn ping_legs_give_time_and_hops() {
        let reply = |sequence, rtt_ns, hop_limit, duplicate| PingReply {
            sequence,
            rtt_ns,
            hop_limit: Some(hop_limit),
            duplicate,
            from: "2001:db8::1".parse().unwrap(),
        };
        let outcome = Outcome::Ping(PingResult {
            sent: 2,
            received: 2,
            replies: vec![
                reply(0, 5_000_000, 57, false),
                reply(0, 1_000, 57, true),
                reply(1, 4_000_000, 57, false),
            ],
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Datagram,
            errors: vec![],
        });
        assert_eq!(success_time(&outcome), Some(Duration::from_millis(4)));
        assert_eq!(hops(&outcome), Some(8));
        assert_eq!(hops(&tcp(ConnectOutcome::Connected, 1)), None);
    }

    #[test]
    fn inner_specs_follow_the_spec_and_budget() {
        let ping = DualStackSpec::new(DualInner::Ping, 0).unwrap();
        let SpecKind::Ping(p) = inner_kind(&ping, "dual.lab", Some(2)).unwrap() else {
            panic!("not ping");
        };
        assert_eq!(p.count(), 1);
        let http = DualStackSpec::new(DualInner::Http, 8080).unwrap();
        let SpecKind::Http(h) = inner_kind(&http, "dual.lab", None).unwrap() else {
            panic!("not http");
        };
        assert_eq!(h.url().to_string(), "http://dual.lab:8080/");
        let tcp = DualStackSpec::new(DualInner::Tcp, 0).unwrap();
        assert_eq!(
            inner_kind(&tcp, "dual.lab", None).unwrap(),
            SpecKind::Tcp(TcpSpec::new(80).unwrap())
        );
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn synthesised_addresses_embed_an_a_answer_at_an_rfc_6052_position() {
        let answers = [Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(192, 0, 2, 1)];
        let embedded = |a: &str| embedded_answer(v6(a), &answers);
        assert_eq!(embedded("2001:db8:64::c633:6407"), Some(answers[0]));
        assert_eq!(embedded("2001:db8:64::192.0.2.1"), Some(answers[1]));
        // Under a /48 the address is split around bits 64-71.
        assert_eq!(embedded("2001:db8:122:c000:2:100::"), Some(answers[1]));
        assert_eq!(embedded("2001:db8:64::c633:6408"), None);
        assert_eq!(embedded_answer(v6("2001:db8:64::c633:6407"), &[]), None);
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn the_well_known_prefix_is_a_translation_without_a_lookup() {
        let synthesised = IpAddr::V6(v6("64:ff9b::c633:6407"));
        assert_eq!(
            synthesis_prefix(Some(synthesised), &[], SECOND).await,
            Some(Nat64Prefix::WELL_KNOWN)
        );
        // An ordinary AAAA that embeds none of the A answers is not looked into further.
        let native = IpAddr::V6(v6("2001:db8:1::2"));
        assert_eq!(
            synthesis_prefix(Some(native), &[Ipv4Addr::new(198, 51, 100, 7)], SECOND).await,
            None
        );
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(synthesis_prefix(Some(v4), &[], SECOND).await, None);
        assert_eq!(synthesis_prefix(None, &[], SECOND).await, None);
    }

    #[tokio::test]
    async fn localhost_legs_are_refused_by_the_policy() {
        let ctx = crate::context::for_test(None, Some("localhost"), Duration::from_secs(2));
        let spec = DualStackSpec::new(DualInner::Tcp, 80).unwrap();
        let result = run(&ctx, &spec).await.unwrap();
        for leg in [&result.v6, &result.v4] {
            assert!(
                matches!(&leg.outcome, Outcome::Failed(e) if matches!(e.class, ErrorClass::Policy | ErrorClass::Resolution)),
                "{leg:?}"
            );
        }
        assert_eq!(result.happy_eyeballs_choice, None);
        assert_eq!((result.v6_nat64_prefix, result.v4_via_clat), (None, false));
        assert!(crate::render::dualstack(&result).contains("happy eyeballs would use: neither"));
    }

    /// Behind a network-specific NAT64 prefix from ordinary global space, an AAAA embedding a
    /// private A answer would be translated to that private address: the IPv6 leg is refused
    /// as the IPv4 one is, without being sent.
    #[tokio::test]
    async fn a_synthesis_of_a_private_a_record_is_refused_over_ipv6_too() {
        let ctx = crate::context::for_test(None, Some("portal.example"), Duration::from_secs(2));
        let kind = SpecKind::Tcp(TcpSpec::new(80).unwrap());
        let synthesised = IpAddr::V6(v6("2a00:1450:4001::c0a8:101"));
        let a_answer = [Ipv4Addr::new(192, 168, 1, 1)];
        let embedded = embedded_answer(v6("2a00:1450:4001::c0a8:101"), &a_answer).map(IpAddr::V4);
        assert_eq!(embedded, Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))));
        assert!(
            ctx.policy.check(synthesised).is_ok(),
            "a global address by itself"
        );
        let leg = leg(
            &ctx,
            &kind,
            "portal.example",
            Family::V6,
            Some(synthesised),
            embedded,
        )
        .await;
        assert!(
            matches!(&leg.outcome, Outcome::Failed(e) if e.class == ErrorClass::Policy),
            "{leg:?}"
        );
        assert_eq!(leg.source, None, "nothing was sent");
    }
}
