/**
 * Crafted bundles through `leapfrog bundle import`: a bundle is unpacked by
 * the same extractor as an env, and more strictly, since every file of it is
 * read afterwards (bundle.json, the chain, the checksums of the tarballs): a
 * symlink there would make leapfrog read whatever it points at (/dev/zero
 * forever, a host file into an error message). `bundle create` writes
 * neither symlinks nor hard links, so a bundle holding one is refused.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { leapfrog } from '../helpers.js';
import { craft, type Entry } from './craft.js';
import { cacheEntries, newCase, outside, removeCases, tmpEntries } from './harness.js';

after(removeCases);

async function refusedBundle(entries: (canary: string) => Entry[], why: RegExp): Promise<void> {
  const c = newCase('bundle');
  const bundle = craft(path.join(c.dir, 'crafted.bundle'), entries(c.canary), { gzip: false });
  const to = path.join(c.dir, 'imported');
  const before = outside(c);
  const r = await leapfrog(['bundle', 'import', bundle, '--to', to, '--cache-dir', c.cache, '--state-dir', path.join(c.dir, 'state')]);
  assert.equal(r.exitCode, 2, r.stderr);
  assert.match(r.stderr, why);
  assert.match(r.stderr, /nothing was installed/);
  assert.ok(!existsSync(to));
  assert.deepEqual(cacheEntries(c), []);
  assert.deepEqual(tmpEntries(c), []);
  const after = outside(c);
  delete after['state'];
  assert.deepEqual(after, before);
}

describe('crafted bundles', { concurrency: 3 }, () => {
  test('bundle.json as a symlink to /dev/zero is refused before it is read', () =>
    refusedBundle(() => [{ path: 'bundle.json', type: 'SymbolicLink', linkpath: '/dev/zero' }], /bundle .*crafted\.bundle: refused: bundle\.json: a symlink; only regular files and directories are allowed here/));
  test('a tarball in the bundle as a symlink to a host file is refused', () =>
    refusedBundle((canary) => [{ path: 'bundle.json', body: '{}' }, { path: 'tarballs/x.tar.gz', type: 'SymbolicLink', linkpath: `${canary}/file.txt` }], /refused: tarballs\/x\.tar\.gz: a symlink/));
  test('a hard link in the bundle is refused', () =>
    refusedBundle(() => [{ path: 'bundle.json', body: '{}' }, { path: 'chains/c.yaml', type: 'Link', linkpath: 'bundle.json' }], /refused: chains\/c\.yaml: a hard link/));
  test('a name with ".." in the bundle is refused', () => refusedBundle(() => [{ path: '../../canary/pwned', body: 'x' }], /refused: \.\.\/\.\.\/canary\/pwned: "\.\." in the name/));
});
