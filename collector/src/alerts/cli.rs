//! `sixmap-collector alert-rule list|add|rm`: alert rules on a running collector, over its
//! HTTP API (`--url` or `$SIXMAP_COLLECTOR`, with an admin API token: `--token` or
//! `$SIXMAP_API_TOKEN`), as the admin commands do for tokens and probes. Config rules are
//! listed and read-only.

use crate::admin::table::Table;
use crate::client::{Client, TOKEN_ENV, URL_ENV};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};

#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// The collector's HTTP API (http://HOST:PORT). Default: $SIXMAP_COLLECTOR.
    #[arg(long, alias = "collector")]
    url: Option<String>,
    /// An admin's API token (`sxa_…`). Default: $SIXMAP_API_TOKEN.
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AlertRuleCommand {
    /// List every rule: the config file's (read-only here) and those made over the API.
    List {
        #[command(flatten)]
        target: RemoteArgs,
        /// Print the API's JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a rule (evaluated from the collector's next evaluation on). The keys are those of
    /// `[[alerts.rules]]` (docs/alerts.md).
    Add {
        #[command(flatten)]
        target: RemoteArgs,
        /// Part of every alert's id: letters, digits, '-' or '_'.
        #[arg(long)]
        id: String,
        /// share_drop, probe_offline, target_lost_v6, pmtu_black_hole or ext_header_drop.
        #[arg(long, value_parser = ["share_drop", "probe_offline", "target_lost_v6", "pmtu_black_hole", "ext_header_drop"])]
        kind: String,
        /// share_drop: countries watched (ISO 3166 alpha-2), comma-separated.
        #[arg(long, value_delimiter = ',')]
        countries: Vec<String>,
        /// share_drop, pmtu_black_hole, ext_header_drop: networks watched (AS numbers),
        /// comma-separated (the last two: default every network).
        #[arg(long, value_delimiter = ',')]
        networks: Vec<u32>,
        /// target_lost_v6: campaign ids watched, comma-separated (default: every active one).
        #[arg(long, value_delimiter = ',')]
        campaigns: Vec<u64>,
        /// share_drop: the drop in percentage points that raises an alert.
        #[arg(long)]
        points: Option<f64>,
        /// share_drop, target_lost_v6: fewest probes behind an alert.
        #[arg(long)]
        min_probes: Option<usize>,
        /// probe_offline: hours without contact.
        #[arg(long)]
        hours: Option<f64>,
        /// pmtu_black_hole, ext_header_drop: fewest tests on each day compared.
        #[arg(long)]
        min_tests: Option<u64>,
    },
    /// Delete a rule made over the API (config rules are changed in the config file).
    Rm {
        #[command(flatten)]
        target: RemoteArgs,
        /// The rule's id, as `alert-rule list` shows it.
        id: String,
    },
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn client(args: &RemoteArgs) -> anyhow::Result<Client> {
    let Some(url) = args.url.clone().or_else(|| env(URL_ENV)) else {
        bail!("give the collector's HTTP API: --url http://HOST:PORT (or $SIXMAP_COLLECTOR)");
    };
    let client = Client::new(&url)?.with_token(args.token.clone().or_else(|| env(TOKEN_ENV)));
    if !client.has_token() {
        bail!("collector at {url}: give an admin API token (--token or $SIXMAP_API_TOKEN)");
    }
    Ok(client)
}

fn json_of(client: &Client, text: &str, what: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| {
        format!(
            "collector at {}: {what}: the answer is not JSON",
            client.url()
        )
    })
}

/// What a rule watches and its thresholds, in one cell.
fn settings(rule: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    for key in [
        "countries",
        "networks",
        "campaigns",
        "points",
        "min_probes",
        "hours",
        "min_tests",
    ] {
        match rule.get(key) {
            Some(Value::Array(items)) if !items.is_empty() => {
                let items: Vec<String> = items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect();
                parts.push(format!("{key}={}", items.join(",")));
            }
            Some(v @ Value::Number(_)) => parts.push(format!("{key}={v}")),
            _ => {}
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

pub fn table(rules: &[Value]) -> Table {
    let mut table = Table::new(&["ID", "KIND", "SOURCE", "SETTINGS"]);
    for rule in rules {
        let text = |key: &str| rule[key].as_str().unwrap_or("-").to_owned();
        let empty = Map::new();
        table.row(vec![
            text("id"),
            text("kind"),
            text("source"),
            settings(rule.as_object().unwrap_or(&empty)),
        ]);
    }
    table
}

pub fn run(command: AlertRuleCommand) -> anyhow::Result<()> {
    match command {
        AlertRuleCommand::List { target, json } => {
            let client = client(&target)?;
            let text = client
                .get("/api/v1/alert-rules")?
                .into_ok("alert-rule list")?;
            let document = json_of(&client, &text, "alert-rule list")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&document)?);
            } else {
                let rules = document["rules"].as_array().cloned().unwrap_or_default();
                print!("{}", table(&rules).render());
            }
            Ok(())
        }
        AlertRuleCommand::Add {
            target,
            id,
            kind,
            countries,
            networks,
            campaigns,
            points,
            min_probes,
            hours,
            min_tests,
        } => {
            let client = client(&target)?;
            let mut body = json!({ "id": id, "kind": kind });
            let fields = [
                (
                    "countries",
                    (!countries.is_empty()).then(|| json!(countries)),
                ),
                ("networks", (!networks.is_empty()).then(|| json!(networks))),
                (
                    "campaigns",
                    (!campaigns.is_empty()).then(|| json!(campaigns)),
                ),
                ("points", points.map(|p| json!(p))),
                ("min_probes", min_probes.map(|m| json!(m))),
                ("hours", hours.map(|h| json!(h))),
                ("min_tests", min_tests.map(|m| json!(m))),
            ];
            for (key, value) in fields {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            let text = client
                .post("/api/v1/alert-rules", "application/json", &body.to_string())?
                .into_ok("alert-rule add")?;
            let made = json_of(&client, &text, "alert-rule add")?;
            println!(
                "alert rule {} ({}) added",
                made["id"].as_str().unwrap_or(&id),
                made["kind"].as_str().unwrap_or(&kind)
            );
            Ok(())
        }
        AlertRuleCommand::Rm { target, id } => {
            let client = client(&target)?;
            let path = format!("/api/v1/alert-rules/{}", crate::export::remote::encode(&id));
            client.delete(&path)?.into_ok("alert-rule rm")?;
            println!("alert rule {id} deleted");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_rule_with_its_settings() {
        let rules = vec![
            json!({"source": "config", "id": "off", "kind": "probe_offline", "hours": 6.0}),
            json!({"source": "api", "id": "de", "kind": "share_drop",
                   "countries": ["DE", "FR"], "networks": [3320], "points": 5.0}),
        ];
        let text = table(&rules).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(
            lines[1].contains("off") && lines[1].contains("hours=6.0"),
            "{text}"
        );
        assert!(
            lines[2].contains("countries=DE,FR networks=3320 points=5.0"),
            "{text}"
        );
    }
}
