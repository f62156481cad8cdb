// RFC 6528 ISNs from the addon's keyed BLAKE2s (the default when it loads):
// the same values noble's gives for every 4-tuple (IPv4 and IPv6 alike, with
// the reused input buffers switching between the two lengths), different
// values for different tuples, and M's 4 µs ticks on top.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nobleBlake2s } from '../../src/crypto/blake2s.js';
import { nativeBlake2s } from '../../src/crypto/blake2s-native.js';
import { IsnGenerator } from '../../src/netstack/tcp/isn.js';
import { seededRandom } from '../support/netstack-link.js';

const secret = new Uint8Array(32).map((_, i) => i * 7 + 1);
const v4 = (a: number): Uint8Array => Uint8Array.of(10, 0, 0, a);
const v6 = (a: number): Uint8Array => Uint8Array.of(0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a);

test('the default generator (addon BLAKE2s when built) gives the ISNs of the noble reference', (t) => {
  if (nativeBlake2s === null) t.diagnostic('the addon is not built: the default is noble itself');
  const ref = new IsnGenerator(secret, nobleBlake2s);
  const dflt = new IsnGenerator(secret);
  const rnd = seededRandom(5);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const mk = i % 3 === 0 ? v6 : v4;
    const [l, r] = [mk(rnd.int(256)), mk(rnd.int(256))];
    const [lp, rp, now] = [rnd.int(65536), rnd.int(65536), rnd.int(1e9)];
    const isn = dflt.next(l, lp, r, rp, now);
    assert.equal(isn, ref.next(l, lp, r, rp, now), `tuple ${i}`);
    seen.add(isn);
  }
  assert.ok(seen.size >= 199, 'different tuples, unrelated ISNs');
});

test('one tuple: the ISN advances with the clock at 250 ticks per ms', () => {
  const g = new IsnGenerator(secret);
  const a = g.next(v4(1), 1000, v4(2), 80, 1000);
  assert.equal(g.next(v4(1), 1000, v4(2), 80, 1004), (a + 1000) >>> 0);
  assert.notEqual(g.next(v4(1), 1001, v4(2), 80, 1000), a, 'another port, another offset');
});
