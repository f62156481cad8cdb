/**
 * An HTTP proxy that sends through a ProxyDialer: CONNECT (RFC 9110 §9.3.6,
 * a tunnel for HTTPS and anything else over TCP) and requests in absolute
 * form (RFC 9112 §3.2.2, `GET http://host/path`), forwarded with their
 * hop-by-hop fields removed (RFC 9110 §7.6.1), one outbound connection per
 * request.
 *
 * Node's HTTP parser reads the requests, with its bounds: a request head of
 * at most 16 KiB (431 beyond), a head within `headersTimeoutMs` (408), and
 * anything it cannot parse gets 400 and a closed connection. What the proxy
 * itself rejects: an origin-form or non-http target (400), a CONNECT target
 * that is not host:port (400), missing or wrong credentials (407); a
 * destination that cannot be reached is 502 (504 when it does not answer).
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProxyDialer } from './proxy-dialer.js';
import { dialHost } from './proxy-dial.js';
import { endToEndHeaders, parseAbsoluteUri, parseAuthority, parseBasicCredentials } from './http-proxy-wire.js';
import { credentialsMatch, type ProxyCredentials } from './proxy-credentials.js';
import { splice } from './splice.js';

export interface HttpProxyOptions {
  dialer: ProxyDialer;
  /** When given, requests must carry them as Proxy-Authorization: Basic (RFC 7617). */
  credentials?: ProxyCredentials;
  /** A request head within this (default 10 s). */
  headersTimeoutMs?: number;
  /** A connection through the dialer within this (default 30 s). */
  connectTimeoutMs?: number;
  /** At most this many clients at once (default 1024). */
  maxClients?: number;
  /** One line per request that failed, for the operator (never credentials). */
  log?: (line: string) => void;
}

const REALM = 'Basic realm="tunnelbyte proxy"';

function statusForError(e: unknown): 502 | 504 {
  return (e as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? 504 : 502;
}

function errorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code ? `${code}: ${(e as Error).message}` : (e as Error).message;
}

/** A complete response on a raw socket (CONNECT's errors) and the end of the connection. */
function rawReply(socket: Duplex, status: number, reason: string, body: string, extra: string[] = []): void {
  const lines = [`HTTP/1.1 ${status} ${reason}`, 'Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', ...extra];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** An HTTP proxy server; call listen() on it. */
export function createHttpProxy(opts: HttpProxyOptions): Server {
  const log = opts.log ?? (() => {});
  const connectTimeoutMs = opts.connectTimeoutMs ?? 30_000;
  const server = createServer({ headersTimeout: opts.headersTimeoutMs ?? 10_000, requestTimeout: 0, maxHeaderSize: 16 * 1024 });
  server.maxConnections = opts.maxClients ?? 1024;

  const authorized = (req: IncomingMessage): boolean => {
    if (!opts.credentials) return true;
    const c = parseBasicCredentials(req.headers['proxy-authorization']);
    return c !== null && credentialsMatch(opts.credentials, c.user, c.password);
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const fail = (status: number, body: string, headers: Record<string, string> = {}): void => {
      log(`http ${req.socket.remoteAddress}:${req.socket.remotePort} ${req.method} ${JSON.stringify(req.url).slice(0, 200)}: ${status} ${body}`);
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    if (!authorized(req)) return fail(407, 'proxy authentication required\n', { 'Proxy-Authenticate': REALM });
    const t = parseAbsoluteUri(req.url ?? '');
    if (!t) return fail(400, 'a proxy request needs an absolute http:// URI (use CONNECT for anything else)\n');
    void (async () => {
      let upstream: Duplex;
      try {
        upstream = await dialHost(opts.dialer, t.target, t.port, connectTimeoutMs);
      } catch (e) {
        if (!res.destroyed) fail(statusForError(e), `cannot reach ${t.hostHeader}: ${errorText(e)}\n`);
        return;
      }
      if (req.destroyed) {
        upstream.destroy();
        return;
      }
      // RFC 9112 §3.2.2: "the proxy MUST ignore the received Host header field (if any) and instead replace it with the host information of the request-target".
      const headers: [string, string][] = [['Host', t.hostHeader], ...endToEndHeaders(req.rawHeaders).filter(([n]) => n.toLowerCase() !== 'host')];
      headers.push(['Connection', 'close']);
      const out = request({ method: req.method, path: t.path, headers: headers.flat(), createConnection: () => upstream as Socket, setHost: false });
      out.on('response', (inRes) => {
        const back = endToEndHeaders(inRes.rawHeaders);
        res.writeHead(inRes.statusCode ?? 502, inRes.statusMessage, back);
        inRes.pipe(res);
        inRes.on('error', () => res.destroy());
      });
      out.on('error', (e) => {
        upstream.destroy();
        if (!res.headersSent) fail(502, `${t.hostHeader} failed: ${errorText(e)}\n`);
        else res.destroy();
      });
      res.on('close', () => {
        if (!res.writableFinished) out.destroy();
      });
      req.pipe(out);
    })();
  });

  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const fail = (status: number, reason: string, body: string, extra: string[] = []): void => {
      log(`http ${req.socket.remoteAddress}:${req.socket.remotePort} CONNECT ${JSON.stringify(req.url).slice(0, 200)}: ${status} ${body}`);
      rawReply(socket, status, reason, body, extra);
    };
    if (!authorized(req)) return fail(407, 'Proxy Authentication Required', 'proxy authentication required\n', [`Proxy-Authenticate: ${REALM}`]);
    const t = parseAuthority(req.url ?? '');
    if (!t) return fail(400, 'Bad Request', 'CONNECT needs host:port\n');
    socket.pause();
    void (async () => {
      let upstream: Duplex;
      try {
        upstream = await dialHost(opts.dialer, t.target, t.port, connectTimeoutMs);
      } catch (e) {
        if (!socket.destroyed) {
          const s = statusForError(e);
          fail(s, s === 504 ? 'Gateway Timeout' : 'Bad Gateway', `cannot reach ${req.url}: ${errorText(e)}\n`);
        }
        return;
      }
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      splice(socket, upstream);
      socket.resume();
    })();
  });

  return server;
}
