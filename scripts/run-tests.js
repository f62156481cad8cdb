#!/usr/bin/env node
// Runs the compiled test suite with Node's own test runner.
// Node 20's `--test` takes no globs, so the files are listed here: every
// dist/test/**/*.test.js, in tier order (vectors, properties, unit, integration,
// unprivileged, privileged). Extra arguments are passed to `node --test` (e.g. --test-only).
//
// Every test file runs under a timeout (node's --test-timeout, which Node 20
// applies to each file as a whole): TB_TEST_FILE_TIMEOUT_MS, default 15
// minutes — far above the slowest file on a loaded 2-core machine, so it
// only ends a file that hangs. Compiled files whose source is gone (tsc
// never deletes outputs) are not run.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const testRoot = join(root, 'dist', 'test');
const filter = process.env.TB_TEST_FILTER ? new RegExp(process.env.TB_TEST_FILTER) : null;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const tiers = ['vectors', 'property', 'unit', 'integration', 'unprivileged', 'privileged', 'bench'];
const timeoutMs = Number(process.env.TB_TEST_FILE_TIMEOUT_MS ?? 15 * 60_000);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
  console.error(`TB_TEST_FILE_TIMEOUT_MS must be a positive integer (milliseconds), got ${process.env.TB_TEST_FILE_TIMEOUT_MS}`);
  process.exit(1);
}
const hasSource = (f) => existsSync(join(root, 'test', relative(testRoot, f)).replace(/\.js$/, '.ts'));
const files = walk(testRoot)
  .filter((f) => hasSource(f) && (!filter || filter.test(relative(testRoot, f))))
  .sort((a, b) => {
    const ta = tiers.indexOf(relative(testRoot, a).split('/')[0]);
    const tb = tiers.indexOf(relative(testRoot, b).split('/')[0]);
    return ta - tb || a.localeCompare(b);
  });
if (files.length === 0) {
  console.error('no test files found under dist/test');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', `--test-timeout=${timeoutMs}`, ...process.argv.slice(2), ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
