// ≥ 1,000,000 random and mutated datagrams into an exit device in memory
// (test/support/datagram-fuzz.ts says what is generated and checked): no
// throw, nothing sent but correct cookie replies to valid-mac1 messages,
// every genuine packet delivered and nothing else, the client's endpoint
// unmoved, and drops by reason + accepted == received. Two runs: the
// handshake queue drained after every batch, and a flood-heavy one drained
// only every 50th batch, so that the queue fills and sheds before any
// cryptography. Seeds come from TB_FUZZ_SEED (default fixed); a failure names
// the seed. CPU time here: ~13 s for both (wall time grows with the load of
// the shared machine; see README "Fuzzing").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runDatagramFuzz, type FuzzResult } from '../support/datagram-fuzz.js';

const SEED = Number(process.env.TB_FUZZ_SEED ?? 20261201);

function check(r: FuzzResult): void {
  assert.deepEqual(r.violations, [], `seed ${r.seed}`);
  const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  assert.equal(sum(r.drops) + sum(r.accepted), r.received);
  assert.equal(r.accepted.data, r.genuine, 'every genuine packet was accepted as data');
  assert.equal(r.tunWrites, r.genuine);
  for (const reason of ['bad-mac1', 'handshake-failed', 'decrypt-failed', 'unknown-type', 'bad-length', 'too-short']) assert.ok((r.drops[reason] ?? 0) > 0, `the fuzz reached ${reason}`);
  console.log(`# seed ${r.seed}: ${r.received} datagrams in ${(r.ms / 1000).toFixed(1)} s; ${r.cookieReplies} cookie replies; drops ${JSON.stringify(r.drops)}`);
}

test('700,000 datagrams, the handshake queue drained after every batch', { timeout: 300_000 }, () => {
  const r = runDatagramFuzz({ count: 700_000, seed: SEED, floodPercent: 2 });
  check(r);
  assert.equal(r.cookieReplies, 0, 'the queue never filled: not under load, no cookies');
});

test('300,000 datagrams, 60 % of them valid-mac1 initiations, the queue drained every 50th batch: it goes under load and sheds before cryptography', { timeout: 300_000 }, () => {
  const r = runDatagramFuzz({ count: 300_000, seed: SEED + 1, drainEvery: 50, floodPercent: 60 });
  check(r);
  // The queue fills to 1/8 and the device goes under load; from then on each source's share is the whitepaper's
  // 20/s (handshake-queue.ts), so most of the flood is shed at the door rather than at a full queue.
  const shed = (r.drops['handshake-queue-full'] ?? 0) + (r.drops['handshake-source-limited'] ?? 0);
  assert.ok(shed > r.cookieReplies, `most valid-mac1 messages were shed before any MAC: ${shed} shed, ${r.cookieReplies} cookie replies`);
  assert.ok(r.cookieReplies > 0 && r.cookieReplies === r.drops['bad-mac2'], 'under load every valid-mac1 message without mac2 got a correct cookie reply');
});
