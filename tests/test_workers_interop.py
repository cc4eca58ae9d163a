"""
C{twistd -n websocket --workers 2} as a subprocess (the interop tier): a
tiny protocol that sends its pid on connect, real clients on 127.0.0.1,
SIGKILL and SIGTERM.  The pool's logic is in test_workers.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect, unix_connect

from wshelpers import DEADLINE, LOCAL, Server

PID_MODULE = """
import os
from twisted_ws import WebSocketProtocol

class Pid(WebSocketProtocol):
    def connectionMade(self):
        self.sendMessage(str(os.getpid()))

    def messageReceived(self, message):
        self.sendMessage(message)
"""

#: Connections opened per round, and rounds at most, to see every worker serve.
BATCH, ROUNDS = 10, 6


def startPool(twistd, tmp_path: Path, *args: str, listen: list[str] = LOCAL, workers: int = 2) -> Server:
    (tmp_path / "pidapp.py").write_text(PID_MODULE)
    server = Server(
        twistd, [*listen, "--protocol", "pidapp.Pid", "--workers", str(workers), *args], tmp_path
    )
    try:
        # Every worker has adopted every listener (one line each), so no
        # first connection waits in a backlog for a worker still starting.
        for n in range(1, workers + 1):
            for nth in range(listen.count("--listen")):
                server.waitFor(rf"worker {n}: listening on ", nth=nth)
    except BaseException:
        server.stop()
        raise
    return server


def workerPid(server: Server, n: int, nth: int = 0) -> int:
    return int(server.waitFor(rf"worker {n}: started \(pid (\d+)\)", nth=nth).group(1))


def openClients(stack: ExitStack, url: str, want: set[int], **kwargs: Any) -> list[tuple[Any, int]]:
    """Connect in rounds (bounded) until every pid in C{want} served one; all stay open."""
    clients: list[tuple[Any, int]] = []
    for _ in range(ROUNDS):
        for _ in range(BATCH):
            ws = stack.enter_context(connect(url, open_timeout=DEADLINE, **kwargs))
            clients.append((ws, int(ws.recv(DEADLINE))))
        if want <= {pid for _, pid in clients}:
            break
    return clients


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def waitGone(pids: list[int], timeout: float = DEADLINE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def assertClosedWith(ws: Any, code: int) -> None:
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(DEADLINE)
    assert ws.close_code == code, (ws.close_code, ws.close_reason)


def test_workersShareThePortAndADeadWorkerIsReplaced(twistd, tmp_path: Path) -> None:
    server = startPool(twistd, tmp_path, "--stop-timeout", "3")
    try:
        first, second = workerPid(server, 1), workerPid(server, 2)
        with ExitStack() as stack:
            clients = openClients(stack, server.url("/"), {first, second})
            assert {pid for _, pid in clients} == {first, second}, clients

            os.kill(first, signal.SIGKILL)
            server.waitFor(rf"worker 1: pid {first} was killed by SIGKILL")
            replacement = workerPid(server, 1, nth=1)
            assert replacement not in (first, second)
            # The other worker's clients did not notice.
            for ws, pid in clients:
                if pid == second:
                    ws.send("still here")
                    assert ws.recv(DEADLINE) == "still here"
                else:
                    with pytest.raises(ConnectionClosed):
                        ws.recv(DEADLINE)
            server.waitFor(r"worker 1: listening on ", nth=1)
            fresh = openClients(stack, server.url("/"), {replacement})
            assert replacement in {pid for _, pid in fresh}, fresh

            # SIGTERM to the parent: every open client of every worker gets 1001.
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            for ws, _pid in [c for c in clients if c[1] == second] + fresh:
                assertClosedWith(ws, 1001)
            assert server.proc.wait(DEADLINE) == 0
            assert time.monotonic() - started < 3 + 5
        assert waitGone([second, replacement])
        server.waitFor(r"received SIGTERM: stopping the workers")
        server.waitFor(rf"worker 2: pid {second} exited with status 0")
    finally:
        server.stop()


def test_reuseport(twistd, tmp_path: Path) -> None:
    server = startPool(twistd, tmp_path, "--reuseport")
    try:
        pids = {workerPid(server, 1), workerPid(server, 2)}
        with ExitStack() as stack:
            clients = openClients(stack, server.url("/"), pids)
            assert {pid for _, pid in clients} == pids
            server.proc.send_signal(signal.SIGTERM)
            for ws, _ in clients:
                assertClosedWith(ws, 1001)
        assert server.proc.wait(DEADLINE) == 0
    finally:
        server.stop()


@pytest.mark.parametrize("extra", [[], ["--reuseport"]], ids=["shared", "reuseport"])
def test_busyPortIsOneLineWithWorkers(twistd, tmp_path: Path, extra: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = twistd.run(
            ["-n", "--pidfile=", "websocket", "--listen", f"tcp:{port}:interface=127.0.0.1",
             "--workers", "2", *extra],
            tmp_path, timeout=60,
        )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert output == f"twisted_ws: cannot listen on tcp:{port}:interface=127.0.0.1: Address already in use"


def test_aKilledParentLeavesNoWorker(twistd, tmp_path: Path) -> None:
    server = startPool(twistd, tmp_path)
    pids = [workerPid(server, 1), workerPid(server, 2)]
    try:
        with connect(server.url("/"), open_timeout=DEADLINE) as ws:
            pid = int(ws.recv(DEADLINE))
            server.proc.kill()
            # The worker sees its lifeline close and stops as it would on SIGTERM.
            assertClosedWith(ws, 1001)
        assert pid in pids
        assert waitGone(pids), [p for p in pids if not gone(p)]
    finally:
        server.stop()
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)


def test_tlsUnixAndStatusAcrossWorkers(twistd, tmp_path: Path) -> None:
    import urllib.request

    from wshelpers import makeCertificate

    cert, key = makeCertificate(tmp_path)
    sock = tmp_path / "ws.sock"
    server = startPool(
        twistd, tmp_path, "--status", "/_status",
        listen=[*LOCAL, "--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
                "--listen", f"unix:{sock}:mode=600"],
    )
    try:
        schemes = {scheme: where for scheme, where, _ in server.listening}
        assert set(schemes) == {"ws", "wss", "ws+unix"}, server.listening
        context = ssl.create_default_context(cafile=str(cert))
        with connect(
            f"wss://{schemes['wss']}/", ssl=context, server_hostname="localhost", open_timeout=DEADLINE
        ) as ws:
            assert int(ws.recv(DEADLINE)) in (workerPid(server, 1), workerPid(server, 2))
            ws.send("over TLS")
            assert ws.recv(DEADLINE) == "over TLS"
        assert oct(sock.stat().st_mode & 0o777) == oct(0o600)

        # The status page names the worker that answered.
        seen = {}
        for _ in range(BATCH * 2):
            with urllib.request.urlopen(f"http://{schemes['ws']}/_status", timeout=DEADLINE) as r:
                status = json.loads(r.read())
            seen[status["worker"]] = status["pid"]
        assert set(seen) <= {1, 2} and seen, seen
        for n, pid in seen.items():
            assert pid == workerPid(server, n)

        # One worker stopped on its own (SIGTERM) and restarted: the UNIX
        # socket file the parent owns is still there, with its mode.
        first = workerPid(server, 1)
        os.kill(first, signal.SIGTERM)
        server.waitFor(rf"worker 1: pid {first} exited with status 0")
        # Before worker 1 is back, worker 2 alone serves: the shared TCP and
        # TLS sockets still listen (no shutdown() on a shared socket).
        second = workerPid(server, 2)
        served = []
        with connect(server.url("/"), open_timeout=DEADLINE) as ws:
            served.append(int(ws.recv(DEADLINE)))
        with connect(
            f"wss://{schemes['wss']}/", ssl=context, server_hostname="localhost", open_timeout=DEADLINE
        ) as ws:
            served.append(int(ws.recv(DEADLINE)))
        if sum("worker 1: started" in line for line in list(server.lines)) == 1:
            assert served == [second, second]  # (worker 1 was not back yet)
        server.waitFor(r"worker 1: listening on ", nth=1)
        assert sock.exists()
        assert oct(sock.stat().st_mode & 0o777) == oct(0o600)
        with unix_connect(str(sock), "ws://localhost/") as ws:
            ws.recv(DEADLINE)
            ws.send(b"over unix")
            assert ws.recv(DEADLINE) == b"over unix"
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(DEADLINE) == 0
        assert not sock.exists()  # the parent removes it when it stops
    finally:
        server.stop()


def test_tacExample(twistd, tmp_path: Path) -> None:
    """examples/workers.tac: the API without the plugin, under twistd -ny."""
    import subprocess

    tac = Path(__file__).resolve().parent.parent / "examples" / "workers.tac"
    log = tmp_path / "tac.log"
    env = dict(twistd.env, WS_LISTEN="tcp:0:interface=127.0.0.1", WS_WORKERS="2")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            twistd.command + ["-n", "--pidfile=", "--logfile=-", "-y", str(tac)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + DEADLINE
        found: list[str] = []
        while len(set(found)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            found = re.findall(r"worker (\d): listening on ws://127\.0\.0\.1:(\d+)/", log.read_text())
            time.sleep(0.05)
        assert len(set(found)) == 2, log.read_text()
        port = found[0][1]
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=DEADLINE) as ws:
            assert re.match(r"hello from worker [12] \(pid \d+\)", ws.recv(DEADLINE))
            ws.send("echo")
            assert ws.recv(DEADLINE) == "echo"
            proc.send_signal(signal.SIGTERM)
            assertClosedWith(ws, 1001)
        assert proc.wait(DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(DEADLINE)
