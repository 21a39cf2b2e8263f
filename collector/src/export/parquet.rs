//! Parquet: the CSV columns ([`row::COLUMNS`]) with their types (INT64, DOUBLE, BOOLEAN,
//! UTF-8 strings, `started_at` as INT64 TIMESTAMP(MICROS, UTC)), absent values as nulls,
//! row groups of [`ROW_GROUP_ROWS`] rows, snappy-compressed.
//!
//! Written with the `parquet` crate's own column writers rather than through arrow: the
//! arrow crates would more than double what the collector compiles for a flat table we can
//! fill column by column ourselves. Snappy comes from the pure-Rust `snap` crate (no C build).

use super::row::{self, COLUMNS, Cell, ColumnType};
use super::{ExportError, ExportWriter};
use crate::store::StoredResult;
use parquet::basic::Compression;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::io::Write;
use std::sync::Arc;

/// Rows per row group: big enough for good compression and fast scans, small enough that a
/// buffered group (about 30 MB of typical results) is no burden.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// The Parquet schema of [`row::COLUMNS`].
pub fn schema() -> String {
    let mut s = String::from("message sixmap_result {\n");
    for c in COLUMNS {
        let repetition = if c.required { "REQUIRED" } else { "OPTIONAL" };
        let ty = match c.kind {
            ColumnType::Text => "BYTE_ARRAY",
            ColumnType::Int | ColumnType::Timestamp => "INT64",
            ColumnType::Float => "DOUBLE",
            ColumnType::Bool => "BOOLEAN",
        };
        let logical = match c.kind {
            ColumnType::Text => " (STRING)",
            ColumnType::Timestamp => " (TIMESTAMP(MICROS,true))",
            _ => "",
        };
        s.push_str(&format!("  {repetition} {ty} {}{logical};\n", c.name));
    }
    s.push('}');
    s
}

/// One column's values of the current row group (non-null values only) and its
/// definition levels (1 present, 0 null; only kept for nullable columns).
#[derive(Debug)]
enum Values {
    Text(Vec<ByteArray>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
}

#[derive(Debug)]
struct Buffer {
    values: Values,
    levels: Vec<i16>,
}

pub struct ParquetWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    buffers: Vec<Buffer>,
    rows: usize,
    group_rows: usize,
}

impl<W: Write + Send> std::fmt::Debug for ParquetWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter")
            .field("rows", &self.rows)
            .finish()
    }
}

impl<W: Write + Send> ParquetWriter<W> {
    pub fn new(out: W) -> Result<Self, ExportError> {
        Self::with_row_groups(out, ROW_GROUP_ROWS)
    }

    /// A writer with row groups of `group_rows` rows (tests use small groups).
    pub fn with_row_groups(out: W, group_rows: usize) -> Result<Self, ExportError> {
        let schema = Arc::new(parse_message_type(&schema())?);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("sixmap-collector {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = SerializedFileWriter::new(out, schema, Arc::new(props))?;
        let buffers = COLUMNS
            .iter()
            .map(|c| Buffer {
                values: match c.kind {
                    ColumnType::Text => Values::Text(Vec::new()),
                    ColumnType::Int | ColumnType::Timestamp => Values::Int(Vec::new()),
                    ColumnType::Float => Values::Float(Vec::new()),
                    ColumnType::Bool => Values::Bool(Vec::new()),
                },
                levels: Vec::new(),
            })
            .collect();
        Ok(Self {
            file,
            buffers,
            rows: 0,
            group_rows: group_rows.max(1),
        })
    }

    fn flush_group(&mut self) -> Result<(), ExportError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.file.next_row_group()?;
        let mut columns = self.buffers.iter_mut().zip(COLUMNS);
        while let Some(mut writer) = group.next_column()? {
            let Some((buffer, column)) = columns.next() else {
                return Err(parquet::errors::ParquetError::General(
                    "schema has more columns than the row".into(),
                )
                .into());
            };
            let levels = (!column.required).then_some(buffer.levels.as_slice());
            match (writer.untyped(), &buffer.values) {
                (ColumnWriter::ByteArrayColumnWriter(w), Values::Text(v)) => {
                    w.write_batch(v, levels, None)?;
                }
                (ColumnWriter::Int64ColumnWriter(w), Values::Int(v)) => {
                    w.write_batch(v, levels, None)?;
                }
                (ColumnWriter::DoubleColumnWriter(w), Values::Float(v)) => {
                    w.write_batch(v, levels, None)?;
                }
                (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => {
                    w.write_batch(v, levels, None)?;
                }
                _ => {
                    return Err(parquet::errors::ParquetError::General(format!(
                        "column {} does not match its schema type",
                        column.name
                    ))
                    .into());
                }
            }
            writer.close()?;
            buffer.levels.clear();
            match &mut buffer.values {
                Values::Text(v) => v.clear(),
                Values::Int(v) => v.clear(),
                Values::Float(v) => v.clear(),
                Values::Bool(v) => v.clear(),
            }
        }
        group.close()?;
        self.rows = 0;
        Ok(())
    }
}

impl<W: Write + Send> ExportWriter for ParquetWriter<W> {
    fn write(&mut self, result: &StoredResult) -> Result<bool, ExportError> {
        for (cell, buffer) in row::cells(result)?.into_iter().zip(&mut self.buffers) {
            let present = match (cell, &mut buffer.values) {
                (Cell::Null, _) => false,
                (Cell::Text(s), Values::Text(v)) => {
                    v.push(ByteArray::from(s.into_bytes()));
                    true
                }
                (Cell::Int(n) | Cell::Timestamp(n), Values::Int(v)) => {
                    v.push(n);
                    true
                }
                (Cell::Float(x), Values::Float(v)) => {
                    v.push(x);
                    true
                }
                (Cell::Bool(b), Values::Bool(v)) => {
                    v.push(b);
                    true
                }
                // A cell of the wrong type would be a bug in `row`; its unit test checks
                // the types, so treat it as absent rather than fail an export.
                _ => false,
            };
            buffer.levels.push(i16::from(present));
        }
        self.rows += 1;
        if self.rows >= self.group_rows {
            self.flush_group()?;
        }
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.flush_group()?;
        let mut out = self.file.into_inner()?;
        out.flush()?;
        Ok(())
    }
}
