/**
 * Node-credential authentication: `Authorization: Bearer tbn_…` resolves to
 * the one node that credential belongs to. The lookup is by SHA-256 and the
 * stored hash is compared in constant time, as for account tokens (auth.ts).
 * Revoking or removing a node clears its credential hash in the same write
 * that changes its state, so the next request is refused: nothing is cached.
 */
import { forbidden, unauthorized } from '../errors.js';
import type { NodeRecord } from '../store/nodes.js';
import type { ServiceContext } from './context.js';
import { constantTimeEqual, NODE_CREDENTIAL_RE, sha256Hex } from './secrets.js';

export class NodeAuthService {
  constructor(private readonly ctx: ServiceContext) {}

  /** The node of this credential, or a 401. */
  authenticate(authorization: string | undefined): NodeRecord {
    if (!authorization) throw unauthorized('missing node credential (Authorization: Bearer tbn_...)');
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    if (!m || !NODE_CREDENTIAL_RE.test(m[1]!)) throw unauthorized('invalid node credential');
    const hash = sha256Hex(m[1]!);
    const node = this.ctx.store.nodes.getByCredential(hash);
    if (!node || node.credentialHash === null || !constantTimeEqual(node.credentialHash, hash)) throw unauthorized('invalid node credential');
    if (node.state === 'revoked' || node.state === 'removed') throw unauthorized('invalid node credential');
    return node;
  }

  /** A node reads and reports only for itself: any other node id is a 403. */
  assertSelf(node: NodeRecord, nodeId: string): void {
    if (node.id !== nodeId) throw forbidden('a node credential acts only for its own node');
  }
}
