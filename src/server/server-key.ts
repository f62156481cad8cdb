/**
 * The exit's WireGuard private key: `server.key` in the data directory, in
 * `wg genkey` format (base64), created with mode 0600 on first start. The
 * key is never logged; only the public key is.
 */
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyFromBase64, keyToBase64 } from '../crypto/wireguard-keys.js';
import { nodeX25519 } from '../crypto/x25519.js';
import { fsStartError, StartError } from './start-error.js';

export const SERVER_KEY_FILE = 'server.key';

export function loadOrCreateServerKey(dataDir: string): { privateKey: Uint8Array; publicKey: Uint8Array; path: string } {
  const path = join(dataDir, SERVER_KEY_FILE);
  let privateKey: Uint8Array;
  if (existsSync(path)) {
    const key = keyFromBase64(readFileSync(path, 'utf8').trim());
    if (!key) {
      throw new StartError(
        `${path} does not hold a WireGuard private key (base64 of 32 bytes); restore it from a backup, or move it away to have a new key made (clients then need new configs)`,
      );
    }
    privateKey = key;
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } else {
    privateKey = nodeX25519.generatePrivateKey();
    try {
      writeFileSync(path, keyToBase64(privateKey) + '\n', { mode: 0o600, flag: 'wx' });
    } catch (e) {
      // 'wx': the file is this call's own, so a half-written key (a full disk) is removed, never an existing one
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(path, { force: true });
      throw fsStartError(e, path, 'write the server key');
    }
  }
  return { privateKey, publicKey: nodeX25519.publicKey(privateKey), path };
}
