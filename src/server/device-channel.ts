/**
 * The exit's WireGuard device on a thread of its own (DESIGN: the data plane
 * off the API's thread), seen from the thread that runs the API and SQLite.
 *
 * Why the device goes to the worker and the API stays: the device is what
 * must never wait. On the main thread it shared one event loop with Koa,
 * SQLite's synchronous calls, pino's writes and every signal handler, and an
 * API flood (wrong tokens at ~5,800/s) took a tunnel download from 715 to
 * 467 Mbit/s here. In the worker its loop holds only the TUN and UDP polls,
 * its timers and this channel. (Moving the API instead would have moved the
 * control plane's whole dependency tree — Koa, better-sqlite3, Stripe, pino —
 * into a worker, with the same split of one loop each; the device is the
 * smaller thing to move and the one whose latency matters.)
 *
 * The channel is one MessagePort, so everything on it stays in order:
 *   - peer changes and policy updates are posted and not answered, batched
 *     (all the changes of one reconcile in one message);
 *   - counters (a sync tick), figures (a /metrics scrape) and close are
 *     requests: the caller posts, then blocks on an Atomics.wait over a
 *     shared Int32Array until the worker has posted its answer, and takes it
 *     with receiveMessageOnPort. The worker answers between two batches, so
 *     a request costs well under a millisecond, a few times per sync
 *     interval — never per packet. Answering synchronously keeps the
 *     control plane's DataPlane interface synchronous (readCounters is
 *     exact at the moment of a flush, also right before a peer's removal
 *     and at shutdown).
 * Events the worker raises by itself (ready, TUN gone, a change it could not
 * apply) come on the worker's own port.
 */
import { isMainThread, MessageChannel, receiveMessageOnPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import { embeddedAsset, inSingleExecutable } from '../executable/sea.js';
import type { PeerSpec } from '../control/services/data-plane.js';
import type { DestinationPolicySpec } from '../device/destination-policy.js';
import type { AcceptKind, DropReason } from '../protocol/messages.js';
import type { ForwardDropReason, ForwarderLimits, OwnPorts } from './netstack-exit/forwarder.js';

/** `serve --netstack`: the device over the netstack in forwarding mode instead of a TUN (netstack-exit/). */
export interface NetstackExitInit {
  /** The pools' gateway addresses (the stack's own). */
  addresses: string[];
  ownPorts: OwnPorts;
  limits?: Partial<ForwarderLimits>;
}

export interface DeviceWorkerInit {
  /** The TUN interface's name (ignored with `netstack`). */
  tun: string;
  netstack?: NetstackExitInit | null;
  mtu: number;
  listenPort: number;
  privateKey: Uint8Array;
  policy: DestinationPolicySpec;
}

export type PeerChange = { op: 'add'; spec: PeerSpec } | { op: 'remove'; publicKey: string };

/** Posted to the worker, in order; only requests are answered. */
export type DeviceMessage =
  | { op: 'peers'; changes: PeerChange[] }
  | { op: 'policy'; spec: DestinationPolicySpec }
  /** The netstack exit's own listeners once they listen (their ports may have been 0 until then). */
  | { op: 'own-ports'; ports: OwnPorts }
  | { op: 'counters' }
  | { op: 'figures' }
  | { op: 'close' };

/** One peer's counters as they cross: public key, rx bytes, tx bytes, last handshake (ms since the epoch, 0: none). */
export type CounterRow = [publicKey: string, rxBytes: number, txBytes: number, lastHandshakeMs: number];

/** The device's figures for /metrics. */
export interface DeviceFigures {
  peers: number;
  peersWithSession: number;
  rxBytes: number;
  txBytes: number;
  drops: Record<DropReason, number>;
  /** Datagrams accepted since start by what they were: handshake initiations answered, responses that completed one, data, … */
  accepted: Record<AcceptKind, number>;
  /** The netstack exit's relays (absent for the TUN exit). */
  netstack?: { tcp: number; pending: number; udp: number; opened: { tcp: number; udp: number; echo: number }; drops: Record<ForwardDropReason, number> };
}

export interface DeviceAnswers {
  counters: CounterRow[];
  figures: DeviceFigures;
  close: null;
}

/** How the netstack exit answers echo requests (README "serve --netstack"). */
export type EchoMode = 'ping-socket' | 'gateway-only';

/** What the worker raises by itself. */
export type DeviceEvent =
  | { event: 'ready'; tun: string; echo: EchoMode | null }
  | { event: 'failed'; error: string }
  | { event: 'tun-closed'; reason: string }
  | { event: 'apply-failed'; publicKey: string; error: string };

const DEVICE_WORKER_ROLE = 'tunnelbyte-device-worker';

/** Everything the worker gets at start: the init and its end of the channel. */
export interface DeviceWorkerData extends DeviceWorkerInit {
  role: typeof DEVICE_WORKER_ROLE;
  port: MessagePort;
  /** Int32Array over it: [0] is set to 1 and notified when an answer has been posted. */
  signal: SharedArrayBuffer;
}

/** True on the device's worker thread (the single executable's entry point asks: it runs the same bundle there). */
export function isDeviceWorker(): boolean {
  return !isMainThread && (workerData as { role?: unknown } | null)?.role === DEVICE_WORKER_ROLE;
}

/**
 * A worker running device-worker.ts: from the checkout, its compiled file;
 * in the single executable, which has no files beside it, the embedded
 * bundle as code (its entry point then imports device-worker.ts).
 */
function spawnDeviceWorker(data: DeviceWorkerData): Worker {
  const options = { workerData: data, transferList: [data.port] };
  if (inSingleExecutable()) return new Worker(Buffer.from(embeddedAsset('tunnelbyte.cjs')).toString('utf8'), { ...options, eval: true });
  return new Worker(new URL('./device-worker.js', import.meta.url), options);
}

/** How long a request may wait for the worker before the caller gives up (a dead or stuck worker). */
const ANSWER_TIMEOUT_MS = 10_000;

export class DeviceWorker {
  private gone: ((reason: string) => void) | null = null;
  private exited = false;
  private closing = false;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly signal: Int32Array,
    readonly tun: string,
    /** The netstack exit's echo mode (null: the TUN exit). */
    readonly echo: EchoMode | null,
    onEvent: (e: DeviceEvent) => void,
  ) {
    worker.on('message', (e: DeviceEvent) => {
      if (e.event === 'tun-closed') this.gone?.(e.reason);
      else onEvent(e);
    });
    // An exception on the device's thread ends that thread, not the process: the exit then stops
    // as it does when its interface goes away (and a restart restores every peer).
    worker.on('error', (err) => onEvent({ event: 'failed', error: err.message }));
    worker.once('exit', (code) => {
      this.exited = true;
      if (!this.closing) this.gone?.(`the device worker exited (${code})`);
    });
  }

  /** Starts the worker: it opens the TUN and the UDP socket and answers once packets can flow. */
  static start(init: DeviceWorkerInit, onEvent: (e: DeviceEvent) => void): Promise<DeviceWorker> {
    const { port1, port2 } = new MessageChannel();
    const signal = new SharedArrayBuffer(4);
    const worker = spawnDeviceWorker({ ...init, role: DEVICE_WORKER_ROLE, port: port2, signal });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      const onExit = (code: number) => reject(new Error(`the device worker exited (${code}) before it was ready`));
      worker.once('error', onError);
      worker.once('exit', onExit);
      const onFirst = (e: DeviceEvent) => {
        if (e.event !== 'ready' && e.event !== 'failed') return;
        worker.off('message', onFirst);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (e.event === 'failed') {
          void worker.terminate();
          reject(new Error(e.error));
          return;
        }
        resolve(new DeviceWorker(worker, port1, new Int32Array(signal), e.tun, e.echo, onEvent));
      };
      worker.on('message', onFirst);
    });
  }

  /** Called if the device stops by itself: its interface went away (ip link del), or its thread ended. */
  onGone(cb: (reason: string) => void): void {
    this.gone = cb;
  }

  /** Posts a message that needs no answer; it is applied after everything posted before it. */
  post(msg: Exclude<DeviceMessage, { op: keyof DeviceAnswers }>): void {
    if (!this.exited) this.port.postMessage(msg);
  }

  /** Posts a request and waits for its answer (see the file comment). */
  request<K extends keyof DeviceAnswers>(op: K): DeviceAnswers[K] {
    if (this.exited) throw new Error('the device worker is not running');
    Atomics.store(this.signal, 0, 0);
    this.port.postMessage({ op });
    if (Atomics.wait(this.signal, 0, 0, ANSWER_TIMEOUT_MS) === 'timed-out') throw new Error(`the device worker did not answer ${op} within ${ANSWER_TIMEOUT_MS} ms`);
    const got = receiveMessageOnPort(this.port);
    if (!got) throw new Error(`the device worker signalled an answer to ${op} but none came`);
    return got.message as DeviceAnswers[K];
  }

  /** Closes the device (peers, UDP socket, TUN) and waits for the worker to end. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    try {
      this.request('close');
    } catch {
      await this.worker.terminate();
    }
    this.port.close();
    await exited;
  }
}
