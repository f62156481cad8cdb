// UAPI fuzz against a running tunnelbyte-wg daemon (wireguard.com/xplatform),
// inside a network namespace the test makes: random and mutated get/set
// requests, one connection each. Every answer is either nothing (the daemon
// closed the connection) or a well-formed reply ending in `errno=N` and an
// empty line; the daemon stays up throughout and still configures and
// reports correctly at the end. (Huge unterminated `set`s are capped
// elsewhere and are not what this sends: every request is under 4 KiB.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { Netns, privilegedSkipReason } from '../support/netns.js';
import { genKeys, ifname, startInterface } from '../support/wg.js';
import { Rng } from '../support/rng.js';

const skip = privilegedSkipReason(['ip', 'wg']);
const REQUESTS = Number(process.env.TB_UAPI_FUZZ_REQUESTS ?? 1500);
const SEED = Number(process.env.TB_FUZZ_SEED ?? 0x7b15);

const b64ToHex = (k: string) => Buffer.from(k, 'base64').toString('hex');

/** One request on a fresh connection; resolves with everything the daemon wrote before it closed (or after 3 s). */
function ask(path: string, req: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let out = '';
    const timer = setTimeout(() => c.destroy(), 3000);
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      out += d;
      if (out.endsWith('\n\n')) c.end();
    });
    c.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    c.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // The daemon may close while we still write (EPIPE/ECONNRESET): an answer, not a crash.
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') resolve(out);
      else reject(e);
    });
    c.write(req, () => c.end());
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function requests(rng: Rng, keys: string[]): string[] {
  const key = () => keys[rng.int(keys.length)]!;
  const seeds = [
    'get=1\n\n',
    `set=1\nprivate_key=${key()}\nlisten_port=51999\n\n`,
    `set=1\npublic_key=${key()}\nendpoint=198.51.100.9:51820\nreplace_allowed_ips=true\nallowed_ip=10.9.0.0/16\nallowed_ip=fd00:9::/64\npersistent_keepalive_interval=25\n\n`,
    `set=1\npublic_key=${key()}\npreshared_key=${key()}\nprotocol_version=1\nupdate_only=true\n\n`,
    `set=1\nfwmark=51\nreplace_peers=true\npublic_key=${key()}\nendpoint=[2001:db8::1]:51820\nallowed_ip=0.0.0.0/0\n\n`,
    `set=1\npublic_key=${key()}\nremove=true\n\n`,
  ];
  const values = ['', '0', '-1', '65536', '4294967296', '99999999999999999999', 'true', 'false', 'nan', '0x10', '1.5', '∞', 'ä'.repeat(40), '%s%n', '\t', '[::1]:1', '300.1.1.1:1', '1.2.3.4:0', '10.0.0.0/33', '::/129', 'a'.repeat(64), key()];
  const names = ['get', 'set', 'private_key', 'listen_port', 'fwmark', 'replace_peers', 'public_key', 'update_only', 'remove', 'preshared_key', 'endpoint', 'persistent_keepalive_interval', 'replace_allowed_ips', 'allowed_ip', 'protocol_version', 'last_handshake_time_sec', 'rx_bytes', 'bogus', ''];
  const out: string[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    let req = seeds[rng.int(seeds.length)]!;
    const r = rng.int(10);
    if (r < 2) {
      // Random lines.
      const lines = Array.from({ length: 1 + rng.int(8) }, () => `${names[rng.int(names.length)]}=${values[rng.int(values.length)]}`);
      req = (rng.int(2) ? 'set=1\n' : '') + lines.join('\n') + (rng.int(3) ? '\n\n' : '\n');
    } else if (r < 9) {
      const lines = req.split('\n');
      for (let k = 0, n = 1 + rng.int(3); k < n; k++) {
        const at = rng.int(lines.length);
        switch (rng.int(6)) {
          case 0: // another value
            lines[at] = `${lines[at]!.split('=')[0]}=${values[rng.int(values.length)]}`;
            break;
          case 1: // drop a line (possibly the terminating empty one)
            lines.splice(at, 1);
            break;
          case 2: // repeat a line
            lines.splice(at, 0, lines[at]!);
            break;
          case 3: // another key
            lines[at] = `${names[rng.int(names.length)]}=${lines[at]!.split('=').slice(1).join('=')}`;
            break;
          case 4: // bytes flipped
            {
              const b = Buffer.from(lines[at]!);
              if (b.length > 0) b[rng.int(b.length)]! ^= 1 << rng.int(8);
              lines[at] = b.toString('latin1');
            }
            break;
          case 5: // no '='
            lines[at] = lines[at]!.replace('=', ' ');
            break;
        }
      }
      req = lines.join('\n');
    } else {
      // Raw bytes.
      const b = Buffer.alloc(1 + rng.int(200));
      rng.fill(b);
      req = b.toString('latin1');
    }
    out.push(req);
  }
  return out;
}

describe('UAPI fuzz against tunnelbyte-wg', { skip: skip ?? false }, () => {
  test(`${REQUESTS} random and mutated requests: every answer is errno=N or a close, and the daemon stays up`, { timeout: 600_000 }, async () => {
    const ns = Netns.create('U');
    try {
      const name = ifname('tbfz');
      const path = `/var/run/wireguard/${name}.sock`;
      startInterface(ns, 'tunnelbyte-wg', name);
      const pid = ns.pids()[0];
      assert.ok(pid, 'the daemon runs');
      const keys = Array.from({ length: 4 }, () => b64ToHex(genKeys().pub));
      const rng = new Rng(SEED);
      const counts = { errno0: 0, errnoOther: 0, closed: 0, get: 0 };
      for (const [i, req] of requests(rng, keys).entries()) {
        const reply = await ask(path, req);
        const where = `request ${i} (seed ${SEED}): ${JSON.stringify(req.slice(0, 300))} → ${JSON.stringify(reply.slice(0, 300))}`;
        if (reply === '') counts.closed++;
        else {
          assert.match(reply, /(^|\n)errno=-?\d+\n\n$/, where);
          const errno = Number(/errno=(-?\d+)\n\n$/.exec(reply)![1]);
          if (errno === 0) counts.errno0++;
          else counts.errnoOther++;
          if (req.startsWith('get=1\n') && errno === 0) {
            counts.get++;
            for (const line of reply.split('\n').filter(Boolean)) assert.match(line, /^[a-z_]+=[^\n]*$/, where);
          }
        }
        assert.ok(alive(pid), `the daemon is still running after ${where}`);
      }
      assert.deepEqual(ns.pids(), [pid], 'the daemon is still the one process in the namespace');
      // Still in working order: it applies a configuration and reports it.
      const pk = keys[0]!;
      assert.equal(await ask(path, `set=1\nlisten_port=51888\nreplace_peers=true\npublic_key=${pk}\nallowed_ip=10.77.0.0/16\n\n`), 'errno=0\n\n');
      const got = await ask(path, 'get=1\n\n');
      assert.match(got, /listen_port=51888\n/);
      assert.ok(got.includes(`public_key=${pk}\n`) && got.includes('allowed_ip=10.77.0.0/16\n'), got);
      assert.ok(counts.errno0 > 0 && counts.errnoOther > 0, `both accepted and refused requests were exercised: ${JSON.stringify(counts)}`);
      console.log(`# uapi fuzz: ${JSON.stringify(counts)}`);
    } finally {
      ns.destroy();
    }
  });
});
