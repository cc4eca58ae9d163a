"""
The benchmark's load generator: cheap WebSocket clients for echo servers.

Everything here is written so that the client costs far less per message
than any server it measures:

  - client frames are built (and masked) before the measurement starts;
  - sockets are non-blocking and driven by one C{selectors} loop (epoll);
  - echoes are not parsed frame by frame: the echoed byte stream is compared
    with the expected one as a whole (one C{memcmp} per C{recv}), which both
    counts the messages and checks every echoed byte.

Each workload function returns a plain C{dict} of results, with the server's
CPU time over the measurement window (from C{/proc/PID/task/*/schedstat},
nanoseconds) and the generator's own CPU time over the same window, so a
reader can see that the generator was not the bottleneck.

Every loop here is bounded in time: each function has a deadline and a
stall timeout, and raises L{BenchError} when a server stops answering or
answers wrongly.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import random
import selectors
import socket
import struct
import time

OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECV_SIZE = 256 * 1024
# The raw TCP echo server (bench/servers/raw_echo.py) closes a connection
# after echoing a chunk that ends with these bytes: a Close frame (code 1000)
# masked with an all-zero key.  Random masked frames end with it with
# probability 2**-64.
RAW_BYE = b"\x88\x82\x00\x00\x00\x00\x03\xe8"
HOST = "127.0.0.1"


class BenchError(Exception):
    """
    A server misbehaved (wrong echo, no answer, closed early) or was too slow.
    """


# -- process accounting -------------------------------------------------------


def _pidCpuNsFromStat(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def cpuNs(pid: int) -> int:
    """
    CPU time (user + system) used so far by every thread of process C{pid},
    in nanoseconds: the sum of C{/proc/PID/task/TID/schedstat} (ns
    resolution), or C{/proc/PID/stat} (clock ticks) where schedstat is
    missing.
    """
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:  # the thread just exited
                pass
        return total
    except (FileNotFoundError, PermissionError, ValueError, IndexError):
        return _pidCpuNsFromStat(pid)


def rssBytes(pid: int) -> int:
    """
    Resident set size of process C{pid}, in bytes.
    """
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Meter:
    """
    Wall clock, server CPU and generator CPU between L{start} and L{stop}.
    C{serverPid} may be a list of pids (a pool of worker processes): their
    CPU times are summed.
    """

    def __init__(self, serverPid: int | list[int]) -> None:
        self.serverPid = serverPid
        self.pids = list(serverPid) if isinstance(serverPid, (list, tuple)) else [serverPid]

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.server0 = sum(cpuNs(p) for p in self.pids)
        self.self0 = time.process_time_ns()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        server = sum(cpuNs(p) for p in self.pids) - self.server0
        gen = time.process_time_ns() - self.self0
        return {
            "seconds": wall,
            "server_cpu_s": server / 1e9,
            "server_cpu_pct": 100.0 * server / 1e9 / wall,
            "gen_cpu_pct": 100.0 * gen / 1e9 / wall,
        }


# -- frames ---------------------------------------------------------------------


def maskPayload(payload: bytes, key: bytes) -> bytes:
    """
    XOR C{payload} with the repeated 4-byte C{key} (RFC 6455 section 5.3),
    with big-integer arithmetic so that 16 MiB takes milliseconds.
    """
    n = len(payload)
    if n == 0:
        return b""
    keyStream = key * (n // 4 + 1)
    value = int.from_bytes(payload, "little") ^ int.from_bytes(keyStream[:n], "little")
    return value.to_bytes(n, "little")


def _header(opcode: int, length: int, masked: bool) -> bytes:
    first = 0x80 | opcode
    bit = 0x80 if masked else 0
    if length < 126:
        return struct.pack("!BB", first, bit | length)
    if length < 65536:
        return struct.pack("!BBH", first, bit | 126, length)
    return struct.pack("!BBQ", first, bit | 127, length)


def clientFrame(opcode: int, payload: bytes, key: bytes | None = None) -> bytes:
    """
    One final, masked client frame; a fresh random key unless C{key} is given.
    """
    key = os.urandom(4) if key is None else key
    return _header(opcode, len(payload), True) + key + maskPayload(payload, key)


def serverFrame(opcode: int, payload: bytes) -> bytes:
    """
    The frame an echo server sends back: final, unmasked.
    """
    return _header(opcode, len(payload), False) + payload


def randomPayload(size: int, text: bool, rng: random.Random) -> bytes:
    if text:  # printable ASCII: valid UTF-8 with one byte per character
        return bytes(rng.choices(range(0x21, 0x7F), k=size))
    return rng.randbytes(size)


def upgradeRequest(port: int, key: bytes) -> bytes:
    return (
        b"GET / HTTP/1.1\r\n"
        b"Host: " + f"{HOST}:{port}".encode() + b"\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"\r\n"
    )


def acceptValue(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def checkUpgradeResponse(head: bytes, accept: bytes) -> None:
    """
    Check a server's answer to an upgrade: C{101}, and the right
    C{Sec-WebSocket-Accept}.
    """
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101"):
        raise BenchError(f"upgrade refused: {lines[0][:80]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept":
            if value.strip() != accept:
                raise BenchError("wrong Sec-WebSocket-Accept")
            return
    raise BenchError("no Sec-WebSocket-Accept in the 101 response")


def openConnection(port: int, raw: bool, timeout: float = 10.0) -> socket.socket:
    """
    A blocking connect and (unless C{raw}) opening handshake; the socket is
    returned non-blocking, with TCP_NODELAY.  Any bytes the server sent
    after its 101 response would be lost, but echo servers send none.
    """
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not raw:
            key = base64.b64encode(os.urandom(16))
            s.sendall(upgradeRequest(port, key))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise BenchError("connection closed during the opening handshake")
                head += chunk
                if len(head) > 65536:
                    raise BenchError("101 response too long")
            head, _, rest = head.partition(b"\r\n\r\n")
            checkUpgradeResponse(head, acceptValue(key))
            if rest:
                raise BenchError("unexpected bytes after the 101 response")
        s.setblocking(False)
        return s
    except BaseException:
        s.close()
        raise


def _closeAll(socks) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# -- small messages --------------------------------------------------------------


def smallMessages(
    port: int,
    serverPid: int,
    *,
    raw: bool,
    size: int,
    text: bool,
    conns: int = 10,
    window: int = 64,
    refill: int = 16,
    warmup: float = 0.5,
    duration: float = 2.0,
    stall: float = 10.0,
    seed: int = 1,
) -> dict:
    """
    Echoed messages per second with C{conns} connections, each keeping up to
    C{window} messages in flight and sending C{refill} more whenever that
    many echoes have come back.

    Each connection cycles through a ring of 64 distinct messages (random
    payloads, each frame masked with its own random key); as the server
    echoes them in order, the expected echo stream is periodic, and every
    received chunk is compared with it byte for byte.  For the raw TCP
    server, the expected echo is the masked frame itself.
    """
    ring = 64
    if window % refill or ring % refill or window > ring * 16:
        raise ValueError("window and 64 must be multiples of refill")
    rng = random.Random(seed)
    opcode = OP_TEXT if text else OP_BINARY
    payloads = [randomPayload(size, text, rng) for _ in range(ring)]
    frames = [clientFrame(opcode, p) for p in payloads]
    echoes = frames if raw else [serverFrame(opcode, p) for p in payloads]
    echoLen = len(echoes[0])
    period = b"".join(echoes)
    periodLen = len(period)
    pattern = period * (RECV_SIZE // periodLen + 2)
    batches = {
        start: b"".join(frames[start : start + refill]) for start in range(0, ring, refill)
    }
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    # per connection: [sock, sentMessages, receivedBytes, pendingOut]
    states: list[list] = []
    try:
        for _ in range(conns):
            s = openConnection(port, raw)
            socks.append(s)
            st = [s, 0, 0, b""]
            states.append(st)
            sel.register(s, selectors.EVENT_READ, st)

        def push(st: list, count: int) -> None:
            out = [st[3]] if st[3] else []
            for _ in range(count // refill):
                out.append(batches[st[1] % ring])
                st[1] += refill
            data = b"".join(out)
            try:
                sent = st[0].send(data)
            except BlockingIOError:
                sent = 0
            wasPending = bool(st[3])
            st[3] = data[sent:]
            if st[3] and not wasPending:
                sel.modify(st[0], selectors.EVENT_READ | selectors.EVENT_WRITE, st)
            elif wasPending and not st[3]:
                sel.modify(st[0], selectors.EVENT_READ, st)

        for st in states:
            push(st, window)

        def echoed() -> int:
            return sum(st[2] // echoLen for st in states)

        meter = Meter(serverPid)
        now = time.perf_counter()
        warmEnd = now + warmup
        end = warmEnd + duration
        measuring = False
        first = 0
        lastProgress = now
        while True:
            now = time.perf_counter()
            if not measuring and now >= warmEnd:
                measuring = True
                first = echoed()
                meter.start()
            if now >= end:
                break
            if now - lastProgress > stall:
                raise BenchError(f"no echo for {stall:.0f} s")
            for key, events in sel.select(timeout=0.1):
                st = key.data
                if events & selectors.EVENT_WRITE and st[3]:
                    push(st, 0)
                if events & selectors.EVENT_READ:
                    try:
                        data = st[0].recv(RECV_SIZE)
                    except BlockingIOError:
                        continue
                    if not data:
                        raise BenchError("server closed a connection")
                    phase = st[2] % periodLen
                    if data != pattern[phase : phase + len(data)]:
                        raise BenchError(f"wrong echo at byte {st[2]}")
                    st[2] += len(data)
                    lastProgress = now
                    free = window - (st[1] - st[2] // echoLen)
                    if free >= refill:
                        push(st, free - free % refill)
        result = meter.stop()
        messages = echoed() - first
        result.update(
            messages=messages,
            msgs_per_s=messages / result["seconds"],
            server_us_per_msg=result["server_cpu_s"] * 1e6 / max(messages, 1),
            echoed_bytes=sum(st[2] for st in states),
            verified="every echoed byte",
        )
        if messages == 0:
            raise BenchError("no message echoed in the measurement window")
        return result
    finally:
        sel.close()
        _closeAll(socks)


# -- large messages -----------------------------------------------------------------


class MessageReader:
    """
    Reassembles one echoed binary message from its frames, which a server
    may send as one frame or as fragments (continuation frames), checking
    every header: no mask, no RSV bits, binary then continuation opcodes,
    FIN on the last fragment only, and exactly C{size} payload bytes in all.
    Payload bytes are copied into L{payload} (one C{memcpy} per chunk).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.payload = bytearray(size)
        self.reset()

    def reset(self) -> None:
        self.got = 0
        self.header = b""
        self.remaining = 0
        self.fin = False
        self.frames = 0
        self.done = False

    def feed(self, chunk: memoryview) -> None:
        i, n = 0, len(chunk)
        while i < n:
            if self.done:
                raise BenchError("bytes after the end of the echoed message")
            if self.remaining:
                take = min(self.remaining, n - i)
                if self.got + take > self.size:
                    raise BenchError("echoed message longer than sent")
                self.payload[self.got : self.got + take] = chunk[i : i + take]
                self.got += take
                self.remaining -= take
                i += take
                if not self.remaining and self.fin:
                    self._finish()
                continue
            need = 2
            if len(self.header) >= 2:
                code = self.header[1] & 0x7F
                need = 4 if code == 126 else 10 if code == 127 else 2
            if len(self.header) < need:
                take = min(need - len(self.header), n - i)
                self.header += bytes(chunk[i : i + take])
                i += take
                if len(self.header) == 2 and self.header[1] & 0x7F >= 126:
                    continue
                if len(self.header) < need:
                    continue
            self._parseHeader()

    def _parseHeader(self) -> None:
        h, self.header = self.header, b""
        b0, b1 = h[0], h[1]
        opcode = b0 & 0x0F
        if b0 & 0x70 or b1 & 0x80:
            raise BenchError(f"bad echo frame header {h!r} (RSV bits or mask)")
        if opcode != (OP_BINARY if self.frames == 0 else 0):
            raise BenchError(f"unexpected opcode {opcode} in frame {self.frames} of the echo")
        code = b1 & 0x7F
        length = code if code < 126 else int.from_bytes(h[2:], "big")
        self.frames += 1
        self.fin = bool(b0 & 0x80)
        self.remaining = length
        if not length and self.fin:
            self._finish()

    def _finish(self) -> None:
        if self.got != self.size:
            raise BenchError(f"echoed message has {self.got} bytes, sent {self.size}")
        self.done = True


def largeMessages(
    port: int,
    serverPid: int,
    *,
    raw: bool,
    size: int,
    duration: float = 2.0,
    stall: float = 30.0,
    pool: int = 4,
    seed: int = 2,
) -> dict:
    """
    MB/s (10**6 payload bytes per second, one direction) for binary messages
    of C{size} bytes echoed one at a time over one connection.

    The client frames come from a pool of C{pool} frames of the same random
    payload, each masked with its own random key, used in turn; they are
    built before the clock starts.  One message warms up, then messages are
    echoed until C{duration} has passed (at least one).  Every echo's frame
    headers and length are checked (servers may fragment); the payload of
    the warm-up, first measured and last echo is compared in full with what
    was sent, the others in their first and last 4 KiB.  For the raw TCP
    server the echo is the masked frame itself, compared the same way.
    """
    rng = random.Random(seed)
    payload = rng.randbytes(size)
    frames = [clientFrame(OP_BINARY, payload) for _ in range(pool)]
    reader = MessageReader(len(frames[0]) if raw else size)
    scratch = bytearray(1 << 20)
    scratchView = memoryview(scratch)
    sel = selectors.DefaultSelector()
    s = openConnection(port, raw)
    deadline = time.perf_counter() + duration + stall * 2 + 60
    try:
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)

        def echoOne(i: int) -> bytes:
            frame = frames[i % pool]
            out = memoryview(frame)
            sent = 0
            reader.reset()
            lastProgress = time.perf_counter()
            sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while not reader.done:
                now = time.perf_counter()
                if now - lastProgress > stall or now > deadline:
                    raise BenchError(f"{size} B echo stalled after {reader.got} bytes")
                for _key, ev in sel.select(timeout=0.5):
                    if ev & selectors.EVENT_WRITE and sent < len(out):
                        try:
                            sent += s.send(out[sent:])
                        except BlockingIOError:
                            pass
                        if sent == len(out):
                            sel.modify(s, selectors.EVENT_READ)
                        lastProgress = now
                    if ev & selectors.EVENT_READ:
                        try:
                            n = s.recv_into(scratch)
                        except BlockingIOError:
                            continue
                        if n == 0:
                            raise BenchError("server closed the connection")
                        if raw:
                            if reader.got + n > reader.size:
                                raise BenchError("echo longer than sent")
                            reader.payload[reader.got : reader.got + n] = scratchView[:n]
                            reader.got += n
                            reader.done = reader.got == reader.size
                        else:
                            reader.feed(scratchView[:n])
                        lastProgress = now
            if sent != len(out):
                raise BenchError("echo complete before the frame was sent")
            return frame if raw else payload

        def check(expected: bytes, full: bool) -> None:
            got = reader.payload
            if full:
                ok = got == expected
            else:
                ok = got[:4096] == expected[:4096] and got[-4096:] == expected[-4096:]
            if not ok:
                raise BenchError(f"wrong {size} B echo")

        check(echoOne(0), True)  # warm-up
        meter = Meter(serverPid)
        meter.start()
        count = 0
        frameCounts = []
        while True:
            count += 1
            expected = echoOne(count)
            frameCounts.append(reader.frames)
            elapsed = time.perf_counter() - meter.t0
            last = elapsed >= duration
            check(expected, full=count == 1 or last)
            if last:
                break
        result = meter.stop()
        result.update(
            messages=count,
            mb_per_s=count * size / result["seconds"] / 1e6,
            server_ms_per_msg=result["server_cpu_s"] * 1e3 / count,
            frames_per_echo=max(frameCounts),
            verified="headers and length of every echo; payload in full for first and last",
        )
        return result
    finally:
        sel.close()
        s.close()


# -- handshakes ------------------------------------------------------------------------


def handshakes(
    port: int,
    serverPid: int,
    *,
    raw: bool,
    loops: int = 8,
    warmup: float = 0.5,
    duration: float = 2.0,
    timeout: float = 2.0,
    maxErrors: int = 50,
) -> dict:
    """
    Completed open + close handshakes per second with C{loops} concurrent
    loops of: connect, upgrade request, 101 (accept value checked), client
    Close frame (masked, code 1000), server Close frame, server FIN, close.

    For the raw TCP server a loop is the same exchange without meaning:
    connect, send the request bytes, read them back, send L{RAW_BYE}, read it
    back, then the server's FIN.
    """
    keys = [base64.b64encode(os.urandom(16)) for _ in range(64)]
    requests = [upgradeRequest(port, k) for k in keys]
    accepts = [acceptValue(k) for k in keys]
    closeFrame = clientFrame(OP_CLOSE, struct.pack("!H", 1000))
    sel = selectors.DefaultSelector()
    # per loop: dict(sock, state, buf, started, n)
    CONNECTING, UPGRADING, CLOSING = 0, 1, 2
    counters = {"done": 0, "errors": 0, "seq": 0}
    errors: list[str] = []
    live: set = set()

    def start() -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rc = s.connect_ex((HOST, port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            raise BenchError(f"connect failed: {os.strerror(rc)}")
        i = counters["seq"] % 64
        counters["seq"] += 1
        st = {"sock": s, "state": CONNECTING, "buf": b"", "t": time.perf_counter(), "i": i}
        live.add(s)
        sel.register(s, selectors.EVENT_WRITE, st)

    def finish(st: dict, error: str | None) -> None:
        s = st["sock"]
        sel.unregister(s)
        live.discard(s)
        if error is not None:
            counters["errors"] += 1
            if len(errors) < 5:
                errors.append(error)
            # reset rather than linger
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            counters["done"] += 1
        s.close()
        start()

    def step(st: dict, events: int) -> None:
        s = st["sock"]
        if st["state"] == CONNECTING:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return finish(st, f"connect: {os.strerror(err)}")
            request = requests[st["i"]]
            if s.send(request) != len(request):
                return finish(st, "short send")
            st["state"] = UPGRADING
            sel.modify(s, selectors.EVENT_READ, st)
            return
        try:
            data = s.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            return finish(st, f"recv: {e}")
        if st["state"] == UPGRADING:
            if not data:
                return finish(st, "closed before the upgrade response")
            st["buf"] += data
            if raw:
                request = requests[st["i"]]
                if len(st["buf"]) < len(request):
                    return
                if st["buf"] != request:
                    return finish(st, "wrong echo")
                if s.send(RAW_BYE) != len(RAW_BYE):
                    return finish(st, "short send")
            else:
                head, sep, rest = st["buf"].partition(b"\r\n\r\n")
                if not sep:
                    return
                try:
                    checkUpgradeResponse(head, accepts[st["i"]])
                except BenchError as e:
                    return finish(st, str(e))
                if rest:
                    return finish(st, "unexpected bytes after the 101 response")
                if s.send(closeFrame) != len(closeFrame):
                    return finish(st, "short send")
            st["buf"] = b""
            st["state"] = CLOSING
            return
        # CLOSING: collect the server's Close frame, then its FIN
        if data:
            st["buf"] += data
            return
        if raw:
            if st["buf"] != RAW_BYE:
                return finish(st, f"wrong echo before FIN: {st['buf'][:16]!r}")
        elif not (len(st["buf"]) >= 2 and st["buf"][0] == 0x88 and st["buf"][1] & 0x80 == 0):
            return finish(st, f"no server Close frame before FIN: {st['buf'][:16]!r}")
        finish(st, None)

    meter = Meter(serverPid)
    try:
        for _ in range(loops):
            start()
        now = time.perf_counter()
        warmEnd = now + warmup
        end = warmEnd + duration
        measuring = False
        first = 0
        firstErrors = 0
        while True:
            now = time.perf_counter()
            if not measuring and now >= warmEnd:
                measuring = True
                first, firstErrors = counters["done"], counters["errors"]
                meter.start()
            if now >= end:
                break
            if counters["errors"] > maxErrors:
                raise BenchError(f"{counters['errors']} failed handshakes, e.g. {errors}")
            for key, events in sel.select(timeout=0.1):
                try:
                    step(key.data, events)
                except OSError as e:
                    if key.data["sock"] in live:
                        finish(key.data, f"{type(e).__name__}: {e}")
            for key in list(sel.get_map().values()):
                if now - key.data["t"] > timeout:
                    finish(key.data, f"no progress for {timeout} s")
        result = meter.stop()
        done = counters["done"] - first
        if done == 0:
            raise BenchError(f"no handshake completed; errors: {errors}")
        result.update(
            handshakes=done,
            per_s=done / result["seconds"],
            server_us_per_hs=result["server_cpu_s"] * 1e6 / done,
            errors=counters["errors"] - firstErrors,
            error_samples=errors,
        )
        return result
    finally:
        sel.close()
        for s in list(live):
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        _closeAll(live)


# -- idle connections ----------------------------------------------------------------------


def openIdle(port: int, raw: bool, count: int, chunk: int = 100, timeout: float = 30.0):
    """
    Open C{count} connections, complete the opening handshake on each (for
    the raw server: one 8-byte echo), and return the sockets, left idle.
    Connections are opened C{chunk} at a time, within C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    socks: list[socket.socket] = []
    accepts: dict[socket.socket, bytes] = {}
    try:
        while len(socks) < count:
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(socks)} of {count} idle connections in {timeout} s")
            batch = []
            for _ in range(min(chunk, count - len(socks))):
                s = socket.create_connection((HOST, port), timeout=10)
                batch.append(s)
                socks.append(s)
                if raw:
                    s.sendall(b"12345678")
                else:
                    key = base64.b64encode(os.urandom(16))
                    s.sendall(upgradeRequest(port, key))
                    accepts[s] = acceptValue(key)
            for s in batch:
                head = b""
                end = b"12345678" if raw else b"\r\n\r\n"
                while not head.endswith(end):
                    data = s.recv(4096)
                    if not data:
                        raise BenchError("idle connection closed during its handshake")
                    head += data
                    if len(head) > 65536:
                        raise BenchError("handshake response too long")
                if not raw:
                    checkUpgradeResponse(head[:-4], accepts.pop(s))
        return socks
    except BaseException:
        _closeAll(socks)
        raise


def waitQuiet(pid: int, settle: float = 0.3, limit: float = 5.0) -> None:
    """
    Wait until process C{pid} has used (almost) no CPU for C{settle} seconds,
    at most C{limit} seconds.
    """
    end = time.monotonic() + limit
    while time.monotonic() < end:
        before = cpuNs(pid)
        time.sleep(settle)
        if cpuNs(pid) - before < settle * 0.02 * 1e9:
            return


def idleMemory(port: int, serverPid: int, *, raw: bool, count: int = 2000) -> dict:
    """
    RSS growth of a (fresh, warmed-up) server per idle open connection.
    """
    waitQuiet(serverPid)
    before = rssBytes(serverPid)
    socks = openIdle(port, raw, count)
    try:
        waitQuiet(serverPid)
        time.sleep(0.2)
        after = rssBytes(serverPid)
    finally:
        _closeAll(socks)
    waitQuiet(serverPid)
    closed = rssBytes(serverPid)
    return {
        "connections": count,
        "rss_before_kib": before / 1024,
        "rss_after_kib": after / 1024,
        "rss_after_close_kib": closed / 1024,
        "kib_per_conn": (after - before) / 1024 / count,
    }
