/**
 * A joined exit node's membership of its control plane: `node.json` in the
 * data directory, mode 0600 — the node id, the control plane's base URL and
 * the node credential (tbn_…) that enrollment exchanged the one-time token
 * for (issue 16), and the node's record as the control plane last gave it
 * (pools, tunnel addresses, state), so a restart while the control plane is
 * unreachable can still build its interface. With it, later starts need no
 * token. The credential is a
 * bearer secret: it is never logged, and the file is written whole (a
 * temporary file renamed into place), so a crash mid-write leaves the old
 * file or none, never half a credential.
 */
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NODE_CREDENTIAL_RE } from '../control/services/secrets.js';
import { fsStartError, StartError } from './start-error.js';

export const NODE_CREDENTIAL_FILE = 'node.json';

export interface NodeCredential {
  nodeId: string;
  /** The control plane's API base URL (http-request.ts's apiBaseUrl form). */
  controlUrl: string;
  /** The bearer secret: never printed. */
  credential: string;
  /** The node's record at the last contact (absent in a file written by hand). */
  node?: NodeFacts;
}

export interface NodeFacts {
  pool4: string;
  pool6: string | null;
  /** The interface's own addresses in the pools, with prefixes. */
  interfaceAddresses: string[];
  state: string;
}

/** The data directory's credential, or null when this node has not joined yet. */
export function readNodeCredential(dataDir: string): NodeCredential | null {
  const path = join(dataDir, NODE_CREDENTIAL_FILE);
  if (!existsSync(path)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw fsStartError(e, path, 'read the node credential');
    parsed = null;
  }
  const o = parsed as { node_id?: unknown; control_url?: unknown; credential?: unknown; node?: unknown } | null;
  if (!o || typeof o.node_id !== 'string' || typeof o.control_url !== 'string' || typeof o.credential !== 'string' || !NODE_CREDENTIAL_RE.test(o.credential)) {
    throw new StartError(`${path} does not hold a node credential; restore it from a backup, or move it away and join again with a new --node-token`);
  }
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  const n = o.node as { pool4?: unknown; pool6?: unknown; interface_addresses?: unknown; state?: unknown } | undefined;
  const facts =
    n && typeof n.pool4 === 'string' && (typeof n.pool6 === 'string' || n.pool6 === null) && Array.isArray(n.interface_addresses) && n.interface_addresses.every((a) => typeof a === 'string') && typeof n.state === 'string'
      ? { pool4: n.pool4, pool6: n.pool6, interfaceAddresses: n.interface_addresses as string[], state: n.state }
      : undefined;
  return { nodeId: o.node_id, controlUrl: o.control_url, credential: o.credential, ...(facts ? { node: facts } : {}) };
}

export function writeNodeCredential(dataDir: string, c: NodeCredential): void {
  const path = join(dataDir, NODE_CREDENTIAL_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    const node = c.node ? { pool4: c.node.pool4, pool6: c.node.pool6, interface_addresses: c.node.interfaceAddresses, state: c.node.state } : undefined;
    writeFileSync(tmp, JSON.stringify({ node_id: c.nodeId, control_url: c.controlUrl, credential: c.credential, node }, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fsStartError(e, path, 'write the node credential');
  }
}
