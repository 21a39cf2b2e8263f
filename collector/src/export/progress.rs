//! The export CLI's progress on stderr: a line redrawn at most five times a second when
//! stderr is a terminal (rows or bytes so far, rate, elapsed), and always a final summary.

use super::ExportStats;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    live: bool,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }
}

impl Progress {
    pub fn new(live: bool) -> Self {
        Self {
            live,
            started: Instant::now(),
            last_draw: None,
        }
    }

    fn due(&mut self) -> bool {
        if !self.live {
            return false;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|last| now - last < Duration::from_millis(200))
        {
            return false;
        }
        self.last_draw = Some(now);
        true
    }

    /// Local export: rows written so far.
    pub fn rows(&mut self, stats: &ExportStats) {
        if self.due() {
            let seconds = self.started.elapsed().as_secs_f64();
            let rate = stats.rows as f64 / seconds.max(1e-3);
            eprint!(
                "\r\x1b[K{} rows  {:.0} rows/s  {:.1} s",
                stats.rows, rate, seconds
            );
            let _ = std::io::stderr().flush();
        }
    }

    /// Remote export: bytes received so far (rows are counted by the collector).
    pub fn bytes(&mut self, bytes: u64) {
        if self.due() {
            let seconds = self.started.elapsed().as_secs_f64();
            let mb = bytes as f64 / 1e6;
            eprint!(
                "\r\x1b[K{mb:.1} MB  {:.1} MB/s  {seconds:.1} s",
                mb / seconds.max(1e-3)
            );
            let _ = std::io::stderr().flush();
        }
    }

    /// The final line, printed whether or not stderr is a terminal.
    pub fn finish(&mut self, stats: &ExportStats) {
        if self.live && self.last_draw.is_some() {
            eprint!("\r\x1b[K");
        }
        eprintln!("{}", summary(stats, self.started.elapsed()));
    }
}

impl Progress {
    /// The final line when the collector's counts did not arrive.
    pub fn finish_uncounted(&mut self) {
        if self.live && self.last_draw.is_some() {
            eprint!("\r\x1b[K");
        }
        eprintln!(
            "exported ? rows (the collector's counts did not arrive: a proxy dropping HTTP \
             trailers?) in {:.1} s",
            self.started.elapsed().as_secs_f64()
        );
    }
}

pub fn summary(stats: &ExportStats, elapsed: Duration) -> String {
    format!(
        "exported {} rows (skipped {} without an Atlas form) in {:.1} s",
        stats.rows,
        stats.skipped,
        elapsed.as_secs_f64()
    )
}
