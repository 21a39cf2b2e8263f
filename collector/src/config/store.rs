//! `[store]`: which backend keeps the collector's data (sled or ClickHouse), checked into
//! [`StoreSettings`].

use serde::Deserialize;
use sixmap_shared::config::ConfigError;
use std::path::Path;
use std::time::Duration;

/// `[store]`: which backend keeps the collector's data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `"sled"` (embedded, in `data_dir`; the default) or `"clickhouse"`.
    pub backend: BackendName,
    /// `[store.clickhouse]`, used when `backend = "clickhouse"`.
    pub clickhouse: ClickHouseToml,
    /// sled's page cache in MiB (default `store::DEFAULT_CACHE_MB`): memory for speed; the
    /// collector's resident memory at full ingest is about this plus 500 MiB of sessions.
    pub cache_mb: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    #[default]
    Sled,
    Clickhouse,
}

/// `[store.clickhouse]`: a ClickHouse server (or cluster) over its HTTP interface.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseToml {
    /// HTTP interface, `http://host:port` (no TLS: keep it on loopback or a private network).
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
    /// Prepended to table names, for several deployments in one database.
    pub table_prefix: String,
    /// A cluster of the servers' `remote_servers`: results and records go to Distributed
    /// tables over `<table>_local` tables on every shard.
    pub cluster: Option<String>,
    /// With `cluster`: every shard's HTTP interface, where the local tables are created at
    /// start (default: `url` only, i.e. they were created there beforehand).
    pub shard_urls: Vec<String>,
    /// Deadline of each request to ClickHouse, in seconds.
    pub timeout_s: u64,
}

impl std::fmt::Debug for ClickHouseToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseToml")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Default for ClickHouseToml {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "sixmap".into(),
            user: "default".into(),
            password: String::new(),
            table_prefix: String::new(),
            cluster: None,
            shard_urls: Vec::new(),
            timeout_s: 30,
        }
    }
}

/// The store a collector opens.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// sled in `data_dir`, with a page cache of this many MiB.
    Sled {
        cache_mb: u64,
    },
    ClickHouse(crate::store::ClickHouseConfig),
}

/// An identifier ClickHouse takes unquoted: letters, digits, underscores, not starting with
/// a digit.
fn is_identifier(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !text.starts_with(|c: char| c.is_ascii_digit())
}

fn http_url(text: &str) -> Result<(), String> {
    let uri: hyper::Uri = text
        .parse()
        .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{text:?}: only http:// is supported (keep ClickHouse on loopback or a private network)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("{text:?}: no query string (use the other keys)"));
    }
    Ok(())
}

impl StoreConfig {
    pub(super) fn validate(&self, source: Option<&Path>) -> Result<StoreSettings, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::invalid(key, source, reason);
        if self.backend == BackendName::Sled {
            let cache_mb = self.cache_mb.unwrap_or(crate::store::DEFAULT_CACHE_MB);
            if !(8..=1 << 20).contains(&cache_mb) {
                return Err(invalid(
                    "store.cache_mb",
                    format!("{cache_mb} is not between 8 and 1048576 (MiB)"),
                ));
            }
            return Ok(StoreSettings::Sled { cache_mb });
        }
        let ch = &self.clickhouse;
        http_url(&ch.url).map_err(|reason| invalid("store.clickhouse.url", reason))?;
        for (i, url) in ch.shard_urls.iter().enumerate() {
            http_url(url)
                .map_err(|reason| invalid(&format!("store.clickhouse.shard_urls[{i}]"), reason))?;
        }
        if ch.database.is_empty() || !is_identifier(&ch.database) {
            return Err(invalid(
                "store.clickhouse.database",
                format!(
                    "{:?}: letters, digits and _ only, not starting with a digit",
                    ch.database
                ),
            ));
        }
        if !is_identifier(&ch.table_prefix) {
            return Err(invalid(
                "store.clickhouse.table_prefix",
                format!("{:?}: letters, digits and _ only", ch.table_prefix),
            ));
        }
        if let Some(cluster) = &ch.cluster
            && (cluster.is_empty() || !is_identifier(cluster))
        {
            return Err(invalid(
                "store.clickhouse.cluster",
                format!("{cluster:?}: letters, digits and _ only"),
            ));
        }
        if ch.cluster.is_none() && !ch.shard_urls.is_empty() {
            return Err(invalid(
                "store.clickhouse.shard_urls",
                "only used with store.clickhouse.cluster".into(),
            ));
        }
        if ch.user.is_empty() {
            return Err(invalid("store.clickhouse.user", "must not be empty".into()));
        }
        if ch.timeout_s == 0 || ch.timeout_s > 3600 {
            return Err(invalid(
                "store.clickhouse.timeout_s",
                "must be 1..=3600".into(),
            ));
        }
        Ok(StoreSettings::ClickHouse(crate::store::ClickHouseConfig {
            url: ch.url.clone(),
            database: ch.database.clone(),
            user: ch.user.clone(),
            password: ch.password.clone(),
            table_prefix: ch.table_prefix.clone(),
            cluster: ch.cluster.clone(),
            shard_urls: ch.shard_urls.clone(),
            timeout: Duration::from_secs(ch.timeout_s),
        }))
    }
}
