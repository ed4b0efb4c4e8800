/**
 * `leapfrog envs list|verify|gc|provision` and `--offline`, through the real
 * CLI, with the fake cloud's envs served by a real local HTTP server.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startTarballServer, type TarballServer } from '../fixtures/http-server.js';
import { fakeCloud, leapfrog, remoteChain, tempDir } from './helpers.js';

type Json = Record<string, any>;
let server: TarballServer;
let remote: ReturnType<typeof remoteChain>;
const ENV_COUNT = 12; // the envs the fake-cloud chain uses (image-ocata is not one of them)

before(async () => {
  server = await startTarballServer();
  remote = remoteChain(server);
});

after(async () => {
  await server.close();
});

const entries = (cache: string) => (existsSync(cache) ? readdirSync(cache).filter((n) => /^[0-9a-f]{64}$/.test(n)) : []);

test('envs provision fetches all a chain needs; list shows size and users; a second provision is all cached', async () => {
  const cache = tempDir('cache');
  const r = await leapfrog(['envs', 'provision', '--chain', remote.chain, '--cache-dir', cache, '--parallel', '3']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${ENV_COUNT} envs ready in`));
  assert.match(r.stderr, /env compute-kilo: downloading/);
  assert.equal(entries(cache).length, ENV_COUNT);

  const list = await leapfrog(['envs', 'list', '--chain', remote.chain, '--cache-dir', cache, '--format', 'json']);
  assert.equal(list.exitCode, 0, list.stderr);
  const l = JSON.parse(list.stdout) as Json;
  assert.equal(l.entries.length, ENV_COUNT);
  const kilo = l.entries.find((e: Json) => e.env === 'compute-kilo');
  assert.deepEqual(kilo.usedBy, ['fakecloud-remote:compute-kilo']);
  assert.ok(kilo.bytes > 0 && kilo.files > 0);
  assert.deepEqual(l.missing, []);

  const text = await leapfrog(['envs', 'list', '--chain', remote.chain, '--cache-dir', cache]);
  assert.match(text.stdout, /compute-kilo .*fakecloud-remote:compute-kilo/);

  const before = server.requests.length;
  const again = await leapfrog(['envs', 'provision', '--chain', remote.chain, '--cache-dir', cache, '--offline', '--format', 'json']);
  assert.equal(again.exitCode, 0, again.stderr);
  assert.ok((JSON.parse(again.stdout) as Json).envs.every((e: Json) => e.cached));
  assert.equal(server.requests.length, before, 'nothing fetched');
});

test('8 processes provisioning the same chain at once: all succeed, one intact copy of each env', async () => {
  const cache = tempDir('cache8');
  const rs = await Promise.all(Array.from({ length: 8 }, () => leapfrog(['envs', 'provision', '--chain', remote.chain, '--cache-dir', cache])));
  for (const r of rs) assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(entries(cache).length, ENV_COUNT);
  assert.deepEqual(readdirSync(path.join(cache, '.tmp')), []);
  const v = await leapfrog(['envs', 'verify', '--cache-dir', cache]);
  assert.equal(v.exitCode, 0, v.stdout + v.stderr);
  assert.equal(v.stdout.split('\n').filter((x) => x.startsWith('ok')).length, ENV_COUNT);
});

test('envs verify names the env and file that changed after unpacking; gc keeps what a chain uses, unless it changed', async () => {
  const cache = tempDir('cache-v');
  assert.equal((await leapfrog(['envs', 'provision', '--chain', remote.chain, '--cache-dir', cache])).exitCode, 0);
  const list = JSON.parse((await leapfrog(['envs', 'list', '--cache-dir', cache, '--format', 'json'])).stdout) as Json;
  const kilo = list.entries.find((e: Json) => e.env === 'compute-kilo');
  const tool = path.join(cache, kilo.sha256, 'bin', 'compute-manage');
  appendFileSync(tool, '\necho pwned\n');
  const v = await leapfrog(['envs', 'verify', '--cache-dir', cache]);
  assert.equal(v.exitCode, 3, v.stdout + v.stderr);
  assert.match(v.stdout, /TAMPERED {2}[0-9a-f]{12} compute-kilo\n {4}bin\/compute-manage: content changed/);
  assert.match(v.stderr, /1 of 12 cached envs changed since they were unpacked: compute-kilo/);

  // gc needs to be told what counts.
  const bare = await leapfrog(['envs', 'gc', '--cache-dir', cache]);
  assert.equal(bare.exitCode, 2);
  assert.match(bare.stderr, /needs --chain\/--chains .* or --older-than DAYS/);

  // A chain that uses nothing of this cache: gc --dry-run would remove all, and removes nothing.
  const otherDir = tempDir('chains');
  const dry = await leapfrog(['envs', 'gc', '--chains', otherDir, '--cache-dir', cache, '--dry-run']);
  assert.equal(dry.exitCode, 0, dry.stderr);
  assert.equal(dry.stdout.split('\n').filter((x) => x.startsWith('would remove')).length, ENV_COUNT);
  assert.equal(entries(cache).length, ENV_COUNT);

  // Keeping the chain's envs: only the changed one goes, although the chain uses it (no run may use it);
  // older than 0 days without chains: all go.
  const keep = await leapfrog(['envs', 'gc', '--chain', remote.chain, '--cache-dir', cache]);
  assert.equal(keep.exitCode, 0, keep.stderr);
  assert.equal(keep.stdout.split('\n').filter((x) => x.startsWith('kept')).length, ENV_COUNT - 1);
  assert.match(keep.stdout, /kept {2}[0-9a-f]{12} compute-liberty: used by fakecloud-remote:compute-liberty/);
  assert.match(keep.stdout, /removed {2}[0-9a-f]{12} compute-kilo: changed since it was unpacked: bin\/compute-manage: size/);
  const old = await leapfrog(['envs', 'gc', '--older-than', '0', '--cache-dir', cache]);
  assert.equal(old.exitCode, 0, old.stderr);
  assert.deepEqual(entries(cache), []);
  assert.deepEqual(readdirSync(path.join(cache, '.tmp')), []);
});

test('run --offline with an env not cached: an error naming the env and the command that provisions it, and no request', async () => {
  const cloud = await fakeCloud({ instances: 5 });
  const cache = tempDir('cache-off');
  const before = server.requests.length;
  const r = await leapfrog(['run', '--chain', remote.chain, '--db', cloud.db, '--state-dir', cloud.state, '--cache-dir', cache, '--offline']);
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, /leapfrog: 12 envs are not in the cache and --offline forbids downloading them: compute-kilo, identity-kilo, image-kilo, .*compute-newton/);
  assert.ok(r.stderr.includes(`leapfrog envs provision --chain ${remote.chain}`), r.stderr);
  assert.equal(server.requests.length, before);
  assert.equal(r.stderr.split('\n').filter((l) => l.includes('envs provision')).length, 1, 'the hint is given once');
});

test('envs provision with a bad flag or no chain says what is wrong', async () => {
  const noChain = await leapfrog(['envs', 'provision', '--cache-dir', tempDir('c')]);
  assert.equal(noChain.exitCode, 2);
  assert.match(noChain.stderr, /envs provision needs --chain FILE/);
  const bad = await leapfrog(['envs', 'provision', '--chain', remote.chain, '--cache-dir', tempDir('c'), '--idle-timeout', '0']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /--idle-timeout 0: must be a number of seconds, greater than 0/);
});
