/**
 * One TCP connection (RFC 9293): the transmission control block and the
 * event processing of §3.10 — segment arrival, user calls and timeouts.
 *
 * Receive path (segment()): acceptability test (§3.10.7.4), RST checks with
 * RFC 5961 challenge ACKs, the ACK field (SND.UNA, the send window, RTT
 * samples, SACK scoreboard and per-segment records, RACK-TLP loss detection,
 * NewReno), segment text into the reassembly ring,
 * FIN. Nothing is sent from inside: the connection marks what it owes (an
 * ACK, data the window now allows) and the stack calls output() once per
 * connection at the end of the batch, so a batch of 64 data segments costs
 * one ACK and ACKs that open the window send full bursts.
 *
 * Send path (output()): retransmissions first — with SACK the segments RACK
 * marked lost, within cwnd - pipe (RFC 6675 §5); without, SND.UNA once per
 * partial ACK (RFC 6582) — then new data limited by the peer's window, cwnd
 * (or the pipe in a SACK recovery) and Nagle, a FIN after the last byte, then
 * a pure ACK if one is still owed.
 * Segments are written straight into the stack's output batch: the payload
 * is copied once from the send ring, no objects are created per segment.
 *
 * Timers are deadlines the stack's tick() compares with its clock: the
 * retransmission timer (also SYN, SYN-ACK and the zero-window probe), RACK's
 * reordering timer and the tail-loss probe timeout (RFC 8985 §6.3, §7.2), the
 * delayed ACK, keepalive, and TIME-WAIT / FIN-WAIT-2.
 *
 * Application events are raised after output, never while a segment is being
 * processed, so a callback may call write(), read() or close() safely.
 */
import type { DropCounters } from '../counters.js';
import { ipHeaderLen, PROTO_TCP, writeIpHeader } from '../ip.js';
import type { Output } from '../output.js';
import { NewReno, DUPACK_THRESHOLD } from './congestion.js';
import { type TcpOptions, wscaleFor } from './options.js';
import { ReceiveBuffer } from './reassembly.js';
import { probeTimeout, Rack } from './rack.js';
import { RttEstimator } from './rtt.js';
import { Scoreboard } from './scoreboard.js';
import { ACK, FIN, MAX_SACK_BLOCKS, PSH, RST, SYN, TCP_HEADER_LEN, type TcpView, writeSackOption, writeSynOptions, writeTcpHeader } from './segment.js';
import { SendBuffer } from './send-buffer.js';
import { SentSegments } from './sent-segments.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';

/** Why a connection ended abnormally: the errno names net.Socket uses. */
export type TcpError = 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT' | 'ECONNABORTED';

/** The connection's state (RFC 9293 §3.3.2), each carrying only its own data. LISTEN is the stack's listener table. */
export type TcpState =
  | { readonly kind: 'syn-sent'; retries: number }
  | { readonly kind: 'syn-received'; retries: number }
  | { readonly kind: 'established' }
  | { readonly kind: 'fin-wait-1' }
  | { readonly kind: 'fin-wait-2' }
  | { readonly kind: 'close-wait' }
  | { readonly kind: 'closing' }
  | { readonly kind: 'last-ack' }
  | { readonly kind: 'time-wait' }
  | { readonly kind: 'closed'; readonly error: TcpError | null };

const ESTABLISHED: TcpState = { kind: 'established' };
const FIN_WAIT_1: TcpState = { kind: 'fin-wait-1' };
const FIN_WAIT_2: TcpState = { kind: 'fin-wait-2' };
const CLOSE_WAIT: TcpState = { kind: 'close-wait' };
const CLOSING: TcpState = { kind: 'closing' };
const LAST_ACK: TcpState = { kind: 'last-ack' };
const TIME_WAIT: TcpState = { kind: 'time-wait' };
const CLOSED_OK: TcpState = { kind: 'closed', error: null };

/** What the application hears. Called from the stack's entry points, after output. */
export interface TcpEvents {
  /** The three-way handshake completed. */
  onConnect(): void;
  /** In-order bytes are ready for read(). */
  onReadable(): void;
  /** The peer sent FIN and every byte before it has been made readable. */
  onEnd(): void;
  /** Room in the send buffer again after write() took less than offered. */
  onWritable(): void;
  /** The connection is gone: error null for an orderly close. Called once. */
  onClose(error: TcpError | null): void;
}

const NO_EVENTS: TcpEvents = { onConnect() {}, onReadable() {}, onEnd() {}, onWritable() {}, onClose() {} };

/** What a connection needs from its stack. */
export interface TcpHost {
  readonly output: Output;
  readonly drops: DropCounters;
  /** Asks for output() and event dispatch at the end of the current entry point (or soon, outside one). */
  markDirty(c: TcpConnection): void;
  /** A timer was set for time t. */
  noteDeadline(t: number): void;
  /** The connection reached CLOSED (or TIME-WAIT expired): forget it. */
  release(c: TcpConnection): void;
  /** A passively opened connection completed its handshake. */
  accepted(c: TcpConnection): void;
  /**
   * The connection entered TIME-WAIT: from now on its only timer is the 2 MSL wait, the same length for every
   * connection, so the host may keep these in order of arrival rather than scan them with the others.
   */
  timeWait(c: TcpConnection): void;
}

/** Counters a test or a benchmark can read. */
export class TcpStats {
  segmentsIn = 0;
  segmentsOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  retransmits = 0;
  fastRecoveries = 0;
  timeouts = 0;
  sackBlocksIn = 0;
  sackBlocksOut = 0;
  /** Retransmissions of segments RACK marked lost (with SACK: data the receiver had not reported). */
  sackRetransmits = 0;
  /** Segments RACK judged lost (RFC 8985 §6.2). */
  rackLost = 0;
  /** Reordering-window timer expiries (RFC 8985 §6.3). */
  rackTimeouts = 0;
  /** Tail loss probes sent (RFC 8985 §7.3). */
  tailLossProbes = 0;
  zeroWindowProbes = 0;
  keepAliveProbes = 0;
  challengeAcks = 0;
}

const INF = Infinity;
/**
 * Scratch for output(): the end of the hole being repaired and the SACK blocks being written. Each is filled and
 * read within one call on one connection (the stack is single-threaded and output() does not re-enter), so every
 * connection shares these instead of holding two typed arrays (an object, an ArrayBuffer and a backing store each).
 */
const holeEnd = new Uint32Array(1);
const sackOut = new Uint32Array(2 * MAX_SACK_BLOCKS);
/**
 * The least probe timeout. RFC 8985 §7.2 sets none (Linux adds TCP_TIMEOUT_MIN, two jiffies, to 2·SRTT); here
 * the stack is ticked by a millisecond event-loop timer that a busy process fires late, so a 2·SRTT of a
 * fraction of a millisecond on a short path would probe before ACKs already on their way were processed.
 */
const MIN_PTO = 10;
/** Least time between ACKs answering unacceptable segments without text. */
const INVALID_ACK_INTERVAL = 500;

export class TcpConnection {
  state: TcpState;
  readonly stats = new TcpStats();
  events: TcpEvents = NO_EVENTS;
  /** The stack's hash-bucket chain. */
  nextInBucket: TcpConnection | null = null;
  /** Listener port for passive opens (0: active). */
  readonly passive: boolean;

  // Send sequence space (RFC 9293 §3.3.1).
  readonly iss: number;
  sndUna: number;
  sndNxt: number;
  /** Highest sequence number sent plus one (SND.NXT is pulled back after a timeout). */
  sndMax: number;
  sndWnd = 0;
  private maxSndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  /** Sequence number of the send buffer's first byte. */
  private bufSeq: number;
  /** Sequence number of our FIN once queued (-1 before). */
  private finSeq = -1;
  // Receive side.
  private irs = 0;
  readonly rcv: ReceiveBuffer;
  /** Sequence number of the peer's FIN once seen (-1 before). */
  private peerFin = -1;
  private lastAdvRight = 0;
  private lastAdvWnd = 0;

  // Options negotiated in the handshake.
  /** Send MSS: what the peer allows, bounded by our MTU. */
  mss: number;
  readonly advMss: number;
  sndShift = 0;
  rcvShift: number;
  sackOk = false;
  windowScaling = false;

  private readonly snd: SendBuffer;
  private readonly cc: NewReno;
  private readonly rtt: RttEstimator;
  private readonly board = new Scoreboard();
  /** Per-segment transmit records (RFC 8985 §5.2), kept when SACK is on (RACK needs SACK, §3.3). */
  private readonly sent = new SentSegments();
  private readonly rack = new Rack();
  /** After an RTO until SND.UNA passes "recover" (RFC 6582 §3.2 step 1): go-back-N, no fast recovery and no TLP. */
  private rtoRecovery = false;
  /** A tail loss probe is outstanding (TLP.end_seq, RFC 8985 §7.4), and whether it re-sent data. */
  private tlpActive = false;
  private tlpEnd = 0;
  private tlpRetrans = false;
  private tlpStart = 0;
  /** New data went out or an ACK arrived: output() re-arms the probe timer (§7.2). */
  private probeDue = false;
  private rexmitNext = 0;
  private rexmitQuota = 0;
  private retries = 0;
  private lastInvalidAckAt = -INF;
  private probesUnanswered = 0;
  /** The persist/override timer fired: send one segment the window allows even if small. */
  private forceSend = false;
  private timedSeq = 0;
  private timedAt = -1;
  private lastSendAt = 0;

  // Owed work.
  private ackNow = false;
  private segsUnacked = 0;
  /** User calls. */
  private shutdownRequested = false;
  private appClosed = false;
  noDelay = false;
  keepAlive = false;
  keepAliveIdleMs: number;
  private keepProbes = 0;
  private lastRecvAt: number;

  // Timers (absolute ms, INF when off).
  private rtoAt = INF;
  /** RFC 8985 §6.3 the reordering timer, and §7.2 the probe timeout. */
  private reoAt = INF;
  private ptoAt = INF;
  private delackAt = INF;
  private keepAt = INF;
  private waitAt = INF;

  // Pending events.
  private evConnect = false;
  private evReadable = false;
  private evEnd = false;
  private evWritable = false;
  private evClose = false;
  private endDelivered = false;
  private closeDelivered = false;
  private wantWritable = false;
  /** In the stack's dirty list. */
  dirty = false;
  /** A forwarded SYN waiting for its owner's answer (hold()). */
  private held = false;

  constructor(
    private readonly host: TcpHost,
    readonly opts: TcpOptions,
    readonly local: Uint8Array,
    readonly localPort: number,
    readonly remote: Uint8Array,
    readonly remotePort: number,
    mtu: number,
    iss: number,
    now: number,
    passive: boolean,
  ) {
    this.passive = passive;
    this.iss = iss;
    this.sndUna = this.sndNxt = this.sndMax = iss;
    this.bufSeq = seqAdd(iss, 1);
    this.advMss = mtu - ipHeaderLen(local.length) - TCP_HEADER_LEN;
    // RFC 9293 §3.7.1: without an MSS option the peer takes 536 (IPv4) / 1220 (IPv6, RFC 8200 §5).
    this.mss = Math.min(this.advMss, local.length === 4 ? 536 : 1220);
    this.rcvShift = wscaleFor(opts.receiveBuffer);
    this.snd = new SendBuffer(opts.sendBuffer);
    this.rcv = new ReceiveBuffer(opts.receiveBuffer);
    this.cc = new NewReno(this.mss, iss);
    this.rtt = new RttEstimator(opts.minRtoMs);
    this.keepAliveIdleMs = opts.keepAliveIdleMs;
    this.lastRecvAt = now;
    this.state = passive ? { kind: 'syn-received', retries: 0 } : { kind: 'syn-sent', retries: 0 };
  }

  // ---- opening -------------------------------------------------------------

  /** Active open (§3.10.1): send SYN. */
  open(now: number): void {
    this.sendSyn(false);
    this.armRto(now);
  }

  /** Passive open from a SYN the listener accepted (§3.10.7.2). */
  openFrom(v: TcpView, now: number): void {
    this.irs = v.seq;
    this.rcv.nxt = seqAdd(v.seq, 1);
    this.takeSynOptions(v);
    this.sndWnd = v.window; // RFC 7323 §2.2: the window in a SYN is never scaled
    this.sndWl1 = v.seq;
    this.sndWl2 = this.iss;
    this.sendSyn(true);
    this.armRto(now);
  }

  /**
   * A forwarded SYN held (the stack's forwarding mode): the peer's options are
   * taken as a passive open takes them, but nothing is sent and no timer runs
   * until the owner answers with answerHeld() or refuses with refuseHeld() —
   * so the SYN-ACK goes out only once the real destination has accepted
   * (gVisor's tcp.Forwarder does the same). While held, every segment is
   * ignored: a retransmitted SYN finds this connection and does not start another.
   */
  hold(v: TcpView): void {
    this.irs = v.seq;
    this.rcv.nxt = seqAdd(v.seq, 1);
    this.takeSynOptions(v);
    this.sndWnd = v.window;
    this.sndWl1 = v.seq;
    this.sndWl2 = this.iss;
    this.held = true;
  }

  /** Whether the connection is a forwarded SYN not yet answered. */
  get isHeld(): boolean {
    return this.held;
  }

  /** The peer's initial sequence number (what an ICMP error about its SYN quotes). */
  get peerIsn(): number {
    return this.irs;
  }

  /** Answers a held SYN with the SYN-ACK (§3.10.7.2), as openFrom() does at once for a listener. */
  answerHeld(now: number): void {
    if (!this.held || this.state.kind !== 'syn-received') return;
    this.held = false;
    this.sendSyn(true);
    this.armRto(now);
    this.host.markDirty(this);
  }

  /** Refuses a held SYN: with RST (§3.10.7.1, a closed port: <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>) or silently (the caller sent an ICMP error). */
  refuseHeld(reset: boolean): void {
    if (!this.held) return;
    this.held = false;
    if (reset) this.emit(0, RST | ACK, 0, false);
    this.finish('ECONNREFUSED');
  }

  private takeSynOptions(v: TcpView): void {
    if (v.mss > 0) this.mss = Math.max(64, Math.min(this.advMss, v.mss));
    else this.mss = Math.min(this.advMss, this.local.length === 4 ? 536 : 1220);
    this.cc.setMss(this.mss);
    // RFC 7323 §2.2: scaling is on only when both SYNs carry the option.
    if (v.wscale >= 0) {
      this.windowScaling = true;
      this.sndShift = v.wscale;
    } else {
      this.windowScaling = false;
      this.sndShift = 0;
      this.rcvShift = 0;
    }
    this.sackOk = v.sackPermitted; // RFC 2018 §2
  }

  // ---- user calls (§3.10.2-3.10.6) ------------------------------------------

  /** Queues bytes to send; returns how many the send buffer took (less means: wait for onWritable). */
  write(src: Uint8Array, start = 0, len = src.length - start): number {
    if (this.shutdownRequested || this.state.kind === 'closed') return 0;
    const n = this.snd.append(src, start, len);
    if (n < len) this.wantWritable = true;
    if (n > 0) this.host.markDirty(this);
    return n;
  }

  /** Bytes write() would take now. */
  get writableBytes(): number {
    return this.shutdownRequested ? 0 : this.snd.free;
  }

  /** Bytes written and not yet acknowledged. */
  get unacknowledged(): number {
    return this.snd.length;
  }

  /** Takes up to `max` in-order bytes (or null). Reading opens the window; an update goes out when it opened enough. */
  read(max = 65536): Buffer | null {
    const b = this.rcv.take(max);
    if (b !== null && this.synchronized()) {
      const wnd = this.rcv.window();
      const right = seqAdd(this.rcv.nxt, wnd);
      const opened = seqDiff(right, this.lastAdvRight);
      // RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): update when it opened by min(buffer/2, MSS) — and at once after a zero window.
      if (opened >= Math.min(this.rcv.limit >> 1, this.advMss) || (this.lastAdvWnd < this.advMss && wnd >= this.advMss)) {
        this.ackNow = true;
        this.host.markDirty(this);
      }
    }
    if (b !== null) this.releaseDrainedReceive();
    return b;
  }

  /**
   * Once the peer's FIN is taken no more text can arrive (RFC 9293 §3.10.7.4, seventh: text after a FIN is
   * ignored), nor after the end: a receive ring the application has emptied is dead weight for the rest of
   * CLOSE-WAIT, TIME-WAIT or a half-open relay, so it goes. RCV.NXT stays (TIME-WAIT still ACKs a repeated FIN).
   */
  private releaseDrainedReceive(): void {
    if (this.rcv.unread === 0 && (this.peerFin === -2 || this.state.kind === 'closed')) this.rcv.release();
  }

  get readableBytes(): number {
    return this.rcv.unread;
  }

  /** Bytes of buffer storage the connection holds (send ring, receive ring, out-of-order ranges): none while idle. */
  get storageBytes(): number {
    return this.snd.storageBytes + this.rcv.storageBytes;
  }

  /** Half-close (§3.10.4 CLOSE while the peer may still send): FIN after the queued bytes. */
  shutdown(): void {
    if (this.shutdownRequested) return;
    this.shutdownRequested = true;
    const k = this.state.kind;
    // Before the handshake completes, the FIN waits for ESTABLISHED, behind any queued bytes (§3.10.4).
    if (k === 'syn-sent' || k === 'syn-received' || k === 'closed') return;
    this.finSeq = seqAdd(this.bufSeq, this.snd.length);
    this.host.markDirty(this);
  }

  /** Full close: shutdown, and the application will read nothing more (later data is answered with RST, as Linux does). */
  close(): void {
    this.appClosed = true;
    this.shutdown();
    if (this.rcv.unread > 0 && this.synchronized()) {
      // RFC 9293 §3.10.4 / RFC 2525 §2.17: closing with unread data aborts.
      this.abort();
    }
  }

  /** ABORT (§3.10.5): RST to the peer (in synchronized states), CLOSED at once. */
  abort(): void {
    const k = this.state.kind;
    if (k === 'closed' || k === 'time-wait') {
      if (k === 'time-wait') this.finish(null);
      return;
    }
    if (k !== 'syn-sent') this.emit(this.sndMax, RST | ACK, 0, false);
    this.finish('ECONNABORTED');
  }

  /** Keepalive (RFC 1122 §4.2.3.6) on or off; `idleMs` 0 keeps the current idle time. */
  setKeepAlive(on: boolean, idleMs: number, now: number): void {
    this.keepAlive = on;
    if (idleMs > 0) this.keepAliveIdleMs = idleMs;
    this.keepProbes = 0;
    this.armKeepAlive(now);
  }

  // ---- segment arrival (§3.10.7) ---------------------------------------------

  /** A segment for this connection. `buf` holds the payload at v.dataStart. */
  segment(v: TcpView, buf: Uint8Array, now: number): void {
    if (this.held) {
      this.host.drops['tcp-syn-held']++;
      return;
    }
    this.stats.segmentsIn++;
    this.lastRecvAt = now;
    this.keepProbes = 0;
    if (this.keepAlive) this.armKeepAlive(now);
    const st = this.state;
    if (st.kind === 'syn-sent') {
      this.synSentSegment(v, now);
      return;
    }
    if (st.kind === 'closed') return;

    // First: sequence number acceptable?
    const segLen = v.dataLen + ((v.flags & SYN) !== 0 ? 1 : 0) + ((v.flags & FIN) !== 0 ? 1 : 0);
    const wnd = this.rcv.window();
    const nxt = this.rcv.nxt;
    let ok: boolean;
    if (segLen === 0) ok = wnd === 0 ? v.seq === nxt : seqGe(v.seq, nxt) && seqLt(v.seq, seqAdd(nxt, wnd));
    else if (wnd === 0) ok = false;
    else {
      const last = seqAdd(v.seq, segLen - 1);
      ok = (seqGe(v.seq, nxt) && seqLt(v.seq, seqAdd(nxt, wnd))) || (seqGe(last, nxt) && seqLt(last, seqAdd(nxt, wnd)));
    }
    if (!ok) {
      // Answer with an ACK — for a segment without text at most every 500 ms (Linux tcp_invalid_ratelimit),
      // so two ends that disagree about the sequence space cannot ping-pong ACKs.
      if ((v.flags & RST) === 0 && (segLen > 0 || now - this.lastInvalidAckAt >= INVALID_ACK_INTERVAL)) {
        if (segLen === 0) this.lastInvalidAckAt = now;
        this.ackNow = true;
        this.host.markDirty(this);
      }
      // A zero window still lets ACKs through (§3.10.7.4 "special allowance").
      if (wnd === 0 && v.seq === nxt && (v.flags & ACK) !== 0 && (v.flags & RST) === 0 && st.kind !== 'syn-received') {
        this.processAck(v, now);
      } else {
        this.host.drops['tcp-out-of-window']++;
      }
      return;
    }

    // Second: RST (RFC 5961 §3.2: only an exact match resets; in-window otherwise draws a challenge ACK).
    if ((v.flags & RST) !== 0) {
      if (v.seq !== nxt) {
        this.challengeAck();
        return;
      }
      if (st.kind === 'syn-received' && this.passive) {
        this.finish(null); // back to LISTEN: the listener simply forgets it
        return;
      }
      const k = st.kind;
      this.finish(k === 'closing' || k === 'last-ack' || k === 'time-wait' ? null : 'ECONNRESET');
      return;
    }

    // Fourth: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK. (A retransmitted SYN in SYN-RECEIVED: resend SYN-ACK.)
    if ((v.flags & SYN) !== 0) {
      if (st.kind === 'syn-received' && v.seq === this.irs) {
        this.sendSyn(true);
        return;
      }
      this.challengeAck();
      return;
    }

    // Fifth: the ACK field.
    if ((v.flags & ACK) === 0) return;
    if (st.kind === 'syn-received') {
      if (!(seqGt(v.ack, this.sndUna) && seqLe(v.ack, this.sndMax))) {
        this.emitReset(v.ack);
        return;
      }
      this.sndUna = v.ack;
      if (seqLt(this.sndNxt, this.sndUna)) this.sndNxt = this.sndUna;
      this.sndWnd = v.window << this.sndShift;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = v.seq;
      this.sndWl2 = v.ack;
      if (this.timedAt >= 0) this.rtt.sample(now - this.timedAt);
      this.timedAt = -1;
      this.retries = 0;
      this.stopRto();
      this.state = ESTABLISHED;
      this.host.accepted(this);
      this.evConnect = true;
      this.host.markDirty(this);
      if (this.shutdownRequested) this.finSeq = seqAdd(this.bufSeq, this.snd.length);
    } else if (!this.processAck(v, now)) {
      return;
    }
    if (this.state.kind === 'closed') return;

    // Seventh: segment text.
    const k = this.state.kind;
    const open = k === 'established' || k === 'fin-wait-1' || k === 'fin-wait-2';
    let whole = true;
    if (v.dataLen > 0 && open) {
      if (this.appClosed) {
        // Data after a full close has nowhere to go: RST (RFC 9293 §3.10.7.4; Linux does the same).
        this.emit(this.sndMax, RST | ACK, 0, false);
        this.finish(null);
        return;
      }
      whole = this.receiveText(v, buf, now);
    }

    // Eighth: FIN (only when the whole segment fitted the window).
    if ((v.flags & FIN) !== 0) {
      this.ackNow = true;
      this.host.markDirty(this);
      if (open && whole && this.peerFin === -1) this.peerFin = seqAdd(v.seq, v.dataLen);
      if (k === 'time-wait') this.setWait(now + 2 * this.opts.mslMs); // a retransmitted FIN restarts the 2 MSL wait
    }
    if (this.peerFin >= 0 && this.rcv.nxt === this.peerFin) this.takeFin(now);
  }

  private synSentSegment(v: TcpView, now: number): void {
    const hasAck = (v.flags & ACK) !== 0;
    if (hasAck && (seqLe(v.ack, this.iss) || seqGt(v.ack, this.sndMax))) {
      if ((v.flags & RST) === 0) this.emitReset(v.ack);
      return;
    }
    if ((v.flags & RST) !== 0) {
      if (hasAck) this.finish('ECONNREFUSED');
      return;
    }
    if ((v.flags & SYN) === 0) return;
    this.irs = v.seq;
    this.rcv.nxt = seqAdd(v.seq, 1);
    this.takeSynOptions(v);
    this.sndWnd = v.window;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = v.seq;
    this.sndWl2 = v.ack;
    if (!hasAck) {
      // Simultaneous open (§3.10.7.3): SYN-RECEIVED, SYN-ACK.
      this.state = { kind: 'syn-received', retries: 0 };
      this.sendSyn(true);
      this.armRto(now);
      return;
    }
    this.sndUna = v.ack;
    if (seqLt(this.sndNxt, this.sndUna)) this.sndNxt = this.sndUna;
    if (this.timedAt >= 0 && this.retries === 0) this.rtt.sample(now - this.timedAt);
    this.timedAt = -1;
    this.retries = 0;
    this.stopRto();
    this.state = ESTABLISHED;
    this.evConnect = true;
    this.ackNow = true;
    this.host.markDirty(this);
    if (this.shutdownRequested) this.finSeq = seqAdd(this.bufSeq, this.snd.length);
  }

  /** §3.10.7.4 "fifth, check the ACK field" in synchronized states. Returns false when the segment must be dropped. */
  private processAck(v: TcpView, now: number): boolean {
    const ack = v.ack;
    this.probesUnanswered = 0;
    if (seqGt(ack, this.sndMax)) {
      // Acknowledges something not yet sent: ACK and drop.
      this.ackNow = true;
      this.host.markDirty(this);
      return false;
    }
    const wndBefore = this.sndWnd;
    // Window update (§3.10.7.4: only from a newer segment, or the same one with a newer ACK).
    if (seqLt(this.sndWl1, v.seq) || (this.sndWl1 === v.seq && seqLe(this.sndWl2, ack))) {
      this.sndWnd = v.window << this.sndShift;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = v.seq;
      this.sndWl2 = ack;
    }
    let newlySacked = false;
    let dsack = false;
    if (this.sackOk && v.sackCount > 0) {
      this.stats.sackBlocksIn += v.sackCount;
      // RFC 2883 §4: a first block below the cumulative ACK, or inside the second block, reports a duplicate (D-SACK).
      dsack = seqLe(v.sack[1]!, ack) || (v.sackCount > 1 && seqGe(v.sack[0]!, v.sack[2]!) && seqLe(v.sack[1]!, v.sack[3]!));
      for (let b = 0; b < v.sackCount; b++) {
        const left = v.sack[2 * b]!;
        const right = v.sack[2 * b + 1]!;
        if (this.board.add(left, right, seqGt(ack, this.sndUna) ? ack : this.sndUna, this.sndMax)) newlySacked = true;
        if (b > 0 || !dsack) this.sent.sack(left, right, now, this.rack);
      }
      if (dsack) this.rack.onDsack(this.sndUna, this.sndMax);
    }
    if (seqLt(ack, this.sndUna)) return true; // an old ACK: ignore it, keep the segment's text

    const acked = seqDiff(ack, this.sndUna);
    if (acked > 0) {
      this.onNewAck(ack, acked, now);
    } else if (this.sndMax !== this.sndUna && v.dataLen === 0 && (v.flags & (SYN | FIN)) === 0 && (this.sackOk ? newlySacked : this.sndWnd === wndBefore)) {
      // A duplicate ACK: nothing new acknowledged, no data, data outstanding — and (RFC 5681 §2) the same window, or
      // with SACK (RFC 6675 §2 "DupAck") SACK information that covers data not SACKed before: a duplicated ACK or a
      // window update carries nothing about a loss and must not count toward one.
      this.onDupAck();
    }
    if (this.sackOk) this.afterAckRack(ack, acked === 0, v, dsack, now);
    // Our FIN acknowledged?
    if (this.finSeq !== -1 && seqGt(this.sndUna, this.finSeq)) {
      const k = this.state.kind;
      if (k === 'fin-wait-1') {
        this.state = FIN_WAIT_2;
        if (this.appClosed) this.setWait(now + this.opts.finWait2Ms);
      } else if (k === 'closing') {
        this.enterTimeWait(now);
      } else if (k === 'last-ack') {
        this.finish(null);
        return false;
      }
    }
    if (this.sndWnd > 0 && this.sndWnd !== wndBefore) this.host.markDirty(this);
    return true;
  }

  private onNewAck(ack: number, acked: number, now: number): void {
    // Data bytes acknowledged (the SYN and our FIN occupy sequence space but not the buffer).
    const dataAcked = Math.max(0, Math.min(seqDiff(ack, this.bufSeq), this.snd.length));
    if (dataAcked > 0) {
      this.snd.consume(dataAcked);
      this.bufSeq = seqAdd(this.bufSeq, dataAcked);
      if (this.wantWritable && this.snd.free > 0) {
        this.wantWritable = false;
        this.evWritable = true;
      }
    }
    // RFC 6298 §3 (Karn): a sample only from a segment never retransmitted.
    if (this.timedAt >= 0 && seqGt(ack, this.timedSeq)) {
      this.rtt.sample(now - this.timedAt);
      this.timedAt = -1;
    }
    const flightBefore = seqDiff(this.sndMax, this.sndUna);
    if (this.sackOk) this.sent.acknowledge(ack, now, this.rack);
    if (this.rtoRecovery && seqGe(ack, this.cc.recover)) this.rtoRecovery = false;
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    if (seqLt(this.rexmitNext, ack)) this.rexmitNext = ack;
    this.board.advance(ack);
    this.retries = 0;
    const cc = this.cc;
    if (cc.inRecovery) {
      if (seqGe(ack, cc.recover)) {
        cc.exitRecovery(seqDiff(this.sndMax, ack));
        this.rexmitQuota = 0;
        if (this.sackOk) this.rack.onRecoveryEnd();
      } else if (!this.sackOk) {
        // RFC 6582 §3.2 step 5: partial ACK — retransmit the first unacknowledged segment. (With SACK the pipe
        // decides what goes, RFC 6675 §5, and RACK what is lost: a retransmission is sent again only once RACK
        // judges it lost, never merely because its ACK has not come back yet.)
        cc.onPartialAck(acked);
        this.rexmitNext = ack;
        this.rexmitQuota++;
      }
    } else {
      cc.dupAcks = 0;
      // RFC 7661-style restraint: grow cwnd only when it was actually used.
      if (flightBefore + this.mss >= cc.cwnd) cc.onAck(acked);
    }
    // §5.2/§5.3: stop the timer when all is acknowledged, else restart it.
    if (this.sndUna === this.sndMax) this.stopRto();
    else this.armRto(now);
    this.host.markDirty(this);
  }

  private onDupAck(): void {
    const cc = this.cc;
    cc.dupAcks++;
    if (this.sackOk) {
      // With SACK, RACK decides what is lost and starts recovery (afterAckRack); a duplicate ACK shrinks the pipe
      // in recovery, and its first two let Limited Transmit (RFC 3042) send outside it.
      this.host.markDirty(this);
      return;
    }
    if (cc.inRecovery) {
      cc.onDupAckInRecovery();
      this.rexmitQuota++;
      this.host.markDirty(this);
      return;
    }
    // The third duplicate ACK (RFC 5681 §3.2).
    if (cc.dupAcks < DUPACK_THRESHOLD) {
      if (cc.dupAcks <= 2) this.host.markDirty(this); // Limited Transmit may send
      return;
    }
    if (cc.enterRecovery(seqDiff(this.sndMax, this.sndUna), this.sndUna, this.sndMax)) {
      this.stats.fastRecoveries++;
      this.rexmitNext = this.sndUna;
      this.rexmitQuota = 1;
      this.timedAt = -1;
      this.host.markDirty(this);
    }
  }

  /**
   * What RACK-TLP does with every ACK (RFC 8985 §6.2, §7.4): settle an outstanding tail loss probe, then judge
   * the segments in flight by what was just delivered.
   */
  private afterAckRack(ack: number, duplicate: boolean, v: TcpView, dsack: boolean, now: number): void {
    this.probeDue = true;
    if (this.tlpActive && seqGe(ack, this.tlpEnd)) {
      // §7.4.2: the probe's episode ends. New data as a probe, or a D-SACK of the re-sent copy: no loss. An ACK
      // beyond the probe (or a duplicate ACK without SACK) with no D-SACK: the probe repaired a loss, which congestion
      // control must answer. An ACK of exactly the probe leaves the episode open for a D-SACK still to come.
      const dsackOfProbe = dsack && seqLt(v.sack[0]!, this.tlpEnd) && seqGt(v.sack[1]!, this.tlpStart);
      if (!this.tlpRetrans || dsackOfProbe) {
        this.tlpActive = false;
      } else if (seqGt(ack, this.tlpEnd) || (duplicate && v.sackCount === 0 && v.dataLen === 0 && this.sndMax !== ack)) {
        this.tlpActive = false;
        if (!this.cc.inRecovery && !this.rtoRecovery) this.cc.onProbeRepair(seqDiff(this.sndMax, this.sndUna));
      }
    }
    this.rackDetect(now);
  }

  /**
   * RFC 8985 §6.2 step 5 and §6.3: mark lost what RACK can judge now, arm the reordering timer for the rest;
   * a first loss starts fast recovery (§7: RACK in place of the duplicate-ACK threshold of RFC 6675 §5).
   */
  private rackDetect(now: number): void {
    this.reoAt = INF;
    if (this.sndUna === this.sndMax) return;
    const cc = this.cc;
    const wait = this.rack.detect(this.sent, now, this.rack.reoWnd(cc.inRecovery, this.sent.sackedSegments, this.rtt.srtt));
    if (this.rack.marked > 0) {
      this.stats.rackLost += this.rack.marked;
      if (!cc.inRecovery && cc.enterRecovery(seqDiff(this.sndMax, this.sndUna), this.sndUna, this.sndMax, true)) {
        this.stats.fastRecoveries++;
        // RFC 6675 §5 step 4.2: the first segment presumed lost goes at once, whatever the pipe says.
        this.rexmitQuota = 1;
        this.timedAt = -1;
      }
      this.host.markDirty(this);
    }
    if (wait > 0) {
      this.reoAt = now + wait;
      this.host.noteDeadline(this.reoAt);
    }
  }

  /** RFC 6675 SetPipe, with RACK's marks as IsLost: bytes sent and neither SACKed nor judged lost. */
  private pipe(): number {
    return seqDiff(this.sndMax, this.sndUna) - this.board.sackedBytes - this.sent.lostBytes;
  }

  /** Stores the segment's text; returns false when part of it lay beyond the window. */
  private receiveText(v: TcpView, buf: Uint8Array, now: number): boolean {
    let seq = v.seq;
    let start = v.dataStart;
    let len = v.dataLen;
    const nxt = this.rcv.nxt;
    if (seqLt(seq, nxt)) {
      const skip = seqDiff(nxt, seq);
      start += skip;
      len -= skip;
      seq = nxt;
    }
    const room = this.rcv.window() - seqDiff(seq, nxt);
    let whole = true;
    if (len > room) {
      len = room;
      whole = false;
    }
    if (len <= 0) {
      this.ackNow = true;
      this.host.markDirty(this);
      return whole;
    }
    const hadHoles = this.rcv.ranges > 0;
    const adv = this.rcv.insert(seq, buf, start, len);
    this.stats.bytesIn += Math.max(adv, 0);
    if (adv < 0) {
      this.host.drops['tcp-reassembly-full']++;
      this.ackNow = true;
    } else if (adv === 0 || hadHoles) {
      // Out of order, or filling a hole: ACK at once (RFC 5681 §4.2), with SACK blocks.
      this.ackNow = true;
    } else {
      // §3.8.6.3: at least every second full-sized segment; otherwise within the delayed-ACK time.
      this.segsUnacked++;
      if (this.segsUnacked >= 2) this.ackNow = true;
      else if (this.delackAt === INF) {
        this.delackAt = now + this.opts.delayedAckMs;
        this.host.noteDeadline(this.delackAt);
      }
    }
    if (adv > 0) this.evReadable = true;
    this.host.markDirty(this);
    return whole && adv >= 0;
  }

  private takeFin(now: number): void {
    this.rcv.nxt = seqAdd(this.rcv.nxt, 1);
    this.peerFin = -2; // taken
    this.releaseDrainedReceive();
    this.ackNow = true;
    this.evEnd = true;
    this.host.markDirty(this);
    const k = this.state.kind;
    if (k === 'established' || k === 'syn-received') this.state = CLOSE_WAIT;
    else if (k === 'fin-wait-1') {
      // Our FIN not yet acknowledged (else processAck moved us to FIN-WAIT-2).
      this.state = CLOSING;
    } else if (k === 'fin-wait-2') this.enterTimeWait(now);
  }

  private enterTimeWait(now: number): void {
    this.state = TIME_WAIT;
    this.stopRto();
    this.keepAt = INF;
    // Nothing but the 2 MSL wait stays armed (the host relies on it, timeWait()): an ACK still delayed goes now.
    if (this.delackAt !== INF) {
      this.delackAt = INF;
      this.ackNow = true;
    }
    this.snd.release();
    this.sent.release();
    this.setWait(now + 2 * this.opts.mslMs);
    this.evClose = true;
    this.host.markDirty(this);
    this.host.timeWait(this);
  }

  /** Ends TIME-WAIT before its 2 MSL (the host needs the room, Stack.roomForConnection). */
  endTimeWait(): void {
    if (this.state.kind === 'time-wait') this.finish(null);
  }

  private challengeAck(): void {
    this.stats.challengeAcks++;
    this.ackNow = true;
    this.host.markDirty(this);
  }

  // ---- output --------------------------------------------------------------

  /** Sends what is owed and allowed: retransmissions, new data, FIN, ACK. Then raises pending events. */
  output(now: number): void {
    const k = this.state.kind;
    if (k === 'established' || k === 'close-wait' || k === 'fin-wait-1' || k === 'closing' || k === 'last-ack') {
      this.sendData(now);
    }
    // A segment without text carries SND.MAX, not SND.NXT (4.4BSD tcp_output): after a timeout pulled SND.NXT
    // back, the peer may already hold bytes up to SND.MAX, and a lower sequence number would be out of its window.
    if (this.ackNow && k !== 'closed' && k !== 'syn-sent') this.emit(this.sndMax, ACK, 0, false);
    if (this.probeDue) {
      this.probeDue = false;
      this.schedulePto(now);
    }
  }

  private sendData(now: number): void {
    const cc = this.cc;
    // Idle restart (RFC 5681 §4.1).
    if (this.sndUna === this.sndMax && this.snd.length > 0 && now - this.lastSendAt > this.rtt.rto()) cc.restartAfterIdle();
    let sackRecovery = false;
    if (this.sackOk) {
      // With SACK (RFC 6675 §5 step C, RFC 8985 §7): while the pipe leaves a segment's room in cwnd, re-send what
      // RACK marked lost, lowest first (NextSeg rule 1); then new data (rule 3) in the loop below, against the pipe.
      // After an RTO, go-back-N (below) re-sends everything from SND.NXT on; what RACK finds lost behind SND.NXT is a
      // lost retransmission of that pass, re-sent here within the pass's flight (RFC 8985 §6.3: RACK goes on after an RTO).
      sackRecovery = !this.rtoRecovery && (cc.inRecovery || this.sent.lostBytes > 0);
      while ((sackRecovery || this.rtoRecovery) && this.sent.lostBytes > 0) {
        const room = cc.cwnd - (this.rtoRecovery ? seqDiff(this.sndNxt, this.sndUna) : this.pipe());
        if (room < this.mss) {
          if (this.rexmitQuota <= 0) break;
          this.rexmitQuota--;
        }
        const seq = this.sent.firstLost(holeEnd);
        if (seq < 0 || (this.rtoRecovery && !seqLt(seq, this.sndNxt))) break;
        if (!this.resendRange(seq, holeEnd[0]!, now)) break;
      }
    }
    // Fast recovery without SACK: SND.UNA again, once per partial ACK (RFC 6582 §3.2).
    while (!this.sackOk && cc.inRecovery && this.rexmitQuota > 0) {
      const seq = this.nextRetransmission();
      if (seq < 0) break;
      // A hole may end at our FIN, which occupies sequence space but no buffer byte.
      const dataLeft = Math.max(0, seqDiff(seqAdd(this.bufSeq, this.snd.length), seq));
      const len = Math.min(this.mss, seqDiff(holeEnd[0]!, seq), dataLeft);
      const fin = this.finSentAt(seqAdd(seq, len));
      if (len <= 0 && !fin) break;
      this.rexmitQuota--;
      this.sendRange(seq, len, now, true, fin);
      this.rexmitNext = seqAdd(seq, len + (fin ? 1 : 0));
    }
    const dataEnd = seqAdd(this.bufSeq, this.snd.length);
    for (;;) {
      const seq = this.sndNxt;
      if (this.rtoRecovery && seqLt(seq, this.sndMax)) {
        // Go-back-N skips what the receiver SACKed since the timeout (RFC 6675 §5.1: SACK information that arrives
        // after the RTO is used).
        const skip = this.sent.sackedEnd(seq);
        if (skip !== -1) {
          this.sndNxt = skip;
          continue;
        }
      }
      const avail = seqDiff(dataEnd, seq);
      const finDue = this.finSeq !== -1 && seq === this.finSeq;
      if (avail <= 0 && !finDue) break;
      const inFlight = seqDiff(this.sndNxt, this.sndUna);
      const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), seq);
      // Limited Transmit (RFC 3042 §2): each of the first two duplicate ACKs lets one new segment out beyond cwnd.
      const cwndRoom = sackRecovery ? cc.cwnd - this.pipe() : cc.cwnd + (cc.inRecovery ? 0 : Math.min(cc.dupAcks, 2) * this.mss) - inFlight;
      let len = Math.min(this.mss, Math.max(avail, 0), wndRoom, cwndRoom);
      // Sender SWS avoidance (§3.8.6.2.1): a segment smaller than the MSS that the window cut short waits,
      // unless it reaches half the largest window seen or the override (persist) timer fired.
      const windowHeld = avail > 0 && (len <= 0 || (len < this.mss && len < avail && len < this.maxSndWnd >> 1 && !this.forceSend));
      if (windowHeld) {
        // Nothing outstanding to clock us: the persist timer probes the window (§3.8.6.1) — also when a window update was lost.
        if (this.sndUna === this.sndMax && this.rtoAt === INF) this.armRto(now);
        break;
      }
      if (len < 0) len = 0;
      // Nagle (RFC 896): hold a small last segment while data is in flight, unless NODELAY.
      if (len > 0 && len < this.mss && len === avail && !this.noDelay && inFlight > 0 && !this.shutdownRequested) break;
      const fin = this.finSeq !== -1 && seqAdd(seq, len) === this.finSeq;
      if (len === 0 && !fin) break;
      this.sendRange(seq, len, now, seqLt(seq, this.sndMax), fin);
      const next = seqAdd(seq, len + (fin ? 1 : 0));
      if (fin) this.afterFinSent();
      this.sndNxt = next;
      if (seqGt(next, this.sndMax)) this.sndMax = next;
      this.forceSend = false;
      if (fin) break;
    }
    this.forceSend = false;
  }

  /** Whether our FIN sits at `seq` and has been sent before (so a retransmission ending there carries it again). */
  private finSentAt(seq: number): boolean {
    return this.finSeq !== -1 && seq === this.finSeq && seqGt(this.sndMax, this.finSeq);
  }

  private afterFinSent(): void {
    const k = this.state.kind;
    if (k === 'established') this.state = FIN_WAIT_1;
    else if (k === 'close-wait') this.state = LAST_ACK;
  }

  /** The next sequence number fast recovery without SACK should retransmit (its end in holeEnd[0]), or -1. */
  private nextRetransmission(): number {
    const una = this.sndUna;
    // NewReno without SACK information: only SND.UNA, once per partial ACK.
    if (this.rexmitNext !== una) return -1;
    holeEnd[0] = seqAdd(una, Math.min(this.mss, seqDiff(this.sndMax, una)));
    return seqDiff(this.sndMax, una) > 0 ? una : -1;
  }

  /** Re-sends [seq, end), a segment RACK judged lost, in MSS pieces (with our FIN when it ends there). Returns whether anything went. */
  private resendRange(seq: number, end: number, now: number): boolean {
    const dataEnd = seqAdd(this.bufSeq, this.snd.length);
    let sent = false;
    while (seqLt(seq, end)) {
      const len = Math.max(0, Math.min(this.mss, seqDiff(end, seq), seqDiff(dataEnd, seq)));
      const fin = this.finSentAt(seqAdd(seq, len));
      if (len === 0 && !fin) break;
      this.stats.sackRetransmits++;
      this.sendRange(seq, len, now, true, fin);
      sent = true;
      seq = seqAdd(seq, len + (fin ? 1 : 0));
    }
    return sent;
  }

  /** Sends [seq, seq+len) from the send buffer, with FIN when asked. */
  private sendRange(seq: number, len: number, now: number, retransmission: boolean, fin: boolean): void {
    let flags = ACK;
    if (len > 0 && seqAdd(seq, len) === seqAdd(this.bufSeq, this.snd.length)) flags |= PSH;
    if (fin) flags |= FIN;
    this.emit(seq, flags, len, false);
    const end = seqAdd(seq, len + (fin ? 1 : 0));
    if (seqGt(end, this.sndMax)) this.sndMax = end;
    this.lastSendAt = now;
    if (this.sackOk) this.sent.sent(seq, end, now);
    if (retransmission) {
      this.stats.retransmits++;
      if (this.timedAt >= 0 && seqGe(this.timedSeq, seq)) this.timedAt = -1; // Karn
    } else {
      this.stats.bytesOut += len;
      this.probeDue = true;
      if (this.timedAt < 0 && len > 0) {
        this.timedSeq = seq;
        this.timedAt = now;
      }
    }
    if (this.rtoAt === INF) this.armRto(now);
  }

  private sendSyn(withAck: boolean): void {
    this.emit(this.iss, withAck ? SYN | ACK : SYN, 0, true);
    if (seqLe(this.sndMax, this.iss)) {
      this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    }
  }

  /** Writes one segment into the stack's output: IP header, TCP header with options, payload from the send buffer. */
  private emit(seq: number, flags: number, dataLen: number, syn: boolean): void {
    const out = this.host.output;
    const addrLen = this.local.length;
    const ipLen = ipHeaderLen(addrLen);
    const at = out.reserve(ipLen + TCP_HEADER_LEN + 40 + dataLen);
    const buf = out.data();
    const t = at + ipLen;
    let optLen = 0;
    let window: number;
    if (syn) {
      // Our SYN offers SACK and window scaling; a SYN-ACK answers in kind (RFC 7323 §2.2, RFC 2018 §2).
      const offerWs = this.passive ? this.windowScaling : true;
      const offerSack = this.passive ? this.sackOk : true;
      optLen = writeSynOptions(buf, t + TCP_HEADER_LEN, this.advMss, offerSack, offerWs ? this.rcvShift : -1);
      window = Math.min(this.rcv.window(), 65535);
    } else {
      if ((flags & ACK) !== 0 && this.sackOk && this.rcv.ranges > 0 && (flags & RST) === 0) {
        const n = this.rcv.sackBlocks(sackOut, MAX_SACK_BLOCKS);
        optLen = writeSackOption(buf, t + TCP_HEADER_LEN, sackOut, n);
        this.stats.sackBlocksOut += n;
      }
      window = Math.min(this.rcv.window() >>> this.rcvShift, 65535);
    }
    if (dataLen > 0) this.snd.copyOut(seqDiff(seq, this.bufSeq), buf, t + TCP_HEADER_LEN + optLen, dataLen);
    const tcpLen = TCP_HEADER_LEN + optLen + dataLen;
    writeIpHeader(buf, at, this.local, this.remote, PROTO_TCP, tcpLen);
    const srcAt = addrLen === 4 ? at + 12 : at + 8;
    const dstAt = addrLen === 4 ? at + 16 : at + 24;
    const ackField = (flags & ACK) !== 0 ? this.rcv.nxt : 0;
    writeTcpHeader(buf, t, this.localPort, this.remotePort, seq, ackField, flags, window, optLen, dataLen, srcAt, dstAt, addrLen);
    out.commit(ipLen + tcpLen);
    this.stats.segmentsOut++;
    if ((flags & ACK) !== 0) {
      this.ackNow = false;
      this.segsUnacked = 0;
      this.delackAt = INF;
      this.lastAdvWnd = syn ? window : window << this.rcvShift;
      this.lastAdvRight = seqAdd(this.rcv.nxt, this.lastAdvWnd);
    }
  }

  private emitReset(seq: number): void {
    this.emit(seq, RST, 0, false);
  }

  // ---- timers ----------------------------------------------------------------

  /** The earliest deadline of this connection's timers. */
  nextDeadline(): number {
    return Math.min(this.rtoAt, this.reoAt, this.ptoAt, this.delackAt, this.keepAt, this.waitAt);
  }

  /** Runs the timers due at `now` (§3.10.8). */
  tick(now: number): void {
    if (now >= this.waitAt) {
      this.waitAt = INF;
      const k = this.state.kind;
      if (k === 'time-wait') {
        this.finish(null);
        return;
      }
      if (k === 'fin-wait-2') {
        this.finish(null);
        return;
      }
    }
    if (now >= this.delackAt) {
      this.delackAt = INF;
      this.ackNow = true;
      this.host.markDirty(this);
    }
    if (now >= this.reoAt) {
      // RFC 8985 §6.3: the reordering window of a segment RACK could not yet judge has passed.
      this.reoAt = INF;
      this.stats.rackTimeouts++;
      this.rackDetect(now);
    }
    if (now >= this.ptoAt) {
      this.ptoAt = INF;
      this.onProbeTimer(now);
    }
    if (now >= this.rtoAt) {
      this.rtoAt = INF;
      this.onRetransmitTimer(now);
    }
    if (now >= this.keepAt) {
      this.keepAt = INF;
      this.onKeepAliveTimer(now);
    }
  }

  private onRetransmitTimer(now: number): void {
    const st = this.state;
    if (st.kind === 'syn-sent' || st.kind === 'syn-received') {
      if (st.retries >= (st.kind === 'syn-sent' ? this.opts.synRetries : this.opts.synAckRetries)) {
        this.finish(st.kind === 'syn-sent' ? 'ETIMEDOUT' : null);
        return;
      }
      st.retries++;
      this.stats.timeouts++;
      this.rtt.backoff();
      this.timedAt = -1;
      this.sendSyn(st.kind === 'syn-received');
      this.armRto(now);
      return;
    }
    if (st.kind === 'closed' || st.kind === 'time-wait' || st.kind === 'fin-wait-2') return;
    const outstanding = seqDiff(this.sndMax, this.sndUna);
    if (this.sndWnd === 0 && outstanding <= 1 && this.snd.length > 0) {
      // The persist timer (§3.8.6.1): probe a zero window with one byte, without moving SND.NXT. The connection
      // stays up as long as the peer answers the probes (RFC 1122 §4.2.2.17), however long the window stays shut.
      if (++this.probesUnanswered > this.opts.dataRetries) {
        this.emit(this.sndMax, RST | ACK, 0, false);
        this.finish('ETIMEDOUT');
        return;
      }
      this.stats.zeroWindowProbes++;
      this.emit(this.sndUna, ACK, 1, false);
      const probeEnd = seqAdd(this.sndUna, 1);
      if (seqGt(probeEnd, this.sndMax)) this.sndMax = probeEnd;
      this.rtt.backoff();
      this.armRto(now);
      return;
    }
    if (outstanding <= 0) {
      const queued = seqDiff(seqAdd(this.bufSeq, this.snd.length), this.sndNxt);
      if (this.sndWnd > 0 && queued > 0) {
        // The SWS override timeout (§3.8.6.2.1): send what the small window allows.
        this.forceSend = true;
        this.rtt.backoff();
        this.sendData(now);
        if (this.rtoAt === INF) this.armRto(now);
        return;
      }
      return;
    }
    // §5.4-5.6: retransmit the earliest unacknowledged segment, back off, restart the timer.
    if (++this.retries > this.opts.dataRetries) {
      this.emit(this.sndMax, RST | ACK, 0, false);
      this.finish('ETIMEDOUT');
      return;
    }
    this.stats.timeouts++;
    this.cc.onTimeout(outstanding, this.sndMax);
    // RFC 2018 §8: after a timeout the receiver may have reneged, so SACK information is dropped — and RACK's
    // marks with it: go-back-N re-sends everything from SND.UNA until "recover" is acknowledged.
    this.board.clear();
    if (this.sackOk) {
      this.sent.clearMarks();
      this.rack.reset();
      this.rtoRecovery = true;
    }
    this.tlpActive = false;
    this.reoAt = this.ptoAt = INF;
    this.rexmitQuota = 0;
    this.sndNxt = this.sndUna;
    this.rexmitNext = this.sndUna;
    this.timedAt = -1;
    this.rtt.backoff();
    const len = Math.min(this.mss, Math.max(0, seqDiff(seqAdd(this.bufSeq, this.snd.length), this.sndUna)));
    const fin = this.finSentAt(seqAdd(this.sndUna, len));
    if (len > 0 || fin) {
      this.sendRange(this.sndUna, len, now, true, fin);
      this.sndNxt = seqAdd(this.sndUna, len + (fin ? 1 : 0));
    }
    this.armRto(now);
  }

  /** Whether the state is one where our data may be in flight. */
  private sending(): boolean {
    const k = this.state.kind;
    return k === 'established' || k === 'close-wait' || k === 'fin-wait-1' || k === 'closing' || k === 'last-ack';
  }

  /**
   * RFC 8985 §7.2: after new data went out or an ACK came, (re)arm the probe timeout — with SACK, outside recovery,
   * no SACKed data (RACK already has feedback then) and no probe outstanding (one per episode, §7.4).
   */
  private schedulePto(now: number): void {
    this.ptoAt = INF;
    if (!this.sackOk || !this.sending() || this.cc.inRecovery || this.rtoRecovery || this.tlpActive) return;
    if (this.board.count > 0 || this.sndUna === this.sndMax || this.rtoAt === INF || this.sndWnd === 0) return;
    const untilRto = this.rtoAt - now;
    const pto = Math.min(untilRto, Math.max(MIN_PTO, probeTimeout(this.rtt.hasSample, this.rtt.srtt, seqDiff(this.sndMax, this.sndUna), this.mss, untilRto)));
    this.ptoAt = now + pto;
    this.host.noteDeadline(this.ptoAt);
  }

  /**
   * RFC 8985 §7.3: the probe timeout fired — send one segment to draw an ACK (with SACK) that lets RACK find a
   * lost tail: new data if there is some and the peer's window takes it (cwnd does not hold a probe back), else
   * the last segment again. Then the RTO runs again (§7.3 "arm the RTO timer").
   */
  private onProbeTimer(now: number): void {
    if (!this.sending() || this.cc.inRecovery || this.rtoRecovery || this.tlpActive || this.board.count > 0 || this.sndUna === this.sndMax) return;
    const dataEnd = seqAdd(this.bufSeq, this.snd.length);
    const seq = this.sndNxt;
    const avail = seqDiff(dataEnd, seq);
    const wndRoom = seqDiff(seqAdd(this.sndUna, this.sndWnd), seq);
    const finDue = this.finSeq !== -1 && seq === this.finSeq;
    if (seq === this.sndMax && (avail > 0 ? wndRoom > 0 : finDue)) {
      const len = Math.max(0, Math.min(this.mss, avail, wndRoom));
      const fin = this.finSeq !== -1 && seqAdd(seq, len) === this.finSeq;
      this.sendRange(seq, len, now, false, fin);
      const next = seqAdd(seq, len + (fin ? 1 : 0));
      if (fin) this.afterFinSent();
      this.sndNxt = next;
      if (seqGt(next, this.sndMax)) this.sndMax = next;
      this.tlpStart = seq;
      this.tlpRetrans = false;
    } else {
      const last = this.sent.lastStart();
      if (last < 0) return;
      const len = Math.max(0, Math.min(this.mss, seqDiff(dataEnd, last), seqDiff(this.sndMax, last)));
      const fin = this.finSentAt(seqAdd(last, len));
      if (len === 0 && !fin) return;
      this.sendRange(last, len, now, true, fin);
      this.tlpStart = last;
      this.tlpRetrans = true;
    }
    this.tlpActive = true;
    this.tlpEnd = this.sndMax;
    this.stats.tailLossProbes++;
    this.armRto(now);
  }

  private onKeepAliveTimer(now: number): void {
    const k = this.state.kind;
    if (!this.keepAlive || (k !== 'established' && k !== 'close-wait')) return;
    if (this.keepProbes >= this.opts.keepAliveProbes) {
      this.emit(this.sndMax, RST | ACK, 0, false);
      this.finish('ETIMEDOUT');
      return;
    }
    // RFC 1122 §4.2.3.6: a probe is SEG.SEQ = SND.NXT-1 with no data, which the peer must ACK.
    this.keepProbes++;
    this.stats.keepAliveProbes++;
    this.emit(seqAdd(this.sndUna, -1), ACK, 0, false);
    this.keepAt = now + this.opts.keepAliveIntervalMs;
    this.host.noteDeadline(this.keepAt);
  }

  private armKeepAlive(now: number): void {
    if (!this.keepAlive) {
      this.keepAt = INF;
      return;
    }
    this.keepAt = Math.max(now, this.lastRecvAt) + this.keepAliveIdleMs;
    this.host.noteDeadline(this.keepAt);
  }

  private armRto(now: number): void {
    this.rtoAt = now + this.rtt.rto();
    this.host.noteDeadline(this.rtoAt);
  }

  /** All acknowledged (or the connection leaves the sending states): no retransmission, reordering or probe timer. */
  private stopRto(): void {
    this.rtoAt = this.reoAt = this.ptoAt = INF;
  }

  private setWait(t: number): void {
    this.waitAt = t;
    this.host.noteDeadline(t);
  }

  // ---- the end -------------------------------------------------------------

  /** Whether the handshake has completed (ACKs may be sent). */
  synchronized(): boolean {
    const k = this.state.kind;
    return k !== 'syn-sent' && k !== 'syn-received' && k !== 'closed';
  }

  private finish(error: TcpError | null): void {
    if (this.state.kind === 'closed') return;
    this.state = error === null ? CLOSED_OK : { kind: 'closed', error };
    this.rtoAt = this.reoAt = this.ptoAt = this.delackAt = this.keepAt = this.waitAt = INF;
    this.snd.release();
    this.sent.release();
    this.releaseDrainedReceive();
    this.evClose = true;
    this.host.markDirty(this);
    this.host.release(this);
  }

  /** Raises pending application events (the stack calls this after output). */
  dispatch(): void {
    const e = this.events;
    if (this.evConnect) {
      this.evConnect = false;
      e.onConnect();
    }
    if (this.evReadable) {
      this.evReadable = false;
      if (this.rcv.unread > 0) e.onReadable();
    }
    if (this.evEnd && !this.endDelivered) {
      this.evEnd = false;
      this.endDelivered = true;
      e.onEnd();
    }
    if (this.evWritable) {
      this.evWritable = false;
      e.onWritable();
    }
    if (this.evClose && (this.state.kind === 'closed' || this.state.kind === 'time-wait') && !this.closeDelivered) {
      this.evClose = false;
      this.closeDelivered = true;
      e.onClose(this.state.kind === 'closed' ? this.state.error : null);
    }
  }

  /** The largest send window the peer ever advertised, in bytes after scaling (above 65535 only with window scaling). */
  get largestPeerWindow(): number {
    return this.maxSndWnd;
  }

  /** For tests and diagnostics: the current congestion window and RTO. */
  get congestion(): { cwnd: number; ssthresh: number; rto: number; srtt: number; inRecovery: boolean } {
    return { cwnd: this.cc.cwnd, ssthresh: this.cc.ssthresh, rto: this.rtt.rto(), srtt: this.rtt.srtt, inRecovery: this.cc.inRecovery };
  }
}
