/**
 * Public identifiers: a type prefix and 16 characters of lower-case base32
 * (80 random bits), e.g. `ses_5k2q9w0d3m7x1c8v`. Readable in logs and
 * tables, safe in URLs, and never derived from anything secret.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

export type IdPrefix = 'acc' | 'tok' | 'ses' | 'nod' | 'enr';

export function newId(prefix: IdPrefix): string {
  const bytes = randomBytes(10);
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let out = '';
  for (let i = 0; i < 16; i++) {
    out = ALPHABET[Number(bits & 31n)]! + out;
    bits >>= 5n;
  }
  return `${prefix}_${out}`;
}
