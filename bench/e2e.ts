/**
 * End-to-end throughput against the reference implementation (root only):
 * a Debian wireguard-go client in one network namespace, the server under
 * test in another — wireguard-go or tunnelbyte-wg, same keys, same
 * addresses — and iperf3 through the tunnel. Runs alternate (ref, ours, ref,
 * ours, …) so drift on a shared machine affects both. Everything is created
 * in namespaces made here and removed afterwards.
 */
import { Netns, veth, waitFor } from '../test/support/netns.js';
import { configure, genKeys, ifname, keyDir, startInterface, waitPing, type Impl } from '../test/support/wg.js';
import type { Row } from './in-process.js';

interface Sample {
  impl: Impl;
  upMbps: number;
  downMbps: number;
  udpMbps: number;
  udpLossPct: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function iperf(client: Netns, server: Netns, args: string[], seconds: number): Promise<any> {
  const srv = server.spawn('iperf3', ['-s', '-B', '192.0.2.1', '-1']);
  try {
    await waitFor('iperf3 server', () => server.try('sh', ['-c', 'ss -ltn | grep -q ":5201"']).status === 0, 5000, 50);
    return JSON.parse(client.run('iperf3', ['-c', '192.0.2.1', '-t', String(seconds), '-J', ...args], { timeoutMs: (seconds + 30) * 1000 }));
  } finally {
    srv.kill();
  }
}

async function runOnce(impl: Impl, seconds: number, udpRate: string): Promise<Sample> {
  const s = Netns.create('S');
  const c = Netns.create('C');
  const keys = keyDir();
  try {
    veth(s, ['198.51.100.1/24'], c, ['198.51.100.2/24']);
    const S = ifname('wgS');
    const C = ifname('wgC');
    const ks = genKeys();
    const kc = genKeys();
    startInterface(s, impl, S);
    startInterface(c, 'wireguard-go', C);
    configure(s, S, { privFile: keys.write('s', ks.priv), port: 51820, addrs: ['192.0.2.1/24'] });
    configure(c, C, { privFile: keys.write('c', kc.priv), addrs: ['192.0.2.2/24'] });
    s.run('wg', ['set', S, 'peer', kc.pub, 'allowed-ips', '192.0.2.2/32']);
    c.run('wg', ['set', C, 'peer', ks.pub, 'allowed-ips', '192.0.2.1/32', 'endpoint', '198.51.100.1:51820']);
    await waitPing(c, '192.0.2.1');
    const up = await iperf(c, s, [], seconds);
    const down = await iperf(c, s, ['-R'], seconds);
    const udp = await iperf(c, s, ['-u', '-b', udpRate, '-l', '1300'], seconds);
    return {
      impl,
      upMbps: up.end.sum_received.bits_per_second / 1e6,
      downMbps: down.end.sum_received.bits_per_second / 1e6,
      udpMbps: udp.end.sum.bits_per_second / 1e6,
      udpLossPct: udp.end.sum.lost_percent,
    };
  } finally {
    keys.cleanup();
    s.destroy();
    c.destroy();
  }
}

export async function benchEndToEnd(opts: { rounds: number; seconds: number; udpRate: string }): Promise<Row[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    for (const impl of ['wireguard-go', 'tunnelbyte-wg'] as Impl[]) {
      const smp = await runOnce(impl, opts.seconds, opts.udpRate);
      samples.push(smp);
      console.error(`  round ${i + 1} ${impl}: up ${smp.upMbps.toFixed(0)} Mbit/s, down ${smp.downMbps.toFixed(0)} Mbit/s, UDP ${smp.udpMbps.toFixed(0)} Mbit/s loss ${smp.udpLossPct.toFixed(2)}%`);
    }
  }
  const rows: Row[] = [];
  const of = (impl: Impl, k: keyof Omit<Sample, 'impl'>) => median(samples.filter((x) => x.impl === impl).map((x) => x[k] as number));
  for (const [k, label] of [['upMbps', 'TCP client→server'], ['downMbps', 'TCP server→client']] as const) {
    const ref = of('wireguard-go', k);
    const ours = of('tunnelbyte-wg', k);
    rows.push({ name: `e2e ${label}, wireguard-go server (median)`, value: ref, unit: 'Mbit/s' });
    rows.push({ name: `e2e ${label}, tunnelbyte-wg server (median)`, value: ours, unit: 'Mbit/s', note: `${(ours / ref).toFixed(2)}× wireguard-go` });
  }
  for (const impl of ['wireguard-go', 'tunnelbyte-wg'] as Impl[]) {
    rows.push({ name: `e2e UDP ${opts.udpRate}bit/s offered, ${impl} server`, value: of(impl, 'udpMbps'), unit: 'Mbit/s', note: `${of(impl, 'udpLossPct').toFixed(2)}% loss` });
  }
  return rows;
}
