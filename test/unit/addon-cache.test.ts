// The single executable's addon cache (src/executable/addon-cache.ts) with the real addon's bytes:
// written once to a 0700 directory named by the content hash, reused, repaired when wrong, refused in a
// directory others can write, and one error naming every directory and the fix when nothing works.
// The noexec fallback needs a mount and is in test/privileged/single-executable.test.ts.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AddonCacheError, addonCacheDirs, loadEmbeddedAddon } from '../../src/executable/addon-cache.js';
import { checkoutAddonPath, TUNNELBYTE_ADDON } from '../../src/executable/native-addons.js';

const bytes = new Uint8Array(readFileSync(checkoutAddonPath()));

function withTmp(run: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'tb-addon-cache-'));
  try {
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an embedded addon is written to <dir>/<hash>/<name> (0700 directories, 0600 file), loaded, and reused', () =>
  withTmp((tmp) => {
    const cache = join(tmp, 'cache');
    const mod = loadEmbeddedAddon(TUNNELBYTE_ADDON, bytes, [cache]) as Record<string, unknown>;
    assert.equal(typeof mod.tunOpen, 'function');
    assert.equal(typeof mod.aeadSeal, 'function');
    const [hash, ...more] = readdirSync(cache);
    assert.equal(more.length, 0);
    assert.match(hash!, /^[0-9a-f]{32}$/);
    assert.equal(statSync(cache).mode & 0o777, 0o700);
    assert.equal(statSync(join(cache, hash!)).mode & 0o777, 0o700);
    const file = join(cache, hash!, TUNNELBYTE_ADDON);
    const first = statSync(file);
    assert.equal(first.mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(cache, hash!)), [TUNNELBYTE_ADDON], 'no temporary file left');

    loadEmbeddedAddon(TUNNELBYTE_ADDON, bytes, [cache]);
    const second = statSync(file);
    assert.equal(second.ino, first.ino, 'a file with the right bytes is reused, not rewritten');
    assert.equal(second.mtimeMs, first.mtimeMs);

    // a damaged file (a disk error, someone's edit) is replaced, not loaded; damaged through a new inode,
    // as truncating the file this process has mapped would crash it (SIGBUS), which is why the cache
    // itself only ever renames over files
    writeFileSync(`${file}.damaged`, 'not an ELF file');
    renameSync(`${file}.damaged`, file);
    loadEmbeddedAddon(TUNNELBYTE_ADDON, bytes, [cache]);
    assert.ok(Buffer.from(bytes).equals(readFileSync(file)));
  }));

test('a cache directory that group or others can write is refused; the next directory is used', () =>
  withTmp((tmp) => {
    const open = join(tmp, 'open');
    mkdirSync(open, { mode: 0o700 });
    chmodSync(open, 0o777);
    const data = join(tmp, 'data', 'addons');
    loadEmbeddedAddon(TUNNELBYTE_ADDON, bytes, [open, data]);
    assert.deepEqual(readdirSync(open), [], 'nothing written where others could replace it');
    assert.equal(readdirSync(data).length, 1);
  }));

test('when no directory works: one AddonCacheError naming each directory, its reason and the fix', () =>
  withTmp((tmp) => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, '');
    const open = join(tmp, 'open');
    mkdirSync(open);
    chmodSync(open, 0o757);
    assert.throws(
      () => loadEmbeddedAddon(TUNNELBYTE_ADDON, bytes, [join(file, 'cache'), open]),
      (e: unknown) => {
        assert.ok(e instanceof AddonCacheError);
        const m = e.message;
        assert.ok(!m.includes('\n'), 'one line');
        assert.ok(m.includes(join(file, 'cache')) && m.includes(open), m);
        assert.match(m, /writable by group or others/);
        assert.match(m, /TB_CACHE_DIR/);
        return true;
      },
    );
    assert.throws(() => loadEmbeddedAddon('../evil.node', bytes, [tmp]), TypeError);
  }));

test(`cache directories: TB_CACHE_DIR, else systemd's CACHE_DIRECTORY, else /var/cache/tunnelbyte as root, else XDG_CACHE_HOME; then <data>/addons`, () => {
  assert.deepEqual(addonCacheDirs('/d', { TB_CACHE_DIR: '/c' }, 0), ['/c', '/d/addons']);
  assert.deepEqual(addonCacheDirs('/d', {}, 0), ['/var/cache/tunnelbyte', '/d/addons']);
  assert.deepEqual(addonCacheDirs(null, { XDG_CACHE_HOME: '/home/u/.cache' }, 1000), ['/home/u/.cache/tunnelbyte']);
  // systemd's CACHE_DIRECTORY (CacheDirectory= of the unit; several are colon-separated): below TB_CACHE_DIR, above the defaults
  assert.deepEqual(addonCacheDirs('/d', { CACHE_DIRECTORY: '/var/cache/tb-2:/var/cache/other' }, 0), ['/var/cache/tb-2', '/d/addons']);
  assert.deepEqual(addonCacheDirs(null, { CACHE_DIRECTORY: '/var/cache/tb-2', XDG_CACHE_HOME: '/home/u/.cache' }, 1000), ['/var/cache/tb-2']);
  assert.deepEqual(addonCacheDirs(null, { CACHE_DIRECTORY: '/var/cache/tb-2', TB_CACHE_DIR: '/c' }, 0), ['/c']);
  assert.deepEqual(addonCacheDirs(null, { CACHE_DIRECTORY: 'relative' }, 0), ['/var/cache/tunnelbyte'], 'only an absolute path');
});
