/**
 * The netstack flow: one TCP connection from the userspace stack in this
 * process (Tunnel: netstack + WireGuard device + a UDP socket opened in the
 * namespace) through Debian's wireguard-go to the kernel's TCP in a network
 * namespace, both directions, and the memory an idle netstack TCP connection
 * costs. The kernel end is a small node program (test/support/kernel-peer.ts:
 * discard / blast / hold) rather than iperf3, since iperf3's control protocol
 * would have to be spoken by the netstack side too; it only counts or sends
 * zeros, so the measured path is netstack ⇄ WireGuard ⇄ Linux TCP.
 *
 * With `lossPercent` (`--netstack-loss`), the same flows run with that loss
 * both ways on the namespace's loopback, where the tunnel's UDP and
 * wireguard-go's meet (test/support/nft-impair.ts, the privileged test's
 * impairment), and the rows say what the sender's loss recovery did
 * (RACK-TLP, src/netstack/tcp/rack.ts): timeouts, segments RACK marked lost,
 * tail loss probes — and, as the reference for the same path, what Linux's
 * TCP did as the sender of the downloads (its TcpExt counters in the namespace:
 * TCPTimeouts, TCPLossProbes, TCPLossProbeRecovery, and Tcp RetransSegs).
 * The idle-connection memory is measured only without loss.
 *
 * Needs root (namespace, and the UDP socket opened inside it); the netstack
 * itself runs unprivileged code only.
 */
import { Netns } from '../test/support/netns.js';
import { startKernelPeer } from '../test/support/kernel-peer-run.js';
import { configure, genKeys, ifname, keyDir, startInterface } from '../test/support/wg.js';
import { impairKernelLink } from '../test/support/nft-impair.js';
import { openLinuxUdpBind } from '../src/io/linux/udp.js';
import { Tunnel } from '../src/userspace/index.js';
import type { Row } from './in-process.js';
import { median } from './stats.js';

/** The namespace's TCP counters (nstat's sources: /proc/net/netstat TcpExt and /proc/net/snmp Tcp), by name. */
function linuxTcpCounters(ns: Netns): Record<string, number> {
  const out: Record<string, number> = {};
  for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
    // Each group is two lines: "Prefix: names..." then "Prefix: values...".
    const lines = ns.run('cat', [file]).trim().split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(/\s+/);
      const values = lines[i + 1]!.split(/\s+/);
      if (names[0] !== 'TcpExt:' && names[0] !== 'Tcp:') continue;
      for (let j = 1; j < names.length; j++) out[names[j]!] = Number(values[j]);
    }
  }
  return out;
}

export async function benchNetstack(opts: { rounds: number; seconds: number; idleConnections: number; lossPercent?: number }): Promise<{ rows: Row[]; samples: Record<string, number[]> }> {
  const loss = opts.lossPercent ?? 0;
  const ns = Netns.create('nsb');
  const keys = keyDir();
  let tunnel: Tunnel | null = null;
  try {
    const IF = ifname('wgB');
    const ka = genKeys();
    const kb = genKeys();
    startInterface(ns, 'wireguard-go', IF);
    configure(ns, IF, { privFile: keys.write('a', ka.priv), port: 51820, addrs: ['192.0.2.1/24'], mtu: 1420 });
    ns.run('wg', ['set', IF, 'peer', kb.pub, 'allowed-ips', '192.0.2.2/32']);
    tunnel = await Tunnel.start({
      config: `[Interface]\nPrivateKey = ${kb.priv}\nAddress = 192.0.2.2/32\nMTU = 1420\n[Peer]\nPublicKey = ${ka.pub}\nEndpoint = 127.0.0.1:51820\nAllowedIPs = 192.0.2.0/24\n`,
      // Under loss each datagram must meet the nft rule on its own: no GSO batch crossing lo as one packet.
      bind: openLinuxUdpBind({ netns: ns.name, ...(loss > 0 ? { gso: false } : {}) }),
      tcp: { sendBuffer: 4 << 20, receiveBuffer: 4 << 20 },
    });
    const t = tunnel;
    let port = 9000;
    // Memory per idle connection first, before the flows leave garbage: heap + external growth over N idle connections.
    let perConn = NaN;
    if (loss === 0) {
      const k = await startKernelPeer(ns, 'hold', '192.0.2.1', ++port);
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      const m0 = process.memoryUsage();
      const socks = [];
      for (let i = 0; i < opts.idleConnections; i++) socks.push(t.connect(port, '192.0.2.1'));
      await Promise.all(socks.map((s) => new Promise((res, rej) => (s.once('connect', res), s.once('error', rej)))));
      await new Promise((r) => setTimeout(r, 500));
      gc?.();
      const m1 = process.memoryUsage();
      perConn = (m1.heapUsed + m1.external - (m0.heapUsed + m0.external)) / opts.idleConnections;
      for (const s of socks) s.destroy();
      k.proc.kill();
    } else {
      impairKernelLink(ns, 51820, { lossPercent: loss });
    }
    const up: number[] = [];
    const down: number[] = [];
    // Linux's own loss recovery as the sender (the downloads), for comparison: its TcpExt counters in the namespace.
    const linuxSender = { timeouts: 0, lossProbes: 0, lossProbeRecoveries: 0, retransmits: 0 };
    let netstackTimeouts = 0;
    for (let r = 0; r < opts.rounds; r++) {
      // Upload: zeros for `seconds`, then FIN; the kernel replies its byte count after it.
      {
        const timeoutsBefore = t.stack.tcpStats().timeouts;
        const k = await startKernelPeer(ns, 'discard', '192.0.2.1', ++port);
        const s = t.connect(port, '192.0.2.1');
        await new Promise((res, rej) => (s.once('connect', res), s.once('error', rej)));
        const zeros = Buffer.alloc(256 * 1024);
        const start = performance.now();
        const until = start + opts.seconds * 1000;
        const reply = new Promise<void>((res) => s.on('data', () => {}).once('end', () => res()));
        while (performance.now() < until) if (!s.write(zeros)) await new Promise((res) => s.once('drain', res));
        s.end();
        await reply;
        const bytes = Number((await k.result()).bytes);
        up.push((bytes * 8) / ((performance.now() - start) / 1000) / 1e6);
        netstackTimeouts += t.stack.tcpStats().timeouts - timeoutsBefore;
      }
      // Download: the kernel sends zeros for `seconds`.
      {
        const before = linuxTcpCounters(ns);
        const k = await startKernelPeer(ns, 'blast', '192.0.2.1', ++port, opts.seconds);
        const s = t.connect(port, '192.0.2.1');
        let bytes = 0;
        let start = 0;
        s.on('data', (d: Buffer) => {
          if (start === 0) start = performance.now();
          bytes += d.length;
        });
        await new Promise((res) => s.once('end', res));
        down.push((bytes * 8) / ((performance.now() - start) / 1000) / 1e6);
        await k.result();
        s.destroy();
        const after = linuxTcpCounters(ns);
        linuxSender.timeouts += after.TCPTimeouts - before.TCPTimeouts;
        linuxSender.lossProbes += after.TCPLossProbes - before.TCPLossProbes;
        linuxSender.lossProbeRecoveries += after.TCPLossProbeRecovery - before.TCPLossProbeRecovery;
        linuxSender.retransmits += after.RetransSegs - before.RetransSegs;
      }
    }
    const stats = t.stack.tcpStats();
    if (loss > 0) {
      const at = ` at ${loss} % loss both ways`;
      const note = `median of ${opts.rounds} × ${opts.seconds} s, one connection, nftables loss on the UDP both ways`;
      return {
        rows: [
          { name: `netstack TCP upload${at}`, value: median(up), unit: 'Mbit/s', note },
          { name: `netstack TCP download${at}`, value: median(down), unit: 'Mbit/s', note },
          { name: `netstack retransmission timeouts${at}`, value: netstackTimeouts, unit: 'timeouts', note: `the netstack as sender, over the ${opts.rounds} uploads` },
          { name: `netstack segments RACK marked lost${at}`, value: stats.rackLost, unit: 'segments' },
          { name: `netstack tail loss probes${at}`, value: stats.tailLossProbes, unit: 'probes' },
          { name: `Linux retransmission timeouts${at}`, value: linuxSender.timeouts, unit: 'timeouts', note: `Linux as sender, over the ${opts.rounds} downloads (TcpExt TCPTimeouts in the namespace)` },
          { name: `Linux tail loss probes${at}`, value: linuxSender.lossProbes, unit: 'probes', note: `TCPLossProbes; ${linuxSender.lossProbeRecoveries} repaired a loss (TCPLossProbeRecovery)` },
          { name: `Linux retransmitted segments${at}`, value: linuxSender.retransmits, unit: 'segments', note: 'Tcp RetransSegs' },
        ],
        samples: { up, down },
      };
    }
    return {
      rows: [
        { name: 'netstack TCP upload (netstack → wireguard-go → Linux)', value: median(up), unit: 'Mbit/s', note: `median of ${opts.rounds} × ${opts.seconds} s, one connection` },
        { name: 'netstack TCP download (Linux → wireguard-go → netstack)', value: median(down), unit: 'Mbit/s', note: `median of ${opts.rounds} × ${opts.seconds} s, one connection` },
        { name: 'netstack memory per idle TCP connection', value: perConn, unit: 'bytes', note: `${opts.idleConnections} established connections, heap + external` },
        { name: 'netstack retransmissions during the flows', value: stats.retransmits, unit: 'segments' },
      ],
      samples: { up, down },
    };
  } finally {
    tunnel?.close();
    ns.destroy();
    keys.cleanup();
  }
}
