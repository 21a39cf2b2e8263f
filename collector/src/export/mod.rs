//! Bulk exports of stored results in researchers' formats (issue #9): JSON Lines, CSV,
//! Parquet and RIPE Atlas-compatible JSON.
//!
//! Every format is a streaming [`ExportWriter`] fed one [`StoredResult`] at a time in the
//! order [`scan_filtered`] visits them, so memory stays constant whatever the export's size
//! (Parquet buffers one row group). The same writers serve the CLI (`sixmap-collector
//! export`), the HTTP endpoint (`GET /api/v1/export`) and the daily open-data dumps.
//! Formats and columns are documented in `docs/export.md`.

pub mod atlas;
pub mod cli;
pub mod csv;
mod dns_wire;
pub mod dumps;
pub mod http;
pub mod jsonl;
pub mod parquet;
pub mod progress;
pub mod remote;
pub mod row;
#[doc(hidden)]
pub mod samples;

use crate::store::{ResultFilter, Store, StoreError, StoredResult, scan_filtered};
use std::fmt;
use std::io::Write;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("unknown export format {0:?}: expected jsonl, csv, parquet or atlas")]
    Format(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
    Atlas,
}

impl Format {
    pub const ALL: [Self; 4] = [Self::Jsonl, Self::Csv, Self::Parquet, Self::Atlas];

    pub fn name(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Atlas => "atlas",
        }
    }

    /// File name extension of exports and dumps (`atlas` is JSON Lines of Atlas results).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Atlas => "atlas.jsonl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jsonl | Self::Atlas => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8; header=present",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = ExportError;
    fn from_str(text: &str) -> Result<Self, ExportError> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == text)
            .ok_or_else(|| ExportError::Format(text.chars().take(40).collect()))
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Results written as rows (lines, records).
    pub rows: u64,
    /// Results selected but left out because the format has no form for their kind (Atlas).
    pub skipped: u64,
}

/// One export format writing to one output.
pub trait ExportWriter: Send {
    /// Writes one result; `false` when the format has no form for it (counted as skipped).
    fn write(&mut self, result: &StoredResult) -> Result<bool, ExportError>;
    /// Writes what is buffered and the format's trailer (Parquet's footer), then flushes.
    fn finish(self: Box<Self>) -> Result<(), ExportError>;
}

/// A writer of `format` over `out`.
pub fn writer<W: Write + Send + 'static>(
    format: Format,
    out: W,
) -> Result<Box<dyn ExportWriter>, ExportError> {
    Ok(match format {
        Format::Jsonl => Box::new(jsonl::JsonlWriter::new(out)),
        Format::Csv => Box::new(csv::CsvWriter::new(out)?),
        Format::Parquet => Box::new(parquet::ParquetWriter::new(out)?),
        Format::Atlas => Box::new(atlas::AtlasWriter::new(out)),
    })
}

/// Writes every result `filter` selects from `store` to `out` in `format`, calling
/// `progress` now and then (every 4096 results) with the counts so far.
pub fn export<W: Write + Send + 'static>(
    store: &dyn Store,
    filter: &ResultFilter,
    format: Format,
    out: W,
    progress: &mut dyn FnMut(&ExportStats),
) -> Result<ExportStats, ExportError> {
    export_with(store, filter, writer(format, out)?, progress)
}

/// [`export`] through a writer built by the caller.
///
/// The store is read and decoded on a thread of its own while this one formats, so an
/// export on two cores runs at the pace of the slower half rather than of both added up.
/// The reader stays at most a few chunks ahead, and stops when the writer fails.
pub fn export_with(
    store: &dyn Store,
    filter: &ResultFilter,
    mut writer: Box<dyn ExportWriter>,
    progress: &mut dyn FnMut(&ExportStats),
) -> Result<ExportStats, ExportError> {
    const CHUNK: usize = 512;
    let mut stats = ExportStats::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<StoredResult>>(4);
    std::thread::scope(|scope| {
        // The scan is part of the caller's reader job: it stops when the request goes.
        let job = crate::limits::readers::job();
        let reader = scope.spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut open = true;
            job.enter(|| {
                scan_filtered(store, filter, None, &mut |stored| {
                    chunk.push(stored);
                    if chunk.len() == CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        open = tx.send(full).is_ok();
                    }
                    open
                })
            })?;
            if open && !chunk.is_empty() {
                // The writer may have stopped meanwhile; then nobody wants the rest.
                let _ = tx.send(chunk);
            }
            Ok::<(), StoreError>(())
        });
        let mut failure = None;
        'chunks: for chunk in &rx {
            for stored in &chunk {
                match writer.write(stored) {
                    Ok(true) => stats.rows += 1,
                    Ok(false) => stats.skipped += 1,
                    Err(e) => {
                        failure = Some(e);
                        break 'chunks;
                    }
                }
                if (stats.rows + stats.skipped) % 4096 == 0 {
                    progress(&stats);
                }
            }
        }
        // Ends the reader at its next chunk if the writer stopped early.
        drop(rx);
        let scanned = reader
            .join()
            .map_err(|_| StoreError::Backend("the export's store reader panicked".into()))?;
        if let Some(e) = failure {
            return Err(e);
        }
        scanned?;
        writer.finish()?;
        progress(&stats);
        Ok(stats)
    })
}
