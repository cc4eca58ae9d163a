"""
One port for a private TCP protocol, WebSocket and HTTP on real sockets
(the interop tier): an C{ssl:} listener with the C{websockets} client, and
the example program as a subprocess.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from websockets.sync.client import connect

from wshelpers import loadExample, makeCertificate

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shared_port.py"


def lineClient(port, commands, context=None):
    """Send lines on a real socket, read one answer line each."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        reader = sock.makefile("rb")
        answers = []
        for command in commands:
            sock.sendall(command + b"\r\n")
            answers.append(reader.readline().rstrip(b"\r\n"))
        return answers
    finally:
        sock.close()


def wsTLSContext(cafile):
    """
    A client context for the C{websockets} sync client, limited to TLS 1.2.

    That client reads and writes one TLS socket from two threads at once;
    with TLS 1.3 (post-handshake session tickets) this loses its upgrade
    request about once in a few hundred connections, whatever the server
    (reproduced against a plain C{ssl:} WebSocketServerFactory too).
    The raw TLS clients here are single-threaded and keep TLS 1.3.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def wsClient(url, commands, context=None):
    kw = {"ssl": context, "server_hostname": "localhost"} if context else {}
    with connect(url, open_timeout=10, **kw) as ws:
        answers = []
        for command in commands:
            ws.send(command)
            answers.append(ws.recv(timeout=10))
        return answers


class SharedPortTests(TestCase):
    """Real sockets where they are the point: an ssl: listener, the example program."""

    timeout = 60

    @inlineCallbacks
    def listen(self, factory, description="tcp:0:interface=127.0.0.1"):
        port = yield serverFromString(reactor, description).listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def certificate(self):
        directory = Path(self.mktemp())
        directory.mkdir()
        return makeCertificate(directory)

    @inlineCallbacks
    def test_tlsOnTheSharedPort(self):
        cert, key = self.certificate()
        context = ssl.create_default_context(cafile=str(cert))
        port = yield self.listen(
            loadExample("shared_port").makeSharedFactory(),
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        )
        tcp = yield deferToThread(lineClient, port, [b"SET secret 42", b"GET secret"], context)
        self.assertEqual(tcp, [b"OK", b"42"])
        wss = yield deferToThread(
            wsClient, f"wss://127.0.0.1:{port}/", ["GET secret", "SET other 7"], wsTLSContext(cert)
        )
        self.assertEqual(wss, ["42", "OK"])
        tcp = yield deferToThread(lineClient, port, [b"GET other"], context)
        self.assertEqual(tcp, [b"7"])

    @inlineCallbacks
    def test_exampleProgram(self):
        def run():
            process = subprocess.Popen(
                [sys.executable, str(EXAMPLE), "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                line = process.stdout.readline().decode()
                assert line.startswith("listening on 127.0.0.1:"), line
                port = int(line.rsplit(":", 1)[1])
                tcp = lineClient(port, [b"SET lang python", b"GET nothing"])
                ws = wsClient(f"ws://127.0.0.1:{port}/", ["GET lang", "SET x y"])
                tcp += lineClient(port, [b"GET x"])
                return tcp, ws
            finally:
                process.terminate()
                process.wait(10)
                process.stdout.close()

        tcp, ws = yield deferToThread(run)
        self.assertEqual(tcp, [b"OK", b"NOT_FOUND", b"y"])
        self.assertEqual(ws, ["python", "OK"])
