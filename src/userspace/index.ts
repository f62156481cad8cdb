/**
 * The package's library face (package.json "exports"): WireGuard tunnels in
 * a Node process without a kernel interface, root or capabilities.
 *
 *   import { Tunnel } from 'tunnelbyte';
 *   const tunnel = await Tunnel.start({ config: wgQuickText });
 *   const socket = tunnel.connect(80, '10.0.0.1');
 */
export { Tunnel, TunnelUdpSocket, type ConnectOptions, type RemoteInfo, type TunnelServer, type TunnelStartOptions } from './tunnel.js';
export { TunnelSocket } from './tcp-socket.js';
export { parseWgQuick, WgQuickError, type WgQuickConfig, type WgQuickPeer } from './wg-quick.js';
export type { TcpOptions } from '../netstack/tcp/options.js';
