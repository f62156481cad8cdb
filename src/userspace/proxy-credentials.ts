/**
 * The proxies' one username and password (SOCKS5 RFC 1929, HTTP
 * Proxy-Authorization Basic): compared in constant time, hashes first so
 * that lengths do not leak either.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface ProxyCredentials {
  user: string;
  password: string;
}

const sha = (b: Uint8Array | string): Buffer => createHash('sha256').update(b).digest();

export function credentialsMatch(expected: ProxyCredentials, user: Uint8Array | string, password: Uint8Array | string): boolean {
  const u = timingSafeEqual(sha(expected.user), sha(user));
  const p = timingSafeEqual(sha(expected.password), sha(password));
  return u && p;
}
