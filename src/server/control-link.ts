/**
 * A joined exit node's requests to its control plane (issue 16, node →
 * control), over the same /v1 API and HTTP(S) client as the customer CLI
 * (http-request.ts: `--ca` trusts a private CA and still verifies):
 * enrollment (one-time token → node credential), its own record, heartbeats
 * and usage reports (routes/nodes.ts on the other side).
 *
 * Failures are told apart because the node acts differently on each: the
 * control plane unreachable (a network error, a timeout, a 5xx) is
 * ControlUnreachable — the node carries on fail-static and retries; a
 * refused credential or token (401) is CredentialRefused — the node stops;
 * any other refusal is ControlRefusal with the API's message.
 */
import type { EnrollNodeResponse, NodeUsageResponse, NodeViewT } from '../control/http/schemas.js';
import { apiBaseUrl, send, type HttpAnswer } from './http-request.js';

export class ControlUnreachable extends Error {
  override readonly name = 'ControlUnreachable';
}

export class CredentialRefused extends Error {
  override readonly name = 'CredentialRefused';
}

export class ControlRefusal extends Error {
  override readonly name = 'ControlRefusal';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface NodeRegistrationBody {
  public_key: string;
  endpoint: string;
  exit_addresses: string[];
  pool4: string;
  pool6?: string;
}

export interface ControlLinkOptions {
  /** The API's URL (with or without /v1). */
  base: string;
  /** PEM of the CA to trust for an https control plane. */
  ca?: Buffer;
  timeoutMs?: number;
}

export class ControlLink {
  readonly base: string;

  constructor(private readonly o: ControlLinkOptions) {
    this.base = apiBaseUrl(o.base);
  }

  /** Exchanges a one-time enrollment token for a node credential (the token is spent). */
  async enroll(token: string, registration: NodeRegistrationBody): Promise<{ node: NodeViewT; credential: string }> {
    return (await this.request('POST', '/v1/nodes/enroll', null, { token, ...registration })) as typeof EnrollNodeResponse._output;
  }

  /** The node's own record (its state, pools and tunnel addresses). */
  async self(nodeId: string, credential: string): Promise<NodeViewT> {
    return (await this.request('GET', `/v1/nodes/${encodeURIComponent(nodeId)}`, credential)) as NodeViewT;
  }

  /** Alive, leaving from these addresses; answers the node's state (draining, …). */
  async heartbeat(nodeId: string, credential: string, exitAddresses: string[]): Promise<NodeViewT> {
    return (await this.request('POST', `/v1/nodes/${encodeURIComponent(nodeId)}/heartbeat`, credential, { exit_addresses: exitAddresses })) as NodeViewT;
  }

  /** One usage report: cumulative per-session counters under a sequence number. */
  async usage(nodeId: string, credential: string, report: { seq: number; sessions: unknown[] }): Promise<typeof NodeUsageResponse._output> {
    return (await this.request('POST', `/v1/nodes/${encodeURIComponent(nodeId)}/usage`, credential, report)) as typeof NodeUsageResponse._output;
  }

  private async request(method: string, path: string, credential: string | null, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (credential !== null) headers.authorization = `Bearer ${credential}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: HttpAnswer;
    try {
      res = await send(this.base + path, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        timeoutMs: this.o.timeoutMs ?? 15_000,
        ...(this.o.ca ? { ca: this.o.ca } : {}),
      });
    } catch (e) {
      const err = e as Error & { code?: string };
      const reason = err.name === 'TimeoutError' ? 'timed out' : (err.code ?? err.message);
      if (/CERT|SELF_SIGNED|ERR_TLS|UNABLE_TO_VERIFY|HOSTNAME/i.test(reason)) {
        throw new ControlRefusal(0, `the certificate of ${this.base} is not trusted (${reason}); pass --ca FILE (or TB_CA) with the PEM of the CA that signed it`);
      }
      throw new ControlUnreachable(`cannot reach the control plane at ${this.base} (${reason})`);
    }
    let json: unknown;
    try {
      json = res.text ? JSON.parse(res.text) : null;
    } catch {
      json = undefined;
    }
    const message = typeof (json as { error?: unknown } | null | undefined)?.error === 'string' ? (json as { error: string }).error : `HTTP ${res.status}`;
    if (res.status >= 500) throw new ControlUnreachable(`the control plane at ${this.base} answered ${res.status} (${message})`);
    if (res.status === 401) throw new CredentialRefused(message);
    if (res.status < 200 || res.status > 299) throw new ControlRefusal(res.status, `${method} ${this.base}${path}: ${res.status} ${message}`);
    if (json === undefined || json === null) throw new ControlRefusal(res.status, `${method} ${this.base}${path} answered HTTP ${res.status} without JSON: is --join the tunnelbyte control plane's API?`);
    return json;
  }
}
