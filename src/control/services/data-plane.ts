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

/** What an installed peer moved since the last reading, from the client's side (rx = to the client). */
export interface PeerMovement<P> {
  peer: P;
  /** Bytes the client received (the device sent). */
  toClient: number;
  /** Bytes the client sent (the device received). */
  fromClient: number;
  /** The device's last handshake with it, epoch ms; null: none yet. */
  lastHandshakeMs: number | null;
}

/**
 * Turns readings of the device's counters into what each installed peer
 * moved since the previous reading — the one rule of the in-process
 * NodeAgent and a joined node's agent. The device counts from its side (rx =
 * from the client); a session counts from the client's, so the directions
 * swap here. Counters only grow while a peer stays; lower ones mean it was
 * re-added and counts from 0 again, as does a peer `forget` was called for
 * (added or removed since).
 */
export class CounterMeter {
  private readonly lastSeen = new Map<string, PeerCounters>();

  /** The peers of `installed` that moved bytes or completed a handshake since the last reading. */
  read<P>(counters: ReadonlyMap<string, PeerCounters>, installed: ReadonlyMap<string, P>): PeerMovement<P>[] {
    const out: PeerMovement<P>[] = [];
    for (const [publicKey, c] of counters) {
      const peer = installed.get(publicKey);
      if (peer === undefined) continue;
      const prev = this.lastSeen.get(publicKey);
      const fromClient = prev && c.rxBytes >= prev.rxBytes ? c.rxBytes - prev.rxBytes : c.rxBytes;
      const toClient = prev && c.txBytes >= prev.txBytes ? c.txBytes - prev.txBytes : c.txBytes;
      const newHandshake = c.lastHandshakeMs !== null && c.lastHandshakeMs !== (prev?.lastHandshakeMs ?? null);
      this.lastSeen.set(publicKey, { ...c });
      if (fromClient === 0 && toClient === 0 && !newHandshake) continue;
      out.push({ peer, toClient, fromClient, lastHandshakeMs: c.lastHandshakeMs });
    }
    return out;
  }

  /** The peer was added or removed: its next counters start from 0. */
  forget(publicKey: string): void {
    this.lastSeen.delete(publicKey);
  }
}
