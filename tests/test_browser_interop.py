"""
The chat example in a real browser: headless Chromium opens
examples/chat twice (two browser contexts, so two independent users)
against C{twistd -n websocket --mode broadcast --static examples/chat}; a
message typed in one appears in the other.

Chromium is driven through its DevTools protocol over a WebSocket, with the
C{websockets} client the suite already uses: no browser automation package,
no browser download (Playwright would fetch its own browser, which cannot
work offline).  Skipped, with the reason, where Chromium is not installed
(C{.ci/run} installs Debian's C{chromium}).
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from wshelpers import DEADLINE, LOCAL, Server

CHAT = Path(__file__).resolve().parent.parent / "examples" / "chat"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A minimal Chrome DevTools protocol client (flattened sessions)."""

    def __init__(self, url: str) -> None:
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(url, max_size=None, open_timeout=DEADLINE))
        self.ids = itertools.count(1)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = DEADLINE) -> dict[str, Any]:
        """Send one command and wait (bounded) for its answer; events are skipped."""
        callId = next(self.ids)
        message: dict[str, Any] = {"id": callId, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            answer = json.loads(self.ws.recv(remaining))
            if answer.get("id") == callId:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return answer["result"]
        raise AssertionError(f"no answer to {method} within {timeout}s")

    def evaluate(self, session: str, expression: str, timeout: float = DEADLINE) -> Any:
        """Evaluate JS in a page (awaiting a promise) and return its value."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session,
            timeout + 5,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        self._stack.close()


def _waitFor(condition: str, timeout: float = DEADLINE) -> str:
    """JS: a promise resolved with C{condition}'s value once truthy (bounded)."""
    return (
        "new Promise((resolve, reject) => {"
        f"  const deadline = Date.now() + {int(timeout * 1000)};"
        "  (function check() {"
        f"    let value; try {{ value = ({condition}); }} catch (e) {{ value = null; }}"
        "    if (value) resolve(value);"
        f"    else if (Date.now() > deadline) reject(new Error('timed out: ' + {json.dumps(condition)}));"
        "    else setTimeout(check, 20);"
        "  })();"
        "})"
    )


@pytest.fixture
def browser(tmp_path: Path):
    """Headless Chromium with a fresh profile, and a DevTools client for it."""
    executable = _chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: list[str] = []
    lines: list[str] = []
    ready = threading.Event()

    def readStderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=readStderr, daemon=True).start()
    devtools = None
    try:
        if not ready.wait(DEADLINE * 2) or not found:
            raise AssertionError("Chromium did not start its DevTools server:\n" + "".join(lines[-30:]))
        devtools = DevTools(found[0])
        yield devtools
    finally:
        if devtools is not None:
            devtools.close()
        proc.terminate()
        try:
            proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(DEADLINE)


@pytest.fixture
def chatServer(twistd, tmp_path: Path):
    if not (CHAT / "index.html").exists():
        pytest.skip(f"{CHAT} is not there (not a source checkout)")
    server = Server(twistd, [*LOCAL, "--mode", "broadcast", "--static", str(CHAT)], tmp_path)
    yield server
    server.stop()


def _openPage(devtools: DevTools, url: str) -> str:
    """A new tab in its own browser context (its own user); its session id."""
    context = devtools.call("Target.createBrowserContext")["browserContextId"]
    target = devtools.call(
        "Target.createTarget", {"url": "about:blank", "browserContextId": context}
    )["targetId"]
    session = devtools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    devtools.call("Page.enable", session=session)
    devtools.call("Page.navigate", {"url": url}, session)
    assert devtools.evaluate(session, _waitFor("window.chat && window.chat.state === 'open'")) is True
    return session


def _typeAndSend(devtools: DevTools, session: str, text: str) -> None:
    """Type into the message box as a user would, then press Enter."""
    devtools.evaluate(session, "document.getElementById('text').focus(), true")
    devtools.call("Input.insertText", {"text": text}, session)
    for kind in ("keyDown", "keyUp"):
        event = {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        if kind == "keyDown":
            event["text"] = "\r"
        devtools.call("Input.dispatchKeyEvent", event, session)


def test_chatBetweenTwoBrowsers(browser: DevTools, chatServer: Server) -> None:
    pageUrl = f"http://127.0.0.1:{chatServer.port}/?room=browser-test"
    alice = _openPage(browser, pageUrl)
    bob = _openPage(browser, pageUrl)
    browser.evaluate(alice, "document.getElementById('name').value = 'alice', true")
    chatServer.waitFor(r"WebSocket open: .* /ws/browser-test", nth=1)

    _typeAndSend(browser, alice, "hello from Alice ✓ <b>not bold</b>")
    lastLine = "document.querySelector('#messages li:last-child')?.textContent"
    seen = browser.evaluate(bob, _waitFor(f"{lastLine}?.includes('hello from Alice') && {lastLine}"))
    assert seen == "alice:hello from Alice ✓ <b>not bold</b>"
    # Rendered as text, not HTML.
    assert browser.evaluate(bob, "document.querySelectorAll('#messages b').length") == 0
    # The sender sees its line too, once the room has it; the box is empty again.
    assert browser.evaluate(alice, _waitFor(f"{lastLine}?.includes('hello from Alice') && {lastLine}")) == seen
    assert browser.evaluate(alice, "document.getElementById('text').value") == ""

    _typeAndSend(browser, bob, "hi Alice")
    answer = browser.evaluate(alice, _waitFor(f"{lastLine}?.includes('hi Alice') && {lastLine}"))
    assert answer.endswith(":hi Alice")


def _deflateAvailable() -> bool:
    try:
        import twisted_ws.core.deflate  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _deflateAvailable(), reason="permessage-deflate (twisted_ws/core/deflate.py) has not landed")
def test_browserNegotiatesDeflate(browser: DevTools, chatServer: Server) -> None:
    page = _openPage(browser, f"http://127.0.0.1:{chatServer.port}/?room=deflate")
    extensions = browser.evaluate(page, "window.chat.extensions")
    assert extensions.startswith("permessage-deflate"), extensions
