// A WebSocket client over HTTP/2 (RFC 8441) with node's own node:http2:
// extended CONNECT with :protocol websocket, then WebSocket frames on the
// stream (minimal framing written here).  Usage:
//   node h2_ws_client.js PORT PATH MESSAGE...
// Prints one JSON line: {"status", "extensions", "echoes", "closeCode", "ended"}.
'use strict';
const http2 = require('node:http2');
const crypto = require('node:crypto');

const [port, path, ...messages] = process.argv.slice(2);
const result = { status: null, extensions: null, echoes: [], closeCode: null, ended: false };
// Exit only once the line is written: a pipe takes 64 KiB at once, and
// process.exit() drops what is still queued (the echoes here are larger).
const done = (code) => { process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code)); };
setTimeout(() => { result.error = 'timeout'; done(2); }, 15000).unref();

function frame(opcode, payload) {
  const mask = crypto.randomBytes(4);
  let head;
  if (payload.length < 126) {
    head = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  } else if (payload.length < 65536) {
    head = Buffer.alloc(4); head[0] = 0x80 | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10); head[0] = 0x80 | opcode; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i % 4];
  return Buffer.concat([head, mask, masked]);
}

const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
session.on('error', (e) => { result.error = String(e); done(1); });
session.on('remoteSettings', (settings) => {
  if (!settings.enableConnectProtocol) { result.error = 'no SETTINGS_ENABLE_CONNECT_PROTOCOL'; done(1); }
  const stream = session.request({
    ':method': 'CONNECT', ':protocol': 'websocket', ':path': path, ':scheme': 'https',
    ':authority': `127.0.0.1:${port}`, 'sec-websocket-version': '13', 'origin': `https://127.0.0.1:${port}`,
  }, { endStream: false });
  let buffer = Buffer.alloc(0);
  let parts = [];
  let next = 0;
  const sendNext = () => {
    if (next < messages.length) {
      stream.write(frame(0x1, Buffer.from(messages[next++], 'utf8')));
    } else {
      const close = Buffer.alloc(2); close.writeUInt16BE(1000, 0);
      stream.write(frame(0x8, close));
    }
  };
  stream.on('response', (headers) => {
    result.status = headers[':status'];
    result.extensions = headers['sec-websocket-extensions'] || null;
    if (result.status !== 200) { stream.close(); session.close(); done(1); }
    sendNext();
  });
  stream.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0] & 0x0f, fin = (buffer[0] & 0x80) !== 0;
      let length = buffer[1] & 0x7f, offset = 2;
      if (length === 126) { if (buffer.length < 4) return; length = buffer.readUInt16BE(2); offset = 4; }
      else if (length === 127) { if (buffer.length < 10) return; length = Number(buffer.readBigUInt64BE(2)); offset = 10; }
      if (buffer.length < offset + length) return;
      const payload = buffer.subarray(offset, offset + length);
      buffer = buffer.subarray(offset + length);
      if (opcode === 0x1 || opcode === 0x0) {
        parts.push(Buffer.from(payload));  // a message may come in fragments
        if (fin) { result.echoes.push(Buffer.concat(parts).toString('utf8')); parts = []; sendNext(); }
      }
      else if (opcode === 0x8) { result.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005; }
    }
  });
  stream.on('end', () => { result.ended = true; stream.end(); });
  stream.on('close', () => { session.close(); done(result.closeCode === 1000 && result.ended ? 0 : 1); });
});
