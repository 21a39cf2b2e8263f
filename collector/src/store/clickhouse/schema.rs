//! Tables, their creation, and schema migrations.
//!
//! SQL here runs on Debian's ClickHouse 18.16 and on current releases (checked with chdb by
//! `collector/tests/clickhouse_current.py`): MergeTree engines in the `PARTITION BY … ORDER BY`
//! syntax, plain column types (no Nullable, LowCardinality, Map or JSON), no settings in
//! statements. Mutable records live in `ReplacingMergeTree(version)` tables and are read
//! newest-version-first with `LIMIT 1 BY key`, which works through Distributed tables too;
//! background merges only save space.
//!
//! With a cluster, each table `t` is a Distributed table over `t_local` on every shard, with
//! a sharding key that keeps one probe's results (and their dedup) or one record's versions
//! on one shard. The migrations table stays local to each server.

use super::super::StoreError;
use super::client::HttpClient;

/// Where the tables live.
#[derive(Debug, Clone)]
pub struct Layout {
    pub database: String,
    /// Prepended to every table name (several deployments in one database).
    pub table_prefix: String,
    /// Cluster of `remote_servers` the Distributed tables span; `None`: plain tables.
    pub cluster: Option<String>,
}

/// One logical table.
struct Table {
    name: &'static str,
    columns: &'static str,
    /// Engine clause after `ENGINE =`.
    engine: &'static str,
    /// Sharding expression of the Distributed table.
    shard_by: &'static str,
}

/// The tables of schema version 1.
const TABLES_V1: &[Table] = &[
    Table {
        name: "results",
        columns: "started_at Int64, probe_id String, boot_epoch UInt64, sequence UInt64, \
                  task_id UInt64, campaign UInt64, kind String, family String, \
                  destination String, probe_asn UInt32, probe_country String, \
                  target_asn UInt32, target_country String, json String",
        engine: "ReplacingMergeTree() \
                 PARTITION BY toYYYYMM(toDateTime(intDiv(started_at, 1000000))) \
                 ORDER BY (started_at, probe_id, boot_epoch, sequence)",
        shard_by: "cityHash64(probe_id)",
    },
    Table {
        name: "losses",
        columns: "probe_id String, boot_epoch UInt64, sequence UInt64, inserted_at Int64, \
                  json String",
        // The first stored version of a loss record wins: read oldest `inserted_at` first.
        engine: "MergeTree() ORDER BY (probe_id, boot_epoch, sequence, inserted_at)",
        shard_by: "cityHash64(probe_id)",
    },
    Table {
        name: "probes",
        columns: "id String, version UInt64, json String",
        engine: "ReplacingMergeTree(version) ORDER BY id",
        shard_by: "cityHash64(id)",
    },
    Table {
        name: "tasks",
        columns: "task_id UInt64, definition String",
        engine: "ReplacingMergeTree() ORDER BY task_id",
        shard_by: "task_id",
    },
    Table {
        name: "assignments",
        columns: "probe_id String, task_id UInt64",
        engine: "ReplacingMergeTree() ORDER BY (probe_id, task_id)",
        shard_by: "cityHash64(probe_id)",
    },
    Table {
        name: "rollups",
        columns: "country String, day String, version UInt64, json String",
        engine: "ReplacingMergeTree(version) ORDER BY (country, day)",
        shard_by: "cityHash64(country)",
    },
    Table {
        name: "tag_history",
        columns: "probe_id String, at Int64, nonce UInt64, json String",
        engine: "ReplacingMergeTree() ORDER BY (probe_id, at, nonce)",
        shard_by: "cityHash64(probe_id)",
    },
    Table {
        name: "campaigns",
        columns: "id UInt64, version UInt64, json String",
        engine: "ReplacingMergeTree(version) ORDER BY id",
        shard_by: "id",
    },
    Table {
        name: "campaign_tasks",
        columns: "task_id UInt64, campaign UInt64, version UInt64",
        engine: "ReplacingMergeTree(version) ORDER BY task_id",
        shard_by: "task_id",
    },
    Table {
        name: "enrollment_tokens",
        columns: "hash String, version UInt64, json String",
        engine: "ReplacingMergeTree(version) ORDER BY hash",
        shard_by: "cityHash64(hash)",
    },
    Table {
        name: "api_tokens",
        columns: "hash String, version UInt64, json String",
        engine: "ReplacingMergeTree(version) ORDER BY hash",
        shard_by: "cityHash64(hash)",
    },
    Table {
        name: "certificates",
        columns: "fingerprint String, version UInt64, probe_id String",
        engine: "ReplacingMergeTree(version) ORDER BY fingerprint",
        shard_by: "cityHash64(fingerprint)",
    },
    Table {
        name: "audit",
        columns: "at Int64, nonce UInt64, json String",
        engine: "ReplacingMergeTree() ORDER BY (at, nonce)",
        shard_by: "nonce",
    },
    Table {
        name: "claims",
        columns: "scope String, subject String, nonce UInt64",
        // Every claim row is kept: the claim protocol (`claims`) reads them all.
        engine: "MergeTree() ORDER BY (scope, subject, nonce)",
        shard_by: "cityHash64(scope, subject)",
    },
];

/// Columns schema version 2 adds to `results`: the typed fields figures need beside the
/// filter columns of version 1, and the result itself in the compact form the sled store
/// keeps (`store::result_codec`) instead of JSON. Rows written by version 1 keep their JSON
/// in `json` with `raw` empty (and these columns at their defaults); reads decode either.
const RESULTS_V2: &[(&str, &str)] = &[
    // Whether the destination answered (`Outcome::reached_destination`).
    ("reached", "UInt8"),
    // Whether the destination is a global address (not lab, LAN or documentation space).
    ("global", "UInt8"),
    // Smallest RTT of an answered ping in nanoseconds, -1 for anything else.
    ("ping_rtt_ns", "Int64 DEFAULT -1"),
    ("raw", "String"),
];

/// Schema version 3: the insertion stamp of each result row (the figures' ingest log, see
/// `super::figures`), added to the end of the sorting key, so that merges keep every copy of
/// a resent result (with the sorting key alone they would keep the newest copy, and the
/// folder could no longer see that the key was stored, and folded, before). Rows stored before
/// it have stamp 0 (a column added to a sorting key takes no default).
const RESULTS_V3_STAMP: (&str, &str, &str) = (
    "inserted_at",
    "Int64",
    "started_at, probe_id, boot_epoch, sequence, inserted_at",
);

/// Schema version 3: figures (versioned rows, newest wins; the fold cursor and the folder's
/// lease are rows of the same table, so a round's rows and cursor are one INSERT: one part,
/// all or nothing) and the owner index of enrollment caps.
const TABLES_V3: &[Table] = &[
    Table {
        name: "figures",
        columns: "key String, version UInt64, value String",
        engine: "ReplacingMergeTree(version) ORDER BY key",
        // One shard holds every figure row: a round stays one INSERT of one part.
        shard_by: "0",
    },
    Table {
        name: "owner_probes",
        columns: "owner String, network String, probe_id String, version UInt64, present UInt8",
        engine: "ReplacingMergeTree(version) ORDER BY (owner, network, probe_id)",
        shard_by: "cityHash64(owner, network)",
    },
    Table {
        name: "markers",
        columns: "name String, version UInt64",
        engine: "ReplacingMergeTree(version) ORDER BY name",
        shard_by: "cityHash64(name)",
    },
];

/// Schema version 4: the alert outbox (`crate::alerts`; versioned records, a deletion is a
/// newer row with `present = 0`).
const TABLES_V4: &[Table] = &[Table {
    name: "alerts",
    columns: "id String, version UInt64, present UInt8, json String",
    engine: "ReplacingMergeTree(version) ORDER BY id",
    shard_by: "cityHash64(id)",
}];

/// Schema version 5: the alerts' delivery index (one versioned row per webhook and alert,
/// `pending` 1 until a 2xx is recorded there, so a delivery reads what is pending for its
/// webhook, not the outbox) and the alert rules made over the API (versioned records, a
/// deletion is a newer row with `present = 0`).
const TABLES_V5: &[Table] = &[
    Table {
        name: "alert_pending",
        columns: "webhook String, id String, version UInt64, pending UInt8",
        engine: "ReplacingMergeTree(version) ORDER BY (webhook, id)",
        shard_by: "cityHash64(id)",
    },
    Table {
        name: "alert_rules",
        columns: "id String, version UInt64, present UInt8, json String",
        engine: "ReplacingMergeTree(version) ORDER BY id",
        shard_by: "cityHash64(id)",
    },
];

/// What a schema version changes.
enum Step {
    Create(&'static [Table]),
    /// Columns added to a table (`ALTER TABLE … ADD COLUMN`; 18.16 has no `IF NOT EXISTS`
    /// there, so columns already present are skipped).
    AddColumns(&'static str, &'static [(&'static str, &'static str)]),
    /// New tables, then a column added to a table and to the end of its sorting key
    /// (name, type, new sorting key; the Distributed table only gets the column).
    Both(
        &'static [Table],
        &'static str,
        (&'static str, &'static str, &'static str),
    ),
}

/// Schema versions in order; each one's steps are idempotent.
const MIGRATIONS: &[(u32, &str, Step)] = &[
    (1, "initial tables", Step::Create(TABLES_V1)),
    (
        2,
        "results: typed figure columns and compact raw results",
        Step::AddColumns("results", RESULTS_V2),
    ),
    (
        3,
        "results: insertion stamps; figures, owner index",
        Step::Both(TABLES_V3, "results", RESULTS_V3_STAMP),
    ),
    (4, "alert outbox", Step::Create(TABLES_V4)),
    (
        5,
        "alert delivery index, alert rules",
        Step::Create(TABLES_V5),
    ),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 5;

impl Layout {
    /// The fully qualified name queries use for a logical table.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}{}", self.database, self.table_prefix, name)
    }

    fn local(&self, name: &str) -> String {
        match self.cluster {
            Some(_) => format!("{}_local", self.table(name)),
            None => self.table(name),
        }
    }

    fn migrations_table(&self) -> String {
        self.table("schema_migrations")
    }

    /// Statements that create the database and every table of `tables` (idempotent).
    fn create(&self, tables: &[Table]) -> Vec<String> {
        let mut statements = Vec::new();
        for table in tables {
            statements.push(format!(
                "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = {}",
                self.local(table.name),
                table.columns,
                table.engine
            ));
            if let Some(cluster) = &self.cluster {
                statements.push(format!(
                    "CREATE TABLE IF NOT EXISTS {} AS {} ENGINE = Distributed({}, {}, {}{}_local, {})",
                    self.table(table.name),
                    self.local(table.name),
                    cluster,
                    self.database,
                    self.table_prefix,
                    table.name,
                    table.shard_by
                ));
            }
        }
        statements
    }

    /// `ALTER TABLE … ADD COLUMN` for the columns of `columns` not in `present`, on the local
    /// table and (with a cluster) the Distributed one.
    fn add_columns(
        &self,
        table: &str,
        columns: &[(&str, &str)],
        present: &[String],
    ) -> Vec<String> {
        let missing: Vec<String> = columns
            .iter()
            .filter(|(name, _)| !present.iter().any(|p| p == name))
            .map(|(name, kind)| format!("ADD COLUMN {name} {kind}"))
            .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        let mut tables = vec![self.local(table)];
        if self.cluster.is_some() {
            tables.push(self.table(table));
        }
        tables
            .into_iter()
            .map(|t| format!("ALTER TABLE {t} {}", missing.join(", ")))
            .collect()
    }

    fn step_statements(&self, step: &Step, present: &[String]) -> Vec<String> {
        match step {
            Step::Create(tables) => self.create(tables),
            Step::AddColumns(table, columns) => self.add_columns(table, columns, present),
            Step::Both(tables, table, (column, kind, order_by)) => {
                let mut statements = self.create(tables);
                if !present.iter().any(|p| p == column) {
                    statements.push(format!(
                        "ALTER TABLE {} ADD COLUMN {column} {kind}, MODIFY ORDER BY ({order_by})",
                        self.local(table)
                    ));
                    if self.cluster.is_some() {
                        statements.push(format!(
                            "ALTER TABLE {} ADD COLUMN {column} {kind}",
                            self.table(table)
                        ));
                    }
                }
                statements
            }
        }
    }

    /// The columns a table has now on the server behind `client` (of the local table, the
    /// one altered first).
    fn columns_of(&self, client: &HttpClient, table: &str) -> Result<Vec<String>, StoreError> {
        let local = self.local(table);
        let name = local
            .strip_prefix(&format!("{}.", self.database))
            .unwrap_or(&local);
        Ok(client
            .query(&format!(
                "SELECT name FROM system.columns WHERE database = {} AND table = {} \
                 FORMAT TabSeparated",
                super::rows::quote(&self.database),
                super::rows::quote(name)
            ))?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Every statement that builds the current schema from nothing, in order.
    pub fn schema_statements(&self) -> Vec<String> {
        let mut statements = vec![
            format!("CREATE DATABASE IF NOT EXISTS {}", self.database),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (version UInt32, applied_at Int64, description String) \
                 ENGINE = MergeTree() ORDER BY version",
                self.migrations_table()
            ),
        ];
        for (_, _, step) in MIGRATIONS {
            statements.extend(self.step_statements(step, &[]));
        }
        statements
    }

    /// Brings the server behind `client` to [`SCHEMA_VERSION`]; harmless when it is there or
    /// when another collector migrates at the same time.
    pub fn migrate(&self, client: &HttpClient) -> Result<u32, StoreError> {
        client.query(&format!("CREATE DATABASE IF NOT EXISTS {}", self.database))?;
        client.query(&self.schema_statements()[1])?;
        let current: u32 = client
            .query(&format!(
                "SELECT max(version) FROM {} FORMAT TabSeparated",
                self.migrations_table()
            ))?
            .trim()
            .parse()
            .map_err(|e| StoreError::Corrupt {
                key: self.migrations_table(),
                reason: format!("schema version is not a number: {e}"),
            })?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the ClickHouse schema is at version {current}, newer than this collector's \
                 {SCHEMA_VERSION}: upgrade the collector"
            )));
        }
        for (version, description, step) in MIGRATIONS {
            if *version <= current {
                continue;
            }
            let present = match step {
                Step::Create(_) => Vec::new(),
                Step::AddColumns(table, _) | Step::Both(_, table, _) => {
                    self.columns_of(client, table)?
                }
            };
            for statement in self.step_statements(step, &present) {
                if let Err(e) = client.query(&statement) {
                    // Another collector migrating at the same moment added it first.
                    let raced = matches!(step, Step::AddColumns(..) | Step::Both(..))
                        && e.to_string().contains("already exists");
                    if !raced {
                        return Err(e);
                    }
                }
            }
            client.insert(
                &format!("INSERT INTO {} FORMAT JSONEachRow", self.migrations_table()),
                serde_json::json!({
                    "version": version,
                    "applied_at": sixmap_shared::UnixMicros::now().0,
                    "description": description,
                })
                .to_string(),
            )?;
            tracing::info!(version, description, database = %self.database, "ClickHouse schema migrated");
        }
        Ok(SCHEMA_VERSION.max(current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_layout_puts_distributed_tables_over_local_ones() {
        let layout = Layout {
            database: "db".into(),
            table_prefix: "x_".into(),
            cluster: Some("two".into()),
        };
        let statements = layout.schema_statements();
        assert!(statements.iter().any(|s| {
            s.starts_with("CREATE TABLE IF NOT EXISTS db.x_results_local (started_at Int64")
        }));
        assert!(statements.iter().any(|s| s.contains(
            "db.x_results AS db.x_results_local ENGINE = Distributed(two, db, x_results_local, cityHash64(probe_id))"
        )));
        let plain = Layout {
            cluster: None,
            ..layout
        };
        assert!(
            !plain
                .schema_statements()
                .iter()
                .any(|s| s.contains("Distributed"))
        );
    }
}
