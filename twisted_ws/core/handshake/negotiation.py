"""
What an accepted opening handshake settles, whatever carried it.

The subprotocol, the extensions and the response headers that go with them
are the same for an HTTP/1.1 Upgrade (answered with C{101}) and an HTTP/2
extended CONNECT (answered with C{:status 200}); only the framing of the
answer differs.  L{negotiate} is that shared part, so the front ends
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from twisted_ws.core.acceptance import DEFAULT_SUBPROTOCOL, Accept
from twisted_ws.core.extensions import (
    Extension,
    ServerExtensionFactory,
    negotiateServerExtensions,
)
from twisted_ws.core.handshake.request import HandshakeRequest, checkExtraHeaders
from twisted_ws.core.http import checkHeaderField

__all__ = ["Negotiated", "negotiate", "selectSubprotocol"]


def selectSubprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """
    The first of C{supported} the client offered, or None.

    The server's order wins because the server knows which of its protocols
    is best; matching is case-sensitive as subprotocol tokens are.
    """
    if not offered or not supported:
        return None
    offeredSet = set(offered)
    for protocol in supported:
        if protocol in offeredSet:
            return protocol
    return None



@dataclass(slots=True)
class Negotiated:
    """
    The terms of an accepted handshake (read-only by convention: not
    frozen, as a frozen dataclass costs a microsecond more to build, and
    one is built per connection).

    @ivar subprotocol: the subprotocol answered, or C{None}.
    @ivar extensions: the live extensions, in the order they apply.
    @ivar extensionsHeader: the Sec-WebSocket-Extensions value, or C{None}.
    @ivar extraHeaders: the application's headers (already checked).
    """

    subprotocol: str | None
    extensions: tuple[Extension, ...]
    extensionsHeader: str | None
    extraHeaders: tuple[tuple[str, str], ...]

    @property
    def headers(self) -> list[tuple[str, str]]:
        """
        Every response header the negotiation adds, without the ones only
        HTTP/1.1 has (Upgrade, Connection, Sec-WebSocket-Accept).
        """
        headers = []
        if self.subprotocol is not None:
            headers.append(("Sec-WebSocket-Protocol", self.subprotocol))
        if self.extensionsHeader is not None:
            headers.append(("Sec-WebSocket-Extensions", self.extensionsHeader))
        headers += self.extraHeaders
        return headers


def negotiate(
    request: HandshakeRequest,
    decision: Accept | None = None,
    subprotocols: Sequence[str] = (),
    extensionFactories: Sequence[ServerExtensionFactory] = (),
    extraHeaders: Iterable[tuple[str, str]] = (),
) -> Negotiated:
    """
    Settle the subprotocol, the extensions and the headers of an accepted
    C{request}.

    @param decision: the application's L{Accept} (C{None}: the defaults);
        its L{DEFAULT_SUBPROTOCOL} picks the first of C{subprotocols} the
        client offered, the server's order winning.
    @param extraHeaders: headers added after the decision's own (e.g. the
        twisted.web request's cookies).
    @raise ValueError: the subprotocol was not offered by the client (RFC
        6455 lets a server pick only an offered one), or an extra header is
        one the handshake sets itself, or is not a valid header.
    """
    if decision is None:
        subprotocol: object = DEFAULT_SUBPROTOCOL
        headers: Sequence[tuple[str, str]] = ()
    else:
        subprotocol, headers = decision.subprotocol, decision.headers
    if subprotocol is DEFAULT_SUBPROTOCOL:
        subprotocol = selectSubprotocol(request.protocols, subprotocols)
    elif subprotocol is not None and subprotocol not in request.protocols:
        raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client")
    extra: list[tuple[str, str]] = []
    if headers or extraHeaders:
        extra = checkExtraHeaders([*headers, *extraHeaders])
        for name, value in extra:
            checkHeaderField(name, value)
    if request.extensions and extensionFactories:
        extensionsHeader, extensions = negotiateServerExtensions(
            request.extensions, extensionFactories
        )
    else:
        extensionsHeader, extensions = None, []
    return Negotiated(
        subprotocol=subprotocol,
        extensions=tuple(extensions),
        extensionsHeader=extensionsHeader,
        extraHeaders=tuple(extra),
    )
