//! Collector configuration: a TOML file (every key optional, unknown keys rejected) with
//! command-line flags applied on top.

use serde::Deserialize;
use sixmap_shared::config::{ConfigError, load_toml};
use sixmap_shared::measurement::{MeasurementSpec, PingSpec, SpecKind, Target};
use sixmap_shared::session::MIN_TASK_INTERVAL;

mod alerts;
mod publication;
pub use publication::Publisher;
mod store;
mod task_table;
mod tls;

pub use alerts::{Alerts, AlertsConfig, Email, MAX_RULES, Rule, RuleKind, RuleToml, Webhook};
pub use store::{BackendName, ClickHouseToml, StoreConfig, StoreSettings};
pub use task_table::{MAX_TASK_INTERVAL, QueryType, TaskTable, table_tasks};
pub use tls::{PublicName, TlsConfig, TlsSettings};

use sixmap_shared::version::Version;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Directory of the embedded store, the prefix data and (by default) the CA.
    pub data_dir: PathBuf,
    /// Directory of the collector's CA (default `<data_dir>/pki`). Collectors sharing one
    /// store must share one CA: point them at the same directory (or copies of it).
    pub pki_dir: Option<PathBuf>,
    /// Where probes, tokens, campaigns and results are kept (`[store]`).
    pub store: StoreConfig,
    /// gRPC listener for probes.
    pub grpc_listen: SocketAddr,
    /// HTTP listener for the JSON API and the dashboard.
    pub http_listen: SocketAddr,
    /// Most probes one token owner may enroll in one IPv6 /64 (one IPv4 address).
    pub max_probes_per_owner_per_64: usize,
    /// Most probes one token owner may enroll in one routed prefix (from the prefix data).
    pub max_probes_per_owner_per_prefix: usize,
    /// Serve raw results, probes and losses without an API token (default: researcher or
    /// admin token needed).
    pub raw_data_public: bool,
    /// Serve the maps, their API (`/map`, `/api/v1/maps/*`, `/assets/*`) and the dashboard
    /// page without a token (default: yes).
    pub maps_public: bool,
    /// Serve `/metrics` (Prometheus) without a token (default: yes; it holds counts and
    /// latencies, no personal data). Otherwise an admin token is needed.
    pub metrics_public: bool,
    /// Probes older than this are refused at hello.
    pub min_probe_version: String,
    pub heartbeat_interval_s: u64,
    /// The measurement every connected probe runs.
    pub default_ping: DefaultPing,
    /// More ping tasks every connected probe runs, each with its own parameters (e.g. one per
    /// packet size); same keys as `[default_ping]`.
    pub ping_tasks: Vec<DefaultPing>,
    /// Tasks of any kind every connected probe runs: one `[[tasks]]` table per group of
    /// targets sharing the same parameters. See [`TaskTable`] for the keys.
    pub tasks: Vec<TaskTable>,
    /// Lab networks only: campaigns may target private and documentation addresses, and a
    /// probe's origin may come from such an address. Never set on a public collector.
    pub lab_mode: bool,
    /// Probe-tests per hour one campaign owner may commission across their active campaigns;
    /// 0 means no limit.
    pub campaign_owner_hourly_limit: u64,
    /// Server resource limits (`[limits]`); see [`crate::limits::LimitsConfig`].
    pub limits: crate::limits::LimitsConfig,
    /// Daily open-data dumps (`[dumps]`); see [`crate::export::dumps::DumpsConfig`].
    pub dumps: crate::export::dumps::DumpsConfig,
    /// What maps and reports publish (`[publication]`); see [`publication::PublicationConfig`].
    pub publication: publication::PublicationConfig,
    /// The gRPC certificate's public names (`[tls]`); see [`TlsConfig`].
    pub tls: TlsConfig,
    /// Alert rules and webhooks (`[alerts]`); see [`AlertsConfig`].
    pub alerts: AlertsConfig,
    /// Coverage per country (`[coverage]`); see [`crate::coverage::CoverageConfig`].
    pub coverage: crate::coverage::CoverageConfig,
    /// `[i18n]`: more languages, or other wording, for the pages and reports.
    pub i18n: I18nConfig,
}

/// `[i18n] dir`: a directory of `<language>.toml` files read at start over the built-in
/// translations (`deploy/i18n/`, see `crate::i18n`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct I18nConfig {
    pub dir: Option<PathBuf>,
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
            pki_dir: None,
            store: StoreConfig::default(),
            grpc_listen: SocketAddr::from(([0u16; 8], 7400)),
            http_listen: SocketAddr::from(([0u16; 8], 7480)),
            max_probes_per_owner_per_64: 3,
            max_probes_per_owner_per_prefix: 20,
            raw_data_public: false,
            maps_public: true,
            metrics_public: true,
            min_probe_version: "0.1.0".into(),
            heartbeat_interval_s: 30,
            default_ping: DefaultPing::default(),
            ping_tasks: Vec::new(),
            tasks: Vec::new(),
            lab_mode: false,
            campaign_owner_hourly_limit: DEFAULT_OWNER_HOURLY_LIMIT,
            limits: crate::limits::LimitsConfig::default(),
            dumps: Default::default(),
            publication: Default::default(),
            tls: TlsConfig::default(),
            alerts: AlertsConfig::default(),
            i18n: I18nConfig::default(),
            coverage: Default::default(),
        }
    }
}

/// Default per-owner limit: 100 000 probe-tests an hour (about 28 a second across all probes).
pub const DEFAULT_OWNER_HOURLY_LIMIT: u64 = 100_000;

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
    /// The CA's directory (`pki_dir`, default `<data_dir>/pki`).
    pub pki_dir: PathBuf,
    pub store: StoreSettings,
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub enrollment_caps: crate::enroll::gate::EnrollmentCaps,
    pub access: crate::http_auth::Access,
    pub min_probe_version: Version,
    pub heartbeat_interval: Duration,
    pub default_tasks: Vec<DefaultTask>,
    pub lab_mode: bool,
    /// `None`: owners are not limited.
    pub campaign_owner_hourly_limit: Option<u64>,
    pub limits: crate::limits::Limits,
    /// `None` when daily dumps are off.
    pub dumps: Option<crate::export::dumps::Dumps>,
    pub publication: crate::rollup::MinSample,
    pub tls: TlsSettings,
    pub alerts: Alerts,
    /// The languages of the pages and reports, built in and from `[i18n] dir`.
    pub i18n: std::sync::Arc<crate::i18n::Catalog>,
    /// Who publishes the reports (`[publication] publisher`, `logo_url`).
    pub publisher: Publisher,
    /// Users per AS and country (`[coverage] users_csv`), empty without the file.
    pub coverage_users: crate::coverage::AsUsers,
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
    if every < MIN_TASK_INTERVAL || every > MAX_TASK_INTERVAL {
        return Err(invalid(
            &format!("{key}.every_s"),
            format!(
                "must be {}..={} (a week)",
                MIN_TASK_INTERVAL.as_secs(),
                MAX_TASK_INTERVAL.as_secs()
            ),
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
        if self.max_probes_per_owner_per_64 == 0 {
            return Err(invalid(
                "max_probes_per_owner_per_64",
                "must be at least 1".into(),
            ));
        }
        if self.max_probes_per_owner_per_prefix == 0 {
            return Err(invalid(
                "max_probes_per_owner_per_prefix",
                "must be at least 1".into(),
            ));
        }
        let mut default_tasks = ping_tasks(&self.default_ping, "default_ping", &invalid)?;
        for (i, group) in self.ping_tasks.iter().enumerate() {
            default_tasks.extend(ping_tasks(group, &format!("ping_tasks[{i}]"), &invalid)?);
        }
        // A repeated task would be assigned twice under one task id; refused for `[[tasks]]`
        // only, since ping groups have always tolerated repeats.
        let mut definitions: HashSet<String> =
            default_tasks.iter().map(DefaultTask::definition).collect();
        for (i, table) in self.tasks.iter().enumerate() {
            let key = format!("tasks[{i}]");
            for task in table_tasks(table, &key, &invalid)? {
                if !definitions.insert(task.definition()) {
                    return Err(invalid(
                        &format!("{key}.targets"),
                        format!(
                            "target {}: the same task is defined earlier",
                            task.spec.target
                        ),
                    ));
                }
                default_tasks.push(task);
            }
            // Checked as tables are added, so a huge list stops early.
            if default_tasks.len() > MAX_DEFAULT_TASKS {
                break;
            }
        }
        if default_tasks.len() > MAX_DEFAULT_TASKS {
            return Err(invalid(
                "tasks",
                format!(
                    "{} tasks in all (default_ping, ping_tasks and tasks), at most \
                     {MAX_DEFAULT_TASKS}",
                    default_tasks.len()
                ),
            ));
        }
        let store = self.store.validate(source)?;
        let pki_dir = match &self.pki_dir {
            Some(dir) if dir.as_os_str().is_empty() => {
                return Err(invalid("pki_dir", "must not be empty".into()));
            }
            Some(dir) => dir.clone(),
            None => self.data_dir.join("pki"),
        };
        let dumps = self.dumps.validate(&self.data_dir, source)?;
        Ok(Settings {
            pki_dir,
            store,
            data_dir: self.data_dir,
            grpc_listen: self.grpc_listen,
            http_listen: self.http_listen,
            enrollment_caps: crate::enroll::gate::EnrollmentCaps {
                per_64: self.max_probes_per_owner_per_64,
                per_routed_prefix: self.max_probes_per_owner_per_prefix,
            },
            access: crate::http_auth::Access {
                raw_data_public: self.raw_data_public,
                maps_public: self.maps_public,
                metrics_public: self.metrics_public,
            },
            min_probe_version,
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_s),
            default_tasks,
            lab_mode: self.lab_mode,
            campaign_owner_hourly_limit: (self.campaign_owner_hourly_limit > 0)
                .then_some(self.campaign_owner_hourly_limit),
            limits: self.limits.validate(source)?,
            dumps,
            publication: self.publication.validate(source)?,
            tls: self.tls.validate(source)?,
            alerts: self.alerts.validate(source)?,
            publisher: self.publication.publisher(source)?,
            // The files are read here so a malformed one stops the start, naming file and key.
            i18n: std::sync::Arc::new(
                crate::i18n::Catalog::load(self.i18n.dir.as_deref())
                    .map_err(|e| invalid("i18n.dir", e.to_string()))?,
            ),
            coverage_users: self.coverage.load(source)?,
        })
    }
}

/// Checks at start what validation cannot: that `[dumps] dir` exists or can be created and
/// is writable, so a wrong path stops the collector with the key named, not a day later.
pub fn check_dumps_dir(dumps: &crate::export::dumps::Dumps) -> Result<(), ConfigError> {
    crate::private_files::check_writable_dir(&dumps.dir).map_err(|e| {
        ConfigError::invalid(
            "dumps.dir",
            None,
            format!(
                "{}: cannot create it or write in it: {e}",
                dumps.dir.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::config::parse_toml;
    use sixmap_shared::measurement::{
        DnsSpec, DnsTransport, Family, MeasurementKind, SpecKind, TraceProtocol,
    };

    #[test]
    fn full_config_parses_and_validates() {
        let config: CollectorConfig = parse_toml(
            r#"
            data_dir = "/var/lib/sixmap"
            grpc_listen = "[::1]:7400"
            max_probes_per_owner_per_64 = 2
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
    fn task_tables_of_every_kind_become_default_tasks() {
        let config: CollectorConfig = parse_toml(
            r#"
            [default_ping]
            targets = ["2001:db8::1"]

            [[tasks]]
            kind = "traceroute"
            targets = ["2001:db8::1", "example.org"]
            every_s = 900
            timeout_ms = 30000
            protocol = "udp"
            max_hops = 40
            flow_label = 0x12345

            [[tasks]]
            kind = "dns"
            targets = ["2001:4860:4860::8888"]
            every_s = 300
            timeout_ms = 5000
            query_name = "example.org"
            query_type = "A"
            transport = "tcp"

            [[tasks]]
            kind = "dns"
            targets = ["2001:4860:4860::8888"]
            every_s = 300
            timeout_ms = 5000
            query_name = "example.org"
            query_type = 65
            port = 5353

            [[tasks]]
            kind = "tcp"
            targets = ["example.org"]
            family = "v4"
            every_s = 60
            timeout_ms = 5000
            port = 443

            [[tasks]]
            kind = "tls"
            targets = ["2001:db8::443"]
            every_s = 60
            timeout_ms = 5000
            server_name = "example.org"
            alpn = ["h2", "http/1.1"]

            [[tasks]]
            kind = "http"
            every_s = 600
            timeout_ms = 10000
            url = "https://www.example.org/status"
            method = "HEAD"

            [[tasks]]
            kind = "quic"
            targets = ["example.org"]
            every_s = 600
            timeout_ms = 5000

            [[tasks]]
            kind = "pmtu"
            targets = ["2001:db8::9"]
            every_s = 3600
            timeout_ms = 20000
            max_size = 9000
            protocol = "udp"

            [[tasks]]
            kind = "ext_headers"
            targets = ["2001:db8::9"]
            every_s = 3600
            timeout_ms = 20000
            headers = ["hbh", "frag"]
            option_bytes = 16

            [[tasks]]
            kind = "dual_stack"
            targets = ["example.org"]
            every_s = 300
            timeout_ms = 10000
            inner = "http"
            port = 8080
            max_packets = 50

            [[tasks]]
            kind = "ping"
            targets = ["2001:db8::1"]
            every_s = 60
            timeout_ms = 10000
            payload_size = 1232

            [[tasks]]
            kind = "readiness"
            targets = ["example.gov"]
            every_s = 86400
            timeout_ms = 30000
            web_host = "www.example.gov"
            check_subresources = false
            "#,
        )
        .unwrap();
        let tasks = config.validate(None).unwrap().default_tasks;
        assert_eq!(tasks.len(), 14);
        match &tasks[13].spec.kind {
            SpecKind::Readiness(r) => {
                assert_eq!(r.web_host(), Some("www.example.gov"));
                assert!(r.check_mail() && !r.check_subresources());
                assert_eq!(r.path(), "/");
            }
            other => panic!("{other:?}"),
        }
        let kinds: HashSet<_> = tasks.iter().map(|t| t.spec.measurement_kind()).collect();
        assert_eq!(kinds.len(), MeasurementKind::ALL.len());
        match &tasks[1].spec.kind {
            SpecKind::Traceroute(t) => {
                assert_eq!(t.protocol(), TraceProtocol::Udp);
                assert_eq!(
                    (t.max_hops(), t.port(), t.flow_label()),
                    (40, 33434, 0x12345)
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(tasks[2].spec.target, Target::Hostname("example.org".into()));
        assert_eq!(tasks[2].every, Duration::from_secs(900));
        match (&tasks[3].spec.kind, &tasks[4].spec.kind) {
            (SpecKind::Dns(a), SpecKind::Dns(https)) => {
                assert_eq!((a.query_type(), a.transport()), (1, DnsTransport::Tcp));
                assert_eq!(
                    (https.query_type(), https.transport(), https.port()),
                    (65, DnsTransport::Udp, 5353)
                );
                assert!(a.recursion_desired());
                assert_eq!(a.port(), 53);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(tasks[5].spec.family, Family::V4);
        // No targets: the URL's host is measured.
        assert_eq!(
            tasks[7].spec.target,
            Target::Hostname("www.example.org".into())
        );
        assert_eq!(tasks[11].spec.max_packets, Some(50));
        // Every task goes over the wire to probes unchanged.
        for task in &tasks {
            let wire = sixmap_proto::encode::spec(&task.spec);
            assert_eq!(sixmap_proto::decode::spec(&wire).unwrap(), task.spec);
        }
    }

    #[test]
    fn dns_tasks_over_tls_and_https_name_their_server_and_path() {
        let config: CollectorConfig = parse_toml(
            r#"
            [[tasks]]
            kind = "dns"
            targets = ["2001:db8::53"]
            every_s = 300
            timeout_ms = 5000
            query_name = "example.org"
            transport = "tls"
            server_name = "dns.example.org"

            [[tasks]]
            kind = "dns"
            targets = ["2001:db8::53"]
            every_s = 300
            timeout_ms = 5000
            query_name = "example.org"
            transport = "https"
            path = "/resolve"
            "#,
        )
        .unwrap();
        let tasks = config.validate(None).unwrap().default_tasks;
        let dns: Vec<&DnsSpec> = tasks
            .iter()
            .filter_map(|t| match &t.spec.kind {
                SpecKind::Dns(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(dns.len(), 2, "{tasks:?}");
        assert_eq!(
            (dns[0].transport(), dns[0].port(), dns[0].server_name()),
            (DnsTransport::Tls, 853, Some("dns.example.org"))
        );
        assert_eq!(
            (dns[1].transport(), dns[1].port(), dns[1].path()),
            (DnsTransport::Https, 443, "/resolve")
        );
    }

    const COMMON: &str = "every_s = 60\ntimeout_ms = 5000\n";

    /// The error of a config with one `[[tasks]]` table made of `COMMON` and `body`.
    fn table_error(body: &str) -> String {
        let text = format!("[[tasks]]\n{COMMON}{body}");
        let config: CollectorConfig = parse_toml(&text).unwrap();
        config.validate(None).unwrap_err().to_string()
    }

    #[test]
    fn bad_task_tables_name_the_key() {
        for (body, key, reason) in [
            (
                "kind = \"trace\"\ntargets = [\"::1\"]\n",
                "kind",
                "traceroute",
            ),
            (
                "kind = \"tcp\"\ntargets = [\"::1\"]\nport = 70000\n",
                "port",
                "1..=65535",
            ),
            ("kind = \"tcp\"\ntargets = [\"::1\"]\n", "port", "required"),
            ("kind = \"tcp\"\nport = 80\n", "targets", "at least one"),
            (
                "kind = \"traceroute\"\ntargets = [\"::1\"]\nurl = \"http://x.org/\"\n",
                "url",
                "not a key of kind traceroute",
            ),
            (
                "kind = \"traceroute\"\ntargets = [\"::1\"]\nprotocol = \"sctp\"\n",
                "protocol",
                "sctp",
            ),
            (
                "kind = \"traceroute\"\ntargets = [\"::1\"]\nmax_hops = 65\n",
                "max_hops",
                "1..=64",
            ),
            (
                "kind = \"dns\"\ntargets = [\"::1\"]\n",
                "query_name",
                "required",
            ),
            (
                "kind = \"dns\"\ntargets = [\"::1\"]\nquery_name = \"x.org\"\nquery_type = \"BOGUS\"\n",
                "query_type",
                "BOGUS",
            ),
            (
                "kind = \"dns\"\ntargets = [\"::1\"]\nquery_name = \"x.org\"\nquery_type = 70000\n",
                "query_type",
                "1..=65535",
            ),
            (
                "kind = \"dns\"\ntargets = [\"::1\"]\nquery_name = \"x.org\"\ntransport = \"quic\"\n",
                "transport",
                "udp, tcp, tls or https",
            ),
            (
                "kind = \"dns\"\ntargets = [\"::1\"]\nquery_name = \"x.org\"\nserver_name = \"dns.x.org\"\n",
                "server_name",
                "only DNS over TLS or HTTPS",
            ),
            (
                "kind = \"dns\"\ntargets = [\"::1\"]\nquery_name = \"x.org\"\ntransport = \"https\"\npath = \"q\"\n",
                "path",
                "absolute path",
            ),
            (
                "kind = \"dns\"\ntargets = [\"::1\"]\nquery_name = \"x.org\"\nport = 70000\n",
                "port",
                "1..=65535",
            ),
            (
                "kind = \"http\"\nurl = \"ftp://x.org/\"\n",
                "url",
                "http://",
            ),
            (
                "kind = \"pmtu\"\ntargets = [\"::1\"]\nprotocol = \"tcp\"\n",
                "protocol",
                "icmp or udp",
            ),
            (
                "kind = \"ext_headers\"\ntargets = [\"::1\"]\nheaders = [\"routing\"]\n",
                "headers",
                "routing",
            ),
            (
                "kind = \"dual_stack\"\ntargets = [\"2001:db8::1\"]\n",
                "targets",
                "host name",
            ),
            (
                "kind = \"dual_stack\"\ntargets = [\"x.org\"]\ninner = \"ping\"\nport = 80\n",
                "port",
                "ping takes no port",
            ),
            (
                "kind = \"tcp\"\ntargets = [\"2001:db8::1\"]\nport = 80\nfamily = \"v4\"\n",
                "family",
                "2001:db8::1",
            ),
            (
                "kind = \"tcp\"\ntargets = [\"x.org\"]\nport = 80\nfamily = \"ipv6\"\n",
                "family",
                "v6",
            ),
            (
                "kind = \"tcp\"\ntargets = [\"x.org\"]\nport = 80\nmax_packets = 5000\n",
                "max_packets",
                "1024",
            ),
            (
                "kind = \"tcp\"\ntargets = [\"not a host\"]\nport = 80\n",
                "targets",
                "not a host",
            ),
        ] {
            let err = table_error(body);
            assert!(err.contains(&format!("`tasks[0].{key}`")), "{body}: {err}");
            assert!(err.contains(reason), "{body}: {err}");
        }
    }

    #[test]
    fn task_tables_check_interval_timeout_keys_and_repeats() {
        let tcp = "kind = \"tcp\"\ntargets = [\"::1\"]\nport = 80\n";
        let err = parse_toml::<CollectorConfig>(&format!("[[tasks]]\n{tcp}colour = 1\n{COMMON}"))
            .unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = parse_toml::<CollectorConfig>(&format!("[[tasks]]\n{tcp}timeout_ms = 5\n"))
            .unwrap_err();
        assert!(err.contains("every_s"), "{err}");
        for (common, key) in [
            ("every_s = 0\ntimeout_ms = 5000\n", "every_s"),
            (
                "every_s = 18446744073709551615\ntimeout_ms = 5000\n",
                "every_s",
            ),
            ("every_s = 60\ntimeout_ms = 0\n", "timeout_ms"),
            ("every_s = 60\ntimeout_ms = 60001\n", "timeout_ms"),
        ] {
            let config: CollectorConfig = parse_toml(&format!("[[tasks]]\n{tcp}{common}")).unwrap();
            let err = config.validate(None).unwrap_err().to_string();
            assert!(err.contains(&format!("`tasks[0].{key}`")), "{err}");
        }
        // The second table's index is named, and a repeated task is refused.
        let config: CollectorConfig =
            parse_toml(&format!("[[tasks]]\n{tcp}{COMMON}[[tasks]]\n{tcp}{COMMON}")).unwrap();
        let err = config.validate(None).unwrap_err().to_string();
        assert!(
            err.contains("`tasks[1].targets`") && err.contains("earlier"),
            "{err}"
        );
    }

    #[test]
    fn the_example_config_is_valid_with_its_task_examples() {
        let text = include_str!("../../../deploy/collector.example.toml");
        let config: CollectorConfig = parse_toml(text).unwrap();
        let plain = config.validate(None).unwrap().default_tasks.len();
        // The commented `[[tasks]]` examples, uncommented, must be valid too.
        let start = text.find("# [[tasks]]").unwrap();
        let uncommented: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l).trim_start())
            .map(|l| format!("{l}\n"))
            .collect();
        let config: CollectorConfig =
            parse_toml(&format!("{}{uncommented}", &text[..start])).unwrap();
        let tasks = config.validate(None).unwrap().default_tasks;
        assert_eq!(tasks.len(), plain + 6);
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

    #[test]
    fn store_defaults_to_sled_and_pki_to_the_data_dir() {
        let config: CollectorConfig = parse_toml("data_dir = \"/d\"\n").unwrap();
        let settings = config.validate(None).unwrap();
        assert!(matches!(
            settings.store,
            StoreSettings::Sled {
                cache_mb: crate::store::DEFAULT_CACHE_MB
            }
        ));
        assert_eq!(settings.pki_dir, PathBuf::from("/d/pki"));
        let sized: CollectorConfig = parse_toml("[store]\ncache_mb = 64\n").unwrap();
        assert!(matches!(
            sized.validate(None).unwrap().store,
            StoreSettings::Sled { cache_mb: 64 }
        ));
        let tiny: CollectorConfig = parse_toml("[store]\ncache_mb = 1\n").unwrap();
        let err = tiny.validate(None).unwrap_err().to_string();
        assert!(err.contains("store.cache_mb"), "{err}");
    }

    #[test]
    fn clickhouse_store_config_parses() {
        let config: CollectorConfig = parse_toml(
            r#"
            pki_dir = "/shared/pki"
            [store]
            backend = "clickhouse"
            [store.clickhouse]
            url = "http://127.0.0.1:8123"
            database = "sixmap"
            cluster = "two_shards"
            shard_urls = ["http://127.0.0.1:8123", "http://127.0.0.1:8124"]
            "#,
        )
        .unwrap();
        let settings = config.validate(None).unwrap();
        assert_eq!(settings.pki_dir, PathBuf::from("/shared/pki"));
        let StoreSettings::ClickHouse(ch) = settings.store else {
            panic!("not clickhouse");
        };
        assert_eq!(ch.database, "sixmap");
        assert_eq!(ch.user, "default");
        assert_eq!(ch.cluster.as_deref(), Some("two_shards"));
        assert_eq!(ch.shard_urls.len(), 2);
    }

    #[test]
    fn bad_clickhouse_settings_name_their_key() {
        for (toml, key) in [
            ("url = \"https://ch:8443\"", "store.clickhouse.url"),
            ("url = \"not a url\"", "store.clickhouse.url"),
            ("database = \"a-b\"", "store.clickhouse.database"),
            ("cluster = \"x y\"", "store.clickhouse.cluster"),
            (
                "shard_urls = [\"http://a:1\"]",
                "store.clickhouse.shard_urls",
            ),
            ("timeout_s = 0", "store.clickhouse.timeout_s"),
        ] {
            let config: CollectorConfig = parse_toml(&format!(
                "[store]\nbackend = \"clickhouse\"\n[store.clickhouse]\n{toml}\n"
            ))
            .unwrap();
            let error = config.validate(None).unwrap_err().to_string();
            assert!(error.contains(key), "{toml}: {error}");
        }
        let unknown = parse_toml::<CollectorConfig>("[store]\nbackend = \"postgres\"\n");
        assert!(unknown.is_err());
    }

    #[test]
    fn the_clickhouse_cluster_example_is_valid() {
        let config: CollectorConfig =
            parse_toml(include_str!("../../../deploy/clickhouse/collector.toml")).unwrap();
        let settings = config.validate(None).unwrap();
        let StoreSettings::ClickHouse(ch) = settings.store else {
            panic!("the example must use ClickHouse");
        };
        assert_eq!(ch.cluster.as_deref(), Some("sixmap"));
        assert_eq!(ch.shard_urls.len(), 2);
        assert_eq!(settings.pki_dir, PathBuf::from("/var/lib/sixmap/pki"));
    }
}
