/**
 * Start-up time of the CLI, wall clock from spawn to exit, median of N runs:
 * `--version`, and `tunnelbyte regions` against the API in a child process on
 * loopback (bench/api-server.ts), each as the single executable
 * (dist/tunnelbyte-linux-x64) and as `node bin/tunnelbyte.js`, with the CPU
 * time each used (wall time on a loaded machine says more about the load). The commands
 * load only what they use (src/cli/tunnelbyte.ts), so neither pulls in the
 * server, SQLite or the device.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer } from './api-usage.js';
import type { Row } from './in-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // from dist/bench/
export const EXECUTABLE = join(ROOT, 'dist/tunnelbyte-linux-x64');

/**
 * CPU time (user + system) of this process's waited-for children so far, in ms: fields cutime and
 * cstime of /proc/self/stat (proc(5)), in clock ticks of 10 ms (USER_HZ is 100 on Linux).
 */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return (Number(f[16 - 3]) + Number(f[17 - 3])) * 10;
}

const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Median wall time and median CPU time in ms of `runs` runs (each must exit 0). */
function measure(runs: number, cmd: string, args: string[], env: NodeJS.ProcessEnv): { wall: number; cpu: number } {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = childrenCpuMs();
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: 30_000 });
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    cpu.push(childrenCpuMs() - c0);
    if (r.status !== 0) throw new Error(`bench: ${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

/** The figures; the executable's rows only when it has been built (`npm run dist`). */
export async function benchStartup(scale: number): Promise<Row[]> {
  const runs = Math.max(3, Math.round(21 * scale));
  const home = mkdtempSync(join(tmpdir(), 'tb-bench-startup-'));
  const { url, stop } = await startApiServer();
  try {
    // a clean config dir: no cached token, nothing written to the user's
    const env = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, 'config'), TB_API: url };
    const programs: [string, string, string[]][] = [['node bin/tunnelbyte.js', process.execPath, [join(ROOT, 'bin/tunnelbyte.js')]]];
    if (existsSync(EXECUTABLE)) programs.unshift(['executable', EXECUTABLE, []]);
    const rows: Row[] = [];
    // Wall time is what a user waits, and on a shared machine it grows with the load (the note says what
    // it was); the CPU time the command used is the figure that does not.
    for (const [label, cmd, pre] of programs) {
      for (const [what, args] of [['--version', ['--version']], ['regions (loopback API)', ['regions']]] as const) {
        const m = measure(runs, cmd, [...pre, ...args], env);
        const note = `median of ${runs}, load average ${loadavg()[0]!.toFixed(1)}`;
        rows.push({ name: `start-up: ${what}, ${label}`, value: m.wall, unit: 'ms', note });
        rows.push({ name: `start-up CPU: ${what}, ${label}`, value: m.cpu, unit: 'ms', note: `user + system, ${note}` });
      }
    }
    return rows;
  } finally {
    stop();
    rmSync(home, { recursive: true, force: true });
  }
}
