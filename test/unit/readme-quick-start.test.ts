/**
 * The README's quick start is two commands — one runs the exit on its
 * embedded defaults, one runs the tests — and each is run somewhere, so the
 * README cannot drift from the product: `npm ci` and `npm test` by CI
 * (`.ci/run` runs them as written), the serve command literally by
 * test/privileged/first-run.test.ts (as root, in namespaces).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../support/repo.js';
import { readmeCommands, steps } from '../support/readme.js';

const ciCommands = (): string[] =>
  readFileSync(join(REPO_ROOT, '.ci/run'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

test('the quick start is two commands: the exit on its defaults, then the tests', () => {
  const [serve, tests, ...more] = readmeCommands('Quick start');
  assert.deepEqual(more, [], 'two commands');
  const serveSteps = steps(serve!);
  assert.match(serveSteps.at(-1)!, /^(sudo )?(npx )?tunnelbyte serve$/, 'serve with no flags: the embedded defaults');
  assert.equal(tests, 'npm test');
});

test('what the quick start runs before serve, and the tests, are what CI runs', () => {
  const [serve, tests] = readmeCommands('Quick start');
  const ci = ciCommands();
  for (const step of [...steps(serve!).slice(0, -1), tests!]) assert.ok(ci.includes(step), `.ci/run runs \`${step}\` as the README writes it`);
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
  assert.ok(pkg.scripts.test, 'npm test is defined');
  assert.equal(pkg.bin.tunnelbyte, 'bin/tunnelbyte.js', 'npx tunnelbyte runs the checkout\'s CLI');
});
