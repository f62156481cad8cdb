/**
 * The Linux platform of the tunnelbyte-wg daemon: the TUN device and the
 * dual-stack UDP bind of src/io/linux over the native addon. The MTU starts
 * at wireguard-go's 1420; wg-quick and `ip link` change it afterwards.
 */
import { DEFAULT_MTU } from '../protocol/constants.js';
import { openLinuxTun } from '../io/linux/tun.js';
import { openLinuxUdpBind, SERVER_SOCKET_BUFFER_SIZE } from '../io/linux/udp.js';
import type { WgPlatform } from './wg-daemon.js';

export function linuxWgPlatform(): WgPlatform {
  return {
    openTun: (name) => openLinuxTun({ name, mtu: DEFAULT_MTU }),
    openBind: (port) => openLinuxUdpBind({ port, bufferSize: SERVER_SOCKET_BUFFER_SIZE }),
  };
}
