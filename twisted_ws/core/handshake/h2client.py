"""
The client side of the HTTP/2 opening handshake (RFC 8441 extended
CONNECT), without I/O: the header list to send on a new stream, and what
the server's answer on that stream means.

It is the HTTP/1.1 L{ClientHandshake}'s twin: the offers (origin,
subprotocols, extensions, extra headers) and the checks of the answer
(L{checkAcceptedTerms}, L{acceptClientExtensions}) are the same; only
the carrier differs -- pseudo-header fields instead of a request line, no
key and no accept hash, C{:status 200} instead of 101, and a refusal's
body arriving as the stream's DATA (the h2 layer frames it, so there is
no Content-Length or chunked decoding here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus

from twisted_ws.core.errors import (
    ClientHandshakeError,
    HandshakeClosed,
    HandshakeError,
    InvalidServerResponse,
)
from twisted_ws.core.extensions import (
    ClientExtensionFactory,
    acceptClientExtensions,
    formatExtensionHeader,
)
from twisted_ws.core.handshake.body import MAX_REFUSAL_BODY
from twisted_ws.core.handshake.client import ClientState, invalidAnswer
from twisted_ws.core.handshake.outcomes import Accepted, Failed, Rejected
from twisted_ws.core.handshake.request import HandshakeRequest, checkExtraHeaders
from twisted_ws.core.handshake.response import HandshakeResponse, checkAcceptedTerms
from twisted_ws.core.http import Headers, checkHeaderField, isToken

__all__ = ["H2ClientHandshake", "extendedConnectRequest"]

#: Connection-specific fields, which HTTP/2 forbids (RFC 9113 8.2.2;
#: C{te: trailers} is the one exception).
_CONNECTION_SPECIFIC = frozenset(
    {"connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding", "te"}
)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def extendedConnectRequest(
    authority: str,
    resource: str,
    *,
    scheme: str = "https",
    origin: str | None = None,
    protocols: Sequence[str] = (),
    extensionsHeader: str | None = None,
    extraHeaders: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """
    The header list of an extended CONNECT opening a WebSocket (RFC 8441
    section 4): the pseudo-header fields, then C{sec-websocket-version},
    the offers and the application's headers, every name lower-case.

    @raise ValueError: a resource not starting with C{/}, a subprotocol
        that is not a token, an extra header the handshake sets itself or
        that HTTP/2 forbids, or an invalid header (injection).
    """
    if not resource.startswith("/"):
        raise ValueError(f"request path must start with '/': {resource!r}")
    for protocol in protocols:
        if not isToken(protocol):
            raise ValueError(f"invalid subprotocol name {protocol!r}")
    fields = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", scheme),
        (":path", resource),
        (":authority", authority),
        ("sec-websocket-version", "13"),
    ]
    if origin is not None:
        fields.append(("origin", origin))
    if protocols:
        fields.append(("sec-websocket-protocol", ", ".join(protocols)))
    if extensionsHeader is not None:
        fields.append(("sec-websocket-extensions", extensionsHeader))
    for name, value in checkExtraHeaders(extraHeaders):
        lowered = name.lower()
        if lowered in _CONNECTION_SPECIFIC and not (lowered == "te" and value == "trailers"):
            raise ValueError(f"header {name!r} is connection-specific, which HTTP/2 forbids")
        fields.append((name.lower(), value))
    for name, value in fields:
        checkHeaderField(name.lstrip(":"), value)
    return fields


class H2ClientHandshake:
    """
    The client side of one extended CONNECT.

    Send L{headers} on a new stream, then tell L{receiveHeaders} the
    response's header list; a refusal's body goes to L{receiveData} and
    its end (or giving up on it) to L{streamEnded}.

    @ivar headers: the request's header list, C{str} pairs, built once.
    @ivar request: the same request as a L{HandshakeRequest} with
        C{httpVersion} C{"2"} (no key), as the server sees it (always
        C{secure}: the client speaks HTTP/2 over TLS only).
    @ivar state: a L{ClientState}.
    """

    def __init__(
        self,
        authority: str,
        resource: str = "/",
        *,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ClientExtensionFactory] = (),
        origin: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        maxBodySize: int = MAX_REFUSAL_BODY,
    ) -> None:
        """
        @param authority: the C{:authority} (C{host[:port]}).
        @param resource: the C{:path}, path and query, from C{/}.
        @raise ValueError: as L{extendedConnectRequest}.
        """
        self.subprotocols = list(subprotocols)
        self.extensionFactories = list(extensions)
        self.maxBodySize = maxBodySize
        offers = [(factory.name, list(factory.offer())) for factory in self.extensionFactories]
        self.headers = extendedConnectRequest(
            authority,
            resource,
            origin=origin,
            protocols=self.subprotocols,
            extensionsHeader=formatExtensionHeader(offers) if offers else None,
            extraHeaders=headers,
        )
        regular = Headers([(n, v) for n, v in self.headers if not n.startswith(":")])
        path, _, query = resource.partition("?")
        self.request = HandshakeRequest(
            method="CONNECT",
            target=resource,
            path=path,
            query=query,
            version=(2, 0),
            headers=regular,
            host=authority,
            origin=origin,
            key="",
            protocols=list(self.subprotocols),
            extensions=offers,
            httpVersion="2",
            secure=True,
        )
        self.state = ClientState.WAITING
        self._status = 0
        self._responseHeaders: tuple[tuple[str, str], ...] = ()
        self._body: list[bytes] = []
        self._bodySize = 0

    def receiveHeaders(
        self, fields: Iterable[tuple[str | bytes, str | bytes]]
    ) -> Accepted | Failed | None:
        """
        The response's (final) header list, as the h2 layer decoded it.

        @return: L{Accepted} for a valid C{:status 200}; L{Failed} with
            L{InvalidServerResponse} for a missing or bad status or a 200
            that breaks the offer; C{None} for any other status (a
            refusal), whose body is then read until L{streamEnded}.
        """
        if self.state is not ClientState.WAITING:
            return None
        status: str | None = None
        regular: list[tuple[str, str]] = []
        for rawName, rawValue in fields:
            name, value = _text(rawName), _text(rawValue)
            if name == ":status":
                status = value
            elif not name.startswith(":"):
                regular.append((name, value))
        if status is None or not (len(status) == 3 and status.isdigit()):
            return self._fail(InvalidServerResponse(f"invalid :status {status!r} in the answer"))
        code = int(status)
        headers = Headers(regular)
        self._status, self._responseHeaders = code, tuple(regular)
        if code != 200:
            # Only 200 opens a WebSocket (RFC 8441 section 5); anything
            # else is the server's answer, body included.
            self.state = ClientState.READING_BODY
            return None
        try:
            subprotocol, offers = checkAcceptedTerms(
                headers, self.subprotocols, [f.name for f in self.extensionFactories]
            )
            extensions = acceptClientExtensions(offers, self.extensionFactories)
        except (HandshakeError, ValueError) as e:
            return self._fail(invalidAnswer(e))
        self.state = ClientState.ACCEPTED
        return Accepted(
            request=self.request,
            subprotocol=subprotocol,
            extensions=tuple(extensions),
            data=b"",
            trailingData=b"",
            responseHeaders=tuple(regular),
            response=HandshakeResponse(
                status=200, headers=headers, subprotocol=subprotocol, extensions=offers
            ),
        )

    def receiveData(self, data: bytes) -> None:
        """Part of a refusal's body (kept up to C{maxBodySize} bytes)."""
        if self.state is not ClientState.READING_BODY:
            return
        room = self.maxBodySize - self._bodySize
        if room > 0 and data:
            piece = data[:room]
            self._body.append(piece)
            self._bodySize += len(piece)

    def streamEnded(self) -> Rejected | Failed | None:
        """
        The stream ended (END_STREAM, a reset, the connection lost) or the
        glue gave up waiting.

        @return: the refusal with the body that arrived; L{Failed} with
            L{HandshakeClosed} when no answer came; C{None} once decided.
        """
        if self.state is ClientState.READING_BODY:
            self.state = ClientState.REJECTED
            try:
                phrase = HTTPStatus(self._status).phrase
            except ValueError:
                phrase = ""
            return Rejected(
                status=self._status,
                reason=phrase,
                headers=self._responseHeaders,
                body=b"".join(self._body),
                request=self.request,
            )
        if self.state is ClientState.WAITING:
            return self._fail(
                HandshakeClosed("the stream ended before the server answered the extended CONNECT")
            )
        return None

    def _fail(self, error: ClientHandshakeError) -> Failed:
        self.state = ClientState.FAILED
        return Failed(error)
