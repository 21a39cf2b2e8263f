//! [`FigureStore`] on sled: one tree, `figures`, holding every figure row (keys start with
//! their kind, `crate::figures::kind`) and the fold's cursor under `~cursor` (sorts after
//! every kind). One tree, so a fold's rows and its cursor go in one atomic `apply_batch`.

use super::figure_store::{FigureStore, FigureWrite};
use super::sled_db::{FigureTrees, SledStore, backend};
use super::{Store, StoreError};

const CURSOR: &[u8] = b"~cursor";

impl FigureTrees {
    pub(super) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            figures: db.open_tree("figures").map_err(backend)?,
        })
    }
}

fn cursor_value(cursor: u64) -> [u8; 8] {
    cursor.to_be_bytes()
}

impl FigureStore for SledStore {
    fn keeps_figures(&self) -> bool {
        // Figures need the ingest log; a store without one falls back to scans.
        self.ingest_log_head().is_ok()
    }

    fn figures_cursor(&self) -> Result<Option<u64>, StoreError> {
        self.figures
            .figures
            .get(CURSOR)
            .map_err(backend)?
            .map(|v| {
                <[u8; 8]>::try_from(v.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        key: "figures/~cursor".into(),
                        reason: "not 8 bytes".into(),
                    })
            })
            .transpose()
    }

    fn figure(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .figures
            .figures
            .get(key)
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn figure_rows(
        &self,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if from >= to {
            return Ok(());
        }
        for entry in self.figures.figures.range(from..to) {
            let (key, value) = entry.map_err(backend)?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    fn put_figures(&self, rows: &[FigureWrite], cursor: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in rows {
            match value {
                Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        batch.insert(CURSOR, &cursor_value(cursor));
        self.figures.figures.apply_batch(batch).map_err(backend)
    }

    fn replace_figures(&self, rows: &[(Vec<u8>, Vec<u8>)], cursor: u64) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for entry in self.figures.figures.iter().keys() {
            batch.remove(entry.map_err(backend)?);
        }
        for (key, value) in rows {
            batch.insert(key.as_slice(), value.as_slice());
        }
        batch.insert(CURSOR, &cursor_value(cursor));
        self.figures.figures.apply_batch(batch).map_err(backend)
    }
}
