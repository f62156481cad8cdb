/**
 * `GET /v1/usage` under load: 64 keep-alive connections from autocannon
 * against the API in a child process (bench/api-server.ts), after a signup
 * and a session so the query reads real rows. Reports requests/s and the
 * 99th percentile latency; any non-2xx answer fails the benchmark. Then a
 * flood of wrong tokens from the same address (16 connections): requests/s
 * and how many were answered 401 (authenticated and refused) — the rest must
 * be the failed-authentication limit's 429s, given before any hashing or SQL.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { Row } from './in-process.js';

/** The /v1 app over SQLite in a child process on a loopback port (bench/api-server.ts); `stop` ends it. */
export async function startApiServer(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./api-server.js', import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench API server exited (${code})`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  return { url: (JSON.parse(line) as { url: string }).url, stop: () => child.stdin!.end() };
}

export async function benchApiUsage(scale: number): Promise<Row[]> {
  const { url, stop } = await startApiServer();
  try {
    const fingerprint = 'bench-machine';
    const signup = await fetch(`${url}/v1/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fingerprint }) });
    const { token } = (await signup.json()) as { token: string };
    const headers = { authorization: `Bearer ${token}`, 'x-tb-fingerprint': fingerprint, 'content-type': 'application/json' };
    const session = await fetch(`${url}/v1/sessions`, { method: 'POST', headers, body: JSON.stringify({ region: 'local' }) });
    if (session.status !== 201) throw new Error(`bench: session create ${session.status} ${await session.text()}`);
    const result = await autocannon({ url: `${url}/v1/usage`, connections: 64, duration: Math.max(1, Math.round(10 * scale * 5) / 5), headers });
    const bad = result.non2xx + result.errors + result.timeouts;
    if (bad > 0) throw new Error(`bench: ${bad} failed /v1/usage requests (non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts})`);
    const wrong = { authorization: `Bearer tb_${'A'.repeat(43)}`, 'x-tb-fingerprint': fingerprint };
    const flood = await autocannon({ url: `${url}/v1/usage`, connections: 16, duration: Math.max(1, Math.round(5 * scale * 5) / 5), headers: wrong });
    const codes = flood.statusCodeStats as unknown as Record<string, { count: number } | undefined>;
    const other = Object.keys(codes).filter((c) => c !== '401' && c !== '429');
    if (other.length > 0 || flood.errors > 0) throw new Error(`bench: wrong-token flood answered ${JSON.stringify(codes)}, ${flood.errors} errors`);
    return [
      { name: 'GET /v1/usage, 64 connections', value: result.requests.average, unit: 'requests/s' },
      { name: 'GET /v1/usage p99 latency', value: result.latency.p99, unit: 'ms' },
      { name: 'wrong-token flood, 16 connections, one address', value: flood.requests.average, unit: 'requests/s' },
      { name: 'wrong-token flood: answered 401 (the rest 429)', value: codes['401']?.count ?? 0, unit: 'requests' },
    ];
  } finally {
    stop();
  }
}
