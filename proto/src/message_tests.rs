//! Session messages through the wire and back, as the other side decodes them: a result batch
//! item by item, an unusable assignment as content, other errors named from the message.

use crate::kinds_tests::{base, outcomes, specs};
use crate::{decode, encode, v1};
use prost::Message;
use sixmap_shared::health::{InterfaceKind, LossReason, OutboxLoss, ProbeTag, SelfTest, TagName};
use sixmap_shared::ids::{ResultKey, TaskId};
use sixmap_shared::measurement::MeasurementKind;
use sixmap_shared::session::{
    Ack, Assignment, Cancel, CollectorMessage, Heartbeat, Hello, MAX_BATCH_RESULTS, ProbeMessage,
    ReceivedBatch, Rejection, ResultBatch, Welcome,
};
use sixmap_shared::time::UnixMicros;
use sixmap_shared::version::Version;
use std::time::Duration;

fn key(sequence: u64) -> ResultKey {
    ResultKey {
        probe_id: "0123456789abcdef".parse().unwrap(),
        boot_epoch: 4,
        sequence,
    }
}

fn loss(sequence: u64) -> OutboxLoss {
    OutboxLoss {
        key: key(sequence),
        reason: LossReason::OutboxFull,
        count: 3,
        count_unknown: false,
        bytes: 900,
        first: Some(key(10)),
        last: Some(key(12)),
        oldest_started_at: Some(UnixMicros(5)),
        newest_started_at: Some(UnixMicros(6)),
        recorded_at: UnixMicros(7),
        detail: "full".into(),
    }
}

/// Through bytes, as the collector receives it.
fn received(m: &ProbeMessage) -> v1::ProbeMessage {
    let bytes = encode::probe_message(m).encode_to_vec();
    v1::ProbeMessage::decode(bytes.as_slice()).unwrap()
}

/// Through bytes, as the probe receives it.
fn received_by_probe(m: &CollectorMessage) -> v1::CollectorMessage {
    let bytes = encode::collector_message(m).encode_to_vec();
    v1::CollectorMessage::decode(bytes.as_slice()).unwrap()
}

#[test]
fn probe_messages_round_trip() {
    let hello = Hello {
        probe_id: key(0).probe_id,
        software_version: Version::parse("0.2.0").unwrap(),
        boot_epoch: 4,
        capabilities: MeasurementKind::ALL.to_vec(),
        local_addresses: vec!["2001:db8::2".parse().unwrap()],
        probe_time: UnixMicros(1),
        location: None,
    };
    let heartbeat = Heartbeat {
        probe_time: UnixMicros(2),
        pending_results: 3,
        pending_bytes: 4,
    };
    let self_test = SelfTest {
        tested_at: UnixMicros(3),
        default_route_v6: true,
        default_route_v4: false,
        v4_addresses: vec![],
        v6_route_interface: Some("eth0".into()),
        v6_route_interface_kind: InterfaceKind::Ethernet,
        v6_route_mtu: Some(1500),
        aaaa_name: "example.org".into(),
        aaaa_resolved: Some(true),
        nat64_prefix: None,
        clat: false,
        global_v6_address: true,
        collector_v6: None,
    };
    // NAT64 prefixes: the network address, and the length beside it, 0 for a /96 (what
    // collectors from before the length field read).
    let well_known = SelfTest {
        nat64_prefix: Some(sixmap_shared::nat64::Nat64Prefix::WELL_KNOWN),
        ..self_test.clone()
    };
    let short = SelfTest {
        nat64_prefix: Some("2001:db8:122::/48".parse().unwrap()),
        ..self_test.clone()
    };
    let wire = encode::self_test(&well_known);
    assert_eq!(
        (wire.nat64_prefix.as_str(), wire.nat64_prefix_length),
        ("64:ff9b::", 0)
    );
    let wire = encode::self_test(&short);
    assert_eq!(
        (wire.nat64_prefix.as_str(), wire.nat64_prefix_length),
        ("2001:db8:122::", 48)
    );
    for (sent, expected) in [
        (
            ProbeMessage::SelfTest(well_known.clone()),
            ProbeMessage::SelfTest(well_known),
        ),
        (
            ProbeMessage::SelfTest(short.clone()),
            ProbeMessage::SelfTest(short),
        ),
        (
            ProbeMessage::Hello(hello.clone()),
            ProbeMessage::Hello(hello),
        ),
        (
            ProbeMessage::Heartbeat(heartbeat),
            ProbeMessage::Heartbeat(heartbeat),
        ),
        (
            ProbeMessage::SelfTest(self_test.clone()),
            ProbeMessage::SelfTest(self_test),
        ),
    ] {
        assert_eq!(decode::probe_message(received(&sent)).unwrap(), expected);
    }
    let results: Vec<_> = outcomes().into_iter().map(base).collect();
    let batch = ResultBatch {
        batch_id: 9,
        results: results.clone(),
        losses: vec![loss(1)],
    };
    assert_eq!(
        decode::probe_message(received(&ProbeMessage::Results(batch))).unwrap(),
        ProbeMessage::Results(ReceivedBatch {
            batch_id: 9,
            result_count: results.len(),
            items: Ok((results.into_iter().map(Ok).collect(), vec![Ok(loss(1))])),
        })
    );
}

#[test]
fn a_batch_is_decoded_item_by_item_and_refused_whole_when_too_large() {
    let good = base(outcomes().remove(0));
    let mut wire = v1::ResultBatch {
        batch_id: 1,
        results: vec![encode::result(&good); 3],
        losses: vec![encode::loss(&loss(1)); 2],
    };
    // A bad address with a readable key; no key at all.
    wire.results[1].source_address = "nonsense".into();
    wire.results[2].key = None;
    wire.losses[1].key = None;
    let batch = decode::received_batch(&wire);
    let (results, losses) = batch.items.unwrap();
    assert_eq!(results[0], Ok(good.clone()));
    let (bad_key, e) = results[1].clone().unwrap_err();
    assert_eq!(bad_key, Some(good.key.clone()));
    assert_eq!(e.field, "results[1].source_address");
    let (no_key, e) = results[2].clone().unwrap_err();
    assert_eq!(no_key, None);
    assert_eq!(e.field, "results[2].key");
    assert_eq!(losses[0], Ok(loss(1)));
    assert!(matches!(&losses[1], Err((None, e)) if e.field == "losses[1].key"));

    // Too many of either refuses the whole batch, results named first.
    wire.results = vec![encode::result(&good); MAX_BATCH_RESULTS + 1];
    wire.losses = vec![encode::loss(&loss(1)); MAX_BATCH_RESULTS + 1];
    let batch = decode::received_batch(&wire);
    assert_eq!(batch.result_count, MAX_BATCH_RESULTS + 1);
    assert_eq!(batch.items.unwrap_err().field, "results");
    wire.results.truncate(1);
    assert_eq!(
        decode::received_batch(&wire).items.unwrap_err().field,
        "losses"
    );
}

#[test]
fn probe_message_errors_name_the_message() {
    let mut hello = encode::hello(&Hello {
        probe_id: key(0).probe_id,
        software_version: Version::parse("0.2.0").unwrap(),
        boot_epoch: 4,
        capabilities: vec![],
        local_addresses: vec![],
        probe_time: UnixMicros(1),
        location: None,
    });
    hello.probe_id = "not hex".into();
    let wire = v1::ProbeMessage {
        kind: Some(v1::probe_message::Kind::Hello(hello)),
    };
    assert_eq!(
        decode::probe_message(wire).unwrap_err().field,
        "hello.probe_id"
    );
    let empty = v1::ProbeMessage { kind: None };
    assert_eq!(decode::probe_message(empty).unwrap_err().field, "kind");
}

#[test]
fn collector_messages_round_trip() {
    let task = TaskId::new(5).unwrap();
    let assignment = Assignment {
        task_id: task,
        spec: specs().remove(0),
        interval: Some(Duration::from_secs(60)),
        not_before: Some(UnixMicros(8)),
    };
    let welcome = Welcome {
        server_time: UnixMicros(1),
        collector_version: "0.2.0".into(),
        heartbeat_interval: Duration::from_secs(30),
        max_batch_results: MAX_BATCH_RESULTS,
    };
    let ack = Ack {
        batch_id: 3,
        stored: vec![key(1)],
        rejected: vec![Rejection {
            key: key(2),
            reason: "why".into(),
        }],
        stored_losses: vec![key(3)],
    };
    let cancel = Cancel {
        task_id: task,
        reason: "campaign 1: cancelled".into(),
    };
    let tags = vec![ProbeTag {
        name: TagName::new("v6-works").unwrap(),
        since: UnixMicros(4),
    }];
    for (sent, expected) in [
        (
            CollectorMessage::Welcome(welcome.clone()),
            CollectorMessage::Welcome(welcome),
        ),
        (
            CollectorMessage::Assign(assignment.clone()),
            CollectorMessage::Assign(Ok(assignment)),
        ),
        (
            CollectorMessage::Ack(ack.clone()),
            CollectorMessage::Ack(ack),
        ),
        (
            CollectorMessage::Cancel(cancel.clone()),
            CollectorMessage::Cancel(cancel),
        ),
        (
            CollectorMessage::Tags(tags.clone()),
            CollectorMessage::Tags(tags),
        ),
    ] {
        assert_eq!(
            decode::collector_message(received_by_probe(&sent)).unwrap(),
            expected
        );
    }
}

#[test]
fn an_unusable_assignment_is_content_with_its_task_when_valid() {
    let assign = |task_id, spec| v1::CollectorMessage {
        kind: Some(v1::collector_message::Kind::Assign(v1::TaskAssignment {
            task_id,
            spec,
            interval_s: 0,
            not_before_us: 0,
        })),
    };
    let Ok(CollectorMessage::Assign(Err((task, e)))) = decode::collector_message(assign(7, None))
    else {
        panic!("an assignment without a spec is content")
    };
    assert_eq!(task, Some(TaskId::new(7).unwrap()));
    // Unprefixed: the probe reports this error as the task's result.
    assert_eq!(e.field, "spec");
    let spec = Some(encode::spec(&specs().remove(0)));
    assert!(matches!(
        decode::collector_message(assign(0, spec)),
        Ok(CollectorMessage::Assign(Err((None, _))))
    ));
    let cancel = v1::CollectorMessage {
        kind: Some(v1::collector_message::Kind::Cancel(v1::Cancel {
            task_id: 0,
            reason: String::new(),
        })),
    };
    assert_eq!(
        decode::collector_message(cancel).unwrap_err().field,
        "cancel.task_id"
    );
    let mut welcome = encode::welcome(&Welcome {
        server_time: UnixMicros(1),
        collector_version: String::new(),
        heartbeat_interval: Duration::from_secs(30),
        max_batch_results: 1,
    });
    welcome.heartbeat_interval_s = 0;
    let welcome = v1::CollectorMessage {
        kind: Some(v1::collector_message::Kind::Welcome(welcome)),
    };
    assert_eq!(
        decode::collector_message(welcome).unwrap_err().field,
        "welcome.heartbeat_interval_s"
    );
}

#[test]
fn outbox_entries_read_back_as_written_and_damage_is_an_error() {
    for result in outcomes().into_iter().map(base) {
        let bytes = encode::outbox_result(&result);
        assert_eq!(decode::outbox_result(&bytes).unwrap(), result);
    }
    assert_eq!(
        decode::outbox_loss(&encode::outbox_loss(&loss(2))).unwrap(),
        loss(2)
    );
    assert!(decode::outbox_result(&[0xff, 0xff, 0xff]).is_err());
    assert!(decode::outbox_loss(&[0xff, 0xff, 0xff]).is_err());
}
