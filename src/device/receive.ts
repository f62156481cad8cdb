/**
 * Receive path: datagrams from the network → decrypted IP packets for the TUN.
 *
 * One call per batch of datagrams (each at the start of its slot, its source
 * in the slot's endpoint record). First, what the UDP bind already shed in
 * native code before delivering the batch (batch.shed; native/src/udp-shed.cc
 * applies steps 1 and 2's admission rules there) is counted. Then for each
 * datagram, in order:
 *
 *  1. Classify by type word and exact length (messages.ts). Anything else is
 *     dropped silently and counted: unauthenticated input never gets an
 *     answer, except a cookie reply under load.
 *  2. Handshake messages (initiation, response, cookie reply) are handled one
 *     by one in device-core.ts: mac1 always; under load mac2 (else a cookie reply)
 *     and the per-source rate limiter; then the handshake. Replies collect in
 *     the device's output batch.
 *  3. Transport data: the receiver index names a keypair; a keypair older than
 *     REJECT_AFTER_TIME is refused; the packet is authenticated and decrypted
 *     in place (the plaintext starts 16 bytes into the datagram); only then
 *     is the counter checked against the replay window (RFC 6479), so forged
 *     packets cannot move it.
 *  4. After authentication: the first packet on the `next` keypair confirms it
 *     (and flushes packets staged for the peer), the endpoint follows the
 *     source (roaming), timers and counters are updated.
 *  5. Empty plaintext is a keepalive and ends here (counted as accepted). Otherwise it must be an
 *     IPv4/IPv6 packet whose header length fits, and whose source address
 *     routes back to this same peer in allowed IPs (cryptokey routing). An
 *     exit also refuses destinations of other peers and of its destination
 *     policy (the exit itself, private and special ranges).
 *  6. The batch itself goes to the TUN: each kept slot's offset moves to its
 *     inner packet and its length drops the padding; dropped slots are
 *     squeezed out by moving later packets forward (a copy only then).
 *
 * The steady path creates no objects and copies no packet bytes.
 */
import { SHED_BAD_LENGTH, SHED_QUEUE_FULL, SHED_SOURCE_LIMITED, SHED_TOO_SHORT, SHED_UNKNOWN_TYPE, type PacketBatch } from '../io/batch.js';
import { ENDPOINT_SIZE } from '../io/endpoint.js';
import { TAG_LEN } from '../crypto/aead.js';
import { KEEPALIVE_TIMEOUT, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_TIMEOUT, TRANSPORT_HEADER_LEN } from '../protocol/constants.js';
import { IPV4_DST, IPV4_SRC, IPV6_DST, IPV6_SRC, ipPacketLength } from '../protocol/ip.js';
import { classify, MSG_TRANSPORT, readCounter, readU32, Transport } from '../protocol/messages.js';
import type { DataPath } from './data-path.js';
import { HANDSHAKES_PER_BATCH } from './handshake-queue.js';

/** After this age an initiator's session asks for a new handshake when data arrives (wireguard-go keepKeyFreshReceiving). */
const REKEY_ON_RECEIVE_AGE = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;

/**
 * What the bind shed before delivering the batch (step 0 above): counted
 * under the drop reasons classify() and queueHandshake() would have given,
 * then zeroed. Shedding for the per-read cap means handshakes arrive faster
 * than a batch's share of work: the device goes under load.
 */
function countShed(dev: DataPath, shed: Int32Array, now: number): void {
  const drops = dev.drops;
  drops['too-short'] += shed[SHED_TOO_SHORT]!;
  drops['unknown-type'] += shed[SHED_UNKNOWN_TYPE]!;
  drops['bad-length'] += shed[SHED_BAD_LENGTH]!;
  drops['handshake-source-limited'] += shed[SHED_SOURCE_LIMITED]!;
  drops['handshake-queue-full'] += shed[SHED_QUEUE_FULL]!;
  if (shed[SHED_QUEUE_FULL]! > 0) dev.markUnderLoad(now);
  shed.fill(0);
}

/** The receive path for one network batch (see the comment at the top). */
export function receiveBatch(dev: DataPath, batch: PacketBatch): void {
  const now = dev.clock.now();
  const data = batch.data;
  const slotSize = batch.slotSize;
  const eps = batch.endpoints;
  const drops = dev.drops;
  const accepted = dev.accepted;
  const shed = batch.shed;
  if ((shed[SHED_TOO_SHORT]! | shed[SHED_UNKNOWN_TYPE]! | shed[SHED_BAD_LENGTH]! | shed[SHED_SOURCE_LIMITED]! | shed[SHED_QUEUE_FULL]!) !== 0) countShed(dev, shed, now);
  let kept = 0;
  for (let i = 0; i < batch.count; i++) {
    const start = i * slotSize + batch.offsets[i]!;
    const len = batch.lengths[i]!;
    const epAt = i * ENDPOINT_SIZE;
    const type = classify(data, start, len);
    if (typeof type === 'string') {
      drops[type]++;
      continue;
    }
    if (type !== MSG_TRANSPORT) {
      const shed = dev.queueHandshake(type, data, start, len, eps, epAt, now);
      if (shed !== null) drops[shed]++;
      continue;
    }

    const entry = dev.lookupIndex(readU32(data, start + Transport.RECEIVER));
    if (entry === undefined || entry.keypair === null) {
      drops['unknown-receiver']++;
      continue;
    }
    const kp = entry.keypair;
    const peer = entry.peer;
    if (now - kp.createdAt >= REJECT_AFTER_TIME) {
      drops['expired-keypair']++;
      continue;
    }
    const counter = readCounter(data, start + Transport.COUNTER);
    if (counter < 0) {
      drops['counter-too-large']++;
      continue;
    }
    const inner = start + TRANSPORT_HEADER_LEN;
    if (!dev.crypto.aead.open(kp.receiveKey, counter, data, inner, len - TRANSPORT_HEADER_LEN)) {
      drops['decrypt-failed']++;
      continue;
    }
    if (!kp.replay.validate(counter, REJECT_AFTER_MESSAGES)) {
      drops['replayed-packet']++;
      continue;
    }

    // Authenticated from here on.
    dev.authenticated(peer, kp, now);
    const cur = peer.current;
    if (cur !== null && cur.isInitiator && !peer.sentLastMinuteHandshake && now - cur.createdAt >= REKEY_ON_RECEIVE_AGE) {
      peer.sentLastMinuteHandshake = true;
      dev.sendHandshakeInitiation(peer, false, now);
    }
    dev.updateEndpoint(peer, eps, epAt);
    peer.rxBytes += len;
    peer.timers.anyAuthenticatedPacketReceived();
    peer.timers.anyAuthenticatedPacketTraversal(now);

    const plainLen = len - TRANSPORT_HEADER_LEN - TAG_LEN;
    if (plainLen === 0) {
      accepted.keepalive++;
      continue;
    }
    peer.timers.dataReceived(now);

    const ipLen = ipPacketLength(data, inner, plainLen);
    if (ipLen < 0) {
      drops['invalid-inner-packet']++;
      continue;
    }
    const v4 = data[inner]! >>> 4 === 4;
    const owner = v4 ? dev.allowedIps.lookup4(data, inner + IPV4_SRC) : dev.allowedIps.lookup6(data, inner + IPV6_SRC);
    if (owner !== peer) {
      drops['inner-source-not-allowed']++;
      continue;
    }
    if (dev.isolatePeers) {
      const dst = v4 ? dev.allowedIps.lookup4(data, inner + IPV4_DST) : dev.allowedIps.lookup6(data, inner + IPV6_DST);
      if (dst !== null) {
        drops['client-to-client']++;
        continue;
      }
    }
    const policy = dev.destinationPolicy;
    if (policy !== null && (v4 ? policy.refuses4(data, inner) : policy.refuses6(data, inner))) {
      drops['destination-refused']++;
      continue;
    }
    accepted.data++;
    if (kept !== i) data.copyWithin(kept * slotSize + TRANSPORT_HEADER_LEN, inner, inner + ipLen);
    batch.offsets[kept] = kept !== i ? TRANSPORT_HEADER_LEN : inner - i * slotSize;
    batch.lengths[kept] = ipLen;
    kept++;
  }
  batch.count = kept;
  dev.flushOut();
  if (kept > 0) dev.writeToTun(batch);
  dev.processHandshakes(HANDSHAKES_PER_BATCH);
}
