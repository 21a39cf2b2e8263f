#!/usr/bin/env bash
# Runs sixmap on one machine: a collector with its embedded store (sled) and a local probe that
# pings ::1 every 5 s. Dashboard: http://[::1]:7480/  JSON: http://[::1]:7480/api/v1/results
# Ctrl-C stops both. State lives in ${SIXMAP_DATA:-./data}; delete it to start over.
#
# On first run it creates the collector's CA and a one-time enrollment token (owner
# "local-demo"); the probe enrolls with it over TLS, pinning the CA by the token's fingerprint,
# and talks mTLS from then on. Raw results are public here (--raw-data-public) so the dashboard
# shows them; a real collector keeps them for researcher tokens.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${SIXMAP_DATA:-./data}
grpc='[::1]:7400'
http='[::1]:7480'

cargo build --release -p sixmap-collector -p sixmap-probe
mkdir -p "$data"

enroll=()
if [ ! -f "$data/probe/identity.toml" ]; then
  # Before `serve`: the store belongs to one process at a time.
  token=$(./target/release/sixmap-collector token create \
    --data-dir "$data/collector" --owner local-demo --expires-in 1h)
  enroll=(--enrollment-token "$token")
fi

./target/release/sixmap-collector serve \
  --data-dir "$data/collector" --grpc-listen "$grpc" --http-listen "$http" \
  --raw-data-public --ping-target ::1 --ping-every-s 5 &
collector=$!
trap 'kill $collector 2>/dev/null; wait' EXIT INT TERM

# The probe retries with backoff until the collector listens, so no wait is needed here.
echo "dashboard: http://$http/   results: http://$http/api/v1/results"
./target/release/sixmap-probe run \
  --collector "https://$grpc" --state-dir "$data/probe" "${enroll[@]}" --hostname local-demo --lab-mode
