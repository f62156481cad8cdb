/**
 * What every customer command shares: the `--api` / `--json` options, the
 * API client with the token and fingerprint of this machine, output, and the
 * one place failures become a message on stderr and exit status 1.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ApiClient, DEFAULT_API } from './api-client.js';
import { ApiError, CliError, describeError } from './errors.js';
import { configDir, machineFingerprint, readToken } from './local-files.js';

export interface CommonOptions {
  api: string;
  ca?: string;
  json?: boolean;
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** Adds --api (env TB_API) and, for data commands, --json. */
export function withCommonOptions(cmd: Command, json = true): Command {
  cmd.addOption(new Option('--api <url>', 'tunnelbyte API base URL').env('TB_API').default(DEFAULT_API));
  cmd.addOption(new Option('--ca <file>', 'PEM of the CA to trust for an https API (its certificate is still verified)').env('TB_CA'));
  if (json) cmd.option('--json', 'print JSON (the API\'s shapes) instead of text');
  return cmd;
}

export interface Ctx {
  opts: CommonOptions;
  api: ApiClient;
  io: Io;
  dir: string;
  json: (v: unknown) => void;
}

export function makeCtx(cmd: Command, io: Io): Ctx {
  const opts = cmd.opts<CommonOptions>();
  const dir = configDir();
  // The fingerprint is computed lazily only in the sense that it is cheap; it goes on every request.
  const ca = opts.ca ? readCa(opts.ca) : undefined;
  const api = new ApiClient({ base: opts.api, fingerprint: machineFingerprint(process.env, dir), token: () => readToken(process.env, dir), ...(ca ? { ca } : {}) });
  return { opts, api, io, dir, json: (v) => io.out(JSON.stringify(v, null, 2) + '\n') };
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CliError(`cannot read the CA file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, '--ca / TB_CA takes a PEM file');
  }
}

/** Wraps an action: known failures are printed (message, hints) with exit status 1; bugs propagate. */
export function action<A extends unknown[]>(io: Io, run: (ctx: Ctx, cmd: Command, ...args: A) => Promise<void>) {
  return async function (this: Command, ...args: A): Promise<void> {
    let ctx: Ctx | null = null;
    try {
      ctx = makeCtx(this, io);
      await run(ctx, this, ...args);
    } catch (e) {
      if (e instanceof ApiError || e instanceof CliError) {
        for (const line of describeError(e, { tokenSource: ctx?.api.tokenSource ?? null })) io.err(line + '\n');
        process.exitCode = 1;
        return;
      }
      throw e;
    }
  };
}

/** ISO time without milliseconds; '-' for null. */
export const when = (iso: string | null): string => (iso ? iso.replace(/\.\d{3}Z$/, 'Z') : '-');

/** "3 min ago" for a past ISO time. */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
