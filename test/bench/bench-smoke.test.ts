// The benchmark's fast smoke run, so `npm run bench` cannot rot. Figures are
// printed, never asserted (the machine is shared and noisy). As root (CI) the
// smoke run also goes through the parts that need network namespaces: the
// tunnel under an API flood, --e2e, --flood, --proxy, --fleet-e2e and --netstack-exit; --fuzz runs briefly too
// (the UAPI part only as root), and --fleet (50 nodes against `tunnelbyte control`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../support/repo.js';
import { anchorMissing } from '../../bench/daemons.js';
import { privilegedSkipReason } from '../support/netns.js';

const privileged = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'iperf3', 'curl', 'g++', 'nft', 'unshare']) === null;

test(`bench --smoke runs every in-process benchmark, the API load run, the start-up times, the fleet's reports${privileged ? ', the API flood, --e2e, --flood, --proxy, --fleet-e2e and --netstack-exit' : ''}`, { timeout: 600_000 }, () => {
  const args = ['--expose-gc', REPO_ROOT + 'dist/bench/run.js', '--smoke', '--fuzz', '--fleet', ...(privileged ? ['--e2e', '--flood', '--proxy', '--fleet-e2e', '--netstack-exit'] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 540_000 });
  assert.equal(r.status, 0, r.stderr);
  const names = ['x25519 DH', 'AEAD seal', 'encrypt+decrypt 1420 B', 'responder handshakes', 'allowed-IPs lookups', 'memory per idle peer', 'GET /v1/usage, 64 connections', 'GET /v1/usage p99 latency', 'start-up: --version, node bin/tunnelbyte.js', 'start-up: regions (loopback API), node bin/tunnelbyte.js', 'datagram fuzz, seed', 'fleet: enrollments over HTTP', 'fleet paced (heartbeat 10 s, usage 5 s), 50 nodes', 'fleet paced: SQLite time per usage report p99', 'fleet saturated, 64 in flight'];
  if (privileged) {
    names.push('tunnel download through serve, alone', 'tunnel download through serve, API flood on serve', 'tunnel download through serve, API flood on another process');
    // The pair rows compare with the reference wireguard-go, which CI puts beside the clone; a clone
    // elsewhere runs --e2e against Debian's wireguard-go only (the benchmark says so in a `!!` line).
    if (anchorMissing() === null) names.push('e2e pair tunnelbyte-wg: TCP client→server');
    else assert.ok(r.stderr.includes('!! e2e: the reference wireguard-go is missing'), r.stderr.slice(-3000));
    names.push('e2e server tunnelbyte-wg, wg-go-debian client: TCP server→client', 'tunnelbyte-wg server CPU');
    names.push('flood no flood, tunnelbyte-wg server: exit download', "flood 12k/s from 64 addresses, tunnelbyte-wg server: new client's handshake", 'UAPI fuzz against tunnelbyte-wg');
    names.push('download through tunnelbyte proxy, SOCKS5', 'download through tunnelbyte proxy, HTTP proxy, CONNECT');
    names.push('fleet API → node: session created → handshake answered, p99', 'fleet API → node: peer changes, 8 sessions at a time');
    names.push('exit serve (TUN): TCP client→internet', 'exit serve --netstack: TCP internet→client (iperf3 -R)', 'exit serve --netstack: HTTP requests, a new connection each', 'exit serve --netstack: exit RSS per idle relayed TCP connection', 'exit serve --netstack: UDP client→internet (iperf3 -u), delivered', 'exit serve --netstack: UDP internet→client (iperf3 -u -R), lost');
    // The QUIC rows need ngtcp2's example client and server (CI installs them); without them the benchmark says so.
    if (privilegedSkipReason(['gtlsclient', 'gtlsserver', 'openssl'], {}) === null) names.push('exit serve (TUN): QUIC download (ngtcp2', 'exit serve --netstack: QUIC download (ngtcp2');
    else assert.ok(r.stderr.includes('!! netstack-exit:'), r.stderr.slice(-3000));
  }
  for (const name of names) assert.ok(r.stdout.includes(name), `missing ${name} in:\n${r.stdout}\n${r.stderr.slice(-3000)}`);
});
