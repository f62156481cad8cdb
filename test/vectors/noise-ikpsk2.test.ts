// Known answers: the cacophony Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s vector run
// through src/protocol/noise.ts, with both X25519 backends, and the transport
// messages through every transport AEAD backend (WireGuard nonce layout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, readJson, toHex } from '../support/repo.js';
import { initialState, readMessage1, readMessage2, writeMessage1, writeMessage2 } from '../../src/protocol/noise.js';
import { nobleX25519, nodeX25519 } from '../../src/crypto/x25519.js';
import { nobleTransportAead, nodeTransportAead, type TransportAead } from '../../src/crypto/aead.js';
import { nativeTransportAead } from '../../src/crypto/aead-native.js';

interface Vector {
  vector: {
    init_prologue: string;
    init_psks: string[];
    init_static: string;
    init_ephemeral: string;
    init_remote_static: string;
    resp_static: string;
    resp_ephemeral: string;
    handshake_hash: string;
    messages: { payload: string; ciphertext: string }[];
  };
}
const v = readJson<Vector>('test/vectors/data/noise-ikpsk2.json').vector;

for (const dh of [nobleX25519, nodeX25519]) {
  // native is null only when the addon is not built; test/property/aead.test.ts fails then.
  const aeads: TransportAead[] = [nobleTransportAead, nodeTransportAead, ...(nativeTransportAead ? [nativeTransportAead] : [])];
  for (const aead of aeads) {
    test(`cacophony IKpsk2 vector (x25519=${dh.name}, transport aead=${aead.name})`, () => {
      const prologue = hex(v.init_prologue);
      const psk = hex(v.init_psks[0]!);
      const iStatic = hex(v.init_static);
      const iEph = hex(v.init_ephemeral);
      const rStatic = hex(v.resp_static);
      const rEph = hex(v.resp_ephemeral);
      const rStaticPub = dh.publicKey(rStatic);
      assert.equal(toHex(rStaticPub), v.init_remote_static);
      const iStaticPub = dh.publicKey(iStatic);

      const ist = initialState(prologue, rStaticPub);
      const rst = initialState(prologue, rStaticPub);

      const m0 = v.messages[0]!;
      const msg1 = writeMessage1(ist, dh, {
        staticPublic: iStaticPub,
        ephemeralPrivate: iEph,
        ephemeralPublic: dh.publicKey(iEph),
        remoteStatic: rStaticPub,
        staticStatic: dh.sharedSecret(iStatic, rStaticPub)!,
      }, hex(m0.payload));
      assert.ok(msg1);
      assert.equal(toHex(msg1), m0.ciphertext);

      const read1 = readMessage1(rst, dh, rStatic, msg1, (rs) => dh.sharedSecret(rStatic, rs));
      assert.ok(read1);
      assert.equal(toHex(read1.payload), m0.payload);
      assert.equal(toHex(read1.remoteStatic), toHex(iStaticPub));

      const m1 = v.messages[1]!;
      const msg2 = writeMessage2(rst, dh, {
        ephemeralPrivate: rEph,
        ephemeralPublic: dh.publicKey(rEph),
        remoteEphemeral: read1.remoteEphemeral,
        remoteStatic: read1.remoteStatic,
        presharedKey: psk,
      }, hex(m1.payload));
      assert.ok(msg2);
      assert.equal(toHex(msg2), m1.ciphertext);

      const read2 = readMessage2(ist, dh, { staticPrivate: iStatic, ephemeralPrivate: iEph, presharedKey: psk }, msg2);
      assert.ok(read2);
      assert.equal(toHex(read2.payload), m1.payload);
      assert.equal(toHex(ist.h), v.handshake_hash);
      assert.equal(toHex(rst.h), v.handshake_hash);

      const [iSend, iRecv] = ist.split();
      const [rRecv, rSend] = rst.split();
      assert.equal(toHex(iSend), toHex(rRecv));
      assert.equal(toHex(iRecv), toHex(rSend));

      // Transport: alternate i->r, r->i; each direction's counter starts at 0.
      const counters = [0, 0];
      v.messages.slice(2).forEach((m, idx) => {
        const dir = idx % 2; // 0: initiator sends
        const key = dir === 0 ? iSend : rSend;
        const pt = hex(m.payload);
        const buf = new Uint8Array(pt.length + 16);
        buf.set(pt);
        aead.seal(key, counters[dir]!, buf, 0, pt.length);
        assert.equal(toHex(buf), m.ciphertext, `transport message ${idx + 2}`);
        const recvKey = dir === 0 ? rRecv : iRecv;
        assert.ok(aead.open(recvKey, counters[dir]!, buf, 0, buf.length));
        assert.equal(toHex(buf.subarray(0, pt.length)), m.payload);
        counters[dir]!++;
      });
    });
  }
}

test('a tampered message 1 is rejected by the responder', () => {
  const dh = nodeX25519;
  const prologue = hex(v.init_prologue);
  const rStatic = hex(v.resp_static);
  const rStaticPub = dh.publicKey(rStatic);
  const iStatic = hex(v.init_static);
  const iEph = hex(v.init_ephemeral);
  const msg1 = writeMessage1(initialState(prologue, rStaticPub), dh, {
    staticPublic: dh.publicKey(iStatic),
    ephemeralPrivate: iEph,
    ephemeralPublic: dh.publicKey(iEph),
    remoteStatic: rStaticPub,
    staticStatic: dh.sharedSecret(iStatic, rStaticPub)!,
  }, hex(v.messages[0]!.payload))!;
  for (const pos of [0, 40, 100, msg1.length - 1]) {
    const bad = msg1.slice();
    bad[pos]! ^= 1;
    assert.equal(readMessage1(initialState(prologue, rStaticPub), dh, rStatic, bad, (rs) => dh.sharedSecret(rStatic, rs)), null);
  }
  // Unknown initiator: the lookup refuses it.
  assert.equal(readMessage1(initialState(prologue, rStaticPub), dh, rStatic, msg1, () => null), null);
});
