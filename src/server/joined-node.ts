/**
 * `tunnelbyte serve --join URL`: an exit node that belongs to a control
 * plane (`tunnelbyte control`) on another machine (issue 16). It serves no
 * API — customers talk to the control plane — and runs the data plane
 * exactly as the all-in-one exit does (exit-data-plane.ts: TUN, device
 * worker, NAT, exposure policy); only where its peers come from and where
 * its counters go differ.
 *
 * Start-up, in order: data dir and server key → the node credential
 * (node-credential.ts; on the first start the one-time --node-token is
 * exchanged for it by enrolling: public key, endpoint, exit addresses,
 * pools) → the node's own record from the control plane (a revoked or
 * removed node stops here; an unreachable control plane does not stop it:
 * the record kept at the last contact is used) → the node's SQLite
 * (node-store.ts) → TUN, UDP, NAT → the stored peer set on the device
 * (fail-static: it forwards for its current peers before the control plane
 * answers anything) → then, concurrently:
 *
 *   - the peer channel (node-channel-client.ts): a snapshot or the changes
 *     after the stored revision, then the stream, each applied to the device
 *     and written to disk in order (joined-agent.ts); it reconnects with
 *     backoff and resumes from the last applied revision;
 *   - every sync interval (≤ 5 s): the destination policy follows the host's
 *     addresses, device counters go into the cumulative session counters on
 *     disk, and the unacknowledged usage is reported (usage-reporter.ts) —
 *     so a `kill -9` loses at most one interval of counting;
 *   - every heartbeat interval: POST heartbeat (alive, exit addresses),
 *     whose answer tells the node its state (draining);
 *   - GET /metrics on --metrics-listen, as serve has it: the device's
 *     figures (exit-data-plane.ts) and the node's own (node-metrics.ts:
 *     applied revision, channel up, usage not yet acknowledged, ages of the
 *     last report and heartbeat).
 *
 * While the control plane is unreachable the node keeps forwarding and
 * counting; reports and the stream catch up when it is back, and with them
 * the control plane's enforcement (quota cuts, closes, expiry arrive as
 * removals). A refused credential (revoked, removed) is not unreachability:
 * the node stops.
 *
 * Shutdown (SIGTERM): the channel closed, counters flushed, one last report
 * attempt (bounded), then the device, TUN and NAT removed and the database
 * closed; what was not acknowledged stays on disk for the next start.
 */
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { metricsRequestListener } from '../control/http/metrics.js';
import { ApiListener } from './api-listener.js';
import { ControlLink, ControlRefusal, ControlUnreachable, CredentialRefused } from './control-link.js';
import { ExitDataPlane, exitIdentity, type ExitOptions } from './exit-data-plane.js';
import { apiBaseUrl } from './http-request.js';
import { JoinedAgent } from './joined-agent.js';
import { NodeChannelClient, NodeChannelError } from './node-channel-client.js';
import { readNodeCredential, writeNodeCredential, type NodeCredential, type NodeFacts } from './node-credential.js';
import { registerNodeMetrics, type NodeFigures } from './node-metrics.js';
import { NODE_DATABASE_FILE, openNodeStore, type NodeStore } from './node-store.js';
import { StartError } from './start-error.js';
import { UsageReporter } from './usage-reporter.js';

export interface JoinOptions extends ExitOptions {
  /** The control plane's API URL (with or without /v1; http or https). */
  joinUrl: string;
  /** The one-time enrollment token; needed on the first start only. */
  nodeToken: string | null;
  /** PEM of the CA that signed the control plane's certificate (--ca). */
  ca: Buffer | null;
  /** Seconds between heartbeats (the control plane marks a node down after missing them for its stale time). */
  heartbeatIntervalS: number;
  /** Where GET /metrics is served (--metrics-listen, as for serve). */
  metricsHost: string;
  metricsPort: number;
  /** The node's credential was refused while running (revoked, removed): it has stopped. */
  onRefused?: (message: string) => void;
}

/** Longest wait for the last usage report at shutdown: what it does not send stays on disk. */
const FINAL_REPORT_MS = 3000;

export class JoinedNode {
  private timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | null = null;
  private readonly channelAbort = new AbortController();
  private state: string;
  private reportFailing = false;
  private heartbeatFailing = false;
  private channelConnected = false;
  private lastReportOkMs: number | null = null;
  private lastHeartbeatOkMs: number | null = null;
  private metricsListener: ApiListener | null = null;

  private constructor(
    readonly exit: ExitDataPlane,
    readonly agent: JoinedAgent,
    readonly store: NodeStore,
    private readonly link: ControlLink,
    private readonly reporter: UsageReporter,
    private readonly channel: NodeChannelClient,
    private readonly cred: NodeCredential,
    private readonly o: JoinOptions,
    private readonly log: Logger,
    readonly info: { nodeId: string; controlUrl: string; publicKey: string; endpoint: string; exitAddresses: string[]; interfaceAddresses: string[]; restoredPeers: number; state: string; metricsUrl: string },
  ) {
    this.state = info.state;
  }

  static async start(o: JoinOptions, log: Logger): Promise<JoinedNode> {
    let base: string;
    try {
      base = apiBaseUrl(o.joinUrl);
    } catch (e) {
      throw new StartError(`--join: ${(e as Error).message} (the control plane's API URL, e.g. https://control.example:8080)`);
    }
    const id = exitIdentity(o);
    const link = new ControlLink({ base, ...(o.ca ? { ca: o.ca } : {}) });
    const cred = await credentialOf(o, base, id, link, log);
    const node = await nodeRecord(o, cred, id.publicKey, link, log);

    const store = openNodeStore(join(o.dataDir, NODE_DATABASE_FILE));
    let exit: ExitDataPlane;
    try {
      exit = await ExitDataPlane.start(id, { tun: o.tun, listenPort: o.listenPort, nat: o.nat, pool4: node.pool4, pool6: node.pool6, interfaceAddresses: node.interfaceAddresses, netstack: o.netstack === true, ownTcpPorts: [o.metricsPort], udpIdle: o.udpIdle }, log);
    } catch (e) {
      store.close();
      throw e;
    }
    // /metrics before anything follows the control plane: a port in use stops the start like serve's.
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    exit.registerMetrics(registry);
    let metricsListener: ApiListener;
    try {
      metricsListener = await ApiListener.listen(metricsRequestListener({ registry }), o.metricsHost, o.metricsPort, null);
    } catch (e) {
      await exit.close();
      store.close();
      throw e;
    }
    exit.setOwnPorts([(metricsListener.server.address() as AddressInfo).port]);
    const agent = new JoinedAgent(store, exit.dataPlane, Date.now, log);
    const restoredPeers = agent.restore();
    const reporter = new UsageReporter(store, link, { id: cred.nodeId, credential: cred.credential }, Date.now);
    const channel = new NodeChannelClient({ url: base, nodeId: cred.nodeId, credential: cred.credential, ...(o.ca ? { ca: o.ca } : {}) });
    const n = new JoinedNode(exit, agent, store, link, reporter, channel, cred, o, log, {
      nodeId: cred.nodeId,
      controlUrl: base,
      publicKey: id.publicKey,
      endpoint: id.endpoint,
      exitAddresses: id.exitAddresses,
      interfaceAddresses: node.interfaceAddresses,
      restoredPeers,
      state: node.state,
      metricsUrl: metricsListener.url,
    });
    n.metricsListener = metricsListener;
    registerNodeMetrics(registry, () => n.figures(), Date.now);
    exit.onGone((reason) => {
      log.error({ reason }, 'the device stopped; shutting down');
      void n.stop();
    });
    n.timers.push(setInterval(() => n.sync(), o.syncIntervalS * 1000));
    n.timers.push(setInterval(() => void n.heartbeat(), o.heartbeatIntervalS * 1000));
    void n.heartbeat();
    void n.followChannel();
    return n;
  }

  /** A joined node has no API listener of its own: nothing to reload on SIGHUP. */
  get http(): { readonly secure: boolean } {
    return { secure: false };
  }

  reloadTls(): void {}

  /** The node's own figures for /metrics (node-metrics.ts). */
  figures(): NodeFigures {
    return {
      revision: this.agent.revision(),
      channelConnected: this.channelConnected,
      backlog: this.store.backlog(),
      lastReportOkMs: this.lastReportOkMs,
      lastHeartbeatOkMs: this.lastHeartbeatOkMs,
    };
  }

  /** One tick: the destination policy, device counters to disk, unacknowledged usage to the control plane. */
  private sync(): void {
    if (this.stopping) return;
    this.exit.refreshPolicy();
    try {
      this.agent.flushCounters();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'counting failed');
    }
    void this.report();
  }

  private async report(): Promise<void> {
    try {
      const r = await this.reporter.report();
      this.lastReportOkMs = Date.now();
      if (this.reportFailing) this.log.info({ reports: r.acknowledged }, 'usage reports caught up');
      this.reportFailing = false;
    } catch (e) {
      if (this.refused(e)) return;
      if (!this.reportFailing) this.log.warn({ err: (e as Error).message }, 'usage not reported; kept on disk and retried');
      this.reportFailing = true;
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.stopping) return;
    try {
      const view = await this.link.heartbeat(this.cred.nodeId, this.cred.credential, this.info.exitAddresses);
      this.lastHeartbeatOkMs = Date.now();
      if (this.heartbeatFailing) this.log.info('the control plane answers again');
      this.heartbeatFailing = false;
      if (view.state !== this.state) {
        this.log.info({ state: view.state }, view.state === 'draining' ? 'this node is draining: it keeps its sessions and takes no new ones' : `this node is ${view.state}`);
        this.state = view.state;
      }
    } catch (e) {
      if (this.refused(e)) return;
      if (!this.heartbeatFailing) this.log.warn({ err: (e as Error).message }, 'the control plane is unreachable: forwarding and counting go on (fail-static)');
      this.heartbeatFailing = true;
    }
  }

  /** The channel until shutdown: snapshot or resumed changes, then the stream, each applied in order. */
  private async followChannel(): Promise<void> {
    let down = false;
    try {
      await this.channel.stream({
        since: this.agent.held(),
        signal: this.channelAbort.signal,
        onSnapshot: (s) => {
          const r = this.agent.applySnapshot(s.revision, s.peers, s.changeId);
          this.log.info({ revision: s.revision, peers: s.peers.length, added: r.added, removed: r.removed }, 'peer snapshot applied');
        },
        onPeer: (revision, change, changeId) => {
          this.agent.applyChange(revision, change, changeId);
        },
        onConnect: () => {
          this.channelConnected = true;
          if (down) this.log.info({ revision: this.agent.revision() }, 'peer channel open again');
          down = false;
        },
        onDisconnect: (error, retryInMs) => {
          this.channelConnected = false;
          if (!down && !this.stopping) this.log.warn({ err: error.message, retryInMs }, 'peer channel lost; current peers stay (fail-static), reconnecting');
          down = true;
        },
      });
    } catch (e) {
      if (e instanceof NodeChannelError && e.status === 401) {
        this.refused(new CredentialRefused(e.message));
        return;
      }
      this.log.error({ err: (e as Error).message }, 'the peer channel was refused; current peers stay');
    } finally {
      this.channelConnected = false; // stopped, or refused for good
    }
  }

  /** A refused credential (revoked or removed node) stops the node; returns whether `e` was that. */
  private refused(e: unknown): boolean {
    if (!(e instanceof CredentialRefused)) return false;
    if (this.stopping) return true;
    const message = `the control plane at ${this.info.controlUrl} refused the credential of node ${this.cred.nodeId} (revoked or removed): stopping`;
    this.log.error(message);
    void this.stop().then(() => this.o.onRefused?.(message));
    return true;
  }

  /** Counters flushed and reported once more (bounded), the channel closed, the data plane removed, the database closed. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      this.channelAbort.abort();
      try {
        this.agent.flushCounters();
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'the last count failed');
      }
      const last = await Promise.race([
        this.reporter.report().then(() => 'reported', (e: Error) => `not reported (${e.message}); kept on disk`),
        new Promise<string>((resolve) => setTimeout(() => resolve('not reported in time; kept on disk'), FINAL_REPORT_MS).unref()),
      ]);
      this.log.info({ usage: last }, 'final usage report');
      await this.metricsListener?.close();
      await this.exit.close();
      this.store.close();
      this.log.info('stopped');
    })();
    return this.stopping;
  }
}

/** The stored credential, or a new one from enrolling with --node-token (first start). */
async function credentialOf(o: JoinOptions, base: string, id: ReturnType<typeof exitIdentity>, link: ControlLink, log: Logger): Promise<NodeCredential> {
  const held = readNodeCredential(o.dataDir);
  if (held) {
    if (held.controlUrl !== base) {
      throw new StartError(`this data directory's node joined the control plane at ${held.controlUrl}, not ${base}: give that --join, or another --data to join this one`);
    }
    if (o.nodeToken) log.warn({ node: held.nodeId }, 'already joined: --node-token is not used (the node credential in the data directory is)');
    return held;
  }
  if (!o.nodeToken) {
    throw new StartError('this node has not joined yet: give --node-token TOKEN (tunnelbyte admin node token --region R on the control plane makes one)');
  }
  try {
    const e = await link.enroll(o.nodeToken, {
      public_key: id.publicKey,
      endpoint: id.endpoint,
      exit_addresses: id.exitAddresses,
      pool4: o.pool4,
      ...(o.pool6 ? { pool6: o.pool6 } : {}),
    });
    const cred: NodeCredential = {
      nodeId: e.node.id,
      controlUrl: base,
      credential: e.credential,
      node: { pool4: e.node.pool4, pool6: e.node.pool6, interfaceAddresses: e.node.interface_addresses, state: e.node.state },
    };
    writeNodeCredential(o.dataDir, cred);
    log.info({ node: e.node.id, region: e.node.region }, 'joined the control plane: node credential kept in the data directory');
    return cred;
  } catch (e) {
    if (e instanceof CredentialRefused) throw new StartError(`the control plane refused the enrollment token (${e.message}): make a new one with tunnelbyte admin node token --region R`);
    if (e instanceof ControlUnreachable) throw new StartError(`${e.message}: joining needs the control plane (check --join and that tunnelbyte control is running)`);
    if (e instanceof ControlRefusal) throw new StartError(`the control plane refused to enroll this node: ${e.message}`);
    throw e;
  }
}

/** The node's pools, interface addresses and state: from the control plane, or (unreachable) as kept at the last contact. */
async function nodeRecord(o: JoinOptions, cred: NodeCredential, publicKey: string, link: ControlLink, log: Logger): Promise<NodeFacts> {
  try {
    const v = await link.self(cred.nodeId, cred.credential);
    if (v.public_key !== publicKey) {
      throw new StartError(`node ${cred.nodeId} joined with another server key than ${join(o.dataDir, 'server.key')} holds: restore that key, or move node.json away and join again with a new --node-token`);
    }
    const node = { pool4: v.pool4, pool6: v.pool6, interfaceAddresses: v.interface_addresses, state: v.state };
    writeNodeCredential(o.dataDir, { ...cred, node });
    return node;
  } catch (e) {
    if (e instanceof CredentialRefused) {
      throw new StartError(`the control plane at ${cred.controlUrl} refused the credential of node ${cred.nodeId}: the node was revoked or removed (a new node needs a new key and --node-token)`);
    }
    if (!(e instanceof ControlUnreachable) || !cred.node) throw e instanceof ControlUnreachable ? new StartError(`${e.message}: this node has no record of its pools yet`) : e;
    log.warn({ err: e.message }, 'the control plane is unreachable: starting from the node record and peers on disk (fail-static)');
    return cred.node;
  }
}
