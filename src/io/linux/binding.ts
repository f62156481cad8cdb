/**
 * The native addon (native/, built by `npm run build`) and its TypeScript
 * shape. The addon is thin (native/README.md): it checks argument types and
 * bounds and makes syscalls; options, defaults and policy are in tun.ts and
 * udp.ts, which take a binding as a parameter so tests can give them another
 * build (or a fake).
 */
import { loadTunnelbyteAddon } from '../../executable/native-addons.js';

/** An owned, non-blocking fd watched by the event loop. */
export interface NativeHandle {
  /**
   * Calls `cb(status)` once per wakeup in which the fd is readable (status 0)
   * or reports an error (status < 0, a libuv code; polling has then stopped,
   * call poll again to resume). Replaces an earlier callback.
   */
  poll(cb: (status: number) => void): void;
  pause(): void;
  /** Stops polling and closes the fd; idempotent. */
  close(): void;
  ref(): void;
  unref(): void;
  /** The descriptor, -1 once closed. */
  readonly fd: number;
}

export interface NativeConstants {
  readonly IFF_TUN: number;
  readonly IFF_NO_PI: number;
  readonly IFF_TUN_EXCL: number;
  readonly IFF_VNET_HDR: number;
  readonly IFNAMSIZ: number;
  readonly EAGAIN: number;
  readonly EINTR: number;
  readonly EINVAL: number;
  readonly EIO: number;
  readonly EBADFD: number;
  readonly ENOBUFS: number;
  readonly EAFNOSUPPORT: number;
  readonly EADDRNOTAVAIL: number;
  readonly ENODEV: number;
  readonly ENOTTY: number;
  readonly EOPNOTSUPP: number;
  readonly EACCES?: number;
  readonly EPERM?: number;
}

/**
 * Batch calls all take (handle, data, offsets, lengths, endpoints|null,
 * slotSize, count, headroom, res): the fields of a PacketBatch, the number of
 * slots to fill or send, the offset to read packets at, and an Int32Array(4)
 * the call fills with [dropped, failed, lastErrno, offloaded] (RES_* below;
 * the fourth slot counts what the offloads did: super-packets split,
 * GSO writes, UDP_SEGMENT datagrams, GRO messages split).
 */
export interface NativeBinding {
  readonly constants: NativeConstants;

  /**
   * Creates (or attaches to) TUN interface `name` (a template like "tb%d" allowed); netns "" = ours.
   * With IFF_VNET_HDR in `flags` it also turns on the offloads (TUNSETVNETHDRSZ, TUNSETOFFLOAD
   * TUN_F_CSUM|TSO4|TSO6) and reads/writes plain packets all the same (native/src/tun-offload.cc);
   * it throws (EINVAL) where the kernel refuses them.
   */
  tunOpen(name: string, flags: number, netns: string): NativeHandle;
  tunName(h: NativeHandle): string;
  tunGetMtu(h: NativeHandle): number;
  tunSetMtu(h: NativeHandle, mtu: number): void;
  tunGetUp(h: NativeHandle): boolean;
  tunSetUp(h: NativeHandle, up: boolean): void;
  /** errno of a zero-length write(): EBADFD once the interface is gone. */
  tunProbe(h: NativeHandle): number;
  /**
   * Packets read into slots 0..n-1 (0: none pending), or -errno. With offloads: res[0] packets too big
   * for a slot, res[1] malformed/unsupported ones (dropped), res[3] TCP super-packets split into slots.
   */
  tunRead(h: NativeHandle, data: Uint8Array, offsets: Int32Array, lengths: Int32Array, endpoints: null, slotSize: number, capacity: number, headroom: number, res: Int32Array): number;
  /** Packets written; res[0] dropped (queue full), res[1] failed; with offloads res[3] GSO writes of coalesced TCP segments. */
  tunWrite(h: NativeHandle, data: Uint8Array, offsets: Int32Array, lengths: Int32Array, endpoints: null, slotSize: number, count: number, headroom: number, res: Int32Array): number;

  /** A UDP socket: family 6 is dual-stack (IPV6_V6ONLY=0); address "" = wildcard; netns "" = ours. */
  udpOpen(family: 4 | 6, address: string, port: number, bufferSize: number, netns: string): NativeHandle;
  /**
   * An unprivileged ICMP echo socket (native/src/ping.cc): a datagram handle that udpRecv/udpSend take.
   * Throws EACCES when net.ipv4.ping_group_range excludes our group. Optional so that older builds and fakes still load.
   */
  pingOpen?(family: 4 | 6, netns: string): NativeHandle;
  udpPort(h: NativeHandle): number;
  /** [SO_RCVBUF, SO_SNDBUF] as the kernel reports them (double the usable size). */
  udpBufferSizes(h: NativeHandle): [number, number];
  udpSetMark(h: NativeHandle, mark: number): void;
  /** Datagrams received into slots 0..n-1 with sources in `endpoints` (0: none pending), or -errno; res[0] truncated. */
  udpRecv(h: NativeHandle, data: Uint8Array, offsets: Int32Array, lengths: Int32Array, endpoints: Uint8Array, slotSize: number, capacity: number, headroom: number, res: Int32Array): number;
  /**
   * Datagrams sent; res[0] dropped (buffer full), res[1] failed (per datagram, also with GSO);
   * res[3] datagrams that went out in UDP_SEGMENT messages. With GRO, udpRecv's res[3] counts
   * coalesced messages split into their datagrams.
   */
  udpSend(h: NativeHandle, data: Uint8Array, offsets: Int32Array, lengths: Int32Array, endpoints: Uint8Array, slotSize: number, count: number, headroom: number, res: Int32Array): number;
  /**
   * UDP offloads (native/src/udp-offload.cc): GSO = UDP_SEGMENT sends of runs of equal-size datagrams
   * to one endpoint; GRO = setsockopt UDP_GRO, coalesced receives split back. Returns the state
   * (bit 0 GSO, bit 1 GRO): what the kernel accepted. A refused GSO send may turn GSO off later
   * (udpGetOffload). Optional so that older builds and fakes still load.
   */
  udpSetOffload?(h: NativeHandle, gso: boolean, gro: boolean): number;
  udpGetOffload?(h: NativeHandle): number;
  /**
   * The receive-side shed (native/src/udp-shed.cc): per-source handshake shares (perSecond, burst;
   * under load loadedPerSecond, loadedBurst as well) and per-call cap; perCall 0 turns it off. While
   * on, udpRecv needs res of at least RES_SIZE + SHED_REASONS elements and counts what it shed in
   * res[RES_SIZE + SHED_*]. Optional so that older builds and fakes still load.
   */
  udpSetShed?(h: NativeHandle, perSecond: number, burst: number, loadedPerSecond: number, loadedBurst: number, perCall: number): void;
  /** The device went under load (true) or out of it: the shed applies the smaller share as well while true. */
  udpShedUnderLoad?(h: NativeHandle, on: boolean): void;

  // The *ForTest functions exist only in the test build of the addon
  // (native/src/test-exports.cc, loaded by test/support/test-binding.ts).
  /**
   * Test-only: the messages udpSend would make of datagrams 0..count-1: message m is
   * out[3m] first datagram, out[3m+1] datagrams, out[3m+2] UDP_SEGMENT size (0: single, no cmsg).
   * Datagrams with an endpoint this socket kind cannot reach are skipped. Returns the messages.
   */
  udpPlanForTest?(lengths: Int32Array, endpoints: Uint8Array, count: number, gso: boolean, v6sock: boolean, out: Int32Array): number;
  /**
   * Test-only: one received message (`input`, gsoSize from its UDP_GRO cmsg, 0 = none) split into
   * slots 0..count-1 as udpRecv with GRO does; cursor = Int32Array(2) [next piece, more].
   */
  udpSplitForTest?(input: Uint8Array, gsoSize: number, data: Uint8Array, offsets: Int32Array, lengths: Int32Array, slotSize: number, count: number, headroom: number, res: Int32Array, cursor: Int32Array): number;

  /**
   * Test-only: the bytes tunWrite with offloads writes for packets 0..count-1 (virtio_net_hdr + packet
   * per write, runs of TCP segments coalesced), one after another in `out`; returns the number of writes,
   * write j being outLengths[j] bytes.
   */
  tunCoalesceForTest?(data: Uint8Array, offsets: Int32Array, lengths: Int32Array, slotSize: number, count: number, out: Uint8Array, outLengths: Int32Array): number;
  /**
   * Test-only: what tunRead does with one read from a TUN with offloads. `input` is a
   * virtio_net_hdr + packet; the packet (checksum completed) or the segments of a TCP
   * super-packet go to slots 0..count-1. cursor = Int32Array(2): [next segment, more];
   * more = 1 when segments are left for another call, which continues at cursor[0].
   * Returns the slots filled; res as for tunRead.
   */
  /**
   * Test-only: the shed's verdict for messages 0..n-1 (data[offsets[i], +lengths[i]) from endpoint
   * record i, at times[i] ms) with shares [perSecond, burst, loadedPerSecond, loadedBurst]; a udpRecv
   * call begins at each i with calls[i] & 1, and message i meets the device under load when
   * calls[i] & 2; out[i] = -1 (kept) or the SHED_* reason. Returns n.
   */
  udpShedForTest?(shares: Int32Array, perCall: number, data: Uint8Array, offsets: Int32Array, lengths: Int32Array, endpoints: Uint8Array, times: Float64Array, calls: Uint8Array, out: Int32Array): number;
  tunSegmentForTest?(input: Uint8Array, data: Uint8Array, offsets: Int32Array, lengths: Int32Array, slotSize: number, count: number, headroom: number, res: Int32Array, cursor: Int32Array): number;
}

/** Batches read per event-loop wakeup before yielding to other work (TUN and UDP). */
export const DEFAULT_MAX_BATCHES_PER_WAKEUP = 8;

/** Result slots of the batch calls. */
export const RES_DROPPED = 0;
export const RES_FAILED = 1;
export const RES_LAST_ERRNO = 2;
/**
 * tunRead with offloads: TCP super-packets split in this call; tunWrite: GSO writes; udpSend: datagrams
 * sent in UDP_SEGMENT messages; udpRecv: UDP_GRO messages split.
 */
export const RES_GSO = 3;
/** Result slots of the batch calls; udpRecv with the shed on counts what it shed after them. */
export const RES_SIZE = 4;
/** udpSetOffload/udpGetOffload state bits. */
export const UDP_OFFLOAD_GSO = 1;
export const UDP_OFFLOAD_GRO = 2;

const EXPORTS = [
  'tunOpen', 'tunName', 'tunGetMtu', 'tunSetMtu', 'tunGetUp', 'tunSetUp', 'tunProbe', 'tunRead', 'tunWrite',
  'udpOpen', 'udpPort', 'udpBufferSizes', 'udpSetMark', 'udpRecv', 'udpSend',
] as const;

let cached: NativeBinding | null = null;

/**
 * Loads the addon at `path`, another build (tests); without it, the default one
 * (src/executable/native-addons.ts: embedded in the executable, else this
 * checkout's build). Throws when it is missing or incomplete.
 */
export function loadBinding(path?: string): NativeBinding {
  const mod = loadTunnelbyteAddon(path);
  checkBinding(mod, path ?? 'the native addon');
  return mod;
}

/** The default build, loaded once. */
export function defaultBinding(): NativeBinding {
  cached ??= loadBinding();
  return cached;
}

function checkBinding(mod: unknown, where: string): asserts mod is NativeBinding {
  const m = mod as Record<string, unknown> | null;
  if (typeof m !== 'object' || m === null) throw new TypeError(`${where}: not a native I/O binding`);
  for (const name of EXPORTS) {
    if (typeof m[name] !== 'function') throw new TypeError(`${where}: binding lacks ${name}()`);
  }
  if (typeof m.constants !== 'object' || m.constants === null) throw new TypeError(`${where}: binding lacks constants`);
}

/** A network namespace given by name (as `ip netns` knows it) or by path; "" for ours. */
export function netnsPath(netns: string | undefined): string {
  if (netns === undefined || netns === '') return '';
  if (typeof netns !== 'string') throw new TypeError(`netns must be a string, got ${typeof netns}`);
  if (netns.startsWith('/')) return netns;
  if (!/^[A-Za-z0-9_.=+-]{1,255}$/.test(netns) || netns === '.' || netns === '..') {
    throw new TypeError(`invalid network namespace name: ${JSON.stringify(netns)}`);
  }
  return `/run/netns/${netns}`;
}

/** Checks an optional integer option; returns it or the default. */
export function intOption(name: string, value: number | undefined, min: number, max: number, dflt: number): number {
  if (value === undefined) return dflt;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
  }
  return value;
}

/** An on/off environment switch that defaults to on (TB_TUN_OFFLOAD, TB_UDP_OFFLOAD): off only for 0, false, off or no. */
export function envSwitch(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env[name];
  return v === undefined || !/^(0|false|off|no)$/i.test(v.trim());
}
