//! CSV (RFC 4180): a header line with the names of [`row::COLUMNS`], then one line per
//! result. Fields holding a comma, a quote, CR or LF are quoted, quotes doubled; absent
//! values are empty fields; times are RFC 3339 UTC with microseconds.

use super::row::{self, COLUMNS, Cell};
use super::{ExportError, ExportWriter};
use crate::store::StoredResult;
use std::io::{BufWriter, Write};

#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    out: BufWriter<W>,
    line: String,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> Result<Self, ExportError> {
        let mut out = BufWriter::with_capacity(64 * 1024, out);
        let header: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        out.write_all(header.join(",").as_bytes())?;
        out.write_all(b"\r\n")?;
        Ok(Self {
            out,
            line: String::new(),
        })
    }
}

/// Appends `value` as one RFC 4180 field.
pub fn push_field(line: &mut String, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        line.push('"');
        for c in value.chars() {
            if c == '"' {
                line.push('"');
            }
            line.push(c);
        }
        line.push('"');
    } else {
        line.push_str(value);
    }
}

impl<W: Write + Send> ExportWriter for CsvWriter<W> {
    fn write(&mut self, result: &StoredResult) -> Result<bool, ExportError> {
        use std::fmt::Write as _;
        self.line.clear();
        for (i, cell) in row::cells(result)?.into_iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            match cell {
                Cell::Null => {}
                Cell::Text(s) => push_field(&mut self.line, &s),
                Cell::Int(n) => {
                    let _ = write!(self.line, "{n}");
                }
                Cell::Float(x) => {
                    let _ = write!(self.line, "{x}");
                }
                Cell::Bool(b) => self.line.push_str(if b { "true" } else { "false" }),
                Cell::Timestamp(us) => self.line.push_str(&row::rfc3339(us)),
            }
        }
        self.line.push_str("\r\n");
        self.out.write_all(self.line.as_bytes())?;
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let mut line = String::new();
        push_field(&mut line, "plain");
        line.push(',');
        push_field(&mut line, "a,\"b\"\nc");
        assert_eq!(line, "plain,\"a,\"\"b\"\"\nc\"");
    }
}
