"""
pytest configuration shared by the test modules.

The tests come in two tiers (README, "Tests"):

- the logic tier, C{test_*.py}: memory transports and a Clock, plain pytest
  functions, nothing waits on the wall clock (test_layout checks that);
- the interop tier, C{test_*_interop.py}: real loopback sockets, real peers
  and subprocesses.  Every test in such a file gets the C{interop} mark
  from its file name, so a test cannot be in the tier without the mark, and
  a mark in a logic-tier file is an error: C{-m "not interop"} and
  C{-m interop} split the suite exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# The test modules import their shared helpers as the top-level module
# C{wshelpers}.  Say so here rather than rely on pytest's default "prepend"
# import mode putting this rootdir-less folder on sys.path by accident.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from wshelpers import Server, Twistd, findTwistd  # noqa: E402

INTEROP_SUFFIX = "_interop.py"


def isInteropFile(path: Path) -> bool:
    """The tier rule: interop tests live in files named C{test_*_interop.py}."""
    return path.name.startswith("test_") and path.name.endswith(INTEROP_SUFFIX)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "interop: real loopback sockets, real peers, subprocesses; "
        f"set from the file name (*{INTEROP_SUFFIX}), never by hand",
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects by mark
def pytest_collection_modifyitems(config, items):
    misplaced = []
    for item in items:
        if isInteropFile(item.path):
            item.add_marker(pytest.mark.interop)
        elif item.get_closest_marker("interop") is not None:
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError(
            f"marked interop outside a *{INTEROP_SUFFIX} file (move them there): " + ", ".join(misplaced)
        )


@pytest.fixture(autouse=True)
def _logicTestsLeaveTheReactorAlone(request: pytest.FixtureRequest):
    """
    A logic-tier test must not schedule anything on the global reactor (a
    factory built without C{clock=} times its connections there): what it
    leaves behind would fire during, or dirty, a later interop test.
    """
    yield
    if isInteropFile(request.node.path) or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import reactor

    left = [call for call in reactor.getDelayedCalls() if call.active()]
    ours = [call for call in left if _isOurs(call.func)]
    for call in left:  # Twisted's own too (its plain H2Connection uses the global reactor)
        call.cancel()
    assert not ours, f"left on the global reactor (give the factory clock=Clock()): {ours}"


def _isOurs(func) -> bool:
    """Whether a delayed call's function is twisted_ws code (a timer service, a protocol...)."""
    owner = getattr(func, "__self__", None)
    module = getattr(type(owner) if owner is not None else func, "__module__", "") or ""
    return module.startswith("twisted_ws")


# -- twistd as a subprocess (interop tier) ---------------------------------------


@pytest.fixture(scope="session")
def twistd(tmp_path_factory: pytest.TempPathFactory) -> Twistd:
    """How to run this checkout's twistd with the websocket plugin."""
    return findTwistd(tmp_path_factory.mktemp("twistd"))


@pytest.fixture
def startServer(twistd: Twistd, tmp_path: Path):
    """Start C{twistd -n websocket ...} servers for one test; all are stopped after it."""
    servers: list[Server] = []

    def start(*args: str, extraEnv: dict | None = None) -> Server:
        server = Server(twistd, list(args), tmp_path, extraEnv)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()

