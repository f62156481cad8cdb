// fast-check: the TCP state machine over an in-memory link that drops,
// duplicates, reorders and delays packets. Every byte is delivered once and in
// order, in both directions, or the connection reports an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { collect, Link, type Collected } from '../support/netstack-link.js';
import type { TcpConnection } from '../../src/netstack/tcp/connection.js';

function payload(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Writes `data` in chunks as the send buffer allows, then half-closes. */
function sender(c: TcpConnection, data: Buffer, chunk: number): void {
  let off = 0;
  const pump = () => {
    while (off < data.length) {
      const n = c.write(data, off, Math.min(chunk, data.length - off));
      if (n === 0) return;
      off += n;
    }
    c.shutdown();
  };
  const prev = c.events;
  c.events = { ...prev, onConnect: () => { prev.onConnect(); pump(); }, onWritable: pump };
  if (c.state.kind === 'established') pump();
}

test('every byte once, in order, both directions, or an error — under loss, duplication and reordering', () => {
  fc.assert(
    fc.property(
      fc.record({
        seed: fc.integer({ min: 1, max: 1_000_000 }),
        loss: fc.constantFrom(0, 0.01, 0.05, 0.2),
        duplicate: fc.constantFrom(0, 0.05, 0.3),
        reorder: fc.constantFrom(0, 0.1, 0.4),
        delayMs: fc.integer({ min: 0, max: 40 }),
        up: fc.integer({ min: 0, max: 200_000 }),
        down: fc.integer({ min: 0, max: 200_000 }),
        chunk: fc.integer({ min: 1, max: 70_000 }),
        v6: fc.boolean(),
        smallBuffers: fc.boolean(),
      }),
      (p) => {
        const tcp = p.smallBuffers ? { sendBuffer: 8192, receiveBuffer: 4096 } : {};
        const link = new Link({ seed: p.seed, a: { tcp }, b: { tcp } });
        link.faults({ loss: p.loss, duplicate: p.duplicate, reorder: p.reorder, delayMs: p.delayMs });
        const up = payload(p.seed, p.up);
        const down = payload(p.seed + 1, p.down);
        let sr: Collected | null = null;
        link.b.listen(5000, (c) => {
          sr = collect(c);
          sender(c, down, p.chunk);
        });
        const client = link.a.connect(p.v6 ? 'fd00::2' : '10.0.0.2', 5000);
        const cr = collect(client);
        sender(client, up, p.chunk);
        const finished = () => cr.closed || cr.error !== null || (cr.ended && sr !== null && sr.ended);
        link.run(finished, 3_600_000);
        if (cr.error !== null || (sr !== null && (sr as Collected).error !== null)) return; // an error was reported: allowed
        assert.ok(sr !== null && cr.ended && (sr as Collected).ended, `transfer finished (client ${client.state.kind})`);
        assert.ok(Buffer.concat((sr as Collected).data).equals(up), 'client → server bytes');
        assert.ok(Buffer.concat(cr.data).equals(down), 'server → client bytes');
      },
    ),
    { numRuns: 60 },
  );
});
