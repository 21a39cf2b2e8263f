#!/usr/bin/env bash
# Cross-builds sixmap-probe for Raspberry Pis, strips it, prints the sizes and checks each binary
# under qemu-user: `--version` and a ping to ::1.
#
#   deploy/cross-build.sh            # aarch64 (64-bit Raspberry Pi OS) and armv7 (32-bit)
#   deploy/cross-build.sh --deb      # also build the Pi .debs (arm64, armhf) with cargo-deb
#
# Run as root on Debian 12 (bookworm) x86_64: missing cross toolchains and qemu-user-static are
# installed with apt-get, the Rust targets with rustup. Outputs:
#   target/pi/arm64/sixmap-probe, target/pi/armhf/sixmap-probe   (stripped)
#   target/pi/*.deb                                               (with --deb)
# The first run takes a while: two release builds with LTO.
set -euo pipefail
cd "$(dirname "$0")/.."

want_deb=false
for arg in "$@"; do
  case "$arg" in
    --deb) want_deb=true ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "cross-build: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

# Rust target, Debian arch, GNU triple (tool prefix), qemu binary.
targets=(
  "aarch64-unknown-linux-gnu arm64 aarch64-linux-gnu qemu-aarch64-static"
  "armv7-unknown-linux-gnueabihf armhf arm-linux-gnueabihf qemu-arm-static"
)

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'cross-build: %s\n' "$*" >&2; exit 1; }

step "toolchains"
packages=(gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross
          libc6-dev-armhf-cross binutils-aarch64-linux-gnu
          binutils-arm-linux-gnueabihf qemu-user-static file)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing packages: ${missing[*]} (as root: apt-get install ${missing[*]})"
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
rust_targets=()
for t in "${targets[@]}"; do
  read -r rust_target _ _ _ <<<"$t"
  rust_targets+=("$rust_target")
done
installed=$(rustup target list --installed)
for rt in "${rust_targets[@]}"; do
  grep -qx "$rt" <<<"$installed" || rustup target add "$rt"
done

step "build (release, LTO): ${rust_targets[*]}"
# Linkers come from .cargo/config.toml; ring compiles C, so the cc crate is told the cross
# compilers and archivers explicitly.
build_args=()
for t in "${targets[@]}"; do
  read -r rust_target _ triple _ <<<"$t"
  env_target=${rust_target//-/_}
  export "CC_${env_target}=${triple}-gcc" "AR_${env_target}=${triple}-ar"
  build_args+=(--target "$rust_target")
done
cargo build --release --locked -p sixmap-probe "${build_args[@]}"

step "strip and sizes"
version=$(cargo metadata --no-deps --format-version 1 \
  | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="sixmap-probe"))')
for t in "${targets[@]}"; do
  read -r rust_target arch triple _ <<<"$t"
  built=target/$rust_target/release/sixmap-probe
  out=target/pi/$arch/sixmap-probe
  mkdir -p "$(dirname "$out")"
  cp "$built" "$out"
  "${triple}-strip" "$out"
  before=$(stat -c %s "$built")
  after=$(stat -c %s "$out")
  awk -v t="$rust_target" -v a="$arch" -v s="$after" -v b="$before" 'BEGIN {
    printf "%-30s %-6s stripped: %d bytes (%.2f MiB); before strip: %d bytes\n", t, a, s, s / 1048576, b }' 
  file -b "$out" | sed 's/^/    /'
  # The newest glibc symbol version the binary needs: it runs on systems with at least this.
  glibc=$("${triple}-objdump" -T "$out" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  echo "    needs $glibc or newer"
done

step "run under qemu-user"
# The probe is dynamically linked: qemu finds the target's loader and libc in Debian's
# cross sysroots (/usr/<triple>) through -L.
# Ping: this machine's net.ipv4.ping_group_range may exclude every group (containers often
# set "1 0"), so unprivileged ICMP datagram sockets are refused. As root, a raw ICMPv6 socket
# works, through qemu's syscall translation as on a Pi with CAP_NET_RAW.
icmp_socket=auto
if [ "$(id -u)" = 0 ]; then icmp_socket=raw; fi
for t in "${targets[@]}"; do
  read -r _ arch triple qemu <<<"$t"
  bin=target/pi/$arch/sixmap-probe
  echo "-- $arch: $qemu -L /usr/$triple $bin --version"
  got=$("$qemu" -L "/usr/$triple" "$bin" --version)
  echo "   $got"
  [ "$got" = "sixmap-probe $version" ] || fail "$arch: expected 'sixmap-probe $version', got '$got'"
  echo "-- $arch: sixmap-probe measure ping ::1 --lab-mode -c 2 --icmp-socket $icmp_socket"
  if ! out=$(RUST_BACKTRACE=0 "$qemu" -L "/usr/$triple" "$bin" measure ping ::1 --lab-mode -c 2 \
             --interval-ms 200 --icmp-socket "$icmp_socket" --json 2>&1); then
    printf '%s\n' "$out" >&2
    fail "$arch: ping ::1 failed under $qemu"
  fi
  printf '%s\n' "$out" | python3 -c '
import json, sys
text = sys.stdin.read()
try:
    r = json.loads(text[text.index("{"):])
    o = r["outcome"]
    rtts = [x["rtt_ns"] for x in o["replies"] if x["from"] == "::1" and not x["duplicate"]]
except (ValueError, KeyError, TypeError) as e:
    sys.exit("unexpected output (%s): %s" % (e, text))
if o.get("kind") != "ping" or o.get("sent") != 2 or o.get("received") != 2 or len(rtts) != 2:
    sys.exit("expected 2 echo replies from ::1, got: " + text)
print("   sent 2, received 2 from ::1 over a %s socket, rtt %s us, timestamps: %s"
      % (o["socket_kind"], ", ".join("%.0f" % (n / 1000) for n in rtts), o["timestamp_source"]))
'
done

if $want_deb; then
  step "Debian packages for the Pis (cargo-deb)"
  command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
  for t in "${targets[@]}"; do
    read -r rust_target arch _ _ <<<"$t"
    cargo deb -p sixmap-probe --no-build --target "$rust_target" --output "target/pi/"
  done
  ls -l target/pi/*.deb
fi

step "done"
echo "binaries: target/pi/arm64/sixmap-probe target/pi/armhf/sixmap-probe"
