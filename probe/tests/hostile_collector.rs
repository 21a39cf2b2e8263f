//! A hostile collector: a small gRPC server that enrolls the real probe session, then assigns
//! tasks aimed at loopback, link-local, multicast, private and translated-private targets and
//! one far over the packet budget. The probe must refuse each before sending anything, and
//! report every refusal back as a `Policy` failure result.
//!
//! "Nothing sent" is checked by counters, not only by the results: TCP listeners on the
//! loopback targets count connection attempts, and (as root) a raw ICMP socket counts echo
//! requests to a loopback address only this test uses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::pki::{self, Pki};
use sixmap_probe::config::ProbeConfig;
use sixmap_proto::v1::probe_control_server::{ProbeControl, ProbeControlServer};
use sixmap_proto::v1::{collector_message, probe_message};
use sixmap_proto::{decode, encode, v1};
use sixmap_shared::config::parse_toml;
use sixmap_shared::measurement::{
    ErrorClass, Family, MeasurementSpec, Outcome, PingSpec, SpecKind, Target, TcpSpec,
    TraceProtocol, TracerouteSpec,
};
use sixmap_shared::session::{Ack, Assignment, Welcome};
use sixmap_shared::{ProbeId, TaskId, UnixMicros};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// An IPv4 loopback address no other test or service uses, so the raw capture counts only
/// what this probe would send.
const CANARY_V4: &str = "127.83.77.1";
/// Packets per minute the probe gets in this test.
const BUDGET: u32 = 100;

#[derive(Clone)]
struct Hostile {
    /// Sent as they are on the wire, so some can break the spec's bounds.
    tasks: Vec<v1::TaskAssignment>,
    results: mpsc::Sender<v1::MeasurementResult>,
    /// A CA of the hostile collector's own (the collector's real PKI code): a compromised
    /// collector holds its CA key, so the probe trusts it fully at the TLS layer.
    pki: Arc<Pki>,
}

type Out = Pin<Box<dyn Stream<Item = Result<v1::CollectorMessage, Status>> + Send>>;

fn message(kind: collector_message::Kind) -> Result<v1::CollectorMessage, Status> {
    Ok(v1::CollectorMessage { kind: Some(kind) })
}

#[tonic::async_trait]
impl ProbeControl for Hostile {
    async fn enroll(
        &self,
        request: Request<v1::EnrollRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let probe = ProbeId::random().unwrap();
        let certificate = self
            .pki
            .issue_probe_certificate(&probe, &request.into_inner().csr_der, UnixMicros::now())
            .unwrap();
        Ok(Response::new(v1::EnrollResponse {
            probe_id: probe.to_string(),
            probe_secret: String::new(),
            certificate_der: certificate.to_vec(),
            ca_certificate_der: self.pki.ca_der().to_vec(),
        }))
    }

    type SessionStream = Out;

    async fn session(
        &self,
        request: Request<Streaming<v1::ProbeMessage>>,
    ) -> Result<Response<Out>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let tasks = self.tasks.clone();
        let results = self.results.clone();
        tokio::spawn(async move {
            // Whatever the hello says, the "collector" welcomes it and sends its tasks.
            let _ = inbound.message().await;
            let welcome = Welcome {
                server_time: UnixMicros::now(),
                collector_version: "6.6.6".into(),
                heartbeat_interval: Duration::from_secs(30),
                max_batch_results: 256,
            };
            let _ = tx
                .send(message(collector_message::Kind::Welcome(encode::welcome(
                    &welcome,
                ))))
                .await;
            for task in &tasks {
                let _ = tx
                    .send(message(collector_message::Kind::Assign(task.clone())))
                    .await;
            }
            while let Ok(Some(msg)) = inbound.message().await {
                if let Some(probe_message::Kind::Results(batch)) = msg.kind {
                    let stored = batch
                        .results
                        .iter()
                        .filter_map(|r| decode::result_key(r.key.as_ref()).ok())
                        .collect();
                    for result in batch.results {
                        let _ = results.send(result).await;
                    }
                    let ack = Ack {
                        batch_id: batch.batch_id,
                        stored,
                        rejected: vec![],
                        stored_losses: vec![],
                    };
                    let _ = tx
                        .send(message(collector_message::Kind::Ack(encode::ack(&ack))))
                        .await;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn task(id: u64, target: &str, family: Family, kind: SpecKind) -> Assignment {
    Assignment {
        task_id: TaskId::new(id).unwrap(),
        spec: MeasurementSpec::new(
            Target::parse(target).unwrap(),
            family,
            Duration::from_secs(5),
            kind,
        )
        .unwrap(),
        interval: None,
        not_before: None,
    }
}

fn ping() -> SpecKind {
    SpecKind::Ping(PingSpec::new(3, 100, 0).unwrap())
}

fn tcp(port: u16) -> SpecKind {
    SpecKind::Tcp(TcpSpec::new(u32::from(port)).unwrap())
}

/// Counts connection attempts that reach `address`.
async fn counting_listener(address: SocketAddr) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, count)
}

/// Counts ICMP echo requests to `CANARY_V4` seen on a raw socket, if one can be opened.
fn raw_echo_counter() -> Option<Arc<AtomicUsize>> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::io::Read;
    let socket = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
        Ok(socket) => socket,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must capture: cannot open a raw ICMP socket: {e}"
            );
            eprintln!("no raw ICMP socket ({e}): relying on the TCP counters only");
            return None;
        }
    };
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let canary: std::net::Ipv4Addr = CANARY_V4.parse().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        let mut socket = socket;
        let mut buf = [0u8; 2048];
        loop {
            match socket.read(&mut buf) {
                Ok(n) if n >= 24 => {
                    let header = usize::from(buf[0] & 0x0f) * 4;
                    let to_canary = buf[16..20] == canary.octets();
                    if to_canary && buf.get(header) == Some(&8) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // Stop once the test is over (only this thread holds the counter then
                    // besides the test's handle, which is dropped at its end).
                    if Arc::strong_count(&counter) == 1 {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    Some(count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_collector_cannot_aim_the_probe_at_local_or_special_targets() {
    let echo_requests = raw_echo_counter();
    let (port_v6, hits_v6) = counting_listener("[::1]:0".parse().unwrap()).await;
    let (port_v4, hits_v4) =
        counting_listener(SocketAddr::new(CANARY_V4.parse().unwrap(), 0)).await;
    let (port_lo, hits_lo) = counting_listener("127.0.0.1:0".parse().unwrap()).await;

    let far = TracerouteSpec::new(TraceProtocol::Icmp, 1, 64, 5, 0, 0, 0).unwrap();
    let tasks = vec![
        task(1, "::1", Family::V6, ping()),
        task(2, "fe80::1", Family::V6, ping()),
        task(3, "ff02::1", Family::V6, ping()),
        task(4, "fd00::1", Family::V6, ping()),
        task(5, "10.0.0.1", Family::V4, ping()),
        task(6, "192.168.1.1", Family::V4, tcp(80)),
        task(7, "64:ff9b::192.168.1.1", Family::V6, ping()),
        task(8, "169.254.169.254", Family::V4, tcp(80)),
        task(9, "::1", Family::V6, tcp(port_v6)),
        task(10, CANARY_V4, Family::V4, tcp(port_v4)),
        task(11, CANARY_V4, Family::V4, ping()),
        // A name that resolves to loopback: refused after DNS.
        task(12, "localhost", Family::V4, tcp(port_lo)),
        // A global target, but 320 packets at worst: more than the whole budget.
        task(
            13,
            "2001:4860:4860::8888",
            Family::V6,
            SpecKind::Traceroute(far),
        ),
    ];
    // Beyond what a spec may say: a million echo requests of 65000 bytes each.
    let mut flood = encode::assignment(&task(14, "2001:4860:4860::8888", Family::V6, ping()));
    if let Some(v1::measurement_spec::Kind::Ping(p)) =
        flood.spec.as_mut().and_then(|s| s.kind.as_mut())
    {
        p.count = 1_000_000;
        p.payload_size = 65_000;
    }
    let mut tasks: Vec<v1::TaskAssignment> = tasks.iter().map(encode::assignment).collect();
    tasks.push(flood);
    let expected = tasks.len();

    let (results_tx, mut results_rx) = mpsc::channel(256);
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::load_or_create(ca_dir.path()).unwrap());
    // The token the volunteer got: any secret (this collector accepts all) and the CA's
    // fingerprint, which the probe pins.
    let token = format!("{}.{}", "5".repeat(64), pki.fingerprint());
    let tls = pki.server_config(&[]).unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ProbeControlServer::new(Hostile {
                tasks,
                results: results_tx,
                pki,
            }))
            .serve_with_incoming(pki::tls_incoming(
                listener,
                tls,
                Duration::from_secs(60),
                Duration::from_secs(10),
            )),
    );

    let state = tempfile::tempdir().unwrap();
    let settings = parse_toml::<ProbeConfig>(&format!(
        "collector = \"https://{collector}\"\nstate_dir = {:?}\nenrollment_token = \"{token}\"\n\
         packet_budget_per_minute = {BUDGET}\nself_test_aaaa_name = \"sixmap-test.invalid\"\n",
        state.path()
    ))
    .unwrap()
    .validate(None)
    .unwrap();
    assert!(!settings.policy.lab_mode);
    let probe = tokio::spawn(sixmap_probe::session::run(settings));

    let mut refused: HashMap<u64, String> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while refused.len() < expected {
        let result = tokio::time::timeout_at(deadline, results_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("results so far: {refused:#?}"))
            .unwrap();
        let result = decode::result(&result).unwrap();
        let Outcome::Failed(error) = &result.outcome else {
            panic!("task {} was measured: {:?}", result.task_id, result.outcome);
        };
        let task = result.task_id.get();
        // `localhost` may also fail to resolve for IPv4 in a bare sandbox: nothing is sent
        // either way, which the counters check.
        let allowed = if task == 12 {
            matches!(error.class, ErrorClass::Policy | ErrorClass::Resolution)
        } else {
            error.class == ErrorClass::Policy
        };
        assert!(allowed, "task {task}: {error:?}");
        assert!(
            result.destination.is_none(),
            "task {task} got as far as a destination"
        );
        refused.insert(task, error.message.clone());
    }
    probe.abort();
    server.abort();

    for (task, words) in [
        (1, "Loopback"),
        (2, "LinkLocal"),
        (3, "Multicast"),
        (4, "UniqueLocal"),
        (5, "Private"),
        (6, "Private"),
        (7, "Private"),
        (8, "LinkLocal"),
        (9, "Loopback"),
        (10, "Loopback"),
        (11, "Loopback"),
        (13, "packet_budget_per_minute"),
        (14, "ping.count"),
    ] {
        assert!(
            refused[&task].contains(words),
            "task {task}: {}",
            refused[&task]
        );
    }
    assert!(refused[&13].contains("320"), "{}", refused[&13]);

    // Give anything that was wrongly sent time to arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hits_v6.load(Ordering::SeqCst), 0, "connections to [::1]");
    assert_eq!(
        hits_v4.load(Ordering::SeqCst),
        0,
        "connections to {CANARY_V4}"
    );
    assert_eq!(
        hits_lo.load(Ordering::SeqCst),
        0,
        "connections to 127.0.0.1"
    );
    if let Some(echo_requests) = echo_requests {
        assert_eq!(
            echo_requests.load(Ordering::SeqCst),
            0,
            "echo requests to {CANARY_V4}"
        );
        // The capture itself works: the same ping, run by hand in lab mode, is seen.
        let lab = sixmap_probe::engine::Engine {
            policy: sixmap_shared::TargetPolicy { lab_mode: true },
            ..Default::default()
        };
        let control = task(11, CANARY_V4, Family::V4, ping());
        let produced = lab.run(control.task_id, &control.spec).await;
        if matches!(produced.outcome, Outcome::Ping(_)) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                echo_requests.load(Ordering::SeqCst) >= 1,
                "the capture saw nothing"
            );
        } else {
            eprintln!(
                "no ICMP socket for the positive control: {:?}",
                produced.outcome
            );
        }
    }
}
