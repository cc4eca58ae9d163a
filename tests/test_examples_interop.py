"""
The example programs as a user runs them: real subprocesses on 127.0.0.1,
each bounded in time.  A server that cannot listen exits non-zero with one
line; the command lines parse the way their usage lines say; web_site.py
serves its page, status and echo on one port; two chat_rooms.py processes
share rooms through one redis-server.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.sync.client import connect

from twisted_ws.core.closecodes import parseClosePayload
from twisted_ws.core.frames import OP_BINARY, OP_CLOSE, RSV1
from wshelpers import RedisServer, clientFrame, deflateBomb, freePort, upgradeRequest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 30  # seconds for any one program; they need about one


def runExample(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture
def busyPort():
    """A port on 127.0.0.1 that this test holds, so nobody else can listen on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


@contextmanager
def echoServerProcess(*args: str):
    """examples/echo_server.py on an OS-chosen port: (process, host, port)."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "echo_server.py"), "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        line = ""
        while "ws://" not in line:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
            if not ready or proc.poll() is not None:
                raise AssertionError(f"echo server did not start: {line!r}")
            line = proc.stdout.readline()
        host, port = line.split("ws://", 1)[1].split()[0].rstrip("/").rsplit(":", 1)
        yield proc, host, int(port)
    finally:
        proc.kill()
        proc.wait(TIMEOUT)
        proc.stdout.close()


@pytest.fixture
def echoServer():
    """examples/echo_server.py on an OS-chosen port; yields its ws:// URL."""
    with echoServerProcess() as (_, host, port):
        yield f"ws://{host}:{port}/"


@pytest.mark.parametrize("script", ["echo_server.py", "web_site.py", "shared_port.py"])
def test_listenFailureExits(script, busyPort):
    """
    A server whose port is taken says so in one line and exits 1 (it used
    to print the line and keep running, as reactor.stop() was called before
    the reactor ran).
    """
    result = runExample(script, "--port", str(busyPort))
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "listen" in lines[0] and str(busyPort) in lines[0], lines
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_autobahnClientHelp():
    """--help prints the usage (it raised TypeError: main() was called with no arguments)."""
    result = runExample("autobahn_client.py", "--help")
    assert (result.returncode, result.stderr) == (0, "")
    assert "url" in result.stdout and "agent" in result.stdout


def test_autobahnClientMissingArgument():
    """A missing AGENT is a usage error in one line plus usage, not a TypeError."""
    result = runExample("autobahn_client.py", "ws://127.0.0.1:9/")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "the following arguments are required: agent" in result.stderr


@pytest.mark.parametrize(
    "arrange",
    [
        lambda url: [url, "--timeout", "20", "hi", "there"],
        lambda url: ["--timeout", "20", url, "hi", "there"],
        lambda url: [url, "hi", "--timeout", "20", "there"],
    ],
    ids=["after-url", "before-url", "between-messages"],
)
def test_echoClientOptionsAnywhere(echoServer, arrange):
    """Options may come before, between or after the messages (they had to come last)."""
    result = runExample("echo_client.py", *arrange(echoServer))
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\nthere\n", "")


def test_exampleWebSite():
    """examples/web_site.py: one port, the page, the JSON status, 426 and the echo."""
    example = EXAMPLES / "web_site.py"
    process = subprocess.Popen(
        [sys.executable, str(example), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
        assert ready, "the example did not start"
        line = process.stdout.readline()
        base = line.split("listening on ")[1].split()[0]
        wsURL = line.split()[-1]
        assert wsURL == base.replace("http://", "ws://") + "ws", line
        with urllib.request.urlopen(base, timeout=TIMEOUT) as page:
            assert b"new WebSocket" in page.read()
        try:
            urllib.request.urlopen(base + "ws", timeout=TIMEOUT)
        except urllib.error.HTTPError as e:
            assert e.code == 426
        else:
            raise AssertionError("a plain GET to /ws should answer 426")
        with connect(wsURL) as ws:
            ws.send("example")
            assert ws.recv(timeout=TIMEOUT) == "example"
            with urllib.request.urlopen(base + "api/status", timeout=TIMEOUT) as status:
                assert json.loads(status.read())["connections"] == 1
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)
        process.stdout.close()


# -- examples/chat_rooms.py: two processes, one Redis -------------------------------------


def startChat(redisPort: int) -> tuple[subprocess.Popen, str]:
    script = EXAMPLES / "chat_rooms.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--redis", f"redis://127.0.0.1:{redisPort}/0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    line = ""
    while "ws://" not in line:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"chat_rooms.py did not start: {line!r}")
        line = proc.stdout.readline()
    return proc, "ws://" + line.split("ws://", 1)[1].split("/<room>")[0]


def test_chatRoomsExampleSharesRoomsBetweenTwoProcesses() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("txredisapi")
    redis = RedisServer(freePort())
    redis.start()
    procs = []
    try:
        for _ in range(2):
            procs.append(startChat(redis.port))
        (_, url1), (_, url2) = procs
        with connect(url1 + "/tea") as alice, connect(url2 + "/tea") as bob, connect(
            url2 + "/coffee"
        ) as carol:
            for ws, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
                assert "what is your name" in ws.recv(10)
                ws.send(name)
            assert alice.recv(10) == "* alice joined"
            assert bob.recv(10) == "* bob joined"
            assert carol.recv(10) == "* carol joined"
            # Both chat processes subscribe to the room's channel.
            deadline = time.monotonic() + 10
            while redis.subscribers("chat_rooms:tea") < 2:
                assert time.monotonic() < deadline, "the room was not subscribed in both processes"
                time.sleep(0.02)
            alice.send("hello from process 1")
            bob.send("hello from process 2")
            expected = ["alice: hello from process 1", "bob: hello from process 2"]
            for ws in (alice, bob):
                lines: list[str] = []
                while not all(x in lines for x in expected):  # bounded by recv's 10 s
                    lines.append(ws.recv(10))
                    assert len(lines) < 50
                while True:  # then until a quiet 0.3 s: a duplicate would show here
                    try:
                        lines.append(ws.recv(0.3))
                    except TimeoutError:
                        break
                    assert len(lines) < 50
                # "* bob joined" may reach alice or not, as bob joined while
                # her process was subscribing: only the chat lines count.
                assert sorted(x for x in lines if not x.startswith("* ")) == expected, lines
            with pytest.raises(TimeoutError):
                carol.recv(0.3)  # another room: nothing
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait(10)
            proc.stdout.close()
        redis.stop()


# -- echo_server.py and permessage-deflate -------------------------------------------


def _memory(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _readExactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_bombAgainstEchoServerProcess():
    """A 1 MiB frame inflating to 1 GiB: 1009, and the server's peak RSS stays small."""
    data = deflateBomb()
    with echoServerProcess("--max-message-size", str(1 << 20)) as (proc, host, port):
        with socket.create_connection((host, port), timeout=20) as sock:
            sock.sendall(upgradeRequest(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                assert chunk, head
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            assert b" 101 " in head.split(b"\r\n")[0]
            assert b"sec-websocket-extensions: permessage-deflate" in head.lower()
            assert rest == b""
            before = _memory(proc.pid, "VmRSS")
            sock.sendall(clientFrame(OP_BINARY, data, rsv=RSV1))
            header = _readExactly(sock, 2)
            assert header[0] == 0x80 | OP_CLOSE
            payload = _readExactly(sock, header[1] & 0x7F)
            code, reason = parseClosePayload(payload)
            peak = _memory(proc.pid, "VmHWM")
    assert code == 1009, reason
    assert peak - before < 32 << 20, (before, peak)


@pytest.mark.parametrize(
    "option, expected",
    [
        ((), "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
        (("--no-deflate",), None),
    ],
)
def test_echoServerDeflateOption(option, expected):
    with echoServerProcess(*option) as (_, host, port):
        with connect(f"ws://{host}:{port}/", open_timeout=TIMEOUT) as ws:
            header = ws.response.headers.get("Sec-WebSocket-Extensions")
            ws.send("hello " * 100)
            assert ws.recv(TIMEOUT) == "hello " * 100
    assert header == expected
