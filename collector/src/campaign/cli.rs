//! The `sixmap-collector campaign` commands: commission, follow and publish campaigns
//! through a running collector's HTTP API (the [`client`](crate::client)).

use super::{CampaignStatus, Progress};
use crate::client::{Client, Reply};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Deserialize;
use sixmap_shared::UnixMicros;
use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Remote {
    /// The collector's HTTP API. Default: $SIXMAP_COLLECTOR, else http://[::1]:7480.
    #[arg(long = "url", alias = "collector")]
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
    /// `government-portals`, `government-readiness` or `operator-ranking`
    /// (deploy/campaigns/*.toml).
    #[arg(long)]
    template: Option<String>,
    /// Entities grouping domains for the readiness report: `entity,domain` lines (CSV,
    /// `#` starts a comment); the domains join the targets. Repeatable.
    #[arg(long = "entities-file")]
    entities_files: Vec<PathBuf>,
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
        entities_files,
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
    for file in &entities_files {
        add_entities(&mut input.entities, read_entities(file)?);
    }
    // Unchanged specs travel as written, so the report embeds the regulator's text.
    if extra.is_empty() && !had_file && entities_files.is_empty() && spec.is_some() {
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
    /// Create the campaign a spec describes, or bring your campaign of the spec's name in
    /// line with it: on a running campaign only `description`, `budget` and `schedule.stop`
    /// may change (the rest decides its tasks and probes: cancel it and apply again, or rename
    /// the spec). Applying the same spec twice changes nothing and says so.
    #[command(
        after_help = "Examples:\n  sixmap-collector campaign apply --spec portals.toml\n  \
        sixmap-collector campaign apply --kind ping --target example.org --from FR --every-s 3600 \
        --name fr-ping"
    )]
    Apply {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        source: SpecSource,
    },
    /// List campaigns.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a campaign: status, schedule and next run, a progress bar, probes per operator,
    /// when the first results are due, and warnings about its spec (--json: the collector's
    /// document as is). --follow prints a progress line whenever it changes until the
    /// campaign is complete or ended, then the summary.
    #[command(after_help = "Examples:\n  sixmap-collector campaign show 7\n  \
        sixmap-collector campaign show 7 --follow --timeout-s 600\n  \
        sixmap-collector campaign show 7 --json | jq .progress")]
    Show {
        #[command(flatten)]
        remote: Remote,
        /// The campaign's id (as `campaign create` printed it, or `campaign list` lists it).
        id: u64,
        /// Print progress lines (to stderr) until the campaign is complete or ended.
        #[arg(long)]
        follow: bool,
        /// Print the collector's JSON document instead of the summary.
        #[arg(long)]
        json: bool,
        /// With --follow: give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
    },
    /// Cancel a campaign; probes drop its tasks.
    Cancel {
        #[command(flatten)]
        remote: Remote,
        /// The campaign's id.
        id: u64,
        /// Why; logged and shown in the campaign's status.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Publish a campaign's report (owner or admin): it is then at `/reports/ID` (HTML;
    /// `.json`, `.csv`, `.pdf`) on the collector's HTTP address, no token needed.
    Publish {
        #[command(flatten)]
        remote: Remote,
        /// The campaign's id.
        id: u64,
    },
    /// Print or save a campaign's report (json, csv, html or pdf: the HTML printed by the
    /// collector's headless Chromium); --wait follows progress until every result is in first.
    Report {
        #[command(flatten)]
        remote: Remote,
        /// The campaign's id.
        id: u64,
        /// The report's format.
        #[arg(long, default_value = "json", value_parser = ["json", "csv", "html", "pdf"])]
        format: String,
        /// Write the report to this file instead of stdout (needed for pdf on a terminal).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Follow progress until every result is in, then fetch the report.
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
        /// The campaign's id.
        id: u64,
        /// The CSV file: asn,metric,value,as_of,source (one header line).
        file: PathBuf,
    },
}

const TEMPLATES: [(&str, &str); 3] = [
    (
        "government-portals",
        include_str!("../../../deploy/campaigns/government-portals.toml"),
    ),
    (
        "government-readiness",
        include_str!("../../../deploy/campaigns/government-readiness.toml"),
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

/// `entity,domain` lines (CSV: a name with a comma is quoted), in file order.
fn read_entities(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading entities file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = sixmap_shared::prefixes::split_csv(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        let [entity, domain] = fields.as_slice() else {
            bail!(
                "{}:{}: expected `entity,domain`, found {} fields",
                path.display(),
                i + 1,
                fields.len()
            );
        };
        out.push((entity.trim().to_owned(), domain.trim().to_owned()));
    }
    Ok(out)
}

/// Adds (entity, domain) pairs to a spec's entities, keeping the entities' order of first
/// appearance.
fn add_entities(entities: &mut Vec<super::spec::Entity>, pairs: Vec<(String, String)>) {
    for (name, domain) in pairs {
        match entities.iter_mut().find(|e| e.name == name) {
            Some(e) => e.domains.push(domain),
            None => entities.push(super::spec::Entity {
                name,
                domains: vec![domain],
            }),
        }
    }
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

/// The parts of a campaign record the summary reads. Everything is optional, so a document
/// from an older or newer collector still shows what it has.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Detail {
    owner: String,
    created_at: Option<UnixMicros>,
    ended_at: Option<UnixMicros>,
    status_reason: Option<String>,
    spec: SpecHead,
    probes: Vec<ProbeHead>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpecHead {
    name: String,
    targets: Vec<String>,
    measurements: Vec<serde_json::Map<String, serde_json::Value>>,
    selection: SelectionHead,
    schedule: Option<super::spec::Schedule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SelectionHead {
    countries: Vec<String>,
    asns: Vec<u32>,
    tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProbeHead {
    asn: Option<u32>,
    as_name: Option<String>,
    country: Option<String>,
}

/// What a spec asks that may surprise its owner: a selection without countries (probes of
/// every country qualify) and `family = "both"` over an address, which has one family only.
fn spec_warnings(spec: &SpecHead) -> Vec<String> {
    let mut out = Vec::new();
    let sel = &spec.selection;
    if sel.countries.is_empty() {
        out.push(if sel.asns.is_empty() && sel.tags.is_empty() {
            "the selection is empty: every probe, in every country, qualifies".to_owned()
        } else {
            "the selection names no country: probes of every country qualify".to_owned()
        });
    }
    for (i, m) in spec.measurements.iter().enumerate() {
        if m.get("family").and_then(|f| f.as_str()) != Some("both") {
            continue;
        }
        for target in &spec.targets {
            if let Ok(address) = target.parse::<std::net::IpAddr>() {
                let only = if address.is_ipv6() { "IPv6" } else { "IPv4" };
                out.push(format!(
                    "measurements[{i}]: family = \"both\" cannot apply to the address {target}: \
                     measured over {only} only"
                ));
            }
        }
    }
    out
}

/// `[#########-----------]`, `width` characters inside the brackets.
fn progress_bar(done: u64, expected: u64, width: usize) -> String {
    let filled = if expected == 0 {
        0
    } else {
        (done.min(expected) as u128 * width as u128 / expected as u128) as usize
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// How far `later` is from `now`, in words (`in 12 min`, `3 h ago`).
fn relative(later: UnixMicros, now: UnixMicros) -> String {
    let secs = (later.0 - now.0) / 1_000_000;
    let n = secs.unsigned_abs();
    let amount = match n {
        0..60 => format!("{n} s"),
        60..7200 => format!("{} min", n / 60),
        7200..172_800 => format!("{} h", n / 3600),
        _ => format!("{} days", n / 86_400),
    };
    if secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// The next run of a campaign after `now` (the start of its next slot), if it has one.
fn next_run(schedule: &super::spec::Schedule, now: UnixMicros) -> Option<UnixMicros> {
    let next = match schedule.every {
        _ if now < schedule.start => schedule.start,
        None => return None,
        Some(every) => {
            let every = i64::try_from(every.as_micros()).unwrap_or(i64::MAX).max(1);
            let slots = (now.0 - schedule.start.0) / every + 1;
            UnixMicros(schedule.start.0.saturating_add(slots.saturating_mul(every)))
        }
    };
    match schedule.stop {
        Some(stop) if next >= stop => None,
        _ => Some(next),
    }
}

/// A campaign for people: what it is, when it runs, how far it got, on which operators'
/// probes, and what in its spec may surprise.
fn summary(shown: &Shown, detail: &Detail, now: UnixMicros) -> String {
    use super::report::human_utc;
    let (c, p) = (&shown.campaign, &shown.progress);
    let mut out = format!(
        "campaign {} {:?}: {}",
        c.id,
        detail.spec.name,
        c.status.as_str()
    );
    if let Some(why) = &detail.status_reason {
        out.push_str(&format!(" ({why})"));
    }
    out.push('\n');
    if !detail.owner.is_empty() {
        out.push_str(&format!("owner:      {}\n", detail.owner));
    }
    if let Some(created) = detail.created_at {
        out.push_str(&format!("created:    {}\n", human_utc(created)));
    }
    if let Some(ended) = detail.ended_at {
        out.push_str(&format!("ended:      {}\n", human_utc(ended)));
    }
    out.push_str(&format!(
        "targets:    {}, {} tasks\n",
        detail.spec.targets.len(),
        p.tasks
    ));
    if let Some(schedule) = &detail.spec.schedule {
        let every = match schedule.every {
            Some(e) => format!("every {} s", e.as_secs()),
            None => "once".to_owned(),
        };
        let stop = schedule
            .stop
            .map_or(String::new(), |t| format!(" until {}", human_utc(t)));
        out.push_str(&format!(
            "schedule:   {every} from {}{stop}, spread over {} s\n",
            human_utc(schedule.start),
            schedule.spread.as_secs()
        ));
        let next = next_run(schedule, now).filter(|_| c.status == CampaignStatus::Active);
        out.push_str(&match next {
            Some(t) => format!("next run:   {} ({})\n", human_utc(t), relative(t, now)),
            None => "next run:   none\n".to_owned(),
        });
        if p.results_in == 0 && c.status == CampaignStatus::Active {
            // The first slot, its spread, and the longest timeout: when results are due.
            let timeout_ms = detail
                .spec
                .measurements
                .iter()
                .filter_map(|m| m.get("timeout_ms").and_then(|t| t.as_u64()))
                .max()
                .unwrap_or(5000);
            let due = UnixMicros(
                schedule
                    .start
                    .0
                    .max(detail.created_at.map_or(0, |t| t.0))
                    .saturating_add(i64::try_from(schedule.spread.as_micros()).unwrap_or(i64::MAX))
                    .saturating_add(i64::try_from(timeout_ms * 1000).unwrap_or(i64::MAX)),
            );
            out.push_str(&if due > now {
                format!(
                    "first results: none yet, due by {} ({})\n",
                    human_utc(due),
                    relative(due, now)
                )
            } else {
                format!(
                    "first results: none yet, due since {} ({}): are its probes connected?\n",
                    human_utc(due),
                    relative(due, now)
                )
            });
        }
    }
    let (done, expected) = (p.results_in, p.results_expected);
    let percent = if expected > 0 {
        format!(
            "{:.0} %",
            100.0 * done.min(expected) as f64 / expected as f64
        )
    } else {
        "-".into()
    };
    out.push_str(&format!(
        "progress:   {} {percent}  {done}/{expected} results, {} reached{}\n",
        progress_bar(done, expected, 30),
        p.reached,
        if p.complete { ", complete" } else { "" }
    ));
    if !p.failures.is_empty() {
        let failures: Vec<String> = p.failures.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("not reached: {}\n", failures.join(", ")));
    }
    out.push_str(&format!(
        "probes:     {} assigned, {} connected, {} reporting{}\n",
        p.probes_assigned,
        p.probes_connected,
        p.probes_reporting,
        if p.skipped_over_budget > 0 {
            format!(", {} left out over budget", p.skipped_over_budget)
        } else {
            String::new()
        }
    ));
    // Probes per operator, most probes first.
    let mut operators: std::collections::BTreeMap<Option<u32>, (String, BTreeSet<String>, usize)> =
        Default::default();
    for probe in &detail.probes {
        let entry = operators.entry(probe.asn).or_default();
        if let Some(name) = &probe.as_name {
            entry.0.clone_from(name);
        }
        if let Some(cc) = &probe.country {
            entry.1.insert(cc.clone());
        }
        entry.2 += 1;
    }
    let mut operators: Vec<_> = operators.into_iter().collect();
    operators.sort_by(|a, b| b.1.2.cmp(&a.1.2).then(a.0.cmp(&b.0)));
    if !operators.is_empty() {
        out.push_str(&format!(
            "  {:<10} {:<24} {:<8} PROBES\n",
            "AS", "NAME", "CC"
        ));
    }
    for (asn, (name, countries, n)) in &operators {
        let asn = asn.map_or("-".to_owned(), |a| format!("AS{a}"));
        let name = if name.is_empty() { "-" } else { name };
        let countries: Vec<&str> = countries.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "  {asn:<10} {name:<24} {:<8} {n}\n",
            if countries.is_empty() {
                "-".to_owned()
            } else {
                countries.join(",")
            }
        ));
    }
    for warning in spec_warnings(&detail.spec) {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
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

/// What `campaign apply` did, in one line.
fn applied_text(applied: &serde_json::Value) -> String {
    let c = &applied["campaign"];
    let name = c["spec"]["name"].as_str().unwrap_or("?");
    match applied["applied"].as_str() {
        Some("created") => format!(
            "created campaign {} ({name:?}): {} tasks on {} probes",
            c["id"],
            c["tasks"].as_array().map_or(0, Vec::len),
            c["probes"].as_array().map_or(0, Vec::len)
        ),
        Some("updated") => {
            let changed: Vec<&str> = applied["changed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str())
                .collect();
            format!(
                "updated campaign {} ({name:?}): {}",
                c["id"],
                changed.join(", ")
            )
        }
        Some("unchanged") => format!(
            "campaign {} ({name:?}) already matches the spec: nothing changed",
            c["id"]
        ),
        _ => format!("the collector answered {applied}"),
    }
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
        CampaignCommand::Apply { remote, source } => {
            let (text, format) = spec_to_send(source)?;
            let body = serde_json::json!({ "format": format, "spec": text });
            let client = client(&remote)?;
            let applied = ok_body(
                "apply",
                client.post(
                    "/api/v1/campaigns/apply",
                    "application/json",
                    &body.to_string(),
                )?,
            )?;
            let applied: serde_json::Value = serde_json::from_str(&applied)?;
            eprintln!("{}", applied_text(&applied));
            println!("{}", applied["campaign"]["id"]);
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
            json,
            timeout_s,
        } => {
            let client = client(&remote)?;
            let raw = if keep {
                follow(&client, id, std::time::Duration::from_secs(timeout_s))?
            } else {
                show(&client, id)?.0
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&raw)?);
            } else {
                let shown = Shown::deserialize(&raw).context("reading the collector's campaign")?;
                let detail = Detail::deserialize(&raw["campaign"]).unwrap_or_default();
                print!("{}", summary(&shown, &detail, UnixMicros::now()));
            }
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

    #[test]
    fn an_entities_file_groups_domains_and_adds_them_as_targets() {
        let dir = std::env::temp_dir().join(format!("sixmap-entities-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("entities.csv");
        std::fs::write(
            &file,
            "# entity,domain\nMinistry of Health,health.gov.lab\n\n\
             \"Transport, Roads\",roads.gov.lab\nMinistry of Health, vaccines.gov.lab\n",
        )
        .unwrap();
        let source = SpecSource {
            spec: None,
            template: Some("government-readiness".into()),
            targets_files: Vec::new(),
            targets: Vec::new(),
            entities_files: vec![file.clone()],
            inline: InlineSpec::default(),
        };
        let (text, format) = spec_to_send(source).unwrap();
        assert_eq!(format, "json");
        let input: super::super::spec::SpecInput = serde_json::from_str(&text).unwrap();
        let entities: Vec<(&str, Vec<&str>)> = input
            .entities
            .iter()
            .map(|e| {
                (
                    e.name.as_str(),
                    e.domains.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            entities,
            [
                (
                    "Ministry of Health",
                    vec!["health.gov.lab", "vaccines.gov.lab"]
                ),
                ("Transport, Roads", vec!["roads.gov.lab"]),
            ]
        );
        // The template validates with them: the domains become its targets.
        let (spec, _) =
            super::super::spec::validate(&input, UnixMicros(1_790_000_000_000_000), false).unwrap();
        assert_eq!(
            spec.targets,
            ["health.gov.lab", "vaccines.gov.lab", "roads.gov.lab"]
        );
        std::fs::write(&file, "just-a-domain.gov.lab\n").unwrap();
        let e = read_entities(&file).unwrap_err().to_string();
        assert!(e.contains(":1: expected `entity,domain`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_summary_says_what_runs_where_when_and_warns_about_the_spec() {
        const MIN: i64 = 60_000_000;
        let created = UnixMicros(1_790_000_000_000_000);
        let answer = serde_json::json!({
            "campaign": {
                "id": 7, "status": "active", "owner": "regulator", "created_at": created,
                "spec": {
                    "name": "v6 portals",
                    "targets": ["example.org", "2001:db8::1"],
                    "measurements": [{"kind": "ping", "family": "both", "timeout_ms": 2000}],
                    "selection": {"countries": [], "asns": [3215], "tags": []},
                    "schedule": {
                        "start": created, "stop": null,
                        "every": {"secs": 3600, "nanos": 0}, "spread": {"secs": 60, "nanos": 0}
                    },
                    "a_new_key": 1
                },
                "probes": [
                    {"probe": "a", "asn": 3215, "as_name": "Orange", "country": "FR"},
                    {"probe": "b", "asn": 3215, "as_name": "Orange", "country": "FR"},
                    {"probe": "c", "asn": 5410, "as_name": "Bouygues", "country": "FR"}
                ]
            },
            "progress": Progress {
                probes_assigned: 3, probes_connected: 2, tasks: 3,
                results_expected: 9, ..Progress::default()
            },
        });
        let shown = Shown::deserialize(&answer).unwrap();
        let detail = Detail::deserialize(&answer["campaign"]).unwrap();
        let now = UnixMicros(created.0 + 70 * MIN);
        let text = summary(&shown, &detail, now);
        assert!(
            text.starts_with("campaign 7 \"v6 portals\": active\n"),
            "{text}"
        );
        assert!(text.contains("schedule:   every 3600 s from "), "{text}");
        // Started 70 min ago, hourly: the next slot is in 50 min.
        assert!(text.contains("(in 50 min)"), "{text}");
        assert!(
            text.contains("[------------------------------] 0 %  0/9 results"),
            "{text}"
        );
        // Due 62 s after creation (spread and timeout), long passed: said so.
        assert!(
            text.contains("first results: none yet, due since"),
            "{text}"
        );
        let orange = text.find("AS3215     Orange").expect("Orange's line");
        let bouygues = text.find("AS5410     Bouygues").expect("Bouygues' line");
        assert!(orange < bouygues, "most probes first: {text}");
        assert!(text.contains("FR       2\n"), "{text}");
        assert!(
            text.contains("warning: the selection names no country"),
            "{text}"
        );
        assert!(
            text.contains("cannot apply to the address 2001:db8::1: measured over IPv6 only"),
            "{text}"
        );
        assert!(!text.contains("example.org: measured"), "{text}");

        // Half done, a one-off whose start passed: no next run, a half-full bar, no warning
        // about countries once the selection names one.
        let mut answer = answer;
        answer["campaign"]["spec"]["schedule"]["every"] = serde_json::Value::Null;
        answer["campaign"]["spec"]["selection"]["countries"] = serde_json::json!(["FR"]);
        answer["campaign"]["spec"]["measurements"][0]["family"] = serde_json::json!("v6");
        answer["progress"]["results_in"] = serde_json::json!(4);
        answer["progress"]["results_expected"] = serde_json::json!(8);
        let shown = Shown::deserialize(&answer).unwrap();
        let detail = Detail::deserialize(&answer["campaign"]).unwrap();
        let text = summary(&shown, &detail, now);
        assert!(text.contains("next run:   none\n"), "{text}");
        assert!(
            text.contains("[###############---------------] 50 %"),
            "{text}"
        );
        assert!(!text.contains("warning"), "{text}");
        assert!(!text.contains("first results"), "{text}");
        // A document with nothing but the head still shows.
        let bare = serde_json::json!({"campaign": {"id": 1, "status": "cancelled"},
                                      "progress": Progress::default()});
        let text = summary(
            &Shown::deserialize(&bare).unwrap(),
            &Detail::deserialize(&bare["campaign"]).unwrap(),
            now,
        );
        assert!(text.starts_with("campaign 1 \"\": cancelled\n"), "{text}");
        assert!(text.contains("warning: the selection is empty"), "{text}");
    }

    #[test]
    fn next_runs_fall_on_slots_and_stop_at_the_end() {
        let start = UnixMicros(1_000_000_000);
        let hourly = super::super::spec::Schedule {
            start,
            stop: Some(UnixMicros(start.0 + 3 * 3_600_000_000)),
            every: Some(std::time::Duration::from_secs(3600)),
            spread: std::time::Duration::ZERO,
        };
        assert_eq!(next_run(&hourly, UnixMicros(start.0 - 1)), Some(start));
        assert_eq!(
            next_run(&hourly, start),
            Some(UnixMicros(start.0 + 3_600_000_000))
        );
        assert_eq!(
            next_run(&hourly, UnixMicros(start.0 + 3_600_000_001)),
            Some(UnixMicros(start.0 + 7_200_000_000))
        );
        assert_eq!(next_run(&hourly, UnixMicros(start.0 + 7_200_000_001)), None);
        let once = super::super::spec::Schedule {
            every: None,
            stop: None,
            ..hourly
        };
        assert_eq!(next_run(&once, start), None);
        assert_eq!(progress_bar(1, 3, 3), "[#--]");
        assert_eq!(progress_bar(5, 3, 3), "[###]");
        assert_eq!(progress_bar(0, 0, 2), "[--]");
    }
}
