// contrib/systemd/tunnelbyte.service: `systemd-analyze verify` accepts it without a warning, and it
// keeps what the exit needs (the TUN device, CAP_NET_ADMIN, the state directory serve uses as root,
// NODE_OPTIONS cleared). verify also checks that ExecStart is executable: the test puts the program
// at /usr/local/bin/tunnelbyte in a private mount namespace (a tmpfs over /usr/local/bin), so the
// host's /usr/local/bin is not touched. The README's service section installs this same file.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { privilegedSkipReason } from '../support/netns.js';
import { REPO_ROOT } from '../support/repo.js';
import { readmeCommands } from '../support/readme.js';
import { ROOT_DATA_DIR } from '../../src/control/paths.js';
import { addonCacheDirs, ROOT_CACHE_DIR } from '../../src/executable/addon-cache.js';

const UNIT = join(REPO_ROOT, 'contrib/systemd/tunnelbyte.service');
const skip = privilegedSkipReason(['systemd-analyze', 'unshare']);

/** The unit's `Key=value` lines of one section, in order (a key may repeat). */
function section(name: string): [string, string][] {
  const text = readFileSync(UNIT, 'utf8');
  const body = text.split(/^\[/m).find((s) => s.startsWith(`${name}]`)) ?? '';
  return body
    .split('\n')
    .slice(1)
    .filter((l) => /^[A-Za-z]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

describe('the systemd unit', () => {
  test('systemd-analyze verify: no error, no warning', { skip: skip ?? false }, () => {
    // the built single executable when there is one, else the checkout's entry point: verify checks the unit, not the program
    const built = join(REPO_ROOT, 'dist/tunnelbyte-linux-x64');
    const program = existsSync(built) ? built : join(REPO_ROOT, 'bin/tunnelbyte.js');
    const script = `mount -t tmpfs -o mode=0755,size=1m tb-unit /usr/local/bin && ln -s "$1" /usr/local/bin/tunnelbyte && exec systemd-analyze verify "$2"`;
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', program, UNIT], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((r.stdout + r.stderr).trim(), '', 'no warnings');
  });

  test('it runs the installed executable and keeps what the exit needs', () => {
    const s = new Map<string, string[]>();
    for (const [k, v] of section('Service')) s.set(k, [...(s.get(k) ?? []), v]);
    const one = (k: string) => {
      assert.equal(s.get(k)?.length, 1, `${k} once`);
      return s.get(k)![0]!;
    };
    assert.equal(one('ExecStart'), '/usr/local/bin/tunnelbyte serve');
    assert.equal(one('Restart'), 'on-failure');
    assert.equal(`/var/lib/${one('StateDirectory')}`, ROOT_DATA_DIR, "the state directory is serve's default data directory as root");
    assert.equal(one('StateDirectoryMode'), '0700');
    assert.equal(s.get('User'), undefined, 'root: the forwarding sysctls are root-owned files');
    assert.ok(one('CapabilityBoundingSet').split(/\s+/).includes('CAP_NET_ADMIN'));
    assert.equal(one('DeviceAllow'), '/dev/net/tun rw');
    assert.ok(one('RestrictAddressFamilies').split(/\s+/).includes('AF_NETLINK'), 'ip(8) and nft(8) speak netlink');
    assert.deepEqual(s.get('Environment'), ['NODE_OPTIONS=']);
    assert.equal(one('UnsetEnvironment'), 'NODE_OPTIONS');
    for (const k of ['PrivateDevices', 'ProtectKernelTunables', 'MemoryDenyWriteExecute', 'ProtectProc']) {
      assert.equal(s.get(k), undefined, `${k} would take away the TUN device, ip_forward, V8's JIT or the lock's /proc check`);
    }
    assert.deepEqual(section('Install'), [['WantedBy', 'multi-user.target']]);
  });

  test('its CacheDirectory is where the executable writes and maps its addons, under the hardening', () => {
    const s = new Map<string, string[]>();
    for (const [k, v] of section('Service')) s.set(k, [...(s.get(k) ?? []), v]);
    const cache = `/var/cache/${s.get('CacheDirectory')?.[0]}`;
    assert.equal(cache, ROOT_CACHE_DIR, 'the default as root, for `sudo tunnelbyte admin` outside the unit too');
    // systemd hands the path over as $CACHE_DIRECTORY; the executable takes it first after TB_CACHE_DIR
    assert.equal(addonCacheDirs(ROOT_DATA_DIR, { CACHE_DIRECTORY: cache }, 0)[0], cache);
    // addon-cache.ts refuses a directory writable by group or others
    assert.equal(s.get('CacheDirectoryMode')?.[0], '0700');
    // DynamicUser makes /var/cache/tunnelbyte a symlink into /var/cache/private, which the cache refuses;
    // the others would make the directory read-only, hidden or noexec (dlopen fails to map the addon)
    for (const k of ['DynamicUser', 'ReadOnlyPaths', 'InaccessiblePaths', 'NoExecPaths', 'TemporaryFileSystem']) assert.equal(s.get(k), undefined, k);
    assert.equal(s.get('ProtectSystem')?.[0], 'full', '/usr, /boot and /etc read-only; /var (and so the cache) stays writable');
  });

  test("the README's service section installs and enables this file, and says where logs and data are", () => {
    const cmds = readmeCommands('Run it as a service').join('\n');
    assert.match(cmds, /install -m 0644 contrib\/systemd\/tunnelbyte\.service \/etc\/systemd\/system\//);
    assert.match(cmds, /systemctl daemon-reload/);
    assert.match(cmds, /systemctl enable --now tunnelbyte/);
    assert.match(cmds, /journalctl -u tunnelbyte/);
    assert.match(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'), new RegExp(`## Run it as a service[\\s\\S]*${ROOT_DATA_DIR}`));
  });
});
