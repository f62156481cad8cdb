/**
 * The device's state machine behind the public `Device` (device.ts): our
 * static identity, the peers, the cryptokey routing table, the
 * receiver-index table, sessions and handshakes, the timers, and the
 * device-owned output batch. The two packet paths (send.ts, receive.ts) see
 * it only through the `DataPath` interface (data-path.ts).
 *
 * It has no sockets, no timers and reads time only from the injected clock;
 * output goes to the two sinks it was given. Handshake messages, keepalives
 * and packets that waited for a handshake are collected in the output batch
 * and handed to the network sink at the end of each entry point (or when it
 * fills up).
 */
import { defaultBackend, type CryptoBackend } from '../crypto/backend.js';
import { PacketBatch, MAX_PACKET_SIZE } from '../io/batch.js';
import { ENDPOINT_SIZE } from '../io/endpoint.js';
import { AllowedIps } from '../protocol/allowed-ips.js';
import {
  DEFAULT_MTU,
  INITIATIONS_MIN_INTERVAL,
  MAX_TIMER_HANDSHAKES,
  REJECT_AFTER_TIME,
  REKEY_TIMEOUT,
  STAGED_QUEUE_SIZE,
  KEEPALIVE_TIMEOUT,
} from '../protocol/constants.js';
import { CookieChecker } from '../protocol/cookie.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse, responderInitialState } from '../protocol/handshake.js';
import { IndexTable } from '../protocol/index-table.js';
import { Keypair } from '../protocol/keypair.js';
import { ACCEPT_KINDS, type AcceptKind, CookieReply, DROP_REASONS, type DropReason, Initiation, MSG_COOKIE_REPLY, MSG_INITIATION, readU32, Response } from '../protocol/messages.js';
import type { SymmetricState } from '../protocol/noise.js';
import { systemRandom, type Random } from '../protocol/random.js';
import { ALLOWED_FRESH, RateLimiter, REFUSED } from '../protocol/rate-limiter.js';
import { tai64n, tai64nAfter } from '../protocol/tai64n.js';
import type { Clock } from '../protocol/clock.js';
import type { DataPath, IndexEntry } from './data-path.js';
import {
  HANDSHAKE_QUEUE_SOURCE_BURST,
  HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD,
  HANDSHAKE_QUEUE_SOURCE_RATE,
  HANDSHAKE_QUEUE_SOURCE_RATE_UNDER_LOAD,
  HandshakeQueue,
  UNDER_LOAD_SUSTAIN_PER_SECOND,
} from './handshake-queue.js';
import { keyToBase64 } from '../crypto/wireguard-keys.js';
import { Peer } from './peer.js';
import { receiveBatch } from './receive.js';
import { sealStaged, sendBatch } from './send.js';
import type { DestinationPolicy } from './destination-policy.js';

/**
 * The device is under load (whitepaper §5.3: cookies and the per-source rate
 * limit apply) while its handshake queue is at least 1/8 full, and for
 * UNDER_LOAD_HOLD ms after (wireguard-go IsUnderLoad, UnderLoadAfterTime).
 * A flood from one address does not get there: it is shed at the queue's
 * door (HANDSHAKE_QUEUE_SOURCE_RATE), so a new client's first initiation is
 * answered at once instead of with a cookie (which costs a wireguard-go
 * client a REKEY_TIMEOUT before it retries). A flood from many addresses
 * fills the queue and turns cookies on — or, with a UDP bind that sheds in
 * native code, the bind's per-read cap (markUnderLoad). Under load each
 * source's share of the queue is the whitepaper's 20/s, and the load lasts
 * while UNDER_LOAD_SUSTAIN_PER_SECOND messages a second still get in.
 */
const UNDER_LOAD_HOLD = 1000;

/** Output batch geometry: big enough for any staged packet plus header, padding and tag. */
const OUT_SLOTS = 64;
export const SLOT_SIZE = MAX_PACKET_SIZE + 64 + 1;

export interface DeviceOptions {
  clock: Clock;
  /** Receives batches of datagrams to send; each slot's endpoint record says where. */
  sendToNetwork: (batch: PacketBatch) => void;
  /** Receives batches of decrypted IP packets. */
  writeToTun: (batch: PacketBatch) => void;
  privateKey?: Uint8Array | null;
  crypto?: CryptoBackend;
  random?: Random;
  /** Interface MTU, for padding (whitepaper §5.4.6 pads to 16 without exceeding it). */
  mtu?: number;
  /** Drop packets from one peer addressed to another peer's allowed IPs (an exit's client isolation). */
  isolatePeers?: boolean;
  /** Drop packets from peers to destinations this policy refuses (an exit's own and private networks). */
  destinationPolicy?: DestinationPolicy | null;
  /** Force the under-load state (tests); default: measured. */
  underLoad?: 'auto' | 'always' | 'never';
}

/** Our static identity and what is precomputed from it (whitepaper §5.4.2, §5.4.4). */
interface Identity {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  checker: CookieChecker;
  initial: SymmetricState;
}

export class DeviceCore implements DataPath {
  readonly clock: Clock;
  readonly crypto: CryptoBackend;
  readonly allowedIps = new AllowedIps<Peer>();
  readonly drops: Record<DropReason, number>;
  /** Datagrams received and not dropped, by what they were; drops + accepted = received, once the queue is empty. */
  readonly accepted: Record<AcceptKind, number>;
  /** Handshake messages waiting for processHandshakes (receive.ts puts them there). */
  readonly handshakes = new HandshakeQueue();
  readonly isolatePeers: boolean;
  /** Where peers' packets may not go; replaced as a whole when the host's addresses change. */
  destinationPolicy: DestinationPolicy | null;
  readonly mtu: number;
  readonly sendToNetwork: (batch: PacketBatch) => void;
  readonly writeToTun: (batch: PacketBatch) => void;
  /** Handshakes, keepalives and staged packets waiting to be handed to the network sink. */
  readonly out = new PacketBatch(OUT_SLOTS, SLOT_SIZE);

  private readonly random: Random;
  private readonly indices: IndexTable<IndexEntry>;
  private readonly rateLimiter = new RateLimiter();
  /** Admission to the handshake queue per source address (handshake-queue.ts), and the smaller share under load. */
  private readonly queueAdmission = new RateLimiter(HANDSHAKE_QUEUE_SOURCE_RATE, HANDSHAKE_QUEUE_SOURCE_BURST);
  private readonly queueAdmissionUnderLoad = new RateLimiter(HANDSHAKE_QUEUE_SOURCE_RATE_UNDER_LOAD, HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD);
  /** Messages queued while under load in the one-second window from admittedSince (UNDER_LOAD_SUSTAIN_PER_SECOND; windows follow each other). */
  private admittedUnderLoad = 0;
  private admittedSince = -Infinity;
  private identity: Identity | null = null;
  private readonly peersById = new Map<string, Peer>();
  private readonly underLoadMode: 'auto' | 'always' | 'never';
  private underLoadUntil = -Infinity;
  private lastGc = -Infinity;

  constructor(opts: DeviceOptions) {
    this.clock = opts.clock;
    this.crypto = opts.crypto ?? defaultBackend();
    this.random = opts.random ?? systemRandom;
    this.indices = new IndexTable(this.random);
    this.sendToNetwork = opts.sendToNetwork;
    this.writeToTun = opts.writeToTun;
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    this.isolatePeers = opts.isolatePeers ?? false;
    this.destinationPolicy = opts.destinationPolicy ?? null;
    this.underLoadMode = opts.underLoad ?? 'auto';
    this.drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    this.accepted = Object.fromEntries(ACCEPT_KINDS.map((k) => [k, 0])) as Record<AcceptKind, number>;
    if (opts.privateKey) this.setPrivateKey(opts.privateKey);
  }

  // ---- configuration -------------------------------------------------------

  /**
   * Sets (or clears) our static private key. As in wireguard-go, a peer whose
   * public key equals our new public key is removed, every peer's
   * static-static DH is recomputed and current sessions are expired.
   */
  setPrivateKey(privateKey: Uint8Array | null): void {
    if (privateKey && privateKey.length !== 32) throw new TypeError('private key must be 32 bytes');
    const old = this.identity;
    if (old && privateKey && Buffer.compare(old.privateKey, privateKey) === 0) return;
    old?.privateKey.fill(0);
    if (!privateKey) {
      this.identity = null;
    } else {
      const sk = new Uint8Array(privateKey); // a copy (Buffer#slice would alias)
      const pk = this.crypto.x25519.publicKey(sk);
      this.identity = { privateKey: sk, publicKey: pk, checker: new CookieChecker(pk, this.random, this.crypto), initial: responderInitialState(pk) };
      const self = this.peersById.get(keyToBase64(pk));
      if (self) this.removePeer(self.publicKey);
    }
    for (const peer of this.peersById.values()) {
      peer.rekeyStatic(this.identity?.privateKey ?? null, this.crypto.x25519);
      this.expireCurrentKeypairs(peer);
    }
  }

  publicKey(): Uint8Array | null {
    return this.identity?.publicKey ?? null;
  }

  /** A copy of our private key (the UAPI `get` prints it, as wireguard-go does). */
  privateKey(): Uint8Array | null {
    return this.identity ? new Uint8Array(this.identity.privateKey) : null;
  }

  hasPrivateKey(): boolean {
    return this.identity !== null;
  }

  lookupIndex(index: number): IndexEntry | undefined {
    return this.indices.get(index);
  }

  peer(publicKey: Uint8Array): Peer | undefined {
    return this.peersById.get(keyToBase64(publicKey));
  }

  peers(): IterableIterator<Peer> {
    return this.peersById.values();
  }

  get peerCount(): number {
    return this.peersById.size;
  }

  /** Returns the peer with this public key, creating it if needed. */
  addPeer(publicKey: Uint8Array): Peer {
    if (publicKey.length !== 32) throw new TypeError('public key must be 32 bytes');
    const id = keyToBase64(publicKey);
    let peer = this.peersById.get(id);
    if (!peer) {
      if (this.identity && Buffer.compare(this.identity.publicKey, publicKey) === 0) {
        throw new RangeError('a peer cannot have the device\'s own public key');
      }
      peer = new Peer(publicKey, this.identity?.privateKey ?? null, this.crypto.x25519, this.random, this.crypto);
      this.peersById.set(id, peer);
    }
    return peer;
  }

  removePeer(publicKey: Uint8Array): boolean {
    const peer = this.peersById.get(keyToBase64(publicKey));
    if (!peer) return false;
    this.peersById.delete(peer.id);
    this.allowedIps.removeValue(peer);
    peer.timers.stopAll();
    this.clearHandshake(peer);
    for (const kp of [peer.previous, peer.current, peer.next]) if (kp) this.deleteKeypair(kp);
    peer.previous = peer.current = peer.next = null;
    peer.staged = [];
    peer.setPresharedKey(null);
    peer.keys.staticStatic?.fill(0);
    return true;
  }

  removeAllPeers(): void {
    for (const p of [...this.peersById.values()]) this.removePeer(p.publicKey);
  }

  setPersistentKeepalive(peer: Peer, seconds: number): void {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 65535) throw new RangeError('persistent keepalive must be 0..65535 seconds');
    peer.timers.persistentKeepaliveInterval = seconds * 1000;
    if (seconds === 0) peer.timers.persistentKeepalive = Infinity;
  }

  // ---- entry points ----------------------------------------------------------

  /** IP packets read from the TUN (16 bytes of headroom each) → datagrams to the network sink. */
  receiveFromTun(batch: PacketBatch): void {
    sendBatch(this, batch);
  }

  /** Datagrams from the network → IP packets to the TUN sink. */
  receiveFromNetwork(batch: PacketBatch): void {
    receiveBatch(this, batch);
  }

  /** Runs expired timers of every peer (whitepaper §6). Call a few times per second. */
  tick(): void {
    const now = this.clock.now();
    for (const peer of this.peersById.values()) {
      if (peer.timers.next() > now) continue;
      for (let t = peer.timers.popDue(now); t !== null; t = peer.timers.popDue(now)) {
        switch (t) {
          case 'retransmitHandshake':
            if (peer.timers.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
              // §6.4: give up after REKEY_ATTEMPT_TIME; drop what waited, erase keys later.
              peer.staged = [];
              peer.timers.sendKeepalive = Infinity;
              if (peer.timers.zeroKeyMaterial === Infinity) peer.timers.zeroKeyMaterial = now + 3 * REJECT_AFTER_TIME;
            } else {
              peer.timers.handshakeAttempts++;
              this.sendHandshakeInitiation(peer, true, now);
            }
            break;
          case 'sendKeepalive':
            this.queueKeepalive(peer, now);
            if (peer.timers.needAnotherKeepalive) {
              peer.timers.needAnotherKeepalive = false;
              peer.timers.sendKeepalive = now + KEEPALIVE_TIMEOUT;
            }
            break;
          case 'newHandshake':
            this.sendHandshakeInitiation(peer, false, now);
            break;
          case 'zeroKeyMaterial':
            // §6.3: after 3 × REJECT_AFTER_TIME without a new session, erase every key.
            this.clearHandshake(peer);
            for (const kp of [peer.previous, peer.current, peer.next]) if (kp) this.deleteKeypair(kp);
            peer.previous = peer.current = peer.next = null;
            break;
          case 'persistentKeepalive':
            if (peer.timers.persistentKeepaliveInterval > 0) this.queueKeepalive(peer, now);
            break;
        }
      }
    }
    if (now - this.lastGc >= 1000) {
      this.rateLimiter.gc(now);
      this.queueAdmission.gc(now);
      this.queueAdmissionUnderLoad.gc(now);
      this.lastGc = now;
    }
    this.flushOut();
  }

  // ---- sessions ----------------------------------------------------------------

  /** A keypair can send while younger than REJECT_AFTER_TIME and below REJECT_AFTER_MESSAGES. */
  canSend(kp: Keypair | null, now: number): kp is Keypair {
    return kp !== null && now - kp.createdAt < REJECT_AFTER_TIME && kp.sendCounter < Number.MAX_SAFE_INTEGER;
  }

  /** Sends a keepalive now (e.g. when persistent keepalive is switched on), flushing the output. */
  sendKeepalive(peer: Peer): void {
    this.queueKeepalive(peer, this.clock.now());
    this.flushOut();
  }

  /**
   * Queues a keepalive: an empty transport message (whitepaper §6.5). Like
   * wireguard-go, it goes through the staged queue, so without a session it
   * starts a handshake instead.
   */
  private queueKeepalive(peer: Peer, now: number): void {
    if (peer.staged.length === 0) peer.staged.push(new Uint8Array(0));
    this.sendStaged(peer, now);
  }

  /** Sends what waits in the staged queue if the peer has a usable session, else asks for a handshake. */
  private sendStaged(peer: Peer, now: number): void {
    if (peer.staged.length === 0) return;
    const kp = peer.current;
    if (!this.canSend(kp, now) || !peer.hasEndpoint()) {
      this.sendHandshakeInitiation(peer, false, now);
      return;
    }
    const staged = peer.staged;
    peer.staged = [];
    for (const pkt of staged) {
      if (this.out.count === this.out.capacity) this.flushOut();
      sealStaged(this, peer, kp, pkt, now);
    }
  }

  /**
   * Queues a packet in the peer's staged queue (bounded; the oldest is
   * dropped first, as wireguard-go's QueueStagedPackets), then sends what
   * waits or starts a handshake.
   */
  stageAndSend(peer: Peer, pkt: Uint8Array, now: number): void {
    if (peer.staged.length >= STAGED_QUEUE_SIZE) peer.staged.shift();
    peer.staged.push(pkt);
    this.sendStaged(peer, now);
  }

  /** wireguard-go ExpireCurrentKeypairs: nothing more is sent on the current/next keypairs. */
  private expireCurrentKeypairs(peer: Peer): void {
    this.clearHandshake(peer);
    peer.lastSentHandshake = -Infinity;
    if (peer.current) peer.current.sendCounter = Number.MAX_SAFE_INTEGER;
    if (peer.next) peer.next.sendCounter = Number.MAX_SAFE_INTEGER;
  }

  private deleteKeypair(kp: Keypair): void {
    if (this.indices.get(kp.localIndex)?.keypair === kp) this.indices.delete(kp.localIndex);
    kp.wipe();
  }

  private clearHandshake(peer: Peer): void {
    if (peer.handshake.kind === 'initiation-sent') {
      const hs = peer.handshake.initiation;
      if (this.indices.get(hs.localIndex)?.keypair === null) this.indices.delete(hs.localIndex);
      hs.ephemeralPrivate.fill(0);
      hs.st.wipe();
    }
    peer.handshake = { kind: 'none' };
  }

  /**
   * Installs new transport keys (whitepaper §5.4.5 and the key rotation of
   * wireguard-go's BeginSymmetricSession): the initiator uses them at once
   * (current; the old current becomes previous), the responder holds them as
   * `next` until the initiator's first packet confirms them.
   */
  private beginSession(peer: Peer, kp: Keypair, now: number): void {
    if (kp.isInitiator) {
      if (peer.next) {
        const oldNext = peer.next;
        peer.next = null;
        if (peer.previous) this.deleteKeypair(peer.previous);
        peer.previous = oldNext;
        if (peer.current) this.deleteKeypair(peer.current);
      } else {
        if (peer.previous) this.deleteKeypair(peer.previous);
        peer.previous = peer.current;
      }
      peer.current = kp;
    } else {
      if (peer.next) this.deleteKeypair(peer.next);
      peer.next = kp;
      if (peer.previous) this.deleteKeypair(peer.previous);
      peer.previous = null;
    }
    peer.sentLastMinuteHandshake = false;
    peer.timers.sessionDerived(now);
  }

  /**
   * The first authenticated packet on `next` confirms it (whitepaper §5.4.5:
   * the responder may not send with a session before the initiator used it):
   * it becomes current, the handshake counts as complete and what was staged
   * for the peer goes out.
   */
  authenticated(peer: Peer, kp: Keypair, now: number): void {
    if (peer.next !== kp) return;
    if (peer.previous) this.deleteKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = kp;
    peer.next = null;
    this.handshakeComplete(peer);
    this.sendStaged(peer, now);
  }

  // ---- handshakes -------------------------------------------------------------

  /**
   * Sends an initiation (whitepaper §5.4.2), at most one per REKEY_TIMEOUT
   * per peer (§6.1). `isRetry` is set by the retransmit timer.
   */
  sendHandshakeInitiation(peer: Peer, isRetry: boolean, now: number): void {
    const id = this.identity;
    if (!id) return;
    if (!isRetry) peer.timers.handshakeAttempts = 0;
    if (now - peer.lastSentHandshake < REKEY_TIMEOUT) return;
    peer.lastSentHandshake = now;
    this.clearHandshake(peer);
    const entry: IndexEntry = { peer, keypair: null };
    const localIndex = this.indices.allocate(entry);
    const msg = new Uint8Array(Initiation.SIZE);
    const initiation = createInitiation(
      this.crypto.x25519,
      { staticPrivate: id.privateKey, staticPublic: id.publicKey },
      peer.keys,
      localIndex,
      tai64n(this.clock.wallMs()),
      msg,
    );
    if (!initiation) {
      this.indices.delete(localIndex);
      return;
    }
    peer.handshake = { kind: 'initiation-sent', initiation, sentAt: now };
    peer.cookies.addMacs(msg, 0, Initiation.SIZE, now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketSent();
    this.queueOut(peer, msg);
    peer.timers.handshakeInitiated(now);
  }

  /**
   * Copies a handshake message into the output batch, addressed to the peer's
   * endpoint. Without a known endpoint it cannot leave and is counted as
   * `no-endpoint` (wireguard-go: "no known endpoint for peer").
   */
  private queueOut(peer: Peer, msg: Uint8Array): void {
    if (!peer.hasEndpoint()) {
      this.drops['no-endpoint']++;
      return;
    }
    if (this.out.count === this.out.capacity) this.flushOut();
    const i = this.out.count++;
    this.out.offsets[i] = 0;
    this.out.lengths[i] = msg.length;
    this.out.data.set(msg, i * this.out.slotSize);
    this.out.endpoints.set(peer.endpoint, i * ENDPOINT_SIZE);
    peer.txBytes += msg.length;
  }

  /** Queues a reply to the datagram's source (cookie replies go to whoever asked). */
  private queueReply(msg: Uint8Array, src: Uint8Array, srcAt: number): void {
    if (this.out.count === this.out.capacity) this.flushOut();
    const i = this.out.count++;
    this.out.offsets[i] = 0;
    this.out.lengths[i] = msg.length;
    this.out.data.set(msg, i * this.out.slotSize);
    this.out.endpoints.set(src.subarray(srcAt, srcAt + ENDPOINT_SIZE), i * ENDPOINT_SIZE);
  }

  flushOut(): void {
    if (this.out.count === 0) return;
    this.sendToNetwork(this.out);
    this.out.count = 0;
  }

  /**
   * Puts a handshake message into the queue unless its source is over its
   * share or the queue is full; the drop reason, or null when queued. No
   * cryptography happens here.
   */
  queueHandshake(type: number, buf: Uint8Array, at: number, len: number, src: Uint8Array, srcAt: number, now: number): DropReason | null {
    // Under load a message needs room in both shares: the smaller one does not hand a source a second allowance.
    const underLoad = this.underLoad(now);
    let admitted = this.queueAdmission.take(src, srcAt, now);
    if (underLoad && admitted !== REFUSED) admitted = this.queueAdmissionUnderLoad.take(src, srcAt, now);
    if (admitted === REFUSED) return 'handshake-source-limited';
    if (!this.handshakes.push(type, buf, at, len, src, srcAt, admitted === ALLOWED_FRESH)) return 'handshake-queue-full';
    if (underLoad) this.admittedUnderLoad++;
    return null;
  }

  /** Whether the device is under load now (the share per source the UDP bind should shed with follows it). */
  isUnderLoad(): boolean {
    return this.underLoad(this.clock.now());
  }

  /**
   * The UDP bind shed handshake messages for want of room in one read (its
   * per-call cap, native/src/udp-shed.cc): more arrive than a batch's share
   * of handshake work, as when the queue fills — the device is under load.
   */
  markUnderLoad(now: number): void {
    this.underLoadUntil = now + UNDER_LOAD_HOLD;
  }

  /**
   * Processes up to `max` queued handshake messages, oldest first (mac1, then
   * under load mac2 or a cookie reply and the rate limit, then the Noise
   * step), and sends what they produced. Returns how many it processed.
   */
  processHandshakes(max: number): number {
    let n = 0;
    for (; n < max && this.handshakes.length > 0; n++) this.handshakes.shift(this.handleQueued);
    this.flushOut();
    return n;
  }

  private readonly handleQueued = (type: number, buf: Uint8Array, at: number, len: number, src: Uint8Array, srcAt: number): void => {
    const reason = this.handleHandshake(type, buf, at, len, src, srcAt, this.clock.now());
    if (reason !== null) this.drops[reason]++;
    else this.accepted[type === MSG_INITIATION ? 'initiation' : type === MSG_COOKIE_REPLY ? 'cookie-reply' : 'response']++;
  };

  /** Whether handshake processing is under load (whitepaper §5.3: then cookies and rate limits apply); see UNDER_LOAD_HOLD. */
  private underLoad(now: number): boolean {
    if (this.underLoadMode !== 'auto') return this.underLoadMode === 'always';
    if (this.handshakes.length >= this.handshakes.capacity / 8) this.underLoadUntil = now + UNDER_LOAD_HOLD;
    if (now - this.admittedSince >= 1000) {
      // A one-second window of admissions under load ended: enough of them keep the load on for a hold after its end.
      const end = this.admittedSince + 1000;
      if (this.admittedUnderLoad >= UNDER_LOAD_SUSTAIN_PER_SECOND) this.underLoadUntil = Math.max(this.underLoadUntil, end + UNDER_LOAD_HOLD);
      this.admittedSince = now - end < 1000 ? end : now;
      this.admittedUnderLoad = 0;
    }
    return now < this.underLoadUntil;
  }

  /**
   * Handles one handshake message (initiation, response or cookie reply) of
   * exact length at buf[at, at+len), from the endpoint record src[srcAt..].
   * Returns a drop reason, or null when it was consumed.
   */
  handleHandshake(type: number, buf: Uint8Array, at: number, len: number, src: Uint8Array, srcAt: number, now: number): DropReason | null {
    const id = this.identity;
    if (!id) return 'no-private-key';
    if (type === MSG_COOKIE_REPLY) {
      const entry = this.indices.get(readU32(buf, at + CookieReply.RECEIVER));
      if (!entry) return 'unknown-receiver';
      return entry.peer.cookies.consumeReply(buf, at, now) ? null : 'bad-cookie';
    }
    if (!id.checker.checkMac1(buf, at, len)) return 'bad-mac1';
    if (this.underLoad(now)) {
      if (!id.checker.checkMac2(buf, at, len, src, srcAt, now)) {
        const sender = readU32(buf, at + Initiation.SENDER); // same offset in both handshake messages
        this.queueReply(id.checker.createReply(buf, at, len, sender, src, srcAt, now), src, srcAt);
        return 'bad-mac2';
      }
      if (!this.rateLimiter.allow(src, srcAt, now)) return 'rate-limited';
    }
    const msg = buf.subarray(at, at + len);
    return type === MSG_INITIATION ? this.consumeInitiation(id, msg, src, srcAt, now) : this.consumeResponse(id, msg, src, srcAt, now);
  }

  private consumeInitiation(id: Identity, msg: Uint8Array, src: Uint8Array, srcAt: number, now: number): DropReason | null {
    const consumed = consumeInitiation(this.crypto.x25519, id.privateKey, id.initial, msg, (rs) => {
      const peer = this.peersById.get(keyToBase64(rs));
      return peer ? { peer, keys: peer.keys } : null;
    });
    if (!consumed) return 'handshake-failed';
    const peer = consumed.peer;
    // §5.1: the timestamp must be newer than any seen from this peer; §5.3: at most 50 initiations/s.
    if (peer.latestTimestamp && !tai64nAfter(consumed.timestamp, peer.latestTimestamp)) return 'replayed-initiation';
    if (now - peer.lastInitiationConsumed < INITIATIONS_MIN_INTERVAL) return 'initiation-flood';
    peer.latestTimestamp = consumed.timestamp;
    peer.lastInitiationConsumed = now;
    peer.rxBytes += msg.length;
    this.updateEndpoint(peer, src, srcAt);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketReceived();

    const entry: IndexEntry = { peer, keypair: null };
    const localIndex = this.indices.allocate(entry);
    const resp = new Uint8Array(Response.SIZE);
    const keys = createResponse(this.crypto.x25519, consumed, peer.keys, localIndex, resp);
    if (!keys) {
      this.indices.delete(localIndex);
      return 'handshake-failed';
    }
    const kp = new Keypair(keys.sendKey, keys.receiveKey, false, now, localIndex, consumed.remoteIndex);
    entry.keypair = kp;
    this.beginSession(peer, kp, now);
    peer.cookies.addMacs(resp, 0, Response.SIZE, now);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketSent();
    this.queueOut(peer, resp);
    return null;
  }

  private consumeResponse(id: Identity, msg: Uint8Array, src: Uint8Array, srcAt: number, now: number): DropReason | null {
    const entry = this.indices.get(readU32(msg, Response.RECEIVER));
    if (!entry || entry.keypair !== null) return 'unknown-receiver';
    const peer = entry.peer;
    const hs = peer.handshake;
    if (hs.kind !== 'initiation-sent' || hs.initiation.localIndex !== readU32(msg, Response.RECEIVER)) return 'unexpected-response';
    const keys = consumeResponse(this.crypto.x25519, { staticPrivate: id.privateKey, staticPublic: id.publicKey }, hs.initiation, peer.keys, msg);
    if (!keys) return 'handshake-failed';
    // The handshake's index now names the keypair (wireguard-go reuses it).
    hs.initiation.ephemeralPrivate.fill(0);
    hs.initiation.st.wipe();
    peer.handshake = { kind: 'none' };
    const kp = new Keypair(keys.sendKey, keys.receiveKey, true, now, hs.initiation.localIndex, keys.remoteIndex);
    entry.keypair = kp;
    this.indices.replace(kp.localIndex, entry);
    peer.rxBytes += msg.length;
    this.updateEndpoint(peer, src, srcAt);
    peer.timers.anyAuthenticatedPacketTraversal(now);
    peer.timers.anyAuthenticatedPacketReceived();
    this.beginSession(peer, kp, now);
    this.handshakeComplete(peer);
    // Confirm the session to the responder at once: staged data, or a keepalive.
    this.queueKeepalive(peer, now);
    return null;
  }

  private handshakeComplete(peer: Peer): void {
    peer.timers.handshakeComplete();
    peer.lastHandshakeWallMs = this.clock.wallMs();
  }

  /** Roaming (whitepaper §2.1): the endpoint follows the source of authenticated packets. */
  updateEndpoint(peer: Peer, src: Uint8Array, srcAt: number): void {
    const ep = peer.endpoint;
    for (let i = 0; i < ENDPOINT_SIZE; i++) {
      if (ep[i] !== src[srcAt + i]) {
        ep.set(src.subarray(srcAt, srcAt + ENDPOINT_SIZE));
        return;
      }
    }
  }
}
