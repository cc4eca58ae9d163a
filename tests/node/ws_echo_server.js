'use strict';
// An echo server built on node's `ws` package, the peer for
// tests/test_node_interop.py (a WebSocket implementation nobody here wrote).
//
//   node ws_echo_server.js [--no-deflate] [--protocols a,b]
//
// Listens on 127.0.0.1, port chosen by the OS, and prints one line
// "listening PORT".  Echoes text as text and binary as binary; the text
// message "close-me" makes it close that connection with 4000 "bye".  Prints
// one JSON line per event ("open {...}", "closed {...}") so the test can see
// what this side negotiated and which close code and reason it received.
// --protocols: the subprotocols it speaks, in its order of preference.
// It exits 0 on SIGTERM, SIGINT or end of stdin, so it never outlives the
// test that started it (run by hand, keep stdin open: not </dev/null).

let WebSocketServer;
try {
  ({ WebSocketServer } = require('ws'));
} catch (err) {
  process.stderr.write('ws_echo_server: the ws package is missing: npm install --prefix tests/node\n');
  process.exit(2);
}

const args = process.argv.slice(2);
let deflate = true;
let protocols = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--no-deflate') deflate = false;
  else if (args[i] === '--deflate') deflate = true;
  else if (args[i] === '--protocols' && i + 1 < args.length) protocols = args[++i].split(',').filter(Boolean);
  else {
    process.stderr.write(`ws_echo_server: unknown argument ${JSON.stringify(args[i])}\n`);
    process.exit(2);
  }
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  // threshold 0: compress every message, so small ones test our inflater too.
  perMessageDeflate: deflate ? { threshold: 0 } : false,
  maxPayload: 16 << 20,
  handleProtocols: (offered) => protocols.find((p) => offered.has(p)) || false,
});

function report(event, fields) {
  process.stdout.write(`${event} ${JSON.stringify(fields)}\n`);
}

server.on('listening', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

server.on('error', (err) => {
  process.stderr.write(`ws_echo_server: ${err.message}\n`);
  process.exit(1);
});

server.on('connection', (ws, req) => {
  report('open', {
    protocol: ws.protocol,
    extensions: ws.extensions,
    offeredExtensions: req.headers['sec-websocket-extensions'] || '',
  });
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'close-me') {
      ws.close(4000, 'bye');
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => {
    report('closed', { code, reason: reason.toString() });
  });
  ws.on('error', (err) => {
    report('error', { message: err.message });
  });
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  for (const ws of server.clients) ws.terminate();
  server.close(() => process.exit(0));
  // Never hang on the way out.
  setTimeout(() => process.exit(0), 1000).unref();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
