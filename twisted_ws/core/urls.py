"""
WebSocket URLs (RFC 6455 §3): parsing C{ws://} and C{wss://} into what a
client needs to connect and to write its request line and C{Host} header.

I/O-free, like the rest of the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["WebSocketURL", "parseURL"]

# Everything printable in ASCII stays as written; spaces and non-ASCII text
# are percent-encoded (the request line allows nothing else).
_SAFE_IN_TARGET = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class WebSocketURL:
    """
    A parsed C{ws://} / C{wss://} URL.

    @ivar host: the host name (IDNA-encoded) or IP address, without the
        brackets of an IPv6 literal.
    @ivar resource: the request target: path and C{?query}.
    """

    secure: bool
    host: str
    port: int
    resource: str

    @property
    def defaultPort(self) -> int:
        return 443 if self.secure else 80

    @property
    def hostHeader(self) -> str:
        """The C{Host} header: brackets around IPv6, the port if not default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == self.defaultPort else f"{host}:{self.port}"

    @property
    def authority(self) -> str:
        """C{host:port}, as a proxy's C{CONNECT} wants it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{'wss' if self.secure else 'ws'}://{self.hostHeader}{self.resource}"


def parseURL(url: str | WebSocketURL) -> WebSocketURL:
    """
    Parse a WebSocket URL (RFC 6455 section 3).

    @raise ValueError: not C{ws}/C{wss}, no host, a bad port, a fragment
        (forbidden by RFC 6455) or user info (pass an C{Authorization}
        header instead, so credentials never end up in logged URLs).
    """
    if isinstance(url, WebSocketURL):
        return url
    if not isinstance(url, str):
        raise TypeError(f"URL must be a str, not {type(url).__name__}")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URL (ws:// or wss://): {url!r}")
    if "#" in url:
        raise ValueError(f"WebSocket URLs cannot have a fragment: {url!r}")
    if "@" in parts.netloc:
        raise ValueError("user info in WebSocket URLs is not supported; pass an Authorization header")
    host = parts.hostname
    if not host:
        raise ValueError(f"WebSocket URL has no host: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in WebSocket URL: {url!r}") from None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"invalid host name in WebSocket URL: {url!r}") from None
    secure = scheme == "wss"
    if port is None:
        port = 443 if secure else 80
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    resource = quote(resource, safe=_SAFE_IN_TARGET)
    return WebSocketURL(secure, host, port, resource)
