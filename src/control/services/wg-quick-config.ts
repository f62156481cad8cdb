/**
 * The wg-quick configuration a client brings its tunnel up with: its
 * addresses, DNS, its private key when the server generated the pair, and
 * the exit as the one peer routing everything (0.0.0.0/0 and ::/0, so
 * IPv6 cannot leak around the tunnel even when the exit has no IPv6 pool).
 */
export interface WgQuickConfigInput {
  sessionId: string;
  regionId: string;
  /** The client's private key when the server generated it; null when the client kept its own. */
  privateKey: string | null;
  clientPublicKey: string;
  /** Client addresses with prefix (10.64.0.2/32, fd00::2/128). */
  addresses: string[];
  dns: string[];
  exitPublicKey: string;
  endpoint: string;
  allowedIps: string[];
  persistentKeepalive: number;
}

export function renderWgQuickConfig(c: WgQuickConfigInput): string {
  const lines = [
    '[Interface]',
    `# tunnelbyte session ${c.sessionId} (region ${c.regionId})`,
    c.privateKey
      ? `PrivateKey = ${c.privateKey}`
      : `# PrivateKey = the private key of ${c.clientPublicKey} (kept on the client; add it here)`,
    `Address = ${c.addresses.join(', ')}`,
  ];
  if (c.dns.length > 0) lines.push(`DNS = ${c.dns.join(', ')}`);
  lines.push(
    '',
    '[Peer]',
    `PublicKey = ${c.exitPublicKey}`,
    `Endpoint = ${c.endpoint}`,
    `AllowedIPs = ${c.allowedIps.join(', ')}`,
  );
  if (c.persistentKeepalive > 0) lines.push(`PersistentKeepalive = ${c.persistentKeepalive}`);
  return lines.join('\n') + '\n';
}
