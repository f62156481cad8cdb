/**
 * The single executable as tests use it: dist/tunnelbyte-linux-x64, built by
 * scripts/build-dist.js (the second half of `npm run dist`) when it is
 * missing or older than what it is made of.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './repo.js';

export const BUILT = join(REPO_ROOT, 'dist/tunnelbyte-linux-x64');
export const BUILD_INFO = join(REPO_ROOT, 'dist/build-info.json');

/** Newest modification time of the files under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * The executable, built by scripts/build-dist.js (the second half of `npm run dist`; `npm test` has just
 * run the first, `npm run build`) when it is missing or older than what it is made of: the compiled
 * program, the addon, the build info's content.
 */
export function ensureBuilt(): void {
  if (existsSync(BUILT)) {
    const inputs = Math.max(newest(join(REPO_ROOT, 'dist/src')), statSync(join(REPO_ROOT, 'native/build/Release/tunnelbyte_io.node')).mtimeMs);
    const info = JSON.parse(readFileSync(BUILD_INFO, 'utf8')) as { commit: string };
    const v = spawnSync(BUILT, ['--version'], { encoding: 'utf8' });
    if (statSync(BUILT).mtimeMs >= inputs && v.status === 0 && v.stdout.includes(`\ncommit ${info.commit}\n`)) return;
  }
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/build-dist.js')], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.status, 0, `scripts/build-dist.js failed: ${r.stderr}`);
}

