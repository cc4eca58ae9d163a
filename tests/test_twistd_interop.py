"""
The C{twistd websocket} service as a real subprocess, driven by real
clients (the interop tier): echo (TCP, TLS, UNIX), broadcast rooms, a
client that never reads, the TCP bridge, a custom protocol class, static
files and the status page on the same port, SIGTERM closing everyone with
1001, the daemon, the help text and clear errors for bad options.  Each
server listens on 127.0.0.1 on a port the OS picks and logs "listening on
ws://127.0.0.1:PORT/..."; the tests wait for that line (wshelpers.Server).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import socketserver
import ssl
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect, unix_connect

from twisted_ws.core.frames import FrameParser
from twisted_ws.twistd import Options
from wshelpers import DEADLINE, LOCAL, Server, Twistd, clientFrame, makeCertificate, upgradeRequest

# -- help and bad options -------------------------------------------------------

EVERY_OPTION = [
    "--listen", "--mode", "--target", "--protocol", "--path", "--static", "--status",
    "--subprotocol", "--allow-origin", "--no-deflate", "--max-queue-bytes",
    "--max-queue-messages", "--max-connections", "--stop-timeout", "--max-message-size",
    "--max-fragments", "--fragment-size", "--open-timeout", "--close-timeout",
    "--ping-interval", "--ping-timeout", "--max-request-line", "--max-header-bytes",
    "--max-header-count",
]


def test_helpListsEveryOption(twistd: Twistd, tmp_path: Path) -> None:
    result = twistd.run(["websocket", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"--[a-z][a-z0-9-]+", result.stdout))
    declared = {f"--{name}" for name in Options().synonyms if len(name) > 1}
    assert set(EVERY_OPTION) <= listed, set(EVERY_OPTION) - listed
    assert declared - {"--help", "--version"} <= listed
    for mode in ("echo", "broadcast", "bridge", "custom"):
        assert mode in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode", "nope"], "unknown mode 'nope'"),
        (["--mode", "bridge"], "needs --target"),
        (["--target", "tcp:localhost:1"], "only used with --mode bridge"),
        (["--mode", "bridge", "--target", "nosuchkind:1"], "--target"),
        (["--protocol", "no_such_module_xyz.Thing"], "cannot be imported"),
        (["--protocol", "twisted_ws.twistd.Options"], "not a subclass"),
        (["--listen", "tcp:notaport"], "--listen 'tcp:notaport'"),
        (["--static", "/no/such/dir"], "not a directory"),
        (["--max-message-size", "-5"], "not a positive integer"),
        (["--path", "ws"], "must start with /"),
        (["--subprotocol", "bad name"], "not a valid token"),
    ],
)
def test_badOptionsGiveAClearError(twistd: Twistd, tmp_path: Path, args, message) -> None:
    result = twistd.run(["-n", "--pidfile=", "websocket", *args], tmp_path, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output, output
    assert "Traceback" not in output, output


def test_portInUseGivesAClearError(twistd: Twistd, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = twistd.run(
            ["-n", "--pidfile=", "websocket", "--listen", f"tcp:{port}:interface=127.0.0.1"], tmp_path
        )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"cannot listen on tcp:{port}:interface=127.0.0.1: Address already in use" in output, output
    assert "Traceback" not in output, output


# -- startup failures: one line, non-zero, no pid file, daemon or not ----------


def _startupFailure(tmp_path: Path, kind: str) -> tuple[list[str], str]:
    """--listen arguments that cannot work, and what the error must say."""
    if kind == "bad endpoint":
        return ["--listen", "tcp:notaport"], "--listen 'tcp:notaport'"
    if kind == "unix socket in a missing directory":
        missing = tmp_path / "no-such-dir"
        return ["--listen", f"unix:{missing}/ws.sock"], f"no such directory: {missing}"
    if kind == "missing certificate":
        return (
            ["--listen", "ssl:0:interface=127.0.0.1:privateKey=missing-key.pem:certKey=missing-cert.pem"],
            "missing-",
        )
    raise AssertionError(kind)


@pytest.mark.parametrize("daemon", [True, False], ids=["daemon", "foreground"])
@pytest.mark.parametrize(
    "kind", ["port in use", "bad endpoint", "unix socket in a missing directory", "missing certificate"]
)
def test_startupFailureIsOneLine(twistd: Twistd, tmp_path: Path, daemon: bool, kind: str) -> None:
    """
    Whatever stops the server from listening, twistd (daemon or -n, logging
    to a file) exits non-zero within seconds with one line, no traceback,
    and no pid file.  The daemon used to wait forever for its child.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        if kind == "port in use":
            port = taken.getsockname()[1]
            args, message = ["--listen", f"tcp:{port}:interface=127.0.0.1"], "Address already in use"
        else:
            args, message = _startupFailure(tmp_path, kind)
        started = time.monotonic()
        result = twistd.run(
            [*([] if daemon else ["-n"]), "--pidfile=tw.pid", "--logfile=tw.log", "websocket", *args],
            tmp_path,
            timeout=30,
        )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0, output
    assert time.monotonic() - started < 20
    assert len(output.splitlines()) == 1, output
    assert output.startswith("twisted_ws: "), output
    assert message in output, output
    assert "Traceback" not in output
    assert not (tmp_path / "tw.pid").exists()


def test_daemonStartsAndStops(twistd: Twistd, tmp_path: Path) -> None:
    """Listening before twistd forks leaves a working daemon that stops cleanly."""
    result = twistd.run(
        ["--pidfile=tw.pid", "--logfile=tw.log", "websocket", *LOCAL], tmp_path, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pidFile, log = tmp_path / "tw.pid", tmp_path / "tw.log"
    try:
        # No waiting: the plugin listened, and twistd wrote the buffered log
        # lines to the file (flushed) before it forked, and the parent exits
        # only once the daemon reported that it started.
        match = re.search(r"listening on ws://127\.0\.0\.1:(\d+)/", log.read_text())
        assert match, log.read_text()
        deadline = time.monotonic() + DEADLINE
        with connect(f"ws://127.0.0.1:{match.group(1)}/") as ws:
            ws.send("from a daemon")
            assert ws.recv(5) == "from a daemon"
        os.kill(int(pidFile.read_text()), signal.SIGTERM)
        # The daemon is not our child: its pid file going away is the signal.
        while pidFile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pidFile.exists()
        assert "Server Shut Down" in log.read_text()
    finally:
        if pidFile.exists():
            os.kill(int(pidFile.read_text()), signal.SIGKILL)


# -- echo on TCP, TLS and UNIX ------------------------------------------------


def test_echoOnTcpTlsAndUnix(startServer, tmp_path: Path) -> None:
    cert, key = makeCertificate(tmp_path)
    sock = tmp_path / "ws.sock"
    server = startServer(
        *LOCAL,
        "--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        "--listen", f"unix:{sock}",
    )
    schemes = {scheme: where for scheme, where, _ in server.listening}
    assert set(schemes) == {"ws", "wss", "ws+unix"}, server.listening

    with connect(f"ws://{schemes['ws']}/anything?x=1") as ws:
        ws.send("héllo")
        assert ws.recv(5) == "héllo"
        ws.send(bytes(range(256)) * 100)
        assert ws.recv(5) == bytes(range(256)) * 100
        if _deflateAvailable():
            assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")

    context = ssl.create_default_context(cafile=str(cert))
    with connect(f"wss://{schemes['wss']}/", ssl=context, server_hostname="localhost") as ws:
        ws.send("over TLS")
        assert ws.recv(5) == "over TLS"

    with unix_connect(str(sock), "ws://localhost/") as ws:
        ws.send(b"over unix")
        assert ws.recv(5) == b"over unix"

    server.waitFor(r"WebSocket open: 127\.0\.0\.1:\d+ /anything")
    server.waitFor(r"WebSocket closed: 127\.0\.0\.1:\d+ /anything code=1000")


def _deflateAvailable() -> bool:
    try:
        import twisted_ws.core.deflate  # noqa: F401
    except ImportError:
        return False
    return True


def test_noDeflateAndOrigins(startServer) -> None:
    server = startServer(*LOCAL, "--no-deflate", "--allow-origin", "https://ok.example")
    with connect(server.url("/"), origin="https://ok.example") as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        ws.send("ok")
        assert ws.recv(5) == "ok"
    with pytest.raises(Exception, match="403"):
        connect(server.url("/"), origin="https://evil.example", open_timeout=5)
    server.waitFor(r"WebSocket rejected: 127\.0\.0\.1:\d+ / 403 origin https://evil\.example")


# -- broadcast ---------------------------------------------------------------------


def test_broadcastStaysInItsRoom(startServer) -> None:
    server = startServer(*LOCAL, "--mode", "broadcast", "--status", "/_status")
    with ExitStack() as stack:
        lobby = [stack.enter_context(connect(server.url("/chat/lobby"))) for _ in range(3)]
        kitchen = [stack.enter_context(connect(server.url("/chat/kitchen"))) for _ in range(2)]
        server.waitFor(r"WebSocket open: .* /chat/kitchen", nth=1)
        for i, ws in enumerate(lobby):
            ws.send(f"lobby {i}")
        for i, ws in enumerate(kitchen):
            ws.send(f"kitchen {i}".encode())
        for ws in lobby:
            got = sorted(ws.recv(5) for _ in lobby)
            assert got == ["lobby 0", "lobby 1", "lobby 2"]
        for ws in kitchen:
            got = sorted(ws.recv(5) for _ in kitchen)
            assert got == [b"kitchen 0", b"kitchen 1"]
        # Nothing else is on its way: a marker sent now is the next message.
        lobby[0].send("end")
        kitchen[0].send("end")
        for ws in lobby + kitchen:
            assert ws.recv(5) == "end"
        # Without --static the WebSocket answers on every path but --status.
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/_status", timeout=DEADLINE) as r:
            status = json.loads(r.read())
        assert status["mode"] == "broadcast"
        assert status["rooms"] == 2
        assert status["roomMembers"] == {"/chat/lobby": 3, "/chat/kitchen": 2}
        assert status["connectionsOpen"] == 5
        assert status["messagesIn"] == 7
        assert status["messagesOut"] == 3 * 3 + 2 * 2 + 5


def _rawConnect(port: int, path: str, recvBuffer: int | None = None) -> socket.socket:
    """A WebSocket opened by hand, so the test decides when (if ever) to read."""
    sock = socket.socket()
    if recvBuffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recvBuffer)
    sock.settimeout(DEADLINE)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgradeRequest(path))
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _readUntilClose(sock: socket.socket, deadline: float, limit: int = 64 << 20) -> int | None:
    """Read frames until a Close frame (its code) or EOF (None), bounded."""
    parser = FrameParser(requireMask=False)
    total = 0
    sock.settimeout(5)
    while time.monotonic() < deadline and total < limit:
        data = sock.recv(1 << 20)
        if not data:
            return None
        total += len(data)
        for opcode, _fin, _rsv, payload, _part in parser.feed(data):
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")
        assert parser.error is None, parser.error
    raise AssertionError(f"no Close frame after {total} bytes")


def test_slowClientIsCutOffWithoutStallingTheRoom(startServer) -> None:
    server = startServer(
        *LOCAL,
        "--mode", "broadcast",
        "--max-message-size", "65536",
        "--max-queue-bytes", "262144",
        "--max-queue-messages", "64",
        "--close-timeout", "30",
    )
    slow = _rawConnect(server.port, "/room", recvBuffer=4096)
    with closing(slow), ExitStack() as stack:
        sender = stack.enter_context(connect(server.url("/room"), max_size=None))
        reader = stack.enter_context(connect(server.url("/room"), max_size=None))
        other = stack.enter_context(connect(server.url("/elsewhere")))
        server.waitFor(r"WebSocket open: .* /elsewhere")
        cutOff = None
        worst = 0.0
        for i in range(400):  # at most ~24 MiB: far more than any socket buffer
            message = i.to_bytes(4, "big") * 15000
            started = time.monotonic()
            sender.send(message)
            assert reader.recv(10) == message
            assert sender.recv(10) == message
            worst = max(worst, time.monotonic() - started)
            if server.hasLine(r"is too slow"):
                cutOff = i
                break
        assert cutOff is not None, "the slow client was never cut off"
        # The others kept getting every message promptly, and still do.
        assert worst < 5.0, worst
        for _ in range(5):
            sender.send("after")
            assert reader.recv(5) == "after"
            assert sender.recv(5) == "after"
        other.send("still here")
        assert other.recv(5) == "still here"
        server.waitFor(r"broadcast: 127\.0\.0\.1:\d+ in room /room is too slow .* closing with 1008")
        # The slow client finds the Close (1008) after what it did not read.
        assert _readUntilClose(slow, time.monotonic() + DEADLINE) == 1008


# -- bridge --------------------------------------------------------------------


class _EchoBackend(socketserver.ThreadingTCPServer):
    """A TCP echo backend; b"quit" makes it hang up."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.closedByPeer = threading.Event()
        super().__init__(("127.0.0.1", 0), _EchoHandler)


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(DEADLINE)
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                self.server.closedByPeer.set()
                return
            if data.endswith(b"quit"):
                self.request.sendall(data[:-4])
                return
            self.request.sendall(data)


@pytest.fixture
def echoBackend():
    backend = _EchoBackend()
    thread = threading.Thread(target=backend.serve_forever, daemon=True)
    thread.start()
    yield backend
    backend.shutdown()
    backend.server_close()
    thread.join(DEADLINE)


def _recvBytes(ws, size: int) -> bytes:
    data = b""
    while len(data) < size:
        message = ws.recv(10)
        assert isinstance(message, bytes)
        data += message
    return data


def test_bridgeToTcpBackend(startServer, echoBackend) -> None:
    port = echoBackend.server_address[1]
    server = startServer(*LOCAL, "--mode", "bridge", "--target", f"tcp:127.0.0.1:{port}")
    with connect(server.url("/"), max_size=None) as ws:
        ws.send(b"hello backend")
        assert _recvBytes(ws, 13) == b"hello backend"
        ws.send("text goes as UTF-8 ✓")
        assert _recvBytes(ws, len("text goes as UTF-8 ✓".encode())) == "text goes as UTF-8 ✓".encode()
        big = os.urandom(600_000)
        for offset in range(0, len(big), 60_000):
            ws.send(big[offset : offset + 60_000])
        assert _recvBytes(ws, len(big)) == big
    assert echoBackend.closedByPeer.wait(DEADLINE), "the backend connection was not closed"

    with connect(server.url("/")) as ws:
        ws.send(b"bye quit")
        assert _recvBytes(ws, 4) == b"bye "
        with pytest.raises(ConnectionClosed):
            ws.recv(10)
        assert ws.close_code == 1000
    server.waitFor(r"WebSocket closed: .* code=1000 reason='' clean=True by=peer sent=1000")

    # Frames sent with the upgrade request, before the backend connection
    # exists, are kept (bounded) and delivered once it does.
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        sock.sendall(upgradeRequest("/") + clientFrame(0x2, b"early bird"))
        data = b""
        payload = b""
        for _ in range(100):
            if len(payload) >= 10:
                break
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
            if b"\r\n\r\n" not in data:
                continue
            head, _, rest = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            payload = b"".join(p for _, _, _, p, _ in FrameParser(requireMask=False).feed(rest))
        assert payload == b"early bird"


def _sendUntilBlocked(sock: socket.socket, chunk: bytes, limit: int) -> int:
    """Send C{chunk} repeatedly until the peer stops taking data (1 s) or C{limit}."""
    sock.settimeout(1.0)
    total = 0
    while total < limit:
        try:
            sent = sock.send(chunk)
        except TimeoutError:
            return total
        total += sent
        if sent < len(chunk):
            chunk = chunk[sent:] + chunk[:sent]  # keep the frame stream aligned
    return total


def test_bridgeFlowControlBothWays(startServer) -> None:
    """
    Neither side can make the bridge buffer without bound: a backend that
    does not read stops the WebSocket from being read, and a browser that
    does not read stops the backend from being read.
    """
    limit = 64 << 20  # far more than all the socket buffers on the way
    backendListener = socket.socket()
    backendListener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    backendListener.bind(("127.0.0.1", 0))
    backendListener.listen(1)
    backendListener.settimeout(DEADLINE)
    port = backendListener.getsockname()[1]
    server = startServer(*LOCAL, "--mode", "bridge", "--target", f"tcp:127.0.0.1:{port}")
    with closing(backendListener):
        client = _rawConnect(server.port, "/", recvBuffer=4096)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        backend, _ = backendListener.accept()
        with closing(client), closing(backend):
            backend.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            # WebSocket to a backend that does not read.
            frame = clientFrame(0x2, b"w" * 65536)
            sentByClient = _sendUntilBlocked(client, frame, limit)
            assert sentByClient < limit / 2, sentByClient
            # A backend that does not read... then reads: everything arrives.
            expected = (sentByClient // len(frame)) * 65536
            received = 0
            backend.settimeout(5)
            while received < expected:
                data = backend.recv(1 << 20)
                assert data, "the bridge closed the backend connection"
                received += len(data)
            # Backend to a WebSocket client that does not read.
            sentByBackend = _sendUntilBlocked(backend, b"b" * 65536, limit)
            assert sentByBackend < limit / 2, sentByBackend
            # The client reads: the backend's bytes come as binary messages.
            parser = FrameParser(requireMask=False)
            got = 0
            client.settimeout(5)
            while got < sentByBackend:
                data = client.recv(1 << 20)
                assert data, "the bridge closed the WebSocket"
                for opcode, _fin, _rsv, payload, _part in parser.feed(data):
                    assert opcode in (0x2, 0x0), opcode
                    assert payload.count(b"b") == len(payload)
                    got += len(payload)
            assert got == sentByBackend


def test_bridgeBackendUnreachable(startServer) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closedPort = probe.getsockname()[1]
    server = startServer(*LOCAL, "--mode", "bridge", "--target", f"tcp:127.0.0.1:{closedPort}")
    with connect(server.url("/")) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(10)
        assert ws.close_code == 1014
        assert ws.close_reason == "backend unreachable"
    server.waitFor(r"bridge: backend tcp:127\.0\.0\.1:\d+ unreachable")


# -- a custom protocol class -------------------------------------------------------

CUSTOM_MODULE = '''
from twisted_ws import WebSocketProtocol

class Shout(WebSocketProtocol):
    def connectionMade(self):
        self.sendMessage("welcome to " + self.request.path)

    def messageReceived(self, message):
        if message == "bye":
            self.close(4000, "see you")
        else:
            self.sendMessage(message.upper())
'''


def test_customProtocolClass(startServer, tmp_path: Path) -> None:
    appDir = tmp_path / "app"
    appDir.mkdir()
    (appDir / "shoutapp.py").write_text(CUSTOM_MODULE)
    server = startServer(
        *LOCAL, "--protocol", "shoutapp.Shout", "--subprotocol", "shout.v1",
        extraEnv={"PYTHONPATH": str(appDir)},
    )
    with connect(server.url("/hall"), subprotocols=["other", "shout.v1"]) as ws:
        assert ws.subprotocol == "shout.v1"
        assert ws.recv(5) == "welcome to /hall"
        ws.send("quiet please")
        assert ws.recv(5) == "QUIET PLEASE"
        ws.send("bye")
        with pytest.raises(ConnectionClosed):
            ws.recv(5)
        assert ws.close_code == 4000
    server.waitFor(r"WebSocket closed: .* /hall code=4000 reason='see you' clean=True by=server")


LOUD_MODULE = """
from twisted_ws import WebSocketProtocol

class Loud(WebSocketProtocol):
    def messageReceived(self, message):
        self.sendMessage(message.upper())
"""


def _withoutCwdOnPath(twistd: Twistd) -> Twistd:
    """twistd as its script runs: the current directory is not on sys.path (-P)."""
    return Twistd([twistd.command[0], "-P", *twistd.command[1:]], twistd.env)


def test_customProtocolFromTheCurrentDirectory(twistd: Twistd, tmp_path: Path) -> None:
    """cd myapp; twistd -n websocket --protocol loud.Loud: found as python -m would."""
    (tmp_path / "loud.py").write_text(LOUD_MODULE)
    server = Server(_withoutCwdOnPath(twistd), [*LOCAL, "--protocol", "loud.Loud"], tmp_path)
    try:
        with connect(server.url("/")) as ws:
            ws.send("quiet")
            assert ws.recv(5) == "QUIET"
    finally:
        server.stop()


def test_customProtocolNotFoundSaysWhereItLooked(twistd: Twistd, tmp_path: Path) -> None:
    result = _withoutCwdOnPath(twistd).run(
        ["-n", "--pidfile=", "websocket", "--protocol", "nosuchmodule_xyz.Loud"], tmp_path, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    line = output.strip().splitlines()[-1]
    assert "no module named 'nosuchmodule_xyz'" in line, output
    searched = line.split("(searched: ", 1)[1].rstrip(")").split(", ")
    assert str(tmp_path.resolve()) == searched[0], line
    assert any(p.endswith("site-packages") for p in searched), line
    assert "Traceback" not in output


# -- graceful stop ----------------------------------------------------------------


def test_sigtermClosesEveryoneWith1001(startServer) -> None:
    server = startServer(*LOCAL, "--mode", "broadcast", "--stop-timeout", "2")
    # A client that never answers the Close must not hold the stop up.
    silent = _rawConnect(server.port, "/room0")
    with closing(silent), ExitStack() as stack:
        clients = [stack.enter_context(connect(server.url(f"/room{i % 2}"))) for i in range(4)]
        server.waitFor(r"WebSocket open: ", nth=4)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        for ws in clients:
            with pytest.raises(ConnectionClosed):
                ws.recv(DEADLINE)
            assert ws.close_code == 1001
            assert ws.close_reason == "server shutting down"
        assert _readUntilClose(silent, time.monotonic() + DEADLINE) == 1001
        # twistd re-raises the signal once shut down, so the status says SIGTERM.
        assert server.proc.wait(DEADLINE) in (0, -signal.SIGTERM)
        elapsed = time.monotonic() - started
        assert elapsed < 2 + 5, elapsed
    server.waitFor(r"stopping: closing 5 WebSocket connections with 1001")
    server.waitFor(r"aborting 1 WebSocket connection that did not finish closing")
    server.waitFor(r"Server Shut Down")


def test_staticWithTheWebSocketAtTheRoot(startServer, tmp_path: Path) -> None:
    """--path /: every path is both a file URL and a WebSocket URL."""
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "css" / "a.css").write_text("body {}")
    server = startServer(*LOCAL, "--static", str(site), "--path", "/", "--status", "/stats")
    base = f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(base + "/css/a.css", timeout=DEADLINE) as r:
        assert r.read() == b"body {}"
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(base + "/css/missing.css", timeout=DEADLINE)
    with connect(server.url("/css/a.css")) as ws:
        ws.send("both")
        assert ws.recv(5) == "both"
    with urllib.request.urlopen(base + "/stats", timeout=DEADLINE) as r:
        assert json.loads(r.read())["connectionsTotal"] == 1


# -- static files, the WebSocket and the status page on one port ---------------------


def test_staticWebSocketStatusAndTheConnectionLimit(startServer, tmp_path: Path) -> None:
    (tmp_path / "site" / "sub").mkdir(parents=True)
    (tmp_path / "site" / "index.html").write_text("<h1>index</h1>")
    (tmp_path / "site" / "sub" / "hello.txt").write_text("hello from disk")
    server = startServer(*LOCAL, "--static", str(tmp_path / "site"), "--max-connections", "3")
    base = f"http://127.0.0.1:{server.port}"

    def get(path: str) -> tuple[int, Any, bytes]:
        try:
            with urllib.request.urlopen(base + path, timeout=DEADLINE) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            with closing(e):
                return e.code, e.headers, e.read()

    assert server.listening[0][2] == "/ws"
    status, headers, body = get("/sub/hello.txt")
    assert (status, body) == (200, b"hello from disk")
    assert "Server" not in headers  # no TwistedWeb/<version>
    assert b"<h1>index</h1>" in get("/")[2]
    assert get("/missing.txt")[0] == 404
    assert get("/ws")[0] == 426

    with connect(f"ws://127.0.0.1:{server.port}/ws/deeper", open_timeout=DEADLINE) as ws:
        ws.send("through the site")
        assert ws.recv(DEADLINE) == "through the site"

    status, headers, body = get("/_status")
    assert status == 200
    assert headers.get_all("Content-Type") == ["application/json"]
    report = json.loads(body)
    assert report["mode"] == "echo"
    assert report["connectionsTotal"] == 1
    assert report["connectionsOpen"] == 0
    assert report["messagesIn"] == 1
    assert report["messagesOut"] == 1
    assert report["bytesIn"] > len("through the site")
    assert report["bytesOut"] > len("through the site")
    assert report["uptime"] >= 0

    url = f"ws://127.0.0.1:{server.port}/ws"
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(connect(url, open_timeout=DEADLINE))
        with pytest.raises(Exception, match="503"):
            connect(url, open_timeout=DEADLINE)
    server.waitFor(r"WebSocket rejected: .* /ws 503 too many connections")
