// TIME-WAIT connections kept apart from the stack's timer scan (stack.ts
// tickWaiting): connections that closed first wait exactly 2 MSL each
// (RFC 9293 §3.10.7.4), staggered, and leave in order — never early, and at
// their deadline — while other connections' timers keep running; a
// retransmitted FIN in TIME-WAIT is still ACKed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TCP_OPTIONS } from '../../src/netstack/tcp/options.js';
import type { TcpConnection } from '../../src/netstack/tcp/connection.js';
import { acceptAll, collect, Link, type Collected } from '../support/netstack-link.js';

const WAIT = 2 * DEFAULT_TCP_OPTIONS.mslMs;

/** Opens a connection a → b:80 and returns both ends once established. */
function open(link: Link, accepted: TcpConnection[]): { client: TcpConnection; cr: Collected; server: TcpConnection } {
  const before = accepted.length;
  const client = link.a.connect('10.0.0.2', 80);
  const cr = collect(client);
  assert.ok(link.run(() => cr.connected && accepted.length > before));
  return { client, cr, server: accepted[accepted.length - 1]! };
}

/** The client closes when the server's FIN arrives (and still records the end). */
function answerFin(client: TcpConnection, cr: Collected): void {
  client.events.onEnd = () => {
    cr.ended = true;
    client.close();
  };
}

test('connections that closed first leave TIME-WAIT each 2 MSL after entering it, in order, never early', () => {
  const link = new Link();
  const accepted = acceptAll(link);
  const entered: number[] = [];
  const servers: TcpConnection[] = [];
  for (let i = 0; i < 40; i++) {
    const { client, cr, server } = open(link, accepted);
    answerFin(client, cr); // the client answers the server's FIN with its own
    server.close(); // the server closes first: it is the one in TIME-WAIT
    assert.ok(link.run(() => cr.ended && server.state.kind === 'time-wait'));
    entered.push(link.now);
    servers.push(server);
    link.run(() => false, 250 + 50 * (i % 3)); // staggered entries
  }
  // A connection that stays open with a timer running (keepalive) beside them.
  const { client: live, server: liveServer } = open(link, accepted);
  live.setKeepAlive(true, 10_000, link.now);
  assert.equal(link.b.timeWaitCount, 40);
  const stillWaiting = (): number => servers.filter((s) => s.state.kind === 'time-wait').length;
  const last = entered[entered.length - 1]! + WAIT;
  link.run(() => {
    const due = entered.filter((t) => t + WAIT <= link.now).length;
    // Never early: every connection whose 2 MSL has not passed is still there; at its deadline it is gone.
    assert.equal(stillWaiting(), entered.length - due, `at ${link.now}`);
    return link.now > last;
  }, WAIT + 60_000);
  assert.equal(stillWaiting(), 0);
  assert.equal(link.b.timeWaitCount, 0);
  assert.equal(link.b.connectionCount, 1, 'only the live connection is left');
  assert.ok(live.stats.keepAliveProbes > 0 && liveServer.state.kind === 'established', "the live connection's timers ran meanwhile");
});

test('a retransmitted FIN in TIME-WAIT is ACKed, and the connection still leaves 2 MSL after entering', () => {
  const link = new Link();
  const accepted = acceptAll(link);
  const { client, cr, server } = open(link, accepted);
  answerFin(client, cr);
  link.aWire.record = true;
  server.close();
  assert.ok(link.run(() => server.state.kind === 'time-wait'));
  const t0 = link.now;
  assert.ok(link.run(() => cr.ended && client.state.kind === 'closed'));
  // The client's FIN again (the last segment with FIN that a sent), half-way through the wait.
  const fin = link.aWire.seen.filter((p) => p[9] === 6 && (p[20 + 13]! & 0x01) !== 0).pop()!;
  link.run(() => false, WAIT / 2);
  link.bWire.record = true;
  link.inject(link.b, fin);
  link.settle();
  assert.ok(link.bWire.seen.some((p) => p[9] === 6 && (p[20 + 13]! & 0x10) !== 0), 'the FIN is ACKed');
  // That ACK is not delivered: a, closed, would answer it with a RST, which ends TIME-WAIT at once (RFC 9293 §3.10.7.4).
  link.bWire.queue.length = 0;
  assert.equal(server.state.kind, 'time-wait');
  assert.equal(link.b.timeWaitCount, 1);
  assert.ok(link.run(() => server.state.kind === 'closed', WAIT));
  assert.ok(link.now >= t0 + WAIT, 'not before 2 MSL');
  assert.equal(link.b.connectionCount, 0);
  assert.equal(link.b.timeWaitCount, 0);
});

test('at the connection cap the oldest TIME-WAIT connection makes room; with none in TIME-WAIT the SYN is dropped', () => {
  const link = new Link({ b: { maxConnections: 4 } });
  const accepted = acceptAll(link);
  const closedFirst: TcpConnection[] = [];
  for (let i = 0; i < 3; i++) {
    const { client, cr, server } = open(link, accepted);
    answerFin(client, cr);
    server.close();
    assert.ok(link.run(() => server.state.kind === 'time-wait' && client.state.kind === 'closed'));
    closedFirst.push(server);
    link.run(() => false, 100);
  }
  open(link, accepted); // the 4th: established, the table is full
  assert.equal(link.b.connectionCount, 4);
  open(link, accepted); // the 5th takes the place of the oldest TIME-WAIT connection
  assert.equal(link.b.timeWaitRecycled, 1);
  assert.deepEqual(closedFirst.map((c) => c.state.kind), ['closed', 'time-wait', 'time-wait'], 'the oldest went');
  assert.equal(link.b.connectionCount, 4);
  open(link, accepted);
  open(link, accepted);
  assert.equal(link.b.timeWaitRecycled, 3);
  assert.equal(link.b.timeWaitCount, 0);
  // Four established connections and nothing in TIME-WAIT: a further SYN is dropped and counted, as before.
  const late = link.a.connect('10.0.0.2', 80);
  const lr = collect(late);
  link.run(() => lr.connected, 2000);
  assert.equal(lr.connected, false);
  assert.ok(link.b.drops['tcp-backlog-full'] > 0);
  assert.equal(link.b.connectionCount, 4);
});
