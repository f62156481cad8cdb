// RFC 7748 §6.1 Diffie-Hellman example, for both X25519 backends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, toHex } from '../support/repo.js';
import { nobleX25519, nodeX25519 } from '../../src/crypto/x25519.js';

const alicePriv = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const alicePub = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
const bobPriv = '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb';
const bobPub = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

for (const x of [nobleX25519, nodeX25519]) {
  test(`RFC 7748 §6.1 with the ${x.name} backend`, () => {
    assert.equal(toHex(x.publicKey(hex(alicePriv))), alicePub);
    assert.equal(toHex(x.publicKey(hex(bobPriv))), bobPub);
    assert.equal(toHex(x.sharedSecret(hex(alicePriv), hex(bobPub))!), shared);
    assert.equal(toHex(x.sharedSecret(hex(bobPriv), hex(alicePub))!), shared);
  });

  test(`a low-order public key gives no shared secret (${x.name})`, () => {
    assert.equal(x.sharedSecret(hex(alicePriv), new Uint8Array(32)), null);
    const one = new Uint8Array(32);
    one[0] = 1;
    assert.equal(x.sharedSecret(hex(alicePriv), one), null);
  });

  test(`misuse throws a TypeError (${x.name})`, () => {
    assert.throws(() => x.publicKey(new Uint8Array(31)), TypeError);
  });
}
