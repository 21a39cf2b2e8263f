//! `sixmap-probe setup`: writes the config file of an installed probe, so a volunteer gives the
//! collector URL and the enrollment token once and never edits TOML by hand.
//!
//! Setup checks, then writes the file: the token must have its form (`<secret>.<CA
//! fingerprint>`, [`render`]), and each collector must answer over TLS with the CA the token
//! names ([`check_collector`], skipped by `--no-check` for offline installs), so a mistyped
//! URL or token fails here, with nothing written, not later in the daemon's log. The check
//! is a TLS handshake only: the token is not sent, so it stays unused.
//!
//! The identity is made by the daemon on its first start, which enrolls with the token and
//! keeps the identity in its state directory (`identity`, `session`). The file holds the
//! token, so it is readable by root and the service's group only (0640), and replaced
//! atomically (a half-written config never exists).

use crate::collector_tls;
use crate::config::ProbeConfig;
use sixmap_shared::enrollment::EnrollmentToken;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the Debian package's systemd unit reads the config.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/sixmap/probe.toml";
/// The unit's `StateDirectory=`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sixmap-probe";
/// The system group the package creates for the service.
pub const SERVICE_GROUP: &str = "sixmap-probe";

/// How long the live check waits for one collector (connection and TLS handshake).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "collector {url}: {reason}. Nothing was written; check the URL and the token (or give \
         --no-check to write the config without this check, e.g. offline)"
    )]
    Check { url: String, reason: String },
    #[error("{path} exists; give --force to replace it (the old file is overwritten)")]
    Exists { path: PathBuf },
    #[error("group {0:?} does not exist (it is made by the sixmap-probe package); give --group")]
    NoGroup(String),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a volunteer gives at setup.
#[derive(Debug, Clone)]
pub struct SetupValues {
    /// One, or several sharing a store (tried in order).
    pub collectors: Vec<String>,
    pub token: String,
    pub hostname: String,
    pub state_dir: PathBuf,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The config file's text. It is parsed and validated back before it is returned, so setup
/// never writes a file the daemon would refuse.
pub fn render(values: &SetupValues) -> Result<String, SetupError> {
    let token = values.token.trim();
    if token.is_empty() {
        return Err(SetupError::Invalid(
            "the enrollment token is empty: ask the collector's operator for one".into(),
        ));
    }
    if EnrollmentToken::parse(token).is_none() {
        // The text is not repeated: it may be a real token cut short, and it is a secret.
        return Err(SetupError::Invalid(format!(
            "the enrollment token must be 64 hex digits, a dot and 64 more (the secret and \
             the collector CA's fingerprint), as `sixmap-collector token create` prints it; \
             this one has {} characters: copy it whole",
            token.chars().count()
        )));
    }
    let state_dir = values.state_dir.to_str().ok_or_else(|| {
        SetupError::Invalid(format!(
            "state directory {} is not UTF-8",
            values.state_dir.display()
        ))
    })?;
    let mut text = String::from(
        "# sixmap-probe configuration, written by `sixmap-probe setup`.\n\
         # Every key: /usr/share/doc/sixmap-probe/examples/probe.toml\n\n",
    );
    match &values.collectors[..] {
        [] => {
            return Err(SetupError::Invalid(
                "no collector URL given: give --collector".into(),
            ));
        }
        [one] => {
            text += "# Collector gRPC endpoint.\n";
            text += &format!("collector = {}\n", quoted(one));
        }
        several => {
            text += "# Collectors sharing one store, tried in order; the probe fails over.\n";
            let list: Vec<String> = several.iter().map(|c| quoted(c)).collect();
            text += &format!("collectors = [{}]\n", list.join(", "));
        }
    }
    text += "# Identity and boot counter (made on first start), outbox and status.\n";
    text += &format!("state_dir = {}\n", quoted(state_dir));
    text += "# Used once, to enroll, while the state directory holds no identity.\n";
    text += &format!("enrollment_token = {}\n", quoted(values.token.trim()));
    text += "# Name shown in the collector's dashboard (may be empty).\n";
    text += &format!("hostname = {}\n", quoted(&values.hostname));
    match (values.latitude, values.longitude) {
        (Some(latitude), Some(longitude)) => {
            text += "# Where the probe is, sent rounded to 0.1 degree (about 11 km).\n";
            // `{:?}` always writes a decimal point, so TOML reads a float.
            text += &format!("latitude = {latitude:?}\nlongitude = {longitude:?}\n");
        }
        (None, None) => {}
        _ => {
            return Err(SetupError::Invalid(
                "give both --latitude and --longitude, or neither".into(),
            ));
        }
    }
    let config: ProbeConfig =
        sixmap_shared::config::parse_toml(&text).map_err(SetupError::Invalid)?;
    config
        .validate(None)
        .map_err(|e| SetupError::Invalid(e.to_string()))?;
    Ok(text)
}

/// Checks that the collector at `url` answers over TLS (1.3) with the CA whose fingerprint
/// `token` carries, within `timeout`, as enrollment will need. Only the handshake is made:
/// the token itself is not sent.
pub async fn check_collector(url: &str, token: &str, timeout: Duration) -> Result<(), SetupError> {
    let failed = |reason: String| SetupError::Check {
        url: url.to_owned(),
        reason,
    };
    let token = EnrollmentToken::parse(token.trim())
        .ok_or_else(|| SetupError::Invalid("the enrollment token is malformed".into()))?;
    let tls = collector_tls::enrollment_config(token.ca_fingerprint)
        .map_err(|e| failed(e.to_string()))?;
    let attempt = collector_tls::channel(url, tls, |endpoint| {
        endpoint.connect_timeout(timeout).timeout(timeout)
    });
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(failed(format!(
            "no TLS answer within {} s",
            timeout.as_secs()
        ))),
        Ok(Err(collector_tls::ConnectError::Transport { source, .. })) => Err(failed(format!(
            "cannot connect: {}",
            sixmap_shared::errors::chain(&source)
        ))),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Ok(Ok(_channel)) => Ok(()),
    }
}

/// The numeric id of a group, through NSS (`getent`), as `chown` needs it.
pub fn group_id(name: &str) -> Result<u32, SetupError> {
    let output = std::process::Command::new("getent")
        .args(["group", name])
        .output()
        .map_err(|source| SetupError::Io {
            action: "run",
            path: "getent".into(),
            source,
        })?;
    if !output.status.success() {
        return Err(SetupError::NoGroup(name.to_owned()));
    }
    // name:password:gid:members
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .and_then(|line| line.split(':').nth(2))
        .and_then(|gid| gid.trim().parse().ok())
        .ok_or_else(|| SetupError::NoGroup(name.to_owned()))
}

/// Writes `text` to `path` with mode 0640 and group `gid` (unchanged if `None`), atomically
/// and durably; refuses to replace an existing file unless `force`.
pub fn write_config(
    path: &Path,
    text: &str,
    gid: Option<u32>,
    force: bool,
) -> Result<(), SetupError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| SetupError::Io {
            action,
            path,
            source,
        }
    };
    if path.exists() && !force {
        return Err(SetupError::Exists {
            path: path.to_owned(),
        });
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io("create", dir))?;
    let tmp = path.with_extension("toml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    if gid.is_some() {
        std::os::unix::fs::chown(&tmp, None, gid).map_err(io("change the group of", &tmp))?;
    }
    // The umask may have narrowed the mode given at creation.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o640))
        .map_err(io("set the mode of", &tmp))?;
    file.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        // Persists the rename; failing here only weakens durability.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A well-formed token: 64 hex digits, a dot, a CA fingerprint.
    const TOKEN: &str = "5555555555555555555555555555555555555555555555555555555555555555.\
                         0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn values() -> SetupValues {
        SetupValues {
            collectors: vec!["https://collector.example.net:7400".into()],
            token: TOKEN.into(),
            hostname: "pi (o'brien's kitchen)".into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            latitude: Some(52.0),
            longitude: Some(4.89),
        }
    }

    #[test]
    fn rendered_config_reads_back_with_the_given_values() {
        let text = render(&values()).unwrap();
        let config: ProbeConfig = sixmap_shared::config::parse_toml(&text).unwrap();
        assert_eq!(config.enrollment_token.as_deref(), Some(TOKEN));
        assert_eq!(config.hostname, "pi (o'brien's kitchen)");
        assert_eq!(config.state_dir, Path::new(DEFAULT_STATE_DIR));
        assert!(!config.lab_mode);
        let settings = config.validate(None).unwrap();
        let location = settings.location.unwrap();
        assert_eq!((location.latitude(), location.longitude()), (52.0, 4.9));
    }

    #[test]
    fn bad_values_are_refused_before_anything_is_written() {
        let mut v = values();
        v.collectors = vec!["collector.example.net:7400".into()];
        assert!(render(&v).unwrap_err().to_string().contains("`collector`"));
        let mut v = values();
        v.collectors = Vec::new();
        assert!(render(&v).unwrap_err().to_string().contains("--collector"));
        let mut v = values();
        v.token = "  ".into();
        assert!(render(&v).unwrap_err().to_string().contains("token"));
        // Not the token's form: refused, without repeating what may be a secret.
        for bad in [
            "abc",
            &TOKEN[..100],
            &TOKEN.replace('.', ""),
            &TOKEN.to_uppercase(),
            &format!("{TOKEN}0"),
        ] {
            v.token = bad.to_owned();
            let e = render(&v).unwrap_err().to_string();
            assert!(
                e.contains("64 hex digits") && !e.contains(bad),
                "{bad}: {e}"
            );
        }
        let mut v = values();
        v.longitude = None;
        assert!(render(&v).unwrap_err().to_string().contains("both"));
    }

    #[test]
    fn several_collectors_become_a_list() {
        let mut v = values();
        v.collectors.push("https://[2001:db8::2]:7400".into());
        let text = render(&v).unwrap();
        let settings = sixmap_shared::config::parse_toml::<ProbeConfig>(&text)
            .unwrap()
            .validate(None)
            .unwrap();
        assert_eq!(
            settings.collectors,
            [
                "https://collector.example.net:7400",
                "https://[2001:db8::2]:7400"
            ]
        );
        v.collectors[1] = "http://b:1".into();
        assert!(
            render(&v)
                .unwrap_err()
                .to_string()
                .contains("collectors[1]")
        );
    }

    #[test]
    fn config_is_written_0640_and_not_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/sixmap/probe.toml");
        write_config(&path, "a = 1\n", None, false).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        let err = write_config(&path, "a = 2\n", None, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        let gid = meta.gid();
        write_config(&path, "a = 2\n", Some(gid), true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 2\n");
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../deploy/probe.example.toml");
        let config: ProbeConfig = sixmap_shared::config::parse_toml(text).unwrap();
        assert_eq!(config.state_dir, Path::new(DEFAULT_STATE_DIR));
        config.validate(None).unwrap();
    }

    #[test]
    fn unknown_groups_are_named() {
        let err = group_id("sixmap-no-such-group").unwrap_err().to_string();
        assert!(err.contains("sixmap-no-such-group"), "{err}");
        assert_eq!(group_id("root").unwrap(), 0);
    }
}
