//! Prometheus metrics of a real collector and a real probe (issue #9), read by an independent
//! parser: the Python client library's (`prometheus_client.parser`), so a format mistake of
//! ours cannot hide behind a parser of ours. Values are checked against each other and
//! against what the collector's API says it stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::{Collector, free_port, http_get, start_probe, stored_results, wait_for};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Parses exposition text with `prometheus_client` and prints families and samples as JSON.
const PARSER: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"types": {}, "samples": []}
for family in text_string_to_metric_families(sys.stdin.read()):
    out["types"][family.name] = family.type
    for s in family.samples:
        value = s.value if math.isfinite(s.value) else str(s.value)
        out["samples"].append({"name": s.name, "labels": s.labels, "value": value})
print(json.dumps(out))
"#;

/// Whether `prometheus_client` can be imported; in CI its absence fails the test.
fn parser_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let what =
            "the Python package prometheus_client (python3 -m pip install prometheus_client)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("metrics test cannot run in CI: it needs {what}");
        }
        eprintln!("skipped: this test needs {what}");
    }
    found
}

/// Metrics as the independent parser read them.
#[derive(Debug)]
struct Scrape {
    types: serde_json::Value,
    samples: Vec<serde_json::Value>,
    text: String,
}

impl Scrape {
    fn parse(text: String) -> Self {
        let mut child = Command::new("python3")
            .args(["-c", PARSER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "prometheus_client refused the exposition:\n{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Self {
            types: json["types"].clone(),
            samples: json["samples"].as_array().unwrap().clone(),
            text,
        }
    }

    /// The value of the sample `name` whose labels include `labels`; `None` if there is none.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][k] == *v))
            .map(|s| s["value"].as_f64().unwrap_or(f64::NAN))
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{}", self.text))
    }

    fn kind(&self, family: &str) -> &str {
        self.types[family].as_str().unwrap_or("missing")
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "GET /metrics at {addr}: {body}");
    Scrape::parse(body)
}

#[test]
fn collector_and_probe_metrics_agree_with_what_was_stored() {
    if !parser_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        &work.path().join("collector-data"),
        &[
            "--ping-target",
            "::1",
            "--ping-every-s",
            "1",
            "--heartbeat-interval-s",
            "1",
        ],
    );
    let metrics_addr: SocketAddr = format!("[::1]:{}", free_port()).parse().unwrap();
    let config = work.path().join("probe.toml");
    std::fs::write(
        &config,
        format!(
            "collector = \"{}\"\nstate_dir = {:?}\nenrollment_token = \"{}\"\n\
             lab_mode = true\nmetrics_listen = \"{metrics_addr}\"\n",
            collector.url(),
            work.path().join("probe-state"),
            collector.enrollment_token("metrics")
        ),
    )
    .unwrap();
    let mut probe = start_probe(&config);
    let probe_id = wait_for(Duration::from_secs(20), || {
        collector.get_json("/api/v1/probes")[0]["id"]
            .as_str()
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("probe never enrolled:\n{}", probe.log()));

    // Several batches acked on both sides.
    // The outbox holds what was produced and not yet acked. A scrape reads one value after
    // the other, so one taken while an ack is applied may be off: such a scrape is retaken.
    let probe_side = wait_for(Duration::from_secs(40), || {
        let s = scrape(metrics_addr);
        let acked = s.get("sixmap_probe_results_acked_total", &[]);
        let waiting = s.get("sixmap_probe_outbox_results", &[]);
        let produced = s.get("sixmap_probe_results_produced_total", &[]);
        (acked >= 3.0 && waiting == produced - acked).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "the probe's metrics never showed 3 acked results and an outbox of produced - acked:\n{}\n{}",
            probe.log(),
            collector.process.log()
        )
    });
    let collector_live = scrape(collector.http);

    // Types as the parser read them (counters lose their _total in the family name).
    assert_eq!(probe_side.kind("sixmap_probe_results_acked"), "counter");
    assert_eq!(probe_side.kind("sixmap_probe_outbox_results"), "gauge");
    assert_eq!(
        collector_live.kind("sixmap_collector_ack_latency_seconds"),
        "histogram"
    );
    assert_eq!(
        collector_live.kind("sixmap_collector_sessions_open"),
        "gauge"
    );

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        probe_side.get("sixmap_probe_build_info", &[("version", version)]),
        1.0
    );
    assert_eq!(
        collector_live.get("sixmap_collector_build_info", &[("version", version)]),
        1.0
    );
    assert_eq!(probe_side.get("sixmap_probe_connected", &[]), 1.0);
    assert_eq!(
        probe_side.get("sixmap_probe_collector", &[("url", &collector.url())]),
        1.0
    );
    assert!(probe_side.get("sixmap_probe_sessions_established_total", &[]) >= 1.0);
    let produced = probe_side.get("sixmap_probe_results_produced_total", &[]);
    let acked = probe_side.get("sixmap_probe_results_acked_total", &[]);
    assert!(produced >= acked, "produced {produced} < acked {acked}");
    assert!(probe_side.get("sixmap_probe_measurements_total", &[]) >= produced);
    assert_eq!(
        probe_side.get("sixmap_probe_results_rejected_total", &[]),
        0.0
    );

    assert_eq!(
        collector_live.get("sixmap_collector_sessions_open", &[]),
        1.0
    );
    assert_eq!(
        collector_live.get("sixmap_collector_enrollments_total", &[("outcome", "ok")]),
        1.0
    );
    // The probe's acks came from this collector: it stored at least as many.
    let stored_new = collector_live.get(
        "sixmap_collector_results_stored_total",
        &[("outcome", "new")],
    );
    assert!(
        stored_new >= acked,
        "collector stored {stored_new}, probe saw {acked} acked"
    );

    // Stop the probe: the collector's counters then stand still and must match its store.
    probe.kill();
    let settled = wait_for(Duration::from_secs(20), || {
        let s = scrape(collector.http);
        (s.get("sixmap_collector_sessions_open", &[]) == 0.0).then_some(s)
    })
    .unwrap_or_else(|| panic!("the session never ended:\n{}", collector.process.log()));
    let stored = stored_results(&collector, &probe_id);
    let new = settled.get(
        "sixmap_collector_results_stored_total",
        &[("outcome", "new")],
    );
    assert_eq!(
        new,
        stored.len() as f64,
        "stored_total{{new}} vs the API's results"
    );
    let received = settled.get("sixmap_collector_results_received_total", &[]);
    let duplicate = settled
        .find(
            "sixmap_collector_results_stored_total",
            &[("outcome", "duplicate")],
        )
        .unwrap_or(0.0);
    assert_eq!(
        received,
        new + duplicate,
        "every result received was stored once"
    );
    let batches = settled.get("sixmap_collector_result_batches_total", &[]);
    let acks = settled.get("sixmap_collector_acks_sent_total", &[]);
    assert!(
        batches >= 1.0 && acks <= batches && acks >= batches - 1.0,
        "{batches} batches, {acks} acks"
    );
    assert_eq!(
        settled.get("sixmap_collector_ack_latency_seconds_count", &[]),
        acks
    );
    assert_eq!(
        settled.get(
            "sixmap_collector_ack_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        acks
    );
    assert!(settled.get("sixmap_collector_store_flush_seconds_count", &[]) >= batches - 1.0);
    assert_eq!(
        settled.get("sixmap_collector_sessions_opened_total", &[]),
        1.0
    );
    // The API reads above went through the HTTP layer, counted by route template.
    assert!(
        settled.get(
            "sixmap_collector_http_requests_total",
            &[("route", "/api/v1/probes"), ("status", "2xx")]
        ) >= 1.0
    );
    assert!(
        settled.get(
            "sixmap_collector_http_requests_total",
            &[("route", "/metrics"), ("status", "2xx")]
        ) >= 1.0,
        "a request is counted once answered: the earlier scrape"
    );
    // Unknown paths need a token like raw data: refused with 401, counted as "unmatched".
    let (status, _) = http_get(collector.http, "/no/such/page");
    assert_eq!(status, 401);
    assert!(
        scrape(collector.http).get(
            "sixmap_collector_http_requests_total",
            &[("route", "unmatched"), ("status", "4xx")]
        ) >= 1.0
    );
}
