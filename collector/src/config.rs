//! Collector configuration: a TOML file (every key optional, unknown keys rejected) with
//! command-line flags applied on top.

use serde::Deserialize;
use sixmap_shared::config::{ConfigError, load_toml};
use sixmap_shared::measurement::{MeasurementSpec, PingSpec, SpecKind, Target};
use sixmap_shared::session::MIN_TASK_INTERVAL;
use sixmap_shared::version::Version;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// gRPC listener for probes.
    pub grpc_listen: SocketAddr,
    /// HTTP listener for the JSON API and the dashboard.
    pub http_listen: SocketAddr,
    /// Tokens accepted by Enroll. Empty disables enrollment.
    pub enrollment_tokens: Vec<String>,
    /// Probes older than this are refused at hello.
    pub min_probe_version: String,
    pub heartbeat_interval_s: u64,
    /// The measurement every connected probe runs.
    pub default_ping: DefaultPing,
    /// More ping tasks every connected probe runs, each with its own parameters (e.g. one per
    /// packet size); same keys as `[default_ping]`.
    pub ping_tasks: Vec<DefaultPing>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultPing {
    /// Addresses or host names; empty assigns nothing.
    pub targets: Vec<String>,
    /// Seconds between runs of the task.
    pub every_s: u64,
    /// Echo requests per run.
    pub count: u32,
    /// Milliseconds between echo requests within a run.
    pub interval_ms: u32,
    pub timeout_ms: u64,
    /// ICMPv6 payload bytes per echo request; 0 uses the probe's default.
    pub size: u32,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("sixmap-data"),
            grpc_listen: SocketAddr::from(([0u16; 8], 7400)),
            http_listen: SocketAddr::from(([0u16; 8], 7480)),
            enrollment_tokens: Vec::new(),
            min_probe_version: "0.1.0".into(),
            heartbeat_interval_s: 30,
            default_ping: DefaultPing::default(),
            ping_tasks: Vec::new(),
        }
    }
}

impl Default for DefaultPing {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            every_s: 60,
            count: 3,
            interval_ms: 1000,
            timeout_ms: 10_000,
            size: 0,
        }
    }
}

/// Settings checked and converted into the types the collector runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub enrollment_tokens: Vec<String>,
    pub min_probe_version: Version,
    pub heartbeat_interval: Duration,
    pub default_tasks: Vec<DefaultTask>,
}

/// A task every connected probe runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultTask {
    pub spec: MeasurementSpec,
    pub every: Duration,
}

impl DefaultTask {
    /// Stable text naming this task, so the same task keeps its id across restarts.
    pub fn definition(&self) -> String {
        format!("default:{:?}:every={}s", self.spec, self.every.as_secs())
    }
}

/// Upper bound on tasks every probe runs: each is one result per interval per probe.
pub const MAX_DEFAULT_TASKS: usize = 1000;

/// The tasks of one ping group; errors name the group's key.
fn ping_tasks(
    ping: &DefaultPing,
    key: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<DefaultTask>, ConfigError> {
    let every = Duration::from_secs(ping.every_s);
    if every < MIN_TASK_INTERVAL {
        return Err(invalid(
            &format!("{key}.every_s"),
            format!("must be >= {}", MIN_TASK_INTERVAL.as_secs()),
        ));
    }
    let ping_spec = PingSpec::new(ping.count, ping.interval_ms, ping.size)
        .map_err(|e| invalid(key, e.to_string()))?;
    ping.targets
        .iter()
        .map(|text| {
            let target = Target::parse(text)
                .map_err(|e| invalid(&format!("{key}.targets"), e.to_string()))?;
            let spec = MeasurementSpec::new(
                target.clone(),
                target.default_family(),
                Duration::from_millis(ping.timeout_ms),
                SpecKind::Ping(ping_spec),
            )
            .map_err(|e| invalid(key, format!("target {text}: {e}")))?;
            Ok(DefaultTask { spec, every })
        })
        .collect()
}

impl CollectorConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }

    pub fn validate(self, source: Option<&Path>) -> Result<Settings, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::invalid(key, source, reason);
        let min_probe_version = Version::parse(&self.min_probe_version).ok_or_else(|| {
            invalid(
                "min_probe_version",
                format!("{:?} is not major.minor.patch", self.min_probe_version),
            )
        })?;
        if self.heartbeat_interval_s == 0 || self.heartbeat_interval_s > 3600 {
            return Err(invalid("heartbeat_interval_s", "must be 1..=3600".into()));
        }
        if self.enrollment_tokens.iter().any(|t| t.len() < 8) {
            return Err(invalid(
                "enrollment_tokens",
                "each token must be at least 8 characters".into(),
            ));
        }
        let mut default_tasks = ping_tasks(&self.default_ping, "default_ping", &invalid)?;
        for (i, group) in self.ping_tasks.iter().enumerate() {
            default_tasks.extend(ping_tasks(group, &format!("ping_tasks[{i}]"), &invalid)?);
        }
        if default_tasks.len() > MAX_DEFAULT_TASKS {
            return Err(invalid(
                "ping_tasks",
                format!(
                    "{} tasks in all, at most {MAX_DEFAULT_TASKS}",
                    default_tasks.len()
                ),
            ));
        }
        Ok(Settings {
            data_dir: self.data_dir,
            grpc_listen: self.grpc_listen,
            http_listen: self.http_listen,
            enrollment_tokens: self.enrollment_tokens,
            min_probe_version,
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_s),
            default_tasks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::config::parse_toml;

    #[test]
    fn full_config_parses_and_validates() {
        let config: CollectorConfig = parse_toml(
            r#"
            data_dir = "/var/lib/sixmap"
            grpc_listen = "[::1]:7400"
            enrollment_tokens = ["volunteer-2026"]
            [default_ping]
            targets = ["::1", "example.org"]
            every_s = 30
            "#,
        )
        .unwrap();
        let settings = config.validate(None).unwrap();
        assert_eq!(settings.default_tasks.len(), 2);
        assert_eq!(settings.default_tasks[0].every, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = parse_toml::<CollectorConfig>("[default_ping]\ntargts = []\n").unwrap_err();
        assert!(err.contains("targts"), "{err}");
        let config: CollectorConfig =
            parse_toml("[default_ping]\ntargets = [\"not a host!\"]\n").unwrap();
        let err = config.validate(None).unwrap_err().to_string();
        assert!(err.contains("default_ping.targets"), "{err}");
        let config: CollectorConfig = parse_toml("min_probe_version = \"1\"\n").unwrap();
        let err = config.validate(None).unwrap_err().to_string();
        assert!(err.contains("min_probe_version"), "{err}");
        let config: CollectorConfig = parse_toml("[default_ping]\ncount = 0\n").unwrap();
        let err = config.validate(None).unwrap_err().to_string();
        assert!(err.contains("ping.count"), "{err}");
        let config: CollectorConfig =
            parse_toml("[[ping_tasks]]\ntargets = [\"::1\"]\nsize = 5\n").unwrap();
        let err = config.validate(None).unwrap_err().to_string();
        assert!(err.contains("ping_tasks[0]"), "{err}");
    }

    #[test]
    fn ping_task_groups_add_distinct_tasks() {
        let config: CollectorConfig = parse_toml(
            "[[ping_tasks]]\ntargets = [\"::1\"]\nsize = 100\n[[ping_tasks]]\ntargets = [\"::1\"]\nsize = 200\nevery_s = 5\n",
        )
        .unwrap();
        let tasks = config.validate(None).unwrap().default_tasks;
        assert_eq!(tasks.len(), 2);
        assert_ne!(tasks[0].definition(), tasks[1].definition());
        assert_eq!(tasks[1].every, Duration::from_secs(5));
    }
}
