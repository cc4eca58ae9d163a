#!/usr/bin/env python
"""
Echo throughput of C{twistd websocket --workers 1} and C{--workers 2}: the
scaling ratio of the worker pool, and the server CPU per message.

    python bench/workers_scaling.py                    # ~30 s
    python bench/workers_scaling.py --seconds 5 --conns 40 --repeats 3
    python bench/workers_scaling.py --no-pin           # let the kernel place everything

Each configuration is a real C{twistd -n websocket --workers N} subprocess
(echo mode, no compression offered by the client, keepalive pings off) on
127.0.0.1.  The load generator is bench/loadgen.py's small-message loop
(32-byte binary messages, C{--conns} connections, each keeping 64 in
flight, every echoed byte checked).  Reported per configuration:

  - msgs/s: echoed messages per second (wall clock);
  - us/msg: CPU time (user + system) of every server process -- the
    workers and the supervising parent, from /proc -- per echoed message:
    the figure that moves least when other work shares the machine;
  - server CPU %: the same CPU time over the window (200 % = both cores);
  - server waiting for a CPU %: time the server processes were runnable but
    not running (schedstat's run-queue delay, summed over processes): on a
    machine shared with other work this, not the code, caps msgs/s;
  - conns per worker: how the kernel spread the measured connections
    (sampled from /proc/PID/fd mid-window).  With one shared listening
    socket it is often not even (whichever worker is awake takes the whole
    backlog); C{--reuseport} gives each worker its own socket and the
    kernel hashes connections across them, so it is measured as a third
    configuration;
  - the machine load (os.getloadavg, as uptime prints) at the time.

Pinning on a 2-core machine is a compromise: there is no free core for the
load generator.  With C{--workers 1} the server has CPU 1 to itself and the
generator CPU 0; with C{--workers 2} the workers may use both CPUs, so one
of them shares CPU 0 with the generator.  The ratio below therefore
understates what a second core gives a pool on a bigger machine; compare
us/msg, which shows the pool's own overhead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
from twistdproc import LaunchError, Twistd, loadText, runQueueNs  # noqa: E402

SERVER_ARGS = ["--no-deflate", "--ping-interval", "off", "--max-message-size", "65536"]


def measure(
    name: str,
    workers: int,
    reuseport: bool,
    cpus: set[int] | None,
    args: argparse.Namespace,
) -> dict:
    server = Twistd(SERVER_ARGS + (["--reuseport"] if reuseport else []), workers=workers, cpus=cpus)
    try:
        time.sleep(0.3)  # the workers finish importing
        before = server.socketCounts()
        spread: list[int] = []
        # Which worker took the measured connections: sampled once, mid-window.
        sampler = threading.Timer(
            args.warmup + args.seconds / 2,
            lambda: spread.extend(a - b for a, b in zip(server.socketCounts(), before)),
        )
        sampler.start()
        load = loadText()
        waited0, t0 = runQueueNs(server.pids), time.perf_counter()
        try:
            result = loadgen.smallMessages(
                server.port, server.pids, raw=False, size=args.size, text=False,
                conns=args.conns, warmup=args.warmup, duration=args.seconds,
            )  # fmt: skip
        finally:
            sampler.cancel()
            sampler.join()
        waitPct = 100 * (runQueueNs(server.pids) - waited0) / 1e9 / (time.perf_counter() - t0)
        result.update(load=load, name=name, conns_per_worker=spread, wait_pct=waitPct)
        for line in server.trouble():
            print(f"  WARNING (server log): {line}", flush=True)
        return result
    except FileNotFoundError as e:  # /proc/PID: a server process is gone
        raise LaunchError(
            f"a server process exited mid-run ({e.filename}): {' | '.join(server.trouble()[-3:])}"
        ) from None
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=20)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs; medians shown")
    parser.add_argument("--no-pin", action="store_true", help="no CPU affinity at all")
    parser.add_argument(
        "--no-reuseport",
        action="store_true",
        help="skip the --workers 2 --reuseport run",
    )
    args = parser.parse_args()
    ncpu = len(os.sched_getaffinity(0))
    pin = not args.no_pin and ncpu >= 2
    last = max(os.sched_getaffinity(0))
    first = min(os.sched_getaffinity(0))
    configs = [("1", 1, False), ("2", 2, False), ("2 --reuseport", 2, True)]
    if args.no_reuseport:
        configs.pop()
    placements = {1: {last} if pin else None, 2: None}
    if pin:
        os.sched_setaffinity(0, {first})  # the load generator
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in configs}
    try:
        for _ in range(args.repeats):
            for name, workers, reuseport in configs:
                r = measure(name, workers, reuseport, placements[workers], args)
                runs[name].append(r)
                print(
                    f"  --workers {name}: {r['msgs_per_s']:,.0f} msg/s  {r['server_us_per_msg']:.2f} us/msg  "
                    f"server {r['server_cpu_pct']:.0f}% (waited for a CPU {r['wait_pct']:.0f}%)  gen {r['gen_cpu_pct']:.0f}%  "
                    f"conns/worker {r['conns_per_worker']}  [{r['load']}]",
                    flush=True,
                )
    except (LaunchError, loadgen.BenchError) as e:
        print(f"workers_scaling: {e}", file=sys.stderr)
        return 1
    keys = (
        "msgs_per_s",
        "server_us_per_msg",
        "server_cpu_pct",
        "wait_pct",
        "gen_cpu_pct",
    )
    med = {n: {k: statistics.median(r[k] for r in rs) for k in keys} for n, rs in runs.items()}
    where = (
        f"generator on CPU {first}, --workers 1 on CPU {last}, --workers 2 on all CPUs"
        if pin
        else "not pinned"
    )
    print(
        f"\necho, {args.size} B binary, {args.conns} connections x 64 in flight, {args.seconds:g} s windows, {where}"
    )
    print(
        "| --workers | msg/s | us/msg (all server processes) | server CPU % | server waiting for a CPU % | generator CPU % | conns per worker (last run) |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name, rs in runs.items():
        m = med[name]
        print(
            f"| {name} | {m['msgs_per_s']:,.0f} | {m['server_us_per_msg']:.2f} | {m['server_cpu_pct']:.0f} | {m['wait_pct']:.0f} "
            f"| {m['gen_cpu_pct']:.0f} | {'/'.join(map(str, rs[-1]['conns_per_worker']))} |"
        )
    for name in list(runs)[1:]:
        print(
            f"scaling ratio (msg/s, --workers {name} / --workers 1): {med[name]['msgs_per_s'] / med['1']['msgs_per_s']:.2f}"
        )
    print(f"machine: {loadText()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
