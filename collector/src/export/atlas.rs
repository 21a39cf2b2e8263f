//! RIPE Atlas-compatible results, one JSON object per line, for ping, traceroute, DNS and
//! HTTP: the shapes RIPE NCC's `ripe-atlas-sagan` parser reads (checked by
//! `collector/tests/export.rs`). Other kinds have no Atlas form and are skipped, counted.
//!
//! Atlas fields we have no source for are filled as `docs/export.md` documents:
//! `prb_id` is the first 8 hex digits of our probe id with the top bit cleared (a stable
//! positive 32-bit number), `msm_id` and `group_id` our task id, `fw` [`FIRMWARE`], `lts` 0
//! when the probe's clock was synchronized and -1 otherwise, `timestamp` the start in
//! seconds. Every object also carries `sixmap_key` and `sixmap_probe` so rows can be joined
//! back to our other exports.

use super::{ExportError, ExportWriter, dns_wire};
use crate::store::StoredResult;
use serde_json::{Map, Value, json};
use sixmap_shared::measurement::{
    ClockState, DnsResult, DnsTransport, Family, HopAnswer, HttpResult, MeasurementResult, Outcome,
    PingResult, TraceProtocol, TracerouteResult,
};
use std::io::{BufWriter, Write};
use std::net::IpAddr;

/// The `fw` we write: a recent Atlas firmware number, so readers take the current result
/// layouts (sagan switches to legacy field names below 4790).
pub const FIRMWARE: u64 = 5080;

#[derive(Debug)]
pub struct AtlasWriter<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> AtlasWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(64 * 1024, out),
        }
    }
}

impl<W: Write + Send> ExportWriter for AtlasWriter<W> {
    fn write(&mut self, result: &StoredResult) -> Result<bool, ExportError> {
        let Some(value) = to_atlas(&result.result) else {
            return Ok(false);
        };
        serde_json::to_writer(&mut self.out, &value)?;
        self.out.write_all(b"\n")?;
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.out.flush()?;
        Ok(())
    }
}

/// The Atlas `prb_id` of a probe id (16 hex digits).
pub fn probe_number(probe_id: &str) -> u32 {
    probe_id
        .get(..8)
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .map_or(0, |n| n & 0x7fff_ffff)
}

fn ms(ns: u64) -> f64 {
    // Microsecond precision, as Atlas reports.
    (ns as f64 / 1e3).round() / 1e3
}

fn af(r: &MeasurementResult) -> u8 {
    match r.family_used.unwrap_or(r.family_requested) {
        Family::V6 => 6,
        Family::V4 => 4,
    }
}

fn addr(a: Option<IpAddr>) -> Value {
    a.map_or(Value::Null, |a| Value::String(a.to_string()))
}

/// The fields every Atlas result has.
fn common(r: &MeasurementResult, kind: &str) -> Map<String, Value> {
    let mut m = Map::new();
    let task = r.task_id.get();
    let start_s = r.started_at.0.div_euclid(1_000_000);
    m.insert("type".into(), json!(kind));
    m.insert("fw".into(), json!(FIRMWARE));
    m.insert(
        "prb_id".into(),
        json!(probe_number(r.key.probe_id.as_str())),
    );
    m.insert("msm_id".into(), json!(task));
    m.insert("group_id".into(), json!(task));
    m.insert("timestamp".into(), json!(start_s));
    let lts = match r.clock.state {
        ClockState::Synchronized => 0,
        ClockState::Unsynchronized | ClockState::Unknown => -1,
    };
    m.insert("lts".into(), json!(lts));
    m.insert("af".into(), json!(af(r)));
    m.insert(
        "from".into(),
        json!(r.source.map(|s| s.to_string()).unwrap_or_default()),
    );
    m.insert("src_addr".into(), addr(r.source));
    m.insert("dst_addr".into(), addr(r.destination));
    m.insert("dst_name".into(), addr(r.destination));
    m.insert("sixmap_key".into(), json!(r.key.to_string()));
    m.insert("sixmap_probe".into(), json!(r.key.probe_id.as_str()));
    m
}

/// The Atlas form of a result; `None` for kinds Atlas has no result type for.
pub fn to_atlas(r: &MeasurementResult) -> Option<Value> {
    let value = match &r.outcome {
        Outcome::Ping(p) => ping(r, p),
        Outcome::Traceroute(t) => traceroute(r, t),
        Outcome::Dns(d) => dns(r, d),
        Outcome::Http(h) => http(r, h),
        _ => return None,
    };
    Some(Value::Object(value))
}

fn ping(r: &MeasurementResult, p: &PingResult) -> Map<String, Value> {
    let mut m = common(r, "ping");
    m.insert("proto".into(), json!("ICMP"));
    let mut packets = Vec::with_capacity(usize::from(p.sent));
    let mut rtts = Vec::new();
    for sequence in 0..p.sent {
        match p
            .replies
            .iter()
            .find(|x| x.sequence == sequence && !x.duplicate)
        {
            Some(reply) => {
                rtts.push(ms(reply.rtt_ns));
                let mut packet = json!({ "rtt": ms(reply.rtt_ns) });
                if let Some(ttl) = reply.hop_limit {
                    packet["ttl"] = json!(ttl);
                }
                packets.push(packet);
            }
            None => packets.push(json!({ "x": "*" })),
        }
    }
    let dups: Vec<_> = p.replies.iter().filter(|x| x.duplicate).collect();
    for reply in &dups {
        packets.push(json!({ "rtt": ms(reply.rtt_ns), "dup": 1 }));
    }
    let (min, avg, max) = if rtts.is_empty() {
        (-1.0, -1.0, -1.0)
    } else {
        let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rtts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let avg = (rtts.iter().sum::<f64>() / rtts.len() as f64 * 1e3).round() / 1e3;
        (min, avg, max)
    };
    m.insert("sent".into(), json!(p.sent));
    m.insert("rcvd".into(), json!(p.received));
    m.insert("dup".into(), json!(dups.len()));
    m.insert("min".into(), json!(min));
    m.insert("avg".into(), json!(avg));
    m.insert("max".into(), json!(max));
    m.insert("step".into(), Value::Null);
    m.insert("result".into(), Value::Array(packets));
    m
}

/// Atlas's letter for a destination-unreachable code, else the code as text.
fn unreachable_err(v6: bool, code: u8) -> Value {
    let letter = match (v6, code) {
        (true, 0) | (false, 0) => "N",
        (true, 3) | (false, 1) => "H",
        (true, 1) | (false, 13) => "A",
        (true, 4) | (false, 3) => "p",
        (false, 2) => "P",
        _ => return json!(code),
    };
    json!(letter)
}

fn traceroute(r: &MeasurementResult, t: &TracerouteResult) -> Map<String, Value> {
    let mut m = common(r, "traceroute");
    let v6 = af(r) == 6;
    let proto = match t.protocol {
        TraceProtocol::Icmp => "ICMP",
        TraceProtocol::Udp => "UDP",
        TraceProtocol::TcpSyn => "TCP",
    };
    m.insert("proto".into(), json!(proto));
    m.insert("paris_id".into(), json!(t.flow_label));
    let end_s = (r.started_at.0 + i64::try_from(r.duration_us).unwrap_or(0)).div_euclid(1_000_000);
    m.insert("endtime".into(), json!(end_s));
    let hops: Vec<Value> = t
        .hops
        .iter()
        .map(|hop| {
            let replies: Vec<Value> = hop
                .replies
                .iter()
                .map(|reply| match reply {
                    None => json!({ "x": "*" }),
                    Some(reply) => {
                        let mut packet = json!({
                            "from": reply.from.to_string(),
                            "rtt": ms(reply.rtt_ns),
                        });
                        match reply.answer {
                            HopAnswer::Icmp {
                                icmp_type,
                                icmp_code,
                                mtu,
                            } => {
                                let unreachable = if v6 { 1 } else { 3 };
                                if icmp_type == unreachable {
                                    packet["err"] = unreachable_err(v6, icmp_code);
                                }
                                if let Some(mtu) = mtu {
                                    packet["mtu"] = json!(mtu);
                                }
                            }
                            HopAnswer::Tcp { flags } => {
                                let mut text = String::new();
                                for (bit, letter) in
                                    [(0x02, 'S'), (0x10, 'A'), (0x04, 'R'), (0x01, 'F')]
                                {
                                    if flags & bit != 0 {
                                        text.push(letter);
                                    }
                                }
                                packet["flags"] = json!(text);
                            }
                        }
                        packet
                    }
                })
                .collect();
            json!({ "hop": hop.hop_limit, "result": replies })
        })
        .collect();
    m.insert("result".into(), Value::Array(hops));
    m
}

fn dns(r: &MeasurementResult, d: &DnsResult) -> Map<String, Value> {
    let mut m = common(r, "dns");
    let proto = match d.transport_used {
        DnsTransport::Udp => "UDP",
        // Atlas has no DoH; its DoT results say TCP with `"tls": true`, and so do ours for
        // both encrypted transports (the transport is TCP under TLS either way).
        DnsTransport::Tcp | DnsTransport::Tls | DnsTransport::Https => "TCP",
    };
    m.insert("proto".into(), json!(proto));
    if d.transport_used.is_encrypted() {
        m.insert("tls".into(), json!(true));
    }
    match dns_wire::response_message(d) {
        Some((message, left_out, count)) => {
            let mut result = json!({
                "abuf": dns_wire::base64(&message),
                "size": message.len(),
                "ID": 0,
                "QDCOUNT": 1,
                "ANCOUNT": count,
                "NSCOUNT": 0,
                "ARCOUNT": 0,
            });
            if let Some(rtt) = d.rtt_ns {
                result["rt"] = json!(ms(rtt));
            }
            if left_out > 0 {
                result["sixmap_answers_left_out"] = json!(left_out);
            }
            m.insert("result".into(), result);
        }
        None => {
            let failure = d.failure.clone().unwrap_or_default();
            let error = if failure.to_ascii_lowercase().contains("timeout")
                || failure.to_ascii_lowercase().contains("timed out")
            {
                json!({ "timeout": r.duration_us / 1000 })
            } else {
                json!({ "socket": failure })
            };
            m.insert("error".into(), error);
        }
    }
    m
}

fn http(r: &MeasurementResult, h: &HttpResult) -> Map<String, Value> {
    let mut m = common(r, "http");
    let mut response = json!({
        "af": af(r),
        "dst_addr": addr(r.destination),
        "src_addr": addr(r.source),
        "rt": ms(h.total_ns),
        "bsize": h.body_bytes,
    });
    if let Some(status) = h.status {
        response["res"] = json!(status);
    }
    if let Some(version) = &h.http_version {
        response["ver"] = json!(version.trim_start_matches("HTTP/"));
    }
    if let Some(ns) = h.connect_ns {
        response["ttc"] = json!(ms(ns));
    }
    if let Some(ns) = h.first_byte_ns {
        response["ttfb"] = json!(ms(ns));
    }
    if let Some(ns) = h.dns_ns {
        response["ttr"] = json!(ms(ns));
    }
    if h.status.is_none() {
        let err = h.failure.clone().unwrap_or_else(|| {
            serde_json::to_value(h.connect)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "no response".into())
        });
        response["err"] = json!(err);
    }
    m.insert("result".into(), json!([response]));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_numbers_are_stable_and_positive() {
        assert_eq!(probe_number("0123456789abcdef"), 0x0123_4567);
        assert_eq!(probe_number("ffffffff00000000"), 0x7fff_ffff);
    }

    #[test]
    fn lost_pings_have_atlas_minus_one() {
        let stored = crate::testing::ping_v6(
            "0123456789abcdef".parse().unwrap(),
            1,
            sixmap_shared::UnixMicros(2_000_000),
            None,
            Default::default(),
        );
        let v = to_atlas(&stored.result).unwrap();
        assert_eq!(v["min"], json!(-1.0));
        assert_eq!(v["result"], json!([{ "x": "*" }]));
        assert_eq!(v["timestamp"], json!(2));
    }

    #[test]
    fn encrypted_dns_reads_as_atlas_tcp_with_tls() {
        let mut stored = crate::testing::ping_v6(
            "0123456789abcdef".parse().unwrap(),
            1,
            sixmap_shared::UnixMicros(2_000_000),
            None,
            Default::default(),
        );
        for (transport, tls) in [
            (DnsTransport::Udp, None),
            (DnsTransport::Tls, Some(true)),
            (DnsTransport::Https, Some(true)),
        ] {
            stored.result.outcome = Outcome::Dns(DnsResult {
                query_name: "example.org".into(),
                query_type: 28,
                transport_used: transport,
                rtt_ns: None,
                response: None,
                failure: Some("refused".into()),
                failure_class: None,
                session: transport
                    .is_encrypted()
                    .then(sixmap_shared::measurement::DnsSession::default),
            });
            let v = to_atlas(&stored.result).unwrap();
            let proto = if transport == DnsTransport::Udp {
                "UDP"
            } else {
                "TCP"
            };
            assert_eq!(v["proto"], json!(proto), "{v}");
            assert_eq!(v.get("tls").cloned(), tls.map(|t| json!(t)), "{v}");
        }
    }
}
