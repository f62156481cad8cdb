/**
 * Datagram fuzzing of a device's receive path, in memory (no root): an exit
 * device with one real client peer, fed random datagrams and mutations of
 * valid initiations, responses, cookie replies and transport packets from
 * random sources, with genuine transport packets from the client mixed in.
 * Used by test/unit/datagram-fuzz.test.ts (≥ 1,000,000 datagrams in the
 * suite) and by `npm run bench -- --fuzz` (longer runs).
 *
 * What is checked, for every datagram (whitepaper §5.3 "silence" and §5.4):
 *  - the device never throws;
 *  - it sends nothing except cookie replies, and each cookie reply goes to
 *    the source of a handshake message that carried a valid mac1, answers
 *    that message's sender index and opens with that message's mac1 as the
 *    associated data under HASH(LABEL_COOKIE || exit public key);
 *  - every genuine packet is accepted and written to the TUN, and nothing
 *    else is: the client's endpoint never moves to a fuzzed source;
 *  - counters add up: drops by reason + accepted == datagrams received.
 *
 * Deterministic for a seed (a small xorshift generator), so a failure names
 * the seed that reproduces it.
 */
import { ManualClock } from '../../src/protocol/clock.js';
import { Device } from '../../src/device/device.js';
import type { Peer } from '../../src/device/peer.js';
import { defaultBackend, type CryptoBackend } from '../../src/crypto/backend.js';
import { nodeX25519 } from '../../src/crypto/x25519.js';
import { hash } from '../../src/crypto/blake2s.js';
import { PacketBatch } from '../../src/io/batch.js';
import { deliverAndPoison } from '../../src/io/memory.js';
import { encodeEndpoint, ENDPOINT_SIZE } from '../../src/io/endpoint.js';
import { parseIPv4 } from '../../src/io/ip-address.js';
import { LABEL_COOKIE, TRANSPORT_HEADER_LEN } from '../../src/protocol/constants.js';
import { CookieChecker, CookieGenerator } from '../../src/protocol/cookie.js';
import { CookieReply, Initiation, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE, readU32, Response, writeType, writeU32 } from '../../src/protocol/messages.js';
import { systemRandom } from '../../src/protocol/random.js';
import { ipv4Udp } from './packets.js';
import { Rng } from './rng.js';

export interface FuzzOptions {
  /** Fuzzed datagrams to send (genuine packets come on top). */
  count: number;
  seed: number;
  /** Datagrams per receive batch (default 128, the UDP bind's). */
  batchSize?: number;
  /** Genuine client packets per batch (default 2). */
  genuinePerBatch?: number;
  /** Receive calls between two drains of the handshake queue (default 1; more lets the queue fill and shed). */
  drainEvery?: number;
  /** Percent of datagrams that are flood initiations: a fresh body with a valid mac1 (default 18). */
  floodPercent?: number;
  /** Simulated ms per batch on the device clock (default 1). */
  msPerBatch?: number;
  crypto?: CryptoBackend;
}

export interface FuzzResult {
  seed: number;
  /** Datagrams handed to the device (fuzzed + genuine). */
  received: number;
  fuzzed: number;
  genuine: number;
  drops: Record<string, number>;
  accepted: Record<string, number>;
  cookieReplies: number;
  tunWrites: number;
  /** Problems found (empty when the device behaved); each names what and where. */
  violations: string[];
  ms: number;
}

const EXIT_ADDR = '192.0.2.1';
const CLIENT_ADDR = '198.51.100.7';
const CLIENT_PORT = 40001;

interface Seed {
  kind: 'initiation' | 'response' | 'cookie-reply' | 'transport';
  bytes: Uint8Array;
}

/** Two devices (exit, client) with a completed handshake, wired by hand (also used by test/unit/handshake-queue.test.ts). */
export class ExitRig {
  readonly clock = new ManualClock();
  readonly exit: Device;
  readonly client: Device;
  readonly exitPub: Uint8Array;
  readonly clientPub: Uint8Array;
  readonly exitPeer: Peer; // the client, as the exit's peer
  readonly clientPeer: Peer; // the exit, as the client's peer
  readonly clientEp = new Uint8Array(ENDPOINT_SIZE);
  readonly exitEp = new Uint8Array(ENDPOINT_SIZE);
  /** What each device sent, as [bytes, destination record]. */
  exitOut: [Uint8Array, Uint8Array][] = [];
  clientOut: [Uint8Array, Uint8Array][] = [];
  tunWrites = 0;
  tunBytes: Uint8Array[] = [];

  constructor(readonly crypto: CryptoBackend) {
    const skE = nodeX25519.generatePrivateKey();
    const skC = nodeX25519.generatePrivateKey();
    this.exitPub = nodeX25519.publicKey(skE);
    this.clientPub = nodeX25519.publicKey(skC);
    const capture = (into: () => [Uint8Array, Uint8Array][]) => (b: PacketBatch) => {
      for (let i = 0; i < b.count; i++) into().push([new Uint8Array(b.packet(i)), b.endpoints.slice(i * ENDPOINT_SIZE, (i + 1) * ENDPOINT_SIZE)]);
    };
    this.exit = new Device({
      clock: this.clock,
      crypto,
      privateKey: skE,
      isolatePeers: true,
      sendToNetwork: capture(() => this.exitOut),
      writeToTun: (b) => {
        this.tunWrites += b.count;
        for (let i = 0; i < b.count; i++) this.tunBytes.push(new Uint8Array(b.packet(i)));
      },
    });
    this.client = new Device({ clock: this.clock, crypto, privateKey: skC, sendToNetwork: capture(() => this.clientOut), writeToTun: () => {} });
    encodeEndpoint({ family: 4, address: CLIENT_ADDR, port: CLIENT_PORT }, this.clientEp);
    encodeEndpoint({ family: 4, address: EXIT_ADDR, port: 51820 }, this.exitEp);
    this.exitPeer = this.exit.addPeer(this.clientPub);
    this.exit.allowedIps.insert(4, parseIPv4('10.64.0.2')!, 32, this.exitPeer);
    this.clientPeer = this.client.addPeer(this.exitPub);
    this.client.allowedIps.insert(4, parseIPv4('0.0.0.0')!, 0, this.clientPeer);
    this.clientPeer.endpoint.set(this.exitEp);
  }

  /** Hands datagrams to a device as one batch from `src`. */
  deliver(to: Device, msgs: Uint8Array[], src: Uint8Array): void {
    const b = new PacketBatch(Math.max(1, msgs.length), 2048);
    for (const m of msgs) {
      const i = b.count++;
      b.offsets[i] = 0;
      b.lengths[i] = m.length;
      b.data.set(m, i * b.slotSize);
      b.endpoints.set(src, i * ENDPOINT_SIZE);
    }
    // Poisoned before the queue is drained: a queued handshake must be a copy, not a view of the batch.
    deliverAndPoison(b, (x) => to.receiveFromNetwork(x));
    to.processHandshakes(Infinity);
  }

  /** The client seals IP packets (from 10.64.0.2) into transport datagrams for the exit. */
  seal(payloads: Uint8Array[]): Uint8Array[] {
    const b = new PacketBatch(Math.max(1, payloads.length), 2048);
    for (const p of payloads) {
      const i = b.count++;
      b.offsets[i] = TRANSPORT_HEADER_LEN;
      b.lengths[i] = p.length;
      b.data.set(p, i * b.slotSize + TRANSPORT_HEADER_LEN);
    }
    this.clientOut = [];
    deliverAndPoison(b, (x) => this.client.receiveFromTun(x));
    return this.clientOut.map(([m]) => m);
  }

  /** A fresh initiation-sized message with a valid mac1 for the exit (what any holder of its public key can send). */
  floodInitiation(rng: Rng): Uint8Array {
    const m = new Uint8Array(Initiation.SIZE);
    rng.fill(m);
    writeType(m, 0, MSG_INITIATION);
    new CookieGenerator(this.exitPub, this.crypto).addMacs(m, 0, Initiation.SIZE, this.clock.now());
    return m;
  }

  /** The client initiates (a packet to send), the exit answers, the client confirms. */
  handshake(): Uint8Array {
    this.clientOut = [];
    const first = this.seal([ipv4Udp('10.64.0.2', '203.0.113.9', new Uint8Array(8))]);
    const initiation = first.find((m) => m[0] === MSG_INITIATION);
    if (!initiation) throw new Error('the client sent no initiation');
    this.exitOut = [];
    this.deliver(this.exit, [initiation], this.clientEp);
    const response = this.exitOut.find(([m]) => m[0] === MSG_RESPONSE);
    if (!response) throw new Error(`the exit did not respond (drops: ${JSON.stringify(nonZero(this.exit.drops))})`);
    this.clientOut = [];
    this.deliver(this.client, [response[0]], this.exitEp);
    // The client's staged packet (or a keepalive) confirms the session at the exit.
    this.deliver(this.exit, this.clientOut.map(([m]) => m), this.clientEp);
    this.exitOut = [];
    return initiation;
  }
}

function nonZero(r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== 0));
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Runs the fuzzer; never throws for device misbehaviour (see `violations`), only for a broken rig. */
export function runDatagramFuzz(opts: FuzzOptions): FuzzResult {
  const t0 = performance.now();
  const rng = new Rng(opts.seed);
  const crypto = opts.crypto ?? defaultBackend();
  const rig = new ExitRig(crypto);
  const batchSize = opts.batchSize ?? 128;
  const genuinePerBatch = opts.genuinePerBatch ?? 2;
  const drainEvery = opts.drainEvery ?? 1;
  const msPerBatch = opts.msPerBatch ?? 1;
  const floodPercent = opts.floodPercent ?? 18;
  const violations: string[] = [];
  const violate = (what: string) => {
    if (violations.length < 20) violations.push(what);
  };

  // ---- seeds: valid messages of every type --------------------------------
  const initiation = rig.handshake();
  const exitMacs = new CookieGenerator(rig.exitPub, crypto); // writes mac1 valid for the exit
  const clientChecker = new CookieChecker(rig.clientPub, systemRandom, crypto);
  const transports = rig.seal([ipv4Udp('10.64.0.2', '203.0.113.9', new Uint8Array(0)), ipv4Udp('10.64.0.2', '203.0.113.9', new Uint8Array(1200))]);
  const liveIndex = readU32(transports[0]!, 4); // the exit's receiver index for this session
  const response = new Uint8Array(Response.SIZE);
  rng.fill(response);
  writeType(response, 0, MSG_RESPONSE);
  writeU32(response, Response.RECEIVER, liveIndex);
  exitMacs.addMacs(response, 0, Response.SIZE, rig.clock.now());
  const cookieReply = clientChecker.createReply(initiation, 0, Initiation.SIZE, liveIndex, rig.exitEp, 0, rig.clock.now());
  const seeds: Seed[] = [
    { kind: 'initiation', bytes: initiation },
    { kind: 'response', bytes: response },
    { kind: 'cookie-reply', bytes: cookieReply },
    ...transports.map((bytes) => ({ kind: 'transport' as const, bytes })),
    ...rig.seal([ipv4Udp('10.64.0.2', '203.0.113.9', new Uint8Array(100))]).map((bytes) => ({ kind: 'transport' as const, bytes })),
  ];
  if (seeds.some((s) => s.kind === 'transport' && s.bytes[0] !== 4)) throw new Error('the client did not seal transport packets');
  // The exit sees every transport seed once, genuinely: any later copy is a replay, not a new packet.
  rig.deliver(rig.exit, seeds.filter((s) => s.kind === 'transport').map((s) => s.bytes), rig.clientEp);
  const endpointBefore = rig.exitPeer.endpoint.slice();
  rig.exitOut = [];
  rig.tunWrites = 0;
  rig.tunBytes = [];
  const dropsBefore = { ...rig.exit.drops };
  const acceptedBefore = { ...rig.exit.accepted };

  const cookieKey = hash(LABEL_COOKIE, rig.exitPub);
  const mac1Check = new CookieChecker(rig.exitPub, systemRandom, crypto);

  // ---- the run ---------------------------------------------------------------
  const batch = new PacketBatch(batchSize + genuinePerBatch, 2048);
  const scratch = new Uint8Array(2048);
  /** Handshake messages with a valid mac1 since the last drain: `${endpoint}:${sender}` → mac1s. */
  let answerable = new Map<string, Uint8Array[]>();
  const genuineSent: Uint8Array[] = [];
  let fuzzed = 0;
  let genuine = 0;
  let cookieReplies = 0;
  let calls = 0;
  let plainSeq = 0;

  const mutate = (out: Uint8Array): number => {
    const r = rng.int(100);
    if (r < 12) {
      // Random bytes, random length; often with a plausible type word and an exact length.
      const lens = [0, 1, 3, 4, 31, 32, 33, 64, 92, 148, 149, 1500];
      const len = rng.int(4) === 0 ? rng.int(1600) : lens[rng.int(lens.length)]!;
      rng.fill(out, 0, len);
      if (len >= 4 && rng.int(2) === 0) writeType(out, 0, 1 + rng.int(4));
      return len;
    }
    if (r < 12 + floodPercent) {
      out.set(initiation);
      // The flood: a fresh body with a valid mac1 (anyone who knows the exit's public key can).
      rng.fill(out, 4, Initiation.MAC1 - 4);
      exitMacs.addMacs(out, 0, Initiation.SIZE, rig.clock.now());
      if (rng.int(2) === 0) rng.fill(out, Initiation.MAC2, 16); // a made-up mac2
      return Initiation.SIZE;
    }
    const seed = seeds[rng.int(seeds.length)]!;
    let len = seed.bytes.length;
    out.set(seed.bytes);
    const ops = 1 + rng.int(3);
    for (let k = 0; k < ops; k++) {
      switch (rng.int(7)) {
        case 0: // flip bits
          out[rng.int(len)]! ^= 1 << rng.int(8);
          break;
        case 1: // set a byte
          out[rng.int(len)] = [0, 0xff, rng.u32() & 0xff][rng.int(3)]!;
          break;
        case 2: // truncate
          len = Math.max(0, len - 1 - rng.int(Math.min(len, 40)));
          break;
        case 3: // extend
          {
            const add = 1 + rng.int(40);
            rng.fill(out, len, add);
            len += add;
          }
          break;
        case 4: // the type word
          out[rng.int(4)] = rng.int(6);
          break;
        case 5: // splice another seed's tail
          {
            const o = seeds[rng.int(seeds.length)]!.bytes;
            const cut = rng.int(Math.min(len, o.length) + 1);
            out.set(o.subarray(cut), cut);
            len = o.length;
          }
          break;
        case 6: // only the mac2 of a handshake message, or the counter of a transport packet
          if (len === Initiation.SIZE || len === Response.SIZE) rng.fill(out, len - 16, 16);
          else if (len >= 16) rng.fill(out, 8, 8);
          break;
      }
    }
    // Never a seed itself (splicing can rebuild one): a datagram equal to a valid one is not fuzz.
    for (const o of seeds) {
      if (o.bytes.length !== len) continue;
      let same = true;
      for (let k = 0; k < len && same; k++) same = out[k] === o.bytes[k];
      if (same) out[len - 1]! ^= 0x80;
    }
    return len;
  };

  // Sources: a pool of random IPv4 and IPv6 endpoints (TEST-NET-3, 2001:db8::/32), and the client's own address.
  const SOURCES = 4096;
  const sources = new Uint8Array(SOURCES * ENDPOINT_SIZE);
  for (let k = 0; k < SOURCES; k++) {
    const port = 1 + rng.int(65535);
    if (k % 4 === 0) encodeEndpoint({ family: 6, address: `2001:db8::${(rng.u32() & 0xffff).toString(16)}`, port }, sources, k * ENDPOINT_SIZE);
    else encodeEndpoint({ family: 4, address: `203.0.113.${rng.int(256)}`, port }, sources, k * ENDPOINT_SIZE);
  }
  const randomSource = (rec: Uint8Array, at: number): void => {
    if (rng.int(10) === 0) rec.set(rig.clientEp, at); // forged from the client's own address
    else {
      const k = rng.int(SOURCES) * ENDPOINT_SIZE;
      rec.set(sources.subarray(k, k + ENDPOINT_SIZE), at);
    }
  };

  const checkOutput = (): void => {
    for (const [m, dst] of rig.exitOut) {
      if (m.length === CookieReply.SIZE && m[0] === MSG_COOKIE_REPLY) {
        const key = `${hex(dst)}:${readU32(m, CookieReply.RECEIVER)}`;
        const nonce = m.subarray(CookieReply.NONCE, CookieReply.NONCE + 24);
        const sealed = m.subarray(CookieReply.COOKIE, CookieReply.SIZE);
        const ok = (answerable.get(key) ?? []).some((mac1) => crypto.xaead.open(cookieKey, nonce, sealed, mac1)?.length === 16);
        if (ok) cookieReplies++;
        else violate(`a cookie reply that answers no valid-mac1 message from ${hex(dst)} (seed ${opts.seed})`);
      } else {
        violate(`sent a type-${m[0]} message of ${m.length} bytes to ${hex(dst)} in answer to fuzz (seed ${opts.seed})`);
      }
    }
    rig.exitOut = [];
  };

  while (fuzzed < opts.count) {
    batch.count = 0;
    const n = Math.min(batchSize, opts.count - fuzzed);
    // Genuine packets at random places in the batch.
    const genuineAt = new Set<number>();
    const payloads: Uint8Array[] = [];
    for (let g = 0; g < genuinePerBatch; g++) {
      genuineAt.add(rng.int(n + genuinePerBatch));
      const p = ipv4Udp('10.64.0.2', '203.0.113.9', new Uint8Array(4));
      new DataView(p.buffer).setUint32(p.length - 4, plainSeq++);
      payloads.push(p);
    }
    const sealed = genuineAt.size > 0 ? rig.seal(payloads.slice(0, genuineAt.size)) : [];
    let s = 0;
    for (let i = 0; i < n + genuineAt.size; i++) {
      const slot = batch.count++;
      const at = slot * batch.slotSize;
      batch.offsets[slot] = 0;
      if (genuineAt.has(i) && s < sealed.length) {
        const m = sealed[s++]!;
        batch.data.set(m, at);
        batch.lengths[slot] = m.length;
        batch.endpoints.set(rig.clientEp, slot * ENDPOINT_SIZE);
        genuineSent.push(payloads[s - 1]!);
        genuine++;
        continue;
      }
      const len = mutate(scratch);
      batch.data.set(scratch.subarray(0, len), at);
      batch.lengths[slot] = len;
      randomSource(batch.endpoints, slot * ENDPOINT_SIZE);
      if ((len === Initiation.SIZE && scratch[0] === MSG_INITIATION) || (len === Response.SIZE && scratch[0] === MSG_RESPONSE)) {
        if (scratch[1] === 0 && scratch[2] === 0 && scratch[3] === 0 && mac1Check.checkMac1(scratch, 0, len)) {
          const key = `${hex(batch.endpoints.subarray(slot * ENDPOINT_SIZE, (slot + 1) * ENDPOINT_SIZE))}:${readU32(scratch, 4)}`;
          const list = answerable.get(key) ?? [];
          list.push(scratch.slice(len - 32, len - 16));
          answerable.set(key, list);
        }
      }
      fuzzed++;
    }
    try {
      deliverAndPoison(batch, (b) => rig.exit.receiveFromNetwork(b));
      if (++calls % drainEvery === 0) {
        rig.exit.processHandshakes(Infinity);
        checkOutput();
        answerable = new Map();
      }
    } catch (e) {
      violate(`threw ${(e as Error).stack ?? String(e)} (seed ${opts.seed}, call ${calls})`);
      break;
    }
    rig.clock.advance(msPerBatch);
  }
  try {
    rig.exit.processHandshakes(Infinity);
  } catch (e) {
    violate(`threw ${(e as Error).stack ?? String(e)} (seed ${opts.seed}, final drain)`);
  }
  checkOutput();

  const drops = Object.fromEntries(Object.entries(rig.exit.drops).map(([k, v]) => [k, v - (dropsBefore[k as keyof typeof dropsBefore] ?? 0)]));
  const accepted = Object.fromEntries(Object.entries(rig.exit.accepted).map(([k, v]) => [k, v - (acceptedBefore[k as keyof typeof acceptedBefore] ?? 0)]));
  const received = fuzzed + genuine;
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  if (sum(drops) + sum(accepted) !== received) {
    violate(`counters do not add up: drops ${sum(drops)} + accepted ${sum(accepted)} != received ${received} (seed ${opts.seed})`);
  }
  if (rig.tunWrites !== genuine) violate(`the TUN got ${rig.tunWrites} packets, ${genuine} genuine were sent (seed ${opts.seed})`);
  else if (!rig.tunBytes.every((p, i) => hex(p) === hex(genuineSent[i]!))) violate(`the TUN got packets other than the genuine ones (seed ${opts.seed})`);
  if (hex(rig.exitPeer.endpoint) !== hex(endpointBefore)) violate(`the client's endpoint moved to ${hex(rig.exitPeer.endpoint)} (seed ${opts.seed})`);
  if (rig.exit.handshakeBacklog !== 0) violate(`${rig.exit.handshakeBacklog} handshake messages left in the queue`);
  return { seed: opts.seed, received, fuzzed, genuine, drops: nonZero(drops), accepted: nonZero(accepted), cookieReplies, tunWrites: rig.tunWrites, violations, ms: performance.now() - t0 };
}
