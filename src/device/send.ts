/**
 * Send path: IP packets from the TUN → encrypted datagrams for the network.
 *
 * One call per batch the TUN delivered (each packet sits TRANSPORT_HEADER_LEN
 * bytes into its slot). For each packet, in order:
 *
 *  1. Route: read the destination address and find the peer by longest-prefix
 *     match in the allowed-IPs table (whitepaper §2 "cryptokey routing").
 *     No peer, or not an IP packet: drop and count; without a private key
 *     nothing can be sent (counted as `no-private-key`).
 *  2. Key: the peer's current keypair, if it may still send (younger than
 *     REJECT_AFTER_TIME, counter below REJECT_AFTER_MESSAGES) and an endpoint
 *     is known. Otherwise the packet is copied to the peer's staged queue and
 *     a handshake is started (the only path here that allocates). Order per
 *     peer is kept: while packets are staged, new ones queue behind them; the
 *     queue is flushed when a session arrives (device-core.ts, receive.ts).
 *  3. Seal in place (whitepaper §5.4.6): the 16-byte header is written into
 *     the headroom in front of the packet, the packet is padded with zeros to
 *     a multiple of 16 (not beyond the MTU), encrypted where it lies, and the
 *     tag is appended.
 *  4. The batch itself goes to the network sink: each slot's endpoint record
 *     is set to its peer's endpoint. Slots of dropped packets are squeezed
 *     out by moving later packets forward (a copy only when something was
 *     dropped). Handshake initiations started on the way go out first, from
 *     the device's output batch.
 *
 * The steady path creates no objects and copies no packet bytes.
 */
import type { PacketBatch } from '../io/batch.js';
import { ENDPOINT_SIZE } from '../io/endpoint.js';
import { REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, PADDING_MULTIPLE, TRANSPORT_HEADER_LEN } from '../protocol/constants.js';
import { IPV4_DST, IPV6_DST, ipVersion } from '../protocol/ip.js';
import type { Keypair } from '../protocol/keypair.js';
import { MSG_TRANSPORT, writeCounter, writeType, writeU32 } from '../protocol/messages.js';
import { TAG_LEN } from '../crypto/aead.js';
import type { DataPath } from './data-path.js';
import type { Peer } from './peer.js';

/** Plaintext length after padding (wireguard-go calculatePaddingSize). */
export function paddedLength(len: number, mtu: number): number {
  let last = len;
  if (mtu > 0 && last > mtu) last %= mtu;
  let padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (mtu > 0 && padded > mtu) padded = mtu;
  return len + (padded - last);
}

/**
 * Writes header, padding and tag around the plaintext at data[at, at+len),
 * whose header goes at at-16; returns the datagram length.
 */
function sealAt(dev: DataPath, kp: Keypair, data: Uint8Array, at: number, len: number, padded: number): number {
  data.fill(0, at + len, at + padded);
  const h = at - TRANSPORT_HEADER_LEN;
  writeType(data, h, MSG_TRANSPORT);
  writeU32(data, h + 4, kp.remoteIndex);
  writeCounter(data, h + 8, kp.sendCounter);
  dev.crypto.aead.seal(kp.sendKey, kp.sendCounter, data, at, padded);
  kp.sendCounter++;
  return TRANSPORT_HEADER_LEN + padded + TAG_LEN;
}

/** Bookkeeping after a transport message left for `peer` (wireguard-go send.go + timers.go). */
function afterSend(dev: DataPath, peer: Peer, kp: Keypair, isData: boolean, bytes: number, now: number): void {
  peer.txBytes += bytes;
  if (isData) peer.timers.dataSent(now);
  peer.timers.anyAuthenticatedPacketSent();
  peer.timers.anyAuthenticatedPacketTraversal(now);
  // §6.2: the initiator rekeys after REKEY_AFTER_TIME; anyone after REKEY_AFTER_MESSAGES.
  if ((kp.isInitiator && now - kp.createdAt >= REKEY_AFTER_TIME) || kp.sendCounter >= REKEY_AFTER_MESSAGES) {
    dev.sendHandshakeInitiation(peer, false, now);
  }
}

/** The send path for one TUN batch (see the comment at the top). */
export function sendBatch(dev: DataPath, batch: PacketBatch): void {
  const now = dev.clock.now();
  const data = batch.data;
  const slotSize = batch.slotSize;
  let kept = 0;
  for (let i = 0; i < batch.count; i++) {
    const off = batch.offsets[i]!;
    if (off < TRANSPORT_HEADER_LEN) throw new RangeError('TUN batches need 16 bytes of headroom'); // misuse
    const start = i * slotSize + off;
    const len = batch.lengths[i]!;
    const v = ipVersion(data, start, len);
    const peer = v === 4 ? dev.allowedIps.lookup4(data, start + IPV4_DST) : v === 6 ? dev.allowedIps.lookup6(data, start + IPV6_DST) : null;
    if (peer === null) {
      dev.drops[v === 0 ? 'invalid-inner-packet' : 'no-route']++;
      continue;
    }
    if (!dev.hasPrivateKey()) {
      dev.drops['no-private-key']++;
      continue;
    }
    const kp = peer.current;
    if (peer.staged.length > 0 || !dev.canSend(kp, now) || !peer.hasEndpoint()) {
      dev.stageAndSend(peer, new Uint8Array(data.subarray(start, start + len)), now); // a copy
      continue;
    }
    const padded = paddedLength(len, dev.mtu);
    if (off + padded + TAG_LEN > slotSize) {
      dev.drops['invalid-inner-packet']++;
      continue;
    }
    const bytes = sealAt(dev, kp, data, start, len, padded);
    const h = start - TRANSPORT_HEADER_LEN;
    if (kept !== i) data.copyWithin(kept * slotSize, h, h + bytes);
    batch.offsets[kept] = kept !== i ? 0 : off - TRANSPORT_HEADER_LEN;
    batch.lengths[kept] = bytes;
    batch.endpoints.set(peer.endpoint, kept * ENDPOINT_SIZE);
    kept++;
    afterSend(dev, peer, kp, true, bytes, now);
  }
  batch.count = kept;
  dev.flushOut();
  if (kept > 0) dev.sendToNetwork(batch);
}

/** Seals one staged packet (or an empty keepalive) into the device's output batch. */
export function sealStaged(dev: DataPath, peer: Peer, kp: Keypair, pkt: Uint8Array, now: number): void {
  const out = dev.out;
  const padded = paddedLength(pkt.length, dev.mtu);
  if (TRANSPORT_HEADER_LEN + padded + TAG_LEN > out.slotSize) {
    dev.drops['invalid-inner-packet']++;
    return;
  }
  const i = out.count++;
  const at = i * out.slotSize + TRANSPORT_HEADER_LEN;
  out.data.set(pkt, at);
  const bytes = sealAt(dev, kp, out.data, at, pkt.length, padded);
  out.offsets[i] = 0;
  out.lengths[i] = bytes;
  out.endpoints.set(peer.endpoint, i * ENDPOINT_SIZE);
  afterSend(dev, peer, kp, pkt.length > 0, bytes, now);
}
