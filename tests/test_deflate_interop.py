"""
permessage-deflate (RFC 7692) on loopback, the interop tier: the
websockets library with every window and context-takeover setting, and
headless Chromium; the server counts the wire bytes to show compression
went both ways.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThread
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase

from twisted_ws import WebSocketServerFactory
from twisted_ws.core.deflate import ClientPerMessageDeflate, DeflateExtension, PerMessageDeflate
from wshelpers import Client, Echo, jsonRecords

ROOT = Path(__file__).resolve().parent.parent
#: zlib's defaults, the largest windows (the server's defaults are smaller).
ZLIB15 = {"serverMaxWindowBits": 15, "clientMaxWindowBits": 15, "memLevel": 8}


class CountingEcho(Echo):
    """
    The shared Echo, counting the wire bytes it reads and writes; "RESULT x"
    fires C{CountingEcho.result} with x, "raw-please" is answered with
    10000 bytes sent uncompressed.
    """

    result: Deferred | None = None

    def connectionMade(self):
        super().connectionMade()
        self.received = 0
        self.sent = 0
        conn = self._conn
        write = conn._write

        def counting(data):
            self.sent += len(data)
            write(data)

        conn._write = counting

    def dataReceived(self, data):
        self.received += len(data)
        super().dataReceived(data)

    def messageReceived(self, message):
        if isinstance(message, str) and message.startswith("RESULT "):
            CountingEcho.result.callback(message[7:])
        elif message == "raw-please":
            self.sendMessage(b"r" * 10000, compress=False)
        else:
            super().messageReceived(message)


class TrackingFactory(WrappingFactory):
    """Knows every open connection, to abort them all and wait until they are gone."""

    allGone: Deferred | None = None

    def unregisterProtocol(self, p):
        WrappingFactory.unregisterProtocol(self, p)
        if not self.protocols and self.allGone is not None:
            d, self.allGone = self.allGone, None
            d.callback(None)

    def drain(self):
        if not self.protocols:
            return None
        self.allGone = Deferred()
        for p in list(self.protocols):
            p.transport.abortConnection()
        return self.allGone


class InteropTests(TestCase):
    timeout = 60

    def listen(self, deflate, tracking=False, **options):
        options.setdefault("pingInterval", None)
        factory = WebSocketServerFactory(CountingEcho, extensions=[deflate], **options)
        factory.instances = self.instances = []
        if tracking:
            factory = self.tracker = TrackingFactory(factory)
        d = serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)

        def listening(port):
            self.addCleanup(port.stopListening)
            self.port = port

        return d.addCallback(listening)

    def url(self):
        return f"ws://127.0.0.1:{self.port.getHost().port}/"

    @inlineCallbacks
    def _websocketsClient(self, deflate, expectedHeader, contextTakeover):
        yield self.listen(deflate, maxMessageSize=4 << 20)
        records = jsonRecords(200)
        big = ("".join(records) * 6)[: 1 << 20]
        bigBinary = big.encode()[::-1]

        def client(url):
            from websockets.sync.client import connect

            with connect(url, max_size=None) as ws:
                header = ws.response.headers.get("Sec-WebSocket-Extensions")
                results = []
                for message in (big, bigBinary, *records, "raw-please"):
                    ws.send(message)
                    results.append(ws.recv())
                return header, results

        header, results = yield deferToThread(client, self.url())
        self.assertEqual(header, expectedHeader)
        self.assertEqual(results[0], big)
        self.assertEqual(results[1], bigBinary)
        self.assertEqual(results[2:-1], records)
        self.assertEqual(results[-1], b"r" * 10000)
        server = self.instances[0]
        ext = server.extensions[0]
        self.assertIsInstance(ext, DeflateExtension)
        self.assertEqual(ext.localNoContextTakeover, not contextTakeover)
        plain = 2 * len(big) + sum(len(r) for r in records)
        # Compression was used both ways: far fewer bytes than the messages
        # (less so when every small record is compressed on its own).
        ratio = 5 if contextTakeover else 3
        self.assertLess(server.received, plain / ratio)
        self.assertLess(server.sent, plain / ratio + 10000)
        self.assertGreater(server.sent, 10000)  # the opted-out message went plain

    def test_websocketsClientContextTakeover(self):
        return self._websocketsClient(
            PerMessageDeflate(),
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            True,
        )

    def test_websocketsClientZlibDefaults(self):
        return self._websocketsClient(PerMessageDeflate(**ZLIB15), "permessage-deflate", True)

    def test_websocketsClientNoContextTakeover(self):
        return self._websocketsClient(
            PerMessageDeflate(
                serverNoContextTakeover=True,
                clientNoContextTakeover=True,
                serverMaxWindowBits=10,
                clientMaxWindowBits=9,
                memLevel=4,
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=9",
            False,
        )

    @inlineCallbacks
    def test_ourClientAgainstWebsocketsServer(self):
        client = pytest.importorskip("twisted_ws.client")
        from websockets.sync.server import serve

        def handler(ws):
            names = [type(e).__name__ for e in ws.protocol.extensions]
            ws.send(json.dumps(names))
            for message in ws:
                ws.send(message)

        server = serve(handler, "127.0.0.1", 0, compression="deflate", max_size=None)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop():
            server.shutdown()
            thread.join(10)

        self.addCleanup(stop)
        port = server.socket.getsockname()[1]

        class Counting(Client):
            """The shared client, counting the wire bytes it reads."""

            def connectionMade(self):
                super().connectionMade()
                self.received = 0

            def dataReceived(self, data):
                self.received += len(data)
                super().dataReceived(data)

        protocol = yield client.connectWS(
            f"ws://127.0.0.1:{port}/",
            Counting,
            extensions=[ClientPerMessageDeflate()],
            pingInterval=None,
            maxMessageSize=4 << 20,
        )
        self.addCleanup(protocol.abortConnection)
        self.assertEqual(json.loads((yield protocol.messages.get())), ["PerMessageDeflate"])
        ext = protocol.extensions[0]
        self.assertIsInstance(ext, DeflateExtension)
        records = jsonRecords(100)
        big = "".join(records) * 3
        echoes = []
        for message in (big, big.encode(), *records):
            protocol.sendMessage(message)
            echoes.append((yield protocol.messages.get()))
        self.assertEqual(echoes[0], big)
        self.assertEqual(echoes[1], big.encode())
        self.assertEqual(echoes[2:], records)
        # websockets compressed its echoes.
        self.assertLess(protocol.received, (2 * len(big) + len("".join(records))) / 5)
        self.assertIsNotNone(ext._deflater)
        self.assertIsNotNone(ext._inflater)
        yield protocol.close()

    @inlineCallbacks
    def test_headlessChromium(self):
        import shutil

        browser = next(
            (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
            None,
        )
        if browser is None:
            pytest.skip("no Chromium")
        yield self.listen(PerMessageDeflate(), tracking=True)
        # A browser may open spare connections: they are aborted at the end.
        self.addCleanup(self.tracker.drain)
        result = CountingEcho.result = Deferred()
        page = Path(self.mktemp() + ".html").resolve()
        # The page reports back over the WebSocket itself, so the test waits
        # for that message rather than for the browser's timing.
        page.write_text(
            "<html><body><script>\n"
            f"const ws = new WebSocket({json.dumps(self.url())});\n"
            "const msg = JSON.stringify(Array.from({length: 300}, (_, i) => ({id: i, kind: 'record'})));\n"
            "ws.onopen = () => ws.send(msg);\n"
            "ws.onmessage = (e) => ws.send('RESULT ' + JSON.stringify("
            "[ws.extensions, e.data === msg, msg.length]));\n"
            "</script></body></html>"
        )
        proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={Path(self.mktemp()).resolve()}", page.as_uri()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def stop():
            proc.kill()
            proc.wait()

        self.addCleanup(stop)
        result.addTimeout(30, reactor)
        extensions, echoed, length = json.loads((yield result))
        self.assertEqual(
            extensions, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        self.assertTrue(echoed)
        # Both directions were compressed.
        server = self.instances[0]
        self.assertLess(server.received, length / 4)
        self.assertLess(server.sent, length / 4)
