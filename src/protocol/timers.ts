/**
 * Per-peer timers of whitepaper §6 as deadlines on an injected monotonic
 * clock, following wireguard-go's timers.go event by event. The device calls
 * the event methods as packets move and, from its tick, `popDue(now)` until
 * it returns null (`next()` says when that is worth calling); nothing here
 * sleeps or schedules.
 *
 *   retransmitHandshake  REKEY_TIMEOUT + jitter after an initiation (§6.4)
 *   sendKeepalive        KEEPALIVE_TIMEOUT after data was received and nothing sent back (§6.5)
 *   newHandshake         KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter after data was sent and nothing received (§6.5)
 *   zeroKeyMaterial      3 × REJECT_AFTER_TIME after the last session was derived (§6.3)
 *   persistentKeepalive  the configured interval after any authenticated packet (§6.5)
 */
import { KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from './constants.js';
import type { Random } from './random.js';

const OFF = Infinity;

export type TimerName = 'retransmitHandshake' | 'sendKeepalive' | 'newHandshake' | 'zeroKeyMaterial' | 'persistentKeepalive';

export class PeerTimers {
  retransmitHandshake = OFF;
  sendKeepalive = OFF;
  newHandshake = OFF;
  zeroKeyMaterial = OFF;
  persistentKeepalive = OFF;
  /** Another keepalive is owed when the sendKeepalive timer fires (data arrived while it was pending). */
  needAnotherKeepalive = false;
  handshakeAttempts = 0;
  /** Persistent keepalive interval in ms; 0 = off. */
  persistentKeepaliveInterval = 0;

  constructor(private readonly random: Random) {}

  private jitter(): number {
    return this.random.int(REKEY_TIMEOUT_JITTER_MAX);
  }

  /** Data (not a keepalive) was sent. */
  dataSent(now: number): void {
    if (this.newHandshake === OFF) this.newHandshake = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + this.jitter();
  }

  /** Data (not a keepalive) was received. */
  dataReceived(now: number): void {
    if (this.sendKeepalive === OFF) this.sendKeepalive = now + KEEPALIVE_TIMEOUT;
    else this.needAnotherKeepalive = true;
  }

  /** Any authenticated packet (data, keepalive, handshake) was sent. */
  anyAuthenticatedPacketSent(): void {
    this.sendKeepalive = OFF;
  }

  /** Any authenticated packet was received. */
  anyAuthenticatedPacketReceived(): void {
    this.newHandshake = OFF;
  }

  /** Any authenticated packet went either way. */
  anyAuthenticatedPacketTraversal(now: number): void {
    if (this.persistentKeepaliveInterval > 0) this.persistentKeepalive = now + this.persistentKeepaliveInterval;
  }

  /** An initiation was sent. */
  handshakeInitiated(now: number): void {
    this.retransmitHandshake = now + REKEY_TIMEOUT + this.jitter();
  }

  /** A handshake completed (initiator: response consumed; responder: first data on the new keypair). */
  handshakeComplete(): void {
    this.retransmitHandshake = OFF;
    this.handshakeAttempts = 0;
  }

  /** New transport keys were derived. */
  sessionDerived(now: number): void {
    this.zeroKeyMaterial = now + 3 * REJECT_AFTER_TIME;
  }

  /** All timers off (peer removed or device down). */
  stopAll(): void {
    this.retransmitHandshake = this.sendKeepalive = this.newHandshake = this.zeroKeyMaterial = this.persistentKeepalive = OFF;
    this.needAnotherKeepalive = false;
  }

  /** The earliest deadline, Infinity when none is set. */
  next(): number {
    return Math.min(this.retransmitHandshake, this.sendKeepalive, this.newHandshake, this.zeroKeyMaterial, this.persistentKeepalive);
  }

  /** Removes and returns the first expired timer, or null. Call until null. */
  popDue(now: number): TimerName | null {
    if (this.retransmitHandshake <= now) {
      this.retransmitHandshake = OFF;
      return 'retransmitHandshake';
    }
    if (this.sendKeepalive <= now) {
      this.sendKeepalive = OFF;
      return 'sendKeepalive';
    }
    if (this.newHandshake <= now) {
      this.newHandshake = OFF;
      return 'newHandshake';
    }
    if (this.zeroKeyMaterial <= now) {
      this.zeroKeyMaterial = OFF;
      return 'zeroKeyMaterial';
    }
    if (this.persistentKeepalive <= now) {
      this.persistentKeepalive = OFF;
      return 'persistentKeepalive';
    }
    return null;
  }
}
