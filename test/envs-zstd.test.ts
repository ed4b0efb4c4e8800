/**
 * zstd env tarballs end to end, through the real CLI: a .tar.zst served by
 * the real local HTTP server provisions to the same tree as the .tar.gz of
 * the same tar; `envs build` writes a .tar.zst by default, the same bytes
 * for the same tree; and `bundle create` takes the cache's kept, verified
 * tarballs instead of downloading them again (unless one was altered).
 * The refusals of crafted .tar.zst files are in test/security/.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as tar from 'tar';
import { parse, stringify } from 'yaml';
import { startTarballServer, type TarballServer } from '../fixtures/http-server.js';
import { leapfrog, remoteChain, tempDir } from './helpers.js';
import { sha256, snapshot } from './security/harness.js';

type Json = Record<string, any>;
let server: TarballServer;
let work: string;

before(async () => {
  server = await startTarballServer();
  work = tempDir('zstd');
});

after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

/** A one-env chain whose env is `source`, in `dir`. */
function chainFor(dir: string, source: Json): string {
  mkdirSync(path.join(dir, 'envs'), { recursive: true });
  mkdirSync(path.join(dir, 'chains'), { recursive: true });
  writeFileSync(path.join(dir, 'envs', 'z.yaml'), stringify({ env: 'z', source, path: ['bin'] }));
  const chain = path.join(dir, 'chains', 'z.yaml');
  writeFileSync(chain, stringify({ chain: 'z', projects: { p: { databases: { main: 'p' }, version: { main: 'sqlalchemy-migrate' }, start: { main: 1 } } }, releases: [{ release: 'r1', env: 'z', steps: [{ project: 'p', sync: ['true'], expect: { main: 2 } }] }] }));
  return chain;
}

/** A small tree with what an env holds: files of several sizes (one over the writer's 4 MiB), modes, a symlink, a hard link. */
function tree(dir: string): string {
  const src = path.join(dir, 'src');
  mkdirSync(path.join(src, 'bin'), { recursive: true });
  mkdirSync(path.join(src, 'lib', 'pkg'), { recursive: true });
  writeFileSync(path.join(src, 'bin', 'tool'), '#!/bin/sh\necho zstd\n', { mode: 0o755 });
  for (let i = 0; i < 300; i++) writeFileSync(path.join(src, 'lib', 'pkg', `m${i}.py`), `x = ${i}\n`.repeat(i * 7));
  writeFileSync(path.join(src, 'lib', 'big.so'), Buffer.alloc(6 * 1024 * 1024, 'z'));
  symlinkSync('pkg/m1.py', path.join(src, 'lib', 'link.py'));
  execFileSync('ln', [path.join(src, 'bin', 'tool'), path.join(src, 'bin', 'tool2')]);
  return src;
}

test('a .tar.zst over HTTP provisions to the same tree as the .tar.gz of the same tar; its verified tarball is kept', async () => {
  const dir = path.join(work, 'http');
  const src = tree(dir);
  const plain = path.join(dir, 'env.tar');
  await tar.c({ file: plain, cwd: src, portable: true }, ['bin', 'lib']);
  execFileSync('sh', ['-c', 'gzip -n -c "$1" > "$1.gz" && zstd -q -c "$1" > "$1.zst"', 'sh', plain]);
  const trees: Record<string, string>[] = [];
  for (const kind of ['gz', 'zst']) {
    const file = `${plain}.${kind}`;
    server.serve(`env.tar.${kind}`, file);
    const cache = path.join(dir, `cache-${kind}`);
    const chain = chainFor(path.join(dir, kind), { url: server.url(`env.tar.${kind}`), sha256: sha256(file) });
    const r = await leapfrog(['envs', 'provision', '--chain', chain, '--cache-dir', cache]);
    assert.equal(r.exitCode, 0, r.stderr);
    const root = path.join(cache, sha256(file));
    assert.equal(readFileSync(path.join(root, 'bin', 'tool'), 'utf8'), '#!/bin/sh\necho zstd\n');
    // What was downloaded, hashed and unpacked is kept, byte for byte; nothing else is left.
    assert.deepEqual(readFileSync(path.join(cache, '.tarballs', sha256(file))), readFileSync(file));
    assert.deepEqual(readdirSync(path.join(cache, '.tmp')), []);
    const v = await leapfrog(['envs', 'verify', '--cache-dir', cache]);
    assert.equal(v.exitCode, 0, v.stdout + v.stderr);
    // Directories carry no mtime in a portable tar: theirs is when they were unpacked.
    trees.push(Object.fromEntries(Object.entries(snapshot(root, (full) => full.endsWith('.leapfrog-manifest.json'))).map(([k, v]) => [k, v.startsWith('dir ') ? v.split(' ').slice(0, 2).join(' ') : v])));
  }
  assert.ok(Object.keys(trees[0]!).length > 300);
  assert.deepEqual(trees[1], trees[0], 'the .tar.zst unpacks exactly as the .tar.gz');
});

test('a corrupt .tar.zst: refused with what zstd (or the tar parser, when zstd wrote garbage first) said, nothing cached', async () => {
  const dir = path.join(work, 'corrupt');
  mkdirSync(dir, { recursive: true });
  const raw = execFileSync('sh', ['-c', 'head -c 300000 /dev/urandom | zstd -q -c'], { maxBuffer: 1 << 24 });
  const cases: [string, Buffer, RegExp][] = [
    // A reserved bit of the frame header descriptor set (RFC 8878 §3.1.1.1.1): zstd refuses before writing a byte.
    ['header', Buffer.concat([raw.subarray(0, 4), Buffer.from([raw[4]! | 0x08]), raw.subarray(5)]), /\(not a readable zstd stream \(zstd exited 1: .*Unsupported frame parameter/],
    // The frame header kept, the blocks scrambled: whichever notices first.
    ['blocks', Buffer.concat([raw.subarray(0, 16), Buffer.alloc(raw.length - 16, 0xa5)]), /\((not a readable zstd stream|invalid base256|.*(checksum|header|Truncated|truncated))/],
  ];
  for (const [name, bytes, why] of cases) {
    const f = path.join(dir, `${name}.tar.zst`);
    writeFileSync(f, bytes);
    server.serve(`${name}.tar.zst`, f);
    const cache = path.join(dir, `cache-${name}`);
    const r = await leapfrog(['envs', 'provision', '--chain', chainFor(path.join(dir, name), { url: server.url(`${name}.tar.zst`), sha256: sha256(f) }), '--cache-dir', cache]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /is not a tar, tar\.gz or tar\.zst leapfrog can unpack/);
    assert.match(r.stderr, why);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.deepEqual(readdirSync(cache).filter((n) => n !== '.tmp'), []);
    assert.deepEqual(readdirSync(path.join(cache, '.tmp')), []);
  }
});

test('envs build writes NAME.tar.zst by default, the same bytes for the same tree, and NAME.tar.gz with --compression gzip', async () => {
  const dir = path.join(work, 'build');
  const src = tree(dir);
  const build = (out: string, ...extra: string[]) => leapfrog(['envs', 'build', '--dir', src, '--name', 'z', '--out', path.join(dir, out), '--format', 'json', ...extra], { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } as Record<string, string> });
  const one = await build('one');
  const two = await build('two');
  const gz = await build('gz', '--compression', 'gzip');
  for (const r of [one, two, gz]) assert.equal(r.exitCode, 0, r.stderr);
  const [a, b, g] = [one, two, gz].map((r) => JSON.parse(r.stdout) as Json);
  assert.equal(a!.tarball, path.join(dir, 'one', 'z.tar.zst'));
  assert.equal(readFileSync(a!.tarball).readUInt32LE(0), 0xfd2fb528, 'a zstd frame');
  assert.equal(a!.sha256, b!.sha256, 'deterministic');
  assert.equal(a!.sha256, sha256(a!.tarball));
  assert.deepEqual((parse(readFileSync(a!.envFile, 'utf8')) as Json).source, { file: 'z.tar.zst', sha256: a!.sha256 });
  assert.equal(g!.tarball, path.join(dir, 'gz', 'z.tar.gz'));
  assert.equal(readFileSync(g!.tarball)[0], 0x1f);
  // The same tar inside both.
  assert.deepEqual(execFileSync('zstd', ['-d', '-c', a!.tarball], { maxBuffer: 1 << 26 }), execFileSync('gzip', ['-d', '-c', g!.tarball], { maxBuffer: 1 << 26 }));
  assert.ok(!readdirSync(path.join(dir, 'one')).some((n) => /partial/.test(n)), 'no partial file left');

  // Its env file provisions as it is (a relative source.file).
  const cache = path.join(dir, 'cache');
  const chain = chainFor(path.join(dir, 'chain'), { file: 'elsewhere.tar.gz', sha256: '0'.repeat(64) });
  const p = await leapfrog(['envs', 'provision', '--chain', chain, '--envs', path.join(dir, 'one'), '--cache-dir', cache]);
  assert.equal(p.exitCode, 0, p.stderr);
  assert.equal(readFileSync(path.join(cache, a!.sha256, 'lib', 'big.so')).length, 6 * 1024 * 1024);
});

test('bundle create takes the cache\'s verified tarballs, not the network; an altered kept tarball is not used', async () => {
  const remote = remoteChain(server, 'zstd-bundle');
  const dir = path.join(work, 'bundle');
  const cache = path.join(dir, 'cache');
  const p = await leapfrog(['envs', 'provision', '--chain', remote.chain, '--cache-dir', cache]);
  assert.equal(p.exitCode, 0, p.stderr);
  const kept = readdirSync(path.join(cache, '.tarballs')).sort();
  assert.equal(kept.length, 12);

  const before = server.requests.length;
  const out = path.join(dir, 'one.bundle');
  const r = await leapfrog(['bundle', 'create', '--chain', remote.chain, '--cache-dir', cache, '-o', out, '--format', 'json']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as Json).fromCache, 12);
  assert.equal(server.requests.length, before, 'no request: every tarball came from the cache');
  const listed: string[] = [];
  await tar.t({ file: out, onReadEntry: (e) => void listed.push(e.path) });
  assert.deepEqual(listed.filter((n) => /^tarballs\/./.test(n)).map((n) => /^tarballs\/([0-9a-f]{64})\.tar\.gz$/.exec(n)?.[1]).sort(), kept);

  // One kept tarball altered after it was verified: that one comes from its url again.
  const victim = path.join(cache, '.tarballs', kept[0]!);
  writeFileSync(victim, Buffer.concat([readFileSync(victim), Buffer.from('x')]));
  const again = await leapfrog(['bundle', 'create', '--chain', remote.chain, '--cache-dir', cache, '-o', path.join(dir, 'two.bundle'), '--format', 'json']);
  assert.equal(again.exitCode, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as Json).fromCache, 11);
  assert.equal(server.requests.length, before + 1);

  // The bundle imports (every sha256 checked) into a fresh state directory.
  const imp = await leapfrog(['bundle', 'import', path.join(dir, 'two.bundle'), '--state-dir', path.join(dir, 'state'), '--to', path.join(dir, 'imported')]);
  assert.equal(imp.exitCode, 0, imp.stderr);
  assert.ok(existsSync(path.join(dir, 'state', 'envs', kept[0]!)));
});
