/**
 * The worker thread that owns the exit's WireGuard device: the TUN, the UDP
 * socket, the crypto and the timers run on this thread's event loop and
 * nothing else does. The thread that runs the API talks to it only through
 * the channel of device-channel.ts (read that file's comment first): peer
 * changes and policy updates in batches, counters and figures on request.
 *
 * With `netstack` (serve --netstack) there is no TUN: the device runs over
 * the netstack in forwarding mode (netstack-exit/), whose forwarder applies
 * the destination policy itself (a refused TCP connection gets a RST rather
 * than silence), so the device keeps only client isolation.
 */
import { workerData, parentPort } from 'node:worker_threads';
import { DestinationPolicy } from '../device/destination-policy.js';
import { DeviceRuntime } from '../device/runtime.js';
import { openLinuxTun } from '../io/linux/tun.js';
import { openLinuxUdpBind, SERVER_SOCKET_BUFFER_SIZE } from '../io/linux/udp.js';
import type { TunDevice } from '../io/types.js';
import { DeviceDataPlane } from './device-data-plane.js';
import type { CounterRow, DeviceAnswers, DeviceEvent, DeviceFigures, DeviceMessage, DeviceWorkerData, EchoMode } from './device-channel.js';
import { ExitForwarder } from './netstack-exit/forwarder.js';
import { ExitStack } from './netstack-exit/exit-stack.js';
import { PingEchoRelay } from './netstack-exit/echo-relay.js';

const data = workerData as DeviceWorkerData;
const raise = (e: DeviceEvent) => parentPort!.postMessage(e);

let runtime: DeviceRuntime;
let forwarder: ExitForwarder | null = null;
let exitStack: ExitStack | null = null;
let echo: EchoMode | null = null;
try {
  let tun: TunDevice;
  if (data.netstack) {
    const clock = { now: () => performance.now() };
    // Echo through the host's ping socket where net.ipv4.ping_group_range allows this process one.
    const echoRelay = PingEchoRelay.open(clock);
    // A client's limits count by its peer (the device's allowed IPs own every source address it lets in), so
    // its IPv4 and IPv6 addresses share one budget. `runtime` exists by the time packets flow.
    const clientOf = (a: Uint8Array): string | null => (a.length === 4 ? runtime.device.allowedIps.lookup4(a, 0) : runtime.device.allowedIps.lookup6(a, 0))?.id ?? null;
    forwarder = new ExitForwarder({ policy: new DestinationPolicy(data.policy), ownPorts: data.netstack.ownPorts, limits: data.netstack.limits, clock, echo: echoRelay, clientOf });
    exitStack = new ExitStack({ addresses: data.netstack.addresses, mtu: data.mtu, forwarder });
    tun = exitStack.tun;
    echo = echoRelay ? 'ping-socket' : 'gateway-only';
  } else {
    tun = openLinuxTun({ name: data.tun, mtu: data.mtu, exclusive: true });
  }
  try {
    const bind = openLinuxUdpBind({ port: data.listenPort, bufferSize: SERVER_SOCKET_BUFFER_SIZE });
    const destinationPolicy = forwarder ? null : new DestinationPolicy(data.policy);
    runtime = new DeviceRuntime({ tun, bind, privateKey: data.privateKey, isolatePeers: true, destinationPolicy });
  } catch (e) {
    exitStack?.close();
    tun.close();
    throw e;
  }
  data.privateKey.fill(0); // the device holds its own copy
} catch (e) {
  raise({ event: 'failed', error: (e as Error).message });
  process.exit(1);
}

const dataPlane = new DeviceDataPlane(runtime.device);
const signal = new Int32Array(data.signal);
let closing = false;

runtime.tun.onClose((reason) => {
  if (!closing) raise({ event: 'tun-closed', reason });
});

function counters(): CounterRow[] {
  const rows: CounterRow[] = [];
  for (const [pk, c] of dataPlane.readCounters()) rows.push([pk, c.rxBytes, c.txBytes, c.lastHandshakeMs ?? 0]);
  return rows;
}

function figures(): DeviceFigures {
  const dev = runtime.device;
  let withSession = 0;
  let rx = 0;
  let tx = 0;
  for (const p of dev.peers()) {
    if (p.current) withSession++;
    rx += p.rxBytes;
    tx += p.txBytes;
  }
  const f: DeviceFigures = { peers: dev.peerCount, peersWithSession: withSession, rxBytes: rx, txBytes: tx, drops: { ...dev.drops }, accepted: { ...dev.accepted } };
  if (forwarder) f.netstack = { ...forwarder.figures, opened: { ...forwarder.opened }, drops: { ...forwarder.drops } };
  return f;
}

function answer<K extends keyof DeviceAnswers>(value: DeviceAnswers[K]): void {
  data.port.postMessage(value);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
}

data.port.on('message', (msg: DeviceMessage) => {
  switch (msg.op) {
    case 'peers':
      for (const c of msg.changes) {
        try {
          if (c.op === 'add') dataPlane.addPeer(c.spec);
          else dataPlane.removePeer(c.publicKey);
        } catch (e) {
          raise({ event: 'apply-failed', publicKey: c.op === 'add' ? c.spec.publicKey : c.publicKey, error: (e as Error).message });
        }
      }
      return;
    case 'policy':
      if (forwarder) forwarder.policy = new DestinationPolicy(msg.spec);
      else runtime.device.destinationPolicy = new DestinationPolicy(msg.spec);
      return;
    case 'own-ports':
      if (forwarder) forwarder.ownPorts = msg.ports;
      return;
    case 'counters':
      answer<'counters'>(counters());
      return;
    case 'figures':
      answer<'figures'>(figures());
      return;
    case 'close':
      closing = true;
      exitStack?.close();
      runtime.close();
      answer<'close'>(null);
      process.exit(0); // in a worker: ends this thread only
  }
});

raise({ event: 'ready', tun: runtime.tun.name, echo });
