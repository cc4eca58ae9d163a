"""
A WebSocket echo client: send each MESSAGE as text, print each echoed
message on its own line, close cleanly.

    python examples/echo_client.py URL MESSAGE... [--cafile FILE]
        [--timeout SECONDS] [--proxy http://host:port] [--use-proxy-env]

Exits 0 when every message came back and the close handshake completed;
on any failure (connection refused, handshake rejected, TLS verification,
timeout) it prints one line to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import defer, task
from twisted.python.failure import Failure

from twisted_ws import WebSocketProtocol, connectWS


class EchoClient(WebSocketProtocol):
    def connectionMade(self) -> None:
        self.received: defer.DeferredQueue[object] = defer.DeferredQueue()

    def messageReceived(self, message: str | bytes) -> None:
        self.received.put(message)

    def connectionClosed(self, code: int, reason: str, wasClean: bool) -> None:
        self.received.put(ConnectionError(f"connection closed by the server ({code} {reason})".strip()))


def describe(failure: Failure) -> str:
    """One line saying what went wrong."""
    error = failure.value
    text = " ".join(str(error).split()) or failure.getErrorMessage()
    return f"{type(error).__name__}: {text}"[:500]


@defer.inlineCallbacks
def run(reactor, args):  # type: ignore[no-untyped-def]
    protocol = yield connectWS(
        args.url,
        EchoClient,
        reactor=reactor,
        trustRoot=args.cafile,
        proxy=args.proxy,
        useProxyEnvironment=args.use_proxy_env,
        openTimeout=args.timeout,
        closeTimeout=args.timeout,
        pingInterval=None,
    )
    for message in args.messages:
        protocol.sendMessage(message)
        reply = yield protocol.received.get().addTimeout(args.timeout, reactor)
        if isinstance(reply, Exception):
            raise reply
        print(reply if isinstance(reply, str) else reply.hex(), flush=True)
    info = yield protocol.close()
    if not info.wasClean:
        raise ConnectionError(f"the close handshake did not complete ({info.code})")


def main(reactor, *argv: str):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="ws:// or wss:// URL")
    parser.add_argument("messages", nargs="*", metavar="MESSAGE")
    parser.add_argument("--cafile", help="PEM file of CA certificates to trust for wss://")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step (default 10)")
    parser.add_argument("--proxy", help="HTTP proxy URL to tunnel through (CONNECT)")
    parser.add_argument(
        "--use-proxy-env", action="store_true", help="honour http_proxy/https_proxy/no_proxy"
    )
    # Intermixed: options may come before, between or after the messages
    # (plain parse_args stops taking messages at the first option).
    args = parser.parse_intermixed_args(argv)

    def failed(failure: Failure) -> None:
        print(f"echo_client: {describe(failure)}", file=sys.stderr, flush=True)
        raise SystemExit(1)

    try:
        d = run(reactor, args)
    except Exception:
        failed(Failure())
    return d.addErrback(failed)


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
