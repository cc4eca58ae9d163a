'use strict';
// A scripted client built on node's `ws` package, the peer for
// tests/test_node_interop.py.
//
//   node ws_client.js URL [--no-deflate] [--protocols a,b] [--ping]
//       [--close-code N] [--close-reason TEXT] [--server-close] [--timeout S]
//
// Sends the script below (text with non-ASCII, empty text, binary, a large
// text, a 1 MiB binary) to an echo server one message at a time, checks
// each echo (content and type), then closes with the chosen code and reason
// (default 1000, ""), or with --server-close sends "close-me" and waits for
// the server to close.  --ping first pings and waits for the pong.
// On success it prints one JSON line on stdout and exits 0: ok, protocol,
// extensions (the server's Sec-WebSocket-Extensions), messages, pong,
// closeCode and closeReason (what the server's Close carried).  On any
// failure, or after --timeout seconds (default 10), it prints one line on
// stderr and exits 1.

let WebSocket;
try {
  WebSocket = require('ws');
} catch (err) {
  process.stderr.write('ws_client: the ws package is missing: npm install --prefix tests/node\n');
  process.exit(2);
}

function fail(message) {
  process.stderr.write(`ws_client: ${message}\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
let url = null;
let deflate = true;
let protocols = [];
let ping = false;
let closeCode = 1000;
let closeReason = '';
let serverClose = false;
let timeout = 10;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const value = () => {
    if (i + 1 >= args.length) fail(`${a} needs a value`);
    return args[++i];
  };
  if (a === '--no-deflate') deflate = false;
  else if (a === '--deflate') deflate = true;
  else if (a === '--protocols') protocols = value().split(',').filter(Boolean);
  else if (a === '--ping') ping = true;
  else if (a === '--close-code') closeCode = Number(value());
  else if (a === '--close-reason') closeReason = value();
  else if (a === '--server-close') serverClose = true;
  else if (a === '--timeout') timeout = Number(value());
  else if (!a.startsWith('--') && url === null) url = a;
  else fail(`unknown argument ${JSON.stringify(a)}`);
}
if (url === null) fail('usage: ws_client.js URL [options]');

setTimeout(() => fail(`timed out after ${timeout} s`), timeout * 1000).unref();

// The script: [payload, isBinary].  tests/test_node_interop.py builds the
// same messages for its own client.
const bigBinary = Buffer.alloc(1 << 20);
for (let i = 0; i < bigBinary.length; i++) bigBinary[i] = (i * 31 + (i >> 12)) & 0xff;
const script = [
  ['hello', false],
  ['h\u00e9llo w\u00f6rld \u2713 \ud83d\ude00 \u65e5\u672c\u8a9e', false],
  ['', false],
  [Buffer.from(Array.from({ length: 256 }, (_, i) => i)), true],
  ['\u00fcn\u00efc\u00f8d\u00e9 \u2713 \ud83d\ude00 '.repeat(10000), false],
  [bigBinary, true],
];

const ws = new WebSocket(url, protocols, {
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  handshakeTimeout: timeout * 1000,
});

let extensions = '';
let pong = null;
let index = 0;

ws.on('upgrade', (res) => {
  extensions = res.headers['sec-websocket-extensions'] || '';
});

function sendNext() {
  if (index < script.length) {
    const [payload, isBinary] = script[index];
    ws.send(payload, { binary: isBinary });
  } else if (serverClose) {
    ws.send('close-me');
  } else {
    ws.close(closeCode, closeReason);
  }
}

ws.on('open', () => {
  if (ping) {
    ws.ping('node-ping');
  } else {
    sendNext();
  }
});

ws.on('pong', (data) => {
  if (pong === null) {
    pong = data.toString();
    if (pong !== 'node-ping') fail(`pong carried ${JSON.stringify(pong)}, not "node-ping"`);
    sendNext();
  }
});

ws.on('message', (data, isBinary) => {
  if (index >= script.length) fail('a message after the script ended');
  const [payload, wantBinary] = script[index];
  if (isBinary !== wantBinary) fail(`echo ${index}: binary=${isBinary}, sent binary=${wantBinary}`);
  const expected = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  if (!expected.equals(data)) {
    fail(`echo ${index}: ${data.length} bytes differ from the ${expected.length} sent`);
  }
  index += 1;
  sendNext();
});

ws.on('error', (err) => fail(err.message));

ws.on('close', (code, reason) => {
  if (index < script.length) fail(`closed (${code}) after ${index} of ${script.length} echoes`);
  process.stdout.write(
    JSON.stringify({
      ok: true,
      protocol: ws.protocol,
      extensions,
      messages: index,
      pong,
      closeCode: code,
      closeReason: reason.toString(),
    }) + '\n',
    () => process.exit(0) // once written: process.exit() drops queued output
  );
});
