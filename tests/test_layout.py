"""
The package keeps its I/O-free core apart from the Twisted glue: nothing in
twisted_ws/core may import Twisted (or zope.interface) or the glue around
it, so the protocol logic can be tested and fuzzed without a reactor -- and
without Twisted installed.  The twistd plugin folder must stay a plain
folder of plugin modules.

The module graph stays untangled: no import cycles, no private names
imported from another module, no module over 600 lines.

The tests keep their two tiers apart: a logic-tier module (tests/test_*.py
that is not *_interop.py) uses no global reactor and nothing that waits on
the wall clock or opens a real connection.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import twisted_ws
import twisted_ws.core

PACKAGE = Path(twisted_ws.__file__).parent
CORE = Path(twisted_ws.core.__file__).parent
ROOT = Path(__file__).resolve().parent.parent

MAX_LINES = 600

#: Every name C{from twisted_ws import ...} offered before the re-exports
#: became lazy; none may go missing (new ones may be added).
PUBLIC_NAMES = {
    "Accept",
    "ClientPerMessageDeflate",
    "CloseCode",
    "CloseInfo",
    "ConnectionClosed",
    "DEFAULT_SUBPROTOCOL",
    "DeflateExtension",
    "HandshakeError",
    "HandshakeRequest",
    "MessageWriter",
    "PerMessageDeflate",
    "PortSharingFactory",
    "ProtocolError",
    "ReconnectingWebSocketClient",
    "Reject",
    "ServerHandshakeProtocol",
    "StreamOverWebSocketFactory",
    "StreamOverWebSocketProtocol",
    "WebSocketClientEndpoint",
    "WebSocketClientFactory",
    "WebSocketError",
    "WebSocketHandshakeRejected",
    "WebSocketOpenTimeout",
    "WebSocketProxyError",
    "WebSocketOptions",
    "WebSocketProtocol",
    "WebSocketResource",
    "WebSocketServerFactory",
    "connectWS",
}


# -- reading the package's imports ------------------------------------------------


def moduleName(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {moduleName(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def packageOf(module: str) -> str:
    """The package a module's relative imports start from."""
    if MODULES[module].name == "__init__.py":
        return module
    return module.rpartition(".")[0]


def resolveFrom(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module a C{from ... import} reads from."""
    if node.level == 0:
        return node.module or ""
    base = packageOf(module).split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def isTypeChecking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtimeTopLevel(body: list[ast.stmt]):
    """
    The import statements run when a module is imported: module level,
    including inside C{if}/C{try}/C{with} and class bodies, but not inside
    functions or C{if TYPE_CHECKING:}.
    """
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and isTypeChecking(node):
            yield from runtimeTopLevel(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None) or []
                stmts = []
                for child in children:
                    if isinstance(child, ast.ExceptHandler):
                        stmts.extend(child.body)
                    elif isinstance(child, ast.stmt):
                        stmts.append(child)
                yield from runtimeTopLevel(stmts)


def parse(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"), str(MODULES[module]))


def importTargets(module: str, nodes) -> set[str]:
    """The twisted_ws modules that C{nodes} (import statements) import."""
    targets = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            source = resolveFrom(module, node)
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                for alias in node.names
            ]
        for name in names:
            if name.split(".")[0] != "twisted_ws":
                continue
            while name not in MODULES and "." in name:
                name = name.rpartition(".")[0]
            targets.add(name)
    return targets


def importGraph() -> dict[str, set[str]]:
    return {
        module: importTargets(module, runtimeTopLevel(parse(module).body)) - {module}
        for module in MODULES
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    onStack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        onStack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in onStack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                onStack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# -- the core stands alone --------------------------------------------------------


def importedModules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted(CORE.rglob("*.py")), ids=lambda p: p.relative_to(CORE).as_posix()
)
def test_coreImportsNoTwisted(path: Path) -> None:
    offending = {
        name for name in importedModules(path) if name.split(".")[0] in ("twisted", "zope")
    }
    assert not offending, f"{path.name} imports {sorted(offending)}"


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if m.startswith("twisted_ws.core")), ids=str
)
def test_coreImportsNothingOutsideCore(module: str) -> None:
    """
    The core imports only itself: not its parent package (whose glue needs
    Twisted), not even for the C accelerator, which lives in the core.
    Function-level and C{TYPE_CHECKING} imports count too.
    """
    nodes = [n for n in ast.walk(parse(module)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    offending = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            sources = [resolveFrom(module, node)]
        else:
            sources = [alias.name for alias in node.names]
        for source in sources:
            if source.split(".")[0] == "twisted_ws" and not (
                source == "twisted_ws.core" or source.startswith("twisted_ws.core.")
            ):
                offending.add(f"line {node.lineno}: {source}")
    assert not offending, f"{module} imports from outside the core: {sorted(offending)}"


#: Run in a fresh interpreter where importing Twisted or zope fails, as if
#: they were not installed.
BLOCKED_SCRIPT = r"""
import importlib, json, pkgutil, sys

# What the interpreter loaded before us (an old zope.interface's namespace
# .pth imports "zope" at startup) is not ours to count.
preloaded = set(sys.modules)

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("twisted", "zope"):
            raise ModuleNotFoundError(f"blocked for this test: {name}", name=name)
        return None

sys.meta_path.insert(0, Blocker())

import twisted_ws.core
imported = []
for info in pkgutil.walk_packages(twisted_ws.core.__path__, "twisted_ws.core."):
    importlib.import_module(info.name)
    imported.append(info.name)

from twisted_ws.core.frames import OP_TEXT, WHOLE, FrameParser, serializeFrame
from twisted_ws.core.masking import HAVE_SPEEDUPS

wire = serializeFrame(OP_TEXT, "h\u00e9llo".encode(), maskKey=b"\x01\x02\x03\x04")
pieces = FrameParser(requireMask=True).feed(wire)

import twisted_ws
closeCode = int(twisted_ws.CloseCode.NORMAL_CLOSURE)  # a lazy re-export from the core
try:
    twisted_ws.WebSocketProtocol
except ImportError as e:
    glue = f"ImportError: {e}"
else:
    glue = "imported"

print(json.dumps({
    "imported": imported,
    "pieces": [[op, fin, rsv, payload.decode(), part] for op, fin, rsv, payload, part in pieces],
    "whole": WHOLE,
    "masked": wire[2:6] == b"\x01\x02\x03\x04",
    "speedups": HAVE_SPEEDUPS,
    "closeCode": closeCode,
    "glue": glue,
    "loaded": sorted(m for m in set(sys.modules) - preloaded if m.split(".")[0] in ("twisted", "zope")),
}))
"""


def test_coreWorksWithoutTwisted() -> None:
    """
    C{import twisted_ws.core} and every core module work with Twisted
    absent, and a frame makes the round trip; the parent package imports
    its Twisted glue only when a glue name is asked for.
    """
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_SCRIPT],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = {m for m in MODULES if m.startswith("twisted_ws.core.")}
    assert expected <= set(report["imported"])
    assert report["pieces"] == [[0x1, True, 0, "h\u00e9llo", report["whole"]]]
    assert report["masked"]
    assert report["closeCode"] == 1000
    assert report["glue"].startswith("ImportError: blocked for this test: twisted")
    assert report["loaded"] == []


def test_publicNamesImportable() -> None:
    """
    Every public name is still importable from C{twisted_ws} (now on first
    use), is listed by C{__all__} and C{dir()}, and unknown names still
    raise C{AttributeError}.
    """
    assert PUBLIC_NAMES <= set(twisted_ws.__all__)
    assert set(twisted_ws.__all__) == set(twisted_ws._EXPORTS)
    assert set(twisted_ws.__all__) <= set(dir(twisted_ws))
    for name in sorted(twisted_ws.__all__):
        value = getattr(twisted_ws, name)
        namespace: dict[str, object] = {}
        exec(f"from twisted_ws import {name}", namespace)
        assert namespace[name] is value
    with pytest.raises(AttributeError):
        twisted_ws.noSuchName  # noqa: B018
    assert not hasattr(twisted_ws, "_noSuchName")


def test_publicNamesSeenByTypeCheckers() -> None:
    """
    The C{if TYPE_CHECKING:} imports in C{twisted_ws/__init__.py} (what
    static type checkers read) name every public name, from the same module
    the lazy import uses.
    """
    tree = parse("twisted_ws")
    static = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isTypeChecking(node):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                for alias in stmt.names:
                    static[alias.asname or alias.name] = resolveFrom("twisted_ws", stmt)
    assert static == {name: twisted_ws._EXPORTS[name] for name in twisted_ws.__all__}


# -- an untangled module graph ----------------------------------------------------


def test_noImportCycles() -> None:
    """
    No two twisted_ws modules import each other, directly or through
    others (imports run at import time; function-level and
    C{TYPE_CHECKING} imports do not count).
    """
    assert cycles(importGraph()) == []


def test_cycleDetection() -> None:
    """The cycle finder used above finds cycles."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_noPrivateNamesAcrossModules() -> None:
    """
    No module imports an C{_underscore} name from another twisted_ws
    module: what is shared is public (a private submodule may be imported
    by its own package).
    """
    offending = []
    for module in MODULES:
        for node in ast.walk(parse(module)):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = resolveFrom(module, node)
            if source.split(".")[0] != "twisted_ws" or source == module:
                continue
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                    continue
                if f"{source}.{name}" in MODULES and packageOf(module) == source:
                    continue
                offending.append(f"{module}:{node.lineno} imports {name} from {source}")
    assert offending == []


@pytest.mark.parametrize(
    "path",
    sorted(PACKAGE.rglob("*.py")),
    ids=lambda p: p.relative_to(ROOT).as_posix() if p.is_relative_to(ROOT) else str(p),
)
def test_moduleSize(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines (limit {MAX_LINES})"


def test_pluginFolderHasNoInit() -> None:
    plugins = ROOT / "twisted" / "plugins"
    if not plugins.is_dir():
        pytest.skip("not run from a source checkout")
    assert not (plugins / "__init__.py").exists()
    assert (plugins / "twisted_ws_plugin.py").exists()


# -- the tests' logic tier never waits on the wall clock ------------------------------

TESTS = ROOT / "tests"

#: Modules a logic-tier test may not import: the global reactor, threads
#: handed work by the reactor, real servers.
WALL_CLOCK_MODULES = {"twisted.internet.reactor", "twisted.internet.threads", "socketserver"}

#: (module, name) pairs a logic-tier test may neither import nor use as
#: module.name: the global reactor, sleeping, reading the wall clock, real
#: connections.
WALL_CLOCK_NAMES = {
    ("twisted.internet", "reactor"),
    ("twisted.internet.task", "deferLater"),
    ("time", "sleep"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
    ("time", "perf_counter_ns"),
    ("time", "process_time"),
    ("time", "process_time_ns"),
    ("asyncio", "sleep"),
    ("socket", "create_connection"),
}


def wallClockUses(source: str) -> list[str]:
    """Where C{source} uses the global reactor or the wall clock: 'line: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name in WALL_CLOCK_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if (
                    node.module in WALL_CLOCK_MODULES
                    or f"{node.module}.{a.name}" in WALL_CLOCK_MODULES
                    or (node.module, a.name) in WALL_CLOCK_NAMES
                ):
                    found.append(f"{node.lineno}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in WALL_CLOCK_NAMES:
                found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def logicTierModules() -> list[Path]:
    return sorted(p for p in TESTS.glob("test_*.py") if not p.name.endswith("_interop.py"))


def test_logicTierIsFound() -> None:
    names = {p.name for p in logicTierModules()}
    assert {"test_layout.py", "test_client.py", "test_twistd.py"} <= names
    assert not any(name.endswith("_interop.py") for name in names)


@pytest.mark.parametrize("path", logicTierModules(), ids=lambda p: p.name)
def test_logicTierNeverWaitsOnTheWallClock(path: Path) -> None:
    """Memory transports and a Clock only; real sockets and waits go to *_interop.py."""
    assert wallClockUses(path.read_text(encoding="utf-8")) == []


def test_wallClockUsesAreSeen() -> None:
    source = (
        "import time, socket\n"
        "from twisted.internet import reactor, defer\n"
        "import twisted.internet.reactor\n"
        "from twisted.internet.task import Clock, deferLater\n"
        "from twisted.internet.threads import deferToThread\n"
        "from time import sleep\n"
        "time.sleep(1)\n"
        "t = time.monotonic()\n"
        "socket.create_connection(('127.0.0.1', 1))\n"
        "clock = Clock(); clock.callLater(1, print); clock.advance(1)\n"
        "start = time.perf_counter(); time.process_time()\n"
        "from time import perf_counter_ns\n"
    )
    assert wallClockUses(source) == [
        "2: from twisted.internet import reactor",
        "3: import twisted.internet.reactor",
        "4: from twisted.internet.task import deferLater",
        "5: from twisted.internet.threads import deferToThread",
        "6: from time import sleep",
        "7: time.sleep",
        "8: time.monotonic",
        "9: socket.create_connection",
        "11: time.perf_counter",
        "11: time.process_time",
        "12: from time import perf_counter_ns",
    ]
