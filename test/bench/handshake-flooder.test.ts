// The flooder of `npm run bench -- --flood` (bench/handshake-flooder.cc) must
// send what it claims: handshake initiations whose mac1 is valid for the
// server's key, checked here by the project's own CookieChecker (noble, the
// reference backend), each one
// different. A flooder with a wrong mac1 would measure nothing but the cheap
// first drop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { buildFlooder } from '../../bench/flood.js';
import { nobleBackend } from '../../src/crypto/backend.js';
import { CookieChecker } from '../../src/protocol/cookie.js';
import { Initiation, MSG_INITIATION } from '../../src/protocol/messages.js';
import { systemRandom } from '../../src/protocol/random.js';

const skip = spawnSync('sh', ['-c', 'command -v g++']).status === 0 ? false : 'needs g++ (.ci/run installs it)';

test('every emitted initiation carries a valid mac1 for the server key, no mac2, and a distinct sender index and ephemeral', { skip }, () => {
  const flooder = buildFlooder();
  const serverKey = new Uint8Array(randomBytes(32));
  const otherKey = new Uint8Array(randomBytes(32));
  const lines = execFileSync(flooder, ['emit', Buffer.from(serverKey).toString('hex'), '500'], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(lines.length, 500);
  const ours = new CookieChecker(serverKey, systemRandom, nobleBackend);
  const theirs = new CookieChecker(otherKey, systemRandom, nobleBackend);
  const senders = new Set<number>();
  const ephemerals = new Set<string>();
  for (const line of lines) {
    const msg = new Uint8Array(Buffer.from(line, 'hex'));
    assert.equal(msg.length, Initiation.SIZE);
    assert.equal(msg[0], MSG_INITIATION);
    assert.deepEqual([...msg.subarray(1, 4)], [0, 0, 0]);
    assert.ok(ours.checkMac1(msg, 0, msg.length), 'valid mac1 for the server key');
    assert.ok(!theirs.checkMac1(msg, 0, msg.length), 'not valid for another key');
    assert.ok(msg.subarray(Initiation.MAC2, Initiation.SIZE).every((b) => b === 0), 'mac2 empty: no cookie held');
    senders.add(Buffer.from(msg).readUInt32LE(Initiation.SENDER));
    ephemerals.add(Buffer.from(msg.subarray(Initiation.EPHEMERAL, Initiation.EPHEMERAL + 32)).toString('hex'));
    msg[Initiation.EPHEMERAL] ^= 1;
    assert.ok(!ours.checkMac1(msg, 0, msg.length), 'mac1 covers the message');
  }
  assert.equal(senders.size, 500);
  assert.equal(ephemerals.size, 500);
});

test('the flooder refuses malformed arguments instead of flooding somewhere unintended', { skip }, () => {
  const flooder = buildFlooder();
  for (const args of [['flood', 'not-an-ip', '51820', '00'.repeat(32), '10', '1', '10'], ['flood', '127.0.0.1', '51820', 'abc', '10', '1', '10'], ['emit', '00'.repeat(31), '1'], []]) {
    const r = spawnSync(flooder, args, { encoding: 'utf8' });
    assert.notEqual(r.status, 0, args.join(' '));
  }
});

test('flood to a loopback socket from four addresses stops at its count bound and reports what it sent', { skip }, async () => {
  const flooder = buildFlooder();
  const { createSocket } = await import('node:dgram');
  const sock = createSocket('udp4');
  let received = 0;
  const sources = new Set<string>();
  sock.on('message', (m, from) => {
    if (m.length === Initiation.SIZE) received++;
    sources.add(from.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const port = sock.address().port;
  const out = await new Promise<string>((resolve, reject) => {
    import('node:child_process').then(({ execFile }) =>
      // four sources, 127.0.0.10-13 (every 127/8 address is the loopback's), in turn per batch of two
      execFile(flooder, ['flood', '127.0.0.1', String(port), '11'.repeat(32), '2000', '10', '300', '4', '127.0.0.10'], { timeout: 15_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
  });
  const report = JSON.parse(out) as { sent: number; seconds: number; errors: number };
  assert.equal(report.sent, 300, 'stops at MAX_COUNT');
  assert.ok(report.seconds < 10, 'before its time bound');
  // what the kernel queued for the socket is read as the event loop turns: wait for it (bounded), not a fixed 200 ms
  for (const until = Date.now() + 10_000; sources.size < 4 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
  sock.close();
  assert.ok(received > 0 && received <= 300, `received ${received}`);
  assert.deepEqual([...sources].sort(), ['127.0.0.10', '127.0.0.11', '127.0.0.12', '127.0.0.13'], 'the batches come from the four addresses in turn');
});
