'use strict';
// tls-proxy.js - TLS in front of the test S3 server, for pgBackRest, which
// talks to S3 over HTTPS only. Bench use only.
//
//   node tls-proxy.js --listen 127.0.0.1:PORT --to 127.0.0.1:PORT --cert F --key F
//
// Every TLS connection is decrypted and piped to the plain port unchanged,
// so the Host header and the signatures reach the server as sent.
const fs = require('fs');
const net = require('net');
const tls = require('tls');

const a = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) a[process.argv[i].slice(2)] = process.argv[i + 1];
for (const k of ['listen', 'to', 'cert', 'key']) {
  if (!a[k]) { console.error(`tls-proxy: missing --${k}`); process.exit(2); }
}
const [lh, lp] = a.listen.split(':');
const [th, tp] = a.to.split(':');
if (!lh.startsWith('127.') || !th.startsWith('127.')) {
  console.error('tls-proxy: loopback addresses only'); process.exit(2);
}
const server = tls.createServer({ cert: fs.readFileSync(a.cert), key: fs.readFileSync(a.key) }, (c) => {
  const up = net.connect(Number(tp), th);
  c.pipe(up); up.pipe(c);
  const end = () => { c.destroy(); up.destroy(); };
  c.on('error', end); up.on('error', end); c.on('close', end); up.on('close', end);
});
server.listen(Number(lp), lh, () => console.log(`ready ${lp}`));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
