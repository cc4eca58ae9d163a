"""
Echo cost with permessage-deflate on and off: server CPU per message for
1 KiB JSON-like text.

Starts examples/echo_server.py (permessage-deflate accepted; then again with
--no-deflate) on 127.0.0.1, connects C{--clients} websockets clients (which
offer permessage-deflate with context takeover, as browsers do) and keeps
C{--window} messages in flight on each for C{--duration} seconds.  The
messages are JSON records of about 1 KiB (a trading feed: realistic and
compressible).  The figure is the server's CPU time (user + system, from
/proc) over the timed window divided by the messages echoed; the clients'
own cost is not counted.  Linux only.

    pip install '.[bench]'
    python bench/deflate_echo.py [--clients 10] [--window 32] [--duration 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def records(n: int, size: int = 1024, seed: int = 7) -> list[str]:
    """C{n} JSON records padded to about C{size} characters."""
    rnd = random.Random(seed)
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    out = []
    for i in range(n):
        record = {
            "id": 100000 + i,
            "type": rnd.choice(["trade", "quote", "order"]),
            "user": {"name": rnd.choice(names), "id": rnd.randrange(10000)},
            "symbol": rnd.choice(["BTC-USD", "ETH-USD", "SOL-USD"]),
            "price": round(rnd.uniform(10, 50000), 2),
            "book": [[round(rnd.uniform(10, 50000), 2), round(rnd.uniform(0, 5), 4)] for _ in range(8)],
            "ts": 1700000000000 + i * 37,
        }
        text = json.dumps(record)
        while len(text) < size:
            record.setdefault("trail", []).append(rnd.choice(names))
            text = json.dumps(record)
        out.append(text)
    return out


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port: int, clients: int, window: int, duration: float, pid: int, deflate: bool) -> float:
    import websockets

    messages = records(256)
    counts = [0] * clients
    stop = asyncio.Event()

    async def client(i: int) -> None:
        compression = "deflate" if deflate else None
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/", compression=compression, max_size=None
        ) as ws:
            for j in range(window):
                await ws.send(messages[(i + j) % len(messages)])
            n = 0
            while not stop.is_set():
                reply = await ws.recv()
                if reply != messages[(i + n) % len(messages)]:
                    raise AssertionError("echo mismatch")
                counts[i] += 1
                await ws.send(messages[(i + n + window) % len(messages)])
                n += 1

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(0.5)  # warm-up
    start, cpu0 = sum(counts), cpuSeconds(pid)
    await asyncio.sleep(duration)
    done, cpu1 = sum(counts) - start, cpuSeconds(pid)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (cpu1 - cpu0) / done * 1e6


def run(args: argparse.Namespace, deflate: bool) -> float:
    command = [sys.executable, os.path.join(ROOT, "examples", "echo_server.py"), "--port", "0"]
    if not deflate:
        command.append("--no-deflate")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        port = int(line.rsplit(":", 1)[1].split()[0].strip("/"))
        return asyncio.run(load(port, args.clients, args.window, args.duration, server.pid, deflate))
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (the median is shown)")
    args = parser.parse_args()
    print(f"{args.clients} websockets clients x {args.window} in flight, ~1 KiB JSON text, "
          f"{args.duration} s windows, median of {args.repeat}")
    results: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeat):
        for deflate in (True, False):
            results[deflate].append(run(args, deflate))
    for deflate in (False, True):
        values = sorted(results[deflate])
        label = "permessage-deflate" if deflate else "no compression"
        print(f"{label:20s} {values[len(values) // 2]:7.1f} us of server CPU per echo "
              f"(runs: {', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
