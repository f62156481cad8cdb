/**
 * wireguard-go's logger contract: LOG_LEVEL=verbose|debug (everything),
 * error (errors only, the default), silent (nothing); lines look like
 * "DEBUG: (wg0) 2026/11/28 12:00:00 message". Keys are never passed here.
 */
export interface WgLogger {
  verbose(msg: string): void;
  error(msg: string): void;
}

export type WgLogLevel = 'verbose' | 'error' | 'silent';

export function parseLogLevel(v: string | undefined): WgLogLevel {
  switch (v) {
    case 'verbose':
    case 'debug':
      return 'verbose';
    case 'silent':
      return 'silent';
    default:
      return 'error';
  }
}

function stamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function createWgLogger(level: WgLogLevel, ifname: string, write: (line: string) => void = (l) => process.stderr.write(l)): WgLogger {
  return {
    verbose: (msg) => {
      if (level === 'verbose') write(`DEBUG: (${ifname}) ${stamp(new Date())} ${msg}\n`);
    },
    error: (msg) => {
      if (level !== 'silent') write(`ERROR: (${ifname}) ${stamp(new Date())} ${msg}\n`);
    },
  };
}
