// A tiny chat client for the broadcast mode of `twistd websocket`.
// The server relays every message to everyone in the room (the URL path),
// the sender included, so a line appears once the room has seen it.
// Messages are JSON: {"name": "...", "text": "..."}; anything else is shown
// as it came.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const room = (params.get("room") || "lobby").slice(0, 100);
  const prefix = (params.get("ws") || "/ws").replace(/\/+$/, "");
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}${prefix}/${encodeURIComponent(room)}`;
  const MAX_LINES = 500;

  const list = document.getElementById("messages");
  const state = document.getElementById("state");
  const form = document.getElementById("composer");
  const nameInput = document.getElementById("name");
  const textInput = document.getElementById("text");
  document.getElementById("room").textContent = "#" + room;
  document.title = `#${room} – twisted_ws chat`;

  let savedName = null;
  try { savedName = localStorage.getItem("chat-name"); } catch (e) { /* private mode */ }
  nameInput.value = savedName || "guest-" + Math.floor(Math.random() * 10000);

  // For scripts and tests: the live state of the page.
  const chat = window.chat = { url, room, state: "connecting", extensions: "", received: 0 };

  let ws = null;
  let retryDelay = 500;

  function setState(text, cls) {
    chat.state = cls || text;
    state.textContent = text;
    state.className = "state " + (cls || "");
  }

  function show(who, text, cls) {
    const item = document.createElement("li");
    if (cls) item.className = cls;
    if (who !== null) {
      const name = document.createElement("span");
      name.className = "who";
      name.textContent = who + ":";
      item.appendChild(name);
    }
    item.appendChild(document.createTextNode(text)); // never innerHTML: no injection
    const atBottom = list.parentElement.scrollHeight - list.parentElement.scrollTop
      <= list.parentElement.clientHeight + 40;
    list.appendChild(item);
    while (list.children.length > MAX_LINES) list.removeChild(list.firstChild);
    if (atBottom) item.scrollIntoView({ block: "end" });
  }

  function connect() {
    setState("connecting…", "connecting");
    ws = new WebSocket(url);
    ws.onopen = () => {
      retryDelay = 500;
      chat.extensions = ws.extensions;
      setState("connected", "open");
    };
    ws.onmessage = (event) => {
      chat.received += 1;
      if (typeof event.data !== "string") {
        show(null, `(binary message, ${event.data.size} bytes)`, "info");
        return;
      }
      let message = null;
      try { message = JSON.parse(event.data); } catch (e) { /* plain text */ }
      if (message && typeof message.text === "string") {
        show(String(message.name || "?").slice(0, 40), message.text);
      } else {
        show(null, event.data, "info");
      }
    };
    ws.onclose = (event) => {
      const why = event.reason ? `${event.code} ${event.reason}` : `${event.code}`;
      setState(`disconnected (${why}); retrying…`, "closed");
      // Reconnect with a bounded back-off.
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    };
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textInput.value.trim();
    if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
    const name = nameInput.value.trim() || "guest";
    try { localStorage.setItem("chat-name", name); } catch (e) { /* private mode */ }
    ws.send(JSON.stringify({ name, text }));
    textInput.value = "";
    textInput.focus();
  });

  connect();
})();
