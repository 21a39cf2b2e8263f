//! `sixmap-bench-peers`: our probe against the tools operators use today, on the same lab
//! paths, side by side and alternating round by round, compared with the lab's ground truth.
//!
//! - ping: ours vs iputils `ping` and `fping` over the impaired link (delay, jitter and loss
//!   from the userspace forwarder, whose settings are the truth);
//! - traceroute: ours vs `traceroute -6`, `mtr`, `scamper`, `dublin-traceroute` and `trip`
//!   (trippy) over `long_path`;
//! - many targets at a packets-per-second cap: ours vs `scamper -p`.
//!
//! Packets are counted by nftables in the probe's namespace (output hook, destinations of the
//! run), not taken from the tools. Needs root. Not part of CI: it takes minutes.
//!
//! `cargo run --release -p sixmap-tests --bin sixmap-bench-peers [-- --rounds N]`

#![allow(clippy::expect_used, clippy::panic)]

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use sixmap_tests::bench::parse::{self, PingRun, Trace};
use sixmap_tests::bench::table::{self, Benchmark, Metric, ToolResult};
use sixmap_tests::bench::{Better, hops_correct};
use sixmap_tests::lab::scenarios::{self, PROBE};
use sixmap_tests::lab::{Lab, many, ratelimit};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    about = "benchmark sixmap's ping and traceroute against ping, fping, traceroute, mtr, scamper, dublin-traceroute and trippy in the lab"
)]
struct Args {
    /// Rounds of every benchmark; each round runs every tool once, in a rotating order.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Echo requests per ping run (our probe allows at most 64 per measurement).
    #[arg(long, default_value_t = 50)]
    ping_count: u32,
    /// One-way delay of the impaired link, ms.
    #[arg(long, default_value_t = 20.0)]
    delay_ms: f64,
    /// Jitter of the impaired link, ms (uniform ±).
    #[arg(long, default_value_t = 2.0)]
    jitter_ms: f64,
    /// Loss of the impaired link in each direction, percent.
    #[arg(long, default_value_t = 3.0)]
    loss: f64,
    /// Routers of the traceroute path (hops = routers + 1).
    #[arg(long, default_value_t = 8)]
    routers: usize,
    /// Extra addresses on each of the 4 target hosts of the many-target run.
    #[arg(long, default_value_t = 24)]
    per_host: usize,
    /// Packets-per-second cap of the many-target run, for ours and scamper alike.
    #[arg(long, default_value_t = 100)]
    pps: u32,
    /// Also write the report (table, commands, versions) to this Markdown file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Benchmarks to run, comma-separated: ping, trace, many, ratelimit (the traceroute and
    /// many-target runs again, on routers that rate-limit ICMPv6 errors as Linux does).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ping,trace,many,ratelimit"
    )]
    only: Vec<String>,
    /// Seconds between two tools' runs in the rate-limited scenario, so that each starts with
    /// the routers' token buckets full (6 tokens, one back every 250 ms).
    #[arg(long, default_value_t = 2.0)]
    ratelimit_pause: f64,
    /// Extra addresses per target host in the rate-limited many-target run.
    #[arg(long, default_value_t = 5)]
    ratelimit_per_host: usize,
    /// Packets-per-second cap of the rate-limited many-target run (ours and scamper's): what
    /// routers answering about one error a second can follow.
    #[arg(long, default_value_t = 5)]
    ratelimit_pps: u32,
    /// Do not run `cargo build --release -p sixmap-probe` first.
    #[arg(long)]
    no_build: bool,
}

/// What one run of a tool left: its output files and the wall time.
struct RunOutput {
    stdout: String,
    stderr: String,
    success: bool,
    wall: Duration,
    timed_out: bool,
}

/// The directory of this executable (target/release), where the workspace binaries are.
fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .expect("own executable path")
        .parent()
        .expect("executable has a directory")
        .to_path_buf()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// A program's path if it can be found: an absolute path as given, else on PATH.
fn find(program: &str) -> Option<PathBuf> {
    let path = Path::new(program);
    if path.is_absolute() {
        return path.exists().then(|| path.to_path_buf());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

/// Runs `argv` in the probe's namespace with a time limit; output goes through files so a
/// chatty tool never blocks on a full pipe.
fn run(lab: &Lab, argv: &[String], limit: Duration) -> Result<RunOutput> {
    let dir = lab.scratch_dir();
    let out_path = dir.join("bench.stdout");
    let err_path = dir.join("bench.stderr");
    let out = std::fs::File::create(&out_path).context("stdout file")?;
    let err = std::fs::File::create(&err_path).context("stderr file")?;
    let mut command = lab.command(PROBE, &argv[0]);
    command
        .current_dir(dir)
        .args(&argv[1..])
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", argv[0]))?;
    // Waited for in a thread, so the end is seen when it happens: polling every 2 ms made
    // every wall time a multiple of about 2.1 ms, coarser than the difference between two
    // tools that take 4 to 7 ms.
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let (status, timed_out) = match finished.recv_timeout(limit) {
        Ok(status) => (status?, false),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let status = finished.recv().context("waiting for the killed tool")??;
            (status, true)
        }
    };
    let wall = started.elapsed();
    Ok(RunOutput {
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        success: status.success(),
        wall,
        timed_out,
    })
}

/// An nftables counter of packets leaving the probe's namespace for `destinations`.
struct Counter;

impl Counter {
    fn install(lab: &Lab, destinations: &[Ipv6Addr]) -> Result<Self> {
        let _ = lab.exec_unchecked(PROBE, &["nft", "delete", "table", "inet", "sixmap_bench"]);
        let elements: Vec<String> = destinations.iter().map(Ipv6Addr::to_string).collect();
        lab.nft(
            PROBE,
            &format!(
                "table inet sixmap_bench {{
                    set destinations {{ type ipv6_addr; elements = {{ {} }} }}
                    counter probes {{ }}
                    chain out {{
                        type filter hook output priority 0; policy accept;
                        ip6 daddr @destinations counter name \"probes\"
                    }}
                }}",
                elements.join(", ")
            ),
        )
        .context("installing the nftables counter (apt-get install nftables)")?;
        Ok(Self)
    }

    fn read(&self, lab: &Lab) -> Result<u64> {
        let out = lab.exec(
            PROBE,
            &["nft", "list", "counter", "inet", "sixmap_bench", "probes"],
        )?;
        Ok(parse::nft_packets(&String::from_utf8_lossy(&out.stdout))?)
    }
}

/// One contender of a benchmark: its name, the program that must exist, and how a round's
/// command line is made.
struct Tool {
    name: &'static str,
    program: String,
    why_missing: &'static str,
}

impl Tool {
    fn new(name: &'static str, program: impl Into<String>, why_missing: &'static str) -> Self {
        Self {
            name,
            program: program.into(),
            why_missing,
        }
    }

    fn missing(&self) -> Option<String> {
        find(&self.program)
            .is_none()
            .then(|| format!("{} not found ({})", self.program, self.why_missing))
    }
}

fn strings(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| (*s).to_owned()).collect()
}

/// A command line as a person would type it (arguments with spaces quoted).
fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn tail(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    line.chars().take(120).collect()
}

/// Order of the tools in round `round`: rotated, so none always runs first.
fn order(n: usize, round: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n).collect()
}

fn ping_bench(args: &Args, probe: &Path) -> Result<Benchmark> {
    let lab_binary = exe_dir().join("sixmap-lab");
    let s = scenarios::impaired(&lab_binary, args.delay_ms, args.jitter_ms, args.loss)
        .context("building the impaired lab")?;
    let target = s.target.to_string();
    let truth_rtt = 2.0 * s.delay_ms;
    let truth_loss = 100.0 * (1.0 - (1.0 - s.loss_percent / 100.0).powi(2));
    eprintln!(
        "ping: {} via the impaired link: {} ms ± {} ms and {} % loss each way (truth: rtt {truth_rtt} ms, round-trip loss {truth_loss:.2} %)",
        target, s.delay_ms, s.jitter_ms, s.loss_percent
    );
    // Neighbour caches warm before anyone is timed.
    let _ = s.lab.exec_unchecked(
        PROBE,
        &["ping", "-6", "-n", "-c", "3", "-i", "0.2", &target],
    );
    let count = args.ping_count.to_string();
    let probe = probe.display().to_string();
    let tools = [
        Tool::new(
            "sixmap",
            probe.clone(),
            "cargo build --release -p sixmap-probe",
        ),
        Tool::new("ping (iputils)", "ping", "apt-get install iputils-ping"),
        Tool::new("fping", "fping", "apt-get install fping"),
    ];
    let commands: Vec<Vec<String>> = vec![
        strings(&[
            &probe,
            "measure",
            "ping",
            &target,
            "-c",
            &count,
            "-i",
            "20",
            "--json",
            "--lab-mode",
        ]),
        strings(&[
            "ping", "-6", "-n", "-c", &count, "-i", "0.02", "-W", "1", &target,
        ]),
        strings(&[
            "fping", "-6", "-q", "-C", &count, "-p", "20", "-t", "1000", &target,
        ]),
    ];
    let metrics = vec![
        Metric {
            name: "median RTT error vs truth, ms".into(),
            better: Better::Lower,
            precision: 3,
        },
        Metric {
            name: "loss error vs truth, points".into(),
            better: Better::Lower,
            precision: 2,
        },
        Metric {
            name: format!("median RTT ms (truth {truth_rtt})"),
            better: Better::Info,
            precision: 3,
        },
        Metric {
            name: format!("loss % (truth {truth_loss:.2})"),
            better: Better::Info,
            precision: 2,
        },
    ];
    let mut results: Vec<ToolResult> = tools
        .iter()
        .zip(&commands)
        .map(|(t, c)| {
            let mut r = ToolResult::new(t.name, metrics.len());
            r.command = shell_line(c);
            r.failure = t.missing();
            r
        })
        .collect();
    for round in 0..args.rounds {
        for i in order(tools.len(), round) {
            if tools[i].missing().is_some() {
                continue;
            }
            results[i].rounds += 1;
            let out = run(&s.lab, &commands[i], Duration::from_secs(60))?;
            let parsed: Result<PingRun, parse::ParseError> = match i {
                0 => parse::sixmap_ping(&out.stdout),
                1 => parse::iputils_ping(&out.stdout),
                _ => parse::fping_count(&out.stderr, &target),
            };
            match parsed {
                Ok(run) => {
                    let (Some(rtt), Some(loss)) = (run.median_rtt_ms(), run.loss_percent()) else {
                        results[i].failure = Some("no reply at all".into());
                        continue;
                    };
                    eprintln!(
                        "  round {round} {:<15} rtt {rtt:.3} ms, loss {loss:.1} % ({}/{})",
                        tools[i].name, run.received, run.sent
                    );
                    results[i].values[0].push((rtt - truth_rtt).abs());
                    results[i].values[1].push((loss - truth_loss).abs());
                    results[i].values[2].push(rtt);
                    results[i].values[3].push(loss);
                }
                Err(e) => {
                    eprintln!("  round {round} {}: {e}", tools[i].name);
                    results[i].failure = Some(format!("{e}; {}", tail(&out.stderr)));
                }
            }
        }
    }
    Ok(Benchmark {
        name: format!(
            "ping, {} requests, {} ms ± {} ms and {} % loss each way",
            args.ping_count, s.delay_ms, s.jitter_ms, s.loss_percent
        ),
        metrics,
        tools: results,
    })
}

fn trace_bench(args: &Args, probe: &Path, limited: bool) -> Result<Benchmark> {
    let path = if limited {
        ratelimit::ratelimited_path(args.routers).context("building ratelimited_path")?
    } else {
        scenarios::long_path(args.routers).context("building long_path")?
    };
    let pause = if limited {
        Duration::from_secs_f64(args.ratelimit_pause.max(0.0))
    } else {
        Duration::ZERO
    };
    let target_ip = path.target;
    let target = target_ip.to_string();
    let expected = path.hops.clone();
    eprintln!("traceroute: {target}, {} hops", expected.len());
    let _ = path.lab.exec_unchecked(
        PROBE,
        &["ping", "-6", "-n", "-c", "2", "-i", "0.2", &target],
    );
    let counter = Counter::install(&path.lab, &[target_ip])?;
    let probe = probe.display().to_string();
    let trip = std::env::var("SIXMAP_BENCH_TRIP").unwrap_or_else(|_| {
        workspace()
            .join(".peers/bin/trip")
            .to_string_lossy()
            .into_owned()
    });
    // dublin-traceroute writes trace.json into its working directory (the lab's scratch).
    let dublin_out = path.lab.scratch_dir().join("trace.json");
    let tools = [
        Tool::new(
            "sixmap",
            probe.clone(),
            "cargo build --release -p sixmap-probe",
        ),
        Tool::new("traceroute", "traceroute", "apt-get install traceroute"),
        Tool::new("mtr", "mtr", "apt-get install mtr-tiny"),
        Tool::new("scamper", "scamper", "apt-get install scamper"),
        Tool::new(
            "dublin-traceroute",
            "dublin-traceroute",
            "apt-get install dublin-traceroute",
        ),
        Tool::new(
            "trip (trippy)",
            trip.clone(),
            "cargo install trippy --locked --root .peers",
        ),
    ];
    let commands: Vec<Vec<String>> = vec![
        strings(&[
            &probe,
            "measure",
            "traceroute",
            &target,
            "--json",
            "--lab-mode",
        ]),
        strings(&["traceroute", "-6", "-n", &target]),
        strings(&["mtr", "-6", "-n", "--json", "-c", "3", "-i", "0.1", &target]),
        strings(&[
            "scamper",
            "-O",
            "json",
            "-c",
            "trace -P icmp-paris",
            "-i",
            &target,
        ]),
        strings(&["dublin-traceroute", &target]),
        strings(&[
            &trip,
            "--mode",
            "json",
            "--report-cycles",
            "3",
            "--protocol",
            "icmp",
            "--min-round-duration",
            "100ms",
            "-6",
            &target,
        ]),
    ];
    let metrics = vec![
        Metric {
            name: "wall time to the path, ms".into(),
            better: Better::Lower,
            precision: 1,
        },
        Metric {
            name: format!("hops correct of {}", expected.len()),
            better: Better::Higher,
            precision: 1,
        },
        Metric {
            name: "packets sent (nftables)".into(),
            better: Better::Lower,
            precision: 1,
        },
    ];
    let mut results: Vec<ToolResult> = tools
        .iter()
        .zip(&commands)
        .map(|(t, c)| {
            let mut r = ToolResult::new(t.name, metrics.len());
            r.command = shell_line(c);
            r.failure = t.missing();
            r
        })
        .collect();
    for round in 0..args.rounds {
        for i in order(tools.len(), round) {
            if tools[i].missing().is_some() {
                continue;
            }
            results[i].rounds += 1;
            std::thread::sleep(pause);
            let before = counter.read(&path.lab)?;
            let out = run(&path.lab, &commands[i], Duration::from_secs(90))?;
            let packets = counter.read(&path.lab)?.saturating_sub(before);
            let parsed: Result<Trace, parse::ParseError> = match i {
                0 => parse::sixmap_traceroute(&out.stdout),
                1 => parse::traceroute_text(&out.stdout, IpAddr::V6(target_ip)),
                2 => parse::mtr_json(&out.stdout),
                3 => parse::scamper_json(&out.stdout).and_then(|t| {
                    t.into_iter().next().ok_or(parse::ParseError {
                        tool: "scamper",
                        message: "no trace".into(),
                    })
                }),
                4 => Err(dublin_failure(&path.lab, &out, &dublin_out, path.target_v4)),
                _ => parse::trippy_json(&out.stdout),
            };
            match parsed {
                Ok(trace) => {
                    let (correct, complete) = hops_correct(&trace.hops, &expected);
                    // Where our wall time goes: the measurement itself, as the probe timed
                    // it, and the rest (process start, output).
                    let inside = (i == 0)
                        .then(|| serde_json::from_str::<serde_json::Value>(&out.stdout).ok())
                        .flatten()
                        .and_then(|v| v["duration_us"].as_u64())
                        .map(|us| format!(" (measurement {:.1} ms)", us as f64 / 1e3))
                        .unwrap_or_default();
                    eprintln!(
                        "  round {round} {:<17} {:>8.1} ms{inside}, {correct}/{} hops{}, {packets} packets{}",
                        tools[i].name,
                        out.wall.as_secs_f64() * 1e3,
                        expected.len(),
                        if complete { "" } else { " (incomplete)" },
                        if out.timed_out { ", timed out" } else { "" }
                    );
                    results[i].values[0].push(out.wall.as_secs_f64() * 1e3);
                    results[i].values[1].push(correct as f64);
                    results[i].values[2].push(packets as f64);
                }
                Err(e) => {
                    eprintln!("  round {round} {}: {e}", tools[i].name);
                    results[i].failure = Some(if i == 4 {
                        e.message
                    } else {
                        format!("{e} {}", tail(&out.stderr))
                    });
                }
            }
        }
    }
    Ok(Benchmark {
        name: format!(
            "traceroute, {}({}) = {} hops",
            if limited {
                "ratelimited_path"
            } else {
                "long_path"
            },
            args.routers,
            expected.len()
        ),
        metrics,
        tools: results,
    })
}

/// dublin-traceroute 0.4.2 refuses IPv6 targets; say so, with what it does on the same
/// path's IPv4 address, so the row shows the tool was run and why it has no numbers.
fn dublin_failure(
    lab: &Lab,
    out: &RunOutput,
    trace_json: &Path,
    target_v4: std::net::Ipv4Addr,
) -> parse::ParseError {
    let said = tail(&format!("{}\n{}", out.stdout, out.stderr));
    let v6_wrote = out.success && trace_json.exists();
    let _ = std::fs::remove_file(trace_json);
    let v4 = run(
        lab,
        &strings(&["dublin-traceroute", &target_v4.to_string(), "--npaths=1"]),
        Duration::from_secs(60),
    );
    let v4_note = match v4 {
        Ok(v4) if v4.success && trace_json.exists() => format!(
            "on the same path's IPv4 address it runs (exit 0, trace.json written, {:.1} s)",
            v4.wall.as_secs_f64()
        ),
        Ok(v4) => format!(
            "on the same path's IPv4 address it {} after {:.1} s without a trace.json; it last said {:?}",
            if v4.timed_out {
                "was stopped".to_owned()
            } else if v4.success {
                "exited 0".to_owned()
            } else {
                "exited non-zero".to_owned()
            },
            v4.wall.as_secs_f64(),
            tail(&format!("{}\n{}", v4.stdout, v4.stderr))
        ),
        Err(e) => format!("IPv4 could not start: {e}"),
    };
    let _ = std::fs::remove_file(trace_json);
    parse::ParseError {
        tool: "dublin-traceroute",
        message: if v6_wrote {
            format!("ran on IPv6 but its output is not parsed; {v4_note}")
        } else {
            format!("IPv6 target refused ({said:?}): this version traces IPv4 only; {v4_note}")
        },
    }
}

fn many_bench(args: &Args, probe: &Path, limited: bool) -> Result<Benchmark> {
    let s = if limited {
        ratelimit::ratelimited_many(args.ratelimit_per_host).context("building ratelimited_many")?
    } else {
        many::many_targets(args.per_host).context("building many_targets")?
    };
    let cap = if limited {
        args.ratelimit_pps
    } else {
        args.pps
    };
    let pause = if limited {
        Duration::from_secs_f64(args.ratelimit_pause.max(0.0))
    } else {
        Duration::ZERO
    };
    let addresses: Vec<Ipv6Addr> = s.destinations.iter().map(|d| d.address).collect();
    let texts: Vec<String> = addresses.iter().map(Ipv6Addr::to_string).collect();
    eprintln!(
        "many targets: {} destinations at 4..7 hops, cap {} packets/s",
        texts.len(),
        cap
    );
    // Warm the routers' neighbour caches for every destination.
    if find("fping").is_some() {
        let mut argv = vec!["fping", "-6", "-q", "-r", "1"];
        argv.extend(texts.iter().map(String::as_str));
        let _ = s.lab.exec_unchecked(PROBE, &argv);
    } else {
        for t in &texts {
            let _ = s
                .lab
                .exec_unchecked(PROBE, &["ping", "-6", "-c", "1", "-W", "1", t]);
        }
    }
    let counter = Counter::install(&s.lab, &addresses)?;
    let list = s.lab.scratch_dir().join("targets.txt");
    std::fs::write(&list, texts.join("\n") + "\n").context("target list")?;
    let pps = cap.to_string();
    let probe = probe.display().to_string();
    let mut ours = strings(&[&probe, "measure", "traceroute"]);
    ours.extend(texts.iter().cloned());
    // Towards rate-limiting routers: one trace at a time (a router is asked once per trace)
    // and a silent hop asked once more, a second later.
    let (q, parallel) = if limited { ("2", "1") } else { ("1", "32") };
    ours.extend(strings(&[
        "-q",
        q,
        "--parallel",
        parallel,
        "--pps",
        &pps,
        "--timeout-ms",
        "60000",
        "--json",
        "--lab-mode",
    ]));
    // The same without the Doubletree stop set: every trace from the first hop.
    let mut no_stop_set = ours.clone();
    no_stop_set.push("--no-stop-set".into());
    // The same without a cap and all at once: what blasting gets.
    let mut blast = strings(&[&probe, "measure", "traceroute"]);
    blast.extend(texts.iter().cloned());
    blast.extend(strings(&[
        "-q",
        "1",
        "--parallel",
        "1024",
        "--timeout-ms",
        "60000",
        "--json",
        "--lab-mode",
    ]));
    let list = list.display().to_string();
    let commands = [
        ours,
        blast,
        no_stop_set,
        strings(&[
            "scamper",
            "-O",
            "json",
            "-p",
            &pps,
            "-c",
            "trace -P icmp-paris",
            "-f",
            &list,
        ]),
    ];
    let tools = [
        Tool::new(
            "sixmap",
            probe.clone(),
            "cargo build --release -p sixmap-probe",
        ),
        Tool::new(
            "sixmap, no cap",
            probe.clone(),
            "cargo build --release -p sixmap-probe",
        ),
        Tool::new(
            "sixmap, no stop set",
            probe.clone(),
            "cargo build --release -p sixmap-probe",
        ),
        Tool::new("scamper", "scamper", "apt-get install scamper"),
    ];
    let metrics = vec![
        Metric {
            name: "complete paths per second".into(),
            better: Better::Higher,
            precision: 2,
        },
        Metric {
            name: "complete paths".into(),
            better: Better::Higher,
            precision: 0,
        },
        Metric {
            name: format!("packets per second sent (cap {cap})"),
            better: Better::Info,
            precision: 1,
        },
        Metric {
            name: "packets sent (nftables)".into(),
            better: Better::Lower,
            precision: 0,
        },
        Metric {
            name: "packets per complete path".into(),
            better: Better::Lower,
            precision: 2,
        },
    ];
    let mut results: Vec<ToolResult> = tools
        .iter()
        .zip(&commands)
        .map(|(t, c)| {
            let mut r = ToolResult::new(t.name, metrics.len());
            r.command = if c.len() > 12 {
                format!(
                    "{} {} {} <{} addresses> {}",
                    c[0],
                    c[1],
                    c[2],
                    texts.len(),
                    c[3 + texts.len()..].join(" ")
                )
            } else {
                shell_line(c)
            };
            r.failure = t.missing();
            r
        })
        .collect();
    for round in 0..args.rounds {
        for i in order(tools.len(), round) {
            if tools[i].missing().is_some() {
                continue;
            }
            results[i].rounds += 1;
            std::thread::sleep(pause);
            let before = counter.read(&s.lab)?;
            let out = run(&s.lab, &commands[i], Duration::from_secs(300))?;
            let packets = counter.read(&s.lab)?.saturating_sub(before);
            let traces = match i {
                0..=2 => parse::sixmap_traceroutes(&out.stdout).map(|(t, _)| t),
                _ => parse::scamper_json(&out.stdout),
            };
            match traces {
                Ok(traces) => {
                    let complete = s
                        .destinations
                        .iter()
                        .filter(|d| {
                            traces
                                .iter()
                                .find(|t| t.destination == Some(IpAddr::V6(d.address)))
                                .is_some_and(|t| hops_correct(&t.hops, &d.hops).1)
                        })
                        .count();
                    let secs = out.wall.as_secs_f64();
                    eprintln!(
                        "  round {round} {:<8} {complete}/{} complete in {secs:.2} s, {packets} packets ({:.1}/s)",
                        tools[i].name,
                        texts.len(),
                        packets as f64 / secs
                    );
                    results[i].values[0].push(complete as f64 / secs);
                    results[i].values[1].push(complete as f64);
                    results[i].values[2].push(packets as f64 / secs);
                    results[i].values[3].push(packets as f64);
                    if complete > 0 {
                        results[i].values[4].push(packets as f64 / complete as f64);
                    }
                }
                Err(e) => {
                    eprintln!("  round {round} {}: {e}", tools[i].name);
                    results[i].failure = Some(format!("{e} {}", tail(&out.stderr)));
                }
            }
        }
    }
    Ok(Benchmark {
        name: format!(
            "many-target traceroute{}, {} destinations, cap {} pps",
            if limited {
                ", rate-limiting routers"
            } else {
                ""
            },
            texts.len(),
            cap
        ),
        metrics,
        tools: results,
    })
}

/// Versions of the tools, as the package manager or the tool says.
fn versions(trip: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for package in [
        "iputils-ping",
        "fping",
        "traceroute",
        "mtr-tiny",
        "scamper",
        "dublin-traceroute",
        "nftables",
    ] {
        let v = Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", package])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|| "not installed".into());
        out.push((package.to_owned(), v));
    }
    let trip_version = Command::new(trip)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "not installed".into());
    out.push(("trippy (crates.io)".into(), trip_version));
    out
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {}", kernel.trim())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(missing) = sixmap_tests::lab::unavailable() {
        bail!("the benchmark needs {missing}");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if !args.no_build {
        // `cargo run -p sixmap-tests` does not build the probe's binary: build it here so the
        // benchmark never measures a stale one.
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "-p",
                "sixmap-probe",
                "--bin",
                "sixmap-probe",
            ])
            .current_dir(workspace())
            .status()
            .context("running cargo build for sixmap-probe (or pass --no-build)")?;
        if !status.success() {
            bail!("cargo build --release -p sixmap-probe failed");
        }
    }
    let probe = exe_dir().join("sixmap-probe");
    if !probe.exists() {
        bail!(
            "{} is missing: cargo build --release -p sixmap-probe",
            probe.display()
        );
    }
    let started = Instant::now();
    let wants = |name: &str| args.only.iter().any(|o| o == name);
    let mut benches = Vec::new();
    if wants("ping") {
        benches.push(ping_bench(&args, &probe)?);
    }
    if wants("trace") {
        benches.push(trace_bench(&args, &probe, false)?);
    }
    if wants("many") {
        benches.push(many_bench(&args, &probe, false)?);
    }
    if wants("ratelimit") {
        benches.push(trace_bench(&args, &probe, true)?);
        benches.push(many_bench(&args, &probe, true)?);
    }
    let table = table::render(&benches);
    println!("{table}");
    let mut report = String::new();
    report.push_str(&format!(
        "Command: `cargo run --release -p sixmap-tests --bin sixmap-bench-peers -- {}`\n\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    report.push_str(&format!(
        "Machine: {}; {} rounds; run took {:.0} s.\n\n",
        machine(),
        args.rounds,
        started.elapsed().as_secs_f64()
    ));
    report.push_str(&table);
    report.push_str("\nCommands (one round each, in the probe's namespace):\n\n");
    for bench in &benches {
        for tool in &bench.tools {
            report.push_str(&format!("- {}: `{}`\n", tool.tool, tool.command));
        }
    }
    report.push_str("\nVersions:\n\n");
    let trip = std::env::var("SIXMAP_BENCH_TRIP").unwrap_or_else(|_| {
        workspace()
            .join(".peers/bin/trip")
            .to_string_lossy()
            .into_owned()
    });
    for (name, version) in versions(&trip) {
        report.push_str(&format!("- {name}: {version}\n"));
    }
    report.push_str(&format!("- sixmap-probe: {}\n", env!("CARGO_PKG_VERSION")));
    eprintln!("\n{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
