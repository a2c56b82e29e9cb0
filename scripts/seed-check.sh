#!/usr/bin/env bash
# Starts the VERBATIM seed configs (configs/server1.conf, configs/server2.conf) the way users do,
# `broker -c server1.conf` from the configs folder, against the emulated SCIONLab-like topology
# whose user ASes carry the seeds' ISD-AS numbers (configs/scionlab-demo.toml), one emulated
# SCION daemon per broker process through SCION_DAEMON_ADDRESS. Two checks:
#
#  A. Realistic ASes (dispatched ports 31000-32767, like a dispatcherless SCIONLab AS). The seed
#     route ports 4248/5248 lie outside that range, so both brokers must print the
#     nats-server-style startup lines with their SCION listen addresses AND the loud warning
#     that a shim dispatcher is needed; and the route indeed does not come up (the emulated
#     border router hands such packets to the shim dispatcher port, where nothing listens).
#  B. The same topology with the two user ASes' dispatched range widened to 1024-65535 (what an
#     operator can set in topology.json; NOT what a stock SCIONLab AS has): the seed configs'
#     route must come up on both sides.
#  C. Realistic ASes again, with a shim dispatcher on 127.0.0.1:30041 (what the warning asks
#     for; scionproto's dispatcher in shim mode): the route must come up, and each broker's
#     probes must be answered (/pathz shows alive paths): the answers to what arrived through
#     the shim go back through the border router.
#
#   bash scripts/seed-check.sh [--no-build] [--release]
# Exit status 0 = both checks passed. Logs are kept in a temporary folder printed on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PROFILE=debug
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --release) PROFILE=release ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "seed-check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

for p in 4222 5222 8222 8223; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "seed-check.sh: 127.0.0.1:$p is in use; the seed configs need it" >&2
    exit 2
  fi
done

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/$PROFILE"
if [ "$BUILD" = 1 ]; then
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  cargo build -q "${flag[@]}" -p broker -p scion-transport --bins
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/seed-check.XXXXXX")
PIDS=()
stop_all() {
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  PIDS=()
}
FAILED=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  if [ "$rc" = 0 ] && [ "$FAILED" = 0 ]; then rm -rf "$WORK"; else echo "seed-check.sh: logs kept in $WORK" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() { echo "FAIL: $*" >&2; FAILED=1; }
ok() { echo "ok:   $*"; }
# Log text without colour codes (tracing colours field names even in files).
plain() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
has() { plain "$1" | grep -qF -- "$2"; }
# wait_line SECONDS FILE TEXT: bounded wait for a log line.
wait_line() {
  local n=$(( $1 * 10 ))
  for _ in $(seq 1 "$n"); do has "$2" "$3" && return 0; sleep 0.1; done
  return 1
}

# start_case NAME TOPOLOGY [EMULATOR FLAGS...]: emulator plus both seed brokers, run from
# configs/ like the users do (with monitoring on 8222/8223 from the command line).
start_case() {
  local name=$1 topo=$2 dir="$WORK/$1"
  shift 2
  mkdir -p "$dir"
  "$BIN/scion-emu" run "$topo" "$@" >"$dir/emu.out" 2>"$dir/emu.log" &
  PIDS+=($!)
  wait_line 20 "$dir/emu.out" "as 18-ffaa:1:10a0 " || { fail "$name: emulator did not start"; return 1; }
  local d1 d2
  d1=$(awk '$1=="as" && $2=="18-ffaa:1:10bf" { for (i=3;i<=NF;i++) if ($i ~ /^daemon=/) { sub("daemon=","",$i); print $i } }' "$dir/emu.out")
  d2=$(awk '$1=="as" && $2=="18-ffaa:1:10a0" { for (i=3;i<=NF;i++) if ($i ~ /^daemon=/) { sub("daemon=","",$i); print $i } }' "$dir/emu.out")
  (cd "$ROOT/configs" && exec env SCION_DAEMON_ADDRESS="$d1" "$BIN/broker" -c server1.conf -m 8222) >"$dir/s1.log" 2>&1 &
  PIDS+=($!)
  (cd "$ROOT/configs" && exec env SCION_DAEMON_ADDRESS="$d2" "$BIN/broker" -c server2.conf -m 8223) >"$dir/s2.log" 2>&1 &
  PIDS+=($!)
}

# The nats-server-style startup lines of one seed broker, with its SCION listen address.
check_startup() {
  local case=$1 log=$2 name=$3 conf=$4 cport=$5 ia=$6 rport=$7
  local lines=(
    "[INF] Starting nats-server"
    "[INF]   Cluster:  c1"
    "[INF]   Name:     $name"
    "[INF] Using configuration file: $conf"
    "[INF] Listening for client connections on 0.0.0.0:$cport"
    "[INF] Server is ready"
    "[INF] Cluster name is c1"
    "[INF] Listening for route connections on [$ia,127.0.0.1]:$rport (SCION)"
  )
  wait_line 20 "$log" "Listening for route connections on" || true
  local missing=0
  for l in "${lines[@]}"; do
    has "$log" "$l" || { fail "$case $name: missing startup line: $l"; missing=1; }
  done
  [ "$missing" = 0 ] && ok "$case $name: startup lines (client 0.0.0.0:$cport, route [$ia,127.0.0.1]:$rport over SCION)"
}

echo "== A: verbatim seed configs, realistic dispatched range 31000-32767"
start_case A "$ROOT/configs/scionlab-demo.toml"
check_startup A "$WORK/A/s1.log" s1 server1.conf 4222 18-ffaa:1:10bf 4248
check_startup A "$WORK/A/s2.log" s2 server2.conf 5222 18-ffaa:1:10a0 5248
for pair in "s1 4248 18-ffaa:1:10bf" "s2 5248 18-ffaa:1:10a0"; do
  set -- $pair
  w="[WRN] SCION port $2 of [$3,127.0.0.1]:$2 (cluster.listen) is outside the AS's dispatched range 31000-32767: border routers will deliver to port 30041, so a shim dispatcher is needed"
  if has "$WORK/A/$1.log" "$w"; then ok "A $1: loud dispatched-range warning for port $2"; else fail "A $1: no warning: $w"; fi
done
if wait_line 10 "$WORK/A/s2.log" "Trying to connect to route on [18-ffaa:1:10bf,127.0.0.1]:4248 (SCION)"; then
  ok "A s2: dials the seed route [18-ffaa:1:10bf,127.0.0.1]:4248 over SCION"
else
  fail "A s2: no route dial logged"
fi
# The warning's claim: without a shim dispatcher the route cannot come up. Give it 5 s.
if wait_line 5 "$WORK/A/s2.log" "Route connection created"; then
  fail "A: the route came up although 4248 is outside the dispatched range (emulator not dispatcherless?)"
else
  ok "A: as warned, no route through the border router to ports outside the range"
fi
stop_all

echo "== B: verbatim seed configs, user ASes' dispatched range widened to 1024-65535 (not a stock SCIONLab AS)"
sed 's/^dispatched_ports = "31000-32767"/dispatched_ports = "1024-65535"/' \
  "$ROOT/configs/scionlab-demo.toml" >"$WORK/wide.toml"
if [ "$(grep -c '^dispatched_ports = "1024-65535"' "$WORK/wide.toml")" != 2 ]; then
  fail "B: could not widen the user ASes' dispatched range in configs/scionlab-demo.toml"
else
  start_case B "$WORK/wide.toml"
  check_startup B "$WORK/B/s1.log" s1 server1.conf 4222 18-ffaa:1:10bf 4248
  check_startup B "$WORK/B/s2.log" s2 server2.conf 5222 18-ffaa:1:10a0 5248
  if wait_line 30 "$WORK/B/s2.log" "[18-ffaa:1:10bf,127.0.0.1]:4248 - rid:" &&
     wait_line 30 "$WORK/B/s2.log" "Route connection created" &&
     wait_line 30 "$WORK/B/s1.log" "[18-ffaa:1:10a0,127.0.0.1]:5248 - rid:" &&
     wait_line 30 "$WORK/B/s1.log" "Route connection created"; then
    ok "B: route s2 -> [18-ffaa:1:10bf,127.0.0.1]:4248 created on both ends"
  else
    fail "B: the seed route did not come up within 30 s"
  fi
  if wait_line 10 "$WORK/B/s2.log" "Registering remote route" && has "$WORK/B/s2.log" "Sent local subscriptions to route"; then
    ok "B s2: debug route lines as in the seed README (Registering remote route, Sent local subscriptions)"
  else
    fail "B s2: debug route lines missing"
  fi
  stop_all
fi

echo "== C: verbatim seed configs, realistic dispatched range, a shim dispatcher on 127.0.0.1:30041"
if ! command -v python3 >/dev/null; then
  fail "C: python3 is needed to read /pathz"
elif ! start_case C "$ROOT/configs/scionlab-demo.toml" --shim 127.0.0.1 ||
     ! has "$WORK/C/emu.out" "shim 127.0.0.1:30041"; then
  fail "C: the emulator with a shim dispatcher did not start (is UDP 127.0.0.1:30041 taken? see $WORK/C/emu.log)"
else
  check_startup C "$WORK/C/s1.log" s1 server1.conf 4222 18-ffaa:1:10bf 4248
  check_startup C "$WORK/C/s2.log" s2 server2.conf 5222 18-ffaa:1:10a0 5248
  if wait_line 30 "$WORK/C/s2.log" "Route connection created" &&
     wait_line 30 "$WORK/C/s1.log" "Route connection created"; then
    ok "C: route s2 -> [18-ffaa:1:10bf,127.0.0.1]:4248 created on both ends through the shim"
  else
    fail "C: the seed route did not come up through the shim within 30 s"
  fi
  # Each side probes its paths to the other; the answers come back through the border router
  # of the arrival interface, not through the shim (which drops them).
  for pair in "s1 8222" "s2 8223"; do
    set -- $pair
    alive=0
    for _ in $(seq 1 20); do
      if python3 - "$2" <<'PY' 2>/dev/null
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/pathz", timeout=1))
text = json.dumps(doc)
sys.exit(0 if '"state": "alive"' in text else 1)
PY
      then alive=1; break; fi
      sleep 0.5
    done
    if [ "$alive" = 1 ]; then ok "C $1: /pathz shows an alive path (probe answers came back through the border router)"; else fail "C $1: no alive path in /pathz within 10-30 s"; fi
  done
  stop_all
fi

if [ "$FAILED" = 0 ]; then
  echo "seed-check: PASS"
else
  echo "seed-check: FAIL" >&2
  exit 1
fi
