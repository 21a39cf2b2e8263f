//! Deciding "who was first" between collectors without transactions.
//!
//! ClickHouse has no compare-and-swap, so a single-use enrollment token or a fresh campaign
//! id is decided by a claim protocol over the append-only `claims` table, keyed by a scope
//! and a subject (for a token: its hash and the digest of the state being replaced; for a
//! campaign id: the candidate number):
//!
//! 1. Read the subject's claims; if there is any, someone else is claiming: lose.
//! 2. Insert a claim with a random nonce. If steps 1–2 took longer than [`SETTLE`], lose
//!    (our row may have become visible too late for others to see it; see below).
//! 3. Wait [`SETTLE`], then read every claim of the subject: the smallest nonce wins.
//!
//! Why at most one claimant wins: take two claimants A and B that both passed step 1. Each
//! read in step 1 happened before the other's row was committed. B's row was committed
//! within SETTLE of B's step-1 read, which itself came before A's row was committed; A
//! reads in step 3 at least SETTLE after its own commit, so A sees B's row, and likewise B
//! sees A's. Every claimant that reaches step 3 therefore sees the same set of rows of the
//! other such claimants, and they agree on the smallest nonce. Only elapsed times on each
//! collector's own monotonic clock are compared, never clocks across machines. Claimants
//! that lose in step 1 or 2 stay out; a late claim row they left can at worst make every
//! claimant lose (the caller sees "used meanwhile" and may retry with a new token), never
//! make two win.
//!
//! The `claims` table is sharded by (scope, subject), so one subject's rows are on one
//! shard, and inserts wait for the shard (`insert_distributed_sync`).

use super::ClickHouseStore;
use super::rows::{self, quote};
use crate::store::StoreError;
use std::time::{Duration, Instant};

/// Longest a claim may take to be written, and how long a claimant waits before deciding.
pub const SETTLE: Duration = Duration::from_millis(1000);

/// Candidates tried before `next_campaign_id` gives up.
const CAMPAIGN_ID_ATTEMPTS: usize = 20;

impl ClickHouseStore {
    /// Claims `subject` in `scope`; true for exactly one claimant at most.
    pub(super) fn claim(&self, scope: &str, subject: &str) -> Result<bool, StoreError> {
        let table = self.table("claims");
        let filter = format!("scope = {} AND subject = {}", quote(scope), quote(subject));
        let started = Instant::now();
        let existing = self.client.query(&format!(
            "SELECT count() FROM {table} WHERE {filter} FORMAT TabSeparated"
        ))?;
        if existing.trim() != "0" {
            tracing::debug!(scope, subject, "claim lost: already claimed");
            return Ok(false);
        }
        let nonce = rows::nonce()?;
        self.client.insert(
            &format!("INSERT INTO {table} FORMAT JSONEachRow"),
            rows::each_row(&[serde_json::json!({
                "scope": scope,
                "subject": subject,
                "nonce": nonce,
            })]),
        )?;
        if started.elapsed() > self.settle {
            tracing::warn!(scope, subject, elapsed = ?started.elapsed(), "claim given up: writing it took longer than the settle time");
            return Ok(false);
        }
        std::thread::sleep(self.settle);
        let first = self.client.query(&format!(
            "SELECT min(nonce) FROM {table} WHERE {filter} FORMAT TabSeparated"
        ))?;
        let winner: u64 = rows::number(&table, first.trim().as_bytes())?;
        Ok(winner == nonce)
    }

    /// A campaign id never handed out before: one more than any used or claimed.
    pub(super) fn claim_campaign_id(&self) -> Result<u64, StoreError> {
        let highest = |sql: String| -> Result<u64, StoreError> {
            let answer = self.client.query(&sql)?;
            rows::number(&self.table("campaigns"), answer.trim().as_bytes())
        };
        let first = 1 + highest(format!(
            "SELECT max(id) FROM {} FORMAT TabSeparated",
            self.table("campaigns")
        ))?
        .max(highest(format!(
            "SELECT max(toUInt64OrZero(subject)) FROM {} WHERE scope = 'campaign_id' \
             FORMAT TabSeparated",
            self.table("claims")
        ))?);
        // A lost claim means another collector took that id: try the next one.
        for candidate in (first..).take(CAMPAIGN_ID_ATTEMPTS) {
            if self.claim("campaign_id", &candidate.to_string())? {
                return Ok(candidate);
            }
        }
        Err(StoreError::Backend(format!(
            "no campaign id claimed after {CAMPAIGN_ID_ATTEMPTS} attempts (many collectors \
             creating campaigns at once?)"
        )))
    }
}
