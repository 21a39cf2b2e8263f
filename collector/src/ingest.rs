//! Turning a result batch from a probe into stored results and an ack.
//!
//! Order matters for zero loss: validate, write, flush, and only then ack. A result the
//! collector will never accept (malformed, another probe's, a task never assigned) is
//! rejected explicitly so the probe can drop it instead of resending it forever.

use crate::store::{Store, StoreError};
use sixmap_proto::{decode, v1};
use sixmap_shared::session::{Ack, Rejection};
use sixmap_shared::{MeasurementResult, ProbeId};
use tracing::warn;

/// Counts of one batch, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    pub new: usize,
    pub duplicate: usize,
    pub rejected: usize,
}

/// Validates, stores and flushes a batch; returns the ack to send.
/// A batch-level problem (too many results) rejects the whole batch with its field named.
pub fn ingest_batch(
    store: &dyn Store,
    probe: &ProbeId,
    batch: &v1::ResultBatch,
) -> Result<Result<(Ack, BatchStats), decode::WireError>, StoreError> {
    let decoded = match decode::batch(batch) {
        Ok(decoded) => decoded,
        Err(e) => return Ok(Err(e)),
    };
    let mut accepted: Vec<MeasurementResult> = Vec::with_capacity(decoded.len());
    let mut rejected = Vec::new();
    for item in decoded {
        match item {
            Ok(result) => match admissible(store, probe, &result)? {
                Ok(()) => accepted.push(result),
                Err(reason) => rejected.push(Rejection {
                    key: result.key,
                    reason,
                }),
            },
            Err((Some(key), error)) => rejected.push(Rejection {
                key,
                reason: error.to_string(),
            }),
            Err((None, error)) => {
                // Without a key the probe cannot be told which one; it is a probe bug.
                warn!(probe = %probe, %error, "dropping result without a valid key");
            }
        }
    }
    let inserted = store.insert_results(&accepted)?;
    store.flush()?;
    let new = inserted
        .iter()
        .filter(|i| matches!(i, crate::store::Inserted::New))
        .count();
    let stats = BatchStats {
        new,
        duplicate: inserted.len() - new,
        rejected: rejected.len(),
    };
    Ok(Ok((
        Ack {
            batch_id: batch.batch_id,
            stored: accepted.into_iter().map(|r| r.key).collect(),
            rejected,
        },
        stats,
    )))
}

/// `Err(reason)` if this result must never be stored.
fn admissible(
    store: &dyn Store,
    probe: &ProbeId,
    result: &MeasurementResult,
) -> Result<Result<(), String>, StoreError> {
    if &result.key.probe_id != probe {
        return Ok(Err(format!(
            "result {} belongs to probe {}, but this session is probe {probe}",
            result.key, result.key.probe_id
        )));
    }
    if !store.is_assigned(probe, result.task_id)? {
        return Ok(Err(format!(
            "task_id {} was never assigned to probe {probe}",
            result.task_id
        )));
    }
    Ok(Ok(()))
}
