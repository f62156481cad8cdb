/**
 * The control plane's DataPlane over the device worker (device-channel.ts):
 * what DeviceDataPlane does on the device, done from the API's thread.
 *
 * addPeer/removePeer check their arguments here, synchronously, as the
 * interface promises (a malformed key or prefix, or the exit's own key,
 * throws to the caller), and queue the change; the queue crosses to the
 * worker as one message at the end of the current turn (one reconcile's
 * changes together) or before the next request, whichever comes first, so
 * readCounters always sees every change made before it.
 */
import type { DataPlane, PeerCounters, PeerSpec } from '../control/services/data-plane.js';
import type { DeviceWorker, PeerChange } from './device-channel.js';
import { decodeKey, parsePeerSpec } from './device-data-plane.js';

export class WorkerDataPlane implements DataPlane {
  private pending: PeerChange[] = [];
  private scheduled = false;

  constructor(
    private readonly worker: DeviceWorker,
    /** The exit's own public key (base64): never a peer. */
    private readonly ownPublicKey: string,
  ) {}

  addPeer(spec: PeerSpec): void {
    parsePeerSpec(spec);
    if (spec.publicKey === this.ownPublicKey) throw new RangeError('a peer cannot have the device\'s own public key');
    this.queue({ op: 'add', spec: { publicKey: spec.publicKey, allowedIps: [...spec.allowedIps] } });
  }

  removePeer(publicKey: string): void {
    decodeKey(publicKey);
    this.queue({ op: 'remove', publicKey });
  }

  readCounters(): Map<string, PeerCounters> {
    this.flush();
    const out = new Map<string, PeerCounters>();
    for (const [pk, rxBytes, txBytes, hs] of this.worker.request('counters')) out.set(pk, { rxBytes, txBytes, lastHandshakeMs: hs > 0 ? hs : null });
    return out;
  }

  /** Sends the queued changes now. */
  flush(): void {
    if (this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    this.worker.post({ op: 'peers', changes });
  }

  private queue(change: PeerChange): void {
    this.pending.push(change);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }
}
