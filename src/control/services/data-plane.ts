/**
 * The control plane's only view of the WireGuard device of the node it runs
 * on. The exit server implements it over the real device; tests use a
 * recording one. Calls are synchronous and must not throw for a key that is
 * (or is not) already present: addPeer of a present key replaces its allowed
 * IPs, removePeer of an absent key does nothing.
 */
export interface PeerSpec {
  /** The client's WireGuard public key (base64). */
  publicKey: string;
  /** The client's own addresses as host routes (10.64.0.2/32, fd00::2/128): cryptokey routing
   *  accepts only these as inner source addresses, and routes only these to the peer. */
  allowedIps: string[];
}

export interface PeerCounters {
  /** Bytes the exit received from this peer since it was added (the device's rx_bytes). */
  rxBytes: number;
  /** Bytes the exit sent to this peer since it was added (the device's tx_bytes). */
  txBytes: number;
  /** Time of the last completed handshake, milliseconds since the epoch; null if none yet. */
  lastHandshakeMs: number | null;
}

export interface DataPlane {
  addPeer(peer: PeerSpec): void;
  removePeer(publicKey: string): void;
  /** Counters of every peer currently on the device, keyed by public key. Counters restart at 0 when a peer is re-added. */
  readCounters(): Map<string, PeerCounters>;
}

/** What a peer moved between two readings of its counters, from the client's side (rx = to the client). */
export interface CounterDelta {
  /** Bytes the client received (the device sent). */
  toClient: number;
  /** Bytes the client sent (the device received). */
  fromClient: number;
  /** A handshake completed since the last reading. */
  newHandshake: boolean;
}

/**
 * The delta of a peer's counters since the previous reading (none: since it
 * was added). The device counts from its side (rx = from the client); a
 * session counts from the client's, so the directions swap here. Counters
 * only grow while a peer stays; lower ones mean it was re-added and counts
 * from 0 again.
 */
export function counterDelta(prev: PeerCounters | undefined, now: PeerCounters): CounterDelta {
  return {
    fromClient: prev && now.rxBytes >= prev.rxBytes ? now.rxBytes - prev.rxBytes : now.rxBytes,
    toClient: prev && now.txBytes >= prev.txBytes ? now.txBytes - prev.txBytes : now.txBytes,
    newHandshake: now.lastHandshakeMs !== null && now.lastHandshakeMs !== (prev?.lastHandshakeMs ?? null),
  };
}

