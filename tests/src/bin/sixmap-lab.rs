//! `sixmap-lab`: bring a lab scenario up by hand for demos and debugging, and take it down.
//!
//! `up` builds the scenario under the fixed namespace prefix `sxl-manual-`, prints its ground
//! truth as JSON and how to step into it, and exits, leaving the lab (and its forwarder or
//! services) running until `down`.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use sixmap_tests::lab::scenarios::{self, ExtHeaderDrops, Truth};
use sixmap_tests::lab::{self, impair};

#[derive(Debug, Parser)]
#[command(
    name = "sixmap-lab",
    version,
    about = "sixmap network lab (network namespaces; needs root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// Probe, a chain of routers, target (traceroute sees routers + 1 hops).
    Path,
    /// v6-only, dual-stack, v4-only and broken-v6 targets; address-unreachable,
    /// admin-prohibited and no-route answers.
    Targets,
    /// `targets` plus DNS (dual.lab, v6only.lab...), HTTP, HTTPS, HTTP/3, a closed and a
    /// filtered TCP port.
    Services,
    /// A 1280-byte link in the middle; Packet Too Big delivered.
    Pmtu,
    /// The same with Packet Too Big dropped: a path-MTU black hole.
    PmtuBlackhole,
    /// A router dropping packets with the chosen extension headers.
    ExtHeaders,
    /// A link with delay, jitter and loss from a userspace forwarder.
    Impaired,
    /// Three operators in two lab countries, each with probes.
    Networks,
    /// `networks` plus the `services` targets and a collector host: the campaign lab.
    Campaign,
    /// Access networks: IPv6-only with NAT64/DNS64, 464XLAT (CLAT on the host), native
    /// dual-stack and IPv4-only hosts behind one ISP router.
    Access,
    /// Government domains with known IPv6 readiness (DNS, mail, web, subresources), two
    /// probes and a collector host.
    Readiness,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a scenario and leave it running.
    Up {
        scenario: Scenario,
        /// Routers on the path (scenario `path`).
        #[arg(long, default_value_t = 7)]
        routers: usize,
        /// Extension headers to drop (scenario `ext-headers`): any of hbh, dst, frag.
        #[arg(long, value_delimiter = ',', default_value = "hbh,dst,frag")]
        drop: Vec<String>,
        /// One-way delay in ms (scenario `impaired`).
        #[arg(long, default_value_t = 20.0)]
        delay_ms: f64,
        #[arg(long, default_value_t = 0.0)]
        jitter_ms: f64,
        /// Loss in percent, each direction.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
    },
    /// Remove the lab brought up with `up` (and any leftovers of crashed tests).
    Down,
    /// List the lab namespaces that exist.
    List,
    /// Run the impairment forwarder between two TUN devices in the current namespace
    /// (used by the `impaired` scenario; runs until killed).
    #[command(hide = true)]
    Impair {
        #[arg(long)]
        tun_a: String,
        #[arg(long)]
        tun_b: String,
        #[arg(long)]
        delay_ms: f64,
        #[arg(long, default_value_t = 0.0)]
        jitter_ms: f64,
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up {
            scenario,
            routers,
            drop,
            delay_ms,
            jitter_ms,
            loss,
        } => {
            if !lab::namespaces(lab::MANUAL_PREFIX).is_empty() {
                bail!(
                    "a lab is already up (namespaces {}*): run `sixmap-lab down` first",
                    lab::MANUAL_PREFIX
                );
            }
            lab::build_manual_labs();
            let built: Box<dyn Truth> = match scenario {
                Scenario::Path => Box::new(scenarios::long_path(routers)?),
                Scenario::Targets => Box::new(scenarios::targets()?),
                Scenario::Services => Box::new(scenarios::with_services()?),
                Scenario::Pmtu => Box::new(scenarios::pmtu(false)?),
                Scenario::PmtuBlackhole => Box::new(scenarios::pmtu(true)?),
                Scenario::ExtHeaders => {
                    let mut drops = ExtHeaderDrops::default();
                    for header in &drop {
                        match header.as_str() {
                            "hbh" => drops.hop_by_hop = true,
                            "dst" => drops.destination_options = true,
                            "frag" => drops.fragment = true,
                            other => bail!("--drop: unknown header {other:?} (hbh, dst, frag)"),
                        }
                    }
                    Box::new(scenarios::ext_headers(drops)?)
                }
                Scenario::Impaired => {
                    let me = std::env::current_exe().context("finding sixmap-lab itself")?;
                    Box::new(scenarios::impaired(&me, delay_ms, jitter_ms, loss)?)
                }
                Scenario::Networks => Box::new(scenarios::networks()?),
                Scenario::Campaign => Box::new(sixmap_tests::lab::campaign::campaign()?),
                Scenario::Access => Box::new(sixmap_tests::lab::nat64::access_lab()?),
                Scenario::Readiness => Box::new(sixmap_tests::lab::readiness::readiness()?),
            };
            println!("{}", serde_json::to_string_pretty(&built.truth())?);
            let lab = built.lab();
            let entry = lab
                .nodes()
                .find(|n| n.name == scenarios::PROBE)
                .or_else(|| lab.nodes().find(|n| n.role == lab::Role::Host))
                .map(|n| n.netns.clone())
                .unwrap_or_default();
            eprintln!("\nlab is up; nodes:");
            for node in built.lab().nodes() {
                eprintln!("  {:<12} {}", node.name, node.netns);
            }
            eprintln!("step in:   ip netns exec {entry} bash");
            eprintln!("take down: sixmap-lab down");
        }
        Command::Down => {
            // Labs of running tests are theirs to remove; only what nobody owns goes here.
            let names = lab::namespaces(lab::MANUAL_PREFIX);
            for netns in &names {
                lab::delete_namespace(netns);
            }
            lab::collect_leftovers();
            let _ = std::fs::remove_dir_all(
                std::env::temp_dir().join(format!("{}files", lab::MANUAL_PREFIX)),
            );
            eprintln!("removed {} namespaces", names.len());
        }
        Command::List => {
            for netns in lab::namespaces(lab::NAMESPACE_PREFIX) {
                println!("{netns}");
            }
        }
        Command::Impair {
            tun_a,
            tun_b,
            delay_ms,
            jitter_ms,
            loss,
            seed,
        } => {
            let each =
                impair::Impairment::new(delay_ms, jitter_ms, loss).map_err(anyhow::Error::msg)?;
            impair::run_forwarder(&tun_a, &tun_b, each, each, seed)?;
        }
    }
    Ok(())
}
