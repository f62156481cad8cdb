/**
 * What the two packet paths (send.ts, receive.ts) may see of the device: the
 * narrow internal interface between the per-packet loops and the device's
 * state machine (device-core.ts). The loops read the routing table, the
 * receiver-index table and the crypto backend directly (the steady path must
 * not go through extra calls), and hand everything that changes session or
 * handshake state back to the core through the methods below.
 *
 * Nothing outside src/device sees this interface: the public surface is
 * device.ts's `Device`.
 */
import type { CryptoBackend } from '../crypto/backend.js';
import type { PacketBatch } from '../io/batch.js';
import type { AllowedIps } from '../protocol/allowed-ips.js';
import type { Keypair } from '../protocol/keypair.js';
import type { AcceptKind, DropReason } from '../protocol/messages.js';
import type { Clock } from '../protocol/clock.js';
import type { DestinationPolicy } from './destination-policy.js';
import type { Peer } from './peer.js';

/** One entry of the receiver-index table: a pending handshake (keypair null) or a keypair of a peer. */
export interface IndexEntry {
  peer: Peer;
  keypair: Keypair | null;
}

export interface DataPath {
  readonly clock: Clock;
  readonly crypto: CryptoBackend;
  /** Interface MTU, for padding (whitepaper §5.4.6). */
  readonly mtu: number;
  /** Drop packets from one peer addressed to another peer's allowed IPs. */
  readonly isolatePeers: boolean;
  /** Destinations peers' packets may not reach (an exit's policy), or null. */
  readonly destinationPolicy: DestinationPolicy | null;
  /** Cryptokey routing (whitepaper §2): read-only for the paths. */
  readonly allowedIps: AllowedIps<Peer>;
  /** Drop counters by reason; the paths increment them. */
  readonly drops: Record<DropReason, number>;
  /** What received datagrams that were not dropped became; the receive path counts data and keepalives. */
  readonly accepted: Record<AcceptKind, number>;
  /** Queues a handshake message for after the batch's data, or says why it was shed (before any cryptography). */
  queueHandshake(type: number, buf: Uint8Array, at: number, len: number, src: Uint8Array, srcAt: number, now: number): DropReason | null;
  /** Puts the device under load (whitepaper §5.3) for the hold time: the bind shed handshakes it had no room for. */
  markUnderLoad(now: number): void;
  /** The device-owned output batch (handshakes, keepalives, staged packets); the send path seals staged packets into it. */
  readonly out: PacketBatch;

  /** Whether the device has a static private key (without one nothing can be sent or received). */
  hasPrivateKey(): boolean;
  /** The pending handshake or keypair that a receiver index names (whitepaper §5.4.1). */
  lookupIndex(index: number): IndexEntry | undefined;
  /** A keypair can send while younger than REJECT_AFTER_TIME and below REJECT_AFTER_MESSAGES. */
  canSend(kp: Keypair | null, now: number): kp is Keypair;
  /** Queues a copy-owned packet for a peer without a usable session and sends what waits, or starts a handshake. */
  stageAndSend(peer: Peer, pkt: Uint8Array, now: number): void;
  /** Starts a handshake (whitepaper §5.4.2), rate-limited per peer to one per REKEY_TIMEOUT. */
  sendHandshakeInitiation(peer: Peer, isRetry: boolean, now: number): void;
  /** Processes up to `max` queued handshake messages (mac1, cookies, the Noise step) and sends their replies; how many it did. */
  processHandshakes(max: number): number;
  /** After a packet authenticated on kp: confirms a responder's `next` keypair (whitepaper §5.4.5) and flushes what waited. */
  authenticated(peer: Peer, kp: Keypair, now: number): void;
  /** Roaming (whitepaper §2.1): the endpoint follows the source of authenticated packets. */
  updateEndpoint(peer: Peer, src: Uint8Array, srcAt: number): void;
  /** Hands the output batch to the network sink if anything waits in it. */
  flushOut(): void;
  sendToNetwork(batch: PacketBatch): void;
  writeToTun(batch: PacketBatch): void;
}
