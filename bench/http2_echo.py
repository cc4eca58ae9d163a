"""
Echo cost over HTTP/2 (RFC 8441) against HTTP/1.1: server CPU per message.

Starts a server process (a twisted.web Site with an echo WebSocketResource,
enableHTTP2WebSockets, one TLS listener on 127.0.0.1 port 0), then for each
carrier opens one WebSocket over TLS -- an extended CONNECT on an h2
connection (ALPN h2, the h2 library as the client) or an HTTP/1.1 Upgrade
(ALPN http/1.1) -- and runs N echo round trips, one message in flight.
The server's CPU time (user + system, from /proc) over the timed round
trips divided by N is the figure; the client's own cost is not counted.

    .venv/bin/python bench/http2_echo.py [-n 5000] [--size 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# -- the server process ------------------------------------------------------


def serve(certDir: str) -> None:
    from twisted.internet import reactor, ssl as tssl
    from twisted.internet.endpoints import serverFromString
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    from twisted_ws import WebSocketProtocol, WebSocketResource, WebSocketServerFactory
    from twisted_ws.http2 import enableHTTP2WebSockets

    class Echo(WebSocketProtocol):
        def messageReceived(self, message):
            self.sendMessage(message)

    del tssl
    root = Resource()
    root.putChild(b"ws", WebSocketResource(WebSocketServerFactory(Echo)))
    site = enableHTTP2WebSockets(Site(root))
    site.noisy = False
    endpoint = serverFromString(
        reactor,
        f"ssl:0:interface=127.0.0.1:privateKey={certDir}/key.pem:certKey={certDir}/cert.pem",
    )

    def listening(port):
        print(port.getHost().port, flush=True)

    endpoint.listen(site).addCallback(listening)
    reactor.run()


def makeCertificate(directory: str) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    with open(os.path.join(directory, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(directory, "key.pem"), "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the clients -----------------------------------------------------------------


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (mask of zeros: the cost we measure is the server's)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def frameLength(buf: bytes) -> int | None:
    """The length of the first whole server frame in C{buf}, or None."""
    if len(buf) < 2:
        return None
    n, offset = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, offset = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, offset = int.from_bytes(buf[2:10], "big"), 10
    return offset + n if len(buf) >= offset + n else None


def tlsSocket(port: int, alpn: str) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([alpn])
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert sock.selected_alpn_protocol() == alpn, sock.selected_alpn_protocol()
    return sock


class H1Client:
    def __init__(self, port: int) -> None:
        self.sock = tlsSocket(port, "http/1.1")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(65536)
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def roundTrip(self, message: bytes) -> None:
        self.sock.sendall(frame(0x2, message))
        while (length := frameLength(self.buf)) is None:
            self.buf += self.sock.recv(65536)
        self.buf = self.buf[length:]


class H2Client:
    def __init__(self, port: int) -> None:
        import h2.config
        import h2.connection
        import h2.events

        self.events = h2.events
        self.sock = tlsSocket(port, "h2")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)
        self.sock.sendall(self.conn.data_to_send())
        self.stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.stream, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
            (":path", "/ws"), (":authority", "localhost"), ("sec-websocket-version", "13"),
        ])
        self.sock.sendall(self.conn.data_to_send())
        self.buf = b""
        status = None
        while status is None:
            for event in self.conn.receive_data(self.sock.recv(65536)):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
            self.sock.sendall(self.conn.data_to_send())
        assert status == b"200", status

    def roundTrip(self, message: bytes) -> None:
        self.conn.send_data(self.stream, frame(0x2, message))
        self.sock.sendall(self.conn.data_to_send())
        while (length := frameLength(self.buf)) is None:
            for event in self.conn.receive_data(self.sock.recv(65536)):
                if isinstance(event, self.events.DataReceived):
                    self.buf += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
        self.buf = self.buf[length:]


def measure(client, pid: int, n: int, message: bytes) -> tuple[float, float]:
    for _ in range(min(n, 500)):  # warm up
        client.roundTrip(message)
    cpu, wall = cpuSeconds(pid), time.perf_counter()
    for _ in range(n):
        client.roundTrip(message)
    return (cpuSeconds(pid) - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="round trips per run")
    parser.add_argument("--size", type=int, default=64, help="message size in bytes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per carrier (the best is shown)")
    parser.add_argument("--serve", metavar="CERTDIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with tempfile.TemporaryDirectory() as certDir:
        makeCertificate(certDir)
        server = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", certDir],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            port = int(server.stdout.readline())  # type: ignore[union-attr]
            message = os.urandom(args.size)
            print(f"echo over TLS, {args.n} round trips of {args.size}-byte binary messages, "
                  f"best of {args.repeat}")
            print(f"{'carrier':<10} {'server CPU us/msg':>18} {'round trip us':>14}")
            for name, make in (("HTTP/1.1", H1Client), ("HTTP/2", H2Client)):
                results = [measure(make(port), server.pid, args.n, message) for _ in range(args.repeat)]
                cpu, wall = min(results)
                print(f"{name:<10} {cpu:>18.1f} {wall:>14.1f}")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
