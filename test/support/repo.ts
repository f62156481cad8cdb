import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run compiled from dist/test/...). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export function readJson<T>(relPath: string): T {
  return JSON.parse(readFileSync(REPO_ROOT + relPath, 'utf8')) as T;
}

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
