/**
 * The README's serve table ("| flag | env | default |") and serve's commander
 * definitions list the same flags with the same environment variables, so a
 * flag added to one cannot be missing from the other (`tunnelbyte serve
 * --help` prints the commander side); `tunnelbyte control` takes the flags the
 * README's paragraph on it lists, with serve's variables. Rows whose flag is "—" are variables
 * without a flag and are left out.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerControlCommand } from '../../src/cli/control.js';
import { registerServeCommand } from '../../src/cli/serve.js';
import { REPO_ROOT } from '../support/repo.js';

/** flag → the TB_ variables named with it, from commander: `.env()` or an "(env TB_X=…)" in the description. */
function commanderFlags(name: 'serve' | 'control'): Map<string, string[]> {
  const program = new Command();
  (name === 'serve' ? registerServeCommand : registerControlCommand)(program);
  const cmd = program.commands.find((c) => c.name() === name);
  assert.ok(cmd, `${name} is registered`);
  const out = new Map<string, string[]>();
  for (const o of cmd.options) {
    const env = new Set<string>(o.envVar ? [o.envVar] : []);
    for (const m of o.description.matchAll(/\benv:? (TB_[A-Z0-9_]+)/g)) env.add(m[1]!);
    out.set(o.long!, [...env].sort());
  }
  return out;
}

/** flag → the TB_ variables of its row, from the README table under the `| flag | env | default |` header. */
function readmeFlags(): Map<string, string[]> {
  const text = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const lines = text.split('\n');
  const at = lines.indexOf('| flag | env | default |');
  assert.ok(at >= 0, 'README has the serve table');
  const out = new Map<string, string[]>();
  for (const line of lines.slice(at + 2)) {
    if (!line.startsWith('|')) break;
    const [flagCell, envCell] = line.split(/(?<!\\)\|/).slice(1, 3).map((c) => c.trim());
    const env = [...envCell!.matchAll(/TB_[A-Z0-9_]+/g)].map((m) => m[0]);
    const flags = [...flagCell!.matchAll(/`(--[a-z0-9-]+)/g)].map((m) => m[1]!);
    if (flagCell === '—') continue; // variables without a flag (billing), read by the server from its environment
    assert.ok(flags.length > 0, `a row without a flag: ${line}`);
    // a row naming two flags (--tls-cert, --tls-key) names their variables in the same order
    flags.forEach((f, i) => out.set(f, flags.length > 1 && env.length === flags.length ? [env[i]!] : [...env].sort()));
  }
  return out;
}

test("README's serve table and serve's flags: the same flags, the same environment variables", () => {
  const code = commanderFlags('serve');
  const readme = readmeFlags();
  assert.ok(code.size >= 20, `serve has ${code.size} flags`);
  assert.deepEqual([...readme.keys()].sort(), [...code.keys()].sort(), 'flags in the README table vs serve --help');
  for (const [flag, env] of code) assert.deepEqual(readme.get(flag), env, `${flag}: environment variables`);
});

test("tunnelbyte control: the flags the README's paragraph lists, each with serve's environment variables", () => {
  const control = commanderFlags('control');
  const serve = commanderFlags('serve');
  const text = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const para = /takes serve's control-plane\s+flags([\s\S]*?)\(one definition/.exec(text);
  assert.ok(para, "README's tunnelbyte control paragraph lists the flags it takes");
  const listed = [...para[1]!.matchAll(/`(--[a-z0-9-]+)`/g)].map((m) => m[1]!);
  assert.deepEqual(listed.sort(), [...control.keys()].sort(), 'flags in the README paragraph vs control --help');
  for (const [flag, env] of control) assert.deepEqual(env, serve.get(flag), `${flag}: the same variables as serve's`);
});
