//! Figures kept as results arrive, so the national map, the daily rollups and the aggregates
//! by country / AS / day are read in O(groups), never O(results) (issue #18).
//!
//! # The model
//!
//! Three kinds of rows, each a set of counters and RTT sketches that only add up:
//!
//! - **probe-day** `(UTC day, probe)`: the probe's origin that day (country and AS of its
//!   earliest result with one, as the daily rollups take it), whether IPv6 worked (an answered
//!   IPv6 ping to a global destination), sketches of its IPv4 and IPv6 ping RTTs to global
//!   destinations, and the path-quality counters (IPv6 ping loss, PMTU black holes,
//!   extension-header drops per header, domestic traceroutes). The daily rollups per country
//!   and per network (`crate::daily`) are these rows grouped.
//! - **probe-hour** `(UTC hour, probe)`: sketches of IPv4 and IPv6 ping RTTs to global
//!   destinations. The map's 24 h medians (`crate::maps`) merge a probe's hourly rows.
//! - **tally** `(UTC day, side, country, AS)` for the probe's and the destination's origin:
//!   results, results that reached their destination, and a sketch of answered pings' minimum
//!   RTT. `/api/v1/query/aggregates` groups them by country, AS and day.
//! - **breaks** `(UTC day, probe's country and AS, failure, placement, responsible AS)`:
//!   attributed failures (`crate::blame`), counted; "where IPv6 breaks" (`blame::rollup`).
//! - **dns score** `(UTC day, probe's country and AS)`: the DNS-over-IPv6 scorecard's counts,
//!   probes, timing sketches and DNS64 pairs (`dns`); `/api/v1/query/dns-scorecard`.
//! - **readiness** `(readiness task, UTC day)`: each probe's newest readiness result of the
//!   task's domain that day, as the trend scores it (`readiness`); a campaign report's trend.
//!
//! Medians come from a log-bucketed histogram with at most 1 % relative error
//! ([`sketch::RELATIVE_ERROR`]); counts and shares are exact.
//!
//! # Exactly once
//!
//! Every new result is folded once: the store logs it in the commit that stores it
//! (`Store::ingest_log_after`, duplicates never logged), and the folder ([`fold`]) writes the
//! changed rows and the log position it folded up to in one atomic write. After a crash either
//! both landed or neither; the log is pruned only after that write is durable. A rebuild from raw
//! results ([`fold::rebuild`], `sixmap-collector rollups rebuild`) gives the same rows; a
//! randomised test checks that.

pub mod codec;
pub mod dns;
pub mod feed;
pub mod fold;
pub mod read;
pub mod readiness;
pub mod sketch;
#[cfg(test)]
mod tests;
pub(crate) mod v6_tallies;

use crate::blame::{Failure, Placement};
use crate::store::StoredResult;
use codec::{CodecError, Reader, put_i64, put_u64};
use sixmap_shared::policy::classify;
use sixmap_shared::prefixes::{CountryCode, PrefixData};
use sixmap_shared::{Family, Outcome, ProbeId, TaskId};
use sketch::Sketch;
use std::collections::BTreeMap;

pub const DAY_US: i64 = 86_400_000_000;
pub const HOUR_US: i64 = 3_600_000_000;

/// Value format byte: the encoding can change without a migration of stored rows.
const FORMAT: u8 = 1;

/// Hex digits of a probe id (its text form, as in `ProbeId::as_str`).
const PROBE_ID_LEN: usize = 16;

/// Successes out of trials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Count {
    pub hits: u64,
    pub trials: u64,
}

impl Count {
    pub fn add(&mut self, hit: bool) {
        self.add_many(u64::from(hit), 1);
    }
    pub fn add_many(&mut self, hits: u64, trials: u64) {
        self.hits += hits;
        self.trials += trials;
    }
    fn merge(&mut self, other: &Count) {
        self.add_many(other.hits, other.trials);
    }
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.hits);
        put_u64(out, self.trials);
    }
    fn decode(input: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Self {
            hits: input.u64()?,
            trials: input.u64()?,
        })
    }
}

/// Where a result sorts in a time scan: start time, then boot epoch and sequence (one probe).
pub type Order = (i64, u64, u64);

/// A value taken from the earliest result that had one: merging keeps the smaller order, so
/// it does not depend on the order results were folded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct First<T> {
    pub order: Order,
    pub value: T,
}

fn first<T: Copy>(a: Option<First<T>>, b: Option<First<T>>) -> Option<First<T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.order < a.order { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Extension headers in the order of [`ProbeDay::ext_drops`].
pub const EXT_HEADERS: [&str; 3] = ["hbh", "dst", "frag"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeDay {
    pub country: Option<First<CountryCode>>,
    pub asn: Option<First<u32>>,
    pub works: bool,
    pub rtt_v6: Sketch,
    pub rtt_v4: Sketch,
    pub lost_v6: Count,
    pub black_holes: Count,
    pub ext_drops: [Count; 3],
    pub domestic: Count,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeHour {
    pub rtt_v6: Sketch,
    pub rtt_v4: Sketch,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub success: u64,
    /// Answered pings' minimum RTTs (any family and destination).
    pub rtt: Sketch,
}

/// Whose origin a tally is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Probe = 0,
    Target = 1,
}

/// Attributed failures of one group (`FigureKey::Breaks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaks {
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FigureKey {
    ProbeDay {
        day: i64,
        probe: ProbeId,
    },
    ProbeHour {
        hour: i64,
        probe: ProbeId,
    },
    Tally {
        day: i64,
        side: Side,
        country: Option<CountryCode>,
        asn: Option<u32>,
    },
    /// Failures attributed by probes of (`country`, `asn`) on `day`.
    Breaks {
        day: i64,
        country: Option<CountryCode>,
        asn: Option<u32>,
        failure: Failure,
        placement: Placement,
        responsible: Option<u32>,
    },
    /// The DNS scorecard's tallies of probes of (`country`, `asn`) on `day`.
    DnsScore {
        day: i64,
        country: Option<CountryCode>,
        asn: Option<u32>,
    },
    /// The readiness results of `task` (one domain of a campaign) on `day`, per probe.
    Readiness {
        task: TaskId,
        day: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Figure {
    ProbeDay(ProbeDay),
    ProbeHour(ProbeHour),
    Tally(Tally),
    Breaks(Breaks),
    DnsScore(Box<dns::DnsScore>),
    Readiness(Box<readiness::ReadinessDay>),
}

const KIND_DAY: u8 = b'D';
const KIND_HOUR: u8 = b'H';
const KIND_TALLY: u8 = b'T';
const KIND_BREAKS: u8 = b'B';
const KIND_DNS: u8 = b'S';
const KIND_READINESS: u8 = b'R';

fn put_country(key: &mut Vec<u8>, country: &Option<CountryCode>) {
    match country {
        Some(c) => {
            key.push(1);
            key.extend_from_slice(c.to_string().as_bytes());
        }
        None => key.push(0),
    }
}

fn put_asn(key: &mut Vec<u8>, asn: &Option<u32>) {
    match asn {
        Some(a) => {
            key.push(1);
            key.extend_from_slice(&a.to_be_bytes());
        }
        None => key.push(0),
    }
}

fn get_country(r: &mut Reader<'_>) -> Result<Option<CountryCode>, CodecError> {
    Ok(match r.u8()? {
        0 => None,
        _ => Some(
            std::str::from_utf8(r.bytes(2)?)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(CodecError("country in a figure key is not one"))?,
        ),
    })
}

fn get_asn(r: &mut Reader<'_>) -> Result<Option<u32>, CodecError> {
    Ok(match r.u8()? {
        0 => None,
        _ => Some(u32::from_be_bytes(
            r.bytes(4)?
                .try_into()
                .map_err(|_| CodecError("AS number is not 4 bytes"))?,
        )),
    })
}

/// Time made to sort as unsigned big-endian bytes (sign bit flipped).
fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from(bytes: &[u8]) -> Result<i64, CodecError> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| CodecError("time is not 8 bytes"))?;
    Ok((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

/// First key of `kind` rows at `t` (a day or an hour number) and later.
pub fn range_start(kind: u8, t: i64) -> Vec<u8> {
    let mut key = vec![kind];
    key.extend_from_slice(&time_bytes(t));
    key
}

/// The key range of one day's `breaks` rows of one probe country: the key starts with
/// (kind, day, country), so a country's rows are read without the others' of that day.
pub fn breaks_of_country(day: i64, country: CountryCode) -> (Vec<u8>, Vec<u8>) {
    let mut from = range_start(KIND_BREAKS, day);
    put_country(&mut from, &Some(country));
    let to = prefix_end(&from);
    (from, to)
}

/// The first key after every key that starts with `prefix` (`prefix` not all 0xff).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            break;
        }
    }
    end
}

/// Key prefixes of the three kinds, for range reads.
pub mod kind {
    pub const DAY: u8 = super::KIND_DAY;
    pub const HOUR: u8 = super::KIND_HOUR;
    pub const TALLY: u8 = super::KIND_TALLY;
    pub const BREAKS: u8 = super::KIND_BREAKS;
    pub const DNS: u8 = super::KIND_DNS;
    pub const READINESS: u8 = super::KIND_READINESS;
}

/// First key of the readiness rows of `task` on day `day` and later (`task` first, so one
/// task's days are one range).
pub fn readiness_start(task: u64, day: i64) -> Vec<u8> {
    let mut key = vec![KIND_READINESS];
    key.extend_from_slice(&task.to_be_bytes());
    key.extend_from_slice(&time_bytes(day));
    key
}

impl FigureKey {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::ProbeDay { day, probe } => {
                let mut key = range_start(KIND_DAY, *day);
                key.extend_from_slice(probe.as_str().as_bytes());
                key
            }
            Self::ProbeHour { hour, probe } => {
                let mut key = range_start(KIND_HOUR, *hour);
                key.extend_from_slice(probe.as_str().as_bytes());
                key
            }
            Self::Tally {
                day,
                side,
                country,
                asn,
            } => {
                let mut key = range_start(KIND_TALLY, *day);
                key.push(*side as u8);
                match country {
                    Some(c) => {
                        key.push(1);
                        key.extend_from_slice(c.to_string().as_bytes());
                    }
                    None => key.push(0),
                }
                match asn {
                    Some(a) => {
                        key.push(1);
                        key.extend_from_slice(&a.to_be_bytes());
                    }
                    None => key.push(0),
                }
                key
            }
            Self::Breaks {
                day,
                country,
                asn,
                failure,
                placement,
                responsible,
            } => {
                let mut key = range_start(KIND_BREAKS, *day);
                put_country(&mut key, country);
                put_asn(&mut key, asn);
                key.push(*failure as u8);
                key.push(*placement as u8);
                put_asn(&mut key, responsible);
                key
            }
            Self::DnsScore { day, country, asn } => {
                let mut key = range_start(KIND_DNS, *day);
                put_country(&mut key, country);
                put_asn(&mut key, asn);
                key
            }
            Self::Readiness { task, day } => readiness_start(task.get(), *day),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let kind = r.u8()?;
        if kind == KIND_READINESS {
            let task = u64::from_be_bytes(
                r.bytes(8)?
                    .try_into()
                    .map_err(|_| CodecError("task id is not 8 bytes"))?,
            );
            let key = Self::Readiness {
                task: TaskId::new(task).map_err(|_| CodecError("task id 0 in a figure key"))?,
                day: time_from(r.bytes(8)?)?,
            };
            if !r.is_empty() {
                return Err(CodecError("figure key is longer than its kind"));
            }
            return Ok(key);
        }
        let t = time_from(r.bytes(8)?)?;
        let probe = |r: &mut Reader<'_>| -> Result<ProbeId, CodecError> {
            let rest = r.bytes(PROBE_ID_LEN)?;
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(CodecError("probe id in a figure key is not one"))
        };
        let key = match kind {
            KIND_DAY => Self::ProbeDay {
                day: t,
                probe: probe(&mut r)?,
            },
            KIND_HOUR => Self::ProbeHour {
                hour: t,
                probe: probe(&mut r)?,
            },
            KIND_TALLY => {
                let side = match r.u8()? {
                    0 => Side::Probe,
                    1 => Side::Target,
                    _ => return Err(CodecError("tally side is not 0 or 1")),
                };
                let country = match r.u8()? {
                    0 => None,
                    _ => Some(
                        std::str::from_utf8(r.bytes(2)?)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or(CodecError("country in a tally key is not one"))?,
                    ),
                };
                let asn = match r.u8()? {
                    0 => None,
                    _ => Some(u32::from_be_bytes(
                        r.bytes(4)?
                            .try_into()
                            .map_err(|_| CodecError("AS number is not 4 bytes"))?,
                    )),
                };
                Self::Tally {
                    day: t,
                    side,
                    country,
                    asn,
                }
            }
            KIND_BREAKS => {
                let country = get_country(&mut r)?;
                let asn = get_asn(&mut r)?;
                let failure =
                    Failure::from_u8(r.u8()?).ok_or(CodecError("unknown failure in a key"))?;
                let placement =
                    Placement::from_u8(r.u8()?).ok_or(CodecError("unknown placement in a key"))?;
                Self::Breaks {
                    day: t,
                    country,
                    asn,
                    failure,
                    placement,
                    responsible: get_asn(&mut r)?,
                }
            }
            KIND_DNS => Self::DnsScore {
                day: t,
                country: get_country(&mut r)?,
                asn: get_asn(&mut r)?,
            },
            _ => return Err(CodecError("unknown figure kind")),
        };
        if !r.is_empty() {
            return Err(CodecError("figure key is longer than its kind"));
        }
        Ok(key)
    }
}

fn put_order(out: &mut Vec<u8>, order: Order) {
    put_i64(out, order.0);
    put_u64(out, order.1);
    put_u64(out, order.2);
}

fn get_order(r: &mut Reader<'_>) -> Result<Order, CodecError> {
    Ok((r.i64()?, r.u64()?, r.u64()?))
}

impl Figure {
    /// Adds `other` (of the same kind; a different kind is a caller's bug and is ignored).
    pub fn merge(&mut self, other: &Figure) {
        match (self, other) {
            (Figure::ProbeDay(a), Figure::ProbeDay(b)) => {
                a.country = first(a.country, b.country);
                a.asn = first(a.asn, b.asn);
                a.works |= b.works;
                a.rtt_v6.merge(&b.rtt_v6);
                a.rtt_v4.merge(&b.rtt_v4);
                a.lost_v6.merge(&b.lost_v6);
                a.black_holes.merge(&b.black_holes);
                for (x, y) in a.ext_drops.iter_mut().zip(&b.ext_drops) {
                    x.merge(y);
                }
                a.domestic.merge(&b.domestic);
            }
            (Figure::ProbeHour(a), Figure::ProbeHour(b)) => {
                a.rtt_v6.merge(&b.rtt_v6);
                a.rtt_v4.merge(&b.rtt_v4);
            }
            (Figure::Tally(a), Figure::Tally(b)) => {
                a.count += b.count;
                a.success += b.success;
                a.rtt.merge(&b.rtt);
            }
            (Figure::Breaks(a), Figure::Breaks(b)) => a.count += b.count,
            (Figure::DnsScore(a), Figure::DnsScore(b)) => a.merge(b),
            (Figure::Readiness(a), Figure::Readiness(b)) => a.merge(b),
            _ => {}
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        match self {
            Figure::ProbeDay(d) => {
                out.push(KIND_DAY);
                match d.country {
                    Some(c) => {
                        out.push(1);
                        put_order(&mut out, c.order);
                        out.extend_from_slice(c.value.to_string().as_bytes());
                    }
                    None => out.push(0),
                }
                match d.asn {
                    Some(a) => {
                        out.push(1);
                        put_order(&mut out, a.order);
                        put_u64(&mut out, u64::from(a.value));
                    }
                    None => out.push(0),
                }
                out.push(u8::from(d.works));
                d.rtt_v6.encode(&mut out);
                d.rtt_v4.encode(&mut out);
                d.lost_v6.encode(&mut out);
                d.black_holes.encode(&mut out);
                for c in &d.ext_drops {
                    c.encode(&mut out);
                }
                d.domestic.encode(&mut out);
            }
            Figure::ProbeHour(h) => {
                out.push(KIND_HOUR);
                h.rtt_v6.encode(&mut out);
                h.rtt_v4.encode(&mut out);
            }
            Figure::Tally(t) => {
                out.push(KIND_TALLY);
                put_u64(&mut out, t.count);
                put_u64(&mut out, t.success);
                t.rtt.encode(&mut out);
            }
            Figure::Breaks(b) => {
                out.push(KIND_BREAKS);
                put_u64(&mut out, b.count);
            }
            Figure::DnsScore(d) => {
                out.push(KIND_DNS);
                d.encode(&mut out);
            }
            Figure::Readiness(d) => {
                out.push(KIND_READINESS);
                d.encode(&mut out);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT {
            return Err(CodecError("unknown figure format"));
        }
        let figure = match r.u8()? {
            KIND_DAY => {
                let country = match r.u8()? {
                    0 => None,
                    _ => {
                        let order = get_order(&mut r)?;
                        let value = std::str::from_utf8(r.bytes(2)?)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or(CodecError("country in a probe-day is not one"))?;
                        Some(First { order, value })
                    }
                };
                let asn = match r.u8()? {
                    0 => None,
                    _ => {
                        let order = get_order(&mut r)?;
                        let value = u32::try_from(r.u64()?)
                            .map_err(|_| CodecError("AS number above 32 bits"))?;
                        Some(First { order, value })
                    }
                };
                let works = r.u8()? != 0;
                let rtt_v6 = Sketch::decode(&mut r)?;
                let rtt_v4 = Sketch::decode(&mut r)?;
                let lost_v6 = Count::decode(&mut r)?;
                let black_holes = Count::decode(&mut r)?;
                let ext_drops = [
                    Count::decode(&mut r)?,
                    Count::decode(&mut r)?,
                    Count::decode(&mut r)?,
                ];
                let domestic = Count::decode(&mut r)?;
                Figure::ProbeDay(ProbeDay {
                    country,
                    asn,
                    works,
                    rtt_v6,
                    rtt_v4,
                    lost_v6,
                    black_holes,
                    ext_drops,
                    domestic,
                })
            }
            KIND_HOUR => Figure::ProbeHour(ProbeHour {
                rtt_v6: Sketch::decode(&mut r)?,
                rtt_v4: Sketch::decode(&mut r)?,
            }),
            KIND_TALLY => Figure::Tally(Tally {
                count: r.u64()?,
                success: r.u64()?,
                rtt: Sketch::decode(&mut r)?,
            }),
            KIND_BREAKS => Figure::Breaks(Breaks { count: r.u64()? }),
            KIND_DNS => Figure::DnsScore(Box::new(dns::DnsScore::decode(&mut r)?)),
            KIND_READINESS => Figure::Readiness(Box::new(readiness::ReadinessDay::decode(&mut r)?)),
            _ => return Err(CodecError("unknown figure kind")),
        };
        if !r.is_empty() {
            return Err(CodecError("figure value is longer than its kind"));
        }
        Ok(figure)
    }
}

/// Figure deltas (or whole figures), by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FigureSet {
    pub rows: BTreeMap<FigureKey, Figure>,
}

impl FigureSet {
    fn entry(&mut self, key: FigureKey, empty: impl FnOnce() -> Figure) -> &mut Figure {
        self.rows.entry(key).or_insert_with(empty)
    }

    /// Adds one result. Hour rows are kept only for hours starting at or after `hours_since`
    /// (µs; the map reads the last day only). `prefixes` places traceroute hops in countries.
    pub fn fold(&mut self, stored: &StoredResult, prefixes: &PrefixData, hours_since: i64) {
        let r = &stored.result;
        let at = r.started_at.0;
        let day = at.div_euclid(DAY_US);
        let order: Order = (at, r.key.boot_epoch, r.key.sequence);
        let global = r.destination.is_some_and(|d| classify(d).is_none());
        let ping_rtt_ns = match &r.outcome {
            Outcome::Ping(ping) => ping
                .min_rtt()
                .map(|rtt| u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX)),
            _ => None,
        };

        // Tallies, both sides.
        for (side, origin) in [
            (Side::Probe, &stored.probe_origin),
            (Side::Target, &stored.target_origin),
        ] {
            let key = FigureKey::Tally {
                day,
                side,
                country: origin.as_ref().and_then(|o| o.country),
                asn: origin.as_ref().and_then(|o| o.asn),
            };
            if let Figure::Tally(t) = self.entry(key, || Figure::Tally(Tally::default())) {
                t.count += 1;
                t.success += u64::from(r.outcome.reached_destination());
                if let Some(ns) = ping_rtt_ns {
                    t.rtt.add_ns(ns);
                }
            }
        }

        // Where IPv6 broke, by the probe's origin.
        if let Some(blame) = &stored.blame {
            let key = FigureKey::Breaks {
                day,
                country: blame.probe_country,
                asn: blame.probe_asn,
                failure: blame.failure,
                placement: blame.placement,
                responsible: blame.responsible_asn,
            };
            if let Figure::Breaks(b) = self.entry(key, || Figure::Breaks(Breaks::default())) {
                b.count += 1;
            }
        }

        // The DNS scorecard, by the probe's origin.
        if let Outcome::Dns(d) = &r.outcome {
            let key = FigureKey::DnsScore {
                day,
                country: stored.probe_origin.as_ref().and_then(|o| o.country),
                asn: stored.probe_origin.as_ref().and_then(|o| o.asn),
            };
            if let Figure::DnsScore(s) = self.entry(key, || Figure::DnsScore(Box::default())) {
                s.fold(stored, d, order);
            }
        }

        // The readiness trend: the probe's newest result of the task's domain that day.
        if let Outcome::Readiness(x) = &r.outcome {
            let key = FigureKey::Readiness {
                task: r.task_id,
                day,
            };
            if let Figure::Readiness(d) = self.entry(key, || Figure::Readiness(Box::default())) {
                d.fold(&r.key.probe_id, order, x);
            }
        }

        // The probe's day (the rules of `crate::daily`).
        let key = FigureKey::ProbeDay {
            day,
            probe: r.key.probe_id.clone(),
        };
        let Figure::ProbeDay(entry) = self.entry(key, || Figure::ProbeDay(ProbeDay::default()))
        else {
            return;
        };
        if let Some(origin) = &stored.probe_origin {
            let country = origin.country.map(|value| First { order, value });
            let asn = origin.asn.map(|value| First { order, value });
            entry.country = first(entry.country, country);
            entry.asn = first(entry.asn, asn);
        }
        if !global {
            return;
        }
        v6_tallies::observe_v6(
            stored,
            prefixes,
            v6_tallies::V6Tallies {
                lost: &mut entry.lost_v6,
                black_holes: &mut entry.black_holes,
                ext_drops: &mut entry.ext_drops,
                domestic: &mut entry.domestic,
            },
        );
        let Some(ns) = ping_rtt_ns else { return };
        match r.family_used {
            Some(Family::V6) => {
                entry.works = true;
                entry.rtt_v6.add_ns(ns);
            }
            Some(Family::V4) => entry.rtt_v4.add_ns(ns),
            None => return,
        }
        // The probe's hour, for the map's last day.
        let hour = at.div_euclid(HOUR_US);
        if hour.saturating_mul(HOUR_US) < hours_since {
            return;
        }
        let key = FigureKey::ProbeHour {
            hour,
            probe: r.key.probe_id.clone(),
        };
        if let Figure::ProbeHour(h) = self.entry(key, || Figure::ProbeHour(ProbeHour::default())) {
            match r.family_used {
                Some(Family::V6) => h.rtt_v6.add_ns(ns),
                _ => h.rtt_v4.add_ns(ns),
            }
        }
    }

    /// Adds every row of `other`.
    pub fn merge(&mut self, other: FigureSet) {
        for (key, figure) in other.rows {
            match self.rows.get_mut(&key) {
                Some(mine) => mine.merge(&figure),
                None => {
                    self.rows.insert(key, figure);
                }
            }
        }
    }
}

/// Where a published figure was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Rows kept as results arrive: O(groups).
    Figures,
    /// A scan of the raw results (stores that keep no figures, and the reference in tests).
    Scan,
}

impl Source {
    /// Figures when the store keeps them, else a scan.
    pub fn of(store: &dyn crate::store::Store) -> Result<Self, crate::store::StoreError> {
        Ok(if read::ready(store)? {
            Self::Figures
        } else {
            Self::Scan
        })
    }
}
