"""
Scale-out with every real part (the interop tier): a real C{redis-server}
on 127.0.0.1 (a free port, persistence off) and two "machines", two
separate C{twistd -n websocket --mode broadcast --redis ... --metrics
/metrics} instances, one of them with C{--workers 2}: three processes
serving one room.  Clients (the websockets package, some with
permessage-deflate and some without) spread over all three processes,
which the metrics page shows (connections open, per worker), each send one
message, and each receives every message exactly once; a client in
another room gets nothing.  Then the faults: Redis stopped and started
again on the same port (local rooms keep working, failed publishes are
counted, cross-instance delivery comes back by itself); a worker killed
with SIGKILL (replaced; the other worker's clients untouched); SIGTERM to
the parents (1001 for every client of every worker; the pool's parent
exits 0).

Every wait is bounded (L{DEADLINE}, bounded rounds), and every process is
killed in cleanup.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from wshelpers import DEADLINE, LOCAL, RedisServer, Server

pytestmark = pytest.mark.interop

ROOM = "/room"
CHANNEL = "twisted_ws:room:" + ROOM

#: Clients opened per round on the --workers 2 instance, and rounds at most,
#: until both workers serve some.
BATCH, ROUNDS = 4, 8

#: How long a client must stay quiet for "nothing more came" (a duplicate
#: would arrive within it).
QUIET = 0.5


# -- the parts ---------------------------------------------------------------------------


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    if server.executable is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("txredisapi")
    pytest.importorskip("prometheus_client")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Machine:
    """One C{twistd websocket --mode broadcast --redis} instance and its workers."""

    def __init__(self, twistd: Any, tmp_path: Path, redis: RedisServer, workers: int = 1) -> None:
        self.workers = workers
        args = [*LOCAL, "--mode", "broadcast", "--redis", redis.url, "--metrics", "/metrics",
                "--stop-timeout", "3"]
        if workers > 1:
            args += ["--workers", str(workers)]
        self.server = Server(twistd, args, tmp_path)
        self.pids: list[int] = []
        try:
            if workers > 1:
                for n in range(1, workers + 1):
                    self.server.waitFor(rf"worker {n}: listening on ")
                    self.pids.append(self.workerPid(n))
        except BaseException:
            self.stop()
            raise

    @property
    def names(self) -> set[str]:
        """The worker labels of its series: "0" alone, else "1".."N"."""
        return {"0"} if self.workers == 1 else {str(n) for n in range(1, self.workers + 1)}

    def workerPid(self, n: int, nth: int = 0) -> int:
        return int(self.server.waitFor(rf"worker {n}: started \(pid (\d+)\)", nth=nth).group(1))

    def url(self, path: str = ROOM) -> str:
        return self.server.url(path)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{self.server.port}/metrics", timeout=DEADLINE) as r:
            text = r.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def byWorker(self, name: str, **labels: str) -> dict[str, float]:
        """One series of one scrape, by worker label."""
        out = {}
        for (sample, sampleLabels), value in self.scrape().items():
            found = dict(sampleLabels)
            worker = found.pop("worker", None)
            found.pop("backend", None)
            if sample == name and found == labels and worker is not None:
                out[worker] = value
        return out

    def stop(self) -> None:
        self.server.stop()
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def machines(twistd: Any, tmp_path: Path, redis: RedisServer) -> Iterator[tuple[Machine, Machine]]:
    started: list[Machine] = []
    try:
        for name, workers in (("a", 1), ("b", 2)):
            folder = tmp_path / name
            folder.mkdir()
            started.append(Machine(twistd, folder, redis, workers))
        a, b = started
        for machine in started:  # every process has its Redis link up
            waitUntil(
                lambda m=machine: m.byWorker("twisted_ws_bus_connected") == {w: 1.0 for w in m.names},
                "every worker's Redis link",
            )
        yield a, b
    finally:
        for machine in started:
            machine.stop()


def waitUntil(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll C{predicate} every 0.1 s until it is true, at most C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def openClient(stack: ExitStack, url: str, n: int) -> Any:
    # Every other client declines permessage-deflate: those get the
    # hub's shared frame, the others a message compressed for them.
    options: dict[str, Any] = {} if n % 2 else {"compression": None}
    return stack.enter_context(connect(url, open_timeout=DEADLINE, close_timeout=DEADLINE, **options))


def spreadOver(stack: ExitStack, b: Machine, clients: list[Any]) -> dict[str, float]:
    """
    Open clients to C{b} in rounds (bounded) until its metrics show every
    worker serving some; return the per-worker counts of open connections.
    """
    opened = 0
    counts: dict[str, float] = {}
    for _ in range(ROUNDS):
        for _ in range(BATCH):
            clients.append(openClient(stack, b.url(), len(clients)))
            opened += 1
        # The scraped worker is live, the other one's snapshot at most ~1 s old.
        counts = waitUntil(
            lambda: (c := b.byWorker("twisted_ws_connections_open")) and sum(c.values()) == opened and c,  # noqa: B023 - polled now
            f"{opened} connections on the metrics page",
        )
        if all(counts.get(w, 0) > 0 for w in b.names):
            return counts
    raise AssertionError(f"the connections did not spread over every worker: {counts}")


def receiveAll(clients: list[Any], expected: list[str]) -> None:
    """Every client receives exactly C{expected} (in any order), nothing twice, nothing more."""
    for ws in clients:
        got = [ws.recv(DEADLINE) for _ in expected]
        assert sorted(got) == sorted(expected), got
    time.sleep(QUIET)
    for ws in clients:
        with pytest.raises(TimeoutError):
            extra = ws.recv(0)
            pytest.fail(f"an extra message: {extra!r}")


def assertNothing(ws: Any) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(0)


def sendEach(clients: list[Any], tag: str) -> list[str]:
    messages = []
    for i, ws in enumerate(clients):
        messages.append(f"{tag} {i}")
        ws.send(messages[-1])
    return messages


def drain(clients: list[Any]) -> None:
    """Read what is waiting, until every client was quiet for QUIET seconds (bounded)."""
    for _ in range(100):
        time.sleep(QUIET)
        if not any([_readWaiting(ws) for ws in clients]):
            return
    raise AssertionError("the clients kept receiving")


def _readWaiting(ws: Any) -> bool:
    got = False
    for _ in range(1000):
        try:
            ws.recv(0)
        except TimeoutError:
            return got
        got = True
    return got


def assertClosedWith(ws: Any, code: int) -> None:
    with pytest.raises(ConnectionClosed):
        for _ in range(1000):
            ws.recv(DEADLINE)
    assert ws.close_code == code, (ws.close_code, ws.close_reason)


# -- the tests ---------------------------------------------------------------------------


def test_roomsSpanTwoMachinesAndARedisRestart(machines: tuple[Machine, Machine], redis: RedisServer) -> None:
    a, b = machines
    with ExitStack() as stack:
        onA = [openClient(stack, a.url(), n) for n in range(3)]
        onB: list[Any] = []
        spreadOver(stack, b, onB)
        elsewhere = openClient(stack, b.url("/elsewhere"), 0)
        everyone = onA + onB
        waitUntil(lambda: redis.subscribers(CHANNEL) == 3, "the room subscribed by all three processes")
        assert a.byWorker("twisted_ws_connections_open") == {"0": 3.0}

        # Each client sends one message; each gets every one exactly once.
        receiveAll(everyone, sendEach(everyone, "hello"))
        assertNothing(elsewhere)
        # (Another worker's figures on the page are up to a second old.)
        waitUntil(
            lambda: sum(m.byWorker("twisted_ws_broadcast_published_total").get(w, 0) for m in (a, b) for w in m.names)
            == len(everyone),
            "every publish on the metrics pages",
        )
        failures = a.byWorker("twisted_ws_bus_publish_failures_total")
        assert failures == {"0": 0.0}

        # Redis goes away: every process notices (the metrics say so) ...
        redis.stop()
        a.server.waitFor(r"Redis publish link to \S+ lost")
        for m in (a, b):
            waitUntil(
                lambda m=m: m.byWorker("twisted_ws_bus_connected") == {w: 0.0 for w in m.names},
                "every Redis link down",
            )
        # ... a room within one process keeps working, and the publishes that
        # could not reach Redis are counted.
        onA[0].send("while Redis is down")
        for ws in onA:
            assert ws.recv(DEADLINE) == "while Redis is down"
        waitUntil(
            lambda: a.byWorker("twisted_ws_bus_publish_failures_total") == {"0": 1.0},
            "the failed publish on the metrics page",
        )
        drain(everyone)  # (B's clients got nothing of it)

        # Redis is back on the same port: the links come back and the rooms
        # are subscribed again by themselves.
        redis.start()
        for m in (a, b):
            waitUntil(
                lambda m=m: m.byWorker("twisted_ws_bus_connected") == {w: 1.0 for w in m.names},
                "every Redis link up again",
            )
        waitUntil(lambda: redis.subscribers(CHANNEL) == 3, "the room subscribed again in all three processes")
        receiveAll(everyone, sendEach(everyone, "again"))
        assertNothing(elsewhere)
        assert a.byWorker("twisted_ws_bus_publish_failures_total") == {"0": 1.0}


def test_aKilledWorkerIsReplacedAndSigtermClosesEveryoneWith1001(
    machines: tuple[Machine, Machine], redis: RedisServer
) -> None:
    a, b = machines
    first, second = b.pids
    with ExitStack() as stack:
        onA = [openClient(stack, a.url(), n) for n in range(2)]
        onB: list[Any] = []
        counts = spreadOver(stack, b, onB)
        waitUntil(lambda: redis.subscribers(CHANNEL) == 3, "the room subscribed by all three processes")
        started = b.byWorker("twisted_ws_worker_start_time_seconds")

        os.kill(first, signal.SIGKILL)
        b.server.waitFor(rf"worker 1: pid {first} was killed by SIGKILL")
        replacement = b.workerPid(1, nth=1)
        b.pids.append(replacement)
        assert replacement not in (first, second)
        waitUntil(lambda: redis.subscribers(CHANNEL) == 2, "the dead worker's subscription gone")

        # A message from the other machine: worker 2's clients get it, worker
        # 1's were cut off with the process.
        onA[0].send("after the kill")
        survivors, cut = [], []
        for ws in onB:
            try:
                assert ws.recv(DEADLINE) == "after the kill"
                survivors.append(ws)
            except ConnectionClosed:
                cut.append(ws)
        assert (len(cut), len(survivors)) == (counts["1"], counts["2"]), counts
        assert all(ws.close_code == 1006 for ws in cut)
        for ws in onA:
            assert ws.recv(DEADLINE) == "after the kill"
        # The other worker's clients are untouched: they still send and receive.
        b.server.waitFor(r"worker 1: listening on ", nth=1)
        receiveAll(onA + survivors, sendEach(survivors, "survivor"))

        # The replacement serves, under the same label, with a new start time,
        # and none of the dead worker's figures linger.
        fresh: list[Any] = []
        for _ in range(ROUNDS * BATCH):
            fresh.append(openClient(stack, b.url(), len(fresh)))
            now = waitUntil(
                lambda: (c := b.byWorker("twisted_ws_connections_open"))
                and sum(c.values()) == len(survivors) + len(fresh) and c,
                "the new connections on the metrics page",
            )
            if now.get("1", 0) > 0:
                break
        # (The sum above also says that the killed worker's count is gone.)
        assert set(now) == {"1", "2"} and now["1"] > 0, now
        restarted = b.byWorker("twisted_ws_worker_start_time_seconds")
        assert restarted["1"] > started["1"] and restarted["2"] == started["2"]
        waitUntil(lambda: redis.subscribers(CHANNEL) == 3, "the replacement's subscription")
        receiveAll(onA + survivors + fresh, sendEach(onA + fresh, "welcome"))

        # SIGTERM to each parent: every client of every worker gets 1001 and
        # the parent exits 0.
        b.server.proc.send_signal(signal.SIGTERM)
        for ws in survivors + fresh:
            assertClosedWith(ws, 1001)
        assert b.server.proc.wait(DEADLINE) == 0
        for ws in onA:  # the other machine goes on
            ws.send("still here")
            assert ws.recv(DEADLINE) == "still here"
        a.server.proc.send_signal(signal.SIGTERM)
        for ws in onA:
            assertClosedWith(ws, 1001)
        # twistd alone re-raises the signal once shut down (the pool's
        # parent takes SIGTERM itself, hence its 0 above).
        assert a.server.proc.wait(DEADLINE) in (0, -signal.SIGTERM)
