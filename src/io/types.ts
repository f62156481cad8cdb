/**
 * The two batch interfaces between the WireGuard device and the outside
 * world (docs/principles.md §6). The Linux implementations live in `io/linux/` over the
 * native addon; `io/memory/` has in-memory ones for tests and benchmarks.
 *
 * Ownership rule for every callback: the batch belongs to the callee only for
 * the duration of the call (the producer refills it afterwards). A consumer
 * that needs a packet later copies it.
 */
import type { PacketBatch } from './batch.js';

/** A layer-3 TUN device without packet information headers (IFF_TUN | IFF_NO_PI). */
export interface TunDevice {
  readonly name: string;
  /** Current MTU of the interface. */
  mtu(): number;
  /**
   * Starts reading. `onBatch` is called with up to batch.capacity IP packets,
   * each placed at offset `headroom` in its slot.
   */
  start(onBatch: (batch: PacketBatch) => void, headroom: number): void;
  /** Writes packets 0..batch.count-1 (each at offsets[i], lengths[i]). Never blocks; drops on a full queue. */
  write(batch: PacketBatch): void;
  /** Called once when the device goes away (closed, or the interface was deleted). */
  onClose(cb: (reason: string) => void): void;
  close(): void;
}

/** A UDP socket pair/dual-stack socket bound to one port. */
export interface UdpBind {
  /** The bound port (after binding to port 0, the one the kernel chose). */
  port(): number;
  /**
   * Starts receiving. `onBatch` gets up to batch.capacity datagrams, each at
   * offset `headroom`, with its source in batch.endpoints.
   */
  start(onBatch: (batch: PacketBatch) => void, headroom: number): void;
  /** Sends datagrams 0..batch.count-1 to their batch.endpoints. Never blocks; drops when the socket buffer is full. */
  send(batch: PacketBatch): void;
  close(): void;
  /**
   * Where the bind can, sheds WireGuard datagrams before they are delivered
   * (native/src/udp-shed.cc): garbage by type and size, handshake messages
   * over `perSecond`/`burst` per source address (IPv6 /64) — and under load
   * over `loadedPerSecond`/`loadedBurst` as well (shedUnderLoad) — or over
   * `perCall` per read (as many again from sources whose share was full).
   * Transport data is always delivered. What is shed is counted in the next
   * delivered batch's `shed`. null turns it off. Returns whether the bind
   * sheds now.
   */
  shedHandshakes?(policy: ShedPolicy | null): boolean;
  /** Tells the shed whether the device is under load now. */
  shedUnderLoad?(on: boolean): void;
}

/** The receive-side shed's numbers (UdpBind.shedHandshakes). */
export interface ShedPolicy {
  perSecond: number;
  burst: number;
  loadedPerSecond: number;
  loadedBurst: number;
  perCall: number;
}
