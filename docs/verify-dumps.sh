#!/bin/sh
# Verifies sixmap's daily open-data dumps with standard tools only (openssl 3, sha256sum):
#   sh verify-dumps.sh open-data.pem DUMPS_DIR
# For every day's manifest, oldest first: its Ed25519 signature (openssl), the SHA-256 of
# every file it names (sha256sum), including the previous day's manifest, and that the
# manifest names exactly the previous one (the hash chain: a day removed, replaced or edited
# breaks it); then that every day's data file is named by its day's manifest (a file added
# beside a signed day, or a day not sealed, would otherwise pass unchecked; the `.sha256`
# sidecars are named by the manifests too), and index.json's own signature. Every manifest
# must start with the line "# sixmap open-data manifest 1": the same key signs published
# reports, and no report starts so. Exits non-zero at the first failure. docs/export.md
# explains each step; the
# collector's tests run this very script (collector/tests/export.rs).
set -eu
key=$(realpath "$1")
cd "$2"
previous=""
count=0
for manifest in $(ls -- *.manifest | sort); do
    openssl pkeyutl -verify -pubin -inkey "$key" -rawin \
        -in "$manifest" -sigfile "$manifest.sig" >/dev/null \
        || { echo "$manifest: BAD SIGNATURE" >&2; exit 1; }
    [ "$(head -n 1 "$manifest")" = "# sixmap open-data manifest 1" ] \
        || { echo "$manifest: not a sixmap manifest (first line)" >&2; exit 1; }
    if [ -n "$previous" ]; then
        sha256sum --check --strict --quiet "$manifest" \
            || { echo "$manifest: a file differs from its hash" >&2; exit 1; }
        grep -q "^[0-9a-f]\{64\}  $previous\$" "$manifest" \
            || { echo "$manifest: does not name $previous (chain broken)" >&2; exit 1; }
    else
        # The oldest day here: the manifest before it may have been pruned from this copy.
        grep -v '[.]manifest$' "$manifest" | sha256sum --check --strict --quiet - \
            || { echo "$manifest: a file differs from its hash" >&2; exit 1; }
    fi
    previous=$manifest
    count=$((count + 1))
done
[ "$count" -gt 0 ] || { echo "no manifest in $2" >&2; exit 1; }
for file in [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].*; do
    case "$file" in
        *.manifest | *.manifest.sig) continue ;;
    esac
    day=$(printf '%s' "$file" | cut -c1-10)
    [ -f "$day.manifest" ] \
        || { echo "$file: its day has no signed manifest (not sealed)" >&2; exit 1; }
    grep -q "^[0-9a-f]\{64\}  $file\$" "$day.manifest" \
        || { echo "$file: not named by $day.manifest" >&2; exit 1; }
done
if [ -f index.json ]; then
    openssl pkeyutl -verify -pubin -inkey "$key" -rawin \
        -in index.json -sigfile index.json.sig >/dev/null \
        || { echo "index.json: BAD SIGNATURE" >&2; exit 1; }
fi
echo "OK: $count days, signatures, files and chain verified"
