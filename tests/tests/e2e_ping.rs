//! The first end-to-end slice: a real collector process and a real probe process; the probe
//! pings ::1 as assigned, the result is stored, read back over HTTP, and survives a kill -9 of
//! the collector.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::{Collector, start_probe, wait_for};
use std::time::Duration;

#[test]
fn probe_pings_loopback_and_the_result_survives_a_collector_restart() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("collector-data");
    let collector = Collector::start(
        &data,
        &[
            "--ping-target",
            "::1",
            "--ping-every-s",
            "2",
            "--heartbeat-interval-s",
            "1",
        ],
    );

    let config = work.path().join("probe.toml");
    std::fs::write(
        &config,
        format!(
            "collector = \"{}\"\nstate_dir = {:?}\nenrollment_token = \"{}\"\n\
             hostname = \"e2e\"\nlab_mode = true\n",
            collector.url(),
            work.path().join("probe-state"),
            collector.enrollment_token("e2e")
        ),
    )
    .unwrap();
    let mut probe = start_probe(&config);

    let probe_id = wait_for(Duration::from_secs(20), || {
        let probes = collector.get_json("/api/v1/probes");
        probes[0]["id"].as_str().map(str::to_owned)
    })
    .unwrap_or_else(|| {
        panic!(
            "probe never enrolled:\n{}\n{}",
            probe.log(),
            collector.process.log()
        )
    });

    let path = format!("/api/v1/results?probe={probe_id}");
    // Wait for two results: the session handles batches one at a time (store, flush, ack), so
    // a second stored result proves the first was made durable.
    let result = wait_for(Duration::from_secs(30), || {
        let body = collector.get_json(&path);
        let pings: Vec<_> = body["results"]
            .as_array()?
            .iter()
            .filter(|r| r["outcome"]["kind"] == "ping")
            .cloned()
            .collect();
        (pings.len() >= 2).then(|| pings[pings.len() - 1].clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "no ping results stored:\nprobe:\n{}\ncollector:\n{}",
            probe.log(),
            collector.process.log()
        )
    });

    let outcome = &result["outcome"];
    assert_eq!(result["destination"], "::1", "{result:#}");
    assert_eq!(result["key"]["probe_id"], probe_id.as_str());
    assert_eq!(result["software_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(outcome["sent"], 3, "{result:#}");
    assert_eq!(outcome["received"], 3, "{result:#}");
    for reply in outcome["replies"].as_array().unwrap() {
        let rtt_ns = reply["rtt_ns"].as_u64().unwrap();
        // Loopback: more than nothing, far less than 100 ms.
        assert!(
            rtt_ns > 0 && rtt_ns < 100_000_000,
            "implausible RTT {rtt_ns} ns"
        );
        assert_eq!(reply["hop_limit"], 64, "{reply}");
        assert_eq!(reply["from"], "::1");
    }
    let key = result["key"].clone();

    // kill -9 both: only what the collector made durable before acking may be relied on.
    probe.kill();
    let mut collector = collector;
    collector.process.kill();

    let restarted = Collector::start(&data, &[]);
    let body = restarted.get_json(&path);
    let keys: Vec<_> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].clone())
        .collect();
    assert!(
        keys.contains(&key),
        "result {key} lost across restart; have {keys:?}"
    );

    let dashboard = sixmap_tests::http_get(restarted.http, "/");
    assert_eq!(dashboard.0, 200);
    assert!(dashboard.1.contains("sixmap collector"));
}

#[test]
fn a_revoked_probe_stops_with_a_clear_message_and_stays_stopped() {
    let work = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        &work.path().join("collector-data"),
        &["--heartbeat-interval-s", "1"],
    );
    let state = work.path().join("probe-state");
    let config = work.path().join("probe.toml");
    std::fs::write(
        &config,
        format!(
            "collector = \"{}\"\nstate_dir = {state:?}\nenrollment_token = \"{}\"\n",
            collector.url(),
            collector.enrollment_token("e2e")
        ),
    )
    .unwrap();
    let mut probe = start_probe(&config);
    let id = wait_for(Duration::from_secs(20), || {
        let probes = collector.get_json("/api/v1/probes");
        probes[0]["id"].as_str().map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("probe never enrolled:\n{}", probe.log()));
    let (status, body) = sixmap_tests::http_request(
        collector.http,
        "POST",
        &format!("/api/v1/probes/{id}/revoke"),
        Some(&collector.admin),
        "",
    );
    assert_eq!(status, 200, "{body}");
    // The open session ends at the next heartbeat, and the probe stops with EX_CONFIG.
    let status = probe
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("probe kept running:\n{}", probe.log()));
    assert_eq!(status.code(), Some(78), "{}", probe.log());
    let log = probe.log();
    assert!(log.contains("was revoked"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    // Started again (systemd, a reboot), it stops at once without knocking on the collector.
    let mut again = start_probe(&config);
    let status = again
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("restarted probe kept running:\n{}", again.log()));
    assert_eq!(status.code(), Some(78));
    assert!(again.log().contains("revoked"), "{}", again.log());
    assert!(
        !again.log().contains("session established"),
        "{}",
        again.log()
    );
}

#[test]
fn results_produced_while_the_collector_is_down_arrive_once_and_none_is_lost() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("collector-data");
    let args = ["--ping-target", "::1", "--ping-every-s", "1"];
    let mut collector = Collector::start(&data, &args);
    let grpc = collector.grpc;
    let config = work.path().join("probe.toml");
    std::fs::write(
        &config,
        format!(
            "collector = \"https://{grpc}\"\nstate_dir = {:?}\nenrollment_token = \"{}\"\nlab_mode = true\n",
            work.path().join("probe-state"),
            collector.enrollment_token("e2e")
        ),
    )
    .unwrap();
    let probe = start_probe(&config);
    let stored = |c: &Collector| {
        c.get_json("/api/v1/results?limit=10000")["count"]
            .as_u64()
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(20), || {
        (stored(&collector) >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no results before the outage:\n{}", probe.log()));

    collector.process.kill();
    std::thread::sleep(Duration::from_secs(4));
    let listen = grpc.to_string();
    let mut restart_args = args.to_vec();
    restart_args.extend_from_slice(&["--grpc-listen", &listen]);
    let collector = Collector::start(&data, &restart_args);

    let outage_over = unix_now_us();
    // Wait until a result started after the restart is stored: everything before it has been
    // uploaded too, since the probe sends pending results in sequence order.
    wait_for(Duration::from_secs(40), || {
        let body = collector.get_json("/api/v1/results?limit=1");
        (body["results"][0]["started_at"].as_i64()? > outage_over).then_some(())
    })
    .unwrap_or_else(|| panic!("probe did not come back:\n{}", probe.log()));

    let body = collector.get_json("/api/v1/results?limit=10000");
    let mut sequences: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["key"]["boot_epoch"], 1);
            r["key"]["sequence"].as_u64().unwrap()
        })
        .collect();
    sequences.sort_unstable();
    let expected: Vec<u64> = (1..=*sequences.last().unwrap()).collect();
    assert_eq!(
        sequences, expected,
        "results lost or duplicated across the outage"
    );
    assert!(
        sequences.len() >= 6,
        "the outage should have produced results: {sequences:?}"
    );
}

/// Wall clock in Unix microseconds, as results carry it.
fn unix_now_us() -> i64 {
    sixmap_shared::UnixMicros::now().0
}
