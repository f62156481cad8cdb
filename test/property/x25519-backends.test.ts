// The two X25519 backends agree on random keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { nobleX25519, nodeX25519 } from '../../src/crypto/x25519.js';

test('noble and node:crypto X25519 agree on public keys and shared secrets', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
      const pa = nobleX25519.publicKey(a);
      assert.deepEqual(nodeX25519.publicKey(a), pa);
      const pb = nodeX25519.publicKey(b);
      assert.deepEqual(nobleX25519.sharedSecret(a, pb), nodeX25519.sharedSecret(a, pb));
      assert.deepEqual(nodeX25519.sharedSecret(a, pb), nodeX25519.sharedSecret(b, pa));
    }),
    { numRuns: 100 },
  );
});

test('node:crypto key generation survives garbage collections (no KeyGenJob self-deadlock)', () => {
  // With generateKeyPairSync + JWK export (Node 20) this loop deadlocks in
  // some runs (see src/crypto/x25519.ts); ours must always finish.
  const module = new URL('../../src/crypto/x25519.js', import.meta.url).href;
  const script = `
    const { nodeX25519 } = await import(${JSON.stringify(module)});
    let odd = 0;
    for (let i = 0; i < 40000; i++) {
      const sk = nodeX25519.generatePrivateKey();
      odd += nodeX25519.publicKey(sk)[0] & 1;
      if (i % 1000 === 0) globalThis.gc();
    }
    console.log(odd > 0 ? 'finished' : 'no odd key?');`;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, NODE_TEST_CONTEXT: undefined }, // a plain process, not a test-runner child
  });
  assert.equal(r.signal, null, 'key generation hung (killed after 30 s)');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'finished');
});
