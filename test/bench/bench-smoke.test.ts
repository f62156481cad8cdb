// The benchmark's fast smoke run, so `npm run bench` cannot rot. Figures are
// printed, never asserted (the machine is shared and noisy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../support/repo.js';

test('bench --smoke runs every in-process benchmark and the API load run', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', REPO_ROOT + 'dist/bench/run.js', '--smoke'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  for (const name of ['x25519 DH', 'AEAD seal', 'encrypt+decrypt 1420 B', 'responder handshakes', 'allowed-IPs lookups', 'memory per idle peer', 'GET /v1/usage, 64 connections', 'GET /v1/usage p99 latency']) {
    assert.ok(r.stdout.includes(name), `missing ${name} in:\n${r.stdout}`);
  }
});
