/**
 * `tunnelbyte control` (issue 16, roles): the API and the store with no data
 * plane, as its own process on a fresh data directory — no root, no TUN.
 * An exit node enrolls over HTTP with a token from `tunnelbyte admin node
 * token` and sessions are placed on it.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';
import { NodeChannelClient, NodeChannelError, type PublishedPeer } from '../../src/server/node-channel-client.js';
import { REPO_ROOT } from '../support/repo.js';

const run = promisify(execFile);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const env = { ...process.env, TB_DATA: '', TB_API_LISTEN: '', TB_METRICS_LISTEN: '' };

async function tb(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [TB, ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** Starts `tunnelbyte control` and resolves with its API URL from the start record. */
function startControl(dir: string, extra: string[] = []): Promise<{ child: ChildProcess; api: string; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [TB, 'control', '--data', dir, '--api-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--sync-interval', '1', ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`control did not start: ${out}${err}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('tunnelbyte control plane running')) continue;
        clearTimeout(timer);
        resolve({ child, api: (JSON.parse(line) as { api: string }).api, exit });
      }
    });
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`control exited ${code}: ${out}${err}`));
    });
  });
}

describe('tunnelbyte control', () => {
  let dir: string;
  let control: Awaited<ReturnType<typeof startControl>>;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-control-cmd-'));
    rmSync(dir, { recursive: true }); // a data directory that does not exist yet
    control = await startControl(join(dir, 'state'));
  });
  after(async () => {
    if (control.child.exitCode === null) {
      control.child.kill('SIGKILL');
      await control.exit;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts on a fresh data directory with no data plane; an enrolled node takes the sessions', async () => {
    const data = join(dir, 'state');
    assert.ok(existsSync(join(data, 'tunnelbyte.db')));
    assert.ok(!existsSync(join(data, 'server.key')), 'no WireGuard key: no data plane');
    assert.deepEqual(await (await fetch(`${control.api}/v1/health`)).json(), { ok: true });
    assert.deepEqual(await (await fetch(`${control.api}/v1/regions`)).json(), { regions: [] }, 'no node, no region');

    const second = await tb('control', '--data', data, '--api-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0');
    assert.equal(second.code, 1);
    assert.match(second.stderr, /^tunnelbyte control: .*is using this data directory/);

    const token = (await tb('admin', '--data', data, 'node', 'token', '--region', 'eu-west')).stdout.trim();
    const nodeKey = generateKeyPair().publicKey;
    const enroll = await fetch(`${control.api}/v1/nodes/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, public_key: nodeKey, endpoint: '192.0.2.10:51820', exit_addresses: ['192.0.2.10'], pool4: '10.70.0.0/16' }),
    });
    assert.equal(enroll.status, 201);
    const regions = (await (await fetch(`${control.api}/v1/regions`)).json()) as { regions: { id: string; nodes: number }[] };
    assert.deepEqual(regions.regions.map((r) => [r.id, r.nodes]), [['eu-west', 1]]);

    const signup = await fetch(`${control.api}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fingerprint: 'control-test-machine' }) });
    const { token: bearer } = (await signup.json()) as { token: string };
    const session = await fetch(`${control.api}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}`, 'x-tb-fingerprint': 'control-test-machine' },
      body: JSON.stringify({ region: 'eu-west' }),
    });
    assert.equal(session.status, 201);
    const s = (await session.json()) as { node: string; exit: { public_key: string; endpoint: string }; client: { addresses: string[] } };
    assert.equal(s.exit.public_key, nodeKey);
    assert.equal(s.exit.endpoint, '192.0.2.10:51820');
    assert.equal(s.client.addresses[0], '10.70.0.2/32');

    control.child.kill('SIGTERM');
    assert.equal(await control.exit, 0);
    assert.ok(!existsSync(join(data, 'tunnelbyte.lock')), 'the lock is released');
  });

  it('--node-timeout: a node silent for that long is down (region unlisted, 503), a heartbeat brings it back', async () => {
    const bad = await tb('control', '--data', join(dir, 'timeout'), '--node-timeout', '1', '--api-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--node-timeout must be 3\.\.3600 seconds/);
    const c = await startControl(join(dir, 'timeout'), ['--node-timeout', '3']);
    try {
      const token = (await tb('admin', '--data', join(dir, 'timeout'), 'node', 'token', '--region', 'eu-north')).stdout.trim();
      const enroll = await fetch(`${c.api}/v1/nodes/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token, public_key: generateKeyPair().publicKey, endpoint: '192.0.2.11:51820', exit_addresses: ['192.0.2.11'], pool4: '10.71.0.0/16' }),
      });
      assert.equal(enroll.status, 201);
      const { node, credential } = (await enroll.json()) as { node: { id: string }; credential: string };
      const enrolledAt = Date.now();
      const regions = async () => ((await (await fetch(`${c.api}/v1/regions`)).json()) as { regions: { id: string }[] }).regions.map((r) => r.id);
      const signup = await fetch(`${c.api}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fingerprint: 'timeout-machine' }) });
      const { token: bearer } = (await signup.json()) as { token: string };
      const create = () => fetch(`${c.api}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}`, 'x-tb-fingerprint': 'timeout-machine' },
        body: JSON.stringify({ region: 'eu-north' }),
      });
      // Within the timeout the node is up (checked only while it surely is: a loaded machine may be slow to get here).
      if (Date.now() - enrolledAt < 2_000) assert.deepEqual(await regions(), ['eu-north']);
      await new Promise((r) => setTimeout(r, Math.max(0, enrolledAt + 3_500 - Date.now())));
      assert.deepEqual(await regions(), [], 'no heartbeat for 3 s: the node is down and its region unlisted');
      const active = async (...flag: string[]) => {
        const r = await tb('admin', '--data', join(dir, 'timeout'), ...flag, '--json', 'node', 'list');
        assert.equal(r.code, 0, r.stderr);
        return (JSON.parse(r.stdout) as { active: boolean }[]).map((n) => n.active);
      };
      assert.deepEqual(await active('--node-timeout', '3'), [false], 'admin node list with the server\'s timeout agrees');
      assert.deepEqual(await active(), [true], 'with the default 60 s the node still counts as active');
      assert.match((await tb('admin', '--data', join(dir, 'timeout'), '--node-timeout', '2', 'node', 'list')).stderr, /--node-timeout must be 3\.\.3600 seconds/);
      const refused = await create();
      assert.equal(refused.status, 503);
      assert.match(((await refused.json()) as { error: string }).error, /no active node/);
      const beat = await fetch(`${c.api}/v1/nodes/${node.id}/heartbeat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
        body: JSON.stringify({ exit_addresses: ['192.0.2.11'] }),
      });
      assert.equal(beat.status, 200);
      assert.deepEqual(await regions(), ['eu-north'], 'a heartbeat: up again');
      assert.equal((await create()).status, 201);
    } finally {
      c.child.kill('SIGTERM');
      await c.exit;
    }
  });
  it("the peer channel across processes: `admin session close` and `admin node drain`/`revoke` in another process reach the node's stream within a tick", async () => {
    const data = join(dir, 'channel');
    const c = await startControl(data);
    const ac = new AbortController();
    try {
      const token = (await tb('admin', '--data', data, 'node', 'token', '--region', 'eu-south')).stdout.trim();
      const enroll = await fetch(`${c.api}/v1/nodes/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token, public_key: generateKeyPair().publicKey, endpoint: '192.0.2.12:51820', exit_addresses: ['192.0.2.12'], pool4: '10.72.0.0/16' }),
      });
      const { node, credential } = (await enroll.json()) as { node: { id: string }; credential: string };
      const signup = await fetch(`${c.api}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fingerprint: 'channel-machine' }) });
      const { token: bearer } = (await signup.json()) as { token: string };
      const created = await fetch(`${c.api}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}`, 'x-tb-fingerprint': 'channel-machine' },
        body: JSON.stringify({ region: 'eu-south' }),
      });
      assert.equal(created.status, 201);
      const session = (await created.json()) as { id: string };

      const peers = new Map<string, PublishedPeer>();
      let held = -1;
      const client = new NodeChannelClient({ url: `${c.api}/v1`, nodeId: node.id, credential, backoff: { initialMs: 50, maxMs: 200 } });
      const done = client.stream({
        onSnapshot: (snap) => {
          peers.clear();
          for (const p of snap.peers) peers.set(p.publicKey, p);
          held = snap.revision;
        },
        onPeer: (revision, change) => {
          if (change.op === 'add') peers.set(change.peer.publicKey, change.peer);
          else peers.delete(change.publicKey);
          held = revision;
        },
        signal: ac.signal,
      });
      done.catch(() => undefined);
      const until = async (cond: () => boolean, what: string) => {
        const deadline = Date.now() + 15_000;
        while (!cond()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await until(() => held === 1 && [...peers.values()].some((p) => p.sessionId === session.id), 'the session in the snapshot');
      assert.equal((await tb('admin', '--data', data, 'node', 'drain', node.id)).code, 0);
      await new Promise((r) => setTimeout(r, 2_500)); // two ticks (--sync-interval 1)
      assert.deepEqual([held, peers.size], [1, 1], 'draining keeps the node\'s peers');
      assert.equal((await tb('admin', '--data', data, 'session', 'close', session.id)).code, 0);
      await until(() => held === 2 && peers.size === 0, 'the close made by another process');
      assert.equal((await tb('admin', '--data', data, 'node', 'revoke', node.id)).code, 0);
      await assert.rejects(done, (e: unknown) => e instanceof NodeChannelError && e.status === 401, 'the stream ended at the tick; the reconnect is refused');
    } finally {
      ac.abort();
      c.child.kill('SIGTERM');
      await c.exit;
    }
  });
});
