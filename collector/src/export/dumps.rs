//! Daily open-data dumps: once a UTC day has ended (plus a grace period for late uploads),
//! its results are written to `<dir>/YYYY-MM-DD.<ext>` in each configured format, with a
//! `.sha256` beside each (`sha256sum -c` format) and an `index.json` listing them all
//! (signed in `index.json.sig` each time it is rewritten). The
//! probes' addresses in them are cut to their /48 (`export::public`). Each day is sealed by a
//! signed manifest that also names the previous day's ([`write_due`]): a hash chain anyone
//! can check with openssl and sha256sum (docs/export.md, docs/verify-dumps.sh).
//!
//! Every file is written to a temporary name, fsynced and renamed, so a dump that exists is
//! complete; days whose files exist are skipped, and missing days since the first stored
//! result are caught up at start. The clock is a parameter ([`write_due`]) so tests can run
//! days in any order; only [`run`] reads the OS clock.

use super::sign::OpenDataKey;
use super::{Format, row};
use crate::store::{ResultFilter, Store, StoreError};
use serde::{Deserialize, Serialize};
use sixmap_shared::UnixMicros;
use sixmap_shared::config::ConfigError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

const DAY_US: i64 = 86_400_000_000;

/// How far back catching up goes: a probe whose clock was wildly off (a result "from 1970")
/// must not make the collector write decades of empty files.
pub const MAX_CATCH_UP_DAYS: i64 = 366;

/// `[dumps]` in the collector config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DumpsConfig {
    /// Off by default: publishing raw results is the operator's decision (they hold probe
    /// addresses), like `raw_data_public`.
    pub enabled: bool,
    /// Default `<data_dir>/dumps`.
    pub dir: Option<PathBuf>,
    /// Default JSON Lines (complete, the API's own form) and Parquet (compact, typed).
    pub formats: Vec<String>,
    /// How long after a day ends its dump waits for results uploaded late (outboxes of
    /// probes that were offline); default one hour.
    pub delay_s: u64,
}

impl Default for DumpsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: None,
            formats: vec!["jsonl".into(), "parquet".into()],
            delay_s: 3600,
        }
    }
}

/// Validated dump settings; `None` in [`DumpsConfig::validate`] when disabled.
#[derive(Debug, Clone)]
pub struct Dumps {
    pub dir: PathBuf,
    pub formats: Vec<Format>,
    pub delay: Duration,
}

impl DumpsConfig {
    pub fn validate(
        self,
        data_dir: &Path,
        source: Option<&Path>,
    ) -> Result<Option<Dumps>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let mut formats = Vec::new();
        for name in &self.formats {
            let format = name.parse::<Format>().map_err(|e| {
                ConfigError::invalid("dumps.formats".to_owned(), source, e.to_string())
            })?;
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
        if formats.is_empty() {
            return Err(ConfigError::invalid(
                "dumps.formats".to_owned(),
                source,
                "name at least one format".to_owned(),
            ));
        }
        if self.delay_s > 7 * 86_400 {
            return Err(ConfigError::invalid(
                "dumps.delay_s".to_owned(),
                source,
                format!("{} s is more than a week", self.delay_s),
            ));
        }
        Ok(Some(Dumps {
            dir: self.dir.unwrap_or_else(|| data_dir.join("dumps")),
            formats,
            delay: Duration::from_secs(self.delay_s),
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("dump {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("dump {path}: {source}")]
    Export {
        path: PathBuf,
        source: super::ExportError,
    },
}

/// One file of `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub day: String,
    pub format: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub rows: u64,
}

fn day_name(day: i64) -> String {
    let (y, m, d) = row::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DumpError + '_ {
    move |source| DumpError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the dir.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DumpError> {
    let temp = temp_name(path);
    let mut file = std::fs::File::create(&temp).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    std::fs::rename(&temp, path).map_err(io(path))?;
    sync_dir(path)
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> Result<(), DumpError> {
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// A writer that hashes what passes through it.
struct Hashing {
    file: std::fs::File,
    digest: ring::digest::Context,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(data)?;
        self.digest.update(&data[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes one day's dump in one format; returns its index entry.
fn write_day(
    store: &dyn Store,
    dir: &Path,
    day: i64,
    format: Format,
) -> Result<IndexEntry, DumpError> {
    let name = format!("{}.{}", day_name(day), format.extension());
    let path = dir.join(&name);
    let temp = temp_name(&path);
    let file = std::fs::File::create(&temp).map_err(io(&path))?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    // The export writers own their output; this one reports the digest when dropped.
    struct Reporting(Option<Hashing>, std::sync::mpsc::SyncSender<Hashing>);
    impl Write for Reporting {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.as_mut().map_or(Ok(data.len()), |h| h.write(data))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.as_mut().map_or(Ok(()), Hashing::flush)
        }
    }
    impl Drop for Reporting {
        fn drop(&mut self) {
            if let Some(h) = self.0.take() {
                let _ = self.1.send(h);
            }
        }
    }
    let out = Reporting(
        Some(Hashing {
            file,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
        }),
        tx,
    );
    let filter = ResultFilter {
        from: Some(UnixMicros(day * DAY_US)),
        to: Some(UnixMicros((day + 1) * DAY_US)),
        ..ResultFilter::default()
    };
    // Public: the probes' addresses cut to their /48 (`public`).
    let writer = match super::writer(format, out) {
        Ok(writer) => Box::new(super::public::Masking(writer)),
        Err(source) => {
            let _ = std::fs::remove_file(&temp);
            return Err(DumpError::Export { path, source });
        }
    };
    let stats = match super::export_with(store, &filter, writer, &mut |_| {}) {
        Ok(stats) => stats,
        Err(source) => {
            let _ = std::fs::remove_file(&temp);
            return Err(DumpError::Export { path, source });
        }
    };
    let hashing = rx.recv().map_err(|_| DumpError::Io {
        path: path.clone(),
        source: std::io::Error::other("export writer kept its output"),
    })?;
    hashing.file.sync_all().map_err(io(&path))?;
    let sha256 = hex(hashing.digest.finish().as_ref());
    std::fs::rename(&temp, &path).map_err(io(&path))?;
    sync_dir(&path)?;
    let entry = IndexEntry {
        day: day_name(day),
        format: format.name().into(),
        file: name.clone(),
        bytes: hashing.bytes,
        sha256: sha256.clone(),
        rows: stats.rows,
    };
    write_atomically(
        &dir.join(format!("{name}.sha256")),
        format!("{sha256}  {name}\n").as_bytes(),
    )?;
    Ok(entry)
}

/// SHA-256 of a file, hex, read in blocks.
fn hash_file(path: &Path) -> Result<String, DumpError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut block = vec![0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut file, &mut block).map_err(io(path))?;
        if n == 0 {
            return Ok(hex(digest.finish().as_ref()));
        }
        digest.update(&block[..n]);
    }
}

/// A day's manifest: `YYYY-MM-DD.manifest`.
pub fn manifest_name(day: &str) -> String {
    format!("{day}.{MANIFEST_EXTENSION}")
}

/// Extension of the daily manifests; their signatures add `.sig`.
pub const MANIFEST_EXTENSION: &str = "manifest";

/// The first line of every manifest. The same key signs manifests and published reports; a
/// verifier that checks this line cannot be handed a signed report as a manifest (no report
/// starts with it). `sha256sum -c` skips it as a comment.
pub const MANIFEST_HEADER: &str = "# sixmap open-data manifest 1";

/// The lines of a manifest (`sha256sum` format: hex digest, two spaces, file name).
fn manifest_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once("  "))
        .map(|(hash, name)| (hash.to_owned(), name.to_owned()))
        .collect()
}

/// The newest manifest of a day before `day` in `dir`, with its hash: the link the next
/// manifest names.
fn previous_manifest(dir: &Path, day: &str) -> Result<Option<(String, String)>, DumpError> {
    let before = manifest_name(day);
    let mut newest: Option<String> = None;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let Some(name) = name.to_str() else { continue };
        // `YYYY-MM-DD.manifest` sorts by day.
        if name.len() == before.len()
            && name.ends_with(MANIFEST_EXTENSION)
            && name < before.as_str()
            && newest.as_deref().is_none_or(|n| n < name)
        {
            newest = Some(name.to_owned());
        }
    }
    newest
        .map(|name| Ok((hash_file(&dir.join(&name))?, name)))
        .transpose()
}

/// Writes every missing dump of the days that ended at least `delay` before `now`, from the
/// day of the oldest stored result on, and rewrites `index.json`. Returns the files written.
///
/// Each day is then sealed by its manifest, `YYYY-MM-DD.manifest` in `sha256sum` format: a
/// line per file of the day and one naming the previous day's manifest with its hash (the
/// chain across days), signed with `key` in `YYYY-MM-DD.manifest.sig` (raw Ed25519, 64
/// bytes). A sealed day gets no new files: a format added later starts with the next day, so
/// no signed manifest ever changes. A file of a sealed day that was lost is written again
/// and, if its bytes differ from what the manifest says, logged: the manifest still tells
/// anyone that the file changed.
pub fn write_due(
    store: &dyn Store,
    dumps: &Dumps,
    key: &OpenDataKey,
    now: UnixMicros,
) -> Result<Vec<IndexEntry>, DumpError> {
    std::fs::create_dir_all(&dumps.dir).map_err(io(&dumps.dir))?;
    let index_path = dumps.dir.join("index.json");
    let mut index: Vec<IndexEntry> = std::fs::read(&index_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut first = None;
    store.scan_results_between(UnixMicros(i64::MIN), UnixMicros(i64::MAX), &mut |r| {
        first = Some(r.result.started_at);
        false
    })?;
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    let delay = i64::try_from(dumps.delay.as_micros()).unwrap_or(i64::MAX);
    // The last day whose end (plus the grace period) has passed.
    let last = (now.0.saturating_sub(delay)).div_euclid(DAY_US) - 1;
    let mut written = Vec::new();
    let oldest = first.0.div_euclid(DAY_US).max(last - MAX_CATCH_UP_DAYS + 1);
    let mut previous = previous_manifest(&dumps.dir, &day_name(oldest))?;
    for day in oldest..=last {
        let manifest = manifest_name(&day_name(day));
        let manifest_path = dumps.dir.join(&manifest);
        let sealed = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => Some(manifest_lines(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(io(&manifest_path)(source)),
        };
        let mut lines = Vec::new();
        for &format in &dumps.formats {
            let name = format!("{}.{}", day_name(day), format.extension());
            let listed = sealed
                .as_ref()
                .map(|lines| lines.iter().find(|(_, n)| *n == name));
            if listed == Some(None) {
                continue;
            }
            let path = dumps.dir.join(&name);
            if sealed.is_some()
                && path.exists()
                && dumps.dir.join(format!("{name}.sha256")).exists()
            {
                continue;
            }
            // Not sealed yet: written again even when a file is there. It was never signed, and
            // one written before this release (or before addresses were cut to /48) must not
            // be sealed as it is.
            let sha256 = {
                let entry = write_day(store, &dumps.dir, day, format)?;
                info!(file = %entry.file, rows = entry.rows, bytes = entry.bytes, "daily dump written");
                if let Some(Some((hash, _))) = listed
                    && *hash != entry.sha256
                {
                    warn!(file = %entry.file, manifest = %manifest, "a lost dump was written again with other bytes than its signed manifest names");
                }
                index.retain(|e| e.file != entry.file);
                index.push(entry.clone());
                let sha256 = entry.sha256.clone();
                written.push(entry);
                sha256
            };
            let sidecar = format!("{name}.sha256");
            let sidecar_hash = hash_file(&dumps.dir.join(&sidecar))?;
            lines.push((sha256, name));
            // The sidecar is signed too: whoever checks one file with it checks signed bytes.
            lines.push((sidecar_hash, sidecar));
        }
        if sealed.is_none() {
            lines.extend(previous.clone());
            let text: String = std::iter::once(format!("{MANIFEST_HEADER}\n"))
                .chain(lines.iter().map(|(hash, name)| format!("{hash}  {name}\n")))
                .collect();
            // The signature first: a manifest that exists is complete and signed.
            write_atomically(
                &dumps.dir.join(format!("{manifest}.sig")),
                &key.sign(text.as_bytes()),
            )?;
            write_atomically(&manifest_path, text.as_bytes())?;
            info!(%manifest, files = lines.len(), key = key.key_id(), "daily dump sealed and signed");
        }
        previous = Some((hash_file(&manifest_path)?, manifest));
    }
    if !written.is_empty() {
        index.sort_by(|a, b| (&a.day, &a.file).cmp(&(&b.day, &b.file)));
        let json = serde_json::to_vec_pretty(&index).map_err(|e| DumpError::Io {
            path: index_path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomically(&index_path, &json)?;
        // Re-signed at each rewrite (it lists every day, so no manifest can hold it).
        write_atomically(&dumps.dir.join("index.json.sig"), &key.sign(&json))?;
    }
    Ok(written)
}

/// The collector's dump task: catches up at start, then checks every ten minutes.
pub async fn run(store: Arc<dyn Store>, dumps: Dumps, key: Arc<OpenDataKey>) {
    loop {
        let (store2, dumps2, key2) = (store.clone(), dumps.clone(), key.clone());
        match tokio::task::spawn_blocking(move || {
            write_due(store2.as_ref(), &dumps2, &key2, UnixMicros::now())
        })
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "daily dumps failed; retrying in 10 min"),
            Err(e) => warn!(error = %e, "daily dump task failed; retrying in 10 min"),
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_key() {
        let config = DumpsConfig {
            enabled: true,
            formats: vec!["jsonl".into(), "xml".into()],
            ..DumpsConfig::default()
        };
        let err = config
            .validate(Path::new("/d"), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("dumps.formats") && err.contains("xml"),
            "{err}"
        );
        let off = DumpsConfig::default()
            .validate(Path::new("/d"), None)
            .unwrap();
        assert!(off.is_none());
        let on = DumpsConfig {
            enabled: true,
            ..DumpsConfig::default()
        }
        .validate(Path::new("/d"), None)
        .unwrap()
        .unwrap();
        assert_eq!(on.dir, Path::new("/d/dumps"));
        assert_eq!(on.formats, [Format::Jsonl, Format::Parquet]);
    }

    #[test]
    fn day_names_are_utc_dates() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(20_513), "2026-03-01");
    }
}
