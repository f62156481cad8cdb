/**
 * A Linux TUN interface as a TunDevice (io/types.ts), over the native addon.
 *
 * Reading (polled-reader.ts, shared with the UDP socket): on each wakeup
 * packets are read into one PacketBatch until the kernel has no more or the
 * batch is full, onBatch is called once per batch, up to
 * `maxBatchesPerWakeup` batches. Writing: one native call per batch, one
 * non-blocking write() per packet; a full queue drops.
 *
 * Offloads (`offload`, default on): the TUN is opened with IFF_VNET_HDR and
 * TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, so the kernel's TCP stack hands us
 * 64 KiB super-packets and leaves checksums to us; the addon completes the
 * checksums and splits super-packets into MTU-sized segments, one per slot
 * (native/src/tun-offload.cc), so onBatch still sees plain IP packets; on
 * the way back, consecutive TCP segments of one flow in a written batch go to
 * the kernel as one GSO write (GRO-style, same file). Where
 * the kernel refuses the offloads we open without them (`offload` then reads
 * false). TB_TUN_OFFLOAD=0 turns the default off (for comparisons).
 *
 * Deletion (`ip link del NAME`, or deleting the namespace the interface was
 * moved to) shows on the fd: poll reports an error and read() fails with
 * EBADFD. Then onClose callbacks get 'interface deleted'. Moving the interface
 * to another namespace (`ip link set NAME netns NS`) does not disturb the fd;
 * mtu()/setMtu()/setUp() follow it there (native/src/tun.cc, ControlSocket).
 */
import { PacketBatch, MAX_PACKET_SIZE } from '../batch.js';
import type { TunDevice } from '../types.js';
import { PolledReader, READ_STOP } from './polled-reader.js';
import { DEFAULT_MAX_BATCHES_PER_WAKEUP, defaultBinding, envSwitch, intOption, netnsPath, RES_DROPPED, RES_FAILED, RES_GSO, RES_LAST_ERRNO, type NativeBinding, type NativeHandle } from './binding.js';

/** Slots hold a 64 KiB packet plus the transport header in front and the tag and padding behind (like io/memory.ts). */
export const DEFAULT_TUN_SLOT_SIZE = 65536 + 128;
/** wireguard-go's conn.IdealBatchSize. */
export const DEFAULT_TUN_BATCH_SIZE = 128;

export interface LinuxTunOptions {
  /** Interface name (1-15 bytes), or a template with one "%d" ("tb%d") for the kernel to number. */
  name: string;
  /** Sets the MTU after creation (wireguard-go uses 1420); default: leave the kernel's. */
  mtu?: number;
  /** Brings the interface up after creation; default false (wg-quick/ip do it). */
  up?: boolean;
  /**
   * Fail with EBUSY instead of attaching when an interface of that name
   * exists (IFF_TUN_EXCL), so we only ever use a device we created. We never
   * set TUNSETPERSIST either way: our interface goes away with our fd.
   */
  exclusive?: boolean;
  /** Create the interface in this network namespace (a name under /run/netns, or a path); default: ours. */
  netns?: string;
  /** Slots per read batch (default 128). */
  batchSize?: number;
  /** Bytes per slot (default 65664). */
  slotSize?: number;
  /** Read batches per event-loop wakeup before yielding (default 8). */
  maxBatchesPerWakeup?: number;
  /**
   * Kernel offloads: IFF_VNET_HDR with checksum offload and TSO (TCP
   * super-packets split by the addon). Default true (unless TB_TUN_OFFLOAD=0);
   * falls back to a plain TUN where the kernel refuses — see LinuxTun.offload.
   */
  offload?: boolean;
  /** Another build of the addon (tests). */
  binding?: NativeBinding;
}

export interface TunStats {
  /** onBatch calls. */
  readBatches: number;
  readPackets: number;
  /** Read errors other than "nothing pending" and deletion. */
  readErrors: number;
  lastReadErrno: number;
  written: number;
  /** Packets dropped because the kernel's queue was full (or the device closed). */
  writeDropped: number;
  /** Packets the kernel refused (malformed, interface down). */
  writeFailed: number;
  lastWriteErrno: number;
  /** Offload reads: TCP super-packets (TSO) read and split into segments. */
  readGsoPackets: number;
  /** Offload writes: GSO writes that each carried a run of TCP segments of one flow (GRO-style). */
  writeGsoPackets: number;
  /** Offload reads: packets dropped as too big for a slot, malformed, or of an unsupported GSO type. */
  readDropped: number;
  lastReadDropErrno: number;
}

const NAME_RE = /^[^\s/:%]*(%d)?[^\s/:%]*$/;

/** Creates (or attaches to) a TUN interface. Throws an Error with `code` (EPERM, EBUSY, ...) when the kernel refuses. */
export function openLinuxTun(opts: LinuxTunOptions): LinuxTun {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('openLinuxTun: options object required');
  const { name } = opts;
  if (typeof name !== 'string') throw new TypeError(`interface name must be a string, got ${typeof name}`);
  if (name.length === 0 || Buffer.byteLength(name) > 15 || name === '.' || name === '..' || !NAME_RE.test(name)) {
    throw new TypeError(`invalid interface name ${JSON.stringify(name)}: 1-15 bytes, no whitespace, '/' or ':', at most one "%d"`);
  }
  const mtu = opts.mtu === undefined ? undefined : intOption('mtu', opts.mtu, 68, 65535, 0);
  if (opts.up !== undefined && typeof opts.up !== 'boolean') throw new TypeError('up must be a boolean');
  if (opts.exclusive !== undefined && typeof opts.exclusive !== 'boolean') throw new TypeError('exclusive must be a boolean');
  if (opts.offload !== undefined && typeof opts.offload !== 'boolean') throw new TypeError('offload must be a boolean');
  const wantOffload = opts.offload ?? envSwitch('TB_TUN_OFFLOAD');
  const batchSize = intOption('batchSize', opts.batchSize, 1, 4096, DEFAULT_TUN_BATCH_SIZE);
  const slotSize = intOption('slotSize', opts.slotSize, 256, MAX_PACKET_SIZE + 1024, DEFAULT_TUN_SLOT_SIZE);
  const maxBatches = intOption('maxBatchesPerWakeup', opts.maxBatchesPerWakeup, 1, 1024, DEFAULT_MAX_BATCHES_PER_WAKEUP);
  const ns = netnsPath(opts.netns);
  const binding = opts.binding ?? defaultBinding();

  const c = binding.constants;
  const flags = c.IFF_TUN | c.IFF_NO_PI | (opts.exclusive ? c.IFF_TUN_EXCL : 0);
  let handle: NativeHandle | null = null;
  let offload = false;
  if (wantOffload) {
    try {
      handle = binding.tunOpen(name, flags | c.IFF_VNET_HDR, ns);
      offload = true;
    } catch (e) {
      // A kernel without IFF_VNET_HDR or these offloads: EINVAL (tun_set_iff,
      // set_offload), ENOTTY/EOPNOTSUPP (no such ioctl). The addon closed
      // what it opened; anything else (EPERM, EBUSY) is a real failure.
      const errno = (e as NodeJS.ErrnoException).errno;
      if (errno !== c.EINVAL && errno !== c.ENOTTY && errno !== c.EOPNOTSUPP) throw e;
    }
  }
  handle ??= binding.tunOpen(name, flags, ns);
  try {
    const tun = new LinuxTun(binding, handle, binding.tunName(handle), new PacketBatch(batchSize, slotSize), maxBatches, offload);
    if (mtu !== undefined) tun.setMtu(mtu);
    if (opts.up) tun.setUp(true);
    return tun;
  } catch (e) {
    handle.close();
    throw e;
  }
}

export class LinuxTun extends PolledReader implements TunDevice {
  /** The interface's name when it was opened (see currentName()). */
  readonly name: string;
  readonly stats: TunStats = {
    readBatches: 0, readPackets: 0, readErrors: 0, lastReadErrno: 0,
    written: 0, writeDropped: 0, writeFailed: 0, lastWriteErrno: 0,
    readGsoPackets: 0, writeGsoPackets: 0, readDropped: 0, lastReadDropErrno: 0,
  };
  /** Whether the kernel offloads (IFF_VNET_HDR, checksum, TSO) are on for this device. */
  readonly offload: boolean;
  private closeReason: string | null = null;
  private readonly closeCbs: ((reason: string) => void)[] = [];
  private lastMtu = 0;
  private readonly res = new Int32Array(4);

  /** @internal use openLinuxTun */
  constructor(
    private readonly binding: NativeBinding,
    handle: NativeHandle,
    name: string,
    batch: PacketBatch,
    maxBatches: number,
    offload = false,
  ) {
    super(handle, batch, maxBatches);
    this.name = name;
    this.offload = offload;
    this.lastMtu = binding.tunGetMtu(handle);
  }

  /** The interface's name now (it may have been renamed); the last known name once closed. */
  currentName(): string {
    if (this.closeReason !== null) return this.name;
    return this.binding.tunName(this.handle);
  }

  /** The MTU; when it cannot be read (the interface is gone), the last value seen. */
  mtu(): number {
    if (this.closeReason !== null) return this.lastMtu;
    try {
      this.lastMtu = this.binding.tunGetMtu(this.handle);
    } catch {
      /* gone or unreachable: keep the last value */
    }
    return this.lastMtu;
  }

  setMtu(mtu: number): void {
    intOption('mtu', mtu, 68, 65535, 0);
    this.binding.tunSetMtu(this.checkOpen(), mtu);
    this.lastMtu = mtu;
  }

  /** Whether the interface is administratively up (IFF_UP). */
  isUp(): boolean {
    return this.binding.tunGetUp(this.checkOpen());
  }

  setUp(up: boolean): void {
    if (typeof up !== 'boolean') throw new TypeError('up must be a boolean');
    this.binding.tunSetUp(this.checkOpen(), up);
  }

  /** True once the kernel has deleted the interface (checked now, not only on the next read). */
  isDeleted(): boolean {
    if (this.closeReason !== null) return this.closeReason === 'interface deleted';
    return this.binding.tunProbe(this.handle) === this.binding.constants.EBADFD;
  }

  get closed(): boolean {
    return this.closeReason !== null;
  }

  write(batch: PacketBatch): void {
    const s = this.stats;
    if (this.closeReason !== null) {
      s.writeDropped += batch.count;
      return;
    }
    const res = this.res;
    const n = this.binding.tunWrite(this.handle, batch.data, batch.offsets, batch.lengths, null, batch.slotSize, batch.count, 0, res);
    s.written += n;
    if (this.offload) s.writeGsoPackets += res[RES_GSO]!;
    if (n !== batch.count) {
      s.writeDropped += res[RES_DROPPED]!;
      s.writeFailed += res[RES_FAILED]!;
      s.lastWriteErrno = res[RES_LAST_ERRNO]!;
    }
  }

  onClose(cb: (reason: string) => void): void {
    if (typeof cb !== 'function') throw new TypeError('onClose callback must be a function');
    if (this.closeReason !== null) cb(this.closeReason);
    else this.closeCbs.push(cb);
  }

  close(): void {
    this.closeWith('closed');
  }

  protected get keepsRemainder(): boolean {
    return this.offload;
  }

  protected readOnce(b: PacketBatch, headroom: number): number {
    const s = this.stats;
    const res = this.res;
    const n = this.binding.tunRead(this.handle, b.data, b.offsets, b.lengths, null, b.slotSize, b.capacity, headroom, res);
    if (this.offload) {
      s.readGsoPackets += res[RES_GSO]!;
      const dropped = res[RES_DROPPED]! + res[RES_FAILED]!;
      if (dropped !== 0) {
        s.readDropped += dropped;
        s.lastReadDropErrno = res[RES_LAST_ERRNO]!;
      }
    }
    if (n < 0) {
      if (-n === this.binding.constants.EBADFD) this.closeWith('interface deleted');
      else {
        s.readErrors++;
        s.lastReadErrno = -n;
      }
      return READ_STOP;
    }
    if (n > 0) {
      s.readBatches++;
      s.readPackets += n;
    }
    return n;
  }

  protected filled(n: number): boolean {
    return n === this.batch.capacity;
  }

  /** On POLLERR, find out whether the interface is gone before polling again. */
  protected override afterPollError(): void {
    if (this.binding.tunProbe(this.handle) === this.binding.constants.EBADFD) this.closeWith('interface deleted');
    else super.afterPollError();
  }

  private checkOpen(): NativeHandle {
    if (this.closeReason !== null) throw new Error(`TUN ${this.name} is closed (${this.closeReason})`);
    return this.handle;
  }

  private closeWith(reason: string): void {
    if (this.closeReason !== null) return;
    this.closeReason = reason;
    this.stopReading();
    this.handle.close();
    const cbs = this.closeCbs.splice(0);
    for (const cb of cbs) cb(reason);
  }
}
