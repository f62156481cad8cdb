/**
 * The client side of `bench --fleet-e2e` (bench/fleet-e2e.ts), run inside a
 * client's network namespace: creates sessions through the control plane's
 * API with public keys it generated, and for each measures the time from
 * sending POST /v1/sessions until the exit node the session was placed on
 * answers a WireGuard handshake initiation for it — the moment a client
 * could connect. Until the node has the peer it drops the initiations
 * silently (whitepaper §5.4.2: an initiation for an unknown static key gets
 * no answer), so the probe sends a fresh initiation every PROBE_EVERY_MS
 * rather than waiting REKEY_TIMEOUT (5 s) between attempts as a real client
 * would; the answer is checked cryptographically (§5.4.3), not just by type.
 *
 * Input: one JSON argument { api, token, fingerprint, region, count, parallel }.
 * Output: one JSON line { latenciesMs, apiMs, failures, seconds }: `count`
 * sessions, `parallel` at a time; apiMs the time until the API answered the
 * POST (the rest of each latency is the way to the node); seconds is the wall
 * time of all of them.
 */
import { createSocket } from 'node:dgram';
import { defaultBackend } from '../src/crypto/backend.js';
import { CookieGenerator } from '../src/protocol/cookie.js';
import { consumeResponse, createInitiation, responderInitialState, ZERO_PSK } from '../src/protocol/handshake.js';
import { Initiation, MSG_RESPONSE, readU32, Response } from '../src/protocol/messages.js';
import { tai64n } from '../src/protocol/tai64n.js';

const PROBE_EVERY_MS = 5;
const GIVE_UP_MS = 15_000;

interface Input {
  api: string;
  token: string;
  fingerprint: string;
  region: string;
  count: number;
  parallel: number;
}

const input = JSON.parse(process.argv[2] ?? '') as Input;
const crypto = defaultBackend();
const dh = crypto.x25519;
const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
const socket = createSocket('udp4');
await new Promise<void>((resolve) => socket.bind(0, resolve));
/** Waiting probes by their initiation's sender index. */
const waiting = new Map<number, (msg: Buffer) => void>();
socket.on('message', (msg) => {
  if (msg.length !== Response.SIZE || msg[0] !== MSG_RESPONSE) return;
  waiting.get(readU32(msg, Response.RECEIVER))?.(msg);
});
let nextIndex = 1;

/** One session: created through the API, then probed until its node answers. Milliseconds, or null after GIVE_UP_MS. */
async function probeOne(): Promise<number | null> {
  const staticPrivate = dh.generatePrivateKey();
  const staticPublic = dh.publicKey(staticPrivate);
  const start = performance.now();
  const r = await fetch(`${input.api}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${input.token}`, 'x-tb-fingerprint': input.fingerprint },
    body: JSON.stringify({ region: input.region, public_key: b64(staticPublic) }),
  });
  apiMs.push(performance.now() - start);
  const body = (await r.json()) as { exit?: { public_key: string; endpoint: string }; error?: string };
  if (r.status !== 201 || !body.exit) throw new Error(`POST /v1/sessions: ${r.status} ${JSON.stringify(body)}`);
  const exitPublic = new Uint8Array(Buffer.from(body.exit.public_key, 'base64'));
  const m = /^(.*):(\d+)$/.exec(body.exit.endpoint)!;
  const [host, port] = [m[1]!.replace(/^\[|\]$/g, ''), Number(m[2])];
  const peer = { publicKey: exitPublic, presharedKey: ZERO_PSK, staticStatic: dh.sharedSecret(staticPrivate, exitPublic), initialState: responderInitialState(exitPublic) };
  const macs = new CookieGenerator(exitPublic, crypto);
  const local = { staticPrivate, staticPublic };
  const states = new Map<number, ReturnType<typeof createInitiation>>();
  return new Promise<number | null>((resolve) => {
    let timer: NodeJS.Timeout;
    const finish = (v: number | null) => {
      clearInterval(timer);
      for (const i of states.keys()) waiting.delete(i);
      resolve(v);
    };
    const onResponse = (msg: Buffer) => {
      const st = states.get(readU32(msg, Response.RECEIVER));
      if (st && consumeResponse(dh, local, st, peer, new Uint8Array(msg))) finish(performance.now() - start);
    };
    const send = () => {
      if (performance.now() - start > GIVE_UP_MS) return finish(null);
      const msg = new Uint8Array(Initiation.SIZE);
      const index = nextIndex++;
      const st = createInitiation(dh, local, peer, index, tai64n(Date.now(), index), msg);
      if (!st) return finish(null);
      macs.addMacs(msg, 0, Initiation.SIZE, performance.now());
      states.set(index, st);
      waiting.set(index, onResponse);
      socket.send(msg, port, host);
    };
    send();
    timer = setInterval(send, PROBE_EVERY_MS);
  });
}

const latenciesMs: number[] = [];
const apiMs: number[] = [];
let failures = 0;
let started = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: Math.min(input.parallel, input.count) }, async () => {
    while (started < input.count) {
      started++;
      const ms = await probeOne();
      if (ms === null) failures++;
      else latenciesMs.push(ms);
    }
  }),
);
socket.close();
process.stdout.write(JSON.stringify({ latenciesMs, apiMs, failures, seconds: (performance.now() - t0) / 1000 }) + '\n');
