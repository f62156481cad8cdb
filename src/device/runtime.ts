/**
 * Puts a Device on real (or in-memory) I/O: TUN batches go to
 * device.receiveFromTun, UDP batches to device.receiveFromNetwork, the
 * device's sinks write to the TUN and send on the bind, and a timer calls
 * device.tick() a few times per second. The only place in the device layer
 * that schedules anything.
 *
 * Handshake messages the receive path queued but did not get to are drained
 * HANDSHAKES_PER_TURN at a time from setImmediate callbacks: they run after
 * the event loop's poll phase, so the UDP socket is read (and its data
 * forwarded) between any two portions of handshake work, and a flood cannot
 * keep the loop from the socket (wireguard-go runs its handshake workers
 * beside the receive goroutines for the same reason).
 *
 * A bind that can shed in native code (the Linux UDP bind) is told the
 * handshake queue's admission rule, and the smaller share per source
 * whenever the device goes under load and back.
 */
import type { PacketBatch } from '../io/batch.js';
import type { TunDevice, UdpBind } from '../io/types.js';
import { TRANSPORT_HEADER_LEN } from '../protocol/constants.js';
import { systemClock } from '../protocol/clock.js';
import { Device, type DeviceOptions } from './device.js';
import {
  HANDSHAKE_QUEUE_SOURCE_BURST,
  HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD,
  HANDSHAKE_QUEUE_SOURCE_RATE,
  HANDSHAKE_QUEUE_SOURCE_RATE_UNDER_LOAD,
  HANDSHAKES_PER_BATCH,
} from './handshake-queue.js';
import type { ShedPolicy } from '../io/types.js';

/**
 * The bind's native shed (native/src/udp-shed.cc) applies the handshake
 * queue's admission rule before JS sees a datagram: the same shares per
 * source (the smaller one as well while the device is under load, which the
 * runtime passes on), and at most HANDSHAKES_PER_BATCH messages per read (as
 * many again from fresh sources), the handshake work one batch gets.
 */
const SHED_POLICY: ShedPolicy = {
  perSecond: HANDSHAKE_QUEUE_SOURCE_RATE,
  burst: HANDSHAKE_QUEUE_SOURCE_BURST,
  loadedPerSecond: HANDSHAKE_QUEUE_SOURCE_RATE_UNDER_LOAD,
  loadedBurst: HANDSHAKE_QUEUE_SOURCE_BURST_UNDER_LOAD,
  perCall: HANDSHAKES_PER_BATCH,
};

/** Queued handshake messages processed per event-loop turn (a few ms of Diffie-Hellman at most). */
export const HANDSHAKES_PER_TURN = 32;

export interface RuntimeOptions extends Partial<Omit<DeviceOptions, 'sendToNetwork' | 'writeToTun'>> {
  tun: TunDevice;
  bind?: UdpBind | null;
  /** How often timers are checked, ms; 0 disables the timer (tests call device.tick()). */
  tickIntervalMs?: number;
}

export class DeviceRuntime {
  readonly device: Device;
  readonly tun: TunDevice;
  private bind: UdpBind | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private draining: NodeJS.Immediate | null = null;
  /** Whether the bind sheds natively (UdpBind.shedHandshakes), and with the under-load share. */
  private shedding = false;
  private shedUnderLoad = false;
  /** Whether packets flow (wireguard-go's device up/down follows the interface). */
  up = true;

  constructor(opts: RuntimeOptions) {
    this.tun = opts.tun;
    this.device = new Device({
      ...opts,
      clock: opts.clock ?? systemClock,
      mtu: opts.mtu ?? opts.tun.mtu(),
      sendToNetwork: (b: PacketBatch) => this.bind?.send(b),
      writeToTun: (b: PacketBatch) => this.tun.write(b),
    });
    this.tun.start((b) => {
      if (this.up) this.device.receiveFromTun(b);
    }, TRANSPORT_HEADER_LEN);
    if (opts.bind) this.setBind(opts.bind);
    const every = opts.tickIntervalMs ?? 100;
    if (every > 0) {
      this.ticker = setInterval(() => this.device.tick(), every);
      this.ticker.unref();
    }
  }

  /** Replaces the UDP bind (a new listen port); the old one is closed. */
  setBind(bind: UdpBind | null): void {
    this.bind?.close();
    this.bind = bind;
    // Where the bind can, the handshake queue's admission rule runs in native code before JS sees a datagram.
    this.shedUnderLoad = false;
    this.shedding = bind?.shedHandshakes?.(SHED_POLICY) ?? false;
    bind?.start((b) => {
      if (!this.up) return;
      this.device.receiveFromNetwork(b);
      this.followLoad();
      this.scheduleDrain();
    }, 0);
  }

  /** The bind's shed takes the share per source the device applies now (handshake-queue.ts: smaller under load). */
  private followLoad(): void {
    if (!this.shedding) return;
    const underLoad = this.device.isUnderLoad();
    if (underLoad === this.shedUnderLoad) return;
    this.shedUnderLoad = underLoad;
    this.bind?.shedUnderLoad?.(underLoad);
  }

  private scheduleDrain(): void {
    if (this.draining !== null || this.device.handshakeBacklog === 0) return;
    this.draining = setImmediate(() => {
      this.draining = null;
      this.device.processHandshakes(HANDSHAKES_PER_TURN);
      this.scheduleDrain();
    });
  }

  currentBind(): UdpBind | null {
    return this.bind;
  }

  close(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    if (this.draining) clearImmediate(this.draining);
    this.draining = null;
    this.device.clearHandshakeBacklog();
    this.bind?.close();
    this.bind = null;
    this.device.removeAllPeers();
    this.device.setPrivateKey(null);
    this.tun.close();
  }
}
