/**
 * What `tunnelbyte serve` says once the exit is up: the WireGuard endpoint
 * clients are given, a URL of the API they can reach, the region, and the
 * commands to try next. To a terminal as lines a person reads; otherwise (a
 * pipe, the journal) as one pino record with the same facts as fields.
 */

export interface BannerFacts {
  /** HOST:PORT written into client configs. */
  endpoint: string;
  /** The address the API listens on (http://0.0.0.0:8080 when on every address). */
  apiListenUrl: string;
  region: string;
  /** The data directory when it is not the default (admin then needs --data too). */
  dataFlag: string | null;
}

/** The API URL a client can use: the listen address, or the endpoint's host when listening on every address. */
export function reachableApiUrl(apiListenUrl: string, endpoint: string): string {
  const u = new URL(apiListenUrl);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (host !== '0.0.0.0' && host !== '::') return u.origin;
  const endpointHost = /^\[([^\]]+)\]:\d+$/.exec(endpoint)?.[1] ?? endpoint.replace(/:\d+$/, '');
  return `${u.protocol}//${endpointHost.includes(':') ? `[${endpointHost}]` : endpointHost}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
}

export function bannerOf(f: BannerFacts): { api: string; next: string[] } {
  const api = reachableApiUrl(f.apiListenUrl, f.endpoint);
  const admin = `tunnelbyte admin${f.dataFlag ? ` --data ${f.dataFlag}` : ''}`;
  return {
    api,
    next: [`${admin} region list`, `${admin} session list`, `TB_API=${api} tunnelbyte signup   # on a client machine, then: tunnelbyte connect`],
  };
}

/** The lines for a terminal. */
export function bannerLines(f: BannerFacts): string[] {
  const b = bannerOf(f);
  return [
    `tunnelbyte exit running in region ${f.region}`,
    `  WireGuard  ${f.endpoint} (UDP)`,
    `  API        ${b.api}`,
    'try next:',
    ...b.next.map((c) => `  ${c}`),
  ];
}
