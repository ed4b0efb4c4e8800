/**
 * The content-addressed env cache with real tarballs made by the tar package.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import * as tar from 'tar';
import type { EnvDef } from '../src/chain/types.js';
import { LeapfrogError } from '../src/errors.js';
import { MANIFEST } from '../src/envs/extract.js';
import { defaultSource, envRoot, provisionEnv, type TarballSource } from '../src/envs/store.js';
import { tempDir } from './helpers.js';

let work: string;
let tarball: string;
let sha: string;

before(async () => {
  work = tempDir('store');
  const src = path.join(work, 'src');
  mkdirSync(path.join(src, 'bin'), { recursive: true });
  mkdirSync(path.join(src, 'lib', 'migrations'), { recursive: true });
  writeFileSync(path.join(src, 'bin', 'compute-manage'), '#!/bin/sh\necho "compute-manage kilo $*"\n');
  chmodSync(path.join(src, 'bin', 'compute-manage'), 0o755);
  for (let i = 255; i <= 290; i++) writeFileSync(path.join(src, 'lib', 'migrations', `${i}.sql`), `-- migration ${i}\nSELECT ${i};\n`);
  tarball = path.join(work, 'compute-kilo.tar.gz');
  await tar.c({ gzip: true, file: tarball, cwd: src, portable: true }, ['bin', 'lib']);
  sha = sha256(tarball);
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function env(over: { sha256?: string; location?: string } = {}): EnvDef {
  return {
    name: 'compute-kilo',
    file: path.join(work, 'envs', 'compute-kilo.yaml'),
    source: { kind: 'file', location: over.location ?? tarball, sha256: over.sha256 ?? sha },
    path: ['bin'],
    vars: {},
  };
}

const neverRead: TarballSource = async () => {
  throw new Error('the source was read although the env is cached');
};

/** Every file under dir, relative, sorted, with its content. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.name === MANIFEST) continue;
      if (e.isDirectory()) walk(full);
      else out[path.relative(dir, full)] = readFileSync(full, 'utf8');
    }
  };
  walk(dir);
  return out;
}

function assertIntact(root: string): void {
  const files = tree(root);
  assert.equal(Object.keys(files).length, 1 + 36);
  assert.equal(files['bin/compute-manage'], '#!/bin/sh\necho "compute-manage kilo $*"\n');
  assert.equal(files['lib/migrations/290.sql'], '-- migration 290\nSELECT 290;\n');
}

/** The cache holds exactly these entries, and nothing is left half-unpacked. */
function assertCache(cache: string, entries: string[]): void {
  const names = existsSync(cache) ? readdirSync(cache).filter((n) => n !== '.tmp' && n !== '.tarballs') : [];
  assert.deepEqual(names.sort(), [...entries].sort());
  // The verified tarball of each entry is kept beside it (bundle create copies it), and only theirs.
  const kept = path.join(cache, '.tarballs');
  assert.deepEqual(existsSync(kept) ? readdirSync(kept).sort() : [], [...entries].sort(), 'kept tarballs');
  const tmp = path.join(cache, '.tmp');
  assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], [], 'leftovers in .tmp');
}

test('a tarball unpacks into <cache>/<sha256>, executables and all', async () => {
  const cache = path.join(work, 'cache-1');
  const p = await provisionEnv(env(), cache);
  assert.equal(p.cached, false);
  assert.equal(p.sha256, sha);
  assert.equal(p.root, path.join(cache, sha));
  assert.equal(p.root, envRoot(cache, sha));
  assertIntact(p.root);
  assertCache(cache, [sha]);
  const tool = await execa(path.join(p.root, 'bin', 'compute-manage'), ['db', 'version']);
  assert.equal(tool.stdout, 'compute-manage kilo db version');

  const again = await provisionEnv(env(), cache, { source: neverRead });
  assert.equal(again.cached, true);
  assert.equal(again.root, p.root);
  assertIntact(again.root);
});

test('a wrong sha256 is refused, naming both checksums, and nothing is cached', async () => {
  const cache = path.join(work, 'cache-2');
  const wrong = '0'.repeat(64);
  await assert.rejects(provisionEnv(env({ sha256: wrong }), cache), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError, String(err));
    assert.equal(err.kind, 'input');
    assert.ok(err.message.includes(wrong), err.message);
    assert.ok(err.message.includes(sha), err.message);
    assert.ok(err.message.includes('compute-kilo'), err.message);
    return true;
  });
  assertCache(cache, []);
  // And the right checksum still provisions afterwards.
  const p = await provisionEnv(env(), cache);
  assert.equal(p.cached, false);
  assertIntact(p.root);
});

test('a file that is not a tarball is refused, and nothing is cached', async () => {
  const cache = path.join(work, 'cache-3');
  const junk = path.join(work, 'junk.tar.gz');
  writeFileSync(junk, 'not a tarball at all\n'.repeat(100));
  await assert.rejects(provisionEnv(env({ location: junk, sha256: sha256(junk) }), cache), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError, String(err));
    assert.equal(err.kind, 'input');
    assert.ok(err.message.includes(junk), err.message);
    return true;
  });
  assertCache(cache, []);
});

test('a truncated tarball is refused as a checksum mismatch, and nothing is cached', async () => {
  const cache = path.join(work, 'cache-4');
  const bytes = readFileSync(tarball);
  const cut = path.join(work, 'truncated.tar.gz');
  writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await assert.rejects(provisionEnv(env({ location: cut }), cache), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError, String(err));
    assert.equal(err.kind, 'input');
    assert.match(err.message, /checksum mismatch/);
    assert.ok(err.message.includes(sha), err.message);
    assert.ok(err.message.includes(sha256(cut)), err.message);
    return true;
  });
  assertCache(cache, []);
});

test('a missing source file is an input error naming it', async () => {
  const cache = path.join(work, 'cache-5');
  const missing = path.join(work, 'nowhere.tar.gz');
  await assert.rejects(provisionEnv(env({ location: missing }), cache), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError, String(err));
    assert.equal(err.kind, 'input');
    assert.ok(err.message.includes(missing), err.message);
    return true;
  });
  assertCache(cache, []);
});

test('a tarball with entries escaping its root writes nothing outside the cache entry', async () => {
  const cache = path.join(work, 'cache-6');
  mkdirSync(cache);
  const evilDir = path.join(work, 'evil', 'inside');
  mkdirSync(evilDir, { recursive: true });
  writeFileSync(path.join(work, 'evil', 'escape.txt'), 'escaped\n');
  writeFileSync(path.join(evilDir, 'ok.txt'), 'ok\n');
  const evil = path.join(work, 'evil.tar.gz');
  await tar.c({ gzip: true, file: evil, cwd: evilDir, preservePaths: true }, ['ok.txt', '../escape.txt']);
  const before = readdirSync(work).sort();
  await provisionEnv(env({ location: evil, sha256: sha256(evil) }), cache).then(
    (p) => assert.ok(!existsSync(path.join(p.root, '..', 'escape.txt'))),
    (err: unknown) => assert.ok(err instanceof LeapfrogError, String(err)),
  );
  assert.ok(!existsSync(path.join(cache, 'escape.txt')));
  assert.ok(!existsSync(path.join(cache, '.tmp', 'escape.txt')));
  assert.deepEqual(readdirSync(work).sort(), before);
  assert.deepEqual(existsSync(path.join(cache, '.tmp')) ? readdirSync(path.join(cache, '.tmp')) : [], []);
});

test('8 concurrent provisions of one env all succeed and leave one intact tree', async () => {
  const cache = path.join(work, 'cache-7');
  let reads = 0;
  const counting: TarballSource = async (e, spool, o) => {
    reads++;
    return defaultSource(e, spool, o);
  };
  const all = await Promise.all(Array.from({ length: 8 }, () => provisionEnv(env(), cache, { source: counting })));
  for (const p of all) {
    assert.equal(p.root, path.join(cache, sha));
    assert.equal(p.sha256, sha);
  }
  assert.ok(reads >= 1);
  assertCache(cache, [sha]);
  assertIntact(path.join(cache, sha));
  assert.ok(statSync(path.join(cache, sha, 'bin', 'compute-manage')).mode & 0o100, 'still executable');
});

test('8 processes provisioning one env at once all succeed and leave one intact tree', async () => {
  const cache = path.join(work, 'cache-8');
  const store = new URL('../src/envs/store.js', import.meta.url).href;
  const at = Date.now() + 1_500;
  const script = `
    const { provisionEnv } = await import(${JSON.stringify(store)});
    while (Date.now() < ${at}) {}
    const p = await provisionEnv(${JSON.stringify(env())}, ${JSON.stringify(cache)});
    process.stdout.write(p.root);
  `;
  const results = await Promise.all(
    Array.from({ length: 8 }, () => execa(process.execPath, ['--input-type=module', '-e', script], { reject: false })),
  );
  for (const r of results) {
    assert.equal(r.exitCode, 0, String(r.stderr));
    assert.equal(r.stdout, path.join(cache, sha));
  }
  assertCache(cache, [sha]);
  assertIntact(path.join(cache, sha));
});
