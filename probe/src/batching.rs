//! Splitting pending results into batches that respect both limits of the collector: the
//! number of results per batch and the gRPC message size. A result is never dropped for size:
//! one that alone exceeds the byte budget still travels, alone (results are bounded far below
//! the message limit, see `sixmap-proto`'s tests).

use prost::Message;
use sixmap_proto::v1;

/// Bytes a batch may take, leaving room for the envelope and HTTP/2 framing.
pub const BATCH_BYTE_BUDGET: usize = sixmap_shared::session::MAX_MESSAGE_BYTES / 2;

/// Greedy split in order: a batch ends when adding the next result would pass either limit.
pub fn split(
    results: Vec<v1::MeasurementResult>,
    max_count: usize,
    max_bytes: usize,
) -> Vec<Vec<v1::MeasurementResult>> {
    let max_count = max_count.max(1);
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for result in results {
        // Field tag and length prefix of a repeated message, at most 1 + 10 bytes.
        let size = result.encoded_len() + 11;
        if !current.is_empty() && (current.len() == max_count || bytes + size > max_bytes) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(result);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(sequence: u64, padding: usize) -> v1::MeasurementResult {
        v1::MeasurementResult {
            key: Some(v1::ResultKey {
                probe_id: "0123456789abcdef".into(),
                boot_epoch: 1,
                sequence,
            }),
            software_version: "x".repeat(padding),
            ..Default::default()
        }
    }

    fn sequences(batches: &[Vec<v1::MeasurementResult>]) -> Vec<Vec<u64>> {
        batches
            .iter()
            .map(|b| {
                b.iter()
                    .filter_map(|r| r.key.as_ref().map(|k| k.sequence))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn splits_by_count_in_order() {
        let batches = split((1..=5).map(|s| result(s, 0)).collect(), 2, usize::MAX);
        assert_eq!(sequences(&batches), vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(split(Vec::new(), 2, 100).is_empty());
    }

    #[test]
    fn splits_by_size_and_never_drops_an_oversized_result() {
        let one = result(1, 1000).encoded_len() + 11;
        let results = vec![
            result(1, 1000),
            result(2, 1000),
            result(3, 5000),
            result(4, 1000),
        ];
        let batches = split(results, 100, 2 * one);
        assert_eq!(sequences(&batches), vec![vec![1, 2], vec![3], vec![4]]);
        for batch in &batches {
            let message = v1::ResultBatch {
                batch_id: u64::MAX,
                results: batch.clone(),
            };
            assert!(batch.len() == 1 || message.encoded_len() <= 2 * one + 11);
        }
    }
}
