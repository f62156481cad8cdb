/**
 * MAC1, MAC2 and cookies (whitepaper §5.3 "Denial of Service Mitigation &
 * Cookies", §5.4.4 and §5.4.7).
 *
 *   msg.mac1 = MAC(HASH(LABEL_MAC1 || S_pub_receiver), msg[0 : offset(mac1)])
 *   msg.mac2 = MAC(cookie, msg[0 : offset(mac2)])   if a fresh cookie is held, else zeros
 *   cookie   = MAC(R_secret, source IP address || port)   R_secret changes every 2 minutes
 *   reply    = type 3 || receiver || nonce(24) || XAEAD(HASH(LABEL_COOKIE || S_pub_responder), nonce, cookie, msg.mac1)
 *
 * `CookieChecker` is the receiving side, one per device (keyed on our own
 * public key). `CookieGenerator` is the sending side, one per peer (keyed on
 * the peer's public key): it adds MACs to our handshake messages and keeps
 * the cookie the peer sent us.
 *
 * Both take their MAC and XChaCha20-Poly1305 from the device's crypto backend
 * (crypto/backend.ts): on a flooded exit the checker runs for every handshake
 * message received, so it allocates nothing to check mac1 or mac2.
 */
import { bytesEqual } from '../crypto/aead.js';
import { defaultBackend, type CryptoBackend } from '../crypto/backend.js';
import { hash, MAC_LEN } from '../crypto/blake2s.js';
import { XNONCE_LEN } from '../crypto/xaead.js';
import { COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1 } from './constants.js';
import { CookieReply, MSG_COOKIE_REPLY, writeType, writeU32 } from './messages.js';
import type { Random } from './random.js';

/** Offsets of mac1/mac2 in a handshake message of `size` bytes: the last 32 bytes. */
function mac1At(size: number): number {
  return size - 2 * MAC_LEN;
}
function mac2At(size: number): number {
  return size - MAC_LEN;
}

/** The endpoint record's address and port bytes (io/endpoint.ts layout) that a cookie binds to. */
function sourceBytes(rec: Uint8Array, at: number): Uint8Array {
  return rec.subarray(at, at + 20);
}

/** The primitives cookies need. */
export type CookieCrypto = Pick<CryptoBackend, 'blake2s' | 'xaead'>;

export class CookieChecker {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private readonly secret = new Uint8Array(32);
  private secretSetAt = -Infinity;
  /** Scratch for the MACs computed to check a message (never escapes). */
  private readonly scratchMac = new Uint8Array(MAC_LEN);
  private readonly scratchCookie = new Uint8Array(MAC_LEN);

  constructor(ourPublicKey: Uint8Array, private readonly random: Random, private readonly crypto: CookieCrypto = defaultBackend()) {
    this.mac1Key = hash(LABEL_MAC1, ourPublicKey);
    this.cookieKey = hash(LABEL_COOKIE, ourPublicKey);
  }

  /** Whether msg = buf[at, at+size) carries a valid mac1 for us. */
  checkMac1(buf: Uint8Array, at: number, size: number): boolean {
    this.crypto.blake2s.macInto(this.scratchMac, this.mac1Key, buf.subarray(at, at + mac1At(size)));
    return bytesEqual(this.scratchMac, buf.subarray(at + mac1At(size), at + mac2At(size)));
  }

  /** Whether the message carries a valid mac2 for a cookie we would give its source now. */
  checkMac2(buf: Uint8Array, at: number, size: number, src: Uint8Array, srcAt: number, now: number): boolean {
    if (now - this.secretSetAt > COOKIE_REFRESH_TIME) return false; // no current secret: no valid cookie exists
    const b2s = this.crypto.blake2s;
    b2s.macInto(this.scratchCookie, this.secret, sourceBytes(src, srcAt));
    b2s.macInto(this.scratchMac, this.scratchCookie, buf.subarray(at, at + mac2At(size)));
    return bytesEqual(this.scratchMac, buf.subarray(at + mac2At(size), at + size));
  }

  /**
   * A cookie reply (64 bytes) to the handshake message buf[at, at+size)
   * whose sender index is `receiverIndex`, from source `src`.
   */
  createReply(buf: Uint8Array, at: number, size: number, receiverIndex: number, src: Uint8Array, srcAt: number, now: number): Uint8Array {
    if (now - this.secretSetAt > COOKIE_REFRESH_TIME) {
      this.random.fill(this.secret);
      this.secretSetAt = now;
    }
    const cookie = this.scratchCookie;
    this.crypto.blake2s.macInto(cookie, this.secret, sourceBytes(src, srcAt));
    const out = new Uint8Array(CookieReply.SIZE);
    writeType(out, 0, MSG_COOKIE_REPLY);
    writeU32(out, CookieReply.RECEIVER, receiverIndex);
    const nonce = out.subarray(CookieReply.NONCE, CookieReply.NONCE + XNONCE_LEN);
    this.random.fill(nonce);
    const mac1 = buf.subarray(at + mac1At(size), at + mac2At(size));
    out.set(this.crypto.xaead.seal(this.cookieKey, nonce, cookie, mac1), CookieReply.COOKIE);
    return out;
  }
}

export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private cookie: Uint8Array | null = null;
  private cookieSetAt = -Infinity;
  private lastMac1: Uint8Array | null = null;

  constructor(peerPublicKey: Uint8Array, private readonly crypto: CookieCrypto = defaultBackend()) {
    this.mac1Key = hash(LABEL_MAC1, peerPublicKey);
    this.cookieKey = hash(LABEL_COOKIE, peerPublicKey);
  }

  /** Writes mac1 and mac2 into the last 32 bytes of msg = buf[at, at+size). */
  addMacs(buf: Uint8Array, at: number, size: number, now: number): void {
    const m1 = new Uint8Array(MAC_LEN);
    this.crypto.blake2s.macInto(m1, this.mac1Key, buf.subarray(at, at + mac1At(size)));
    buf.set(m1, at + mac1At(size));
    this.lastMac1 = m1;
    if (this.cookie && now - this.cookieSetAt < COOKIE_REFRESH_TIME) {
      const m2 = new Uint8Array(MAC_LEN);
      this.crypto.blake2s.macInto(m2, this.cookie, buf.subarray(at, at + mac2At(size)));
      buf.set(m2, at + mac2At(size));
    } else {
      buf.fill(0, at + mac2At(size), at + size);
    }
  }

  /** Takes the cookie from a reply to our last message; false when it does not authenticate. */
  consumeReply(buf: Uint8Array, at: number, now: number): boolean {
    if (!this.lastMac1) return false;
    const nonce = buf.subarray(at + CookieReply.NONCE, at + CookieReply.NONCE + XNONCE_LEN);
    const sealed = buf.subarray(at + CookieReply.COOKIE, at + CookieReply.SIZE);
    const cookie = this.crypto.xaead.open(this.cookieKey, nonce, sealed, this.lastMac1);
    if (!cookie) return false;
    this.cookie = cookie;
    this.cookieSetAt = now;
    this.lastMac1 = null; // one reply per message
    return true;
  }
}
