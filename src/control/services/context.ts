/**
 * What every service is built from: the store, the settings, the clock, and
 * the hook that tells the data plane of a node that its sessions changed.
 */
import type { Clock } from '../../protocol/clock.js';
import type { ControlConfig } from '../config.js';
import type { Store } from '../store/store.js';

export interface PeerSync {
  /** The set of sessions that should be peers of this node may have changed: reconcile now, if that node runs here. */
  nodeChanged(nodeId: string): void;
}

export interface ServiceContext {
  store: Store;
  config: ControlConfig;
  clock: Clock;
  peers: PeerSync;
}
