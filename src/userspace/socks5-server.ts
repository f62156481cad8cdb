/**
 * A SOCKS5 server (RFC 1928) that sends through a ProxyDialer: CONNECT and
 * UDP ASSOCIATE, IPv4, IPv6 and domain-name addresses (names resolved by the
 * dialer, i.e. inside the tunnel), methods "no authentication" and
 * username/password (RFC 1929).
 *
 * Per client connection:
 *
 *   greeting → [username/password] → request → CONNECT: splice to the dialed connection
 *                                             → UDP ASSOCIATE: a relay socket until the client's TCP connection ends
 *
 * Bounds: what a client sent before its request is complete is kept only up
 * to the longest legal message of the phase (socks5-wire.ts); the whole
 * negotiation has a deadline, so half-open clients are closed; the number of
 * clients is capped (net.Server maxConnections). Garbage gets the reply the
 * protocol has for it (METHOD X'FF', RFC 1929 status 1, or a REP code) and a
 * closed connection.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { credentialsMatch, type ProxyCredentials } from './proxy-credentials.js';
import type { ProxyDialer, ProxyUdpSocket } from './proxy-dialer.js';
import { dialHost } from './proxy-dial.js';
import { splice } from './splice.js';
import {
  CMD_CONNECT,
  encodeDatagram,
  encodeReply,
  MAX_GREETING,
  MAX_REQUEST,
  MAX_USERPASS,
  METHOD_NO_AUTH,
  METHOD_NONE_ACCEPTABLE,
  METHOD_USERPASS,
  parseDatagram,
  parseGreeting,
  parseRequest,
  parseUserPass,
  Rep,
  repForError,
  SOCKS_VERSION,
  USERPASS_VERSION,
  type SocksAddress,
} from './socks5-wire.js';

export interface SocksServerOptions {
  dialer: ProxyDialer;
  /** When given, clients must authenticate with these (RFC 1929); otherwise no authentication. */
  credentials?: ProxyCredentials;
  /** Greeting to request complete within this (default 10 s). */
  handshakeTimeoutMs?: number;
  /** A CONNECT through the dialer within this (default 30 s). */
  connectTimeoutMs?: number;
  /** At most this many clients at once (default 1024). */
  maxClients?: number;
  /** One line per client that failed, for the operator (never credentials). */
  log?: (line: string) => void;
}

type Phase = 'greeting' | 'auth' | 'request' | 'working';

/** A SOCKS5 server; call listen() on it. */
export function createSocksServer(opts: SocksServerOptions): Server {
  const server = createServer({ allowHalfOpen: true }, (client) => handleClient(client, opts));
  server.maxConnections = opts.maxClients ?? 1024;
  return server;
}

function handleClient(client: Socket, opts: SocksServerOptions): void {
  const log = opts.log ?? (() => {});
  let phase: Phase = 'greeting';
  let buf: Buffer = Buffer.alloc(0);
  const deadline = setTimeout(() => client.destroy(), opts.handshakeTimeoutMs ?? 10_000);
  client.on('close', () => clearTimeout(deadline));
  client.on('error', () => client.destroy());

  /** Replies and closes: after an error reply the RFCs' server "MUST close the connection". */
  const fail = (reply: Buffer, why: string): void => {
    phase = 'working';
    clearTimeout(deadline);
    client.removeListener('data', onData);
    log(`socks5 ${client.remoteAddress}:${client.remotePort}: ${why}`);
    client.end(reply);
    client.destroySoon?.();
  };

  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    for (;;) {
      if (phase === 'greeting') {
        const r = parseGreeting(buf);
        if (r.kind === 'more') return checkBound(MAX_GREETING, Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]));
        if (r.kind === 'error') return fail(Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]), r.reason);
        buf = buf.subarray(r.used);
        const want = opts.credentials ? METHOD_USERPASS : METHOD_NO_AUTH;
        // RFC 1928 §3: "If the selected METHOD is X'FF', none of the methods listed by the client are acceptable, and the client MUST close the connection."
        if (!r.value.methods.includes(want)) return fail(Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]), 'no acceptable authentication method');
        client.write(Buffer.from([SOCKS_VERSION, want]));
        phase = opts.credentials ? 'auth' : 'request';
      } else if (phase === 'auth') {
        const r = parseUserPass(buf);
        // RFC 1929 §2: "A STATUS field of X'00' indicates success. If the server returns a `failure' (STATUS value other than X'00') status, it MUST close the connection."
        const denied = Buffer.from([USERPASS_VERSION, 0x01]);
        if (r.kind === 'more') return checkBound(MAX_USERPASS, denied);
        if (r.kind === 'error') return fail(denied, r.reason);
        buf = buf.subarray(r.used);
        if (!credentialsMatch(opts.credentials!, r.value.user, r.value.password)) return fail(denied, 'wrong username or password');
        client.write(Buffer.from([USERPASS_VERSION, 0x00]));
        phase = 'request';
      } else if (phase === 'request') {
        const r = parseRequest(buf);
        if (r.kind === 'more') return checkBound(MAX_REQUEST, encodeReply(Rep.generalFailure));
        if (r.kind === 'error') return fail(encodeReply(Rep.generalFailure), r.reason);
        if (r.kind === 'reject') return fail(encodeReply(r.rep), r.reason);
        const rest = buf.subarray(r.used);
        buf = Buffer.alloc(0);
        phase = 'working';
        client.removeListener('data', onData);
        client.pause();
        if (r.value.cmd === CMD_CONNECT) void doConnect(r.value.address, r.value.port, rest);
        else void doAssociate();
        return;
      } else {
        return;
      }
    }
  };

  /** A phase's message cannot be longer than `max`: more unparsed bytes are not a client of this protocol. */
  const checkBound = (max: number, reply: Buffer): void => {
    if (buf.length >= max) fail(reply, `more than ${max} bytes without a complete message`);
  };

  const doConnect = async (address: SocksAddress, port: number, rest: Buffer): Promise<void> => {
    let remote;
    try {
      remote = await dialHost(opts.dialer, address, port, opts.connectTimeoutMs ?? 30_000);
    } catch (e) {
      if (!client.destroyed) fail(encodeReply(repForError(e)), `connect ${address.host}:${port}: ${(e as Error).message}`);
      return;
    }
    if (client.destroyed) {
      remote.destroy();
      return;
    }
    clearTimeout(deadline);
    const local = remote as { localAddress?: string; localPort?: number };
    client.write(encodeReply(Rep.succeeded, local.localAddress, local.localPort));
    if (rest.length > 0) remote.write(rest);
    splice(client, remote);
    client.resume();
  };

  const doAssociate = async (): Promise<void> => {
    clearTimeout(deadline);
    let relay: UdpSocket;
    let inner: ProxyUdpSocket;
    try {
      inner = opts.dialer.udp();
    } catch (e) {
      return fail(encodeReply(Rep.generalFailure), `udp associate: ${(e as Error).message}`);
    }
    const bindHost = client.localAddress ?? '127.0.0.1';
    relay = createSocket({ type: isIPv6(bindHost) ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        relay.once('error', reject);
        relay.bind(0, bindHost, () => {
          relay.removeListener('error', reject);
          resolve();
        });
      });
    } catch (e) {
      inner.close();
      return fail(encodeReply(Rep.generalFailure), `udp associate: ${(e as Error).message}`);
    }
    if (client.destroyed) {
      relay.close();
      inner.close();
      return;
    }
    relay.on('error', () => {});
    associate(client, relay, inner, opts);
    client.write(encodeReply(Rep.succeeded, unmapped(bindHost), relay.address().port));
    client.resume();
  };

  client.on('data', onData);
}

/** '::ffff:127.0.0.1' (a v4 client of a dual-stack socket) as the IPv4 address it is. */
function unmapped(host: string): string {
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
}

/**
 * RFC 1928 §7: relays datagrams between the client and the tunnel for as long
 * as the TCP connection of the association lives. Only datagrams from the
 * client's IP address are relayed ("MUST drop any datagrams arriving from any
 * source IP address other than the one recorded for the particular
 * association"); fragments (FRAG ≠ 0) are dropped, as an implementation that
 * does not reassemble must.
 */
function associate(client: Socket, relay: UdpSocket, inner: ProxyUdpSocket, opts: SocksServerOptions): void {
  const clientIp = unmapped(client.remoteAddress ?? '');
  let clientUdp: { address: string; port: number } | null = null;
  const names = new Map<string, string>();
  const MAX_NAMES = 64;

  relay.on('message', (msg, rinfo) => {
    if (unmapped(rinfo.address) !== clientIp) return;
    const d = parseDatagram(msg);
    if (!d || d.frag !== 0) return;
    clientUdp = { address: rinfo.address, port: rinfo.port };
    // A destination the tunnel cannot send to (a family it has no address of, too large) is dropped, as UDP may be:
    // the callback takes the error, which the socket would otherwise emit as an 'error' event.
    const send = (host: string): void => {
      try {
        inner.send(d.data, d.port, host, () => {});
      } catch {
        // an address the socket rejects outright: dropped likewise
      }
    };
    if (d.address.type === 'ip') return send(d.address.host);
    const known = names.get(d.address.host);
    if (known) return send(known);
    const name = d.address.host;
    opts.dialer.resolve(name).then(
      (addrs) => {
        if (addrs.length === 0) return;
        if (names.size >= MAX_NAMES) names.clear();
        names.set(name, addrs[0]!);
        send(addrs[0]!);
      },
      () => {},
    );
  });
  inner.on('message', (msg, rinfo) => {
    if (!clientUdp) return;
    relay.send(encodeDatagram(rinfo.address, rinfo.port, msg), clientUdp.port, clientUdp.address);
  });
  // The association ends with its TCP connection (§7: "A UDP association terminates when the TCP connection that the UDP ASSOCIATE request arrived on terminates").
  client.on('data', () => {});
  client.on('end', () => client.end());
  client.on('close', () => {
    relay.close();
    inner.close();
  });
}
