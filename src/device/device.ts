/**
 * The WireGuard device as the rest of the program sees it: configuration
 * (our private key, peers, their allowed IPs and keepalives), the three entry
 * points that turn input into output, and the figures the UAPI and /metrics
 * report.
 *
 *   receiveFromTun(batch)      IP packets from the TUN  → datagrams for the network  (send.ts)
 *   receiveFromNetwork(batch)  datagrams from the network → IP packets for the TUN  (receive.ts)
 *   tick()                     timers (whitepaper §6)   → keepalives, handshakes
 *
 * This surface is what runtime.ts, the UAPI (uapi.ts) and the exit server
 * use; the state machine behind it (sessions, handshakes, the receiver-index
 * table, the output batch) is device-core.ts, and the packet paths reach it
 * only through data-path.ts.
 */
import type { PacketBatch } from '../io/batch.js';
import type { AllowedIps } from '../protocol/allowed-ips.js';
import type { AcceptKind, DropReason } from '../protocol/messages.js';
import { DeviceCore, type DeviceOptions } from './device-core.js';
import type { DestinationPolicy } from './destination-policy.js';
import type { Peer } from './peer.js';

export { Peer } from './peer.js';
export type { DeviceOptions } from './device-core.js';

export class Device {
  private readonly core: DeviceCore;

  constructor(opts: DeviceOptions) {
    this.core = new DeviceCore(opts);
  }

  // ---- configuration -------------------------------------------------------

  /**
   * Sets (or clears) our static private key. As in wireguard-go, a peer whose
   * public key equals our new public key is removed, every peer's
   * static-static DH is recomputed and current sessions are expired.
   */
  setPrivateKey(privateKey: Uint8Array | null): void {
    this.core.setPrivateKey(privateKey);
  }

  /** Our public key, or null without a private key. */
  publicKey(): Uint8Array | null {
    return this.core.publicKey();
  }

  /** A copy of our private key, or null (the UAPI `get` prints it, as wireguard-go does). */
  privateKey(): Uint8Array | null {
    return this.core.privateKey();
  }

  peer(publicKey: Uint8Array): Peer | undefined {
    return this.core.peer(publicKey);
  }

  peers(): IterableIterator<Peer> {
    return this.core.peers();
  }

  get peerCount(): number {
    return this.core.peerCount;
  }

  /** Returns the peer with this public key, creating it if needed. */
  addPeer(publicKey: Uint8Array): Peer {
    return this.core.addPeer(publicKey);
  }

  /** Removes a peer, its allowed IPs, sessions and staged packets; false if it was not there. */
  removePeer(publicKey: Uint8Array): boolean {
    return this.core.removePeer(publicKey);
  }

  removeAllPeers(): void {
    this.core.removeAllPeers();
  }

  setPersistentKeepalive(peer: Peer, seconds: number): void {
    this.core.setPersistentKeepalive(peer, seconds);
  }

  /** Sends a keepalive now (e.g. when persistent keepalive is switched on). */
  sendKeepalive(peer: Peer): void {
    this.core.sendKeepalive(peer);
  }

  /** Cryptokey routing (whitepaper §2): each peer's allowed IPs. */
  get allowedIps(): AllowedIps<Peer> {
    return this.core.allowedIps;
  }

  /** Where peers' packets may not go (an exit's destination policy); null: anywhere their allowed IPs permit. */
  get destinationPolicy(): DestinationPolicy | null {
    return this.core.destinationPolicy;
  }

  set destinationPolicy(policy: DestinationPolicy | null) {
    this.core.destinationPolicy = policy;
  }

  /** Datagrams and packets dropped so far, by reason. */
  get drops(): Readonly<Record<DropReason, number>> {
    return this.core.drops;
  }

  /** Datagrams received and not dropped, by what they became; drops + accepted = received once the backlog is empty. */
  get accepted(): Readonly<Record<AcceptKind, number>> {
    return this.core.accepted;
  }

  /** Handshake messages received and waiting in the bounded handshake queue (handshake-queue.ts). */
  get handshakeBacklog(): number {
    return this.core.handshakes.length;
  }

  /**
   * Processes up to `max` queued handshake messages and sends their replies;
   * returns how many. The receive path does HANDSHAKES_PER_BATCH after each
   * network batch; the runtime calls this for the rest between batches.
   */
  processHandshakes(max: number): number {
    return this.core.processHandshakes(max);
  }

  /** Whether handshake processing is under load now (whitepaper §5.3: cookies, and the smaller share per source). */
  isUnderLoad(): boolean {
    return this.core.isUnderLoad();
  }

  /** Forgets queued handshake messages (shutdown). */
  clearHandshakeBacklog(): void {
    this.core.handshakes.clear();
  }

  // ---- entry points ----------------------------------------------------------

  /** IP packets read from the TUN (16 bytes of headroom each) → datagrams to the network sink. */
  receiveFromTun(batch: PacketBatch): void {
    this.core.receiveFromTun(batch);
  }

  /** Datagrams from the network → IP packets to the TUN sink. */
  receiveFromNetwork(batch: PacketBatch): void {
    this.core.receiveFromNetwork(batch);
  }

  /** Runs expired timers of every peer (whitepaper §6). Call a few times per second. */
  tick(): void {
    this.core.tick();
  }
}
