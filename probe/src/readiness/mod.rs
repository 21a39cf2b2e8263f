//! The readiness measurement (issue #20): how ready one domain is for IPv6, as NIST's USGv6
//! monitor checks it and beyond: its name servers (AAAA, answering over IPv6), its mail
//! exchangers (AAAA, port 25 reachable over IPv6), its web site (AAAA and A, HTTPS over each
//! family, same certificate and content), and whether the page's subresources load on an
//! IPv6-only network.
//!
//! Every step's failure is recorded in the result, never fatal. Name lookups go to the host's
//! own resolver, like the users of the probe's network; a lookup without a usable answer is
//! inconclusive, never "no". Behind DNS64 that resolver makes up AAAA records for IPv4-only
//! names: the network's NAT64 prefix (RFC 7050, [`crate::nat64_cache`]) is known before any
//! answer is judged, and an AAAA under it or under `64:ff9b::/96` counts as absent, for every
//! name (name servers, mail exchangers, the web host, subresource hosts). The steps share the spec's timeout (each gets its own share, see
//! [`share`]) and the packet allowance of [`crate::safety::readiness_allowance`]: a step is
//! charged its worst case before it runs, and a step that does not fit is skipped and says so.
//! What a step was charged but did not send goes back to the allowance, and what is left of
//! the allowance at the end back to the probe's budget ([`Ran::unspent`]).
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
use crate::safety::{READINESS_DISCOVERY, READINESS_LOOKUP, readiness_allowance};
use lookup::Answer;
use sixmap_shared::measurement::{
    DnsSpec, DnsTransport, ErrorClass, MeasurementError, Presence, ReadinessResult, ReadinessSpec,
};
use sixmap_shared::nat64::Nat64Prefix;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tokio::time::Instant;

/// Why a step was skipped for the packet allowance.
const NO_BUDGET: &str = "not run: the measurement's packet allowance was spent";

/// Parts of the whole timeout by which the phases end: the web site's lookups and the
/// network's NAT64 prefix first, then the DNS, mail and page checks side by side, and the
/// subresources in the rest.
const LOOKUPS_END: (u32, u32) = (15, 100);
const CHECKS_END: (u32, u32) = (60, 100);

/// A measurement's result, and the packets of its allowance it did not send (the engine
/// gives them back to the probe's budget, which was charged the whole allowance).
#[derive(Debug)]
pub struct Ran {
    pub result: Result<ReadinessResult, MeasurementError>,
    pub unspent: u32,
}

pub async fn run(ctx: &Context<'_>, spec: &ReadinessSpec, domain: &str) -> Ran {
    let start = Instant::now();
    let total = ctx.remaining();
    let at = |(part, whole): (u32, u32)| (start + total * part / whole).min(ctx.deadline);
    let (resolver, resolver_error) = match crate::dns::system_resolver().await {
        Ok(address) => (Some(address), None),
        Err(e) => (None, Some(e.message)),
    };
    let mut run = Run::new(
        ctx,
        resolver,
        resolver_error,
        readiness_allowance(spec, ctx.max_packets),
    );
    let host = spec.web_host().unwrap_or(domain).to_owned();
    let lookups_end = at(LOOKUPS_END);
    let (lookups, dns64) = tokio::join!(
        web::lookups(&run, &host, lookups_end),
        network_prefix(&run, lookups_end),
    );
    run.dns64 = dns64;
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
    let web = web::readiness(&run, lookups, &pages);
    let mut result = ReadinessResult {
        resolver,
        dns64_prefix: run.reported_prefix(),
        dns,
        mail,
        web,
        subresources,
    };
    result.derive_same_hosts();
    let result = result.validate().map(|()| result).map_err(|e| {
        failure(
            ErrorClass::Internal,
            format!("readiness produced an invalid result: {e}"),
        )
    });
    Ran {
        result,
        unspent: run.allowance.load(Ordering::SeqCst),
    }
}

/// The network's NAT64 prefix (RFC 7050), from the probe's cache when it holds for this
/// network, else asked once (`ipv4only.arpa`); charged at worst and given back what was not
/// sent. `None`: no DNS64 here, or not known (then only the well-known prefix is recognised).
async fn network_prefix(run: &Run<'_>, end: Instant) -> Option<Nat64Prefix> {
    if !run.take(READINESS_DISCOVERY) {
        return None;
    }
    let wait = end.saturating_duration_since(Instant::now());
    let discovery = tokio::time::timeout(
        wait,
        crate::nat64_cache::discover_counted(crate::nat64_cache::shared()),
    )
    .await
    .ok()?;
    if let Some(sent) = discovery.packets {
        run.refund(READINESS_DISCOVERY.saturating_sub(sent));
    }
    discovery.prefix
}

/// What every step shares: the context, the host's resolver, the packet allowance left and
/// the network's DNS64 prefix once known.
struct Run<'a> {
    ctx: &'a Context<'a>,
    resolver: Option<IpAddr>,
    resolver_error: Option<String>,
    allowance: AtomicU32,
    dns64: Option<Nat64Prefix>,
    /// An AAAA under the well-known prefix was dropped (reported when discovery found none).
    saw_well_known: AtomicBool,
    /// The DNS port of the resolver and name servers: 53 (another only in tests).
    dns_port: u16,
}

impl<'a> Run<'a> {
    fn new(
        ctx: &'a Context<'a>,
        resolver: Option<IpAddr>,
        resolver_error: Option<String>,
        allowance: u32,
    ) -> Self {
        Self {
            ctx,
            resolver,
            resolver_error,
            allowance: AtomicU32::new(allowance),
            dns64: None,
            saw_well_known: AtomicBool::new(false),
            dns_port: 53,
        }
    }
}

impl Run<'_> {
    /// The name's own AAAA presence and first address: synthesised ones dropped.
    fn aaaa_presence(&self, answer: &Answer) -> (Presence, Option<Ipv6Addr>) {
        let well_known = answer.records.iter().any(|r| {
            r.parse::<Ipv6Addr>()
                .is_ok_and(|a| lookup::synthesised(a, None))
        });
        if well_known {
            self.saw_well_known.store(true, Ordering::SeqCst);
        }
        lookup::aaaa_presence(answer, self.dns64)
    }

    /// The prefix the result reports: the network's, else the well-known one when an answer
    /// under it was dropped.
    fn reported_prefix(&self) -> Option<Nat64Prefix> {
        self.dns64.or_else(|| {
            self.saw_well_known
                .load(Ordering::SeqCst)
                .then_some(Nat64Prefix::WELL_KNOWN)
        })
    }

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
        self.charged_ask(server, name, qtype, recursion_desired, deadline)
            .await
            .unwrap_or_else(|| Answer::failed(NO_BUDGET))
    }

    /// [`Run::charged_lookup`], `None` when the allowance could not pay for it (nothing sent).
    async fn charged_ask(
        &self,
        server: IpAddr,
        name: &str,
        qtype: u16,
        recursion_desired: bool,
        deadline: Instant,
    ) -> Option<Answer> {
        if !self.take(READINESS_LOOKUP) {
            return None;
        }
        let answer = lookup::ask(
            server,
            self.dns_port,
            name,
            qtype,
            recursion_desired,
            deadline.min(self.ctx.deadline),
        )
        .await;
        if !answer.over_tcp {
            self.refund(READINESS_LOOKUP - 1);
        }
        Some(answer)
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
        let run = Run::new(&ctx, None, Some("no resolv.conf".into()), 30);
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
        // Nothing listens there: a query sent would time out, not be refused by name.
        let run = Run::new(&ctx, Some("::1".parse().unwrap()), None, 100);
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

    /// A resolver and authoritative server in one, on loopback: `NAME NS` lists
    /// `ns1.NAME` .. `nsN.NAME` where N is the name's first label's number (`two.gov.xy`: 2),
    /// every `ns*` name has AAAA `::1`, and the SOA is answered with AA. Anything else is
    /// NXDOMAIN. Returns the port; serves until the test ends.
    async fn zone_server() -> u16 {
        let socket = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let query = &buf[..len];
                // The question: labels from offset 12, then type and class.
                let mut at = 12;
                let mut labels = Vec::new();
                while query[at] != 0 {
                    let n = usize::from(query[at]);
                    labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + n]).into_owned());
                    at += 1 + n;
                }
                let qtype = u16::from_be_bytes([query[at + 1], query[at + 2]]);
                let question = &query[12..at + 5];
                let name = labels.join(".");
                let wire_name = |name: &str| {
                    let mut out = Vec::new();
                    for label in name.split('.') {
                        out.push(label.len() as u8);
                        out.extend_from_slice(label.as_bytes());
                    }
                    out.push(0);
                    out
                };
                let count = match labels.first().map(String::as_str) {
                    Some("one") => 1,
                    Some("two") => 2,
                    Some("four") => 4,
                    _ => 0,
                };
                let mut rdatas: Vec<Vec<u8>> = Vec::new();
                match qtype {
                    lookup::TYPE_NS if count > 0 => {
                        for i in 1..=count {
                            rdatas.push(wire_name(&format!("ns{i}.{name}")));
                        }
                    }
                    lookup::TYPE_AAAA if name.starts_with("ns") => {
                        rdatas.push(std::net::Ipv6Addr::LOCALHOST.octets().to_vec())
                    }
                    lookup::TYPE_SOA if count > 0 => {
                        let mut soa = wire_name(&format!("ns1.{name}"));
                        soa.extend(wire_name(&format!("hostmaster.{name}")));
                        for n in [1u32, 3600, 600, 86400, 60] {
                            soa.extend_from_slice(&n.to_be_bytes());
                        }
                        rdatas.push(soa);
                    }
                    _ => {}
                }
                let known = count > 0 || name.starts_with("ns");
                // QR, AA, RD as asked, RA; NXDOMAIN for names outside the zone.
                let word: u16 = 0x8480 | (u16::from(query[2] & 1) << 8) | if known { 0 } else { 3 };
                let records: Vec<Vec<u8>> = rdatas
                    .iter()
                    .map(|rdata| {
                        let mut r = vec![0xC0, 12];
                        r.extend_from_slice(&qtype.to_be_bytes());
                        r.extend_from_slice(&1u16.to_be_bytes());
                        r.extend_from_slice(&60u32.to_be_bytes());
                        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                        r.extend_from_slice(rdata);
                        r
                    })
                    .collect();
                let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
                let id = u16::from_be_bytes([query[0], query[1]]);
                let bytes = crate::dns::wire::tests::response(id, word, question, &refs);
                let _ = socket.send_to(&bytes, from).await;
            }
        });
        port
    }

    /// The name servers are charged what they send: a lookup or SOA query answered over UDP
    /// is one datagram, so a domain with one name server costs 3 packets (NS, AAAA, SOA) and
    /// one with four 9, not the 12 a TCP retry would take per query.
    #[tokio::test]
    async fn a_domain_with_few_name_servers_is_charged_few_packets() {
        let port = zone_server().await;
        let mut ctx = crate::context::for_test(None, None, Duration::from_secs(5));
        ctx.policy = sixmap_shared::TargetPolicy { lab_mode: true };
        let mut spent = Vec::new();
        for domain in ["one.gov.xy", "two.gov.xy", "four.gov.xy"] {
            let mut run = Run::new(&ctx, Some("::1".parse().unwrap()), None, 400);
            run.dns_port = port;
            let dns = names::dns(&run, domain, ctx.deadline).await;
            assert_eq!(
                dns.ns_lookup.status,
                sixmap_shared::measurement::LookupStatus::Found
            );
            assert!(
                dns.servers
                    .iter()
                    .all(|s| s.has_aaaa == Presence::Yes && s.answers_over_v6 == Some(true)),
                "{dns:?}"
            );
            spent.push((
                dns.servers.len(),
                400 - run.allowance.load(Ordering::SeqCst),
            ));
        }
        assert_eq!(spent, [(1, 3), (2, 5), (4, 9)]);
    }
}
