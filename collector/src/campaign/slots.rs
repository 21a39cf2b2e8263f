//! When a probe runs a campaign task: its own stable offset within the spread, then every
//! period after, so runs do not come in bursts and a reconnecting probe keeps its phase.

use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::time::Duration;

use super::CampaignRecord;
use super::selection::stable_hash;

/// The first run of a probe's task: at its own offset within the spread after the start (a
/// stable hash of campaign, probe and task), so runs do not come in bursts.
pub(super) fn first_slot(record: &CampaignRecord, probe: &ProbeId, task: TaskId) -> i64 {
    let schedule = &record.spec.schedule;
    let spread_us = u64::try_from(schedule.spread.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let offset = stable_hash(&[
        &record.id.to_be_bytes(),
        probe.as_str().as_bytes(),
        &task.get().to_be_bytes(),
    ]) % spread_us;
    schedule
        .start
        .0
        .saturating_add(i64::try_from(offset).unwrap_or(0))
}

pub(super) fn every_us(every: Duration) -> i64 {
    i64::try_from(every.as_micros()).unwrap_or(i64::MAX).max(1)
}

/// When a probe's task should first run: its first slot, and for a periodic campaign the
/// next of its slots from now, so a reconnecting probe keeps its phase.
pub(super) fn not_before(
    record: &CampaignRecord,
    probe: &ProbeId,
    task: TaskId,
    now: UnixMicros,
) -> Option<UnixMicros> {
    let first = first_slot(record, probe, task);
    let at = match record.spec.schedule.every {
        Some(every) if first < now.0 => {
            let every = every_us(every);
            first + ((now.0 - first) / every + 1) * every
        }
        _ => first,
    };
    (at > now.0).then_some(UnixMicros(at))
}
