"""
The keys of the opening handshake (RFC 6455 section 4): the client's random
Sec-WebSocket-Key and the server's Sec-WebSocket-Accept proving it read it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re

__all__ = ["GUID", "computeAcceptKey", "acceptKeyBytes", "generateKey", "isValidKey"]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: 16 bytes in base64: 22 characters of the alphabet (the last one carries
#: 2 bits of padding) and "==".
_KEY_RE = re.compile(r"[A-Za-z0-9+/]{22}==")


_GUID_BYTES = GUID.encode("ascii")


def computeAcceptKey(key: str) -> str:
    """The Sec-WebSocket-Accept value proving the server read C{key}."""
    return acceptKeyBytes(key).decode("ascii")


def acceptKeyBytes(key: str) -> bytes:
    """L{computeAcceptKey} as the bytes a C{101} carries (one per handshake)."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID_BYTES).digest()
    return binascii.b2a_base64(digest, newline=False)


def generateKey() -> str:
    """A fresh random Sec-WebSocket-Key (16 random bytes, base64)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def isValidKey(key: str) -> bool:
    """Whether C{key} is a well-formed Sec-WebSocket-Key (16 bytes of base64)."""
    return _KEY_RE.fullmatch(key) is not None
