// Known answers for the WireGuard KDF (wireguard-go device/kdf_test.go).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, readJson, toHex } from '../support/repo.js';
import { kdf } from '../../src/crypto/blake2s.js';

interface KdfVectors {
  vectors: { key: string; input: string; t0: string; t1: string; t2: string }[];
}

for (const [i, vec] of readJson<KdfVectors>('test/vectors/data/wireguard-kdf.json').vectors.entries()) {
  test(`KDF vector ${i}`, () => {
    const [a] = kdf(1, hex(vec.key), hex(vec.input));
    assert.equal(toHex(a), vec.t0);
    const [b0, b1] = kdf(2, hex(vec.key), hex(vec.input));
    assert.deepEqual([toHex(b0), toHex(b1)], [vec.t0, vec.t1]);
    const [c0, c1, c2] = kdf(3, hex(vec.key), hex(vec.input));
    assert.deepEqual([toHex(c0), toHex(c1), toHex(c2)], [vec.t0, vec.t1, vec.t2]);
  });
}
