// The proxy command's own input: --socks/--http addresses and --user with
// TB_PROXY_PASSWORD (the password never from the command line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseListenAddress, proxyCredentials } from '../../src/cli/proxy-command.js';
import { CliError } from '../../src/cli/customer/errors.js';

test('--socks/--http take HOST:PORT with an IP (or localhost), [v6]:PORT, port 0 for any', () => {
  assert.deepEqual(parseListenAddress('--socks', '127.0.0.1:1080'), { host: '127.0.0.1', port: 1080 });
  assert.deepEqual(parseListenAddress('--socks', '[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseListenAddress('--http', 'localhost:3128'), { host: 'localhost', port: 3128 });
  for (const bad of ['1080', '127.0.0.1', '127.0.0.1:65536', 'example.com:80', '::1:80', '[127.0.0.1]:80', '[::1]:', ':80', '127.0.0.1:-1']) {
    assert.throws(() => parseListenAddress('--socks', bad), (e: unknown) => e instanceof CliError && /^--socks: not HOST:PORT/.test(e.message), bad);
  }
});

test('--user needs TB_PROXY_PASSWORD; without --user no credentials', () => {
  assert.equal(proxyCredentials({ socks: '127.0.0.1:1080' }, {}), undefined);
  assert.deepEqual(proxyCredentials({ socks: '127.0.0.1:1080', user: 'ann' }, { TB_PROXY_PASSWORD: 'pw' }), { user: 'ann', password: 'pw' });
  assert.throws(() => proxyCredentials({ socks: false, user: 'ann' }, {}), /--user needs a password in TB_PROXY_PASSWORD/);
});
