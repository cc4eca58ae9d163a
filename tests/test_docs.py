"""
The documentation's code cannot drift: every Python sample in docs/ is a
file included with literalinclude, either an example program that the
test suite runs or a file of docs/code/ that this module runs on memory
transports (a MemoryReactorClock, iosim, no socket); and every public name
of the package is in the API reference.  The Sphinx build itself (-W) runs
in .ci/run.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.test.iosim import ConnectionCompleter

import twisted_ws
from twisted_ws import WebSocket, connectWS
from wshelpers import (
    Client,
    MemoryPeer,
    clientFrame,
    parseResponse,
    result,
    serverFrames,
    splitResponse,
    upgradeRequest,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CODE = DOCS / "code"

# docs/code/<name>.py -> the tests here that run it.
SAMPLE_TESTS = {
    "echo": ["test_echoTutorial"],
    "chat": ["test_chatTutorialRooms", "test_chatTutorialRefusesWhatTheRoomCannotRead"],
    "client": ["test_clientTutorial"],
    "auth": ["test_tokenHook", "test_sessionHook"],
    "origins": ["test_allowedOrigins", "test_sameSiteOnly"],
    "proxied": ["test_haproxyPeerAddress", "test_forwardedForFromTheTrustedProxyOnly"],
    "stream_wrap": ["test_wrappedLineProtocol"],
    "testing_example": ["test_testingExampleRuns"],
    "http2_site": ["test_http2SiteIsEnabled"],
}


def load(name: str):
    """docs/code/C{name}.py as a module."""
    path = CODE / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_code_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def docFiles() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*") if p.suffix in (".rst", ".md") and "_build" not in p.parts)


# -- the docs' structure ------------------------------------------------------------------


def test_everyPublicNameIsInTheReference():
    api = (DOCS / "reference" / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. (?:auto\w+|zope-interface):: (?:twisted_ws\.)?(\w+)", api, re.M))
    assert documented == set(twisted_ws.__all__)


def includes() -> list[tuple[Path, Path]]:
    found = []
    for page in docFiles():
        for target in re.findall(r"literalinclude::\s*(\S+)", page.read_text()):
            found.append((page, (page.parent / target).resolve()))
    return found


def test_pythonSamplesAreIncludedFiles():
    """No Python sample is typed into a page: it would not be run."""
    for page in docFiles():
        text = page.read_text()
        assert not re.search(r"code-block::\s*(python|py|pycon)\b", text), page
        assert "```python" not in text and "```py\n" not in text, page
        assert "sourcecode::" not in text, page


def test_everyIncludedFileIsRun():
    found = includes()
    assert len(found) >= 15, found  # the tutorial and the how-tos include their code
    testSources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for page, target in found:
        assert target.is_file(), (page, target)
        relative = target.relative_to(ROOT)
        if relative.parts[0] == "docs":
            assert relative.parent == Path("docs/code"), (page, relative)
            assert target.stem in SAMPLE_TESTS, f"{relative} (in {page.name}) is run by no test"
        else:
            # An example program: a test module must run it.
            assert relative.parts[0] == "examples", (page, relative)
            assert relative.stem in testSources, f"{relative} (in {page.name}) is run by no test"


def test_everySampleHasItsTests():
    assert {p.stem for p in CODE.glob("*.py")} == set(SAMPLE_TESTS)
    here = sys.modules[__name__]
    for tests in SAMPLE_TESTS.values():
        for name in tests:
            assert callable(getattr(here, name, None)), name


# -- the tutorial ---------------------------------------------------------------------------


def serve(factory, url="ws://127.0.0.1/", **options):
    """C{factory} on a MemoryReactorClock and a client connected to it: (result, pump, reactor)."""
    reactor = MemoryReactorClock()
    factory.clock = reactor
    reactor.listenTCP(80, factory)
    d = connectWS(url, reactor=reactor, **options)
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    return d, pump, reactor


def test_echoTutorial(capsys):
    echo = load("echo")
    d, pump, _ = serve(echo.makeFactory(), "ws://127.0.0.1/tutorial", protocol=Client)
    client = result(d)
    client.sendMessage("hello")
    client.sendMessage(b"\x00\x01")
    pump.flush()
    assert [result(client.messages.get()) for _ in range(2)] == ["hello", b"\x00\x01"]
    client.close()
    pump.flush()
    assert result(client.closed)[0] == 1000
    opened, closed = capsys.readouterr().out.splitlines()
    assert opened.startswith("opened /tutorial from ") and closed == "closed with 1000 ''"


def test_clientTutorial(capsys):
    client = load("client")
    echo = load("echo")
    reactor = MemoryReactorClock()
    factory = echo.makeFactory()
    factory.clock = reactor
    reactor.listenTCP(8080, factory)
    d = ensureDeferred(client.chat(reactor, "ws://127.0.0.1:8080/", ["hello", "wörld"]))
    pump = ConnectionCompleter(reactor).succeedOnce()
    for _ in range(5):
        pump.flush()
    assert result(d) == ["hello", "wörld"]
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(("opened", "closed with"))]
    assert printed == ["hello", "wörld", "closed: 1000, clean: True"]


def chatSite():
    chat = load("chat")
    site = chat.makeSite(str(ROOT / "examples" / "chat"))
    clock = Clock()
    site.reactor = clock
    wsResource = site.resource.children[b"ws"]
    wsResource.factory.clock = clock
    return site, wsResource.factory


def test_chatTutorialRooms():
    site, factory = chatSite()
    assert site.resource.path == str(ROOT / "examples" / "chat")
    assert (ROOT / "examples" / "chat" / "index.html").is_file()
    peers = {name: MemoryPeer(site) for name in ("ann", "bob", "cid")}
    rooms = {"ann": "/ws/lobby", "bob": "/ws/lobby", "cid": "/ws/kitchen"}
    for name, peer in peers.items():
        peer.send(upgradeRequest(rooms[name]))
        assert splitResponse(peer.received())[0].startswith(b"HTTP/1.1 101")
    assert set(factory.hub.rooms) == {"lobby", "kitchen"}
    peers["ann"].send(clientFrame(0x1, json.dumps({"name": "ann", "text": "hi"}).encode()))
    expected = {"name": "ann", "text": "hi"}
    for name in ("ann", "bob"):  # the room, the sender included
        frames = serverFrames(peers[name].received())
        assert [(op, json.loads(payload)) for op, _fin, payload in frames] == [(0x1, expected)]
    assert peers["cid"].received() == b""  # another room


def test_chatTutorialRefusesWhatTheRoomCannotRead():
    site, _ = chatSite()
    peer = MemoryPeer(site)
    peer.send(upgradeRequest("/ws/lobby"))
    peer.received()
    peer.send(clientFrame(0x1, b"not json"))
    frames = serverFrames(peer.received())
    assert frames[0][0] == 0x8 and int.from_bytes(frames[0][2][:2], "big") == 1003


# -- the how-to guides ------------------------------------------------------------------------


def upgrade(factory, path="/", extra=""):
    """(status, headers, first frames) of one upgrade request to C{factory} in memory."""
    factory.clock = Clock()
    peer = MemoryPeer(factory)
    peer.send(upgradeRequest(path, extra))
    data = peer.received()
    if data.startswith(b"HTTP/1.1 101"):
        head, rest = splitResponse(data)
        return 101, head, serverFrames(rest)
    status, headers, body = parseResponse(data)
    return status, headers, body


def test_tokenHook():
    auth = load("auth")
    status, head, frames = upgrade(auth.tokenFactory, extra="Authorization: Bearer s3cret-token\r\n")
    assert status == 101 and b"X-User: alice" in head
    assert frames == [(0x1, True, b"hello, alice")]
    status, _, frames = upgrade(auth.tokenFactory, path="/?token=s3cret-token")
    assert (status, frames) == (101, [(0x1, True, b"hello, alice")])
    status, headers, _ = upgrade(auth.tokenFactory, extra="Authorization: Bearer guess\r\n")
    assert status == 401 and headers["www-authenticate"] == ["Bearer"]
    assert upgrade(auth.tokenFactory)[0] == 401


def test_sessionHook():
    auth = load("auth")
    site = auth.makeSite()
    site.reactor = Clock()
    factory = site.resource.children[b"ws"].factory
    factory.clock = Clock()

    def attempt(cookie):
        peer = MemoryPeer(site)
        peer.send(upgradeRequest("/ws", f"Cookie: TWISTED_SESSION={cookie}\r\n" if cookie else ""))
        return peer.received()

    assert parseResponse(attempt(None))[0] == 401
    session = site.makeSession()
    assert parseResponse(attempt(session.uid.decode()))[0] == 403  # not logged in
    session.sessionNamespaces["user"] = "bob"
    head, rest = splitResponse(attempt(session.uid.decode()))
    assert head.startswith(b"HTTP/1.1 101") and serverFrames(rest) == [(0x1, True, b"hello, bob")]
    session.expire()


def test_allowedOrigins():
    origins = load("origins")
    for origin, status in [
        ("https://example.com", 101),
        ("https://chat.example.com", 101),
        ("https://evil.example.net", 403),
        (None, 101),  # not a browser
    ]:
        extra = f"Origin: {origin}\r\n" if origin else ""
        assert upgrade(origins.factory, extra=extra)[0] == status, origin


def test_sameSiteOnly():
    origins = load("origins")
    assert upgrade(origins.strictFactory, extra="Origin: http://example.com\r\n")[0] == 101
    assert upgrade(origins.strictFactory, extra="Origin: https://example.com\r\n")[0] == 403  # not TLS here
    assert upgrade(origins.strictFactory, extra="Origin: http://other.example\r\n")[0] == 403
    assert upgrade(origins.strictFactory)[0] == 403


def test_haproxyPeerAddress():
    """Behind Twisted's haproxy: wrapper the request's peer is the client named by the PROXY header."""
    from twisted.internet.endpoints import serverFromString

    proxied = load("proxied")
    proxied.factory.clock = Clock()
    reactor = MemoryReactorClock()
    proxied.listenBehindHAProxy(reactor)  # proxyEndpoint(tcp:8080...), as haproxy:tcp:8080 does
    wrapping = reactor.tcpServers[0][1]
    viaString = MemoryReactorClock()
    serverFromString(viaString, "haproxy:tcp:8080").listen(proxied.factory)
    assert type(wrapping) is type(viaString.tcpServers[0][1])
    assert type(wrapping).__name__ == "HAProxyWrappingFactory"
    wrapper = wrapping.buildProtocol(None)
    transport = StringTransport()
    wrapper.makeConnection(transport)
    wrapper.dataReceived(b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 8080\r\n" + upgradeRequest())
    head, rest = splitResponse(transport.value())
    assert head.startswith(b"HTTP/1.1 101")
    assert serverFrames(rest) == [(0x1, True, b"you are 203.0.113.7")]


def test_forwardedForFromTheTrustedProxyOnly():
    from twisted.internet.address import IPv4Address

    proxied = load("proxied")

    class Request:
        def __init__(self, peer, forwarded):
            self.peer = IPv4Address("TCP", peer, 4000)
            self.forwarded = forwarded

        def header(self, name):
            assert name == "x-forwarded-for"
            return self.forwarded

    assert proxied.clientAddress(Request("127.0.0.1", "10.9.9.9, 198.51.100.4")) == "198.51.100.4"
    assert proxied.clientAddress(Request("127.0.0.1", "garbage")) == "127.0.0.1"
    assert proxied.clientAddress(Request("198.51.100.99", "1.2.3.4")) == "198.51.100.99"  # not our proxy
    assert proxied.clientAddress(Request("127.0.0.1", None)) == "127.0.0.1"


def test_wrappedLineProtocol():
    streamWrap = load("stream_wrap")
    factory = streamWrap.webFactory
    factory.clock = Clock()
    peer = MemoryPeer(factory)
    peer.send(upgradeRequest(extra="Origin: https://example.com\r\n"))
    assert splitResponse(peer.received())[0].startswith(b"HTTP/1.1 101")
    peer.send(clientFrame(0x1, b"add 1 2 39") + clientFrame(0x1, b"mul"))
    assert serverFrames(peer.received()) == [(0x1, True, b"42"), (0x1, True, b"error")]
    peer.send(clientFrame(0x1, b"quit"))
    frames = serverFrames(peer.received())
    assert frames[0][0] == 0x8 and int.from_bytes(frames[0][2][:2], "big") == 1000
    assert upgrade(factory, extra="Origin: https://evil.example\r\n")[0] == 403


def test_testingExampleRuns():
    example = load("testing_example")
    example.test_shouts()
    example.test_idleClientsAreClosed()


def test_http2SiteIsEnabled():
    pytest.importorskip("h2")
    site = load("http2_site").makeSite()
    assert site.resource.children[b"ws"].factory.protocol.__name__ == "Echo"
    # enableHTTP2WebSockets gives the Site its own channel, which takes
    # extended CONNECTs when ALPN picks h2 (a plain Site's has no such limit).
    assert getattr(site.buildProtocol(None), "maxWebSocketStreams", 0) >= 1


def test_asyncEchoExample():
    """The handler of examples/async_echo.py, shown in the tutorial, echoes."""
    from twisted_ws import WebSocketServerFactory
    from wshelpers import loadExample

    factory = WebSocketServerFactory.forHandler(loadExample("async_echo").echo, pingInterval=None)
    d, pump, _ = serve(factory, protocol=Client)
    client = result(d)
    client.sendMessage("one")
    client.sendMessage(b"two")
    pump.flush()
    assert [result(client.messages.get()) for _ in range(2)] == ["one", b"two"]


def test_clientTutorialGetsAWebSocket():
    """The tutorial says connectWS without a protocol gives a WebSocket."""
    d, _, _ = serve(load("echo").makeFactory())
    assert isinstance(result(d), WebSocket)
