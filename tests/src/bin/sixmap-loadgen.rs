//! `sixmap-loadgen`: load a real collector with simulated probes over real gRPC sessions.
//!
//! - `ingest`: N probes send result batches as fast as acks come back; results/s acked, ack
//!   latency, the collector's CPU and memory, and (by default) the raw sled baseline with the
//!   same data volume and batch size, so ingest is also reported as a ratio to it.
//! - `idle`: N sessions with heartbeats only; the collector's memory per 1000 sessions and
//!   how many it holds.
//! - `baseline`: the raw sled baseline alone.
//!
//! `cargo build --release -p sixmap-collector -p sixmap-tests --bin sixmap-collector --bin sixmap-loadgen`
//! then `target/release/sixmap-loadgen ingest --probes 1000 --duration-s 20`.

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use sixmap_tests::loadgen::collector::Backend;
use sixmap_tests::loadgen::{self, CollectorSource, IdlePlan, IngestPlan, Setup, report};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(about = "load a sixmap collector with simulated probes over real gRPC sessions")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Print one JSON object instead of the table.
    #[arg(long, global = true)]
    json: bool,
    /// Work directory: enrolled identities (kept between runs), the run's collector data,
    /// the baseline's database.
    #[arg(long, global = true, default_value = "target/loadgen")]
    work_dir: PathBuf,
    /// The collector binary to start (default: `sixmap-collector` next to this one).
    #[arg(long, global = true)]
    collector_bin: Option<PathBuf>,
    /// Store of the started collector: `sled` or `clickhouse`.
    #[arg(long, global = true, default_value = "sled")]
    store: String,
    #[arg(long, global = true, default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    #[arg(long, global = true, default_value = "sixmap")]
    clickhouse_database: String,
    /// RUST_LOG of the started collector.
    #[arg(long, global = true, default_value = "warn")]
    collector_log: String,
    /// Use a running collector at this gRPC address instead of starting one (its config
    /// must assign ping, traceroute, dns, http, tcp and tls tasks to every probe).
    #[arg(long, global = true, requires_all = ["connect_http", "admin_token"])]
    connect_grpc: Option<SocketAddr>,
    /// Its HTTP address (enrollment tokens come from its admin API).
    #[arg(long, global = true)]
    connect_http: Option<SocketAddr>,
    /// An admin API token of that collector.
    #[arg(long, global = true)]
    admin_token: Option<String>,
    /// Its process id, to report its CPU and memory.
    #[arg(long, global = true)]
    collector_pid: Option<u32>,
    /// Enrollments in progress at once.
    #[arg(long, global = true, default_value_t = 32)]
    enroll_concurrency: usize,
    /// Sessions being opened at once.
    #[arg(long, global = true, default_value_t = 64)]
    connect_concurrency: usize,
    /// Enroll new probes even if earlier runs left identities.
    #[arg(long, global = true)]
    fresh: bool,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Result batches from N probes for a while; throughput and ack latency.
    Ingest {
        #[arg(long, default_value_t = 1000)]
        probes: usize,
        /// Results per batch (the collector takes at most 256).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Batches a probe may have unacked (the real probe allows 8).
        #[arg(long, default_value_t = 1)]
        window: usize,
        #[arg(long, default_value_t = 20)]
        duration_s: u64,
        /// Skip the raw sled baseline.
        #[arg(long)]
        no_baseline: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// N idle sessions with heartbeats; collector memory per 1000 and sessions held.
    Idle {
        #[arg(long, default_value_t = 20_000)]
        sessions: usize,
        /// Seconds to hold every session open after the last one opened.
        #[arg(long, default_value_t = 60)]
        hold_s: u64,
        /// Record the collector's memory every this many sessions.
        #[arg(long, default_value_t = 1000)]
        step: usize,
    },
    /// The raw sled baseline alone: batched inserts, a flush after each batch.
    Baseline {
        #[arg(long, default_value_t = 1_000_000)]
        results: u64,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn setup(common: &Common) -> Result<Setup> {
    let source = match common.connect_grpc {
        Some(grpc) => CollectorSource::External {
            grpc,
            http: common
                .connect_http
                .context("--connect-http is required with --connect-grpc")?,
            admin: common
                .admin_token
                .clone()
                .context("--admin-token is required with --connect-grpc")?,
            pid: common.collector_pid,
        },
        None => CollectorSource::Spawn {
            binary: common
                .collector_bin
                .clone()
                .unwrap_or_else(loadgen::collector::default_binary),
            backend: match common.store.as_str() {
                "sled" => Backend::Sled,
                "clickhouse" => Backend::ClickHouse {
                    url: common.clickhouse_url.clone(),
                    database: common.clickhouse_database.clone(),
                },
                other => bail!("--store {other:?}: must be `sled` or `clickhouse`"),
            },
            log_filter: common.collector_log.clone(),
        },
    };
    if common.enroll_concurrency == 0 || common.connect_concurrency == 0 {
        bail!("--enroll-concurrency and --connect-concurrency must be at least 1");
    }
    Ok(Setup {
        source,
        work_dir: common.work_dir.clone(),
        enroll_concurrency: common.enroll_concurrency,
        connect_concurrency: common.connect_concurrency,
        fresh: common.fresh,
    })
}

fn print(json: bool, value: serde_json::Value, table: String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{table}");
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let common = &cli.common;
    match cli.mode {
        Mode::Baseline {
            results,
            batch,
            seed,
        } => {
            if !(1..=256).contains(&batch) {
                bail!("--batch {batch}: must be 1..=256 (the collector's batch limit)");
            }
            std::fs::create_dir_all(&common.work_dir)
                .with_context(|| format!("creating {}", common.work_dir.display()))?;
            let run = loadgen::baseline_only(&common.work_dir, results, batch, seed)?;
            print(
                common.json,
                report::baseline_json(&run, batch),
                report::baseline_table(&run, batch),
            )
        }
        Mode::Ingest {
            probes,
            batch,
            window,
            duration_s,
            no_baseline,
            seed,
        } => {
            if !(1..=256).contains(&batch) {
                bail!("--batch {batch}: must be 1..=256 (the collector's batch limit)");
            }
            if probes == 0 || window == 0 || duration_s == 0 {
                bail!("--probes, --window and --duration-s must be at least 1");
            }
            let setup = setup(common)?;
            let limit = loadgen::raise_nofile(probes as u64 * 2 + 1024)
                .context("raising the open-file limit")?;
            tracing::info!(nofile = limit, "open-file limit");
            let plan = IngestPlan {
                probes,
                batch_size: batch,
                window,
                duration: Duration::from_secs(duration_s),
                baseline: !no_baseline,
                seed,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let run = runtime.block_on(loadgen::ingest(&setup, &plan))?;
            print(common.json, run.json(), run.table())
        }
        Mode::Idle {
            sessions,
            hold_s,
            step,
        } => {
            if sessions == 0 || step == 0 {
                bail!("--sessions and --step must be at least 1");
            }
            let setup = setup(common)?;
            // Both ends of every session are in this process and the collector (which inherits
            // the limit), plus the collector's store and listeners.
            let wanted = sessions as u64 + 4096;
            let limit = loadgen::raise_nofile(wanted).context("raising the open-file limit")?;
            if limit < wanted {
                tracing::warn!(
                    limit,
                    wanted,
                    "open-file limit too low for the sessions wanted: run as root or raise it"
                );
            }
            let plan = IdlePlan {
                sessions,
                hold: Duration::from_secs(hold_s),
                step,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let run = runtime.block_on(loadgen::idle(&setup, &plan))?;
            print(common.json, run.json(), run.table())
        }
    }
}
