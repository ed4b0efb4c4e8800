/**
 * The extractor in-process: what a good tarball becomes (contents, links,
 * modes, mtimes, holes, the manifest `envs verify` reads), the header pass's
 * rules as a pure function of headers, and the writer refusing an archive
 * that is not the one the header pass read. The hostile tarballs, through
 * the CLI, are in test/security/.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { EnvDef } from '../src/chain/types.js';
import { listCache, verifyEntry } from '../src/envs/cache.js';
import { BadArchive, planArchive, safeExtract } from '../src/envs/extract.js';
import { headerProblem, Planner, safeMode, UnsafeTarball, type Header } from '../src/envs/policy.js';
import { provisionEnv } from '../src/envs/store.js';
import { writePlan } from '../src/envs/writer.js';
import { tempDir } from './helpers.js';
import { craft, tarBytes, type Entry } from './security/craft.js';
import { sha256 } from './security/harness.js';

let work: string;
let n = 0;
const BIG = randomBytes(5 * 1024 * 1024 + 123);
const T1 = new Date('2021-03-04T05:06:07Z');
const T2 = new Date('2019-01-02T03:04:05Z');

before(() => {
  work = tempDir('extract');
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

const file = (entries: Entry[]) => craft(path.join(work, `t-${++n}.tar.gz`), entries);
const envFor = (f: string): EnvDef => ({ name: 'crafted', file: path.join(work, 'crafted.yaml'), source: { kind: 'file', location: f, sha256: sha256(f) }, path: ['bin'], vars: {} });
const emptyDir = () => {
  const d = path.join(work, `dest-${++n}`);
  mkdirSync(d);
  return d;
};

test('a good tarball: contents, links, modes, mtimes of files, directories and symlinks, and a manifest that verifies', async () => {
  const f = file([
    { path: 'bin/', type: 'Directory', mtime: T2 },
    { path: 'bin/tool', mode: 0o755, body: '#!/bin/sh\necho ok\n', mtime: T1 },
    { path: 'lib/real', body: 'data\n', mtime: T1 },
    { path: 'lib/alias', type: 'SymbolicLink', linkpath: 'real', mtime: T2 },
    { path: 'bin/up', type: 'SymbolicLink', linkpath: '../lib/real' },
    { path: 'bin/python3', type: 'SymbolicLink', linkpath: '/usr/bin/python3' },
    { path: 'lib/hard', type: 'Link', linkpath: 'lib/real' },
    // Bigger than what is written whole: streamed, hashed on the way.
    { path: 'lib/big.bin', body: BIG, mtime: T1 },
  ]);
  const cache = path.join(work, 'cache-ok');
  const p = await provisionEnv(envFor(f), cache);
  const at = (x: string) => path.join(p.root, x);
  assert.equal(readlinkSync(at('bin/up')), '../lib/real');
  assert.equal(readlinkSync(at('bin/python3')), '/usr/bin/python3');
  assert.equal(lstatSync(at('lib/hard')).nlink, 2);
  assert.equal(readFileSync(at('bin/tool'), 'utf8'), '#!/bin/sh\necho ok\n');
  assert.equal(statSync(at('bin/tool')).mode & 0o777, 0o755);
  assert.deepEqual(readFileSync(at('lib/big.bin')), BIG);
  // mtimes as the archive has them: Python trusts a .pyc only while its source's mtime is the recorded one.
  assert.equal(statSync(at('bin/tool')).mtimeMs, T1.getTime());
  assert.equal(statSync(at('lib/big.bin')).mtimeMs, T1.getTime());
  assert.equal(statSync(at('bin')).mtimeMs, T2.getTime(), 'a directory keeps its mtime although entries were written into it');
  assert.equal(lstatSync(at('lib/alias')).mtimeMs, T2.getTime());
  // The manifest written while unpacking agrees with a fresh walk of the tree…
  const [entry] = await listCache(cache);
  assert.deepEqual(await verifyEntry(entry!), { entry, ok: true, problems: [] });
  // …and tells when the tree changes.
  chmodSync(at('bin/tool'), 0o777);
  writeFileSync(at('lib/extra'), 'x');
  const v = await verifyEntry(entry!);
  assert.deepEqual(v.problems.filter((x) => !/^lib: modified /.test(x)), ['bin/tool: mode 777, was 755', 'lib/extra: added after unpacking']);
  // A file added changes its directory's mtime, which the cheap check (no file read) sees as well.
  assert.match(v.problems.join('\n'), /^lib: modified \S+, was \S+$/m);
  const cheap = await verifyEntry(entry!, 'stat');
  assert.deepEqual(cheap.problems, v.problems);
});

test('the manifest records exact modes whatever the umask', async () => {
  const old = process.umask(0o077);
  try {
    const dest = emptyDir();
    const m = await safeExtract(file([{ path: 'd/', type: 'Directory', mode: 0o755 }, { path: 'd/f', mode: 0o644, body: 'x' }]), dest);
    assert.equal(statSync(path.join(dest, 'd/f')).mode & 0o777, 0o644);
    assert.equal(statSync(path.join(dest, 'd')).mode & 0o777, 0o755);
    assert.deepEqual([m['d']!.mode, m['d/f']!.mode], [0o755, 0o644]);
  } finally {
    process.umask(old);
  }
});

test('a large run of zeros becomes a hole: 64 MiB of zeros takes almost no disk, and hashes as 64 MiB', async () => {
  const zeros = Buffer.alloc(64 * 1024 * 1024);
  const dest = emptyDir();
  const m = await safeExtract(file([{ path: 'img', body: Buffer.concat([Buffer.from('head'), zeros, Buffer.from('tail')]) }]), dest);
  const st = statSync(path.join(dest, 'img'));
  assert.equal(st.size, zeros.length + 8);
  assert.ok(st.blocks * 512 < 1024 * 1024, `${st.blocks} blocks allocated`);
  const back = readFileSync(path.join(dest, 'img'));
  assert.equal(back.subarray(0, 4).toString(), 'head');
  assert.equal(back.subarray(-4).toString(), 'tail');
  assert.equal(m['img']!.size, st.size);
});

test('an mtime tar cannot read (a PAX mtime that is not a number) leaves the unpacking time', async () => {
  const dest = emptyDir();
  await safeExtract(file([{ path: 'a', body: 'a', pax: { mtime: 'soon' } }, { path: 'b', body: 'b', pax: { mtime: '1234567890.5' } }]), dest);
  assert.ok(Math.abs(statSync(path.join(dest, 'a')).mtimeMs - Date.now()) < 600_000);
  assert.equal(statSync(path.join(dest, 'b')).mtimeMs, 1234567890500);
});

test('an uncompressed tar unpacks as well as a gzipped one', async () => {
  const f = path.join(work, 'plain.tar');
  writeFileSync(f, tarBytes([{ path: 'a', body: 'plain\n' }]));
  const dest = emptyDir();
  await safeExtract(f, dest);
  assert.equal(readFileSync(path.join(dest, 'a'), 'utf8'), 'plain\n');
});

test('the writer refuses an archive that is not the one the header pass read, and writes nothing of it', async () => {
  const a = file([{ path: 'a', body: 'a' }, { path: 'b', body: 'b' }]);
  const plan = await planArchive(a);
  const b = file([{ path: 'a', body: 'a' }, { path: 'b', type: 'SymbolicLink', linkpath: '/etc' }, { path: 'b/passwd', body: 'x' }]);
  const dest = emptyDir();
  await assert.rejects(writePlan(b, plan, dest, { maxStreamBytes: 1e9 }), (err: unknown) => err instanceof BadArchive && /entry 2 \(b\) is not the one the header pass read/.test(err.message));
  assert.ok(!readdirSync(dest).includes('b'));
});

test('a truncated entry is an error from the header pass, never a hang', async () => {
  const raw = tarBytes([{ path: 'big', body: BIG }], { eof: false });
  const f = path.join(work, 'truncated.tar');
  writeFileSync(f, raw.subarray(0, 512 + 3 * 1024 * 1024));
  await assert.rejects(planArchive(f), (err: unknown) => err instanceof BadArchive && /Truncated input|truncated/.test(err.message));
});

test('an abort stops the unpacking with the signal\'s reason', async () => {
  const ac = new AbortController();
  ac.abort(new Error('stop now'));
  await assert.rejects(safeExtract(file([{ path: 'a', body: 'a' }]), emptyDir(), undefined, { signal: ac.signal }), /stop now/);
});

const h = (path: string, more: Partial<Header> = {}): Header => ({ path, type: 'File', size: 0, ...more });

test('headerProblem: the per-header rules', () => {
  assert.equal(headerProblem(h('bin/tool', { mode: 0o4755 })), undefined, 'setuid is dropped, not refused');
  assert.equal(headerProblem(h('a/b/c', { type: 'SymbolicLink', linkpath: '/anywhere/at/all' })), undefined);
  assert.equal(headerProblem(h('a/b/c', { type: 'SymbolicLink', linkpath: '../../../../x' })), undefined);
  assert.equal(headerProblem(h('./a//b/./c')), undefined);
  assert.equal(headerProblem(h('a\\..\\b')), undefined, 'a backslash is a character of the name on Linux (systemd units have them)');
  assert.match(headerProblem(h('a', { type: 'SymbolicLink', linkpath: '' })) ?? '', /empty target/);
  assert.match(headerProblem(h('a', { type: 'Link', linkpath: '.' })) ?? '', /hard link to the env's root/);
  assert.match(headerProblem(h('/x')) ?? '', /absolute/);
  assert.match(headerProblem(h('x', { sparse: true })) ?? '', /sparse/);
  assert.match(headerProblem(h('x', { type: 'FIFO' })) ?? '', /not allowed/);
});

test('Planner: order-independent rules, limits and the plan', () => {
  const plan = (hs: Header[], limits = { maxBytes: 1e9, maxEntries: 100 }) => {
    const p = new Planner(limits);
    for (const x of hs) p.add(x);
    return p.finish();
  };
  const refused = (hs: Header[], why: RegExp, limits?: { maxBytes: number; maxEntries: number }) => assert.throws(() => plan(hs, limits), (e: unknown) => e instanceof UnsafeTarball && why.test(e.message));
  const p = plan([h('./', { type: 'Directory' }), h('a/b/f', { size: 3 }), h('a/', { type: 'Directory', mode: 0o2777 }), h('l', { type: 'Link', linkpath: 'a/b/f' }), h('s', { type: 'SymbolicLink', linkpath: '/x' })]);
  assert.deepEqual(p.dirs, ['a', 'a/b']);
  assert.deepEqual([...p.linkTargets], ['a/b/f']);
  assert.equal(p.bytes, 3);
  assert.equal(p.entries[2]!.mode, 0o755);
  refused([h('s', { type: 'SymbolicLink', linkpath: 'x' }), h('s/f')], /passes through s/);
  refused([h('s/f'), h('s', { type: 'SymbolicLink', linkpath: 'x' })], /where entry 1 has a name below it/);
  refused([h('f'), h('f/g')], /passes through f, a file/);
  refused([h('l', { type: 'Link', linkpath: 'f' }), h('f')], /not an earlier entry/);
  refused(Array.from({ length: 4 }, (_, i) => h(`f${i}`)), /more than 3 entries/, { maxBytes: 10, maxEntries: 3 });
  refused([h('a', { size: 6 }), h('b', { size: 6 })], /more than 10 bytes of files .* reached at b/, { maxBytes: 10, maxEntries: 3 });
  // Directories a name implies count as entries: 3 names 3 deep are 3 files and 6 directories.
  refused([h('a/b/c/f'), h('d/e/g/f'), h('h/i/j/f')], /more than 8 entries, counting the directories their names imply/, { maxBytes: 10, maxEntries: 8 });
  assert.equal(plan([h('a/b/c/f'), h('a/', { type: 'Directory' }), h('d/e/g/f'), h('h/i/j/f')], { maxBytes: 10, maxEntries: 12 }).dirs.length, 9, 'a directory named after it was implied is not counted twice');
  assert.throws(() => new Planner({ maxBytes: 10, maxEntries: 10 }, { filesOnly: true }).add(h('s', { type: 'SymbolicLink', linkpath: 'x' })), /s: a symlink; only regular files and directories are allowed here/);
  assert.equal(safeMode('dir', 0o1777), 0o755);
  assert.equal(safeMode('file', 0o6777), 0o755);
  assert.equal(safeMode('file', 0o200), 0o600);
});
