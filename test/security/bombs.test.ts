/**
 * Tarballs that attack the extractor's time, memory, disk and descriptors
 * rather than its paths, through the real CLI: many entries, a 4 GiB file of
 * zeros in a 4 MB tarball, a truncated entry too big to be read whole, a
 * stream of headers that name nothing, data after the end of the archive,
 * 30,000 files under `ulimit -n 1024`, more hard links than the filesystem
 * allows, a local source swapped between two reads. Each ends in a refusal
 * or an unpacked env, never a hang or a crash, and leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ROOT, leapfrog } from '../helpers.js';
import { craft, tarBytes, zeroBomb, zstdSync, type Entry } from './craft.js';
import { assertRefused, assertUnpacked, cacheEntries, newCase, outside, provision, removeCases, sha256, tmpEntries, useTarball } from './harness.js';

after(removeCases);

const GiB = 1024 ** 3;

describe('bombs', { concurrency: 2 }, () => {
  test('200,000 entries over --max-env-entries are refused by the header pass', async () => {
    const c = newCase('bomb');
    const entries: Entry[] = Array.from({ length: 200_000 }, (_, i) => ({ path: `d${Math.floor(i / 1000)}/f${i}` }));
    const started = Date.now();
    await assertRefused(c, craft(path.join(c.dir, 'many.tar.gz'), entries), /more than 100000 entries, counting the directories their names imply \(limit; --max-env-entries\)/, ['--max-env-entries', '100000']);
    assert.ok(Date.now() - started < 120_000);
  });

  test('names that imply many directories count them: 2,000 names 100 deep are 200,000 entries', async () => {
    const c = newCase('bomb');
    const entries: Entry[] = Array.from({ length: 2000 }, (_, i) => ({ path: `t${i}/${'d/'.repeat(99)}f`, pax: { path: `t${i}/${'d/'.repeat(99)}f` } }));
    await assertRefused(c, craft(path.join(c.dir, 'deep.tar.gz'), entries), /more than 10000 entries, counting the directories their names imply \(limit; --max-env-entries\), reached at t\d+\//, ['--max-env-entries', '10000']);
  });

  test('a 4 GiB file of zeros in a 4 MB tarball: refused under --max-env-bytes before a byte is written', async () => {
    const c = newCase('bomb');
    const bomb = zeroBomb(path.join(c.dir, 'bomb.tar.gz'), 'zeros', 4 * GiB);
    assert.ok(statSync(bomb).size < 8 * 1024 * 1024);
    await assertRefused(c, bomb, /more than 1073741824 bytes of files \(limit; --max-env-bytes\), reached at zeros/, ['--max-env-bytes', String(GiB)]);
  });

  test('a 4 GiB file of zeros under the default limits: unpacked as a hole, verified, nothing left in .tmp', { timeout: 600_000 }, async () => {
    const c = newCase('bomb');
    const root = await assertUnpacked(c, zeroBomb(path.join(c.dir, 'bomb.tar.gz'), 'zeros', 4 * GiB));
    const st = statSync(path.join(root, 'zeros'));
    assert.equal(st.size, 4 * GiB);
    assert.ok(st.blocks * 512 < 64 * 1024 * 1024, `${st.blocks * 512} bytes allocated`);
  });

  test('a truncated entry larger than is read whole: an error, not a hang, from provision and from run', async () => {
    const c = newCase('bomb');
    const raw = tarBytes([{ path: 'bin/tool', mode: 0o755, body: '#!/bin/sh\n' }, { path: 'big', body: Buffer.alloc(64 * 1024 * 1024, 7) }], { eof: false });
    const cut = path.join(c.dir, 'cut.tar.gz');
    writeFileSync(cut, gzipSync(raw.subarray(0, 20 * 1024 * 1024)));
    await assertRefused(c, cut, /is not a tar, tar\.gz or tar\.zst leapfrog can unpack \(.*(Truncated input|truncated)/);
    // `run` provisions the same way; it used to hang here, deaf to SIGTERM, holding the target's lock.
    const db = path.join(c.dir, 'db');
    mkdirSync(db);
    const d = new Database(path.join(db, 'p.sqlite3'));
    d.exec("CREATE TABLE migrate_version (repository_id VARCHAR(250) NOT NULL PRIMARY KEY, repository_path TEXT, version INTEGER); INSERT INTO migrate_version VALUES ('p', 'p', 1);");
    d.close();
    const started = Date.now();
    const r = await leapfrog(['run', '--chain', c.chain, '--db', `sqlite:${db}`, '--state-dir', path.join(c.dir, 'state'), '--cache-dir', c.cache]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /not a tar, tar\.gz or tar\.zst leapfrog can unpack/);
    assert.ok(Date.now() - started < 60_000);
    assert.deepEqual(tmpEntries(c), []);
  });

  test('a stream of PAX headers that name nothing ends at the decompressed-bytes limit', async () => {
    const c = newCase('bomb');
    // 1 KiB per header; 1024 in a gzip member, the member repeated: 64 MiB of headers in a small file.
    const one = tarBytes([{ path: 'x', pax: { comment: 'c'.repeat(400) }, type: 'Directory' }], { eof: false }).subarray(0, 1024);
    const member = gzipSync(Buffer.concat(Array.from({ length: 1024 }, () => one)));
    const f = path.join(c.dir, 'headers.tar.gz');
    writeFileSync(f, Buffer.concat(Array.from({ length: 64 }, () => member)));
    await assertRefused(c, f, /more than \d+ bytes once decompressed \(limit\)/, ['--max-env-bytes', '1000000', '--max-env-entries', '100']);
  });

  test('what follows the end-of-archive blocks is never inflated: 8 GiB of zeros after them cost nothing', async () => {
    const c = newCase('bomb');
    const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
    const f = path.join(c.dir, 'trailer.tar.gz');
    writeFileSync(f, Buffer.concat([gzipSync(tarBytes([{ path: 'bin/tool', mode: 0o755, body: 'ok\n' }])), ...Array.from({ length: 8192 }, () => member)]));
    const started = Date.now();
    const root = await assertUnpacked(c, f);
    assert.equal(readFileSync(path.join(root, 'bin/tool'), 'utf8'), 'ok\n');
    assert.ok(Date.now() - started < 60_000, `${Date.now() - started} ms`);
  });

  test('a .tar.zst: what follows the end-of-archive blocks is never decompressed (the zstd process is stopped there), 8 GiB of zeros after them cost nothing', async () => {
    const c = newCase('bomb');
    // zstd, like gzip, reads concatenated frames as one stream (RFC 8878 §3.1).
    const frame = zstdSync(Buffer.alloc(1024 * 1024));
    const f = path.join(c.dir, 'trailer.tar.zst');
    writeFileSync(f, Buffer.concat([zstdSync(tarBytes([{ path: 'bin/tool', mode: 0o755, body: 'ok\n' }])), ...Array.from({ length: 8192 }, () => frame)]));
    assert.ok(statSync(f).size < 4 * 1024 * 1024);
    const started = Date.now();
    const root = await assertUnpacked(c, f);
    assert.equal(readFileSync(path.join(root, 'bin/tool'), 'utf8'), 'ok\n');
    // Two CLI runs (provision, verify) on a busy machine; a zstd left running would block on its full pipe for good.
    assert.ok(Date.now() - started < 120_000, `${Date.now() - started} ms`);
  });

  test('a .tar.zst stream of PAX headers that name nothing ends at the decompressed-bytes limit', async () => {
    const c = newCase('bomb');
    const one = tarBytes([{ path: 'x', pax: { comment: 'c'.repeat(400) }, type: 'Directory' }], { eof: false }).subarray(0, 1024);
    const frame = zstdSync(Buffer.concat(Array.from({ length: 1024 }, () => one)));
    const f = path.join(c.dir, 'headers.tar.zst');
    writeFileSync(f, Buffer.concat(Array.from({ length: 64 }, () => frame)));
    await assertRefused(c, f, /more than \d+ bytes once decompressed \(limit\)/, ['--max-env-bytes', '1000000', '--max-env-entries', '100']);
  });

  test('a truncated .tar.zst: refused with what zstd or the parser said, nothing cached', async () => {
    const c = newCase('bomb');
    const whole = zstdSync(tarBytes([{ path: 'bin/tool', mode: 0o755, body: '#!/bin/sh\n' }, { path: 'big', body: randomBytes(2 * 1024 * 1024) }]));
    const cut = path.join(c.dir, 'cut.tar.zst');
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    await assertRefused(c, cut, /is not a tar, tar\.gz or tar\.zst leapfrog can unpack \((not a readable zstd stream|.*(Truncated input|truncated))/);
  });

  test('30,000 files under `ulimit -n 1024` unpack (they failed with EMFILE, reported as "not a readable tar.gz")', { timeout: 600_000 }, async () => {
    const c = newCase('bomb');
    const entries: Entry[] = Array.from({ length: 30_000 }, (_, i) => ({ path: `lib/p${Math.floor(i / 500)}/m${i}.py`, body: `x = ${i}\n` }));
    const f = craft(path.join(c.dir, 'many.tar.gz'), entries);
    useTarball(c, f);
    const before = outside(c);
    const r = await execa('sh', ['-c', 'ulimit -n 1024 && exec "$0" "$@"', process.execPath, path.join(ROOT, 'bin', 'leapfrog.js'), 'envs', 'provision', '--chain', c.chain, '--cache-dir', c.cache], { reject: false });
    assert.equal(r.exitCode, 0, String(r.stderr));
    assert.deepEqual(cacheEntries(c), [sha256(f)]);
    assert.deepEqual(tmpEntries(c), []);
    assert.deepEqual(outside(c), before);
    assert.equal(readFileSync(path.join(c.cache, sha256(f), 'lib/p59/m29999.py'), 'utf8'), 'x = 29999\n');
  });

  test('more hard links to one file than the filesystem allows: one clear error, nothing left behind', { timeout: 600_000 }, async () => {
    const c = newCase('bomb');
    const entries: Entry[] = [{ path: 'f', body: 'x' }, ...Array.from({ length: 70_000 }, (_, i) => ({ path: `l/h${i}`, type: 'Link' as const, linkpath: 'f' }))];
    const f = craft(path.join(c.dir, 'links.tar.gz'), entries);
    useTarball(c, f);
    const r = await provision(c);
    if (r.exitCode === 0) {
      // A filesystem without ext4's 65,000-link cap (tmpfs, xfs, btrfs): unpacked whole.
      assert.equal(statSync(path.join(c.cache, sha256(f), 'f')).nlink, 70_001);
    } else {
      assert.equal(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, /l\/h\d+: more hard links to f than this filesystem allows/);
      assert.deepEqual(cacheEntries(c), []);
    }
    assert.deepEqual(tmpEntries(c), []);
  });
});

describe('the source is read once', () => {
  test('a FIFO serving two different tarballs: only the first is read, hashed and unpacked', async () => {
    const c = newCase('fifo');
    const first = craft(path.join(c.dir, 'first.tar.gz'), [{ path: 'bin/tool', mode: 0o755, body: 'first\n' }]);
    const second = craft(path.join(c.dir, 'second.tar.gz'), [{ path: 'bin/tool', mode: 0o755, body: 'second\n' }, { path: 'evil', body: 'x' }]);
    const fifo = path.join(c.dir, 'source.tar.gz');
    await execa('mkfifo', [fifo]);
    // One writer after the other: whoever opens the FIFO a second time gets the second tarball
    // (the pause lets the first reader see the end of the first one).
    const writer = execa('sh', ['-c', 'cat "$1" > "$3"; sleep 2; cat "$2" > "$3"', 'sh', first, second, fifo], { reject: false });
    try {
      useTarball(c, first);
      // The env names the FIFO, with the first tarball's checksum.
      writeFileSync(c.envFile, readFileSync(c.envFile, 'utf8').replace(first, fifo));
      const r = await provision(c);
      assert.equal(r.exitCode, 0, r.stderr);
      const root = path.join(c.cache, sha256(first));
      assert.equal(readFileSync(path.join(root, 'bin/tool'), 'utf8'), 'first\n');
      assert.ok(!existsSync(path.join(root, 'evil')));
      assert.deepEqual(tmpEntries(c), []);
      assert.equal(writer.exitCode, null, 'the second tarball was never read');
    } finally {
      writer.kill('SIGKILL');
      await writer;
    }
  });
});
