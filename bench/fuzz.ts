/**
 * `npm run bench -- --fuzz`: longer datagram fuzzing than the suite's
 * (test/support/datagram-fuzz.ts; the suite sends 1,010,000), several seeds,
 * each checked the same way: no throw, nothing sent but correct cookie
 * replies, every genuine packet delivered, counters that add up. As root it
 * also runs the UAPI fuzz against a tunnelbyte-wg daemon with more requests
 * (test/privileged/uapi-fuzz.test.ts through `TB_UAPI_FUZZ_REQUESTS`).
 * `--fuzz-count N` sets the datagrams per seed (default 5,000,000; smoke:
 * 20,000). Any violation fails the benchmark, naming the seed.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runDatagramFuzz } from '../test/support/datagram-fuzz.js';
import type { Row } from './in-process.js';

export function benchFuzz(opts: { count: number; seeds: number; smoke: boolean }): { rows: Row[]; samples: unknown[] } {
  const rows: Row[] = [];
  const samples: unknown[] = [];
  const base = Number(process.env.TB_FUZZ_SEED ?? Date.now() % 1_000_000_000);
  for (let k = 0; k < opts.seeds; k++) {
    const seed = base + k;
    // Alternate the plain mix and the flood-heavy one whose queue fills and sheds.
    const heavy = k % 2 === 1;
    const r = runDatagramFuzz({ count: opts.count, seed, ...(heavy ? { drainEvery: 50, floodPercent: 60 } : { floodPercent: 2 }) });
    samples.push({ seed, heavy, received: r.received, ms: r.ms, cookieReplies: r.cookieReplies, drops: r.drops, accepted: r.accepted, violations: r.violations });
    if (r.violations.length > 0) throw new Error(`datagram fuzz, seed ${seed}: ${r.violations.join('; ')}`);
    rows.push({ name: `datagram fuzz, seed ${seed}${heavy ? ' (flood-heavy)' : ''}`, value: (r.received / r.ms) * 1000, unit: 'datagrams/s', note: `${r.received.toLocaleString('en-US')} datagrams, no violation` });
  }
  if (process.getuid?.() === 0) {
    const test = fileURLToPath(new URL('../test/privileged/uapi-fuzz.test.js', import.meta.url));
    const requests = opts.smoke ? 200 : 20_000;
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['--test', test], { env: { ...process.env, TB_UAPI_FUZZ_REQUESTS: String(requests) }, encoding: 'utf8', timeout: 3_600_000 });
    if (r.status !== 0) throw new Error(`UAPI fuzz failed:\n${(r.stdout + r.stderr).slice(-4000)}`);
    rows.push({ name: 'UAPI fuzz against tunnelbyte-wg', value: (requests / (performance.now() - t0)) * 1000, unit: 'requests/s', note: `${requests} requests, daemon up throughout` });
  } else {
    console.error('uapi fuzz: skipped, it needs root (a network namespace)');
  }
  return { rows, samples };
}
