//! The readiness measurement (issue #20): how ready one domain is for IPv6, as NIST's USGv6
//! monitor checks it and beyond: its name servers (AAAA, answering over IPv6), its mail
//! exchangers (AAAA, port 25 reachable over IPv6), its web site (AAAA and A, HTTPS over each
//! family, same certificate and content), and whether the page's subresources load on an
//! IPv6-only network.
//!
//! Every step's failure is recorded in the result, never fatal. Name lookups go to the host's
//! own resolver, like the users of the probe's network; a lookup without a usable answer is
//! inconclusive, never "no". The steps share the spec's timeout (each gets its own share, see
//! [`share`]) and the packet allowance of [`crate::safety::readiness_allowance`]: a step is
//! charged its worst case before it runs, and a step that does not fit is skipped and says so.
//!
//! - `lookup`: DNS lookups and their classification.
//! - `names`: the DNS and mail checks.
//! - `web`: the page over both families, and its subresources over IPv6.
//! - `html`: the bounded scanner of the page's subresource hosts.
//!
//! `crate::render::readiness` prints a result.

mod html;
mod lookup;
mod names;
mod web;

use crate::context::{Context, failure};
use crate::safety::{READINESS_LOOKUP, readiness_allowance};
use lookup::Answer;
use sixmap_shared::measurement::{
    DnsSpec, DnsTransport, ErrorClass, MeasurementError, ReadinessResult, ReadinessSpec,
};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::time::Instant;

/// Why a step was skipped for the packet allowance.
const NO_BUDGET: &str = "not run: the measurement's packet allowance was spent";

/// Parts of the whole timeout by which the phases end: the web site's lookups first (they
/// decide the DNS64 prefix), then the DNS, mail and page checks side by side, and the
/// subresources in the rest.
const LOOKUPS_END: (u32, u32) = (15, 100);
const CHECKS_END: (u32, u32) = (60, 100);

pub async fn run(
    ctx: &Context<'_>,
    spec: &ReadinessSpec,
    domain: &str,
) -> Result<ReadinessResult, MeasurementError> {
    let start = Instant::now();
    let total = ctx.remaining();
    let at = |(part, whole): (u32, u32)| (start + total * part / whole).min(ctx.deadline);
    let (resolver, resolver_error) = match crate::dns::system_resolver().await {
        Ok(address) => (Some(address), None),
        Err(e) => (None, Some(e.message)),
    };
    let mut run = Run {
        ctx,
        resolver,
        resolver_error,
        allowance: AtomicU32::new(readiness_allowance(spec, ctx.max_packets)),
        dns64: None,
    };
    let host = spec.web_host().unwrap_or(domain).to_owned();
    let lookups = web::lookups(&run, &host, at(LOOKUPS_END)).await;
    run.dns64 = lookups.dns64;
    let checks_end = at(CHECKS_END);
    let (dns, mail, pages) = tokio::join!(
        names::dns(&run, domain, checks_end),
        async {
            if spec.check_mail() {
                Some(names::mail(&run, domain, checks_end).await)
            } else {
                None
            }
        },
        web::pages(&run, &lookups, spec.path(), checks_end),
    );
    let subresources = if spec.check_subresources() {
        Some(
            web::subresources(
                &run,
                &pages,
                usize::from(spec.max_subresource_hosts()),
                ctx.deadline,
            )
            .await,
        )
    } else {
        None
    };
    let result = ReadinessResult {
        resolver,
        dns64_prefix: run.dns64,
        dns,
        mail,
        web: web::readiness(lookups, &pages),
        subresources,
    };
    result.validate().map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("readiness produced an invalid result: {e}"),
        )
    })?;
    Ok(result)
}

/// What every step shares: the context, the host's resolver, the packet allowance left and
/// the network's DNS64 prefix once known.
struct Run<'a> {
    ctx: &'a Context<'a>,
    resolver: Option<IpAddr>,
    resolver_error: Option<String>,
    allowance: AtomicU32,
    dns64: Option<Ipv6Addr>,
}

impl Run<'_> {
    /// Takes `packets` from the allowance, or nothing and `false`.
    fn take(&self, packets: u32) -> bool {
        self.allowance
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(packets)
            })
            .is_ok()
    }

    /// Gives back what a step was charged but did not send (a lookup answered over UDP is
    /// one datagram; a page shorter than the cap needs fewer ACKs).
    fn refund(&self, packets: u32) {
        self.allowance.fetch_add(packets, Ordering::SeqCst);
    }

    /// Charges one lookup, runs it, and gives back what it did not send.
    async fn charged_lookup(
        &self,
        server: IpAddr,
        name: &str,
        qtype: u16,
        recursion_desired: bool,
        deadline: Instant,
    ) -> Answer {
        if !self.take(READINESS_LOOKUP) {
            return Answer::failed(NO_BUDGET);
        }
        let answer = lookup::ask(
            server,
            name,
            qtype,
            recursion_desired,
            deadline.min(self.ctx.deadline),
        )
        .await;
        if !answer.over_tcp {
            self.refund(READINESS_LOOKUP - 1);
        }
        answer
    }

    /// The context of one step: the measurement's, ending at `deadline` (or before).
    fn ctx_until(&self, deadline: Instant) -> Context<'_> {
        let mut ctx = *self.ctx;
        ctx.deadline = deadline.min(self.ctx.deadline);
        ctx
    }

    /// The address may be measured: the probe's target policy says so.
    fn allowed(&self, address: IpAddr) -> Result<(), String> {
        self.ctx
            .policy
            .check(address)
            .map_err(|v| format!("refused by the probe's target policy: {v}"))
    }

    /// One lookup through the host's resolver. Names the host's resolver may not be asked
    /// (private and special-use zones, as for DNS measurements with the system resolver)
    /// are refused: a page or a zone could otherwise make the probe look into the
    /// volunteer's own network.
    async fn lookup(&self, name: &str, qtype: u16, deadline: Instant) -> Answer {
        let Some(resolver) = self.resolver else {
            return Answer::failed(
                self.resolver_error
                    .clone()
                    .unwrap_or_else(|| "no resolver".into()),
            );
        };
        let question = DnsSpec::new(name, u32::from(lookup::TYPE_AAAA), DnsTransport::Udp, true)
            .map_err(|e| e.to_string())
            .and_then(|spec| {
                crate::dns::check_system_resolver_question(&spec).map_err(|e| e.message)
            });
        if let Err(why) = question {
            return Answer::failed(format!("not asked: {why}"));
        }
        self.charged_lookup(resolver, name, qtype, true, deadline)
            .await
    }
}

/// The end of one of `left` steps that still have to run before `end`: an equal share of
/// the time left, so a slow step cannot starve the ones after it.
fn share(end: Instant, left: usize) -> Instant {
    let now = Instant::now();
    let divisor = u32::try_from(left.max(1)).unwrap_or(u32::MAX);
    now + end.saturating_duration_since(now) / divisor
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn shares_split_the_time_left() {
        let now = Instant::now();
        let end = now + Duration::from_secs(12);
        assert_eq!(share(end, 4), now + Duration::from_secs(3));
        assert_eq!(share(end, 0), end);
        assert_eq!(share(now, 3), now);
    }

    #[tokio::test]
    async fn the_allowance_is_never_overdrawn() {
        let ctx = crate::context::for_test(None, None, Duration::from_secs(1));
        let run = Run {
            ctx: &ctx,
            resolver: None,
            resolver_error: Some("no resolv.conf".into()),
            allowance: AtomicU32::new(30),
            dns64: None,
        };
        assert!(run.take(12) && run.take(12));
        assert!(!run.take(12));
        assert!(run.take(6) && !run.take(1));
        // Without a resolver a lookup fails, inconclusively, naming why.
        let answer = run
            .lookup("example.org", lookup::TYPE_AAAA, Instant::now())
            .await;
        assert_eq!(
            answer.lookup.status,
            sixmap_shared::measurement::LookupStatus::Failed
        );
        assert_eq!(answer.lookup.detail.as_deref(), Some("no resolv.conf"));
    }

    #[tokio::test]
    async fn private_names_are_never_asked_of_the_hosts_resolver() {
        let ctx = crate::context::for_test(None, None, Duration::from_secs(1));
        let run = Run {
            ctx: &ctx,
            // Nothing listens there: a query sent would time out, not be refused by name.
            resolver: Some("::1".parse().unwrap()),
            resolver_error: None,
            allowance: AtomicU32::new(100),
            dns64: None,
        };
        for name in [
            "router.lan",
            "printer.home.arpa",
            "localhost",
            "nas.internal",
        ] {
            let answer = run.lookup(name, lookup::TYPE_AAAA, ctx.deadline).await;
            let detail = answer.lookup.detail.unwrap_or_default();
            assert!(detail.starts_with("not asked: "), "{name}: {detail}");
        }
        // Nothing was charged for them.
        assert_eq!(run.allowance.load(Ordering::SeqCst), 100);
    }
}
