//! The collector's server limits over real sockets: oversized gRPC messages and HTTP bodies
//! get a clean status, a slowloris client is cut off after the header timeout, slow requests
//! get 408, the session cap refuses with RESOURCE_EXHAUSTED, and through all of it the
//! collector keeps serving other clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

mod common;

use axum::Router;
use axum::routing::{get, post};
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::limits::{self, Limits};
use sixmap_probe::collector_tls;
use sixmap_proto::v1;
use sixmap_proto::v1::probe_control_client::ProbeControlClient;
use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_shared::config::parse_toml;
use sixmap_shared::session::MAX_MESSAGE_BYTES;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

struct Collector {
    _dir: tempfile::TempDir,
    grpc: SocketAddr,
    http: SocketAddr,
    ca_fingerprint: String,
    /// One-time enrollment tokens made before start, each for its own owner (the per-owner
    /// caps count probes per /64, and every test probe comes from ::1).
    tokens: std::cell::RefCell<Vec<String>>,
}

async fn start(limits: &str) -> Collector {
    let dir = tempfile::tempdir().unwrap();
    let (ca_fingerprint, tokens) = {
        let prepared = common::prepare(dir.path(), 6, 0);
        (prepared.ca_fingerprint, prepared.tokens)
    };
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n\
         [default_ping]\ntargets = [\"::1\"]\n[limits]\n{limits}\n",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    Collector {
        _dir: dir,
        grpc: running.grpc_addr,
        http: running.http_addr,
        ca_fingerprint,
        tokens: std::cell::RefCell::new(tokens),
    }
}

impl Collector {
    fn url(&self) -> String {
        format!("https://{}", self.grpc)
    }

    /// A client for enrollment: TLS with the collector's CA pinned, no client certificate.
    async fn client(&self) -> ProbeControlClient<Channel> {
        let tls = collector_tls::enrollment_config(&self.ca_fingerprint).unwrap();
        collector_tls::connect(&self.url(), tls, |e| e)
            .await
            .unwrap()
    }

    fn token(&self) -> String {
        self.tokens
            .borrow_mut()
            .pop()
            .expect("a spare enrollment token")
    }

    /// Enrolls a new probe and returns its id and a client presenting its certificate.
    async fn enroll(&self) -> (String, ProbeControlClient<Channel>) {
        common::enroll(&self.url(), &self.ca_fingerprint, self.token()).await
    }
}

async fn enroll_with(
    client: &mut ProbeControlClient<Channel>,
    token: String,
) -> Result<v1::EnrollResponse, tonic::Status> {
    client
        .enroll(v1::EnrollRequest {
            token,
            hostname: "pi".into(),
            software_version: "0.1.0".into(),
            csr_der: Vec::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Opens a session and waits for the welcome.
async fn session(
    client: &mut ProbeControlClient<Channel>,
    probe_id: &str,
) -> Result<
    (
        mpsc::Sender<v1::ProbeMessage>,
        tonic::Streaming<v1::CollectorMessage>,
    ),
    tonic::Status,
> {
    let (tx, rx) = mpsc::channel(8);
    tx.send(common::hello(probe_id)).await.unwrap();
    let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    let first = inbound.message().await?.unwrap();
    assert!(matches!(
        first.kind,
        Some(collector_message::Kind::Welcome(_))
    ));
    Ok((tx, inbound))
}

/// Sends raw bytes and reads the answer until the server closes or `wait` passes.
async fn http_raw(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn healthz(addr: SocketAddr) -> String {
    http_raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
}

#[tokio::test]
async fn oversized_grpc_messages_get_a_clean_status_and_other_probes_carry_on() {
    let collector = start("").await;
    let big = "x".repeat(MAX_MESSAGE_BYTES + 1024);

    // A client without a send limit: the collector refuses the message it cannot decode.
    let mut hostile = collector.client().await;
    let status = enroll_with(&mut hostile, big.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    // The probe's own client has the same limit for sending: the message never leaves it
    // (tonic then resets the stream, so the probe sees INTERNAL; it batches by bytes so that
    // this does not happen).
    let mut limited = collector
        .client()
        .await
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let status = enroll_with(&mut limited, big.clone()).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok, "{status:?}");

    // Inside a session: an oversized batch ends that session with a status...
    let (alice, mut alice_client) = collector.enroll().await;
    let (bob, mut bob_client) = collector.enroll().await;
    let (alice_tx, mut alice_in) = session(&mut alice_client, &alice).await.unwrap();
    let huge = v1::ProbeMessage {
        kind: Some(probe_message::Kind::Results(v1::ResultBatch {
            batch_id: 1,
            results: vec![v1::MeasurementResult {
                software_version: big,
                ..Default::default()
            }],
            losses: Vec::new(),
        })),
    };
    alice_tx.send(huge).await.unwrap();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), alice_in.message())
            .await
            .expect("the oversized session was not ended")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("session ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::OutOfRange, "{ended:?}");

    // ...while another probe's session and enrollment keep working.
    let (_bob_tx, mut bob_in) = session(&mut bob_client, &bob).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), bob_in.message())
        .await
        .unwrap()
        .unwrap();
    assert!(next.is_some());
    let _carol = collector.enroll().await;
    assert!(healthz(collector.http).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn the_session_cap_refuses_with_resource_exhausted_until_a_slot_frees() {
    let collector = start("grpc_max_sessions = 1").await;
    let (alice, mut a) = collector.enroll().await;
    let (bob, mut b) = collector.enroll().await;
    let (alice_tx, alice_in) = session(&mut a, &alice).await.unwrap();
    let status = session(&mut b, &bob).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("maximum of 1"), "{status:?}");
    drop(alice_tx);
    drop(alice_in);
    // The slot is released when the first session's task ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match session(&mut b, &bob).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    Instant::now() < deadline,
                    "the session slot was never released"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
}

#[tokio::test]
async fn oversized_http_bodies_get_413_and_slowloris_clients_are_cut_off() {
    let collector = start("http_header_timeout_s = 1\nhttp_max_body_bytes = 4096").await;

    // A declared body over the limit: 413 at once, whatever the route.
    let answer = http_raw(
        collector.http,
        b"POST /api/v1/results HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("4096"), "{answer}");

    // Slowloris: headers dribbled one line every 300 ms. The connection is closed about one
    // second in, while the client is still sending, and other clients are served meanwhile.
    let mut slow = TcpStream::connect(collector.http).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut closed_after = None;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if i == 1 {
            assert!(healthz(collector.http).await.starts_with("HTTP/1.1 200"));
        }
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut byte)).await;
        let write = slow
            .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .await;
        if matches!(read, Ok(Ok(0)) | Ok(Err(_))) || write.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the slowloris client was never cut off");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(4),
        "cut off after {closed_after:?}"
    );
    assert!(healthz(collector.http).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn request_timeouts_and_body_limits_apply_to_every_route() {
    let limits = Limits {
        http_request_timeout: Duration::from_secs(1),
        http_max_body_bytes: 1024,
        http_max_concurrent_requests: 1,
        ..Limits::default()
    };
    let router = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/echo", post(|body: String| async move { body }));
    let app = limits::http_layers(router, &limits);
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(limits::serve_http(listener, app, limits));

    let started = Instant::now();
    let slow = tokio::spawn(http_raw(
        addr,
        b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    ));
    // While the slow request holds the only slot, another one is refused with 503.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = http_raw(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        Duration::from_secs(5),
    )
    .await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(
        busy.to_ascii_lowercase().contains("retry-after: 1"),
        "{busy}"
    );
    let slow = slow.await.unwrap();
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A chunked body (no Content-Length) over the limit is cut at the limit when read: 413.
    let mut chunked =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'a'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = http_raw(addr, &chunked, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // A body within the limit goes through.
    let answer = http_raw(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_silent_grpc_connection_is_closed_after_the_handshake_timeout() {
    // The deadline covers the TLS handshake (which a silent client never starts).
    let collector = start("grpc_handshake_timeout_s = 1").await;
    let mut silent = TcpStream::connect(collector.grpc).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    tokio::time::timeout(Duration::from_secs(10), async {
        // The server's SETTINGS may come first; then the connection must end.
        while matches!(silent.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
    .expect("a connection that never started its TLS handshake stayed open");
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?}"
    );
    // Real clients are unaffected, also once the deadline has passed on their connection.
    let (probe, mut client) = collector.enroll().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(session(&mut client, &probe).await.is_ok());
}
