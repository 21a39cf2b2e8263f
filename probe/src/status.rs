//! The probe's health as `sixmap-probe status` shows it.
//!
//! The daemon rewrites `status.json` in its state directory every few seconds; `status` reads
//! it, checks that the daemon is alive, and falls back to reading the outbox itself when no
//! daemon runs.

use crate::identity::{StateError, write_atomically};
use crate::outbox::OutboxStats;
use serde::{Deserialize, Serialize};
use sixmap_shared::UnixMicros;
use sixmap_shared::health::{ProbeTag, SelfTest};
use sixmap_shared::policy::classify;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const STATUS_FILE: &str = "status.json";
/// How often the daemon rewrites the file; `status` calls it stale after a few periods.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(2);
/// Longer than a connection attempt can block the daemon (connect 10 s + welcome 30 s).
const STALE_AFTER: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub pid: u32,
    pub updated_at: UnixMicros,
    pub probe_id: String,
    /// The collector in use, or being tried while disconnected.
    pub collector: String,
    /// Every collector configured, in the order they are tried (empty in files written before
    /// failover existed).
    #[serde(default)]
    pub collectors: Vec<String>,
    pub boot_epoch: u64,
    pub connected: bool,
    /// Since when `connected` has its current value.
    pub since: UnixMicros,
    /// Why the last session ended, if it did.
    pub last_error: Option<String>,
    pub last_result_at: Option<UnixMicros>,
    pub outbox: OutboxStats,
    pub clock_offset_us: Option<i64>,
    /// Global IPv6 addresses on the probe's interfaces.
    pub global_v6_addresses: Vec<IpAddr>,
    pub self_test: Option<SelfTest>,
    /// Computed by the collector; empty until it sent them.
    pub tags: Vec<ProbeTag>,
}

pub fn write(state_dir: &Path, status: &ProbeStatus) -> Result<(), StateError> {
    let json = serde_json::to_vec_pretty(status).map_err(|e| StateError::Corrupt {
        path: state_dir.join(STATUS_FILE),
        reason: e.to_string(),
    })?;
    write_atomically(&state_dir.join(STATUS_FILE), &json, false)
}

pub fn read(state_dir: &Path) -> Result<Option<ProbeStatus>, String> {
    let path = state_dir.join(STATUS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is not a status file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Whether the daemon that wrote `status` still runs: its process exists, is a sixmap-probe,
/// and the file is fresh.
pub fn daemon_alive(status: &ProbeStatus, now: UnixMicros) -> bool {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", status.pid)).unwrap_or_default();
    let is_probe = String::from_utf8_lossy(&cmdline).contains("sixmap-probe");
    is_probe && now.saturating_since(status.updated_at) < STALE_AFTER
}

pub fn global_v6(addresses: &[IpAddr]) -> Vec<IpAddr> {
    addresses
        .iter()
        .copied()
        .filter(|a| a.is_ipv6() && classify(*a).is_none())
        .collect()
}

fn ago(now: UnixMicros, then: UnixMicros) -> String {
    let secs = now.saturating_since(then).as_secs();
    match secs {
        0..120 => format!("{secs} s ago"),
        120..7200 => format!("{} min ago", secs / 60),
        7200..172_800 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Human-readable status. `alive` says whether the daemon runs.
pub fn render(status: &ProbeStatus, alive: bool, now: UnixMicros) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "probe {}  (boot {})",
        status.probe_id, status.boot_epoch
    );
    if !alive {
        let _ = writeln!(
            out,
            "daemon:      NOT RUNNING (status last written {})",
            ago(now, status.updated_at)
        );
    }
    let state = if status.connected {
        "connected"
    } else {
        "DISCONNECTED"
    };
    let _ = writeln!(
        out,
        "collector:   {} {state} since {}",
        status.collector,
        ago(now, status.since)
    );
    if status.collectors.len() > 1 {
        let others: Vec<&str> = status
            .collectors
            .iter()
            .filter(|c| **c != status.collector)
            .map(String::as_str)
            .collect();
        let _ = writeln!(out, "failover:    {}", others.join(", "));
    }
    if let (false, Some(error)) = (status.connected, &status.last_error) {
        let _ = writeln!(out, "last error:  {error}");
    }
    let last = status
        .last_result_at
        .map_or("none yet".to_owned(), |t| ago(now, t));
    let _ = writeln!(out, "last result: {last}");
    let o = &status.outbox;
    let oldest = o
        .oldest_started_at
        .map_or(String::new(), |t| format!(", oldest from {}", ago(now, t)));
    let _ = writeln!(
        out,
        "outbox:      {} results waiting, {} of {}{oldest}",
        o.results,
        mib(o.bytes),
        mib(o.max_bytes)
    );
    if o.evicted_since_start > 0 || o.loss_records > 0 {
        let _ = writeln!(
            out,
            "             {} results dropped since start (outbox full); {} loss records not yet delivered",
            o.evicted_since_start, o.loss_records
        );
    }
    let v6 = match (&status.global_v6_addresses[..], &status.self_test) {
        ([], _) => "no global IPv6 address".to_owned(),
        (addresses, Some(t)) if t.default_route_v6 => {
            format!("global address {} and a default route", addresses[0])
        }
        (addresses, _) => format!("global address {} but no default route", addresses[0]),
    };
    let _ = writeln!(out, "IPv6:        {v6}");
    if let Some(t) = &status.self_test {
        let aaaa = match t.aaaa_resolved {
            Some(true) => "resolves",
            Some(false) => "no AAAA",
            None => "lookup failed",
        };
        let nat64 = t
            .nat64_prefix
            .map_or(String::new(), |p| format!(", NAT64 prefix {p}"));
        let collector = match t.collector_v6 {
            Some(true) => ", collector reachable over IPv6",
            Some(false) => ", collector NOT reachable over IPv6",
            None => "",
        };
        let tunnel = match t.v6_route_mtu {
            Some(mtu) if mtu < 1500 => format!(", IPv6 route MTU {mtu} (tunnel?)"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "self-test:   {} AAAA {aaaa}{nat64}{collector}{tunnel} ({})",
            t.aaaa_name,
            ago(now, t.tested_at)
        );
    }
    let tags = if status.tags.is_empty() {
        "none yet (computed by the collector)".to_owned()
    } else {
        status
            .tags
            .iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "tags:        {tags}");
    if let Some(offset) = status.clock_offset_us {
        let _ = writeln!(
            out,
            "clock:       {:+.1} ms from the collector",
            offset as f64 / 1000.0
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> ProbeStatus {
        ProbeStatus {
            pid: std::process::id(),
            updated_at: UnixMicros(10_000_000),
            probe_id: "00112233445566aa".into(),
            collector: "https://[::1]:7400".into(),
            collectors: vec!["https://[::1]:7400".into(), "https://[::1]:7401".into()],
            boot_epoch: 3,
            connected: false,
            since: UnixMicros(1_000_000),
            last_error: Some("cannot reach collector".into()),
            last_result_at: Some(UnixMicros(9_000_000)),
            outbox: OutboxStats {
                results: 12,
                bytes: 3 * 1024 * 1024,
                max_bytes: 64 * 1024 * 1024,
                oldest_started_at: Some(UnixMicros(2_000_000)),
                loss_records: 1,
                evicted_since_start: 4,
            },
            clock_offset_us: Some(-1500),
            global_v6_addresses: vec!["2001:db8::1".parse().unwrap()],
            self_test: None,
            tags: Vec::new(),
        }
    }

    #[test]
    fn status_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &status()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(status()));
        std::fs::write(dir.path().join(STATUS_FILE), "{").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("status.json"));
    }

    #[test]
    fn rendering_says_what_matters() {
        let text = render(&status(), false, UnixMicros(20_000_000));
        for needle in [
            "NOT RUNNING",
            "collector:   https://[::1]:7400 DISCONNECTED since 19 s ago",
            "failover:    https://[::1]:7401\n",
            "cannot reach collector",
            "12 results waiting, 3.0 MiB of 64.0 MiB, oldest from 18 s ago",
            "4 results dropped",
            "-1.5 ms",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_stale_or_foreign_pid_is_not_alive() {
        // This test binary is not sixmap-probe.
        assert!(!daemon_alive(&status(), UnixMicros(10_000_001)));
    }
}
