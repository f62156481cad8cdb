/**
 * Bearer-token authentication. Tokens are looked up by their SHA-256 and the
 * stored hash is compared in constant time. Machine binding follows the
 * account's tier: while an account is on the anonymous tier, each of its
 * tokens works only with the `X-TB-Fingerprint` of the machine that obtained
 * it; once it is paid, its tokens work from anywhere (docs/contract.md §5).
 */
import type { Account } from '../store/accounts.js';
import type { TokenKind, TokenRecord } from '../store/tokens.js';
import { newId } from '../ids.js';
import { notFound, unauthorized } from '../errors.js';
import { recordAudit, type Actor } from './audit.js';
import { constantTimeEqual, newToken, sha256Hex, TOKEN_RE } from './secrets.js';
import type { ServiceContext } from './context.js';

export const FINGERPRINT_HEADER = 'x-tb-fingerprint';

export interface Principal {
  account: Account;
  token: TokenRecord;
}

/** The stored form of a machine fingerprint. */
export const fingerprintHash = (fingerprint: string): string => sha256Hex(`tunnelbyte-fingerprint:${fingerprint}`);

export class AuthService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Creates a token for the account and returns its text (shown to the client once, never stored). */
  issueToken(accountId: string, kind: TokenKind, fingerprint: string | null): string {
    return this.issue(accountId, kind, fingerprint === null ? null : fingerprintHash(fingerprint)).token;
  }

  private issue(accountId: string, kind: TokenKind, fpHash: string | null): { id: string; token: string } {
    const token = newToken();
    const id = newId('tok');
    this.ctx.store.tokens.insert({
      id,
      accountId,
      tokenHash: sha256Hex(token),
      kind,
      fingerprintHash: fpHash,
      now: this.ctx.clock.wallMs(),
    });
    return { id, token };
  }

  /** Revokes the token the caller presented (logout). */
  revokePresented(p: Principal, by: Actor): void {
    this.ctx.store.transaction(() => {
      if (this.ctx.store.tokens.revoke(p.token.id, this.ctx.clock.wallMs())) {
        recordAudit(this.ctx, by, 'token.revoke', { accountId: p.account.id, subject: p.token.id, detail: { reason: 'presented' } });
      }
    });
  }

  /**
   * A new token in place of the presented one, in one transaction: same
   * account, kind and machine binding; the old one is revoked.
   */
  rotate(p: Principal, by: Actor): { id: string; token: string } {
    return this.ctx.store.transaction(() => {
      if (!this.ctx.store.tokens.revoke(p.token.id, this.ctx.clock.wallMs())) throw unauthorized('this token was revoked');
      const fresh = this.issue(p.account.id, p.token.kind, p.token.fingerprintHash);
      recordAudit(this.ctx, by, 'token.rotate', { accountId: p.account.id, subject: p.token.id, detail: { new_token: fresh.id } });
      return fresh;
    });
  }

  /**
   * `tunnelbyte admin token revoke REF`: REF is a token id (tok_…), or an
   * account id or email, whose tokens are all revoked. Returns the ids revoked.
   */
  adminRevoke(ref: string, resolveAccount: (ref: string) => Account, by: Actor): string[] {
    const { store, clock } = this.ctx;
    return store.transaction(() => {
      if (ref.startsWith('tok_')) {
        const t = store.tokens.get(ref);
        if (!t) throw notFound(`no token ${ref}`);
        const done = store.tokens.revoke(t.id, clock.wallMs()) ? [t.id] : [];
        if (done.length) recordAudit(this.ctx, by, 'admin.token.revoke', { accountId: t.accountId, subject: t.id });
        return done;
      }
      const account = resolveAccount(ref);
      const done = store.tokens.revokeAllOfAccount(account.id, clock.wallMs());
      recordAudit(this.ctx, by, 'admin.token.revoke', { accountId: account.id, subject: account.id, detail: { tokens: done } });
      return done;
    });
  }

  /** Resolves `Authorization: Bearer tb_…` (+ the fingerprint header) to its account, or throws a 401. */
  authenticate(authorization: string | undefined, fingerprint: string | undefined): Principal {
    if (!authorization) throw unauthorized('missing bearer token (Authorization: Bearer tb_...)');
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    if (!m || !TOKEN_RE.test(m[1]!)) throw unauthorized('invalid bearer token');
    const hash = sha256Hex(m[1]!);
    const token = this.ctx.store.tokens.findByHash(hash);
    if (!token || !constantTimeEqual(token.tokenHash, hash)) throw unauthorized('invalid bearer token');
    const account = this.ctx.store.accounts.get(token.accountId);
    if (!account || account.deletedAt !== null) throw unauthorized('invalid bearer token');
    if (account.disabledAt !== null) throw unauthorized('this account is disabled; contact the operator of this service');
    if (account.tier === 'anonymous') {
      if (token.fingerprintHash === null) {
        throw unauthorized('this token was issued to a paid account that is no longer paid; log in or sign up again from this machine');
      }
      if (!fingerprint) throw unauthorized('anonymous token needs the X-TB-Fingerprint header of the machine it was issued to');
      if (!constantTimeEqual(token.fingerprintHash, fingerprintHash(fingerprint))) {
        throw unauthorized('anonymous token used from another machine (X-TB-Fingerprint does not match)');
      }
    }
    this.ctx.store.tokens.touch(token.id, this.ctx.clock.wallMs());
    return { account, token };
  }
}
