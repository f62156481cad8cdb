/** Starts a test/support/kernel-peer.ts mode inside a namespace (the kernel's end of netstack tests and benchmarks). */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { type Netns, waitFor } from './netns.js';
import { REPO_ROOT } from './repo.js';

const PEER = join(REPO_ROOT, 'dist/test/support/kernel-peer.js');

export interface KernelPeer {
  proc: ChildProcess;
  /** The mode's result line (JSON), once printed. */
  result(): Promise<Record<string, unknown>>;
}

/** Runs `mode` with node in `ns`; resolves once it printed "ready". */
export async function startKernelPeer(ns: Netns, mode: string, ...args: (string | number)[]): Promise<KernelPeer> {
  const proc = ns.spawn(process.execPath, [PEER, mode, ...args.map(String)]);
  const lines: string[] = [];
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(`kernel ${mode} ready`, () => lines.includes('ready'), 10_000, 20).catch((e: Error) => {
    throw new Error(`${e.message}: ${err}`);
  });
  return {
    proc,
    result: async () => {
      // An upload prints {"sent": …} first; the result is the other JSON line.
      const l = await waitFor(`kernel ${mode} result`, () => lines.find((x) => x.startsWith('{') && !x.startsWith('{"sent"')), 120_000, 20);
      return JSON.parse(l!) as Record<string, unknown>;
    },
  };
}
