//! Typed reads of stored figures, for `maps`, `daily` and `query::aggregate`. When the store
//! keeps no figures ([`ready`] is false: ClickHouse, or a sled store without its ingest log)
//! those modules compute from a scan of the results instead, as they did before figures.

use super::{DAY_US, range_start, readiness_start};
use super::{Figure, FigureKey, ProbeDay, ProbeHour, Side, Tally, codec::CodecError, kind};
use crate::store::{Store, StoreError};
use sixmap_shared::prefixes::CountryCode;
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::collections::BTreeMap;

/// Whether stored figures can answer: kept by this store and built at least once.
pub fn ready(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(store.keeps_figures() && store.figures_cursor()?.is_some())
}

pub(crate) fn corrupt(key: &[u8], e: CodecError) -> StoreError {
    StoreError::Corrupt {
        key: format!("figures/{}", String::from_utf8_lossy(key)),
        reason: e.to_string(),
    }
}

/// Every row of one kind with time (day or hour number) in `[from, to)`, decoded.
fn rows(
    store: &dyn Store,
    kind: u8,
    from: i64,
    to: i64,
    visit: &mut dyn FnMut(FigureKey, Figure) -> bool,
) -> Result<(), StoreError> {
    let mut failed = None;
    store.figure_rows(
        &range_start(kind, from),
        &range_start(kind, to),
        &mut |key, value| {
            let decoded = FigureKey::decode(key)
                .and_then(|k| Figure::decode(value).map(|f| (k, f)))
                .map_err(|e| corrupt(key, e));
            match decoded {
                Ok((k, f)) => visit(k, f),
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        },
    )?;
    failed.map_or(Ok(()), Err)
}

/// Each probe's row of the UTC day holding `day`.
pub fn probe_days(
    store: &dyn Store,
    day: UnixMicros,
) -> Result<BTreeMap<ProbeId, ProbeDay>, StoreError> {
    let number = day.0.div_euclid(DAY_US);
    let mut out = BTreeMap::new();
    rows(store, kind::DAY, number, number + 1, &mut |key, figure| {
        if let (FigureKey::ProbeDay { probe, .. }, Figure::ProbeDay(d)) = (key, figure) {
            out.insert(probe, d);
        }
        true
    })?;
    Ok(out)
}

/// Each probe's hourly rows for hours numbered `[from_hour, to_hour)`, merged.
pub fn probe_hours(
    store: &dyn Store,
    from_hour: i64,
    to_hour: i64,
) -> Result<BTreeMap<ProbeId, ProbeHour>, StoreError> {
    let mut out: BTreeMap<ProbeId, ProbeHour> = BTreeMap::new();
    rows(store, kind::HOUR, from_hour, to_hour, &mut |key, figure| {
        if let (FigureKey::ProbeHour { probe, .. }, Figure::ProbeHour(h)) = (key, figure) {
            let mine = out.entry(probe).or_default();
            mine.rtt_v6.merge(&h.rtt_v6);
            mine.rtt_v4.merge(&h.rtt_v4);
        }
        true
    })?;
    Ok(out)
}

/// One stored tally with its group.
#[derive(Debug)]
pub struct TallyRow {
    pub day: i64,
    pub country: Option<CountryCode>,
    pub asn: Option<u32>,
    pub tally: Tally,
}

/// Tallies of `side` for days numbered `[from_day, to_day)`, in day order; stops when
/// `visit` returns false.
pub fn tallies(
    store: &dyn Store,
    side: Side,
    from_day: i64,
    to_day: i64,
    visit: &mut dyn FnMut(TallyRow) -> bool,
) -> Result<(), StoreError> {
    rows(
        store,
        kind::TALLY,
        from_day,
        to_day,
        &mut |key, figure| match (key, figure) {
            (
                FigureKey::Tally {
                    day,
                    side: s,
                    country,
                    asn,
                },
                Figure::Tally(tally),
            ) if s == side => visit(TallyRow {
                day,
                country,
                asn,
                tally,
            }),
            _ => true,
        },
    )
}

/// Days (numbers) that have probe-day rows, oldest first.
pub fn days(store: &dyn Store) -> Result<Vec<i64>, StoreError> {
    let mut out = Vec::new();
    let mut from = i64::MIN;
    // One row per day found: jump to the next day each time.
    loop {
        let mut found = None;
        rows(store, kind::DAY, from, i64::MAX, &mut |key, _| {
            if let FigureKey::ProbeDay { day, .. } = key {
                found = Some(day);
            }
            false
        })?;
        match found {
            Some(day) => {
                out.push(day);
                if day == i64::MAX {
                    break;
                }
                from = day + 1;
            }
            None => break,
        }
    }
    Ok(out)
}

/// The readiness rows of `task` for days numbered `[from_day, to_day)`, in day order; stops
/// when `visit` returns false.
pub fn readiness_days(
    store: &dyn Store,
    task: TaskId,
    from_day: i64,
    to_day: i64,
    visit: &mut dyn FnMut(i64, super::readiness::ReadinessDay) -> bool,
) -> Result<(), StoreError> {
    let mut failed = None;
    store.figure_rows(
        &readiness_start(task.get(), from_day),
        &readiness_start(task.get(), to_day),
        &mut |key, value| {
            let decoded = FigureKey::decode(key)
                .and_then(|k| Figure::decode(value).map(|f| (k, f)))
                .map_err(|e| corrupt(key, e));
            match decoded {
                Ok((FigureKey::Readiness { day, .. }, Figure::Readiness(row))) => visit(day, *row),
                Ok(_) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        },
    )?;
    failed.map_or(Ok(()), Err)
}
