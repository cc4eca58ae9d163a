'use strict';
// A WebSocket echo server over HTTP/2 (RFC 8441 extended CONNECT) built on
// node's own `node:http2` and the framing of the `ws` package, the peer for
// tests/test_http2_client_interop.py (an h2 stack nobody here wrote).
//
//   node h2_ws_server.js --cert CERT.pem --key KEY.pem [--no-connect-protocol]
//                        [--protocols a,b] [--refuse-path /forbidden]
//
// Listens on 127.0.0.1 (TLS, ALPN h2 only), port chosen by the OS, and prints
// one line "listening PORT".  It advertises SETTINGS_ENABLE_CONNECT_PROTOCOL
// unless --no-connect-protocol.  A CONNECT with :protocol websocket is
// answered :status 200 (with the first of --protocols the client offered)
// and runs WebSocket framing on the stream: text echoed as text, binary as
// binary, "close-me" closes with 4000 "bye", a Close is answered and the
// stream ended.  --refuse-path answers that :path with 403 and a body.
// One JSON line per event ("open {...}", "closed {...}").  No
// permessage-deflate: the ws package's deflate needs its WebSocket class.
// Exits 0 on SIGTERM, SIGINT or end of stdin.

const http2 = require('node:http2');
const fs = require('node:fs');

let Receiver, Sender;
try {
  ({ Receiver, Sender } = require('ws'));
} catch (err) {
  process.stderr.write('h2_ws_server: the ws package is missing: npm install --prefix tests/node\n');
  process.exit(2);
}

const args = process.argv.slice(2);
let certPath = null;
let keyPath = null;
let connectProtocol = true;
let protocols = [];
let refusePath = null;
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === '--cert' && i + 1 < args.length) certPath = args[++i];
  else if (arg === '--key' && i + 1 < args.length) keyPath = args[++i];
  else if (arg === '--no-connect-protocol') connectProtocol = false;
  else if (arg === '--protocols' && i + 1 < args.length) protocols = args[++i].split(',').filter(Boolean);
  else if (arg === '--refuse-path' && i + 1 < args.length) refusePath = args[++i];
  else {
    process.stderr.write(`h2_ws_server: unknown argument ${JSON.stringify(arg)}\n`);
    process.exit(2);
  }
}
if (!certPath || !keyPath) {
  process.stderr.write('h2_ws_server: --cert and --key are required\n');
  process.exit(2);
}

function report(event, fields) {
  process.stdout.write(`${event} ${JSON.stringify(fields)}\n`);
}

let key, cert;
try {
  key = fs.readFileSync(keyPath);
  cert = fs.readFileSync(certPath);
} catch (err) {
  process.stderr.write(`h2_ws_server: ${err.message}\n`);
  process.exit(2);
}

const server = http2.createSecureServer({
  key,
  cert,
  allowHTTP1: false,
  settings: { enableConnectProtocol: connectProtocol },
});

server.on('stream', (stream, headers) => {
  const path = headers[':path'];
  if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
    stream.respond({ ':status': 405, 'content-type': 'text/plain' });
    stream.end('extended CONNECT only\n');
    return;
  }
  if (refusePath !== null && path === refusePath) {
    stream.respond({ ':status': 403, 'content-type': 'text/plain', 'x-why': 'refused' });
    stream.end('go away\n');
    report('refused', { path });
    return;
  }
  const offered = (headers['sec-websocket-protocol'] || '')
    .split(',').map((p) => p.trim()).filter(Boolean);
  const chosen = protocols.find((p) => offered.includes(p));
  const answer = { ':status': 200 };
  if (chosen) answer['sec-websocket-protocol'] = chosen;
  stream.respond(answer);
  report('open', {
    path,
    authority: headers[':authority'],
    scheme: headers[':scheme'],
    version: headers['sec-websocket-version'],
    protocol: chosen || '',
    offeredExtensions: headers['sec-websocket-extensions'] || '',
  });

  // A server: frames from the client must be masked, ours are not.
  const receiver = new Receiver({ isServer: true, maxPayload: 16 << 20 });
  const sender = new Sender(stream);
  let closeSent = false;
  const closeWith = (code, reason) => {
    if (closeSent) return;
    closeSent = true;
    sender.close(code, reason, false, () => stream.end());
  };

  receiver.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'close-me') {
      closeWith(4000, 'bye');
      return;
    }
    sender.send(data, { binary: isBinary, fin: true, mask: false, compress: false });
  });
  receiver.on('ping', (data) => sender.pong(data, false));
  receiver.on('conclude', (code, reason) => {
    report('closed', { code, reason: reason.toString() });
    closeWith(code === 1005 ? 1000 : code, '');
  });
  receiver.on('error', (err) => {
    report('error', { message: err.message });
    stream.close(http2.constants.NGHTTP2_CANCEL);
  });
  stream.on('data', (chunk) => receiver.write(chunk));
  stream.on('end', () => report('ended', {}));
  stream.on('aborted', () => report('aborted', {}));
  stream.on('error', (err) => report('streamerror', { message: err.message }));
});

server.on('error', (err) => {
  process.stderr.write(`h2_ws_server: ${err.message}\n`);
  process.exit(1);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  // Never hang on the way out (open sessions keep close() waiting).
  setTimeout(() => process.exit(0), 500).unref();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
