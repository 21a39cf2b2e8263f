//! Enrollment under pressure and on retries (issue #19 items 6, 7, 9): per-owner caps hold
//! against parallel enrollments, a retry after a lost reply gets the same certificate, and
//! hostile free-text fields are refused with the field named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::pki::Pki;
use sixmap_collector::store::Role;
use sixmap_collector::testing::clickhouse::{ClickHouseServer, test_store};
use sixmap_probe::collector_tls;
use sixmap_proto::v1;
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;
use std::time::Duration;
use tonic::Code;

struct Harness {
    _dir: tempfile::TempDir,
    grpc: std::net::SocketAddr,
    http: std::net::SocketAddr,
    admin: String,
    fingerprint: String,
    _clickhouse: Option<ClickHouseServer>,
}

/// A collector with `extra` config and `tokens` enrollment tokens of owner "volunteer",
/// made before it starts (the store is one process's).
async fn start(extra: &str, tokens: usize) -> (Harness, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (store_lines, clickhouse, store) = test_store(dir.path());
    let admin = auth::create_api_token(&*store, Role::Admin, "test-admin", UnixMicros::now())
        .unwrap()
        .0;
    let pki = Pki::load_or_create(dir.path()).unwrap();
    let tokens = (0..tokens)
        .map(|_| {
            auth::create_enrollment_token(
                &*store,
                pki.fingerprint(),
                "volunteer",
                Duration::from_secs(3600),
                "test",
                UnixMicros::now(),
            )
            .unwrap()
            .0
        })
        .collect();
    drop(store);
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n{extra}\n\
         {store_lines}",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    (
        Harness {
            _dir: dir,
            grpc: running.grpc_addr,
            http: running.http_addr,
            admin,
            fingerprint: pki.fingerprint().to_owned(),
            _clickhouse: clickhouse,
        },
        tokens,
    )
}

fn csr() -> Vec<u8> {
    csr_for(&rcgen::KeyPair::generate().unwrap())
}

/// A new CSR for `key` (its signature, and so its bytes, differ every time).
fn csr_for(key: &rcgen::KeyPair) -> Vec<u8> {
    rcgen::CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .der()
        .to_vec()
}

impl Harness {
    async fn enroll(
        &self,
        request: v1::EnrollRequest,
    ) -> Result<v1::EnrollResponse, tonic::Status> {
        let tls = collector_tls::enrollment_config(&self.fingerprint).unwrap();
        let mut client = collector_tls::connect(&format!("https://{}", self.grpc), tls, |e| e)
            .await
            .unwrap();
        client
            .enroll(request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.http).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.admin
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
    }

    async fn enroll_outcomes(&self) -> Vec<String> {
        let audit = self.get("/api/v1/audit?limit=1000").await;
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "enroll")
            .map(|e| e["outcome"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn request(token: &str, csr: &[u8]) -> v1::EnrollRequest {
    v1::EnrollRequest {
        token: token.into(),
        hostname: "pi".into(),
        software_version: "0.1.0".into(),
        csr_der: csr.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_enrollments_of_one_owner_respect_the_cap_exactly() {
    // Every test enrollment comes from ::1: one owner, one /64, 60 tokens, cap 3.
    let (h, tokens) = start("max_probes_per_owner_per_64 = 3", 60).await;
    let h = std::sync::Arc::new(h);
    let attempts: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let h = h.clone();
            tokio::spawn(async move { h.enroll(request(&token, &csr())).await })
        })
        .collect();
    let mut enrolled = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => enrolled += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
                assert!(status.message().contains("::/64"), "{status}");
            }
        }
    }
    assert_eq!(enrolled, 3, "exactly the cap of 3 may enroll");
    let probes = h.get("/api/v1/probes").await;
    assert_eq!(probes.as_array().unwrap().len(), 3, "{probes}");
    let outcomes = h.enroll_outcomes().await;
    assert_eq!(
        outcomes.iter().filter(|o| *o == "ok").count(),
        3,
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_retry_with_the_same_token_and_key_gets_the_same_certificate() {
    let (h, tokens) = start("max_probes_per_owner_per_64 = 1", 2).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = csr_for(&key);
    let first = h.enroll(request(&tokens[0], &csr)).await.unwrap();
    // The reply was lost: the probe sends the same request again, and again with a new CSR
    // for the same key (what a restarted probe sends).
    let again = h.enroll(request(&tokens[0], &csr)).await.unwrap();
    assert_eq!(again.probe_id, first.probe_id);
    assert_eq!(again.certificate_der, first.certificate_der);
    let new_csr = csr_for(&key);
    assert_ne!(new_csr, csr);
    let again = h.enroll(request(&tokens[0], &new_csr)).await.unwrap();
    assert_eq!(again.probe_id, first.probe_id);
    assert_eq!(again.certificate_der, first.certificate_der);
    // The retry counted nothing against the cap of 1: still one probe.
    let probes = h.get("/api/v1/probes").await;
    assert_eq!(probes.as_array().unwrap().len(), 1, "{probes}");
    // A CSR for another key with the used token is refused as before.
    let err = h
        .enroll(request(&tokens[0], &self::csr()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    assert!(err.message().contains("already been used"), "{err}");
    // And the cap still holds for a new token.
    let err = h.enroll(request(&tokens[1], &csr)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    let outcomes = h.enroll_outcomes().await;
    assert_eq!(
        outcomes.iter().filter(|o| *o == "ok").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.starts_with("ok (repeated"))
            .count(),
        2,
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn hostile_enrollment_fields_are_refused_with_the_field_named() {
    let (h, tokens) = start("", 1).await;
    let csr = csr();
    for (hostname, version, field) in [
        (
            "pi\n2026-12-03T00:00:00Z INFO probe enrolled owner=admin",
            "0.1.0",
            "hostname",
        ),
        ("pi\x1b[2J\x1b[31mred", "0.1.0", "hostname"),
        (&*"p".repeat(65), "0.1.0", "hostname"),
        ("pi", &*"1".repeat(3 << 20), "software_version"),
        ("pi", "0.1.0\r\nX", "software_version"),
    ] {
        let err = h
            .enroll(v1::EnrollRequest {
                hostname: hostname.into(),
                software_version: version.into(),
                ..request(&tokens[0], &csr)
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert!(err.message().contains(&format!("`{field}`")), "{err}");
        assert!(
            !err.message().contains('\x1b') && !err.message().contains('\n'),
            "{err:?}"
        );
        assert!(err.message().len() < 300, "the value is not echoed");
    }
    // The token was not spent by the refused attempts.
    h.enroll(request(&tokens[0], &csr)).await.unwrap();
}
