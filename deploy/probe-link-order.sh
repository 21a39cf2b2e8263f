#!/usr/bin/env bash
# Regenerates probe/link-order.txt: the functions the release probe runs, in the order it first
# runs them, which the linker places first and together in the binary (probe/build.rs).
#
# Why: the kernel maps a binary's text 64 KiB around each page a process touches. Start-up
# code scattered through 4.6 MiB of text left ~92 % of it resident in the idle daemon;
# packed together, what the daemon runs fits in a few hundred windows (docs/benchmarks.md,
# "Probe footprint"). The names are the linker's (mangled, with their hashes), so the list
# belongs to one compiler version, Cargo.lock and profile: rerun this after any of those
# change. A stale list costs memory, never correctness: names the binary no longer has are
# skipped, and `probe_footprint` prints how many of the list's names the binary has.
#
#   deploy/probe-link-order.sh
#
# Runs, as root, under valgrind's callgrind (exact: every function executed, no sampling):
#   1. the daemon through tests/examples/probe_footprint.rs (enrolment, connection, idle,
#      100 pings/s, bursts) against a real collector on loopback, with 20 times its usual
#      patience (under valgrind the probe starts tens of times slower). A profile that missed
#      the connected daemon would leave most of its code scattered: the phases' lines are
#      printed, and a list much shorter than 4,000 functions deserves a look;
#   2. `sixmap-probe measure traceroute` on the lab's 8-hop path (sixmap-lab), the command
#      docs/benchmarks.md times against the peers, and `measure ping` on it.
# Needs: valgrind (apt-get install valgrind), the lab's packages (see .ci/run). About 7 min.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "probe-link-order: install valgrind first" >&2; exit 1; }
if ip netns list | grep '^sxl-manual-' >/dev/null; then
  echo "probe-link-order: a lab is up (sxl-manual-*): take it down first (target/debug/sixmap-lab down)" >&2
  exit 1
fi

cargo build --release -p sixmap-probe
cargo build -p sixmap-collector -p sixmap-tests --bin sixmap-collector --bin sixmap-lab --example probe_footprint

work=$(mktemp -d)
# On failure the logs (bench.log, lab.log, valgrind.log) stay for reading.
finish() {
  local status=$?
  target/debug/sixmap-lab down >/dev/null 2>&1 || true
  if [ "$status" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "probe-link-order: failed; logs kept in $work" >&2
  fi
}
trap finish EXIT
probe="$work/sixmap-probe.real"
cp target/release/sixmap-probe "$probe"
mkdir -p "$work/bench/examples" "$work/profiles"
cp target/debug/examples/probe_footprint "$work/bench/examples/"
ln -s "$PWD/target/debug/sixmap-collector" "$work/bench/sixmap-collector"
callgrind=(valgrind --tool=callgrind --demangle=no --compress-strings=no --dump-instr=no)
# probe_footprint runs DIR/sixmap-probe beside its own examples/ directory; this one runs
# the real probe under callgrind, dumping every 5 M basic blocks (the benchmark kills the
# probe, which would lose a dump at exit).
{
  echo '#!/bin/sh'
  printf 'exec'
  printf ' %q' "${callgrind[@]}" --dump-every-bb=5000000 \
    "--callgrind-out-file=$work/profiles/1-daemon.%p" "$probe"
  echo ' "$@"'
} >"$work/bench/sixmap-probe"
chmod +x "$work/bench/sixmap-probe"
echo "== daemon under callgrind (probe_footprint)"
"$work/bench/examples/probe_footprint" --patience 20 >"$work/bench.log" 2>&1 || true
grep -E "^(idle|[0-9]+ ping tasks)" "$work/bench.log" || true

echo "== lab measurements under callgrind"
target/debug/sixmap-lab up path --routers 8 >"$work/lab.log"
target=2001:db8:9::2
for kind in traceroute ping; do
  ip netns exec sxl-manual-probe "${callgrind[@]}" --callgrind-out-file="$work/profiles/2-$kind" \
    "$probe" measure "$kind" "$target" --json --lab-mode >/dev/null 2>>"$work/valgrind.log"
done
target/debug/sixmap-lab down >/dev/null

echo "== merging"
nm --defined-only "$probe" | awk '$2 ~ /^[tTwW]$/ {print $3}' >"$work/symbols"
python3 - "$work/profiles" "$work/symbols" probe/link-order.txt <<'EOF'
import os, sys
profiles, symbols, out = sys.argv[1:]
known = set(open(symbols).read().split())
def order(name):  # 1-daemon.PID[.N] then 2-KIND: the daemon's dumps in the order written
    parts = name.split(".")
    return (parts[0], int(parts[1]) if len(parts) > 1 else 0, int(parts[2]) if len(parts) > 2 else 0)
names, seen = [], set()
for profile in sorted(os.listdir(profiles), key=order):
    with open(os.path.join(profiles, profile), errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                name = line.split("=", 1)[1].strip()
                if name in known and name not in seen:
                    seen.add(name)
                    names.append(name)
if len(names) < 1000:
    sys.exit(f"probe-link-order: only {len(names)} functions profiled; see the logs above")
with open(out, "w") as f:
    f.write("".join(n + "\n" for n in names))
print(f"probe/link-order.txt: {len(names)} functions")
EOF
echo "now: cargo build --release -p sixmap-probe (relinks in that order)"
