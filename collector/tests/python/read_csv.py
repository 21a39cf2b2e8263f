"""Parses a sixmap CSV export with Python's csv module and prints the records as a JSON
list of objects (header names as keys), for collector/tests/export.rs."""
import csv
import json
import sys

with open(sys.argv[1], newline="", encoding="utf-8") as f:
    print(json.dumps(list(csv.DictReader(f))))
