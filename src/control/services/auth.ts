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
import { unauthorized } from '../errors.js';
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
    const token = newToken();
    this.ctx.store.tokens.insert({
      id: newId('tok'),
      accountId,
      tokenHash: sha256Hex(token),
      kind,
      fingerprintHash: fingerprint === null ? null : fingerprintHash(fingerprint),
      now: this.ctx.clock.wallMs(),
    });
    return token;
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
    if (!account) throw unauthorized('invalid bearer token');
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
