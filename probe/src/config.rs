//! Probe configuration: a TOML file (unknown keys rejected) with command-line flags on top.

use crate::ping::SocketPreference;
use serde::Deserialize;
use sixmap_shared::TargetPolicy;
use sixmap_shared::config::{ConfigError, load_toml};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Collector gRPC endpoint, e.g. "https://[2001:db8::10]:7400" (TLS 1.3, always).
    #[serde(default)]
    pub collector: Option<String>,
    /// Several collectors sharing one store and CA, tried in order: the probe uses the first
    /// that works and moves to the next when it fails. Instead of `collector`.
    #[serde(default)]
    pub collectors: Option<Vec<String>>,
    /// Where the probe keeps its identity and boot counter.
    pub state_dir: PathBuf,
    /// One-time enrollment token; needed only until the probe has an identity.
    #[serde(default)]
    pub enrollment_token: Option<String>,
    /// Name shown in the dashboard; defaults to empty.
    #[serde(default)]
    pub hostname: String,
    /// Allow loopback, ULA, documentation and private targets (test networks, local demo).
    #[serde(default)]
    pub lab_mode: bool,
    /// "auto" (datagram, then raw), "datagram" or "raw".
    #[serde(default = "default_socket")]
    pub icmp_socket: String,
    /// Upper bound of the on-disk outbox in bytes; beyond it the oldest undelivered results
    /// are dropped and the loss is recorded and reported.
    #[serde(default = "default_outbox_max_bytes")]
    pub outbox_max_bytes: u64,
    /// Host name the self-test resolves for AAAA records (via the system resolver).
    #[serde(default = "default_aaaa_name")]
    pub self_test_aaaa_name: String,
    /// Where the probe is, in degrees, if the volunteer wants it on the map. Sent rounded to a
    /// tenth of a degree (about 11 km); both or neither.
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    /// PEM file of extra certificate authorities trusted by TLS, HTTPS and QUIC measurements
    /// besides the system's (a lab or enterprise CA).
    #[serde(default)]
    pub extra_ca_file: Option<PathBuf>,
    /// Packets the probe may send per minute, all measurements together; a task whose worst
    /// case does not fit is refused (and reported) instead of run.
    #[serde(default = "default_packet_budget")]
    pub packet_budget_per_minute: u32,
    /// Measurements running at the same time, at most; others wait for a slot.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_measurements: usize,
    /// Serve Prometheus metrics at `http://<this>/metrics`, e.g. "[::1]:9464". Off unless set:
    /// the probe opens no inbound port unless its owner asks for one.
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

fn default_packet_budget() -> u32 {
    crate::safety::DEFAULT_PACKETS_PER_MINUTE
}

fn default_max_concurrent() -> usize {
    crate::safety::DEFAULT_MAX_CONCURRENT
}

fn default_outbox_max_bytes() -> u64 {
    crate::outbox::DEFAULT_MAX_BYTES
}

fn default_aaaa_name() -> String {
    DEFAULT_AAAA_NAME.into()
}

/// A name that has long had AAAA records and belongs to an operator of Internet infrastructure.
pub const DEFAULT_AAAA_NAME: &str = "www.ripe.net";

fn default_socket() -> String {
    "auto".into()
}

/// Checked settings the probe runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// In the order they are tried; never empty.
    pub collectors: Vec<String>,
    pub state_dir: PathBuf,
    pub enrollment_token: Option<String>,
    pub hostname: String,
    pub policy: TargetPolicy,
    pub icmp_socket: SocketPreference,
    pub outbox_max_bytes: u64,
    pub self_test_aaaa_name: String,
    pub location: Option<sixmap_shared::session::CoarseLocation>,
    pub extra_ca_file: Option<PathBuf>,
    pub packet_budget_per_minute: u32,
    pub max_concurrent_measurements: usize,
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Settings {
    /// The first collector listed: where self-tests check reachability.
    pub fn first_collector(&self) -> &str {
        self.collectors.first().map_or("", String::as_str)
    }
}

/// Checks one collector URL: https:// (TLS only) and a valid URI.
fn check_collector(url: &str) -> Result<(), String> {
    let scheme_ok = url.len() > "https://".len() && url.starts_with("https://");
    if !scheme_ok || url.parse::<tonic::transport::Uri>().is_err() {
        return Err(format!(
            "{url:?} is not an https:// URL (the collector speaks TLS only)"
        ));
    }
    Ok(())
}

impl ProbeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        load_toml(path)
    }

    pub fn validate(self, source: Option<&Path>) -> Result<Settings, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::invalid(key, source, reason);
        let collectors = match (self.collector, self.collectors) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "collectors",
                    "give either `collector` (one URL) or `collectors` (a list), not both".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "collector",
                    "missing: give the collector's URL (`collector = \"https://...\"`) or a list (`collectors = [...]`)".into(),
                ));
            }
            (Some(one), None) => {
                check_collector(&one).map_err(|e| invalid("collector", e))?;
                vec![one]
            }
            (None, Some(list)) => {
                if list.is_empty() {
                    return Err(invalid(
                        "collectors",
                        "the list is empty: give at least one https:// URL".into(),
                    ));
                }
                for (i, url) in list.iter().enumerate() {
                    check_collector(url).map_err(|e| invalid(&format!("collectors[{i}]"), e))?;
                    if list[..i].contains(url) {
                        return Err(invalid(
                            &format!("collectors[{i}]"),
                            format!("{url:?} is listed twice"),
                        ));
                    }
                }
                list
            }
        };
        if self.state_dir.as_os_str().is_empty() {
            return Err(invalid("state_dir", "must not be empty".into()));
        }
        // The collector's rule: a name it would refuse at enrollment is refused here, at
        // start, with the same reason.
        sixmap_shared::enrollment::check_hostname(&self.hostname)
            .map_err(|e| invalid("hostname", e.reason))?;
        let icmp_socket =
            self.icmp_socket
                .parse()
                .map_err(|e: crate::ping::ParseSocketPreferenceError| {
                    invalid("icmp_socket", e.to_string())
                })?;
        if self.outbox_max_bytes < crate::outbox::MIN_MAX_BYTES {
            return Err(invalid(
                "outbox_max_bytes",
                format!(
                    "{} is below the minimum of {} bytes",
                    self.outbox_max_bytes,
                    crate::outbox::MIN_MAX_BYTES
                ),
            ));
        }
        if sixmap_shared::Target::hostname(&self.self_test_aaaa_name).is_err() {
            return Err(invalid(
                "self_test_aaaa_name",
                format!("{:?} is not a host name", self.self_test_aaaa_name),
            ));
        }
        use crate::safety::{MAX_CONCURRENT_LIMIT, MAX_PACKETS_PER_MINUTE, MIN_PACKETS_PER_MINUTE};
        if !(MIN_PACKETS_PER_MINUTE..=MAX_PACKETS_PER_MINUTE)
            .contains(&self.packet_budget_per_minute)
        {
            return Err(invalid(
                "packet_budget_per_minute",
                format!(
                    "{} is outside {MIN_PACKETS_PER_MINUTE}..={MAX_PACKETS_PER_MINUTE}",
                    self.packet_budget_per_minute
                ),
            ));
        }
        if !(1..=MAX_CONCURRENT_LIMIT).contains(&self.max_concurrent_measurements) {
            return Err(invalid(
                "max_concurrent_measurements",
                format!(
                    "{} is outside 1..={MAX_CONCURRENT_LIMIT}",
                    self.max_concurrent_measurements
                ),
            ));
        }
        let location = match (self.latitude, self.longitude) {
            (None, None) => None,
            (Some(latitude), Some(longitude)) => Some(
                sixmap_shared::session::CoarseLocation::from_degrees(latitude, longitude)
                    .ok_or_else(|| {
                        invalid(
                            "latitude",
                            format!(
                                "{latitude}, {longitude} is not a place: latitude -90..=90, longitude -180..=180"
                            ),
                        )
                    })?,
            ),
            _ => {
                return Err(invalid(
                    "latitude",
                    "give both latitude and longitude, or neither".into(),
                ));
            }
        };
        let metrics_listen = match &self.metrics_listen {
            None => None,
            Some(text) => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
                invalid(
                    "metrics_listen",
                    format!("{text:?} is not an address and port, e.g. \"[::1]:9464\""),
                )
            })?),
        };
        Ok(Settings {
            collectors,
            state_dir: self.state_dir,
            enrollment_token: self.enrollment_token.filter(|t| !t.is_empty()),
            hostname: self.hostname,
            policy: TargetPolicy {
                lab_mode: self.lab_mode,
            },
            icmp_socket,
            outbox_max_bytes: self.outbox_max_bytes,
            self_test_aaaa_name: self.self_test_aaaa_name,
            location,
            extra_ca_file: self.extra_ca_file,
            packet_budget_per_minute: self.packet_budget_per_minute,
            max_concurrent_measurements: self.max_concurrent_measurements,
            metrics_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixmap_shared::config::parse_toml;

    #[test]
    fn valid_config() {
        let c: ProbeConfig = parse_toml(
            "collector = \"https://[::1]:7400\"\nstate_dir = \"/tmp/p\"\nlab_mode = true\n",
        )
        .unwrap();
        let s = c.validate(None).unwrap();
        assert!(s.policy.lab_mode);
        assert_eq!(s.icmp_socket, SocketPreference::Auto);
        assert_eq!(s.packet_budget_per_minute, 600);
        assert_eq!(s.max_concurrent_measurements, 8);
    }

    #[test]
    fn safety_limits_are_bounded() {
        let base = "collector = \"https://[::1]:7400\"\nstate_dir = \"/tmp/p\"\n";
        for (line, key) in [
            ("packet_budget_per_minute = 0", "packet_budget_per_minute"),
            (
                "packet_budget_per_minute = 1000000",
                "packet_budget_per_minute",
            ),
            (
                "max_concurrent_measurements = 0",
                "max_concurrent_measurements",
            ),
            (
                "max_concurrent_measurements = 1000",
                "max_concurrent_measurements",
            ),
        ] {
            let c: ProbeConfig = parse_toml(&format!("{base}{line}\n")).unwrap();
            let err = c.validate(None).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let c: ProbeConfig = parse_toml(&format!(
            "{base}packet_budget_per_minute = 120\nmax_concurrent_measurements = 2\n"
        ))
        .unwrap();
        let s = c.validate(None).unwrap();
        assert_eq!(
            (s.packet_budget_per_minute, s.max_concurrent_measurements),
            (120, 2)
        );
    }

    #[test]
    fn hostnames_follow_the_collectors_enrollment_rule() {
        let base = "collector = \"https://[::1]:7400\"\nstate_dir = \"/tmp/p\"\n";
        let c: ProbeConfig = parse_toml(&format!("{base}hostname = \"pi-4 (kitchen)\"\n")).unwrap();
        assert_eq!(c.validate(None).unwrap().hostname, "pi-4 (kitchen)");
        for bad in ["pi\\u001b[31m", "a;b", "pi\\nroot", &"x".repeat(65)] {
            let c: ProbeConfig = parse_toml(&format!("{base}hostname = \"{bad}\"\n")).unwrap();
            let err = c.validate(None).unwrap_err().to_string();
            assert!(err.contains("hostname"), "{bad}: {err}");
            assert!(
                err.contains("not allowed") || err.contains("longer than"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn locations_are_rounded_and_need_both_coordinates() {
        let base = "collector = \"https://[::1]:7400\"\nstate_dir = \"/tmp/p\"\n";
        let c: ProbeConfig =
            parse_toml(&format!("{base}latitude = 48.8566\nlongitude = 2.3522\n")).unwrap();
        let l = c.validate(None).unwrap().location.unwrap();
        assert_eq!((l.latitude(), l.longitude()), (48.9, 2.4));
        let c: ProbeConfig = parse_toml(&format!("{base}latitude = 48.8\n")).unwrap();
        assert!(c.validate(None).unwrap_err().to_string().contains("both"));
        let c: ProbeConfig =
            parse_toml(&format!("{base}latitude = 95.0\nlongitude = 0.0\n")).unwrap();
        assert!(
            c.validate(None)
                .unwrap_err()
                .to_string()
                .contains("`latitude`")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = parse_toml::<ProbeConfig>("collector = \"x\"\nstate_dir = \"/p\"\nlabmode = 1\n")
            .unwrap_err();
        assert!(err.contains("labmode"), "{err}");
        let c: ProbeConfig = parse_toml("state_dir = \"/p\"\n").unwrap();
        let err = c.validate(None).unwrap_err().to_string();
        assert!(err.contains("`collector`"), "{err}");
        let c: ProbeConfig = parse_toml("collector = \"ftp://x\"\nstate_dir = \"/p\"\n").unwrap();
        assert!(
            c.validate(None)
                .unwrap_err()
                .to_string()
                .contains("`collector`")
        );
        let c: ProbeConfig = parse_toml(
            "collector = \"https://[::1]:1\"\nstate_dir = \"/p\"\nicmp_socket = \"magic\"\n",
        )
        .unwrap();
        assert!(
            c.validate(None)
                .unwrap_err()
                .to_string()
                .contains("icmp_socket")
        );
    }

    #[test]
    fn several_collectors_are_listed_in_order() {
        let base = "state_dir = \"/p\"\n";
        let c: ProbeConfig = parse_toml(&format!(
            "{base}collectors = [\"https://a:7400\", \"https://[2001:db8::1]:7400\"]\n"
        ))
        .unwrap();
        let s = c.validate(None).unwrap();
        assert_eq!(
            s.collectors,
            ["https://a:7400", "https://[2001:db8::1]:7400"]
        );
        assert_eq!(s.first_collector(), "https://a:7400");
        let one: ProbeConfig =
            parse_toml(&format!("{base}collector = \"https://a:7400\"\n")).unwrap();
        assert_eq!(one.validate(None).unwrap().collectors, ["https://a:7400"]);
        for (text, needles) in [
            (
                "collector = \"https://a:1\"\ncollectors = [\"https://b:1\"]\n",
                &["`collectors`", "`collector`"][..],
            ),
            ("collectors = []\n", &["`collectors`", "empty"][..]),
            (
                "collectors = [\"https://a:1\", \"http://b:1\"]\n",
                &["`collectors[1]`", "https://"][..],
            ),
            (
                "collectors = [\"https://a:1\", \"https://a:1\"]\n",
                &["`collectors[1]`", "twice"][..],
            ),
        ] {
            let c: ProbeConfig = parse_toml(&format!("{base}{text}")).unwrap();
            let err = c.validate(None).unwrap_err().to_string();
            for needle in needles {
                assert!(err.contains(needle), "{needle:?} not in {err}");
            }
        }
    }

    #[test]
    fn metrics_listen_is_off_by_default_and_checked() {
        let base = "collector = \"https://a:1\"\nstate_dir = \"/p\"\n";
        let c: ProbeConfig = parse_toml(base).unwrap();
        assert_eq!(c.validate(None).unwrap().metrics_listen, None);
        let c: ProbeConfig =
            parse_toml(&format!("{base}metrics_listen = \"[::1]:9464\"\n")).unwrap();
        assert_eq!(
            c.validate(None).unwrap().metrics_listen,
            Some("[::1]:9464".parse().unwrap())
        );
        let c: ProbeConfig =
            parse_toml(&format!("{base}metrics_listen = \"localhost\"\n")).unwrap();
        let err = c.validate(None).unwrap_err().to_string();
        assert!(err.contains("`metrics_listen`"), "{err}");
    }
}
