#!/usr/bin/env bash
# Runs sixmap on one machine: a collector with its embedded store (sled) and a local probe that
# pings ::1 every 5 s. Dashboard: http://[::1]:7480/  JSON: http://[::1]:7480/api/v1/results
# Ctrl-C stops both. State lives in ${SIXMAP_DATA:-./data}; delete it to start over.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${SIXMAP_DATA:-./data}
token=local-demo-token
grpc='[::1]:7400'
http='[::1]:7480'

cargo build --release -p sixmap-collector -p sixmap-probe
mkdir -p "$data"

./target/release/sixmap-collector serve \
  --data-dir "$data/collector" --grpc-listen "$grpc" --http-listen "$http" \
  --enroll-token "$token" --ping-target ::1 --ping-every-s 5 &
collector=$!
trap 'kill $collector 2>/dev/null; wait' EXIT INT TERM

# The probe retries with backoff until the collector listens, so no wait is needed here.
echo "dashboard: http://$http/   results: http://$http/api/v1/results"
./target/release/sixmap-probe run \
  --collector "http://$grpc" --state-dir "$data/probe" --enrollment-token "$token" --hostname local-demo --lab-mode
