/**
 * connect, disconnect, status: the tunnel on this machine.
 *
 * connect:  refuse when a connection is recorded → root? → region → key pair
 *           made here (the private key never leaves the machine) → POST
 *           /v1/sessions with the public key → connection.json written →
 *           bringUp (host-tunnel.ts), each change appended to connection.json
 *           as it is made → wait for the first handshake. Any failure (or
 *           Ctrl-C) undoes what was done and closes the session.
 * disconnect: undo connection.json's changes newest first, then DELETE the
 *           session (routes are back by then, so the API is reached directly).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { SessionViewT } from '../../control/http/schemas.js';
import { formatBytes } from '../admin-table.js';
import { sessionTable } from './account-commands.js';
import { action, ago, type Ctx, type Io, when, withCommonOptions } from './command-kit.js';
import { ApiError, CliError } from './errors.js';
import { bringUp, hasIpCommand, interfaceUp, isRoot, linkExists, nudge, peerState, undo, type UndoStep } from './host-tunnel.js';
import { connectionPath, readJsonFile, removeFile, writePrivateFile } from './local-files.js';
import { parseListenAddress, proxyCredentials, withProxyOptions, type ProxyFlags } from '../proxy-command.js';

export const DEFAULT_INTERFACE = 'tb-client';

/** connection.json: what `disconnect` needs to undo a connection. */
export interface ConnectionState {
  version: 1;
  api: string;
  session_id: string;
  region: string;
  interface: string;
  exit_public_key: string;
  endpoint: string;
  addresses: string[];
  connected_at: string;
  undo: UndoStep[];
}

interface ConnectOptions extends ProxyFlags {
  userspace?: boolean;
  region?: string;
  interface: string;
  configOnly?: string | boolean;
  qr?: boolean;
  timeout: string;
}

export function registerTunnelCommands(program: Command, io: Io): void {
  withProxyOptions(withCommonOptions(program.command('connect')))
    .description('create a session and route all traffic through the exit (needs root), or write its wg-quick file')
    .option('--region <id>', 'exit region (default: the first free active region; see tunnelbyte regions)')
    .option('--interface <name>', 'WireGuard interface to create', DEFAULT_INTERFACE)
    .option('--config-only [file]', 'write the wg-quick config (mode 0600) to FILE, or print it, instead of connecting')
    .option('--qr', 'print the wg-quick config as a terminal QR code (for the WireGuard phone apps); implies --config-only')
    .option('--timeout <seconds>', 'how long to wait for the first handshake', '20')
    .option('--userspace', 'no root: run a SOCKS5 (--socks, default 127.0.0.1:1080) and/or HTTP (--http) proxy through the session instead of an interface, until Ctrl-C')
    .action(action(io, (ctx, cmd) => connect(ctx, cmd.opts<ConnectOptions>())));

  withCommonOptions(program.command('disconnect'))
    .description("end this machine's connection: undo routes, rules and interface, close the session; with ID, close that session")
    .argument('[id]', 'a session id (e.g. of a config-only session on a phone)')
    .action(action(io, (ctx: Ctx, _cmd: Command, id?: string) => disconnect(ctx, id)));

  withCommonOptions(program.command('status'))
    .description("this machine's connection (handshake, traffic), or the session ID")
    .argument('[id]', 'a session id')
    .action(action(io, (ctx: Ctx, _cmd: Command, id?: string) => status(ctx, id)));
}

const readState = (ctx: Ctx): ConnectionState | null => readJsonFile<ConnectionState>(connectionPath(ctx.dir));
const saveState = (ctx: Ctx, s: ConnectionState): void => writePrivateFile(connectionPath(ctx.dir), JSON.stringify(s, null, 2) + '\n', ctx.dir);

async function pickRegion(ctx: Ctx): Promise<string> {
  const { regions } = await ctx.api.regions();
  const r = regions.find((x) => !x.paid_only) ?? regions[0];
  if (!r) throw new CliError('no active regions on this server', 'an exit node must be running (tunnelbyte serve)');
  return r.id;
}

/** The API's config with the locally kept private key in place of its placeholder comment. */
export function withPrivateKey(config: string, privateKey: string): string {
  const line = `PrivateKey = ${privateKey}`;
  if (/^# PrivateKey = .*$/m.test(config)) return config.replace(/^# PrivateKey = .*$/m, line);
  return config.replace(/^\[Interface\]$/m, `[Interface]\n${line}`);
}

async function connect(ctx: Ctx, o: ConnectOptions): Promise<void> {
  if (o.userspace) return connectUserspace(ctx, o);
  const configOnly = o.configOnly !== undefined || o.qr === true;
  const timeoutMs = Number(o.timeout) * 1000;
  if (!configOnly) {
    const prev = readState(ctx);
    if (prev) {
      if (interfaceUp(prev.interface)) {
        throw new CliError(
          `already connected: region ${prev.region}, session ${prev.session_id}, interface ${prev.interface}`,
          'tunnelbyte status shows it; tunnelbyte disconnect ends it',
        );
      }
      throw new CliError(`a previous connection (session ${prev.session_id}) was not closed cleanly`, 'run tunnelbyte disconnect to undo what is left of it, then connect');
    }
    if (!isRoot()) {
      throw new CliError(
        'connect needs root: it creates a network interface and changes routes',
        'run sudo tunnelbyte connect (root has its own token cache: sudo TB_KEY=$(tunnelbyte token) tunnelbyte connect),\nor tunnelbyte connect --config-only FILE for a wg-quick file',
      );
    }
    if (!hasIpCommand()) throw new CliError('connect needs the ip command (iproute2)');
    if (interfaceUp(o.interface)) throw new CliError(`interface ${o.interface} exists already`, 'choose another name with --interface NAME');
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new CliError(`--timeout: not a number of seconds: ${o.timeout}`);
  }
  const region = o.region ?? (await pickRegion(ctx));
  // X25519 (noble) and the QR printer load here, for connect, not with every command of the CLI
  const { generateKeyPair } = await import('../../crypto/wireguard-keys.js');
  const keys = generateKeyPair();
  const created = await ctx.api.createSession(region, keys.publicKey);

  if (configOnly) {
    const config = withPrivateKey(created.config, keys.privateKey);
    const file = typeof o.configOnly === 'string' ? o.configOnly : null;
    if (file) writeFileSync(file, config, { mode: 0o600 });
    if (ctx.opts.json) return ctx.json({ ...created, config, config_file: file });
    if (o.qr) {
      const { default: qrcode } = await import('qrcode-terminal');
      ctx.io.out(await new Promise<string>((resolve) => qrcode.generate(config, { small: true }, resolve)));
      ctx.io.out('\n');
    } else if (!file) ctx.io.out(config);
    if (file || o.qr) {
      ctx.io.err(`session ${created.id} in region ${created.region}${file ? `: config written to ${file}` : ''}\n`);
      ctx.io.err(`it stays usable until idle for a day; tunnelbyte disconnect ${created.id} ends it\n`);
    }
    return;
  }

  const state: ConnectionState = {
    version: 1,
    api: ctx.api.base,
    session_id: created.id,
    region: created.region,
    interface: o.interface,
    exit_public_key: created.exit.public_key,
    endpoint: created.exit.endpoint,
    addresses: created.client.addresses,
    connected_at: new Date().toISOString(),
    undo: [],
  };
  saveState(ctx, state);
  let cancelled = false;
  const onSignal = () => {
    cancelled = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const up = await bringUp({
      ifname: o.interface,
      privateKey: keys.privateKey,
      peerPublicKey: created.exit.public_key,
      endpoint: created.exit.endpoint,
      keepalive: created.exit.persistent_keepalive,
      addresses: created.client.addresses,
      apiBase: ctx.api.base,
      record: (step) => {
        state.undo.push(step);
        saveState(ctx, state);
      },
    });
    const handshakeMs = await waitForHandshake(ctx, state, created.exit.persistent_keepalive, timeoutMs, () => cancelled);
    if (ctx.opts.json) {
      return ctx.json({ connected: true, interface: o.interface, mtu: up.mtu, table: up.table, endpoint: up.endpoint, handshake_ms: handshakeMs, session: stripConfig(created) });
    }
    ctx.io.out(
      [
        `connected to region ${created.region} through ${up.endpoint} (first handshake after ${(handshakeMs / 1000).toFixed(1)} s)`,
        `  interface  ${o.interface} (mtu ${up.mtu})`,
        `  addresses  ${created.client.addresses.join(', ')}`,
        `  session    ${created.id}`,
        ...(created.dns.length ? [`  dns        not changed; the exit suggests ${created.dns.join(', ')}`] : []),
        'tunnelbyte status shows the tunnel; sudo tunnelbyte disconnect ends it',
        '',
      ].join('\n'),
    );
  } catch (e) {
    const problems = await undo(state.undo);
    await ctx.api.closeSession(created.id).catch(() => undefined);
    if (problems.length === 0) removeFile(connectionPath(ctx.dir));
    else saveState(ctx, state);
    if (e instanceof CliError || e instanceof ApiError) {
      const left = problems.length ? `; could not undo: ${problems.join('; ')} (tunnelbyte disconnect retries)` : '; nothing was left changed';
      throw new CliError(e.message, ((e instanceof CliError && e.hint) ? e.hint + '\n' : '') + `the session was closed${left}`);
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * connect --userspace: the session as for connect, but its tunnel runs in this
 * process (src/userspace/) behind the proxy (src/cli/proxy-runner.ts) — no
 * interface, routes or root, nothing recorded to undo. Ctrl-C stops the proxy
 * and closes the session.
 */
async function connectUserspace(ctx: Ctx, o: ConnectOptions): Promise<void> {
  if (o.configOnly !== undefined || o.qr) throw new CliError('--userspace runs the tunnel here; --config-only and --qr write a config instead', 'choose one of them');
  const socks = o.socks === false ? null : parseListenAddress('--socks', o.socks);
  const http = o.http === undefined ? null : parseListenAddress('--http', o.http);
  const credentials = proxyCredentials(o);
  if (!socks && !http) throw new CliError('nothing to listen on: --no-socks without --http', 'give --http HOST:PORT, or drop --no-socks');
  const region = o.region ?? (await pickRegion(ctx));
  const { generateKeyPair } = await import('../../crypto/wireguard-keys.js');
  const keys = generateKeyPair();
  const created = await ctx.api.createSession(region, keys.publicKey);
  try {
    const { runProxy } = await import('../proxy-runner.js');
    await runProxy({
      config: withPrivateKey(created.config, keys.privateKey),
      socks,
      http,
      credentials,
      out: ctx.io.out,
      err: ctx.io.err,
      banner: [`session ${created.id} in region ${created.region} (addresses ${created.client.addresses.join(', ')}); stopping closes it`],
    });
  } finally {
    await ctx.api.closeSession(created.id).then(
      () => ctx.io.err(`session ${created.id} closed\n`),
      (e: Error) => ctx.io.err(`tunnelbyte: the session could not be closed: ${e.message}; tunnelbyte disconnect ${created.id} retries\n`),
    );
  }
}

const stripConfig = ({ config: _c, private_key: _p, ...rest }: SessionViewT & { config?: string; private_key?: string | null }) => rest;

/** Polls the UAPI until the first handshake; progress on stderr. Returns the milliseconds it took. */
async function waitForHandshake(ctx: Ctx, s: ConnectionState, keepalive: number, timeoutMs: number, cancelled: () => boolean): Promise<number> {
  const t0 = Date.now();
  const tty = process.stderr.isTTY === true && !ctx.opts.json;
  if (!tty) ctx.io.err(`waiting for the first handshake with ${s.endpoint}…\n`);
  let lastNudge = t0;
  try {
    for (let i = 0; ; i++) {
      if (cancelled()) throw new CliError('cancelled');
      const p = await peerState(s.interface, s.exit_public_key);
      if (p && p.lastHandshakeSec > 0) return Date.now() - t0;
      const elapsed = Date.now() - t0;
      if (elapsed > timeoutMs) {
        throw new CliError(
          `no handshake with the exit ${s.endpoint} within ${Math.round(timeoutMs / 1000)} s`,
          'UDP to the exit may be blocked on the way, or the exit is down (tunnelbyte regions lists live ones)',
        );
      }
      if (Date.now() - lastNudge > 2000) {
        lastNudge = Date.now();
        await nudge(s.interface, s.exit_public_key, keepalive).catch(() => undefined);
      }
      if (tty) process.stderr.write(`\r${'⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'[i % 10]} handshaking with ${s.endpoint} … ${(elapsed / 1000).toFixed(1)} s`);
      await new Promise((r) => setTimeout(r, 150));
    }
  } finally {
    if (tty) process.stderr.write('\r\x1b[K');
  }
}

async function disconnect(ctx: Ctx, id?: string): Promise<void> {
  const state = readState(ctx);
  if (!state || (id && id !== state.session_id)) {
    if (!id) {
      if (ctx.opts.json) return ctx.json({ connected: false, closed: null });
      ctx.io.out('not connected\n');
      return;
    }
    const s = await ctx.api.closeSession(id);
    if (ctx.opts.json) return ctx.json({ connected: state !== null, closed: s });
    ctx.io.out(`closed session ${s.id} (region ${s.region})\n`);
    return;
  }
  if (state.undo.length > 0 && !isRoot()) throw new CliError('disconnect needs root: it removes the interface and routes that connect made', 'run sudo tunnelbyte disconnect');
  const problems = await undo(state.undo);
  if (problems.length > 0) {
    state.undo = state.undo.filter((s) => s.kind === 'daemon' ? linkExists(s.ifname) : true);
    saveState(ctx, state);
    throw new CliError(`could not undo everything: ${problems.join('; ')}`, 'fix it and run tunnelbyte disconnect again');
  }
  removeFile(connectionPath(ctx.dir));
  let closed: SessionViewT | null = null;
  try {
    closed = await ctx.api.closeSession(state.session_id);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) {
      const why = e instanceof Error ? e.message : String(e);
      throw new CliError(`disconnected locally, but the session could not be closed: ${why}`, `it ends after a day idle; or run tunnelbyte disconnect ${state.session_id} later`);
    }
  }
  if (ctx.opts.json) return ctx.json({ connected: false, closed });
  ctx.io.out(`disconnected from region ${state.region}: interface ${state.interface} removed, routes restored, session ${state.session_id} closed\n`);
}

async function status(ctx: Ctx, id?: string): Promise<void> {
  const state = readState(ctx);
  const sid = id ?? state?.session_id;
  if (!sid) {
    if (ctx.opts.json) return ctx.json({ connected: false, session: null, local: null });
    ctx.io.out('not connected (tunnelbyte sessions lists the sessions of this account)\n');
    if (!isRoot() && linkExists(DEFAULT_INTERFACE)) ctx.io.err(`interface ${DEFAULT_INTERFACE} is up: a connection made with sudo? sudo tunnelbyte status shows it\n`);
    return;
  }
  const ours = state !== null && state.session_id === sid;
  const session = await ctx.api.session(sid);
  let local: { interface: string; up: boolean; last_handshake_at: string | null; rx_bytes: number; tx_bytes: number } | null = null;
  if (ours) {
    const p = isRoot() && interfaceUp(state.interface) ? await peerState(state.interface, state.exit_public_key).catch(() => null) : null;
    local = {
      interface: state.interface,
      up: linkExists(state.interface),
      last_handshake_at: p && p.lastHandshakeSec > 0 ? new Date(p.lastHandshakeSec * 1000).toISOString() : null,
      rx_bytes: p?.rxBytes ?? 0,
      tx_bytes: p?.txBytes ?? 0,
    };
  }
  if (ctx.opts.json) return ctx.json({ connected: ours && local?.up === true, session, local });
  if (!ours) {
    ctx.io.out(sessionTable([session]));
    return;
  }
  const lines = [
    `${local?.up ? 'connected' : 'NOT connected (interface gone; tunnelbyte disconnect cleans up)'}: region ${session.region}, session ${session.id} (${session.state})`,
    `  interface  ${state.interface}`,
    `  endpoint   ${session.exit.endpoint}`,
    `  addresses  ${session.client.addresses.join(', ')}`,
    `  handshake  ${local?.last_handshake_at ? ago(local.last_handshake_at) : ago(session.last_handshake_at)}`,
    `  traffic    ${formatBytes(session.rx_bytes)} received, ${formatBytes(session.tx_bytes)} sent (counted by the exit)`,
    `  expires    ${when(session.expires_at)} unless used`,
  ];
  if (session.state === 'suspended') lines.push('  the data quota is used up: no traffic passes until the period ends (tunnelbyte usage)');
  ctx.io.out(lines.join('\n') + '\n');
}
