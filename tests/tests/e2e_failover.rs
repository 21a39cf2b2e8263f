//! Probe failover between collectors (issue #11) with real processes.
//!
//! - The first collector listed does not exist (nothing listens on its port): the probe enrolls
//!   with and delivers to the second.
//! - The collector in use is killed: the probe moves to the other one, and every result it
//!   made reaches one of the two. Two collectors sharing one store need a networked store;
//!   here the second collector runs on a copy of the first one's data directory (same CA, same
//!   probe certificate, same tasks), which is what a shared store gives them too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::{
    Collector, ProbeLog, Seq, free_port, probe_status, start_probe, stored_results, wait_for,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const PING_EVERY_SECOND: &[&str] = &[
    "--ping-target",
    "::1",
    "--ping-every-s",
    "1",
    "--heartbeat-interval-s",
    "1",
];

fn collector_on(data: &Path, port: u16) -> Collector {
    let listen = format!("[::1]:{port}");
    let mut args = PING_EVERY_SECOND.to_vec();
    args.extend_from_slice(&["--grpc-listen", &listen]);
    Collector::start(data, &args)
}

fn write_probe_config(path: &Path, state: &Path, collectors: &[String], token: &str) {
    let list: Vec<String> = collectors.iter().map(|c| format!("{c:?}")).collect();
    std::fs::write(
        path,
        format!(
            "collectors = [{}]\nstate_dir = {state:?}\nenrollment_token = \"{token}\"\n\
             hostname = \"failover\"\nlab_mode = true\n",
            list.join(", ")
        ),
    )
    .unwrap();
}

fn keys(stored: &std::collections::BTreeMap<Seq, sixmap_tests::StoredResult>) -> BTreeSet<Seq> {
    stored.keys().copied().collect()
}

/// Waits until the probe has enrolled at `a` and delivered results there; its id.
fn enrolled_and_delivering(a: &Collector, probe: &sixmap_tests::Process) -> String {
    let id = wait_for(Duration::from_secs(30), || {
        a.get_json("/api/v1/probes")[0]["id"]
            .as_str()
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("probe never enrolled at A:\n{}", probe.log()));
    wait_for(Duration::from_secs(30), || {
        (stored_results(a, &id).len() >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no results at A:\n{}", probe.log()));
    id
}

#[test]
fn an_unreachable_first_collector_is_skipped() {
    let work = tempfile::tempdir().unwrap();
    let second = Collector::start(&work.path().join("second-data"), PING_EVERY_SECOND);
    // Bound once and released: nothing listens there.
    let dead = format!("https://[::1]:{}", free_port());
    let state = work.path().join("probe-state");
    let config = work.path().join("probe.toml");
    write_probe_config(
        &config,
        &state,
        &[dead.clone(), second.url()],
        &second.enrollment_token("failover"),
    );
    let probe = start_probe(&config);
    let id = wait_for(Duration::from_secs(30), || {
        second.get_json("/api/v1/probes")[0]["id"]
            .as_str()
            .map(str::to_owned)
    })
    .unwrap_or_else(|| {
        panic!(
            "probe never enrolled at the second collector:\n{}",
            probe.log()
        )
    });
    let stored = wait_for(Duration::from_secs(30), || {
        let stored = stored_results(&second, &id);
        (stored.len() >= 3).then_some(stored)
    })
    .unwrap_or_else(|| panic!("no results at the second collector:\n{}", probe.log()));
    assert!(stored.len() >= 3);

    // The identity names the collector that issued it; the status the one in use.
    let identity = std::fs::read_to_string(state.join("identity.toml")).unwrap();
    assert!(identity.contains(&second.url()), "{identity}");
    let status = wait_for(Duration::from_secs(10), || {
        probe_status(&state).filter(|s| s["connected"] == true)
    })
    .unwrap_or_else(|| panic!("status never connected:\n{}", probe.log()));
    assert_eq!(status["collector"], second.url().as_str(), "{status:#}");
    assert_eq!(status["collectors"][0], dead.as_str(), "{status:#}");
    // The dead one was really tried first, for enrollment and for the session.
    let log = probe.log();
    let tried = format!("collector={dead}");
    assert!(
        log.lines()
            .any(|l| l.contains("enrollment failed") && l.contains(&tried)),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("session ended") && l.contains(&tried)),
        "{log}"
    );
    let text = std::process::Command::new(sixmap_tests::binary("sixmap-probe"))
        .args(["status", "--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("collector:   {} connected", second.url())),
        "{text}"
    );
    assert!(text.contains(&format!("failover:    {dead}")), "{text}");
}

#[test]
fn a_killed_collector_is_replaced_and_nothing_is_lost() {
    let work = tempfile::tempdir().unwrap();
    let (a_data, b_data) = (work.path().join("a/data"), work.path().join("b/data"));
    std::fs::create_dir_all(a_data.parent().unwrap()).unwrap();
    std::fs::create_dir_all(b_data.parent().unwrap()).unwrap();
    let (a_port, b_port) = (free_port(), free_port());
    let (a_url, b_url) = (
        format!("https://[::1]:{a_port}"),
        format!("https://[::1]:{b_port}"),
    );
    let state = work.path().join("probe-state");
    let config = work.path().join("probe.toml");
    let mut log = ProbeLog::default();

    // Enroll at A and deliver there, then stop both to copy A's store for B.
    let a = collector_on(&a_data, a_port);
    write_probe_config(
        &config,
        &state,
        &[a_url.clone(), b_url.clone()],
        &a.enrollment_token("failover"),
    );
    let mut probe = start_probe(&config);
    let id = enrolled_and_delivering(&a, &probe);
    probe.kill();
    log.add(&probe.log());
    drop(a);
    let copied = std::process::Command::new("cp")
        .args(["-a", a_data.to_str().unwrap(), b_data.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());

    let mut a = collector_on(&a_data, a_port);
    let b = collector_on(&b_data, b_port);
    let at_a_before = keys(&stored_results(&a, &id));
    let probe = start_probe(&config);
    // The probe uses A, the first listed, while it works.
    wait_for(Duration::from_secs(30), || {
        (stored_results(&a, &id).len() >= at_a_before.len() + 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no new results at A:\n{}", probe.log()));
    let at_b_before = keys(&stored_results(&b, &id));
    a.process.kill();

    // B takes over.
    wait_for(Duration::from_secs(30), || {
        (stored_results(&b, &id).len() >= at_b_before.len() + 3).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no results at B after A was killed:\n{}\nB:\n{}",
            probe.log(),
            b.process.log()
        )
    });
    let status = wait_for(Duration::from_secs(10), || {
        probe_status(&state).filter(|s| s["connected"] == true && s["collector"] == b_url.as_str())
    });
    assert!(
        status.is_some(),
        "status never showed B in use:\n{}",
        probe.log()
    );
    let current = probe.log();
    assert!(
        current.lines().any(|l| l.contains("session ended")
            && l.contains(&format!("collector={a_url}"))
            && l.contains(&format!("next={b_url}"))),
        "no failover from A to B in the log:\n{current}"
    );

    // Everything the probe made until now reaches A's store (before its death) or B's.
    log.add(&probe.log());
    let produced: BTreeSet<Seq> = log.produced.keys().copied().collect();
    assert!(log.dropped.is_empty(), "the outbox never filled up");
    let a = collector_on(&a_data, a_port);
    let at_a = keys(&stored_results(&a, &id));
    let missing = || -> Vec<Seq> {
        let at_b = keys(&stored_results(&b, &id));
        produced
            .iter()
            .filter(|k| !at_a.contains(k) && !at_b.contains(k))
            .copied()
            .collect()
    };
    if wait_for(Duration::from_secs(30), || {
        missing().is_empty().then_some(())
    })
    .is_none()
    {
        panic!(
            "results produced but stored at neither collector: {:?}\n{}",
            missing(),
            probe.log()
        );
    }
    // A went on storing after the copy: the results of the probe's second run reached it.
    assert!(at_a.len() > at_a_before.len());
    drop(probe);
}

#[test]
fn a_collector_that_does_not_know_the_probe_does_not_stop_it() {
    let work = tempfile::tempdir().unwrap();
    let (a_data, b_data) = (work.path().join("a/data"), work.path().join("b/data"));
    std::fs::create_dir_all(a_data.parent().unwrap()).unwrap();
    std::fs::create_dir_all(b_data.parent().unwrap()).unwrap();
    let (a_port, b_port) = (free_port(), free_port());
    // B gets A's CA and tasks but not what comes later: the token and the probe are unknown
    // to it, as to a collector set up with the wrong store.
    drop(collector_on(&a_data, a_port));
    let copied = std::process::Command::new("cp")
        .args(["-a", a_data.to_str().unwrap(), b_data.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    let a = collector_on(&a_data, a_port);
    let b = collector_on(&b_data, b_port);
    let state = work.path().join("probe-state");
    let config = work.path().join("probe.toml");
    // B first: it refuses the token, then the certificate; A accepts both.
    write_probe_config(
        &config,
        &state,
        &[b.url(), a.url()],
        &a.enrollment_token("failover"),
    );
    let mut probe = start_probe(&config);
    enrolled_and_delivering(&a, &probe);
    assert_eq!(
        probe.wait_exit(Duration::from_millis(100)),
        None,
        "{}",
        probe.log()
    );
    let log = probe.log();
    let from_b = format!("collector={}", b.url());
    assert!(
        log.lines()
            .any(|l| l.contains("enrollment refused") && l.contains(&from_b)),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("session ended")
            && l.contains("unknown probe certificate")
            && l.contains(&from_b)),
        "{log}"
    );
    assert_eq!(
        b.get_json("/api/v1/probes").as_array().map(Vec::len),
        Some(0)
    );
}
