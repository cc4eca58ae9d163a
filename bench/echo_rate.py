"""
A rough echo-rate measurement: messages/s and server CPU per message.

Starts C{examples/echo_server.py} in a subprocess, opens C{--conns}
connections from this process with a minimal client (pre-built masked frames,
responses counted by size, so the client costs little), keeps C{--window}
messages in flight per connection for C{--seconds}, and reports echoed
messages/s and the server's CPU time per message (read from /proc).

    python bench/echo_rate.py [--size 1024] [--text] [--conns 10] [--seconds 3]

For side-by-side numbers against other servers use bench/run.py (see the
README, "Performance").
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from twisted_ws.core.frames import OP_BINARY, OP_TEXT, serializeFrame  # noqa: E402

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def startServer() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "examples", "echo_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    port = int(line.rsplit(":", 1)[1].strip("/\n"))
    return proc, port


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(REQUEST)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    s.setblocking(False)
    return s


def run(args: argparse.Namespace) -> None:
    proc, port = startServer()
    try:
        opcode = OP_TEXT if args.text else OP_BINARY
        payload = (b"x" * args.size) if args.text else os.urandom(args.size)
        frames = [serializeFrame(opcode, payload, maskKey=os.urandom(4)) for _ in range(64)]
        echoSize = len(serializeFrame(opcode, payload))
        window = args.window
        refill = max(1, window // 4)
        batch = b"".join(frames[i % 64] for i in range(refill))
        sel = selectors.DefaultSelector()
        conns = []
        for _ in range(args.conns):
            s = connect(port)
            state = {"sock": s, "inflight": window, "pending": 0, "out": b""}
            state["out"] = b"".join(frames[i % 64] for i in range(window))
            conns.append(state)
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, state)
        echoed = 0
        started = None
        cpu0 = 0.0
        deadline = time.monotonic() + args.warmup + args.seconds
        warmupEnd = time.monotonic() + args.warmup
        while True:
            now = time.monotonic()
            if started is None and now >= warmupEnd:
                started = now
                echoed = 0
                cpu0 = cpuSeconds(proc.pid)
            if now >= deadline:
                break
            for key, events in sel.select(timeout=0.5):
                st = key.data
                s = st["sock"]
                if events & selectors.EVENT_READ:
                    data = s.recv(1 << 20)
                    if not data:
                        raise SystemExit("server closed a connection")
                    st["pending"] += len(data)
                    n, st["pending"] = divmod(st["pending"], echoSize)
                    echoed += n
                    st["inflight"] -= n
                    if window - st["inflight"] >= refill:
                        st["out"] += batch
                        st["inflight"] += refill
                if events & selectors.EVENT_WRITE and st["out"]:
                    sent = s.send(st["out"])
                    st["out"] = st["out"][sent:]
                sel.modify(
                    s,
                    selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0),
                    st,
                )
        elapsed = time.monotonic() - started
        cpu = cpuSeconds(proc.pid) - cpu0
        kind = "text" if args.text else "binary"
        print(
            f"{args.size} B {kind}, {args.conns} conns, window {window}: "
            f"{echoed / elapsed:,.0f} msgs/s, server CPU {cpu / max(echoed, 1) * 1e6:.2f} us/msg "
            f"({cpu / elapsed * 100:.0f}% of a core)"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--text", action="store_true")
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
