"""
The HTTP/2 WebSocket client (RFC 8441) on memory transports: against an
h2 server written here with the C{h2} library directly (L{FakeH2Server},
whose WebSocket side is our server-role protocol on a minimal stream
transport of its own), every timeout driven by a Clock.
"""

from __future__ import annotations

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.settings import SettingCodes, Settings
from OpenSSL import SSL
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions, PrivateCertificate
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter

from twisted_ws import (
    CertificateVerificationError,
    ClientPerMessageDeflate,
    HandshakeClosed,
    HTTP2NotSupported,
    InvalidServerResponse,
    PerMessageDeflate,
    WebSocketClientEndpoint,
    WebSocketClientFactory,
    WebSocketHandshakeRejected,
    WebSocketOpenTimeout,
    WebSocketProtocol,
    connectWS,
)
from twisted_ws.core.handshake import H2ClientHandshake, negotiate, validateExtendedConnect
from twisted_ws.core.options import WebSocketOptions
from twisted_ws.http2.client import ALPN_H2, STREAM_WINDOW, H2ClientProtocol
from wshelpers import failure, makeCertificate, memoryProxy, result

ADDRESS = IPv4Address("TCP", "127.0.0.1", 443)


class ServerStream:
    """
    The fake server's end of one WebSocket stream: a transport for our
    server-role L{WebSocketProtocol}, written with the h2 library alone
    (its writes wait here for window, as h2 requires).
    """

    def __init__(self, server: FakeH2Server, streamID: int) -> None:
        self.server, self.streamID = server, streamID
        self.pending = b""
        self.ending = False
        self.ended = False
        self.protocol: WebSocketProtocol | None = None

    def write(self, data: bytes) -> None:
        if not self.ended:
            self.pending += data
            self.flush()

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def flush(self) -> None:
        h2 = self.server.h2
        while self.pending and not self.ended:
            window = min(h2.local_flow_control_window(self.streamID), h2.max_outbound_frame_size)
            if window <= 0:
                return
            chunk, self.pending = self.pending[:window], self.pending[window:]
            h2.send_data(self.streamID, chunk)
        if self.ending and not self.pending and not self.ended:
            self.ended = True
            h2.end_stream(self.streamID)

    def loseConnection(self) -> None:
        self.ending = True
        self.flush()

    def abortConnection(self) -> None:
        if not self.ended:
            self.ended = True
            self.server.h2.reset_stream(self.streamID, ErrorCodes.CANCEL)
            self.lost(error.ConnectionAborted())

    def lost(self, reason) -> None:
        self.ended = True
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.connectionLost(Failure(reason))

    def getPeer(self):
        return IPv4Address("TCP", "127.0.0.1", 50000)

    def getHost(self):
        return ADDRESS

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def registerProducer(self, producer, streaming) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


class ServerEcho(WebSocketProtocol):
    """The fake server's WebSocket: echoes, records what it got."""

    def connectionMade(self):
        self.received = []
        self.closedWith = None

    def messageReceived(self, message):
        self.received.append(message)
        self.sendMessage(message)

    def connectionClosed(self, code, reason, wasClean):
        self.closedWith = (code, reason, wasClean)


class FakeH2Server:
    """
    An HTTP/2 server made of the h2 library: C{answer(streamID, headers)}
    decides each request (default: 200 and a L{ServerEcho} on the stream).
    """

    def __init__(self, enableConnect: bool = True, extensions=(), subprotocols=()) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        values = {SettingCodes.MAX_CONCURRENT_STREAMS: 10}
        if enableConnect:
            values[SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        self.h2.local_settings = Settings(client=False, initial_values=values)
        self.h2.initiate_connection()
        self.events: list = []
        self.requests: dict[int, list[tuple[str, str]]] = {}
        self.rawData: dict[int, bytes] = {}
        self.streams: dict[int, ServerStream] = {}
        self.extensions = list(extensions)
        self.subprotocols = list(subprotocols)
        self.answer = self.accept
        self.clock = Clock()

    def accept(self, streamID: int, headers: list[tuple[str, str]]) -> None:
        request = validateExtendedConnect(headers)
        terms = negotiate(request, subprotocols=self.subprotocols, extensionFactories=self.extensions)
        fields = [(":status", "200")] + [(n.lower(), v) for n, v in terms.headers]
        self.h2.send_headers(streamID, fields)
        stream = self.streams[streamID] = ServerStream(self, streamID)
        protocol = stream.protocol = ServerEcho()
        protocol.clock = self.clock  # never the global reactor
        protocol.options = WebSocketOptions(pingInterval=None, maxMessageSize=8 << 20)
        protocol.extensions = list(terms.extensions)
        protocol.subprotocol = terms.subprotocol
        protocol.makeConnection(stream)

    def receive(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            self.events.append(event)
            streamID = getattr(event, "stream_id", None)
            stream = self.streams.get(streamID)
            if isinstance(event, RequestReceived):
                headers = [(n.decode(), v.decode()) for n, v in event.headers]
                self.requests[event.stream_id] = headers
                self.answer(event.stream_id, headers)
            elif isinstance(event, DataReceived):
                self.rawData[streamID] = self.rawData.get(streamID, b"") + event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, streamID)
                if stream is not None and stream.protocol is not None:
                    stream.protocol.dataReceived(event.data)
            elif isinstance(event, StreamEnded) and stream is not None:
                stream.loseConnection()
                stream.lost(error.ConnectionDone())
            elif isinstance(event, StreamReset) and stream is not None:
                stream.lost(error.ConnectionLost())
            elif isinstance(event, (WindowUpdated, RemoteSettingsChanged)):
                for each in self.streams.values():
                    each.flush()

    def send(self) -> bytes:
        return self.h2.data_to_send()

    def received(self, kind) -> list:
        return [event for event in self.events if isinstance(event, kind)]


class Client(WebSocketProtocol):
    def connectionMade(self):
        self.received = []
        self.closedWith = None

    def messageReceived(self, message):
        self.received.append(message)

    def connectionClosed(self, code, reason, wasClean):
        self.closedWith = (code, reason, wasClean)


class Connection:
    """Our client on a string transport, joined to a L{FakeH2Server} by L{pump}."""

    def __init__(self, server: FakeH2Server | None = None, url="wss://example.com/chat?room=1", **kwargs):
        self.server = server if server is not None else FakeH2Server()
        self.clock = Clock()
        kwargs.setdefault("pingInterval", None)
        self.factory = WebSocketClientFactory(Client, url, clock=self.clock, **kwargs)
        self.factory.handshakeProtocol = H2ClientProtocol
        self.transport = StringTransportWithDisconnection(ADDRESS, IPv4Address("TCP", "127.0.0.1", 50000))
        self.h2 = self.factory.buildProtocol(ADDRESS)
        self.transport.protocol = self.h2
        self.opened = self.h2.whenOpen()
        self.outcome: list = []
        self.opened.addBoth(self.outcome.append)
        self.h2.makeConnection(self.transport)

    def toServer(self) -> None:
        data = self.transport.value()
        self.transport.clear()
        if data:
            self.server.receive(data)

    def toClient(self) -> bytes:
        data = self.server.send()
        if data and self.transport.connected:
            self.h2.dataReceived(data)
        return data

    def pump(self, rounds: int = 200) -> None:
        for _ in range(rounds):
            self.toServer()
            if not self.toClient() and not self.transport.value():
                return
        raise AssertionError(f"still talking after {rounds} rounds")

    def protocol(self) -> Client:
        assert len(self.outcome) == 1, self.outcome
        assert isinstance(self.outcome[0], WebSocketProtocol), self.outcome[0]
        return self.outcome[0]

    def failure(self, kind) -> Exception:
        assert len(self.outcome) == 1, self.outcome
        result = self.outcome[0]
        assert isinstance(result, Failure), result
        assert result.check(kind), result
        return result.value


# -- the settings gate and the request ---------------------------------------


def test_connectWaitsForSettingsThenSendsExtendedConnect():
    """
    Nothing but the preface and our SETTINGS (no push) goes out before the
    server's SETTINGS; then one extended CONNECT with RFC 8441's fields and
    no HTTP/1.1 ones.
    """
    c = Connection(subprotocols=["chat.v2", "chat.v1"], origin="https://example.com", headers={"X-Token": "t"})
    c.toServer()
    assert c.server.received(RequestReceived) == []
    assert c.server.h2.remote_settings.enable_push == 0
    assert c.server.h2.remote_settings.initial_window_size == STREAM_WINDOW
    c.toClient()
    c.toServer()
    [request] = c.server.received(RequestReceived)
    assert request.stream_id == 1
    fields = [(n.decode(), v.decode()) for n, v in request.headers]
    assert fields[:6] == [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/chat?room=1"),
        (":authority", "example.com"),
        ("sec-websocket-version", "13"),
    ]
    names = {name for name, _ in fields}
    assert ("sec-websocket-protocol", "chat.v2, chat.v1") in fields
    assert ("origin", "https://example.com") in fields
    assert ("x-token", "t") in fields
    assert not names & {"sec-websocket-key", "upgrade", "connection", "host"}
    assert c.h2.request.httpVersion == "2"


def test_missingConnectProtocolSettingIsHTTP2NotSupported():
    """A server without SETTINGS_ENABLE_CONNECT_PROTOCOL: no CONNECT, a clear error, closed."""
    c = Connection(FakeH2Server(enableConnect=False))
    c.pump()
    err = c.failure(HTTP2NotSupported)
    assert "SETTINGS_ENABLE_CONNECT_PROTOCOL" in str(err)
    assert c.server.received(RequestReceived) == []
    assert not c.transport.connected


class ALPNTransport(StringTransportWithDisconnection):
    negotiatedProtocol: bytes | None = None


@pytest.mark.parametrize("chosen", [None, b"http/1.1"])
def test_alpnOtherThanH2IsHTTP2NotSupported(chosen):
    """TLS did not pick h2: fail closed as soon as the TLS handshake is done."""
    clock = Clock()
    factory = WebSocketClientFactory(Client, "wss://example.com/", clock=clock)
    factory.handshakeProtocol = H2ClientProtocol
    transport = ALPNTransport()
    transport.negotiatedProtocol = chosen
    protocol = factory.buildProtocol(ADDRESS)
    transport.protocol = protocol
    outcome = []
    protocol.whenOpen().addBoth(outcome.append)
    protocol.makeConnection(transport)
    protocol.handshakeCompleted()
    assert outcome[0].check(HTTP2NotSupported), outcome
    assert "ALPN" in str(outcome[0].value)
    assert transport.disconnected  # aborted
    # Bytes from an HTTP/1.1 server after that are not parsed as h2.
    protocol.dataReceived(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert len(outcome) == 1


def test_alpnH2Proceeds():
    transport = ALPNTransport()
    transport.negotiatedProtocol = ALPN_H2
    factory = WebSocketClientFactory(Client, "wss://example.com/", clock=Clock())
    factory.handshakeProtocol = H2ClientProtocol
    protocol = factory.buildProtocol(ADDRESS)
    transport.protocol = protocol
    outcome = []
    protocol.whenOpen().addBoth(outcome.append)
    protocol.makeConnection(transport)
    protocol.handshakeCompleted()
    assert outcome == [] and transport.connected


# -- open, echo, close --------------------------------------------------------


def test_200OpensAndEchoesBothWaysThenClosesCleanly():
    """
    A 200 opens the WebSocket: our frames are masked (the server-role
    protocol would fail a stream of unmasked ones with 1002), text and
    binary come back, and the close ends the stream and the connection.
    """
    c = Connection(subprotocols=["chat"], server=FakeH2Server(subprotocols=["chat"]))
    c.pump()
    protocol = c.protocol()
    assert protocol.isClient
    assert protocol.subprotocol == "chat"
    assert protocol.request.httpVersion == "2"
    assert protocol.response.status == 200
    protocol.sendMessage("h\u00e9llo")
    protocol.sendMessage(b"\x00\xff" * 10)
    c.pump()
    server = c.server.streams[1].protocol
    assert server.received == ["h\u00e9llo", b"\x00\xff" * 10]
    assert protocol.received == ["h\u00e9llo", b"\x00\xff" * 10]
    raw = c.server.rawData[1]
    assert raw[1] & 0x80, "client frames must be masked"
    closed = []
    protocol.close(1000, "bye").addCallback(closed.append)
    c.pump()
    assert (protocol.closedWith[0], protocol.closedWith[2]) == (1000, True)
    assert server.closedWith == (1000, "bye", True)
    assert closed and closed[0].wasClean
    assert len(c.server.received(StreamEnded)) == 1  # our END_STREAM
    assert not c.transport.connected
    lost = []
    protocol.transport.owner.whenConnectionLost().addCallback(lost.append)
    assert lost == [None]


def test_serverClosesFirst():
    """The server's Close and END_STREAM: a clean close at our end too."""
    c = Connection()
    c.pump()
    protocol = c.protocol()
    c.server.streams[1].protocol.close(4000, "done")
    c.pump()
    assert protocol.closedWith == (4000, "done", True)
    assert not c.transport.connected


def test_largeMessagesWithinFlowControlWindows():
    """A message bigger than every window crosses both ways intact."""
    c = Connection(maxMessageSize=8 << 20)
    c.server.h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    c.pump()
    protocol = c.protocol()
    big = bytes(range(256)) * 4096  # 1 MiB
    protocol.sendMessage(big)
    c.pump(2000)
    assert c.server.streams[1].protocol.received == [big]
    assert protocol.received == [big]


def test_permessageDeflateOverH2():
    """The deflate offer goes out as a header; the 200's answer makes it live both ways."""
    c = Connection(
        server=FakeH2Server(extensions=[PerMessageDeflate()]),
        extensions=[ClientPerMessageDeflate()],
    )
    c.pump()
    offer = dict(c.server.requests[1])["sec-websocket-extensions"]
    assert offer.startswith("permessage-deflate")
    protocol = c.protocol()
    assert [e.name for e in protocol.extensions] == ["permessage-deflate"]
    text = "compress me " * 200
    protocol.sendMessage(text)
    c.pump()
    raw = c.server.rawData[1]
    assert raw[0] & 0x40, "RSV1: the message was compressed"
    assert len(raw) < len(text) // 4
    assert protocol.received == [text]
    assert [e.name for e in c.server.streams[1].protocol.extensions] == ["permessage-deflate"]


# -- refusals and broken answers -------------------------------------------


def test_refusalCarriesStatusHeadersAndBody():
    c = Connection()

    def refuse(streamID, headers):
        c.server.h2.send_headers(streamID, [(":status", "403"), ("x-why", "no entry")])
        c.server.h2.send_data(streamID, b"go ")
        c.server.h2.send_data(streamID, b"away", end_stream=True)

    c.server.answer = refuse
    c.pump()
    err = c.failure(WebSocketHandshakeRejected)
    assert err.status == 403
    assert err.header("X-Why") == "no entry"
    assert err.body == b"go away"
    assert not c.transport.connected


def test_refusalWithSlowBodyAtOpenTimeout():
    """The open timeout while a refusal's body trickles: the refusal, with what arrived."""
    c = Connection(openTimeout=5)

    def refuse(streamID, headers):
        c.server.h2.send_headers(streamID, [(":status", "503")])
        c.server.h2.send_data(streamID, b"busy")

    c.server.answer = refuse
    c.pump()
    assert c.outcome == []
    c.clock.advance(5)
    err = c.failure(WebSocketHandshakeRejected)
    assert (err.status, err.body) == (503, b"busy")


def test_200WithUnofferedSubprotocolIsInvalid():
    c = Connection()

    def answer(streamID, headers):
        c.server.h2.send_headers(streamID, [(":status", "200"), ("sec-websocket-protocol", "evil")])

    c.server.answer = answer
    c.pump()
    err = c.failure(InvalidServerResponse)
    assert "evil" in str(err)
    assert c.server.received(StreamReset)  # the stream was cancelled
    assert not c.transport.connected


def test_resetBeforeAnswerIsHandshakeClosed():
    c = Connection()
    c.server.answer = lambda streamID, headers: c.server.h2.reset_stream(streamID, ErrorCodes.REFUSED_STREAM)
    c.pump()
    err = c.failure(HandshakeClosed)
    assert "REFUSED_STREAM" in str(err)


def test_connectionLostBeforeAnswer():
    c = Connection()
    c.server.answer = lambda streamID, headers: None
    c.pump()
    c.transport.loseConnection()
    c.failure(HandshakeClosed)


def test_transportErrorBeforeAnswerIsReported():
    """A transport's own error (e.g. TLS verification) is the reason, as over HTTP/1.1."""
    c = Connection()
    c.h2.connectionLost(Failure(ValueError("certificate for 'example.com' is not trusted")))
    c.failure(ValueError)


# A CONTINUATION frame out of the blue: an HTTP/2 connection error.
GARBAGE = b"\x00\x00\x04\x09\x00\x00\x00\x00\x01garbage-not-a-frame"


def test_protocolErrorFromServerBeforeAnswer():
    c = Connection()
    c.server.answer = lambda streamID, headers: None
    c.pump()
    c.h2.dataReceived(GARBAGE)
    err = c.failure(InvalidServerResponse)
    assert "HTTP/2 protocol error" in str(err)
    assert not c.transport.connected


def test_protocolErrorFromServerAfterOpenIs1006():
    c = Connection()
    c.pump()
    protocol = c.protocol()
    c.h2.dataReceived(GARBAGE)
    assert protocol.closedWith[0] == 1006
    assert not c.transport.connected


# -- the end of the stream after open ----------------------------------------


def test_resetAfterOpenIs1006():
    """RST_STREAM from the server: the WebSocket is gone, not cleanly (1006)."""
    c = Connection()
    c.pump()
    protocol = c.protocol()
    c.server.streams[1].abortConnection()
    c.pump()
    assert protocol.closedWith[0] == 1006 and protocol.closedWith[2] is False
    assert not c.transport.connected


def test_goawayAfterOpenIs1006():
    c = Connection()
    c.pump()
    protocol = c.protocol()
    c.server.h2.close_connection(ErrorCodes.NO_ERROR)
    c.pump()
    assert protocol.closedWith[0] == 1006
    assert not c.transport.connected


def test_abortSendsRstStreamCancel():
    c = Connection()
    c.pump()
    protocol = c.protocol()
    protocol.abortConnection()
    c.pump()
    [reset] = c.server.received(StreamReset)
    assert reset.error_code == ErrorCodes.CANCEL
    assert protocol.closedWith[0] == 1006
    assert not c.transport.connected


def test_tcpLostAfterOpen():
    c = Connection()
    c.pump()
    protocol = c.protocol()
    c.transport.loseConnection()
    assert protocol.closedWith[0] == 1006


# -- timeouts and cancellation -------------------------------------------------


def test_openTimeoutBeforeSettings():
    c = Connection(openTimeout=3)
    c.clock.advance(2.9)
    assert c.outcome == []
    c.clock.advance(0.1)
    err = c.failure(WebSocketOpenTimeout)
    assert err.timeout == 3
    assert c.transport.disconnected


def test_openTimeoutStopsOnceOpen():
    c = Connection(openTimeout=3)
    c.pump()
    protocol = c.protocol()
    c.clock.advance(10)
    assert protocol.closedWith is None
    assert c.transport.connected


def test_cancel():
    c = Connection()
    c.toServer()
    c.opened.cancel()
    c.failure(CancelledError)
    assert c.transport.disconnected


# -- the endpoint option --------------------------------------------------------


def test_http2NeedsWss():
    with pytest.raises(ValueError, match="wss://"):
        WebSocketClientEndpoint(MemoryReactorClock(), "ws://example.com/", http2=True)
    with pytest.raises(ValueError, match="wss://"):
        connectWS("ws://example.com/", reactor=MemoryReactorClock(), http2=True)


class FakeH2ServerProtocol(Protocol):
    """L{FakeH2Server} as the protocol of a (TLS) connection."""

    def __init__(self, **kwargs):
        self.server = FakeH2Server(**kwargs)

    def connectionMade(self):
        self.flush()

    def dataReceived(self, data):
        self.server.receive(data)
        self.flush()

    def flush(self):
        data = self.server.send()
        if data:
            self.transport.write(data)


class PlainServerContext:
    """A TLS server context with no ALPN at all (Twisted's options always answer ALPN)."""

    def __init__(self, certPath, keyPath):
        self.context = SSL.Context(SSL.TLS_METHOD)
        self.context.use_certificate_file(str(certPath))
        self.context.use_privatekey_file(str(keyPath))

    def getContext(self):
        return self.context


def tlsListener(reactor, directory, alpn=(b"h2",), **serverKwargs):
    """A TLS listener on port 443 of C{reactor} with a self-signed cert; its CA path."""
    certPath, keyPath = makeCertificate(directory, "localhost")
    identity = PrivateCertificate.loadPEM(certPath.read_bytes() + keyPath.read_bytes())
    if alpn:
        options = CertificateOptions(
            privateKey=identity.privateKey.original,
            certificate=identity.original,
            acceptableProtocols=list(alpn),
        )
    else:
        options = PlainServerContext(certPath, keyPath)
    servers = []

    def build():
        protocol = FakeH2ServerProtocol(**serverKwargs)
        servers.append(protocol.server)
        return protocol

    reactor.listenTCP(443, TLSMemoryBIOFactory(options, False, Factory.forProtocol(build), reactor))
    return certPath, servers


def connectOverTLS(reactor, trustRoot, **kwargs):
    kwargs.setdefault("pingInterval", None)
    return connectWS(
        "wss://localhost/chat",
        Client,
        reactor=reactor,
        endpoint=TCP4ClientEndpoint(reactor, "127.0.0.1", 443),
        trustRoot=trustRoot,
        http2=True,
        **kwargs,
    )


def test_wssOverTLSWithALPNH2InMemory(tmp_path):
    """
    The whole path in memory: verified TLS offering ALPN h2, the settings,
    the extended CONNECT, an echo and a clean close.
    """
    reactor = MemoryReactorClock()
    ca, servers = tlsListener(reactor, tmp_path)
    d = connectOverTLS(reactor, ca)
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    protocol = result(d)
    assert protocol.transport.negotiatedProtocol == b"h2"
    assert dict(servers[0].requests[1])[":authority"] == "localhost"
    protocol.sendMessage("over TLS")
    pump.flush()
    assert protocol.received == ["over TLS"]
    protocol.close()
    pump.flush()
    assert protocol.closedWith == (1000, "", True)
    # The connection is closed too, TLS included (close_notify both ways).
    assert pump.clientIO.disconnected and pump.serverIO.disconnected


def test_serverWithoutALPNIsHTTP2NotSupported(tmp_path):
    """A TLS server that negotiates no ALPN at all: the client stops, fail closed."""
    reactor = MemoryReactorClock()
    ca, servers = tlsListener(reactor, tmp_path, alpn=())
    d = connectOverTLS(reactor, ca)
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    err = failure(d, HTTP2NotSupported)
    assert "ALPN chose none" in str(err)
    assert servers[0].requests == {}


def test_serverWithOnlyHTTP11InALPNRefusesTLS(tmp_path):
    """No overlap (the server speaks http/1.1 only): OpenSSL's alert ends it."""
    reactor = MemoryReactorClock()
    ca, servers = tlsListener(reactor, tmp_path, alpn=(b"http/1.1",))
    d = connectOverTLS(reactor, ca)
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    failure(d, SSL.Error)
    assert servers == [] or servers[0].requests == {}


def test_untrustedCertificateFailsBeforeAnyStream(tmp_path):
    """TLS verification stays fail-closed with http2=True."""
    reactor = MemoryReactorClock()
    (tmp_path / "server").mkdir()
    tlsListener(reactor, tmp_path / "server")
    otherCA, _ = makeCertificate(tmp_path, "localhost")
    d = connectOverTLS(reactor, otherCA)
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    err = failure(d, CertificateVerificationError)
    assert "not trusted" in str(err)


def test_http2ThroughAProxyTunnel(tmp_path):
    """CONNECT tunnel, then TLS with ALPN h2 inside it, then the extended CONNECT."""
    reactor = MemoryReactorClock()
    certPath, keyPath = makeCertificate(tmp_path, "localhost")
    identity = PrivateCertificate.loadPEM(certPath.read_bytes() + keyPath.read_bytes())
    options = CertificateOptions(
        privateKey=identity.privateKey.original, certificate=identity.original, acceptableProtocols=[b"h2"]
    )
    proxy = memoryProxy(
        reactor, TLSMemoryBIOFactory(options, False, Factory.forProtocol(FakeH2ServerProtocol), reactor)
    )
    d = connectWS(
        "wss://localhost:8443/chat",
        Client,
        reactor=reactor,
        proxy="http://127.0.0.1:3128",
        trustRoot=certPath,
        http2=True,
        pingInterval=None,
    )
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    protocol = result(d)
    assert [(method, target) for method, target, _ in proxy.requests] == [("CONNECT", "localhost:8443")]
    protocol.sendMessage("tunnelled")
    pump.flush()
    assert protocol.received == ["tunnelled"]


def test_http2OpenTimeoutThroughTheEndpoint(tmp_path):
    reactor = MemoryReactorClock()
    d = connectOverTLS(reactor, makeCertificate(tmp_path)[0], openTimeout=4)
    reactor.advance(4)
    failure(d, WebSocketOpenTimeout)


# -- against our own server (enableHTTP2WebSockets on a Site), in memory -------


def ourServer(reactor, directory, **factoryKwargs):
    """Our Site with a WebSocketResource at /chat on a memory TLS listener: (factory, CA)."""
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    from twisted_ws import WebSocketResource, WebSocketServerFactory
    from twisted_ws.http2 import enableHTTP2WebSockets

    certPath, keyPath = makeCertificate(directory, "localhost")
    identity = PrivateCertificate.loadPEM(certPath.read_bytes() + keyPath.read_bytes())
    factoryKwargs.setdefault("pingInterval", None)
    factory = WebSocketServerFactory(ServerEcho, clock=reactor, **factoryKwargs)
    root = Resource()
    root.putChild(b"chat", WebSocketResource(factory))
    site = enableHTTP2WebSockets(Site(root, reactor=reactor))
    options = CertificateOptions(privateKey=identity.privateKey.original, certificate=identity.original)
    reactor.listenTCP(443, TLSMemoryBIOFactory(options, False, site, reactor))
    return factory, certPath


def test_ourServerInMemory(tmp_path):
    """
    Our client and our server, ALPN choosing h2 among the Site's h2 and
    http/1.1: subprotocol and permessage-deflate negotiated, the server
    sees an HTTP/2 request, an echo, a clean close on both sides.
    """
    reactor = MemoryReactorClock()
    factory, ca = ourServer(reactor, tmp_path, subprotocols=["chat"], extensions=[PerMessageDeflate()])
    d = connectOverTLS(reactor, ca, subprotocols=["chat"], extensions=[ClientPerMessageDeflate()])
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    protocol = result(d)
    assert (protocol.subprotocol, [e.name for e in protocol.extensions]) == ("chat", ["permessage-deflate"])
    protocol.sendMessage("twisted " * 1000)
    protocol.sendMessage(bytes(range(256)) * 1024)
    pump.flush()
    assert protocol.received == ["twisted " * 1000, bytes(range(256)) * 1024]
    closing = protocol.close(4001, "done")
    pump.flush()
    assert result(closing).wasClean
    assert protocol.closedWith[0] == 4001
    assert pump.clientIO.disconnected and pump.serverIO.disconnected


def test_ourServerRefusesAnUnknownPath(tmp_path):
    """twisted.web's 404 for the extended CONNECT arrives as a refusal with its body."""
    reactor = MemoryReactorClock()
    factory, ca = ourServer(reactor, tmp_path)
    d = connectWS(
        "wss://localhost/elsewhere",
        Client,
        reactor=reactor,
        endpoint=TCP4ClientEndpoint(reactor, "127.0.0.1", 443),
        trustRoot=ca,
        http2=True,
    )
    pump = ConnectionCompleter(reactor).succeedOnce()
    pump.flush()
    err = failure(d, WebSocketHandshakeRejected)
    assert err.status == 404
    assert b"No Such Resource" in err.body


# -- the I/O-free request ------------------------------------------------------


@pytest.mark.parametrize(
    "headers, match",
    [
        ([("Keep-Alive", "5")], "connection-specific"),
        ([("TE", "gzip")], "connection-specific"),
        ([("Host", "other")], "set by the handshake"),
        ([("Sec-WebSocket-Key", "x")], "set by the handshake"),
        ([("X-Bad", "a\r\nb")], "invalid character"),
    ],
)
def test_badExtraHeadersFailAtTheCallSite(headers, match):
    """Headers HTTP/2 forbids or the handshake owns fail synchronously, before any I/O."""
    with pytest.raises(ValueError, match=match):
        H2ClientHandshake("example.com", "/", headers=headers)


def test_teTrailersIsAllowed():
    handshake = H2ClientHandshake("example.com", "/", headers=[("TE", "trailers")])
    assert ("te", "trailers") in handshake.headers


def test_refusalStatusesOtherThan200():
    """Only 200 opens: a 2xx other than 200 is a refusal like any other status."""
    handshake = H2ClientHandshake("example.com", "/")
    assert handshake.receiveHeaders([(b":status", b"204")]) is None
    outcome = handshake.streamEnded()
    assert (outcome.status, outcome.reason) == (204, "No Content")


def test_missingStatusIsInvalid():
    outcome = H2ClientHandshake("example.com", "/").receiveHeaders([(b"x", b"y")])
    assert isinstance(outcome.error, InvalidServerResponse)
