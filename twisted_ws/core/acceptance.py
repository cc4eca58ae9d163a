"""
What an accept hook may answer about an opening handshake.

A hook returns C{None} (accept with the defaults), an L{Accept} (accept,
choosing the subprotocol and adding response headers), or returns or raises
a L{Reject} (answer with an HTTP error instead of switching protocols).
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import HandshakeError

__all__ = ["Accept", "Reject", "DEFAULT_SUBPROTOCOL"]


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT_SUBPROTOCOL"


#: Marker: let the factory pick the subprotocol (its preference order).
DEFAULT_SUBPROTOCOL: object = _Default()


class Accept:
    """
    Accept the connection.

    @ivar subprotocol: the subprotocol to answer with (one the client
        offered), C{None} for none, or L{DEFAULT_SUBPROTOCOL} to let the
        factory choose among its C{subprotocols}.
    @ivar headers: extra response headers, e.g. C{Set-Cookie}.
    """

    __slots__ = ("subprotocol", "headers")

    def __init__(
        self,
        subprotocol: str | None | object = DEFAULT_SUBPROTOCOL,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.subprotocol = subprotocol
        self.headers = list(headers)

    def __repr__(self) -> str:
        return f"Accept(subprotocol={self.subprotocol!r}, headers={self.headers!r})"


class Reject(HandshakeError):
    """
    Refuse the connection with an HTTP status (403 unless told otherwise).

    C{reason} is sent as a short plain-text body unless C{body} is given.
    """

    def __init__(
        self,
        status: int = 403,
        reason: str = "Forbidden",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | str | None = None,
    ) -> None:
        super().__init__(status, reason, headers)
        self.body = body
