#!/usr/bin/env bash
# Builds the x86_64 .debs of sixmap-probe and sixmap-collector and checks their life cycle on
# this machine, as root:
#   - systemd-analyze verify and systemd-analyze security (exposure score) on both units;
#   - install (dpkg -i): service users, config files and their modes, enabled units;
#   - an enrollment token and an admin API token made with the CLI, as the service user, on
#     the unit's data directory, with the collector stopped (it creates its CA there);
#   - the collector and the probe started by hand the way their units run them (systemd is
#     not PID 1 here): `sixmap-probe setup --collector https://... --token ...`, the probe
#     enrolls over TLS with the CA pinned by the token and keeps key, certificate and CA in
#     its state directory; `sixmap-probe status` says connected, the API lists it (admin
#     token; anonymous reads are refused);
#   - an upgrade to a new package revision keeps config, identity and users;
#   - revocation through the API: the probe exits with status 78 and refuses to start again;
#   - remove keeps config and state, purge leaves nothing (users, /etc/sixmap, /var/lib).
#
#   deploy/deb-check.sh
#
# Needs: cargo-deb (installed with `cargo install cargo-deb --locked` if missing), systemd's
# systemd-analyze, adduser, setpriv (util-linux). Debs land in target/debian/.
# The checks pass single-quoted scripts to bash -c on purpose (expanded there, not here).
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=0

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'deb-check: FAILED: %s\n' "$*" >&2; exit 1; }
check() { # check DESCRIPTION COMMAND...: runs COMMAND, fails with DESCRIPTION if it fails
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else fail "$what"; fi
}
absent() { ! "$@"; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs and purges packages)"
if [ -d /run/systemd/system ]; then
  # On a systemd host the packages would really start services on the default ports.
  echo "note: systemd is running here; the packages' units will be started by dpkg"
fi

step "tools"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v adduser >/dev/null || need+=(adduser)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo deb --version

step "leftovers of an earlier run"
for p in sixmap-probe sixmap-collector; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
    echo "purging $p"; dpkg --purge "$p" >/dev/null
  fi
done

step "build (release) and package"
cargo build --release --locked -p sixmap-probe -p sixmap-collector
version=$(./target/release/sixmap-probe --version | awk '{print $2}')
mkdir -p target/debian target/deb-upgrade
# The same build as a later package revision, to check upgrades. Made first and elsewhere:
# cargo-deb deletes older builds of a package from the directory it writes to.
probe_deb2=$(cargo deb -p sixmap-probe --no-build --deb-revision 2 --output target/deb-upgrade/)
probe_deb=$(cargo deb -p sixmap-probe --no-build --output target/debian/)
collector_deb=$(cargo deb -p sixmap-collector --no-build --output target/debian/)
ls -l "$probe_deb" "$collector_deb" "$probe_deb2"
for deb in "$probe_deb" "$collector_deb"; do
  echo "-- $deb"
  dpkg-deb --field "$deb" Package Version Architecture Depends Installed-Size
  dpkg-deb --contents "$deb" | awk '{print "   " $1, $2, $6}'
done

tmp=$(mktemp -d)
cleanup() {
  for pid in ${probe_pid:-} ${collector_pid:-}; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
# systemd-analyze verify needs the ExecStart binary at its path: it runs on the installed units.
verify() { # verify UNIT_FILE: no output at all means no complaint
  local out
  out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$1" 2>&1) || { printf '%s\n' "$out"; return 1; }
  [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}

step "install the collector"
out=$(dpkg -i "$collector_deb" 2>&1) || { printf '%s\n' "$out"; fail "dpkg -i $collector_deb"; }
printf '%s\n' "$out"
check "postinst says how to make enrollment tokens" \
  grep -q "sixmap-collector token create" <<<"$out"
check "user sixmap-collector is a system user without a login shell" \
  bash -c '[ "$(getent passwd sixmap-collector | cut -d: -f3)" -lt 1000 ] &&
           getent passwd sixmap-collector | grep -q ":/usr/sbin/nologin$"'
check "/etc/sixmap/collector.toml is 0640 root:sixmap-collector" \
  bash -c '[ "$(stat -c "%a %U:%G" /etc/sixmap/collector.toml)" = "640 root:sixmap-collector" ]'
check "the collector config is the example as shipped (no token in it)" \
  bash -c 'cmp -s /etc/sixmap/collector.toml /usr/share/sixmap-collector/collector.example.toml &&
           ! grep -q "^enrollment_tokens" /etc/sixmap/collector.toml'
check "sixmap-collector.service is enabled" \
  test -L /etc/systemd/system/multi-user.target.wants/sixmap-collector.service
check "systemd-analyze verify sixmap-collector.service" \
  verify /usr/lib/systemd/system/sixmap-collector.service
sixmap-collector --version

step "install the probe, first without a token"
out=$(dpkg -i "$probe_deb" 2>&1) || { printf '%s\n' "$out"; fail "dpkg -i $probe_deb"; }
printf '%s\n' "$out"
check "postinst says how to configure" \
  grep -q "sixmap-probe setup --collector https://HOST:7400 --token TOKEN" <<<"$out"
check "no config is written without a token" test ! -e /etc/sixmap/probe.toml
check "user sixmap-probe is a system user without a login shell" \
  bash -c '[ "$(getent passwd sixmap-probe | cut -d: -f3)" -lt 1000 ] &&
           getent passwd sixmap-probe | grep -q ":/usr/sbin/nologin$"'
check "sixmap-probe.service is enabled" \
  test -L /etc/systemd/system/multi-user.target.wants/sixmap-probe.service
check "systemd-analyze verify sixmap-probe.service" verify /usr/lib/systemd/system/sixmap-probe.service
check "the unit grants CAP_NET_RAW and nothing else" \
  bash -c 'grep -qx "AmbientCapabilities=CAP_NET_RAW" /usr/lib/systemd/system/sixmap-probe.service &&
           grep -qx "CapabilityBoundingSet=CAP_NET_RAW" /usr/lib/systemd/system/sixmap-probe.service'
check "/usr/bin/sixmap-probe --version is $version" \
  bash -c "[ \"\$(sixmap-probe --version)\" = 'sixmap-probe $version' ]"

step "systemd-analyze security (offline)"
for unit in sixmap-probe sixmap-collector; do
  SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=yes --no-pager \
    "/usr/lib/systemd/system/$unit.service" > "$tmp/$unit.security" 2>&1 || true
  grep -E '^\S*✗' "$tmp/$unit.security" | sed 's/^/   /' | head -40 || true
  score=$(grep -o 'Overall exposure level for .*' "$tmp/$unit.security" || true)
  [ -n "$score" ] || { cat "$tmp/$unit.security"; fail "no exposure level for $unit"; }
  echo "$score"
done

step "tokens from the CLI: collector stopped, as its user, on the unit's data directory"
# systemd makes the StateDirectory on start; do the same. Commands run as the service user
# with no capabilities, like the unit (and like `sudo -u sixmap-collector` in the guide).
data=/var/lib/sixmap-collector
install -d -o sixmap-collector -g sixmap-collector -m 0700 "$data"
# (An array, not a function: a command started with & must give its own pid in $!.)
as_collector=(setpriv --reuid sixmap-collector --regid sixmap-collector --init-groups
  --no-new-privs --bounding-set -all --inh-caps -all)
token=$("${as_collector[@]}" sixmap-collector token create --data-dir "$data" --owner deb-check \
  --expires-in 1h)
admin=$("${as_collector[@]}" sixmap-collector api-token create --data-dir "$data" --role admin \
  --name deb-check)
check "the enrollment token is <64 hex>.<64 hex>" \
  grep -Eqx '[0-9a-f]{64}\.[0-9a-f]{64}' <<<"$token"
check "the API token is sxa_..." grep -q '^sxa_' <<<"$admin"
check "the CA is in $data/pki (0700, key 0600, the service user's)" bash -c "
  [ \"\$(stat -c '%a %U' $data/pki)\" = '700 sixmap-collector' ] &&
  [ \"\$(stat -c '%a %U' $data/pki/ca.key)\" = '600 sixmap-collector' ] &&
  test -s $data/pki/ca.pem"
"${as_collector[@]}" sixmap-collector token list --data-dir "$data" | tee "$tmp/tokens"
check "token list shows the owner and no secret" \
  bash -c "grep -q deb-check '$tmp/tokens' && ! grep -q '${token%%.*}' '$tmp/tokens'"

step "run the collector as its unit does (user, state directory)"
# Ports: ephemeral on ::1, so nothing else on this machine is disturbed. A short heartbeat so
# that the revocation below ends the probe's session within seconds (the unit keeps 30 s).
"${as_collector[@]}" sixmap-collector serve --config /etc/sixmap/collector.toml \
    --grpc-listen '[::1]:0' --http-listen '[::1]:0' --heartbeat-interval-s 2 \
    > "$tmp/collector.out" 2> "$tmp/collector.err" &
collector_pid=$!
for _ in $(seq 100); do
  grep -q 'listening' "$tmp/collector.out" 2>/dev/null && break
  kill -0 "$collector_pid" 2>/dev/null || { cat "$tmp/collector.err"; fail "collector exited"; }
  sleep 0.2
done
grpc=$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$tmp/collector.out")
http=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$tmp/collector.out")
[ -n "$grpc" ] || fail "collector did not report its ports"
echo "collector: grpc $grpc, http $http"
check "the CLI refuses to open the store while the collector runs" \
  absent "${as_collector[@]}" sixmap-collector token create --data-dir "$data" --owner x 2>/dev/null
check "anonymous reads of probes are refused (401; raw_data_public = false)" \
  bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' 'http://$http/api/v1/probes')\" = 401 ]"
check "an admin makes a token over the API while the collector runs" bash -c "
  curl -fsS -H 'Authorization: Bearer $admin' -H 'Content-Type: application/json' \
    -d '{\"owner\":\"deb-check-api\",\"expires_in\":\"1h\"}' \
    'http://$http/api/v1/enrollment-tokens' |
  grep -Eq '\"token\":\"[0-9a-f]{64}\.${token#*.}\"'"

step "configure the probe with sixmap-probe setup"
check "setup refuses an http:// collector URL" \
  absent sixmap-probe setup --collector "http://$grpc" --token "$token" 2>/dev/null
check "nothing written by the refused setup" test ! -e /etc/sixmap/probe.toml
sixmap-probe setup --collector "https://$grpc" --token "$token" --hostname deb-check
check "/etc/sixmap/probe.toml is 0640 root:sixmap-probe" \
  bash -c '[ "$(stat -c "%a %U:%G" /etc/sixmap/probe.toml)" = "640 root:sixmap-probe" ]'
check "setup refuses to overwrite without --force" \
  absent sixmap-probe setup --collector "https://$grpc" --token "$token" 2>/dev/null

step "first start: the probe enrolls with the token (mTLS) and keeps its identity"
install -d -o sixmap-probe -g sixmap-probe -m 0700 /var/lib/sixmap-probe
# As the unit: its user, CAP_NET_RAW as the only (ambient) capability, no new privileges.
# (An array, not a function: $! must be the probe's pid, not a subshell's.)
run_probe=(setpriv --reuid sixmap-probe --regid sixmap-probe --init-groups --no-new-privs
  --bounding-set '-all,+net_raw' --inh-caps '-all,+net_raw' --ambient-caps '-all,+net_raw'
  sixmap-probe run --config /etc/sixmap/probe.toml)
"${run_probe[@]}" 2> "$tmp/probe.err" &
probe_pid=$!
for _ in $(seq 150); do
  [ -e /var/lib/sixmap-probe/identity.toml ] && [ -e /var/lib/sixmap-probe/status.json ] && break
  kill -0 "$probe_pid" 2>/dev/null || { cat "$tmp/probe.err"; fail "probe exited"; }
  sleep 0.2
done
sleep 3 # a hello and a status write
stat -c "%A %U %n" /var/lib/sixmap-probe/* | sed 's/^/   /'
check "identity.toml and key.pem are 0600 sixmap-probe" bash -c '
  [ "$(stat -c "%a %U" /var/lib/sixmap-probe/identity.toml)" = "600 sixmap-probe" ] &&
  [ "$(stat -c "%a %U" /var/lib/sixmap-probe/key.pem)" = "600 sixmap-probe" ]'
check "the probe holds its certificate and the collector's CA" \
  test -s /var/lib/sixmap-probe/cert.der -a -s /var/lib/sixmap-probe/ca.der
check "the CA the probe keeps is the one the token pinned" \
  bash -c "[ \"\$(sha256sum < /var/lib/sixmap-probe/ca.der | cut -d' ' -f1)\" = '${token#*.}' ]"
check "the probe's log says it enrolled" grep -q 'enrolled' "$tmp/probe.err"
check "the probe's capabilities are CAP_NET_RAW only" bash -c "
  grep -E '^Cap(Eff|Bnd|Amb):' /proc/$probe_pid/status | sed 's/^/   /'
  [ \"\$(awk '/^CapEff:/ {print \$2}' /proc/$probe_pid/status)\" = 0000000000002000 ]"
echo "-- sudo -u sixmap-probe sixmap-probe status"
setpriv --reuid sixmap-probe --regid sixmap-probe --init-groups sixmap-probe status | tee "$tmp/status"
check "status shows the probe running and connected" \
  bash -c "grep -q ' connected since' '$tmp/status' && ! grep -q 'NOT RUNNING' '$tmp/status'"
probe_id=$(sed -n 's/^probe_id = "\(.*\)"$/\1/p' /var/lib/sixmap-probe/identity.toml)
[ -n "$probe_id" ] || fail "no probe_id in identity.toml"
check "the collector lists probe $probe_id (admin API token)" bash -c "
  curl -fsS -H 'Authorization: Bearer $admin' 'http://$http/api/v1/probes' |
  grep -q '$probe_id'"

step "upgrade to revision 2 while configured and enrolled"
sum_conf=$(sha256sum < /etc/sixmap/probe.toml)
sum_id=$(sha256sum < /var/lib/sixmap-probe/identity.toml)
dpkg -i "$probe_deb2"
check "upgraded to ${version}-2" \
  bash -c "[ \"\$(dpkg-query -W -f='\${Version}' sixmap-probe)\" = '${version}-2' ]"
check "config unchanged by the upgrade" bash -c "[ \"\$(sha256sum < /etc/sixmap/probe.toml)\" = '$sum_conf' ]"
check "identity unchanged by the upgrade" \
  bash -c "[ \"\$(sha256sum < /var/lib/sixmap-probe/identity.toml)\" = '$sum_id' ]"

step "revocation: the probe exits with 78 and stays stopped"
check "an admin revokes the probe over the API" bash -c "
  curl -fsS -X POST -H 'Authorization: Bearer $admin' \
    'http://$http/api/v1/probes/$probe_id/revoke' | grep -q revoked_at"
for _ in $(seq 150); do kill -0 "$probe_pid" 2>/dev/null || break; sleep 0.2; done
rc=0; wait "$probe_pid" || rc=$?
probe_pid=''
sed 's/^/   /' "$tmp/probe.err" | tail -3
check "the revoked probe exited with status 78 (RestartPreventExitStatus)" test "$rc" = 78
check "it remembers the revocation in its state directory" test -s /var/lib/sixmap-probe/revoked
rc=0; "${run_probe[@]}" 2> "$tmp/probe2.err" || rc=$?
check "started again, it refuses at once with 78" test "$rc" = 78
check "the unit does not restart on 78" \
  grep -qx 'RestartPreventExitStatus=78' /usr/lib/systemd/system/sixmap-probe.service

kill "$collector_pid"
wait "$collector_pid" 2>/dev/null || true
collector_pid=''
"${as_collector[@]}" sixmap-collector probes --data-dir "$data" > "$tmp/probes"
check "the CLI (collector stopped) shows the probe revoked" \
  bash -c "grep '$probe_id' '$tmp/probes' | grep -Eq '\"revoked_at\":[0-9]'"

step "remove keeps config, state and users"
dpkg -r sixmap-probe sixmap-collector
check "binaries gone" bash -c '! command -v sixmap-probe && ! command -v sixmap-collector'
check "units gone" bash -c '! ls /usr/lib/systemd/system/sixmap-* 2>/dev/null'
check "config and state kept" \
  test -e /etc/sixmap/probe.toml -a -e /var/lib/sixmap-probe/identity.toml -a -e /etc/sixmap/collector.toml
check "users kept" getent passwd sixmap-probe sixmap-collector

step "install with the token in the environment (SIXMAP_COLLECTOR, SIXMAP_TOKEN)"
dpkg --purge sixmap-probe >/dev/null
env_token="$(printf '%064d' 1).$(printf '%064d' 2)"
out=$(SIXMAP_COLLECTOR="http://[2001:db8::10]:7400" SIXMAP_TOKEN="$env_token" \
  dpkg -i "$probe_deb" 2>&1) || { printf '%s\n' "$out"; fail "dpkg -i with an http:// URL"; }
printf '%s\n' "$out"
check "an http:// URL in the environment: installed, not configured, told why" bash -c '
  test ! -e /etc/sixmap/probe.toml && grep -q "not an https:// URL" <<<"$1" &&
  grep -q "not configured yet" <<<"$1"' _ "$out"
dpkg --purge sixmap-probe >/dev/null
# setup checks the collector live before writing: nobody answers at 2001:db8::10.
out=$(SIXMAP_COLLECTOR="https://[2001:db8::10]:7400" SIXMAP_TOKEN="$env_token" \
  dpkg -i "$probe_deb" 2>&1) || { printf '%s\n' "$out"; fail "dpkg -i with an unreachable collector"; }
printf '%s\n' "$out"
check "an unreachable collector in the environment: installed, not configured, told why" bash -c '
  test ! -e /etc/sixmap/probe.toml && grep -q "2001:db8::10" <<<"$1" &&
  grep -q "not configured yet" <<<"$1"' _ "$out"
dpkg --purge sixmap-probe >/dev/null
SIXMAP_COLLECTOR="https://[2001:db8::10]:7400" SIXMAP_TOKEN="$env_token" SIXMAP_NO_CHECK=1 \
  dpkg -i "$probe_deb"
check "postinst wrote the config from the environment (SIXMAP_NO_CHECK=1)" \
  bash -c 'grep -qx "enrollment_token = \"$1\"" /etc/sixmap/probe.toml &&
           grep -qx "collector = \"https://\[2001:db8::10\]:7400\"" /etc/sixmap/probe.toml &&
           [ "$(stat -c "%a %U:%G" /etc/sixmap/probe.toml)" = "640 root:sixmap-probe" ]' _ "$env_token"

step "purge leaves nothing"
dpkg -r sixmap-probe >/dev/null
dpkg --purge sixmap-probe sixmap-collector
check "packages unknown to dpkg" \
  bash -c '! dpkg-query -W -f="\${Status}\n" sixmap-probe sixmap-collector 2>/dev/null | grep -qv not-installed'
check "no users or groups" \
  bash -c '! getent passwd sixmap-probe sixmap-collector && ! getent group sixmap-probe sixmap-collector'
check "no /etc/sixmap" test ! -e /etc/sixmap
check "no state under /var/lib" bash -c '! ls -d /var/lib/sixmap-* /var/lib/private/sixmap-* 2>/dev/null'
check "no unit files or enable links" \
  bash -c '! find /lib/systemd /usr/lib/systemd /etc/systemd -name "sixmap-*" 2>/dev/null | grep -q .'
check "no deb-systemd-helper state" \
  bash -c '! find /var/lib/systemd/deb-systemd-helper-enabled -name "*sixmap*" 2>/dev/null | grep -q .'
check "no binaries" bash -c '! ls /usr/bin/sixmap-* 2>/dev/null'

step "all checks passed"
