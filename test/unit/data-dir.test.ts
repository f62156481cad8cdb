/**
 * The data directory's lock (src/server/data-dir.ts): `tunnelbyte.lock` for
 * whichever server holds the directory, and the old name `serve.lock` of a
 * still-running older tunnelbyte respected, a stale one cleared. Plain
 * files in a temp dir; no root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LEGACY_LOCK_FILE, LOCK_FILE, openDataDir } from '../../src/server/data-dir.js';
import { StartError } from '../../src/server/start-error.js';

const scratch = mkdtempSync(join(tmpdir(), 'tb-data-dir-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A pid that is certainly gone: a child that has exited. */
const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);

test('the lock is tunnelbyte.lock, naming its holder; a second opener is refused; release removes it', () => {
  const dir = join(scratch, 'plain');
  const d = openDataDir(dir);
  assert.equal(LOCK_FILE, 'tunnelbyte.lock');
  assert.equal(Number(readFileSync(join(dir, LOCK_FILE), 'utf8').split(' ')[0]), process.pid);
  assert.throws(() => openDataDir(dir), (e: unknown) => e instanceof StartError && e.message.includes(`another tunnelbyte (pid ${process.pid})`) && e.message.includes(join(dir, LOCK_FILE)));
  d.release();
  assert.deepEqual(readdirSync(dir), []);
});

test("an older tunnelbyte's live serve.lock is respected (and ours not left behind); a stale one is removed", () => {
  const dir = join(scratch, 'legacy');
  const d0 = openDataDir(dir);
  d0.release();
  writeFileSync(join(dir, LEGACY_LOCK_FILE), `${process.pid} \n`); // a live holder, as an older version wrote it
  assert.throws(() => openDataDir(dir), (e: unknown) => e instanceof StartError && e.message.includes(`(pid ${process.pid})`) && e.message.includes(join(dir, LEGACY_LOCK_FILE)));
  assert.ok(!existsSync(join(dir, LOCK_FILE)), 'the refused start released its own lock');
  writeFileSync(join(dir, LEGACY_LOCK_FILE), `${deadPid()} \n`);
  const d = openDataDir(dir);
  assert.ok(!existsSync(join(dir, LEGACY_LOCK_FILE)), 'the stale old lock is gone');
  assert.ok(existsSync(join(dir, LOCK_FILE)));
  d.release();
});
