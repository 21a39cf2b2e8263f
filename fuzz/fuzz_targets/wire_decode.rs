//! Arbitrary bytes as a message from the other side of the session: prost decoding of every
//! message a daemon receives, then `sixmap_proto::decode` into validated domain types. Neither
//! step may panic, whatever the bytes; anything accepted must also pass the domain checks.
//!
//! The first byte picks the message type so one corpus covers all of them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sixmap_proto::{decode, v1};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 8 {
        0 => {
            if let Ok(wire) = v1::TaskAssignment::decode(bytes)
                && let Ok(assignment) = decode::assignment(&wire)
            {
                // Accepted specs stay within the bounds the probe relies on.
                assert!(assignment.spec.timeout <= sixmap_shared::measurement::MAX_TIMEOUT);
            }
        }
        1 => {
            if let Ok(wire) = v1::MeasurementResult::decode(bytes)
                && let Ok(result) = decode::result(&wire)
            {
                assert!(
                    result.validate().is_ok(),
                    "decode accepted an invalid result"
                );
            }
        }
        2 => {
            if let Ok(wire) = v1::ResultBatch::decode(bytes) {
                let _ = decode::received_batch(&wire);
            }
            // The probe's outbox entries, as read back from a disk that may be damaged.
            let _ = decode::outbox_result(bytes);
            let _ = decode::outbox_loss(bytes);
        }
        3 => {
            if let Ok(wire) = v1::Hello::decode(bytes) {
                let _ = decode::hello(&wire);
            }
        }
        4 => {
            if let Ok(wire) = v1::MeasurementSpec::decode(bytes) {
                let _ = decode::spec(&wire);
            }
        }
        5 => {
            if let Ok(wire) = v1::Ack::decode(bytes) {
                let _ = decode::ack(&wire);
            }
        }
        6 => {
            if let Ok(wire) = v1::SelfTest::decode(bytes) {
                let _ = decode::self_test(&wire);
            }
        }
        _ => {
            // Whole session messages, decoded as each daemon's edge does.
            if let Ok(wire) = v1::CollectorMessage::decode(bytes) {
                let _ = decode::collector_message(wire);
            }
            if let Ok(wire) = v1::ProbeMessage::decode(bytes) {
                let _ = decode::probe_message(wire);
            }
        }
    }
});
