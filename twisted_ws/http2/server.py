"""
WebSockets on the HTTP/2 connections of a twisted.web C{Site} (RFC 8441).

    from twisted_ws.http2 import enableHTTP2WebSockets
    site = enableHTTP2WebSockets(Site(root))

Browsers (Chromium since 91, Firefox since 65) open a WebSocket as one
stream of the HTTP/2 connection their page already uses, with an
I{extended CONNECT} (C{:method CONNECT}, C{:protocol websocket}), once the
server advertises C{SETTINGS_ENABLE_CONNECT_PROTOCOL}.  That is opt-in:
advertising the setting without handling it breaks browsers, so a C{Site}
does neither until L{enableHTTP2WebSockets} is called on it.

Once enabled, every connection on which ALPN picks C{h2} is a
L{WebSocketH2Connection}: Twisted's own HTTP/2 connection, which still
serves every ordinary stream, except that an extended CONNECT is taken
here.  It goes through the Site's resource tree like any request, so the
L{WebSocketResource} at its path answers it with its factory's accept
hook, origins, subprotocols, extensions (permessage-deflate) and limits:
the same resource serves HTTP/1.1 Upgrade and HTTP/2 on one TLS port, and
the application's protocol sees C{request.httpVersion == "2"}.  The
stream then becomes the protocol's transport (L{H2StreamTransport}); one
stream failing never touches the connection or its other streams.

Twisted's HTTP/2 server is private (C{twisted.web._http2}); what this
module relies on is listed in L{PRIVATE_TWISTED_NAMES} and checked by the
test suite.  Minimum: Twisted 23.10 (every one of those names is in its
source; tested with 26.10) with its C{http2} extra, i.e. the C{h2} library
3.1 or later (the setting and C{:protocol}; tested with 4.4).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import h2.errors
import h2.exceptions
import h2.settings
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._http2 import H2Connection
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from ..core.errors import HandshakeError
from ..core.handshake import (
    Accepted,
    Rejected,
    ServerHandshake,
    extendedConnectResponse,
    validateExtendedConnect,
)
from ..protocol import WebSocketProtocol
from ..server.accepthook import WebRequestHandshake
from ..server.factory import WebSocketServerFactory
from ..transport import peerCertificate
from .stream import H2StreamTransport, IStreamOwner

__all__ = [
    "enableHTTP2WebSockets",
    "WebSocketH2Connection",
    "DEFAULT_MAX_WEBSOCKET_STREAMS",
    "PRIVATE_TWISTED_NAMES",
]

_log = Logger()

#: The default limit on WebSocket streams open at once on one connection.
DEFAULT_MAX_WEBSOCKET_STREAMS = 100

#: Connection-level receive window added at start, so WebSocket streams
#: whose reading is paused (each holding at most one stream window of
#: unacknowledged DATA) never starve the connection's other streams.
CONNECTION_WINDOW = 16 * 1024 * 1024

#: Twisted's private names this module relies on, as (object, attribute):
#: the test suite fails with a clear message when one disappears.
PRIVATE_TWISTED_NAMES = (
    ("twisted.web.http", "_GenericHTTPChannelProtocol"),
    ("twisted.web.http._GenericHTTPChannelProtocol", "_negotiatedProtocol"),
    ("twisted.web.http._GenericHTTPChannelProtocol", "_channel"),
    ("twisted.web.http._GenericHTTPChannelProtocol", "_requestFactory"),
    ("twisted.web.http._GenericHTTPChannelProtocol", "_site"),
    ("twisted.web.http._GenericHTTPChannelProtocol", "_factory"),
    ("twisted.web.http._GenericHTTPChannelProtocol", "_timeOut"),
    ("twisted.web.http._GenericHTTPChannelProtocol", "_callLater"),
    ("twisted.web.http.HTTPChannel", "_networkProducer"),
    ("twisted.web._http2", "H2Connection"),
    ("twisted.web._http2.H2Connection", "conn"),
    ("twisted.web._http2.H2Connection", "streams"),
    ("twisted.web._http2.H2Connection", "_consumerBlocked"),
    ("twisted.web._http2.H2Connection", "_requestReceived"),
    ("twisted.web._http2.H2Connection", "_requestDataReceived"),
    ("twisted.web._http2.H2Connection", "_requestEnded"),
    ("twisted.web._http2.H2Connection", "_requestAborted"),
    ("twisted.web._http2.H2Connection", "_handleWindowUpdate"),
    ("twisted.web._http2.H2Connection", "_handlePriorityUpdate"),
    ("twisted.web._http2.H2Connection", "_tryToWriteControlData"),
)

#: Header fields HTTP/2 forbids in a response (RFC 9113 8.2.2).
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


def _h2Headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """A twisted.web C{Headers} as an HTTP/2 field list (lower-case, no hop-by-hop)."""
    return [
        (name.lower(), value)
        for name, values in headers.getAllRawHeaders()
        for value in values
        if name.lower() not in _CONNECTION_SPECIFIC
    ]


def _plainRefusal(status: int, reason: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = (reason + "\n").encode("utf-8")
    headers = [
        (b":status", b"%d" % status),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"x-content-type-options", b"nosniff"),
    ]
    return headers, body


@implementer(IStreamOwner)
class WebSocketH2Connection(H2Connection):
    """
    Twisted's HTTP/2 server connection, taking RFC 8441 extended CONNECTs.

    It advertises C{SETTINGS_ENABLE_CONNECT_PROTOCOL} in its first SETTINGS
    frame.  A stream whose request carries C{:protocol} is ours from its
    HEADERS on (Twisted would drop the pseudo-header and wait for an
    END_STREAM that never comes): it is dispatched through the Site at
    once.  Every other stream is Twisted's.  Frames for streams neither of
    us knows any more (Twisted forgets a stream once it has sent
    END_STREAM) are ignored instead of dropping the connection.

    @ivar maxWebSocketStreams: WebSocket streams (open or still in their
        handshake) allowed at once; more are refused with 503.
    """

    maxWebSocketStreams = DEFAULT_MAX_WEBSOCKET_STREAMS
    # Set by the Site (or _HTTPChannelProtocol) on every channel; Twisted
    # does not declare it.
    requestFactory: Any

    def __init__(self, reactor: Any = None, maxWebSocketStreams: int | None = None) -> None:
        super().__init__(reactor)
        if maxWebSocketStreams is not None:
            self.maxWebSocketStreams = maxWebSocketStreams
        # The setting must be in the first SETTINGS frame: initiate_connection
        # sends the acknowledged values, so set it as one of those.
        current: dict[Any, int] = dict(self.conn.local_settings.items())
        current[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values=current)
        self.webSocketStreams: dict[int, H2StreamTransport] = {}
        self._pending: dict[int, _ConnectChannel] = {}

    @property
    def connectProtocolEnabled(self) -> bool:
        """Did we advertise SETTINGS_ENABLE_CONNECT_PROTOCOL?"""
        return bool(self.conn.local_settings.enable_connect_protocol)

    def connectionMade(self) -> None:
        super().connectionMade()
        self.conn.increment_flow_control_window(CONNECTION_WINDOW)
        self._tryToWriteControlData()

    # -- events from h2, split between Twisted's streams and ours -------------

    _reading = False

    def dataReceived(self, data: bytes) -> None:
        # What the streams send while h2 events are dispatched (echoes,
        # WINDOW_UPDATEs) is written once, by the base class, at the end.
        self._reading = True
        try:
            super().dataReceived(data)
        finally:
            self._reading = False
        # A SETTINGS change of the initial window reaches no stream through
        # Twisted: let ours that wait for window look again.
        for stream in list(self.webSocketStreams.values()):
            if stream.bufferedAmount or stream.disconnecting:
                stream.windowUpdated()

    def _requestReceived(self, event: Any) -> None:
        headers = event.headers
        if not any(name in (b":protocol", ":protocol") for name, _ in headers):
            super()._requestReceived(event)
            return
        streamID = event.stream_id
        stream = H2StreamTransport(self, streamID)
        active = len(self.webSocketStreams)
        self.webSocketStreams[streamID] = stream
        if not self.connectProtocolEnabled:
            # h2 accepts :protocol whatever we advertised (RFC 8441 section 3:
            # a malformed request then).
            self._refuse(stream, 400, ":protocol needs SETTINGS_ENABLE_CONNECT_PROTOCOL")
        elif active >= self.maxWebSocketStreams:
            self._refuse(
                stream, 503,
                f"too many WebSocket streams on this connection (limit {self.maxWebSocketStreams})",
            )
        else:
            channel = self._pending[streamID] = _ConnectChannel(self, stream, headers)
            channel.dispatch()

    def _requestDataReceived(self, event: Any) -> None:
        streamID = event.stream_id
        stream = self.webSocketStreams.get(streamID)
        if stream is not None:
            stream.dataReceived(event.data, event.flow_controlled_length)
        elif streamID in self.streams:
            super()._requestDataReceived(event)
        else:
            # A stream already over for us: give the credit back, ignore.
            self.acknowledgeData(streamID, event.flow_controlled_length)

    def _requestEnded(self, event: Any) -> None:
        streamID = event.stream_id
        stream = self.webSocketStreams.get(streamID)
        if stream is not None:
            stream.endReceived()
        elif streamID in self.streams:
            super()._requestEnded(event)

    def _requestAborted(self, event: Any) -> None:
        streamID = event.stream_id
        stream = self.webSocketStreams.get(streamID)
        if stream is not None:
            stream.resetReceived(event.error_code)
        elif streamID in self.streams:
            super()._requestAborted(event)

    def _handleWindowUpdate(self, event: Any) -> None:
        streamID = event.stream_id
        stream = self.webSocketStreams.get(streamID) if streamID else None
        if stream is not None:
            stream.windowUpdated()
            return
        super()._handleWindowUpdate(event)
        if not streamID:
            for stream in list(self.webSocketStreams.values()):
                stream.windowUpdated()

    def _handlePriorityUpdate(self, event: Any) -> None:
        # Twisted's priority tree schedules its own streams only.
        if event.stream_id not in self.webSocketStreams:
            super()._handlePriorityUpdate(event)

    def connectionLost(self, reason: Failure = connectionDone, _cancelTimeouts: bool = True) -> None:
        super().connectionLost(reason, _cancelTimeouts=_cancelTimeouts)
        for stream in list(self.webSocketStreams.values()):
            stream.connectionLost(reason)

    def timeoutConnection(self) -> None:
        # An open WebSocket keeps the connection: it has its own keepalive.
        if self.webSocketStreams:
            self.resetTimeout()
            return
        super().timeoutConnection()

    def pauseProducing(self) -> None:
        super().pauseProducing()
        for stream in list(self.webSocketStreams.values()):
            stream.transportPaused()

    def resumeProducing(self) -> None:
        super().resumeProducing()
        for stream in list(self.webSocketStreams.values()):
            if self._consumerBlocked is None:
                stream.transportResumed()

    def _flush(self) -> None:
        if not self._reading:
            self._tryToWriteControlData()

    # -- IStreamOwner ---------------------------------------------------------

    def outboundWindow(self, streamID: int) -> int:
        try:
            return self.conn.local_flow_control_window(streamID)
        except h2.exceptions.H2Error:
            return 0

    def sendData(self, streamID: int, data: bytes, endStream: bool) -> None:
        conn = self.conn
        try:
            size = conn.max_outbound_frame_size
            if len(data) <= size:
                conn.send_data(streamID, data, end_stream=endStream)
            else:
                last = len(data) - size
                for start in range(0, len(data), size):
                    conn.send_data(
                        streamID, data[start:start + size], end_stream=endStream and start >= last
                    )
        except h2.exceptions.StreamClosedError:
            return  # reset by the peer meanwhile: its event is on the way
        self._flush()

    def sendHeaders(self, streamID: int, headers: list[tuple[bytes, bytes]], endStream: bool = False) -> None:
        try:
            self.conn.send_headers(streamID, headers, end_stream=endStream)
        except h2.exceptions.StreamClosedError:
            return
        self._flush()

    def acknowledgeData(self, streamID: int, size: int) -> None:
        if size <= 0:
            return
        try:
            self.conn.acknowledge_received_data(size, streamID)
        except h2.exceptions.H2Error:
            return
        self._flush()

    def resetStream(self, streamID: int, errorCode: int) -> None:
        try:
            self.conn.reset_stream(streamID, error_code=errorCode)
        except h2.exceptions.H2Error:
            return
        self._flush()

    def streamClosed(self, streamID: int) -> None:
        self.webSocketStreams.pop(streamID, None)
        channel = self._pending.pop(streamID, None)
        if channel is not None:
            channel.streamLost()

    # -- refusals before any resource sees the request ---------------------------

    def _refuse(self, stream: H2StreamTransport, status: int, reason: str) -> None:
        headers, body = _plainRefusal(status, reason)
        self.sendHeaders(stream.streamID, headers)
        stream.write(body)
        stream.loseConnection()


class _ConnectChannel:
    """
    What a twisted.web C{Request} for an extended CONNECT sees as its
    channel: its answer goes to the stream (a refusal as HEADERS, DATA and
    END_STREAM), and L{serveExtendedConnect} is how a L{WebSocketResource}
    recognises it and takes the stream.
    """

    # Like Twisted's H2Stream: no raw transport for resources to write to.
    transport = None

    def __init__(self, connection: WebSocketH2Connection, stream: H2StreamTransport, headers: Any) -> None:
        self.connection = connection
        self.stream = stream
        self.headers = headers
        self.site = connection.site
        self.factory = connection.factory
        self.request: Any = None
        self.accepted = False

    def dispatch(self) -> None:
        """Build the twisted.web request and let the Site route it."""
        request = self.request = self.connection.requestFactory(self, queued=False)
        path = b"/"
        for name, value in self.headers:
            name = name.encode("latin-1") if isinstance(name, str) else name
            value = value.encode("latin-1") if isinstance(value, str) else value
            if not name.startswith(b":"):
                request.requestHeaders.addRawHeader(name, value)
            elif name == b":path":
                path = value
            elif name == b":authority":
                request.requestHeaders.addRawHeader(b"host", value)
        request.gotLength(0)
        request.parseCookies()
        request.requestReceived(b"CONNECT", path, b"HTTP/2")

    # -- what twisted.web's Request calls -------------------------------------

    def getPeer(self) -> Any:
        return self.connection.getPeer()

    def getHost(self) -> Any:
        return self.connection.getHost()

    def isSecure(self) -> bool:
        return ISSLTransport(self.connection.transport, None) is not None

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        fields = [(b":status", code), *_h2Headers(headers)]
        self.connection.sendHeaders(self.stream.streamID, fields)

    def write(self, data: bytes) -> None:
        self.stream.write(data)

    def writeSequence(self, data: Any) -> None:
        self.stream.write(b"".join(data))

    def requestDone(self, request: Any) -> None:
        self.connection._pending.pop(self.stream.streamID, None)
        if not self.accepted:
            self.stream.loseConnection()

    def loseConnection(self) -> None:
        self.stream.abortConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.stream.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.stream.unregisterProducer()

    def streamLost(self) -> None:
        """The stream ended before the request was answered."""
        request = self.request
        if request is not None and not request.finished:
            request.connectionLost(Failure(ConnectionLost("HTTP/2 stream closed")))

    # -- the WebSocketResource's entry point ------------------------------

    def serveExtendedConnect(self, factory: WebSocketServerFactory, request: Any) -> Any:
        """
        Answer C{request} (this stream's extended CONNECT) for the
        L{WebSocketResource} of C{factory}: validate it, ask the accept
        hook, then answer 200 and start the factory's protocol on the
        stream, or refuse with the core's status and reason.
        """
        try:
            handshakeRequest = validateExtendedConnect(self.headers)
        except HandshakeError as e:
            factory.noteRejection(e, None, request.getClientAddress())
            _sendRefusal(request, factory.newHandshake().reject(e))
            return NOT_DONE_YET
        transport = self.connection.transport
        handshakeRequest.peer = request.getClientAddress()
        handshakeRequest.local = request.getHost()
        handshakeRequest.secure = self.isSecure()
        handshakeRequest.peerCertificate = peerCertificate(transport)
        handshakeRequest.webRequest = request
        handshake = ServerHandshake.fromRequest(
            handshakeRequest, factory.subprotocols, factory.extensions
        )
        _StreamHandshake(factory, request, self, handshake).start()
        return NOT_DONE_YET


def _sendRefusal(request: Any, rejected: Rejected) -> None:
    """Put the core's refusal on the twisted.web request and finish it."""
    try:
        phrase = HTTPStatus(rejected.status).phrase.encode("ascii")
    except ValueError:
        phrase = None
    request.setResponseCode(rejected.status, phrase)
    hasContentType = False
    for name, value in rejected.headers:
        lower = name.lower()
        if lower.encode("latin-1") in _CONNECTION_SPECIFIC:
            continue
        hasContentType = hasContentType or lower == "content-type"
        request.responseHeaders.addRawHeader(name, value)
    if not hasContentType:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Content-Length", b"%d" % (len(rejected.body),))
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.write(rejected.body)
    request.finish()


class _StreamHandshake(WebRequestHandshake):
    """One extended CONNECT between the accept hook's call and its answer."""

    #: Response headers of the twisted.web request that the 200 does not
    #: carry (the handshake writes its own; HTTP/2 forbids hop-by-hop ones).
    _DROPPED = frozenset(
        {"content-length", "content-type", "content-encoding", "transfer-encoding",
         "connection", "keep-alive", "upgrade", "host", "server"}
    )

    def __init__(
        self, factory: WebSocketServerFactory, request: Any, channel: _ConnectChannel,
        handshake: ServerHandshake,
    ) -> None:
        self.factory = factory
        self.request = request
        self.channel = channel
        self.handshake = handshake

    def _sendRefusal(self, rejected: Rejected) -> None:
        _sendRefusal(self.request, rejected)

    def _extraHeaders(self) -> list[tuple[str, str]]:
        """Headers set on the twisted.web request (and its cookies), for the 200."""
        request = self.request
        extra = []
        for name, values in request.responseHeaders.getAllRawHeaders():
            decoded = name.decode("latin-1")
            if decoded.lower() in self._DROPPED or decoded.lower().startswith("sec-websocket-"):
                continue
            extra += [(decoded, value.decode("latin-1")) for value in values]
        extra += [("Set-Cookie", cookie.decode("latin-1")) for cookie in request.cookies]
        return extra

    def _switch(self, protocol: WebSocketProtocol, accepted: Accepted) -> None:
        channel, request = self.channel, self.request
        stream = channel.stream
        if stream.ended:
            return  # reset while the hook decided
        fields = extendedConnectResponse(200, accepted.responseHeaders)
        channel.connection.sendHeaders(
            stream.streamID, [(n.encode("latin-1"), v.encode("latin-1")) for n, v in fields]
        )
        # Retire the twisted.web request so the access log records the 200;
        # its head is written, so finish() writes nothing more.
        channel.accepted = True
        request.setResponseCode(200)
        request.startedWriting = True
        request.finish()
        stream.attach(protocol)


class _HTTPChannelProtocol(_GenericHTTPChannelProtocol):
    """
    Twisted's ALPN switch between HTTP/1.1 and HTTP/2, building a
    L{WebSocketH2Connection} where Twisted builds its C{H2Connection}.
    """

    maxWebSocketStreams: int | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._negotiatedProtocol is None:
            transport = self._channel.transport
            if getattr(transport, "negotiatedProtocol", None) == b"h2":
                self._switchToHTTP2(transport)
        super().dataReceived(data)

    def _switchToHTTP2(self, transport: Any) -> None:
        old = self._channel
        networkProducer = old._networkProducer  # type: ignore[attr-defined]  # set by H2Connection.connectionMade, undeclared
        networkProducer.unregisterProducer()
        old.setTimeout(None)
        reactor = getattr(self._factory, "reactor", None)
        channel = WebSocketH2Connection(reactor, self.maxWebSocketStreams)
        channel.requestFactory = self._requestFactory
        channel.site = self._site
        channel.factory = self._factory
        channel.timeOut = self._timeOut
        channel.callLater = self._callLater  # type: ignore[method-assign, assignment]  # as Twisted does: the site's clock
        self._channel = channel
        channel.makeConnection(transport)
        networkProducer.registerProducer(channel, True)
        self._negotiatedProtocol = b"h2"  # type: ignore[assignment]  # declared None in Twisted, set to the ALPN name


def enableHTTP2WebSockets(site: Any, maxWebSocketStreams: int = DEFAULT_MAX_WEBSOCKET_STREAMS) -> Any:
    """
    Let C{site}'s HTTP/2 connections carry WebSockets (RFC 8441): its
    L{WebSocketResource}s then answer extended CONNECTs as well as
    HTTP/1.1 upgrades.  HTTP/2 is chosen by ALPN, so this matters for TLS
    listeners (C{ssl:}); plain ones stay HTTP/1.1.

    @param maxWebSocketStreams: WebSocket streams allowed at once on one
        connection; more are refused with 503.
    @return: C{site}, changed in place.
    """
    if maxWebSocketStreams < 1:
        raise ValueError(f"maxWebSocketStreams must be at least 1, not {maxWebSocketStreams}")

    def buildChannel() -> _HTTPChannelProtocol:
        protocol = _HTTPChannelProtocol(HTTPChannel())
        protocol.maxWebSocketStreams = maxWebSocketStreams
        return protocol

    site.protocol = buildChannel
    return site
