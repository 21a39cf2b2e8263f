//! Delivery checks shared by the end-to-end tests that kill collectors and probes: a probe
//! process that may be killed and restarted while its log is kept, and the exactly-once check
//! of what a collector stored against what the probe's log says it produced.

use crate::{
    Collector, ProbeLog, Process, Seq, probe_status, start_probe, stored_results, wait_for,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// A probe process that may be killed and restarted; its logs are kept across restarts.
#[derive(Debug)]
pub struct Probe {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub process: Option<Process>,
    pub log: ProbeLog,
    /// Logs of earlier processes, for failure messages.
    pub history: String,
}

impl Probe {
    /// Starts `sixmap-probe run --config <config>`; `state_dir` is the one the config names.
    pub fn start_new(config: PathBuf, state_dir: PathBuf) -> Self {
        let mut probe = Self {
            config,
            state_dir,
            process: None,
            log: ProbeLog::default(),
            history: String::new(),
        };
        probe.start();
        probe
    }

    pub fn start(&mut self) {
        assert!(self.process.is_none());
        self.process = Some(start_probe(&self.config));
    }

    /// SIGKILL, like a power cut; the log so far is kept.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
            let log = process.log();
            self.log.add(&log);
            self.history.push_str(&log);
        }
    }

    /// Stops the probe as systemd does (SIGTERM): a clean stop flushes the outbox, so what it
    /// shows afterwards is exact. After `kill` an acked result may still show as waiting (its
    /// deletion is not flushed; it is resent and deduplicated).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let clean = process.terminate(Duration::from_secs(20));
            let log = process.log();
            assert!(
                clean,
                "the probe did not stop on SIGTERM within 20 s\n{log}"
            );
            self.log.add(&log);
            self.history.push_str(&log);
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    pub fn logs(&self) -> String {
        let current = self.process.as_ref().map(Process::log).unwrap_or_default();
        let tail: String = format!("{}{current}", self.history)
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!("probe {} log tail:\n{tail}", self.config.display())
    }

    /// The probe's id, once it has enrolled.
    pub fn try_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.state_dir.join("identity.toml")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("probe_id = "))
            .map(|v| v.trim_matches('"').to_owned())
    }

    pub fn id(&self) -> String {
        self.try_id().expect("the probe has enrolled")
    }

    /// Waits until the collector has at least `n` results of this probe.
    pub fn wait_results(&self, collector: &Collector, n: usize) {
        let done = wait_for(Duration::from_secs(60), || {
            let id = self.try_id()?;
            (stored_results(collector, &id).len() >= n).then_some(())
        });
        if done.is_none() {
            panic!(
                "fewer than {n} results stored\n{}\ncollector:\n{}",
                self.logs(),
                collector.process.log()
            );
        }
    }

    pub fn status(&self) -> serde_json::Value {
        probe_status(&self.state_dir).unwrap_or_default()
    }

    /// Waits until this probe's current process is connected with an empty outbox.
    pub fn wait_drained(&self, since: i64, timeout: Duration) {
        let drained = wait_for(timeout, || {
            let s = self.status();
            // The file must come from the new process, written after the restart.
            let fresh = s["updated_at"].as_i64()? > since;
            (fresh
                && s["connected"] == true
                && s["outbox"]["results"] == 0
                && s["outbox"]["loss_records"] == 0)
                .then_some(())
        });
        if drained.is_none() {
            panic!(
                "outbox never drained; status: {:#}\n{}",
                self.status(),
                self.logs()
            );
        }
    }
}

/// At most this many results are committed to the outbox in one batch (one scheduler tick
/// of the tests' task sets), hence at most this many unlogged at a kill.
const MAX_UNLOGGED_COMMIT: u64 = 1000;

/// The collector holds exactly what the probe produced, minus what it dropped, each once; no
/// measurement was stored under two keys. Returns how many results were checked.
pub fn assert_exactly_once(collector: &Collector, probe: &Probe) -> usize {
    let id = probe.id();
    let stored = stored_results(collector, &id);
    let produced = &probe.log.produced;
    let missing: Vec<&Seq> = produced
        .keys()
        .filter(|k| !stored.contains_key(k) && !probe.log.dropped.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} produced results never stored (first: {:?})\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        probe.logs()
    );
    // The probe logs "result produced" right after the outbox commit that made a batch
    // durable, so a SIGKILL between the two leaves durable results that no log line names:
    // the tail of one boot epoch, right after its last logged sequence (or from 1 when the
    // process died before logging any). Those are genuine and may be stored; anything else
    // the log does not name is not.
    let last_logged = |epoch: u64| -> u64 {
        produced
            .range((epoch, 0)..=(epoch, u64::MAX))
            .next_back()
            .map_or(0, |((_, sequence), _)| *sequence)
    };
    let unknown: Vec<&Seq> = stored
        .keys()
        .filter(|k| !produced.contains_key(k))
        .collect();
    let mut unlogged_tail = 0;
    for (epoch, sequence) in &unknown {
        let after = last_logged(*epoch) + 1;
        let contiguous = (after..*sequence).all(|s| stored.contains_key(&(*epoch, s)));
        assert!(
            *sequence >= after && contiguous && *sequence - after < MAX_UNLOGGED_COMMIT,
            "stored result {:?} was never reported as produced and is not the unlogged tail \
             of a killed process ({} such results; the probe logged {}, last {:?})\n{}",
            (epoch, sequence),
            unknown.len(),
            produced.len(),
            produced.keys().next_back(),
            probe.logs()
        );
        unlogged_tail += 1;
    }
    for (key, result) in &stored {
        if let Some(started_at) = produced.get(key) {
            assert_eq!(
                result.started_at, *started_at,
                "result {key:?} stored with another start time"
            );
        }
    }
    let mut measurements = BTreeSet::new();
    for result in stored.values() {
        assert!(
            measurements.insert((result.task_id, result.started_at)),
            "one measurement stored twice: {result:?}"
        );
    }
    eprintln!(
        "probe {id}: {} results produced, {} stored exactly once ({unlogged_tail} of them \
         durable but unlogged when the probe was killed), {} dropped from a full outbox",
        produced.len(),
        stored.len(),
        probe.log.dropped.len()
    );
    stored.len()
}
