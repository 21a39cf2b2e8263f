//! The DNS side of readiness: one lookup through the host's resolver (or one query to a name
//! server), classified so that only a real "no" (NODATA, NXDOMAIN) is ever `No`.

use sixmap_shared::measurement::{
    DnsResponse, DnsResult, DnsSpec, DnsTransport, Lookup, LookupStatus, MAX_READINESS_DETAIL_LEN,
    Presence, rcode_name,
};
use sixmap_shared::nat64::Nat64Prefix;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use tokio::time::Instant;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_MX: u16 = 15;
pub const TYPE_AAAA: u16 = 28;

/// A lookup's status and the RDATA (presentation format) of its records of the type asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub lookup: Lookup,
    pub records: Vec<String>,
    /// The response's AA bit (for queries sent to a name server).
    pub authoritative: bool,
    /// The query was retried over TCP (after a truncated answer): more than one datagram.
    pub over_tcp: bool,
}

impl Answer {
    pub fn failed(detail: impl Into<String>) -> Self {
        Self {
            lookup: Lookup {
                status: LookupStatus::Failed,
                detail: Some(bounded(detail.into())),
            },
            records: Vec::new(),
            authoritative: false,
            over_tcp: false,
        }
    }
}

/// Cuts a detail text to what a result carries.
pub fn bounded(mut text: String) -> String {
    if text.len() > MAX_READINESS_DETAIL_LEN {
        let mut end = MAX_READINESS_DETAIL_LEN - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Asks `server` (on `port`: 53 but in tests; UDP with a TCP retry on truncation) for
/// `name`/`qtype`.
pub async fn ask(
    server: IpAddr,
    port: u16,
    name: &str,
    qtype: u16,
    recursion_desired: bool,
    deadline: Instant,
) -> Answer {
    let spec = match DnsSpec::new(name, u32::from(qtype), DnsTransport::Udp, recursion_desired) {
        Ok(spec) => spec,
        Err(e) => return Answer::failed(format!("not asked: {e}")),
    };
    match crate::dns::measure(SocketAddr::new(server, port), &spec, None, deadline).await {
        Ok(result) => classify(&result, qtype),
        Err(e) => Answer::failed(e.message),
    }
}

/// The status a DNS result proves for `qtype`.
pub fn classify(result: &DnsResult, qtype: u16) -> Answer {
    let Some(response) = &result.response else {
        let mut failed = Answer::failed(
            result
                .failure
                .clone()
                .unwrap_or_else(|| "no response".into()),
        );
        failed.over_tcp = result.transport_used == DnsTransport::Tcp;
        return failed;
    };
    let records: Vec<String> = response
        .answers
        .iter()
        .filter(|r| r.record_type == qtype)
        .map(|r| r.data.clone())
        .collect();
    let (status, detail) = match response.rcode {
        0 if records.is_empty() => (LookupStatus::NoData, None),
        0 => (LookupStatus::Found, None),
        3 => (LookupStatus::NxDomain, None),
        // SERVFAIL, REFUSED and the rest say nothing about the name.
        other => (LookupStatus::Failed, Some(rcode_name(other))),
    };
    Answer {
        lookup: Lookup { status, detail },
        records,
        authoritative: response.flags & DnsResponse::FLAG_AA != 0,
        over_tcp: result.transport_used == DnsTransport::Tcp,
    }
}

/// The address lies under the network's DNS64 prefix (RFC 7050) or under the well-known one
/// (never a host's own address, whatever the network's prefix is): DNS64 made it from an A
/// record.
pub fn synthesised(address: Ipv6Addr, dns64: Option<Nat64Prefix>) -> bool {
    Nat64Prefix::WELL_KNOWN.contains(address) || dns64.is_some_and(|p| p.contains(address))
}

/// The IPv6 addresses of an AAAA answer that are the name's own: those DNS64 synthesised
/// from its A records ([`synthesised`]) are dropped.
pub fn own_v6(records: &[String], dns64: Option<Nat64Prefix>) -> Vec<Ipv6Addr> {
    records
        .iter()
        .filter_map(|r| r.parse::<Ipv6Addr>().ok())
        .filter(|a| !synthesised(*a, dns64))
        .collect()
}

/// Presence of AAAA records of the name's own, and the first of them.
pub fn aaaa_presence(answer: &Answer, dns64: Option<Nat64Prefix>) -> (Presence, Option<Ipv6Addr>) {
    let own = own_v6(&answer.records, dns64);
    match answer.lookup.status.presence() {
        Presence::Yes if own.is_empty() => (Presence::No, None),
        Presence::Yes => (Presence::Yes, own.first().copied()),
        other => (other, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::measurement::{DnsRecord, DnsResponse};

    fn result(rcode: u16, answers: &[(u16, &str)]) -> DnsResult {
        DnsResult {
            query_name: "example.gov".into(),
            query_type: TYPE_AAAA,
            transport_used: DnsTransport::Udp,
            rtt_ns: Some(1),
            response: Some(DnsResponse {
                rcode,
                flags: 0x8180,
                answers: answers
                    .iter()
                    .map(|(t, d)| DnsRecord {
                        name: "example.gov".into(),
                        record_type: *t,
                        ttl: 60,
                        data: (*d).into(),
                    })
                    .collect(),
            }),
            failure: None,
            failure_class: None,
            session: None,
        }
    }

    #[test]
    fn only_nodata_and_nxdomain_are_no() {
        let found = classify(&result(0, &[(5, "x.cdn."), (28, "2001:db8::1")]), TYPE_AAAA);
        assert_eq!(found.lookup.status, LookupStatus::Found);
        assert_eq!(found.records, ["2001:db8::1"]);
        // A CNAME alone is no AAAA.
        let cname = classify(&result(0, &[(5, "x.cdn.")]), TYPE_AAAA);
        assert_eq!(cname.lookup.status.presence(), Presence::No);
        assert_eq!(
            classify(&result(3, &[]), TYPE_AAAA).lookup.status,
            LookupStatus::NxDomain
        );
        for rcode in [2, 5, 9] {
            let failed = classify(&result(rcode, &[]), TYPE_AAAA);
            assert_eq!(failed.lookup.status.presence(), Presence::Inconclusive);
            assert!(failed.lookup.detail.is_some());
        }
        let mut timeout = result(0, &[]);
        timeout.response = None;
        timeout.failure = Some("timed out".into());
        let failed = classify(&timeout, TYPE_AAAA);
        assert_eq!(failed.lookup.status, LookupStatus::Failed);
        assert_eq!(failed.lookup.detail.as_deref(), Some("timed out"));
    }

    #[test]
    fn dns64_answers_are_not_the_names_own() {
        // Under the well-known prefix: synthesised, whether or not discovery found it.
        let well_known = classify(&result(0, &[(28, "64:ff9b::c000:201")]), TYPE_AAAA);
        for network in [None, Some("2001:db8:64::".parse().unwrap())] {
            assert_eq!(aaaa_presence(&well_known, network), (Presence::No, None));
        }
        // Under a network-specific prefix: only once the network's prefix is known.
        let prefix: Nat64Prefix = "2001:db8:64:ff9b::/96".parse().unwrap();
        let specific = classify(&result(0, &[(28, "2001:db8:64:ff9b::c000:219")]), TYPE_AAAA);
        assert_eq!(aaaa_presence(&specific, Some(prefix)), (Presence::No, None));
        assert_eq!(
            aaaa_presence(&specific, None),
            (
                Presence::Yes,
                Some("2001:db8:64:ff9b::c000:219".parse().unwrap())
            )
        );
        // The same /64 outside the /96 is a host's own address.
        let own: Ipv6Addr = "2001:db8:64:ff9b:0:1::1".parse().unwrap();
        assert!(!synthesised(own, Some(prefix)));
        // Under a /56 the IPv4 address 192.0.2.25 is split around bits 64-71.
        let short: Nat64Prefix = "2001:db8:64:ff00::/56".parse().unwrap();
        let split = classify(&result(0, &[(28, "2001:db8:64:ffc0:0:219::")]), TYPE_AAAA);
        assert_eq!(aaaa_presence(&split, Some(short)), (Presence::No, None));
        assert_eq!(aaaa_presence(&split, Some(prefix)).0, Presence::Yes);
        let both = classify(
            &result(0, &[(28, "64:ff9b::c000:201"), (28, "2001:db8::1")]),
            TYPE_AAAA,
        );
        assert_eq!(
            aaaa_presence(&both, Some(prefix)),
            (Presence::Yes, Some("2001:db8::1".parse().unwrap()))
        );
    }

    #[test]
    fn details_are_bounded_at_a_character_boundary() {
        let text = bounded("é".repeat(1000));
        assert!(text.len() <= MAX_READINESS_DETAIL_LEN && text.ends_with('…'));
    }
}
