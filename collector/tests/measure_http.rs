//! Quick measurements over HTTP against a running collector with a connected probe: the task
//! reaches the probe's session at once, its result is streamed to a follower as soon as it is
//! stored, and the stream ends when every probe answered. Side by side, what a hostile or
//! mistaken client gets: no token, an empty `from`, too many probes, an unknown key, another
//! owner's measurement, a campaign id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

mod common;

use sixmap_collector::auth;
use sixmap_collector::client::Client;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::pki::Pki;
use sixmap_collector::store::Role;
use sixmap_collector::testing::clickhouse::test_store;
use sixmap_proto::v1::collector_message;
use sixmap_shared::config::parse_toml;
use sixmap_shared::session::{ProbeMessage, ResultBatch};
use sixmap_shared::{TaskId, UnixMicros};
use std::time::{Duration, Instant};
use tokio_stream::wrappers::ReceiverStream;

#[tokio::test(flavor = "multi_thread")]
async fn a_quick_measurement_is_sent_at_once_and_its_results_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let (store_lines, _clickhouse, store) = test_store(dir.path());
    let now = UnixMicros::now();
    let researcher = auth::create_api_token(&*store, Role::Researcher, "alice", now)
        .unwrap()
        .0;
    let other = auth::create_api_token(&*store, Role::Campaigner, "bob", now)
        .unwrap()
        .0;
    let pki = Pki::load_or_create(dir.path()).unwrap();
    let enrollment = auth::create_enrollment_token(
        &*store,
        pki.fingerprint(),
        "volunteer",
        Duration::from_secs(3600),
        "test",
        now,
    )
    .unwrap()
    .0;
    let fingerprint = pki.fingerprint().to_owned();
    drop(store);
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n\
         lab_mode = true\n{store_lines}",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    let http = format!("http://{}", running.http_addr);
    let alice = Client::new(&http)
        .unwrap()
        .with_token(Some(researcher.clone()));
    let bob = Client::new(&http).unwrap().with_token(Some(other));
    let anonymous = Client::new(&http).unwrap();

    // A probe connected, as a probe does it.
    let url = format!("https://{}", running.grpc_addr);
    let (probe_id, mut control) = common::enroll(&url, &fingerprint, enrollment).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(common::hello(&probe_id)).await.unwrap();
    let mut stream = control
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let welcome = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        welcome.kind,
        Some(collector_message::Kind::Welcome(_))
    ));

    let post = |client: &Client, body: serde_json::Value| {
        let client = client.clone();
        let reply = client
            .post(
                "/api/v1/measurements",
                "application/json",
                &body.to_string(),
            )
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
        (reply.status, json)
    };
    let (status, created, hostile) = tokio::task::spawn_blocking({
        let (alice, anonymous) = (alice.clone(), anonymous.clone());
        move || {
            let mut hostile = Vec::new();
            // Hostile or mistaken requests first: nothing may reach the probe.
            let ping = serde_json::json!({"kind": "ping", "target": "::1", "count": 2});
            let with = |patch: serde_json::Value| {
                let mut body = ping.clone();
                for (k, v) in patch.as_object().unwrap() {
                    body[k] = v.clone();
                }
                body
            };
            hostile.push(("anonymous", post(&anonymous, ping.clone()), 401, None));
            hostile.push((
                "from matching nothing",
                post(&alice, with(serde_json::json!({"from": ["AS3215"]}))),
                400,
                Some("from[0]"),
            ));
            hostile.push((
                "too many probes",
                post(&alice, with(serde_json::json!({"probes": 1000}))),
                400,
                Some("probes"),
            ));
            hostile.push((
                "unknown key",
                post(&alice, with(serde_json::json!({"colour": "red"}))),
                400,
                None,
            ));
            let (status, created) = post(&alice, with(serde_json::json!({"probes": 1})));
            (status, created, hostile)
        }
    })
    .await
    .unwrap();
    for (what, (status, body), expected, field) in hostile {
        assert_eq!(status, expected, "{what}: {body}");
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{what}: {body}");
        }
        if what == "from matching nothing" {
            let error = body["error"].as_str().unwrap_or_default();
            assert!(error.contains("no known probe matches AS3215"), "{body}");
        }
    }
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    let task_id = created["tasks"][0]["task_id"].as_u64().unwrap();

    // The probe gets the task at once, to run now (no interval, no wait).
    let assign = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("a message within 5 s")
            .unwrap()
            .unwrap();
        match message.kind.unwrap() {
            collector_message::Kind::Assign(a) => break a,
            collector_message::Kind::Tags(_) => {}
            other => panic!("expected the task, got {other:?}"),
        }
    };
    assert_eq!((assign.task_id, assign.interval_s), (task_id, 0));
    assert_eq!(assign.not_before_us, 0, "{assign:?}");

    // Another owner sees nothing of it; a campaign id is no measurement either.
    let (others, unknown) = tokio::task::spawn_blocking({
        let bob = bob.clone();
        move || {
            (
                bob.get(&format!("/api/v1/measurements/{id}/results?follow=true"))
                    .unwrap()
                    .status,
                bob.get("/api/v1/measurements/999/results").unwrap().status,
            )
        }
    })
    .await
    .unwrap();
    assert_eq!((others, unknown), (404, 404));

    // A follower, started before the result exists: it gets the result line when the probe
    // sends it, then the end.
    let follower = tokio::task::spawn_blocking({
        let alice = alice.clone();
        move || {
            let started = Instant::now();
            let mut lines = Vec::new();
            alice
                .get_lines(
                    &format!("/api/v1/measurements/{id}/results?follow=true"),
                    "follow",
                    Duration::from_secs(30),
                    &mut |line| {
                        lines.push((started.elapsed(), line.to_owned()));
                        true
                    },
                )
                .unwrap();
            lines
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut result = sixmap_collector::testing::ping_v6(
        probe_id.parse().unwrap(),
        1,
        UnixMicros::now(),
        Some(Duration::from_micros(800)),
        Default::default(),
    )
    .result;
    result.task_id = TaskId::new(task_id).unwrap();
    let batch = ProbeMessage::Results(ResultBatch {
        batch_id: 1,
        results: vec![result],
        losses: Vec::new(),
    });
    let sent_at = Instant::now();
    tx.send(sixmap_proto::encode::probe_message(&batch))
        .await
        .unwrap();
    let lines = tokio::time::timeout(Duration::from_secs(20), follower)
        .await
        .expect("the follow ends once every probe answered")
        .unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (at, line) = &lines[0];
    // Streamed: the result came after the pause, not with the end of a buffered body.
    assert!(*at >= Duration::from_millis(1400), "{at:?}");
    let stored: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(stored["task_id"], task_id, "{line}");
    assert_eq!(stored["key"]["probe_id"], probe_id.as_str(), "{line}");
    let done: serde_json::Value = serde_json::from_str(&lines[1].1).unwrap();
    assert_eq!(done["done"]["answered"], 1, "{done}");
    assert_eq!(done["done"]["reason"], "every probe answered", "{done}");
    assert!(sent_at.elapsed() < Duration::from_secs(10));

    // Without follow: what is stored now, and the end line.
    let (status, body) = tokio::task::spawn_blocking(move || {
        let reply = alice
            .get(&format!("/api/v1/measurements/{id}/results"))
            .unwrap();
        (reply.status, reply.body)
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), 2, "{body}");
}
