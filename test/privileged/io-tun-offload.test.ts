/**
 * TUN offloads (IFF_VNET_HDR, checksum offload, TSO) against the kernel, in
 * throwaway namespaces: two TUNs, one per namespace, joined by a loop in this
 * process that writes every batch read from one to the other. A TCP transfer
 * of several MB from namespace A to B must arrive intact (same SHA-256), and
 * A's stack must really have handed its TUN super-packets that the addon
 * split (stats.readGsoPackets > 0), and B's TUN must have taken them back
 * coalesced into GSO writes (stats.writeGsoPackets > 0) — over IPv4 and
 * IPv6, and with a plain TUN on the other side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PacketBatch } from '../../src/io/batch.js';
import type { LinuxTun, LinuxTunOptions } from '../../src/io/linux/tun.js';
import { Netns, privilegedSkipReason, Scope, waitFor } from '../support/netns.js';
import { icmpEchoRequest, parseEchoReply } from '../support/packets.js';

const skip = privilegedSkipReason();
const scope = new Scope();
const children = new Set<ChildProcess>();
const dir = mkdtempSync(join(tmpdir(), 'tb-offload-'));
after(() => {
  for (const c of children) c.kill('SIGKILL');
  scope.release();
  rmSync(dir, { recursive: true, force: true });
});

const netns = (tag: string): Netns => scope.netns(tag);
const tun = (opts: LinuxTunOptions): LinuxTun => scope.tun(opts);

/** Runs `node -e script` inside a namespace without blocking our event loop (which forwards the packets); resolves with its stdout. */
function nodeIn(ns: Netns, script: string, args: string[], timeoutMs = 60_000): { done: Promise<string>; stdout: () => string } {
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: ${script.slice(0, 60)}… stdout ${out} stderr ${err}`));
    }, timeoutMs);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      children.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`exit ${code ?? sig}: ${err}`));
    });
  });
  return { done, stdout: () => out };
}

const SERVER = `
const net = require('node:net'), { createHash } = require('node:crypto');
const [host, port] = process.argv.slice(1);
const srv = net.createServer((s) => {
  const h = createHash('sha256'); let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { console.log(JSON.stringify({ n, sha: h.digest('hex') })); s.end(); srv.close(); });
});
srv.listen(Number(port), host, () => console.log('listening'));
`;

const CLIENT = `
const net = require('node:net'), fs = require('node:fs');
const [host, port, file] = process.argv.slice(1);
const s = net.connect(Number(port), host, () => fs.createReadStream(file).pipe(s));
s.on('data', () => {});
s.on('close', (hadError) => process.exit(hadError ? 1 : 0));
`;

/** Namespace A (10.79.0.1, fd79::1) and B (.2, ::2), each with its TUN, forwarded into each other by this process. */
function pair(tag: string, offloadB: boolean): { a: Netns; b: Netns; ta: LinuxTun; tb: LinuxTun } {
  const a = netns(`${tag}a`);
  const b = netns(`${tag}b`);
  const ta = tun({ name: 'tbxa%d', netns: a.name, offload: true });
  const tb = tun({ name: 'tbxb%d', netns: b.name, offload: offloadB });
  for (const [ns, t, host] of [[a, ta, 1], [b, tb, 2]] as const) {
    ns.ip('addr', 'add', `10.79.0.${host}/24`, 'dev', t.name);
    ns.ip('-6', 'addr', 'add', `fd79::${host}/64`, 'dev', t.name, 'nodad');
    ns.ip('link', 'set', t.name, 'up');
  }
  ta.start((batch) => tb.write(batch), 16);
  tb.start((batch) => ta.write(batch), 16);
  return { a, b, ta, tb };
}

async function transfer(a: Netns, b: Netns, host: string, bytes: number): Promise<void> {
  const file = join(dir, `data-${host.replace(/[:.]/g, '_')}-${bytes}`);
  const data = randomBytes(bytes);
  writeFileSync(file, data);
  const server = nodeIn(b, SERVER, [host, '5201']);
  await waitFor('server listening', () => server.stdout().includes('listening'), 10_000, 10);
  await nodeIn(a, CLIENT, [host, '5201', file]).done;
  const got = JSON.parse((await server.done).split('\n').find((l) => l.startsWith('{'))!) as { n: number; sha: string };
  assert.equal(got.n, bytes, 'every byte arrived');
  assert.equal(got.sha, createHash('sha256').update(data).digest('hex'), 'intact');
}

const MB = 1024 * 1024;

for (const { label, host, offloadB } of [
  { label: 'IPv4', host: '10.79.0.2', offloadB: true },
  { label: 'IPv6', host: 'fd79::2', offloadB: true },
  { label: 'IPv4 to a TUN without offloads', host: '10.79.0.2', offloadB: false },
]) {
  test(`offload: a ${label} TCP transfer of 12 MB through two TUNs arrives intact, from TSO super-packets`, { skip: skip ?? false }, async () => {
    const { a, b, ta, tb } = pair(label.startsWith('IPv6') ? 's' : offloadB ? 'r' : 'q', offloadB);
    assert.equal(ta.offload, true, 'the kernel accepted IFF_VNET_HDR with TSO');
    assert.equal(tb.offload, offloadB);
    await transfer(a, b, host, 12 * MB);
    assert.ok(ta.stats.readGsoPackets > 0, `super-packets were read from A (${JSON.stringify(ta.stats)})`);
    assert.ok(ta.stats.readPackets > ta.stats.readGsoPackets * 2, 'and split into several segments each');
    assert.equal(ta.stats.readDropped, 0);
    assert.equal(tb.stats.readDropped, 0);
    assert.equal(tb.stats.readGsoPackets, 0, 'B only sent ACKs');
    if (offloadB) assert.ok(tb.stats.writeGsoPackets > 0, `A's segments were written to B coalesced (${JSON.stringify(tb.stats)})`);
    assert.equal(tb.stats.writeDropped + tb.stats.writeFailed, 0, 'the kernel took every write');
  });
}

test('offload: false opens a plain TUN (no IFF_VNET_HDR) that still answers a ping', { skip: skip ?? false }, async () => {
  const ns = netns('p');
  const t = tun({ name: 'tbxp%d', netns: ns.name, offload: false });
  assert.equal(t.offload, false);
  const on = tun({ name: 'tbxo%d', netns: ns.name });
  assert.equal(on.offload, true, 'on by default');
  ns.ip('addr', 'add', '10.77.0.1/24', 'dev', t.name);
  ns.ip('link', 'set', t.name, 'up');
  const replies: number[] = [];
  t.start((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const r = parseEchoReply(batch.packet(i));
      if (r) replies.push(r.seq);
    }
  }, 16);
  const req = icmpEchoRequest('10.77.0.2', '10.77.0.1', 9, 4);
  const batch = new PacketBatch(1, 2048);
  batch.offsets[0] = 16;
  batch.lengths[0] = req.length;
  batch.data.set(req, 16);
  batch.count = 1;
  t.write(batch);
  await waitFor('echo reply', () => replies.length > 0, 5000, 10);
  assert.deepEqual(replies, [4]);
});
