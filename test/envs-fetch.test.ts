/**
 * Remote env sources against a real local HTTP server that misbehaves on
 * demand: every case ends in a verified env or a clear error, never in a
 * corrupt cache entry.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as tar from 'tar';
import type { EnvDef } from '../src/chain/types.js';
import { LeapfrogError } from '../src/errors.js';
import { MANIFEST } from '../src/envs/extract.js';
import type { FetchOptions } from '../src/envs/fetch.js';
import { provisionEnv } from '../src/envs/store.js';
import { startTarballServer, type Fault, type TarballServer } from '../fixtures/http-server.js';
import { tempDir } from './helpers.js';

let work: string;
let tarball: string;
let sha: string;
let payload: Buffer;
let server: TarballServer;
let n = 0;

const FAST: Partial<FetchOptions> = { retries: 3, backoffMs: 10, idleTimeoutMs: 400, connectTimeoutMs: 1_000 };

before(async () => {
  work = tempDir('fetch');
  const src = path.join(work, 'src');
  mkdirSync(path.join(src, 'bin'), { recursive: true });
  // Incompressible, so "half the bytes" is a real half of the tarball.
  payload = randomBytes(256 * 1024);
  writeFileSync(path.join(src, 'bin', 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  writeFileSync(path.join(src, 'blob'), payload);
  tarball = path.join(work, 'env.tar.gz');
  await tar.c({ gzip: true, file: tarball, cwd: src, portable: true }, ['bin', 'blob']);
  sha = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  server = await startTarballServer();
});

after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh name on the server (so fault queues and request logs don't mix), its env, and a fresh cache. */
function setup(...faults: Fault[]) {
  const name = `env-${++n}.tar.gz`;
  server.serve(name, tarball);
  server.fault(name, ...faults);
  const env: EnvDef = { name: 'remote-env', file: path.join(work, 'envs', 'remote-env.yaml'), source: { kind: 'url', location: server.url(name), sha256: sha }, path: ['bin'], vars: {} };
  const cache = path.join(work, `cache-${n}`);
  return { env, cache, requests: () => server.requests.filter((r) => r.path === name) };
}

function assertVerified(root: string): void {
  assert.deepEqual(readFileSync(path.join(root, 'blob')), payload);
  assert.equal(readFileSync(path.join(root, 'bin', 'tool'), 'utf8'), '#!/bin/sh\necho tool\n');
  assert.ok(existsSync(path.join(root, MANIFEST)));
}

function assertCache(cache: string, entries: string[]): void {
  const names = existsSync(cache) ? readdirSync(cache).filter((x) => x !== '.tmp' && x !== '.tarballs') : [];
  assert.deepEqual(names, entries);
  // The verified tarball of each entry is kept beside it (bundle create copies it), and only theirs.
  const kept = path.join(cache, '.tarballs');
  assert.deepEqual(existsSync(kept) ? readdirSync(kept).sort() : [], [...entries].sort(), 'kept tarballs');
  const tmp = path.join(cache, '.tmp');
  assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], [], 'leftovers in .tmp');
}

test('a url source downloads, verifies and unpacks; progress counts every byte', async () => {
  const { env, cache, requests } = setup();
  const seen: number[] = [];
  const p = await provisionEnv(env, cache, { fetch: FAST, onProgress: (_e, pr) => seen.push(pr.bytes) });
  assert.equal(p.cached, false);
  assertVerified(p.root);
  assertCache(cache, [sha]);
  assert.equal(seen.at(-1), readFileSync(tarball).length);
  assert.deepEqual(requests().map((r) => r.status), [200]);
});

test('a connection dropped halfway resumes with a Range request', async () => {
  const { env, cache, requests } = setup('drop-half');
  const p = await provisionEnv(env, cache, { fetch: FAST });
  assertVerified(p.root);
  const r = requests();
  assert.deepEqual(r.map((x) => x.status), [200, 206]);
  assert.match(r[1]!.range ?? '', /^bytes=[1-9]\d*-$/);
  assertCache(cache, [sha]);
});

test('500 then 200: retried after a backoff', async () => {
  const { env, cache, requests } = setup('status-500', 'status-500');
  const p = await provisionEnv(env, cache, { fetch: FAST });
  assertVerified(p.root);
  assert.deepEqual(requests().map((x) => x.status), [500, 500, 200]);
});

test('a Content-Length longer than the body: the resume finds nothing (or little) missing and the checksum decides', async () => {
  const { env, cache, requests } = setup('long-length');
  const p = await provisionEnv(env, cache, { fetch: FAST });
  assertVerified(p.root);
  // The resume asks from what is on disk: 416 when every byte had landed before
  // the short body was noticed, 206 for the rest when the last chunk had not.
  const statuses = requests().map((x) => x.status);
  assert.equal(statuses[0], 200);
  assert.ok(statuses.length === 2 && (statuses[1] === 416 || statuses[1] === 206), JSON.stringify(statuses));
});

test('a stalled transfer hits the idle timeout and is resumed', async () => {
  const { env, cache, requests } = setup('stall');
  const started = Date.now();
  const p = await provisionEnv(env, cache, { fetch: FAST });
  assertVerified(p.root);
  assert.deepEqual(requests().map((x) => x.status), [200, 206]);
  assert.ok(Date.now() - started < 5_000);
});

test('a server that ignores Range sends the whole file again, and it is not spliced', async () => {
  const { env, cache, requests } = setup('drop-half', 'ignore-range');
  const p = await provisionEnv(env, cache, { fetch: FAST });
  assertVerified(p.root);
  assert.deepEqual(requests().map((x) => x.status), [200, 200]);
});

test('a 206 that does not start where we stopped is discarded and the download starts afresh', async () => {
  const { env, cache, requests } = setup('drop-half', 'wrong-range');
  const p = await provisionEnv(env, cache, { fetch: FAST });
  assertVerified(p.root);
  const r = requests();
  assert.deepEqual(r.map((x) => x.status), [200, 206, 200]);
  assert.equal(r[2]!.range, undefined);
});

test('a body shorter than the tarball (wrong Content-Length) is a checksum mismatch naming both sums; nothing cached', async () => {
  const { env, cache } = setup('short-length');
  await assert.rejects(provisionEnv(env, cache, { fetch: FAST }), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError, String(err));
    assert.match(err.message, /checksum mismatch/);
    assert.ok(err.message.includes(sha), err.message);
    assert.match(err.message, /got [0-9a-f]{64}/);
    return true;
  });
  assertCache(cache, []);
});

test('a wrong sha256 over HTTP: expected and actual in the error, nothing cached', async () => {
  const { env, cache } = setup();
  const wrong = 'f'.repeat(64);
  await assert.rejects(provisionEnv({ ...env, source: { ...env.source, sha256: wrong } }, cache, { fetch: FAST }), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError);
    assert.ok(err.message.includes(wrong) && err.message.includes(sha), err.message);
    return true;
  });
  assertCache(cache, []);
});

test('404 is an answer, not an accident: no retries, the error names the URL', async () => {
  const { env, cache, requests } = setup('status-404');
  await assert.rejects(provisionEnv(env, cache, { fetch: FAST }), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError);
    assert.equal(err.kind, 'input');
    assert.ok(err.message.includes(env.source.location) && err.message.includes('404'), err.message);
    return true;
  });
  assert.equal(requests().length, 1);
  assertCache(cache, []);
});

test('a server that keeps failing: every retry used, one clear error, nothing cached', async () => {
  const { env, cache, requests } = setup('status-500', 'status-500', 'status-500', 'status-500', 'status-500');
  await assert.rejects(provisionEnv(env, cache, { fetch: FAST }), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError);
    assert.match(err.message, /4 attempts failed, the last with HTTP 500/);
    return true;
  });
  assert.equal(requests().length, 4);
  assertCache(cache, []);
});

test('nothing listening: connection errors are retried, then reported', async () => {
  const env: EnvDef = { name: 'remote-env', file: 'remote-env.yaml', source: { kind: 'url', location: 'http://127.0.0.1:1/x.tar.gz', sha256: sha }, path: ['bin'], vars: {} };
  const cache = path.join(work, 'cache-refused');
  await assert.rejects(provisionEnv(env, cache, { fetch: FAST }), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError);
    assert.match(err.message, /cannot download http:\/\/127\.0\.0\.1:1\/x\.tar\.gz: 4 attempts failed/);
    return true;
  });
  assertCache(cache, []);
});

test('--offline: an uncached url env is an error naming the env and the provisioning command, and no request is made', async () => {
  const { env, cache, requests } = setup();
  await assert.rejects(provisionEnv(env, cache, { offline: true, provisionHint: 'leapfrog envs provision --chain chains/x.yaml' }), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError);
    assert.match(err.message, /env remote-env is not in the cache/);
    assert.ok(err.message.includes('leapfrog envs provision --chain chains/x.yaml'), err.message);
    return true;
  });
  assert.equal(requests().length, 0);
  // Once cached, offline is fine.
  await provisionEnv(env, cache, { fetch: FAST });
  const again = await provisionEnv(env, cache, { offline: true });
  assert.equal(again.cached, true);
});

test('8 concurrent provisions of one env over HTTP end with one intact copy', async () => {
  const { env, cache } = setup('drop-half', 'status-500');
  const all = await Promise.all(Array.from({ length: 8 }, () => provisionEnv(env, cache, { fetch: FAST })));
  for (const p of all) assert.equal(p.root, path.join(cache, sha));
  assertCache(cache, [sha]);
  assertVerified(path.join(cache, sha));
});
