"""
WebSockets over HTTP/2 (RFC 8441), interop tier: C{twistd websocket --http2}
on a real TLS listener (127.0.0.1, port 0) against real peers -- node's
C{node:http2} client, headless Chromium loading an https page over h2, and
the C{websockets} client through HAProxy 2.6 (HTTP/1.1 in front, extended
CONNECT behind).  Every process is started and killed by its test, every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from test_browser_interop import DevTools, _waitFor, browser  # noqa: F401 (the fixture)
from wshelpers import DEADLINE, Server, freePort, makeCertificate

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).parent / "node"
ACCESS_LOG_H2 = r'"CONNECT /ws HTTP/2" 200'


def _tlsListen(tmp_path: Path) -> list[str]:
    cert, key = makeCertificate(tmp_path)
    return ["--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"]


@pytest.fixture
def h2Server(twistd, tmp_path: Path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text(PAGE)
    server = Server(twistd, [*_tlsListen(tmp_path), "--http2", "--static", str(static)], tmp_path)
    yield server
    server.stop()


PAGE = """<!doctype html><title>h2 WebSocket</title><script>
window.result = {state: "connecting", echoes: [], extensions: null};
const ws = new WebSocket("wss://" + location.host + "/ws");
ws.onopen = () => {
  result.state = "open";
  result.extensions = ws.extensions;
  ws.send("hello over h2");
  ws.send("x".repeat(5000));
};
ws.onmessage = (e) => {
  result.echoes.push(e.data.length > 100 ? e.data.length : e.data);
  if (result.echoes.length === 2) ws.close(1000, "done");
};
ws.onclose = (e) => { result.state = "closed"; result.code = e.code; result.clean = e.wasClean; };
</script>"""


def test_nodeHttp2Client(h2Server: Server) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run(
        [node, str(NODE_DIR / "h2_ws_client.js"), str(h2Server.port), "/ws", "hello", "z" * 70000, "bye"],
        capture_output=True, text=True, timeout=DEADLINE,
    )
    assert out.returncode == 0, (out.stdout, out.stderr)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["echoes"] == ["hello", "z" * 70000, "bye"]
    assert result["closeCode"] == 1000 and result["ended"] is True
    h2Server.waitFor(ACCESS_LOG_H2)
    h2Server.waitFor(r"WebSocket closed: .* code=1000 .*clean=True")


def test_chromiumUsesExtendedConnect(browser: DevTools, h2Server: Server) -> None:  # noqa: F811
    browser.call("Security.setIgnoreCertificateErrors", {"ignore": True})
    context = browser.call("Target.createBrowserContext")["browserContextId"]
    target = browser.call("Target.createTarget", {"url": "about:blank", "browserContextId": context})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.call("Security.setIgnoreCertificateErrors", {"ignore": True}, session)
    browser.call("Page.enable", session=session)
    browser.call("Page.navigate", {"url": f"https://127.0.0.1:{h2Server.port}/"}, session)
    assert browser.evaluate(session, _waitFor("window.result && window.result.state === 'closed'")) is True
    result = browser.evaluate(session, "JSON.stringify(window.result)")
    result = json.loads(result)
    assert result["echoes"] == ["hello over h2", 5000]
    assert result["code"] == 1000 and result["clean"] is True
    assert result["extensions"].startswith("permessage-deflate")
    page = browser.evaluate(session, "performance.getEntriesByType('navigation')[0].nextHopProtocol")
    assert page == "h2"
    # The server saw the WebSocket arrive as an extended CONNECT on HTTP/2.
    h2Server.waitFor(ACCESS_LOG_H2)


HAPROXY_CONFIG = """
global
  log stderr format raw local0 err
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout tunnel 30s
frontend fe
  bind 127.0.0.1:{front}
  default_backend be
backend be
  server s1 127.0.0.1:{back} ssl verify none alpn h2 ws h2
"""


def startHAProxy(tmp_path: Path, backPort: int) -> tuple[subprocess.Popen, int]:
    """HAProxy on a free port in front of 127.0.0.1:backPort (h2 over TLS)."""
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if haproxy is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy)")
    front = freePort()  # HAProxy cannot bind port 0
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(front=front, back=backPort))
    proc = subprocess.Popen([haproxy, "-f", str(config), "-db"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    import socket
    import time

    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"haproxy exited: {proc.stdout.read().decode()}")  # type: ignore[union-attr]
        try:
            socket.create_connection(("127.0.0.1", front), timeout=1).close()
            return proc, front
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("haproxy did not listen in time")


def test_websocketsThroughHAProxy(h2Server: Server, tmp_path: Path) -> None:
    import websockets

    proc, front = startHAProxy(tmp_path, h2Server.port)
    try:
        async def talk() -> list:
            async with websockets.connect(f"ws://127.0.0.1:{front}/ws", open_timeout=DEADLINE) as ws:
                echoes = []
                for message in ["one", "two" * 30000, b"\x00\xff"]:
                    await ws.send(message)
                    echoes.append(await asyncio.wait_for(ws.recv(), DEADLINE))
                return echoes

        assert asyncio.run(talk()) == ["one", "two" * 30000, b"\x00\xff"]
        h2Server.waitFor(ACCESS_LOG_H2)
    finally:
        proc.kill()
        proc.wait(DEADLINE)
