"""
The C{twistd websocket} service, in two tiers.

Interop (marked C{interop}): C{twistd -n websocket ...} as a real
subprocess, driven by real clients: echo (TCP, TLS, UNIX), broadcast rooms,
a client that never reads, the TCP bridge, a custom protocol class, static
files and the status page on the same port (fetched with treq), SIGTERM
closing everyone with 1001, the daemon, the help text and clear errors for
bad options.  Each server listens on 127.0.0.1 on a port the OS picks and
logs "listening on ws://127.0.0.1:PORT/..."; the tests wait for that line.

Logic: the service and its factory in process, over memory transports
(iosim, StringTransport) and a Clock: the counting through the connection
observer, the log lines, the status page, the connection limit and the
graceful stop with its timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.test import iosim
from twisted.trial.unittest import TestCase
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect, unix_connect

import twisted_ws
from twisted_ws import WebSocketProtocol
from twisted_ws.core.frames import FrameParser
from twisted_ws.twistd import EchoProtocol, Options, makeService
from wshelpers import clientFrame, makeCertificate, serverFrames, splitResponse, upgradeRequest

DEADLINE = 20.0  # seconds for a server to start, or a process to exit

#: twistd as a subprocess, real sockets: the interop tier.
interop = pytest.mark.interop

# -- running twistd -------------------------------------------------------


class Twistd:
    """How to run twistd so that it sees the websocket plugin."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command = command
        self.env = env

    def run(self, args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command + args,
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _findTwistd(tmpDir: Path) -> Twistd:
    """
    The current interpreter's twistd, when it lists the plugin (a normal
    install, as in CI).  With an editable install (the dev venv) Twisted
    cannot see C{twisted/plugins} of the checkout, so the checkout's plugin
    module is copied into a throwaway plugin directory put on PYTHONPATH:
    the package itself is still the one the editable install points at,
    and no venv or download is needed.
    """
    command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONSAFEPATH", None)
    twistd = Twistd(command, env)
    if "websocket" in twistd.run(["--help"], tmpDir).stdout:
        return twistd
    plugin = Path(twisted_ws.__file__).resolve().parent.parent / "twisted" / "plugins" / "twisted_ws_plugin.py"
    if not plugin.exists():
        pytest.fail(f"twistd does not list the websocket plugin and {plugin} does not exist")
    pluginDir = tmpDir / "plugin-path" / "twisted" / "plugins"
    pluginDir.mkdir(parents=True)
    shutil.copy(plugin, pluginDir)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(pluginDir.parent.parent), env.get("PYTHONPATH")) if p
    )
    twistd = Twistd(command, env)
    if "websocket" not in twistd.run(["--help"], tmpDir).stdout:
        pytest.fail("twistd does not list the websocket plugin even with the checkout's plugin module")
    return twistd


@pytest.fixture(scope="session")
def twistd(tmp_path_factory: pytest.TempPathFactory) -> Twistd:
    return _findTwistd(tmp_path_factory.mktemp("twistd"))


_LISTENING = re.compile(r"listening on (wss?|ws\+unix)://(\S+?)(/\S*)?(?: \(|$)")


class Server:
    """One C{twistd -n websocket ...} process and its log."""

    def __init__(self, twistd: Twistd, args: list[str], cwd: Path, extraEnv: dict | None = None) -> None:
        env = dict(twistd.env)
        for key, value in (extraEnv or {}).items():
            env[key] = os.pathsep.join(p for p in (value, env.get(key)) if p)
        self.args = args
        self.proc = subprocess.Popen(
            twistd.command + ["-n", "--pidfile=", "--logfile=-", "websocket", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        threading.Thread(target=self._read, daemon=True).start()
        self.listening: list[tuple[str, str, str]] = []
        try:
            count = sum(1 for a in args if a in ("--listen", "-l")) or 1
            for n in range(count):
                match = self.waitFor(_LISTENING, nth=n)
                self.listening.append((match.group(1), match.group(2), match.group(3) or "/"))
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def waitFor(self, pattern: re.Pattern | str, timeout: float = DEADLINE, nth: int = 0) -> re.Match:
        """The C{nth} log line matching C{pattern}, waiting up to C{timeout}."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        found: list[re.Match] = []

        def ready() -> bool:
            found.clear()
            found.extend(m for m in map(regex.search, self.lines) if m)
            return len(found) > nth or self._eof

        with self._cond:
            self._cond.wait_for(ready, timeout)
        if len(found) > nth:
            return found[nth]
        raise AssertionError(
            f"no log line matching {regex.pattern!r} within {timeout}s "
            f"(exit code {self.proc.poll()}):\n" + "\n".join(self.lines[-40:])
        )

    def hasLine(self, pattern: str) -> bool:
        with self._cond:
            return any(re.search(pattern, line) for line in self.lines)

    @property
    def port(self) -> int:
        scheme, where, _ = self.listening[0]
        return int(where.rsplit(":", 1)[1])

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(DEADLINE)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


LOCAL = ["--listen", "tcp:0:interface=127.0.0.1"]


@pytest.fixture
def startServer(twistd: Twistd, tmp_path: Path):
    """Start servers for one test; all are stopped after it."""
    servers: list[Server] = []

    def start(*args: str, extraEnv: dict | None = None) -> Server:
        server = Server(twistd, list(args), tmp_path, extraEnv)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# -- options and defaults, in process -----------------------------------------


def test_defaultIsEchoOnPort8080() -> None:
    """With no option: echo on tcp:8080 (checked without binding 8080)."""
    options = Options()
    options.parseOptions([])
    assert options["listen"] == ["tcp:8080"]
    assert options["mode"] == "echo"
    svc = makeService(options, clock=Clock())
    listeners = list(svc)
    assert len(listeners) == 1
    endpoint = listeners[0].endpoint._endpoint
    assert endpoint._port == 8080
    assert endpoint._interface == ""
    factory = listeners[0].factory
    assert factory.protocol is EchoProtocol  # the class itself: counting is an observer
    assert factory.observer is svc
    assert not svc.running


def test_optionsValidatedInProcess() -> None:
    options = Options()
    options.parseOptions(["--mode", "broadcast", "--ping-interval", "off", "--max-queue-messages", "5"])
    assert options["options"].pingInterval is None
    assert options["max-queue-messages"] == 5
    with pytest.raises(Exception, match="max-queue-bytes"):
        Options().parseOptions(["--mode", "broadcast", "--max-queue-bytes", "10"])


# -- help and bad options -------------------------------------------------------

EVERY_OPTION = [
    "--listen", "--mode", "--target", "--protocol", "--path", "--static", "--status",
    "--subprotocol", "--allow-origin", "--no-deflate", "--max-queue-bytes",
    "--max-queue-messages", "--max-connections", "--stop-timeout", "--max-message-size",
    "--max-fragments", "--fragment-size", "--open-timeout", "--close-timeout",
    "--ping-interval", "--ping-timeout", "--max-request-line", "--max-header-bytes",
    "--max-header-count",
]


@interop
def test_helpListsEveryOption(twistd: Twistd, tmp_path: Path) -> None:
    result = twistd.run(["websocket", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"--[a-z][a-z-]+", result.stdout))
    declared = {f"--{name}" for name in Options().synonyms if len(name) > 1}
    assert set(EVERY_OPTION) <= listed, set(EVERY_OPTION) - listed
    assert declared - {"--help", "--version"} <= listed
    for mode in ("echo", "broadcast", "bridge", "custom"):
        assert mode in result.stdout


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


@interop
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


# -- static files, the WebSocket and the status page on one port (treq) -----------


@interop
class StaticAndStatusTests(TestCase):
    timeout = 60

    @pytest.fixture(autouse=True)
    def _twistd(self, twistd: Twistd) -> None:
        self.twistd = twistd

    def setUp(self) -> None:
        self.tmp = Path(self.mktemp()).resolve()
        (self.tmp / "site" / "sub").mkdir(parents=True)
        (self.tmp / "site" / "index.html").write_text("<h1>index</h1>")
        (self.tmp / "site" / "sub" / "hello.txt").write_text("hello from disk")
        self.server = Server(
            self.twistd,
            [*LOCAL, "--static", str(self.tmp / "site"), "--max-connections", "3"],
            self.tmp,
        )
        self.addCleanup(self.server.stop)
        self.base = f"http://127.0.0.1:{self.server.port}"

    @inlineCallbacks
    def test_staticWebSocketAndStatus(self):
        import treq
        from twisted.internet import reactor
        from twisted.web.client import HTTPConnectionPool

        pool = HTTPConnectionPool(reactor)
        self.addCleanup(pool.closeCachedConnections)

        def get(path):
            return treq.get(self.base + path, pool=pool)

        self.assertEqual(self.server.listening[0][2], "/ws")
        response = yield get("/sub/hello.txt")
        self.assertEqual(response.code, 200)
        self.assertEqual((yield response.text()), "hello from disk")
        self.assertFalse(response.headers.hasHeader("Server"))  # no TwistedWeb/<version>
        response = yield get("/")
        self.assertIn("<h1>index</h1>", (yield response.text()))
        response = yield get("/missing.txt")
        self.assertEqual(response.code, 404)
        yield response.content()
        response = yield get("/ws")
        self.assertEqual(response.code, 426)
        yield response.content()

        url = f"ws://127.0.0.1:{self.server.port}/ws/deeper"

        def client():
            with connect(url) as ws:
                ws.send("through the site")
                return ws.recv(5)

        self.assertEqual((yield deferToThread(client)), "through the site")

        response = yield get("/_status")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"), ["application/json"])
        status = json.loads((yield response.text()))
        self.assertEqual(status["mode"], "echo")
        self.assertEqual(status["connectionsTotal"], 1)
        self.assertEqual(status["connectionsOpen"], 0)
        self.assertEqual(status["messagesIn"], 1)
        self.assertEqual(status["messagesOut"], 1)
        self.assertGreater(status["bytesIn"], len("through the site"))
        self.assertGreater(status["bytesOut"], len("through the site"))
        self.assertGreaterEqual(status["uptime"], 0)

    @inlineCallbacks
    def test_maxConnections(self):
        url = f"ws://127.0.0.1:{self.server.port}/ws"

        def clients():
            with ExitStack() as stack:
                for _ in range(3):
                    stack.enter_context(connect(url))
                with pytest.raises(Exception, match="503"):
                    connect(url, open_timeout=5)

        yield deferToThread(clients)
        self.server.waitFor(r"WebSocket rejected: .* /ws 503 too many connections")


# -- in process: no server version, readable logs ----------------------------------


def _serve(factory, request: bytes):
    """Feed one request to a fresh connection of C{factory}; return it and its transport."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    peer = IPv4Address("TCP", "10.0.0.7", 50000)
    if hasattr(factory, "timeOut"):
        factory.timeOut = None  # a Site's idle timer would run on the real reactor
    protocol = factory.buildProtocol(peer)
    transport = StringTransport(peerAddress=peer, hostAddress=IPv4Address("TCP", "10.0.0.1", 80))
    transport.protocol = protocol  # where the WebSocket resource finds the channel
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    return protocol, transport


def _head(transport) -> bytes:
    return transport.value().partition(b"\r\n\r\n")[0]


def test_serviceSiteDisclosesNoServerVersion(tmp_path: Path) -> None:
    """
    Files, the status page, the 426 and the 101 of --static: no Server
    header at all.  (A file's body comes from a producer the real reactor
    drives: HEAD gets its head; the directory listing is a GET.)
    """
    from twisted.internet.task import Clock

    (tmp_path / "hello.txt").write_text("hello")
    options = Options()
    options.parseOptions(["--static", str(tmp_path), "--listen", "tcp:0"])
    site = list(makeService(options, clock=Clock()))[0].factory
    heads = {}
    for name, request in [
        ("file", b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("listing", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("status", b"GET /_status HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("426", b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("101", upgradeRequest("/ws")),
    ]:
        _, transport = _serve(site, request)
        heads[name] = _head(transport)
    assert heads["file"].startswith(b"HTTP/1.1 200 "), heads
    assert heads["listing"].startswith(b"HTTP/1.1 200 "), heads
    assert heads["status"].startswith(b"HTTP/1.1 200 "), heads
    assert heads["426"].startswith(b"HTTP/1.1 426 "), heads
    assert heads["101"].startswith(b"HTTP/1.1 101 "), heads
    for name, head in heads.items():
        assert b"\r\nserver:" not in head.lower(), (name, head)
        assert b"TwistedWeb" not in head, (name, head)


def test_webSocketResourceInAUserSiteDisclosesNoServerVersion() -> None:
    """A WebSocketResource in the user's own Site: its 101 and 426 name no version."""
    from twisted.internet.task import Clock
    from twisted.web.server import Site

    from twisted_ws import WebSocketServerFactory
    from twisted_ws.server.resource import WebSocketResource

    site = Site(WebSocketResource(WebSocketServerFactory(EchoProtocol, clock=Clock())))
    _, accepted = _serve(site, upgradeRequest("/"))
    _, refused = _serve(site, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _head(accepted).startswith(b"HTTP/1.1 101 "), accepted.value()
    assert _head(refused).startswith(b"HTTP/1.1 426 "), refused.value()
    for transport in (accepted, refused):
        assert b"TwistedWeb" not in _head(transport), transport.value()


def _captureLog(test):
    """Run C{test()}; return the formatted log lines of twisted_ws.twistd."""
    from twisted.logger import formatEvent, globalLogPublisher

    events: list[dict] = []

    def observer(event: dict) -> None:
        if event.get("log_namespace") == "twisted_ws.twistd":
            events.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        test()
    finally:
        globalLogPublisher.removeObserver(observer)
    return [formatEvent(e) for e in events]


def test_refusedMalformedHandshakeLogsNoNone() -> None:
    """A request refused before it is a HandshakeRequest logs '-' for its path."""
    from twisted.internet.task import Clock

    from twisted_ws.twistd import ServiceFactory, WebSocketService

    clock = Clock()
    svc = WebSocketService(clock=clock)
    factory = ServiceFactory(EchoProtocol, svc, clock=clock)
    lines = _captureLog(lambda: _serve(factory, upgradeRequest("/chat").replace(b"Version: 13", b"Version: 8")))
    rejected = [line for line in lines if line.startswith("WebSocket rejected")]
    assert rejected == [rejected[0]] and rejected[0].startswith("WebSocket rejected: 10.0.0.7:50000 - 426 "), lines
    assert "None" not in rejected[0]


def test_shutdownLogCountsInTheSingular() -> None:
    """One connection left: 'closing 1 WebSocket connection', then 'aborting 1 WebSocket connection'."""
    from twisted.internet.task import Clock

    from twisted_ws.twistd import ServiceFactory, WebSocketService

    clock = Clock()
    svc = WebSocketService(stopTimeout=2, clock=clock)
    factory = ServiceFactory(EchoProtocol, svc, clock=clock)
    svc.startService()
    _serve(factory, upgradeRequest("/room"))
    assert len(svc.connections) == 1

    def stop():
        svc.stopService()
        clock.advance(2)  # the peer never answers the Close: aborted

    lines = _captureLog(stop)
    assert "stopping: closing 1 WebSocket connection with 1001" in lines, lines
    assert "aborting 1 WebSocket connection that did not finish closing" in lines, lines


# -- logic tier: the service's factory over memory transports (iosim, Clock) -------


class _Peer(Protocol):
    """A WebSocket client played by hand: it sends frames and keeps what it gets."""

    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True

    def send(self, opcode: int, payload: bytes) -> bytes:
        frame = clientFrame(opcode, payload)
        self.transport.write(frame)
        return frame

    def closeWith(self, code: int, reason: str = "") -> bytes:
        return self.send(0x8, code.to_bytes(2, "big") + reason.encode())

    @property
    def head(self) -> bytes:
        return splitResponse(self.data)[0]

    @property
    def frameBytes(self) -> int:
        """The bytes of the frames the server sent, after its 101."""
        return len(splitResponse(self.data)[1])

    def frames(self) -> list[tuple[int, bytes]]:
        return [(opcode, payload) for opcode, _fin, payload in serverFrames(splitResponse(self.data)[1])]

    def closeFrames(self) -> list[tuple[int, str]]:
        return [
            (int.from_bytes(p[:2], "big"), p[2:].decode()) for opcode, p in self.frames() if opcode == 0x8
        ]


def _logicService(protocol=EchoProtocol, stopTimeout: float = 5.0, **kwargs):
    """A service and its factory on a Clock: nothing touches the reactor."""
    from twisted_ws.twistd import ServiceFactory, WebSocketService

    clock = Clock()
    svc = WebSocketService(stopTimeout=stopTimeout, clock=clock)
    factory = ServiceFactory(protocol, svc, clock=clock, **kwargs)
    return svc, factory, clock


def _open(factory, clock, path: str = "/", port: int = 50000, extra: str = ""):
    """Connect a L{_Peer} to C{factory} over iosim and send an upgrade request."""
    address = IPv4Address("TCP", "10.0.0.7", port)
    server = factory.buildProtocol(address)
    peer = _Peer()
    pump = iosim.connect(
        server,
        iosim.FakeTransport(server, True, IPv4Address("TCP", "10.0.0.1", 80), address),
        peer,
        iosim.FakeTransport(peer, False),
        greet=False,
        clock=clock,
    )
    peer.transport.write(upgradeRequest(path, extra))
    pump.flush()
    return peer, pump


def test_theServiceCountsThroughTheObserver() -> None:
    """
    Opens, closes, messages and bytes reach the counters through the
    observer hook and protocol.traffic: the connection is an instance of
    the app's class itself, not of a subclass made for counting.
    """
    svc, factory, clock = _logicService()
    a, pumpA = _open(factory, clock, "/a", 50000)
    b, pumpB = _open(factory, clock, "/b", 50001)
    assert factory.protocol is EchoProtocol
    protocols = list(svc.connections)
    assert len(protocols) == 2
    for protocol in protocols:
        assert type(protocol) is EchoProtocol
        assert protocol.observer is svc
    assert EchoProtocol.__subclasses__() == []

    sentA = a.send(0x1, b"hello") + a.send(0x2, b"\x00\x01\x02")
    pumpA.flush()
    sentB = b.send(0x1, "héllo".encode())
    pumpB.flush()
    assert [p for _, p in a.frames()] == [b"hello", b"\x00\x01\x02"]
    stats = svc.stats.snapshot()
    assert (stats["connectionsOpen"], stats["connectionsTotal"]) == (2, 2)
    assert (stats["messagesIn"], stats["messagesOut"]) == (3, 3)
    # Open connections are summed when asked: frames on the wire, each way.
    assert stats["bytesIn"] == len(sentA) + len(sentB)
    assert stats["bytesOut"] == a.frameBytes + b.frameBytes

    sentA += a.closeWith(1000, "bye")
    pumpA.flush()
    assert a.lost
    assert a.closeFrames() == [(1000, "")]  # the code echoed
    assert list(svc.connections) == [protocols[1]]
    # A closed connection's traffic stays in the totals.
    stats = svc.stats.snapshot()
    assert (stats["connectionsOpen"], stats["connectionsTotal"]) == (1, 2)
    assert (stats["messagesIn"], stats["messagesOut"]) == (3, 3)
    assert stats["bytesIn"] == len(sentA) + len(sentB)
    assert stats["bytesOut"] == a.frameBytes + b.frameBytes
    assert svc.stats.closedByCode == {1000: 1}


CHAT_SUBPROTOCOL = "chat.v1"


class _Shout(WebSocketProtocol):
    """A user's protocol class, as --protocol loads it."""

    def messageReceived(self, message):
        self.sendMessage(message.upper())


def test_theUsersProtocolClassIsUsedAsItIs() -> None:
    svc, factory, clock = _logicService(_Shout, subprotocols=[CHAT_SUBPROTOCOL])
    peer, pump = _open(factory, clock, "/hall", extra=f"Sec-WebSocket-Protocol: {CHAT_SUBPROTOCOL}\r\n")
    assert factory.protocol is _Shout
    [protocol] = svc.connections
    assert type(protocol) is _Shout
    assert _Shout.__subclasses__() == []
    peer.send(0x1, b"quiet")
    pump.flush()
    assert peer.frames() == [(0x1, b"QUIET")]
    assert svc.stats.snapshot()["messagesOut"] == 1


def test_openAndCloseAreLoggedWithPeerPathCodeAndReason() -> None:
    svc, factory, clock = _logicService(subprotocols=[CHAT_SUBPROTOCOL])

    def talk():
        peer, pump = _open(factory, clock, "/chat", extra=f"Sec-WebSocket-Protocol: {CHAT_SUBPROTOCOL}\r\n")
        peer.closeWith(4001, "bye now")
        pump.flush()
        assert peer.lost
        other, pump = _open(factory, clock, "/other", 50001)
        [protocol] = svc.connections
        protocol.close(1000, "done")
        pump.flush()
        other.closeWith(1000)
        pump.flush()
        assert other.lost

    lines = _captureLog(talk)
    assert lines == [
        f"WebSocket open: 10.0.0.7:50000 /chat (subprotocol {CHAT_SUBPROTOCOL})",
        "WebSocket closed: 10.0.0.7:50000 /chat code=4001 reason='bye now' clean=True by=peer sent=4001",
        "WebSocket open: 10.0.0.7:50001 /other",
        "WebSocket closed: 10.0.0.7:50001 /other code=1000 reason='' clean=True by=server sent=1000",
    ], lines


def test_maxConnectionsRefusesWith503() -> None:
    svc, factory, clock = _logicService(maxConnections=2)
    first, pump = _open(factory, clock, "/", 50000)
    _open(factory, clock, "/", 50001)
    lines = _captureLog(lambda: _open(factory, clock, "/full", 50002))
    assert len(svc.connections) == 2
    assert lines == ["WebSocket rejected: 10.0.0.7:50002 /full 503 too many connections, try again later"]
    assert svc.stats.rejected == 1
    assert svc.stats.rejectedByStatus == {503: 1}
    # One leaves: there is room again.
    first.closeWith(1000)
    pump.flush()
    peer, _ = _open(factory, clock, "/", 50003)
    assert peer.head.startswith(b"HTTP/1.1 101 "), peer.data
    assert svc.stats.snapshot()["connectionsTotal"] == 3


def test_stopClosesWith1001ThenAbortsStragglersOnTheClock() -> None:
    """
    stopService: every connection gets 1001; a peer that answers is gone at
    once, one that never does is aborted after --stop-timeout (on the
    Clock), and only then does the stop finish.  New upgrades get 503.
    """
    svc, factory, clock = _logicService(stopTimeout=3)
    svc.startService()
    polite, politePump = _open(factory, clock, "/room", 50000)
    silent, silentPump = _open(factory, clock, "/room", 50001)
    stopped = []

    def stop():
        svc.stopService().addCallback(stopped.append)
        politePump.flush()
        silentPump.flush()

    lines = _captureLog(stop)
    assert lines == ["stopping: closing 2 WebSocket connections with 1001"], lines
    for peer in (polite, silent):
        assert peer.closeFrames() == [(1001, "server shutting down")]
    polite.closeWith(1001)
    politePump.flush()
    assert polite.lost
    assert list(svc.connections) and not silent.lost and not stopped

    late, _ = _open(factory, clock, "/room", 50002)
    assert late.head.startswith(b"HTTP/1.1 503 "), late.data
    assert b"the server is shutting down" in late.data

    clock.advance(2.9)
    silentPump.flush()
    assert not silent.lost and not stopped
    lines = _captureLog(lambda: (clock.advance(0.1), silentPump.flush()))
    assert "aborting 1 WebSocket connection that did not finish closing" in lines, lines
    assert silent.lost
    assert stopped == [None]
    assert not svc.connections
    assert svc.stats.closedByCode == {1001: 1, 1006: 1}


def test_statusPageJson() -> None:
    """
    --status: the counters (open connections' traffic summed when the page
    is read), the uptime on the service's clock, the mode, and which worker
    and process answer.
    """
    clock = Clock()
    options = Options()
    options.parseOptions(["--status", "/_status", "--listen", "tcp:0", "--no-deflate"])
    svc = makeService(options, clock=clock)
    site = list(svc)[0].factory
    site.timeOut = None  # a Site's idle timer would run on the real reactor
    peer, pump = _open(site, clock, "/anywhere")
    assert peer.head.startswith(b"HTTP/1.1 101 "), peer.data
    sent = peer.send(0x1, b"counted while open")
    pump.flush()
    clock.advance(7)

    def status() -> dict:
        _, transport = _serve(site, b"GET /_status HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"\r\nContent-Type: application/json\r\n" in head, head
        return json.loads(body)

    body = status()
    assert body == {
        "connectionsOpen": 1,
        "connectionsTotal": 1,
        "rejected": 0,
        "messagesIn": 1,
        "messagesOut": 1,
        "bytesIn": len(sent),
        "bytesOut": peer.frameBytes,
        "uptime": 7.0,
        "mode": "echo",
        "worker": 0,
        "pid": os.getpid(),
    }
    svc.workerId = 3
    assert status()["worker"] == 3
