#!/usr/bin/env python
"""
10,000 concurrent idle WebSocket connections held by one C{twistd
websocket} process: server memory per connection, and whether a fresh
connection still gets its echo at once.

    python bench/idle.py                      # 10,000 connections, ~30 s
    python bench/idle.py --conns 1000         # a quick check

The server is C{twistd -n websocket} (echo mode, one process, no
compression offered by the client) on 127.0.0.1 (listen backlog 1024).
This process raises its soft file limit to C{--conns} + 200 (at most the
hard limit) before starting the server, which inherits it: twistd does not
raise its own, and the usual default of 1024 would refuse connections past
~1,000.  Then:

  1. reads the server's RSS once it is idle (after a warm-up connection);
  2. opens C{--conns} connections, 100 at a time, each completing the
     opening handshake, and leaves them idle;
  3. reads the RSS again: (after - before) / conns is the memory per
     connection.  It is user-space memory only: the kernel's socket
     buffers (small while idle) are not in RSS;
  4. opens one more connection and times its handshake and C{--echoes}
     round trips of a 32-byte message (the first one, and the median).

Keepalive pings are left on but at 60 s (the run is shorter), so each
connection carries its ping timer, as in production, while no ping is
sent to clients that would not answer.  The machine load (as uptime
prints it) is shown beside the result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
from loadgen import BenchError  # noqa: E402
from twistdproc import LaunchError, Twistd, loadText, raiseFileLimit  # noqa: E402

#: Above the 100 connections opened at once: with Twisted's default of 50,
#: dropped SYNs cost a 1 s retransmit each and opening takes minutes.
BACKLOG = 1024
SERVER_ARGS = ["--no-deflate", "--ping-interval", "60", "--ping-timeout", "60"]


def echoTimes(port: int, count: int, timeout: float = 10.0) -> tuple[float, list[float]]:
    """Handshake time and C{count} echo round trips (seconds) on a fresh connection."""
    t0 = time.perf_counter()
    s = loadgen.openConnection(port, raw=False, timeout=timeout)
    handshake = time.perf_counter() - t0
    try:
        s.setblocking(True)
        s.settimeout(timeout)
        payload = b"x" * 32
        frame = loadgen.clientFrame(loadgen.OP_BINARY, payload)
        echo = loadgen.serverFrame(loadgen.OP_BINARY, payload)
        rtts = []
        for _ in range(count):
            t = time.perf_counter()
            s.sendall(frame)
            got = b""
            while len(got) < len(echo):
                chunk = s.recv(len(echo) - len(got))
                if not chunk:
                    raise BenchError("the server closed the fresh connection")
                got += chunk
            rtts.append(time.perf_counter() - t)
            if got != echo:
                raise BenchError("wrong echo on the fresh connection")
        return handshake, rtts
    finally:
        s.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--echoes", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120.0, help="for opening all connections")
    args = parser.parse_args()
    need = args.conns + 200
    have = raiseFileLimit(need)
    if have < need:
        print(
            f"idle: the file limit is {have} (hard limit), too low for {args.conns} connections",
            file=sys.stderr,
        )
        return 1
    socks = []
    server = None
    try:
        server = Twistd(SERVER_ARGS, backlog=BACKLOG)
        pid = server.proc.pid
        echoTimes(server.port, 3)  # warm up: the code paths of a connection are loaded
        loadgen.waitQuiet(pid)
        before = loadgen.rssBytes(pid)
        print(f"  before: {before / 1024:,.0f} KiB  [{loadText()}]", flush=True)
        t0 = time.perf_counter()
        socks = loadgen.openIdle(server.port, False, args.conns, timeout=args.timeout)
        opened = time.perf_counter() - t0
        loadgen.waitQuiet(pid, limit=10)
        time.sleep(0.2)
        after = loadgen.rssBytes(pid)
        held = server.socketCounts()[0]
        load = loadText()
        handshake, rtts = echoTimes(server.port, args.echoes)
        alive = server.proc.poll() is None
    except (LaunchError, BenchError, OSError) as e:
        print(f"idle: {e}", file=sys.stderr)
        return 1
    finally:
        for s in socks:
            s.close()
        if server is not None:
            server.stop()
    perConn = (after - before) / args.conns
    print(
        f"  opened {args.conns:,} connections in {opened:.1f} s ({args.conns / opened:,.0f}/s); the server holds {held:,} sockets"
    )
    print(f"  after: {after / 1024:,.0f} KiB  [{load}]")
    print(f"\n{args.conns:,} idle connections on one twistd websocket process")
    print(
        "| connections | RSS before | RSS after | per connection | fresh connection: handshake | first echo | median echo |"
    )
    print("|--:|--:|--:|--:|--:|--:|--:|")
    print(
        f"| {args.conns:,} | {before / 2**20:.1f} MiB | {after / 2**20:.1f} MiB | {perConn / 1024:.2f} KiB "
        f"| {handshake * 1e3:.2f} ms | {rtts[0] * 1e3:.2f} ms | {statistics.median(rtts) * 1e3:.2f} ms |"
    )
    print(f"server still running: {alive}; machine: {loadText()}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
