// RACK-TLP (RFC 8985) in the netstack's TCP sender, and the RFC 6675 duplicate-ACK rule: the rules on their
// own (rack.ts over sent-segments.ts, a manual clock) and through two netstacks on an in-memory link whose
// filter drops chosen segments, so each case is deterministic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, Link } from '../support/netstack-link.js';
import { Rack, probeTimeout, WC_DEL_ACK_T } from '../../src/netstack/tcp/rack.js';
import { SentSegments } from '../../src/netstack/tcp/sent-segments.js';
import type { TcpConnection } from '../../src/netstack/tcp/connection.js';
import { finish, pseudoHeaderSum, sumBytes } from '../../src/netstack/checksum.js';

const MSS = 1380;

/** Three segments of MSS bytes sent at t = 0, 1, 2 from sequence 1000. */
function threeSent(): { log: SentSegments; rack: Rack } {
  const log = new SentSegments();
  for (let i = 0; i < 3; i++) log.sent(1000 + i * MSS, 1000 + (i + 1) * MSS, i);
  return { log, rack: new Rack() };
}

test('RACK: a segment sent before a delivered one waits out RACK.rtt + reo_wnd, then is lost (§6.2 step 5, §6.3)', () => {
  const { log, rack } = threeSent();
  // The third arrives (SACKed) 10 ms after it was sent: RACK.rtt = min_RTT = 10, reo_wnd = min_RTT / 4 = 2.5.
  assert.equal(log.sack(1000 + 2 * MSS, 1000 + 3 * MSS, 12, rack), 1);
  assert.equal(rack.rtt, 10);
  const reo = rack.reoWnd(false, log.sackedSegments, 10);
  assert.equal(reo, 2.5);
  // At 12 neither earlier segment is due: the first at 0 + 10 + 2.5, the second at 1 + 10 + 2.5 — the timer waits 1.5 ms.
  assert.equal(rack.detect(log, 12, reo), 1.5);
  assert.equal(rack.marked, 0);
  assert.equal(log.lostBytes, 0);
  // At 13.5 both are.
  assert.equal(rack.detect(log, 13.5, reo), 0);
  assert.equal(rack.marked, 2);
  assert.equal(log.lostBytes, 2 * MSS);
  const end = new Uint32Array(1);
  assert.equal(log.firstLost(end), 1000);
  assert.equal(end[0], 1000 + MSS);
});

test('RACK: reordering within reo_wnd is not marked lost, and is remembered (§6.2 step 3)', () => {
  const { log, rack } = threeSent();
  log.sack(1000 + 2 * MSS, 1000 + 3 * MSS, 12, rack);
  const reo = rack.reoWnd(false, log.sackedSegments, 10);
  assert.equal(rack.detect(log, 12, reo), 1.5);
  // The first two arrive 1 ms later, within the window: delivered, never marked.
  log.acknowledge(1000 + 2 * MSS, 13, rack);
  assert.equal(rack.detect(log, 13, reo), 0);
  assert.equal(rack.marked, 0);
  assert.equal(log.lostBytes, 0);
  assert.ok(rack.reorderingSeen, 'a segment delivered below the highest delivered one is reordering');
  // Once reordering was seen, DupThresh SACKed segments or recovery no longer shrink the window to 0.
  assert.equal(rack.reoWnd(true, 5, 10), 2.5);
  const fresh = new Rack();
  assert.equal(fresh.reoWnd(true, 0, 10), 0, 'in recovery, with no reordering seen, reo_wnd is 0');
});

test('RACK: a retransmission sent before a later-SACKed segment is lost too (lost retransmission)', () => {
  const { log, rack } = threeSent();
  log.sack(1000 + 2 * MSS, 1000 + 3 * MSS, 12, rack);
  rack.detect(log, 14, 0);
  assert.equal(rack.marked, 2);
  // Both re-sent at 14 and 15; new data at 16. The retransmission at 14 is lost; the one at 15 and the new data arrive.
  log.sent(1000, 1000 + MSS, 14);
  log.sent(1000 + MSS, 1000 + 2 * MSS, 15);
  log.sent(1000 + 3 * MSS, 1000 + 4 * MSS, 16);
  assert.equal(log.lostBytes, 0, 're-sent segments are no longer lost');
  log.sack(1000 + MSS, 1000 + 2 * MSS, 25, rack);
  log.sack(1000 + 3 * MSS, 1000 + 4 * MSS, 26, rack);
  assert.equal(rack.rtt, 10);
  rack.detect(log, 26, 0);
  assert.equal(rack.marked, 1, 'the retransmission sent at 14, before the delivered one sent at 16, is lost');
  const end = new Uint32Array(1);
  assert.equal(log.firstLost(end), 1000);
});

test('RACK: a D-SACK widens reo_wnd by min_RTT/4 once per round trip, for 16 recoveries (§6.2 step 4)', () => {
  const { log, rack } = threeSent();
  log.sack(1000 + 2 * MSS, 1000 + 3 * MSS, 12, rack);
  assert.equal(rack.reoWnd(false, 1, 100), 2.5);
  assert.equal(rack.reoWnd(true, 1, 100), 0, 'no reordering seen yet: 0 in recovery');
  rack.onDsack(1000, 1000 + 3 * MSS);
  assert.ok(rack.reorderingSeen, 'a needless retransmission means reordering');
  assert.equal(rack.reoWnd(true, 1, 100), 5);
  rack.onDsack(1000 + MSS, 1000 + 4 * MSS);
  assert.equal(rack.reoWnd(false, 1, 100), 5, 'a second D-SACK in the same round trip changes nothing');
  rack.onDsack(1000 + 3 * MSS, 1000 + 5 * MSS);
  assert.equal(rack.reoWnd(false, 1, 100), 7.5);
  assert.equal(rack.reoWnd(false, 1, 6), 6, 'never wider than SRTT');
  for (let i = 0; i < 15; i++) rack.onRecoveryEnd();
  assert.equal(rack.reoWnd(false, 1, 100), 7.5);
  rack.onRecoveryEnd();
  assert.equal(rack.reoWnd(false, 1, 100), 2.5, 'back to min_RTT/4 after 16 recoveries without a D-SACK');
});

test('TLP: PTO is 2·SRTT, plus the worst-case delayed ACK for a single segment, never past the RTO (§7.2)', () => {
  assert.equal(probeTimeout(true, 20, 10 * MSS, MSS, 1000), 40);
  assert.equal(probeTimeout(true, 20, MSS, MSS, 1000), 40 + WC_DEL_ACK_T);
  assert.equal(probeTimeout(true, 200, 10 * MSS, MSS, 300), 300);
  assert.equal(probeTimeout(false, 0, 10 * MSS, MSS, 5000), 1000);
});

/** A connection a → b over a seeded link (10 ms each way unless told) sending `bytes`; a → b packets pass `filter` first. */
function transfer(
  bytes: number,
  opts: { seed?: number; loss?: number; delayMs?: number; filter?: (pkt: Uint8Array) => boolean } = {},
): { link: Link; client: TcpConnection; done: () => boolean; intact: () => boolean; received: () => Buffer } {
  const link = new Link({ seed: opts.seed ?? 5 });
  link.faults({ loss: opts.loss ?? 0, delayMs: opts.delayMs ?? 10 });
  if (opts.filter) link.aWire.filter = opts.filter;
  let server: ReturnType<typeof collect> | null = null;
  link.b.listen(80, (c) => {
    server = collect(c);
  });
  const client = link.a.connect('10.0.0.2', 80);
  collect(client);
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 7) & 0xff;
  let off = 0;
  const pump = (): void => {
    while (off < bytes) {
      const n = client.write(data, off, bytes - off);
      if (n === 0) return;
      off += n;
    }
  };
  client.events.onConnect = pump;
  client.events.onWritable = pump;
  const received = (): Buffer => Buffer.concat(server?.data ?? []);
  return { link, client, done: () => received().length === bytes && client.unacknowledged === 0, intact: () => received().equals(data), received };
}

/** A filter dropping the data segments `drop` picks by offset from the ISN and by how often that offset was sent before. */
function dropping(drop: (seqOffset: number, copy: number) => boolean): (pkt: Uint8Array) => boolean {
  let isn = -1;
  const copies = new Map<number, number>();
  return (pkt) => {
    const t = (pkt[0]! & 0x0f) * 4;
    const seq = new DataView(pkt.buffer, pkt.byteOffset).getUint32(t + 4);
    if ((pkt[t + 13]! & 0x02) !== 0) isn = seq;
    const dataLen = pkt.length - t - (pkt[t + 12]! >> 4) * 4;
    if (dataLen === 0 || isn < 0) return true;
    const off = (seq - isn - 1) >>> 0;
    const n = copies.get(off) ?? 0;
    copies.set(off, n + 1);
    return !drop(off, n);
  };
}

test('a lost tail is repaired by a tail loss probe and RACK, with no retransmission timeout', () => {
  const segs = 12;
  // The last two segments are lost the first time they are sent: no later segment can draw SACK blocks for them.
  const { link, client, done, received } = transfer(segs * MSS, { filter: dropping((off, copy) => copy === 0 && off >= (segs - 2) * MSS) });
  assert.ok(link.run(done, 60_000));
  assert.equal(received().length, segs * MSS);
  assert.equal(client.stats.timeouts, 0, 'no RTO');
  assert.equal(client.stats.tailLossProbes, 1, 'one probe, re-sending the last segment');
  assert.ok(client.stats.rackLost >= 1, 'RACK found the other lost segment from the SACK the probe drew');
  assert.equal(client.stats.retransmits, 2);
});

test('a lost retransmission is found by RACK and sent again, with no retransmission timeout', () => {
  const segs = 60;
  // Segment 20 is lost twice: the first time and its first retransmission.
  const { link, client, done, received } = transfer(segs * MSS, { filter: dropping((off, copy) => off === 20 * MSS && copy < 2) });
  assert.ok(link.run(done, 60_000));
  assert.equal(received().length, segs * MSS);
  assert.equal(client.stats.timeouts, 0, 'no RTO');
  assert.equal(client.stats.retransmits, 2, 'the segment was sent three times, nothing else twice');
  assert.equal(client.stats.rackLost, 2);
  assert.equal(client.stats.fastRecoveries, 1, 'one reduction for the window');
});

test('duplicate ACKs that carry no new SACK information do not count toward fast retransmit (RFC 6675 §2)', () => {
  const { link, client, done } = transfer(40 * MSS);
  link.bWire.record = true;
  // Run until data is in flight past an ACK the client has already processed.
  assert.ok(link.run(() => ((client.sndUna - client.iss) >>> 0) > 1 && client.sndMax !== client.sndUna && link.aWire.queue.length > 0, 60_000));
  const ackOf = (pkt: Uint8Array): number => new DataView(pkt.buffer, pkt.byteOffset).getUint32((pkt[0]! & 0x0f) * 4 + 8);
  const last = [...link.bWire.seen].reverse().find((p) => ackOf(p) === client.sndUna);
  assert.ok(last, 'an ACK of SND.UNA');
  // Five copies of it: under RFC 5681's rule alone the third would start fast retransmit.
  for (let i = 0; i < 5; i++) link.inject(link.a, last);
  link.settle();
  assert.equal(client.stats.retransmits, 0);
  assert.equal(client.stats.fastRecoveries, 0);
  assert.ok(link.run(done, 60_000));
  assert.equal(client.stats.retransmits, 0, 'nothing was lost, nothing re-sent');
});

/** Clears SACK-permitted from SYNs on the wire (NOP NOP in its place, checksum redone): the pair runs without SACK. */
function withoutSack(pkt: Uint8Array): boolean {
  const t = (pkt[0]! & 0x0f) * 4;
  if ((pkt[t + 13]! & 0x02) === 0) return true;
  const end = t + (pkt[t + 12]! >> 4) * 4;
  for (let o = t + 20; o < end; ) {
    const kind = pkt[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    const len = pkt[o + 1]!;
    if (kind === 4) pkt[o] = pkt[o + 1] = 1;
    o += Math.max(2, len);
  }
  pkt[t + 16] = pkt[t + 17] = 0;
  const sum = finish(sumBytes(pkt, t, pkt.length, pseudoHeaderSum(pkt, 12, 16, 4, 6, pkt.length - t)));
  pkt[t + 16] = sum >> 8;
  pkt[t + 17] = sum & 0xff;
  return true;
}

test('over the same lossy links, RACK-TLP needs a quarter of the retransmission timeouts NewReno without SACK does', () => {
  // Eight seeded links, 5 % loss both ways, 1 MiB each: deterministic, so this compares counts, not time. The SACK
  // sender before RACK-TLP (holes re-sent once per recovery, tails left to the RTO) took 44 timeouts here, NewReno 84.
  const run = (seed: number, sack: boolean): { timeouts: number; sackOk: boolean; intact: boolean } => {
    const { link, client, done, intact } = transfer(1 << 20, { seed, loss: 0.05, delayMs: 5, ...(sack ? {} : { filter: withoutSack }) });
    link.run(done, 3_600_000);
    return { timeouts: client.stats.timeouts, sackOk: client.sackOk, intact: intact() };
  };
  let rack = 0;
  let newReno = 0;
  for (let seed = 1; seed <= 8; seed++) {
    const a = run(seed, true);
    const b = run(seed, false);
    assert.ok(a.sackOk && !b.sackOk, 'SACK on in one run, off in the other');
    assert.ok(a.intact && b.intact, `seed ${seed}: every byte delivered in order`);
    rack += a.timeouts;
    newReno += b.timeouts;
  }
  assert.ok(newReno > 0, 'the links were lossy enough to need the RTO without SACK');
  assert.ok(rack * 4 <= newReno, `RTO firings: ${rack} with RACK-TLP, ${newReno} with NewReno`);
});
