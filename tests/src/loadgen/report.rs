//! What a run measured, as a table for people and JSON for machines.

use super::baseline::Baseline;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// The `q`-quantile (0..=1) of sorted values, nearest rank; `None` when empty.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

/// The 1-minute load average, to say how busy the machine was.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A process's cost over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub cpu_seconds: f64,
    pub rss_max_kib: u64,
    pub hwm_kib: u64,
}

impl Cost {
    fn json(&self, seconds: f64) -> Value {
        json!({
            "cpu_seconds": round(self.cpu_seconds),
            "cpu_cores": round(if seconds > 0.0 { self.cpu_seconds / seconds } else { 0.0 }),
            "rss_max_mib": round(self.rss_max_kib as f64 / 1024.0),
            "hwm_mib": round(self.hwm_kib as f64 / 1024.0),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ingest {
    pub backend: String,
    pub probes: usize,
    pub batch_size: usize,
    pub window: usize,
    /// From the first batch sent to the last ack.
    pub seconds: f64,
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    pub batches: u64,
    /// Sorted ack latencies, microseconds.
    pub latencies_us: Vec<u64>,
    pub collector: Option<Cost>,
    pub loadgen: Cost,
    pub baseline: Option<Baseline>,
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
    pub data_dir: Option<String>,
    pub rejection: Option<String>,
}

impl Ingest {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.acked as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn ratio(&self) -> Option<f64> {
        let baseline = self.baseline?.per_second();
        (baseline > 0.0).then(|| self.per_second() / baseline)
    }

    fn latency_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.latencies_us, q).map(|us| us as f64 / 1000.0)
    }

    pub fn json(&self) -> Value {
        json!({
            "mode": "ingest",
            "backend": self.backend,
            "probes": self.probes,
            "batch_size": self.batch_size,
            "window": self.window,
            "seconds": round(self.seconds),
            "sent": self.sent,
            "acked": self.acked,
            "rejected": self.rejected,
            "first_rejection": self.rejection,
            "batches": self.batches,
            "results_per_second": self.per_second().round(),
            "ack_latency_ms": {
                "p50": self.latency_ms(0.5),
                "p99": self.latency_ms(0.99),
                "max": self.latency_ms(1.0),
            },
            "collector": self.collector.map(|c| c.json(self.seconds)),
            "loadgen": self.loadgen.json(self.seconds),
            "baseline": self.baseline.map(|b| json!({
                "store": "raw sled, one writer, flush per batch",
                "results": b.results,
                "batches": b.batches,
                "bytes": b.bytes,
                "seconds": round(b.seconds),
                "results_per_second": b.per_second().round(),
            })),
            "ratio_collector_to_raw_sled": self.ratio().map(round),
            "load_average_1m": { "before": self.load_before, "after": self.load_after },
            "data_dir": self.data_dir,
        })
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
        let _ = writeln!(
            out,
            "sixmap-loadgen ingest: {} probes, batches of {}, window {}, store {}",
            self.probes, self.batch_size, self.window, self.backend
        );
        let rows: Vec<(&str, String)> = vec![
            (
                "results acked",
                format!(
                    "{} of {} sent ({} rejected)",
                    self.acked, self.sent, self.rejected
                ),
            ),
            (
                "duration",
                format!("{:.1} s (first batch to last ack)", self.seconds),
            ),
            ("results/s acked", format!("{:.0}", self.per_second())),
            ("ack latency p50", ms(self.latency_ms(0.5))),
            ("ack latency p99", ms(self.latency_ms(0.99))),
            ("ack latency max", ms(self.latency_ms(1.0))),
        ];
        let mut rows = rows;
        if let Some(c) = self.collector {
            rows.push((
                "collector CPU",
                format!(
                    "{:.1} s ({:.2} cores)",
                    c.cpu_seconds,
                    c.cpu_seconds / self.seconds.max(1e-9)
                ),
            ));
            rows.push((
                "collector RSS",
                format!(
                    "max {:.0} MiB during the run, peak (VmHWM) {:.0} MiB",
                    c.rss_max_kib as f64 / 1024.0,
                    c.hwm_kib as f64 / 1024.0
                ),
            ));
        }
        rows.push((
            "loadgen CPU",
            format!(
                "{:.1} s ({:.2} cores)",
                self.loadgen.cpu_seconds,
                self.loadgen.cpu_seconds / self.seconds.max(1e-9)
            ),
        ));
        if let Some(b) = self.baseline {
            rows.push((
                "raw sled baseline",
                format!(
                    "{:.0} results/s ({} results in batches of {}, flush each, {:.1} s)",
                    b.per_second(),
                    b.results,
                    self.batch_size,
                    b.seconds
                ),
            ));
        }
        if let Some(ratio) = self.ratio() {
            rows.push(("ratio collector / raw sled", format!("{ratio:.2}")));
        }
        rows.push((
            "load average (1 min)",
            format!(
                "{} before, {} after",
                self.load_before.map_or("-".into(), |l| format!("{l:.2}")),
                self.load_after.map_or("-".into(), |l| format!("{l:.2}"))
            ),
        ));
        if let Some(reason) = &self.rejection {
            rows.push(("first rejection", reason.clone()));
        }
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<28} {value}");
        }
        out
    }
}

/// Collector memory after a number of sessions were open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleStep {
    pub sessions: usize,
    pub rss_kib: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Idle {
    pub backend: String,
    pub wanted: usize,
    /// Sessions open at the end of the hold.
    pub held: usize,
    /// Sessions opened at all (some may have ended during the hold).
    pub opened: usize,
    pub failed: usize,
    pub first_failure: Option<String>,
    pub hold_seconds: f64,
    pub connect_seconds: f64,
    /// Collector RSS before any session.
    pub rss_base_kib: u64,
    pub steps: Vec<IdleStep>,
    pub collector: Option<Cost>,
    pub loadgen: Cost,
}

impl Idle {
    /// Collector memory per 1000 sessions over its memory before any: the last step's.
    pub fn kib_per_1000(&self) -> Option<f64> {
        let last = self.steps.last()?;
        (last.sessions > 0).then(|| {
            last.rss_kib.saturating_sub(self.rss_base_kib) as f64 * 1000.0 / last.sessions as f64
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "mode": "idle",
            "backend": self.backend,
            "wanted": self.wanted,
            "opened": self.opened,
            "held": self.held,
            "failed": self.failed,
            "first_failure": self.first_failure,
            "connect_seconds": round(self.connect_seconds),
            "hold_seconds": round(self.hold_seconds),
            "collector_rss_base_mib": round(self.rss_base_kib as f64 / 1024.0),
            "collector_rss_mib_per_1000_sessions": self.kib_per_1000().map(|k| round(k / 1024.0)),
            "steps": self.steps.iter().map(|s| json!({
                "sessions": s.sessions,
                "collector_rss_mib": round(s.rss_kib as f64 / 1024.0),
            })).collect::<Vec<_>>(),
            "collector": self.collector.map(|c| c.json(self.connect_seconds + self.hold_seconds)),
            "loadgen": self.loadgen.json(self.connect_seconds + self.hold_seconds),
        })
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "sixmap-loadgen idle: {} sessions wanted, store {}",
            self.wanted, self.backend
        );
        let _ = writeln!(out, "  {:>9}  {:>17}", "sessions", "collector RSS MiB");
        let _ = writeln!(
            out,
            "  {:>9}  {:>17.0}",
            0,
            self.rss_base_kib as f64 / 1024.0
        );
        for step in &self.steps {
            let _ = writeln!(
                out,
                "  {:>9}  {:>17.0}",
                step.sessions,
                step.rss_kib as f64 / 1024.0
            );
        }
        let mut rows = vec![
            (
                "sessions held",
                format!(
                    "{} of {} wanted after {:.0} s of heartbeats ({} opened, {} failed to open)",
                    self.held, self.wanted, self.hold_seconds, self.opened, self.failed
                ),
            ),
            ("time to open", format!("{:.1} s", self.connect_seconds)),
            (
                "collector RSS per 1000",
                self.kib_per_1000()
                    .map_or("-".into(), |k| format!("{:.1} MiB", k / 1024.0)),
            ),
        ];
        if let Some(c) = self.collector {
            rows.push((
                "collector peak (VmHWM)",
                format!(
                    "{:.0} MiB, CPU {:.1} s",
                    c.hwm_kib as f64 / 1024.0,
                    c.cpu_seconds
                ),
            ));
        }
        rows.push((
            "loadgen",
            format!(
                "RSS max {:.0} MiB, CPU {:.1} s",
                self.loadgen.rss_max_kib as f64 / 1024.0,
                self.loadgen.cpu_seconds
            ),
        ));
        if let Some(reason) = &self.first_failure {
            rows.push(("first failure", reason.clone()));
        }
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<28} {value}");
        }
        out
    }
}

pub fn baseline_table(b: &Baseline, batch_size: usize) -> String {
    format!(
        "sixmap-loadgen baseline: raw sled, one writer, batches of {batch_size}, flush after each\n  \
         {:<28} {}\n  {:<28} {:.1} s\n  {:<28} {:.0}\n",
        "results",
        b.results,
        "duration",
        b.seconds,
        "results/s",
        b.per_second()
    )
}

pub fn baseline_json(b: &Baseline, batch_size: usize) -> Value {
    json!({
        "mode": "baseline",
        "store": "raw sled, one writer, flush per batch",
        "batch_size": batch_size,
        "results": b.results,
        "batches": b.batches,
        "bytes": b.bytes,
        "seconds": round(b.seconds),
        "results_per_second": b.per_second().round(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), Some(50));
        assert_eq!(quantile(&values, 0.99), Some(99));
        assert_eq!(quantile(&values, 1.0), Some(100));
        assert_eq!(quantile(&values, 0.0), Some(1));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.99), Some(7));
    }

    #[test]
    fn ratio_needs_a_baseline() {
        let mut run = Ingest {
            backend: "sled".into(),
            probes: 1,
            batch_size: 10,
            window: 1,
            seconds: 2.0,
            sent: 200,
            acked: 200,
            rejected: 0,
            batches: 20,
            latencies_us: vec![1000, 2000],
            collector: None,
            loadgen: Cost::default(),
            baseline: None,
            load_before: None,
            load_after: None,
            data_dir: None,
            rejection: None,
        };
        assert_eq!(run.ratio(), None);
        run.baseline = Some(Baseline {
            results: 400,
            batches: 40,
            bytes: 1,
            seconds: 1.0,
        });
        assert_eq!(run.per_second(), 100.0);
        assert_eq!(run.ratio(), Some(0.25));
        assert_eq!(run.json()["acked"], 200);
        assert!(run.table().contains("ratio collector / raw sled"));
    }
}
