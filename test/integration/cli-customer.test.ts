/**
 * The customer CLI (`tunnelbyte signup … connect --config-only … disconnect ID`)
 * as a person runs it: the real program in a child process, against the real
 * control plane app on an ephemeral 127.0.0.1 port (a recording data plane
 * stands in for the exit node). Each command's happy path and main failure,
 * the token file and its mode, TB_KEY, --json, the fingerprint, 403/429/503.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { publicKeyOf } from '../../src/crypto/wireguard-keys.js';
import { machineFingerprint } from '../../src/cli/customer/local-files.js';
import { withPrivateKey } from '../../src/cli/customer/tunnel-commands.js';
import { describeError, ApiError, humanDuration } from '../../src/cli/customer/errors.js';
import { makePaid, NODE_EXIT, startHarness, type Harness } from '../control/harness.js';
import { REPO_ROOT } from '../support/repo.js';

const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A machine: its own config dir and fingerprint. */
interface Machine {
  home: string;
  env: NodeJS.ProcessEnv;
}

const dirs: string[] = [];
function machine(api: string, extra: NodeJS.ProcessEnv = {}): Machine {
  const home = mkdtempSync(join(tmpdir(), 'tb-cli-'));
  dirs.push(home);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, 'config'), TB_API: api, TB_FINGERPRINT: `fp-${Math.random().toString(36).slice(2)}-cli`, ...extra };
  return { home, env };
}

/**
 * As root, `asNobody` runs the CLI as uid/gid 65534 in a user namespace
 * (unshare --map-user): inside it the program is not root and has no
 * capabilities, while its files are still opened with the credentials of the
 * user who owns the checkout, so the test works wherever the checkout lies
 * (under /root, in a 0700 directory). A plain setuid to 65534 could not read
 * a checkout that user cannot traverse.
 */
function cli(m: Machine, args: string[], o: { input?: string; env?: NodeJS.ProcessEnv; asNobody?: boolean } = {}): Promise<Run> {
  const argv = [process.execPath, TB, ...args];
  if (o.asNobody && process.getuid?.() === 0) argv.unshift('unshare', '--user', '--map-user=65534', '--map-group=65534');
  return new Promise((resolve) => {
    const child = execFile(argv[0]!, argv.slice(1), { env: { ...m.env, ...o.env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin!.end(o.input ?? '');
  });
}

const tokenFile = (m: Machine) => join(m.env.XDG_CONFIG_HOME!, 'tunnelbyte', 'token');
const ok = (r: Run) => assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
const fails = (r: Run, re: RegExp) => {
  assert.notEqual(r.code, 0, `expected a failure\nstdout: ${r.stdout}`);
  assert.match(r.stderr, re);
};

describe('tunnelbyte customer CLI over HTTP', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    h.control.regions.add('vip', { paidOnly: true });
  });
  after(async () => {
    await h.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('token without signup says how to get one', async () => {
    const m = machine(h.url);
    const r = await cli(m, ['token']);
    fails(r, /no token[\s\S]*tunnelbyte signup/);
    assert.equal(r.stdout, '');
  });

  it('signup caches a 0600 token in a 0700 dir; token prints it alone; signup again keeps it', async () => {
    const m = machine(h.url);
    const s = await cli(m, ['signup']);
    ok(s);
    assert.match(s.stdout, /signed up: account acc_\S+ \(anonymous\)/);
    const file = tokenFile(m);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(m.env.XDG_CONFIG_HOME!, 'tunnelbyte')).mode & 0o777, 0o700);
    const t = await cli(m, ['token']);
    ok(t);
    assert.match(t.stdout, /^tb_[A-Za-z0-9_-]{40,}\n$/, 'the token and a newline, nothing else');
    assert.equal(t.stdout, readFileSync(file, 'utf8'));
    assert.equal(t.stderr, '');
    const again = await cli(m, ['signup']);
    ok(again);
    assert.match(again.stdout, /already signed up/);
    assert.equal(readFileSync(file, 'utf8'), t.stdout, 'the token is unchanged');
    const forced = await cli(m, ['signup', '--force', '--json']);
    ok(forced);
    const j = JSON.parse(forced.stdout);
    assert.equal(j.tier, 'anonymous');
    assert.equal(j.token, undefined, '--json of signup does not print the token');
    assert.notEqual(readFileSync(file, 'utf8'), t.stdout, '--force replaces it');
  });

  it('token --rotate replaces the cached token (the old one is refused); token --revoke and logout end it and remove the cache', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    const before = readFileSync(tokenFile(m), 'utf8').trim();
    const rot = await cli(m, ['token', '--rotate']);
    ok(rot);
    const after = readFileSync(tokenFile(m), 'utf8').trim();
    assert.equal(rot.stdout, after + '\n', 'prints the new token alone');
    assert.notEqual(after, before);
    assert.equal(statSync(tokenFile(m)).mode & 0o777, 0o600);
    fails(await cli(m, ['usage'], { env: { TB_KEY: before } }), /invalid bearer token/);
    ok(await cli(m, ['usage']));
    const rev = await cli(m, ['token', '--revoke']);
    ok(rev);
    assert.match(rev.stdout, /token tok_\S+ revoked; .*token removed/);
    assert.throws(() => statSync(tokenFile(m)), /ENOENT/);
    fails(await cli(m, ['usage'], { env: { TB_KEY: after } }), /invalid bearer token/);
    ok(await cli(m, ['signup']));
    ok(await cli(m, ['logout']));
    fails(await cli(m, ['logout']), /no token/);
  });

  it('TB_KEY overrides the cached token, and a bad one is an API error that names TB_KEY', async () => {
    const a = machine(h.url);
    const b = await h.signup(a.env.TB_FINGERPRINT); // the machine's account, made over the API first
    ok(await cli(a, ['signup'])); // same machine → same account (and b's older token is revoked)
    const other = await h.signup(); // a different machine's account
    const tok = await cli(a, ['token'], { env: { TB_KEY: 'tb_from_env' } });
    assert.equal(tok.stdout, 'tb_from_env\n');
    const u = await cli(a, ['usage', '--json'], { env: { TB_KEY: other.token, TB_FINGERPRINT: other.fingerprint } });
    ok(u);
    assert.equal(JSON.parse(u.stdout).account_id, other.accountId);
    const mine = await cli(a, ['usage', '--json']);
    assert.equal(JSON.parse(mine.stdout).account_id, b.accountId);
    fails(await cli(a, ['usage'], { env: { TB_KEY: 'tb_not-a-real-token' } }), /invalid bearer token\n.*TB_KEY/);
  });

  it('the fingerprint goes on every request: an anonymous token from another machine is refused', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    fails(await cli(m, ['usage'], { env: { TB_FINGERPRINT: 'fp-some-other-machine' } }), /another machine[\s\S]*signup/);
  });

  it('the fingerprint is the SHA-256 of the machine-id file, or of a random id kept 0600 beside the token', () => {
    const d = mkdtempSync(join(tmpdir(), 'tb-fp-'));
    dirs.push(d);
    const idFile = join(d, 'machine-id');
    writeFileSync(idFile, '0123456789abcdef0123456789abcdef\n');
    const fp = machineFingerprint({}, join(d, 'cfg'), [idFile]);
    assert.equal(fp, createHash('sha256').update('0123456789abcdef0123456789abcdef\n').digest('hex'));
    assert.ok(!fp.includes('0123456789abcdef'));
    const cfg = join(d, 'cfg2');
    const r1 = machineFingerprint({}, cfg, [join(d, 'missing')]);
    assert.match(r1, /^[0-9a-f]{64}$/);
    assert.equal(machineFingerprint({}, cfg, [join(d, 'missing')]), r1, 'stable');
    assert.equal(statSync(join(cfg, 'machine-id')).mode & 0o777, 0o600);
    assert.equal(machineFingerprint({ TB_FINGERPRINT: 'fixed-fp-123' }, cfg), 'fixed-fp-123');
  });

  it('regions: a table, and --json is the API response', async () => {
    const m = machine(h.url);
    const r = await cli(m, ['regions']);
    ok(r);
    assert.match(r.stdout, /^REGION\s+NAME\s+ACCESS\s+NODES\n/);
    assert.match(r.stdout, /^local\s+local\s+free\s+1$/m);
    const j = await cli(m, ['regions', '--json']);
    ok(j);
    assert.deepEqual(JSON.parse(j.stdout), (await h.request('GET', '/v1/regions')).json);
  });

  it('usage: table and JSON; without a token it says to sign up', async () => {
    const m = machine(h.url);
    fails(await cli(m, ['usage']), /no token[\s\S]*tunnelbyte signup/);
    ok(await cli(m, ['signup']));
    const r = await cli(m, ['usage']);
    ok(r);
    assert.match(r.stdout, /^tier\s+anonymous$/m);
    assert.match(r.stdout, /^sessions\s+0 of 1 active$/m);
    const j = JSON.parse((await cli(m, ['usage', '--json'])).stdout);
    assert.equal(j.tier, 'anonymous');
    assert.equal(j.sessions.limit, 1);
  });

  it('connect --config-only writes a 0600 wg-quick file with a key made locally; limits are 403s with the paid tier named', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    const file = join(m.home, 'phone.conf');
    const r = await cli(m, ['connect', '--config-only', file, '--region', 'local']);
    ok(r);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const conf = readFileSync(file, 'utf8');
    const priv = /^PrivateKey = (\S+)$/m.exec(conf)?.[1];
    assert.ok(priv, conf);
    assert.match(conf, /^Address = 10\.64\.\d+\.\d+\/32, fd00:64::[0-9a-f]+\/128$/m);
    assert.match(conf, /^Endpoint = vpn\.example\.test:51820$/m);
    assert.doesNotMatch(conf, /^# PrivateKey/m);
    // the exit has the peer of the locally made key; the server never saw the private key
    assert.ok(h.dataPlane.peers.has(publicKeyOf(priv)));
    assert.ok(!JSON.stringify(h.control.store.db.prepare('SELECT * FROM sessions').all()).includes(priv));
    const id = /session (ses_\S+)/.exec(r.stderr)?.[1];
    assert.ok(id, r.stderr);

    // the anonymous tier has one session: the next one is a 403 that says what paid allows
    fails(await cli(m, ['connect', '--config-only']), /session limit of the anonymous tier[\s\S]*paid tier allows 5 active sessions, every region/);
    fails(await cli(m, ['connect', '--config-only', '--region', 'vip']), /region vip is for paid accounts[\s\S]*tunnelbyte upgrade/);

    // sessions lists it, status ID shows it
    const ls = await cli(m, ['sessions']);
    ok(ls);
    assert.match(ls.stdout, new RegExp(`^${id}\\s+local\\s+active\\s`, 'm'));
    assert.deepEqual(JSON.parse((await cli(m, ['sessions', '--json'])).stdout).sessions.map((s: { id: string }) => s.id), [id]);
    const st = await cli(m, ['status', id!, '--json']);
    ok(st);
    assert.equal(JSON.parse(st.stdout).session.id, id);
    assert.equal(JSON.parse(st.stdout).connected, false);
    fails(await cli(m, ['status', 'ses_doesnotexist']), /^tunnelbyte: no such session\n$/);

    // disconnect ID closes it; then --qr prints a QR code of a new config
    const d = await cli(m, ['disconnect', id!]);
    ok(d);
    assert.match(d.stdout, new RegExp(`closed session ${id}`));
    assert.ok(!h.dataPlane.peers.has(publicKeyOf(priv)));
    const qr = await cli(m, ['connect', '--qr']);
    ok(qr);
    assert.ok(qr.stdout.split('\n').length > 20 && /[▀▄█]/.test(qr.stdout), qr.stdout.slice(0, 200));
    assert.doesNotMatch(qr.stdout, /PrivateKey/, 'only the QR code on stdout');
  });

  it('connect --config-only --json parses and carries the config with the private key', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    const r = await cli(m, ['connect', '--config-only', '--json']);
    ok(r);
    const j = JSON.parse(r.stdout);
    const priv = /^PrivateKey = (\S+)$/m.exec(j.config)?.[1];
    assert.equal(publicKeyOf(priv!), j.client.public_key);
    ok(await cli(m, ['disconnect', j.id]));
  });

  it('status and disconnect without a connection say "not connected"', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    const s = await cli(m, ['status']);
    ok(s);
    assert.match(s.stdout, /^not connected/);
    assert.deepEqual(JSON.parse((await cli(m, ['status', '--json'])).stdout), { connected: false, session: null, local: null });
    const d = await cli(m, ['disconnect']);
    ok(d);
    assert.match(d.stdout, /^not connected/);
  });

  it('connect (the tunnel) needs root and says so before creating anything', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    // as nobody the token comes from TB_KEY, as with sudo
    const tok = readFileSync(tokenFile(m), 'utf8').trim();
    const r = await cli(m, ['connect'], { asNobody: true, env: { TB_KEY: tok, XDG_CONFIG_HOME: join(m.home, 'nobody') } });
    fails(r, /connect needs root[\s\S]*sudo tunnelbyte connect[\s\S]*--config-only/);
    const sessions = await h.request('GET', '/v1/sessions', { token: tok, fingerprint: m.env.TB_FINGERPRINT });
    assert.deepEqual(sessions.json.sessions, [], 'no session was created');
  });

  it('ip ADDR: an exit address, another address, a malformed one', async () => {
    const m = machine(h.url);
    const r = await cli(m, ['ip', NODE_EXIT]);
    ok(r);
    assert.match(r.stdout, new RegExp(`^${NODE_EXIT.replace(/\./g, '\\.')} is an exit address of this service: region local, node ${h.node.id}`));
    const no = await cli(m, ['ip', '192.0.2.200', '--json']);
    ok(no);
    assert.equal(JSON.parse(no.stdout).exit, false);
    fails(await cli(m, ['ip', 'not-an-address']), /^tunnelbyte: .*address/);
  });

  it('an unreachable server is named, with --api and TB_API', async () => {
    // a port that was free a moment ago: nothing listens there
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const m = machine(`http://127.0.0.1:${port}`);
    fails(await cli(m, ['regions']), new RegExp(`cannot reach the tunnelbyte API at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)\n.*--api`));
    const viaFlag = await cli(m, ['regions', '--api', h.url]);
    ok(viaFlag);
  });

  it('upgrade without billing is the 503 message; a paid account gets credentials; login from another machine', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    fails(await cli(m, ['upgrade', '--email', 'dana@example.test', '--password-stdin'], { input: 'dana-password\n' }), /billing is not configured/);
    fails(await cli(m, ['upgrade', '--email', 'dana@example.test']), /no password: stdin is not a terminal\n.*--password-stdin/);
    const acct = JSON.parse((await cli(m, ['usage', '--json'])).stdout).account_id as string;
    makePaid(h, acct);
    const up = await cli(m, ['upgrade', '--email', 'dana@example.test', '--password-stdin'], { input: 'dana-password\n' });
    ok(up);
    assert.match(up.stdout, /is paid already; email dana@example\.test set/);

    const other = machine(h.url);
    fails(await cli(other, ['login', '--email', 'dana@example.test', '--password-stdin'], { input: 'wrong-password\n' }), /wrong email or password/);
    const li = await cli(other, ['login', '--email', 'dana@example.test', '--password-stdin', '--json'], { input: 'dana-password\n' });
    ok(li);
    assert.equal(JSON.parse(li.stdout).account_id, acct);
    assert.equal(statSync(tokenFile(other)).mode & 0o777, 0o600);
    const u = JSON.parse((await cli(other, ['usage', '--json'])).stdout);
    assert.equal(u.tier, 'paid');
    assert.equal(u.account_id, acct);
  });

  it('login of an unpaid account is a 403 that says to finish the payment', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    // credentials are only set by an upgrade; an unknown email is a 401 like a wrong password
    fails(await cli(m, ['login', '--email', 'nobody@example.test', '--password-stdin'], { input: 'whatever-123\n' }), /wrong email or password/);
  });

  it('error lines: 429 says when to retry; 403 for a tier names the paid tier', () => {
    const lines = describeError(new ApiError(429, 'too many requests; retry in 90 s', 90), { now: Date.UTC(2026, 0, 1) });
    assert.deepEqual(lines, ['tunnelbyte: too many requests; retry in 90 s', 'retry in 90 s (after 2026-01-01T00:01:30Z)']);
    assert.equal(humanDuration(3 * 86400 + 7200), '3 d 2 h');
    assert.equal(withPrivateKey('[Interface]\n# PrivateKey = the private key of X (kept on the client; add it here)\nAddress = a\n', 'K='), '[Interface]\nPrivateKey = K=\nAddress = a\n');
  });
});

describe('tunnelbyte customer CLI: rate limits', () => {
  let h: Harness;
  before(async () => {
    // one signup per source per hour: a window no slow CLI start-up on a loaded machine can outlast
    h = await startHarness({ config: { signupLimit: { perSource: 1, windowSeconds: 3600 } } });
  });
  after(() => h.close());

  it('a 429 prints the API message and when to retry', async () => {
    const m = machine(h.url);
    ok(await cli(m, ['signup']));
    const r = await cli(m, ['signup', '--force']);
    fails(r, /^tunnelbyte: too many signups.*\nretry in \d+ (s|min) \(after \d{4}-\d\d-\d\dT/);
  });

});

describe('tunnelbyte customer CLI: quota', () => {
  let h: Harness;
  // a harness of its own: the one above allows one signup per hour
  before(async () => {
    h = await startHarness({ config: { tiers: { anonymous: { quotaBytes: 1000 } } } });
  });
  after(() => h.close());

  it('an exhausted quota: connect is a 429 with the time of the reset', async () => {
    const a = await h.signup();
    const created = await h.request('POST', '/v1/sessions', { token: a.token, fingerprint: a.fingerprint, body: { region: 'local' } });
    h.dataPlane.traffic(created.json.client.public_key, 600, 600);
    h.agent.sync();
    await h.request('DELETE', `/v1/sessions/${created.json.id}`, { token: a.token, fingerprint: a.fingerprint });
    const m = machine(h.url, { TB_KEY: a.token, TB_FINGERPRINT: a.fingerprint });
    fails(await cli(m, ['connect', '--config-only', '--region', 'local']), /quota of this period is used up[\s\S]*retry in \d+ (d|h|min)/);
  });
});

describe('tunnelbyte upgrade --wait with Stripe Checkout', () => {
  let h: Harness;
  let stripe: Server;
  before(async () => {
    stripe = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: 'cs_test_cli', object: 'checkout.session', mode: 'subscription', url: 'https://checkout.stripe.test/c/pay/cs_test_cli' }));
      });
    });
    await new Promise<void>((r) => stripe.listen(0, '127.0.0.1', r));
    const port = (stripe.address() as AddressInfo).port;
    h = await startHarness({ config: { billing: { secretKey: 'sk_test_fake', webhookSecret: 'whsec_x', apiHost: { host: '127.0.0.1', port, protocol: 'http' } } } });
  });
  after(async () => {
    await h.close();
    stripe.closeAllConnections();
    await new Promise<void>((r) => stripe.close(() => r()));
  });

  it('prints the checkout URL and returns once the account is paid', async () => {
    const m = machine(h.url, { TB_POLL_MS: '100' });
    ok(await cli(m, ['signup']));
    const acct = JSON.parse((await cli(m, ['usage', '--json'])).stdout).account_id as string;
    const waiting = cli(m, ['upgrade', '--email', 'erin@example.test', '--password-stdin', '--wait'], { input: 'erin-password\n' });
    // the account becomes paid the way Stripe's webhook would make it, a moment later
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(JSON.parse((await cli(m, ['usage', '--json'])).stdout).tier, 'anonymous', 'still waiting for payment');
    makePaid(h, acct);
    const r = await waiting;
    ok(r);
    assert.match(r.stdout, /pay at:\n  https:\/\/checkout\.stripe\.test\/c\/pay\/cs_test_cli\n/);
    assert.match(r.stdout, /is paid: 5 sessions, all regions, no data cap/);
    assert.match(r.stderr, /waiting for the payment/);
  });

  it('--wait gives up after --timeout', async () => {
    const m = machine(h.url, { TB_POLL_MS: '100' });
    ok(await cli(m, ['signup']));
    fails(await cli(m, ['upgrade', '--email', 'finn@example.test', '--password-stdin', '--wait', '--timeout', '1'], { input: 'finn-password\n' }), /not been confirmed yet/);
  });
});
