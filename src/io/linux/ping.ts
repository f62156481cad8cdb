/**
 * Linux's unprivileged ICMP echo socket (SOCK_DGRAM, IPPROTO_ICMP /
 * IPPROTO_ICMPV6; native/src/ping.cc), which Node does not have: what lets a
 * process without CAP_NET_RAW send echo requests and get their replies —
 * allowed when its group is inside `net.ipv4.ping_group_range` (per network
 * namespace, covering IPv6 too; Debian's default "1 0" allows nobody).
 *
 * It is a datagram socket, so it comes as a LinuxUdpBind: batches in through
 * recvmmsg on the event loop (each slot an ICMP message without the IP
 * header, its source in the endpoint record), batches out through one
 * sendmmsg (each slot an echo request to its endpoint record's address; the
 * port is ignored). No thread pool, no per-packet callbacks. The kernel
 * replaces the identifier of every request with the socket's own and
 * computes the checksum; replies carry that identifier and the sequence
 * number sent.
 */
import { PacketBatch } from '../batch.js';
import { DEFAULT_MAX_BATCHES_PER_WAKEUP, defaultBinding, intOption, netnsPath, type NativeBinding } from './binding.js';
import { LinuxUdpBind } from './udp.js';

export interface LinuxPingOptions {
  family: 4 | 6;
  /** Open it in this network namespace (a name under /run/netns, or a path); default: ours. */
  netns?: string;
  /** Slots per receive batch (default 64). */
  batchSize?: number;
  /** Another build of the addon (tests). */
  binding?: NativeBinding;
}

/** Echo replies carry at most an MTU's worth: slots of 2 KiB hold any reply to a request the tunnel could carry at MTU 1420 and more. */
const PING_SLOT_SIZE = 2048 + 128;

/** Opens a ping socket. Throws an Error with code EACCES when ping_group_range excludes our group. */
export function openLinuxPingSocket(opts: LinuxPingOptions): LinuxUdpBind {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('openLinuxPingSocket: options must be an object');
  if (opts.family !== 4 && opts.family !== 6) throw new RangeError(`family must be 4 or 6, got ${String(opts.family)}`);
  const batchSize = intOption('batchSize', opts.batchSize, 1, 1024, 64);
  const ns = netnsPath(opts.netns);
  const binding = opts.binding ?? defaultBinding();
  if (typeof binding.pingOpen !== 'function') throw new TypeError('the native addon lacks pingOpen() (rebuild it: npm run build)');
  const handle = binding.pingOpen(opts.family, ns);
  try {
    return new LinuxUdpBind(binding, handle, opts.family, new PacketBatch(batchSize, PING_SLOT_SIZE), DEFAULT_MAX_BATCHES_PER_WAKEUP);
  } catch (e) {
    handle.close();
    throw e;
  }
}

/** Whether this process may open a ping socket of `family` here (false on EACCES/EPERM; other failures throw). */
export function pingSocketAllowed(family: 4 | 6 = 4, binding?: NativeBinding): boolean {
  try {
    openLinuxPingSocket({ family, binding }).close();
    return true;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EAFNOSUPPORT') return false;
    throw e;
  }
}
