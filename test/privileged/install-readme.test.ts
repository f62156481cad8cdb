// The README's "Install: one file" commands, run as written where they can be: the build line is
// `npm ci` (what CI runs) and `npm run dist` (its second half, scripts/build-dist.js, builds the file
// here when it is missing or stale); the scp line's file is copied to its destination; the command
// the ssh line runs on the exit is run literally by sh. The destination is /usr/local/bin, so it is a
// tmpfs in a private mount namespace (`unshare -m`): the host's /usr/local/bin is not touched. The
// destination is also the program the systemd unit starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { privilegedSkipReason } from '../support/netns.js';
import { REPO_ROOT } from '../support/repo.js';
import { readmeCommands, steps } from '../support/readme.js';
import { BUILD_INFO, BUILT, ensureBuilt } from '../support/executable.js';

const skip = privilegedSkipReason(['unshare']);

test("the README's Install commands: build, copy, and what the ssh line runs on the exit", { skip: skip ?? false }, () => {
  const [build, copy, remote, ...more] = readmeCommands('Install: one file');
  assert.deepEqual(more, [], 'three commands');

  // build: npm ci is CI's own first step; npm run dist is npm run build (which npm test runs) and build-dist.js
  assert.deepEqual(steps(build!), ['npm ci', 'npm run dist']);
  const ci = readFileSync(join(REPO_ROOT, '.ci/run'), 'utf8').split('\n').map((l) => l.trim());
  assert.ok(ci.includes('npm ci'));
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; scripts: Record<string, string> };
  assert.equal(pkg.scripts.dist, 'npm run build && node scripts/build-dist.js');
  ensureBuilt();

  const scp = /^scp (\S+) root@exit:(\/\S+)$/.exec(copy!);
  assert.ok(scp, `scp FILE root@exit:PATH: ${copy}`);
  assert.equal(join(REPO_ROOT, scp[1]!), BUILT, 'the file scp copies is the one npm run dist builds');
  const dest = scp[2]!;
  const unit = readFileSync(join(REPO_ROOT, 'contrib/systemd/tunnelbyte.service'), 'utf8');
  assert.match(unit, new RegExp(`^ExecStart=${dest} serve$`, 'm'), 'the systemd unit starts what the Install section installs');
  const ssh = /^ssh root@exit '([^']+)'$/.exec(remote!);
  assert.ok(ssh, `ssh root@exit 'COMMAND': ${remote}`);

  const binDir = dest.slice(0, dest.lastIndexOf('/'));
  const script = [
    `mount -t tmpfs -o mode=0755,size=512m tb-install ${binDir}`,
    `cp "$1" ${dest}`, // what scp does
    'cd /',
    ssh[1]!, // as the README writes it
    `echo "wg: $(${binDir}/tunnelbyte-wg --version | head -1)"`,
    `echo "link: $(readlink ${binDir}/tunnelbyte-wg)"`,
  ].join('\n');
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', script, 'sh', BUILT], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { PATH: `${binDir}:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: '/root' },
  });
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(readFileSync(BUILD_INFO, 'utf8')) as { version: string; commit: string };
  assert.equal(info.version, pkg.version);
  assert.match(r.stdout, new RegExp(`^tunnelbyte v${pkg.version.replace(/\./g, '\\.')}\\b`, 'm'), `tunnelbyte --version: ${r.stdout}`);
  assert.match(r.stdout, new RegExp(`\\bcommit ${info.commit}\\b`));
  assert.match(r.stdout, /^wg: tunnelbyte-wg /m, 'the symlink answers as tunnelbyte-wg');
  assert.match(r.stdout, /^link: tunnelbyte$/m);
});
