//! The readiness trend's rows (`FigureKey::Readiness`): per readiness task (one domain of one
//! campaign) and UTC day, each probe's newest result of that day, reduced to what the trend
//! scores — its order and its four components' checks (`campaign::readiness::observe`). The
//! trend's median over probes needs each probe's own values, so a row holds one entry per
//! probe that measured the domain that day; a report reads one row per (domain, day) instead
//! of every result of the campaign.
//!
//! Merging keeps, per probe, the entry of the newer result (start time, boot epoch,
//! sequence): associative, commutative and idempotent, so a replayed result changes nothing
//! and folding in any order gives the same row.

use super::Order;
use super::codec::{CodecError, Reader, put_i64, put_u64};
use crate::campaign::readiness::{Component, Reason, Tally, observe};
use sixmap_shared::ProbeId;
use sixmap_shared::measurement::ReadinessResult;
use std::collections::BTreeMap;

/// One probe's newest result of the day: its order and its checks per component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReadiness {
    pub order: Order,
    pub tallies: BTreeMap<Component, Tally>,
}

/// A (task, day) row: each probe's newest result that day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadinessDay {
    pub probes: BTreeMap<ProbeId, ProbeReadiness>,
}

impl ReadinessDay {
    /// Adds one result of `probe`.
    pub fn fold(&mut self, probe: &ProbeId, order: Order, result: &ReadinessResult) {
        self.keep(
            probe,
            ProbeReadiness {
                order,
                tallies: observe(result).tallies,
            },
        );
    }

    fn keep(&mut self, probe: &ProbeId, entry: ProbeReadiness) {
        match self.probes.get(probe) {
            Some(mine) if mine.order >= entry.order => {}
            _ => {
                self.probes.insert(probe.clone(), entry);
            }
        }
    }

    pub fn merge(&mut self, other: &ReadinessDay) {
        for (probe, entry) in &other.probes {
            self.keep(probe, entry.clone());
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.probes.len() as u64);
        for (probe, entry) in &self.probes {
            out.extend_from_slice(probe.as_str().as_bytes());
            put_i64(out, entry.order.0);
            put_u64(out, entry.order.1);
            put_u64(out, entry.order.2);
            put_u64(out, entry.tallies.len() as u64);
            for (component, t) in &entry.tallies {
                out.push(component.code());
                put_u64(out, u64::from(t.passed));
                put_u64(out, u64::from(t.failed));
                put_u64(out, u64::from(t.inconclusive));
                out.push(t.not_applicable.map_or(0, |r| r.code() + 1));
                out.push(u8::from(t.not_measured));
            }
        }
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let count = r.u64()?;
        let mut probes = BTreeMap::new();
        for _ in 0..count {
            let probe: ProbeId = std::str::from_utf8(r.bytes(super::PROBE_ID_LEN)?)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(CodecError("probe id in a readiness row is not one"))?;
            let order = (r.i64()?, r.u64()?, r.u64()?);
            let components = r.u64()?;
            if components > Component::ALL.len() as u64 {
                return Err(CodecError("more components than there are"));
            }
            let mut tallies = BTreeMap::new();
            for _ in 0..components {
                let component = Component::from_code(r.u8()?)
                    .ok_or(CodecError("unknown readiness component"))?;
                let count = |r: &mut Reader<'_>| {
                    u32::try_from(r.u64()?).map_err(|_| CodecError("check count above 32 bits"))
                };
                let tally = Tally {
                    passed: count(r)?,
                    failed: count(r)?,
                    inconclusive: count(r)?,
                    not_applicable: match r.u8()? {
                        0 => None,
                        code => Some(
                            Reason::from_code(code - 1)
                                .ok_or(CodecError("unknown readiness reason"))?,
                        ),
                    },
                    not_measured: r.u8()? != 0,
                };
                tallies.insert(component, tally);
            }
            probes.insert(probe, ProbeReadiness { order, tallies });
        }
        Ok(Self { probes })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Figure, FigureKey};
    use super::*;
    use crate::campaign::readiness::tests::{good, partial, v4only};
    use sixmap_shared::TaskId;

    fn probe(n: u64) -> ProbeId {
        format!("{n:016x}").parse().unwrap()
    }

    /// Rows encode and decode to themselves; merging keeps each probe's newest result
    /// whatever the order, and a result folded twice counts once.
    #[test]
    fn rows_round_trip_and_merge_to_the_newest_per_probe() {
        let results = [good(), partial(), v4only()];
        let folds: Vec<(ProbeId, Order, usize)> = vec![
            (probe(1), (10, 1, 1), 0),
            (probe(1), (30, 1, 3), 1),
            (probe(1), (20, 1, 2), 2),
            (probe(2), (15, 2, 1), 2),
            (probe(2), (15, 2, 1), 2),
        ];
        let mut forward = ReadinessDay::default();
        for (p, order, r) in &folds {
            forward.fold(p, *order, &results[*r]);
        }
        let mut backward = ReadinessDay::default();
        for (p, order, r) in folds.iter().rev() {
            let mut one = ReadinessDay::default();
            one.fold(p, *order, &results[*r]);
            backward.merge(&one);
        }
        assert_eq!(forward, backward);
        assert_eq!(forward.probes.len(), 2);
        assert_eq!(forward.probes[&probe(1)].order, (30, 1, 3));
        assert_eq!(
            forward.probes[&probe(1)].tallies,
            observe(&partial()).tallies
        );
        let figure = Figure::Readiness(Box::new(forward));
        assert_eq!(Figure::decode(&figure.encode()).unwrap(), figure);
        let key = FigureKey::Readiness {
            task: TaskId::new(7).unwrap(),
            day: -3,
        };
        assert_eq!(FigureKey::decode(&key.encode()).unwrap(), key);
        // A task's days sort in day order, and before the next task's.
        let day = |task: u64, day: i64| {
            FigureKey::Readiness {
                task: TaskId::new(task).unwrap(),
                day,
            }
            .encode()
        };
        assert!(day(7, -3) < day(7, 2) && day(7, 2) < day(8, -100));
        // Damaged values are refused, not misread.
        let mut bytes = figure.encode();
        bytes.truncate(bytes.len() - 1);
        assert!(Figure::decode(&bytes).is_err());
        assert!(FigureKey::decode(&day(7, 1)[..12]).is_err());
    }
}
