//! Runs one measurement spec and describes what happened, success or failure.
//!
//! The probe's target policy is applied here, to literal targets and again to every address a
//! name resolves to, whatever the collector asked for.

use crate::context::{Context, Dispatched, failure};
use crate::ping::{self, PingError, SocketPreference};
use crate::rawnet::pacer::Pacer;
use crate::safety::{PacketBudget, worst_case_packets};
use crate::sock::source_address_for;
use crate::traceroute::stop_set::StopSet;
use sixmap_shared::measurement::{
    ErrorClass, Family, MeasurementError, MeasurementSpec, Outcome, SpecKind, Target,
};
use sixmap_shared::{ClockState, TargetPolicy, TaskId, UnixMicros};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A finished measurement before the session gives it its idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Produced {
    pub task_id: TaskId,
    pub started_at: UnixMicros,
    pub duration_us: u64,
    pub family_requested: Family,
    pub family_used: Option<Family>,
    pub source: Option<IpAddr>,
    pub destination: Option<IpAddr>,
    pub clock_state: ClockState,
    pub outcome: Outcome,
}

impl Produced {
    /// The result of a task the probe refused to run at all: it is reported like any other
    /// result, so the collector sees why nothing was measured.
    pub fn refused(task_id: TaskId, spec: &MeasurementSpec, error: MeasurementError) -> Self {
        Self::refused_as(task_id, spec.family, error)
    }

    /// [`Produced::refused`] for a task whose spec could not even be read (the family the
    /// collector asked for is then unknown and reported as IPv6).
    pub fn refused_as(task_id: TaskId, family: Family, error: MeasurementError) -> Self {
        Self {
            task_id,
            started_at: UnixMicros::now(),
            duration_us: 0,
            family_requested: family,
            family_used: None,
            source: None,
            destination: None,
            clock_state: crate::clock::clock_state(),
            outcome: Outcome::Failed(error),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub policy: TargetPolicy,
    pub icmp_socket: SocketPreference,
    /// PEM file of extra certificate authorities trusted for TLS, HTTPS and QUIC besides the
    /// system's (a lab or an enterprise CA).
    pub extra_ca_file: Option<PathBuf>,
    /// The probe-wide packet budget every measurement is charged against before it starts;
    /// `None` (the default) leaves only each kind's own bound, as for `sixmap-probe measure`,
    /// which the volunteer runs by hand.
    pub budget: Option<Arc<PacketBudget>>,
    /// A packets-per-second cap shared by the traceroutes this engine runs at the same time
    /// (`measure traceroute T1 T2 … --pps N`); `None` in the daemon, whose budget bounds them.
    pub pacer: Option<Arc<Pacer>>,
    /// The Doubletree stop set shared by the traceroutes this engine runs in one go
    /// (`measure traceroute T1 T2 …`); `None` in the daemon.
    pub stop_set: Option<Arc<StopSet>>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Engine {
    pub async fn run(&self, task_id: TaskId, spec: &MeasurementSpec) -> Produced {
        let started_at = UnixMicros::now();
        let clock = Instant::now();
        let mut produced = Produced {
            task_id,
            started_at,
            duration_us: 0,
            family_requested: spec.family,
            family_used: None,
            source: None,
            destination: None,
            clock_state: crate::clock::clock_state(),
            outcome: Outcome::Failed(failure(ErrorClass::Internal, "not run")),
        };
        // The probe's own safety checks, before anything is resolved or sent.
        let charged = match self.admit(spec) {
            Ok(charged) => charged,
            Err(refusal) => {
                produced.outcome = Outcome::Failed(refusal);
                produced.duration_us =
                    u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX);
                return produced;
            }
        };
        let deadline = tokio::time::Instant::now() + spec.timeout;
        // Modules stop at the deadline themselves; this bound only guards against one that
        // does not, with a little slack so their own partial results win.
        let bounded = tokio::time::timeout(
            spec.timeout + Duration::from_millis(500),
            self.measure(spec, deadline, &mut produced),
        )
        .await;
        produced.outcome = match bounded {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => Outcome::Failed(error),
            Err(_) => Outcome::Failed(failure(
                ErrorClass::Internal,
                format!(
                    "{} measurement overran its {} ms timeout",
                    spec.measurement_kind(),
                    spec.timeout.as_millis()
                ),
            )),
        };
        // Refused by the policy after DNS, or the name did not resolve: no packet went to the
        // target, so the budget gets its packets back.
        if let (Some(budget), Outcome::Failed(e)) = (&self.budget, &produced.outcome)
            && matches!(e.class, ErrorClass::Policy | ErrorClass::Resolution)
        {
            budget.refund(charged);
        }
        produced.duration_us = u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX);
        produced
    }

    /// Checks a literal target against the policy and charges the measurement's worst-case
    /// packet count to the budget; returns the packets charged. Host names are checked after
    /// resolution, in [`Engine::resolve`].
    pub fn admit(&self, spec: &MeasurementSpec) -> Result<u32, MeasurementError> {
        if let Target::Address(address) = spec.target {
            self.policy
                .check(address)
                .map_err(|violation| failure(ErrorClass::Policy, violation.to_string()))?;
        }
        let Some(budget) = &self.budget else {
            return Ok(0);
        };
        let needed = worst_case_packets(spec);
        budget.try_take(needed).map_err(|refusal| {
            failure(
                ErrorClass::Policy,
                format!("{} measurement refused: {refusal}", spec.measurement_kind()),
            )
        })?;
        Ok(needed)
    }

    async fn measure(
        &self,
        spec: &MeasurementSpec,
        deadline: tokio::time::Instant,
        produced: &mut Produced,
    ) -> Result<Outcome, MeasurementError> {
        let target_name = match &spec.target {
            Target::Hostname(name) => Some(name.as_str()),
            Target::Address(_) => None,
        };
        let mut ctx = Context {
            policy: self.policy,
            extra_ca_file: self.extra_ca_file.as_deref(),
            icmp_socket: self.icmp_socket,
            pacer: self.pacer.as_ref(),
            stop_set: self.stop_set.as_ref(),
            dispatch,
            deadline,
            max_packets: spec.max_packets,
            target_name,
            resolve_ns: None,
            source: None,
        };
        if let SpecKind::DualStack(dual) = &spec.kind {
            return boxed(|| crate::dualstack::run(&ctx, dual))
                .await
                .map(Outcome::DualStack);
        }
        if let SpecKind::Readiness(readiness) = &spec.kind {
            // The domain is looked up record by record by the measurement itself, through
            // the host's resolver; every address it contacts is checked against the policy.
            let Target::Hostname(domain) = &spec.target else {
                return Err(failure(
                    ErrorClass::Internal,
                    "a readiness spec without a domain name",
                ));
            };
            let ran = boxed(|| crate::readiness::run(&ctx, readiness, domain)).await;
            // Charged the whole allowance at admission: what the steps did not send (a
            // domain with two name servers, not sixteen; answers over UDP) comes back.
            if let Some(budget) = &self.budget {
                budget.refund(ran.unspent);
            }
            return ran
                .result
                .map(|result| Outcome::Readiness(Box::new(result)));
        }
        let destination = match &spec.kind {
            // The host's own resolver, from its configuration: the target is only the name
            // asked about, so it is neither resolved nor checked against the target policy
            // (the collector did not choose this address, and the host already sends every
            // lookup there). The question is checked instead: the collector chose it, and
            // it must not reach into the volunteer's own network.
            SpecKind::Dns(dns) if dns.system_resolver() => {
                crate::dns::check_system_resolver_question(dns)?;
                crate::dns::system_resolver().await?
            }
            _ => {
                let resolving = Instant::now();
                let destination = self.resolve(&spec.target, spec.family).await?;
                if target_name.is_some() {
                    ctx.resolve_ns = Some(nanos(resolving.elapsed()));
                }
                destination
            }
        };
        produced.destination = Some(destination);
        produced.family_used = Some(Family::of(destination));
        produced.source = source_address_for(destination).ok();
        ctx.source = produced.source.map(|source| (destination, source));
        run_kind(&ctx, &spec.kind, destination).await
    }

    /// The address to measure, refused if the policy forbids it.
    pub async fn resolve(
        &self,
        target: &Target,
        family: Family,
    ) -> Result<IpAddr, MeasurementError> {
        let address = match target {
            Target::Address(address) => *address,
            Target::Hostname(name) => tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|e| failure(ErrorClass::Resolution, format!("{name}: {e}")))?
                .map(|socket| canonical(socket.ip()))
                .find(|ip| Family::of(*ip) == family)
                .ok_or_else(|| {
                    failure(
                        ErrorClass::Resolution,
                        format!("{name} has no {family:?} address"),
                    )
                })?,
        };
        self.policy
            .check(address)
            .map_err(|violation| failure(ErrorClass::Policy, violation.to_string()))?;
        Ok(address)
    }
}

/// The context's [`Dispatch`](crate::context::Dispatch): how a dual-stack leg runs its inner kind.
fn dispatch<'c>(ctx: &'c Context<'c>, kind: &'c SpecKind, destination: IpAddr) -> Dispatched<'c> {
    boxed(|| run_kind(ctx, kind, destination))
}

/// Runs one kind against an address already resolved and allowed by the policy.
///
/// Each kind's future is boxed: unboxed, every measurement's future was as large as the
/// largest kind's (66 KB), moved on the stack and allocated with
/// every task, so a one-shot traceroute spent more time faulting in stack pages than
/// probing.
async fn run_kind(
    ctx: &Context<'_>,
    kind: &SpecKind,
    destination: IpAddr,
) -> Result<Outcome, MeasurementError> {
    match kind {
        SpecKind::Ping(ping_spec) => {
            let remaining = ctx.remaining();
            match boxed(|| ping::ping(destination, ping_spec, remaining, ctx.icmp_socket)).await {
                Ok(result) => Ok(Outcome::Ping(result)),
                Err(e @ (PingError::NoSocket { .. } | PingError::Socket { .. })) => {
                    Err(failure(ErrorClass::Permission, e.to_string()))
                }
                Err(e @ PingError::Send(_)) => Err(failure(ErrorClass::Network, e.to_string())),
                Err(e @ PingError::Io(_)) => Err(failure(ErrorClass::Internal, e.to_string())),
            }
        }
        SpecKind::Traceroute(spec) => boxed(|| crate::traceroute::run(ctx, spec, destination))
            .await
            .map(Outcome::Traceroute),
        SpecKind::Dns(spec) => boxed(|| crate::dns::run(ctx, spec, destination))
            .await
            .map(Outcome::Dns),
        SpecKind::Tcp(spec) => boxed(|| crate::tcp::run(ctx, spec, destination))
            .await
            .map(Outcome::Tcp),
        SpecKind::Tls(spec) => boxed(|| crate::tls::run(ctx, spec, destination))
            .await
            .map(Outcome::Tls),
        SpecKind::Http(spec) => boxed(|| crate::http::run(ctx, spec, destination))
            .await
            .map(Outcome::Http),
        SpecKind::Quic(spec) => boxed(|| crate::quic::run(ctx, spec, destination))
            .await
            .map(Outcome::Quic),
        SpecKind::Pmtu(spec) => boxed(|| crate::pmtu::run(ctx, spec, destination))
            .await
            .map(Outcome::Pmtu),
        SpecKind::ExtHeaders(spec) => boxed(|| crate::exthdr::run(ctx, spec, destination))
            .await
            .map(Outcome::ExtHeaders),
        SpecKind::DualStack(_) => Err(failure(
            ErrorClass::Unsupported,
            "a dual-stack measurement cannot be nested",
        )),
        SpecKind::Readiness(_) => Err(failure(
            ErrorClass::Unsupported,
            "a readiness measurement cannot be nested",
        )),
    }
}

/// Boxes the future `make` builds, in a frame of its own. `Box::pin(run(..))` builds the future
/// in the caller's frame first, so a caller choosing among kinds reserved (and, the frame
/// being larger than a page, touched page by page) room for the largest kind's future on
/// every call: 36 KB of stack faulted in for a traceroute of a few hundred bytes. The probe's
/// `main` boxes its commands' futures the same way.
#[inline(never)]
pub fn boxed<F: Future>(make: impl FnOnce() -> F) -> std::pin::Pin<Box<F>> {
    Box::pin(make())
}

/// Folds IPv4-mapped IPv6 addresses to IPv4 so the family is judged by what goes on the wire.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Global and ULA addresses configured on this host, for the hello (link-local and loopback
/// say nothing about the probe's network). Read from /proc; empty if unavailable.
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(text) = std::fs::read_to_string("/proc/net/if_inet6") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(Ipv6Addr::from)
        .filter(|a| !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80)
        .map(IpAddr::V6)
        .take(sixmap_shared::session::MAX_LOCAL_ADDRESSES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::PingSpec;
    use std::time::Duration;

    fn spec(target: Target) -> MeasurementSpec {
        MeasurementSpec::new(
            target,
            Family::V6,
            Duration::from_secs(2),
            SpecKind::Ping(PingSpec::new(1, 0, 0).unwrap()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn policy_refuses_before_any_packet() {
        let engine = Engine::default();
        let task = TaskId::new(1).unwrap();
        let produced = engine
            .run(task, &spec(Target::Address("::1".parse().unwrap())))
            .await;
        match produced.outcome {
            Outcome::Failed(e) => {
                assert_eq!(e.class, ErrorClass::Policy);
                assert!(e.message.contains("::1"), "{}", e.message);
            }
            other => panic!("expected a policy failure, got {other:?}"),
        }
        // `localhost` resolves to ::1: the policy is checked again after resolution.
        let produced = engine
            .run(task, &spec(Target::hostname("localhost").unwrap()))
            .await;
        assert!(
            matches!(&produced.outcome, Outcome::Failed(e) if e.class == ErrorClass::Policy || e.class == ErrorClass::Resolution),
            "{:?}",
            produced.outcome
        );
    }

    fn ping(target: Target, count: u32) -> MeasurementSpec {
        MeasurementSpec::new(
            target,
            Family::V6,
            Duration::from_secs(2),
            SpecKind::Ping(PingSpec::new(count, 0, 0).unwrap()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_packet_budget_is_charged_before_and_refunded_when_nothing_was_sent() {
        let budget = Arc::new(PacketBudget::per_minute(10));
        let engine = Engine {
            budget: Some(budget.clone()),
            ..Engine::default()
        };
        let task = TaskId::new(1).unwrap();
        let class = |p: &Produced| match &p.outcome {
            Outcome::Failed(e) => (e.class, e.message.clone()),
            other => panic!("expected a failure, got {other:?}"),
        };
        // A refused literal costs nothing.
        let refused = engine
            .run(task, &ping(Target::Address("::1".parse().unwrap()), 8))
            .await;
        assert_eq!(class(&refused).0, ErrorClass::Policy);
        assert_eq!(budget.available(), 10);
        // A name that does not resolve sent nothing to a target: its charge comes back.
        let unresolved = engine
            .run(
                task,
                &ping(Target::hostname("sixmap-test.invalid").unwrap(), 8),
            )
            .await;
        assert_eq!(class(&unresolved).0, ErrorClass::Resolution);
        assert_eq!(budget.available(), 10);
        // Over budget: refused before resolution or any packet, as a policy failure.
        let (c, message) = class(
            &engine
                .run(
                    task,
                    &ping(Target::Address("2001:4860::1".parse().unwrap()), 11),
                )
                .await,
        );
        assert_eq!(c, ErrorClass::Policy);
        assert!(message.contains("packet_budget_per_minute"), "{message}");
        budget.try_take(5).unwrap();
        let (c, message) = class(
            &engine
                .run(
                    task,
                    &ping(Target::Address("2001:4860::1".parse().unwrap()), 8),
                )
                .await,
        );
        assert_eq!(c, ErrorClass::Policy);
        assert!(message.contains("packet budget exhausted"), "{message}");
        assert!(message.starts_with("ping measurement refused"), "{message}");
    }

    /// A readiness measurement is charged its whole allowance and gets back what it did not
    /// send: here every name is one the host's resolver is never asked (`.invalid`), so at
    /// most the NAT64 prefix discovery is spent.
    #[tokio::test]
    async fn a_readiness_measurement_gives_back_what_it_did_not_send() {
        let budget = Arc::new(PacketBudget::per_minute(1000));
        let engine = Engine {
            budget: Some(budget.clone()),
            ..Engine::default()
        };
        let spec = MeasurementSpec::new(
            Target::hostname("portal.gov.invalid").unwrap(),
            Family::V6,
            Duration::from_secs(2),
            SpecKind::Readiness(
                sixmap_shared::measurement::ReadinessSpec::new("", "", true, true, 0).unwrap(),
            ),
        )
        .unwrap();
        assert_eq!(
            crate::safety::worst_case_packets(&spec),
            crate::safety::READINESS_DEFAULT_PACKETS
        );
        let produced = engine.run(TaskId::new(1).unwrap(), &spec).await;
        assert!(
            matches!(produced.outcome, Outcome::Readiness(_)),
            "{:?}",
            produced.outcome
        );
        let available = budget.available();
        assert!(
            available >= 1000 - crate::safety::READINESS_DISCOVERY,
            "{available} packets left of 1000"
        );
    }

    #[test]
    fn mapped_addresses_count_as_ipv4() {
        assert_eq!(
            canonical("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
