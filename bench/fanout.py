#!/usr/bin/env python
"""
Broadcast fan-out: 1 publisher and 1,000 subscribers in one room, through
Redis across 2 worker processes, against in-process broadcast.

    python bench/fanout.py                          # ~40 s, needs /usr/bin/redis-server
    python bench/fanout.py --subscribers 100 --seconds 1     # a quick check
    python bench/fanout.py --configs local,redis2 --window 32

Configurations (each a C{twistd -n websocket --mode broadcast} subprocess on
127.0.0.1, keepalive pings off, no compression offered by the clients):

  - local:  one process, the in-process hub (no Redis);
  - redis1: one process with C{--redis} (the cost of the Redis hop alone);
  - redis2: C{--workers 2 --reuseport --redis}: messages reach the other
    worker's members through Redis.  C{--reuseport} so that the kernel
    spreads the subscribers over both workers by hashing: with the one
    shared listening socket, connections opened one after another all go
    to whichever worker is awake (100 subscribers split 98/3 in a trial).

In broadcast mode the room is the URL path; every client here connects to
C{/}, so all are in one room (the publisher too: it gets its own messages
back, which are drained and not counted).  This process is the load: the
publisher and every subscriber are non-blocking sockets in one C{selectors}
loop.  Each message is a 32-byte binary payload carrying its sequence number
and the publisher's C{perf_counter_ns} at sending; a subscriber's delivery
latency is the time its C{recv} returned minus that stamp (same clock, same
process).  Every subscriber must get every message exactly once, in order
(checked per frame).

Two phases per configuration, each after a short warm-up:

  - latency: one message in flight (the next is sent when all 1,000 have
    it): p50/p99 latency of an unloaded room;
  - throughput: C{--window} messages in flight: deliveries per second, the
    latency under that load, and the CPU time of the server processes
    (twistd and its workers, and redis-server, from /proc) per delivered
    message -- the figure that moves least when other work shares the
    machine.

Not pinned: on 2 cores the workers, redis-server and this process share
both.  The machine load (as uptime prints it) is shown beside each result,
with the time the server processes and this one spent runnable but waiting
for a CPU (schedstat).

What the CPU per delivery mostly is: one send() (and two epoll_ctl) per
member per reactor iteration.  Messages fanned out in the same iteration
share it (the publisher's frames arriving in one read do), so a loaded
in-process room costs a fraction of an idle one.  Messages arriving through
Redis do not: txredisapi hands over one reply per reactor iteration (it
re-feeds the rest of a read with callLater(0)), so a worker sends each
remote message to each member on its own.
"""

from __future__ import annotations

import argparse
import array
import os
import re
import selectors
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
from loadgen import BenchError, cpuNs  # noqa: E402
from twistdproc import LaunchError, Redis, Twistd, loadText, raiseFileLimit, runQueueNs  # noqa: E402

PAYLOAD = struct.Struct("<QQ16x")  # sequence number, send time (ns), padding to 32 bytes
HEADER = b"\x82\x20"  # final binary frame, 32-byte payload, unmasked (server to client)
FRAME = struct.Struct("<2sQQ16x")
FRAME_SIZE = FRAME.size
KEY = os.urandom(4)
SERVER_ARGS = ["--mode", "broadcast", "--no-deflate", "--ping-interval", "off"]
CONFIGS = {
    "local": ("in-process (1 process, no Redis)", 1, False),
    "redis1": ("Redis, 1 process", 1, True),
    "redis2": ("Redis, --workers 2 --reuseport", 2, True),
}


class Room:
    """The publisher and the subscribers' sockets, and the delivery bookkeeping."""

    def __init__(self, port: int, subscribers: int) -> None:
        self.sel = selectors.DefaultSelector()
        self.subs = loadgen.openIdle(port, False, subscribers, timeout=120)
        self.pub = loadgen.openConnection(port, raw=False)
        self.n = subscribers
        self.next: dict = {}  # socket -> the sequence number it must get next
        self.rest: dict = {}  # socket -> a partial frame
        for s in self.subs:
            s.setblocking(False)
            self.next[s] = 0
            self.rest[s] = b""
            self.sel.register(s, selectors.EVENT_READ, s)
        self.sel.register(self.pub, selectors.EVENT_READ, None)
        self.seq = 0  # messages sent
        self.completed = 0  # messages every subscriber has
        self.counts: dict[int, int] = {}
        self.delivered = 0
        self.latencies = array.array("q")
        self.recording = False

    def close(self) -> None:
        self.sel.close()
        for s in self.subs + [self.pub]:
            s.close()

    def publish(self, count: int) -> None:
        """Send C{count} messages in one write (each stamped as it is built)."""
        frames = []
        for _ in range(count):
            payload = PAYLOAD.pack(self.seq, time.perf_counter_ns())
            frames.append(loadgen.clientFrame(loadgen.OP_BINARY, payload, KEY))
            self.seq += 1
        self.pub.sendall(b"".join(frames))

    def poll(self, timeout: float) -> bool:
        """One select round; True if any subscriber got something."""
        progress = False
        for key, _ in self.sel.select(timeout):
            sock = key.data
            if sock is None:  # the publisher's own copies
                try:
                    if not self.pub.recv(262144):
                        raise BenchError("the server closed the publisher")
                except BlockingIOError:
                    pass
                continue
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            now = time.perf_counter_ns()
            if not data:
                raise BenchError("the server closed a subscriber")
            buf = self.rest[sock] + data if self.rest[sock] else data
            whole = len(buf) - len(buf) % FRAME_SIZE
            self.rest[sock] = buf[whole:]
            expect = self.next[sock]
            counts, lat, recording, n = (
                self.counts,
                self.latencies,
                self.recording,
                self.n,
            )
            for header, seq, sent in FRAME.iter_unpack(memoryview(buf)[:whole]):
                if header != HEADER or seq != expect:
                    raise BenchError(f"subscriber got {header!r} #{seq}, expected #{expect}")
                expect += 1
                c = counts.get(seq, 0) + 1
                if c == n:
                    del counts[seq]
                    self.completed += 1
                else:
                    counts[seq] = c
                if recording:
                    lat.append(now - sent)
            got = expect - self.next[sock]
            self.next[sock] = expect
            self.delivered += got
            progress = True
        return progress

    def phase(
        self,
        window: int,
        burst: bool,
        warmup: float,
        seconds: float,
        pids: list[int],
        redisPid: int | None,
    ) -> dict:
        """
        Keep up to C{window} messages in flight (C{burst}: send C{window} at
        once whenever all sent so far are complete); measure over C{seconds}
        after C{warmup}.
        """
        stall = 10.0
        t = time.perf_counter()
        warmEnd, end = t + warmup, t + warmup + seconds
        lastProgress, measuring = t, False
        while True:
            now = time.perf_counter()
            if not measuring and now >= warmEnd:
                measuring = self.recording = True
                self.latencies = array.array("q")
                d0, t0, g0 = self.delivered, now, time.process_time_ns()
                w0 = runQueueNs(pids), runQueueNs([os.getpid()])
                per0 = [cpuNs(p) for p in pids]
                r0 = cpuNs(redisPid) if redisPid else 0
            if now >= end:
                break
            if burst and self.completed == self.seq:
                self.publish(window)
            elif not burst and self.seq - self.completed < window:
                self.publish(window - (self.seq - self.completed))
            if self.poll(0.1):
                lastProgress = now
            elif now - lastProgress > stall:
                raise BenchError(
                    f"no delivery for {stall:.0f} s ({self.completed} of {self.seq} messages complete)"
                )
        wall = time.perf_counter() - t0
        deliveries = self.delivered - d0
        per = [cpuNs(p) - b for p, b in zip(pids, per0)]
        waits = runQueueNs(pids) - w0[0], runQueueNs([os.getpid()]) - w0[1]
        server = sum(per) / 1e9
        redis = ((cpuNs(redisPid) - r0) / 1e9) if redisPid else 0.0
        gen = (time.process_time_ns() - g0) / 1e9
        self.recording = False
        self.drain(stall)
        lat = sorted(self.latencies)
        if not lat:
            raise BenchError("no delivery in the measurement window")
        return {
            "deliveries_per_s": deliveries / wall,
            "messages_per_s": deliveries / wall / self.n,
            "p50_ms": lat[len(lat) // 2] / 1e6,
            "p99_ms": lat[min(len(lat) - 1, len(lat) * 99 // 100)] / 1e6,
            "twistd_us": server * 1e6 / max(deliveries, 1),
            "redis_us": redis * 1e6 / max(deliveries, 1),
            "server_us": (server + redis) * 1e6 / max(deliveries, 1),
            "twistd_pct": 100 * server / wall,
            "redis_pct": 100 * redis / wall,
            "gen_pct": 100 * gen / wall,
            "per_process_pct": [round(100 * c / 1e9 / wall) for c in per],
            "twistd_wait_pct": 100 * waits[0] / 1e9 / wall,
            "gen_wait_pct": 100 * waits[1] / 1e9 / wall,
        }

    def drain(self, limit: float) -> None:
        """Wait (bounded) until every message sent so far reached every subscriber."""
        deadline = time.monotonic() + limit
        while self.completed < self.seq:
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.completed} of {self.seq} messages reached every subscriber")
            self.poll(0.1)
        if self.counts or any(v != self.seq for v in self.next.values()):
            raise BenchError("a subscriber missed or repeated a message")


def run(config: str, args: argparse.Namespace) -> dict:
    label, workers, useRedis = CONFIGS[config]
    redis = Redis() if useRedis else None
    server = None
    room = None
    try:
        extra = ["--redis", redis.url] if redis else []
        if workers > 1:
            extra.append("--reuseport")  # see the module docstring
        server = Twistd(SERVER_ARGS + extra, workers=workers, backlog=1024)
        if redis:  # every worker's links to Redis are up before anyone joins
            deadline = time.monotonic() + 10
            while len(re.findall(r"Redis \S+ link to \S+ is up", server.log())) < workers:
                if time.monotonic() > deadline:
                    raise LaunchError("twistd: the Redis links did not come up within 10 s")
                time.sleep(0.05)
        time.sleep(0.3)
        before = server.socketCounts()
        room = Room(server.port, args.subscribers)
        time.sleep(0.3)
        spread = [a - b for a, b in zip(server.socketCounts(), before)]
        pids = server.pids
        rpid = redis.pid if redis else None
        out = {"config": config, "label": label, "spread": spread}
        out["load_latency"] = loadText()
        out["latency"] = room.phase(1, False, args.warmup, args.latency_seconds, pids, rpid)
        out["load_throughput"] = loadText()
        out["throughput"] = room.phase(args.window, args.burst, args.warmup, args.seconds, pids, rpid)
        out["messages"] = room.seq
        out["trouble"] = server.trouble()
        return out
    except FileNotFoundError as e:  # /proc/PID: a server process is gone
        trouble = " | ".join(server.trouble()[-3:]) if server else ""
        raise LaunchError(f"a server process exited mid-run ({e.filename}): {trouble}") from None
    finally:
        if room is not None:
            room.close()
        if server is not None:
            server.stop()
        if redis is not None:
            redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument(
        "--window",
        type=int,
        default=16,
        help="messages in flight in the throughput phase",
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        help="throughput phase: send --window messages at once, then wait for all",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="throughput phase")
    parser.add_argument("--latency-seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--configs", default="local,redis1,redis2", help=f"from {','.join(CONFIGS)}")
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        print(
            f"fanout: unknown configuration {unknown[0]!r} (choose from {', '.join(CONFIGS)})",
            file=sys.stderr,
        )
        return 2
    have = raiseFileLimit(args.subscribers + 1000)
    if have < args.subscribers + 100:
        print(
            f"fanout: the file limit is {have}, too low for {args.subscribers} subscribers",
            file=sys.stderr,
        )
        return 1
    results = []
    try:
        for config in configs:
            r = run(config, args)
            results.append(r)
            for line in r["trouble"]:
                print(f"  WARNING (server log): {line}", flush=True)
            for ph in ("latency", "throughput"):
                p = r[ph]
                print(
                    f"  {config} {ph}: {p['deliveries_per_s']:,.0f} deliveries/s ({p['messages_per_s']:,.0f} msg/s)  "
                    f"p50 {p['p50_ms']:.2f} ms  p99 {p['p99_ms']:.2f} ms  {p['server_us']:.2f} us/delivery "
                    f"(twistd {p['twistd_us']:.2f} + redis {p['redis_us']:.2f}; twistd {p['twistd_pct']:.0f}% {p['per_process_pct']} "
                    f"redis {p['redis_pct']:.0f}% gen {p['gen_pct']:.0f}%; waiting for a CPU: twistd {p['twistd_wait_pct']:.0f}% gen {p['gen_wait_pct']:.0f}%)  connections/worker {r['spread']}  "
                    f"[{r['load_' + ph]}]",
                    flush=True,
                )
    except (LaunchError, BenchError) as e:
        print(f"fanout: {e}", file=sys.stderr)
        return 1
    n = args.subscribers
    print(
        f"\n1 publisher, {n:,} subscribers in one room, 32 B binary messages; throughput with {args.window} in flight"
    )
    print(
        "| configuration | deliveries/s | p50 / p99 ms (1 in flight) | p50 / p99 ms (loaded) "
        "| server CPU us/delivery (twistd + redis) | connections per worker (with the publisher) |"
    )
    print("|---|--:|--:|--:|--:|--:|")
    for r in results:
        lt, tp = r["latency"], r["throughput"]
        print(
            f"| {r['label']} | {tp['deliveries_per_s']:,.0f} | {lt['p50_ms']:.2f} / {lt['p99_ms']:.2f} "
            f"| {tp['p50_ms']:.2f} / {tp['p99_ms']:.2f} | {tp['server_us']:.2f} ({tp['twistd_us']:.2f} + {tp['redis_us']:.2f}) "
            f"| {'/'.join(map(str, r['spread']))} |"
        )
    print(f"machine: {loadText()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
