"""
Helpers shared by both test tiers: client-side frames, parsing what a server
wrote, the one C{Echo} protocol, the one C{Recorder} of connection events,
the one C{Producer} for flow control, a client that queues what it gets, a
memory peer for server connections, certificates, and twistd as a
subprocess (the interop tier's C{Server}).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import zlib
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, DeferredQueue, succeed
from twisted.internet.error import ConnectionAborted, ProcessExitedAlready
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.python.failure import Failure
from zope.interface import implementer

import twisted_ws
from twisted_ws import WebSocketProtocol, WebSocketServerFactory
from twisted_ws.core.frames import FrameParser, serializeFrame
from twisted_ws.core.handshake import computeAcceptKey, generateKey

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgradeRequest(path: str = "/", extra: str = "", key: str = KEY) -> bytes:
    """A valid client upgrade request (extra: more header lines, CRLF-ended)."""
    return (
        f"GET {path} HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode("latin-1")


def clientFrame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked frame, as a client sends it."""
    return serializeFrame(opcode, payload, fin, rsv, maskKey=os.urandom(4))


def serverFrames(data: bytes) -> list[tuple[int, bool, bytes]]:
    """Parse the frames a server wrote (after its handshake response)."""
    parser = FrameParser(requireMask=False)
    out = []
    for opcode, fin, _rsv, payload, part in parser.feed(data):
        assert part == 0, "test helper expects whole frames"
        out.append((opcode, fin, payload))
    assert parser.error is None, parser.error
    return out


def splitResponse(data: bytes) -> tuple[bytes, bytes]:
    """Split a server's output into the HTTP head and what follows."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data
    return head + sep, rest


class RecordingHandler:
    """A connection handler (core.connection) that records every call."""

    def __init__(self):
        self.events = []

    def textMessageReceived(self, text):
        assert isinstance(text, str)
        self.events.append(("text", text))

    def binaryMessageReceived(self, data):
        assert isinstance(data, bytes)
        self.events.append(("binary", data))

    def messageStarted(self, isText):
        self.events.append(("started", isText))

    def messageDataReceived(self, data):
        self.events.append(("data", data))

    def messageEnded(self):
        self.events.append(("ended",))

    def pingReceived(self, payload):
        self.events.append(("ping", payload))

    def pongReceived(self, payload):
        self.events.append(("pong", payload))

    def closeReceived(self, code, reason):
        self.events.append(("close", code, reason))


def _writeKey(path: Path, key) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def _certificate(subject: str, issuer, signingKey, publicKey, extensions):
    """Build and sign a certificate valid from yesterday for 30 days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signingKey, hashes.SHA256())


def _serverNames(hostname: str):
    from cryptography import x509

    return x509.SubjectAlternativeName(
        [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )


def makeCertificate(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for C{hostname} and 127.0.0.1: (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(
        hostname,
        None,
        key,
        key.public_key(),
        [
            (_serverNames(hostname), False),
            (x509.BasicConstraints(ca=True, path_length=None), True),
        ],
    )
    certPath = directory / "cert.pem"
    keyPath = directory / "key.pem"
    certPath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _writeKey(keyPath, key)
    return certPath, keyPath


def makeCA(directory: Path):
    """A test CA: (PEM path, certificate, private key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True,
        crl_sign=True, encipher_only=False, decipher_only=False,
    )
    cert = _certificate(
        "twisted_ws test CA",
        None,
        key,
        key.public_key(),
        [(x509.BasicConstraints(ca=True, path_length=0), True), (usage, True)],
    )
    path = directory / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def makeLeaf(directory: Path, ca, hostname: str = "localhost") -> tuple[Path, Path]:
    """A server certificate for C{hostname} and 127.0.0.1 issued by C{ca}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    _, caCert, caKey = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(
        hostname,
        caCert.subject,
        caKey,
        key.public_key(),
        [
            (_serverNames(hostname), False),
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ],
    )
    certPath, keyPath = directory / "leaf.pem", directory / "leaf.key"
    certPath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _writeKey(keyPath, key)
    return certPath, keyPath


def makeIssuedCertificate(
    directory: Path,
    ca,
    name: str = "issued",
    *,
    commonName: str = "localhost",
    dnsNames=(),
    ipAddresses=(),
    validDays: tuple[float, float] = (-1, 30),
    clientAuth: bool = False,
) -> tuple[Path, Path]:
    """
    A certificate issued by C{ca} (or self-signed when C{ca} is None) with a
    chosen subject CN, subjectAltName entries (none at all when both lists
    are empty) and validity window (days from now): (cert, key) paths named
    C{name}.pem / C{name}.key.  C{clientAuth} makes it a client certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    if ca is None:
        issuer, signingKey = subject, key
    else:
        _, caCert, signingKey = ca
        issuer = caCert.subject
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if clientAuth else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=validDays[0]))
        .not_valid_after(now + datetime.timedelta(days=validDays[1]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    names = [x509.DNSName(n) for n in dnsNames]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ipAddresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(signingKey, hashes.SHA256())
    certPath, keyPath = directory / f"{name}.pem", directory / f"{name}.key"
    certPath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _writeKey(keyPath, key)
    return certPath, keyPath


class Echo(WebSocketProtocol):
    """
    The tests' one echo protocol: sends every message back, except
    C{"close-please"}, which it answers by closing with 4001 "as you wish".

    C{closed} fires with (code, reason, wasClean); C{wasPaused} tells
    whether the transport ever paused it; C{ownsTransport} whether the
    transport calls it directly (the hand-off switched the transport).  A
    factory with an C{instances} list gets each opened connection appended.
    """

    def connectionMade(self):
        self.closed = Deferred()
        self.wasPaused = False
        own = getattr(self.transport, "__dict__", {})
        self.ownsTransport = self in (own.get("wrappedProtocol"), own.get("protocol"))
        instances = getattr(self.factory, "instances", None)
        if instances is not None:
            instances.append(self)

    def messageReceived(self, message):
        if message == "close-please":
            self.close(4001, "as you wish")
        else:
            self.sendMessage(message)

    def pauseProducing(self):
        self.wasPaused = True
        super().pauseProducing()

    def connectionClosed(self, code, reason, wasClean):
        self.closed.callback((code, reason, wasClean))


class EchoFactory(WebSocketServerFactory):
    """A server factory of C{Echo}s that keeps each opened one (C{instances})."""

    protocol = Echo

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.instances: list[Echo] = []

    @property
    def open(self) -> int:
        return sum(1 for p in self.instances if not p.closed.called)


class Client(WebSocketProtocol):
    """The client-side recorder: messages in a queue, the close in a Deferred."""

    def connectionMade(self):
        self.messages = DeferredQueue()
        self.closed = Deferred()

    def messageReceived(self, message):
        self.messages.put(message)

    def connectionClosed(self, code, reason, wasClean):
        self.closed.callback((code, reason, wasClean))


class Recorder(Protocol):
    """
    The tests' one recorder of a plain protocol's connection events:
    C{made}, the C{chunks} received (C{received} joins them) and the
    C{lost} reason.  C{greeting} is written as the connection is made.
    """

    def __init__(self, greeting: bytes = b""):
        self.greeting = greeting
        self.chunks: list[bytes] = []
        self.made = False
        self.lost = None

    @property
    def received(self) -> bytes:
        return b"".join(self.chunks)

    def connectionMade(self):
        self.made = True
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data):
        self.chunks.append(data)

    def connectionLost(self, reason):
        self.lost = reason


class RecorderFactory(Factory):
    """Builds C{Recorder}s and keeps each one (C{built}) and its address."""

    protocol = Recorder

    def __init__(self):
        self.built: list[Recorder] = []
        self.addresses: list = []

    def buildProtocol(self, addr):
        p = super().buildProtocol(addr)
        self.built.append(p)
        self.addresses.append(addr)
        return p


@implementer(IPushProducer)
class Producer:
    """The tests' one push producer: C{state} is the last thing it was told."""

    def __init__(self):
        self.state = "producing"

    def pauseProducing(self):
        self.state = "paused"

    def resumeProducing(self):
        self.state = "producing"

    def stopProducing(self):
        self.state = "stopped"


class Pipe(Protocol):
    """The proxy's leg to the target: what it reads goes to the client."""

    def __init__(self, front):
        self.front = front

    def dataReceived(self, data):
        self.front.transport.write(data)

    def connectionLost(self, reason):
        self.front.transport.loseConnection()


class ConnectProxy(Protocol):
    """
    An HTTP CONNECT proxy that opens real connections to the target (the
    interop tier): its factory has C{requests} (method, target, headers)
    and C{auth} (the Proxy-Authorization it requires, or None).
    """

    def connectionMade(self):
        self.buffer = b""
        self.peer = None
        self.pending = None

    def dataReceived(self, data):
        if self.peer is not None:
            self.peer.transport.write(data)
            return
        if self.pending is not None:
            self.pending.append(data)
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        self.factory.requests.append((method, target, headers))
        if self.factory.auth and headers.get("Proxy-Authorization") != self.factory.auth:
            self.transport.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            self.transport.loseConnection()
            return
        from twisted.internet import reactor  # interop tier only: not at import time
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        host, _, port = target.rpartition(":")
        self.pending = [rest] if rest else []
        endpoint = TCP4ClientEndpoint(reactor, host.strip("[]"), int(port))
        connectProtocol(endpoint, Pipe(self)).addCallbacks(self._connected, self._failed)

    def _connected(self, pipe):
        self.peer = pipe
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for data in self.pending:
            pipe.transport.write(data)

    def _failed(self, reason):
        self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.peer is not None:
            self.peer.transport.loseConnection()

class MemoryConnectProxy(Protocol):
    """
    An HTTP CONNECT proxy in memory: answers the CONNECT (C{factory.answer}
    for anything but 200), then plays the target itself -- a protocol of
    C{factory.target} gets the rest of the bytes.
    """

    def connectionMade(self):
        self.buffer = b""
        self.inner = None

    def dataReceived(self, data):
        if self.inner is not None:
            self.inner.dataReceived(data)
            return
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        self.factory.requests.append((method, target, headers))
        answer = self.factory.answer(headers)
        if answer is None:
            return  # a silent proxy
        self.transport.write(answer)
        if not answer.startswith(b"HTTP/1.1 200"):
            self.transport.loseConnection()
            return
        self.inner = self.factory.target.buildProtocol(None)
        self.inner.makeConnection(self.transport)
        if rest:
            self.inner.dataReceived(rest)

    def connectionLost(self, reason):
        if self.inner is not None:
            self.inner.connectionLost(reason)


def memoryProxy(reactor, target, answer=lambda headers: b"HTTP/1.1 200 Connection established\r\n\r\n"):
    """
    A L{MemoryConnectProxy} listening on C{reactor}'s port 3128 (a memory
    reactor); C{factory.requests} keeps each CONNECT's (method, target, headers).
    """
    factory = Factory.forProtocol(MemoryConnectProxy)
    factory.requests = []
    factory.target = target
    factory.answer = answer
    reactor.listenTCP(3128, factory)
    return factory


def deflateBomb(gib: int = 1) -> bytes:
    """
    A raw deflate stream of C{gib} GiB of zeros, about 1 MiB long, built
    without inflating anything: after the first 16 MiB chunk every chunk
    zlib emits for the next 16 MiB of zeros is byte-identical.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    zeros = bytes(16 << 20)
    first = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    second = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    third = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    assert second == third
    return (first + second * (64 * gib - 1))[:-4]


def jsonRecords(n: int, seed: int = 7) -> list[str]:
    """C{n} JSON records of a trading feed: realistic, compressible messages."""
    rnd = random.Random(seed)
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    records = []
    for i in range(n):
        records.append(
            json.dumps(
                {
                    "id": 100000 + i,
                    "type": rnd.choice(["trade", "quote", "heartbeat", "order"]),
                    "user": {"name": rnd.choice(names), "id": rnd.randrange(10000)},
                    "symbol": rnd.choice(["BTC-USD", "ETH-USD", "SOL-USD"]),
                    "price": round(rnd.uniform(10, 50000), 2),
                    "size": round(rnd.uniform(0, 5), 6),
                    "tags": rnd.sample(["fast", "big", "retail", "pro", "api"], 2),
                    "ts": 1700000000000 + i * 37,
                }
            )
        )
    return records


def loadExample(name: str):
    """examples/C{name}.py as a module (the examples are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The peer address PeerTransport reports unless told otherwise.
PEER_ADDRESS = IPv4Address("TCP", "192.0.2.7", 40123)


class PeerTransport(StringTransport):
    """
    A memory transport that behaves like TCP towards its producer: once
    more than C{highWater} bytes wait unsent it pauses the producer, and
    L{drain} (the peer reading everything) resumes it.  Every write is kept
    in C{writes}.  loseConnection completes (C{protocol}.connectionLost)
    only when nothing waits; abortConnection drops at once.
    """

    def __init__(self, highWater: int = 4096, peer: IPv4Address = PEER_ADDRESS) -> None:
        super().__init__(peerAddress=peer)
        self.highWater = highWater
        self.unsent = 0
        self.full = False
        self.aborted = False
        self.writes: list[bytes] = []
        self.protocol = None

    def write(self, data):
        self.writes.append(data)
        super().write(data)
        self.unsent += len(data)
        if self.producer is not None and self.streaming and not self.full and self.unsent > self.highWater:
            self.full = True
            self.producer.pauseProducing()

    def drain(self):
        self.unsent = 0
        if self.full:
            self.full = False
            if self.producer is not None:
                self.producer.resumeProducing()
        if self.disconnecting and self.connected:
            self._lost(None)

    def loseConnection(self):
        self.disconnecting = True
        if self.unsent == 0:
            self._lost(None)

    def abortConnection(self):
        self.aborted = True
        self._lost(Failure(ConnectionAborted()))

    def _lost(self, reason):
        if self.connected and self.protocol is not None:
            self.connected = False
            self.protocol.connectionLost(reason)


def openedServer(factory, transport, path: str = "/"):
    """Run a server handshake for C{path} on C{transport}; the open app protocol, output cleared."""
    handshake = factory.buildProtocol(None)
    transport.protocol = handshake
    handshake.makeConnection(transport)
    handshake.dataReceived(upgradeRequest(path))
    transport.clear()
    return transport.protocol


def openedClient(factory, transport):
    """Run a client handshake on C{transport}, answered 101; the open app protocol, output cleared."""
    handshake = factory.buildProtocol(None)
    transport.protocol = handshake
    handshake.makeConnection(transport)
    key = re.search(rb"Sec-WebSocket-Key: (\S+)", transport.value()).group(1).decode()
    handshake.dataReceived(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {computeAcceptKey(key)}\r\n\r\n".encode()
    )
    transport.clear()
    return transport.protocol


# -- Deferreds driven by a Clock or iosim: fired, or not yet ------------------------


def result(d):
    """What C{d} fired with (it must have); a failure is raised."""
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def failure(d, *types):
    """The exception C{d} failed with (it must have, with one of C{types})."""
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    assert isinstance(out[0], Failure), out[0]
    assert out[0].check(*types), out[0]
    return out[0].value


def pending(d):
    """Whether C{d} has no result yet (a result is left in it)."""
    out = []

    def look(value):
        out.append(value)
        return value

    d.addBoth(look)
    return not out


class MemoryPeer:
    """
    The far end of one server connection on a memory transport: C{send}
    delivers bytes to whichever protocol the transport calls now (so it
    follows hand-offs), C{received} takes what the server wrote.
    """

    def __init__(self, factory, peer: int = 50000, host: int = 8080):
        self.transport = StringTransportWithDisconnection(
            IPv4Address("TCP", "127.0.0.1", host), IPv4Address("TCP", "127.0.0.1", peer)
        )
        self.protocol = factory.buildProtocol(self.transport.getPeer())
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)

    @property
    def connected(self) -> bool:
        return self.transport.connected

    def send(self, data: bytes) -> None:
        assert self.transport.connected, "the server closed the connection"
        self.transport.protocol.dataReceived(data)

    def received(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


def parseResponse(data: bytes, method: str = "GET") -> tuple[int, dict[str, list[str]], bytes]:
    """
    One HTTP/1.x response: (status, headers by lower-case name, body); the
    body is what Content-Length says (none for HEAD).
    """
    head, rest = splitResponse(data)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    length = 0 if method == "HEAD" else int(headers.get("content-length", ["0"])[0])
    assert len(rest) >= length, (length, rest)
    return status, headers, rest[:length]


# -- twistd as a subprocess (the interop tier) ---------------------------------------

DEADLINE = 20.0  # seconds for a server to start, or a process to exit

#: Listen on a port the OS picks, on the loopback interface only.
LOCAL = ["--listen", "tcp:0:interface=127.0.0.1"]


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


def findTwistd(tmpDir: Path) -> Twistd:
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
        raise AssertionError(f"twistd does not list the websocket plugin and {plugin} does not exist")
    pluginDir = tmpDir / "plugin-path" / "twisted" / "plugins"
    pluginDir.mkdir(parents=True)
    shutil.copy(plugin, pluginDir)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(pluginDir.parent.parent), env.get("PYTHONPATH")) if p
    )
    twistd = Twistd(command, env)
    if "websocket" not in twistd.run(["--help"], tmpDir).stdout:
        raise AssertionError("twistd does not list the websocket plugin even with the checkout's plugin module")
    return twistd


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


# -- a throwaway redis-server (interop tier) -------------------------------------------


def freePort() -> int:
    """A TCP port of 127.0.0.1 that is free now, for servers that cannot be given port 0."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """
    A throwaway C{redis-server} (the Debian package) on 127.0.0.1:port,
    persistence off; C{stop} then C{start} again runs a new one on the
    same port.  C{executable} is C{None} when redis-server is not installed.
    """

    def __init__(self, port: int | None = None) -> None:
        import shutil

        self.executable = shutil.which("redis-server")
        self.port = freePort() if port is None else port
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        import socket
        import subprocess
        import time

        if self.executable is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [self.executable, "--save", "", "--appendonly", "no", "--port", str(self.port),
             "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        import subprocess

        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args: str) -> bytes:
        """One command over a short blocking connection (RESP reply, raw)."""
        import socket

        request = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(request)
            return s.recv(4096)

    def subscribers(self, channel: str) -> int:
        """How many connections subscribe to C{channel} (PUBSUB NUMSUB)."""
        reply = self.command("PUBSUB", "NUMSUB", channel)
        # *2 $len channel :count
        return int(reply.rsplit(b":", 1)[1].split(b"\r\n", 1)[0])


# -- node programs (tests/node/*.js) for the interop tier ---------------------------

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE = shutil.which("node")
NODE_INSTALL = "npm ci --prefix tests/node"
NODE_DEADLINE = 10.0  # seconds for any one wait on a node program


def nodeModules() -> Path | None:
    """The node_modules directory holding ws (tests/node's, or C{TWISTED_WS_NODE_MODULES}), or None."""
    given = os.environ.get("TWISTED_WS_NODE_MODULES")
    candidates = [Path(given), Path(given) / "node_modules"] if given else []
    candidates.append(NODE_DIR / "node_modules")
    for candidate in candidates:
        if (candidate / "ws" / "package.json").is_file():
            return candidate
    return None


NODE_MODULES = nodeModules()


def nodeMissing() -> str | None:
    """Why the node programs cannot run here (a skip reason), or None."""
    if NODE is None:
        return f"node is not installed: install nodejs, then run {NODE_INSTALL}"
    if NODE_MODULES is None:
        return (
            "node's ws package is missing from tests/node/node_modules and "
            f"TWISTED_WS_NODE_MODULES: run {NODE_INSTALL}"
        )
    return None


class NodeProcess(ProcessProtocol):
    """
    One node program: its stdout lines, its stderr, and its exit.

    @ivar exitCode: the exit code once L{done} (C{None}: killed by a signal).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.stderr = b""
        self.exitCode: int | None = None
        self.done = False
        self._endWaiters: list[Deferred[int | None]] = []
        self._buffer = b""
        self._waiters: list[tuple[str, Deferred[str]]] = []

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            for waiter in list(self._waiters):
                if line.startswith(waiter[0]):
                    self._waiters.remove(waiter)
                    waiter[1].callback(line)

    def errReceived(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[-8192:]

    def processEnded(self, reason) -> None:
        self.done = True
        self.exitCode = reason.value.exitCode  # None: killed by a signal
        waiters, self._waiters = self._waiters, []
        for prefix, d in waiters:
            d.errback(AssertionError(f"{self.describe()} ended before printing {prefix!r}"))
        endWaiters, self._endWaiters = self._endWaiters, []
        for d in endWaiters:
            d.callback(self.exitCode)

    def whenEnded(self, timeout: float = NODE_DEADLINE) -> Deferred[int | None]:
        """The exit code, within C{timeout} seconds."""
        from twisted.internet import reactor  # interop tier only: not at import time

        if self.done:
            return succeed(self.exitCode)
        d: Deferred[int | None] = Deferred()
        self._endWaiters.append(d)
        return d.addTimeout(timeout, reactor)

    def kill(self) -> Deferred[int | None]:
        """SIGKILL unless it ended; its exit, within L{NODE_DEADLINE}."""
        if not self.done:
            try:
                self.transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
        return self.whenEnded()

    def describe(self) -> str:
        err = self.stderr.decode("utf-8", "replace").strip()
        return f"node {self.name} (exit {self.exitCode}, stderr {err!r})"

    def waitForLine(self, prefix: str) -> Deferred[str]:
        """The first stdout line starting with C{prefix}, within L{NODE_DEADLINE}."""
        from twisted.internet import reactor  # interop tier only: not at import time

        for line in self.lines:
            if line.startswith(prefix):
                return succeed(line)
        d: Deferred[str] = Deferred()
        if self.done:
            d.errback(AssertionError(f"{self.describe()} ended before printing {prefix!r}"))
            return d
        self._waiters.append((prefix, d))
        return d.addTimeout(NODE_DEADLINE, reactor)

    def event(self, line: str) -> dict:
        """The JSON after the first word of C{line} (C{'open {...}'})."""
        return json.loads(line.split(" ", 1)[1])

    def events(self, prefix: str) -> list[dict]:
        """The JSON of every C{prefix} line (the echo server's reports)."""
        return [json.loads(line[len(prefix) + 1 :]) for line in self.lines if line.startswith(prefix + " ")]


def spawnNode(testCase, name: str, *args: str) -> NodeProcess:
    """Run tests/node/C{name} under the reactor; C{testCase}'s cleanup kills it if still running."""
    from twisted.internet import reactor  # interop tier only: not at import time

    process = NodeProcess(name)
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
    reactor.spawnProcess(process, NODE, [NODE, str(NODE_DIR / name), *args], env=env, path=str(NODE_DIR))
    testCase.addCleanup(process.kill)
    return process


__all__ = [
    "RecordingHandler",
    "Echo",
    "EchoFactory",
    "Client",
    "Recorder",
    "RecorderFactory",
    "Producer",
    "DEADLINE",
    "LOCAL",
    "Twistd",
    "findTwistd",
    "Server",
    "ConnectProxy",
    "MemoryConnectProxy",
    "memoryProxy",
    "loadExample",
    "deflateBomb",
    "jsonRecords",
    "PeerTransport",
    "openedServer",
    "openedClient",
    "result",
    "failure",
    "pending",
    "MemoryPeer",
    "parseResponse",
    "KEY",
    "upgradeRequest",
    "clientFrame",
    "serverFrames",
    "splitResponse",
    "makeCertificate",
    "makeCA",
    "makeLeaf",
    "makeIssuedCertificate",
    "generateKey",
    "freePort",
    "RedisServer",
    "NODE",
    "NODE_DIR",
    "NODE_MODULES",
    "nodeMissing",
    "NodeProcess",
    "spawnNode",
]

