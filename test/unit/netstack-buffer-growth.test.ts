// A connection's buffer storage over its life: an idle established connection
// holds none (the send and receive rings, the out-of-order ranges and the SACK
// scoreboard are allocated when first needed: RFC 9293 §3.8.6 asks for a
// window the receiver can honour, not for memory behind it before data comes),
// a bulk transfer grows them up to the per-connection limit and never past it,
// bytes stay exact while they grow (also with loss and reordering, which is
// what allocates the range tables), and closing releases them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TCP_OPTIONS } from '../../src/netstack/tcp/options.js';
import type { TcpConnection } from '../../src/netstack/tcp/connection.js';
import { established, Link, sendAllThenFin, type Collected } from '../support/netstack-link.js';

const LIMIT = DEFAULT_TCP_OPTIONS.receiveBuffer;
/** The receive side's range tables (32 ranges: 2 × Uint32 edges + a Float64 stamp each), beside its ring. */
const RANGE_TABLES = 32 * (2 * 4 + 8);

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 11)) & 0xff;
  return b;
}

/** Sends `payload` from the client, then FIN; records the largest storage each side held meanwhile. */
function bulk(link: Link, client: TcpConnection, server: () => TcpConnection, sr: () => Collected, payload: Buffer): { clientMax: number; serverMax: number } {
  sendAllThenFin(client, payload);
  let clientMax = 0;
  let serverMax = 0;
  assert.ok(
    link.run(() => {
      clientMax = Math.max(clientMax, client.storageBytes);
      serverMax = Math.max(serverMax, server().storageBytes);
      return sr().ended;
    }),
  );
  assert.ok(Buffer.concat(sr().data).equals(payload), 'every byte arrived, in order');
  return { clientMax, serverMax };
}

test('an idle established connection holds no buffer storage on either side', () => {
  const link = new Link();
  const { client, server } = established(link);
  link.run(() => false, 60_000);
  assert.equal(client.state.kind, 'established');
  assert.equal(client.storageBytes, 0);
  assert.equal(server().storageBytes, 0);
});

test('a bulk transfer grows the rings up to the per-connection limit, never past it, and close releases them', () => {
  const link = new Link();
  const { client, cr, server, sr } = established(link);
  const { clientMax, serverMax } = bulk(link, client, server, sr, pattern(4 << 20));
  assert.ok(clientMax > 64 * 1024, `the send ring grew under the transfer (${clientMax} bytes)`);
  assert.ok(clientMax <= DEFAULT_TCP_OPTIONS.sendBuffer, `the send ring stays within its limit (${clientMax})`);
  assert.ok(serverMax > 0 && serverMax <= LIMIT, `the receive ring stays within the window's limit (${serverMax})`);
  assert.equal(serverMax % 1024, 0, 'in order on a clean link: no range tables');
  server().shutdown();
  assert.ok(link.run(() => cr.ended && sr().closed));
  assert.equal(server().storageBytes, 0, 'released at close');
  assert.equal(client.storageBytes, 0, 'released at close (TIME-WAIT keeps no bytes)');
});

test('with loss and reordering the range tables appear on demand and the bytes stay exact', () => {
  const link = new Link({ seed: 11 });
  const { client, server, sr } = established(link);
  assert.equal(server().storageBytes, 0);
  link.faults({ loss: 0.02, reorder: 0.05, delayMs: 5 });
  const { serverMax } = bulk(link, client, server, sr, pattern(1 << 20));
  assert.ok(serverMax > 0 && serverMax <= LIMIT + RANGE_TABLES, `the receiver's storage stays within the window plus its range tables (${serverMax})`);
  // Rings are powers of two from 1 KiB: what lies beyond a multiple of 1 KiB is the range tables.
  assert.equal(serverMax % 1024, RANGE_TABLES, 'segments out of order allocated the range tables');
});
