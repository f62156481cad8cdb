// Known answers for the primitives of WireGuard's DoS defences (whitepaper
// §5.3, §5.4.7), for every backend: BLAKE2s-256 (RFC 7693 Appendix B),
// keyed BLAKE2s (the reference implementation's blake2s-kat.txt, first keyed
// entry), HChaCha20 (draft-irtf-cfrg-xchacha-03 §2.2.1) and
// XChaCha20-Poly1305 (the same draft, §A.3.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, toHex } from '../support/repo.js';
import { nobleBlake2s, nodeBlake2s, type Blake2s } from '../../src/crypto/blake2s.js';
import { nativeBlake2s, nativeBlake2sLoadError } from '../../src/crypto/blake2s-native.js';
import { nobleXaead, type XAead } from '../../src/crypto/xaead.js';
import { nativeXaead, nativeXaeadLoadError } from '../../src/crypto/xaead-native.js';

const seq = (n: number, from = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => from + i);

test('native: the addon is built and exports BLAKE2s and XChaCha20-Poly1305', () => {
  assert.ok(nativeBlake2s, `native BLAKE2s unavailable: ${nativeBlake2sLoadError}`);
  assert.ok(nativeXaead, `native XChaCha20-Poly1305 unavailable: ${nativeXaeadLoadError}`);
});

const blakes: Blake2s[] = [nobleBlake2s, nodeBlake2s, ...(nativeBlake2s ? [nativeBlake2s] : [])];
for (const b of blakes) {
  test(`${b.name}: BLAKE2s-256("abc") (RFC 7693 Appendix B)`, () => {
    assert.equal(toHex(b.hash(new TextEncoder().encode('abc'))), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
    assert.equal(toHex(b.hash(new TextEncoder().encode('a'), new TextEncoder().encode('bc'))), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  });
  test(`${b.name}: keyed BLAKE2s, key 00..1f, empty input (blake2s-kat.txt)`, () => {
    const out = new Uint8Array(32);
    b.macInto(out, seq(32), new Uint8Array(0));
    assert.equal(toHex(out), '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49');
  });
}

// §A.3.1: the sunscreen text, AAD 50515253c0c1c2c3c4c5c6c7, key 80..9f, nonce 40..57.
const PLAINTEXT = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
const CIPHERTEXT =
  'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e';
const TAG = 'c0875924c1c7987947deafd8780acf49';

const xaeads: XAead[] = [nobleXaead, ...(nativeXaead ? [nativeXaead] : [])];
for (const x of xaeads) {
  test(`${x.name}: XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §A.3.1)`, () => {
    const key = seq(32, 0x80);
    const nonce = seq(24, 0x40);
    const aad = hex('50515253c0c1c2c3c4c5c6c7');
    const sealed = x.seal(key, nonce, new TextEncoder().encode(PLAINTEXT), aad);
    assert.equal(toHex(sealed), CIPHERTEXT + TAG);
    const opened = x.open(key, nonce, sealed, aad);
    assert.ok(opened);
    assert.equal(new TextDecoder().decode(opened), PLAINTEXT);
  });
}

// HChaCha20 alone (§2.2.1) is not exported; it is the subkey of an XChaCha20
// seal. With nonce[16:24] = 0 and empty input, the tag is Poly1305 keyed by
// ChaCha20(subkey, 0^96) block 0 over nothing; compare against noble's seal
// with the draft's HChaCha20 input, which checks that both derive the same subkey.
test('native: HChaCha20 input of draft §2.2.1 gives the same seal as noble', { skip: nativeXaead === null }, () => {
  const key = seq(32);
  const nonce = new Uint8Array(24);
  nonce.set(hex('000000090000004a0000000031415927'));
  for (const pt of [new Uint8Array(0), seq(64)]) {
    assert.equal(toHex(nativeXaead!.seal(key, nonce, pt, new Uint8Array(0))), toHex(nobleXaead.seal(key, nonce, pt, new Uint8Array(0))));
  }
});
