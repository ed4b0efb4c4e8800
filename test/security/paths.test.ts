/**
 * Crafted env tarballs that try to write outside the env, through the real
 * CLI, each built here block by block. The list follows the CVE history of
 * tar extractors: Python's tarfile (CVE-2007-4559; the 2024-2025 data-filter
 * bypasses through links and chmod), node-tar (CVE-2021-32803/32804/37701/
 * 37712/37713: symlinks planted before or after, stripped absolute paths,
 * name folding; the later hard-link target mismatch), GNU tar (delayed
 * links). For every case: the exit code, the canary beside the cache
 * unchanged, nothing cached, nothing in .tmp.
 */
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { craft, type Entry } from './craft.js';
import { assertRefused, assertUnpacked, newCase, removeCases } from './harness.js';

after(removeCases);

const OK: Entry[] = [{ path: 'bin/', type: 'Directory' }, { path: 'bin/tool', mode: 0o755, body: '#!/bin/sh\necho ok\n' }];

/** A case whose tarball is `entries(canary)`, refused with `why`. */
function refused(title: string, entries: (canary: string) => Entry[], why: RegExp): void {
  test(title, async () => {
    const c = newCase();
    await assertRefused(c, craft(path.join(c.dir, 'crafted.tar.gz'), entries(c.canary)), why);
  });
}

describe('names that leave the env are refused before anything is written', { concurrency: 3 }, () => {
  refused('an absolute name aimed at the canary', (canary) => [...OK, { path: `${canary}/pwned`, body: 'x' }], /absolute name/);
  refused('an absolute name with repeated slashes (node-tar CVE-2021-32804 stripped it to a relative one)', (canary) => [...OK, { path: `////${canary.slice(1)}/pwned`, body: 'x' }], /absolute name/);
  refused('a ".." name', () => [...OK, { path: '../../../canary/pwned', body: 'x' }], /"\.\." in the name/);
  refused('a ".." in the middle of a name', () => [...OK, { path: 'bin/../../../../canary/pwned', body: 'x' }], /"\.\." in the name/);
  refused('"./.." at the start', () => [...OK, { path: './../pwned', body: 'x' }], /"\.\." in the name/);
  refused('a PAX path with ".." over a harmless ustar name', () => [...OK, { path: '../../../canary/pwned', pax: { path: '../../../canary/pwned' }, body: 'x' }], /"\.\." in the name/);
  refused('a GNU long name with ".."', () => [...OK, { path: `${'a/'.repeat(60)}${'../'.repeat(70)}canary/pwned`, gnuLongName: true, body: 'x' }], /"\.\." in the name/);
  refused('a GNU long name that is absolute', (canary) => [...OK, { path: `${canary}/${'p'.repeat(120)}`, gnuLongName: true, body: 'x' }], /absolute name/);
  refused('a name with terminal escapes is shown escaped', () => [...OK, { path: '../\u001b]0;owned\u0007', body: 'x' }], /\.\.\/\\x1b\]0;owned\\x07: "\.\." in the name/);
  refused('a name deeper than 128 directories', () => [{ path: `${'d/'.repeat(129)}f`, pax: { path: `${'d/'.repeat(129)}f` }, body: 'x' }], /130 directories deep \(limit 128\)/);
  refused('a name longer than PATH_MAX', () => [{ path: 'x'.repeat(5000), pax: { path: `${'abcdefgh/'.repeat(500)}f` }, body: 'x' }], /name longer than 4095 bytes/);
  refused('a component longer than NAME_MAX', () => [{ path: 'n'.repeat(300), gnuLongName: true, body: 'x' }], /longer than 255 bytes/);
});

describe('writing through a symlink of the archive is refused, whichever comes first', { concurrency: 3 }, () => {
  refused('a symlink to the canary, then a file through it', (canary) => [...OK, { path: 'esc', type: 'SymbolicLink', linkpath: canary }, { path: 'esc/pwned', body: 'x' }], /esc\/pwned: passes through esc, a symlink \(entry 3\)/);
  refused('a file first, then a symlink where its directory was (redirects the earlier path)', (canary) => [...OK, { path: 'd/pwned', body: 'x' }, { path: 'd', type: 'SymbolicLink', linkpath: canary }], /d: a symlink \(entry 4\) where entry 3 has a name below it/);
  refused('a hard link, then a symlink where its directory was', (canary) => [...OK, { path: 'f', body: 'x' }, { path: 'd/h', type: 'Link', linkpath: 'f' }, { path: 'd', type: 'SymbolicLink', linkpath: canary }], /d: a symlink \(entry 5\) where entry 4 has a name below it/);
  refused('a symlink, then a hard link through it', (canary) => [...OK, { path: 'f', body: 'x' }, { path: 'd', type: 'SymbolicLink', linkpath: canary }, { path: 'd/h', type: 'Link', linkpath: 'f' }], /d\/h: passes through d, a symlink/);
  refused('a symlink with a trailing slash, then a file through it', (canary) => [...OK, { path: 'esc/', type: 'SymbolicLink', linkpath: canary }, { path: 'esc/pwned', body: 'x' }], /esc\/pwned: passes through esc, a symlink/);
  refused('a dangling chain of symlinks that leads out after three hops, then a file through it', () => [
    ...OK,
    { path: 'a', type: 'SymbolicLink', linkpath: 'b' },
    { path: 'b', type: 'SymbolicLink', linkpath: 'c' },
    { path: 'c', type: 'SymbolicLink', linkpath: '../../../canary' },
    { path: 'a/pwned', body: 'x' },
  ], /a\/pwned: passes through a, a symlink/);
  refused('a symlink replaced by a directory, then a file in it', (canary) => [...OK, { path: 's', type: 'SymbolicLink', linkpath: canary }, { path: 's/', type: 'Directory' }, { path: 's/pwned', body: 'x' }], /s\/: entry 4 is a directory but entry 3 already named it as a symlink/);
  refused('a directory replaced by a symlink (node-tar CVE-2021-32803)', (canary) => [...OK, { path: 'd/', type: 'Directory' }, { path: 'd', type: 'SymbolicLink', linkpath: canary }, { path: 'd/pwned', body: 'x' }], /d: entry 4 is a symlink but entry 3 already named it as a directory/);
  refused('a PAX linkpath that is absolute, then a file through the symlink', (canary) => [...OK, { path: 'l', type: 'SymbolicLink', linkpath: 'x', pax: { linkpath: canary } }, { path: 'l/pwned', body: 'x' }], /l\/pwned: passes through l, a symlink/);
  refused('the root entry "." as a symlink', (canary) => [{ path: '.', type: 'SymbolicLink', linkpath: canary }, ...OK], /\.: names the env's root but is not a directory/);
});

describe('a .tar.zst is refused for the same reasons as a .tar.gz (decompressed by the zstd program, then the same header pass)', { concurrency: 3 }, () => {
  const zst = (title: string, entries: (canary: string) => Entry[], why: RegExp) =>
    test(title, async () => {
      const c = newCase();
      const f = craft(path.join(c.dir, 'crafted.tar.zst'), entries(c.canary), { zstd: true });
      assert.equal(readFileSync(f).readUInt32LE(0), 0xfd2fb528, 'a zstd frame');
      await assertRefused(c, f, why);
    });
  zst('a ".." name', () => [...OK, { path: '../../../canary/pwned', body: 'x' }], /"\.\." in the name/);
  zst('an absolute name aimed at the canary', (canary) => [...OK, { path: `${canary}/pwned`, body: 'x' }], /absolute name/);
  zst('a PAX path with ".." over a harmless ustar name', () => [...OK, { path: 'harmless', pax: { path: '../../../canary/pwned' }, body: 'x' }], /"\.\." in the name/);
  zst('a symlink to the canary, then a file through it', (canary) => [...OK, { path: 'esc', type: 'SymbolicLink', linkpath: canary }, { path: 'esc/pwned', body: 'x' }], /esc\/pwned: passes through esc, a symlink \(entry 3\)/);
  zst('a directory replaced by a symlink (node-tar CVE-2021-32803)', (canary) => [...OK, { path: 'd/', type: 'Directory' }, { path: 'd', type: 'SymbolicLink', linkpath: canary }, { path: 'd/pwned', body: 'x' }], /d: entry 4 is a symlink but entry 3 already named it as a directory/);
  zst('a hard link with ".."', () => [...OK, { path: 'h', type: 'Link', linkpath: '../../../canary/file.txt' }], /"\.\." in the hard link target/);
  zst('a character device', () => [...OK, { path: 'null', type: 'CharacterDevice' }], /null: CharacterDevice entries are not allowed in an env/);
});

describe('hard links: only to a regular file earlier in the archive, named from the archive root', { concurrency: 3 }, () => {
  refused('a hard link to an absolute path', (canary) => [...OK, { path: 'h', type: 'Link', linkpath: `${canary}/file.txt` }], /h: hard link to .*canary\/file\.txt: absolute hard link target/);
  refused('a hard link with ".."', () => [...OK, { path: 'h', type: 'Link', linkpath: '../../../canary/file.txt' }], /"\.\." in the hard link target/);
  refused('a hard link through a symlink', (canary) => [...OK, { path: 's', type: 'SymbolicLink', linkpath: canary }, { path: 'h', type: 'Link', linkpath: 's/file.txt' }], /h: hard link to s\/file\.txt, which is not an earlier entry/);
  refused('a hard link to a symlink', (canary) => [...OK, { path: 's', type: 'SymbolicLink', linkpath: `${canary}/file.txt` }, { path: 'h', type: 'Link', linkpath: 's' }], /h: hard link to s, which is a symlink \(entry 3\)/);
  refused('a hard link to a later entry', () => [...OK, { path: 'h', type: 'Link', linkpath: 'f' }, { path: 'f', body: 'x' }], /h: hard link to f, which is not an earlier entry/);
  refused('a hard link to a directory', () => [...OK, { path: 'h', type: 'Link', linkpath: 'bin' }], /h: hard link to bin, which is a directory/);
  refused('a hard link to a hard link', () => [...OK, { path: 'h1', type: 'Link', linkpath: 'bin/tool' }, { path: 'h2', type: 'Link', linkpath: 'h1' }], /h2: hard link to h1, which is a hard link/);
  refused('a hard link through a GNU long link with ".."', () => [...OK, { path: 'h', type: 'Link', linkpath: `${'../'.repeat(40)}canary/file.txt`, gnuLongLink: true }], /"\.\." in the hard link target/);
  refused('a file that replaces the target of an earlier hard link', () => [...OK, { path: 'h', type: 'Link', linkpath: 'bin/tool' }, { path: 'bin/tool', body: 'changed' }], /bin\/tool: entry 4 is a file but entry 2 already named it as a file/);
});

describe('types, duplicates and reserved names', { concurrency: 3 }, () => {
  refused('a file named twice', () => [...OK, { path: 'f', body: 'one' }, { path: 'f', body: 'two' }], /f: entry 4 is a file but entry 3 already named it as a file/);
  refused('a directory after a file of the same name', () => [...OK, { path: 'f', body: 'one' }, { path: 'f/', type: 'Directory' }], /f\/: entry 4 is a directory but entry 3 already named it as a file/);
  refused('the same name as ./x and x', () => [...OK, { path: './x', body: 'one' }, { path: 'x', body: 'two' }], /x: entry 4 is a file but entry 3 already named it as a file/);
  refused('the manifest as a symlink to the canary', (canary) => [...OK, { path: '.leapfrog-manifest.json', type: 'SymbolicLink', linkpath: `${canary}/file.txt` }], /\.leapfrog-manifest\.json: a name leapfrog reserves/);
  refused('the manifest as ./ + file', () => [...OK, { path: './.leapfrog-manifest.json', body: '{}' }], /a name leapfrog reserves/);
  refused('a reserved directory', () => [...OK, { path: '.leapfrog-x/y', body: '{}' }], /\.leapfrog-x\/y: a name leapfrog reserves/);
  refused('a character device', () => [...OK, { path: 'null', type: 'CharacterDevice' }], /null: CharacterDevice entries are not allowed in an env/);
  refused('a block device', () => [...OK, { path: 'sda', type: 'BlockDevice' }], /sda: BlockDevice entries are not allowed/);
  refused('a FIFO', () => [...OK, { path: 'pipe', type: 'FIFO' }], /pipe: FIFO entries are not allowed/);
  refused('an old GNU sparse file (typeflag S)', () => [...OK, { path: 'sparse', type: 'SparseFile', body: 'x' }], /sparse: a GNU sparse file; leapfrog does not unpack sparse entries/);
  refused('a PAX GNU sparse file (format 1.0)', () => [...OK, { path: 'GNUSparseFile.0/big', pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 'big', 'GNU.sparse.realsize': String(4 * 1024 ** 3) }, body: '1\n0\n512\n' }], /a GNU sparse file/);
  refused('an unknown typeflag', () => [...OK, { path: 'odd', typeflag: 'Z', body: 'x' }], /odd: Unsupported entries are not supported/);
  refused('a GNU dump directory', () => [...OK, { path: 'dump', typeflag: 'D', body: 'x' }], /dump: GNUDumpDir entries are not supported/);
  refused('a PAX header larger than 64 KiB', () => [...OK, { path: 'f', pax: { comment: 'c'.repeat(70_000) }, body: 'x' }], /ExtendedHeader header of \d+ bytes \(more than 65536\)/);
});

describe('what is allowed unpacks, and nothing is written through its links', { concurrency: 3 }, () => {
  test('a root filesystem: absolute and relative symlinks, dangling ones, links out of the tree, hard links', async () => {
    const c = newCase();
    const root = await assertUnpacked(c, craft(path.join(c.dir, 'rootfs.tar.gz'), [
      { path: './', type: 'Directory', mode: 0o755 },
      { path: './usr/', type: 'Directory' },
      { path: './usr/bin/', type: 'Directory' },
      { path: './usr/bin/python3.11', mode: 0o755, body: '#!/bin/sh\necho python\n' },
      { path: './usr/bin/python3', type: 'SymbolicLink', linkpath: 'python3.11' },
      { path: './usr/bin/perl', mode: 0o755, body: 'perl\n' },
      { path: './usr/bin/perl5.36', type: 'Link', linkpath: './usr/bin/perl' },
      { path: './bin', type: 'SymbolicLink', linkpath: 'usr/bin' },
      { path: './etc/alternatives/python', type: 'SymbolicLink', linkpath: '/usr/bin/python3' },
      { path: './etc/localtime', type: 'SymbolicLink', linkpath: '/usr/share/zoneinfo/Etc/UTC' },
      { path: './etc/mtab', type: 'SymbolicLink', linkpath: '../proc/self/mounts' },
      { path: './etc/canary', type: 'SymbolicLink', linkpath: c.canary },
      { path: './etc/up', type: 'SymbolicLink', linkpath: '../../../../canary/file.txt' },
      { path: './a', type: 'SymbolicLink', linkpath: 'b' },
      { path: './b', type: 'SymbolicLink', linkpath: 'c' },
      { path: './c', type: 'SymbolicLink', linkpath: '../../../canary' },
      { path: './etc/long', type: 'SymbolicLink', linkpath: `/usr/share/${'x'.repeat(150)}`, gnuLongLink: true },
      { path: `./usr/share/${'deep/'.repeat(40)}file`, pax: { path: `./usr/share/${'deep/'.repeat(40)}file` }, body: 'deep\n' },
    ]));
    assert.equal(readlinkSync(path.join(root, 'etc/alternatives/python')), '/usr/bin/python3');
    assert.equal(readlinkSync(path.join(root, 'etc/canary')), c.canary);
    assert.equal(readlinkSync(path.join(root, 'c')), '../../../canary');
    assert.equal(readlinkSync(path.join(root, 'etc/long')), `/usr/share/${'x'.repeat(150)}`);
    assert.equal(readlinkSync(path.join(root, 'bin')), 'usr/bin');
    assert.equal(readFileSync(path.join(root, 'bin/python3'), 'utf8'), '#!/bin/sh\necho python\n');
    assert.equal(lstatSync(path.join(root, 'usr/bin/perl5.36')).ino, lstatSync(path.join(root, 'usr/bin/perl')).ino);
    assert.equal(readFileSync(path.join(root, `usr/share/${'deep/'.repeat(40)}file`), 'utf8'), 'deep\n');
  });

  test('case and Unicode look-alikes of a symlink are separate names here; nothing goes through the symlink', async () => {
    const c = newCase();
    const root = await assertUnpacked(c, craft(path.join(c.dir, 'fold.tar.gz'), [
      ...OK,
      { path: 'LIB', type: 'SymbolicLink', linkpath: c.canary },
      { path: 'lib/x', body: 'lower\n' },
      { path: 'caf\u00e9', type: 'SymbolicLink', linkpath: c.canary },
      { path: 'cafe\u0301/x', body: 'nfd\n' },
    ]));
    assert.equal(readFileSync(path.join(root, 'lib/x'), 'utf8'), 'lower\n');
    assert.ok(lstatSync(path.join(root, 'lib')).isDirectory());
    assert.equal(readFileSync(path.join(root, 'cafe\u0301/x'), 'utf8'), 'nfd\n');
    assert.ok(lstatSync(path.join(root, 'LIB')).isSymbolicLink());
  });

  test('setuid, setgid, sticky and group/other write bits are dropped; a hard link\'s own mode changes nothing', async () => {
    const c = newCase();
    const root = await assertUnpacked(c, craft(path.join(c.dir, 'modes.tar.gz'), [
      { path: './', type: 'Directory', mode: 0o777 },
      ...OK,
      { path: 'bin/su', mode: 0o4755, body: 'su\n' },
      { path: 'bin/wall', mode: 0o2755, body: 'wall\n' },
      { path: 'tmp/', type: 'Directory', mode: 0o1777 },
      { path: 'shared', mode: 0o666, body: 'w\n' },
      { path: 'secret', mode: 0o000, body: 's\n' },
      { path: 'ro/', type: 'Directory', mode: 0o555 },
      { path: 'ro/f', mode: 0o644, body: 'f\n' },
      { path: 'h', type: 'Link', linkpath: 'ro/f', mode: 0o7777 },
    ]));
    const mode = (p: string) => statSync(path.join(root, p)).mode & 0o7777;
    assert.equal(mode('bin/su'), 0o755);
    assert.equal(mode('bin/wall'), 0o755);
    assert.equal(mode('tmp'), 0o755);
    assert.equal(mode('shared'), 0o644);
    assert.equal(mode('secret'), 0o400);
    assert.equal(mode('ro'), 0o755);
    assert.equal(mode('ro/f'), 0o644, 'the hard link\'s mode 7777 was not applied to its target');
    assert.equal(mode('.'), 0o700, 'the archive\'s "./" does not set the env root\'s mode');
  });

  test('a hard link in a subdirectory names its target from the archive root (node-tar CVE-2026-24842)', async () => {
    const c = newCase();
    const root = await assertUnpacked(c, craft(path.join(c.dir, 'hard.tar.gz'), [
      ...OK,
      { path: 'f', body: 'root f\n' },
      { path: 'sub/f', body: 'sub f\n' },
      { path: 'sub/h', type: 'Link', linkpath: 'f' },
      { path: 'd/', type: 'Directory', mode: 0o700 },
      { path: 'd/', type: 'Directory', mode: 0o755 },
    ]));
    assert.equal(readFileSync(path.join(root, 'sub/h'), 'utf8'), 'root f\n');
    assert.equal(lstatSync(path.join(root, 'sub/h')).nlink, 2);
    assert.equal(statSync(path.join(root, 'd')).mode & 0o777, 0o755, 'a repeated directory takes its last mode');
  });
});
