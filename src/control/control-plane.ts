/**
 * The control plane assembled: the store, every service, and the node agents
 * of the nodes running in this process. The exit server, the HTTP app, the
 * admin CLI and the tests all build it with `createControlPlane()`.
 *
 * Exit-server wiring, in order:
 *
 *   const cp = createControlPlane({ dbPath: databasePath(dataDir), config });
 *   const { node, interfaceAddresses } = cp.nodes.register({ regionId, publicKey,
 *     endpoint, exitAddresses, pool4, pool6 });           // addresses for the TUN
 *   const agent = cp.attachDataPlane(node.id, dataPlane, exitAddresses);
 *   agent.sync();                                          // re-installs active sessions' peers
 *   const timer = setInterval(() => { agent.sync(); cp.peerChannel.publishAll(); }, 5000);
 *                                      // counters, expiry, admin closes; joined nodes' peer sets
 *   const app = createApp({ control: cp, logger });        // src/control/http/app.ts
 *   ...on shutdown: clearInterval(timer); agent.sync(); cp.close();
 */
import { systemClock, type Clock } from '../protocol/clock.js';
import { controlConfig, type ControlConfig } from './config.js';
import { AccountService } from './services/accounts.js';
import { AuthService } from './services/auth.js';
import { BillingService } from './services/billing.js';
import type { PeerSync, ServiceContext } from './services/context.js';
import type { DataPlane } from './services/data-plane.js';
import { IpAttributionService } from './services/ip-attribution.js';
import { NodeAgent } from './services/node-agent.js';
import { NodeAuthService } from './services/node-auth.js';
import { NodeEnrollmentService } from './services/node-enrollment.js';
import { NodeReportService } from './services/node-reports.js';
import { NodeService } from './services/nodes.js';
import { PeerChannelService } from './services/peer-channel.js';
import { RegionService } from './services/regions.js';
import { SessionService } from './services/sessions.js';
import { UsageService } from './services/usage.js';
import { openStore, type Store } from './store/store.js';

export interface ControlPlaneOptions {
  /** The SQLite file (opened and migrated here, closed by close()); or pass `store`. */
  dbPath?: string;
  store?: Store;
  config?: ControlConfig;
  clock?: Clock;
}

export class ControlPlane {
  readonly store: Store;
  readonly config: ControlConfig;
  readonly clock: Clock;
  readonly auth: AuthService;
  readonly accounts: AccountService;
  readonly regions: RegionService;
  readonly nodes: NodeService;
  readonly nodeEnrollment: NodeEnrollmentService;
  readonly nodeAuth: NodeAuthService;
  readonly nodeReports: NodeReportService;
  readonly usage: UsageService;
  readonly sessions: SessionService;
  readonly billing: BillingService;
  readonly ipAttribution: IpAttributionService;
  /** The peer sets published to joined nodes (GET /v1/nodes/{id}/peers and its stream). */
  readonly peerChannel: PeerChannelService;
  private readonly agents = new Map<string, NodeAgent>();
  private readonly ctx: ServiceContext;

  constructor(opts: ControlPlaneOptions) {
    if (!opts.store && !opts.dbPath) throw new TypeError('createControlPlane needs dbPath or store');
    this.config = opts.config ?? controlConfig();
    this.clock = opts.clock ?? systemClock;
    this.store = opts.store ?? openStore(opts.dbPath!, { now: () => this.clock.wallMs() });
    // A node in this process is reconciled directly; a joined one gets the change published to its channel.
    const peers: PeerSync = {
      nodeChanged: (nodeId) => {
        this.agents.get(nodeId)?.reconcile();
        this.peerChannel.publish(nodeId);
      },
    };
    this.ctx = { store: this.store, config: this.config, clock: this.clock, peers };
    this.auth = new AuthService(this.ctx);
    this.accounts = new AccountService(this.ctx, this.auth);
    this.regions = new RegionService(this.ctx);
    this.nodes = new NodeService(this.ctx);
    this.nodeEnrollment = new NodeEnrollmentService(this.ctx, this.nodes);
    this.nodeAuth = new NodeAuthService(this.ctx);
    this.usage = new UsageService(this.ctx);
    this.nodeReports = new NodeReportService(this.ctx, this.nodes, this.usage);
    this.sessions = new SessionService(this.ctx, this.usage);
    this.billing = new BillingService(this.ctx, this.accounts);
    this.ipAttribution = new IpAttributionService(this.ctx);
    this.peerChannel = new PeerChannelService(this.ctx, this.usage);
  }

  /**
   * Connects the WireGuard device of a node running in this process. From
   * now on sessions created or closed through this control plane change its
   * peers at once; call `sync()` on the returned agent at start and every few
   * seconds (see NodeAgent).
   */
  attachDataPlane(nodeId: string, dataPlane: DataPlane, exitAddresses: string[]): NodeAgent {
    if (!this.store.nodes.get(nodeId)) throw new Error(`attachDataPlane: node ${nodeId} is not registered`);
    const agent = new NodeAgent(this.ctx, { nodes: this.nodes, sessions: this.sessions, usage: this.usage }, nodeId, dataPlane, exitAddresses);
    this.agents.set(nodeId, agent);
    return agent;
  }

  /** Stops changing that node's peers (its agent is dropped; the device keeps what it has). */
  detachDataPlane(nodeId: string): void {
    this.agents.delete(nodeId);
  }

  /** Closes the database. Call after the agents' last sync. */
  close(): void {
    this.agents.clear();
    this.store.close();
  }
}

export function createControlPlane(opts: ControlPlaneOptions): ControlPlane {
  return new ControlPlane(opts);
}
