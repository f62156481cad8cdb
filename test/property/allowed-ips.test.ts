// The allowed-IPs trie against a slow reference router: a linear scan of prefixes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AllowedIps } from '../../src/protocol/allowed-ips.js';

interface Route {
  addr: Uint8Array;
  cidr: number;
  peer: number;
}

/** Reference: the longest matching prefix among the live routes (last insert of a prefix wins). */
function referenceLookup(routes: Map<string, Route>, addr: Uint8Array): number | null {
  let best: Route | null = null;
  for (const r of routes.values()) {
    let match = true;
    for (let bit = 0; bit < r.cidr; bit++) {
      const a = (addr[bit >> 3]! >> (7 - (bit & 7))) & 1;
      const b = (r.addr[bit >> 3]! >> (7 - (bit & 7))) & 1;
      if (a !== b) {
        match = false;
        break;
      }
    }
    if (match && (!best || r.cidr > best.cidr)) best = r;
  }
  return best ? best.peer : null;
}

function keyOf(addr: Uint8Array, cidr: number): string {
  const m = new Uint8Array(addr);
  for (let i = 0; i < m.length; i++) {
    const keep = Math.max(0, Math.min(8, cidr - i * 8));
    m[i]! &= keep === 8 ? 0xff : (0xff00 >>> keep) & 0xff;
  }
  return `${Buffer.from(m).toString('hex')}/${cidr}`;
}

for (const family of [4, 6] as const) {
  const bytes = family === 4 ? 4 : 16;
  const bits = bytes * 8;
  // Addresses from a small space so prefixes overlap often.
  const addrArb = fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((a) => {
    a[0] = a[0]! & 0x81; // few distinct leading bits
    return a;
  });
  const op = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), addr: addrArb, cidr: fc.integer({ min: 0, max: bits }), peer: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ kind: fc.constant('removePeer' as const), peer: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ kind: fc.constant('remove' as const), index: fc.nat() }),
  );

  test(`IPv${family} trie agrees with a linear scan under inserts and removals`, () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.array(addrArb, { minLength: 1, maxLength: 40 }), (ops, probes) => {
        const peers = Array.from({ length: 6 }, (_, i) => ({ i }));
        const trie = new AllowedIps<{ i: number }>();
        const routes = new Map<string, Route>();
        for (const o of ops) {
          if (o.kind === 'insert') {
            trie.insert(family, o.addr, o.cidr, peers[o.peer]!);
            routes.set(keyOf(o.addr, o.cidr), { addr: o.addr, cidr: o.cidr, peer: o.peer });
          } else if (o.kind === 'removePeer') {
            trie.removeValue(peers[o.peer]!);
            for (const [k, r] of routes) if (r.peer === o.peer) routes.delete(k);
          } else {
            const list = [...routes.entries()];
            if (list.length === 0) continue;
            const [k, r] = list[o.index % list.length]!;
            assert.ok(trie.remove(family, r.addr, r.cidr, peers[r.peer]!));
            routes.delete(k);
          }
        }
        for (const p of [...probes, ...[...routes.values()].map((r) => r.addr)]) {
          const got = family === 4 ? trie.lookup4(p, 0) : trie.lookup6(p, 0);
          assert.equal(got?.i ?? null, referenceLookup(routes, p));
        }
        for (const peer of peers) {
          const expected = [...routes.values()].filter((r) => r.peer === peer.i).map((r) => keyOf(r.addr, r.cidr)).sort();
          const listed = trie.entriesOf(peer).map((e) => `${Buffer.from(e.address).toString('hex')}/${e.cidr}`).sort();
          assert.deepEqual(listed, expected);
        }
      }),
      { numRuns: 300 },
    );
  });
}

test('a lookup reads the address in place inside a larger buffer', () => {
  const t = new AllowedIps<{ n: string }>();
  const v = { n: 'x' };
  t.insert(4, Uint8Array.of(10, 1, 0, 0), 16, v);
  const pkt = new Uint8Array(40);
  pkt.set([10, 1, 2, 3], 16);
  assert.equal(t.lookup4(pkt, 16), v);
  assert.equal(t.lookup4(pkt, 12), null);
});

test('misuse throws', () => {
  const t = new AllowedIps<object>();
  assert.throws(() => t.insert(4, new Uint8Array(16), 8, {}), TypeError);
  assert.throws(() => t.insert(4, new Uint8Array(4), 33, {}), RangeError);
});
