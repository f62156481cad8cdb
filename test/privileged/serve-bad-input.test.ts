// `tunnelbyte serve` refused at start: an unwritable data directory (read-only file system;
// permission denied), a full one (a tiny tmpfs), a corrupt server.key, a second serve on the same
// directory. Each gives one line on stderr naming the file or resource and the fix, exit status 1,
// nothing half-created (no TUN, no nft table, no lock, no partial key or database) and nothing of an
// earlier run lost (server.key and tunnelbyte.db byte for byte as they were).
//
// Everything runs in a network namespace of its own ("exit": a veth to an "upstream" namespace
// carries its default route), and the file systems the cases need (read-only, full) are tmpfs mounts in private mount
// namespaces (`unshare -m`), so neither the host's network nor its file systems are touched.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';

const skip = privilegedSkipReason(['ip', 'nft', 'curl', 'wg', 'unshare', 'setpriv']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const TUN = ifname('tbb');

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
/** Shell quoting for the paths put into the mount-namespace scripts. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('serve: bad input at start', { skip: skip ?? false }, () => {
  let exit: Netns, upstream: Netns;
  let scratch: string;
  const servers: ChildProcess[] = [];

  const serveArgs = (dir: string, extra: string[] = []) => [TB, 'serve', '--data', dir, '--tun', TUN, '--log-level', 'warn', ...extra];

  /** One line on stderr, exit status 1, and nothing of the exit left in the namespace. */
  const refused = (r: { status: number | null; stderr: string }, line: RegExp) => {
    assert.equal(r.status, 1, `exit status 1; stderr: ${r.stderr}`);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, `one line on stderr: ${r.stderr}`);
    assert.match(lines[0]!, line);
    assert.ok(!exit.run('nft', ['list', 'tables']).includes('tunnelbyte'), 'no nft table left');
    assert.notEqual(exit.try('ip', ['link', 'show', TUN]).status, 0, 'no TUN left');
  };

  /** A data directory as an earlier run leaves it: a server key and a migrated database. */
  const earlierRun = (dir: string) => {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'server.key'), exit.run('wg', ['genkey']), { mode: 0o600 });
    exit.run('node', [TB, 'admin', '--data', dir, 'region', 'add', 'earlier']);
    return { key: sha(join(dir, 'server.key')), db: sha(join(dir, 'tunnelbyte.db')) };
  };

  before(() => {
    exit = Netns.create('B');
    upstream = Netns.create('U');
    veth(upstream, ['203.0.113.1/24'], exit, ['203.0.113.2/24']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    scratch = mkdtempSync(join(tmpdir(), 'tb-bad-input-'));
  });

  after(() => {
    for (const s of servers) s.kill('SIGKILL');
    for (const ns of [exit, upstream]) ns?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  test('a data directory on a read-only file system: names the lock file, nothing lost', () => {
    const mnt = join(scratch, 'ro');
    mkdirSync(mnt);
    // a tmpfs with an earlier run's files, remounted read-only, in a mount namespace of its own
    const script = [
      'umask 077',
      `mount -t tmpfs -o size=8m tb-ro ${q(mnt)}`,
      `mkdir -m 0700 ${q(mnt)}/data && wg genkey > ${q(mnt)}/data/server.key`,
      `before=$(sha256sum ${q(mnt)}/data/server.key)`,
      `mount -o remount,ro ${q(mnt)}`,
      `node ${serveArgs(`${mnt}/data`).map(q).join(' ')}; status=$?`,
      `[ "$before" = "$(sha256sum ${q(mnt)}/data/server.key)" ] || echo KEY-CHANGED >&2`,
      `echo "files: $(ls -A ${q(mnt)}/data)"`,
      'exit $status',
    ].join('\n');
    const r = exit.try('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
    refused(r, new RegExp(`^tunnelbyte serve: cannot write the lock file ${mnt}/data/tunnelbyte\\.lock: read-only file system; give --data \\(or TB_DATA\\) a directory on a writable file system$`));
    assert.match(r.stdout, /^files: server\.key$/m);
  });

  test('a data directory this user may not write: permission denied, names the file and the fix', () => {
    const dir = join(scratch, 'root-only');
    const before = earlierRun(dir);
    chmodSync(scratch, 0o755); // nobody may look in, not write
    const r = exit.try('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', ...serveArgs(dir)]);
    refused(r, new RegExp(`^tunnelbyte serve: cannot write the lock file ${dir}/tunnelbyte\\.lock: permission denied; run serve as root, or give --data \\(or TB_DATA\\) a directory this user may write$`));
    assert.deepEqual(readdirSync(dir).sort(), ['server.key', 'tunnelbyte.db']);
    assert.deepEqual({ key: sha(join(dir, 'server.key')), db: sha(join(dir, 'tunnelbyte.db')) }, before);
  });

  test('a full file system: no space left, names the file; the earlier run\'s key and database intact', () => {
    const mnt = join(scratch, 'full');
    mkdirSync(mnt);
    const dir = join(scratch, 'earlier');
    earlierRun(dir);
    const script = [
      `mount -t tmpfs -o size=1m tb-full ${q(mnt)}`,
      `cp -a ${q(dir)} ${q(mnt)}/data`,
      `before=$(cd ${q(mnt)}/data && sha256sum server.key tunnelbyte.db)`,
      `dd if=/dev/zero of=${q(mnt)}/filler bs=4k 2>/dev/null; true`,
      `node ${serveArgs(`${mnt}/data`).map(q).join(' ')}; status=$?`,
      `[ "$before" = "$(cd ${q(mnt)}/data && sha256sum server.key tunnelbyte.db)" ] || echo KEY-OR-DB-CHANGED >&2`,
      `echo "files: $(ls -A ${q(mnt)}/data | tr '\\n' ' ')"`,
      'exit $status',
    ].join('\n');
    const r = exit.try('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
    refused(r, new RegExp(`^tunnelbyte serve: cannot write the lock file ${mnt}/data/tunnelbyte\\.lock: no space left on its file system; free some space there, or give --data \\(or TB_DATA\\) a directory on another$`));
    assert.match(r.stdout, /^files: server\.key tunnelbyte\.db $/m);
  });

  test('a file system with room for the lock but not the key, on a first run: no partial key, database or lock left', () => {
    const mnt = join(scratch, 'full-first');
    mkdirSync(mnt);
    // tmpfs counts whole pages: fill it, then free exactly one page — the lock takes it, the key finds none
    const script = [
      `mount -t tmpfs -o size=1m tb-full ${q(mnt)}`,
      `mkdir -m 0700 ${q(mnt)}/data`,
      `dd if=/dev/zero of=${q(mnt)}/spare bs=4k count=1 2>/dev/null`,
      `dd if=/dev/zero of=${q(mnt)}/filler bs=4k 2>/dev/null; rm ${q(mnt)}/spare`,
      `node ${serveArgs(`${mnt}/data`).map(q).join(' ')}; status=$?`,
      `echo "files: [$(ls -A ${q(mnt)}/data)]"`,
      'exit $status',
    ].join('\n');
    const r = exit.try('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
    refused(r, new RegExp(`^tunnelbyte serve: cannot write the server key ${mnt}/data/server\\.key: no space left on its file system; free some space there, or give --data \\(or TB_DATA\\) a directory on another$`));
    assert.match(r.stdout, /^files: \[\]$/m);
  });

  test('a corrupt server.key: names it and the fix; never overwritten, no database or lock made', () => {
    const dir = join(scratch, 'corrupt');
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'server.key'), 'this is not a key\n', { mode: 0o600 });
    const r = exit.try('node', serveArgs(dir));
    refused(r, new RegExp(`^tunnelbyte serve: ${dir}/server\\.key does not hold a WireGuard private key \\(base64 of 32 bytes\\); restore it from a backup, or move it away to have a new key made`));
    assert.equal(readFileSync(join(dir, 'server.key'), 'utf8'), 'this is not a key\n');
    assert.deepEqual(readdirSync(dir), ['server.key']);
  });

  test('a second serve on the same data directory: names the lock and the other pid; a stale lock (kill -9) is taken over', async () => {
    const dir = join(scratch, 'shared');
    const first = exit.spawn('node', serveArgs(dir, ['--api-listen', '127.0.0.1:8080']));
    servers.push(first);
    let log = '';
    first.stderr!.on('data', (d) => (log += d));
    await waitFor('first serve up', () => exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 30_000);
    const pid = Number(readFileSync(join(dir, 'tunnelbyte.lock'), 'utf8').split(' ')[0]);
    assert.ok(existsSync(`/proc/${pid}`), `the lock names the running serve (${pid}); ${log}`);
    const key = sha(join(dir, 'server.key'));

    const other = ifname('tbb');
    const r = exit.try('node', [TB, 'serve', '--data', dir, '--tun', other, '--api-listen', '127.0.0.1:8081', '--listen-port', '51821']);
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(r.stderr.split('\n').filter(Boolean), [
      `tunnelbyte serve: another tunnelbyte (pid ${pid}) is using this data directory (lock ${dir}/tunnelbyte.lock): stop it first, or give this one another --data`,
    ]);
    assert.notEqual(exit.try('ip', ['link', 'show', other]).status, 0, 'the second made no TUN');
    assert.equal(exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status, 0, 'the first still serves');

    // A start that fails late — the API port is the first one's — after its TUN and NAT were made:
    // both undone, and the first run's key and database not kept half-made.
    const dir2 = join(scratch, 'late');
    const late = exit.try('node', [TB, 'serve', '--data', dir2, '--tun', other, '--api-listen', '127.0.0.1:8080', '--listen-port', '51821']);
    assert.equal(late.status, 1, late.stderr);
    assert.deepEqual(late.stderr.split('\n').filter(Boolean), [
      'tunnelbyte serve: listen EADDRINUSE: address already in use 127.0.0.1:8080; stop the program using it, or choose another --api-listen HOST:PORT / --listen-port N',
    ]);
    assert.notEqual(exit.try('ip', ['link', 'show', other]).status, 0, 'its TUN removed');
    assert.ok(!exit.run('nft', ['list', 'tables']).includes(`tunnelbyte_${other}`), 'its NAT table removed');
    assert.deepEqual(readdirSync(dir2), [], 'its first-run key and database removed, and the lock');

    // kill -9 leaves the lock behind; the next start sees its process gone and takes it over
    process.kill(pid, 'SIGKILL');
    await waitFor('first serve gone', () => !existsSync(`/proc/${pid}`));
    assert.ok(existsSync(join(dir, 'tunnelbyte.lock')));
    exit.try('ip', ['link', 'del', TUN]); // what the kernel does once the fd is closed
    const third = exit.spawn('node', serveArgs(dir, ['--api-listen', '127.0.0.1:8080']));
    servers.push(third);
    await waitFor('serve up again over the stale lock', () => exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 30_000);
    assert.equal(sha(join(dir, 'server.key')), key, 'the same key');
    third.kill('SIGTERM');
    await new Promise((r) => third.once('exit', r));
    assert.ok(!existsSync(join(dir, 'tunnelbyte.lock')), 'a clean stop removes the lock');
  });
});
