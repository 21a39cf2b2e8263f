"""Reads a sixmap Parquet export with pyarrow and DuckDB, independently of our writer, and
prints what collector/tests/export.rs compares with the JSON Lines export: the schema's
types, and every row's chosen columns as JSON (timestamps as µs since 1970)."""
import json
import sys

import duckdb
import pyarrow.parquet as pq

path = sys.argv[1]
table = pq.read_table(path)
schema = {field.name: str(field.type) for field in table.schema}
columns = ["key", "started_at", "started_at_us", "type", "probe_asn", "target_country",
           "rtt_min_ms", "hop_count", "dns_answers", "http_status", "reached_destination",
           "error_message", "outcome"]
rows = []
for record in table.select(columns).to_pylist():
    record["started_at"] = int(record["started_at"].timestamp() * 1_000_000)
    rows.append(record)
con = duckdb.connect()
duck = con.execute(
    "SELECT count(*), count(DISTINCT key), sum(epoch_us(started_at) = started_at_us) "
    f"FROM read_parquet('{path}')").fetchone()
groups = pq.ParquetFile(path).metadata.num_row_groups
print(json.dumps({"schema": schema, "rows": rows, "duckdb": list(duck),
                  "row_groups": groups}))
