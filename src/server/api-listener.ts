/**
 * The listeners of the exit: the /v1 API (plain HTTP, or HTTPS only when a
 * certificate is given) and /metrics on a listener of its own.
 *
 * TLS: TLS 1.2 or newer (`minVersion`), the certificate and key read from
 * files, and `reloadTls()` — what SIGHUP calls — re-reads them and swaps the
 * server's secure context (`server.setSecureContext`): connections opened
 * after it get the new certificate, connections already open keep theirs and
 * are not dropped (certbot-style renewals without a restart). A file that
 * does not parse leaves the old certificate in place.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

const MIN_TLS = 'TLSv1.2' as const;

function secureOptions(files: TlsFiles): SecureContextOptions {
  const o: SecureContextOptions = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), minVersion: MIN_TLS };
  createSecureContext(o); // throws here, before the running context is touched, when the pair does not load
  return o;
}

export class ApiListener {
  private constructor(
    readonly server: Server | HttpsServer,
    private readonly tls: TlsFiles | null,
    readonly url: string,
  ) {}

  /** Listens on host:port; HTTPS only when `tls` is given. */
  static async listen(handler: RequestListener, host: string, port: number, tls: TlsFiles | null): Promise<ApiListener> {
    const server = tls ? createHttpsServer({ ...secureOptions(tls) }, handler) : createHttpServer(handler);
    server.keepAliveTimeout = 65_000; // longer than the usual 60 s idle timeout of proxies and clients in front of it
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address() as AddressInfo;
    const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return new ApiListener(server, tls, `${tls ? 'https' : 'http'}://${h}:${a.port}`);
  }

  get secure(): boolean {
    return this.tls !== null;
  }

  /** Re-reads the certificate and key (SIGHUP). Open connections keep working; new ones see the new certificate. */
  reloadTls(): void {
    if (!this.tls) return;
    (this.server as HttpsServer).setSecureContext(secureOptions(this.tls));
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
