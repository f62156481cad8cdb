/**
 * tcpdump inside a namespace, writing a pcap file that test/support/pcap.ts
 * reads. Headers only (snaplen 160: an IPv6 and a TCP header with the
 * largest options fit), a large capture buffer so a busy link loses nothing,
 * and a BPF filter. stop() ends it with SIGINT (tcpdump then flushes the file
 * and prints its counts) and reports how many packets the kernel dropped.
 */
import type { ChildProcess } from 'node:child_process';
import { type Netns, waitFor } from './netns.js';

export interface Capture {
  file: string;
  /** Ends the capture; resolves with tcpdump's own counts once the file is complete. */
  stop(): Promise<{ captured: number; droppedByKernel: number }>;
}

export async function startCapture(ns: Netns, iface: string, file: string, filter: string): Promise<Capture> {
  const proc: ChildProcess = ns.spawn('tcpdump', ['-i', iface, '-n', '-s', '160', '-B', '16384', '-w', file, filter]);
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  await waitFor(`tcpdump listening on ${iface} (${err})`, () => err.includes('listening on'), 10_000, 20);
  return {
    file,
    stop: async () => {
      proc.kill('SIGINT');
      const code = await exited;
      const captured = /(\d+) packets? captured/.exec(err);
      const dropped = /(\d+) packets? dropped by kernel/.exec(err);
      if (code !== 0 || !captured || !dropped) throw new Error(`tcpdump ended with ${code}: ${err}`);
      return { captured: Number(captured[1]), droppedByKernel: Number(dropped[1]) };
    },
  };
}
