//! `sixmap-probe`: the probe daemon, and one-shot measurements by hand.

mod measure_cli;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sixmap_probe::config::ProbeConfig;
use sixmap_probe::session::ProbeError;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Exit status when the collector refused the probe for good (revoked, unknown, too old).
const EXIT_REFUSED: i32 = 78;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sixmap-probe",
    version,
    about = "sixmap probe: measures IPv6 reachability and path quality"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll if needed, then keep a session with the collector and run its tasks.
    Run(RunArgs),
    /// Show whether the probe runs and is connected, its outbox, IPv6 status and tags.
    Status(StatusArgs),
    /// Run one measurement now and print the result.
    Measure(measure_cli::MeasureArgs),
    /// Write the config file of an installed probe (collector URL, enrollment token); the
    /// probe enrolls with the token on its next start.
    Setup(SetupArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// TOML config file; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Collector URL, e.g. https://[2001:db8::10]:7400; give it several times for collectors
    /// sharing one store, tried in order (replaces the config's `collector`/`collectors`).
    #[arg(long)]
    collector: Vec<String>,
    /// Where the identity, outbox and status live (replaces the config's `state_dir`;
    /// required without --config).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// One-time token from the collector's operator: <secret>.<CA fingerprint>.
    #[arg(long)]
    enrollment_token: Option<String>,
    /// Name shown in the collector's dashboard.
    #[arg(long)]
    hostname: Option<String>,
    /// Allow loopback, ULA, documentation and private targets.
    #[arg(long)]
    lab_mode: bool,
    /// Bound of the on-disk outbox in bytes.
    #[arg(long)]
    outbox_max_bytes: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    /// Collector URL, always https, e.g. https://collector.example.net:7400; give it several
    /// times for collectors sharing one store (the probe fails over between them).
    #[arg(long, required = true)]
    collector: Vec<String>,
    /// Enrollment token from the collector's operator.
    #[arg(long)]
    token: String,
    /// Name shown in the collector's dashboard.
    #[arg(long, default_value = "")]
    hostname: String,
    /// Where the probe is, in degrees (sent rounded to 0.1 degree); with --longitude.
    #[arg(long, allow_negative_numbers = true)]
    latitude: Option<f64>,
    /// Longitude in degrees (east positive); with --latitude.
    #[arg(long, allow_negative_numbers = true)]
    longitude: Option<f64>,
    /// The config file to write.
    #[arg(long, default_value = sixmap_probe::setup::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// The state directory the config names (identity, outbox).
    #[arg(long, default_value = sixmap_probe::setup::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Group that may read the file (mode 0640): the service's.
    #[arg(long, default_value = sixmap_probe::setup::SERVICE_GROUP)]
    group: String,
    /// Replace an existing config file.
    #[arg(long)]
    force: bool,
    /// Skip the live check that each collector answers with the CA the token names (offline
    /// installs); the token's form is checked all the same.
    #[arg(long)]
    no_check: bool,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The probe's TOML config (to find its state directory) [default: /etc/sixmap/probe.toml].
    #[arg(long, conflicts_with = "state_dir")]
    config: Option<PathBuf>,
    /// The probe's state directory, given directly.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    match main_result() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with each cause once: anyhow's own report would list again, under
            // "Caused by", the causes our messages already quote.
            eprintln!("Error: {}", sixmap_shared::errors::chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Examples shown under each command's help, by the command's path.
const EXAMPLES: &[(&[&str], &str)] = &[
    (
        &["run"],
        "  sixmap-probe run --config /etc/sixmap/probe.toml\n  \
         sixmap-probe run --collector https://[2001:db8::10]:7400 --enrollment-token SECRET.FINGERPRINT \
         --state-dir ./state\n  \
         sixmap-probe run --collector https://[::1]:7400 --state-dir ./state --lab-mode",
    ),
    (
        &["status"],
        "  sixmap-probe status\n  sixmap-probe status --state-dir ./state --json",
    ),
    (
        &["setup"],
        "  sixmap-probe setup --collector https://collector.example.net:7400 --token SECRET.FINGERPRINT \
         --hostname home-paris --latitude 48.85 --longitude 2.35",
    ),
    (
        &["measure", "ping"],
        "  sixmap-probe measure ping example.org\n  \
         sixmap-probe measure ping 2001:db8::1 -c 10 -i 200 -s 1200 --lab-mode\n  \
         sixmap-probe measure ping example.org -4 --json",
    ),
    (
        &["measure", "traceroute"],
        "  sixmap-probe measure traceroute example.org\n  \
         sixmap-probe measure traceroute example.org -P tcp -p 443 -q 1\n  \
         sixmap-probe measure traceroute 2001:db8::1 2001:db8::2 --pps 100",
    ),
    (
        &["measure", "dns"],
        "  sixmap-probe measure dns 2001:4860:4860::8888 example.org\n  \
         sixmap-probe measure dns ::1 example.org -t A -p 5353 --tcp --lab-mode",
    ),
    (
        &["measure", "tcp"],
        "  sixmap-probe measure tcp example.org 443",
    ),
    (
        &["measure", "tls"],
        "  sixmap-probe measure tls example.org\n  \
         sixmap-probe measure tls 2001:db8::1 --sni example.org --alpn h2,http/1.1 --lab-mode",
    ),
    (
        &["measure", "http"],
        "  sixmap-probe measure http https://example.org/\n  \
         sixmap-probe measure http https://example.org/ --head --address 2001:db8::1 --lab-mode",
    ),
    (
        &["measure", "quic"],
        "  sixmap-probe measure quic example.org",
    ),
    (
        &["measure", "pmtu"],
        "  sixmap-probe measure pmtu example.org\n  sixmap-probe measure pmtu example.org -P udp --max-size 9000",
    ),
    (
        &["measure", "exthdr"],
        "  sixmap-probe measure exthdr example.org\n  \
         sixmap-probe measure exthdr example.org --headers hbh,dst --option-bytes 16",
    ),
    (
        &["measure", "dualstack"],
        "  sixmap-probe measure dualstack example.org\n  \
         sixmap-probe measure dualstack example.org --inner http",
    ),
    (
        &["measure", "readiness"],
        "  sixmap-probe measure readiness example.gov --timeout-ms 30000
  \
         sixmap-probe measure readiness example.gov --web-host www.example.gov --no-mail",
    ),
];

/// `cmd` with [`EXAMPLES`] as the `after_help` of the commands they name.
fn with_examples(mut cmd: clap::Command) -> clap::Command {
    fn at(cmd: clap::Command, path: &[&str], text: &'static str) -> clap::Command {
        match path.split_first() {
            None => cmd.after_help(format!("Examples:\n{text}")),
            Some((first, rest)) => {
                let rest = rest.to_vec();
                cmd.mut_subcommand(*first, move |sub| at(sub, &rest, text))
            }
        }
    }
    for (path, text) in EXAMPLES {
        cmd = at(cmd, path, text);
    }
    cmd
}

/// The command line's work; its error is printed by `main`.
fn main_result() -> anyhow::Result<()> {
    use clap::{CommandFactory, FromArgMatches};
    let cli = Cli::from_arg_matches(&with_examples(Cli::command()).get_matches())
        .unwrap_or_else(|e| e.exit());
    // `target=level` directives (`info,sixmap_probe=debug`): tracing-subscriber's `Targets`
    // rather than `EnvFilter`, whose regex engine is a tenth of the binary.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only on a terminal, not in journald or log files.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
    // One thread runs the probe's tasks: its work is waiting on sockets and timers (ping
    // times come from kernel timestamps, not from when a task is polled), and on a Raspberry
    // Pi memory counts more than parallelism. The multi-thread scheduler cost more than its
    // two threads' stacks and allocator arenas: it is the only user of libm (`pow`, in its
    // poll-time statistics), whose load-time relocations alone keep about 0.5 MiB of it
    // resident; without it the binary does not link libm at all.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Status(args) => status(args),
        Command::Measure(args) => runtime.block_on(measure_cli::measure(args)),
        Command::Setup(args) => setup(args, &runtime),
    }
}

fn setup(args: SetupArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    use sixmap_probe::setup;
    let text = setup::render(&setup::SetupValues {
        collectors: args.collector.clone(),
        token: args.token.clone(),
        hostname: args.hostname,
        state_dir: args.state_dir.clone(),
        latitude: args.latitude,
        longitude: args.longitude,
    })?;
    let gid = setup::group_id(&args.group)?;
    if args.no_check {
        println!("not checking the collectors (--no-check)");
    } else {
        // Before anything is written: a wrong URL or token fails here, not in the daemon.
        for url in &args.collector {
            runtime.block_on(setup::check_collector(
                url,
                &args.token,
                setup::CHECK_TIMEOUT,
            ))?;
            println!("{url}: reachable over TLS, its CA matches the token");
        }
    }
    setup::write_config(&args.config, &text, Some(gid), args.force)?;
    println!(
        "wrote {} (mode 0640, group {})",
        args.config.display(),
        args.group
    );
    // Reading the state directory needs the service's rights; without them, say nothing.
    if let Ok(Some(identity)) = sixmap_probe::identity::load_identity(&args.state_dir) {
        println!(
            "note: {} already holds the identity of probe {} (from {}); the token is used only without one",
            args.state_dir.display(),
            identity.probe_id,
            identity.collector
        );
    }
    println!("start or restart the probe: sudo systemctl restart sixmap-probe");
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => ProbeConfig::load(path)?,
        None => ProbeConfig {
            collector: None,
            collectors: Some(args.collector.clone()).filter(|c| !c.is_empty()),
            state_dir: args
                .state_dir
                .clone()
                .context("--state-dir is required without --config")?,
            enrollment_token: None,
            hostname: String::new(),
            lab_mode: false,
            icmp_socket: "auto".into(),
            outbox_max_bytes: sixmap_probe::outbox::DEFAULT_MAX_BYTES,
            self_test_aaaa_name: sixmap_probe::config::DEFAULT_AAAA_NAME.into(),
            latitude: None,
            longitude: None,
            extra_ca_file: None,
            packet_budget_per_minute: sixmap_probe::safety::DEFAULT_PACKETS_PER_MINUTE,
            max_concurrent_measurements: sixmap_probe::safety::DEFAULT_MAX_CONCURRENT,
            metrics_listen: None,
        },
    };
    if let Some(bytes) = args.outbox_max_bytes {
        config.outbox_max_bytes = bytes;
    }
    if !args.collector.is_empty() {
        config.collector = None;
        config.collectors = Some(args.collector);
    }
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    if let Some(token) = args.enrollment_token {
        config.enrollment_token = Some(token);
    }
    if let Some(hostname) = args.hostname {
        config.hostname = hostname;
    }
    config.lab_mode |= args.lab_mode;
    let settings = config.validate(args.config.as_deref())?;
    // Private files also outside systemd (whose unit sets UMask=0077 too).
    sixmap_probe::identity::private_umask();
    // SIGTERM (systemd stop, reboot) ends the run like Ctrl-C: the outbox is dropped, which
    // leaves the ledger durable and marked clean.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = sixmap_probe::session::run(settings) => match result {
            Err(e @ (ProbeError::Revoked(_) | ProbeError::Refused(_))) => {
                tracing::error!("{e}");
                // EX_CONFIG: the unit's RestartPreventExitStatus keeps systemd from
                // restarting a probe that a restart cannot help. Exiting here, in main, is
                // the point of the exit code; the session has already ended.
                #[allow(clippy::disallowed_methods)]
                std::process::exit(EXIT_REFUSED);
            }
            other => other?,
        },
        signal = tokio::signal::ctrl_c() => {
            signal.context("waiting for Ctrl-C")?;
            tracing::info!("shutting down on Ctrl-C");
        }
        _ = terminate.recv() => tracing::info!("shutting down on SIGTERM"),
    }
    Ok(())
}

fn status(args: StatusArgs) -> anyhow::Result<()> {
    use sixmap_probe::status;
    let state_dir = match (args.config, args.state_dir) {
        (Some(path), _) => ProbeConfig::load(&path)?.state_dir,
        (None, Some(dir)) => dir,
        (None, None) => {
            ProbeConfig::load(std::path::Path::new(
                sixmap_probe::setup::DEFAULT_CONFIG_PATH,
            ))
            .context("no --config or --state-dir: reading the package's config (written by `sixmap-probe setup`)")?
            .state_dir
        }
    };
    let now = sixmap_shared::UnixMicros::now();
    let Some(mut current) = status::read(&state_dir).map_err(anyhow::Error::msg)? else {
        bail!(
            "no status in {}: the probe has not run with this state directory yet",
            state_dir.display()
        );
    };
    let alive = status::daemon_alive(&current, now);
    if !alive {
        // No daemon holds the outbox open: read it directly for current figures.
        match sixmap_probe::outbox::inspect(&state_dir) {
            Ok(Some(stats)) => {
                current.outbox = sixmap_probe::outbox::OutboxStats {
                    max_bytes: current.outbox.max_bytes,
                    evicted_since_start: current.outbox.evicted_since_start,
                    ..stats
                };
                current.connected = false;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the outbox"),
        }
    }
    if args.json {
        let mut value = serde_json::to_value(&current)?;
        value["running"] = serde_json::Value::Bool(alive);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", status::render(&current, alive, now));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Options and arguments without help text, and commands without an example
    /// (`after_help`), anywhere under `cmd`.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name()).trim().to_owned();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path}: `{id}` has no help text"));
            }
        }
        if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
            out.push(format!("{path}: no description"));
        }
        let subcommands: Vec<_> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if subcommands.is_empty()
            && cmd.get_after_help().is_none()
            && cmd.get_after_long_help().is_none()
        {
            out.push(format!("{path}: no example (after_help)"));
        }
        for sub in subcommands {
            undocumented(sub, &path, out);
        }
    }

    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        let mut missing = Vec::new();
        undocumented(&super::with_examples(Cli::command()), "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
