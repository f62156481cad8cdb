/**
 * Property: under any sequence of session creations and closings, the
 * addresses of active sessions of a node are distinct, inside the node's
 * pools, never the network, exit or broadcast address, and the allocator
 * hands out the lowest free one (compared with a slow reference model).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../src/protocol/clock.js';
import { controlConfig } from '../../src/control/config.js';
import { createControlPlane } from '../../src/control/control-plane.js';
import { ControlError } from '../../src/control/errors.js';
import { cidrContains, parseCidr } from '../../src/control/ip-address.js';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';

describe('address allocation (property)', () => {
  it('active addresses are unique, in the pool, lowest-free, and a full pool is a 503', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant({ op: 'open' as const }), fc.record({ op: fc.constant('close' as const), pick: fc.nat() })), { maxLength: 40 }),
        (ops) => {
          const control = createControlPlane({
            dbPath: ':memory:',
            clock: new ManualClock(0),
            config: controlConfig({ tiers: { paid: { maxSessions: 1000 } } }),
          });
          try {
            const pool4 = '10.9.0.0/28'; // offsets 2..14: 13 client addresses
            const pool6 = 'fd09::/120';
            const { node } = control.nodes.register({ regionId: 'r', publicKey: generateKeyPair().publicKey, endpoint: 'x:1', exitAddresses: [], pool4, pool6 });
            const { account } = control.accounts.signup('fingerprint-prop');
            control.accounts.setTier(account.id, 'paid');
            const paid = control.accounts.get(account.id);
            const model = new Set<number>(); // reference: held offsets
            const open: { id: string; offset: number }[] = [];
            for (const o of ops) {
              if (o.op === 'open') {
                let expected = -1;
                for (let off = 2; off <= 14; off++) if (!model.has(off)) { expected = off; break; }
                try {
                  const c = control.sessions.create(paid, { regionId: 'r' });
                  assert.equal(c.session.addressOffset, expected, 'lowest free offset');
                  model.add(expected);
                  open.push({ id: c.session.id, offset: expected });
                } catch (e) {
                  assert.ok(e instanceof ControlError && e.kind === 'unavailable', String(e));
                  assert.equal(expected, -1, 'only a full pool refuses');
                }
              } else if (open.length > 0) {
                const [victim] = open.splice(o.pick % open.length, 1);
                control.sessions.adminClose(victim!.id);
                model.delete(victim!.offset);
              }
              const active = control.store.sessions.listActiveByNode(node.id);
              const v4 = active.map((s) => s.ipv4);
              const v6 = active.map((s) => s.ipv6!);
              assert.equal(new Set(v4).size, v4.length);
              assert.equal(new Set(v6).size, v6.length);
              for (const a of v4) {
                assert.ok(cidrContains(parseCidr(pool4), a));
                assert.ok(!['10.9.0.0', '10.9.0.1', '10.9.0.15'].includes(a), a);
              }
              for (const a of v6) assert.ok(cidrContains(parseCidr(pool6), a));
            }
          } finally {
            control.close();
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
