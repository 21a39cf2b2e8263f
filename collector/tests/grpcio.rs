//! A researcher's standard gRPC client (Python grpcio) reaches `QueryService` with only the
//! collector's CA file (issue #21): the server certificate carries the `[tls] public_names`
//! it is dialled by (`localhost`, `::1`), so hostname verification passes without the
//! `sixmap-collector` override probes use. Without those names the same client is refused,
//! and with them a wrong token still is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

mod common;

use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::store::{Role, SledStore, Store};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::parse_toml;
use sixmap_shared::prefixes::Enrichment;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether grpcio and grpcio-tools import; when not, fails under CI=true and skips otherwise.
fn python_has_grpcio() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let message = "python3 cannot import grpc: python3 -m pip install grpcio grpcio-tools";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}");
        }
        eprintln!("skipping: {message}");
    }
    ok
}

struct Collector {
    dir: tempfile::TempDir,
    grpc: std::net::SocketAddr,
    researcher: String,
    /// A volunteer's enrollment token and the CA fingerprint in it.
    enrollment: (String, String),
}

/// A collector on `[::1]` with `tls_lines` in its config and five stored results of two
/// probes in two countries.
async fn start(tls_lines: &str) -> Collector {
    let dir = tempfile::tempdir().unwrap();
    let (researcher, enrollment) = {
        let store = SledStore::open(dir.path()).unwrap();
        let results: Vec<_> = (1..=5u64)
            .map(|s| {
                let (probe, country) = if s % 2 == 0 {
                    ("00000000000000b2", "NL")
                } else {
                    ("00000000000000a1", "DE")
                };
                sixmap_collector::testing::ping_v6(
                    probe.parse().unwrap(),
                    s,
                    UnixMicros(1_772_323_200_000_000 + s as i64),
                    Some(std::time::Duration::from_millis(12)),
                    Enrichment {
                        asn: Some(64_500),
                        as_name: None,
                        country: Some(country.parse().unwrap()),
                    },
                )
            })
            .collect();
        store.insert_results(&results).unwrap();
        let token = auth::create_api_token(&store, Role::Researcher, "rita", UnixMicros::now())
            .unwrap()
            .0;
        let pki = sixmap_collector::pki::Pki::load_or_create(dir.path()).unwrap();
        let fingerprint = pki.fingerprint().to_owned();
        let (enrollment, _) = auth::create_enrollment_token(
            &store,
            &fingerprint,
            "uni-a",
            auth::DEFAULT_TOKEN_LIFETIME,
            "test",
            UnixMicros::now(),
        )
        .unwrap();
        store.flush().unwrap();
        (token, (enrollment, fingerprint))
    };
    let text = format!(
        "data_dir = {:?}\ngrpc_listen = \"[::1]:0\"\nhttp_listen = \"[::1]:0\"\n{tls_lines}",
        dir.path()
    );
    let settings = parse_toml::<CollectorConfig>(&text)
        .unwrap()
        .validate(None)
        .unwrap();
    let running = sixmap_collector::start(settings).await.unwrap();
    Collector {
        grpc: running.grpc_addr,
        dir,
        researcher,
        enrollment,
    }
}

impl Collector {
    /// The Python client dialling `host` (with this collector's port): its JSON line and
    /// whether it succeeded.
    async fn grpcio(&self, host: &str, token: &str) -> (bool, serde_json::Value) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("tests/python/query_grpcio.py");
        let protos: PathBuf = root.join("../proto/proto");
        // Only the CA's certificate: what the operator publishes for researchers.
        let ca = self.dir.path().join("pki/ca.pem");
        let target = format!("{host}:{}", self.grpc.port());
        let token = token.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg(&script)
                .arg(&protos)
                .arg(&ca)
                .arg(&target)
                .arg(&token)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_else(|| {
            panic!(
                "no output from the grpcio client: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), serde_json::from_str(line).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_reaches_the_query_service_with_only_the_ca_file() {
    if !python_has_grpcio() {
        return;
    }
    let named = start("[tls]\npublic_names = [\"localhost\", \"::1\"]\n").await;
    for host in ["localhost", "[::1]"] {
        let (ok, answer) = named.grpcio(host, &named.researcher).await;
        assert!(ok, "{host}: {answer}");
        assert_eq!(answer["results"], 5, "{host}: {answer}");
        assert_eq!(
            answer["probes"],
            serde_json::json!(["00000000000000a1", "00000000000000b2"])
        );
        assert_eq!(answer["countries"], serde_json::json!(["DE", "NL"]));
    }
    // Probes check the name `sixmap-collector`, which stays: one enrolls as before.
    let (token, fingerprint) = named.enrollment.clone();
    let url = format!("https://{}", named.grpc);
    let (enrolled, _, _) = common::try_enroll(&url, &fingerprint, token)
        .await
        .expect("a probe enrolls at a collector with public names");
    assert_eq!(enrolled.probe_id.len(), 16);
    // A wrong token is still refused, by the service itself.
    let (ok, answer) = named
        .grpcio("localhost", &format!("sxa_{}", "0".repeat(64)))
        .await;
    assert!(!ok, "{answer}");
    assert_eq!(answer["code"], "UNAUTHENTICATED", "{answer}");

    // Without public names the certificate names only `sixmap-collector`: the standard
    // client refuses it (the failure), so the names above are what made it work.
    // Dialled by address, so the one error is the certificate's, not a refused IPv4 attempt.
    let unnamed = start("").await;
    let (ok, answer) = unnamed.grpcio("[::1]", &unnamed.researcher).await;
    assert!(!ok, "{answer}");
    assert_eq!(answer["code"], "UNAVAILABLE", "{answer}");
    assert!(
        answer["details"]
            .as_str()
            .unwrap()
            .contains("Hostname Verification"),
        "refused for another reason than the name: {answer}"
    );
}
