//! The domain's name servers and mail exchangers over IPv6.

use super::lookup::{TYPE_AAAA, TYPE_MX, TYPE_NS, TYPE_SOA, bounded};
use super::{NO_BUDGET, Run, share};
use crate::safety::READINESS_CONNECT;
use sixmap_shared::measurement::{
    DnsReadiness, LookupStatus, MAX_READINESS_MAIL_EXCHANGERS, MAX_READINESS_NAME_SERVERS,
    MailExchangerCheck, MailReadiness, NameServerCheck, Presence, Target, TcpSpec,
};
use std::net::{IpAddr, Ipv6Addr};
use tokio::time::Instant;

/// A name from RDATA (`ns1.example.gov.`), as a result carries it; `None` for anything that
/// is not a host name (the root of a null MX, escaped bytes).
fn host_name(rdata: &str) -> Option<String> {
    match Target::hostname(rdata) {
        Ok(Target::Hostname(name)) => Some(name),
        _ => None,
    }
}

/// The AAAA lookup of a server's name: its presence, first own address, and what to say.
async fn aaaa(
    run: &Run<'_>,
    name: &str,
    deadline: Instant,
) -> (Presence, Option<Ipv6Addr>, Option<String>) {
    let answer = run.lookup(name, TYPE_AAAA, deadline).await;
    let (presence, address) = run.aaaa_presence(&answer);
    let detail = match (&answer.lookup.detail, presence) {
        (Some(detail), _) => Some(bounded(format!("AAAA lookup: {detail}"))),
        (None, Presence::No) if answer.lookup.status == LookupStatus::Found => {
            Some("AAAA only synthesised by DNS64".to_owned())
        }
        _ => None,
    };
    (presence, address, detail)
}

pub(super) async fn dns(run: &Run<'_>, domain: &str, end: Instant) -> DnsReadiness {
    let ns = run.lookup(domain, TYPE_NS, share(end, 4)).await;
    let mut names: Vec<String> = Vec::new();
    for name in ns.records.iter().filter_map(|r| host_name(r)) {
        if !names.contains(&name) && names.len() < MAX_READINESS_NAME_SERVERS {
            names.push(name);
        }
    }
    let mut servers = Vec::with_capacity(names.len());
    let count = names.len();
    for (i, name) in names.into_iter().enumerate() {
        let item_end = share(end, count - i);
        let (has_aaaa, address, mut detail) = aaaa(run, &name, share(item_end, 2)).await;
        let mut answers_over_v6 = None;
        if let Some(address) = address {
            match soa_over_v6(run, domain, address, item_end).await {
                Ok((answered, why)) => {
                    answers_over_v6 = Some(answered);
                    detail = why.or(detail);
                }
                Err(why) => detail = Some(why),
            }
        }
        servers.push(NameServerCheck {
            name,
            has_aaaa,
            address,
            answers_over_v6,
            detail,
        });
    }
    DnsReadiness {
        // Servers are only listed from a found NS set (validation asks the same).
        servers: if ns.lookup.status == LookupStatus::Found {
            servers
        } else {
            Vec::new()
        },
        ns_lookup: ns.lookup,
    }
}

/// Asks the server at `address` for the domain's SOA without recursion: `true` when it
/// answers authoritatively (AA set, NOERROR); `Err` when the query was not sent.
async fn soa_over_v6(
    run: &Run<'_>,
    domain: &str,
    address: Ipv6Addr,
    deadline: Instant,
) -> Result<(bool, Option<String>), String> {
    let address = IpAddr::V6(address);
    run.allowed(address)?;
    // Charged as any lookup: one datagram unless the answer was truncated.
    let answer = run
        .charged_ask(address, domain, TYPE_SOA, false, deadline)
        .await
        .ok_or_else(|| NO_BUDGET.to_owned())?;
    let answered = matches!(
        answer.lookup.status,
        LookupStatus::Found | LookupStatus::NoData
    ) && answer.authoritative;
    let why = match (&answer.lookup.detail, answered) {
        (_, true) => None,
        (Some(detail), false) => Some(bounded(format!("SOA over IPv6: {detail}"))),
        (None, false) => Some(format!(
            "SOA over IPv6: {} without the AA bit",
            answer.lookup.status.words()
        )),
    };
    Ok((answered, why))
}

pub(super) async fn mail(run: &Run<'_>, domain: &str, end: Instant) -> MailReadiness {
    let mx = run.lookup(domain, TYPE_MX, share(end, 4)).await;
    let mut exchangers: Vec<(u16, String)> = Vec::new();
    let mut null_mx = false;
    for record in &mx.records {
        let Some((preference, exchange)) = record.split_once(' ') else {
            continue;
        };
        let Ok(preference) = preference.parse::<u16>() else {
            continue;
        };
        // RFC 7505: "0 ." alone says the domain takes no mail.
        if exchange == "." {
            null_mx = mx.records.len() == 1;
            continue;
        }
        if let Some(name) = host_name(exchange)
            && !exchangers.iter().any(|(_, n)| *n == name)
        {
            exchangers.push((preference, name));
        }
    }
    exchangers.sort_by_key(|(preference, _)| *preference);
    exchangers.truncate(MAX_READINESS_MAIL_EXCHANGERS);
    let count = exchangers.len();
    let mut checks = Vec::with_capacity(count);
    for (i, (preference, name)) in exchangers.into_iter().enumerate() {
        let item_end = share(end, count - i);
        let (has_aaaa, address, mut detail) = aaaa(run, &name, share(item_end, 2)).await;
        let mut smtp_v6 = None;
        if let Some(address) = address {
            match smtp_connect(run, address, item_end).await {
                Ok(outcome) => smtp_v6 = Some(outcome),
                Err(why) => detail = Some(why),
            }
        }
        checks.push(MailExchangerCheck {
            name,
            preference,
            has_aaaa,
            address,
            smtp_v6,
            detail,
        });
    }
    let found = mx.lookup.status == LookupStatus::Found;
    MailReadiness {
        null_mx: null_mx && found,
        exchangers: if found && !null_mx {
            checks
        } else {
            Vec::new()
        },
        mx_lookup: mx.lookup,
    }
}

/// A TCP connection to port 25 over IPv6, closed as soon as it is made: SMTP is never spoken,
/// so no mail server sees a session it could count as abuse.
async fn smtp_connect(
    run: &Run<'_>,
    address: Ipv6Addr,
    deadline: Instant,
) -> Result<sixmap_shared::measurement::ConnectOutcome, String> {
    let address = IpAddr::V6(address);
    run.allowed(address)?;
    if !run.take(READINESS_CONNECT) {
        return Err(NO_BUDGET.to_owned());
    }
    let spec = TcpSpec::new(25).map_err(|e| e.to_string())?;
    crate::tcp::run(&run.ctx_until(deadline), &spec, address)
        .await
        .map(|r| r.outcome)
        .map_err(|e| bounded(format!("port 25: {}", e.message)))
}
