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
pub(crate) mod dns_wire;
pub mod dumps;
pub mod http;
pub mod jsonl;
pub mod parquet;
pub mod progress;
pub mod public;
pub mod remote;
pub mod row;
#[doc(hidden)]
pub mod samples;
mod scan;
pub mod sign;

use crate::store::{ResultFilter, Store, StoreError, StoredResult};
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
/// The store is read on a thread of its own and decoded on others (`scan`) while this one
/// formats, so an export runs at the pace of the writer rather than of the decoding.
pub fn export_with(
    store: &dyn Store,
    filter: &ResultFilter,
    mut writer: Box<dyn ExportWriter>,
    progress: &mut dyn FnMut(&ExportStats),
) -> Result<ExportStats, ExportError> {
    let mut stats = ExportStats::default();
    scan::in_order(store, filter, &mut |chunk| {
        for stored in chunk {
            if writer.write(stored)? {
                stats.rows += 1;
            } else {
                stats.skipped += 1;
            }
            if (stats.rows + stats.skipped) % 4096 == 0 {
                progress(&stats);
            }
        }
        Ok(())
    })?;
    writer.finish()?;
    progress(&stats);
    Ok(stats)
}
