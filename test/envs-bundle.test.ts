/**
 * Bundles: made where the network is (envs over a real local HTTP server),
 * imported into an empty state directory, and the fake cloud run --offline
 * from it without a single request.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as tar from 'tar';
import { parse } from 'yaml';
import { startTarballServer, type TarballServer } from '../fixtures/http-server.js';
import { fakeCloud, leapfrog, remoteChain, tempDir } from './helpers.js';

type Json = Record<string, any>;
let server: TarballServer;
let remote: ReturnType<typeof remoteChain>;
let bundle: string;

before(async () => {
  server = await startTarballServer();
  remote = remoteChain(server);
  bundle = path.join(tempDir('bundle'), 'fakecloud.bundle');
  const r = await leapfrog(['bundle', 'create', '--chain', remote.chain, '-o', bundle]);
  assert.equal(r.exitCode, 0, r.stderr);
});

after(async () => {
  await server.close();
});

test('a bundle imports into an empty state dir and run --offline completes the fake cloud from it, with no request', async () => {
  const listed: string[] = [];
  await tar.t({ file: bundle, onReadEntry: (e) => void listed.push(e.path) });
  assert.ok(listed.includes('bundle.json'));
  assert.ok(listed.includes('chains/fakecloud-remote.yaml'));
  assert.equal(listed.filter((p) => /^tarballs\/[0-9a-f]{64}\.tar\.gz$/.test(p)).length, 12);

  const requestsBefore = server.requests.length;
  const cloud = await fakeCloud({ instances: 20 });
  const to = path.join(cloud.dir, 'imported');
  const cache = path.join(cloud.state, 'envs');
  assert.ok(!existsSync(cloud.state));
  const imp = await leapfrog(['bundle', 'import', bundle, '--state-dir', cloud.state, '--to', to, '--format', 'json']);
  assert.equal(imp.exitCode, 0, imp.stderr);
  const got = JSON.parse(imp.stdout) as Json;
  assert.equal(got.chainFile, path.join(to, 'chains', 'fakecloud-remote.yaml'));
  assert.equal(readdirSync(cache).filter((n) => /^[0-9a-f]{64}$/.test(n)).length, 12);
  // The env files now point at the bundled tarballs, with the same checksums.
  const kilo = parse(readFileSync(path.join(to, 'envs', 'compute-kilo.yaml'), 'utf8')) as Json;
  const original = parse(readFileSync(path.join(remote.envDir, 'compute-kilo.yaml'), 'utf8')) as Json;
  assert.deepEqual(kilo.source, { file: `../tarballs/${original.source.sha256}.tar.gz`, sha256: original.source.sha256 });

  const run = await leapfrog(['run', '--chain', got.chainFile, '--db', cloud.db, '--state-dir', cloud.state, '--offline', '--format', 'json']);
  assert.equal(run.exitCode, 0, run.stderr);
  const r = JSON.parse(run.stdout) as Json;
  assert.equal(r.status, 'succeeded');
  assert.deepEqual(r.versions.compute, { main: 334, api: 20 });
  assert.equal(server.requests.length, requestsBefore, 'offline: no request reached the server');

  const verify = await leapfrog(['envs', 'verify', '--state-dir', cloud.state, '--offline']);
  assert.equal(verify.exitCode, 0, verify.stdout + verify.stderr);
});

test('an altered bundle is refused naming the file and both checksums; nothing is installed or cached', async () => {
  // Rebuild the bundle with one env file changed but bundle.json as it was.
  const work = tempDir('altered');
  const unpacked = path.join(work, 'x');
  mkdirSync(unpacked);
  await tar.x({ file: bundle, cwd: unpacked });
  const envFile = path.join(unpacked, 'envs', 'compute-kilo.yaml');
  writeFileSync(envFile, `${readFileSync(envFile, 'utf8')}vars: { LD_PRELOAD: /tmp/evil.so }\n`.replace(/^vars: \{\}\n/m, ''));
  const altered = path.join(work, 'altered.bundle');
  await tar.c({ file: altered, cwd: unpacked, portable: true }, ['bundle.json', 'chains', 'envs', 'tarballs']);

  const state = path.join(work, 'state');
  const to = path.join(work, 'to');
  const r = await leapfrog(['bundle', 'import', altered, '--state-dir', state, '--to', to]);
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /bundle .*altered\.bundle is damaged or was altered; nothing was installed:\n {2}envs\/compute-kilo\.yaml: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}/);
  assert.ok(!existsSync(to));
  assert.deepEqual(existsSync(path.join(state, 'envs')) ? readdirSync(path.join(state, 'envs')).filter((n) => n !== '.tmp') : [], []);
  assert.deepEqual(readdirSync(work).sort(), ['altered.bundle', 'state', 'x'].filter((n) => existsSync(path.join(work, n))).sort());
});

test('importing over a non-empty directory is refused', async () => {
  const work = tempDir('again');
  const to = path.join(work, 'to');
  mkdirSync(to);
  writeFileSync(path.join(to, 'keep.txt'), 'mine\n');
  const r = await leapfrog(['bundle', 'import', bundle, '--state-dir', path.join(work, 'state'), '--to', to]);
  assert.equal(r.exitCode, 2);
  assert.match(r.stderr, /already exists and is not empty; remove it or choose another --to/);
  assert.equal(readFileSync(path.join(to, 'keep.txt'), 'utf8'), 'mine\n');
});
