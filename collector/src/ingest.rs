//! Turning a result batch from a probe into stored results and an ack.
//!
//! Order matters for zero loss: validate, write, flush, and only then ack. A result the
//! collector will never accept (malformed, another probe's, a task never assigned) is
//! rejected explicitly so the probe can drop it instead of resending it forever.

use crate::enrich;
use crate::figures::feed::Feed;
use crate::figures::fold::hours_since;
use crate::metrics::RejectReason;
use crate::store::{Store, StoreError, StoredResult};
use sixmap_shared::health::OutboxLoss;
use sixmap_shared::policy::classify;
use sixmap_shared::prefixes::PrefixData;
use sixmap_shared::session::{Ack, FieldError, ReceivedBatch, Rejection};
use sixmap_shared::{Family, MeasurementResult, ProbeId, TaskId, UnixMicros};
use std::collections::HashMap;
use tracing::warn;

/// Counts of one batch, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    pub new: usize,
    pub duplicate: usize,
    pub rejected: usize,
    /// `rejected` by reason: malformed, another probe's, a task never assigned.
    pub rejected_malformed: usize,
    pub rejected_foreign_probe: usize,
    pub rejected_unassigned_task: usize,
    pub losses_new: usize,
    /// Results counted in the new loss records.
    pub lost_results: u64,
    /// Start of the newest result in the batch that reached a global target over IPv6.
    pub last_v6_success: Option<UnixMicros>,
}

/// Whether a result shows IPv6 working towards the Internet (not a lab or LAN target).
fn v6_success(result: &MeasurementResult) -> bool {
    // A dual-stack result's own destination is the v6 leg's, checked by the outcome.
    result.outcome.reached_destination()
        && result.family_used == Some(Family::V6)
        && result.destination.is_some_and(|d| classify(d).is_none())
}

/// Checks, enriches, stores and flushes a batch (decoded at the edge of the session stream,
/// each result on its own); returns the ack to send. A batch-level problem (too many results)
/// rejects the whole batch with its field named.
pub fn ingest_batch(
    store: &dyn Store,
    prefixes: &PrefixData,
    probe: &ProbeId,
    batch: ReceivedBatch,
) -> Result<Result<(Ack, BatchStats), FieldError>, StoreError> {
    let outcome = write_batch(store, prefixes, probe, batch, None)?;
    store.flush()?;
    Ok(outcome)
}

/// [`ingest_batch`] without the flush: the ack it returns may be sent only once a flush
/// that started after this returned has completed (sessions share them through
/// [`crate::commit::GroupCommit`]). The figure deltas of the new results go to `feed`
/// (the folder's) when the store says where it logged them.
pub fn write_batch(
    store: &dyn Store,
    prefixes: &PrefixData,
    probe: &ProbeId,
    batch: ReceivedBatch,
    feed: Option<&Feed>,
) -> Result<Result<(Ack, BatchStats), FieldError>, StoreError> {
    let batch_id = batch.batch_id;
    let (decoded, losses) = match batch.items {
        Ok(items) => items,
        Err(e) => return Ok(Err(e)),
    };
    let mut accepted: Vec<MeasurementResult> = Vec::with_capacity(decoded.len());
    let mut rejected = Vec::new();
    let mut reasons = [0usize; 3];
    // A batch holds results of a handful of tasks: ask the store once per task.
    let mut assigned = HashMap::new();
    for item in decoded {
        match item {
            Ok(result) => match admissible(store, &mut assigned, probe, &result)? {
                Ok(()) => accepted.push(result),
                Err((class, reason)) => {
                    reasons[class as usize] += 1;
                    rejected.push(Rejection {
                        key: result.key,
                        reason,
                    })
                }
            },
            Err((Some(key), error)) => {
                reasons[RejectReason::Malformed as usize] += 1;
                rejected.push(Rejection {
                    key,
                    reason: error.to_string(),
                })
            }
            Err((None, error)) => {
                // Without a key the probe cannot be told which one; it is a probe bug.
                warn!(probe = %probe, %error, "dropping result without a valid key");
            }
        }
    }
    let mut accepted_losses: Vec<OutboxLoss> = Vec::with_capacity(losses.len());
    let mut refused_losses = Vec::new();
    for item in losses {
        match item {
            Ok(loss) if &loss.key.probe_id == probe => accepted_losses.push(loss),
            Ok(loss) => {
                warn!(probe = %probe, key = %loss.key, "dropping another probe's loss record")
            }
            // A loss record the collector cannot read is logged and acked, so the probe does
            // not resend it forever; without a key it cannot be acked.
            Err((key, error)) => {
                warn!(probe = %probe, key = ?key.as_ref().map(|k| k.to_string()), %error, "malformed loss record");
                refused_losses.extend(key.filter(|k| &k.probe_id == probe));
            }
        }
    }
    let stored: Vec<StoredResult> = accepted
        .into_iter()
        .map(|result| {
            let probe_origin = result.source.and_then(|a| enrich::lookup(prefixes, a));
            let target_origin = result.destination.and_then(|a| enrich::lookup(prefixes, a));
            let blame = crate::blame::of_result(
                &result.outcome,
                result.destination,
                probe_origin.as_ref(),
                target_origin.as_ref(),
                &|a| enrich::lookup(prefixes, a),
            );
            StoredResult {
                probe_origin,
                target_origin,
                blame,
                result,
            }
        })
        .collect();
    let (inserted, logged_from) = store.insert_results_logged(&stored)?;
    if let (Some(feed), Some(first)) = (feed, logged_from) {
        let new: Vec<&StoredResult> = stored
            .iter()
            .zip(&inserted)
            .filter(|(_, i)| matches!(i, crate::store::Inserted::New))
            .map(|(s, _)| s)
            .collect();
        feed.offer(
            first,
            new.into_iter(),
            prefixes,
            hours_since(UnixMicros::now()),
        );
    }
    let inserted_losses = store.insert_losses(&accepted_losses)?;
    let mut lost_results = 0;
    let mut losses_new = 0;
    for (loss, outcome) in accepted_losses.iter().zip(&inserted_losses) {
        if matches!(outcome, crate::store::Inserted::New) {
            losses_new += 1;
            lost_results += loss.count;
            warn!(probe = %probe, key = %loss.key, reason = ?loss.reason, count = loss.count, detail = %loss.detail, "probe reports lost results");
        }
    }
    let last_v6_success = stored
        .iter()
        .map(|s| &s.result)
        .filter(|r| v6_success(r))
        .map(|r| r.started_at)
        .max();
    let new = inserted
        .iter()
        .filter(|i| matches!(i, crate::store::Inserted::New))
        .count();
    let stats = BatchStats {
        new,
        duplicate: inserted.len() - new,
        rejected: rejected.len(),
        rejected_malformed: reasons[RejectReason::Malformed as usize],
        rejected_foreign_probe: reasons[RejectReason::ForeignProbe as usize],
        rejected_unassigned_task: reasons[RejectReason::UnassignedTask as usize],
        losses_new,
        lost_results,
        last_v6_success,
    };
    Ok(Ok((
        Ack {
            batch_id,
            stored: stored.into_iter().map(|s| s.result.key).collect(),
            rejected,
            stored_losses: accepted_losses
                .into_iter()
                .map(|l| l.key)
                .chain(refused_losses)
                .collect(),
        },
        stats,
    )))
}

/// `Err(reason)` if this result must never be stored.
fn admissible(
    store: &dyn Store,
    assigned: &mut HashMap<TaskId, bool>,
    probe: &ProbeId,
    result: &MeasurementResult,
) -> Result<Result<(), (RejectReason, String)>, StoreError> {
    if &result.key.probe_id != probe {
        return Ok(Err((
            RejectReason::ForeignProbe,
            format!(
                "result {} belongs to probe {}, but this session is probe {probe}",
                result.key, result.key.probe_id
            ),
        )));
    }
    let is_assigned = match assigned.get(&result.task_id) {
        Some(known) => *known,
        None => {
            let known = store.is_assigned(probe, result.task_id)?;
            assigned.insert(result.task_id, known);
            known
        }
    };
    if !is_assigned {
        return Ok(Err((
            RejectReason::UnassignedTask,
            format!(
                "task_id {} was never assigned to probe {probe}",
                result.task_id
            ),
        )));
    }
    Ok(Ok(()))
}
