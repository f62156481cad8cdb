// TCP between two netstacks over an in-memory link: handshake, data both
// ways, half-close, orderly close and TIME-WAIT, refused connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, established, Link, sendAllThenFin, type Collected } from '../support/netstack-link.js';

test('handshake, data both ways, half-close, orderly close, TIME-WAIT', () => {
  const link = new Link();
  const { client, cr, server: serverOf, sr: srOf } = established(link);
  assert.equal(client.state.kind, 'established');
  assert.ok(client.windowScaling && client.sackOk, 'window scaling and SACK negotiated');
  assert.equal(client.mss, 1420 - 40);
  const payload = Buffer.alloc(300_000, 7);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  sendAllThenFin(client, payload);
  const sr = srOf();
  const server = serverOf();
  assert.ok(link.run(() => sr.ended));
  assert.deepEqual(Buffer.concat(sr.data), payload);
  assert.equal(server.state.kind, 'close-wait');
  // Half-closed: the server can still send.
  server.write(Buffer.from('reply after your FIN'));
  server.shutdown();
  assert.ok(link.run(() => cr.ended && sr.closed));
  assert.equal(Buffer.concat(cr.data).toString(), 'reply after your FIN');
  assert.equal(client.state.kind, 'time-wait');
  assert.equal(sr.error, null);
  assert.ok(link.run(() => link.a.connectionCount === 0 && link.b.connectionCount === 0, 120_000), 'TIME-WAIT ends after 2 MSL');
  assert.equal(cr.error, null);
});

test('IPv6: connect, echo, close', () => {
  const link = new Link({ seed: 3 });
  link.b.listen(7, (c) => {
    c.events = {
      onConnect() {},
      onReadable() {
        for (let b = c.read(); b; b = c.read()) c.write(b);
      },
      onEnd: () => c.shutdown(),
      onWritable() {},
      onClose() {},
    };
  });
  const c = link.a.connect('fd00::2', 7);
  const r = collect(c);
  assert.ok(link.run(() => r.connected));
  assert.equal(c.mss, 1420 - 60);
  c.write(Buffer.from('hello over six'));
  c.shutdown();
  assert.ok(link.run(() => r.ended));
  assert.equal(Buffer.concat(r.data).toString(), 'hello over six');
});

test('a closed port answers RST: ECONNREFUSED', () => {
  const link = new Link();
  const c = link.a.connect('10.0.0.2', 81);
  const r = collect(c);
  assert.ok(link.run(() => r.closed));
  assert.equal(r.error, 'ECONNREFUSED');
  assert.equal(link.b.drops['tcp-no-connection'], 1);
});

test('abort sends RST: the peer sees ECONNRESET', () => {
  const link = new Link();
  let sr: Collected | null = null;
  link.b.listen(80, (c) => (sr = collect(c)));
  const c = link.a.connect('10.0.0.2', 80);
  const r = collect(c);
  assert.ok(link.run(() => r.connected && sr !== null));
  c.write(Buffer.from('some bytes'));
  link.run(() => sr!.data.length > 0);
  c.abort();
  assert.ok(link.run(() => sr!.closed));
  assert.equal(sr!.error, 'ECONNRESET');
});

test('SYN to an unreachable host: ETIMEDOUT after the SYN retries', () => {
  const link = new Link();
  link.aWire.filter = () => false;
  const c = link.a.connect('10.0.0.2', 80);
  const r = collect(c);
  assert.ok(link.run(() => r.closed, 600_000));
  assert.equal(r.error, 'ETIMEDOUT');
  assert.equal(c.stats.timeouts, 6);
});
