/**
 * `tunnelbyte admin` — operator commands on the SQLite file of a server
 * (docs/contract.md §4), also while that server runs: the file is in WAL mode, and the
 * server's periodic sync (≤ 5 s) applies what changed here, e.g. removes the
 * peer of a session closed with `session close`.
 *
 *   tunnelbyte admin [--data DIR] [--json] region add ID [--name NAME] [--paid-only]
 *   tunnelbyte admin region list
 *   tunnelbyte admin node list
 *   tunnelbyte admin node token --region R [--expires 1h]
 *   tunnelbyte admin node drain|revoke|remove ID
 *   tunnelbyte admin account list
 *   tunnelbyte admin account set-tier ACCOUNT paid|anonymous    (ACCOUNT: id or email)
 *   tunnelbyte admin account disable ACCOUNT | delete ACCOUNT
 *   tunnelbyte admin token revoke TOKEN-ID|ACCOUNT
 *   tunnelbyte admin session list [--all]
 *   tunnelbyte admin session close ID
 *   tunnelbyte admin audit [--account ACCOUNT] [--since TIME] [--limit N]
 *
 * --data and --json may also follow the subcommand. Tables by default,
 * --json prints the same objects the /v1 API uses.
 */
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { ControlPlane } from '../control/control-plane.js';
import { ControlError } from '../control/errors.js';
import { databasePath, resolveDataDir, DATABASE_FILE } from '../control/paths.js';
import { join } from 'node:path';
import { periodAt } from '../control/services/periods.js';
import { nodeView, regionView, sessionView } from '../control/http/views.js';
import type { NodeRecord } from '../control/store/nodes.js';
import { formatBytes, renderTable, shortTime } from './admin-table.js';
import { nodeTimeoutSeconds } from './server-options.js';
import { adminActor } from '../control/services/audit.js';

interface AdminOptions {
  data?: string;
  json?: boolean;
  nodeTimeout: string;
}

type Out = (text: string) => void;

/**
 * Opens the control plane on the data dir's database; `create` allows a fresh
 * directory. The control plane (SQLite, services) is imported here, when a
 * command needs it, not when the CLI starts.
 */
async function openControl(opts: AdminOptions, create: boolean): Promise<ControlPlane> {
  const dir = resolveDataDir({ flag: opts.data });
  if (!create && !existsSync(join(dir, DATABASE_FILE))) {
    throw new ControlError('not_found', `no tunnelbyte database in ${dir} (start tunnelbyte serve there first, or pass --data DIR)`);
  }
  let nodeStaleAfterMs: number;
  try {
    nodeStaleAfterMs = nodeTimeoutSeconds(opts.nodeTimeout) * 1000;
  } catch (e) {
    throw new ControlError('invalid', (e as Error).message);
  }
  const [{ createControlPlane }, { controlConfig }] = await Promise.all([import('../control/control-plane.js'), import('../control/config.js')]);
  // The ACTIVE columns count a node as the server does: heartbeats within the server's --node-timeout.
  return createControlPlane({ dbPath: databasePath(dir), config: controlConfig({ nodeStaleAfterMs }) });
}

async function withControl(cmd: Command, create: boolean, run: (cp: ControlPlane, opts: AdminOptions) => void): Promise<void> {
  const opts = cmd.optsWithGlobals<AdminOptions>();
  const cp = await openControl(opts, create);
  try {
    run(cp, opts);
  } finally {
    cp.close();
  }
}

const DURATION_RE = /^(\d{1,9})(s|m|h|d)$/;

/** "90s", "30m", "1h", "7d" → milliseconds. */
export function parseDuration(v: string): number {
  const m = DURATION_RE.exec(v.trim());
  if (!m) throw new ControlError('invalid', `not a duration: ${v} (e.g. 30m, 1h, 7d)`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

function printJson(out: Out, v: unknown): void {
  out(JSON.stringify(v, null, 2) + '\n');
}

/** Adds `admin` and its subcommands to the program. `out` receives what the commands print. */
export function registerAdminCommands(program: Command, out: Out = (t) => process.stdout.write(t)): Command {
  const admin = program
    .command('admin')
    .description('operator commands on the server database (also while the server runs)')
    .addOption(new Option('--data <dir>', 'data directory (default: /var/lib/tunnelbyte as root, else the user data dir)').env('TB_DATA'))
    .option('--json', 'print JSON instead of tables')
    .addOption(new Option('--node-timeout <s>', "the server's --node-timeout: a node with no heartbeat for this long is not active in the lists").env('TB_NODE_TIMEOUT').default('60'));

  const region = admin.command('region').description('exit regions');
  region
    .command('add')
    .description('create a region, or change the name and paid-only flag of an existing one')
    .argument('<id>', 'region id (a-z, 0-9, -)')
    .option('--name <name>', 'display name (default: the id)')
    .option('--paid-only', 'only paid accounts may use it', false)
    .action(function (this: Command, id: string, o: { name?: string; paidOnly: boolean }) {
      return withControl(this, true, (cp, g) => {
        const r = cp.regions.add(id, { name: o.name, paidOnly: o.paidOnly });
        const view = cp.regions.listAll().find((x) => x.id === r.id)!;
        if (g.json) printJson(out, regionView(view));
        else out(`region ${r.id} (${r.name})${r.paidOnly ? ', paid only' : ''}\n`);
      });
    });
  region
    .command('list')
    .description('every region, with its active nodes')
    .action(function (this: Command) {
      return withControl(this, false, (cp, g) => {
        const rows = cp.regions.listAll();
        if (g.json) return printJson(out, rows.map(regionView));
        out(renderTable(['ID', 'NAME', 'PAID ONLY', 'ACTIVE NODES'], rows.map((r) => [r.id, r.name, r.paidOnly ? 'yes' : 'no', r.activeNodes])));
      });
    });

  const node = admin.command('node').description('exit nodes');
  node
    .command('list')
    .description('every node with its state and last heartbeat')
    .action(function (this: Command) {
      return withControl(this, false, (cp, g) => {
        const nodes = cp.nodes.list();
        const cutoff = cp.regions.heartbeatCutoff();
        const view = nodes.map((n) => ({
          ...nodeView(n),
          active: n.state === 'active' && n.lastHeartbeatAt >= cutoff,
          joined: n.credentialHash !== null,
          exit_addresses: cp.store.nodes.currentExitAddresses(n.id, cutoff),
        }));
        if (g.json) return printJson(out, view);
        out(
          renderTable(
            ['ID', 'REGION', 'STATE', 'ENDPOINT', 'ACTIVE', 'LAST HEARTBEAT', 'EXIT ADDRESSES'],
            view.map((n) => [n.id, n.region, n.state, n.endpoint, n.active ? 'yes' : 'no', shortTime(Date.parse(n.last_heartbeat_at)), n.exit_addresses.join(',')]),
          ),
        );
      });
    });
  node
    .command('token')
    .description('print a one-time enrollment token for a node joining the region (serve --join URL --node-token TOKEN)')
    .requiredOption('--region <id>', 'the region the node will serve (created when it joins)')
    .option('--expires <duration>', 'how long the token may be used: 90s, 30m, 1h, 7d (1 minute to 30 days)', '1h')
    .action(function (this: Command, o: { region: string; expires: string }) {
      return withControl(this, false, (cp, g) => {
        const t = cp.nodeEnrollment.issueToken(o.region, parseDuration(o.expires), adminActor());
        if (g.json) return printJson(out, { id: t.id, region: t.regionId, token: t.token, expires_at: new Date(t.expiresAt).toISOString() });
        out(`${t.token}\n`);
      });
    });
  const lifecycle: [string, string, (cp: ControlPlane, id: string) => { node: NodeRecord; closedSessionIds?: string[] }][] = [
    ['drain', 'take no new sessions on the node; its existing sessions stay until closed', (cp, id) => ({ node: cp.nodes.drain(id, adminActor()) })],
    ['revoke', "refuse the node's credential at once and place no new sessions on it", (cp, id) => ({ node: cp.nodes.revoke(id, adminActor()) })],
    ['remove', 'take the node out: credential refused, its active sessions closed', (cp, id) => cp.nodes.remove(id, adminActor())],
  ];
  for (const [name, description, change] of lifecycle) {
    node
      .command(name)
      .description(description)
      .argument('<id>', 'node id')
      .action(function (this: Command, id: string) {
        return withControl(this, false, (cp, g) => {
          const r = change(cp, id);
          const closed = r.closedSessionIds ?? [];
          if (g.json) return printJson(out, { ...nodeView(r.node), closed_sessions: closed });
          out(`node ${r.node.id}: ${r.node.state}\n`);
          if (closed.length > 0) out(`closed sessions: ${closed.join(', ')}\n`);
        });
      });
  }

  const account = admin.command('account').description('accounts');
  account
    .command('list')
    .description('every account (not deleted ones) with its tier, active sessions, usage this period and whether it is disabled')
    .action(function (this: Command) {
      return withControl(this, false, (cp, g) => {
        const period = periodAt(cp.clock.wallMs()).id;
        const rows = cp.accounts.list().map((a) => {
          const u = cp.store.usage.get(a.id, period);
          return {
            id: a.id,
            tier: a.tier,
            email: a.email,
            created_at: new Date(a.createdAt).toISOString(),
            active_sessions: cp.store.sessions.countActiveByAccount(a.id),
            period,
            bytes: u.rxBytes + u.txBytes,
            stripe_customer: a.stripeCustomerId,
            disabled_at: a.disabledAt === null ? null : new Date(a.disabledAt).toISOString(),
          };
        });
        if (g.json) return printJson(out, rows);
        out(
          renderTable(
            ['ID', 'TIER', 'EMAIL', 'CREATED', 'SESSIONS', `USAGE ${period}`, 'STATE'],
            rows.map((r) => [r.id, r.tier, r.email, shortTime(Date.parse(r.created_at)), r.active_sessions, formatBytes(r.bytes), r.disabled_at ? 'disabled' : 'active']),
          ),
        );
      });
    });
  account
    .command('set-tier')
    .description('grant or remove the paid tier (sessions the new tier does not allow are closed)')
    .argument('<account>', 'account id or email')
    .argument('<tier>', 'paid or anonymous')
    .action(function (this: Command, ref: string, tier: string) {
      return withControl(this, false, (cp, g) => {
        if (tier !== 'paid' && tier !== 'anonymous') throw new ControlError('invalid', `tier must be paid or anonymous, not ${tier}`);
        const a = cp.accounts.resolve(ref);
        const change = cp.accounts.setTier(a.id, tier, adminActor());
        if (g.json) {
          return printJson(out, {
            account_id: change.account.id,
            tier: change.account.tier,
            previous_tier: change.previousTier,
            closed_sessions: change.closedSessionIds,
          });
        }
        out(`account ${change.account.id}: ${change.previousTier} → ${change.account.tier}\n`);
        if (change.closedSessionIds.length > 0) out(`closed sessions the tier does not allow: ${change.closedSessionIds.join(', ')}\n`);
      });
    });

  for (const what of ['disable', 'delete'] as const) {
    account
      .command(what)
      .description(
        what === 'disable'
          ? 'disable an account: its tokens stop working and its sessions close (a running server removes the peers within its sync interval)'
          : 'delete an account: as disable, then its email, password, machine fingerprint and Stripe ids are erased',
      )
      .argument('<account>', 'account id or email')
      .action(function (this: Command, ref: string) {
        withControl(this, false, (cp, g) => {
          const a = cp.accounts.resolve(ref);
          const r = what === 'disable' ? cp.accounts.disable(a.id, adminActor()) : cp.accounts.delete(a.id, adminActor());
          if (g.json) return printJson(out, { account_id: r.account.id, state: what === 'disable' ? 'disabled' : 'deleted', closed_sessions: r.closedSessionIds, revoked_tokens: r.revokedTokens });
          out(`account ${r.account.id}: ${what === 'disable' ? 'disabled' : 'deleted'}; ${r.closedSessionIds.length} session(s) closed, ${r.revokedTokens.length} token(s) revoked\n`);
        });
      });
  }

  admin
    .command('token')
    .description('API tokens')
    .command('revoke')
    .description('revoke one token (tok_… id) or every token of an account (id or email)')
    .argument('<ref>', 'token id, account id or email')
    .action(function (this: Command, ref: string) {
      withControl(this, false, (cp, g) => {
        const revoked = cp.auth.adminRevoke(ref, (r) => cp.accounts.resolve(r), adminActor());
        if (g.json) return printJson(out, { revoked_tokens: revoked });
        out(revoked.length ? `revoked: ${revoked.join(', ')}\n` : 'nothing to revoke (already revoked)\n');
      });
    });

  admin
    .command('audit')
    .description('the audit log, newest first: account, tier, billing, token, session and admin events')
    .option('--account <account>', 'only this account (id or email)')
    .option('--since <time>', 'ISO 8601 date or time, or a duration ago (30m, 24h, 7d)')
    .option('--limit <n>', 'at most this many entries', '100')
    .action(function (this: Command, o: { account?: string; since?: string; limit: string }) {
      withControl(this, false, (cp, g) => {
        const since = o.since === undefined ? 0 : parseSince(o.since, cp.clock.wallMs());
        const limit = Number(o.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new ControlError('invalid', `--limit must be a positive integer, not ${o.limit}`);
        // a deleted account is found by id only (its email is erased)
        const accountId = o.account === undefined ? null : o.account.startsWith('acc_') ? o.account : cp.accounts.resolve(o.account).id;
        const rows = cp.store.audit.list({ since, accountId, limit });
        const view = rows.map((e) => ({
          id: e.id,
          at: new Date(e.at).toISOString(),
          actor: e.actor,
          source: e.source,
          action: e.action,
          account_id: e.accountId,
          subject: e.subject,
          detail: e.detail,
        }));
        if (g.json) return printJson(out, view);
        out(renderTable(['TIME', 'ACTION', 'ACCOUNT', 'SUBJECT', 'ACTOR', 'SOURCE', 'DETAIL'], view.map((e) => [shortTime(Date.parse(e.at)), e.action, e.account_id, e.subject, e.actor, e.source, e.detail ? JSON.stringify(e.detail) : null])));
      });
    });

  const session = admin.command('session').description('sessions');
  session
    .command('list')
    .description('active sessions (with --all, ended ones too)')
    .option('--all', 'include closed and expired sessions', false)
    .action(function (this: Command, o: { all: boolean }) {
      return withControl(this, false, (cp, g) => {
        const rows = cp.sessions.adminList({ all: o.all });
        if (g.json) return printJson(out, rows.map((d) => ({ ...sessionView(d), account_id: d.session.accountId })));
        out(
          renderTable(
            ['ID', 'ACCOUNT', 'REGION', 'NODE', 'STATE', 'ADDRESSES', 'CREATED', 'LAST HANDSHAKE', 'RX', 'TX'],
            rows.map((d) => [
              d.session.id,
              d.session.accountId,
              d.session.regionId,
              d.session.nodeId,
              d.status,
              d.addresses.join(','),
              shortTime(d.session.createdAt),
              shortTime(d.session.lastHandshakeAt),
              formatBytes(d.session.rxBytes),
              formatBytes(d.session.txBytes),
            ]),
          ),
        );
      });
    });
  session
    .command('close')
    .description('close a session (a running server removes its peer within its sync interval)')
    .argument('<id>', 'session id')
    .action(function (this: Command, id: string) {
      return withControl(this, false, (cp, g) => {
        const d = cp.sessions.adminClose(id, adminActor());
        if (g.json) return printJson(out, sessionView(d));
        out(`session ${d.session.id}: ${d.status}${d.session.closeReason ? ` (${d.session.closeReason})` : ''}\n`);
      });
    });
  return admin;
}

/** `--since`: an ISO 8601 date/time, or a duration before now (90s, 30m, 24h, 7d). */
export function parseSince(v: string, now: number): number {
  if (DURATION_RE.test(v.trim())) return now - parseDuration(v);
  const t = Date.parse(v);
  if (!/^\d{4}-\d\d-\d\d/.test(v) || Number.isNaN(t)) throw new ControlError('invalid', `--since: expected an ISO 8601 time or a duration like 24h, not ${v}`);
  return t;
}

/** Prints a domain error as the CLI's one-line message and sets a failing exit code; rethrows anything else. */
export function reportAdminError(e: unknown, err: Out = (t) => process.stderr.write(t)): void {
  if (e instanceof ControlError) {
    err(`tunnelbyte: ${e.message}\n`);
    process.exitCode = 1;
    return;
  }
  throw e;
}
