#!/bin/sh
# Verifies a published sixmap report as it was served, with standard tools only:
#   curl -s -D report.headers -o report.html https://COLLECTOR/reports/7
#   sh verify-report.sh open-data.pem report.headers report.html
# The `Sixmap-Signature` header is the base64 of the Ed25519 signature of the body's exact
# bytes (HTML, JSON, CSV or PDF alike). docs/export.md explains it; the collector's tests run
# this very script (collector/src/export/sign.rs).
set -eu
key=$1
headers=$2
body=$3
signature=$(mktemp)
trap 'rm -f "$signature"' EXIT
grep -i '^sixmap-signature:' "$headers" | cut -d: -f2 | tr -d ' \r' | base64 -d >"$signature"
openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$body" -sigfile "$signature"
