#!/usr/bin/env bash
# Fails if a pure module imports tokio/quinn/sockets or reads a clock
# (house style: pure cores take `now` as a parameter).
set -euo pipefail
cd "$(dirname "$0")/.."
pure=(
  broker/src/proto
  broker/src/conf
  broker/src/sublist.rs
  broker/src/server/peer_cert.rs
  scion-transport/src/path
  timesync/src/core
)
bad=0
for p in "${pure[@]}"; do
  [ -e "$p" ] || continue
  if grep -rnE '\b(tokio|quinn)::|std::net::(UdpSocket|TcpStream|TcpListener)|Instant::now\(\)|SystemTime::now\(\)' "$p" \
      | grep -vE '^\S+:[0-9]+:\s*//' ; then
    echo "pure module $p uses I/O, an async runtime or a clock (see above)" >&2
    bad=1
  fi
done
exit $bad
