#!/usr/bin/env node
// Writes dist/build-info.json (read by src/executable/build-info.ts and embedded in the single
// executable): the package version, the git commit, and the oldest glibc the binaries run on — the
// highest GLIBC_x.y symbol version that the node binary running this and the two native addons
// reference (a binary built on Debian 12 references up to GLIBC_2.34, so needs glibc >= 2.34).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

function commit() {
  try {
    const hash = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${hash}-dirty` : hash;
  } catch {
    return 'unknown';
  }
}

/** The highest GLIBC_2.N that the ELF files reference (their version-needed strings). */
export function glibcNeeded(files) {
  let best = [2, 0];
  const tag = Buffer.from('GLIBC_2.');
  for (const f of files) {
    const b = readFileSync(f);
    for (let i = b.indexOf(tag); i !== -1; i = b.indexOf(tag, i + tag.length)) {
      const m = /^GLIBC_2\.(\d+)(?:\.(\d+))?\0/.exec(b.toString('latin1', i, i + 16));
      if (!m) continue;
      const v = [Number(m[1]), Number(m[2] ?? 0)];
      if (v[0] > best[0] || (v[0] === best[0] && v[1] > best[1])) best = v;
    }
  }
  return `2.${best[0]}${best[1] ? `.${best[1]}` : ''}`;
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const addons = [
  join(root, 'native/build/Release/tunnelbyte_io.node'),
  join(dirname(require.resolve('better-sqlite3/package.json')), 'build/Release/better_sqlite3.node'),
];
const info = { version: pkg.version, commit: commit(), glibc: glibcNeeded([process.execPath, ...addons]) };
mkdirSync(join(root, 'dist'), { recursive: true });
writeFileSync(join(root, 'dist/build-info.json'), JSON.stringify(info, null, 2) + '\n');
