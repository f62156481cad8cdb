/**
 * Packet batches: the unit in which packets move between the TUN device, the
 * protocol core and the UDP socket.
 *
 * Like wireguard-go's `tun.Device.Read(bufs, sizes, offset)` and `conn.Bind`,
 * packets travel in batches of fixed-size slots carved out of one ArrayBuffer,
 * so that the native side can fill many packets per wakeup (readv/recvmmsg)
 * and the TypeScript side can work on them in place without allocating.
 *
 *   slot i  = data[i * slotSize, (i + 1) * slotSize)
 *   packet i = data[i * slotSize + offsets[i], ... + lengths[i])
 *
 * The headroom in front of a packet (its offset) lets the send path write the
 * 16-byte WireGuard transport header in front of an IP packet read from the
 * TUN, and encrypt it in place, without a copy. A UDP batch also carries the
 * remote address of each datagram, encoded in ENDPOINT_SIZE bytes (see
 * endpoint.ts) so that receiving a batch creates no objects.
 */
import { ENDPOINT_SIZE } from './endpoint.js';

/**
 * Datagrams a UDP bind's receive-side shed (native/src/udp-shed.cc) dropped
 * before the batch was delivered, by reason: the indexes of PacketBatch.shed.
 * The device counts them under the drop reasons of the same names.
 */
export const SHED_TOO_SHORT = 0;
export const SHED_UNKNOWN_TYPE = 1;
export const SHED_BAD_LENGTH = 2;
export const SHED_SOURCE_LIMITED = 3;
export const SHED_QUEUE_FULL = 4;
export const SHED_REASONS = 5;

/** Largest IP packet or UDP payload a slot must be able to hold (IPv4 total length is 16 bits). */
export const MAX_PACKET_SIZE = 65535;

export class PacketBatch {
  /** Backing store of all slots. */
  readonly data: Buffer;
  /** Bytes per slot. */
  readonly slotSize: number;
  /** Number of slots. */
  readonly capacity: number;
  /** Start of packet i inside its slot. */
  readonly offsets: Int32Array;
  /** Length of packet i. */
  readonly lengths: Int32Array;
  /** Remote endpoint of packet i (UDP batches), ENDPOINT_SIZE bytes per slot. */
  readonly endpoints: Uint8Array;
  /** Number of packets currently in the batch (slots 0..count-1). */
  count = 0;
  /**
   * Datagrams the producer dropped before this delivery, by SHED_* reason
   * (a UDP bind with its shed on); the consumer adds them to its counts and
   * zeroes them. All zero from any other producer.
   */
  readonly shed = new Int32Array(SHED_REASONS);

  constructor(capacity: number, slotSize: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 4096) {
      throw new RangeError(`batch capacity must be an integer in 1..4096, got ${capacity}`);
    }
    if (!Number.isInteger(slotSize) || slotSize < 64 || slotSize > MAX_PACKET_SIZE + 1024) {
      throw new RangeError(`batch slot size must be an integer in 64..${MAX_PACKET_SIZE + 1024}, got ${slotSize}`);
    }
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.data = Buffer.alloc(capacity * slotSize);
    this.offsets = new Int32Array(capacity);
    this.lengths = new Int32Array(capacity);
    this.endpoints = new Uint8Array(capacity * ENDPOINT_SIZE);
  }

  /** Absolute byte offset of packet i in `data`. */
  start(i: number): number {
    return i * this.slotSize + this.offsets[i]!;
  }

  /** A view of packet i (allocates a view object: not for the hot path). Copy with `new Uint8Array(view)`: Buffer#slice does not copy. */
  packet(i: number): Buffer {
    const s = this.start(i);
    return this.data.subarray(s, s + this.lengths[i]!);
  }

  /** Bytes available in slot i after `offset`. */
  room(offset: number): number {
    return this.slotSize - offset;
  }

  /** The endpoint bytes of packet i (a view). */
  endpoint(i: number): Uint8Array {
    return this.endpoints.subarray(i * ENDPOINT_SIZE, (i + 1) * ENDPOINT_SIZE);
  }
}
