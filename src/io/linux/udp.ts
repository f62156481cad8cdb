/**
 * A Linux UDP socket as a UdpBind (io/types.ts), over the native addon.
 *
 * One socket serves both families: AF_INET6 with IPV6_V6ONLY=0, bound to one
 * port, so there is one fd to poll, one recvmmsg per batch and one sendmmsg
 * per batch whatever the mix of IPv4 and IPv6 peers (wireguard-go uses two
 * sockets because Go's net package will not make a dual-stack one with the
 * options it needs; the kernel is happy with one). Where the kernel has no
 * IPv6 (ipv6.disable=1) we fall back to an AF_INET socket.
 *
 * Receiving (polled-reader.ts, shared with the TUN): each wakeup does
 * recvmmsg into one PacketBatch (sources into batch.endpoints, IPv4-mapped
 * addresses as family 4), calls onBatch once per batch, and repeats while
 * batches come back full, up to `maxBatchesPerWakeup`. Sending: one sendmmsg per batch; a full socket
 * buffer drops the rest of the batch and counts it.
 *
 * Offloads (`gso`, `gro`, default on where the kernel has them; TB_UDP_OFFLOAD=0
 * turns the default off): a send groups each run of equal-size datagrams to
 * one endpoint into one UDP_SEGMENT message (Linux 4.18), so the kernel
 * takes it through the stack once and segments it at the device; a receive
 * with UDP_GRO (5.0) gets coalesced datagrams that the addon splits back, so
 * onBatch still sees one datagram per slot, in order. See
 * native/src/udp-offload.cc.
 *
 * The receive-side shed (shedHandshakes, native/src/udp-shed.cc; the device
 * runtime turns it on with the handshake queue's rules): WireGuard garbage
 * and handshake messages over their source's share or a read's cap are
 * dropped in the addon before a slot is taken, counted in the delivered
 * batch's `shed` and in stats.recvShed, and a read goes on until the batch is
 * full of kept datagrams or the socket is empty.
 *
 * Socket buffers are 7 MiB like wireguard-go's (forced past
 * net.core.[rw]mem_max when we have CAP_NET_ADMIN), and path-MTU discovery
 * is off (IP_PMTUDISC_DONT), so a datagram bigger than the path is
 * fragmented instead of refused: large inner MTUs work over 1500-byte links.
 */
import { isIP } from 'node:net';
import { PacketBatch, MAX_PACKET_SIZE, SHED_REASONS } from '../batch.js';
import type { ShedPolicy, UdpBind } from '../types.js';
import { PolledReader, READ_AGAIN, READ_STOP } from './polled-reader.js';
import { DEFAULT_MAX_BATCHES_PER_WAKEUP, defaultBinding, envSwitch, intOption, netnsPath, RES_DROPPED, RES_FAILED, RES_GSO, RES_LAST_ERRNO, RES_SIZE, UDP_OFFLOAD_GRO, UDP_OFFLOAD_GSO, type NativeBinding, type NativeHandle } from './binding.js';

/** wireguard-go's socketBufferSize (conn/bind_std.go). */
export const DEFAULT_SOCKET_BUFFER_SIZE = 7 << 20;
/**
 * The buffers of a server's socket (tunnelbyte-wg, serve's device worker):
 * 32 MiB, memory the kernel takes only while datagrams wait. Under a
 * handshake flood from 64 addresses at 150–170k datagrams/s on a loaded
 * 2-core machine the device thread is off the CPU long enough to overflow
 * 7 MiB (75k datagrams lost in 15 s, transport data among them); with 32 MiB,
 * none (`npm run bench -- --flood-many`). Beyond net.core.rmem_max only
 * with CAP_NET_ADMIN, as any size here.
 */
export const SERVER_SOCKET_BUFFER_SIZE = 32 << 20;
/** wireguard-go's conn.IdealBatchSize. */
export const DEFAULT_UDP_BATCH_SIZE = 128;
/** Room for the largest UDP payload (65507 over IPv4, 65527 over IPv6) behind any headroom up to 128 bytes. */
export const DEFAULT_UDP_SLOT_SIZE = 65536 + 128;

export interface LinuxUdpOptions {
  /** Local port; 0 (default) lets the kernel choose — see port(). */
  port?: number;
  /**
   * Local address. Default: every address, IPv4 and IPv6 (dual-stack). An
   * IPv4 literal gives an IPv4-only socket, an IPv6 literal an IPv6 one.
   */
  host?: string;
  /** Open the socket in this network namespace (a name under /run/netns, or a path); default: ours. */
  netns?: string;
  /** SO_RCVBUF/SO_SNDBUF in bytes (default 7 MiB); 0 keeps the kernel's defaults. */
  bufferSize?: number;
  /** Slots per receive batch (default 128). */
  batchSize?: number;
  /** Bytes per slot (default 65664); datagrams that do not fit behind the headroom are dropped and counted. */
  slotSize?: number;
  /** Receive batches per event-loop wakeup before yielding (default 8). */
  maxBatchesPerWakeup?: number;
  /**
   * UDP_SEGMENT sends (runs of equal-size datagrams to one endpoint as one message). Default true
   * (unless TB_UDP_OFFLOAD=0); off where the kernel lacks it, and turned off if it refuses a GSO
   * send as unsupported (the batch then goes without) — see LinuxUdpBind.gso.
   */
  gso?: boolean;
  /** UDP_GRO receives (coalesced datagrams split back by the addon). Default true (unless TB_UDP_OFFLOAD=0); off where the kernel lacks it. */
  gro?: boolean;
  /** Another build of the addon (tests). */
  binding?: NativeBinding;
}

export interface UdpStats {
  /** onBatch calls. */
  recvBatches: number;
  received: number;
  /** Datagrams larger than a slot's room, dropped. */
  recvTruncated: number;
  /** recvmmsg errors (e.g. a pending ICMP error), each ends a wakeup's reading. */
  recvErrors: number;
  lastRecvErrno: number;
  sent: number;
  /** Datagrams dropped because the socket buffer was full (EAGAIN/ENOBUFS) or the bind was closed. */
  sendDropped: number;
  /** Datagrams the kernel refused (EMSGSIZE, ENETUNREACH, no route, bad endpoint record ...). */
  sendFailed: number;
  lastSendErrno: number;
  /** Datagrams sent inside UDP_SEGMENT (GSO) messages (part of `sent`). */
  sendGsoDatagrams: number;
  /** UDP_GRO messages received that held two or more datagrams (split into `received`). */
  recvGroMessages: number;
  /** Datagrams the shed dropped (shedHandshakes; not in `received`). */
  recvShed: number;
}

/** Binds a UDP port. Throws an Error with `code` (EADDRINUSE, EACCES ...) when the kernel refuses. */
export function openLinuxUdpBind(opts: LinuxUdpOptions = {}): LinuxUdpBind {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('openLinuxUdpBind: options must be an object');
  const port = intOption('port', opts.port, 0, 65535, 0);
  const bufferSize = intOption('bufferSize', opts.bufferSize, 0, 1 << 30, DEFAULT_SOCKET_BUFFER_SIZE);
  const batchSize = intOption('batchSize', opts.batchSize, 1, 4096, DEFAULT_UDP_BATCH_SIZE);
  const slotSize = intOption('slotSize', opts.slotSize, 256, MAX_PACKET_SIZE + 1024, DEFAULT_UDP_SLOT_SIZE);
  const maxBatches = intOption('maxBatchesPerWakeup', opts.maxBatchesPerWakeup, 1, 1024, DEFAULT_MAX_BATCHES_PER_WAKEUP);
  const ns = netnsPath(opts.netns);
  if (opts.gso !== undefined && typeof opts.gso !== 'boolean') throw new TypeError('gso must be a boolean');
  if (opts.gro !== undefined && typeof opts.gro !== 'boolean') throw new TypeError('gro must be a boolean');
  const gso = opts.gso ?? envSwitch('TB_UDP_OFFLOAD');
  const gro = opts.gro ?? envSwitch('TB_UDP_OFFLOAD');
  let host = '';
  let family: 4 | 6 | 0 = 0; // 0: dual-stack with IPv4 fallback
  if (opts.host !== undefined && opts.host !== '') {
    if (typeof opts.host !== 'string') throw new TypeError('host must be a string');
    const f = isIP(opts.host);
    if (f === 0) throw new TypeError(`host must be an IP address literal, got ${JSON.stringify(opts.host)}`);
    host = opts.host;
    family = f as 4 | 6;
  }
  const binding = opts.binding ?? defaultBinding();
  const c = binding.constants;

  let handle: NativeHandle;
  let dual = false;
  if (family !== 0) {
    handle = binding.udpOpen(family, host, port, bufferSize, ns);
  } else {
    try {
      handle = binding.udpOpen(6, '', port, bufferSize, ns);
      dual = true;
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (errno !== c.EAFNOSUPPORT && errno !== c.EADDRNOTAVAIL) throw e;
      handle = binding.udpOpen(4, '', port, bufferSize, ns);
    }
  }
  try {
    // Where the kernel refuses an offload it just stays off (udp.gso / udp.gro say which are on).
    if (binding.udpSetOffload && (gso || gro)) binding.udpSetOffload(handle, gso, gro);
    return new LinuxUdpBind(binding, handle, dual ? 'dual' : family === 6 ? 6 : 4, new PacketBatch(batchSize, slotSize), maxBatches);
  } catch (e) {
    handle.close();
    throw e;
  }
}

export class LinuxUdpBind extends PolledReader implements UdpBind {
  readonly stats: UdpStats = {
    recvBatches: 0, received: 0, recvTruncated: 0, recvErrors: 0, lastRecvErrno: 0,
    sent: 0, sendDropped: 0, sendFailed: 0, lastSendErrno: 0, sendGsoDatagrams: 0, recvGroMessages: 0, recvShed: 0,
  };
  private readonly boundPort: number;
  private isClosed = false;
  /** The batch calls' results, then (receiving with the shed on) what was shed by reason. */
  private readonly res = new Int32Array(RES_SIZE + SHED_REASONS);
  private shedOn = false;
  /** Datagrams the last read shed. */
  private lastShed = 0;
  /** Datagrams of the last read dropped as too big for a slot. */
  private truncated = 0;
  /** GRO was on at open (the addon then reads through its scratch, which may hold a remainder). */
  private readonly groOn: boolean;

  /** @internal use openLinuxUdpBind */
  constructor(
    private readonly binding: NativeBinding,
    handle: NativeHandle,
    /** Which peers the socket reaches: 'dual' (both families), 4 or 6. */
    readonly family: 'dual' | 4 | 6,
    batch: PacketBatch,
    maxBatches: number,
  ) {
    super(handle, batch, maxBatches);
    this.boundPort = binding.udpPort(handle);
    this.groOn = binding.udpGetOffload !== undefined && (binding.udpGetOffload(handle) & UDP_OFFLOAD_GRO) !== 0;
  }

  port(): number {
    return this.boundPort;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Whether sends use UDP_SEGMENT (GSO) now: asked for, accepted by the kernel, and not turned off by a refused send. */
  get gso(): boolean {
    return !this.isClosed && this.binding.udpGetOffload !== undefined && (this.binding.udpGetOffload(this.handle) & UDP_OFFLOAD_GSO) !== 0;
  }

  /** Whether the socket receives coalesced datagrams (UDP_GRO), split back by the addon. */
  get gro(): boolean {
    return !this.isClosed && this.binding.udpGetOffload !== undefined && (this.binding.udpGetOffload(this.handle) & UDP_OFFLOAD_GRO) !== 0;
  }

  /** [SO_RCVBUF, SO_SNDBUF] as the kernel reports them (twice the usable bytes). */
  bufferSizes(): [number, number] {
    return this.binding.udpBufferSizes(this.checkOpen());
  }

  /** Marks outgoing packets (SO_MARK, wg's fwmark); 0 clears. Needs CAP_NET_ADMIN. */
  setMark(mark: number): void {
    intOption('mark', mark, 0, 0xffffffff, 0);
    this.binding.udpSetMark(this.checkOpen(), mark);
  }

  /**
   * Turns the receive-side shed on with `policy`, or off with null
   * (native/src/udp-shed.cc; UdpBind.shedHandshakes). False where the addon
   * lacks it: the device then sheds in JavaScript alone.
   */
  shedHandshakes(policy: ShedPolicy | null): boolean {
    const setShed = this.binding.udpSetShed;
    if (setShed === undefined) return false;
    if (policy === null) {
      setShed(this.checkOpen(), 1, 1, 1, 1, 0);
      this.shedOn = false;
      return false;
    }
    const perSecond = intOption('perSecond', policy.perSecond, 1, 1_000_000, 0);
    const burst = intOption('burst', policy.burst, 1, 1_000_000, 0);
    const loadedPerSecond = intOption('loadedPerSecond', policy.loadedPerSecond, 1, 1_000_000, 0);
    const loadedBurst = intOption('loadedBurst', policy.loadedBurst, 1, 1_000_000, 0);
    const perCall = intOption('perCall', policy.perCall, 1, 65536, 0);
    setShed(this.checkOpen(), perSecond, burst, loadedPerSecond, loadedBurst, perCall);
    this.shedOn = true;
    return true;
  }

  /** The device is under load (true) or not: the shed applies the smaller share as well while it is. */
  shedUnderLoad(on: boolean): void {
    if (typeof on !== 'boolean') throw new TypeError('shedUnderLoad: expected a boolean');
    if (this.shedOn && !this.isClosed) this.binding.udpShedUnderLoad?.(this.handle, on);
  }

  send(batch: PacketBatch): void {
    const s = this.stats;
    if (this.isClosed) {
      s.sendDropped += batch.count;
      return;
    }
    const res = this.res;
    const n = this.binding.udpSend(this.handle, batch.data, batch.offsets, batch.lengths, batch.endpoints, batch.slotSize, batch.count, 0, res);
    s.sent += n;
    s.sendGsoDatagrams += res[RES_GSO]!;
    if (n !== batch.count) {
      s.sendDropped += res[RES_DROPPED]!;
      s.sendFailed += res[RES_FAILED]!;
      s.lastSendErrno = res[RES_LAST_ERRNO]!;
    }
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.stopReading();
    this.handle.close();
  }

  /** GRO was on at open: the addon then reads through its scratch, which may hold a remainder. */
  protected get keepsRemainder(): boolean {
    return this.groOn;
  }

  protected readOnce(b: PacketBatch, headroom: number): number {
    const s = this.stats;
    const res = this.res;
    const n = this.binding.udpRecv(this.handle, b.data, b.offsets, b.lengths, b.endpoints, b.slotSize, b.capacity, headroom, res);
    s.recvTruncated += res[RES_DROPPED]!;
    s.recvGroMessages += res[RES_GSO]!;
    this.truncated = res[RES_DROPPED]!;
    if (this.shedOn) {
      let shed = 0;
      const out = b.shed;
      for (let k = 0; k < SHED_REASONS; k++) {
        const v = res[RES_SIZE + k]!;
        out[k] = out[k]! + v;
        shed += v;
      }
      s.recvShed += shed;
      this.lastShed = shed;
    }
    if (n < 0) {
      s.recvErrors++;
      s.lastRecvErrno = -n;
      return READ_STOP;
    }
    if (n === 0) return this.truncated > 0 ? READ_AGAIN : 0; // everything in that round was truncated; there may be more
    s.recvBatches++;
    s.received += n;
    return n;
  }

  protected override shedOnly(): boolean {
    return this.lastShed > 0;
  }

  /** Truncated datagrams took slots of the round too. */
  protected filled(n: number): boolean {
    return n + this.truncated >= this.batch.capacity;
  }

  private checkOpen(): NativeHandle {
    if (this.isClosed) throw new Error('UDP bind is closed');
    return this.handle;
  }
}
