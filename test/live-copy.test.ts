/**
 * The live copy (`rehearse --from mysql://…` without a dump file) between
 * two real mariadbd: the test runner's server as the live one, a scratch
 * server as the copy. The copy must equal the source by CHECKSUM TABLE,
 * values that text formats escape differently included; it must be one
 * point in time across tables and databases while a writer keeps
 * committing; and the source must be left as it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { SnapshotPrivilege, takeSnapshot } from '../src/database/live-source.js';
import { parseTargetUrl } from '../src/database/url.js';
import { copyLive } from '../src/rehearse/live-copy.js';
import { keyRanges, tableCopy } from '../src/rehearse/live-plan.js';
import { withScratchServer } from '../src/rehearse/scratch-server.js';
import { MARIADB_PORT, MARIADB_SKIP, MARIADB_URL, mariadbOptions, tempDir, uniquePrefix, withMariadb } from './helpers.js';

type MysqlTarget = Extract<ReturnType<typeof parseTargetUrl>, { kind: 'mysql' }>;
const source = () => parseTargetUrl(MARIADB_URL) as MysqlTarget;

async function checksums(url: mysql.ConnectionOptions, dbs: readonly string[]): Promise<Record<string, string>> {
  const c = await mysql.createConnection(url);
  try {
    const out: Record<string, string> = {};
    for (const db of dbs) {
      const [tables] = await c.query("SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", [db]);
      for (const { t } of tables as { t: string }[]) {
        const [[row]] = (await c.query(`CHECKSUM TABLE \`${db}\`.\`${t}\` EXTENDED`)) as unknown as [{ Checksum: string | number }[]];
        out[`${db}.${t}`] = String(row!.Checksum);
      }
    }
    return out;
  } finally {
    await c.end();
  }
}

const scratchOptions = (port: number): mysql.ConnectionOptions => ({ host: '127.0.0.1', port, user: 'root', multipleStatements: true });

describe('live copy: pure parts', () => {
  test('key ranges cover every key once, the ends open', () => {
    assert.deepEqual(keyRanges('id', 1n, 100n, 4), [' WHERE `id` < 26', ' WHERE `id` >= 26 AND `id` < 51', ' WHERE `id` >= 51 AND `id` < 76', ' WHERE `id` >= 76']);
    assert.deepEqual(keyRanges('id', 1n, 3n, 4), [''], 'too few keys to split');
    assert.deepEqual(keyRanges('id', 5n, 500n, 1), ['']);
  });

  test('generated columns are not loaded; BIT goes as its bytes; spatial columns are refused with what to do', () => {
    const t = tableCopy('d', 't', [
      { name: 'id', type: 'int', extra: '' },
      { name: 'g', type: 'int', extra: 'VIRTUAL GENERATED' },
      { name: 'b', type: 'bit', extra: '' },
    ]);
    assert.match(t.load, /\(`id`, `b`\)$/);
    assert.match(t.select, /CAST\(`b` AS BINARY\)/);
    assert.doesNotMatch(t.select, /`g`/);
    assert.throws(() => tableCopy('d', 't', [{ name: 'p', type: 'point', extra: '' }]), /d\.t\.p is a spatial column .* --dump FILE/);
  });
});

describe('live copy between two real servers', { skip: MARIADB_SKIP }, () => {
  const prefix = uniquePrefix();
  const A = `${prefix}a`;
  const B = `${prefix}b`;
  const user = `${prefix}noreload`;

  before(async () => {
    await withMariadb(async (c) => {
      await c.query(`CREATE DATABASE \`${A}\` CHARACTER SET utf8mb4; CREATE DATABASE \`${B}\` CHARACTER SET latin1`);
      await c.query(`USE \`${A}\``);
      await c.query(`SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'`);
      await c.query(`CREATE TABLE odd (
        id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        s VARCHAR(100) CHARACTER SET utf8mb4, l VARCHAR(50) CHARACTER SET latin1, b VARBINARY(64), bl BLOB, t TEXT,
        d DECIMAL(30,10), f FLOAT, g DOUBLE, dt DATETIME(6), ts TIMESTAMP NULL DEFAULT NULL, tm TIME(3), y YEAR,
        e ENUM('x','y z'), st SET('p','q'), bi BIT(10), j JSON, n INT NULL,
        twice INT AS (id * 2) VIRTUAL, kept VARCHAR(20) AS (LEFT(s, 3)) PERSISTENT,
        KEY s (s), UNIQUE KEY l (l)) ENGINE=InnoDB`);
      const rows = [
        // id 0 must stay 0 (NO_AUTO_VALUE_ON_ZERO on the copy)
        `(0, 'tab\\there', 'café', X'00FF5C090A0D4E', X'5C4E', '\\\\N', 1.5, 0.1, 0.30000000000000004, '2014-10-16 12:00:00.123456', '2038-01-19 03:14:07', '-838:59:59.000', 2014, 'y z', 'p,q', b'1010101010', '{"a":"\\\\t"}', NULL)`,
        `(1, 'new\\nline\\r\\nand \\\\ backslash', 'NULL', '', '', '', -1e-10, 3.4e38, 1e300, '0001-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00', 1901, 'x', '', b'0', 'null', 0)`,
        `(2, 'emoji 😀 ünïcödé', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
        `(3, '\\\\N', '\\\\', X'5C', X'09', '\\t', 99999999999999999999.9999999999, -0, -2.2250738585072014e-308, '9999-12-31 23:59:59.999999', NULL, '12:34:56.789', 2155, NULL, 'q', b'1111111111', '[1, 2]', -2147483648)`,
      ];
      await c.query(`INSERT INTO odd (id, s, l, b, bl, t, d, f, g, dt, ts, tm, y, e, st, bi, j, n) VALUES ${rows.join(', ')}`);
      const many = Array.from({ length: 3000 }, (_, i) => `('${'row ' + i + ' \\t\\\\ '.repeat(i % 7)}', ${i % 13})`);
      await c.query(`CREATE TABLE many (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200), k INT, KEY k (k)) ENGINE=InnoDB`);
      await c.query(`INSERT INTO many (v, k) VALUES ${many.join(', ')}`);
      await c.query('ANALYZE TABLE many');
      await c.query(`CREATE TABLE nokey (a INT, b VARCHAR(10)) ENGINE=InnoDB; INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (NULL, NULL)`);
      await c.query('CREATE VIEW big_ones AS SELECT id, v FROM many WHERE k > 10');
      await c.query('CREATE VIEW bigger AS SELECT id FROM big_ones WHERE id > 100');
      await c.query(`CREATE TRIGGER odd_n BEFORE INSERT ON odd FOR EACH ROW SET NEW.n = 42`);
      await c.query(`CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2`);
      await c.query(`CREATE PROCEDURE hello() SELECT 'hello' AS h`);
      await c.query(`USE \`${B}\``);
      await c.query(`CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB; INSERT INTO parent VALUES (1, 'é'), (2, 'ß')`);
      await c.query(`CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, KEY parent_id (parent_id), CONSTRAINT fk FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB; INSERT INTO child VALUES (10, 1), (11, 2), (12, NULL)`);
      await c.query(`CREATE TABLE flat (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM; INSERT INTO flat VALUES (1, 'myisam'), (2, 'rows')`);
      await c.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES ON \`${prefix.replace(/_/g, '\\_')}%\`.* TO '${user}'@'%'`);
    });
  });

  after(async () => {
    await withMariadb(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS \`${A}\`; DROP DATABASE IF EXISTS \`${B}\`; DROP USER IF EXISTS '${user}'@'%'`);
    });
  });

  test('the copy equals the source by CHECKSUM TABLE, with its keys, views, triggers and routines; the source is unchanged', async () => {
    const before = await checksums(mariadbOptions(), [A, B]);
    await withScratchServer({ parentDir: tempDir('live-copy') }, async (s) => {
      const lines: string[] = [];
      const r = await copyLive({ source: source(), target: s.target, databases: [A, B, `${prefix}absent`], jobs: 3, rangeBytes: 16 * 1024, log: (l) => lines.push(l) });
      assert.equal(r.rows, 4 + 3000 + 3 + 2 + 3 + 2);
      assert.ok(r.statements > 6, `the big table went in key ranges (${r.statements} loads)`);
      assert.match(lines.join('\n'), new RegExp(`1 table\\(s\\) are not InnoDB \\(${B}\\.flat MyISAM\\): writers stay held until they are copied`));
      assert.deepEqual(await checksums(scratchOptions(s.port), [A, B]), before);
      const c = await mysql.createConnection(scratchOptions(s.port));
      try {
        await c.query(`USE \`${A}\``);
        const [[create]] = (await c.query('SHOW CREATE TABLE many')) as unknown as [Record<string, string>[]];
        assert.match(create!['Create Table']!, /KEY `k` \(`k`\)/, 'the deferred key is back');
        const [[odd]] = (await c.query("SELECT id, twice, kept, bi + 0 AS bits, HEX(b) hb, l, e, st FROM odd WHERE id = 0")) as unknown as [Record<string, unknown>[]];
        assert.deepEqual(odd, { id: 0, twice: 0, kept: 'tab', bits: 682, hb: '00FF5C090A0D4E', l: 'café', e: 'y z', st: 'p,q' });
        const [[v]] = (await c.query('SELECT COUNT(*) n FROM bigger')) as unknown as [{ n: number }[]];
        const [[w]] = (await withMariadb((m) => m.query(`SELECT COUNT(*) n FROM \`${A}\`.bigger`))) as unknown as [{ n: number }[]];
        assert.equal(v!.n, w!.n, 'a view over a view');
        await c.query("INSERT INTO odd (id, s) VALUES (100, 'later')");
        const [[t]] = (await c.query('SELECT n, twice(21) AS f FROM odd WHERE id = 100')) as unknown as [{ n: number; f: number }[]];
        assert.deepEqual(t, { n: 42, f: 42 }, 'the trigger and the function came along, after the rows');
        const [[p]] = (await c.query('CALL hello()')) as unknown as [{ h: string }[][]];
        assert.equal(p![0]!.h, 'hello');
        const [[fk]] = (await c.query(`SELECT COUNT(*) n FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '${B}'`)) as unknown as [{ n: number }[]];
        assert.equal(Number(fk!.n), 1);
      } finally {
        await c.end();
      }
    });
    assert.deepEqual(await checksums(mariadbOptions(), [A, B]), before, 'the source is as it was');
  });

  test('while a writer commits into two databases at once, the copy holds one point in time: the same rows on both sides, a prefix of what was written', async () => {
    const L = `${prefix}a`;
    const R = `${prefix}b`;
    const pad = "REPEAT('x', 900)";
    await withMariadb(async (c) => {
      await c.query(`CREATE TABLE \`${L}\`.ledger_left (id INT PRIMARY KEY, pad VARCHAR(1000)) ENGINE=InnoDB; CREATE TABLE \`${R}\`.ledger_right (id INT PRIMARY KEY, pad VARCHAR(1000)) ENGINE=InnoDB`);
      await c.query(`INSERT INTO \`${L}\`.ledger_left SELECT seq, ${pad} FROM \`${L}\`.seq_1_to_3000; INSERT INTO \`${R}\`.ledger_right SELECT seq, 'r' FROM \`${R}\`.seq_1_to_3000; ANALYZE TABLE \`${L}\`.ledger_left`);
    });
    // The writer: one transaction per id, one row in each database.
    const w = await mysql.createConnection(mariadbOptions());
    let next = 3001;
    let stop = false;
    let during = 0;
    let copying = false;
    const writer = (async () => {
      while (!stop) {
        await w.query('START TRANSACTION');
        await w.query(`INSERT INTO \`${L}\`.ledger_left VALUES (?, ${pad})`, [next]);
        await w.query(`INSERT INTO \`${R}\`.ledger_right VALUES (?, 'r')`, [next]);
        await w.query('COMMIT');
        next++;
        if (copying) during++;
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 300));
      await withScratchServer({ parentDir: tempDir('live-copy') }, async (s) => {
        copying = true;
        // Small ranges: the left table is read in many pieces over the whole copy, the right one at once.
        await copyLive({ source: source(), target: s.target, databases: [L, R], jobs: 2, rangeBytes: 64 * 1024 });
        copying = false;
        const c = await mysql.createConnection(scratchOptions(s.port));
        try {
          const [[left]] = (await c.query(`SELECT COUNT(*) n, MIN(id) lo, MAX(id) hi FROM \`${L}\`.ledger_left`)) as unknown as [{ n: number; lo: number; hi: number }[]];
          const [[right]] = (await c.query(`SELECT COUNT(*) n, MIN(id) lo, MAX(id) hi FROM \`${R}\`.ledger_right`)) as unknown as [{ n: number; lo: number; hi: number }[]];
          assert.deepEqual(left, right, 'both databases copied at the same point in time');
          assert.equal(Number(left!.n), left!.hi, 'no gap: every transaction before the point, none after');
          assert.ok(left!.hi > 3000, `rows written before the copy began are in it (${left!.hi})`);
          assert.ok(left!.hi < next - 1, `rows written during the copy are not (${left!.hi} < ${next - 1})`);
        } finally {
          await c.end();
        }
      });
    } finally {
      stop = true;
      await writer;
      await w.end();
    }
    assert.ok(during > 20, `the writer kept committing during the copy (${during} transactions)`);
  });

  test('a row stream read slowly to its end leaves its connection ready for the next query', { timeout: 60_000 }, async () => {
    const snap = await takeSnapshot(source(), 1);
    try {
      const src = snap.sources[0]!;
      let rows = 0;
      const stream = src.rowStream(`SELECT REPEAT('x', 1000) FROM \`${A}\`.seq_1_to_3000`, { chunkBytes: 64 * 1024, congested: () => false, whenClear: () => {}, onRow: () => rows++ });
      let bytes = 0;
      // A consumer slower than the server: the stream fills, pauses the connection, and resumes it.
      for await (const chunk of stream) {
        bytes += (chunk as Buffer).length;
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(rows, 3000);
      assert.equal(bytes, 3000 * 1001);
      const [one] = await src.query<{ n: number }>('SELECT 1 AS n');
      assert.equal(one!.n, 1);
    } finally {
      await snap.close();
    }
  });

  test('an account without RELOAD cannot take the read lock: refused with the privilege named', async () => {
    const t: MysqlTarget = { ...source(), user, password: 'pw', socket: undefined, host: '127.0.0.1', port: MARIADB_PORT };
    await assert.rejects(takeSnapshot(t, 2), (err: unknown) => {
      assert.ok(err instanceof SnapshotPrivilege);
      assert.equal(err.kind, 'refused');
      assert.match(err.message, /FLUSH TABLES WITH READ LOCK needs the RELOAD privilege/);
      return true;
    });
  });
});
