/** Waiting on the child processes the namespace benchmarks start (iperf3, the flooder, autocannon, ping). */
import type { ChildProcess } from 'node:child_process';

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
