//! The harness shared by the collector's gRPC tests (`limits`, `stall`, `store_failure`,
//! `session`, `campaign_grpc`) and the issue #19 soak (`examples/soak_attacks.rs`, through `#[path]`): one copy of
//! preparing a store with enrollment tokens, reading the ports a `serve` process prints,
//! enrolling a probe, and a probe's hello.
//!
//! It lives here rather than in the library's `testing` module because enrolling needs the
//! probe's TLS client (`sixmap_probe::collector_tls`), which the collector has only as a
//! dev-dependency; tests and examples both see dev-dependencies.

#![allow(dead_code)] // each test binary uses its own part of the harness

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use sixmap_collector::auth;
use sixmap_collector::export::samples;
use sixmap_collector::pki::Pki;
use sixmap_collector::store::{SledStore, Store, StoredResult};
use sixmap_probe::collector_tls;
use sixmap_proto::v1;
use sixmap_proto::v1::probe_control_client::ProbeControlClient;
use sixmap_proto::v1::probe_message;
use sixmap_shared::UnixMicros;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tonic::transport::Channel;

/// What [`prepare`] made: the CA's fingerprint and the enrollment tokens.
pub struct Prepared {
    pub ca_fingerprint: String,
    pub tokens: Vec<String>,
    pub store: SledStore,
}

/// A sled store in `data` with the collector's CA, `tokens` enrollment tokens (owners
/// `owner-0`, `owner-1`, ...: one each, so per-owner caps do not interfere) and `results`
/// synthetic stored results (one a second from 2026-01-01, seven probes). The store is
/// returned open, to be dropped before the collector opens it.
pub fn prepare(data: &Path, tokens: usize, results: u64) -> Prepared {
    let store = SledStore::open(data).unwrap();
    let pki = Pki::load_or_create(data).unwrap();
    let tokens = (0..tokens)
        .map(|i| {
            auth::create_enrollment_token(
                &store,
                pki.fingerprint(),
                &format!("owner-{i}"),
                Duration::from_secs(3600),
                "test",
                UnixMicros::now(),
            )
            .unwrap()
            .0
        })
        .collect();
    let stored: Vec<StoredResult> = (0..results)
        .map(|i| samples::sample(i, 7, UnixMicros(1_767_225_600_000_000), 1_000_000))
        .collect();
    for chunk in stored.chunks(5000) {
        store.insert_results(chunk).unwrap();
    }
    store.flush().unwrap();
    Prepared {
        ca_fingerprint: pki.fingerprint().to_owned(),
        tokens,
        store,
    }
}

/// A `sixmap-collector serve` process and the addresses it printed.
pub struct Served {
    pub child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

/// Runs `binary serve --config config` (stdout piped, `stderr` as given, `RUST_LOG=log` if
/// given) and reads the addresses from its first line (`... grpc=ADDR http=ADDR`).
pub fn serve(binary: &Path, config: &Path, stderr: Stdio, log: Option<&str>) -> Served {
    let mut command = Command::new(binary);
    command
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(stderr);
    if let Some(log) = log {
        command.env("RUST_LOG", log);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = |key: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .parse()
            .unwrap()
    };
    Served {
        grpc: addr("grpc="),
        http: addr("http="),
        child,
    }
}

/// Enrollment as a probe does it, at the collector on `url` (CA pinned by `fingerprint`) with
/// `token`: a CSR for a new key, then a client presenting the issued certificate. Returns the
/// collector's answer, that client and the key; a refused enrollment is its status.
pub async fn try_enroll(
    url: &str,
    fingerprint: &str,
    token: String,
) -> Result<
    (
        v1::EnrollResponse,
        ProbeControlClient<Channel>,
        rcgen::KeyPair,
    ),
    tonic::Status,
> {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    let tls = collector_tls::enrollment_config(fingerprint).unwrap();
    let enrolled = collector_tls::connect(url, tls, |e| e)
        .await
        .unwrap()
        .enroll(v1::EnrollRequest {
            token,
            hostname: "pi".into(),
            software_version: "0.1.0".into(),
            csr_der: csr.der().to_vec(),
        })
        .await?
        .into_inner();
    let tls = collector_tls::session_config(
        enrolled.ca_certificate_der.clone().into(),
        enrolled.certificate_der.clone().into(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let client = collector_tls::connect(url, tls, |e| e).await.unwrap();
    Ok((enrolled, client, key))
}

/// [`try_enroll`] that must succeed: the new probe's id and its client.
pub async fn enroll(
    url: &str,
    fingerprint: &str,
    token: String,
) -> (String, ProbeControlClient<Channel>) {
    let (enrolled, client, _) = try_enroll(url, fingerprint, token).await.unwrap();
    (enrolled.probe_id, client)
}

/// A probe's first session message (boot epoch 1, pings only, on `::1`).
pub fn hello(probe_id: &str) -> v1::ProbeMessage {
    v1::ProbeMessage {
        kind: Some(probe_message::Kind::Hello(v1::Hello {
            probe_id: probe_id.to_owned(),
            probe_secret: String::new(),
            software_version: "0.1.0".into(),
            boot_epoch: 1,
            capabilities: vec![v1::MeasurementKind::Ping.into()],
            local_addresses: vec!["::1".into()],
            probe_time_us: UnixMicros::now().0,
            location: None,
        })),
    }
}
