// The exit's DataPlane on the API's side of the device channel, against a recording channel:
// arguments checked at the call, one message per turn of changes, counters after every change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { CounterRow, DeviceMessage, DeviceWorker } from '../../src/server/device-channel.js';
import { WorkerDataPlane } from '../../src/server/worker-data-plane.js';

const key = () => randomBytes(32).toString('base64');

function recordingChannel(rows: CounterRow[]) {
  const log: (DeviceMessage | { op: 'counters' | 'figures' | 'close' })[] = [];
  const channel = {
    post: (m: DeviceMessage) => log.push(structuredClone(m)),
    request: (op: 'counters') => {
      log.push({ op });
      return rows;
    },
  };
  return { log, worker: channel as unknown as DeviceWorker };
}

test('changes of one turn cross as one message, in order; a counters request sends what is queued first', async () => {
  const own = key();
  const [a, b, c] = [key(), key(), key()];
  const { log, worker } = recordingChannel([[a, 10, 20, 0], [b, 1, 2, 1_790_000_000_000]]);
  const dp = new WorkerDataPlane(worker, own);
  dp.addPeer({ publicKey: a, allowedIps: ['10.64.0.2/32'] });
  dp.addPeer({ publicKey: b, allowedIps: ['10.64.0.3/32', 'fd00::3/128'] });
  dp.removePeer(c);
  assert.equal(log.length, 0, 'nothing crosses before the turn ends');
  await Promise.resolve();
  assert.deepEqual(log, [
    {
      op: 'peers',
      changes: [
        { op: 'add', spec: { publicKey: a, allowedIps: ['10.64.0.2/32'] } },
        { op: 'add', spec: { publicKey: b, allowedIps: ['10.64.0.3/32', 'fd00::3/128'] } },
        { op: 'remove', publicKey: c },
      ],
    },
  ]);

  log.length = 0;
  dp.removePeer(a);
  const counters = dp.readCounters();
  assert.deepEqual(log, [{ op: 'peers', changes: [{ op: 'remove', publicKey: a }] }, { op: 'counters' }], 'the removal reaches the device before the counters are read');
  assert.deepEqual(counters.get(a), { rxBytes: 10, txBytes: 20, lastHandshakeMs: null });
  assert.deepEqual(counters.get(b), { rxBytes: 1, txBytes: 2, lastHandshakeMs: 1_790_000_000_000 });
  await Promise.resolve();
  assert.equal(log.length, 2, 'the queue was sent once, not again at the end of the turn');
});

test('a malformed key or prefix, or the exit\'s own key, throws at the call and nothing is queued', async () => {
  const own = key();
  const { log, worker } = recordingChannel([]);
  const dp = new WorkerDataPlane(worker, own);
  assert.throws(() => dp.addPeer({ publicKey: 'not-a-key', allowedIps: ['10.64.0.2/32'] }), TypeError);
  assert.throws(() => dp.addPeer({ publicKey: key(), allowedIps: ['10.64.0.2'] }), TypeError);
  assert.throws(() => dp.addPeer({ publicKey: own, allowedIps: ['10.64.0.2/32'] }), RangeError);
  assert.throws(() => dp.removePeer('AAAA'), TypeError);
  await Promise.resolve();
  assert.deepEqual(log, []);
});
