#!/usr/bin/env bash
# Websocket clients, ours vs nats-server 2.9.10, side by side in one run: each round starts a
# fresh server of each kind with the same `websocket { no_tls: true }` block on loopback and
# runs `nats-bench -s ws://... -np 1 -ns 1` (nats.go over websocket) against it, 16 B and
# 1 KiB, interleaved. Prints one line per run: round, server, size, nats-bench's summary.
#
#   bash bench/ws.sh [--rounds N] [--broker PATH] [--bench PATH]
set -euo pipefail
rounds=3
broker="${CARGO_TARGET_DIR:-$HOME/.cache/nats-scion/target}/release/broker"
bench="${NATS_BENCH:-$HOME/.cache/nats-peers/bin/nats-bench}"
nats_server="${NATS_SERVER_BIN:-/usr/sbin/nats-server}"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --broker) broker="$2"; shift 2 ;;
    --bench) bench="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for f in "$broker" "$bench" "$nats_server"; do
  [ -x "$f" ] || { echo "missing executable: $f (cargo build --release -p broker; ../shared/peers/setup.sh)" >&2; exit 1; }
done
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
port=42331
ws=42332
run() { # server-binary label size count
  local bin=$1 label=$2 size=$3 n=$4
  printf 'listen: 127.0.0.1:%s\nwebsocket { listen: "127.0.0.1:%s", no_tls: true }\n' "$port" "$ws" > "$dir/s.conf"
  "$bin" -c "$dir/s.conf" > "$dir/s.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    grep -q "Server is ready" "$dir/s.log" 2>/dev/null && break
    sleep 0.05
  done
  if ! grep -q "Server is ready" "$dir/s.log" 2>/dev/null; then
    echo "$label did not start:" >&2
    cat "$dir/s.log" >&2
    exit 1
  fi
  local out
  out=$(timeout 120 "$bench" -s "ws://127.0.0.1:$ws" -np 1 -ns 1 -n "$n" -ms "$size" wsb 2>&1 | grep -E "Pub/Sub stats|Pub stats|Sub stats" | tr -s ' ' | tr '\n' '|' || true)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$label $size $out"
}
for r in $(seq "$rounds"); do
  for size in 16 1024; do
    n=1000000
    [ "$size" = 1024 ] && n=200000
    echo -n "$r "; run "$broker" ours "$size" "$n"
    echo -n "$r "; run "$nats_server" theirs "$size" "$n"
  done
done
