"""
WebSocket endpoints inside a twisted.web resource tree.

L{WebSocketResource} wraps a L{WebSocketServerFactory} so a WebSocket can
live at any URL of a C{Site}, beside static files and ordinary resources,
on the same port.  The upgrade request goes through twisted.web like any
other request (virtual hosts, nested paths, the access log, sessions), and
the factory's accept hook sees the twisted.web C{Request} as
C{request.webRequest}.  Once the hook accepts, the connection leaves the
HTTP channel for good: the channel's idle timeout is cancelled, it stops
being the transport's producer, whatever it had read past the request head
is handed over, and the application's L{WebSocketProtocol} becomes the
transport's protocol (see L{twisted_ws.handoff}).

Over HTTP/2 a WebSocket is an RFC 8441 extended CONNECT, answered here
too once the Site has L{twisted_ws.http2.enableHTTP2WebSockets}; on a Site
without it, a WebSocket request over HTTP/2 is refused with 505 rather than
misbehaving.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any, cast

from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET, version as webServerVersion

from ..core.errors import HandshakeError
from ..core.handshake import (
    Accepted,
    HandshakeRequest,
    Rejected,
    ServerHandshake,
    isUpgradeAttempt,
    validateRequest,
)
from ..core.http import Headers, RequestHead
from ..handoff import handOff
from ..protocol import WebSocketProtocol
from ..transport import IStreamTransport, peerCertificate
from .accepthook import WebRequestHandshake
from .factory import WebSocketServerFactory

__all__ = ["WebSocketResource"]

_log = Logger()

_VERSION_RE = re.compile(rb"HTTP/([0-9])\.([0-9])")

#: Response headers a 101 must not carry from the twisted.web request (the
#: handshake writes its own, and a 101 has no body).
_DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "upgrade",
        "connection",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "keep-alive",
        "sec-websocket-accept",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "sec-websocket-version",
        "sec-websocket-key",
        "host",
    }
)


def _requestHeaders(request: Any) -> Headers:
    headers = Headers()
    for name, values in request.requestHeaders.getAllRawHeaders():
        decodedName = name.decode("latin-1")
        for value in values:
            headers.add(decodedName, value.decode("latin-1"))
    return headers


def _channelHolder(transport: Any, channel: HTTPChannel) -> Any:
    """
    The object C{transport} delivers bytes to for C{channel}: the channel
    itself, or the wrapper C{Site} puts around it to choose between HTTP/1.1
    and HTTP/2.  C{None} when the transport has an unknown shape.
    """
    own = getattr(transport, "__dict__", {})
    for name in ("wrappedProtocol", "protocol"):
        candidate = own.get(name)
        if candidate is None:
            continue
        if candidate is channel or getattr(candidate, "_channel", None) is channel:
            return candidate
    return None


def _upgradeRequiredText(request: Any, headers: Headers) -> str:
    """The body of a 426: what this URL is and how to reach it."""
    scheme = "wss" if request.isSecure() else "ws"
    host = headers.get("Host") or "HOST"
    url = f"{scheme}://{host}{request.uri.decode('latin-1')}"
    return (
        "426 Upgrade Required\n\n"
        "This URL is a WebSocket endpoint; an ordinary HTTP request cannot use it.\n"
        "Connect with a WebSocket client instead, e.g. from a browser:\n\n"
        f"    new WebSocket({json.dumps(url)})\n"
    )


def _writeRefusal(request: Any, rejected: Rejected, close: bool) -> bytes:
    """
    Put the core's refusal on the twisted.web C{request} (which writes the
    response); return the body to write.

    C{close} ends the connection after the answer: a refused upgrade may
    be followed by WebSocket frames that must not be read as HTTP.
    """
    try:
        phrase = HTTPStatus(rejected.status).phrase.encode("ascii")
    except ValueError:
        phrase = None
    request.setResponseCode(rejected.status, phrase)
    hasContentType = False
    for name, value in rejected.headers:
        lower = name.lower()
        if lower == "content-type":
            hasContentType = True
        if close and lower == "connection":
            continue
        request.responseHeaders.addRawHeader(name, value)
    if not hasContentType:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Content-Length", b"%d" % (len(rejected.body),))
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    if close:
        request.setHeader(b"Connection", b"close")
        channel = getattr(request, "channel", None)
        if isinstance(channel, HTTPChannel):
            channel.persistent = False
    return rejected.body


class WebSocketResource(Resource):
    """
    A twisted.web resource that upgrades requests to WebSocket connections
    built by C{factory}.

    It is a leaf: it answers for its own URL and everything below it
    (C{request.webRequest.postpath} tells the rest).  Requests that are not
    WebSocket upgrades go to C{fallback} when there is one (e.g. the page
    that opens the socket, served at the same URL); otherwise a GET gets
    C{426 Upgrade Required} with a short explanation, other methods 405.

    The factory's C{acceptRequest} (its C{allowedOrigins} and C{accept}
    hook) decides as it does for a plain listener; the hook finds the
    twisted.web request in C{request.webRequest}, so cookies, sessions,
    C{args} and the request's own headers are all available.  Cookies it
    sets on the twisted.web request (e.g. a new session's) are sent with the
    C{101}.  Refusals become ordinary twisted.web responses, so they are
    logged like any other.

    @ivar factory: the L{WebSocketServerFactory} whose protocol, options,
        subprotocols and extensions apply.
    @ivar fallback: the resource for non-WebSocket requests, or C{None}.
    """

    isLeaf = True

    def __init__(self, factory: WebSocketServerFactory, fallback: IResource | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Twisted's Resource.__init__ is unannotated
        self.factory = factory
        self.fallback = fallback

    def render(self, request: IRequest) -> bytes | int:
        # twisted.web names itself and its version in a Server header; no
        # answer of ours (the 101 copies the request's headers) tells either.
        if request.responseHeaders.getRawHeaders(b"Server") == [webServerVersion]:
            request.responseHeaders.removeHeader(b"Server")
        serve = getattr(getattr(request, "channel", None), "serveExtendedConnect", None)
        if serve is not None:
            # An RFC 8441 extended CONNECT on an HTTP/2 stream of a Site with
            # twisted_ws.http2.enableHTTP2WebSockets: the stream is the socket.
            served: bytes | int = serve(self.factory, request)
            return served
        headers = _requestHeaders(request)
        attempt = isUpgradeAttempt(headers)
        if not attempt and self.fallback is not None:
            rendered: bytes | int = getChildForRequest(self.fallback, request).render(request)
            return rendered
        channel = getattr(request, "channel", None)
        if not isinstance(channel, HTTPChannel):
            # HTTP/2 (an H2Stream): the upgrade mechanism does not exist
            # there, and RFC 8441's extended CONNECT is not offered.
            return self._refuse(
                request,
                HandshakeError(505, "WebSocket connections need HTTP/1.1, not HTTP/2"),
                close=False,
            )
        try:
            handshakeRequest = self._validate(request, headers)
        except HandshakeError as e:
            if e.status == 426 and not attempt:
                e.reason = _upgradeRequiredText(request, headers)
            if attempt:
                self.factory.noteRejection(e, None, request.getClientAddress())
            return self._refuse(request, e, close=attempt)
        transport = channel.transport
        holder = _channelHolder(transport, channel)
        if holder is None:
            _log.error(
                "cannot take over a {transport!r} for a WebSocket", transport=transport
            )
            return self._refuse(request, HandshakeError(500, "Internal Server Error"), close=True)
        factory = self.factory
        handshake = ServerHandshake.fromRequest(
            handshakeRequest, factory.subprotocols, factory.extensions
        )
        _Upgrade(factory, request, channel, holder, handshake).start()
        return NOT_DONE_YET

    def _refuse(self, request: Any, error: HandshakeError, close: bool) -> bytes:
        """Answer with the core's refusal for a request it never got to decide on."""
        rejected = self.factory.newHandshake().reject(error)
        return _writeRefusal(request, rejected, close)

    def _validate(self, request: Any, headers: Headers) -> HandshakeRequest:
        match = _VERSION_RE.fullmatch(request.clientproto)
        if match is None:
            raise HandshakeError(400, "unsupported HTTP version")
        head = RequestHead(
            method=request.method.decode("latin-1"),
            target=request.uri.decode("latin-1"),
            version=(int(match.group(1)), int(match.group(2))),
            headers=headers,
        )
        handshake = validateRequest(head)
        handshake.peer = request.getClientAddress()
        handshake.local = request.getHost()
        handshake.secure = bool(request.isSecure())
        handshake.peerCertificate = peerCertificate(getattr(request, "transport", None))
        handshake.webRequest = request
        return handshake


class _Upgrade(WebRequestHandshake):
    """
    One upgrade request between the accept hook's call and its answer, then
    the switch itself.
    """

    def __init__(
        self,
        factory: WebSocketServerFactory,
        request: Any,
        channel: HTTPChannel,
        holder: Any,
        handshake: ServerHandshake,
    ) -> None:
        self.factory = factory
        self.request = request
        self.channel = channel
        self.holder = holder
        self.handshake = handshake

    def _sendRefusal(self, rejected: Rejected) -> None:
        request = self.request
        request.write(_writeRefusal(request, rejected, close=True))
        request.finish()

    # -- leaving twisted.web -------------------------------------------------

    def _extraHeaders(self) -> list[tuple[str, str]]:
        """
        Headers set on the twisted.web request (Server, Date, anything the
        hook added) and its new cookies, to send with the 101.
        """
        request = self.request
        extra = []
        for name, values in request.responseHeaders.getAllRawHeaders():
            decoded = name.decode("latin-1")
            if decoded.lower() in _DROPPED_RESPONSE_HEADERS:
                continue
            extra += [(decoded, value.decode("latin-1")) for value in values]
        extra += [("Set-Cookie", cookie.decode("latin-1")) for cookie in request.cookies]
        return extra

    def _switch(self, protocol: WebSocketProtocol, accepted: Accepted) -> None:
        request = self.request
        channel = self.channel
        # Connected: the channel is handling this request.
        transport = cast(IStreamTransport, channel.transport)
        # What the channel read past the request head: frames the client
        # sent without waiting for the 101.  While a request is being
        # handled the channel queues such bytes in _dataBuffer; bytes of the
        # packet being parsed right now are still in LineReceiver's _buffer
        # (when the hook answered synchronously).  Emptying both also stops
        # the channel from parsing them as HTTP once this request is done.
        leftover = b"".join(getattr(channel, "_dataBuffer", ())) + getattr(channel, "_buffer", b"")
        channel._dataBuffer = []
        channel._buffer = b""
        # Leave the HTTP channel: no idle timeout for a WebSocket, and the
        # transport's producer must be the frame protocol (a channel left
        # registered, paused, would keep a closing connection open forever).
        channel.setTimeout(None)
        transport.unregisterProducer()
        transport.write(accepted.data)
        # Retire the twisted.web request so the access log records the 101:
        # its head is already written, so finish() writes nothing (no chunk
        # terminator, no encoder trailer), and the channel must not close
        # the connection or read on once the request is done.
        request.setResponseCode(101)
        request.startedWriting = True
        if getattr(request, "_encoder", None) is not None:
            request._encoder = None
        channel.persistent = True
        request.finish()
        channel.setTimeout(None)  # requestDone() re-armed it
        # The channel may have paused reading while the hook decided.
        transport.resumeProducing()
        forward = handOff(self.holder, protocol, transport, accepted.trailingData + leftover)
        assert forward is None, "the transport's protocol changed under us"
