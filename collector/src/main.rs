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
        /// Most results printed.
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
    /// The public probe directory: list it, see your probes, list or unlist yours (talks to a
    /// running collector's HTTP API).
    #[command(subcommand)]
    Directory(sixmap_collector::directory::DirectoryCommand),
    /// Alert rules on a running collector (--url and an admin API token): list them (the
    /// config's too), add one, delete one made over the API.
    #[command(subcommand, name = "alert-rule")]
    AlertRule(sixmap_collector::alerts::cli::AlertRuleCommand),
    /// Import APNIC Labs' per-economy IPv6 capability CSV (stats.labs.apnic.net/ipv6) to show
    /// beside our shares at `/api/v1/maps/comparison` (docs/methodology.md); replaces an
    /// earlier import. Restart the collector to use it.
    ImportApnic {
        /// The collector's data dir (the import is kept in `<data_dir>/comparison`).
        #[arg(long)]
        data_dir: PathBuf,
        /// The day of the figures, when the file has no Date column (YYYY-MM-DD).
        #[arg(long)]
        as_of: Option<String>,
        /// APNIC's per-economy CSV (columns found by their header names).
        file: PathBuf,
    },
    /// Print the public key that signs the daily dumps and published reports (PEM, as
    /// `GET /open-data/key.pem` serves it) and its id (SHA-256 of its DER). The collector
    /// makes the key at its first start; this only reads it. See docs/export.md.
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
        /// The collector's data directory, where the checked files are copied.
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
    /// Where the store, the CA and the prefix data live (replaces the config's `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the gRPC server for probes and API clients, e.g. [::]:7400 (port 0: any).
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// Address of the HTTP API and dashboard, e.g. [::]:7480 (port 0: any).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Lab mode: campaigns and quick measurements may target loopback, ULA, documentation and
    /// private addresses (the config's `lab_mode = true`); for test networks only. Probes
    /// still apply their own policy (`sixmap-probe run --lab-mode`).
    #[arg(long)]
    lab_mode: bool,
    /// Serve raw results, probes and losses without an API token (the local demo).
    #[arg(long)]
    raw_data_public: bool,
    /// Ping this target from every probe (repeatable; replaces the config's targets).
    #[arg(long = "ping-target")]
    ping_targets: Vec<String>,
    /// Seconds between default ping runs.
    #[arg(long)]
    ping_every_s: Option<u64>,
    /// Seconds between the heartbeats probes are asked to send.
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
    use clap::{CommandFactory, FromArgMatches};
    let cli = Cli::from_arg_matches(&with_examples(Cli::command()).get_matches())
        .unwrap_or_else(|e| e.exit());
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
            // Read only: a key made here (as another user, or in a dir the collector does not
            // use) would be one the collector never signs with.
            let path = dir.join(sixmap_collector::export::sign::KEY_FILE);
            if !path.exists() {
                anyhow::bail!(
                    "no open-data key at {}: the collector makes it at its first start (check --data-dir / --pki-dir)",
                    path.display()
                );
            }
            let key = sixmap_collector::export::sign::OpenDataKey::load(&path)?;
            print!("{}", key.public_pem());
            eprintln!("key id (SHA-256 of the DER public key): {}", key.key_id());
            Ok(())
        }
        Command::Rollups(command) => admin::rollups(command),
        Command::Directory(command) => sixmap_collector::directory::run(command),
        Command::Campaign(command) => sixmap_collector::campaign::cli::run(command),
        Command::Measure(args) => sixmap_collector::campaign::quick_cli::run(*args),
        Command::Token(command) => admin::token(command),
        Command::Probe(command) => admin::probe(command),
        Command::ApiToken(command) => admin::api_token(command),
        Command::AlertRule(command) => sixmap_collector::alerts::cli::run(command),
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

/// Examples shown under each command's help, by the command's path.
const EXAMPLES: &[(&[&str], &str)] = &[
    (
        &["serve"],
        "  sixmap-collector serve --config /etc/sixmap/collector.toml\n  \
         sixmap-collector serve --data-dir ./data --grpc-listen [::1]:7400 --http-listen [::1]:7480 --lab-mode",
    ),
    (
        &["results"],
        "  sixmap-collector results --url http://[::1]:7480 --probe 0123456789abcdef --limit 5\n  \
         sixmap-collector results --data-dir ./data",
    ),
    (
        &["export"],
        "  sixmap-collector export --url http://[::1]:7480 --format csv --from 2026-12-01 --output dec.csv\n  \
         sixmap-collector export --data-dir ./data --format parquet --probe-country FR --output fr.parquet",
    ),
    (
        &["campaign", "create"],
        "  sixmap-collector campaign create --spec portals.toml\n  \
         sixmap-collector campaign create --template government-portals --targets-file gov.txt\n  \
         sixmap-collector campaign create --kind ping --target example.org --from FR --every-s 3600",
    ),
    (
        &["campaign", "plan"],
        "  sixmap-collector campaign plan --spec portals.toml\n  \
         sixmap-collector campaign plan --kind http --target example.org --from AS3215 --json",
    ),
    (&["campaign", "list"], "  sixmap-collector campaign list"),
    (
        &["campaign", "cancel"],
        "  sixmap-collector campaign cancel 7 --reason \"wrong targets\"",
    ),
    (
        &["campaign", "publish"],
        "  sixmap-collector campaign publish 7",
    ),
    (
        &["campaign", "report"],
        "  sixmap-collector campaign report 7 --format csv > report.csv\n  \
         sixmap-collector campaign report 7 --format pdf --wait --output report.pdf",
    ),
    (
        &["campaign", "import-declared"],
        "  sixmap-collector campaign import-declared 7 declared.csv",
    ),
    (
        &["rollups", "rebuild"],
        "  sixmap-collector rollups rebuild --data-dir ./data",
    ),
    (&["migrate"], "  sixmap-collector migrate --data-dir ./data"),
    (&["probes"], "  sixmap-collector probes --data-dir ./data"),
    (
        &["token", "create"],
        "  sixmap-collector token create --url http://[::1]:7480 --owner uni-a --expires-in 30d",
    ),
    (
        &["token", "list"],
        "  sixmap-collector token list --url http://[::1]:7480",
    ),
    (
        &["token", "revoke"],
        "  sixmap-collector token revoke --url http://[::1]:7480 3f2a9c",
    ),
    (
        &["probe", "list"],
        "  sixmap-collector probe list --url http://[::1]:7480",
    ),
    (
        &["probe", "revoke"],
        "  sixmap-collector probe revoke --url http://[::1]:7480 0123456789abcdef",
    ),
    (
        &["api-token", "create"],
        "  sixmap-collector api-token create --url http://[::1]:7480 --role researcher --name uni-a",
    ),
    (
        &["api-token", "list"],
        "  sixmap-collector api-token list --url http://[::1]:7480",
    ),
    (
        &["api-token", "revoke"],
        "  sixmap-collector api-token revoke --url http://[::1]:7480 5",
    ),
    (
        &["directory", "list"],
        "  sixmap-collector directory list --url https://collector.example.net\n  \
         sixmap-collector directory list --page 2 --json",
    ),
    (&["directory", "mine"], "  sixmap-collector directory mine"),
    (
        &["directory", "opt-in"],
        "  sixmap-collector directory opt-in 0123456789abcdef",
    ),
    (
        &["directory", "opt-out"],
        "  sixmap-collector directory opt-out 0123456789abcdef",
    ),
    (
        &["alert-rule", "list"],
        "  sixmap-collector alert-rule list --url http://[::1]:7480",
    ),
    (
        &["alert-rule", "add"],
        "  sixmap-collector alert-rule add --url http://[::1]:7480 --id de-drop --kind share_drop --countries DE --points 5\n  \
         sixmap-collector alert-rule add --id lost --kind target_lost_v6 --campaigns 7 --min-probes 3",
    ),
    (
        &["alert-rule", "rm"],
        "  sixmap-collector alert-rule rm --url http://[::1]:7480 de-drop",
    ),
    (
        &["import-apnic"],
        "  sixmap-collector import-apnic --data-dir ./data --as-of 2026-12-01 apnic-economies.csv",
    ),
    (
        &["open-data-key"],
        "  sixmap-collector open-data-key --data-dir ./data\n  \
         sixmap-collector open-data-key --pki-dir /etc/sixmap/pki",
    ),
    (
        &["import-prefixes"],
        "  sixmap-collector import-prefixes --data-dir ./data --asn asn-ipv6.csv --asn asn-ipv4.csv \
         --country geo-whois-asn-country-ipv6.csv --rir delegated-ripencc-extended-latest",
    ),
];

/// `cmd` with [`EXAMPLES`] as the `after_help` of the commands they name.
fn with_examples(cmd: clap::Command) -> clap::Command {
    sixmap_shared::cli_help::with_examples(cmd, EXAMPLES)
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
    config.lab_mode |= args.lab_mode;
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        let missing = sixmap_shared::cli_help::undocumented(&super::with_examples(Cli::command()));
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
