//! The DNS scorecard's daily tallies (`FigureKey::DnsScore`, one row per UTC day and probe
//! origin country and AS): what `query::dns_scorecard` counts per operator, kept as results
//! arrive so the scorecard costs O(days × operators), never O(results).
//!
//! Everything here only adds up: counts, the probes seen (a set, so distinct probes over
//! several days are exact), timing sketches (merged exactly; their medians are within
//! [`super::sketch::RELATIVE_ERROR`]) and, for the DNS64 check, per probe and query name the
//! A addresses answered and the IPv4 addresses synthesised AAAA records embed. The check pairs
//! them within the day only: a row holds at most (probes × names queried that day) pairs,
//! fixed by the task list, not by the number of results.

use super::codec::{CodecError, Reader, put_u64};
use super::sketch::Sketch;
use super::{Count, Order, get_order, put_order};
use crate::store::StoredResult;
use sixmap_shared::measurement::{DnsResponse, DnsResult, DnsTransport, Family};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// DoT and DoH over IPv6, in the order they are encoded.
pub const ENCRYPTED: [&str; 2] = ["tls", "https"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptedTally {
    pub answered: Count,
    /// Failures by class name (`DnsFailureClass::name`).
    pub failures: BTreeMap<String, u64>,
    pub connect: Sketch,
    pub tls: Sketch,
    pub query: Sketch,
}

/// A probe's answers for one name on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pair {
    pub a: BTreeSet<Ipv4Addr>,
    /// Embedded IPv4 address → synthesised AAAA records carrying it.
    pub embedded: BTreeMap<Ipv4Addr, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsScore {
    /// `dns` results folded.
    pub results: u64,
    /// The AS name of the earliest result that had one.
    pub as_name: Option<(Order, String)>,
    /// Probe ids (text form).
    pub probes: BTreeSet<String>,
    pub resolver_v6: Count,
    pub aaaa: Count,
    pub https_ipv6hint: Count,
    /// AAAA records under the well-known NAT64 prefix.
    pub synthesised: u64,
    /// Indexed as [`ENCRYPTED`].
    pub encrypted: [Option<EncryptedTally>; 2],
    /// (probe, query name) → answers, for the DNS64 check.
    pub pairs: BTreeMap<(String, String), Pair>,
}

impl DnsScore {
    /// Adds one `dns` result.
    pub fn fold(&mut self, stored: &StoredResult, dns: &DnsResult, order: Order) {
        self.results += 1;
        if let Some(name) = stored
            .probe_origin
            .as_ref()
            .and_then(|o| o.as_name.as_ref())
            && self.as_name.as_ref().is_none_or(|(o, _)| order < *o)
        {
            self.as_name = Some((order, name.clone()));
        }
        let probe = stored.result.key.probe_id.to_string();
        self.probes.insert(probe.clone());
        let answered = dns.response.is_some();
        let over_v6 = over_v6(stored);
        match dns.transport_used {
            DnsTransport::Udp | DnsTransport::Tcp => {
                if over_v6 {
                    self.resolver_v6.add(answered);
                }
            }
            encrypted @ (DnsTransport::Tls | DnsTransport::Https) => {
                let slot = usize::from(encrypted == DnsTransport::Https);
                if over_v6 {
                    let t = self.encrypted[slot].get_or_insert_with(Default::default);
                    t.answered.add(answered);
                    if let Some(class) = dns.failure_class {
                        *t.failures.entry(class.name().to_owned()).or_default() += 1;
                    }
                    if let Some(session) = &dns.session {
                        session
                            .connect_ns
                            .into_iter()
                            .for_each(|ns| t.connect.add_ns(ns));
                        session.tls_ns.into_iter().for_each(|ns| t.tls.add_ns(ns));
                    }
                    dns.rtt_ns.into_iter().for_each(|ns| t.query.add_ns(ns));
                }
            }
        }
        let Some(response) = dns.response.as_ref().filter(|r| r.rcode == 0) else {
            return;
        };
        match scored_query(dns.query_type, response) {
            Some(Scored::Aaaa(yes)) => self.aaaa.add(yes),
            Some(Scored::Https(yes)) => self.https_ipv6hint.add(yes),
            None => {}
        }
        for answer in &response.answers {
            match answer.record_type {
                TYPE_A => {
                    if let Ok(v4) = answer.data.parse::<Ipv4Addr>() {
                        let key = (probe.clone(), dns.query_name.clone());
                        self.pairs.entry(key).or_default().a.insert(v4);
                    }
                }
                TYPE_AAAA => {
                    if let Some(v4) = synthesised(&answer.data) {
                        self.synthesised += 1;
                        let key = (probe.clone(), dns.query_name.clone());
                        *self
                            .pairs
                            .entry(key)
                            .or_default()
                            .embedded
                            .entry(v4)
                            .or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    }

    pub fn merge(&mut self, other: &DnsScore) {
        self.results += other.results;
        if let Some((order, name)) = &other.as_name
            && self.as_name.as_ref().is_none_or(|(o, _)| order < o)
        {
            self.as_name = Some((*order, name.clone()));
        }
        self.probes.extend(other.probes.iter().cloned());
        self.resolver_v6.merge(&other.resolver_v6);
        self.aaaa.merge(&other.aaaa);
        self.https_ipv6hint.merge(&other.https_ipv6hint);
        self.synthesised += other.synthesised;
        for (mine, theirs) in self.encrypted.iter_mut().zip(&other.encrypted) {
            let Some(theirs) = theirs else { continue };
            let mine = mine.get_or_insert_with(Default::default);
            mine.answered.merge(&theirs.answered);
            for (class, n) in &theirs.failures {
                *mine.failures.entry(class.clone()).or_default() += n;
            }
            mine.connect.merge(&theirs.connect);
            mine.tls.merge(&theirs.tls);
            mine.query.merge(&theirs.query);
        }
        for (key, theirs) in &other.pairs {
            let mine = self.pairs.entry(key.clone()).or_default();
            mine.a.extend(theirs.a.iter().copied());
            for (v4, n) in &theirs.embedded {
                *mine.embedded.entry(*v4).or_default() += n;
            }
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.results);
        match &self.as_name {
            Some((order, name)) => {
                out.push(1);
                put_order(out, *order);
                put_str(out, name);
            }
            None => out.push(0),
        }
        put_u64(out, self.probes.len() as u64);
        for probe in &self.probes {
            put_str(out, probe);
        }
        self.resolver_v6.encode(out);
        self.aaaa.encode(out);
        self.https_ipv6hint.encode(out);
        put_u64(out, self.synthesised);
        for slot in &self.encrypted {
            let Some(t) = slot else {
                out.push(0);
                continue;
            };
            out.push(1);
            t.answered.encode(out);
            put_u64(out, t.failures.len() as u64);
            for (class, n) in &t.failures {
                put_str(out, class);
                put_u64(out, *n);
            }
            t.connect.encode(out);
            t.tls.encode(out);
            t.query.encode(out);
        }
        put_u64(out, self.pairs.len() as u64);
        for ((probe, name), pair) in &self.pairs {
            put_str(out, probe);
            put_str(out, name);
            put_u64(out, pair.a.len() as u64);
            for v4 in &pair.a {
                out.extend_from_slice(&v4.octets());
            }
            put_u64(out, pair.embedded.len() as u64);
            for (v4, n) in &pair.embedded {
                out.extend_from_slice(&v4.octets());
                put_u64(out, *n);
            }
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let mut score = DnsScore {
            results: r.u64()?,
            ..Default::default()
        };
        if r.u8()? != 0 {
            let order = get_order(r)?;
            score.as_name = Some((order, get_str(r)?));
        }
        for _ in 0..r.u64()? {
            score.probes.insert(get_str(r)?);
        }
        score.resolver_v6 = Count::decode(r)?;
        score.aaaa = Count::decode(r)?;
        score.https_ipv6hint = Count::decode(r)?;
        score.synthesised = r.u64()?;
        for slot in &mut score.encrypted {
            if r.u8()? == 0 {
                continue;
            }
            let answered = Count::decode(r)?;
            let mut failures = BTreeMap::new();
            for _ in 0..r.u64()? {
                let class = get_str(r)?;
                failures.insert(class, r.u64()?);
            }
            *slot = Some(EncryptedTally {
                answered,
                failures,
                connect: Sketch::decode(r)?,
                tls: Sketch::decode(r)?,
                query: Sketch::decode(r)?,
            });
        }
        for _ in 0..r.u64()? {
            let key = (get_str(r)?, get_str(r)?);
            let mut pair = Pair::default();
            for _ in 0..r.u64()? {
                pair.a.insert(get_v4(r)?);
            }
            for _ in 0..r.u64()? {
                let v4 = get_v4(r)?;
                pair.embedded.insert(v4, r.u64()?);
            }
            score.pairs.insert(key, pair);
        }
        Ok(score)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn get_str(r: &mut Reader<'_>) -> Result<String, CodecError> {
    let len = usize::try_from(r.u64()?).map_err(|_| CodecError("string length overflows"))?;
    let bytes = r.bytes(len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError("string in a figure is not UTF-8"))
}

fn get_v4(r: &mut Reader<'_>) -> Result<Ipv4Addr, CodecError> {
    let octets: [u8; 4] = r
        .bytes(4)?
        .try_into()
        .map_err(|_| CodecError("IPv4 address is not 4 bytes"))?;
    Ok(Ipv4Addr::from(octets))
}

// What a DNS result says, shared with the per-request scorecard (`query::dns_scorecard`),
// which reads these from here so the figures do not import the query service back.

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_AAAA: u16 = 28;
const TYPE_HTTPS: u16 = 65;

/// Whether a result went to an IPv6 address (its destination, else the family it used).
pub(crate) fn over_v6(stored: &StoredResult) -> bool {
    stored
        .result
        .destination
        .map(Family::of)
        .or(stored.result.family_used)
        == Some(Family::V6)
}

/// What a NOERROR answer scores: an AAAA query (with an AAAA record?) or an HTTPS query
/// answered with records (with an `ipv6hint`?).
pub(crate) enum Scored {
    Aaaa(bool),
    Https(bool),
}

pub(crate) fn scored_query(query_type: u16, response: &DnsResponse) -> Option<Scored> {
    match query_type {
        TYPE_AAAA => Some(Scored::Aaaa(
            response.answers.iter().any(|a| a.record_type == TYPE_AAAA),
        )),
        TYPE_HTTPS if !response.answers.is_empty() => {
            Some(Scored::Https(response.answers.iter().any(|a| {
                a.record_type == TYPE_HTTPS && a.data.contains("ipv6hint=")
            })))
        }
        _ => None,
    }
}

/// The IPv4 address a `64:ff9b::/96` AAAA record embeds.
pub(crate) fn synthesised(data: &str) -> Option<Ipv4Addr> {
    sixmap_shared::nat64::Nat64Prefix::WELL_KNOWN.extract(data.parse().ok()?)
}
