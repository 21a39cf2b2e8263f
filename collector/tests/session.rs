//! The collector's gRPC service over real sockets: enrollment, admission at hello, and ingest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

mod common;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::pki::Pki;
use sixmap_collector::store::Role;
use sixmap_collector::testing::clickhouse::{ClickHouseServer, test_store};
use sixmap_probe::collector_tls;
use sixmap_proto::v1::probe_control_client::ProbeControlClient;
use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_proto::{encode, v1};
use sixmap_shared::config::parse_toml;
use sixmap_shared::measurement::{
    ClockInfo, ClockState, Family, IcmpSocketKind, MeasurementResult, Outcome, PingReply,
    PingResult, TimestampSource,
};
use sixmap_shared::{ProbeId, ResultKey, TaskId, UnixMicros};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

struct Harness {
    dir: tempfile::TempDir,
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    /// An admin API token, made before the collector started (the store is one process's).
    admin: String,
    /// A researcher API token (reads raw data, may not write).
    researcher: String,
    ca_fingerprint: String,
    /// With `SIXMAP_TEST_STORE=clickhouse`: the server the collector stores into.
    _clickhouse: Option<ClickHouseServer>,
}

/// A probe enrolled over TLS with a CSR, and a client presenting its certificate.
struct Enrolled {
    probe_id: String,
    client: ProbeControlClient<Channel>,
}

async fn start(extra: &str) -> Harness {
    start_in(tempfile::tempdir().unwrap(), extra).await
}

async fn start_in(dir: tempfile::TempDir, extra: &str) -> Harness {
    let (store_lines, clickhouse, store) = test_store(dir.path());
    let (admin, researcher) = {
        let make = |role, name| {
            auth::create_api_token(&*store, role, name, UnixMicros::now())
                .unwrap()
                .0
        };
        (
            make(Role::Admin, "test-admin"),
            make(Role::Researcher, "test-researcher"),
        )
    };
    drop(store);
    // Most tests read raw results over HTTP without a token; the access tests say otherwise.
    let public = if extra.contains("raw_data_public") {
        ""
    } else {
        "raw_data_public = true\n"
    };
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n\
         {public}{extra}\n[default_ping]\ntargets = [\"::1\"]\n{store_lines}",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    let ca_fingerprint = Pki::load_or_create(dir.path())
        .unwrap()
        .fingerprint()
        .to_owned();
    Harness {
        dir,
        grpc: running.grpc_addr,
        http: running.http_addr,
        admin,
        researcher,
        ca_fingerprint,
        _clickhouse: clickhouse,
    }
}

impl Harness {
    fn url(&self) -> String {
        format!("https://{}", self.grpc)
    }

    /// A new enrollment token for `owner`, made through the admin API.
    async fn token_for(&self, owner: &str, expires_in: &str) -> String {
        let body = serde_json::json!({ "owner": owner, "expires_in": expires_in }).to_string();
        let (status, answer) = http(
            self.http,
            "POST",
            "/api/v1/enrollment-tokens",
            Some(&self.admin),
            &body,
        )
        .await;
        assert_eq!(status, 201, "{answer}");
        let json: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let token = json["token"].as_str().unwrap().to_owned();
        assert!(token.ends_with(&self.ca_fingerprint), "{token}");
        token
    }

    /// Enrollment as a probe does it: CA pinned by the token's fingerprint, CSR for a new key.
    async fn try_enroll(&self, token: &str) -> Result<(Enrolled, rcgen::KeyPair), tonic::Status> {
        let (response, client, key) =
            common::try_enroll(&self.url(), &self.ca_fingerprint, token.into()).await?;
        Ok((
            Enrolled {
                probe_id: response.probe_id,
                client,
            },
            key,
        ))
    }

    async fn enroll(&self) -> Enrolled {
        let token = self.token_for("volunteer", "1h").await;
        self.try_enroll(&token).await.unwrap().0
    }
}

fn hello(id: &str, version: &str) -> v1::ProbeMessage {
    v1::ProbeMessage {
        kind: Some(probe_message::Kind::Hello(v1::Hello {
            probe_id: id.into(),
            probe_secret: String::new(),
            software_version: version.into(),
            boot_epoch: 1,
            capabilities: vec![v1::MeasurementKind::Ping.into()],
            local_addresses: vec!["::1".into()],
            probe_time_us: UnixMicros::now().0,
            location: None,
        })),
    }
}

/// Opens a session, returning the sender for probe messages and the collector's stream.
async fn open(
    client: &mut ProbeControlClient<Channel>,
    first: v1::ProbeMessage,
) -> Result<
    (
        mpsc::Sender<v1::ProbeMessage>,
        tonic::Streaming<v1::CollectorMessage>,
    ),
    tonic::Status,
> {
    let (tx, rx) = mpsc::channel(8);
    tx.send(first).await.unwrap();
    let response = client.session(ReceiverStream::new(rx)).await?;
    Ok((tx, response.into_inner()))
}

fn ping_result(probe: &str, sequence: u64, task: u64) -> MeasurementResult {
    MeasurementResult {
        key: ResultKey {
            probe_id: probe.parse::<ProbeId>().unwrap(),
            boot_epoch: 1,
            sequence,
        },
        task_id: TaskId::new(task).unwrap(),
        started_at: UnixMicros::now(),
        duration_us: 100,
        family_requested: Family::V6,
        family_used: Some(Family::V6),
        source: Some("::1".parse().unwrap()),
        destination: Some("::1".parse().unwrap()),
        software_version: "0.1.0".into(),
        clock: ClockInfo {
            state: ClockState::Synchronized,
            offset_us: None,
        },
        outcome: Outcome::Ping(PingResult {
            sent: 1,
            received: 1,
            replies: vec![PingReply {
                sequence: 0,
                rtt_ns: 30_000,
                hop_limit: Some(64),
                duplicate: false,
                from: "::1".parse().unwrap(),
            }],
            timestamp_source: TimestampSource::Kernel,
            socket_kind: IcmpSocketKind::Raw,
            errors: vec![],
        }),
    }
}

fn batch(id: u64, results: &[MeasurementResult]) -> v1::ProbeMessage {
    v1::ProbeMessage {
        kind: Some(probe_message::Kind::Results(v1::ResultBatch {
            batch_id: id,
            results: results.iter().map(encode::result).collect(),
            losses: Vec::new(),
        })),
    }
}

async fn next_ack(stream: &mut tonic::Streaming<v1::CollectorMessage>) -> v1::Ack {
    loop {
        match stream.message().await.unwrap().unwrap().kind {
            Some(collector_message::Kind::Ack(ack)) => return ack,
            _ => continue,
        }
    }
}

/// Any HTTP/1.1 request over a real socket, with an optional bearer token; status and body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

#[tokio::test]
async fn enrollment_tokens_are_single_use_and_expire() {
    let h = start("").await;
    let token = h.token_for("alice", "1h").await;
    let (probe, _) = h.try_enroll(&token).await.unwrap();
    assert_eq!(probe.probe_id.len(), 16);

    let err = h.try_enroll(&token).await.err().expect("reuse must fail");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("already been used"),
        "{}",
        err.message()
    );

    let short = h.token_for("alice", "1s").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let err = h.try_enroll(&short).await.err().expect("expired must fail");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("expired"), "{}", err.message());

    // A probe whose token names another CA never sends it: the handshake fails first.
    let wrong = collector_tls::enrollment_config(&"00".repeat(32)).unwrap();
    let err = match collector_tls::connect(&h.url(), wrong, |e| e).await {
        Err(e) => format!("{e:?}"),
        Ok(mut client) => client
            .enroll(v1::EnrollRequest {
                token: token.clone(),
                ..Default::default()
            })
            .await
            .expect_err("a server outside the pinned CA must not be trusted")
            .to_string(),
    };
    assert!(err.contains("did not present the CA"), "{err}");

    let forged = format!("{}.{}", "ab".repeat(32), h.ca_fingerprint);
    let err = h
        .try_enroll(&forged)
        .await
        .err()
        .expect("unknown must fail");
    assert!(err.message().contains("never issued"), "{}", err.message());

    // Every attempt is in the audit log, and only admins read it.
    let (status, body) = http(h.http, "GET", "/api/v1/audit", Some(&h.admin), "").await;
    assert_eq!(status, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    let outcomes: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "enroll")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 4, "{body}");
    assert!(
        outcomes.iter().filter(|o| o.starts_with("refused")).count() == 3,
        "{body}"
    );
    let (status, _) = http(h.http, "GET", "/api/v1/audit", None, "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn sessions_need_this_collectors_certificate_and_speak_only_for_their_probe() {
    let h = start("").await;
    // No client certificate: the TLS handshake passes (enrollment needs that), the session not.
    let tls = collector_tls::enrollment_config(&h.ca_fingerprint).unwrap();
    let mut anonymous = collector_tls::connect(&h.url(), tls, |e| e).await.unwrap();
    let err = open(&mut anonymous, hello("00000000deadbeef", "0.1.0"))
        .await
        .expect_err("a session without a certificate must be refused");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("no client certificate"),
        "{}",
        err.message()
    );

    // A certificate from another collector's CA is refused in the TLS handshake.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::load_or_create(other_dir.path()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let foreign_cert = other
        .issue_probe_certificate(
            &"00000000deadbeef".parse().unwrap(),
            csr.der(),
            UnixMicros::now(),
        )
        .unwrap();
    let ours = Pki::load_or_create(h.dir.path()).unwrap();
    let tls = collector_tls::session_config(
        ours.ca_der().clone(),
        foreign_cert,
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    if let Ok(mut client) = collector_tls::connect(&h.url(), tls, |e| e).await {
        // TLS 1.3: the server checks the client certificate after the client's handshake is
        // done, so the refusal may only show on the first request; it must be the TLS one.
        let err = open(&mut client, hello("00000000deadbeef", "0.1.0"))
            .await
            .expect_err("a certificate of another CA must not open a session");
        assert!(
            !err.message().contains("unknown probe certificate"),
            "refused by the application, not TLS: {}",
            err.message()
        );
    }

    // A probe's certificate speaks for that probe only: its hello may not name another...
    let mut a = h.enroll().await;
    let b = h.enroll().await;
    let err = open(&mut a.client, hello(&b.probe_id, "0.1.0"))
        .await
        .expect_err("hello naming another probe must be refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("belongs to probe"),
        "{}",
        err.message()
    );
    // ...and results keyed with another probe's id are rejected.
    let (tx, mut stream) = open(&mut a.client, hello(&a.probe_id, "0.1.0"))
        .await
        .unwrap();
    let task = loop {
        match stream.message().await.unwrap().unwrap().kind {
            Some(collector_message::Kind::Assign(assign)) => break assign.task_id,
            _ => continue,
        }
    };
    tx.send(batch(
        1,
        &[
            ping_result(&b.probe_id, 1, task),
            ping_result(&a.probe_id, 1, task),
        ],
    ))
    .await
    .unwrap();
    let ack = next_ack(&mut stream).await;
    assert_eq!(ack.stored.len(), 1);
    assert_eq!(ack.rejected.len(), 1);
    assert!(
        ack.rejected[0].reason.contains("belongs to probe"),
        "{}",
        ack.rejected[0].reason
    );
    let body = http_get(h.http, &format!("/api/v1/results?probe={}", b.probe_id)).await;
    assert!(body.contains("\"count\":0"), "{body}");
}

#[tokio::test]
async fn a_revoked_probe_is_refused_at_hello_with_a_clear_status() {
    let h = start("").await;
    let mut probe = h.enroll().await;
    let path = format!("/api/v1/probes/{}/revoke", probe.probe_id);
    let (status, body) = http(h.http, "POST", &path, None, "").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = http(h.http, "POST", &path, Some(&h.admin), "").await;
    assert_eq!(status, 200, "{body}");
    let err = open(&mut probe.client, hello(&probe.probe_id, "0.1.0"))
        .await
        .expect_err("a revoked probe must be refused");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("was revoked"), "{}", err.message());
}

#[tokio::test]
async fn enrollments_over_an_owners_cap_fail_clearly() {
    let h = start("max_probes_per_owner_per_64 = 1").await;
    h.enroll().await;
    // Same owner, same /64 (every test enrollment comes from ::1).
    let token = h.token_for("volunteer", "1h").await;
    let err = h.try_enroll(&token).await.err().expect("over the cap");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("::/64"), "{}", err.message());
    // Another owner is not affected.
    let token = h.token_for("bob", "1h").await;
    assert!(h.try_enroll(&token).await.is_ok());
}

#[tokio::test]
async fn api_writes_need_the_right_role_and_are_audited() {
    let h = start("raw_data_public = false").await;
    let researcher = h.researcher.clone();
    let (status, body) = http(h.http, "GET", "/api/v1/results", None, "").await;
    assert_eq!(status, 401, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("API token"),
        "{body}"
    );
    // Maps are public by default; raw results are not.
    let (status, _) = http(h.http, "GET", "/api/v1/maps/countries", None, "").await;
    assert_eq!(status, 200);
    let (status, _) = http(h.http, "GET", "/api/v1/results", Some(&researcher), "").await;
    assert_eq!(status, 200);
    let (status, body) = http(h.http, "GET", "/api/v1/results", Some("sxa_nonsense"), "").await;
    assert_eq!(status, 401, "{body}");

    let write = |bearer: Option<String>| {
        let addr = h.http;
        async move {
            http(
                addr,
                "POST",
                "/api/v1/enrollment-tokens",
                bearer.as_deref(),
                "{\"owner\": \"carol\"}",
            )
            .await
        }
    };
    let (status, body) = write(None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, body) = write(Some(researcher.clone())).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("needs role admin"), "{body}");
    let (status, body) = write(Some(h.admin.clone())).await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = http(h.http, "GET", "/api/v1/audit?limit=10", Some(&h.admin), "").await;
    assert_eq!(status, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entries = audit["entries"].as_array().unwrap();
    let newest = &entries[0];
    assert_eq!(newest["action"], "POST /api/v1/enrollment-tokens", "{body}");
    assert_eq!(newest["identity"], "api:test-admin (admin)", "{body}");
    assert_eq!(newest["outcome"], "ok (201)", "{body}");
    assert_eq!(
        entries[1]["identity"], "api:test-researcher (researcher)",
        "{body}"
    );
    assert_eq!(entries[1]["outcome"], "denied (403)", "{body}");
    assert_eq!(entries[2]["identity"], "anonymous", "{body}");
    assert_eq!(entries[2]["outcome"], "denied (401)", "{body}");
}
#[tokio::test]
async fn old_probe_versions_are_told_to_upgrade() {
    let h = start("min_probe_version = \"0.2.0\"").await;
    let mut probe = h.enroll().await;
    let err = open(&mut probe.client, hello(&probe.probe_id, "0.1.9"))
        .await
        .expect_err("old version must be refused");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("0.2.0") && err.message().contains("upgrade"));
}

#[tokio::test]
async fn results_are_acked_deduplicated_and_unassigned_tasks_rejected() {
    let h = start("").await;
    let mut probe = h.enroll().await;
    let (tx, mut stream) = open(&mut probe.client, hello(&probe.probe_id, "0.1.0"))
        .await
        .unwrap();

    let welcome = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        welcome.kind,
        Some(collector_message::Kind::Welcome(_))
    ));
    let task = loop {
        match stream.message().await.unwrap().unwrap().kind {
            Some(collector_message::Kind::Assign(a)) => break a.task_id,
            Some(collector_message::Kind::Tags(_)) => continue,
            other => panic!("expected tags or an assignment, got {other:?}"),
        }
    };

    let good = ping_result(&probe.probe_id, 1, task);
    let unassigned = ping_result(&probe.probe_id, 2, task + 1000);
    let foreign = ping_result("00000000deadbeef", 3, task);
    tx.send(batch(7, &[good.clone(), unassigned, foreign]))
        .await
        .unwrap();
    let ack = next_ack(&mut stream).await;
    assert_eq!(ack.batch_id, 7);
    assert_eq!(ack.stored.len(), 1);
    assert_eq!(ack.stored[0].sequence, 1);
    assert_eq!(ack.rejected.len(), 2);
    assert!(
        ack.rejected[0].reason.contains("never assigned"),
        "{}",
        ack.rejected[0].reason
    );
    assert!(
        ack.rejected[1].reason.contains("belongs to probe"),
        "{}",
        ack.rejected[1].reason
    );
    // The metrics count rejections by reason (process-wide: other tests of this binary add
    // to them, never subtract).
    let m = sixmap_collector::metrics::metrics();
    for reason in ["unassigned_task", "foreign_probe"] {
        assert!(m.results_rejected.with(&[reason]).get() >= 1, "{reason}");
    }
    let duplicates = m.results_stored.with(&["duplicate"]).get();

    // A resend after a lost ack is acked again but stored once.
    tx.send(batch(8, &[good])).await.unwrap();
    let ack = next_ack(&mut stream).await;
    assert_eq!(ack.stored.len(), 1);
    assert!(m.results_stored.with(&["duplicate"]).get() > duplicates);

    let mut wire_bad = encode::result(&ping_result(&probe.probe_id, 4, task));
    wire_bad.destination_address = "nope".into();
    tx.send(v1::ProbeMessage {
        kind: Some(probe_message::Kind::Results(v1::ResultBatch {
            batch_id: 9,
            results: vec![wire_bad],
            losses: Vec::new(),
        })),
    })
    .await
    .unwrap();
    let ack = next_ack(&mut stream).await;
    assert!(ack.stored.is_empty());
    assert!(
        ack.rejected[0]
            .reason
            .contains("results[0].destination_address")
    );

    let body = http_get(h.http, &format!("/api/v1/results?probe={}", probe.probe_id)).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["count"], 1, "{body}");

    // A second hello on the same stream closes the session with a clear status.
    tx.send(hello(&probe.probe_id, "0.1.0")).await.unwrap();
    let err = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert!(
        err.message().contains("hello sent twice"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn http_api_rejects_bad_parameters() {
    let h = start("").await;
    let body = http_get(h.http, "/api/v1/results?probe=xyz").await;
    assert!(body.contains("`probe`"), "{body}");
    let body = http_get(h.http, "/api/v1/results?limit=0").await;
    assert!(body.contains("`limit`"), "{body}");
}

/// Minimal HTTP/1.1 GET over a real socket; returns the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn loss_records_are_stored_once_and_self_tests_become_tags() {
    let h = start("").await;
    let mut probe = h.enroll().await;
    let mut first = hello(&probe.probe_id, "0.1.0");
    if let Some(probe_message::Kind::Hello(hello)) = first.kind.as_mut() {
        hello.local_addresses = vec!["2001:4860:4860::8888".into()];
    }
    let (tx, mut stream) = open(&mut probe.client, first).await.unwrap();
    // The collector sends the tags it computed from the hello: a global address.
    let initial = loop {
        match stream.message().await.unwrap().unwrap().kind {
            Some(collector_message::Kind::Tags(t)) => break t,
            _ => continue,
        }
    };
    let names = |t: &v1::ProbeTags| t.tags.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&initial), vec!["v6-capable"]);

    tx.send(v1::ProbeMessage {
        kind: Some(probe_message::Kind::SelfTest(v1::SelfTest {
            tested_at_us: 1,
            default_route_v6: true,
            default_route_v4: true,
            v4_addresses: vec!["100.64.3.4".into()],
            v6_route_interface: "eth0".into(),
            v6_route_interface_kind: v1::InterfaceKind::Ethernet.into(),
            v6_route_mtu: 1500,
            aaaa_name: "www.ripe.net".into(),
            aaaa_resolved: Some(true),
            nat64_prefix: String::new(),
            nat64_prefix_length: 0,
            clat: false,
            global_v6_address: true,
            collector_v6: Some(true),
        })),
    })
    .await
    .unwrap();
    let updated = loop {
        match stream.message().await.unwrap().unwrap().kind {
            Some(collector_message::Kind::Tags(t)) => break t,
            _ => continue,
        }
    };
    assert_eq!(
        names(&updated),
        vec![
            "v6-capable",
            "resolves-aaaa",
            "access-native",
            "access-v4-cgnat"
        ]
    );

    let key = |sequence| v1::ResultKey {
        probe_id: probe.probe_id.clone(),
        boot_epoch: 1,
        sequence,
    };
    let loss = v1::OutboxLoss {
        key: Some(key(1)),
        reason: v1::LossReason::OutboxFull.into(),
        count: 25,
        bytes: 5000,
        first: Some(key(4)),
        last: Some(key(28)),
        oldest_started_at_us: 10,
        newest_started_at_us: 20,
        recorded_at_us: 30,
        detail: String::new(),
        count_unknown: false,
    };
    for batch_id in [1, 2] {
        tx.send(v1::ProbeMessage {
            kind: Some(probe_message::Kind::Results(v1::ResultBatch {
                batch_id,
                results: Vec::new(),
                losses: vec![loss.clone()],
            })),
        })
        .await
        .unwrap();
        let ack = next_ack(&mut stream).await;
        assert_eq!(ack.stored_losses, vec![key(1)], "batch {batch_id}");
    }
    let body = http_get(h.http, &format!("/api/v1/losses?probe={}", probe.probe_id)).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["count"], 1, "{body}");
    assert_eq!(json["lost_results"], 25, "{body}");

    let body = http_get(h.http, &format!("/api/v1/probes/{}/tags", probe.probe_id)).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["history"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(json["history"][1]["added"][0], "resolves-aaaa", "{body}");
    assert_eq!(json["self_test"]["aaaa_name"], "www.ripe.net", "{body}");
    let body = http_get(h.http, "/api/v1/probes/0000000000000000/tags").await;
    assert!(body.contains("no probe"), "{body}");
}

#[tokio::test]
async fn a_greeting_larger_than_the_stream_buffer_is_delivered() {
    let mut extra = String::new();
    for size in 10..210 {
        extra.push_str(&format!(
            "[[ping_tasks]]\ntargets = [\"::1\"]\nsize = {size}\n"
        ));
    }
    let h = start(&extra).await;
    let mut probe = h.enroll().await;
    let (_tx, mut stream) = open(&mut probe.client, hello(&probe.probe_id, "0.1.0"))
        .await
        .unwrap();
    let mut assignments = 0;
    while assignments < 201 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(m))) => {
                if matches!(m.kind, Some(collector_message::Kind::Assign(_))) {
                    assignments += 1;
                }
            }
            other => panic!("after {assignments} assignments: {other:?}"),
        }
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/prefixes")
        .join(name)
}

#[tokio::test]
async fn probes_and_results_are_enriched_with_imported_prefix_data() {
    use sixmap_collector::enrich::{SourceKind, import};
    let dir = tempfile::tempdir().unwrap();
    import(
        dir.path(),
        SourceKind::Asn,
        &[fixture("asn-ipv6.csv")],
        false,
    )
    .unwrap();
    import(
        dir.path(),
        SourceKind::Country,
        &[fixture("geo-whois-asn-country-ipv6.csv")],
        false,
    )
    .unwrap();
    let h = start_in(dir, "").await;
    let mut probe = h.enroll().await;
    let mut first = hello(&probe.probe_id, "0.1.0");
    if let Some(probe_message::Kind::Hello(hello)) = first.kind.as_mut() {
        hello.local_addresses = vec!["fd00::7".into(), "2001:4860:1::7".into()];
        hello.location = Some(v1::CoarseLocation {
            latitude_e1: 374,
            longitude_e1: -1221,
        });
    }
    let (tx, mut stream) = open(&mut probe.client, first).await.unwrap();
    let task = loop {
        match stream.message().await.unwrap().unwrap().kind {
            Some(collector_message::Kind::Assign(a)) => break a.task_id,
            _ => continue,
        }
    };
    let mut result = ping_result(&probe.probe_id, 1, task);
    result.source = Some("2001:4860:1::7".parse().unwrap());
    result.destination = Some("2001:67c:2e8::2".parse().unwrap());
    result.outcome = Outcome::Ping(PingResult {
        sent: 1,
        received: 1,
        replies: vec![PingReply {
            sequence: 0,
            rtt_ns: 30_000_000,
            hop_limit: Some(52),
            duplicate: false,
            from: "2001:67c:2e8::2".parse().unwrap(),
        }],
        timestamp_source: TimestampSource::Kernel,
        socket_kind: IcmpSocketKind::Raw,
        errors: vec![],
    });
    tx.send(batch(1, &[result])).await.unwrap();
    assert_eq!(next_ack(&mut stream).await.stored.len(), 1);

    let body = http_get(h.http, "/api/v1/probes").await;
    let probes: serde_json::Value = serde_json::from_str(&body).unwrap();
    let p = &probes[0];
    assert_eq!(p["origin"]["asn"], 15169, "{body}");
    assert_eq!(p["origin"]["as_name"], "Google LLC", "{body}");
    assert_eq!(p["origin"]["country"], "US", "{body}");
    assert_eq!(p["location"], serde_json::json!([37.4, -122.1]), "{body}");

    let body = http_get(h.http, &format!("/api/v1/results?probe={}", probe.probe_id)).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let r = &json["results"][0];
    assert_eq!(r["probe_origin"]["asn"], 15169, "{body}");
    assert_eq!(r["target_origin"]["asn"], 3333, "{body}");
    assert_eq!(r["target_origin"]["country"], "NL", "{body}");
    // The result itself is unchanged beside its enrichment.
    assert_eq!(r["destination"], "2001:67c:2e8::2", "{body}");
}

/// A probe that says hello from `address` and sends one ping result to a global destination,
/// answered (`rtt_ms`) or not.
async fn probe_reporting(h: &Harness, address: &str, rtt_ms: Option<u64>) -> String {
    let mut probe = h.enroll().await;
    let mut first = hello(&probe.probe_id, "0.1.0");
    if let Some(probe_message::Kind::Hello(hello)) = first.kind.as_mut() {
        hello.local_addresses = vec![address.into()];
    }
    let (tx, mut stream) = open(&mut probe.client, first).await.unwrap();
    let task = loop {
        match stream.message().await.unwrap().unwrap().kind {
            Some(collector_message::Kind::Assign(a)) => break a.task_id,
            _ => continue,
        }
    };
    let mut result = ping_result(&probe.probe_id, 1, task);
    let destination: std::net::IpAddr = "2001:67c:2e8::2".parse().unwrap();
    result.source = Some(address.parse().unwrap());
    result.destination = Some(destination);
    result.outcome = Outcome::Ping(PingResult {
        sent: 1,
        received: u16::from(rtt_ms.is_some()),
        replies: rtt_ms
            .map(|ms| PingReply {
                sequence: 0,
                rtt_ns: ms * 1_000_000,
                hop_limit: Some(50),
                duplicate: false,
                from: destination,
            })
            .into_iter()
            .collect(),
        timestamp_source: TimestampSource::Kernel,
        socket_kind: IcmpSocketKind::Raw,
        errors: vec![],
    });
    tx.send(batch(1, &[result])).await.unwrap();
    assert_eq!(next_ack(&mut stream).await.stored.len(), 1);
    // Tags follow the stored batch.
    if rtt_ms.is_some() {
        loop {
            match stream.message().await.unwrap().unwrap().kind {
                Some(collector_message::Kind::Tags(t))
                    if t.tags.iter().any(|t| t.name == "v6-works") =>
                {
                    break;
                }
                _ => continue,
            }
        }
    }
    probe.probe_id
}

#[tokio::test]
async fn national_figures_balance_operators_and_match_hand_computed_values() {
    use sixmap_collector::enrich::{SourceKind, import};
    let dir = tempfile::tempdir().unwrap();
    import(
        dir.path(),
        SourceKind::Asn,
        &[fixture("asn-ipv6.csv")],
        false,
    )
    .unwrap();
    let countries = dir.path().join("lab-countries.csv");
    std::fs::write(
        &countries,
        "2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,XA\n\
         2606:4700::,2606:4700:ffff:ffff:ffff:ffff:ffff:ffff,XA\n",
    )
    .unwrap();
    import(dir.path(), SourceKind::Country, &[countries], false).unwrap();
    let h = start_in(dir, "").await;
    // AS15169: two probes, IPv6 works (30 and 40 ms). AS13335: one probe, no answer.
    probe_reporting(&h, "2001:4860:1::1", Some(30)).await;
    probe_reporting(&h, "2001:4860:2::1", Some(40)).await;
    probe_reporting(&h, "2606:4700:1::1", None).await;

    // The RTT figures are folded in about a second after the results are stored (on
    // ClickHouse: after the fold lag, request timeout + 5 s).
    let mut body = String::new();
    for _ in 0..600 {
        body = http_get(h.http, "/api/v1/maps/countries").await;
        if body.contains("\"median_rtt_v6_ms\":3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let xa = &json["countries"][0];
    assert_eq!(xa["country"], "XA", "{body}");
    assert_eq!(
        (xa["probes"].as_u64(), xa["operators"].as_u64()),
        (Some(3), Some(2))
    );
    let close =
        |v: &serde_json::Value, expected: f64| (v.as_f64().unwrap() - expected).abs() < 1e-4;
    // Pooled: 2 of 3. Both operators are under the default minimum of three, together they
    // reach it: the national share counts them as one unit, their probes pooled (counted on
    // their own, with one of them named, the other's share would follow by subtraction;
    // rollup.rs), so the balanced share is the pooled 2/3 at n = 3. Counted on their own
    // (min_probes = 1) it would be (1 + 0) / 2 = 0.5 at n = 1 (rollup's tests).
    let shares = &xa["v6_works"];
    assert_eq!(xa["insufficient_data"], false, "{body}");
    assert_eq!(json["min_probes"], 3, "{body}");
    assert!(close(&shares["pooled"]["share"], 2.0 / 3.0), "{body}");
    assert!(close(&shares["balanced"]["share"], 2.0 / 3.0), "{body}");
    assert!(close(&shares["balanced"]["n"], 3.0), "{body}");
    // Wilson(2, 3), z^2 = 3.841459: denominator 1 + z^2/3 = 2.280486; centre
    // (0.666667 + 0.640243) / 2.280486 = 0.573084; half = z / 2.280486 *
    // sqrt(0.222222/3 + z^2/36) = 0.859452 * 0.425184 = 0.365424.
    assert!(
        close(&shares["balanced"]["low"], 0.573084 - 0.365424),
        "{body}"
    );
    assert!(
        close(&shares["balanced"]["high"], 0.573084 + 0.365424),
        "{body}"
    );
    // Per-probe medians 30 and 40 (the third has none): median 35, read from histograms
    // within 1 % (`figures::sketch`).
    let median = xa["median_rtt_v6_ms"].as_f64().unwrap();
    assert!((median - 35.0).abs() <= 0.35, "{body}");

    let body = http_get(h.http, "/api/v1/maps/countries/XA").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let operators = json["operators"].as_array().unwrap();
    assert_eq!(operators[0]["asn"], 15169, "podium: {body}");
    assert_eq!(operators[0]["as_name"], "Google LLC", "{body}");
    assert_eq!(operators[1]["asn"], 13335, "{body}");
    // Two probes and one, under the default minimum of three: insufficient data, no share
    // and no rank, the probes counted.
    for (o, probes) in operators.iter().zip([2, 1]) {
        assert_eq!(o["insufficient_data"], true, "{body}");
        assert!(o["v6_works"].is_null() && o["rank"].is_null(), "{body}");
        assert_eq!(o["probes"], probes, "{body}");
    }
    assert_eq!(json["probes"].as_array().unwrap().len(), 3, "{body}");
    assert_eq!(json["probe_count"], 3, "{body}");
    assert_eq!(json["operator_count"], 2, "{body}");
    assert!(
        json["method"].as_str().unwrap().contains("Wilson"),
        "{body}"
    );
    let body = http_get(h.http, "/api/v1/maps/countries/ZZ").await;
    assert!(body.contains("no active probe"), "{body}");
    // Country codes in any case, as `probe_country` in the query API.
    let body = http_get(h.http, "/api/v1/maps/countries/nl").await;
    assert!(
        body.contains("no active probe with prefix data in NL"),
        "{body}"
    );
    let body = http_get(h.http, "/api/v1/maps/countries/n1").await;
    assert!(body.contains("country in the path"), "{body}");
    // Daily series (filled by the background refresh; checked in `daily`'s tests).
    let body = http_get(h.http, "/api/v1/maps/networks/AS15169/series").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["asn"], 15169, "{body}");
    assert!(json["days"].is_array(), "{body}");
    let body = http_get(h.http, "/api/v1/maps/networks/ASX/series").await;
    assert!(body.contains("AS number in the path"), "{body}");
}
