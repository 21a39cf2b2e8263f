//! Parsers of each tool's output, machine-readable modes where the tool has one: our probe's
//! JSON, iputils `ping` (text: it has no JSON), `fping -C` (its per-target lines on stderr),
//! `traceroute -6 -n` (text), `mtr --json`, `scamper -O json`, `trip --mode json` and
//! nftables counters (the independent packet count).

use serde_json::Value;
use std::net::IpAddr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{tool}: {message}")]
pub struct ParseError {
    pub tool: &'static str,
    pub message: String,
}

fn error(tool: &'static str, message: impl Into<String>) -> ParseError {
    ParseError {
        tool,
        message: message.into(),
    }
}

/// One ping run: requests sent, distinct requests answered, and each answer's round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct PingRun {
    pub sent: u32,
    pub received: u32,
    pub rtts_ms: Vec<f64>,
}

impl PingRun {
    pub fn loss_percent(&self) -> Option<f64> {
        (self.sent > 0).then(|| {
            100.0 * f64::from(self.sent - self.received.min(self.sent)) / f64::from(self.sent)
        })
    }

    pub fn median_rtt_ms(&self) -> Option<f64> {
        super::median(&self.rtts_ms)
    }
}

/// A trace as the path it found: the first responder at each hop limit from 1 (`None`:
/// silent), cut after the destination if it answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trace {
    pub destination: Option<IpAddr>,
    pub hops: Vec<Option<IpAddr>>,
}

impl Trace {
    /// Puts `from` at `hop_limit` (from 1) unless that hop already has a responder.
    fn set(&mut self, hop_limit: usize, from: Option<IpAddr>) {
        if hop_limit == 0 || hop_limit > 255 {
            return;
        }
        if self.hops.len() < hop_limit {
            self.hops.resize(hop_limit, None);
        }
        if self.hops[hop_limit - 1].is_none() {
            self.hops[hop_limit - 1] = from;
        }
    }

    /// Drops hops after the first one where the destination answered, and trailing silent
    /// hops (tools differ in how many they print).
    fn tidy(mut self) -> Self {
        if let Some(dst) = self.destination
            && let Some(at) = self.hops.iter().position(|h| *h == Some(dst))
        {
            self.hops.truncate(at + 1);
        }
        while self.hops.last().is_some_and(Option::is_none) {
            self.hops.pop();
        }
        self
    }
}

fn json(tool: &'static str, text: &str) -> Result<Value, ParseError> {
    serde_json::from_str(text).map_err(|e| error(tool, format!("not JSON: {e}")))
}

fn address(value: &Value) -> Option<IpAddr> {
    value.as_str().and_then(|s| s.parse().ok())
}

/// `sixmap-probe measure ping … --json`.
pub fn sixmap_ping(text: &str) -> Result<PingRun, ParseError> {
    const TOOL: &str = "sixmap ping";
    let v = json(TOOL, text)?;
    let outcome = &v["outcome"];
    if outcome["kind"] != "ping" {
        return Err(error(TOOL, format!("outcome is {}", outcome)));
    }
    let count = |key: &str| {
        outcome[key]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| error(TOOL, format!("no {key}")))
    };
    let replies = outcome["replies"]
        .as_array()
        .ok_or_else(|| error(TOOL, "no replies"))?;
    let rtts_ms = replies
        .iter()
        .filter(|r| r["duplicate"] != true)
        .filter_map(|r| r["rtt_ns"].as_u64())
        .map(|ns| ns as f64 / 1e6)
        .collect();
    Ok(PingRun {
        sent: count("sent")?,
        received: count("received")?,
        rtts_ms,
    })
}

/// iputils `ping -n` (text): `icmp_seq=N … time=X ms` per reply (duplicates marked `DUP!`
/// are skipped) and the summary's `N packets transmitted, M received`.
pub fn iputils_ping(text: &str) -> Result<PingRun, ParseError> {
    const TOOL: &str = "ping";
    let mut rtts_ms = Vec::new();
    let mut summary = None;
    for line in text.lines() {
        if line.contains("packets transmitted") {
            let numbers: Vec<u32> = line
                .split(',')
                .filter_map(|part| part.split_whitespace().next()?.parse().ok())
                .collect();
            if let [sent, received, ..] = numbers[..] {
                summary = Some((sent, received));
            }
        } else if line.contains("icmp_seq=")
            && !line.contains("DUP!")
            && let Some(ms) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("time="))
                .and_then(|t| t.parse::<f64>().ok())
        {
            rtts_ms.push(ms);
        }
    }
    let (sent, received) = summary.ok_or_else(|| error(TOOL, "no summary line"))?;
    Ok(PingRun {
        sent,
        received,
        rtts_ms,
    })
}

/// `fping -C N -q TARGET`: on stderr, `TARGET : 40.1 - 40.3 …` with one field per request,
/// `-` for no answer.
pub fn fping_count(text: &str, target: &str) -> Result<PingRun, ParseError> {
    const TOOL: &str = "fping";
    let line = text
        .lines()
        .find_map(|l| {
            let (host, rest) = l.split_once(" : ")?;
            (host.trim() == target).then_some(rest)
        })
        .ok_or_else(|| error(TOOL, format!("no line for {target}")))?;
    let mut run = PingRun {
        sent: 0,
        received: 0,
        rtts_ms: Vec::new(),
    };
    for field in line.split_whitespace() {
        run.sent += 1;
        if field != "-" {
            let ms = field
                .parse::<f64>()
                .map_err(|_| error(TOOL, format!("bad field {field:?}")))?;
            run.received += 1;
            run.rtts_ms.push(ms);
        }
    }
    Ok(run)
}

fn sixmap_trace_of(result: &Value) -> Result<Trace, ParseError> {
    const TOOL: &str = "sixmap traceroute";
    let outcome = &result["outcome"];
    if outcome["kind"] != "traceroute" {
        return Err(error(TOOL, format!("outcome is {outcome}")));
    }
    let mut trace = Trace {
        destination: address(&result["destination"]),
        hops: Vec::new(),
    };
    for hop in outcome["hops"].as_array().into_iter().flatten() {
        let limit = hop["hop_limit"].as_u64().unwrap_or(0) as usize;
        let from = hop["replies"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|r| address(&r["from"]));
        trace.set(limit, from);
    }
    Ok(trace.tidy())
}

/// `sixmap-probe measure traceroute T --json`.
pub fn sixmap_traceroute(text: &str) -> Result<Trace, ParseError> {
    sixmap_trace_of(&json("sixmap traceroute", text)?)
}

/// `sixmap-probe measure traceroute T1 T2 … --json`: one trace per target (failed ones are
/// left out), and the packets the probe says it sent.
pub fn sixmap_traceroutes(text: &str) -> Result<(Vec<Trace>, u64), ParseError> {
    const TOOL: &str = "sixmap traceroute";
    let v = json(TOOL, text)?;
    let results = v["results"]
        .as_array()
        .ok_or_else(|| error(TOOL, "no results"))?;
    let traces = results
        .iter()
        .filter_map(|r| sixmap_trace_of(r).ok())
        .collect();
    Ok((traces, v["packets_sent"].as_u64().unwrap_or(0)))
}

/// `traceroute -6 -n` (text): ` N  ADDR  t ms  t ms  t ms`, `*` for silence, possibly more
/// than one address on a line.
pub fn traceroute_text(text: &str, destination: IpAddr) -> Result<Trace, ParseError> {
    let mut trace = Trace {
        destination: Some(destination),
        hops: Vec::new(),
    };
    let mut any = false;
    for line in text.lines().filter(|l| !l.starts_with("traceroute to")) {
        let mut words = line.split_whitespace();
        let Some(Ok(hop)) = words.next().map(str::parse::<usize>) else {
            continue;
        };
        any = true;
        let from = words.find_map(|w| w.parse::<IpAddr>().ok());
        trace.hops.resize(trace.hops.len().max(hop), None);
        trace.set(hop, from);
    }
    if !any {
        return Err(error("traceroute", "no hop lines"));
    }
    Ok(trace.tidy())
}

/// `mtr --json`: `report.hubs[]` with `count` (the hop) and `host` (`???` when silent).
pub fn mtr_json(text: &str) -> Result<Trace, ParseError> {
    const TOOL: &str = "mtr";
    let v = json(TOOL, text)?;
    let hubs = v["report"]["hubs"]
        .as_array()
        .ok_or_else(|| error(TOOL, "no report.hubs"))?;
    let mut trace = Trace {
        destination: address(&v["report"]["mtr"]["dst"]),
        hops: Vec::new(),
    };
    for hub in hubs {
        let count = hub["count"]
            .as_u64()
            .or_else(|| hub["count"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0) as usize;
        trace.hops.resize(trace.hops.len().max(count), None);
        trace.set(count, address(&hub["host"]));
    }
    Ok(trace.tidy())
}

/// `scamper -O json`: one JSON object per line; every `"type":"trace"` line is a trace
/// with `dst`, `stop_reason` and `hops[]` (`probe_ttl`, `addr`).
pub fn scamper_json(text: &str) -> Result<Vec<Trace>, ParseError> {
    const TOOL: &str = "scamper";
    let mut traces = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v = json(TOOL, line)?;
        if v["type"] != "trace" {
            continue;
        }
        let mut trace = Trace {
            destination: address(&v["dst"]),
            hops: Vec::new(),
        };
        for hop in v["hops"].as_array().into_iter().flatten() {
            let ttl = hop["probe_ttl"].as_u64().unwrap_or(0) as usize;
            trace.hops.resize(trace.hops.len().max(ttl), None);
            trace.set(ttl, address(&hop["addr"]));
        }
        traces.push(trace.tidy());
    }
    Ok(traces)
}

/// `trip --mode json`: `hops[]` with `ttl` and `hosts[]` (`ip`), the target in `info.target`.
pub fn trippy_json(text: &str) -> Result<Trace, ParseError> {
    const TOOL: &str = "trip";
    let v = json(TOOL, text)?;
    let hops = v["hops"].as_array().ok_or_else(|| error(TOOL, "no hops"))?;
    let mut trace = Trace {
        destination: address(&v["info"]["target"]["ip"]),
        hops: Vec::new(),
    };
    for hop in hops {
        let ttl = hop["ttl"].as_u64().unwrap_or(0) as usize;
        trace.hops.resize(trace.hops.len().max(ttl), None);
        let from = hop["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|h| address(&h["ip"]));
        trace.set(ttl, from);
    }
    Ok(trace.tidy())
}

/// `nft list counter …`: the `packets N` of a named counter.
pub fn nft_packets(text: &str) -> Result<u64, ParseError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find_map(|w| (w[0] == "packets").then(|| w[1].parse().ok()).flatten())
        .ok_or_else(|| error("nft", format!("no packet count in {text:?}")))
}

#[cfg(test)]
mod tests;
