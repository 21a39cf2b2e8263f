//! `sixmap-probe`: the probe daemon, and one-shot measurements by hand.
//!
//! The entry point is the C `main` below rather than std's: see `sixmap_probe::process_start`
//! for what that saves and what it keeps.
#![cfg_attr(all(not(test), target_os = "linux", target_env = "gnu"), no_main)]

mod measure_cli;

use anyhow::{Context, bail};
use clap::{Args as _, Subcommand};
use sixmap_probe::config::ProbeConfig;
use sixmap_probe::engine::boxed;
use sixmap_probe::session::ProbeError;
use sixmap_shared::cli_help::{LazySubcommand, with_lazy_subcommands};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Exit status when the collector refused the probe for good (revoked, unknown, too old).
const EXIT_REFUSED: i32 = 78;
use std::path::PathBuf;

/// The command given; read from the matches of [`cli`].
#[derive(Debug, Subcommand)]
enum Command {
    Run(RunArgs),
    Status(StatusArgs),
    Measure(measure_cli::MeasureArgs),
    Setup(SetupArgs),
}

/// The commands: described at once, their arguments built only for the command given (a
/// one-shot `measure` starts in a fraction of the time the whole tree took to build).
const COMMANDS: &[LazySubcommand] = &[
    LazySubcommand {
        name: "run",
        about: "Enroll if needed, then keep a session with the collector and run its tasks",
        examples: "  sixmap-probe run --config /etc/sixmap/probe.toml\n  \
         sixmap-probe run --collector https://[2001:db8::10]:7400 --enrollment-token SECRET.FINGERPRINT \
         --state-dir ./state\n  \
         sixmap-probe run --collector https://[::1]:7400 --state-dir ./state --lab-mode",
        args: RunArgs::augment_args,
    },
    LazySubcommand {
        name: "status",
        about: "Show whether the probe runs and is connected, its outbox, IPv6 status and tags",
        examples: "  sixmap-probe status\n  sixmap-probe status --state-dir ./state --json",
        args: StatusArgs::augment_args,
    },
    LazySubcommand {
        name: "measure",
        about: "Run one measurement now and print the result",
        examples: "",
        args: measure_cli::measure_args,
    },
    LazySubcommand {
        name: "setup",
        about: "Write the config file of an installed probe (collector URL, enrollment token); the probe enrolls with the token on its next start",
        examples: "  sixmap-probe setup --collector https://collector.example.net:7400 --token SECRET.FINGERPRINT \
         --hostname home-paris --latitude 48.85 --longitude 2.35",
        args: SetupArgs::augment_args,
    },
];

/// The whole command line.
fn cli() -> clap::Command {
    with_lazy_subcommands(
        clap::Command::new("sixmap-probe")
            .version(env!("CARGO_PKG_VERSION"))
            .about("sixmap probe: measures IPv6 reachability and path quality"),
        COMMANDS,
    )
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

/// The process's entry point on glibc (`#![no_main]`), where std reads the arguments without
/// its own `main` (glibc hands them to std's `.init_array` hook).
#[cfg(all(not(test), target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // `no_mangle`: this is the symbol the C runtime calls.
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    if let Err(e) = sixmap_probe::process_start::prepare() {
        exit_with(Err(anyhow::Error::new(e).context("preparing the process")));
    }
    // A panic on this thread (a bug: tasks' panics stay in tokio) prints its message and
    // aborts at this function's edge, where std's `main` exited with status 101. Not caught:
    // with `catch_unwind` here the idle daemon kept 1.5 MiB more of its binary resident
    // (`tests/examples/probe_footprint.rs`: 9.5 against 8.2 MiB).
    exit_with(main_result())
}

/// Elsewhere (and in the test harness) std's own start-up runs first.
#[cfg(any(test, not(all(target_os = "linux", target_env = "gnu"))))]
fn main() {
    exit_with(main_result())
}

/// Prints the error, if any, and ends the process through `std::process::exit`, which
/// flushes stdout as std's own `main` would on return.
/// Everything `main_result` owned (runtime, outbox, sockets) is dropped by the time it returns.
#[allow(clippy::disallowed_methods)] // this is the binary's `main`, split for its two entries
fn exit_with(result: anyhow::Result<()>) -> ! {
    std::process::exit(match result {
        Ok(()) => 0,
        Err(e) => {
            // One line with each cause once: anyhow's own report would list again, under
            // "Caused by", the causes our messages already quote. Written, not `eprintln!`:
            // a closed stderr must not turn an error exit into a panic.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "Error: {}",
                sixmap_shared::errors::chain(e.as_ref())
            );
            1
        }
    })
}

/// The command line's work; its error is printed by `main`.
fn main_result() -> anyhow::Result<()> {
    use clap::FromArgMatches as _;
    let command = Command::from_arg_matches(&cli().get_matches()).unwrap_or_else(|e| e.exit());
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
    match command {
        Command::Run(args) => runtime.block_on(boxed(|| run(args))),
        Command::Status(args) => status(args),
        Command::Measure(args) => runtime.block_on(boxed(|| measure_cli::measure(args))),
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
    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        let missing = sixmap_shared::cli_help::undocumented(&super::cli());
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
