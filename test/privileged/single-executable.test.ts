// The single executable as shipped (README "Install"): dist/tunnelbyte-linux-x64 (built here by
// scripts/build-dist.js when absent or older than the build) copied alone into an empty directory and
// run where Node cannot be reached — each command runs in a private mount namespace (unshare -m) in
// which an empty file is bound over every node binary and empty directories over /usr/include/node,
// the global node_modules and this checkout (so its node_modules too); `node` is checked not to run
// there. In network namespaces this test makes:
//
//   nsI "internet"  203.0.113.1/24 — an HTTP server
//   nsE "exit"      203.0.113.2/24 (default route), 198.51.100.1/24 towards the client; `tunnelbyte serve`
//                   (the executable, under strace) with NAT and the native AEAD
//   nsC client      198.51.100.2/24, Debian's wireguard-go loaded with the session's config
//   nsA, nsB        the symlink tunnelbyte-wg brought up by wg-quick in nsA, wireguard-go set up with wg in nsB
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { genKeys, ifname, keyDir, startInterface, waitPing } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { BUILD_INFO, BUILT, ensureBuilt } from '../support/executable.js';
import { fetchFile, loadSessionConfig, signupAndSession, startInternet } from '../support/exit-net.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wg-quick', 'wireguard-go', 'curl', 'nft', 'unshare', 'strace']);
const API = 'http://198.51.100.1:8080';
const FILE_BYTES = 4 * 1024 * 1024;

// Runs "$@" with Node out of reach; TB_NOEXEC lists directories to mount as noexec tmpfs first.
const HIDE_NODE = `#!/bin/sh
set -e
for f in $(command -v -a node nodejs npm npx 2>/dev/null | sort -u) /usr/bin/node /usr/bin/nodejs; do
  [ -e "$f" ] && mount --bind "$TB_EMPTY_FILE" "$f"
done
for d in /usr/include/node /usr/lib/node_modules /usr/local/lib/node_modules /usr/share/nodejs "$TB_CHECKOUT"; do
  [ -d "$d" ] && mount --bind "$TB_EMPTY_DIR" "$d"
done
for d in $TB_NOEXEC; do mkdir -p "$d"; mount -t tmpfs -o noexec,mode=0700 tmpfs "$d"; done
if node --version >/dev/null 2>&1; then echo "node is still runnable" >&2; exit 99; fi
cd /  # not the (now hidden) directory the test runs in
exec "$@"
`;

describe('the single executable, without Node', { skip: skip ?? false }, () => {
  let root: string; // everything of this test outside the namespaces
  let exe: string; // the one file, copied
  let wgLink: string; // tunnelbyte-wg -> exe
  let hideEnv: NodeJS.ProcessEnv;
  const namespaces: Netns[] = [];

  /** argv for `cmd args` with Node hidden (run it with Netns.run or spawnSync). */
  const hidden = (cmd: string, args: string[]): [string, string[]] => ['unshare', ['-m', '--propagation', 'private', 'sh', join(root, 'hide-node.sh'), cmd, ...args]];
  const runHidden = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const [c, a] = hidden(cmd, args);
    return spawnSync(c, a, { env: { ...hideEnv, ...env }, encoding: 'utf8', timeout: 60_000 });
  };

  before(() => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'tb-sea-'));
    mkdirSync(join(root, 'bin'));
    mkdirSync(join(root, 'empty'));
    writeFileSync(join(root, 'empty-file'), '');
    writeFileSync(join(root, 'hide-node.sh'), HIDE_NODE, { mode: 0o755 });
    exe = join(root, 'bin', 'tunnelbyte');
    copyFileSync(BUILT, exe);
    spawnSync('chmod', ['0755', exe]);
    wgLink = join(root, 'bin', 'tunnelbyte-wg');
    symlinkSync(exe, wgLink);
    hideEnv = {
      PATH: `${join(root, 'bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      TB_EMPTY_FILE: join(root, 'empty-file'),
      TB_EMPTY_DIR: join(root, 'empty'),
      TB_CHECKOUT: REPO_ROOT,
      TB_CACHE_DIR: join(root, 'cache'),
      LOG_LEVEL: 'error',
    };
  });

  after(() => {
    for (const ns of namespaces) ns.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('one file in an empty directory; node, the checkout and node_modules are out of reach; --version says what it is', () => {
    assert.deepEqual(readdirSync(join(root, 'bin')).sort(), ['tunnelbyte', 'tunnelbyte-wg']);
    const probe = runHidden('sh', ['-c', `node --version; echo "node: $?"; ls -A ${REPO_ROOT} | wc -l`]);
    assert.equal(probe.status, 0, probe.stderr);
    assert.match(probe.stdout, /node: 12[67]\n0\n$/, 'node cannot run and the checkout is empty');

    const info = JSON.parse(readFileSync(BUILD_INFO, 'utf8')) as { version: string; commit: string; glibc: string };
    const v = runHidden(exe, ['--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout, `tunnelbyte v${info.version}\ncommit ${info.commit}\nnode ${process.version}\nneeds glibc >= ${info.glibc} (x86_64 Linux)\n`);
    const w = runHidden('tunnelbyte-wg', ['--version']);
    assert.equal(w.status, 0, w.stderr);
    assert.match(w.stdout, new RegExp(`^tunnelbyte-wg v${info.version.replace(/\./g, '\\.')}\ncommit `));
    const usage = runHidden('tunnelbyte-wg', []);
    assert.equal(usage.status, 1);
    assert.match(usage.stderr, /^Usage: tunnelbyte-wg \[-f\/--foreground\] INTERFACE-NAME/);
  });

  test('NODE_OPTIONS cannot inject code: a --require that node itself runs is ignored by the executable', () => {
    const marker = join(root, 'injected');
    const inject = join(root, 'inject.cjs');
    writeFileSync(inject, `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran');\n`);
    const env = { NODE_OPTIONS: `--require ${inject}` };
    // the same file does run under node, so the marker is a real witness
    spawnSync(process.execPath, ['-e', '0'], { env: { ...process.env, ...env } });
    assert.ok(existsSync(marker), 'node runs the --require');
    rmSync(marker);

    const data = join(root, 'data-inject');
    for (const args of [['--version'], ['admin', '--data', data, 'region', 'add', 'eu-test']]) {
      const r = runHidden(exe, args, env);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(!existsSync(marker), `NODE_OPTIONS code ran for ${args.join(' ')}`);
    }
    const w = runHidden('tunnelbyte-wg', ['--version'], env);
    assert.equal(w.status, 0, w.stderr);
    assert.ok(!existsSync(marker), 'NODE_OPTIONS code ran for tunnelbyte-wg');
  });

  test('a noexec cache falls back to <data>/addons; with the data directory noexec too: one error line naming both and the fix, exit 1', () => {
    const cache = join(root, 'noexec-cache');
    const data = join(root, 'data-fallback');
    const ok = runHidden(exe, ['admin', '--data', data, 'region', 'add', 'fallback'], { TB_CACHE_DIR: cache, TB_NOEXEC: cache });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^region fallback/);
    const [hash] = readdirSync(join(data, 'addons'));
    assert.ok(existsSync(join(data, 'addons', hash!, 'better_sqlite3.node')), 'the addon was written under the data directory');
    assert.equal(statSync(join(data, 'addons')).mode & 0o777, 0o700);

    const bad = join(root, 'data-noexec');
    const r = runHidden(exe, ['admin', '--data', bad, 'region', 'add', 'nowhere'], { TB_CACHE_DIR: cache, TB_NOEXEC: `${cache} ${bad}` });
    assert.equal(r.status, 1);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^tunnelbyte: cannot load the embedded native addon better_sqlite3\.node: /);
    assert.ok(lines[0]!.includes(cache) && lines[0]!.includes(join(bad, 'addons')), lines[0]);
    assert.match(lines[0]!, /noexec.*Fix: set TB_CACHE_DIR/);

    // serve says the same in its one start-up failure line, and exits 1 before creating anything
    const ns = Netns.create('X');
    namespaces.push(ns);
    const [c, a] = hidden(exe, ['serve', '--data', bad, '--endpoint', '192.0.2.1', '--tun', ifname('tbx')]);
    const s = ns.try(c, a, { env: { ...hideEnv, TB_CACHE_DIR: cache, TB_NOEXEC: `${cache} ${bad}` } });
    assert.equal(s.status, 1, s.stdout + s.stderr);
    const said = `${s.stdout}${s.stderr}`.split('\n').filter((l) => l.includes('cannot load the embedded native addon'));
    assert.equal(said.length, 1, s.stdout + s.stderr);
    assert.ok(said[0]!.includes(join(bad, 'addons')) && said[0]!.includes('TB_CACHE_DIR'), said[0]);
    assert.deepEqual(ns.links(), ['lo'], 'no interface created');
  });

  describe('serve → signup → session → a stock wireguard-go client downloads through the exit', () => {
    let inet: Netns, exit: Netns, client: Netns;
    let server: ChildProcess | null = null;
    let serverLog = '';
    const WGC = ifname('wgs');
    const TUN = ifname('tbs');
    const straceLog = () => join(root, 'serve.strace');

    before(async () => {
      inet = Netns.create('I');
      exit = Netns.create('E');
      client = Netns.create('C');
      namespaces.push(client, exit, inet);
      veth(inet, ['203.0.113.1/24'], exit, ['203.0.113.2/24']);
      exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
      veth(exit, ['198.51.100.1/24'], client, ['198.51.100.2/24']);
      await startInternet(inet);
      startInterface(client, 'wireguard-go', WGC);
      const data = join(root, 'data-serve');
      // strace follows every process and thread; --seccomp-bpf stops only on the file syscalls it logs
      const [c, a] = hidden('strace', ['-f', '--seccomp-bpf', '-e', 'trace=%file', '-o', straceLog(), exe, 'serve', '--data', data, '--endpoint', '198.51.100.1', '--tun', TUN, '--sync-interval', '1', '--log-level', 'info']);
      server = exit.spawn(c, a, { env: { ...hideEnv, TB_CRYPTO_AEAD: 'native' } });
      server.stdout!.on('data', (d) => (serverLog += d));
      server.stderr!.on('data', (d) => (serverLog += d));
      await waitFor('API up', () => exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 30_000, 200);
    });

    after(() => {
      if (process.exitCode) console.error(serverLog.slice(-4000));
    });

    /** The serve process: the one in nsE whose executable is the copied file. */
    const servePid = (): number => {
      for (const pid of exit.pids()) {
        try {
          if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('serve') && spawnSync('readlink', [`/proc/${pid}/exe`], { encoding: 'utf8' }).stdout.trim() === exe) return pid;
        } catch {
          /* exited */
        }
      }
      throw new Error('no serve process');
    };

    test('a 4 MiB download through the exit with the native AEAD; the exit is what the internet sees', async () => {
      const { session } = signupAndSession(client, API, `fp-sea-${process.pid}`);
      loadSessionConfig(client, WGC, session, { endpoint: '198.51.100.1:51820', routes: ['203.0.113.0/24'] });
      assert.equal(fetchFile(client, FILE_BYTES), FILE_BYTES, 'the whole file arrived');
      assert.equal(client.run('curl', ['-s', '--max-time', '5', 'http://203.0.113.1:8000/ip']).trim(), '203.0.113.2');
    });

    test('its mapped files and every file it opened: the embedded addons from the cache, nothing from node_modules or the checkout', async () => {
      const pid = servePid();
      const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
      const files = new Set(maps.split('\n').map((l) => l.split(/\s+/).slice(5).join(' ')).filter((f) => f.startsWith('/')));
      const cache = join(root, 'cache');
      assert.ok([...files].some((f) => f.startsWith(cache) && f.endsWith('/tunnelbyte_io.node')), [...files].join('\n'));
      assert.ok([...files].some((f) => f.startsWith(cache) && f.endsWith('/better_sqlite3.node')));
      assert.deepEqual([...files].filter((f) => f.includes('node_modules') || f.startsWith(REPO_ROOT) || f === process.execPath), []);

      process.kill(pid, 'SIGTERM');
      await waitFor('serve exits', () => !exit.pids().includes(pid), 15_000);
      server = null;
      const log = readFileSync(straceLog(), 'utf8');
      assert.match(log, /openat\([^\n]*tunnelbyte_io\.node/, 'strace saw the addon opened (the log is real)');
      assert.deepEqual(log.split('\n').filter((l) => l.includes('node_modules') || l.includes(REPO_ROOT)), []);
    });
  });

  test('the symlink tunnelbyte-wg, brought up by wg-quick and set with wg, talks to a stock wireguard-go', async () => {
    const a = Netns.create('A');
    const b = Netns.create('B');
    namespaces.push(a, b);
    veth(a, ['192.0.2.1/24'], b, ['192.0.2.2/24']);
    const ka = genKeys();
    const kb = genKeys();
    const keys = keyDir();
    a.onDestroy(() => keys.cleanup());
    const ifA = ifname('tbq');
    const ifB = ifname('wgq');
    const conf = join(keys.dir, `${ifA}.conf`);
    writeFileSync(conf, `[Interface]\nPrivateKey = ${ka.priv}\nListenPort = 51821\nAddress = 10.99.0.1/24\n\n[Peer]\nPublicKey = ${kb.pub}\nAllowedIPs = 10.99.0.2/32\nEndpoint = 192.0.2.2:51822\n`, { mode: 0o600 });
    a.onDestroy(() => rmSync(`/var/run/wireguard/${ifA}.sock`, { force: true }));

    const [c, args] = hidden('wg-quick', ['up', conf]);
    a.run(c, args, { env: { ...hideEnv, WG_QUICK_USERSPACE_IMPLEMENTATION: 'tunnelbyte-wg' } });
    const daemon = a.pids().find((p) => spawnSync('readlink', [`/proc/${p}/exe`], { encoding: 'utf8' }).stdout.trim() === exe);
    assert.ok(daemon, 'the daemon is the copied executable');

    startInterface(b, 'wireguard-go', ifB);
    b.run('wg', ['set', ifB, 'private-key', keys.write('b.key', kb.priv), 'listen-port', '51822', 'peer', ka.pub, 'allowed-ips', '10.99.0.1/32', 'endpoint', '192.0.2.1:51821']);
    b.run('ip', ['addr', 'add', '10.99.0.2/24', 'dev', ifB]);
    b.run('ip', ['link', 'set', ifB, 'up']);
    assert.ok(await waitPing(b, '10.99.0.1', 20_000), 'wireguard-go reaches tunnelbyte-wg');
    assert.match(a.run('wg', ['show', ifA, 'latest-handshakes']), new RegExp(`^${kb.pub.replace(/[+/]/g, '\\$&')}\t[1-9]\\d*\n$`));

    a.run(c, hidden('wg-quick', ['down', conf])[1], { env: hideEnv });
    assert.notEqual(a.try('ip', ['link', 'show', ifA]).status, 0, 'wg-quick down removed the interface');
  });
});
