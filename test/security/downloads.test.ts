/**
 * Downloads that cannot crash or run away, through the real CLI against the
 * fixtures' HTTP server misbehaving on purpose: a connection closed while the
 * reader lags (undici 7's uncatchable assertion, nodejs/undici#5360), a
 * server that drips bytes forever, bodies larger than --max-env-bytes with
 * and without a Content-Length, redirects (hops, loops, other schemes,
 * credentials across origins), and an interrupted provision or bundle.
 * Every failure exits with one clear message and leaves no temporary file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTarballServer, type TarballServer } from '../../fixtures/http-server.js';
import { fetchToFile } from '../../src/envs/fetch.js';
import { eventually, leapfrog, spawnLeapfrog, tempDir } from '../helpers.js';
import { craft } from './craft.js';
import { cacheEntries, newCase, outside, provision, removeCases, sha256, tmpEntries, useTarball, useUrl, type Case } from './harness.js';

let server: TarballServer;
let other: TarballServer;
let work: string;
let small: string;
let big: string;
let n = 0;

before(async () => {
  server = await startTarballServer();
  other = await startTarballServer();
  work = tempDir('downloads');
  small = craft(path.join(work, 'small.tar.gz'), [{ path: 'bin/', type: 'Directory' }, { path: 'bin/tool', mode: 0o755, body: '#!/bin/sh\necho ok\n' }]);
  // Incompressible and larger than every buffer between the socket and the disk.
  big = craft(path.join(work, 'big.tar.gz'), [{ path: 'bin/tool', mode: 0o755, body: '#!/bin/sh\n' }, { path: 'blob', body: randomBytes(24 * 1024 * 1024) }]);
});

after(async () => {
  await server.close();
  await other.close();
  removeCases();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh name on the main server serving `file`, and a case whose env downloads it. */
function remote(file: string, setup?: (name: string) => void): { c: Case; name: string; url: string } {
  const name = `env-${++n}.tar.gz`;
  server.serve(name, file);
  setup?.(name);
  const c = newCase('dl');
  useUrl(c, server.url(name), sha256(file));
  return { c, name, url: server.url(name) };
}

const requests = (name: string) => server.requests.filter((r) => r.path === name);

async function failsCleanly(c: Case, extra: string[], why: RegExp): Promise<string> {
  const before = outside(c);
  const started = Date.now();
  const r = await provision(c, extra);
  assert.equal(r.exitCode, 2, `exit ${r.exitCode}\n${r.stderr}`);
  assert.match(r.stderr, why);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(cacheEntries(c), []);
  assert.deepEqual(tmpEntries(c), [], 'nothing left in .tmp');
  assert.deepEqual(outside(c), before);
  return `${Date.now() - started}`;
}

describe('downloads', { concurrency: 3 }, () => {
  test('a server that closes the connection right after a large body (undici 7 crashed here): provisions, three times out of three', async () => {
    for (let i = 0; i < 3; i++) {
      const { c, name } = remote(big, (nm) => server.fault(nm, 'close'));
      const r = await provision(c);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /AssertionError|assert\(/);
      assert.deepEqual(cacheEntries(c), [sha256(big)]);
      assert.deepEqual(requests(name).map((x) => x.status), [200]);
      const v = await leapfrog(['envs', 'verify', '--cache-dir', c.cache]);
      assert.equal(v.exitCode, 0, v.stdout + v.stderr);
    }
  });

  test('a reader that lags (2 ms of CPU per chunk) while the server closes after the body: undici 7.30.2 died here with assert(!this.paused); this client completes', async () => {
    const { name, url } = remote(big, (nm) => server.fault(nm, 'close', 'close'));
    for (let i = 0; i < 2; i++) {
      const spool = path.join(work, `lag-${n}-${i}.tar`);
      const got = await fetchToFile(url, spool, {
        onProgress: () => {
          const until = Date.now() + 2;
          while (Date.now() < until);
        },
      });
      assert.equal(got.sha256, sha256(big));
      assert.equal(sha256(spool), sha256(big));
    }
    assert.deepEqual(requests(name).map((x) => x.status), [200, 200]);
  });

  test('a server that drips 64 bytes every 200 ms is given up on at --download-timeout, never idle long enough to time out otherwise', async () => {
    // The deadline ends it, whatever the attempts: on a loaded machine a gap between drips can pass
    // --idle-timeout once and be retried (seen in CI: 192 bytes in 2 attempts).
    const { c } = remote(big, (nm) => server.fault(nm, 'drip', 'drip', 'drip', 'drip', 'drip', 'drip'));
    const ms = Number(await failsCleanly(c, ['--download-timeout', '2', '--idle-timeout', '1'], /download of http:\/\/127\.0\.0\.1:\d+\/env-\d+\.tar\.gz did not finish within 2 s \(\d+ bytes in \d+ attempts?\); the server is too slow or stalled\. Raise --download-timeout/));
    assert.ok(ms < 15_000, `${ms} ms`);
  });

  test('a --download-timeout longer than a timer can hold (24.8 days) is that long, not an error', async () => {
    const { c } = remote(small);
    const r = await provision(c, ['--download-timeout', '100000000']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(cacheEntries(c), [sha256(small)]);
  });

  test('a Content-Length over --max-env-bytes is refused before the body is read', async () => {
    const { c, name } = remote(small);
    server.generate(name, 3_000_000_000);
    const ms = Number(await failsCleanly(c, ['--max-env-bytes', '1000000'], /env-\d+\.tar\.gz: the server says the file is 3000000000 bytes, more than 1000000 bytes \(--max-env-bytes\); nothing was cached/));
    assert.ok(ms < 15_000, `${ms} ms`);
    assert.equal(requests(name).length, 1, 'not retried');
  });

  test('a body without Content-Length is cut off once it passes --max-env-bytes', async () => {
    const { c, name } = remote(small);
    server.generate(name, 2_000_000_000, { length: false });
    const ms = Number(await failsCleanly(c, ['--max-env-bytes', '4000000'], /env-\d+\.tar\.gz: \d+ bytes arrived, more than 4000000 bytes \(--max-env-bytes\)/));
    assert.ok(ms < 15_000, `${ms} ms`);
    assert.equal(requests(name).length, 1, 'not retried');
  });

  test('a local file over --max-env-bytes is refused while it is copied to the spool', async () => {
    const c = newCase('dl');
    useTarball(c, big);
    await failsCleanly(c, ['--max-env-bytes', '1000000'], /env crafted: .*big\.tar\.gz is more than 1000000 bytes \(--max-env-bytes\); nothing was cached/);
  });

  test('redirects are followed and reported, relative and absolute, 301 and 307', async () => {
    const target = `t-${++n}.tar.gz`;
    server.serve(target, small);
    const { c, name } = remote(small, (nm) => {
      server.redirect(nm, `/hop-${nm}`, 301);
      server.redirect(`hop-${nm}`, server.url(target), 307);
    });
    const r = await provision(c);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`env crafted: http://127\\.0\\.0\\.1:\\d+/${name} redirected \\(HTTP 301\\) to http://127\\.0\\.0\\.1:\\d+/hop-${name}`));
    assert.match(r.stderr, new RegExp(`env crafted: http://127\\.0\\.0\\.1:\\d+/hop-${name} redirected \\(HTTP 307\\) to http://127\\.0\\.0\\.1:\\d+/${target}`));
    assert.deepEqual(cacheEntries(c), [sha256(small)]);
  });

  test('more than 5 redirects, and a redirect loop, are refused at once', async () => {
    const { c, name } = remote(small, (nm) => {
      for (let i = 0; i < 6; i++) server.redirect(i === 0 ? nm : `${nm}-${i}`, `/${nm}-${i + 1}`);
    });
    await failsCleanly(c, [], /: more than 5 redirects \(the last to http:\/\/127\.0\.0\.1:\d+\/env-\d+\.tar\.gz-6\); point source\.url at the file itself/);
    assert.equal(requests(name).length, 1, 'not retried');
    const loop = remote(small, (nm) => {
      server.redirect(nm, `/${nm}-b`);
      server.redirect(`${nm}-b`, `/${nm}`);
    });
    await failsCleanly(loop.c, [], /more than 5 redirects/);
  });

  test('a redirect to another scheme (file:, ftp:) is refused', async () => {
    const f = remote(small, (nm) => server.redirect(nm, 'file:///etc/passwd'));
    await failsCleanly(f.c, [], /redirected to file:\/\/\/etc\/passwd: only http and https redirects are followed/);
    const ftp = remote(small, (nm) => server.redirect(nm, 'ftp://127.0.0.1/x.tar.gz'));
    await failsCleanly(ftp.c, [], /redirected to ftp:\/\/127\.0\.0\.1\/x\.tar\.gz: only http and https/);
  });

  test('credentials in the URL go to their own origin only, and are never shown', async () => {
    const target = `cred-${++n}.tar.gz`;
    other.serve(target, small);
    const name = `cred-${++n}.tar.gz`;
    server.redirect(name, other.url(target));
    const c = newCase('dl');
    const url = server.url(name).replace('http://', 'http://user:s3cret-token@');
    useUrl(c, url, sha256(small));
    const r = await provision(c);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(requests(name)[0]!.authorization, `Basic ${Buffer.from('user:s3cret-token').toString('base64')}`);
    const there = other.requests.filter((x) => x.path === target);
    assert.equal(there.length, 1);
    assert.equal(there[0]!.authorization, undefined, 'credentials were sent to another origin');
    assert.ok(!(r.stdout + r.stderr).includes('s3cret-token'), r.stderr);
    assert.match(r.stderr, /http:\/\/\*\*\*\*@127\.0\.0\.1:\d+\/cred-\d+\.tar\.gz redirected/);
  });

  test('a failed provision (404, retries exhausted) leaves nothing in .tmp', async () => {
    const { c } = remote(small, (nm) => server.fault(nm, 'status-404'));
    await failsCleanly(c, [], /answered HTTP 404; check source\.url/);
    const down = remote(small, (nm) => server.fault(nm, 'status-500', 'status-500'));
    await failsCleanly(down.c, ['--retries', '1'], /2 attempts failed, the last with HTTP 500/);
  });

  test('SIGTERM during a download: exit 130, nothing in the cache, nothing in .tmp', async () => {
    const { c, name } = remote(big, (nm) => server.fault(nm, 'drip'));
    const child = spawnLeapfrog(['envs', 'provision', '--chain', c.chain, '--cache-dir', c.cache]);
    await eventually('the download to start', () => (requests(name).length > 0 && tmpEntries(c).length > 0 ? true : undefined));
    child.kill('SIGTERM');
    const r = await child;
    assert.equal(r.exitCode, 130, String(r.stderr));
    assert.match(String(r.stderr), /SIGTERM: stopping/);
    assert.deepEqual(cacheEntries(c), []);
    assert.deepEqual(tmpEntries(c), []);
  });

  test('bundle create: a failed download and a SIGTERM both leave nothing beside the output', async () => {
    const { c } = remote(small, (nm) => server.fault(nm, 'status-404'));
    const out = path.join(tempDir('bundle-out'), 'b.bundle');
    writeFileSync(path.join(path.dirname(out), 'keep'), 'x');
    const r = await leapfrog(['bundle', 'create', '--chain', c.chain, '-o', out]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /answered HTTP 404/);
    assert.deepEqual(readdirSync(path.dirname(out)), ['keep']);

    const slow = remote(big, (nm) => server.fault(nm, 'drip'));
    const child = spawnLeapfrog(['bundle', 'create', '--chain', slow.c.chain, '-o', out]);
    await eventually('the download to start', () => (requests(slow.name).length > 0 ? true : undefined));
    child.kill('SIGTERM');
    const k = await child;
    assert.equal(k.exitCode, 130, String(k.stderr));
    assert.deepEqual(readdirSync(path.dirname(out)), ['keep']);
    assert.ok(!existsSync(out));
  });
});
