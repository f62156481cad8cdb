/**
 * Account and information commands: signup, login, upgrade, token, usage,
 * regions, sessions, ip. Each prints the API's JSON unchanged with --json
 * (signup/login/upgrade leave the token out: `tunnelbyte token` prints it).
 */
import type { Command } from 'commander';
import type { SessionViewT } from '../../control/http/schemas.js';
import { formatBytes, renderTable } from '../admin-table.js';
import type { AuthResponse } from './api-client.js';
import { ApiError, CliError } from './errors.js';
import { action, ago, type Ctx, type Io, when, withCommonOptions } from './command-kit.js';
import { connectionPath, readJsonFile, readToken, removeFile, saveToken, tokenPath, type TokenSource } from './local-files.js';
import { obtainEmail, obtainPassword } from './prompt.js';
import type { ConnectionState } from './tunnel-commands.js';

const withoutToken = ({ token: _t, ...rest }: AuthResponse) => rest;

export function registerAccountCommands(program: Command, io: Io): void {
  withCommonOptions(program.command('signup'))
    .description('create a free anonymous account bound to this machine and cache its token')
    .option('--force', 'sign up again even when a working token is cached (replaces it)')
    .action(
      action(io, async (ctx, cmd) => {
        const force = cmd.opts<{ force?: boolean }>().force;
        const cached = readToken(process.env, ctx.dir);
        if (cached && !force) {
          const u = await ctx.api.usage().catch((e) => (e instanceof ApiError && e.status === 401 ? null : Promise.reject(e)));
          if (u) {
            if (ctx.opts.json) return ctx.json({ account_id: u.account_id, tier: u.tier, already_signed_up: true });
            ctx.io.out(`already signed up: account ${u.account_id} (${u.tier})${cached.source === 'TB_KEY' ? ', token from TB_KEY' : ''}\n`);
            ctx.io.out('(tunnelbyte signup --force replaces the cached token)\n');
            return;
          }
        }
        const r = await ctx.api.signup(ctx.api.fingerprintValue);
        const path = saveToken(r.token, ctx.dir);
        if (ctx.opts.json) return ctx.json({ ...withoutToken(r), token_file: path });
        ctx.io.out(`signed up: account ${r.account_id} (${r.tier}), bound to this machine\n`);
        ctx.io.out(`token saved to ${path}\n`);
        ctx.io.out('next: tunnelbyte regions, then sudo tunnelbyte connect\n');
      }),
    );

  withCommonOptions(program.command('login'))
    .description('log in to a paid account (works from any machine) and cache its token')
    .option('--email <address>', 'account email (prompted when omitted)')
    .option('--password-stdin', 'read the password from stdin (otherwise prompted without echo)')
    .action(
      action(io, async (ctx, cmd) => {
        const o = cmd.opts<{ email?: string; passwordStdin?: boolean }>();
        const email = await obtainEmail(o.email);
        const password = await obtainPassword({ passwordStdin: o.passwordStdin });
        const r = await ctx.api.login(email, password);
        const path = saveToken(r.token, ctx.dir);
        if (ctx.opts.json) return ctx.json({ ...withoutToken(r), token_file: path });
        ctx.io.out(`logged in: account ${r.account_id} (${r.tier}, ${r.email ?? email})\ntoken saved to ${path}\n`);
      }),
    );

  withCommonOptions(program.command('upgrade'))
    .description('set an email and password and get the checkout page of the paid tier')
    .option('--email <address>', 'email for the account (prompted when omitted)')
    .option('--password-stdin', 'read the new password from stdin (otherwise prompted twice without echo)')
    .option('--wait', 'after printing the checkout URL, wait until the payment has turned the account paid')
    .option('--timeout <seconds>', 'how long --wait waits', '1800')
    .action(
      action(io, async (ctx, cmd) => {
        const o = cmd.opts<{ email?: string; passwordStdin?: boolean; wait?: boolean; timeout: string }>();
        const email = await obtainEmail(o.email);
        const password = await obtainPassword({ passwordStdin: o.passwordStdin, confirm: true });
        const r = await ctx.api.upgrade(email, password);
        // the new token is machine-bound until paid, then usable anywhere; replace the cached one
        const path = readToken(process.env, ctx.dir)?.source === 'TB_KEY' ? null : saveToken(r.token, ctx.dir);
        const tokenNote = path ? `token saved to ${path}` : 'TB_KEY is set: the new token was not cached (tunnelbyte token after unsetting TB_KEY shows the old one)';
        if (r.checkout_url === null || r.checkout_url === undefined) {
          if (ctx.opts.json) return ctx.json({ ...withoutToken(r), token_file: path });
          ctx.io.out(`account ${r.account_id} is paid already; email ${r.email ?? email} set, so tunnelbyte login works on other machines\n${tokenNote}\n`);
          return;
        }
        if (!o.wait) {
          if (ctx.opts.json) return ctx.json({ ...withoutToken(r), token_file: path });
          ctx.io.out(`pay at:\n  ${r.checkout_url}\n${tokenNote}\nthe account turns paid when the payment is confirmed (tunnelbyte usage shows the tier)\n`);
          return;
        }
        if (!ctx.opts.json) ctx.io.out(`pay at:\n  ${r.checkout_url}\n${tokenNote}\n`);
        else ctx.io.err(`pay at: ${r.checkout_url}\n`);
        ctx.io.err('waiting for the payment to be confirmed (Ctrl-C stops waiting; the upgrade goes on without it)…\n');
        const usage = await waitForPaid(ctx, Number(o.timeout) * 1000);
        if (ctx.opts.json) return ctx.json({ ...withoutToken(r), tier: usage.tier, token_file: path });
        ctx.io.out(`account ${usage.account_id} is paid: ${usage.sessions.limit} sessions, ${usage.regions} regions, ${usage.quota_bytes === null ? 'no data cap' : formatBytes(usage.quota_bytes) + ' a month'}\n`);
      }),
    );

  withCommonOptions(program.command('token'), false)
    .description('print the API token alone (export TB_KEY=$(tunnelbyte token)); --rotate replaces it, --revoke ends it')
    .option('--rotate', 'get a new token in place of this one (the old one stops working at once) and cache it')
    .option('--revoke', 'revoke this token on the server and remove the cached copy (same as tunnelbyte logout)')
    .action(
      action(io, async (ctx, cmd) => {
        const o = cmd.opts<{ rotate?: boolean; revoke?: boolean }>();
        const t = readToken(process.env, ctx.dir);
        if (!t) throw new CliError('not signed up: no token', 'run tunnelbyte signup (free, bound to this machine) or tunnelbyte login (paid account)');
        if (o.rotate && o.revoke) throw new CliError('--rotate and --revoke exclude each other');
        if (o.revoke) return logout(ctx, t.source);
        if (o.rotate) {
          const r = await ctx.api.rotateToken();
          if (t.source === 'TB_KEY') {
            // the old token is revoked; the only copy of the new one is this output
            ctx.io.out(r.token + '\n');
            ctx.io.err('TB_KEY held the old token (now revoked): the new one is printed above and not cached; export TB_KEY=<it>\n');
            return;
          }
          saveToken(r.token, ctx.dir);
          ctx.io.out(r.token + '\n');
          return;
        }
        ctx.io.out(t.token + '\n');
      }),
    );

  withCommonOptions(program.command('logout'), false)
    .description('revoke this machine\'s token on the server and remove the cached copy')
    .action(
      action(io, async (ctx) => {
        const t = readToken(process.env, ctx.dir);
        if (!t) throw new CliError('not signed up: no token', 'nothing to log out of');
        await logout(ctx, t.source);
      }),
    );

  withCommonOptions(program.command('usage'))
    .description('tier, data used this period and its quota, active sessions and their limit')
    .action(
      action(io, async (ctx) => {
        const u = await ctx.api.usage();
        if (ctx.opts.json) return ctx.json(u);
        const quota = u.quota_bytes === null ? 'no cap' : `${formatBytes(u.quota_bytes)} (${Math.min(100, (100 * u.bytes.total) / u.quota_bytes).toFixed(1)} % used)`;
        const rows: [string, string][] = [
          ['account', u.account_id],
          ['tier', u.tier],
          ['period', `${u.period.id} (until ${when(u.period.end)})`],
          ['used', `${formatBytes(u.bytes.total)} (received ${formatBytes(u.bytes.rx)}, sent ${formatBytes(u.bytes.tx)})`],
          ['quota', u.quota_exhausted ? `${quota} — used up: tunnels pass no traffic until ${when(u.period.end)}` : quota],
          ['sessions', `${u.sessions.active} of ${u.sessions.limit} active`],
          ['regions', u.regions === 'all' ? 'all' : 'free regions only'],
          ['requests', `${u.requests_per_minute}/min`],
        ];
        ctx.io.out(rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n') + '\n');
      }),
    );

  withCommonOptions(program.command('regions'))
    .description('active exit regions')
    .action(
      action(io, async (ctx) => {
        const r = await ctx.api.regions();
        if (ctx.opts.json) return ctx.json(r);
        if (r.regions.length === 0) return ctx.io.out('no active regions (no exit node has reported in the last minute)\n');
        ctx.io.out(renderTable(['REGION', 'NAME', 'ACCESS', 'NODES'], r.regions.map((x) => [x.id, x.name, x.paid_only ? 'paid' : 'free', x.nodes])));
      }),
    );

  withCommonOptions(program.command('sessions'))
    .description('your active sessions (with --all, ended ones too); * marks this machine\'s connection')
    .option('--all', 'include closed and expired sessions')
    .action(
      action(io, async (ctx, cmd) => {
        const r = await ctx.api.sessions(cmd.opts<{ all?: boolean }>().all === true);
        if (ctx.opts.json) return ctx.json(r);
        if (r.sessions.length === 0) return ctx.io.out('no sessions\n');
        const current = readJsonFile<ConnectionState>(connectionPath(ctx.dir))?.session_id;
        ctx.io.out(sessionTable(r.sessions, current));
      }),
    );

  withCommonOptions(program.command('ip'))
    .description('is ADDRESS (or was it, --at TIME) an exit address of this service, and of which region')
    .argument('<address>', 'IPv4 or IPv6 address')
    .option('--at <time>', 'ISO 8601 date or time to ask about (default: now)')
    .action(
      action(io, async (ctx: Ctx, cmd: Command, address: string) => {
        const r = await ctx.api.ip(address, cmd.opts<{ at?: string }>().at);
        if (ctx.opts.json) return ctx.json(r);
        if (!r.exit) return ctx.io.out(`${r.address} was not an exit address of this service at ${when(r.at)}\n`);
        ctx.io.out(`${r.address} is an exit address of this service: region ${r.region}, node ${r.node}, in use from ${when(r.first_seen)} to ${when(r.last_seen)}\n`);
      }),
    );
}

/** Revokes the token in use; removes the cache file when that is where it came from. */
async function logout(ctx: Ctx, source: TokenSource): Promise<void> {
  const r = await ctx.api.revokeToken();
  if (source === 'file') removeFile(tokenPath(ctx.dir));
  ctx.io.out(`token ${r.token_id} revoked${source === 'file' ? `; ${tokenPath(ctx.dir)} removed` : ' (it came from TB_KEY: unset it)'}\n`);
}

async function waitForPaid(ctx: Ctx, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  const every = Number(process.env.TB_POLL_MS) > 0 ? Number(process.env.TB_POLL_MS) : 2000;
  for (;;) {
    try {
      const u = await ctx.api.usage();
      if (u.tier === 'paid') return u;
    } catch (e) {
      // a transient failure (or a rate limit) must not end the wait
      if (!(e instanceof ApiError && (e.status === 429 || e.status >= 500)) && !(e instanceof CliError)) throw e;
    }
    if (Date.now() > until) throw new CliError('the payment has not been confirmed yet', 'tunnelbyte usage shows the tier once it has');
    await new Promise((r) => setTimeout(r, every));
  }
}

export function sessionTable(sessions: SessionViewT[], current?: string): string {
  return renderTable(
    ['ID', 'REGION', 'STATE', 'ADDRESSES', 'CREATED', 'HANDSHAKE', 'RECEIVED', 'SENT'],
    sessions.map((s) => [
      s.id + (s.id === current ? ' *' : ''),
      s.region,
      s.state,
      s.client.addresses.join(','),
      when(s.created_at),
      ago(s.last_handshake_at),
      formatBytes(s.rx_bytes),
      formatBytes(s.tx_bytes),
    ]),
  );
}
