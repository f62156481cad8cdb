// `tunnelbyte serve` on a fresh machine: no data directory yet, no flags beyond the one under test.
// Both ways a first start happens, through to a stock wireguard-go client downloading through the exit:
//   - `--data DIR` for a DIR (and its parents) that does not exist;
//   - the README's quick-start command, run literally (as root, so `sudo` is dropped), with its
//     embedded defaults: /var/lib/tunnelbyte, API on :8080, WireGuard on :51820, TUN tb0. It runs in
//     a private mount namespace (`unshare -m`) with a tmpfs over /var/lib, so the host's /var/lib is
//     never touched, and in a network namespace, so the ports, the TUN and the nft table are the
//     namespace's.
//
// Both check the start-up banner as a pino record (stdout is a pipe); a third start under script(1)
// checks it as the lines a person reads on a terminal.
//
//   nsI "internet"  203.0.113.1/24: an HTTP server
//   nsE "exit"      203.0.113.2/24 (default route, so the embedded endpoint is 203.0.113.2:51820),
//                   198.51.100.1/24 towards the client
//   nsC "client"    198.51.100.2/24, 203.0.113.2/32 via the exit: Debian's wireguard-go
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname, startInterface } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { fetchFile, loadSessionConfig, signupAndSession, startInternet } from '../support/exit-net.js';
import { readmeCommands, steps } from '../support/readme.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'curl', 'nft', 'unshare', 'nsenter', 'script']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const API = 'http://198.51.100.1:8080';
const ENDPOINT = '203.0.113.2:51820';
const WG = ifname('wgf');
const FILE_BYTES = 2 * 1024 * 1024;

/** The environment of a person's root shell: nothing of tunnelbyte's configured. */
const cleanEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME ?? '/root', npm_config_update_notifier: 'false' });

describe('first run: serve creates its data directory and comes up', { skip: skip ?? false }, () => {
  let inet: Netns, exit: Netns, client: Netns;
  let scratch: string;
  let server: ChildProcess | null = null;
  let serverLog = '';
  const hostHadVarLibTunnelbyte = existsSync('/var/lib/tunnelbyte');

  const watch = (child: ChildProcess) => {
    server = child;
    serverLog = ''; // this server's output only
    child.stdout!.on('data', (d) => (serverLog += d));
    child.stderr!.on('data', (d) => (serverLog += d));
  };

  /** The `node …/tunnelbyte serve` process in the exit namespace (under npx and sh when started that way). */
  const servePid = (): number | null => {
    for (const pid of exit.pids()) {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        if (/(^|\/)node$/.test(argv[0]!) && /\/tunnelbyte(\.js)?$/.test(argv[1]!) && argv[2] === 'serve') return pid;
      } catch {
        /* exited meanwhile */
      }
    }
    return null;
  };

  /** Waits for the API; a server that exits meanwhile fails at once, with what it said. */
  const apiUp = async (timeoutMs: number) => {
    const until = Date.now() + timeoutMs;
    while (exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status !== 0) {
      if (server?.exitCode !== null) assert.fail(`serve exited (${server?.exitCode}): ${serverLog.slice(-2000)}`);
      if (Date.now() > until) assert.fail(`the API did not come up within ${timeoutMs} ms: ${serverLog.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** Signup → session → the config in wireguard-go → a download through the exit, seen from the exit's address. */
  const clientDownloads = () => {
    const { session } = signupAndSession(client, API, `fp-first-run-${process.pid}-${Math.random()}`);
    loadSessionConfig(client, WG, session, { endpoint: ENDPOINT, routes: ['203.0.113.1/32'] });
    assert.equal(fetchFile(client, FILE_BYTES), FILE_BYTES, 'the whole file arrived through the tunnel');
    assert.equal(client.run('curl', ['-s', '--max-time', '5', 'http://203.0.113.1:8000/ip']).trim(), '203.0.113.2', 'the internet sees the exit');
  };

  /** The start-up record serve logs when stdout is not a terminal (pino JSON): the banner's fields. */
  const startRecord = async (): Promise<{ endpoint: string; api: string; region: string; next: string[] }> => {
    // the API may answer before the record has come through the pipe
    const r = await waitFor(`a start-up record in: ${serverLog.slice(-2000)}`, () =>
      serverLog
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
        .find((x) => x.msg === 'tunnelbyte exit running'),
    );
    assert.equal(r.level, 30);
    return { endpoint: r.endpoint, api: r.api, region: r.region, next: r.next };
  };

  /**
   * SIGTERM to the server itself — the pid its lock file in `dataDir` names — and a clean stop: its
   * last log line, then nothing of it left in the namespace.
   */
  const stopServer = async (dataDir: string) => {
    const pid = Number(readFileSync(join(dataDir, 'tunnelbyte.lock'), 'utf8').split(' ')[0]);
    assert.ok(existsSync(`/proc/${pid}`), `the serve process ${pid} runs`);
    process.kill(pid, 'SIGTERM');
    await waitFor('serve stopped cleanly', () => serverLog.includes('"msg":"stopped"'), 15_000);
    await waitFor('serve exits', () => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')), 15_000);
    assert.ok(!exit.run('nft', ['list', 'tables']).includes('tunnelbyte'), 'NAT table removed');
    assert.notEqual(exit.try('ip', ['link', 'show', 'tb0']).status, 0, 'interface removed');
    server?.kill('SIGKILL');
    server = null;
  };

  before(async () => {
    inet = Netns.create('I');
    exit = Netns.create('E');
    client = Netns.create('C');
    scratch = mkdtempSync(join(tmpdir(), 'tb-first-run-'));
    veth(inet, ['203.0.113.1/24'], exit, ['203.0.113.2/24']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    veth(exit, ['198.51.100.1/24'], client, ['198.51.100.2/24']);
    client.run('ip', ['route', 'add', '203.0.113.2/32', 'via', '198.51.100.1']);
    await startInternet(inet);
    startInterface(client, 'wireguard-go', WG);
  });

  after(() => {
    server?.kill('SIGKILL');
    for (const ns of [client, exit, inet]) ns?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    if (process.exitCode) console.error(serverLog.slice(-4000));
  });

  test('--data DIR for a DIR whose parents do not exist either: created 0700, key 0600, traffic flows', async () => {
    const dir = join(scratch, 'not', 'yet', 'data');
    watch(exit.spawn('node', [TB, 'serve', '--data', dir], { env: cleanEnv() }));
    await apiUp(30_000);
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'the data directory is 0700');
    assert.equal(statSync(join(scratch, 'not')).isDirectory(), true, 'parents were made');
    assert.equal(statSync(join(dir, 'server.key')).mode & 0o777, 0o600, 'server.key is 0600');
    assert.ok(existsSync(join(dir, 'tunnelbyte.db')));
    assert.deepEqual(await startRecord(), {
      endpoint: ENDPOINT,
      api: 'http://203.0.113.2:8080',
      region: 'local',
      next: [`tunnelbyte admin --data ${dir} region list`, `tunnelbyte admin --data ${dir} session list`, 'TB_API=http://203.0.113.2:8080 tunnelbyte signup   # on a client machine, then: tunnelbyte connect'],
    });
    clientDownloads();
    await stopServer(dir);
  });

  test("the README's quick-start command as root, embedded defaults, /var/lib/tunnelbyte missing", async () => {
    const serveLine = steps(readmeCommands('Quick start')[0]!).at(-1)!;
    assert.match(serveLine, /^(sudo )?(npx )?\S*tunnelbyte serve$/, 'the quick start runs serve on its embedded defaults (no flags)');
    const command = serveLine.replace(/^sudo /, ''); // the test runs as root already
    // The tmpfs hides the host's /var/lib from this process tree only (private propagation).
    const script = `mount -t tmpfs -o mode=0755,size=64m tb-first-run /var/lib && test ! -e /var/lib/tunnelbyte && ${command}`;
    watch(exit.spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { cwd: REPO_ROOT, env: cleanEnv() }));
    await apiUp(60_000);
    const pid = servePid()!;
    const dataDir = `/proc/${pid}/root/var/lib/tunnelbyte`; // the server's own view of its mount namespace
    assert.equal(statSync(dataDir).mode & 0o777, 0o700, '/var/lib/tunnelbyte is 0700');
    assert.deepEqual(readdirSync(dataDir).filter((f) => !f.startsWith('tunnelbyte.db-')).sort(), ['server.key', 'tunnelbyte.db', 'tunnelbyte.lock']);
    assert.equal(statSync(join(dataDir, 'server.key')).mode & 0o777, 0o600);
    clientDownloads();
    // `tunnelbyte admin` with no --data finds the same database: the session just made is there.
    assert.deepEqual((await startRecord()).next.slice(0, 2), ['tunnelbyte admin region list', 'tunnelbyte admin session list'], 'the default data directory needs no --data');
    const sessions = JSON.parse(exit.run('nsenter', ['-t', String(pid), '-m', 'node', TB, 'admin', 'session', 'list', '--json'], { env: cleanEnv() }));
    assert.equal(sessions.length, 1, JSON.stringify(sessions));
    await stopServer(dataDir);
    if (!hostHadVarLibTunnelbyte) assert.equal(existsSync('/var/lib/tunnelbyte'), false, "the host's /var/lib was not touched");
  });

  test('on a terminal the banner is for a person: endpoint, API URL, region, what to try next', async () => {
    const dir = join(scratch, 'tty');
    // script(1) gives serve a pseudo-terminal as stdout; what serve writes there comes out of script's stdout
    watch(exit.spawn('script', ['-qfec', `node ${TB} serve --data ${dir} --region tty-test`, '/dev/null'], { env: { ...cleanEnv(), TERM: 'dumb' } }));
    await waitFor('the banner', () => serverLog.includes('try next:') && serverLog.includes('connect'), 30_000);
    const lines = serverLog.replace(/\r/g, '').split('\n');
    const at = lines.indexOf('tunnelbyte exit running in region tty-test');
    assert.ok(at >= 0, serverLog);
    assert.deepEqual(lines.slice(at, at + 7), [
      'tunnelbyte exit running in region tty-test',
      `  WireGuard  ${ENDPOINT} (UDP)`,
      '  API        http://203.0.113.2:8080',
      'try next:',
      `  tunnelbyte admin --data ${dir} region list`,
      `  tunnelbyte admin --data ${dir} session list`,
      '  TB_API=http://203.0.113.2:8080 tunnelbyte signup   # on a client machine, then: tunnelbyte connect',
    ]);
    assert.ok(!lines.some((l) => l.includes('"msg":"tunnelbyte exit running"')), 'no JSON banner on a terminal');
    await stopServer(dir);
  });
});
