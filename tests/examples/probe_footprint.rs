//! Probe footprint benchmark: memory, CPU and throughput of a real release `sixmap-probe`
//! connected to a real `sixmap-collector` on loopback. Prints figures; asserts nothing about
//! timing.
//!
//! Reproduce (about two minutes; the release build takes a few minutes the first time):
//!
//! ```text
//! cargo build --release -p sixmap-probe -p sixmap-collector && cargo run --release -p sixmap-tests --example probe_footprint
//! ```
//!
//! Append `-- --tasks N` to assign N ping tasks instead of 100 in the periodic phases, and
//! `--patience N` to wait N times longer for enrolment, connection and the first result (a
//! probe under valgrind: deploy/probe-link-order.sh).
//!
//! Phases, each with a fresh collector, a fresh probe and fresh state directories:
//! - idle: the collector assigns no task; once the probe is enrolled and connected it settles
//!   10 s, then is sampled over 20 s;
//! - N (100) ping tasks to ::1 every 1 s (count 1, payload sizes 10, 11, ... so that the tasks
//!   are distinct), i.e. N measurements/s; once results reach the collector it settles 10 s,
//!   then is sampled over 30 s;
//! - the same N tasks every 10 s (N/10 measurements/s, in bursts), sampled over 20 s.
//!
//! A phase that fails (e.g. no result reaches the collector within 20 s) is shown as FAILED in
//! the table, the other phases still run, the end of both processes' logs is printed to
//! stderr, and the program exits with status 1.
//!
//! Figures: RSS is the mean of `VmRSS` sampled every second in the window, peak is `VmHWM`
//! (the process's high-water mark since it started) at the end of the window, CPU is
//! utime + stime from `/proc/<pid>/stat` over the window as a percentage of one core, results/s
//! counts results the collector stored during the window (via `/api/v1/results`), disk is the
//! probe's `write_bytes` from `/proc/<pid>/io` (mostly its outbox). The collector's own figures
//! are printed below the probe's.
//!
//! The probe is started by this program rather than by the harness's `start_probe`, which
//! sets `RUST_LOG=...sixmap_probe=debug` (a debug line per result would inflate the CPU
//! figure); here it runs with `RUST_LOG=info`, the default a deployed probe has. The
//! collector comes from the harness (`Collector::start`) and logs at debug level.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark may fail loudly

use sixmap_tests::{Collector, binary, wait_for};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Log filter of the probe under test: what a deployed probe runs with.
const PROBE_LOG: &str = "info";
const HEARTBEAT_INTERVAL_S: u64 = 30;
const MIB: f64 = 1024.0 * 1024.0;

/// A probe process started with the production log level; killed on drop.
#[derive(Debug)]
struct Probe {
    child: Child,
    log: PathBuf,
    state_dir: PathBuf,
}

impl Probe {
    fn start(config: &Path, state_dir: &Path) -> Self {
        let dir = config.parent().expect("config in a directory");
        let log = dir.join("sixmap-probe.log");
        let stderr = std::fs::File::create(&log).expect("create probe log");
        let child = Command::new(binary("sixmap-probe"))
            .args(["run", "--config", config.to_str().expect("utf-8 path")])
            .env("RUST_LOG", PROBE_LOG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sixmap-probe: {e}"));
        Self {
            child,
            log,
            state_dir: state_dir.to_owned(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The daemon's own `status.json` (rewritten every 2 s), if readable.
    fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.state_dir.join("status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

/// A phase's failure: what went wrong, then the end of both processes' logs.
fn failure(what: &str, probe: &Probe, collector: &Collector) -> String {
    let probe_log = probe.log();
    let mut hints = String::new();
    if !probe_log.contains("task assigned") {
        let connected = probe.status().map(|s| s["connected"].clone());
        write!(
            hints,
            "\n(the probe logged no `task assigned`; its status.json says connected = {})",
            connected.map_or_else(|| "unknown".into(), |c| c.to_string())
        )
        .expect("write to String");
    }
    format!(
        "{what}{hints}\n--- probe log (last 40 lines) ---\n{}\n--- collector log (last 40 lines) ---\n{}",
        tail(&probe_log, 40),
        tail(&collector.process.log(), 40)
    )
}

/// Pid of our child process running `program` with `arg` among its arguments. The harness's
/// `Process` does not expose its pid, so the collector is found through `/proc`.
fn find_child_pid(program: &str, arg: &str) -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let runs_program = args
                .first()
                .is_some_and(|a| String::from_utf8_lossy(a).ends_with(program));
            let has_arg = args.contains(&arg.as_bytes());
            (runs_program && has_arg && parent_pid(pid) == Some(me)).then_some(pid)
        })
}

/// Fields of `/proc/<pid>/stat` after the command name, which may contain spaces: the first
/// one returned is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn stat_field(fields: &[String], number: usize) -> Option<u64> {
    fields.get(number.checked_sub(3)?)?.parse().ok()
}

fn parent_pid(pid: u32) -> Option<u32> {
    let fields = stat_fields(pid)?;
    stat_field(&fields, 4).and_then(|p| u32::try_from(p).ok())
}

/// utime + stime (fields 14 and 15), in clock ticks, of all the process's threads.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    Some(stat_field(&fields, 14)? + stat_field(&fields, 15)?)
}

/// A `kB` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let kib: u64 = line
            .strip_prefix(key)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib * 1024)
    })
}

/// Bytes the process caused to be written to storage (`write_bytes` of `/proc/<pid>/io`).
fn write_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

fn now_micros() -> u64 {
    u64::try_from(sixmap_shared::UnixMicros::now().0).expect("clock after 1970")
}

/// What one process did during a window.
#[derive(Debug, Default, Clone)]
struct Usage {
    rss_mean: f64,
    rss_max: u64,
    peak: u64,
    cpu_percent: f64,
    disk_write_bytes_per_s: Option<f64>,
}

/// Samples `pid` once a second over `window`; `alive` is checked at every sample.
#[derive(Debug)]
struct Sampler {
    pid: u32,
    ticks0: u64,
    writes0: Option<u64>,
    rss: Vec<u64>,
}

impl Sampler {
    fn start(pid: u32) -> Option<Self> {
        Some(Self {
            pid,
            ticks0: cpu_ticks(pid)?,
            writes0: write_bytes(pid),
            rss: Vec::new(),
        })
    }

    fn sample(&mut self) -> Option<()> {
        self.rss.push(status_bytes(self.pid, "VmRSS")?);
        Some(())
    }

    fn finish(self, elapsed: Duration, ticks_per_s: u64) -> Option<Usage> {
        let ticks = cpu_ticks(self.pid)?.saturating_sub(self.ticks0);
        let secs = elapsed.as_secs_f64();
        let writes = self
            .writes0
            .zip(write_bytes(self.pid))
            .map(|(a, b)| b.saturating_sub(a) as f64 / secs);
        let rss_mean = if self.rss.is_empty() {
            0.0
        } else {
            self.rss.iter().sum::<u64>() as f64 / self.rss.len() as f64
        };
        Some(Usage {
            rss_mean,
            rss_max: self.rss.iter().copied().max().unwrap_or(0),
            peak: status_bytes(self.pid, "VmHWM")?,
            cpu_percent: ticks as f64 / ticks_per_s as f64 / secs * 100.0,
            disk_write_bytes_per_s: writes,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Tasks {
    count: usize,
    every_s: u64,
}

#[derive(Debug)]
struct PhaseSpec {
    name: String,
    slug: &'static str,
    tasks: Option<Tasks>,
    settle: Duration,
    window: Duration,
}

#[derive(Debug)]
struct PhaseResult {
    name: String,
    probe: Usage,
    collector: Usage,
    window: Duration,
    /// Results stored by the collector during the window, per second (None when idle).
    results_per_s: Option<f64>,
    expected_per_s: Option<f64>,
    /// Remarks worth reading: failed measurements, backlog, capped counts.
    notes: Vec<String>,
}

fn collector_config(tasks: Option<Tasks>) -> String {
    let mut toml = format!("heartbeat_interval_s = {HEARTBEAT_INTERVAL_S}\n");
    if let Some(tasks) = tasks {
        for i in 0..tasks.count {
            // Distinct payload sizes make distinct tasks; 10 is the smallest size allowed.
            write!(
                toml,
                "\n[[ping_tasks]]\ntargets = [\"::1\"]\nevery_s = {}\ncount = 1\n\
                 interval_ms = 1000\ntimeout_ms = 2000\nsize = {}\n",
                tasks.every_s,
                10 + i
            )
            .expect("write to String");
        }
    }
    toml
}

/// The probe's packets per minute for a phase: what its tasks send with room to spare, so the
/// phase measures pings rather than the budget refusing them (the default, 600 a minute, is
/// a tenth of 100 pings/s).
fn packet_budget(tasks: Option<Tasks>) -> u64 {
    let per_minute = tasks.map_or(0, |t| t.count as u64 * 60 / t.every_s.max(1));
    (per_minute * 2).clamp(600, 60_000)
}

/// Results of `probe` stored so far (newest first, at most 10 000).
fn stored_results(collector: &Collector, probe_id: &str) -> Vec<serde_json::Value> {
    let body = collector.get_json(&format!("/api/v1/results?probe={probe_id}&limit=10000"));
    body["results"].as_array().cloned().unwrap_or_default()
}

fn run_phase(
    work: &Path,
    spec: &PhaseSpec,
    ticks_per_s: u64,
    patience: u32,
) -> Result<PhaseResult, String> {
    eprintln!("phase {:?}: starting", spec.name);
    let dir = work.join(spec.slug);
    std::fs::create_dir_all(&dir).expect("create phase directory");
    let collector_toml = dir.join("collector.toml");
    std::fs::write(&collector_toml, collector_config(spec.tasks)).expect("write collector.toml");
    let data = dir.join("collector-data");
    let data_text = data.to_str().expect("utf-8 path").to_owned();
    let collector = Collector::start(
        &data,
        &["--config", collector_toml.to_str().expect("utf-8 path")],
    );

    let state_dir = dir.join("probe-state");
    let probe_toml = dir.join("probe.toml");
    std::fs::write(
        &probe_toml,
        format!(
            "collector = \"{}\"\nstate_dir = {:?}\nenrollment_token = \"{}\"\n\
             hostname = \"footprint\"\nlab_mode = true\npacket_budget_per_minute = {}\n",
            collector.url(),
            state_dir,
            collector.enrollment_token("footprint"),
            packet_budget(spec.tasks)
        ),
    )
    .expect("write probe.toml");
    let mut probe = Probe::start(&probe_toml, &state_dir);

    // Enrolled, then connected (a hello sets last_seen).
    let probe_id = wait_for(Duration::from_secs(30) * patience, || {
        let probes = collector.get_json("/api/v1/probes");
        let p = &probes[0];
        (!p["last_seen"].is_null())
            .then(|| p["id"].as_str().map(str::to_owned))
            .flatten()
    })
    .ok_or_else(|| failure("probe never enrolled and connected", &probe, &collector))?;

    if spec.tasks.is_some() {
        wait_for(Duration::from_secs(20) * patience, || {
            let body = collector.get_json("/api/v1/results?limit=1");
            (body["count"].as_u64() > Some(0)).then_some(())
        })
        .ok_or_else(|| failure("no results reached the collector", &probe, &collector))?;
    }
    std::thread::sleep(spec.settle);
    if let Some(status) = probe.exited() {
        return Err(failure(
            &format!("probe exited during warm-up: {status}"),
            &probe,
            &collector,
        ));
    }

    let collector_pid = find_child_pid("sixmap-collector", &data_text)
        .ok_or_else(|| failure("collector process not found in /proc", &probe, &collector))?;
    let before = spec
        .tasks
        .map(|_| stored_results(&collector, &probe_id).len());
    let started = Instant::now();
    let mut probe_sampler = Sampler::start(probe.pid())
        .ok_or_else(|| failure("cannot read the probe's /proc entry", &probe, &collector))?;
    let mut collector_sampler = Sampler::start(collector_pid).ok_or_else(|| {
        failure(
            "cannot read the collector's /proc entry",
            &probe,
            &collector,
        )
    })?;
    let deadline = started + spec.window;
    loop {
        if let Some(status) = probe.exited() {
            return Err(failure(
                &format!("probe exited during the window: {status}"),
                &probe,
                &collector,
            ));
        }
        probe_sampler
            .sample()
            .ok_or_else(|| failure("probe vanished during the window", &probe, &collector))?;
        collector_sampler
            .sample()
            .ok_or_else(|| failure("collector vanished during the window", &probe, &collector))?;
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_secs(1)));
    }
    let elapsed = started.elapsed();
    let probe_usage = probe_sampler.finish(elapsed, ticks_per_s).ok_or_else(|| {
        failure(
            "probe vanished at the end of the window",
            &probe,
            &collector,
        )
    })?;
    let collector_usage = collector_sampler
        .finish(elapsed, ticks_per_s)
        .ok_or_else(|| {
            failure(
                "collector vanished at the end of the window",
                &probe,
                &collector,
            )
        })?;

    let mut notes = Vec::new();
    let mut results_per_s = None;
    if let Some(before) = before {
        let after = stored_results(&collector, &probe_id);
        if after.len() >= 10_000 {
            notes.push("stored-result count capped at 10 000: results/s is a lower bound".into());
        }
        let new = after.len().saturating_sub(before);
        results_per_s = Some(new as f64 / elapsed.as_secs_f64());
        // The newest `new` results are the ones stored during the window.
        let window_results = after.get(..new).unwrap_or_default();
        let failed = |r: &&serde_json::Value| {
            let o = &r["outcome"];
            o["kind"] != "ping" || o["received"] != o["sent"]
        };
        let not_ok = window_results.iter().filter(failed).count();
        if not_ok > 0 {
            let example = window_results
                .iter()
                .find(failed)
                .map(|r| r["outcome"].to_string())
                .unwrap_or_default();
            notes.push(format!(
                "{not_ok} of {new} results in the window failed or lost replies, e.g. {example}"
            ));
        }
        if let Some(newest) = after.first().and_then(|r| r["started_at"].as_u64()) {
            let lag = now_micros().saturating_sub(newest) as f64 / 1e6;
            if lag > 3.0 {
                notes.push(format!(
                    "newest stored result started {lag:.1} s before the end of the window"
                ));
            }
        }
    }
    if let Some(status) = probe.status() {
        let pending = status["outbox"]["results"].as_u64().unwrap_or(0);
        let evicted = status["outbox"]["evicted_since_start"]
            .as_u64()
            .unwrap_or(0);
        if status["connected"] != true {
            notes.push(format!(
                "probe status says not connected: {}",
                status["last_error"]
            ));
        }
        if pending > 200 || evicted > 0 {
            notes.push(format!(
                "probe outbox at the end: {pending} results pending, {} bytes, {evicted} evicted",
                status["outbox"]["bytes"]
            ));
        }
    }
    let expected_per_s = spec.tasks.map(|t| t.count as f64 / t.every_s as f64);
    eprintln!("phase {:?}: done", spec.name);
    Ok(PhaseResult {
        name: spec.name.clone(),
        probe: probe_usage,
        collector: collector_usage,
        window: elapsed,
        results_per_s,
        expected_per_s,
        notes,
    })
}

/// How many of the functions in `probe/link-order.txt` the probe binary has: the list is made
/// for one compiler and profile (deploy/probe-link-order.sh), and the names it misses are laid
/// out anywhere, which shows in the idle RSS before anything else.
fn link_order_coverage() -> String {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probe/link-order.txt");
    let Ok(list) = std::fs::read_to_string(&list) else {
        return format!("{} is missing", list.display());
    };
    let symbols = match Command::new("nm")
        .arg("--defined-only")
        .arg(binary("sixmap-probe"))
        .output()
    {
        Ok(out) if out.status.success() => out.stdout,
        Ok(out) => return format!("nm failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => return format!("cannot run nm (install binutils): {e}"),
    };
    let symbols = String::from_utf8_lossy(&symbols);
    let present: std::collections::HashSet<&str> = symbols
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    let wanted: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
    let found = wanted.iter().filter(|name| present.contains(*name)).count();
    let share = found as f64 * 100.0 / wanted.len().max(1) as f64;
    let advice = if share < 90.0 {
        " (stale: rerun deploy/probe-link-order.sh)"
    } else {
        ""
    };
    format!(
        "{found} of {} listed functions in the binary ({share:.0} %){advice}",
        wanted.len()
    )
}

/// Unstripped and stripped size of a release binary; the stripped one is None when `strip`
/// is unavailable or fails (the reason is returned instead).
fn binary_sizes(name: &str, scratch: &Path) -> (u64, Result<u64, String>) {
    let original = binary(name);
    let size = std::fs::metadata(&original).expect("binary metadata").len();
    let copy = scratch.join(name);
    std::fs::copy(&original, &copy).expect("copy binary");
    let stripped = match Command::new("strip").arg(&copy).output() {
        Ok(out) if out.status.success() => Ok(std::fs::metadata(&copy).expect("metadata").len()),
        Ok(out) => Err(format!(
            "strip failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("`strip` not found (install binutils)".into())
        }
        Err(e) => Err(format!("cannot run strip: {e}")),
    };
    (size, stripped)
}

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / MIB)
}

/// Command-line options.
#[derive(Clone, Copy, Debug)]
struct Options {
    /// Ping tasks of the periodic phases.
    tasks: usize,
    /// Multiplies the waits for enrolment, connection and the first result: a probe run
    /// under valgrind (deploy/probe-link-order.sh) starts tens of times slower.
    patience: u32,
}

fn options() -> Options {
    const USAGE: &str = "usage: probe_footprint [--tasks N (1..=1000, default 100)] [--patience N (1..=100, default 1)]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options {
        tasks: 100,
        patience: 1,
    };
    for pair in args.chunks(2) {
        let [flag, n] = pair else { panic!("{USAGE}") };
        let number = |range: std::ops::RangeInclusive<usize>| {
            n.parse()
                .ok()
                .filter(|n| range.contains(n))
                .unwrap_or_else(|| panic!("{flag} takes a number in {range:?}, not {n:?}; {USAGE}"))
        };
        match flag.as_str() {
            "--tasks" => options.tasks = number(1..=1000),
            "--patience" => options.patience = u32::try_from(number(1..=100)).unwrap_or(1),
            _ => panic!("{USAGE}"),
        }
    }
    options
}

fn main() {
    let started = Instant::now();
    let options = options();
    let task_count = options.tasks;
    let work = tempfile::tempdir().expect("temporary directory");
    let ticks_per_s = clock_ticks_per_second();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let periodic = |every_s: u64, window_s: u64| PhaseSpec {
        name: format!("{task_count} ping tasks every {every_s} s"),
        slug: if every_s == 1 {
            "every-1s"
        } else {
            "every-10s"
        },
        tasks: Some(Tasks {
            count: task_count,
            every_s,
        }),
        settle: Duration::from_secs(10),
        window: Duration::from_secs(window_s),
    };
    let phases = [
        PhaseSpec {
            name: "idle (connected, no tasks)".into(),
            slug: "idle",
            tasks: None,
            settle: Duration::from_secs(10),
            window: Duration::from_secs(20),
        },
        periodic(1, 30),
        periodic(10, 20),
    ];
    let outcomes: Vec<(String, Result<PhaseResult, String>)> = phases
        .iter()
        .map(|spec| {
            let outcome = run_phase(work.path(), spec, ticks_per_s, options.patience);
            (spec.name.clone(), outcome)
        })
        .collect();
    let results: Vec<&PhaseResult> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let failures: Vec<(&String, &String)> = outcomes
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| (name, e)))
        .collect();

    let scratch = work.path().join("binaries");
    std::fs::create_dir_all(&scratch).expect("create scratch directory");
    let sizes: Vec<_> = ["sixmap-probe", "sixmap-collector"]
        .iter()
        .map(|name| (*name, binary_sizes(name, &scratch)))
        .collect();

    let disk = |u: &Usage| {
        u.disk_write_bytes_per_s
            .map_or_else(|| "n/a".to_owned(), |b| format!("{:.0}", b / 1024.0))
    };
    println!();
    println!(
        "sixmap probe footprint (release build, this machine: {cores} cores, CLK_TCK {ticks_per_s}, \
         probe RUST_LOG={PROBE_LOG}, heartbeat {HEARTBEAT_INTERVAL_S} s)"
    );
    println!(
        "{:<28} {:>8} {:>9} {:>16} {:>10} {:>10} {:>11}",
        "phase (probe)",
        "RSS MiB",
        "peak MiB",
        "CPU % of a core",
        "results/s",
        "expected/s",
        "disk KiB/s"
    );
    for (name, outcome) in &outcomes {
        match outcome {
            Ok(r) => println!(
                "{:<28} {:>8} {:>9} {:>16.2} {:>10} {:>10} {:>11}",
                r.name,
                mib(r.probe.rss_mean),
                mib(r.probe.peak as f64),
                r.probe.cpu_percent,
                r.results_per_s.map_or("-".into(), |v| format!("{v:.1}")),
                r.expected_per_s.map_or("-".into(), |v| format!("{v:.1}")),
                disk(&r.probe),
            ),
            Err(e) => println!(
                "{name:<28} FAILED: {}",
                e.lines().next().unwrap_or_default()
            ),
        }
    }
    println!(
        "{:<28} {:>8} {:>9} {:>16}",
        "same phase (collector)", "RSS MiB", "peak MiB", "CPU % of a core"
    );
    for r in &results {
        println!(
            "{:<28} {:>8} {:>9} {:>16.2}",
            r.name,
            mib(r.collector.rss_mean),
            mib(r.collector.peak as f64),
            r.collector.cpu_percent,
        );
    }
    for (name, (size, stripped)) in &sizes {
        let stripped = match stripped {
            Ok(s) => format!("stripped {} MiB", mib(*s as f64)),
            Err(reason) => reason.clone(),
        };
        println!("binary  {name:<17} {} MiB ({stripped})", mib(*size as f64));
    }
    println!("link order of sixmap-probe: {}", link_order_coverage());
    println!(
        "RSS: mean of 1 s samples over the window; peak: VmHWM since the process started; \
         windows: {}",
        results
            .iter()
            .map(|r| format!("{:.0} s", r.window.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in &results {
        let mut notes = r.notes.clone();
        if (r.probe.rss_max as f64 - r.probe.rss_mean) > MIB {
            notes.push(format!(
                "probe RSS max sample {} MiB",
                mib(r.probe.rss_max as f64)
            ));
        }
        for note in notes {
            println!("note [{}]: {note}", r.name);
        }
    }
    println!("total run time {:.0} s", started.elapsed().as_secs_f64());
    if !failures.is_empty() {
        for (name, failure) in &failures {
            eprintln!("\n=== phase {name:?} failed: {failure}");
        }
        drop(work);
        // In main, after the work directory is gone: a benchmark failure must fail the run.
        #[allow(clippy::disallowed_methods)]
        std::process::exit(1);
    }
}
