/**
 * Crafted dumps against `leapfrog rehearse --server`: one statement larger
 * than the cap, gzip bombs. Each is refused with exit 2 and one message
 * naming the dump, and the process's peak RSS stays bounded (read by the
 * child itself through process.resourceUsage(), in KiB).
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { test } from 'node:test';
import { execa } from 'execa';
import { CACHE, CHAIN, describeTargets, MARIADB_URL, ROOT, tempDir, uniquePrefix, withMariadb } from './helpers.js';

const MiB = 1024 * 1024;
/** The bound for any input. */
const RSS_LIMIT_KIB = 500 * 1024;

/** The CLI in a child that prints its own peak RSS on exit. */
async function rehearseMeasured(args: readonly string[]): Promise<{ exitCode: number; stderr: string; maxRssKiB: number }> {
  const bin = pathToFileURL(path.join(ROOT, 'bin', 'leapfrog.js')).href;
  const wrapper = [
    "import { writeSync } from 'node:fs';",
    "process.on('exit', () => writeSync(2, '\\nmaxrss_kib=' + process.resourceUsage().maxRSS + '\\n'));",
    `process.argv.splice(1, 0, ${JSON.stringify(bin)});`,
    `await import(${JSON.stringify(bin)});`,
  ].join('\n');
  const r = await execa(process.execPath, ['--input-type=module', '-e', wrapper, 'rehearse', ...args], { reject: false, cwd: ROOT, stdin: 'ignore' });
  const m = /\nmaxrss_kib=(\d+)\n?/.exec(String(r.stderr));
  assert.ok(m, `no RSS reported: ${r.stderr}`);
  return { exitCode: r.exitCode ?? -1, stderr: String(r.stderr).replace(m[0], ''), maxRssKiB: Number(m[1]) };
}

async function leftovers(prefix: string): Promise<string[]> {
  return withMariadb(async (c) => {
    const [rows] = await c.query('SELECT schema_name AS n FROM information_schema.schemata WHERE schema_name LIKE ?', [`${prefix}%`]);
    return (rows as { n: string }[]).map((r) => r.n);
  });
}


/** `head`, then `members` gzip members of 64 MiB of `byte`: concatenated members are one valid gzip stream (RFC 1952, 2.2), each deflated once. */
function gzipBomb(file: string, head: string, byte: number, members: number): void {
  const member = gzipSync(Buffer.alloc(64 * MiB, byte), { level: 9 });
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, gzipSync(head));
    for (let i = 0; i < members; i++) writeSync(fd, member);
  } finally {
    closeSync(fd);
  }
}

describeTargets(
  'dumps with bounded memory',
  () => {
    const dir = tempDir('dump-limits');
    const state = path.join(dir, 'state');
    const args = (dump: string, prefix: string, extra: string[] = []) => ['--chain', CHAIN, '--dump', dump, '--server', MARIADB_URL, '--prefix', prefix, '--state-dir', state, '--cache-dir', CACHE, ...extra];

    test('one statement over --max-statement-bytes: exit 2 naming the dump, the line and the flag', async () => {
      const dump = path.join(dir, 'compute.sql');
      writeFileSync(dump, `CREATE TABLE t (id INT, v LONGTEXT);\n-- a comment\n\nINSERT INTO t VALUES (1,'${'x'.repeat(2 * MiB)}');\n`);
      const prefix = uniquePrefix();
      const r = await rehearseMeasured(args(dump, prefix, ['--max-statement-bytes', String(MiB)]));
      assert.equal(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, /--dump \S*compute\.sql: the statement starting at line 4 is larger than --max-statement-bytes \(1048576 bytes; \d+ read and no end yet\)/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack');
      assert.deepEqual(await leftovers(prefix), [], 'the rehearsal dropped what it created');

      const bad = await rehearseMeasured(args(dump, prefix, ['--max-statement-bytes', 'lots']));
      assert.equal(bad.exitCode, 2);
      assert.match(bad.stderr, /--max-statement-bytes lots: must be a whole number of bytes, 1 or more/);
    });

    test('a gzip bomb of blanks (2 GiB from ~2 MiB) is refused by its ratio, RSS bounded', async (t) => {
      const dump = path.join(dir, 'bomb.sql.gz');
      gzipBomb(dump, 'CREATE TABLE t (id INT);\n', 0x20, 32);
      const r = await rehearseMeasured(args(dump, uniquePrefix()));
      assert.equal(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, /--dump \S*bomb\.sql\.gz: refused as a gzip bomb: [\d.]+ MiB of it inflated to over \d+ MiB \(more than 250 times\); if it is a genuine dump, gunzip it and pass the \.sql file/);
      t.diagnostic(`peak RSS ${Math.round(r.maxRssKiB / 1024)} MiB`);
      assert.ok(r.maxRssKiB < RSS_LIMIT_KIB, `peak RSS ${r.maxRssKiB} KiB`);
    });

    test('a gzip bomb that is one endless statement is refused before memory runs away', async (t) => {
      const dump = path.join(dir, 'endless.sql.gz');
      gzipBomb(dump, "CREATE TABLE t (v LONGTEXT);\nINSERT INTO t VALUES ('", 0x41, 16);
      const r = await rehearseMeasured(args(dump, uniquePrefix()));
      assert.equal(r.exitCode, 2, r.stderr);
      assert.match(r.stderr, /--dump \S*endless\.sql\.gz: (refused as a gzip bomb|the statement starting at line 2 is larger than --max-statement-bytes \(67108864 bytes)/);
      t.diagnostic(`peak RSS ${Math.round(r.maxRssKiB / 1024)} MiB`);
      assert.ok(r.maxRssKiB < RSS_LIMIT_KIB, `peak RSS ${r.maxRssKiB} KiB`);
    });
  },
  ['mariadb'],
);
