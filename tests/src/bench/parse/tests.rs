//! Fixtures are real output of each tool in the lab (trimmed where long).

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const SIXMAP_PING: &str = r#"{"destination": "2001:db8:72::2", "duration_us": 56111,
  "outcome": {"errors": [], "kind": "ping", "received": 2,
    "replies": [
      {"duplicate": false, "from": "2001:db8:72::2", "hop_limit": 63, "rtt_ns": 40062473, "sequence": 0},
      {"duplicate": true, "from": "2001:db8:72::2", "hop_limit": 63, "rtt_ns": 99067330, "sequence": 0},
      {"duplicate": false, "from": "2001:db8:72::2", "hop_limit": 63, "rtt_ns": 41071867, "sequence": 2}],
    "sent": 3, "socket_kind": "raw", "timestamp_source": "kernel"}}"#;

#[test]
fn our_ping_json() {
    let run = sixmap_ping(SIXMAP_PING).unwrap();
    assert_eq!((run.sent, run.received), (3, 2));
    assert_eq!(run.rtts_ms.len(), 2, "the duplicate is not a round trip");
    assert!((run.median_rtt_ms().unwrap() - 40.567).abs() < 0.001);
    assert!((run.loss_percent().unwrap() - 33.333).abs() < 0.001);
    let failed = r#"{"outcome": {"kind": "failed", "class": "permission", "message": "x"}}"#;
    assert!(sixmap_ping(failed).is_err());
    assert!(sixmap_ping("not json").is_err());
}

#[test]
fn iputils_ping_text() {
    let text = "PING 2001:db8:72::2(2001:db8:72::2) 56 data bytes
64 bytes from 2001:db8:72::2: icmp_seq=1 ttl=63 time=40.1 ms
64 bytes from 2001:db8:72::2: icmp_seq=1 ttl=63 time=90.3 ms (DUP!)
64 bytes from 2001:db8:72::2: icmp_seq=3 ttl=63 time=39.9 ms

--- 2001:db8:72::2 ping statistics ---
3 packets transmitted, 2 received, +1 duplicates, 33.3333% packet loss, time 58ms
rtt min/avg/max/mdev = 39.900/56.766/90.300/23.559 ms
";
    let run = iputils_ping(text).unwrap();
    assert_eq!((run.sent, run.received), (3, 2));
    assert_eq!(run.rtts_ms, vec![40.1, 39.9]);
    assert!(iputils_ping("ping: connect: Network is unreachable\n").is_err());
}

#[test]
fn fping_per_request_fields() {
    let text = "2001:db8:72::2 : 40.53 - 40.63 41.00\n";
    let run = fping_count(text, "2001:db8:72::2").unwrap();
    assert_eq!((run.sent, run.received), (4, 3));
    assert_eq!(run.median_rtt_ms(), Some(40.63));
    assert!(fping_count(text, "2001:db8:72::3").is_err());
    assert!(fping_count("2001:db8:72::2 : 1.0 x\n", "2001:db8:72::2").is_err());
}

const SIXMAP_TRACE: &str = r#"{"destination": "2001:db8:72::2",
  "outcome": {"flow_label": 0, "kind": "traceroute", "packets_sent": 4, "protocol": "icmp",
    "reached_destination": true, "stop": "reached",
    "hops": [
      {"hop_limit": 1, "replies": [null, {"answer": "icmp", "from": "2001:db8:71::1", "icmp_code": 0, "icmp_type": 3, "mtu": null, "rtt_ns": 54000}]},
      {"hop_limit": 2, "replies": [{"answer": "icmp", "from": "2001:db8:72::2", "icmp_code": 0, "icmp_type": 129, "mtu": null, "rtt_ns": 65296}]}]}}"#;

#[test]
fn our_traceroute_json_one_and_many() {
    let trace = sixmap_traceroute(SIXMAP_TRACE).unwrap();
    assert_eq!(trace.destination, Some(ip("2001:db8:72::2")));
    assert_eq!(
        trace.hops,
        vec![Some(ip("2001:db8:71::1")), Some(ip("2001:db8:72::2"))]
    );
    let failed = r#"{"destination": null, "outcome": {"kind": "failed", "class": "policy", "message": "x"}}"#;
    let many =
        format!(r#"{{"targets": 2, "packets_sent": 9, "results": [{SIXMAP_TRACE}, {failed}]}}"#);
    let (traces, sent) = sixmap_traceroutes(&many).unwrap();
    assert_eq!((traces.len(), sent), (1, 9));
}

#[test]
fn traceroute_text_with_silence_and_several_responders() {
    let text = "traceroute to 2001:db8:9::2 (2001:db8:9::2), 30 hops max, 80 byte packets
 1  2001:db8:1::2  0.428 ms  0.362 ms  0.338 ms
 2  * * *
 3  2001:db8:3::2  0.3 ms 2001:db8:3::9  0.4 ms *
 4  2001:db8:9::2  0.318 ms  0.292 ms  0.276 ms
";
    let trace = traceroute_text(text, ip("2001:db8:9::2")).unwrap();
    assert_eq!(
        trace.hops,
        vec![
            Some(ip("2001:db8:1::2")),
            None,
            Some(ip("2001:db8:3::2")),
            Some(ip("2001:db8:9::2"))
        ]
    );
    assert!(traceroute_text("connect: Network is unreachable\n", ip("::1")).is_err());
}

#[test]
fn mtr_json_report() {
    let text = r#"{"report": {"mtr": {"src": "vm", "dst": "2001:db8:72::2", "tos": 0, "tests": 3},
      "hubs": [
        {"count": 1, "host": "2001:db8:71::1", "Loss%": 0.0, "Snt": 3},
        {"count": 2, "host": "???", "Loss%": 100.0, "Snt": 3},
        {"count": 3, "host": "2001:db8:72::2", "Loss%": 0.0, "Snt": 3}]}}"#;
    let trace = mtr_json(text).unwrap();
    assert_eq!(
        trace.hops,
        vec![Some(ip("2001:db8:71::1")), None, Some(ip("2001:db8:72::2"))]
    );
    assert!(mtr_json(r#"{"report": {}}"#).is_err());
}

#[test]
fn scamper_json_lines() {
    let text = r#"{"type":"cycle-start", "list_name":"default", "id":0, "hostname":"vm", "start_time":1795456086}
{"type":"trace","version":"0.1", "method":"icmp-echo-paris", "src":"2001:db8:71::2", "dst":"2001:db8:72::2", "stop_reason":"COMPLETED", "hop_count":2, "hops":[{"addr":"2001:db8:71::1", "probe_ttl":1, "probe_id":1, "rtt":0.037, "icmp_type":3, "icmp_code":0},{"addr":"2001:db8:72::2", "probe_ttl":2, "probe_id":1, "rtt":0.052, "icmp_type":129, "icmp_code":0}]}
{"type":"trace","version":"0.1", "method":"icmp-echo-paris", "src":"2001:db8:71::2", "dst":"2001:db8:72::5", "stop_reason":"GAPLIMIT", "hop_count":0, "hops":[{"addr":"2001:db8:71::1", "probe_ttl":1, "probe_id":1}]}
{"type":"cycle-stop", "list_name":"default", "id":0, "hostname":"vm", "stop_time":1795456086}
"#;
    let traces = scamper_json(text).unwrap();
    assert_eq!(traces.len(), 2);
    assert_eq!(traces[0].destination, Some(ip("2001:db8:72::2")));
    assert_eq!(traces[0].hops.len(), 2);
    assert_eq!(traces[1].hops, vec![Some(ip("2001:db8:71::1"))]);
    assert!(scamper_json("{oops\n").is_err());
}

#[test]
fn nft_counter_listing() {
    let text = "table inet sixmap_bench {\n\tcounter probes {\n\t\tpackets 42 bytes 3360\n\t}\n}\n";
    assert_eq!(nft_packets(text), Ok(42));
    assert!(nft_packets("table inet x {}").is_err());
}

#[test]
fn trippy_json_report() {
    let text = r#"{"info": {"target": {"ip": "2001:db8:72::2", "hostname": "2001:db8:72::2"},
        "start_timestamp": "2026-11-23T18:12:44.052298449Z", "end_timestamp": "2026-11-23T18:12:44.374362796Z"},
      "hops": [
        {"ttl": 1, "hosts": [{"ip": "2001:db8:71::1", "hostname": "2001:db8:71::1"}], "extensions": [],
         "loss_pct": "0.00", "sent": 3, "last": "0.09", "recv": 3, "avg": "0.09", "nat": null, "tos": 0},
        {"ttl": 2, "hosts": [], "extensions": [], "loss_pct": "100.00", "sent": 3, "recv": 0},
        {"ttl": 3, "hosts": [{"ip": "2001:db8:72::2", "hostname": "2001:db8:72::2"}], "extensions": [],
         "loss_pct": "0.00", "sent": 3, "last": "0.03", "recv": 3, "avg": "0.02", "nat": null, "tos": 0}]}"#;
    let trace = trippy_json(text).unwrap();
    assert_eq!(trace.destination, Some(ip("2001:db8:72::2")));
    assert_eq!(
        trace.hops,
        vec![Some(ip("2001:db8:71::1")), None, Some(ip("2001:db8:72::2"))]
    );
    assert!(trippy_json(r#"{"info": {}}"#).is_err());
}
