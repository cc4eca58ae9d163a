"""
A WebSocket-to-TCP bridge, in the manner of websockify: each WebSocket
connection gets its own TCP connection to a backend, and bytes flow both
ways unchanged.

  - Backend bytes go to the browser as binary messages (one per read).
  - Messages from the browser go to the backend as bytes: binary ones as
    they are, text ones UTF-8 encoded.
  - Flow control both ways, with Twisted's producers: the backend is not
    read while the WebSocket's transport is full, and the WebSocket is not
    read while the backend's is full.  While the backend connection is
    being set up the WebSocket is not read either; only what arrived with
    the handshake can be waiting, and it is bounded (C{maxPendingBytes}).
  - Closing: when the backend closes, the WebSocket is closed with 1000
    after the data already received; when the WebSocket closes, the backend
    connection is closed after the data already sent to it.
  - When the backend cannot be reached, or its connection fails, the
    WebSocket is closed with B{1014 (bad gateway)}, the registered code for
    "the server is a gateway and the upstream failed" -- more precise than
    1011 (internal error), which says the bridge itself broke.

The factory must have a C{target} attribute: an C{IStreamClientEndpoint};
L{targetEndpoint} builds it from an endpoint string.  A TLS target
(C{ssl:} or C{tls:}) always verifies the backend's certificate chain and
hostname and fails closed: Twisted's own C{ssl:} client endpoint verifies
nothing without C{hostname=}, and with it inherits the fail-open hostname
check of C{optionsForClientTLS}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..client.tls import VerifyingClientTLSOptions, loadClientCertificate, loadTrustRoot
from ..core.closecodes import CloseCode
from ..core.connection import State
from ..protocol import WebSocketProtocol
from ..transport import IStreamTransport

__all__ = ["BridgeProtocol", "BackendProtocol", "targetEndpoint"]

_log = Logger()

#: The close code when the backend is unreachable or fails.
BACKEND_FAILED_CODE = CloseCode.BAD_GATEWAY


class BackendProtocol(Protocol):
    """The TCP side of one bridged connection."""

    transport: IStreamTransport

    def __init__(self, bridge: BridgeProtocol) -> None:
        self.bridge = bridge

    def connectionMade(self) -> None:
        self.bridge.backendConnected(self)

    def dataReceived(self, data: bytes) -> None:
        self.bridge.fromBackend(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.bridge.backendLost(reason)


class _BackendFactory(Factory):
    def __init__(self, bridge: BridgeProtocol) -> None:
        self.bridge = bridge

    def buildProtocol(self, addr: Any) -> BackendProtocol:
        return BackendProtocol(self.bridge)


@implementer(IPushProducer)
class _WebSocketReader:
    """
    Registered with the backend's transport: it pauses reading the
    WebSocket while the backend's write buffer is full.
    """

    def __init__(self, bridge: BridgeProtocol) -> None:
        self.bridge = bridge

    def pauseProducing(self) -> None:
        self.bridge._hold("backend-full")

    def resumeProducing(self) -> None:
        self.bridge._release("backend-full")

    def stopProducing(self) -> None:
        pass


class BridgeProtocol(WebSocketProtocol):
    """Relays one WebSocket connection to a new backend connection."""

    #: Most bytes of messages kept while the backend connection is set up.
    maxPendingBytes = 1 << 20

    backend: BackendProtocol | None = None
    _connecting: Deferred[Any] | None = None
    _holds: set[str] = frozenset()  # type: ignore[assignment]  # a set once connected

    def connectionMade(self) -> None:
        self._holds: set[str] = set()
        self._pending: list[bytes] = []
        self._pendingBytes = 0
        self._hold("connecting")
        target: IStreamClientEndpoint = self.factory.target
        d = self._connecting = target.connect(_BackendFactory(self))
        d.addErrback(self._connectFailed)

    # -- reading the WebSocket, held while the backend cannot take more ------

    def _hold(self, why: str) -> None:
        self._holds.add(why)
        self._applyHolds()

    def _release(self, why: str) -> None:
        self._holds.discard(why)
        self._applyHolds()

    def _applyHolds(self) -> None:
        conn = self._conn
        if self._holds and self.connected and conn is not None and conn.state is State.OPEN:
            self.pauseReading()
        else:
            self.resumeReading()

    # -- WebSocket to backend ---------------------------------------------

    def messageReceived(self, message: str | bytes) -> None:
        data = message.encode("utf-8") if isinstance(message, str) else message
        if not data:
            return
        backend = self.backend
        if backend is not None:
            backend.transport.write(data)
            return
        self._pending.append(data)
        self._pendingBytes += len(data)
        if self._pendingBytes > self.maxPendingBytes:
            self._pending = []
            self._pendingBytes = 0
            self.close(CloseCode.POLICY_VIOLATION, "too much data before the backend connected")

    def connectionClosed(self, code: int, reason: str, wasClean: bool) -> None:
        d, self._connecting = self._connecting, None
        if d is not None and self.backend is None:
            d.cancel()
        backend = self.backend
        if backend is not None:
            backend.transport.loseConnection()

    # -- the backend's side ---------------------------------------------

    def backendConnected(self, backend: BackendProtocol) -> None:
        """The backend accepted: send what waited, then relay both ways."""
        self._connecting = None
        if not self.connected or self._conn is None or self._conn.state is not State.OPEN:
            backend.transport.loseConnection()
            return
        self.backend = backend
        transport = backend.transport
        pending, self._pending, self._pendingBytes = self._pending, [], 0
        if pending:
            transport.writeSequence(pending)
        transport.registerProducer(_WebSocketReader(self), True)
        self.registerProducer(transport, True)
        self._release("connecting")

    def _connectFailed(self, failure: Failure) -> None:
        self._connecting = None
        if not self.connected:
            return
        _log.warn(
            "bridge: backend {target} unreachable for {peer}: {error}",
            target=getattr(self.factory, "targetDescription", self.factory.target),
            peer=self._peer(),
            error=failure.getErrorMessage(),
        )
        self.close(BACKEND_FAILED_CODE, "backend unreachable")

    def fromBackend(self, data: bytes) -> None:
        """Backend bytes: one binary message."""
        self.sendMessage(data)

    def backendLost(self, reason: Failure | None) -> None:
        """The backend connection ended; end the WebSocket after its data."""
        if self.backend is None:
            return
        self.backend = None
        if self._producer is not None:
            self.unregisterProducer()
        self._holds.clear()
        self._applyHolds()
        if not self.connected:
            return
        if reason is None or reason.check(ConnectionDone):
            self.close(CloseCode.NORMAL_CLOSURE, "backend closed the connection")
        else:
            _log.info(
                "bridge: backend connection of {peer} failed: {error}",
                peer=self._peer(),
                error=reason.getErrorMessage(),
            )
            self.close(BACKEND_FAILED_CODE, "backend connection failed")


# -- the backend endpoint ------------------------------------------------------

#: For C{ssl:} and C{tls:} targets: our parameter -> the names each accepts.
_TLS_PARAMETERS = {
    "hostname": ("hostname",),
    "trust": ("caCertsDir", "trustRoots"),
    "certificate": ("certKey", "certificate"),
    "privateKey": ("privateKey",),
}


def _splitDescription(text: str) -> tuple[list[str], dict[str, str]]:
    """Positional and keyword parameters of an endpoint string (after the
    kind), with Twisted's quoting: C{\\} escapes the next character."""
    args: list[str] = []
    kwargs: dict[str, str] = {}
    key: str | None = None
    buf: list[str] = []

    def finish() -> None:
        value = "".join(buf)
        if key is None:
            args.append(value)
        else:
            kwargs[key] = value

    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
            continue
        if c == ":":
            finish()
            key, buf = None, []
        elif c == "=" and key is None:
            key, buf = "".join(buf), []
        else:
            buf.append(c)
        i += 1
    finish()
    return args, kwargs


def targetEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint:
    """
    The backend endpoint for an endpoint string.  C{ssl:host:port} and
    C{tls:host:port} (with C{hostname=}, C{caCertsDir=}/C{trustRoots=} -- a
    directory of PEM files or one PEM file; default: the platform's CAs --
    and C{certKey=}/C{certificate=} plus C{privateKey=} for a client
    certificate) become a TCP connection wrapped in
    L{VerifyingClientTLSOptions}; anything else goes to C{clientFromString}.

    @raise ValueError: a malformed or unsupported TLS description.
    """
    from twisted.internet.endpoints import clientFromString, quoteStringArgument, wrapClientTLS

    kind, _, rest = description.partition(":")
    if kind.strip().lower() not in ("ssl", "tls"):
        endpoint: IStreamClientEndpoint = clientFromString(reactor, description)
        return endpoint
    args, kwargs = _splitDescription(rest)
    tcp = dict(zip(("host", "port"), args))
    if len(args) > 2:
        raise ValueError(f"too many positional parameters in {description!r}")
    tls: dict[str, str] = {}
    for name, value in kwargs.items():
        ours = next((k for k, names in _TLS_PARAMETERS.items() if name in names), None)
        if ours is not None:
            tls[ours] = value
        elif name in ("host", "port", "timeout", "bindAddress"):
            tcp[name] = value
        else:
            raise ValueError(f"unknown parameter {name!r} for a TLS target")
    if "host" not in tcp or "port" not in tcp:
        raise ValueError(f"a TLS target needs a host and a port: {description!r}")
    certificate = None
    if "certificate" in tls:
        certificate = loadClientCertificate((tls["certificate"], tls.get("privateKey", tls["certificate"])))
    creator = VerifyingClientTLSOptions(
        tls.get("hostname", tcp["host"]),
        trustRoot=loadTrustRoot(tls.get("trust")),
        clientCertificate=certificate,
    )
    inner = "tcp:" + ":".join(f"{k}={quoteStringArgument(v)}" for k, v in tcp.items())
    return wrapClientTLS(creator, clientFromString(reactor, inner))
