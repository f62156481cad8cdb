/**
 * WireGuard message formats (whitepaper §5.4.2–§5.4.7), as named offsets and
 * exact-length checks. All integers little-endian. The first four bytes are
 * read as one little-endian word (type + three reserved zero bytes), like the
 * kernel and wireguard-go, so a non-zero reserved byte makes a message unknown.
 *
 * Parsers never throw on network input: `classify` returns a drop reason.
 */

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

/** Handshake initiation, 148 bytes. */
export const Initiation = {
  SIZE: 148,
  SENDER: 4,
  EPHEMERAL: 8,
  STATIC: 40, // AEAD(static public key): 32 + 16
  TIMESTAMP: 88, // AEAD(TAI64N): 12 + 16
  MAC1: 116,
  MAC2: 132,
} as const;

/** Handshake response, 92 bytes. */
export const Response = {
  SIZE: 92,
  SENDER: 4,
  RECEIVER: 8,
  EPHEMERAL: 12,
  EMPTY: 44, // AEAD(ε): 16
  MAC1: 60,
  MAC2: 76,
} as const;

/** Cookie reply, 64 bytes. */
export const CookieReply = {
  SIZE: 64,
  RECEIVER: 4,
  NONCE: 8, // 24 bytes
  COOKIE: 32, // XAEAD(cookie): 16 + 16
} as const;

/** Transport data: 16-byte header, then AEAD(padded packet): at least the 16-byte tag. */
export const Transport = {
  HEADER: 16,
  RECEIVER: 4,
  COUNTER: 8,
  MIN_SIZE: 32,
} as const;

/** Why a datagram was dropped (the closed set of data-path error codes). */
export type DropReason =
  | 'too-short'
  | 'unknown-type'
  | 'bad-length'
  | 'handshake-queue-full'
  | 'handshake-source-limited'
  | 'bad-mac1'
  | 'bad-mac2'
  | 'rate-limited'
  | 'handshake-failed'
  | 'replayed-initiation'
  | 'initiation-flood'
  | 'unknown-peer'
  | 'unknown-receiver'
  | 'unexpected-response'
  | 'bad-cookie'
  | 'expired-keypair'
  | 'counter-too-large'
  | 'decrypt-failed'
  | 'replayed-packet'
  | 'invalid-inner-packet'
  | 'inner-source-not-allowed'
  | 'no-route'
  | 'no-private-key'
  | 'no-endpoint'
  | 'client-to-client'
  | 'destination-refused';

export const DROP_REASONS: readonly DropReason[] = [
  'too-short',
  'unknown-type',
  'bad-length',
  'handshake-queue-full',
  'handshake-source-limited',
  'bad-mac1',
  'bad-mac2',
  'rate-limited',
  'handshake-failed',
  'replayed-initiation',
  'initiation-flood',
  'unknown-peer',
  'unknown-receiver',
  'unexpected-response',
  'bad-cookie',
  'expired-keypair',
  'counter-too-large',
  'decrypt-failed',
  'replayed-packet',
  'invalid-inner-packet',
  'inner-source-not-allowed',
  'no-route',
  'no-private-key',
  'no-endpoint',
  'client-to-client',
  'destination-refused',
];

/**
 * What a received datagram became when it was not dropped: a handshake
 * message consumed, a transport packet written to the TUN, a keepalive.
 * Every datagram received ends as exactly one drop reason or one of these.
 */
export type AcceptKind = 'initiation' | 'response' | 'cookie-reply' | 'data' | 'keepalive';

export const ACCEPT_KINDS: readonly AcceptKind[] = ['initiation', 'response', 'cookie-reply', 'data', 'keepalive'];

/**
 * The message type of buf[at, at+len), or a drop reason when the length is
 * not exactly right for the type (transport: at least MIN_SIZE).
 */
export function classify(buf: Uint8Array, at: number, len: number): number | DropReason {
  if (len < 4) return 'too-short';
  if (buf[at + 1] !== 0 || buf[at + 2] !== 0 || buf[at + 3] !== 0) return 'unknown-type';
  const type = buf[at]!;
  switch (type) {
    case MSG_TRANSPORT:
      return len >= Transport.MIN_SIZE ? type : 'bad-length';
    case MSG_INITIATION:
      return len === Initiation.SIZE ? type : 'bad-length';
    case MSG_RESPONSE:
      return len === Response.SIZE ? type : 'bad-length';
    case MSG_COOKIE_REPLY:
      return len === CookieReply.SIZE ? type : 'bad-length';
    default:
      return 'unknown-type';
  }
}

export function readU32(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

export function writeU32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v & 0xff;
  buf[at + 1] = (v >>> 8) & 0xff;
  buf[at + 2] = (v >>> 16) & 0xff;
  buf[at + 3] = (v >>> 24) & 0xff;
}

/**
 * Reads the 64-bit little-endian counter as a number; returns -1 when it is
 * 2^53 or more (beyond REJECT_AFTER_MESSAGES as represented here).
 */
export function readCounter(buf: Uint8Array, at: number): number {
  const lo = readU32(buf, at);
  const hi = readU32(buf, at + 4);
  if (hi >= 0x200000) return -1;
  return hi * 0x100000000 + lo;
}

export function writeCounter(buf: Uint8Array, at: number, v: number): void {
  writeU32(buf, at, v >>> 0);
  writeU32(buf, at + 4, Math.floor(v / 0x100000000) >>> 0);
}

/** Writes the 4-byte type word (type + three zero reserved bytes). */
export function writeType(buf: Uint8Array, at: number, type: number): void {
  buf[at] = type;
  buf[at + 1] = 0;
  buf[at + 2] = 0;
  buf[at + 3] = 0;
}
