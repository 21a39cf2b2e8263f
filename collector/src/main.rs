//! `sixmap-collector`: serve probes, or read stored results from the command line.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sixmap_collector::admin;
use sixmap_collector::config::CollectorConfig;
use sixmap_shared::ProbeId;
use std::net::SocketAddr;
use std::path::PathBuf;

/// See the `mimalloc` line of Cargo.toml: the allocator was a third of the ingest CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Print stored results as JSON lines, newest first: from a running collector (--url, a
    /// researcher's token unless raw data is public) or the store (a sled store: collector
    /// stopped).
    Results {
        #[command(flatten)]
        target: admin::AdminArgs,
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
    Campaign(sixmap_collector::campaign::cli::CampaignCommand),
    /// A quick measurement from connected probes, results printed as they arrive (talks to a
    /// running collector's HTTP API; any API token).
    Measure(Box<sixmap_collector::campaign::quick_cli::MeasureArgs>),
    /// Daily rollups and the figures behind maps and aggregates (docs/figures.md).
    #[command(subcommand)]
    Rollups(admin::RollupsCommand),
    /// Move a sled store's results into the current layout (time-ordered, compact) and exit.
    /// The collector also does this when it starts; this does it ahead, with progress logged
    /// on stderr. Safe to interrupt and run again: each step is atomic. The collector must
    /// not be running on the same data dir.
    Migrate {
        #[command(flatten)]
        store: admin::StoreArgs,
    },
    /// List enrolled probes as JSON lines from the store (a sled store: the collector must not
    /// be running on the same data dir; while it runs, `probe list --url`).
    Probes {
        #[command(flatten)]
        store: admin::StoreArgs,
    },
    /// One-time enrollment tokens for volunteers: on a running collector with --url and an
    /// admin API token, or on the store (a sled store: collector stopped).
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Probes: list them, revoke one (on a running collector with --url and an admin API
    /// token, or on the store: a sled store with the collector stopped).
    #[command(subcommand)]
    Probe(admin::ProbeCommand),
    /// Bearer tokens for the HTTP API, each with one role (on a running collector with --url
    /// and an admin API token, or on the store: a sled store with the collector stopped).
    #[command(subcommand, name = "api-token")]
    ApiToken(admin::ApiTokenCommand),
    /// Import APNIC Labs' per-economy IPv6 capability CSV (stats.labs.apnic.net/ipv6) to show
    /// beside our shares at `/api/v1/maps/comparison` (docs/methodology.md); replaces an
    /// earlier import. Restart the collector to use it.
    ImportApnic {
        #[arg(long)]
        data_dir: PathBuf,
        /// The day of the figures, when the file has no Date column (YYYY-MM-DD).
        #[arg(long)]
        as_of: Option<String>,
        file: PathBuf,
    },
    /// Print the public key that signs the daily dumps and published reports (PEM, as
    /// `GET /open-data/key.pem` serves it) and its id (SHA-256 of its DER); the key is made
    /// on first use, like the collector does at start. See docs/export.md.
    OpenDataKey {
        /// The collector's data dir (the key is in `<data_dir>/pki`).
        #[arg(long, required_unless_present = "pki_dir")]
        data_dir: Option<PathBuf>,
        /// The collector's `pki_dir`, when the config sets one.
        #[arg(long, conflicts_with = "data_dir")]
        pki_dir: Option<PathBuf>,
    },
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

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with each cause once: anyhow's own report would list again, under
            // "Caused by", the causes our messages already quote.
            eprintln!("Error: {}", sixmap_shared::errors::chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line's work; its error is printed by `main`.
fn run() -> anyhow::Result<()> {
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
            target,
            probe,
            limit,
        } => {
            let probe = probe
                .map(|p| p.parse::<ProbeId>())
                .transpose()
                .context("--probe")?;
            admin::results(&target, probe, limit)
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
            sixmap_collector::private_files::create_private_dir(&data_dir)
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
        Command::ImportApnic {
            data_dir,
            as_of,
            file,
        } => {
            if let Some(day) = &as_of
                && sixmap_collector::daily::parse_day(day).is_none()
            {
                bail!("--as-of {day:?} is not a UTC day YYYY-MM-DD");
            }
            let imported = sixmap_collector::comparison::import(
                &data_dir,
                &file,
                as_of,
                sixmap_shared::UnixMicros::now(),
            )
            .with_context(|| format!("importing {}", file.display()))?;
            println!(
                "{} economies as of {} kept in {}; restart the collector to show them",
                imported.figures.len(),
                imported.as_of,
                data_dir
                    .join(sixmap_collector::comparison::STORED)
                    .display()
            );
            Ok(())
        }
        Command::OpenDataKey { data_dir, pki_dir } => {
            let dir = pki_dir
                .or_else(|| data_dir.map(|d| d.join("pki")))
                .context("give --data-dir or --pki-dir")?;
            let key = sixmap_collector::export::sign::OpenDataKey::load_or_create_in(&dir)?;
            print!("{}", key.public_pem());
            eprintln!("key id (SHA-256 of the DER public key): {}", key.key_id());
            Ok(())
        }
        Command::Rollups(command) => admin::rollups(command),
        Command::Campaign(command) => sixmap_collector::campaign::cli::run(command),
        Command::Measure(args) => sixmap_collector::campaign::quick_cli::run(*args),
        Command::Token(command) => admin::token(command),
        Command::Probe(command) => admin::probe(command),
        Command::ApiToken(command) => admin::api_token(command),
        Command::Migrate { store } => {
            // Opening a sled store migrates it (progress and counts in the log).
            let opened = admin::open_admin(&store, false)?;
            opened.store.flush()?;
            eprintln!("the store's results are in the current layout");
            Ok(())
        }
        Command::Probes { store } => {
            let opened = admin::open_admin(&store, false)?;
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
            reason = running.fatal.wait() => {
                // Not served around: the supervisor restarts the collector on a working store.
                anyhow::bail!("stopping: the store failed ({reason})");
            }
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
