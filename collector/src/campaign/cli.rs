//! The `sixmap-collector campaign` commands: commission, follow and publish campaigns
//! through a running collector's HTTP API (the [`client`](crate::client)).

use super::{CampaignStatus, Progress};
use crate::client::{Client, Reply};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Deserialize;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The collector's HTTP API. Default: $SIXMAP_COLLECTOR, else http://[::1]:7480.
    #[arg(long)]
    collector: Option<String>,
    /// API token (`sxa_…`; campaign writes need a campaigner's). Default: $SIXMAP_API_TOKEN.
    #[arg(long)]
    token: Option<String>,
}

/// A spec from flags instead of a file: `campaign create --kind ping --target X --from FR`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InlineSpec {
    /// Without --spec or --template: the one measurement's kind (ping, traceroute, dns, tcp,
    /// tls, http, quic, pmtu, exthdr, dualstack), over the --target/--targets-file targets.
    #[arg(long, conflicts_with_all = ["spec", "template"])]
    kind: Option<String>,
    /// With --kind: which probes, a country (FR), an origin AS (AS3215) or a tag
    /// (tag:v6-works); repeatable. As in a spec's [selection], countries are alternatives,
    /// and so are ASes, while a probe needs every tag and must meet each kind of criterion.
    #[arg(long = "from", requires = "kind")]
    from: Vec<String>,
    /// With --kind: seconds between runs (at least 60); absent: once.
    #[arg(long, requires = "kind")]
    every_s: Option<u64>,
    /// With --kind: at most this many probes per operator.
    #[arg(long, requires = "kind")]
    per_operator: Option<u32>,
    /// With --kind: the campaign's name (default: the kind and the targets).
    #[arg(long, requires = "kind")]
    name: Option<String>,
    /// With --kind: a measurement option, KEY=VALUE with a measurement table's keys
    /// (count, timeout_ms, family, port, ...); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "kind")]
    set: Vec<String>,
}

impl InlineSpec {
    /// The spec these flags describe over `targets`.
    fn spec(&self, kind: &str, targets: Vec<String>) -> anyhow::Result<super::spec::SpecInput> {
        use super::quick::Source;
        let mut table = serde_json::Map::new();
        table.insert("kind".into(), serde_json::json!(kind));
        table.insert("timeout_ms".into(), serde_json::json!(5000));
        for set in &self.set {
            let Some((key, value)) = set.split_once('=') else {
                bail!("--set {set:?}: expected KEY=VALUE (e.g. count=5)");
            };
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
            table.insert(key.trim().to_owned(), value);
        }
        let mut selection = super::spec::Selection {
            per_operator: self.per_operator,
            ..Default::default()
        };
        for entry in &self.from {
            match Source::parse(entry).map_err(|e| anyhow::anyhow!("--from {e}"))? {
                Source::Country(c) => selection.countries.push(c.to_string()),
                Source::Asn(a) => selection.asns.push(a),
                Source::Tag(t) => selection.tags.push(t.to_string()),
            }
        }
        let name = self.name.clone().unwrap_or_else(|| {
            let mut shown: Vec<&str> = targets.iter().take(3).map(String::as_str).collect();
            if targets.len() > 3 {
                shown.push("…");
            }
            format!("{kind} {}", shown.join(" "))
        });
        Ok(super::spec::SpecInput {
            name,
            targets,
            measurements: vec![table],
            selection,
            schedule: super::spec::ScheduleInput {
                every_s: self.every_s,
                ..Default::default()
            },
            ..Default::default()
        })
    }
}

/// The spec a create or plan command sends: its text and format.
/// Where `campaign create` and `campaign plan` take their spec from: a file, a template or
/// flags, plus targets to add.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecSource {
    /// A spec file (TOML, or JSON if it ends in .json).
    #[arg(long, conflicts_with = "template")]
    spec: Option<PathBuf>,
    /// `government-portals` or `operator-ranking` (deploy/campaigns/*.toml).
    #[arg(long)]
    template: Option<String>,
    /// Targets to add, one per line (`#` starts a comment); repeatable.
    #[arg(long = "targets-file")]
    targets_files: Vec<PathBuf>,
    /// A target to add; repeatable.
    #[arg(long = "target")]
    targets: Vec<String>,
    #[command(flatten)]
    inline: InlineSpec,
}

fn spec_to_send(source: SpecSource) -> anyhow::Result<(String, &'static str)> {
    use super::spec::SpecInput;
    let SpecSource {
        spec,
        template,
        targets_files,
        targets,
        inline,
    } = source;
    let (text, format, base) = match (&spec, &template, &inline.kind) {
        (Some(path), _, _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let format = if path.extension().is_some_and(|e| e == "json") {
                "json"
            } else {
                "toml"
            };
            (
                text,
                format,
                path.parent().map(std::path::Path::to_path_buf),
            )
        }
        (None, Some(name), _) => {
            let Some((_, text)) = TEMPLATES.iter().find(|(n, _)| n == name) else {
                let names: Vec<_> = TEMPLATES.iter().map(|(n, _)| *n).collect();
                bail!("--template {name:?}: not one of {}", names.join(", "));
            };
            ((*text).to_owned(), "toml", None)
        }
        (None, None, Some(kind)) => {
            let mut all = targets;
            for file in &targets_files {
                all.extend(read_targets(file)?);
            }
            let input = inline.spec(kind, all)?;
            return Ok((serde_json::to_string_pretty(&input)?, "json"));
        }
        (None, None, None) => bail!("give --spec FILE, --template NAME or --kind KIND"),
    };
    let mut input: SpecInput = super::spec::parse(format, &text)?;
    let mut extra = targets;
    let had_file = input.targets_file.is_some();
    if let Some(file) = input.targets_file.take() {
        let path = base.unwrap_or_default().join(file);
        extra.extend(read_targets(&path)?);
    }
    for file in &targets_files {
        extra.extend(read_targets(file)?);
    }
    // Unchanged specs travel as written, so the report embeds the regulator's text.
    if extra.is_empty() && !had_file && spec.is_some() {
        Ok((text, format))
    } else {
        input.targets.extend(extra);
        Ok((serde_json::to_string_pretty(&input)?, "json"))
    }
}

/// The collector a campaign command talks to when neither the flag nor the environment says.
const DEFAULT_COLLECTOR: &str = "http://[::1]:7480";

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign from a spec file (TOML, or JSON if it ends in .json) or a template.
    Create {
        #[command(flatten)]
        remote: Remote,
        /// Ignored, kept so older scripts still run: the campaign's owner is always the
        /// holder of the API token that creates it.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        source: SpecSource,
    },
    /// Print what creating a spec would do, creating nothing: the probes it would select per
    /// operator, probe-tests per hour and in all, and the budgets it would use.
    Plan {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        source: SpecSource,
        /// Print the collector's JSON instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// List campaigns.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a campaign and its progress; --follow prints progress until it ends.
    Show {
        #[command(flatten)]
        remote: Remote,
        id: u64,
        #[arg(long)]
        follow: bool,
        /// With --follow: give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
    },
    /// Cancel a campaign; probes drop its tasks.
    Cancel {
        #[command(flatten)]
        remote: Remote,
        id: u64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Publish a campaign's report (owner or admin): it is then at `/reports/ID` (HTML;
    /// `.json`, `.csv`, `.pdf`) on the collector's HTTP address, no token needed.
    Publish {
        #[command(flatten)]
        remote: Remote,
        id: u64,
    },
    /// Print or save a campaign's report (json, csv, html or pdf: the HTML printed by the
    /// collector's headless Chromium); --wait follows progress until every result is in first.
    Report {
        #[command(flatten)]
        remote: Remote,
        id: u64,
        #[arg(long, default_value = "json")]
        format: String,
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
    },
    /// Import operators' declared figures (CSV: asn,metric,value,as_of,source), shown beside
    /// the measured ones in reports.
    ImportDeclared {
        #[command(flatten)]
        remote: Remote,
        id: u64,
        file: PathBuf,
    },
}

const TEMPLATES: [(&str, &str); 2] = [
    (
        "government-portals",
        include_str!("../../../deploy/campaigns/government-portals.toml"),
    ),
    (
        "operator-ranking",
        include_str!("../../../deploy/campaigns/operator-ranking.toml"),
    ),
];

/// The client the flags ask for; the environment fills in what they leave out (flags win).
fn client(remote: &Remote) -> anyhow::Result<Client> {
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let url = remote
        .collector
        .clone()
        .or_else(|| env(crate::client::URL_ENV))
        .unwrap_or_else(|| DEFAULT_COLLECTOR.to_owned());
    let token = remote
        .token
        .clone()
        .or_else(|| env(crate::client::TOKEN_ENV));
    Ok(Client::new(&url)?.with_token(token))
}

/// The body of a successful reply, or the collector's error message with its URL.
fn ok_body(what: &str, reply: Reply) -> anyhow::Result<String> {
    Ok(reply.into_ok(what)?)
}

fn read_targets(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading targets file {}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// What `GET /api/v1/campaigns/ID` answers ([`super::Campaigns::show`]), as far as the CLI
/// reads it: the record's head (not its spec, whose keys may grow) and the progress.
#[derive(Debug, Deserialize)]
struct Shown {
    campaign: Head,
    progress: Progress,
}

#[derive(Debug, Deserialize)]
struct Head {
    id: u64,
    status: CampaignStatus,
}

/// One line of progress for people.
fn progress_line(show: &Shown) -> String {
    let (c, p) = (&show.campaign, &show.progress);
    let (done, expected) = (p.results_in, p.results_expected);
    let percent = if expected > 0 {
        format!(
            "{:.0} %",
            100.0 * done.min(expected) as f64 / expected as f64
        )
    } else {
        "-".into()
    };
    let failures = serde_json::to_string(&p.failures).unwrap_or_default();
    format!(
        "campaign {} [{}]: {done}/{expected} results ({percent}), {} reached; probes {} assigned, {} connected, {} reporting; not reached: {failures}",
        c.id,
        c.status.as_str(),
        p.reached,
        p.probes_assigned,
        p.probes_connected,
        p.probes_reporting,
    )
}

/// Fetches a campaign: the reply as sent (printed as is) and its typed reading.
fn show(client: &Client, id: u64) -> anyhow::Result<(serde_json::Value, Shown)> {
    let body = ok_body("show", client.get(&format!("/api/v1/campaigns/{id}"))?)?;
    let raw: serde_json::Value = serde_json::from_str(&body)?;
    let typed = Shown::deserialize(&raw).context("reading the collector's campaign")?;
    Ok((raw, typed))
}

/// Prints progress to stderr until the campaign is complete or ended.
fn follow(
    client: &Client,
    id: u64,
    timeout: std::time::Duration,
) -> anyhow::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let (raw, shown) = show(client, id)?;
        let line = progress_line(&shown);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if shown.progress.complete || shown.campaign.status != CampaignStatus::Active {
            return Ok(raw);
        }
        if std::time::Instant::now() > deadline {
            bail!("campaign {id} still running after {} s", timeout.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// A plan for people: probes per operator, tests, budgets, and whether it fits.
fn plan_text(plan: &serde_json::Value) -> String {
    let n = |v: &serde_json::Value| v.as_u64().map_or("-".to_owned(), |n| n.to_string());
    let mut out = format!(
        "plan of {:?}: {} targets, {} tasks, {} probes\n{:<10} {:<24} {:<8} PROBES\n",
        plan["name"].as_str().unwrap_or("?"),
        plan["targets"],
        plan["tasks"],
        plan["probes"],
        "AS",
        "NAME",
        "CC"
    );
    for op in plan["operators"].as_array().into_iter().flatten() {
        let asn = op["asn"]
            .as_u64()
            .map_or("-".to_owned(), |a| format!("AS{a}"));
        let countries: Vec<&str> = op["countries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        let probes: Vec<&str> = op["probes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str())
            .collect();
        out.push_str(&format!(
            "{asn:<10} {:<24} {:<8} {} ({})\n",
            op["as_name"].as_str().unwrap_or("-"),
            countries.join(","),
            probes.len(),
            probes.join(" ")
        ));
    }
    out.push_str(&format!(
        "probe-tests: {} per hour, {} in all (budget: {} per hour, {} in all)\n\
         owner: {} per hour committed, limit {}\n",
        n(&plan["tests_per_hour"]),
        plan["tests_total"]
            .as_u64()
            .map_or("unbounded".to_owned(), |t| t.to_string()),
        n(&plan["budget_per_hour"]),
        n(&plan["budget_total"]),
        n(&plan["owner_committed"]),
        n(&plan["owner_limit"]),
    ));
    match plan["refusal"].as_str() {
        Some(why) => out.push_str(&format!("would be refused: {why}\n")),
        None => out.push_str("fits: `campaign create` with the same arguments would be accepted\n"),
    }
    out
}

/// Runs one `campaign` subcommand.
pub fn run(command: CampaignCommand) -> anyhow::Result<()> {
    match command {
        CampaignCommand::Create {
            remote,
            owner,
            source,
        } => {
            let (text, format) = spec_to_send(source)?;
            let body = serde_json::json!({ "owner": owner, "format": format, "spec": text });
            let client = client(&remote)?;
            let created = ok_body(
                "create",
                client.post("/api/v1/campaigns", "application/json", &body.to_string())?,
            )?;
            let record: serde_json::Value = serde_json::from_str(&created)?;
            eprintln!(
                "created campaign {}: {} tasks on {} probes",
                record["id"],
                record["tasks"].as_array().map_or(0, Vec::len),
                record["probes"].as_array().map_or(0, Vec::len)
            );
            println!("{}", record["id"]);
            Ok(())
        }
        CampaignCommand::Plan {
            remote,
            source,
            json,
        } => {
            let (text, format) = spec_to_send(source)?;
            let body = serde_json::json!({ "format": format, "spec": text });
            let client = client(&remote)?;
            let plan = ok_body(
                "plan",
                client.post(
                    "/api/v1/campaigns/plan",
                    "application/json",
                    &body.to_string(),
                )?,
            )?;
            let plan: serde_json::Value = serde_json::from_str(&plan)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", plan_text(&plan));
            }
            Ok(())
        }
        CampaignCommand::List { remote } => {
            let body = ok_body("list", client(&remote)?.get("/api/v1/campaigns")?)?;
            let list: serde_json::Value = serde_json::from_str(&body)?;
            for c in list["campaigns"].as_array().into_iter().flatten() {
                let published = if c["published_at"].is_null() {
                    ""
                } else {
                    ", published"
                };
                println!(
                    "{}\t{}{published}\t{}\t{} targets, {} tasks, {} probes\t{}",
                    c["id"],
                    c["status"].as_str().unwrap_or("?"),
                    c["owner"].as_str().unwrap_or("?"),
                    c["targets"],
                    c["tasks"],
                    c["probes"],
                    c["name"].as_str().unwrap_or("?"),
                );
            }
            Ok(())
        }
        CampaignCommand::Show {
            remote,
            id,
            follow: keep,
            timeout_s,
        } => {
            let client = client(&remote)?;
            let show = if keep {
                follow(&client, id, std::time::Duration::from_secs(timeout_s))?
            } else {
                show(&client, id)?.0
            };
            println!("{}", serde_json::to_string_pretty(&show)?);
            Ok(())
        }
        CampaignCommand::Cancel { remote, id, reason } => {
            let body = serde_json::json!({ "reason": reason }).to_string();
            ok_body(
                "cancel",
                client(&remote)?.post(
                    &format!("/api/v1/campaigns/{id}/cancel"),
                    "application/json",
                    &body,
                )?,
            )?;
            eprintln!("campaign {id} cancelled");
            Ok(())
        }
        CampaignCommand::Publish { remote, id } => {
            let client = client(&remote)?;
            let body = ok_body(
                "publish",
                client.post(
                    &format!("/api/v1/campaigns/{id}/publish"),
                    "application/json",
                    "",
                )?,
            )?;
            let url = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["url"].as_str().map(str::to_owned))
                .unwrap_or_default();
            eprintln!(
                "campaign {id} published: {}{url}",
                client.url().trim_end_matches('/')
            );
            Ok(())
        }
        CampaignCommand::Report {
            remote,
            id,
            format,
            output,
            wait,
            timeout_s,
        } => {
            let client = client(&remote)?;
            if wait {
                follow(&client, id, std::time::Duration::from_secs(timeout_s))?;
            }
            let reply = client.get(&format!("/api/v1/campaigns/{id}/report?format={format}"))?;
            // Kept whole: a PDF is not text.
            let bytes = reply.bytes.clone();
            ok_body("report", reply)?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("report written to {}", path.display());
                }
                None if format == "pdf" && std::io::stdout().is_terminal() => {
                    bail!("a PDF report is not for a terminal: give --output FILE or redirect")
                }
                None => std::io::stdout()
                    .write_all(&bytes)
                    .context("writing the report to stdout")?,
            }
            Ok(())
        }
        CampaignCommand::ImportDeclared { remote, id, file } => {
            let csv = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body = ok_body(
                "import-declared",
                client(&remote)?.post(
                    &format!("/api/v1/campaigns/{id}/declared"),
                    "text/csv",
                    &csv,
                )?,
            )?;
            let v: serde_json::Value = serde_json::from_str(&body)?;
            eprintln!(
                "{} declared figures imported into campaign {id}",
                v["declared"].as_array().map_or(0, Vec::len)
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_come_from_the_typed_answer_whatever_else_it_holds() {
        let mut progress = Progress {
            probes_assigned: 3,
            probes_connected: 2,
            probes_reporting: 1,
            tasks: 2,
            results_expected: 6,
            results_in: 3,
            reached: 2,
            ..Progress::default()
        };
        progress.failures.insert("unreached".into(), 1);
        // Keys the CLI does not read (a spec grown by a newer collector) are no obstacle.
        let answer = serde_json::json!({
            "campaign": { "id": 7, "status": "active", "spec": { "a_new_key": true } },
            "progress": progress,
        });
        let shown = Shown::deserialize(&answer).unwrap();
        assert_eq!(
            progress_line(&shown),
            "campaign 7 [active]: 3/6 results (50 %), 2 reached; probes 3 assigned, 2 connected, \
             1 reporting; not reached: {\"unreached\":1}"
        );
        let ended = serde_json::json!({
            "campaign": { "id": 7, "status": "budget_spent" },
            "progress": Progress::default(),
        });
        let shown = Shown::deserialize(&ended).unwrap();
        assert_eq!(shown.campaign.status, CampaignStatus::BudgetSpent);
        assert!(progress_line(&shown).contains("[budget_spent]: 0/0 results (-)"));
    }
}
