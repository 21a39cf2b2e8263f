//! A campaign report as PDF: the HTML report ([`super::report::to_html`], made for print:
//! A4 page rule, print CSS, inline SVG charts) printed by headless Chromium
//! (`--print-to-pdf`). Chromium lays the page out exactly as the browser shows it, fonts and
//! right-to-left text included, which a PDF writer of our own would have to redo; the cost is
//! an external program, so every run is bounded:
//!
//! - one at a time per process (a second request gets [`PdfError::Busy`], 503 with
//!   Retry-After; the HTTP routes also hold a permit of the long-response budget,
//!   `limits::streams`);
//! - a deadline ([`DEFAULT_TIMEOUT`]); past it the job is killed;
//! - Chromium runs in its own process group, killed whole when the job ends or is dropped
//!   (a client that goes away drops its handler's future, and with it the job);
//! - a private temporary directory (0700) for the page, the PDF and Chromium's profile,
//!   removed afterwards;
//! - no Chromium installed: [`PdfError::Unavailable`] (503 naming the package to install).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Where Chromium is looked for, in this order (Debian's package first).
pub const CHROMIUM_PATHS: [&str; 3] = [
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
];

/// A report prints in about a second; more than this is a stuck browser.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest PDF read back: a report is tens of kilobytes; anything near this is broken.
const MAX_PDF_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error(
        "PDF reports need Chromium, which this collector does not have (install the \
         `chromium` package); the HTML report prints to PDF from any browser"
    )]
    Unavailable,
    #[error("another PDF report is being made; retry shortly")]
    Busy,
    #[error("the PDF was not made within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("Chromium failed to print the report: {0}")]
    Failed(String),
    #[error("PDF report: {0}")]
    Io(#[from] std::io::Error),
}

/// Makes PDFs, one at a time.
#[derive(Debug, Clone)]
pub struct PdfMaker {
    chromium: Option<PathBuf>,
    timeout: Duration,
    one_at_a_time: Arc<Semaphore>,
}

impl Default for PdfMaker {
    /// The first of [`CHROMIUM_PATHS`] that exists, looked up now.
    fn default() -> Self {
        let chromium = CHROMIUM_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        Self::with_program(chromium, DEFAULT_TIMEOUT)
    }
}

impl PdfMaker {
    /// A maker running `program` (called as Chromium would be), or none (unavailable).
    pub fn with_program(program: Option<PathBuf>, timeout: Duration) -> Self {
        Self {
            chromium: program,
            timeout,
            one_at_a_time: Arc::new(Semaphore::new(1)),
        }
    }

    pub fn available(&self) -> bool {
        self.chromium.is_some()
    }

    /// `html` printed to PDF. Dropping the future kills the job.
    pub async fn render(&self, html: &str) -> Result<Vec<u8>, PdfError> {
        let Some(chromium) = &self.chromium else {
            return Err(PdfError::Unavailable);
        };
        let _one = self
            .one_at_a_time
            .clone()
            .try_acquire_owned()
            .map_err(|_| PdfError::Busy)?;
        let dir = TempDir::new()?;
        let page = dir.0.join("report.html");
        let pdf = dir.0.join("report.pdf");
        let log = dir.0.join("chromium.log");
        tokio::fs::write(&page, html).await?;
        let mut command = tokio::process::Command::new(chromium);
        command
            .arg("--headless")
            // Root in containers has no user namespace for the sandbox; the page is ours.
            .arg("--no-sandbox")
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .arg("--disable-extensions")
            .arg("--no-first-run")
            .arg("--no-default-browser-check")
            .arg("--no-pdf-header-footer")
            // The page has no script, and without a JIT V8 needs no writable-executable
            // memory: the packaged unit's MemoryDenyWriteExecute=yes otherwise makes the
            // renderer fail ("Failed to reserve virtual memory for CodeRange") and hang.
            .arg("--js-flags=--jitless")
            .arg(format!(
                "--user-data-dir={}",
                dir.0.join("profile").display()
            ))
            .arg(format!("--print-to-pdf={}", pdf.display()))
            .arg(format!("file://{}", page.display()))
            // Its caches and NSS database in the job's directory too: the service's home
            // may be read-only or absent (ProtectHome=, ProtectSystem= in the unit).
            .env("HOME", &dir.0)
            .env("XDG_CONFIG_HOME", &dir.0)
            .env("XDG_CACHE_HOME", &dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            // Its own process group, so the renderers it starts are killed with it.
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn()?;
        let mut job = Job {
            group: child.id(),
            child,
        };
        let status = match tokio::time::timeout(self.timeout, job.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                warn!(
                    timeout_s = self.timeout.as_secs(),
                    "PDF job killed at its deadline"
                );
                return Err(PdfError::Timeout(self.timeout));
            }
        };
        // The browser exited; renderers it left behind go with the group.
        job.kill_group();
        let made = tokio::fs::metadata(&pdf).await.ok();
        if !status.success() || made.is_none_or(|m| m.len() == 0 || m.len() > MAX_PDF_BYTES) {
            let text = tokio::fs::read_to_string(&log).await.unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(PdfError::Failed(format!("{status}: {}", tail.join(" | "))));
        }
        let bytes = tokio::fs::read(&pdf).await?;
        if !bytes.starts_with(b"%PDF-") {
            return Err(PdfError::Failed("the output is not a PDF".into()));
        }
        debug!(bytes = bytes.len(), "PDF report made");
        Ok(bytes)
    }
}

/// A running Chromium: its process group is killed when the job ends or is dropped.
struct Job {
    group: Option<u32>,
    child: tokio::process::Child,
}

impl Job {
    fn kill_group(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        // `kill` the program, not a syscall: the collector has no libc binding of its own,
        // and this runs once per PDF. A group already gone is not an error worth reporting.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.kill_group();
    }
}

/// A private directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("sixmap-pdf-{name}"));
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            warn!(error = %e, dir = %self.0.display(), "PDF job's directory not removed");
        }
    }
}

/// Whether `pid` names a process that is still alive (not a zombie): for the tests.
#[cfg(test)]
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(std::path::Path::new("/proc").join(pid).join("stat"))
        .is_ok_and(|stat| !stat.contains(") Z "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// A fake Chromium: records its pid and its child's, then never finishes.
    fn stuck_browser(dir: &Path) -> (PathBuf, PathBuf) {
        let pids = dir.join("pids");
        let script = dir.join("fake-chromium");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nsleep 600 &\necho $$ $! > {}\nwait\n",
                pids.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, pids)
    }

    async fn pids_of(file: &Path) -> Vec<String> {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(file)
                && text.ends_with('\n')
            {
                return text.split_whitespace().map(str::to_owned).collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the fake browser did not start");
    }

    async fn gone(pids: &[String]) -> bool {
        for _ in 0..200 {
            if pids.iter().all(|p| !alive(p)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_job_whose_client_left_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let (script, pid_file) = stuck_browser(dir.path());
        let maker = PdfMaker::with_program(Some(script), Duration::from_secs(600));
        // The client goes away after 300 ms: its request's future is dropped.
        let job = maker.render("<p>x</p>");
        let left = tokio::time::timeout(Duration::from_millis(300), job).await;
        assert!(left.is_err(), "the fake browser never finishes");
        let pids = pids_of(&pid_file).await;
        assert_eq!(pids.len(), 2, "{pids:?}");
        assert!(gone(&pids).await, "{pids:?} still running");
        // And the next job may run.
        assert!(maker.one_at_a_time.available_permits() == 1);
    }

    #[tokio::test]
    async fn a_job_is_bounded_and_one_runs_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (script, pid_file) = stuck_browser(dir.path());
        let maker = PdfMaker::with_program(Some(script), Duration::from_millis(500));
        let first = {
            let maker = maker.clone();
            tokio::spawn(async move { maker.render("<p>1</p>").await })
        };
        let pids = pids_of(&pid_file).await;
        let second = maker.render("<p>2</p>").await;
        assert!(matches!(second, Err(PdfError::Busy)), "{second:?}");
        let first = first.await.unwrap();
        assert!(matches!(first, Err(PdfError::Timeout(_))), "{first:?}");
        assert!(
            gone(&pids).await,
            "{pids:?} still running past the deadline"
        );
        let none = PdfMaker::with_program(None, DEFAULT_TIMEOUT);
        let err = none.render("<p>x</p>").await.unwrap_err();
        assert!(matches!(err, PdfError::Unavailable));
        assert!(err.to_string().contains("chromium"), "{err}");
    }

    /// The real Chromium prints a report, also under the packaged systemd unit's
    /// MemoryDenyWriteExecute=yes (here the same kernel rule set by prctl(PR_SET_MDWE) in a
    /// wrapper, which the browser and its children inherit).
    #[tokio::test]
    async fn chromium_prints_under_memory_deny_write_execute() {
        let Some(chromium) = CHROMIUM_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must make PDFs: install chromium"
            );
            eprintln!("skipped: no Chromium");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("mdwe-chromium");
        std::fs::write(
            &wrapper,
            format!(
                "#!/usr/bin/env python3\nimport ctypes, os, sys\n\
                 libc = ctypes.CDLL(None, use_errno=True)\n\
                 # PR_SET_MDWE = 65, PR_MDWE_REFUSE_EXEC_GAIN = 1\n\
                 if libc.prctl(65, 1, 0, 0, 0) != 0:\n    sys.exit('prctl: %d' % ctypes.get_errno())\n\
                 os.execv({chromium:?}, [{chromium:?}] + sys.argv[1:])\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let html = "<!doctype html><title>t</title><h1>Campagne Zéta 42</h1>";
        for program in [chromium, wrapper] {
            let maker = PdfMaker::with_program(Some(program.clone()), DEFAULT_TIMEOUT);
            let pdf = maker
                .render(html)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
            assert!(pdf.starts_with(b"%PDF-"), "{}", program.display());
        }
    }

    #[tokio::test]
    async fn a_browser_that_fails_is_reported_with_its_last_words() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("failing");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let maker = PdfMaker::with_program(Some(script), DEFAULT_TIMEOUT);
        let err = maker.render("<p>x</p>").await.unwrap_err().to_string();
        assert!(err.contains("cannot open display"), "{err}");
    }
}
