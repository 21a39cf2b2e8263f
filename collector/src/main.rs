//! `sixmap-collector`: serve probes, or read stored results from the command line.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sixmap_collector::auth;
use sixmap_collector::config::CollectorConfig;
use sixmap_collector::config::StoreSettings;
use sixmap_collector::store::{ClickHouseStore, ResultQuery, SledStore, Store};
use sixmap_shared::{ProbeId, UnixMicros};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "sixmap-collector",
    version,
    about = "sixmap collector: stores and serves IPv6 measurements"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server for probes, the HTTP API and the dashboard.
    Serve(ServeArgs),
    /// Print stored results as JSON lines, newest first (a sled store: the collector must not be running on the same data dir).
    Results {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this probe's results.
        #[arg(long)]
        probe: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Export results as jsonl, csv, parquet or atlas (RIPE Atlas JSON), from the local store
    /// (collector stopped) or a running collector (--url); see docs/export.md.
    Export(Box<sixmap_collector::export::cli::ExportArgs>),
    /// Commission, follow and publish measurement campaigns (talks to a running collector's
    /// HTTP API).
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Daily rollups and the figures behind maps and aggregates (docs/figures.md).
    #[command(subcommand)]
    Rollups(RollupsCommand),
    /// Move a sled store's results into the current layout (time-ordered, compact) and exit.
    /// The collector also does this when it starts; this does it ahead, with progress logged
    /// on stderr. Safe to interrupt and run again: each step is atomic. The collector must
    /// not be running on the same data dir.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List enrolled probes as JSON lines (a sled store: the collector must not be running on the same data dir).
    Probes {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// One-time enrollment tokens for volunteers (a sled store: collector stopped, or use
    /// POST /api/v1/enrollment-tokens with an admin API token; ClickHouse: any time).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Probes: revoke one (a sled store: collector stopped, or use
    /// POST /api/v1/probes/ID/revoke with an admin API token; ClickHouse: any time).
    #[command(subcommand)]
    Probe(ProbeCommand),
    /// Bearer tokens for the HTTP API, each with one role (a sled store: collector stopped).
    #[command(subcommand, name = "api-token")]
    ApiToken(ApiTokenCommand),
    /// Check prefix data files and add them to the data dir; the collector loads them at start
    /// to give results and probes their origin AS and country.
    ImportPrefixes {
        #[arg(long)]
        data_dir: PathBuf,
        /// `@ip-location-db/asn` CSV files (asn-ipv4.csv, asn-ipv6.csv, *-num.csv).
        #[arg(long)]
        asn: Vec<PathBuf>,
        /// `@ip-location-db/geo-whois-asn-country` CSV files.
        #[arg(long)]
        country: Vec<PathBuf>,
        /// RIR delegated(-extended) statistics files.
        #[arg(long)]
        rir: Vec<PathBuf>,
        /// Drop the earlier files of each kind given.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RollupsCommand {
    /// Recompute every figure and daily rollup from the raw results and replace the stored
    /// ones (a sled store: the collector must be stopped).
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it (shown once; only its hash is stored). The token carries
    /// the fingerprint of the collector's CA, which it creates first if needed.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Who the token is for; enrollment caps count probes per owner.
        #[arg(long)]
        owner: String,
        /// Lifetime such as 30m, 12h or 7d (default 7d).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List tokens (never their secrets) as JSON lines.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an unused token by its id (from `token list`).
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ProbeCommand {
    /// Revoke a probe: refused at its next hello, with a message saying so.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Create an API token and print it (shown once; only its hash is stored).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// admin, campaigner or researcher.
        #[arg(long)]
        role: sixmap_collector::store::Role,
        /// Who holds it; shown in the audit log.
        #[arg(long)]
        name: String,
    },
    /// List API tokens (never their secrets) as JSON lines.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API token by its id.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
}

/// Which store an admin command works on: the collector's config file (its `[store]`,
/// `data_dir` and `pki_dir`), a sled data dir, or both (`--data-dir` overrides the config's).
/// With the sled store the collector must be stopped; with ClickHouse it may keep running.
#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// The collector's TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct Remote {
    /// The collector's HTTP API.
    #[arg(long, default_value = "http://[::1]:7480")]
    collector: String,
    /// API token (`sxa_…`; campaign writes need a campaigner's). Default: $SIXMAP_API_TOKEN.
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CampaignCommand {
    /// Create a campaign from a spec file (TOML, or JSON if it ends in .json) or a template.
    Create {
        #[command(flatten)]
        remote: Remote,
        /// Who commissions it; only used when the collector runs without API tokens (with a
        /// token, the owner is the token's holder).
        #[arg(long)]
        owner: Option<String>,
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
    /// Print or save a campaign's report (json, csv or html); --wait follows progress until
    /// every result is in first.
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

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML config file; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Serve raw results, probes and losses without an API token (the local demo).
    #[arg(long)]
    raw_data_public: bool,
    /// Ping this target from every probe (repeatable; replaces the config's targets).
    #[arg(long = "ping-target")]
    ping_targets: Vec<String>,
    /// Seconds between default ping runs.
    #[arg(long)]
    ping_every_s: Option<u64>,
    #[arg(long)]
    heartbeat_interval_s: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in journald or log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Export(args) => {
            sixmap_collector::export::cli::run(&args)?;
            Ok(())
        }
        Command::Results {
            store,
            probe,
            limit,
        } => {
            let probe = probe
                .map(|p| p.parse::<ProbeId>())
                .transpose()
                .context("--probe")?;
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            for result in store.results(&ResultQuery { probe, limit })? {
                println!("{}", serde_json::to_string(&result)?);
            }
            Ok(())
        }
        Command::ImportPrefixes {
            data_dir,
            asn,
            country,
            rir,
            replace,
        } => {
            use sixmap_collector::enrich::{SourceKind, import};
            if asn.is_empty() && country.is_empty() && rir.is_empty() {
                bail!("give at least one --asn, --country or --rir file");
            }
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            for (kind, files) in [
                (SourceKind::Asn, asn),
                (SourceKind::Country, country),
                (SourceKind::Rir, rir),
            ] {
                if files.is_empty() {
                    continue;
                }
                for report in import(&data_dir, kind, &files, replace)? {
                    println!(
                        "{}: {} records, {} prefixes ({kind:?})",
                        report.path.display(),
                        report.counts.records,
                        report.counts.prefixes
                    );
                }
            }
            println!("restart the collector to use the new prefix data");
            Ok(())
        }
        Command::Rollups(RollupsCommand::Rebuild { store }) => {
            let opened = open_admin(&store, false)?;
            let (prefixes, _) = sixmap_collector::enrich::load(&opened.data_dir)?;
            let done = sixmap_collector::figures::fold::rebuild_everything(
                &*opened.store,
                &prefixes,
                UnixMicros::now(),
            )?;
            println!("{done}");
            Ok(())
        }
        Command::Campaign(command) => campaign(command),
        Command::Token(command) => token(command),
        Command::Probe(ProbeCommand::Revoke { store, id }) => {
            let probe: ProbeId = id.parse().context("probe id")?;
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            let record = auth::revoke_probe(store, &probe, UnixMicros::now())?;
            auth::audit(store, "cli", "probe revoke", &id, "ok");
            println!(
                "probe {} revoked: it is refused at its next hello",
                record.id
            );
            Ok(())
        }
        Command::ApiToken(command) => api_token(command),
        Command::Migrate { store } => {
            // Opening a sled store migrates it (progress and counts in the log).
            let opened = open_admin(&store, false)?;
            opened.store.flush()?;
            eprintln!("the store's results are in the current layout");
            Ok(())
        }
        Command::Probes { store } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            for probe in store.probes()? {
                let value = serde_json::json!({
                    "id": probe.id, "hostname": probe.hostname, "enrolled_at": probe.enrolled_at,
                    "last_seen": probe.last_seen, "software_version": probe.software_version,
                    "owner": probe.owner, "revoked_at": probe.revoked_at,
                });
                println!("{value}");
            }
            Ok(())
        }
    }
}

fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            store,
            owner,
            expires_in,
        } => {
            let lifetime = match expires_in {
                Some(text) => auth::parse_duration(&text)?,
                None => auth::DEFAULT_TOKEN_LIFETIME,
            };
            let opened = open_admin(&store, true)?;
            let store = &*opened.store;
            let pki = sixmap_collector::pki::Pki::load_or_create_in(&opened.pki_dir)?;
            let (token, record) = auth::create_enrollment_token(
                store,
                pki.fingerprint(),
                &owner,
                lifetime,
                "cli",
                UnixMicros::now(),
            )?;
            auth::audit(store, "cli", "token create", &record.id, "ok");
            eprintln!(
                "enrollment token {} for {owner:?}, single use, expires in {}: give it to the volunteer privately",
                record.id,
                humantime(lifetime)
            );
            // Alone on stdout, so scripts can take it.
            println!("{token}");
            Ok(())
        }
        TokenCommand::List { store } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            for (_, record) in store.enrollment_tokens()? {
                println!("{}", serde_json::to_string(&record)?);
            }
            Ok(())
        }
        TokenCommand::Revoke { store, id } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            let record = auth::revoke_enrollment_token(store, &id, UnixMicros::now())?;
            auth::audit(store, "cli", "token revoke", &id, "ok");
            println!(
                "enrollment token {} (owner {:?}) revoked",
                record.id, record.owner
            );
            Ok(())
        }
    }
}

fn api_token(command: ApiTokenCommand) -> anyhow::Result<()> {
    match command {
        ApiTokenCommand::Create { store, role, name } => {
            let opened = open_admin(&store, true)?;
            let store = &*opened.store;
            let (token, record) = auth::create_api_token(store, role, &name, UnixMicros::now())?;
            auth::audit(store, "cli", "api-token create", &record.id, "ok");
            eprintln!(
                "API token {} for {name:?} with role {role}: send it as `Authorization: Bearer <token>`",
                record.id
            );
            println!("{token}");
            Ok(())
        }
        ApiTokenCommand::List { store } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            for (_, record) in store.api_tokens()? {
                println!("{}", serde_json::to_string(&record)?);
            }
            Ok(())
        }
        ApiTokenCommand::Revoke { store, id } => {
            let opened = open_admin(&store, false)?;
            let store = &*opened.store;
            let record = auth::revoke_api_token(store, &id, UnixMicros::now())?;
            auth::audit(store, "cli", "api-token revoke", &id, "ok");
            println!("API token {} ({:?}) revoked", record.id, record.name);
            Ok(())
        }
    }
}

fn humantime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        _ if s.is_multiple_of(86_400) => (s / 86_400, "day"),
        _ if s.is_multiple_of(3600) => (s / 3600, "hour"),
        _ if s.is_multiple_of(60) => (s / 60, "minute"),
        _ => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The store an admin command works on, and the CA directory that goes with it.
struct Opened {
    store: Arc<dyn Store>,
    pki_dir: PathBuf,
    data_dir: PathBuf,
}

/// Opens the store named by `--config` and/or `--data-dir`. A sled store is created only when
/// `create` (commands that write); it fails with advice if the collector is running on it.
fn open_admin(args: &StoreArgs, create: bool) -> anyhow::Result<Opened> {
    let mut config = match &args.config {
        Some(path) => CollectorConfig::load(path)?,
        None if args.data_dir.is_some() => CollectorConfig::default(),
        None => bail!("give --config (the collector's config file) or --data-dir"),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    let settings = config.validate(args.config.as_deref())?;
    let data_dir = &settings.data_dir;
    let store: Arc<dyn Store> = match &settings.store {
        StoreSettings::Sled { cache_mb } => {
            if create {
                std::fs::create_dir_all(data_dir)
                    .with_context(|| format!("creating {}", data_dir.display()))?;
            } else if !data_dir.join("conf").exists() {
                bail!("{} holds no sixmap store", data_dir.display());
            }
            Arc::new(SledStore::open_with_cache(data_dir, *cache_mb).with_context(|| {
                format!(
                    "opening {} (if a collector is running on it, use its HTTP API with an admin token instead)",
                    data_dir.display()
                )
            })?)
        }
        StoreSettings::ClickHouse(clickhouse) => Arc::new(
            ClickHouseStore::open(clickhouse)
                .with_context(|| format!("opening the ClickHouse store at {}", clickhouse.url))?,
        ),
    };
    Ok(Opened {
        store,
        pki_dir: settings.pki_dir,
        data_dir: settings.data_dir,
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => CollectorConfig::load(path)?,
        None => CollectorConfig::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(addr) = args.grpc_listen {
        config.grpc_listen = addr;
    }
    if let Some(addr) = args.http_listen {
        config.http_listen = addr;
    }
    config.raw_data_public |= args.raw_data_public;
    if !args.ping_targets.is_empty() {
        config.default_ping.targets = args.ping_targets;
    }
    if let Some(every) = args.ping_every_s {
        config.default_ping.every_s = every;
    }
    if let Some(interval) = args.heartbeat_interval_s {
        config.heartbeat_interval_s = interval;
    }
    let settings = config.validate(args.config.as_deref())?;

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let running = sixmap_collector::start(settings).await?;
        // One machine-readable line on stdout, so scripts and tests learn the ports when
        // they asked for port 0.
        println!(
            "sixmap-collector listening grpc={} http={}",
            running.grpc_addr, running.http_addr
        );
        tokio::select! {
            r = running.grpc => r.context("gRPC server task")?.context("gRPC server")?,
            r = running.http => r.context("HTTP server task")?.context("HTTP server")?,
            r = tokio::signal::ctrl_c() => {
                r.context("waiting for Ctrl-C")?;
                tracing::info!("shutting down on Ctrl-C");
            }
        }
        anyhow::Ok(())
    })
}

const TEMPLATES: [(&str, &str); 2] = [
    (
        "government-portals",
        include_str!("../../deploy/campaigns/government-portals.toml"),
    ),
    (
        "operator-ranking",
        include_str!("../../deploy/campaigns/operator-ranking.toml"),
    ),
];

fn client(remote: &Remote) -> anyhow::Result<sixmap_collector::campaign::client::Client> {
    let token = remote
        .token
        .clone()
        .or_else(|| std::env::var("SIXMAP_API_TOKEN").ok());
    Ok(sixmap_collector::campaign::client::Client::new(&remote.collector)?.with_token(token))
}

/// The body of a successful reply, or the collector's error message.
fn ok_body(what: &str, reply: sixmap_collector::campaign::client::Reply) -> anyhow::Result<String> {
    if (200..300).contains(&reply.status) {
        return Ok(reply.body);
    }
    let message = serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(reply.body);
    bail!("{what}: {message} (HTTP {})", reply.status)
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

/// One line of progress for people.
fn progress_line(show: &serde_json::Value) -> String {
    let c = &show["campaign"];
    let p = &show["progress"];
    let (done, expected) = (
        p["results_in"].as_u64().unwrap_or(0),
        p["results_expected"].as_u64().unwrap_or(0),
    );
    let percent = if expected > 0 {
        format!(
            "{:.0} %",
            100.0 * done.min(expected) as f64 / expected as f64
        )
    } else {
        "-".into()
    };
    format!(
        "campaign {} [{}]: {done}/{expected} results ({percent}), {} reached; probes {} assigned, {} connected, {} reporting; not reached: {}",
        c["id"],
        c["status"].as_str().unwrap_or("?"),
        p["reached"],
        p["probes_assigned"],
        p["probes_connected"],
        p["probes_reporting"],
        p["failures"],
    )
}

/// Prints progress to stderr until the campaign is complete or ended.
fn follow(
    client: &sixmap_collector::campaign::client::Client,
    id: u64,
    timeout: std::time::Duration,
) -> anyhow::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let body = ok_body("show", client.get(&format!("/api/v1/campaigns/{id}"))?)?;
        let show: serde_json::Value = serde_json::from_str(&body)?;
        let line = progress_line(&show);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        let done = show["progress"]["complete"].as_bool().unwrap_or(false)
            || show["campaign"]["status"].as_str() != Some("active");
        if done {
            return Ok(show);
        }
        if std::time::Instant::now() > deadline {
            bail!("campaign {id} still running after {} s", timeout.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

fn campaign(command: CampaignCommand) -> anyhow::Result<()> {
    use sixmap_collector::campaign::spec::SpecInput;
    match command {
        CampaignCommand::Create {
            remote,
            owner,
            spec,
            template,
            targets_files,
            targets,
        } => {
            let (text, format, base) = match (&spec, &template) {
                (Some(path), _) => {
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
                (None, Some(name)) => {
                    let Some((_, text)) = TEMPLATES.iter().find(|(n, _)| n == name) else {
                        let names: Vec<_> = TEMPLATES.iter().map(|(n, _)| *n).collect();
                        bail!("--template {name:?}: not one of {}", names.join(", "));
                    };
                    ((*text).to_owned(), "toml", None)
                }
                (None, None) => bail!("give --spec FILE or --template NAME"),
            };
            let mut input: SpecInput = sixmap_collector::campaign::spec::parse(format, &text)?;
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
            let (text, format) = if extra.is_empty() && !had_file && spec.is_some() {
                (text, format)
            } else {
                input.targets.extend(extra);
                (serde_json::to_string_pretty(&input)?, "json")
            };
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
        CampaignCommand::List { remote } => {
            let body = ok_body("list", client(&remote)?.get("/api/v1/campaigns")?)?;
            let list: serde_json::Value = serde_json::from_str(&body)?;
            for c in list["campaigns"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{} targets, {} tasks, {} probes\t{}",
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
                let body = ok_body("show", client.get(&format!("/api/v1/campaigns/{id}"))?)?;
                serde_json::from_str(&body)?
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
            let body = ok_body(
                "report",
                client.get(&format!("/api/v1/campaigns/{id}/report?format={format}"))?,
            )?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &body)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("report written to {}", path.display());
                }
                None => print!("{body}"),
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
