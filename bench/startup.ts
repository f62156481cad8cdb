/**
 * Start-up time of the CLI, wall clock from spawn to exit, median of N runs:
 * `--version`, and `tunnelbyte regions` against the API in a child process on
 * loopback (bench/api-server.ts), each as the single executable
 * (dist/tunnelbyte-linux-x64) and as `node bin/tunnelbyte.js`. The commands
 * load only what they use (src/cli/tunnelbyte.ts), so neither pulls in the
 * server, SQLite or the device.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer } from './api-usage.js';
import type { Row } from './in-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // from dist/bench/
export const EXECUTABLE = join(ROOT, 'dist/tunnelbyte-linux-x64');

/** Median wall time in ms of `runs` runs (each must exit 0). */
function medianMs(runs: number, cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: 30_000 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`bench: ${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    times.push(ms);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
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
    // wall time is what a user waits, and it grows with the machine's load: the note says what the load was
    const note = () => `median of ${runs}, load average ${loadavg()[0]!.toFixed(1)}`;
    for (const [label, cmd, pre] of programs) {
      rows.push({ name: `start-up: --version, ${label}`, value: medianMs(runs, cmd, [...pre, '--version'], env), unit: 'ms', note: note() });
      rows.push({ name: `start-up: regions (loopback API), ${label}`, value: medianMs(runs, cmd, [...pre, 'regions'], env), unit: 'ms', note: note() });
    }
    return rows;
  } finally {
    stop();
    rmSync(home, { recursive: true, force: true });
  }
}
