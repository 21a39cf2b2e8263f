//! `sixmap-collector export`: from the local store (collector stopped: sled is
//! single-process) or from a running collector's `GET /api/v1/export`, to a file or stdout,
//! with progress on stderr. The filter flags become the endpoint's query parameters, so both
//! paths validate them with the same `ResultFilter::from_pairs`.

use super::progress::Progress;
use super::{ExportError, ExportStats, Format, remote};
use crate::store::filter::FilterError;
use crate::store::{ResultFilter, SledStore, StoreError};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// jsonl, csv, parquet or atlas.
    #[arg(long)]
    pub format: String,
    /// Where to write; `-` (the default) is stdout. A file appears only once complete.
    #[arg(long, default_value = "-")]
    pub output: String,
    /// Start time at or after (2026-03-01, 2026-03-01T12:00:00Z or µs since 1970).
    #[arg(long)]
    pub from: Option<String>,
    /// Start time before.
    #[arg(long)]
    pub to: Option<String>,
    /// Probe id (16 hex digits).
    #[arg(long)]
    pub probe: Option<String>,
    /// Task id (a number, as results carry it).
    #[arg(long)]
    pub task: Option<String>,
    /// Campaign id: only the results of its tasks.
    #[arg(long)]
    pub campaign: Option<String>,
    /// Origin AS of the probe (3320 or AS3320).
    #[arg(long)]
    pub probe_asn: Option<String>,
    /// Country of the probe's origin (ISO 3166-1 alpha-2: FR, de).
    #[arg(long)]
    pub probe_country: Option<String>,
    /// Origin AS of the destination (3320 or AS3320).
    #[arg(long)]
    pub target_asn: Option<String>,
    /// Country of the destination (ISO 3166-1 alpha-2).
    #[arg(long)]
    pub target_country: Option<String>,
    /// Destination address or prefix (2001:db8::/32).
    #[arg(long)]
    pub target: Option<String>,
    /// Measurement kind (ping, traceroute, dns, http, ...) or `failed`.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Read the local store in this data dir (the collector must be stopped).
    #[arg(long, conflicts_with = "url")]
    pub data_dir: Option<PathBuf>,
    /// Or ask a running collector: its HTTP API, http://HOST:PORT.
    #[arg(long, alias = "collector")]
    pub url: Option<String>,
    /// API token for --url (a researcher's, unless raw data is public). Default:
    /// $SIXMAP_API_TOKEN.
    #[arg(long, requires = "url")]
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--format: {0}")]
    Format(ExportError),
    #[error("filter: {0}")]
    Filter(#[from] FilterError),
    #[error("give --data-dir (local store, collector stopped) or --url (running collector)")]
    Source,
    #[error("{0} holds no sixmap store")]
    NoStore(PathBuf),
    #[error(
        "opening {path} (if a collector is running on it, use --url with its HTTP API): {source}"
    )]
    Open { path: PathBuf, source: StoreError },
    #[error("--output {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
}

impl ExportArgs {
    /// The filter flags as the endpoint's query pairs.
    pub fn filter_pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("probe", &self.probe),
            ("task", &self.task),
            ("campaign", &self.campaign),
            ("probe_asn", &self.probe_asn),
            ("probe_country", &self.probe_country),
            ("target_asn", &self.target_asn),
            ("target_country", &self.target_country),
            ("target", &self.target),
            ("type", &self.kind),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

/// Where the export goes: stdout, or a temporary file renamed over `path` when complete.
enum Output {
    Stdout,
    File { temp: PathBuf, path: PathBuf },
}

impl Output {
    fn open(spec: &str) -> Result<(Self, Box<dyn Write + Send>), CliError> {
        if spec == "-" {
            return Ok((Self::Stdout, Box::new(std::io::stdout())));
        }
        let path = PathBuf::from(spec);
        let temp = temp_path(&path);
        let file = std::fs::File::create(&temp).map_err(|source| CliError::Output {
            path: path.clone(),
            source,
        })?;
        Ok((Self::File { temp, path }, Box::new(file)))
    }

    fn commit(self) -> Result<(), CliError> {
        if let Self::File { temp, path } = self {
            let fail = |source| CliError::Output {
                path: path.clone(),
                source,
            };
            std::fs::File::open(&temp)
                .and_then(|f| f.sync_all())
                .map_err(fail)?;
            std::fs::rename(&temp, &path).map_err(fail)?;
        }
        Ok(())
    }

    fn discard(self) {
        if let Self::File { temp, .. } = self {
            let _ = std::fs::remove_file(temp);
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Runs the export the arguments describe; the counts are `None` when a running collector's
/// trailers did not come through (a proxy that drops them).
pub fn run(args: &ExportArgs) -> Result<Option<ExportStats>, CliError> {
    let format: Format = args.format.parse().map_err(CliError::Format)?;
    // Validate the filter locally first: the same errors, before any I/O.
    let filter = ResultFilter::from_pairs(args.filter_pairs(), &[])?;
    let mut progress = Progress::default();
    let result = match (&args.data_dir, &args.url) {
        (Some(dir), None) => {
            if !dir.join("conf").exists() {
                return Err(CliError::NoStore(dir.clone()));
            }
            let store = SledStore::open(dir).map_err(|source| CliError::Open {
                path: dir.clone(),
                source,
            })?;
            let (output, out) = Output::open(&args.output)?;
            match super::export(&store, &filter, format, out, &mut |s| progress.rows(s)) {
                Ok(stats) => output.commit().map(|()| Some(stats)),
                Err(e) => {
                    output.discard();
                    Err(e.into())
                }
            }
        }
        (None, Some(url)) => {
            let token = args
                .token
                .clone()
                .or_else(|| std::env::var("SIXMAP_API_TOKEN").ok())
                .filter(|t| !t.is_empty());
            let mut query = format!("format={}", format.name());
            for (name, value) in args.filter_pairs() {
                query.push_str(&format!("&{name}={}", remote::encode(value)));
            }
            let (output, mut out) = Output::open(&args.output)?;
            match remote::fetch(url, token.as_deref(), &query, &mut out, &mut |b| {
                progress.bytes(b)
            }) {
                Ok(stats) => {
                    drop(out);
                    output.commit().map(|()| stats)
                }
                Err(e) => {
                    drop(out);
                    output.discard();
                    Err(e.into())
                }
            }
        }
        _ => return Err(CliError::Source),
    };
    match &result {
        Ok(Some(stats)) => progress.finish(stats),
        Ok(None) => progress.finish_uncounted(),
        Err(_) => {}
    }
    result
}
