/**
 * The stack's forwarding mode: what an exit's userspace NAT needs from it.
 * With a Forwarder, the stack takes packets to ANY destination (gVisor's
 * promiscuous mode with its TCP and UDP forwarders): what is addressed to
 * one of its own addresses is handled as always, everything else goes to
 * the forwarder, which relays it over the host's own sockets.
 *
 *   TCP   a SYN that matches no connection becomes a connection *held* in
 *         SYN-RECEIVED (TcpConnection.hold): nothing is answered until the
 *         forwarder has opened the real connection and calls stack.answer(c)
 *         (SYN-ACK), or stack.refuse(c, …) (RST, ICMP unreachable, or silence). A
 *         retransmitted SYN finds the held connection, so one client SYN
 *         opens one host connection.
 *   UDP   every datagram, through a reused view (copy what you keep); the
 *         replies go back with stack.sendUdp() from the original destination.
 *   ICMP  echo requests (checksum already verified), answered with
 *         stack.sendEchoReply() from the original destination.
 *
 * The forwarder runs inside input(): it may answer or refuse at once.
 */
import type { TcpConnection } from './tcp/connection.js';

/** A forwarded datagram or echo request in the stack's input buffer (absolute offsets). Reused for every packet. */
export class ForwardedPacket {
  buf: Uint8Array = new Uint8Array(0);
  version: 4 | 6 = 4;
  srcAt = 0;
  dstAt = 0;
  /** 4 or 16. */
  addrLen = 4;
  /** UDP ports; for an echo request, its identifier (srcPort) and sequence number (dstPort). */
  srcPort = 0;
  dstPort = 0;
  /** The UDP payload, or the echo request's data after its 8-byte header. */
  dataStart = 0;
  dataLen = 0;
}

export interface Forwarder {
  /** A held SYN to a destination that is not the stack's: answer or refuse it through the stack. */
  tcp(c: TcpConnection): void;
  /** A UDP datagram to a destination that is not the stack's. */
  udp(p: ForwardedPacket): void;
  /** An ICMP or ICMPv6 echo request to a destination that is not the stack's. */
  echo(p: ForwardedPacket): void;
}
