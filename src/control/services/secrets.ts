/**
 * Secrets: bearer tokens (`tb_` + 256 random bits, base64url; node enrollment
 * tokens `tbe_` and node credentials `tbn_` alike), their SHA-256
 * (the only form stored), constant-time comparison, and scrypt password
 * hashes with a per-password salt. Nothing here logs or returns a secret
 * except `newToken`, whose result goes to the client once.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

export const TOKEN_PREFIX = 'tb_';
/** tb_ + 43 base64url characters (32 bytes). */
export const TOKEN_RE = /^tb_[A-Za-z0-9_-]{43}$/;

export function newToken(): string {
  return newSecret(TOKEN_PREFIX);
}

/** A node enrollment token (one use, from `tunnelbyte admin node token`). */
export const ENROLLMENT_TOKEN_PREFIX = 'tbe_';
export const ENROLLMENT_TOKEN_RE = /^tbe_[A-Za-z0-9_-]{43}$/;
/** A node credential (what an enrolled node authenticates with). */
export const NODE_CREDENTIAL_PREFIX = 'tbn_';
export const NODE_CREDENTIAL_RE = /^tbn_[A-Za-z0-9_-]{43}$/;

/** `prefix` + 256 random bits, base64url. */
export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** Constant-time equality of two strings (false when the lengths differ). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

// scrypt parameters (N = 2^15, r = 8, p = 1: 32 MiB, about 100 ms on one core).
const N = 32768;
const R = 8;
const P = 1;
const KEYLEN = 32;
const MAXMEM = 64 * 1024 * 1024;

function scryptAsync(password: string, salt: Buffer, n: number, r: number, p: number, keylen: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, keylen, { N: n, r, p, maxmem: MAXMEM }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$N$r$p$<salt b64>$<hash b64>` */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, N, R, P, KEYLEN);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Checks a password against a stored hash; a null hash still costs one scrypt, so timing does not tell whether an account exists. */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const parts = stored?.split('$');
  if (!parts || parts.length !== 6 || parts[0] !== 'scrypt') {
    await scryptAsync(password, Buffer.alloc(16), N, R, P, KEYLEN);
    return false;
  }
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, 'base64');
  const key = await scryptAsync(password, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p), expected.length);
  return timingSafeEqual(key, expected);
}
