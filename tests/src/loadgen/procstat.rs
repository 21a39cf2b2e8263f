//! A process's memory and CPU time from `/proc`, for the collector's (and the loadgen's own)
//! cost of a run. Parsing is pure and tested; reading is one file each.

use std::path::PathBuf;

/// Clock ticks per second of `/proc/<pid>/stat` times: USER_HZ, which the kernel fixes at 100
/// on every architecture it exports to userspace (independent of CONFIG_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident memory now and at its peak, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// Which process: a pid, or this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    Own,
    Other(u32),
}

impl Pid {
    fn file(self, name: &str) -> PathBuf {
        match self {
            Pid::Own => PathBuf::from(format!("/proc/self/{name}")),
            Pid::Other(pid) => PathBuf::from(format!("/proc/{pid}/{name}")),
        }
    }
}

fn read(path: PathBuf) -> Result<(PathBuf, String), ProcError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(ProcError::Read { path, source }),
    }
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
pub fn parse_status(text: &str) -> Result<Memory, String> {
    let field = |name: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or_else(|| format!("no {name} line"))?;
        line.trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|e| format!("{name} {line:?}: {e}"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// User plus system CPU seconds of a `/proc/<pid>/stat` text (fields 14 and 15; the command
/// name in field 2 may hold spaces and parentheses, so fields are counted after its last `)`).
pub fn parse_stat(text: &str) -> Result<f64, String> {
    let rest = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("no `)` after the command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let tick = |index: usize| -> Result<u64, String> {
        fields
            .get(index)
            .ok_or_else(|| format!("only {} fields after the name", fields.len()))?
            .parse()
            .map_err(|e| format!("field {}: {e}", index + 3))
    };
    Ok((tick(11)? + tick(12)?) as f64 / TICKS_PER_SECOND)
}

pub fn memory(pid: Pid) -> Result<Memory, ProcError> {
    let (path, text) = read(pid.file("status"))?;
    parse_status(&text).map_err(|reason| ProcError::Parse { path, reason })
}

pub fn cpu_seconds(pid: Pid) -> Result<f64, ProcError> {
    let (path, text) = read(pid.file("stat"))?;
    parse_stat(&text).map_err(|reason| ProcError::Parse { path, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_rss_and_peak() {
        let text = "Name:\tsixmap-collector\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(
            parse_status(text).unwrap(),
            Memory {
                rss_kib: 40960,
                hwm_kib: 51200
            }
        );
        assert!(parse_status("Name: x\n").unwrap_err().contains("VmRSS"));
    }

    #[test]
    fn stat_counts_fields_after_the_name() {
        // utime 250 and stime 50 ticks; the name holds a space and a parenthesis.
        let text =
            "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert!((parse_stat(text).unwrap() - 3.0).abs() < 1e-9);
        assert!(parse_stat("4242 (x) S 1").is_err());
    }

    #[test]
    fn own_process_is_readable() {
        assert!(memory(Pid::Own).unwrap().rss_kib > 0);
        assert!(cpu_seconds(Pid::Own).unwrap() >= 0.0);
    }
}
