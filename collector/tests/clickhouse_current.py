#!/usr/bin/env python3
"""Replays the SQL the ClickHouse store sent to Debian's ClickHouse 18.16 on current
ClickHouse, in process with chdb (PyPI), to show both accept it.

Usage: clickhouse_current.py STATEMENTS.jsonl
Each line is {"sql": ..., "data": rows or null}, as recorded by
ClickHouseStore::open_recording (collector/tests/clickhouse.rs runs this).
Exits non-zero, naming the statement and ClickHouse's error, on the first refusal.
"""
import json
import sys
import tempfile

from chdb import session


def main(path):
    with open(path, encoding="utf-8") as f:
        statements = [json.loads(line) for line in f if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        s = session.Session(tmp)
        version = str(s.query("SELECT version()", "TabSeparated")).strip()
        for n, statement in enumerate(statements, 1):
            sql = statement["sql"]
            if statement.get("data") is not None:
                # Inline data after FORMAT, as ClickHouse's own clients send it.
                sql = sql + "\n" + statement["data"]
            try:
                s.query(sql, "TabSeparated")
            except Exception as e:  # chdb raises its own error type
                print(f"statement {n} refused by ClickHouse {version}: {sql[:300]}\n{e}")
                return 1
        print(f"{len(statements)} statements accepted by ClickHouse {version} (chdb)")
        s.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
