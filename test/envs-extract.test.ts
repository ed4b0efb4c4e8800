/**
 * Safe extraction: crafted tarballs with one hostile entry each (headers
 * written with tar's own Header class, so the archive is a real tar with
 * exactly that entry), each refused whole, leaving nothing in the cache, in
 * .tmp or outside the env.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import * as tar from 'tar';
import type { EnvDef } from '../src/chain/types.js';
import { LeapfrogError } from '../src/errors.js';
import { entryProblem, type ExtractLimits } from '../src/envs/extract.js';
import { provisionEnv } from '../src/envs/store.js';
import { listCache, verifyEntry } from '../src/envs/cache.js';
import { tempDir } from './helpers.js';

let work: string;
let n = 0;
const BIG = randomBytes(5 * 1024 * 1024 + 123);

before(() => {
  work = tempDir('extract');
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

interface Entry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO';
  mode?: number;
  body?: string | Buffer;
  linkpath?: string;
}

/** A real tar.gz with exactly these entries, in this order. */
function craft(entries: Entry[]): string {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    const type = e.type ?? 'File';
    const h = new tar.Header({
      path: e.path,
      type,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      size: type === 'File' ? body.length : 0,
      linkpath: e.linkpath ?? '',
      mtime: new Date(0),
      uid: 0,
      gid: 0,
      uname: '',
      gname: '',
    });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && body.length > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  const file = path.join(work, `crafted-${++n}.tar.gz`);
  writeFileSync(file, gzipSync(Buffer.concat(blocks)));
  return file;
}

function envFor(file: string): EnvDef {
  const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
  return { name: 'crafted', file: path.join(work, 'crafted.yaml'), source: { kind: 'file', location: file, sha256: sha }, path: ['bin'], vars: {} };
}


const OK: Entry[] = [
  { path: 'bin/', type: 'Directory' },
  { path: 'bin/tool', mode: 0o755, body: '#!/bin/sh\necho ok\n' },
];

async function assertRefused(entries: Entry[], why: RegExp, limits?: ExtractLimits): Promise<void> {
  const file = craft(entries);
  const cache = path.join(work, `cache-${n}`);
  const outside = readdirSync(work).sort();
  await assert.rejects(provisionEnv(envFor(file), cache, { limits }), (err: unknown) => {
    assert.ok(err instanceof LeapfrogError, String(err));
    assert.equal(err.kind, 'input');
    assert.match(err.message, /env crafted: refused to unpack/);
    assert.match(err.message, why);
    assert.match(err.message, /Nothing was cached/);
    return true;
  });
  assert.deepEqual(readdirSync(cache).filter((x) => x !== '.tmp'), [], 'nothing in the cache');
  assert.deepEqual(readdirSync(path.join(cache, '.tmp')), [], 'nothing left in .tmp');
  // Only the new cache directory appeared beside the tarballs: nothing escaped.
  assert.deepEqual(readdirSync(work).sort(), [...outside, path.basename(cache)].sort());
  assert.ok(!existsSync('/tmp/leapfrog-escaped'), 'nothing written at an absolute path');
}

test('a well-formed tarball with an inside symlink and hard link unpacks', async () => {
  const file = craft([
    ...OK,
    { path: 'lib/', type: 'Directory' },
    { path: 'lib/real', body: 'data\n' },
    { path: 'lib/alias', type: 'SymbolicLink', linkpath: 'real' },
    { path: 'bin/up', type: 'SymbolicLink', linkpath: '../lib/real' },
    { path: 'lib/hard', type: 'Link', linkpath: 'lib/real' },
    // Bigger than what is written whole: streamed, hashed on the way.
    { path: 'lib/big.bin', body: BIG },
  ]);
  const cache = path.join(work, 'cache-ok');
  const p = await provisionEnv(envFor(file), cache);
  assert.equal(readlinkSync(path.join(p.root, 'bin', 'up')), '../lib/real');
  assert.equal(lstatSync(path.join(p.root, 'lib', 'hard')).nlink, 2);
  assert.equal(readFileSync(path.join(p.root, 'bin', 'tool'), 'utf8'), '#!/bin/sh\necho ok\n');
  assert.ok(statSync(path.join(p.root, 'bin', 'tool')).mode & 0o100, 'still executable');
  assert.deepEqual(readFileSync(path.join(p.root, 'lib', 'big.bin')), BIG);
  // The manifest written while unpacking agrees with a fresh walk of the tree…
  const [entry] = await listCache(cache);
  assert.deepEqual(await verifyEntry(entry!), { entry, ok: true, problems: [] });
  // …and tells when the tree changes.
  chmodSync(path.join(p.root, 'bin', 'tool'), 0o777);
  writeFileSync(path.join(p.root, 'lib', 'extra'), 'x');
  const v = await verifyEntry(entry!);
  assert.deepEqual(v.problems, ['bin/tool: mode 777, was 755', 'lib/extra: added after unpacking']);
});

test('an absolute path is refused', () => assertRefused([...OK, { path: '/tmp/leapfrog-escaped', body: 'x' }], /\/tmp\/leapfrog-escaped: absolute path/));

test('a ".." component is refused', () => assertRefused([...OK, { path: '../escaped', body: 'x' }], /\.\.\/escaped: "\.\." in the path/));

test('a ".." in the middle of a path is refused', () => assertRefused([...OK, { path: 'bin/../../escaped', body: 'x' }], /"\.\." in the path/));

test('a symlink pointing outside the env is refused', () => assertRefused([...OK, { path: 'bin/out', type: 'SymbolicLink', linkpath: '../../outside' }], /bin\/out: symlink to \.\.\/\.\.\/outside, outside the env/));

test('a symlink to an absolute path is refused', () => assertRefused([...OK, { path: 'bin/passwd', type: 'SymbolicLink', linkpath: '/etc/passwd' }], /symlink to absolute path \/etc\/passwd/));

test('a hard link pointing outside the env is refused', () => assertRefused([...OK, { path: 'bin/h', type: 'Link', linkpath: '../outside' }], /bin\/h: hard link to \.\.\/outside, outside the env/));

test('a hard link to an absolute path is refused', () => assertRefused([...OK, { path: 'bin/h', type: 'Link', linkpath: '/etc/shadow' }], /hard link to absolute path \/etc\/shadow/));

test('a symlink that escapes through another symlink is refused', () =>
  assertRefused([...OK, { path: 'here', type: 'SymbolicLink', linkpath: '.' }, { path: 'here/up', type: 'SymbolicLink', linkpath: '..' }], /here: a later entry \(here\/up\) is written through this symlink/));

test('a character device is refused', () => assertRefused([...OK, { path: 'dev-null', type: 'CharacterDevice' }], /dev-null: CharacterDevice entries are not allowed/));

test('a block device is refused', () => assertRefused([...OK, { path: 'sda', type: 'BlockDevice' }], /sda: BlockDevice entries are not allowed/));

test('a FIFO is refused', () => assertRefused([...OK, { path: 'pipe', type: 'FIFO' }], /pipe: FIFO entries are not allowed/));

test('a setuid file is refused', () => assertRefused([...OK, { path: 'bin/su', mode: 0o4755, body: 'x' }], /bin\/su: setuid\/setgid bit \(mode 4755\)/));

test('a setgid directory is refused', () => assertRefused([{ path: 'shared/', type: 'Directory', mode: 0o2775 }, ...OK], /shared\/: setuid\/setgid bit \(mode 2775\)/));

test('more entries than the limit (a tar bomb) is refused', () =>
  assertRefused(Array.from({ length: 11 }, (_, i) => ({ path: `f${i}`, body: 'x' })), /more than 10 entries \(limit\)/, { maxEntries: 10, maxBytes: 1e9 }));

test('more bytes than the limit (a tar bomb) is refused', () =>
  assertRefused([{ path: 'a', body: Buffer.alloc(600) }, { path: 'b', body: Buffer.alloc(600) }], /more than 1000 bytes unpacked \(limit\)/, { maxEntries: 100, maxBytes: 1000 }));

test('entryProblem: the pure check, case by case', () => {
  assert.equal(entryProblem({ path: 'bin/tool', type: 'File', mode: 0o755 }), undefined);
  assert.equal(entryProblem({ path: 'a/b/c', type: 'SymbolicLink', linkpath: '../../x' }), undefined);
  assert.match(entryProblem({ path: 'a/b/c', type: 'SymbolicLink', linkpath: '../../../x' }) ?? '', /outside the env/);
  assert.equal(entryProblem({ path: 'a/b', type: 'Link', linkpath: 'a/c' }), undefined);
  assert.match(entryProblem({ path: 'a/b', type: 'Link', linkpath: '../c' }) ?? '', /hard link/);
  assert.match(entryProblem({ path: 'C:/x', type: 'File' }) ?? '', /absolute/);
  assert.equal(entryProblem({ path: 'x', type: 'File', mode: 0o1777 }), undefined, 'sticky is harmless');
});
