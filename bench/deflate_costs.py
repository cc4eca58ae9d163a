"""
What permessage-deflate costs per connection and what it saves, for the
compression topic of the docs.

    python bench/deflate_costs.py [--connections 1000] [--messages 2000]

1. Server memory per active connection: for each setting, a fresh process
   opens N server connections on memory transports (no sockets), each
   negotiating permessage-deflate and echoing one compressed 1 KiB message,
   so every connection holds its compressor and decompressor; the figure
   is the growth of the process's RSS divided by N, minus the same run
   without compression.
2. Compression ratio and CPU on 1 KiB JSON-like text messages, with the
   zlib settings the server uses for that setting (context takeover unless
   said otherwise): compressed bytes / raw bytes, and microseconds of CPU
   per message (time.process_time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import zlib

SETTINGS = {
    # name: (PerMessageDeflate keywords, or None for no compression)
    "off": None,
    "w8 m1": dict(serverMaxWindowBits=8, clientMaxWindowBits=8, memLevel=1),
    "w10 m4": dict(serverMaxWindowBits=10, clientMaxWindowBits=10, memLevel=4),
    "w12 m5 (default)": dict(),
    "w13 m6": dict(serverMaxWindowBits=13, clientMaxWindowBits=13, memLevel=6),
    "w15 m8 (zlib's)": dict(serverMaxWindowBits=15, clientMaxWindowBits=15, memLevel=8),
    "no context takeover": dict(serverNoContextTakeover=True, clientNoContextTakeover=True),
}


def records(n: int, seed: int = 1) -> list[str]:
    """JSON messages of about 1 KiB, alike in shape, different in values."""
    rng = random.Random(seed)
    words = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()
    out = []
    for i in range(n):
        items = [
            {"id": i * 100 + k, "name": rng.choice(words) + "-" + str(rng.randrange(10**6)),
             "price": round(rng.uniform(1, 1000), 2), "tags": rng.sample(words, 3),
             "active": rng.random() < 0.5}
            for k in range(7)
        ]
        text = json.dumps({"type": "update", "seq": i, "items": items})
        out.append(text[:1024])
    return out


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memoryRun(name: str, n: int) -> float:
    """In this process: RSS growth per connection for setting C{name}."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from twisted_ws import PerMessageDeflate, WebSocketProtocol, WebSocketServerFactory
    from twisted_ws.core.frames import serializeFrame

    class Echo(WebSocketProtocol):
        def messageReceived(self, message):
            self.sendMessage(message)

    keywords = SETTINGS[name]
    extensions = [] if keywords is None else [PerMessageDeflate(**keywords)]
    factory = WebSocketServerFactory(Echo, extensions=extensions, clock=Clock(), pingInterval=None)
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if keywords is not None else ""
    request = (
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + offer + "\r\n"
    ).encode()
    messages = records(n, seed=2)
    keep = []
    start = rss()
    for i in range(n):
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 10000 + i))
        protocol = factory.buildProtocol(transport.getPeer())
        transport.protocol = protocol
        protocol.makeConnection(transport)
        protocol.dataReceived(request)
        payload = messages[i].encode()
        rsv = 0
        if keywords is not None:
            # Stored blocks (level 0) never look back, so they fit any negotiated
            # client window; the server still builds its decompressor.
            c = zlib.compressobj(0, zlib.DEFLATED, -9)
            payload = (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
            rsv = 0x40
        transport.protocol.dataReceived(serializeFrame(0x1, payload, True, rsv, maskKey=os.urandom(4)))
        transport.clear()
        keep.append(transport)
    return (rss() - start) / n


def ratioRun(name: str, messages: list[str]) -> tuple[float, float]:
    """(compressed/raw, µs of CPU per message) with the server's zlib settings for C{name}."""
    keywords = SETTINGS[name]
    wbits = keywords.get("serverMaxWindowBits", 12)
    mem = keywords.get("memLevel", 5)
    takeover = not keywords.get("serverNoContextTakeover", False)
    raw = sum(len(m.encode()) for m in messages)
    out = 0
    began = time.process_time()
    c = zlib.compressobj(6, zlib.DEFLATED, -max(wbits, 9), mem)
    for m in messages:
        if not takeover:
            c = zlib.compressobj(6, zlib.DEFLATED, -max(wbits, 9), mem)
        out += len(c.compress(m.encode()) + c.flush(zlib.Z_SYNC_FLUSH)) - 4
    spent = time.process_time() - began
    return out / raw, spent / len(messages) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(memoryRun(args.child, args.connections))
        return
    perConnection = {}
    for name in SETTINGS:
        runs = []
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, "--connections", str(args.connections)],
                capture_output=True, text=True, check=True,
            )
            runs.append(float(out.stdout))
        perConnection[name] = sorted(runs)[1]
    messages = records(args.messages)
    print(f"{args.connections} connections per run, median of 3 runs; {args.messages} messages of "
          f"{sum(len(m) for m in messages) / len(messages):.0f} bytes")
    print(f"{'setting':22} {'KiB/conn':>9} {'over off':>9} {'ratio':>7} {'µs/msg':>7}")
    for name in SETTINGS:
        kib = perConnection[name] / 1024
        extra = (perConnection[name] - perConnection["off"]) / 1024
        if SETTINGS[name] is None:
            print(f"{name:22} {kib:9.1f} {'':>9} {1.0:7.2f} {'':>7}")
        else:
            ratio, cpu = ratioRun(name, messages)
            print(f"{name:22} {kib:9.1f} {extra:9.1f} {ratio:7.2f} {cpu:7.1f}")


if __name__ == "__main__":
    main()
