"""
The Autobahn|TestSuite testee client: runs every case of a fuzzingserver
with twisted_ws's client, echoing each message (text as text, binary as
binary), then asks the fuzzingserver to write its reports.

    python examples/autobahn_client.py ws://127.0.0.1:9001 AGENT

Exits non-zero if the fuzzingserver cannot be reached or reports cannot be
updated; the per-case verdicts are in the fuzzingserver's report.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from twisted.internet import defer, task

from twisted_ws import WebSocketProtocol, connectWS

# Limits large enough for every case of sections 1-10 (9.* sends 16 MiB
# messages and 4 MiB messages in 64-byte fragments).
OPTIONS = dict(
    maxMessageSize=64 * 1024 * 1024,
    maxFragments=None,
    pingInterval=None,
    openTimeout=30,
    closeTimeout=10,
)


class Echo(WebSocketProtocol):
    def textMessageReceived(self, text: str) -> None:
        self.sendMessage(text)

    def binaryMessageReceived(self, data: bytes) -> None:
        self.sendMessage(data)


class FirstMessage(WebSocketProtocol):
    def connectionMade(self) -> None:
        self.first: defer.Deferred[str | bytes] = defer.Deferred()

    def messageReceived(self, message: str | bytes) -> None:
        if not self.first.called:
            self.first.callback(message)


@defer.inlineCallbacks
def main(reactor, base: str, agent: str):  # type: ignore[no-untyped-def]
    base = base.rstrip("/")
    agentQ = quote(agent, safe="")
    counter = yield connectWS(f"{base}/getCaseCount", FirstMessage, reactor=reactor, **OPTIONS)
    count = int((yield counter.first))
    yield counter.whenClosed()
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        url = f"{base}/runCase?case={case}&agent={agentQ}"
        try:
            protocol = yield connectWS(url, Echo, reactor=reactor, **OPTIONS)
        except Exception as e:
            print(f"case {case}: could not connect: {e}", flush=True)
            continue
        yield protocol.whenClosed()
    updater = yield connectWS(f"{base}/updateReports?agent={agentQ}", WebSocketProtocol, reactor=reactor, **OPTIONS)
    yield updater.whenClosed()
    print("reports updated", flush=True)


def parseArguments(argv: list[str]) -> tuple[str, str]:
    """The fuzzingserver URL and the agent name (argparse handles --help and usage errors)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the fuzzingserver, e.g. ws://127.0.0.1:9001")
    parser.add_argument("agent", help="the name the reports list this client under")
    args = parser.parse_args(argv)
    return args.url, args.agent


if __name__ == "__main__":
    task.react(main, parseArguments(sys.argv[1:]))
