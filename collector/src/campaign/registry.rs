//! The session registry: connected probes' streams, so campaign tasks and cancels reach them
//! at once instead of at their next hello, and what this process has pushed.

use crate::store::StoreError;
use sixmap_shared::session::{Cancel, CollectorMessage};
use sixmap_shared::{ProbeId, UnixMicros};
use std::collections::HashSet;
use tokio::sync::mpsc;
use tracing::debug;

use super::{CampaignRecord, Campaigns, lock};

/// Sender of a probe's session stream, bounded: the session's edge (`crate::control`) encodes
/// what it carries for the wire.
pub type SessionSender = mpsc::Sender<CollectorMessage>;

#[derive(Debug, Default)]
pub(super) struct Pushed {
    pub(super) active: HashSet<u64>,
    pub(super) ended: HashSet<u64>,
}

impl Campaigns {
    /// Registers a connected probe's session stream.
    pub fn connected(&self, probe: &ProbeId, tx: SessionSender) {
        lock(&self.sessions).insert(probe.clone(), tx);
    }

    /// Forgets a session stream, unless a newer session of the probe replaced it.
    pub fn disconnected(&self, probe: &ProbeId, tx: &SessionSender) {
        let mut sessions = lock(&self.sessions);
        if sessions.get(probe).is_some_and(|s| s.same_channel(tx)) {
            sessions.remove(probe);
        }
    }

    pub(super) fn is_connected(&self, probe: &ProbeId) -> bool {
        lock(&self.sessions)
            .get(probe)
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Sends a campaign's tasks to its chosen probes connected to this collector; with
    /// `skip_answered`, leaves out one-off tasks a probe already answered (a campaign this
    /// process did not create may be old).
    pub(super) fn push_assignments(
        &self,
        record: &CampaignRecord,
        now: UnixMicros,
        skip_answered: bool,
    ) -> Result<(), StoreError> {
        let sessions = lock(&self.sessions).clone();
        let once = record.spec.schedule.every.is_none();
        for probe in &record.probes {
            if let Some(tx) = sessions.get(&probe.probe) {
                let answered = if skip_answered && once {
                    self.answered(record.id, &probe.probe)?
                } else {
                    HashSet::new()
                };
                for a in self.assignments_of(record, &probe.probe, &answered, now) {
                    // A full or closed stream: the probe gets it at its next hello.
                    let task = a.task_id;
                    let sent = tx.try_send(CollectorMessage::Assign(a)).is_ok();
                    debug!(campaign = record.id, probe = %probe.probe, task = %task, sent, "campaign task pushed");
                }
            }
        }
        Ok(())
    }

    /// Tells a campaign's probes connected to this collector to stop its tasks.
    pub(super) fn push_cancels(&self, record: &CampaignRecord, reason: &str) {
        let sessions = lock(&self.sessions).clone();
        for probe in &record.probes {
            if let Some(tx) = sessions.get(&probe.probe) {
                for task in &record.tasks {
                    let cancel = CollectorMessage::Cancel(Cancel {
                        task_id: task.task_id,
                        reason: format!("campaign {}: {reason}", record.id),
                    });
                    let _ = tx.try_send(cancel);
                }
            }
        }
    }

    /// Pushes what other collectors sharing the store decided: tasks of campaigns created
    /// there, cancels of campaigns ended there, to the probes connected here. Sending a task
    /// or a cancel twice is harmless (the probe keeps one identical assignment), so a restart
    /// that forgets what was pushed only repeats messages.
    pub(super) fn push_others(
        &self,
        records: &[CampaignRecord],
        now: UnixMicros,
    ) -> Result<(), StoreError> {
        const RECENTLY: i64 = 30 * 86_400 * 1_000_000;
        for record in records {
            if record.is_active() {
                if lock(&self.pushed).active.insert(record.id) {
                    debug!(
                        campaign = record.id,
                        "campaign seen: its tasks go to the probes connected here"
                    );
                    self.push_assignments(record, now, true)?;
                }
            } else if record.ended_at.is_some_and(|at| now.0 - at.0 < RECENTLY)
                && lock(&self.pushed).ended.insert(record.id)
            {
                let reason = record.status_reason.as_deref().unwrap_or("ended");
                self.push_cancels(record, reason);
            }
        }
        Ok(())
    }
}
