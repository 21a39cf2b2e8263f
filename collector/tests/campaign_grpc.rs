//! The gRPC `CampaignService` against a running collector: a campaign created while a probe is
//! connected reaches its session at once, a cancel stops it there, and errors carry the right
//! gRPC code with the spec field named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

mod common;

use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::pki::Pki;
use sixmap_collector::store::Role;
use sixmap_collector::testing::clickhouse::test_store;
use sixmap_probe::collector_tls;
use sixmap_proto::v1;
use sixmap_proto::v1::campaign_service_client::CampaignServiceClient;
use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const SPEC: &str = "name = \"grpc\"\ntargets = [\"::1\"]\n\
    [[measurements]]\nkind = \"ping\"\ntimeout_ms = 2000\n\
    [schedule]\nevery_s = 60\nspread_s = 5\n";

/// The next collector message that is not a welcome, tags or ack.
async fn next_task_message(
    stream: &mut tonic::Streaming<v1::CollectorMessage>,
) -> collector_message::Kind {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("a message within 5 s")
            .unwrap()
            .expect("stream open");
        match message.kind.unwrap() {
            collector_message::Kind::Welcome(_) | collector_message::Kind::Tags(_) => {}
            other => return other,
        }
    }
}

#[tokio::test]
async fn campaigns_reach_connected_probes_and_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    // An enrollment token made before the collector starts (the store is one process's).
    let (store_lines, _clickhouse, store) = test_store(dir.path());
    let (token, fingerprint, api, intruder) = {
        let (api, _) =
            auth::create_api_token(&*store, Role::Campaigner, "regulator", UnixMicros::now())
                .unwrap();
        // Another campaigner, who may not touch the regulator's campaigns.
        let (intruder, _) =
            auth::create_api_token(&*store, Role::Campaigner, "intruder", UnixMicros::now())
                .unwrap();
        let pki = Pki::load_or_create(dir.path()).unwrap();
        let (token, _) = auth::create_enrollment_token(
            &*store,
            pki.fingerprint(),
            "volunteer",
            Duration::from_secs(3600),
            "test",
            UnixMicros::now(),
        )
        .unwrap();
        (token, pki.fingerprint().to_owned(), api, intruder)
    };
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
    let url = format!("https://{}", running.grpc_addr);
    // The campaign service is reached over TLS with the collector's CA pinned.
    let pinned = collector_tls::enrollment_config(&fingerprint).unwrap();
    let mut campaigns = CampaignServiceClient::new(
        collector_tls::channel(&url, pinned.clone(), |e| e)
            .await
            .unwrap(),
    );

    // Without an API token nothing is served, not even a list.
    let err = campaigns
        .list(v1::ListCampaignsRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");

    // No probe yet: the selection matches nothing.
    let err = campaigns
        .create(authed(
            &api,
            v1::CreateCampaignRequest {
                spec: SPEC.into(),
                format: String::new(),
                owner: "regulator".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("`selection`"), "{err}");

    // Enroll as a probe does: CSR for a new key, then a session with the client certificate.
    let (identity, mut control, _) = common::try_enroll(&url, &fingerprint, token).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(hello(&identity, 1)).await.unwrap();
    let mut stream = control
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // The welcome comes first; campaign tasks follow the greeting or are pushed.
    let welcome = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        welcome.kind,
        Some(collector_message::Kind::Welcome(_))
    ));

    let created = campaigns
        .create(authed(
            &api,
            v1::CreateCampaignRequest {
                spec: SPEC.into(),
                format: "toml".into(),
                owner: "regulator".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let record: serde_json::Value = serde_json::from_str(&created.json).unwrap();
    let task_id = record["tasks"][0]["task_id"].as_u64().unwrap();
    let id = record["id"].as_u64().unwrap();
    match next_task_message(&mut stream).await {
        collector_message::Kind::Assign(a) => {
            assert_eq!(a.task_id, task_id);
            assert_eq!(a.interval_s, 60);
            // Spread: the first run waits for its slot within the 5 s window.
            assert!(a.not_before_us <= UnixMicros::now().0 + 5_000_000, "{a:?}");
        }
        other => panic!("expected the campaign's task, got {other:?}"),
    }

    let shown = campaigns
        .show(authed(&api, v1::CampaignRef { id }))
        .await
        .unwrap()
        .into_inner();
    let shown: serde_json::Value = serde_json::from_str(&shown.json).unwrap();
    assert_eq!(shown["progress"]["probes_assigned"], 1, "{shown}");
    assert_eq!(shown["progress"]["probes_connected"], 1, "{shown}");

    let err = campaigns
        .cancel(authed(
            &intruder,
            v1::CancelCampaignRequest {
                id,
                reason: "mine now".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(err.message().contains("belongs to"), "{err}");
    // Two tokens in one call: neither counts.
    let mut twice = authed(&api, v1::ListCampaignsRequest {});
    twice.metadata_mut().append(
        "authorization",
        format!("Bearer {intruder}").parse().unwrap(),
    );
    let err = campaigns.list(twice).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    campaigns
        .cancel(authed(
            &api,
            v1::CancelCampaignRequest {
                id,
                reason: "test over".into(),
            },
        ))
        .await
        .unwrap();
    match next_task_message(&mut stream).await {
        collector_message::Kind::Cancel(c) => {
            assert_eq!(c.task_id, task_id);
            assert!(c.reason.contains("test over"), "{c:?}");
        }
        other => panic!("expected a cancel, got {other:?}"),
    }
    let err = campaigns
        .cancel(authed(
            &api,
            v1::CancelCampaignRequest {
                id,
                reason: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");

    let report = campaigns
        .report(authed(
            &api,
            v1::ReportRequest {
                id,
                format: "csv".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(report.content_type.starts_with("text/csv"));
    assert!(
        report.body.contains("methodology_version"),
        "{}",
        report.body
    );

    let err = campaigns
        .create(authed(
            &api,
            v1::CreateCampaignRequest {
                // Under lab mode's minimum of 5 s.
                spec: SPEC.replace("every_s = 60", "every_s = 4"),
                format: "toml".into(),
                owner: "regulator".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("`schedule.every_s`"), "{err}");
    let err = campaigns
        .show(authed(&api, v1::CampaignRef { id: 999_999 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let list = campaigns
        .list(authed(&api, v1::ListCampaignsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(list.json.contains("\"cancelled\""), "{}", list.json);

    // A probe away when the campaign ended is told at its next hello.
    drop(tx);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(hello(&identity, 2)).await.unwrap();
    let mut stream = control
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    match next_task_message(&mut stream).await {
        collector_message::Kind::Cancel(c) => assert_eq!(c.task_id, task_id),
        other => panic!("expected a cancel at hello, got {other:?}"),
    }

    // A quick measurement over gRPC (issue #21): the stream opens with the measurement, whose
    // task reaches the connected probe at once; another user cannot follow it.
    let mut measured = campaigns
        .measure(authed(
            &api,
            v1::MeasureRequest {
                json: r#"{"kind": "ping", "target": "::1", "probes": 1, "count": 1}"#.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let started = tokio::time::timeout(Duration::from_secs(5), measured.message())
        .await
        .expect("the measurement within 5 s")
        .unwrap()
        .expect("stream open");
    let started: serde_json::Value = serde_json::from_str(&started.json).unwrap();
    assert_eq!(
        started["probes"][0]["probe"], identity.probe_id,
        "{started}"
    );
    let quick_task = started["tasks"][0]["task_id"].as_u64().unwrap();
    match next_task_message(&mut stream).await {
        collector_message::Kind::Assign(a) => assert_eq!(a.task_id, quick_task),
        other => panic!("expected the measurement's task, got {other:?}"),
    }
    let measurement = started["id"].as_u64().unwrap();
    let err = campaigns
        .follow_measurement(authed(&intruder, v1::CampaignRef { id: measurement }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    drop(measured);
}

/// A campaign call carrying an API token, as every one must.
fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn hello(identity: &v1::EnrollResponse, boot_epoch: u64) -> v1::ProbeMessage {
    v1::ProbeMessage {
        kind: Some(probe_message::Kind::Hello(v1::Hello {
            probe_id: identity.probe_id.clone(),
            probe_secret: identity.probe_secret.clone(),
            software_version: "0.1.0".into(),
            boot_epoch,
            capabilities: vec![v1::MeasurementKind::Ping.into()],
            local_addresses: vec!["::1".into()],
            probe_time_us: UnixMicros::now().0,
            location: None,
        })),
    }
}
