/**
 * The bounded queue between classifying a received batch and doing the
 * handshake work (wireguard-go device/receive.go: RoutineReceiveIncoming puts
 * handshake messages on `queue.handshake` with a non-blocking send and drops
 * them when it is full; RoutineHandshake does mac1, the cookie logic and the
 * Noise step later). Transport data never waits behind it: the receive path
 * handles data of a batch at once and only copies handshake messages here.
 *
 * What does not fit — or comes from an address over its share
 * (HANDSHAKE_QUEUE_SOURCE_RATE) — is dropped before any cryptography: a flood of
 * initiations costs the receive path one type check and one copy per message,
 * whatever its rate. The queue's fill level is also the "under load" signal
 * (wireguard-go IsUnderLoad: a queue at least 1/8 full, and for one second
 * after), which turns on cookies and the per-source rate limit (whitepaper
 * §5.3).
 *
 * A ring of fixed slots allocated once: a message (at most an initiation's
 * 148 bytes) and its source endpoint record per slot; nothing is allocated
 * per message.
 */
import { ENDPOINT_SIZE } from '../io/endpoint.js';
import { HANDSHAKE_RATE_BURST, HANDSHAKE_RATE_PER_SECOND } from '../protocol/constants.js';
import { Initiation } from '../protocol/messages.js';

/** wireguard-go device/queueconstants_default.go QueueHandshakeSize. */
export const HANDSHAKE_QUEUE_SIZE = 1024;

/**
 * Handshake messages one source address (IPv4, or IPv6 /64) may put in the
 * queue per second, and in one burst. Ours, not wireguard-go's: one thread
 * here does all the work, so a single flooding address would otherwise keep
 * the queue full, put the device under load and make every new client wait
 * for a cookie; what it gets in costs a Diffie-Hellman each (~60 µs), so
 * 256/s is a few percent of a core. A legitimate address sends one
 * initiation per peer per REKEY_TIMEOUT at most: 256/s is tens of thousands
 * of peers behind one NAT. Floods from many (spoofed) addresses fill the
 * queue and are shed by it as in wireguard-go, with cookies on.
 */
export const HANDSHAKE_QUEUE_SOURCE_RATE = 256;
export const HANDSHAKE_QUEUE_SOURCE_BURST = 128;

/**
 * The share per source while the device is under load: the whitepaper's
 * per-source handshake rate (§5.3; HANDSHAKE_RATE_PER_SECOND, 20/s, burst 5),
 * applied before the queue instead of only after mac2. Under load every
 * message without a valid mac2 costs a cookie reply, so a flood from many
 * addresses at 256/s each would keep the one device thread busy sealing
 * cookies (64 addresses: 16k/s); at 20/s each it is 1.3k/s. A legitimate
 * client needs two messages per handshake under load (one answered by a
 * cookie, its retry with mac2), far inside the share; one address behind
 * which many peers sit gets about ten handshakes a second while the load
 * lasts — what the kernel's post-mac2 limit allows it anyway.
 */
export const HANDSHAKE_QUEUE_SOURCE_RATE_UNDER_LOAD = HANDSHAKE_RATE_PER_SECOND;
export const HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD = HANDSHAKE_RATE_BURST;

/**
 * Once under load, the device stays so while at least this many handshake
 * messages a second get into the queue (with the smaller share above, a
 * flood from 26 or more addresses), instead of flipping back to the large
 * share after UNDER_LOAD_HOLD and being flooded at 256/s per address until
 * the queue fills again. One flooding address under load gets 20/s and so
 * does not keep the device under load.
 */
export const UNDER_LOAD_SUSTAIN_PER_SECOND = 512;

/**
 * The last slots of the queue, kept for messages from "fresh" sources (whose
 * share was full: new, or quiet for a while — a legitimate client sends one
 * initiation per REKEY_TIMEOUT): sources that keep sending fill the queue
 * only up to capacity - reserve. So while a flood from many addresses, each
 * within its share, keeps the queue as full as it may, a new client's
 * initiation still gets in, and an answer (a cookie reply under load) within
 * one queue's worth of work.
 */
export const HANDSHAKE_QUEUE_FRESH_RESERVE = HANDSHAKE_QUEUE_SIZE / 8;

/** Handshake messages the receive path handles per network batch, after the batch's data (the rest wait in the queue). */
export const HANDSHAKES_PER_BATCH = 32;

/** Bytes per message slot: the largest handshake message (an initiation). */
const MSG_SLOT = Initiation.SIZE;

export class HandshakeQueue {
  readonly capacity: number;
  /** Slots only messages from fresh sources may take (HANDSHAKE_QUEUE_FRESH_RESERVE). */
  readonly reserve: number;
  /** Message bytes, MSG_SLOT per slot. */
  readonly data: Uint8Array;
  /** Source endpoint records, ENDPOINT_SIZE per slot. */
  readonly endpoints: Uint8Array;
  private readonly types: Uint8Array;
  private readonly lengths: Uint16Array;
  private head = 0; // next slot to take
  private size = 0;

  constructor(capacity = HANDSHAKE_QUEUE_SIZE, reserve = Math.floor((capacity * HANDSHAKE_QUEUE_FRESH_RESERVE) / HANDSHAKE_QUEUE_SIZE)) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`handshake queue capacity must be a positive integer, got ${capacity}`);
    if (!Number.isInteger(reserve) || reserve < 0 || reserve >= capacity) throw new RangeError(`handshake queue reserve must be an integer in 0..${capacity - 1}, got ${reserve}`);
    this.capacity = capacity;
    this.reserve = reserve;
    this.data = new Uint8Array(capacity * MSG_SLOT);
    this.endpoints = new Uint8Array(capacity * ENDPOINT_SIZE);
    this.types = new Uint8Array(capacity);
    this.lengths = new Uint16Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  /**
   * Copies a handshake message of type `type` (buf[at, at+len), len at most
   * an initiation's size) and its source record in; false when the queue is
   * full (the caller drops and counts it) — for a message from a source that
   * is not `fresh`, already when only the reserve is left.
   */
  push(type: number, buf: Uint8Array, at: number, len: number, src: Uint8Array, srcAt: number, fresh = true): boolean {
    if (this.size >= (fresh ? this.capacity : this.capacity - this.reserve)) return false;
    if (len > MSG_SLOT) throw new RangeError(`a handshake message is at most ${MSG_SLOT} bytes, got ${len}`);
    const slot = (this.head + this.size) % this.capacity;
    this.data.set(buf.subarray(at, at + len), slot * MSG_SLOT);
    this.endpoints.set(src.subarray(srcAt, srcAt + ENDPOINT_SIZE), slot * ENDPOINT_SIZE);
    this.types[slot] = type;
    this.lengths[slot] = len;
    this.size++;
    return true;
  }

  /**
   * Takes the oldest message and hands it to `fn` as (type, data, at, len,
   * endpoints, endpointAt); the slot's bytes stay valid only during the call.
   * Returns fn's result, or undefined when the queue is empty.
   */
  shift<T>(fn: (type: number, data: Uint8Array, at: number, len: number, endpoints: Uint8Array, endpointAt: number) => T): T | undefined {
    if (this.size === 0) return undefined;
    const slot = this.head;
    try {
      return fn(this.types[slot]!, this.data, slot * MSG_SLOT, this.lengths[slot]!, this.endpoints, slot * ENDPOINT_SIZE);
    } finally {
      // Released only now, so nothing pushed during fn can land in the slot fn reads.
      this.head = (this.head + 1) % this.capacity;
      this.size--;
    }
  }

  /** Forgets every queued message (the device lost its key, or shuts down). */
  clear(): number {
    const n = this.size;
    this.head = 0;
    this.size = 0;
    return n;
  }
}
