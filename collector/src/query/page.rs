//! One page of results: oldest first, ending at `limit` results or at the scan budget.

use super::PageRequest;
use crate::store::{
    ResultCursor, ScanBudget, ScanEnd, Store, StoreError, StoredResult, scan_filtered_bounded,
};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub results: Vec<StoredResult>,
    /// Where the next page starts; `None` once every result up to the filter's `to` (or
    /// the newest stored result) was looked at.
    #[serde(serialize_with = "cursor_text")]
    pub next_cursor: Option<ResultCursor>,
}

fn cursor_text<S: serde::Serializer>(
    cursor: &Option<ResultCursor>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match cursor {
        Some(cursor) => serializer.serialize_some(&cursor.to_string()),
        None => serializer.serialize_none(),
    }
}

/// Reads one page. A full page gets a cursor at its last result even if nothing follows (the
/// next page is then empty); a page cut by the budget gets a cursor at the last row read,
/// which may be a result the filter does not select, and may hold fewer than `limit` results,
/// even none.
pub fn page(
    store: &dyn Store,
    request: &PageRequest,
    budget: ScanBudget,
) -> Result<Page, StoreError> {
    let limit = request.limit.max(1);
    let mut results = Vec::new();
    let end = scan_filtered_bounded(
        store,
        &request.filter,
        request.after.as_ref(),
        budget,
        &mut |r| {
            results.push(r);
            results.len() < limit
        },
    )?;
    let next_cursor = match end {
        ScanEnd::Exhausted => None,
        ScanEnd::Stopped => results.last().map(ResultCursor::of),
        ScanEnd::Budget(cursor) => Some(cursor),
    };
    Ok(Page {
        results,
        next_cursor,
    })
}
