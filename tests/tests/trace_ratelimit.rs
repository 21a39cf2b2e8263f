//! Traceroute on routers that rate-limit ICMPv6 errors as Linux does by default
//! (`lab::ratelimit`): one trace finds every hop, again and again, because it asks each
//! router once; many traces under a cap that the routers can answer find every path, where
//! the same traces sent all at once lose hops. The probe binary must be current
//! (`cargo build -p sixmap-probe`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers may fail loudly

use sixmap_tests::bench::hops_correct;
use sixmap_tests::bench::parse::{sixmap_traceroute, sixmap_traceroutes};
use sixmap_tests::lab::Lab;
use sixmap_tests::lab::many::Destination;
use sixmap_tests::lab::ratelimit::{ratelimited_many, ratelimited_path};
use sixmap_tests::lab::scenarios::PROBE;
use sixmap_tests::lab_or_skip;
use std::net::IpAddr;

fn probe(lab: &Lab, args: &[String]) -> String {
    let probe = sixmap_tests::binary("sixmap-probe");
    let mut argv = vec![probe.to_str().unwrap().to_owned()];
    argv.extend(args.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = lab.exec_unchecked(PROBE, &argv);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn one_trace_finds_every_hop_through_rate_limiting_routers_run_after_run() {
    lab_or_skip!();
    let path = ratelimited_path(8).unwrap();
    let target = path.target.to_string();
    // Five traces back to back, faster than the routers refill (one token per 250 ms):
    // each asks each router once, within the burst of six.
    for run in 0..5 {
        let out = probe(
            &path.lab,
            &["measure", "traceroute", &target, "--json", "--lab-mode"].map(str::to_owned),
        );
        let trace = sixmap_traceroute(&out).unwrap();
        assert_eq!(
            hops_correct(&trace.hops, &path.hops),
            (path.hops.len(), true),
            "run {run}: {:?}",
            trace.hops
        );
    }
}

fn complete(destinations: &[Destination], stdout: &str) -> usize {
    let (traces, _) = sixmap_traceroutes(stdout).unwrap();
    destinations
        .iter()
        .filter(|d| {
            traces
                .iter()
                .find(|t| t.destination == Some(IpAddr::V6(d.address)))
                .is_some_and(|t| {
                    let ok = hops_correct(&t.hops, &d.hops).1;
                    if !ok {
                        eprintln!("{}: {:?}, truth {:?}", d.address, t.hops, d.hops);
                    }
                    ok
                })
        })
        .count()
}

#[test]
fn a_cap_the_routers_can_answer_finds_every_path_where_blasting_does_not() {
    lab_or_skip!();
    // 12 destinations, all through r1 and r2.
    let s = ratelimited_many(2).unwrap();
    let mut targets: Vec<String> = vec!["measure".into(), "traceroute".into()];
    targets.extend(s.destinations.iter().map(|d| d.address.to_string()));
    let run = |extra: &[&str]| {
        let mut args = targets.clone();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.extend(["--timeout-ms", "60000", "--json", "--lab-mode"].map(str::to_owned));
        complete(&s.destinations, &probe(&s.lab, &args))
    };
    // All at once, every trace probing every hop (no stop set: with it the traces of one
    // run share the routers' answers and ask them far less): r1 answers its burst of six,
    // not twelve.
    let blasted = run(&["--parallel", "1024", "-q", "1", "--no-stop-set"]);
    assert!(
        blasted < s.destinations.len(),
        "the routers did not limit: {blasted} complete when blasting"
    );
    // Let the buckets refill, then one trace at a time at 5 packets/s, a hop asked again
    // if silent: r1 and r2 are asked about once a second.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let paced = run(&["--pps", "5", "--parallel", "1", "-q", "2"]);
    assert_eq!(paced, s.destinations.len(), "paced at 5 pps");
}
