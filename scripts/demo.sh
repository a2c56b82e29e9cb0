#!/usr/bin/env bash
# The one-command local demo: a two-broker NATS cluster across two emulated SCIONLab user ASes.
#
#   bash scripts/demo.sh            # ~60 s: 40 s stream, path cut at 10 s, restored at 25 s
#   bash scripts/demo.sh --short    # ~20 s: the test-suite mode (12 s stream, cut at 4 s, restore at 8 s)
#
# Options: --short, --release (build and run release binaries), --no-build, --out DIR,
#          --cut-mode down|blackhole (SCMP-signalled cut, the default, or a silent blackhole).
#
# What runs (all on 127.0.0.1, every process is stopped on exit):
#   scion-emu   configs/scionlab-demo.toml: 18-ffaa:1:10bf and 18-ffaa:1:10a0, each attached to
#               two attachment points under two cores (two disjoint paths, 15 and 26 ms one way)
#   broker s1   configs/demo/server1.conf in AS 18-ffaa:1:10bf (clients on 4222, monitor 8222)
#   broker s2   configs/demo/server2.conf in AS 18-ffaa:1:10a0 (clients on 5222, monitor 8223)
#   timesync source src-10bf on s1, followers f1 (+250 ms fake offset) and f2 (-80 ms, +30 ppm) on s2
#   demo driver (broker/examples/demo): 1 kHz sequenced publisher on s1, subscriber on s2, live
#               view, the cut and restore, the summary, plot.svg; its exit status is the demo's.
# The run folder (demo-out/<time>/ by default) holds every log, summary.txt, timeline.csv,
# offsets.csv and plot.svg. Exit status: 0 = nothing lost/duplicated/reordered and every
# follower stayed within its claimed error bound; 1 = one of those failed; 2 = setup failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SHORT=0
PROFILE=debug
BUILD=1
OUT=""
CUT_MODE=down
while [ $# -gt 0 ]; do
  case "$1" in
    --short) SHORT=1 ;;
    --release) PROFILE=release ;;
    --no-build) BUILD=0 ;;
    --out) OUT="${2:?--out needs a directory}"; shift ;;
    --cut-mode) CUT_MODE="${2:?--cut-mode needs down or blackhole}"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$CUT_MODE" in down|blackhole) ;; *) echo "demo.sh: --cut-mode must be down or blackhole" >&2; exit 2 ;; esac

if [ "$SHORT" = 1 ]; then
  DURATION=12; CUT_AT=4; RESTORE_AT=8
else
  DURATION=40; CUT_AT=10; RESTORE_AT=25
fi
READY_TIMEOUT=60
if [ -z "$OUT" ]; then
  # (No `cond && echo` inside the assignment: its status would be the assignment's, and
  # `set -e` ended the default run here, silently.)
  SUFFIX=""
  if [ "$SHORT" = 1 ]; then SUFFIX=-short; fi
  OUT="demo-out/$(date -u +%Y%m%d-%H%M%S)$SUFFIX"
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# Fixed ports: the demo configs' client ports, the monitoring ports given with -m below, and the
# SCION route ports (UDP 31248, 32248, inside the emulated ASes' dispatched range).
TCP_PORTS=(4222 5222 8222 8223)
for p in "${TCP_PORTS[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "demo.sh: 127.0.0.1:$p is in use (another nats-server or demo?); stop it first" >&2
    exit 2
  fi
done

log() { printf '[demo] %s\n' "$*"; }

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/$PROFILE"
if [ "$BUILD" = 1 ]; then
  log "building ($PROFILE): broker, scion-emu, timesync, demo driver"
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  cargo build -q "${flag[@]}" -p broker -p scion-transport -p timesync --bins
  cargo build -q "${flag[@]}" -p broker --example demo
fi
for b in broker scion-emu timesync examples/demo; do
  [ -x "$BIN/$b" ] || { echo "demo.sh: $BIN/$b is missing (run without --no-build)" >&2; exit 2; }
done

PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Stop in reverse start order: clients first, the emulator last.
  for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits (bounded) for a started process: wait_proc SECONDS WHAT PID LOG CMD... until CMD
# succeeds; stops at once if the process exits, and shows the end of its log (e.g. the [FTL]
# line naming a busy port).
wait_proc() {
  local secs=$1 what=$2 pid=$3 logf=$4; shift 4
  local n=$(( secs * 10 ))
  for _ in $(seq 1 "$n"); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "demo.sh: $what not ready within ${secs}s (logs in $OUT); the end of $logf:" >&2
  else
    echo "demo.sh: $what exited during start-up (logs in $OUT); the end of $logf:" >&2
  fi
  tail -n 3 "$logf" | sed 's/^/  /' >&2
  exit 2
}

log "run folder: $OUT"
log "starting scion-emu with configs/scionlab-demo.toml"
"$BIN/scion-emu" run configs/scionlab-demo.toml --topology-dir "$OUT/topology" \
  >"$OUT/emu.out" 2>"$OUT/emu.log" &
PIDS+=($!)
wait_proc 20 "scion-emu" "$!" "$OUT/emu.log" grep -q '^as 18-ffaa:1:10a0 ' "$OUT/emu.out"
daemon_of() { awk -v ia="$1" '$1=="as" && $2==ia { for (i=3;i<=NF;i++) if ($i ~ /^daemon=/) { sub("daemon=","",$i); print $i } }' "$OUT/emu.out"; }
CONTROL=$(awk '$1=="control"{print $2}' "$OUT/emu.out")
D1=$(daemon_of 18-ffaa:1:10bf)
D2=$(daemon_of 18-ffaa:1:10a0)
T1="$OUT/topology/18-ffaa_1_10bf.topology.json"
T2="$OUT/topology/18-ffaa_1_10a0.topology.json"
[ -n "$CONTROL" ] && [ -n "$D1" ] && [ -n "$D2" ] && [ -f "$T1" ] && [ -f "$T2" ] || {
  echo "demo.sh: could not read the emulator's addresses from $OUT/emu.out" >&2; exit 2; }
log "emulator control $CONTROL, daemon 18-ffaa:1:10bf $D1, daemon 18-ffaa:1:10a0 $D2"

log "starting broker s1 (18-ffaa:1:10bf) and s2 (18-ffaa:1:10a0)"
env SCION_DAEMON_ADDRESS="$D1" DEMO_SCION_TOPOLOGY="$T1" \
  "$BIN/broker" -c configs/demo/server1.conf -m 8222 >"$OUT/s1.log" 2>&1 &
S1=$!
PIDS+=("$S1")
env SCION_DAEMON_ADDRESS="$D2" DEMO_SCION_TOPOLOGY="$T2" \
  "$BIN/broker" -c configs/demo/server2.conf -m 8223 >"$OUT/s2.log" 2>&1 &
S2=$!
PIDS+=("$S2")
# Ready = its client port answers and its SCION route listener is up (it binds after the
# client port; a busy UDP port ends the broker with an [FTL] line).
wait_proc 20 "broker s1" "$S1" "$OUT/s1.log" grep -q "Listening for route connections" "$OUT/s1.log"
wait_proc 20 "broker s2" "$S2" "$OUT/s2.log" grep -q "Listening for route connections" "$OUT/s2.log"

log "starting timesync source src-10bf on s1, followers f1, f2 on s2"
"$BIN/timesync" -s nats://127.0.0.1:4222 source --id src-10bf >"$OUT/source.log" 2>&1 &
PIDS+=($!)
"$BIN/timesync" -s nats://127.0.0.1:5222 follow --id f1 --source src-10bf --status-ms 250 \
  --fake-offset-ms 250 >"$OUT/follower-f1.log" 2>&1 &
PIDS+=($!)
"$BIN/timesync" -s nats://127.0.0.1:5222 follow --id f2 --source src-10bf --status-ms 250 \
  --fake-offset-ms -80 --fake-ppm 30 >"$OUT/follower-f2.log" 2>&1 &
PIDS+=($!)

log "stream: ${DURATION}s at 1 kHz, link $CUT_MODE at ${CUT_AT}s, restore at ${RESTORE_AT}s"
SERVICES=("${PIDS[@]}")
# In the background so that a signal to this script runs the cleanup at once (bash defers
# traps while a foreground command runs).
timeout $(( DURATION + 2 * READY_TIMEOUT + 30 )) "$BIN/examples/demo" \
  --pub nats://127.0.0.1:4222 --sub nats://127.0.0.1:5222 \
  --monitor1 127.0.0.1:8222 --monitor2 127.0.0.1:8223 --control "$CONTROL" \
  --followers f1,f2 --out "$OUT" --duration "$DURATION" --cut-at "$CUT_AT" \
  --restore-at "$RESTORE_AT" --cut-mode "$CUT_MODE" --ready-timeout "$READY_TIMEOUT" &
DRIVER=$!
PIDS+=("$DRIVER")
set +e
wait "$DRIVER"
rc=$?
set -e
[ "$rc" = 124 ] && { echo "demo.sh: the demo driver did not finish in time" >&2; rc=2; }

# A crashed process is a failure even if the stream looked fine.
for f in "$OUT"/s1.log "$OUT"/s2.log "$OUT"/source.log "$OUT"/follower-*.log "$OUT"/emu.log; do
  if grep -q "panicked at" "$f"; then
    echo "demo.sh: a process panicked, see $f" >&2
    [ "$rc" = 0 ] && rc=1
  fi
done
for p in "${SERVICES[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "demo.sh: process $p exited during the demo (see logs in $OUT)" >&2; [ "$rc" = 0 ] && rc=1; }
done
log "logs, summary.txt, timeline.csv, offsets.csv and plot.svg are in $OUT"
exit "$rc"
