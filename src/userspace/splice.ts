/**
 * Joins a proxy's client connection to the connection it opened for it:
 * bytes both ways with backpressure (pipe), a half-close carried across (a
 * FIN from one side ends the other's writing, RFC 9293 §3.6, so
 * `curl -T`-style uploads that half-close still get their reply), and an
 * error or reset on either side tears down both.
 */
import type { Duplex } from 'node:stream';

export function splice(client: Duplex, remote: Duplex): void {
  const teardown = (): void => {
    client.destroy();
    remote.destroy();
  };
  client.on('error', teardown);
  remote.on('error', teardown);
  // 'close' with an error flag (net.Socket) or after destroy(): the other side cannot be written to any more.
  client.on('close', (hadError?: boolean) => {
    if (hadError || !client.readableEnded) remote.destroy();
  });
  remote.on('close', (hadError?: boolean) => {
    if (hadError || !remote.readableEnded) client.destroy();
  });
  client.pipe(remote);
  remote.pipe(client);
  // One side may have failed before it was joined: its 'close' is gone, so tear down now.
  if (client.destroyed || remote.destroyed) teardown();
}
