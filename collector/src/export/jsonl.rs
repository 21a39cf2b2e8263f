//! JSON Lines: one `StoredResult` per line, exactly the JSON `GET /api/v1/results` returns.

use super::{ExportError, ExportWriter};
use crate::store::StoredResult;
use std::io::{BufWriter, Write};

#[derive(Debug)]
pub struct JsonlWriter<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(64 * 1024, out),
        }
    }
}

impl<W: Write + Send> ExportWriter for JsonlWriter<W> {
    fn write(&mut self, result: &StoredResult) -> Result<bool, ExportError> {
        serde_json::to_writer(&mut self.out, result)?;
        self.out.write_all(b"\n")?;
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.out.flush()?;
        Ok(())
    }
}
