#!/usr/bin/env python3
"""Raw-socket helpers for bench/compare.sh (standard library only).

Subcommands (each bounded in time; exit status 0 on success, 1 on failure):
  freeport                          print a free loopback TCP port
  wait-port PORT SECONDS            wait until 127.0.0.1:PORT accepts and sends INFO
  rss PID                           print VmRSS of PID in KiB
  conns PORT COUNT PID              open COUNT idle NATS clients (CONNECT+PING, wait PONG),
                                    print the server's VmRSS while holding them
  stall PORT PID BYTES              stalled subscriber under a BYTES-sized publish (see stall())
  route-ready PORT_A PORT_B SECONDS subscribe on B, publish on A until a message arrives
  godur DURATION                    convert a Go duration (146.2µs, 1.5ms, 900ns, 2s) to µs
  report RESULTS.tsv TITLE...       print the Markdown table for compare.sh results
"""

import os
import re
import resource
import socket
import statistics
import sys
import threading
import time

HOST = "127.0.0.1"
CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"name":"bench-raw","lang":"python","version":"0","protocol":1}\r\n'


def freeport():
    with socket.socket() as s:
        s.bind((HOST, 0))
        print(s.getsockname()[1])
    return 0


def read_line(sock, deadline):
    """Read one CRLF-terminated line (byte by byte is fine for INFO/PONG)."""
    buf = bytearray()
    while not buf.endswith(b"\r\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no line")
        sock.settimeout(left)
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def handshake(port, deadline, rcvbuf=None):
    """Connect, read INFO, send CONNECT+PING, wait for PONG. Returns the socket."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(max(0.1, deadline - time.monotonic()))
    s.connect((HOST, port))
    info = read_line(s, deadline)
    if not info.upper().startswith(b"INFO"):
        raise ConnectionError(f"expected INFO, got {info[:40]!r}")
    s.sendall(CONNECT + b"PING\r\n")
    while True:
        line = read_line(s, deadline)
        if line.upper().startswith(b"PONG"):
            return s
        if line.upper().startswith(b"-ERR"):
            raise ConnectionError(line.decode(errors="replace").strip())


def wait_port(port, seconds):
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, int(port)), timeout=0.5) as s:
                if read_line(s, min(deadline, time.monotonic() + 1.0)).upper().startswith(b"INFO"):
                    return 0
        except (OSError, TimeoutError, ConnectionError):
            pass
        time.sleep(0.05)
    return 1


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


def conns(port, count, pid):
    port, count = int(port), int(count)
    raise_nofile(count + 64)
    deadline = time.monotonic() + 60
    held, first_err = [], None
    for _ in range(count):
        try:
            held.append(handshake(port, min(deadline, time.monotonic() + 5)))
        except (OSError, TimeoutError, ConnectionError) as e:
            # Stop at the first failure: the figure is only meaningful with all COUNT open.
            first_err = repr(e)
            break
    failed = count - len(held)
    rss = rss_kib(pid)
    print(f"opened={len(held)} failed={failed} rss_kib={rss if rss is not None else 'n/a'}")
    if first_err:
        print(f"first_error={first_err}", file=sys.stderr)
    for s in held:
        s.close()
    return 0 if failed == 0 and rss is not None else 1


def stall(port, pid, total_bytes):
    """A subscriber that subscribes and then never reads while a raw publisher sends
    `total_bytes` of 1 KiB messages on its subject. Samples the server's RSS every 100 ms.
    Prints peak RSS, whether the server cut the subscriber, and the publisher's outcome."""
    port, total_bytes = int(port), int(total_bytes)
    payload_size = 1024
    subject = b"bench.stall"
    baseline = rss_kib(pid)
    peak = [baseline or 0]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            r = rss_kib(pid)
            if r is not None and r > peak[0]:
                peak[0] = r
            stop.wait(0.1)

    t = threading.Thread(target=sampler, daemon=True)
    t.start()
    result = {"baseline_kib": baseline}
    try:
        # A small receive buffer so that the kernel absorbs little: the server must hold (or drop)
        # what the subscriber does not read.
        sub = handshake(port, time.monotonic() + 5, rcvbuf=32 * 1024)
        sub.sendall(b"SUB " + subject + b" 1\r\nPING\r\n")
        read_line(sub, time.monotonic() + 5)  # PONG: the subscription is registered
        pub = handshake(port, time.monotonic() + 5)
        msg = b"PUB " + subject + b" %d\r\n" % payload_size + b"x" * payload_size + b"\r\n"
        batch = msg * 1024  # ~1 MiB per sendall
        n_batches = max(1, total_bytes // (payload_size * 1024))
        t0 = time.monotonic()
        pub_deadline = t0 + 60
        pub_ok = True
        for _ in range(n_batches):
            left = pub_deadline - time.monotonic()
            if left <= 0:
                pub_ok = False
                break
            pub.settimeout(left)
            try:
                pub.sendall(batch)
            except (OSError, TimeoutError):
                pub_ok = False
                break
        if pub_ok:
            try:
                pub.sendall(b"PING\r\n")
                # Skip anything but PONG (e.g. nothing, or -ERR lines).
                while not read_line(pub, time.monotonic() + 30).upper().startswith(b"PONG"):
                    pass
            except (OSError, TimeoutError, ConnectionError):
                pub_ok = False
        result["publish_s"] = round(time.monotonic() - t0, 2)
        result["published_mib"] = n_batches
        result["publisher"] = "ok" if pub_ok else "stalled-or-cut"
        pub.close()
        # Now drain the subscriber: a cut subscriber reaches EOF/reset quickly; one that was kept
        # gets data until the server's buffer for it is empty, then stays open.
        received, cut = 0, False
        drain_deadline = time.monotonic() + 30
        sub.settimeout(2.0)
        while time.monotonic() < drain_deadline:
            try:
                chunk = sub.recv(1 << 20)
            except TimeoutError:
                break  # open and idle: not cut
            except OSError:
                cut = True
                break
            if not chunk:
                cut = True
                break
            received += len(chunk)
        result["sub_received_mib"] = round(received / (1 << 20), 1)
        result["cut"] = "yes" if cut else "no"
        sub.close()
    except (OSError, TimeoutError, ConnectionError) as e:
        result["error"] = repr(e)
    finally:
        stop.set()
        t.join(1)
    result["peak_kib"] = peak[0]
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0 if "error" not in result else 1


def route_ready(port_a, port_b, seconds):
    deadline = time.monotonic() + float(seconds)
    try:
        sub = handshake(int(port_b), deadline)
        sub.sendall(b"SUB bench.route.probe 1\r\nPING\r\n")
        read_line(sub, deadline)
        pub = handshake(int(port_a), deadline)
    except (OSError, TimeoutError, ConnectionError):
        return 1
    sub.settimeout(0.1)
    buf = b""
    while time.monotonic() < deadline:
        try:
            pub.sendall(b"PUB bench.route.probe 2\r\nok\r\n")
            chunk = sub.recv(4096)
            if not chunk:
                return 1
            buf += chunk
            if b"MSG bench.route.probe" in buf:
                return 0
        except TimeoutError:
            continue
        except OSError:
            return 1
    return 1


def godur(text):
    m = re.fullmatch(r"([0-9.]+)(ns|µs|us|ms|s)", text.strip())
    if not m:
        print("n/a")
        return 1
    scale = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}[m.group(2)]
    print(f"{float(m.group(1)) * scale:.1f}")
    return 0


# Metrics: key -> (label, unit, higher_is_better)
METRICS = [
    ("pub16", "pub-only 16 B", "msgs/s", True),
    ("pub1k", "pub-only 1 KiB", "msgs/s", True),
    ("pubsub16", "1 pub + 1 sub 16 B (delivered)", "msgs/s", True),
    ("pubsub1k", "1 pub + 1 sub 1 KiB (delivered)", "msgs/s", True),
    ("rtt_p50", "request-reply p50", "µs", False),
    ("rtt_p99", "request-reply p99", "µs", False),
    ("rss_idle", "idle RSS", "MiB", False),
    ("rss_conns", "RSS with idle connections", "MiB", False),
    ("stall_peak", "peak RSS, stalled sub under 1 GiB publish", "MiB", False),
    ("stall_cut", "stalled sub cut (slow consumer)", "", None),
    ("stall_pub", "publisher outcome during stall", "", None),
    ("route16", "route hop 16 B (end-to-end)", "msgs/s", True),
    ("route1k", "route hop 1 KiB (end-to-end)", "msgs/s", True),
    ("route_rtt_p50", "request-reply across route p50", "µs", False),
    ("route_rtt_p99", "request-reply across route p99", "µs", False),
]


def fmt_num(v, unit):
    if unit == "msgs/s":
        return f"{v:,.0f}"
    return f"{v:,.1f}"


def report(path, ours_label, theirs_label):
    values = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            kind, metric, _round, value = parts
            values.setdefault((kind, metric), []).append(value)
    rows = [
        f"| metric | unit | {ours_label} (median) | {theirs_label} (median) | ours/theirs | better | runs ours / theirs |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for key, label, unit, higher in METRICS:
        ours = values.get(("ours", key))
        theirs = values.get(("theirs", key))
        if ours is None and theirs is None:
            continue
        ours, theirs = ours or [], theirs or []
        runs = f"{' '.join(ours) or '-'} / {' '.join(theirs) or '-'}"
        if higher is None:
            def summary(vs):
                if not vs:
                    return "n/a"
                common = max(set(vs), key=vs.count)
                return f"{common} ({vs.count(common)}/{len(vs)})"
            rows.append(f"| {label} | | {summary(ours)} | {summary(theirs)} | | | {runs} |")
            continue
        def med(vs):
            nums = []
            for v in vs:
                try:
                    nums.append(float(v))
                except ValueError:
                    pass
            return statistics.median(nums) if nums else None
        def cell(vs):
            m = med(vs)
            if m is None:
                return "n/a"
            ok = sum(1 for v in vs if v != "n/a")
            # A median over fewer runs than were made is flagged: some runs failed.
            return fmt_num(m, unit) + ("" if ok == len(vs) else f" ({ok}/{len(vs)} ok)")
        mo, mt = med(ours), med(theirs)
        ratio = f"{mo / mt:.2f}×" if mo is not None and mt else "n/a"
        better = "higher" if higher else "lower"
        rows.append(
            f"| {label} | {unit} | {cell(ours)} | {cell(theirs)} | {ratio} | {better} | {runs} |"
        )
    print("\n".join(rows))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    table = {
        "freeport": freeport,
        "wait-port": wait_port,
        "rss": lambda pid: (print(rss_kib(pid) or "n/a"), 0)[1],
        "conns": conns,
        "stall": stall,
        "route-ready": route_ready,
        "godur": godur,
        "report": report,
    }
    if cmd not in table:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return table[cmd](*args)
    except TypeError as e:
        print(f"{cmd}: bad arguments: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
