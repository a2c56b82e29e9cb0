#!/usr/bin/env bash
# Interop test of scion-transport against PocketSCION (Anapaya's SCION network simulator,
# crate pocketscion 0.8.6), a SCION implementation nobody on this project wrote.
#   bash scripts/pocketscion-interop.sh
#
# 1. installs cmake and libclang-dev if missing (PocketSCION builds BoringSSL);
# 2. builds the wrapper (scion-transport/interop/pocketscion, its own Cargo workspace) into a
#    target dir that survives between runs: ~8 min cold on 2 cores, seconds when warm;
# 3. runs scion-transport's tests/pocketscion_interop.rs with POCKETSCION_BIN set.
# Environment: POCKETSCION_TARGET_DIR overrides the wrapper's target dir. CARGO_TARGET_DIR (if
# set) applies to the main workspace only.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "install ok installed" || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

wrapper=scion-transport/interop/pocketscion
target="${POCKETSCION_TARGET_DIR:-${HOME:-/tmp}/.cache/nats-scion/pocketscion-target}"
mkdir -p "$target"

log "building the PocketSCION wrapper (target dir $target)"
t0=$(date +%s)
CARGO_TARGET_DIR="$target" cargo build --locked --manifest-path "$wrapper/Cargo.toml"
log "wrapper unit tests"
CARGO_TARGET_DIR="$target" cargo test --locked --manifest-path "$wrapper/Cargo.toml"
echo "wrapper build and unit tests: $(( $(date +%s) - t0 )) s"

bin="$target/debug/pocketscion-wrapper"
[ -x "$bin" ] || { echo "wrapper binary missing at $bin" >&2; exit 1; }

log "scion-transport against PocketSCION"
# One test at a time: each starts its own PocketSCION, and the machine may have 2 cores.
POCKETSCION_BIN="$bin" cargo test --locked -p scion-transport --test pocketscion_interop \
  -- --ignored --nocapture --test-threads=1
log "PocketSCION interop passed"
