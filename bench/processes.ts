/** Waiting on the child processes the namespace benchmarks start (iperf3, the flooder, autocannon, ping). */
import type { ChildProcess } from 'node:child_process';
import { waitFor, type Netns } from '../test/support/netns.js';

/** Resolves with a child's exit code and stdout; kills it after `timeoutMs`, so no run outlives its bound. */
export function finish(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; stdout: string }> {
  let stdout = '';
  child.stdout?.on('data', (d) => (stdout += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout });
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * An iperf3 server in `ns` bound to `address`, once it listens; with `once`, for one run
 * (`-1`: a server kept across runs can answer the next client "busy" while it resets).
 * Its start can take many seconds on a loaded machine (`ip netns exec`, then iperf3 itself),
 * so the wait is long; a server that exits instead says why.
 */
export async function startIperfServer(ns: Netns, address: string, once: boolean): Promise<ChildProcess> {
  const srv = ns.spawn('iperf3', ['-s', '-B', address, ...(once ? ['-1'] : [])]);
  let stderr = '';
  srv.stderr?.on('data', (d) => (stderr += d));
  srv.stdout?.resume();
  await waitFor('iperf3 server', () => {
    if (srv.exitCode !== null) throw new Error(`iperf3 -s -B ${address} exited (${srv.exitCode}): ${stderr.slice(0, 500)}`);
    return ns.try('sh', ['-c', 'ss -ltn | grep -q ":5201"']).status === 0;
  }, 60_000, 100);
  return srv;
}

/**
 * Stops a server from startIperfServer and resolves once it is gone: the next run's server binds
 * the same port, and one started while this one still exits fails with "Address already in use".
 */
export async function stopIperfServer(srv: ChildProcess): Promise<void> {
  if (srv.exitCode !== null || srv.signalCode !== null) return;
  const gone = new Promise((r) => srv.once('exit', r));
  srv.kill();
  await gone;
}
