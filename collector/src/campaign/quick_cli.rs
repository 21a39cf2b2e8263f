//! `sixmap-collector measure KIND TARGET --from FR --from AS3215 --probes N [--json]`: a quick
//! measurement (`quick`) started on a running collector, its results printed as they arrive
//! (ping/mtr style: one row per probe; traceroute hops; DNS answers), ending when every probe
//! answered or the deadline passed. `--json` prints the API's JSON lines instead.

use crate::client::Client;
use crate::store::StoredResult;
use anyhow::{Context, bail};
use sixmap_shared::measurement::{Outcome, query_type_name, rcode_name};
use std::io::Write;
use std::time::Duration;

/// The collector the command talks to when neither the flag nor the environment says.
const DEFAULT_COLLECTOR: &str = "http://[::1]:7480";

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sixmap-collector measure ping 2001:db8::1 --from FR --from AS3215 --probes 5\n  \
    sixmap-collector measure traceroute example.org --from tag:v6-works --set protocol=tcp\n  \
    sixmap-collector measure dns example.org --from DE --set query_type=AAAA --json")]
pub struct MeasureArgs {
    /// What to measure: ping, traceroute, dns, tcp, tls, http, quic, pmtu, exthdr, dualstack.
    pub kind: String,
    /// Host name or address (for dns: the name asked about, by each probe's own resolver
    /// unless --set query_name=… / system_resolver=false say otherwise).
    pub target: String,
    /// Where from: a country (FR), an origin AS (AS3215) or a probe tag (tag:v6-works);
    /// repeatable, a probe matching any entry may be picked. Default: any connected probe.
    #[arg(long = "from")]
    pub from: Vec<String>,
    /// How many probes (1..=50), spread across operators.
    #[arg(long, default_value_t = 10)]
    pub probes: u32,
    /// A measurement option, KEY=VALUE with the keys of a campaign's measurement table
    /// (count, timeout_ms, family, port, protocol, query_type, url, …); repeatable. Values
    /// that read as JSON (numbers, true) are sent as such, others as text.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the API's JSON lines (each stored result, then a `done` line) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The collector's HTTP API. Default: $SIXMAP_COLLECTOR, else http://[::1]:7480.
    #[arg(long, alias = "collector")]
    pub url: Option<String>,
    /// API token (`sxa_…`, any role). Default: $SIXMAP_API_TOKEN.
    #[arg(long)]
    pub token: Option<String>,
}

/// The request body of `POST /api/v1/measurements` these arguments make.
pub fn request_body(args: &MeasureArgs) -> anyhow::Result<serde_json::Value> {
    let mut body = serde_json::json!({
        "kind": args.kind,
        "target": args.target,
        "from": args.from,
        "probes": args.probes,
    });
    for set in &args.set {
        let Some((key, value)) = set.split_once('=') else {
            bail!("--set {set:?}: expected KEY=VALUE (e.g. count=5)");
        };
        let key = key.trim();
        if ["kind", "target", "from", "probes"].contains(&key) {
            bail!("--set {key}: give it as its own argument");
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        body[key] = value;
    }
    Ok(body)
}

pub fn run(args: MeasureArgs) -> anyhow::Result<()> {
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let url = args
        .url
        .clone()
        .or_else(|| env(crate::client::URL_ENV))
        .unwrap_or_else(|| DEFAULT_COLLECTOR.to_owned());
    let token = args.token.clone().or_else(|| env(crate::client::TOKEN_ENV));
    let client = Client::new(&url)?.with_token(token);
    let body = request_body(&args)?;
    let created = client
        .post(
            "/api/v1/measurements",
            "application/json",
            &body.to_string(),
        )?
        .into_ok("start the measurement")?;
    let created: serde_json::Value =
        serde_json::from_str(&created).context("the collector's answer is not JSON")?;
    let id = created["id"]
        .as_u64()
        .context("the collector's answer has no measurement id")?;
    let probes = created["probes"].as_array().map_or(0, Vec::len);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.json {
        writeln!(
            out,
            "measurement {id}: {} {} from {} probe{} ({})",
            args.kind,
            args.target,
            probes,
            if probes == 1 { "" } else { "s" },
            if args.from.is_empty() {
                "anywhere".to_owned()
            } else {
                args.from.join(", ")
            }
        )?;
        if args.kind == "ping" {
            writeln!(out, "{}", ping_header())?;
        }
    }
    let mut end: Option<serde_json::Value> = None;
    let mut failed: Option<std::io::Error> = None;
    client.get_lines(
        &format!("/api/v1/measurements/{id}/results?follow=true"),
        "follow the results",
        // The collector ends an idle response after a minute; a little more here.
        Duration::from_secs(90),
        &mut |line| {
            let written = if args.json {
                writeln!(out, "{line}")
            } else {
                match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(v) if v.get("done").is_some() => {
                        end = Some(v["done"].clone());
                        Ok(())
                    }
                    Ok(v) => match serde_json::from_value::<StoredResult>(v) {
                        Ok(r) => write!(out, "{}", render(&r)),
                        Err(e) => writeln!(out, "(a result this CLI cannot read: {e})"),
                    },
                    Err(e) => writeln!(out, "(not JSON: {e})"),
                }
            };
            if args.json && line.starts_with("{\"done\"") {
                end = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .map(|v| v["done"].clone());
            }
            match written.and_then(|()| out.flush()) {
                Ok(()) => true,
                // stdout closed (`| head`): stop reading.
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        },
    )?;
    if let Some(e) = failed {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(e.into());
    }
    let Some(end) = end else {
        bail!(
            "collector at {url}: the results ended without their last line; see `sixmap-collector campaign show {id}`"
        );
    };
    if !args.json {
        writeln!(
            out,
            "{} of {} answered ({})",
            end["answered"],
            end["expected"],
            end["reason"].as_str().unwrap_or("ended")
        )?;
    }
    Ok(())
}

fn ping_header() -> String {
    format!(
        "{:<16} {:<8} {:<3} {:<28} {:>5} {:>9} {:>9} {:>9}",
        "PROBE", "AS", "CC", "ADDRESS", "LOSS", "MIN ms", "AVG ms", "MAX ms"
    )
}

fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// The probe's columns: id, origin AS and country.
fn who(r: &StoredResult) -> (String, String, String) {
    let origin = r.probe_origin.as_ref();
    (
        r.result.key.probe_id.to_string(),
        origin
            .and_then(|o| o.asn)
            .map_or("-".into(), |a| format!("AS{a}")),
        origin
            .and_then(|o| o.country)
            .map_or("-".into(), |c| c.to_string()),
    )
}

/// The lines a result prints as in the table (each ending in a newline).
pub fn render(r: &StoredResult) -> String {
    let (probe, asn, cc) = who(r);
    let destination = r
        .result
        .destination
        .map_or("-".to_owned(), |d| d.to_string());
    match &r.result.outcome {
        Outcome::Ping(p) => {
            let rtts: Vec<u64> = p
                .replies
                .iter()
                .filter(|x| !x.duplicate)
                .map(|x| x.rtt_ns)
                .collect();
            let (min, avg, max) = match (rtts.iter().min(), rtts.iter().max()) {
                (Some(&min), Some(&max)) => {
                    let avg = rtts.iter().sum::<u64>() / rtts.len() as u64;
                    (ms(min), ms(avg), ms(max))
                }
                _ => ("-".into(), "-".into(), "-".into()),
            };
            format!(
                "{probe:<16} {asn:<8} {cc:<3} {destination:<28} {:>4.0}% {min:>9} {avg:>9} {max:>9}\n",
                p.loss() * 100.0
            )
        }
        Outcome::Traceroute(t) => {
            let mut text = format!(
                "{probe} {asn} {cc} → {destination}: {}\n",
                crate::http::summarize(&r.result)
            );
            for hop in &t.hops {
                let replies: Vec<String> = hop
                    .replies
                    .iter()
                    .map(|reply| match reply {
                        Some(reply) => format!("{} {} ms", reply.from, ms(reply.rtt_ns)),
                        None => "*".into(),
                    })
                    .collect();
                text.push_str(&format!("  {:>3}  {}\n", hop.hop_limit, replies.join("  ")));
            }
            text
        }
        Outcome::Dns(d) => {
            let mut text = format!(
                "{probe} {asn} {cc}: {} {} {}\n",
                d.query_name,
                query_type_name(d.query_type),
                match &d.response {
                    Some(response) => rcode_name(response.rcode).to_string(),
                    None => d.failure.clone().unwrap_or_else(|| "no response".into()),
                }
            );
            for answer in d.response.iter().flat_map(|r| &r.answers) {
                text.push_str(&format!(
                    "  {} {} {} {}\n",
                    answer.name,
                    answer.ttl,
                    query_type_name(answer.record_type),
                    answer.data
                ));
            }
            text
        }
        _ => format!(
            "{probe} {asn} {cc} → {destination}: {}\n",
            crate::http::summarize(&r.result)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::prefixes::Enrichment;
    use sixmap_shared::{ProbeId, UnixMicros};

    fn args(set: &[&str]) -> MeasureArgs {
        MeasureArgs {
            kind: "ping".into(),
            target: "example.org".into(),
            from: vec!["FR".into(), "AS3215".into()],
            probes: 3,
            set: set.iter().map(|s| s.to_string()).collect(),
            json: false,
            url: None,
            token: None,
        }
    }

    #[test]
    fn options_become_the_request_keys() {
        let body =
            request_body(&args(&["count=5", "family=v6", "recursion_desired=true"])).unwrap();
        assert_eq!(body["count"], 5);
        assert_eq!(body["family"], "v6");
        assert_eq!(body["recursion_desired"], true);
        assert_eq!(body["from"], serde_json::json!(["FR", "AS3215"]));
        assert!(request_body(&args(&["count"])).is_err());
        assert!(request_body(&args(&["probes=3"])).is_err());
    }

    #[test]
    fn a_ping_row_has_the_probe_its_origin_loss_and_rtts() {
        let probe: ProbeId = "00000000000000ab".parse().unwrap();
        let origin = Enrichment {
            asn: Some(3215),
            as_name: None,
            country: "FR".parse().ok(),
        };
        let r = crate::testing::ping_v6(
            probe,
            1,
            UnixMicros(1_790_000_000_000_000),
            Some(Duration::from_micros(1500)),
            origin,
        );
        let mut r = r;
        r.probe_origin = r.probe_origin.or(Some(Enrichment {
            asn: Some(3215),
            as_name: None,
            country: "FR".parse().ok(),
        }));
        let row = render(&r);
        assert!(row.starts_with("00000000000000ab AS3215   FR "), "{row}");
        assert!(row.contains("2001:67c:2e8::2"), "{row}");
        assert!(row.contains("   0%     1.500     1.500     1.500"), "{row}");
        let lost = crate::testing::ping_v6(
            "00000000000000ac".parse().unwrap(),
            2,
            UnixMicros(1_790_000_000_000_000),
            None,
            Enrichment::default(),
        );
        let row = render(&lost);
        assert!(row.contains(" 100%         -         -         -"), "{row}");
        assert!(row.contains(" -        -   "), "{row}");
    }
}
