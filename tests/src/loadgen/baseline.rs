//! The raw sled baseline: the same result records the collector stores (key probe ‖ boot
//! epoch ‖ sequence, value the result's compact form as `SledStore` writes it: format byte,
//! enrichment, protobuf), inserted in batches with a `flush()` (fsync) after each, by one writer: what sled
//! itself manages with "durable before ack", with no network, no validation, no index.

use super::results::{Factory, KINDS, Rng, TaskIds};
use sixmap_proto::{decode, encode};
use sixmap_shared::{ProbeId, ResultKey, UnixMicros};
use std::path::Path;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("sled at {path}: {reason}")]
    Sled { path: String, reason: String },
    #[error("simulated result: {0}")]
    Result(String),
}

/// What the baseline did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub results: u64,
    pub batches: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl Baseline {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.results as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Distinct records to cycle through (keys stay unique): enough for the mix of sizes.
const POOL: usize = 4096;

/// Encoded values of results of the simulated mix, as the collector's store encodes them.
fn values(factory: &Factory) -> Result<Vec<Vec<u8>>, BaselineError> {
    let mut tasks = TaskIds::default();
    for (i, kind) in KINDS.into_iter().enumerate() {
        tasks.insert(kind, i as u64 + 1);
    }
    let probe = ProbeId::random().map_err(|e| BaselineError::Result(e.to_string()))?;
    let mut rng = Rng::new(99);
    (1..=POOL as u64)
        .map(|sequence| {
            let key = encode::result_key(&ResultKey {
                probe_id: probe.clone(),
                boot_epoch: 1,
                sequence,
            });
            let wire = factory
                .result(&mut rng, key, &tasks, UnixMicros::now())
                .ok_or_else(|| BaselineError::Result("no template".into()))?;
            let result = decode::result(&wire).map_err(|e| BaselineError::Result(e.to_string()))?;
            // As the collector's store writes a result without enrichment: its format byte
            // (2), no enrichment (0), the protobuf without key and start time.
            let mut bytes = vec![2u8, 0];
            bytes.extend_from_slice(&encode::stored_result(&result));
            Ok(bytes)
        })
        .collect()
}

/// Inserts `results` records in batches of `batch_size`, flushing after each batch, into a
/// new sled database in `dir`.
pub fn run(
    dir: &Path,
    factory: &Factory,
    results: u64,
    batch_size: usize,
) -> Result<Baseline, BaselineError> {
    let sled_error = |e: sled::Error| BaselineError::Sled {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    let values = values(factory)?;
    let db = sled::Config::new().path(dir).open().map_err(sled_error)?;
    let tree = db.open_tree("results").map_err(sled_error)?;
    // Keys of the collector's shape: a probe id, the boot epoch, the sequence.
    let probes: Vec<ProbeId> = (0..64)
        .map(|_| ProbeId::random().map_err(|e| BaselineError::Result(e.to_string())))
        .collect::<Result<_, _>>()?;
    let batch_size = batch_size.max(1) as u64;
    let (mut done, mut batches, mut bytes) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while done < results {
        let mut batch = sled::Batch::default();
        let n = batch_size.min(results - done);
        for i in done..done + n {
            let probe = &probes[(i / batch_size) as usize % probes.len()];
            let mut key = Vec::with_capacity(40);
            key.extend_from_slice(probe.as_str().as_bytes());
            key.extend_from_slice(&1u64.to_be_bytes());
            key.extend_from_slice(&(i + 1).to_be_bytes());
            let value = &values[i as usize % values.len()];
            bytes += value.len() as u64;
            batch.insert(key, value.as_slice());
        }
        tree.apply_batch(batch).map_err(sled_error)?;
        db.flush().map_err(sled_error)?;
        done += n;
        batches += 1;
    }
    Ok(Baseline {
        results: done,
        batches,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_writes_every_record_durably() {
        let dir = tempfile::tempdir().unwrap();
        let factory = Factory::new(1).unwrap();
        let run = run(dir.path(), &factory, 250, 100).unwrap();
        assert_eq!((run.results, run.batches), (250, 3));
        assert!(run.bytes > 250 * 50, "{run:?}");
        let db = sled::open(dir.path()).unwrap();
        assert_eq!(db.open_tree("results").unwrap().len(), 250);
    }
}
