#!/usr/bin/env python
"""
Side-by-side benchmark of WebSocket echo servers: twisted_ws (with and
without its C accelerator, and its coroutine API: "twisted_ws (async)"),
autobahn, twisted.web.websocket, websockets, and a raw Twisted TCP echo as
the ceiling.

    pip install '.[bench]'
    python bench/run.py --quick                 # about 1-2 minutes
    python bench/run.py                         # default: 3 repeats, ~5 minutes
    python bench/run.py --repeats 5 --json out.json --servers twisted_ws,autobahn
    python bench/run.py --workloads small --servers 'twisted_ws,twisted_ws (async)'

Each server runs in its own process (bench/servers/*.py) on 127.0.0.1, pinned
to one CPU while this process (the load generator, bench/loadgen.py) is
pinned to another (--no-pin to leave scheduling alone).  Servers are
measured in turn, in a rotated order on every repeat (A B C, B C A, ...), and
the table shows medians over the repeats.  Servers whose packages are not
installed are skipped with a note.  See the README, "Performance", for what
each column means.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVERS_DIR = os.path.join(HERE, "servers")
sys.path.insert(0, HERE)

import loadgen  # noqa: E402
from loadgen import BenchError  # noqa: E402

KIB = 1024
MIB = 1024 * 1024


class Server:
    """
    One server entry: how to start it and what it needs installed.
    """

    def __init__(self, name, script, requires, env=None, raw=False, note=""):
        self.name = name
        self.script = script
        self.requires = requires
        self.env = env or {}
        self.raw = raw
        self.note = note
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log: str | None = None

    def missing(self) -> str | None:
        """
        Why this server cannot run here, or C{None}.
        """
        for module in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"module {module!r} not installed"
        return None


SERVERS = [
    Server(
        "twisted_ws",
        "twisted_ws_echo.py",
        ["twisted", "twisted_ws", "twisted_ws.core._speedups"],
        env={"TWISTED_WS_NO_EXTENSION": None},
        note="C accelerator",
    ),
    Server(
        "twisted_ws (pure Python)",
        "twisted_ws_echo.py",
        ["twisted", "twisted_ws"],
        env={"TWISTED_WS_NO_EXTENSION": "1"},
        note="TWISTED_WS_NO_EXTENSION=1",
    ),
    Server(
        "twisted_ws (async)",
        "twisted_ws_async_echo.py",
        ["twisted", "twisted_ws", "twisted_ws.core._speedups"],
        env={"TWISTED_WS_NO_EXTENSION": None},
        note="C accelerator; async def handler(ws) (forHandler)",
    ),
    Server(
        "autobahn",
        "autobahn_echo.py",
        ["twisted", "autobahn", "autobahn.twisted"],
        note="Twisted flavour; TCP_NODELAY set by the bench (autobahn's own is lost)",
    ),
    Server(
        "twisted.web.websocket",
        "twistedweb_echo.py",
        ["twisted", "wsproto", "twisted.web.websocket"],
        note="WebSocketResource in a Site, wsproto",
    ),
    Server(
        "websockets",
        "websockets_echo.py",
        ["websockets", "websockets.asyncio.server"],
        note="asyncio implementation",
    ),
    Server(
        "raw TCP echo",
        "raw_echo.py",
        ["twisted"],
        raw=True,
        note="ceiling: echoes bytes, no WebSocket",
    ),
]

# (column key, workload name, parameters)
SMALL = [("small32", dict(size=32, text=False)), ("small1k", dict(size=1024, text=True))]
LARGE = [("large1m", 1 * MIB), ("large16m", 16 * MIB)]
WORKLOADS = ("small", "large", "hs", "mem")


# -- processes ---------------------------------------------------------------------


class Processes:
    """
    Starts and always stops the server processes; pins CPUs.
    """

    def __init__(self, args, logDir: str) -> None:
        self.args = args
        self.logDir = logDir
        self.childPath = None
        if importlib.util.find_spec("twisted_ws") is None:
            self.childPath = ROOT  # a source checkout that is not installed
        self.started: list[subprocess.Popen] = []

    def start(self, server: Server, tag: str) -> None:
        env = dict(os.environ)
        for key, value in server.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if self.childPath:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.childPath, env.get("PYTHONPATH")]))
        slug = "".join(c if c.isalnum() else "_" for c in server.name)
        server.log = os.path.join(self.logDir, f"{slug}-{tag}.log")
        logFile = open(server.log, "w")
        proc = subprocess.Popen(
            [sys.executable, os.path.join(SERVERS_DIR, server.script), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=logFile,
            stdin=subprocess.DEVNULL,
            cwd=SERVERS_DIR,
            env=env,
            text=True,
        )
        logFile.close()
        self.started.append(proc)
        server.proc = proc
        if self.args.server_cpu is not None:
            try:
                os.sched_setaffinity(proc.pid, {self.args.server_cpu})
            except OSError:
                pass
        line = self._readLine(proc, 30.0)
        if not line.startswith("LISTENING "):
            self.stop(server)
            raise BenchError(f"did not start: {line!r}; log: {self.tail(server)}")
        server.port = int(line.split()[1])

    @staticmethod
    def _readLine(proc: subprocess.Popen, timeout: float) -> str:
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return f"<no LISTENING line in {timeout:.0f} s>"
        return proc.stdout.readline().strip() or f"<exited with {proc.poll()}>"

    @staticmethod
    def tail(server: Server) -> str:
        try:
            with open(server.log) as f:
                return " | ".join(f.read().strip().splitlines()[-3:])
        except (OSError, TypeError):
            return ""

    def stop(self, server: Server) -> None:
        proc, server.proc, server.port = server.proc, None, None
        if proc is not None:
            self._kill(proc)

    def _kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout:
            proc.stdout.close()

    def stopAll(self) -> None:
        for proc in self.started:
            try:
                self._kill(proc)
            except Exception:
                pass


# -- measuring ------------------------------------------------------------------------


def measure(procs: Processes, server: Server, workload: str, args, results: dict, rep: int) -> None:
    """
    Run one workload against one server, appending to C{results}.
    """
    def record(key, value):
        results.setdefault(server.name, {}).setdefault(key, []).append(value)

    def fail(key, error):
        record(key, {"error": error})
        print(f"  ! {server.name} {key}: {error}", file=sys.stderr, flush=True)

    if workload == "mem":
        try:
            procs.start(server, f"mem{rep}")
            # warm up: code paths imported, allocator pools grown
            loadgen.handshakes(server.port, server.proc.pid, raw=server.raw,
                               loops=args.hs_loops, warmup=0.1, duration=0.3)
            record("mem", loadgen.idleMemory(server.port, server.proc.pid, raw=server.raw,
                                             count=args.mem_conns))
        except (BenchError, OSError) as e:
            fail("mem", f"{e} {procs.tail(server)}")
        finally:
            procs.stop(server)
        return

    if server.proc is None or server.proc.poll() is not None:
        if server.proc is not None:
            print(f"  ! {server.name} died ({procs.tail(server)}); restarting", file=sys.stderr)
        procs.start(server, f"run{rep}")
    port, pid = server.port, server.proc.pid
    if workload == "small":
        for key, params in SMALL:
            try:
                record(key, loadgen.smallMessages(
                    port, pid, raw=server.raw, conns=args.conns, window=args.window,
                    refill=args.refill, warmup=args.warmup, duration=args.duration, **params))
            except (BenchError, OSError) as e:
                fail(key, str(e))
    elif workload == "large":
        for key, size in LARGE:
            try:
                record(key, loadgen.largeMessages(port, pid, raw=server.raw, size=size,
                                                  duration=args.duration))
            except (BenchError, OSError) as e:
                fail(key, str(e))
    elif workload == "hs":
        try:
            record("hs", loadgen.handshakes(port, pid, raw=server.raw, loops=args.hs_loops,
                                            warmup=args.warmup, duration=args.duration))
        except (BenchError, OSError) as e:
            fail("hs", str(e))


# -- report -------------------------------------------------------------------------------


def median(runs, field):
    """
    The median of C{field} over the successful runs; C{None} when nothing was
    measured, C{"ERR"} when every run failed.
    """
    if not runs:
        return None
    values = [r[field] for r in runs if "error" not in r]
    return statistics.median(values) if values else "ERR"


def summarize(results: dict) -> dict:
    summary = {}
    for name, byKey in results.items():
        row = {}
        for key, _ in SMALL:
            runs = byKey.get(key)
            row[f"{key}_msgs_per_s"] = median(runs, "msgs_per_s")
            row[f"{key}_us_per_msg"] = median(runs, "server_us_per_msg")
            row[f"{key}_gen_cpu_pct"] = median(runs, "gen_cpu_pct")
            row[f"{key}_server_cpu_pct"] = median(runs, "server_cpu_pct")
        for key, _ in LARGE:
            row[f"{key}_mb_per_s"] = median(byKey.get(key), "mb_per_s")
            row[f"{key}_gen_cpu_pct"] = median(byKey.get(key), "gen_cpu_pct")
        row["hs_per_s"] = median(byKey.get("hs"), "per_s")
        row["hs_us"] = median(byKey.get("hs"), "server_us_per_hs")
        row["hs_gen_cpu_pct"] = median(byKey.get("hs"), "gen_cpu_pct")
        row["mem_kib_per_conn"] = median(byKey.get("mem"), "kib_per_conn")
        row["errors"] = sum(1 for runs in byKey.values() for r in runs if "error" in r)
        summary[name] = row
    return summary


def fmt(value, spec, errors=False):
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return format(value, spec)


def markdown(servers, summary, skipped, args, meta) -> str:
    out = []
    out.append(
        f"WebSocket echo servers, 127.0.0.1; medians of {args.repeats} repeat(s); "
        f"{args.duration:g} s windows after {args.warmup:g} s warm-up; "
        f"small messages: {args.conns} connections x {args.window} in flight "
        f"(refill {args.refill}); handshakes: {args.hs_loops} loops; "
        f"idle memory: {args.mem_conns} connections; {meta['pinning']}."
    )
    out.append("")
    out.append(
        "| server | 32 B bin msg/s | µs/msg | 1 KiB text msg/s | µs/msg | 1 MiB MB/s "
        "| 16 MiB MB/s | handshakes/s | µs/hs | KiB/idle conn | server CPU % | gen CPU % |"
    )
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for server in servers:
        row = summary.get(server.name)
        if row is None:
            continue
        e = True
        gens = [row[k] for k in ("small32_gen_cpu_pct", "small1k_gen_cpu_pct", "hs_gen_cpu_pct")]
        gen = "/".join(fmt(g, ".0f") for g in gens)
        busy = "/".join(fmt(row[k], ".0f") for k in ("small32_server_cpu_pct", "small1k_server_cpu_pct"))
        name = f"{server.name}" + (" †" if server.raw else "")
        out.append(
            f"| {name} | {fmt(row['small32_msgs_per_s'], ',.0f', e)} | {fmt(row['small32_us_per_msg'], '.2f', e)} "
            f"| {fmt(row['small1k_msgs_per_s'], ',.0f', e)} | {fmt(row['small1k_us_per_msg'], '.2f', e)} "
            f"| {fmt(row['large1m_mb_per_s'], ',.0f', e)} | {fmt(row['large16m_mb_per_s'], ',.0f', e)} "
            f"| {fmt(row['hs_per_s'], ',.0f', e)} | {fmt(row['hs_us'], '.0f', e)} "
            f"| {fmt(row['mem_kib_per_conn'], '.1f', e)} | {busy} | {gen} |"
        )
    out.append("")
    out.append(
        "µs/msg, µs/hs: server CPU time (user + system) per echoed message / per handshake. "
        "server CPU %: the server's CPU use during the 32 B / 1 KiB windows (below ~95 %, "
        "something else took its CPU and msg/s is low; µs/msg is still valid). "
        "gen CPU %: the load generator's own CPU use during the 32 B / 1 KiB / handshake windows "
        "(100 = one core)."
    )
    if any(s.raw for s in servers if s.name in summary):
        out.append(
            "† raw TCP echo: no WebSocket at all (bytes echoed as they arrive); its message "
            "rates show what the load generator can drive, its MB/s and handshakes/s "
            "(connect, request echo, close echo, FIN) are the ceiling."
        )
    for server in servers:
        if server.name in summary and server.note:
            out.append(f"- {server.name}: {server.note}")
    for name, reason in skipped:
        out.append(f"- SKIPPED {name}: {reason}")
    for name, row in summary.items():
        if row["errors"]:
            out.append(f"- {name}: {row['errors']} failed measurement(s), see stderr / JSON")
    return "\n".join(out)


# -- main -------------------------------------------------------------------------------------


def parseArgs(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--quick", action="store_true", help="1 repeat, short windows (~1-2 min)")
    parser.add_argument("--repeats", type=int, help="rounds over all servers (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 2; quick 0.7)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up (default 0.5; quick 0.3)")
    parser.add_argument("--conns", type=int, default=10, help="connections for small messages")
    parser.add_argument("--window", type=int, default=64, help="messages in flight per connection")
    parser.add_argument("--refill", type=int, default=16, help="send more when this many are free")
    parser.add_argument("--hs-loops", type=int, default=4, help="concurrent handshake loops")
    parser.add_argument("--mem-conns", type=int, default=2000, help="idle connections for memory")
    parser.add_argument("--servers", help="comma-separated subset of: " + ", ".join(s.name for s in SERVERS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated subset of: " + ",".join(WORKLOADS))
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--server-cpu", type=int, help="CPU for the servers (default: the second one)")
    parser.add_argument("--client-cpu", type=int, help="CPU for the generator (default: the first one)")
    parser.add_argument("--json", metavar="FILE", help="also write every raw measurement as JSON")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (1 if quick else 3)
    args.duration = args.duration or (0.7 if quick else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if quick else 0.5)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    if args.window % args.refill or 64 % args.refill or args.window > 1024:
        parser.error("--window and 64 must be multiples of --refill (window at most 1024)")
    return args


def setUpPinning(args) -> str:
    args.server_cpu = args.server_cpu if not args.no_pin else None
    if args.no_pin or not hasattr(os, "sched_setaffinity"):
        args.server_cpu = None
        return "no CPU pinning"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        args.server_cpu = None
        return "no CPU pinning (one CPU)"
    client = args.client_cpu if args.client_cpu is not None else cpus[0]
    server = args.server_cpu if args.server_cpu is not None else cpus[1]
    os.sched_setaffinity(0, {client})
    args.server_cpu = server
    return f"servers on CPU {server}, generator on CPU {client}"


def raiseFileLimit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def main(argv=None) -> int:
    args = parseArgs(argv)
    if not sys.platform.startswith("linux"):
        print("bench/run.py reads /proc: it runs on Linux only", file=sys.stderr)
        return 2
    if "mem" in args.workloads:
        limit = raiseFileLimit(args.mem_conns + 256)
        if limit < args.mem_conns + 256:
            args.mem_conns = max(100, limit - 256)
            print(f"note: ulimit -n is {limit}; idle connections reduced to {args.mem_conns}",
                  file=sys.stderr)
    pinning = setUpPinning(args)
    wanted = None
    if args.servers:
        wanted = [n.strip() for n in args.servers.split(",") if n.strip()]
        names = {s.name for s in SERVERS}
        bad = [n for n in wanted if n not in names]
        if bad:
            print(f"unknown server(s): {bad}; choose from {sorted(names)}", file=sys.stderr)
            return 2
    servers, skipped = [], []
    for server in SERVERS:
        if wanted is not None and server.name not in wanted:
            continue
        reason = server.missing()
        if reason:
            skipped.append((server.name, reason))
        else:
            servers.append(server)
    for name, reason in skipped:
        print(f"skipping {name}: {reason}", file=sys.stderr)
    if not servers:
        print("no server to measure", file=sys.stderr)
        return 1

    meta = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pinning": pinning,
        "args": {k: v for k, v in vars(args).items()},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    results: dict = {}
    started = time.monotonic()
    logDir = tempfile.mkdtemp(prefix="twisted_ws-bench-")
    procs = Processes(args, logDir)
    startFailures: dict[str, str] = {}
    try:
        for rep in range(args.repeats):
            order = servers[rep % len(servers):] + servers[: rep % len(servers)]
            print(f"repeat {rep + 1}/{args.repeats}: {', '.join(s.name for s in order)}",
                  file=sys.stderr, flush=True)
            for workload in args.workloads:
                for server in order:
                    if server.name in startFailures:
                        continue
                    try:
                        measure(procs, server, workload, args, results, rep)
                    except BenchError as e:  # the server did not start
                        startFailures[server.name] = str(e)
                        print(f"  ! {server.name}: {e}", file=sys.stderr, flush=True)
            for server in servers:  # fresh processes for the next repeat
                procs.stop(server)
    finally:
        procs.stopAll()
    for name, error in startFailures.items():
        skipped.append((name, f"failed: {error}"))
    summary = summarize(results)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    print(markdown(servers, summary, skipped, args, meta))
    print(f"\n({meta['elapsed_s']:.0f} s; server logs in {logDir})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "summary": summary, "runs": results,
                       "skipped": dict(skipped)}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
