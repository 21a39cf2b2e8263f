//! [`FigureStore`]: where a backend keeps the figures of `crate::figures` (opaque rows by key
//! plus the ingest log position they include). A supertrait of `Store`, like `AuthStore`, so
//! each backend implements it in its own file.
//!
//! The default bodies keep no figures (ClickHouse today): readers then compute the same
//! figures from a scan of the results, as before figures existed (`crate::figures::read`).

use super::{StoreError, StoredResult};

/// A figure row to write: key, and the new value or `None` to delete it.
pub type FigureWrite = (Vec<u8>, Option<Vec<u8>>);

pub trait FigureStore {
    /// Whether figures are kept here (needs the ingest log); when false the folder does not
    /// run and reads fall back to scans.
    fn keeps_figures(&self) -> bool {
        false
    }
    /// Whether the folder task builds the figures when there are none, rather than the
    /// collector's start (`figures::fold::ensure`): a store shared by collectors, where one
    /// folder at a time may write them.
    fn figures_built_by_folder(&self) -> bool {
        false
    }
    /// The ingest log position the stored figures include; `None` before the first rebuild.
    fn figures_cursor(&self) -> Result<Option<u64>, StoreError> {
        Err(no_figures())
    }
    /// One row's value.
    fn figure(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = key;
        Err(no_figures())
    }
    /// Several rows' values, in the order of `keys` (one request where a request is costly).
    fn figures_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|key| self.figure(key)).collect()
    }
    /// Visits the results the figures at log position `head` count, when the store can tell
    /// them apart from results stored since (a store other collectors write during a rebuild:
    /// ClickHouse); `false`: it cannot, and the caller scans every result (sled, whose rebuild
    /// runs with ingest stopped).
    fn results_logged_upto(
        &self,
        head: u64,
        visit: &mut dyn FnMut(StoredResult) -> bool,
    ) -> Result<bool, StoreError> {
        let _ = (head, visit);
        Ok(false)
    }
    /// Rows with keys in `[from, to)`, in key order; stops when `visit` returns false.
    fn figure_rows(
        &self,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let _ = (from, to, visit);
        Err(no_figures())
    }
    /// Rows with keys in any of `ranges` (each `[from, to)`, in key order, not overlapping),
    /// in key order; stops when `visit` returns false. One request where a request is costly.
    fn figure_ranges(
        &self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mut going = true;
        for (from, to) in ranges {
            self.figure_rows(from, to, &mut |key, value| {
                going = visit(key, value);
                going
            })?;
            if !going {
                break;
            }
        }
        Ok(())
    }
    /// Writes `rows` and the new cursor in one atomic write: after a crash both or neither.
    fn put_figures(&self, rows: &[FigureWrite], cursor: u64) -> Result<(), StoreError> {
        let _ = (rows, cursor);
        Err(no_figures())
    }
    /// Replaces every row and the cursor in one atomic write (a rebuild from raw results).
    fn replace_figures(&self, rows: &[(Vec<u8>, Vec<u8>)], cursor: u64) -> Result<(), StoreError> {
        let _ = (rows, cursor);
        Err(no_figures())
    }
}

fn no_figures() -> StoreError {
    StoreError::Backend("this storage backend keeps no figures".into())
}
