/**
 * Accounts: anonymous signup bound to a machine, upgrade to the paid tier
 * (email + password, then Stripe Checkout), login of paid accounts, and
 * tier changes (from Stripe webhooks or the operator), which re-apply the
 * tier's limits to the account's running sessions.
 */
import type { Tier } from '../config.js';
import { conflict, forbidden, invalid, notFound, unauthorized } from '../errors.js';
import { newId } from '../ids.js';
import type { Account } from '../store/accounts.js';
import type { AuthService } from './auth.js';
import { fingerprintHash } from './auth.js';
import type { ServiceContext } from './context.js';
import { hashPassword, verifyPassword } from './secrets.js';
import { recordAudit, SYSTEM, type Actor } from './audit.js';

export interface SignupResult {
  account: Account;
  token: string;
  /** False when this machine already had a never-upgraded account, which is reused (its usage carries over). */
  created: boolean;
}

export interface TierChange {
  account: Account;
  previousTier: Tier;
  /** Sessions closed because the new tier does not allow them. */
  closedSessionIds: string[];
}

export const normalizeEmail = (email: string): string => email.trim().toLowerCase();

export class AccountService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly auth: AuthService,
  ) {}

  /**
   * An anonymous account for this machine, and a token bound to it. A machine
   * signs up once: signing up again returns its existing anonymous account
   * (with a new token), so a reinstall does not reset its quota. The older
   * signup tokens of that machine are revoked: one machine, one live signup
   * token, so a token copied off the machine earlier stops working.
   */
  signup(fingerprint: string, by: Actor = SYSTEM): SignupResult {
    const { store, clock } = this.ctx;
    return store.transaction(() => {
      const fp = fingerprintHash(fingerprint);
      const existing = store.accounts.findAnonymousBySignupFingerprint(fp);
      if (existing?.disabledAt != null) throw forbidden("this machine's account is disabled; contact the operator of this service");
      if (!existing && this.ctx.config.signupLimit.mode === 'closed') throw forbidden('anonymous signup is closed on this server');
      const now = clock.wallMs();
      const account = existing ?? store.accounts.insert({ id: newId('acc'), tier: 'anonymous', signupFingerprintHash: fp, now });
      const revoked = existing ? store.tokens.revokeSignupTokensOfMachine(account.id, fp, now) : [];
      const token = this.auth.issueToken(account.id, 'signup', fingerprint);
      recordAudit(this.ctx, { ...by, actor: `account:${account.id}` }, existing ? 'account.signup.again' : 'account.signup', {
        accountId: account.id,
        detail: revoked.length ? { revoked_tokens: revoked } : null,
      });
      return { account, token, created: !existing };
    });
  }

  /** A token for a paid account from its email and password; bound to `fingerprint` when given. */
  async login(email: string, password: string, fingerprint: string | null, by: Actor = SYSTEM): Promise<{ account: Account; token: string }> {
    const account = this.ctx.store.accounts.getByEmail(normalizeEmail(email));
    const ok = await verifyPassword(password, account?.passwordHash ?? null);
    if (!account || !ok) throw unauthorized('wrong email or password');
    if (account.disabledAt !== null) throw forbidden('this account is disabled; contact the operator of this service');
    if (account.tier !== 'paid') throw forbidden('login is for paid accounts; finish the upgrade (payment) first');
    return this.ctx.store.transaction(() => {
      const token = this.auth.issueToken(account.id, 'login', fingerprint);
      recordAudit(this.ctx, { ...by, actor: `account:${account.id}` }, 'account.login', { accountId: account.id });
      return { account, token };
    });
  }

  /**
   * Checks that the email can be given to this account (not another's); the
   * upgrade itself is finished by `saveCredentials` once checkout is set up.
   */
  checkEmailAvailable(account: Account, email: string): void {
    const other = this.ctx.store.accounts.getByEmail(normalizeEmail(email));
    if (other && other.id !== account.id) throw conflict('email is already used by another account');
  }

  /** Sets email and password (scrypt) and issues a new token from the caller's machine. */
  async saveCredentials(account: Account, email: string, password: string, fingerprint: string | null, by: Actor = SYSTEM): Promise<{ account: Account; token: string }> {
    const passwordHash = await hashPassword(password);
    const { store, clock } = this.ctx;
    return store.transaction(() => {
      this.checkEmailAvailable(account, email);
      store.accounts.setCredentials(account.id, normalizeEmail(email), passwordHash, clock.wallMs());
      const token = this.auth.issueToken(account.id, 'upgrade', fingerprint);
      recordAudit(this.ctx, by, 'account.credentials', { accountId: account.id });
      return { account: store.accounts.get(account.id)!, token };
    });
  }

  get(id: string): Account {
    const a = this.ctx.store.accounts.get(id);
    if (!a) throw notFound('no such account');
    return a;
  }

  /** An account by id (acc_…) or email. */
  resolve(ref: string): Account {
    const a = ref.includes('@') ? this.ctx.store.accounts.getByEmail(normalizeEmail(ref)) : this.ctx.store.accounts.get(ref);
    if (!a) throw notFound(`no account ${ref}`);
    return a;
  }

  list(): Account[] {
    return this.ctx.store.accounts.list();
  }

  /**
   * Moves the account to `tier`. Going down, sessions the new tier does not
   * allow are closed (those in paid-only regions, then the newest beyond the
   * session limit); going up, peers cut for quota come back. Either way the
   * nodes of the account's sessions are reconciled at once.
   */
  setTier(accountId: string, tier: Tier, by: Actor = SYSTEM): TierChange {
    if (tier !== 'anonymous' && tier !== 'paid') throw invalid(`unknown tier ${String(tier)}`);
    const { store, clock, config, peers } = this.ctx;
    const nodes = new Set<string>();
    const change = store.transaction((): TierChange => {
      const account = store.accounts.get(accountId);
      if (!account) throw notFound('no such account');
      const now = clock.wallMs();
      store.accounts.setTier(account.id, tier, now);
      const limits = config.tiers[tier];
      const active = store.sessions.listByAccount(account.id, { activeOnly: true }); // newest first
      const closed: string[] = [];
      let kept = 0;
      for (const s of [...active].reverse()) {
        nodes.add(s.nodeId);
        const region = store.regions.get(s.regionId);
        const allowed = (!region?.paidOnly || limits.paidRegions) && kept < limits.maxSessions;
        if (allowed) kept++;
        else if (store.sessions.end(s.id, 'closed', 'tier', now)) closed.push(s.id);
      }
      recordAudit(this.ctx, by, 'account.tier', { accountId: account.id, detail: { from: account.tier, to: tier, closed_sessions: closed } });
      return { account: store.accounts.get(account.id)!, previousTier: account.tier, closedSessionIds: closed };
    });
    for (const n of nodes) peers.nodeChanged(n);
    return change;
  }

  /**
   * `admin account disable`: every token stops working, every active session
   * is closed (its peer removed at once in this process, at the next sync in
   * a running server). Idempotent.
   */
  disable(accountId: string, by: Actor): { account: Account; closedSessionIds: string[]; revokedTokens: string[] } {
    return this.shutDown(accountId, by, 'disable');
  }

  /**
   * `admin account delete`: as disable, then the personal data (email,
   * password hash, machine fingerprint, Stripe ids) is erased and the account
   * marked deleted. Its id stays in sessions, usage and the audit log (the
   * exit's own history, nothing that names a person).
   */
  delete(accountId: string, by: Actor): { account: Account; closedSessionIds: string[]; revokedTokens: string[] } {
    return this.shutDown(accountId, by, 'delete');
  }

  private shutDown(accountId: string, by: Actor, what: 'disable' | 'delete') {
    const { store, clock, peers } = this.ctx;
    const nodes = new Set<string>();
    const r = store.transaction(() => {
      const account = store.accounts.get(accountId);
      if (!account || account.deletedAt !== null) throw notFound('no such account');
      const now = clock.wallMs();
      const closed: string[] = [];
      for (const s of store.sessions.listByAccount(account.id, { activeOnly: true })) {
        if (store.sessions.end(s.id, 'closed', 'admin', now)) {
          closed.push(s.id);
          nodes.add(s.nodeId);
        }
      }
      const revokedTokens = store.tokens.revokeAllOfAccount(account.id, now);
      store.accounts.disable(account.id, now);
      if (what === 'delete') store.accounts.scrub(account.id, now);
      recordAudit(this.ctx, by, `admin.account.${what}`, { accountId: account.id, detail: { closed_sessions: closed, revoked_tokens: revokedTokens } });
      return { account: store.accounts.get(account.id)!, closedSessionIds: closed, revokedTokens };
    });
    for (const n of nodes) peers.nodeChanged(n);
    return r;
  }
}
