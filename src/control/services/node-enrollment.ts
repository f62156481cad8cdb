/**
 * How an exit node on another machine joins the control plane. The operator
 * makes a one-time enrollment token for a region (`tunnelbyte admin node
 * token`); the joining node presents it once with its registration (public
 * key, endpoint, exit addresses, pools) and receives a node credential in
 * exchange. Both secrets are stored only as their SHA-256 (secrets.ts), so a
 * copy of the database cannot be used to enroll or to act as a node.
 */
import { forbidden, invalid, unauthorized } from '../errors.js';
import { newId } from '../ids.js';
import { recordAudit, type Actor } from './audit.js';
import type { ServiceContext } from './context.js';
import type { NodeRegistration, NodeRegistrationInput, NodeService } from './nodes.js';
import { REGION_ID_RE } from './regions.js';
import { ENROLLMENT_TOKEN_PREFIX, ENROLLMENT_TOKEN_RE, NODE_CREDENTIAL_PREFIX, constantTimeEqual, newSecret, sha256Hex } from './secrets.js';

/** Shortest and longest life of an enrollment token. */
export const MIN_ENROLLMENT_TTL_MS = 60_000;
export const MAX_ENROLLMENT_TTL_MS = 30 * 24 * 3600_000;

export interface IssuedEnrollmentToken {
  id: string;
  regionId: string;
  /** The token text: shown to the operator once, never stored. */
  token: string;
  expiresAt: number;
}

export interface Enrollment extends NodeRegistration {
  /** The node credential (tbn_…): returned once, to the node, which keeps it 0600. */
  credential: string;
}

export class NodeEnrollmentService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly nodes: NodeService,
  ) {}

  issueToken(regionId: string, ttlMs: number, by: Actor): IssuedEnrollmentToken {
    if (!REGION_ID_RE.test(regionId)) throw invalid('region id must be 1-32 characters of a-z, 0-9 and -, starting with a letter or digit');
    if (!(ttlMs >= MIN_ENROLLMENT_TTL_MS && ttlMs <= MAX_ENROLLMENT_TTL_MS)) throw invalid('an enrollment token lives between 1 minute and 30 days');
    const token = newSecret(ENROLLMENT_TOKEN_PREFIX);
    const now = this.ctx.clock.wallMs();
    const id = newId('enr');
    this.ctx.store.transaction(() => {
      this.ctx.store.enrollmentTokens.insert({ id, regionId, tokenHash: sha256Hex(token), now, expiresAt: now + ttlMs });
      recordAudit(this.ctx, by, 'admin.node.token', { subject: id, detail: { region: regionId, expires_at: new Date(now + ttlMs).toISOString() } });
    });
    return { id, regionId, token, expiresAt: now + ttlMs };
  }

  /**
   * Registers the node in the token's region and returns its new credential.
   * The token is spent in the same transaction as the registration, so it
   * enrolls exactly one node; an unknown, used or expired token is a 401 that
   * says no more than that. Re-enrolling the key of a revoked or removed node
   * is refused: the operator revoked that machine, not just its credential.
   */
  enroll(token: string, input: Omit<NodeRegistrationInput, 'regionId'>, source: string | null): Enrollment {
    const refused = unauthorized('enrollment token is invalid, used or expired');
    if (!ENROLLMENT_TOKEN_RE.test(token)) throw refused;
    const hash = sha256Hex(token);
    const { store, clock } = this.ctx;
    return store.transaction(() => {
      const rec = store.enrollmentTokens.findByHash(hash);
      const now = clock.wallMs();
      if (!rec || !constantTimeEqual(rec.tokenHash, hash) || rec.usedAt !== null || rec.expiresAt <= now) throw refused;
      const existing = store.nodes.getByPublicKey(input.publicKey);
      if (existing && (existing.state === 'revoked' || existing.state === 'removed')) {
        throw forbidden(`node ${existing.id} with this public key was ${existing.state}; a new node needs a new key`);
      }
      const registration = this.nodes.register({ ...input, regionId: rec.regionId });
      if (!store.enrollmentTokens.markUsed(rec.id, registration.node.id, now)) throw refused;
      const credential = newSecret(NODE_CREDENTIAL_PREFIX);
      store.nodes.setCredential(registration.node.id, sha256Hex(credential));
      recordAudit(this.ctx, { actor: `node:${registration.node.id}`, source }, 'node.enroll', {
        subject: rec.id,
        detail: { region: rec.regionId, public_key: input.publicKey, endpoint: input.endpoint },
      });
      return { ...registration, node: store.nodes.get(registration.node.id)!, credential };
    });
  }
}

