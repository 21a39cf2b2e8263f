//! "AAAA published" and "A published" of a campaign target, from explicit DNS questions
//! (`dns` measurements whose `query_name` is the target, usually asked of each probe's own
//! resolver): pure, over each probe's latest answer per record type.
//!
//! A resolver that fails is not evidence about the name: SERVFAIL, REFUSED, timeouts and
//! unreachable resolvers make a probe's vote **inconclusive**, never "no", and a probe whose
//! resolver failed both questions (AAAA and A) is **excluded** from the figure, with the
//! reason. "No" needs a resolver that demonstrably works for that name: NOERROR or NXDOMAIN
//! without the record while the same probe's question of the other type returned records (a
//! resolver that answers "nothing" to both, as captive portals and filters do, says nothing).
//!
//! Records a resolver makes up are not a "yes" either: AAAA synthesised by DNS64
//! (`64:ff9b::/96`, `64:ff9b:1::/48`: the name may have no IPv6 at all) and a filter's
//! sinkholes (`::`, `0.0.0.0`, loopback), or link-local, multicast and IPv4-mapped addresses.
//! Such an answer is inconclusive for its type ([`published_address`]), while it still shows
//! the resolver answers for the name (it confirms a "no" of the other type).

use serde::Serialize;
use sixmap_shared::ProbeId;
use sixmap_shared::measurement::{Outcome, query_type_name, rcode_name};
use sixmap_shared::nat64::Nat64Prefix;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;

/// What one probe's latest DNS result says about one record type of one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// NOERROR with at least one record of the type asked.
    Records,
    /// NOERROR without one (NODATA) or NXDOMAIN: the name's zone answered.
    Empty,
    /// Records, but only addresses a resolver makes up (DNS64, sinkholes): why.
    MadeUp(String),
    /// No usable answer (the resolver's failure, not the name's): why.
    Failed(String),
}

const NOERROR: u16 = 0;
const NXDOMAIN: u16 = 3;

/// Whether `address` can be a name's published address rather than one a resolver made up
/// (module doc): not DNS64's synthesis nor a filter's sinkhole. (Private addresses are not
/// refused: a lab's names have them, and a split-horizon view is still the name's.)
pub fn published_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // 64:ff9b::/96 (RFC 6052) and 64:ff9b:1::/48 (RFC 8215).
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1);
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || nat64
                || v6.to_ipv4_mapped().is_some())
        }
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast())
        }
    }
}

/// Whether `address` lies under the NAT64 `prefix`.
fn under_prefix(address: IpAddr, prefix: Option<Nat64Prefix>) -> bool {
    match (address, prefix) {
        (IpAddr::V6(a), Some(p)) => p.contains(a),
        _ => false,
    }
}

/// The answer in `outcome`, a DNS result for `query_type`, asked by a probe whose self-test
/// found the NAT64 prefix `nat64` (addresses under it are made up too: a network-specific
/// prefix is ordinary global space, which `published_address` cannot tell).
pub fn answer(outcome: &Outcome, query_type: u16, nat64: Option<Nat64Prefix>) -> Answer {
    match outcome {
        Outcome::Dns(d) => match &d.response {
            Some(r)
                if r.rcode == NOERROR && r.answers.iter().any(|a| a.record_type == query_type) =>
            {
                // Address records must hold a public address (module doc); other types count
                // as they are.
                let addresses: Vec<IpAddr> = r
                    .answers
                    .iter()
                    .filter(|a| a.record_type == query_type)
                    .filter_map(|a| a.data.parse().ok())
                    .collect();
                let address_type = query_type == TYPE_A || query_type == TYPE_AAAA;
                // (Records whose text is not an address say nothing either way: counted.)
                if address_type
                    && !addresses.is_empty()
                    && !addresses
                        .iter()
                        .any(|a| published_address(*a) && !under_prefix(*a, nat64))
                {
                    let shown: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
                    return Answer::MadeUp(format!(
                        "only addresses a resolver makes up: {} (DNS64 or a filter)",
                        shown.join(", ")
                    ));
                }
                Answer::Records
            }
            Some(r) if r.rcode == NOERROR || r.rcode == NXDOMAIN => Answer::Empty,
            Some(r) => Answer::Failed(rcode_name(r.rcode)),
            None => Answer::Failed(d.failure.clone().unwrap_or_else(|| "no response".into())),
        },
        Outcome::Failed(e) => Answer::Failed(e.message.clone()),
        other => Answer::Failed(format!(
            "not a DNS result ({})",
            other.kind().map(|k| k.to_string()).unwrap_or_default()
        )),
    }
}

/// The figure's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Yes,
    No,
    /// Only failed or unconfirmed answers: nothing can be said.
    Inconclusive,
    /// No DNS question about the name in the campaign (and no other evidence).
    NotMeasured,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::Inconclusive => "inconclusive",
            Self::NotMeasured => "not measured",
        }
    }
}

/// Where the verdict comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The probes' DNS questions.
    Dns,
    /// The target is an address literal: its own answer.
    Address,
    /// No DNS question of this type, but another measurement resolved an address of the family
    /// (a positive answer is evidence; the lack of one never is).
    Resolved,
    None,
}

/// A probe left out of the figure, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excluded {
    pub probe: ProbeId,
    pub reason: String,
}

/// One record type's presence for one target, with the probes' votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Presence {
    pub verdict: Verdict,
    pub source: Source,
    /// Probes whose resolver returned the record.
    pub yes: u64,
    /// Probes whose resolver answered without it while returning the other type's records.
    pub no: u64,
    /// Probes whose answer says nothing: this type failed while the other was answered, or an
    /// empty answer without the other type's question answered.
    pub inconclusive: u64,
    /// Probes whose resolver failed both types: not counted above.
    pub excluded: Vec<Excluded>,
}

impl Presence {
    pub fn fixed(verdict: Verdict, source: Source) -> Self {
        Self {
            verdict,
            source,
            yes: 0,
            no: 0,
            inconclusive: 0,
            excluded: Vec::new(),
        }
    }

    /// `Some(true)` / `Some(false)` for yes / no, `None` otherwise (the report's older
    /// `aaaa_published` field).
    pub fn as_bool(&self) -> Option<bool> {
        match self.verdict {
            Verdict::Yes => Some(true),
            Verdict::No => Some(false),
            Verdict::Inconclusive | Verdict::NotMeasured => None,
        }
    }
}

/// The presence of `query_type` records from each probe's latest answers for the name:
/// `asked` maps probe → (answer for `query_type`, answer for the other type), either missing
/// when the probe did not ask it. Probes that did not ask `query_type` are not counted.
///
/// Verdict: yes when any probe's resolver returned the record (resolvers in different places
/// may see different answers; the counts show any disagreement), else no when any probe's
/// working resolver answered without it, else inconclusive when some probe asked, else not
/// measured.
pub fn presence(
    query_type: u16,
    asked: &BTreeMap<ProbeId, (Option<Answer>, Option<Answer>)>,
) -> Presence {
    let mut p = Presence::fixed(Verdict::NotMeasured, Source::Dns);
    let other_type = if query_type == TYPE_AAAA {
        TYPE_A
    } else {
        TYPE_AAAA
    };
    for (probe, (this, other)) in asked {
        let Some(this) = this else { continue };
        match (this, other) {
            (Answer::Records, _) => p.yes += 1,
            (Answer::Empty, Some(Answer::Records | Answer::MadeUp(_))) => p.no += 1,
            (Answer::Failed(a), Some(Answer::Failed(b))) => p.excluded.push(Excluded {
                probe: probe.clone(),
                reason: format!(
                    "resolver failed both questions ({}: {a}; {}: {b})",
                    query_type_name(query_type),
                    query_type_name(other_type)
                ),
            }),
            _ => p.inconclusive += 1,
        }
    }
    p.verdict = if p.yes > 0 {
        Verdict::Yes
    } else if p.no > 0 {
        Verdict::No
    } else if p.inconclusive > 0 || !p.excluded.is_empty() {
        Verdict::Inconclusive
    } else {
        Verdict::NotMeasured
    };
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::measurement::{
        DnsRecord, DnsResponse, DnsResult, DnsTransport, ErrorClass, MeasurementError,
    };

    fn dns(query_type: u16, rcode: Option<u16>, records: &[u16]) -> Outcome {
        Outcome::Dns(DnsResult {
            query_name: "gov.example".into(),
            query_type,
            transport_used: DnsTransport::Udp,
            rtt_ns: rcode.map(|_| 1),
            response: rcode.map(|rcode| DnsResponse {
                rcode,
                flags: 0,
                answers: records
                    .iter()
                    .map(|t| DnsRecord {
                        name: "gov.example".into(),
                        record_type: *t,
                        ttl: 60,
                        data: String::new(),
                    })
                    .collect(),
            }),
            failure: rcode.is_none().then(|| "timeout after 5 s".into()),
            failure_class: None,
            session: None,
        })
    }

    fn probe(n: u8) -> ProbeId {
        format!("{n:016x}").parse().unwrap()
    }

    #[test]
    fn answers_are_read_from_the_rcode_and_the_records() {
        assert_eq!(
            answer(&dns(28, Some(0), &[5, 28]), 28, None),
            Answer::Records
        );
        // A CNAME alone, NODATA, NXDOMAIN: the zone answered without the record.
        assert_eq!(answer(&dns(28, Some(0), &[5]), 28, None), Answer::Empty);
        assert_eq!(answer(&dns(28, Some(3), &[]), 28, None), Answer::Empty);
        assert_eq!(
            answer(&dns(28, Some(2), &[]), 28, None),
            Answer::Failed("SERVFAIL".into())
        );
        assert_eq!(
            answer(&dns(28, Some(5), &[]), 28, None),
            Answer::Failed("REFUSED".into())
        );
        assert_eq!(
            answer(&dns(28, None, &[]), 28, None),
            Answer::Failed("timeout after 5 s".into())
        );
        let no_resolver = Outcome::Failed(MeasurementError {
            class: ErrorClass::Resolution,
            message: "system resolver: no usable nameserver".into(),
        });
        assert!(matches!(answer(&no_resolver, 28, None), Answer::Failed(_)));
    }

    #[test]
    fn a_broken_resolver_is_never_a_no() {
        use Answer::*;
        let servfail = || Failed("SERVFAIL".into());
        let mut asked = BTreeMap::new();
        // Probe 1: its resolver fails both questions (the bug of issue #20).
        asked.insert(probe(1), (Some(servfail()), Some(Failed("timeout".into()))));
        let p = presence(TYPE_AAAA, &asked);
        assert_eq!(p.verdict, Verdict::Inconclusive);
        assert_eq!((p.yes, p.no, p.inconclusive), (0, 0, 0));
        assert_eq!(p.excluded.len(), 1);
        assert!(
            p.excluded[0].reason.contains("AAAA: SERVFAIL"),
            "{:?}",
            p.excluded
        );
        assert!(
            p.excluded[0].reason.contains("A: timeout"),
            "{:?}",
            p.excluded
        );
        // Probe 2: a working resolver returns the AAAA: yes, probe 1 still excluded.
        asked.insert(probe(2), (Some(Records), Some(Records)));
        let p = presence(TYPE_AAAA, &asked);
        assert_eq!(p.verdict, Verdict::Yes);
        assert_eq!(
            (p.yes, p.no, p.inconclusive, p.excluded.len()),
            (1, 0, 0, 1)
        );
        // An empty AAAA answer without the A question confirming the resolver: inconclusive.
        let mut lone = BTreeMap::new();
        lone.insert(probe(3), (Some(Empty), None));
        lone.insert(probe(4), (Some(Empty), Some(servfail())));
        lone.insert(probe(5), (Some(servfail()), Some(Records)));
        let p = presence(TYPE_AAAA, &lone);
        assert_eq!(p.verdict, Verdict::Inconclusive);
        assert_eq!((p.yes, p.no, p.inconclusive), (0, 0, 3));
        // A working resolver that answers A and no AAAA: no.
        lone.insert(probe(6), (Some(Empty), Some(Records)));
        let p = presence(TYPE_AAAA, &lone);
        assert_eq!((p.verdict, p.no, p.inconclusive), (Verdict::No, 1, 3));
        // Nobody asked this type.
        let mut none = BTreeMap::new();
        none.insert(probe(7), (None, Some(Records)));
        assert_eq!(presence(TYPE_A, &none).verdict, Verdict::NotMeasured);
        // A resolver that answers "nothing" to both (captive portal, filter): inconclusive.
        let mut nothing = BTreeMap::new();
        nothing.insert(probe(8), (Some(Empty), Some(Empty)));
        let p = presence(TYPE_AAAA, &nothing);
        assert_eq!(
            (p.verdict, p.no, p.inconclusive),
            (Verdict::Inconclusive, 0, 1)
        );
    }

    fn addresses(query_type: u16, data: &[&str]) -> Outcome {
        let mut outcome = dns(query_type, Some(0), &vec![query_type; data.len()]);
        if let Outcome::Dns(d) = &mut outcome
            && let Some(r) = &mut d.response
        {
            for (record, text) in r.answers.iter_mut().zip(data) {
                record.data = (*text).into();
            }
        }
        outcome
    }

    /// DNS64's synthesis and a filter's sinkholes are not the name's published addresses:
    /// inconclusive, never "yes".
    #[test]
    fn only_published_addresses_say_yes() {
        for synthesised in [
            &["64:ff9b::c000:201"][..],
            &["64:ff9b:1::a00:1"],
            &["::"],
            &["::1"],
            &["fe80::1"],
            &["::ffff:192.0.2.1"],
        ] {
            assert!(
                matches!(
                    answer(&addresses(28, synthesised), 28, None),
                    Answer::MadeUp(_)
                ),
                "{synthesised:?}"
            );
        }
        // Under the network-specific prefix the probe's self-test found: made up too, while
        // the same address asked by a probe without that prefix is the name's own.
        let nsp: Nat64Prefix = "2001:db8:64:ff9b::/96".parse().unwrap();
        let synthesised = addresses(28, &["2001:db8:64:ff9b::c000:201"]);
        assert!(matches!(
            answer(&synthesised, 28, Some(nsp)),
            Answer::MadeUp(_)
        ));
        assert_eq!(answer(&synthesised, 28, None), Answer::Records);
        let mixed = addresses(28, &["2001:db8:64:ff9b::c000:201", "2001:db8:5::1"]);
        assert_eq!(answer(&mixed, 28, Some(nsp)), Answer::Records);
        for sinkhole in [&["0.0.0.0"][..], &["127.0.0.1"]] {
            assert!(
                matches!(answer(&addresses(1, sinkhole), 1, None), Answer::MadeUp(_)),
                "{sinkhole:?}"
            );
        }
        // Behind DNS64 the AAAA vote says nothing (inconclusive, never "yes"), while the
        // resolver plainly answers for the name: an empty A beside it would be a "no" for A.
        let mut dns64 = BTreeMap::new();
        dns64.insert(
            probe(9),
            (
                Some(answer(&addresses(28, &["64:ff9b::c000:201"]), 28, None)),
                Some(Answer::Empty),
            ),
        );
        let p = presence(TYPE_AAAA, &dns64);
        assert_eq!(
            (p.verdict, p.yes, p.inconclusive),
            (Verdict::Inconclusive, 0, 1)
        );
        let p = presence(TYPE_A, &{
            let mut swapped = BTreeMap::new();
            swapped.insert(probe(9), (Some(Answer::Empty), dns64[&probe(9)].0.clone()));
            swapped
        });
        assert_eq!((p.verdict, p.no), (Verdict::No, 1));
        // One public address among them is enough; 64:ff9b:: with other bits set is a
        // global address, not the well-known prefix.
        for public in [
            &["2001:db8::1"][..],
            &["64:ff9b::c000:201", "2a01:e0a::1"],
            &["64:ff9b:0:1::1"],
        ] {
            assert_eq!(
                answer(&addresses(28, public), 28, None),
                Answer::Records,
                "{public:?}"
            );
        }
        assert_eq!(
            answer(&addresses(1, &["192.0.2.1"]), 1, None),
            Answer::Records
        );
        // Private addresses are a name's too (a lab's, a split-horizon view's).
        assert_eq!(
            answer(&addresses(1, &["10.1.2.3"]), 1, None),
            Answer::Records
        );
        assert_eq!(
            answer(&addresses(28, &["fd00::53"]), 28, None),
            Answer::Records
        );
    }
}
