#!/usr/bin/env bash
# Side-by-side benchmark: our broker vs Debian's nats-server 2.9.10, on loopback, interleaved
# (ours, theirs, ours, theirs, ... for N rounds), reporting medians and our/their ratios as a
# Markdown table on stdout and in bench/results/latest.md (latest-route.md for --route).
#
# Usage: bench/compare.sh [--rounds N] [--route | --all] [--quick] [--no-build] [--out NAME]
#   --rounds N   rounds per server (default 3)
#   --route      only the cluster workloads: two servers of each kind routed together,
#                nats-xbench publisher on A / subscriber on B, nats-rtt requester on A /
#                responder on B
#   --all        single-server and route workloads (table in latest.md)
#   --quick      small message counts (smoke test of the script itself)
#   --no-build   do not run `cargo build --release -p broker`
#   --out NAME   file name under bench/results/ (default latest.md, latest-route.md for --route)
# Environment:
#   OURS_CMD     our server command (default: $CARGO_TARGET_DIR or <repo>/target, then /release/broker); the script appends
#                `-a 127.0.0.1 -p PORT` (and `--cluster ... --routes ... --cluster_name ...`)
#   THEIRS_CMD   reference server command (default: nats-server)
#   OURS_LABEL, THEIRS_LABEL   column labels
#   BENCH_TIMEOUT seconds allowed per workload (default 60); CONNS idle connections (1000);
#   STALL_BYTES  bytes published at the stalled subscriber (default 1 GiB);
#   PUB16, PUB1K (pub-only), PUBSUB16, PUBSUB1K (pub+sub), RTT_N, ROUTE_MSGS16, ROUTE_MSGS1K
#                message counts; MSGS16 / MSGS1K set both shapes of a size at once. The
#                defaults make every throughput run last about 1 s or more on a 2-core machine
#                (runs of ~0.3 s were dominated by connection start-up and scheduling noise)
# Any workload that fails or times out is reported as "n/a"; the script never waits unbounded.
# Prove the script itself with nats-server on both sides:
#   OURS_CMD=nats-server OURS_LABEL=nats-server-A bench/compare.sh --no-build --quick
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELP="$ROOT/bench/nats_helpers.py"
ROUNDS=3
MODE=single
QUICK=0
BUILD=1
ARGS_TEXT="bench/compare.sh $*"
OUT_NAME=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
    --route) MODE=route; shift ;;
    --all) MODE=all; shift ;;
    --quick) QUICK=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT_NAME=${2:?--out needs a file name}; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ROUNDS" in ''|*[!0-9]*|0) echo "compare.sh: --rounds must be a positive integer" >&2; exit 2 ;; esac
case "$OUT_NAME" in */*|.*) echo "compare.sh: --out takes a plain file name" >&2; exit 2 ;; esac

OURS_CMD=${OURS_CMD:-${CARGO_TARGET_DIR:-$ROOT/target}/release/broker}
THEIRS_CMD=${THEIRS_CMD:-nats-server}
OURS_LABEL=${OURS_LABEL:-ours}
THEIRS_LABEL=${THEIRS_LABEL:-nats-server}
TIMEOUT=${BENCH_TIMEOUT:-60}
CONNS=${CONNS:-1000}
STALL_BYTES=${STALL_BYTES:-1073741824}
if [ "$QUICK" = 1 ]; then
  MSGS16=${MSGS16:-200000}; MSGS1K=${MSGS1K:-50000}; RTT_N=${RTT_N:-1000}
  ROUTE_MSGS16=${ROUTE_MSGS16:-100000}; ROUTE_MSGS1K=${ROUTE_MSGS1K:-20000}
else
  MSGS16=${MSGS16:-}; MSGS1K=${MSGS1K:-}; RTT_N=${RTT_N:-10000}
  ROUTE_MSGS16=${ROUTE_MSGS16:-1000000}; ROUTE_MSGS1K=${ROUTE_MSGS1K:-200000}
fi

PUB16=${PUB16:-${MSGS16:-10000000}}; PUB1K=${PUB1K:-${MSGS1K:-2000000}}
PUBSUB16=${PUBSUB16:-${MSGS16:-5000000}}; PUBSUB1K=${PUBSUB1K:-${MSGS1K:-1000000}}

log() { echo "[compare] $*" >&2; }

# --- tools ---------------------------------------------------------------------------------
SETUP=${PEERS_SETUP:-$ROOT/../shared/peers/setup.sh}
TOOLS=""
# PEERS_BIN first (the user said where the tools are), then the setup script, then its cache.
if [ -n "${PEERS_BIN:-}" ] && [ -x "$PEERS_BIN/nats-bench" ]; then
  TOOLS=$PEERS_BIN
elif [ -f "$SETUP" ]; then
  TOOLS=$(timeout 900 bash "$SETUP" 2>/dev/null | tail -n1)
fi
if [ -z "$TOOLS" ] || [ ! -x "$TOOLS/nats-bench" ]; then
  if [ -x "$HOME/.cache/nats-peers/bin/nats-bench" ]; then TOOLS=$HOME/.cache/nats-peers/bin; fi
fi
if [ -z "$TOOLS" ] || [ ! -x "$TOOLS/nats-bench" ]; then
  echo "compare.sh: nats-bench/nats-rtt/nats-xbench not found: set PEERS_BIN to their folder or PEERS_SETUP to a script printing it (default $SETUP; see bench/README.md)" >&2
  exit 1
fi
if ! command -v ${THEIRS_CMD%% *} >/dev/null 2>&1; then
  echo "compare.sh: reference server '$THEIRS_CMD' not found" >&2
  exit 1
fi

if [ "$BUILD" = 1 ]; then
  log "cargo build --release -p broker"
  if ! (cd "$ROOT" && timeout 1800 cargo build --release -p broker >&2); then
    log "build failed: our columns will be n/a"
  fi
fi

# Servers (and the Go client) need more than 1000 descriptors for the idle-connections figure.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/nats-compare.XXXXXX)
RES="$WORK/results.tsv"
: >"$RES"
PIDS=()

cleanup() {
  local pid
  # Keep the server logs of the last run for diagnosis (bench/results/logs/ is not committed).
  if [ -d "$WORK" ] && ls "$WORK"/*.log >/dev/null 2>&1; then
    rm -rf "$ROOT/bench/results/logs" && mkdir -p "$ROOT/bench/results/logs" &&
      cp "$WORK"/*.log "$ROOT/bench/results/logs/" 2>/dev/null
  fi
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cmd_for() { if [ "$1" = ours ]; then echo "$OURS_CMD"; else echo "$THEIRS_CMD"; fi; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-n/a}" >>"$RES"; }
freeport() { python3 "$HELP" freeport; }

# start_server KIND PORT LOGFILE [EXTRA ARGS...] -> sets SERVER_PID; fails if the server does not
# accept and send INFO within 15 s. (Not used in $(...): the PID must be tracked by this shell.)
SERVER_PID=""
start_server() {
  local kind=$1 port=$2 logf=$3
  shift 3
  local cmd
  cmd=$(cmd_for "$kind")
  # Word-splitting of the command is intended (OURS_CMD may carry arguments).
  # shellcheck disable=SC2086
  $cmd -a 127.0.0.1 -p "$port" "$@" >"$logf" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  if ! timeout 20 python3 "$HELP" wait-port "$port" 15; then
    log "$kind: server did not come up on port $port (log: $(tail -n3 "$logf" | tr '\n' ' '))"
    stop_server "$SERVER_PID"
    return 1
  fi
}

stop_server() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

rss_mib() {
  local kib
  kib=$(python3 "$HELP" rss "$1")
  case "$kib" in ''|n/a) echo n/a ;; *) awk -v k="$kib" 'BEGIN{printf "%.1f", k/1024}' ;; esac
}

# nats_bench PORT SIZE N NSUBS -> msgs/s (Pub stats for pub-only, Sub stats with a subscriber)
nats_bench() {
  local port=$1 size=$2 n=$3 nsubs=$4 out field
  out=$(timeout "$TIMEOUT" "$TOOLS/nats-bench" -s "nats://127.0.0.1:$port" -np 1 -ns "$nsubs" \
    -n "$n" -ms "$size" "bench.tp.$RANDOM" 2>&1) || {
    log "nats-bench -ns $nsubs -ms $size -n $n on port $port failed (rc $?; 124 = timeout): $(printf '%s' "$out" | tail -n1)"
    echo n/a
    return
  }
  if [ "$nsubs" = 0 ]; then field="Pub stats"; else field="Sub stats"; fi
  out=$(printf '%s\n' "$out" | sed -n "s/^ *$field: \([0-9,]*\) msgs\/sec.*/\1/p" | head -n1 | tr -d ,)
  echo "${out:-n/a}"
}

# nats_rtt URL RESPONDER_URL -> "P50 P99" in µs
nats_rtt() {
  local out p50 p99
  out=$(timeout "$TIMEOUT" "$TOOLS/nats-rtt" -s "$1" -rs "$2" -n "$RTT_N" -ms 16 2>&1) || {
    log "nats-rtt -s $1 -rs $2 failed (rc $?; 124 = timeout): $(printf '%s' "$out" | tail -n1)"
    echo "n/a n/a"
    return
  }
  p50=$(printf '%s\n' "$out" | sed -n 's/.* p50=\([^ ]*\) .*/\1/p' | head -n1)
  p99=$(printf '%s\n' "$out" | sed -n 's/.* p99=\([^ ]*\) .*/\1/p' | head -n1)
  echo "$(python3 "$HELP" godur "${p50:-x}") $(python3 "$HELP" godur "${p99:-x}")"
}

# nats_xbench PUB_PORT SUB_PORT SIZE N -> end-to-end msgs/s
nats_xbench() {
  local out
  out=$(timeout "$TIMEOUT" "$TOOLS/nats-xbench" -p "nats://127.0.0.1:$1" -s "nats://127.0.0.1:$2" \
    -ms "$3" -n "$4" 2>&1) || {
    log "nats-xbench -ms $3 -n $4 ($1 -> $2) failed (rc $?; 124 = timeout): $(printf '%s' "$out" | tail -n1)"
    echo n/a
    return
  }
  out=$(printf '%s\n' "$out" | sed -n 's/.*end-to-end sub \([0-9.]*\) msgs\/s.*/\1/p' | head -n1)
  echo "${out:-n/a}"
}

kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1; }

single_round() {
  local kind=$1 round=$2 port pid url v
  port=$(freeport)
  if ! start_server "$kind" "$port" "$WORK/$kind-$round.log"; then
    for m in rss_idle rss_conns pub16 pub1k pubsub16 pubsub1k rtt_p50 rtt_p99 stall_peak stall_cut stall_pub; do
      record "$kind" "$m" "$round" n/a
    done
    return
  fi
  pid=$SERVER_PID
  url="nats://127.0.0.1:$port"
  record "$kind" rss_idle "$round" "$(rss_mib "$pid")"

  v=$(timeout $((TIMEOUT + 30)) python3 "$HELP" conns "$port" "$CONNS" "$pid" 2>>"$WORK/$kind-$round.log")
  if [ $? -eq 0 ]; then
    record "$kind" rss_conns "$round" "$(awk -v k="$(kv "$v" rss_kib)" 'BEGIN{printf "%.1f", k/1024}')"
  else
    log "$kind round $round: $CONNS connections: ${v:-timeout}"
    record "$kind" rss_conns "$round" n/a
  fi

  record "$kind" pub16 "$round" "$(nats_bench "$port" 16 "$PUB16" 0)"
  record "$kind" pub1k "$round" "$(nats_bench "$port" 1024 "$PUB1K" 0)"
  record "$kind" pubsub16 "$round" "$(nats_bench "$port" 16 "$PUBSUB16" 1)"
  record "$kind" pubsub1k "$round" "$(nats_bench "$port" 1024 "$PUBSUB1K" 1)"
  read -r p50 p99 < <(nats_rtt "$url" "$url")
  record "$kind" rtt_p50 "$round" "$p50"
  record "$kind" rtt_p99 "$round" "$p99"

  v=$(timeout $((TIMEOUT + 100)) python3 "$HELP" stall "$port" "$pid" "$STALL_BYTES" 2>&1)
  log "$kind round $round stall: ${v:-timeout}"
  local peak
  peak=$(kv "$v" peak_kib)
  if [ -n "$peak" ] && [ -z "$(kv "$v" error)" ]; then
    record "$kind" stall_peak "$round" "$(awk -v k="$peak" 'BEGIN{printf "%.1f", k/1024}')"
  else
    record "$kind" stall_peak "$round" n/a
  fi
  record "$kind" stall_cut "$round" "$(v2=$(kv "$v" cut); echo "${v2:-n/a}")"
  record "$kind" stall_pub "$round" "$(v2=$(kv "$v" publisher); echo "${v2:-n/a}")"
  if ! kill -0 "$pid" 2>/dev/null; then log "$kind round $round: server exited during the run"; fi
  stop_server "$pid"
}

route_round() {
  local kind=$1 round=$2 pa pb ca cb pida pidb ok=1
  pa=$(freeport); pb=$(freeport); ca=$(freeport); cb=$(freeport)
  pida=""; pidb=""
  if start_server "$kind" "$pa" "$WORK/$kind-$round-A.log" --cluster "nats://127.0.0.1:$ca" \
    --routes "nats://127.0.0.1:$cb" --cluster_name bench; then pida=$SERVER_PID; else ok=0; fi
  if start_server "$kind" "$pb" "$WORK/$kind-$round-B.log" --cluster "nats://127.0.0.1:$cb" \
    --routes "nats://127.0.0.1:$ca" --cluster_name bench; then pidb=$SERVER_PID; else ok=0; fi
  if [ $ok = 1 ] && ! timeout 20 python3 "$HELP" route-ready "$pa" "$pb" 15; then
    log "$kind round $round: route A->B never carried a message"
    ok=0
  fi
  if [ $ok = 1 ]; then
    record "$kind" route16 "$round" "$(nats_xbench "$pa" "$pb" 16 "$ROUTE_MSGS16")"
    record "$kind" route1k "$round" "$(nats_xbench "$pa" "$pb" 1024 "$ROUTE_MSGS1K")"
    read -r p50 p99 < <(nats_rtt "nats://127.0.0.1:$pa" "nats://127.0.0.1:$pb")
    record "$kind" route_rtt_p50 "$round" "$p50"
    record "$kind" route_rtt_p99 "$round" "$p99"
  else
    for m in route16 route1k route_rtt_p50 route_rtt_p99; do record "$kind" "$m" "$round" n/a; done
  fi
  if [ -n "$pida" ]; then stop_server "$pida"; fi
  if [ -n "$pidb" ]; then stop_server "$pidb"; fi
}

STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
for round in $(seq "$ROUNDS"); do
  for kind in ours theirs; do
    if [ "$MODE" != route ]; then
      log "round $round/$ROUNDS: $kind single-server workloads"
      single_round "$kind" "$round"
    fi
    if [ "$MODE" != single ]; then
      log "round $round/$ROUNDS: $kind route workloads"
      route_round "$kind" "$round"
    fi
  done
done

THEIRS_VERSION=$(timeout 5 ${THEIRS_CMD} --version 2>&1 | head -n1)
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | head -n1)
if [ -z "$OUT_NAME" ]; then
  OUT_NAME=latest.md
  [ "$MODE" = route ] && OUT_NAME=latest-route.md
fi
REPORT="$WORK/report.md"
{
  echo "## Broker benchmark: $OURS_LABEL vs $THEIRS_LABEL"
  echo
  echo "- date: $STARTED"
  echo "- command: \`$ARGS_TEXT\`"
  echo "- ours: \`$OURS_CMD\` (repo commit $COMMIT${DIRTY:+, uncommitted changes present})"
  echo "- theirs: \`$THEIRS_CMD\` ($THEIRS_VERSION)"
  echo "- host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r), load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- rounds: $ROUNDS, interleaved ours/theirs, fresh server(s) per round, loopback"
  if [ "$MODE" != route ]; then
    echo "- single server: nats-bench 1 publisher, $PUB16 msgs of 16 B, $PUB1K msgs of 1 KiB; 1 publisher +"
    echo "  1 subscriber, $PUBSUB16 msgs of 16 B, $PUBSUB1K msgs of 1 KiB;"
    echo "  nats-rtt $RTT_N requests of 16 B; RSS = VmRSS from /proc/PID/status, idle and with $CONNS idle"
    echo "  connections (CONNECT + PING/PONG each); stalled subscriber: raw socket, SUB then never reads while a"
    echo "  raw publisher sends $((STALL_BYTES / 1048576)) MiB of 1 KiB PUBs, server RSS sampled every 100 ms"
  fi
  if [ "$MODE" != single ]; then
    echo "- route: two servers per kind (--cluster/--routes), nats-xbench publisher on A and subscriber on B"
    echo "  ($ROUTE_MSGS16 msgs of 16 B, $ROUTE_MSGS1K of 1 KiB), nats-rtt requester on A, responder on B"
  fi
  echo
  python3 "$HELP" report "$RES" "$OURS_LABEL" "$THEIRS_LABEL"
  echo
  echo "Ratios are ours/theirs of the medians; for msgs/s higher is better, for µs and MiB lower is better. n/a = failed or timed out."
} >"$REPORT"
cat "$REPORT"
mkdir -p "$ROOT/bench/results"
cp "$REPORT" "$ROOT/bench/results/$OUT_NAME"
log "written bench/results/$OUT_NAME"
