/**
 * The dump splitter (pure) and the parallel restore against a real scratch
 * mariadbd: what leapfrog loads must be byte for byte what the mariadb
 * client loads from the same dump (CHECKSUM TABLE), including values that
 * LOAD DATA and SQL escape differently.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { Lanes } from '../src/rehearse/lanes.js';
import { restoreDumps } from '../src/rehearse/restore.js';
import { insertAsRows } from '../src/rehearse/insert-rows.js';
import { classify, StatementSplitter, StatementTooLarge, type Statement } from '../src/rehearse/sql-split.js';
import { redoLogSize, startScratchServer, stopScratchServer, type ScratchServer } from '../src/rehearse/scratch-server.js';
import { tempDir } from './helpers.js';

function split(text: string, chunk = 7): string[] {
  const s = new StatementSplitter();
  const out: Statement[] = [];
  const buf = Buffer.from(text, 'utf8');
  for (let i = 0; i < buf.length; i += chunk) s.push(buf.subarray(i, i + chunk), out);
  s.end(out);
  return out.map((x) => Buffer.from(x.sql, 'latin1').toString('utf8').trim());
}

describe('splitting a dump into statements', () => {
  test('semicolons inside strings, identifiers and comments do not end a statement; DELIMITER changes the terminator', () => {
    const sql = [
      "INSERT INTO t VALUES (1,'a;b\\';c'),(2,\"x;y\");",
      '-- a comment; with a semicolon',
      'CREATE TABLE `we;ird` (id INT) /* not; here */;',
      '/*!40101 SET NAMES utf8mb4 */;',
      'DELIMITER ;;',
      'CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.id = 1; END ;;',
      'DELIMITER ;',
      "INSERT INTO t VALUES (3,'ünïcödé');",
      '-- Dump completed',
    ].join('\n');
    assert.deepEqual(split(sql), [
      "INSERT INTO t VALUES (1,'a;b\\';c'),(2,\"x;y\")",
      'CREATE TABLE `we;ird` (id INT) /* not; here */',
      '/*!40101 SET NAMES utf8mb4 */',
      'CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.id = 1; END',
      "INSERT INTO t VALUES (3,'ünïcödé')",
    ]);
  });

  test('wherever the chunks are cut: DELIMITER after comments of any length, a split delimiter, --, /* and */ across chunks', () => {
    const sql = [
      'SET a = 1;',
      `-- ${'long comment; '.repeat(40)}`,
      `/* ${'block; comment '.repeat(40)} */`,
      '# hash comment;',
      'DELIMITER $$',
      "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT ';$'; END $$",
      '/*/ still a comment; $$ */ SELECT 2 $$',
      'DELIMITER ;;',
      'CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.id = 1; END ;;',
      'DELIMITER ;',
      "INSERT INTO t VALUES ('--', '/*', '*/');",
      '--not a comment without a space;',
      'SELECT 3',
    ].join('\n');
    const want = [
      'SET a = 1',
      "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT ';$'; END",
      'SELECT 2',
      'CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.id = 1; END',
      "INSERT INTO t VALUES ('--', '/*', '*/')",
      '--not a comment without a space',
      'SELECT 3',
    ];
    assert.deepEqual(split(sql, sql.length), want);
    for (let chunk = 1; chunk <= 64; chunk++) assert.deepEqual(split(sql, chunk), want, `chunks of ${chunk} bytes`);
  });

  test('past a long first line (where bytes are skipped in a tight loop), quotes, escapes, comments and lines still count wherever the chunks are cut', () => {
    const long = 'x'.repeat(300);
    const sql = [
      `INSERT INTO t VALUES ('${long}','a;\\'b','c\\\\'),`,
      '(2,"d;\\"e",`f;`), -- a comment; here',
      "(3,'g''h;', /* i; */ NULL), ('--', '/*', '#');",
      `SELECT '${long}';SELECT 2;`,
      '# the end; of it',
      'SELECT 3',
    ].join('\n');
    const want = [
      `INSERT INTO t VALUES ('${long}','a;\\'b','c\\\\'),\n(2,"d;\\"e",\`f;\`), -- a comment; here\n(3,'g''h;', /* i; */ NULL), ('--', '/*', '#')`,
      `SELECT '${long}'`,
      'SELECT 2',
      'SELECT 3',
    ];
    for (const chunk of [sql.length, ...Array.from({ length: 64 }, (_, i) => i + 1)]) {
      const s = new StatementSplitter();
      const out: Statement[] = [];
      const buf = Buffer.from(sql);
      for (let i = 0; i < buf.length; i += chunk) s.push(buf.subarray(i, i + chunk), out);
      s.end(out);
      assert.deepEqual(out.map((x) => [x.sql.trim(), x.line]), want.map((w, i) => [w, [1, 4, 4, 6][i]]), `chunks of ${chunk} bytes`);
    }
  });

  test('each statement knows its line; one over the cap is refused wherever it is cut, and comments count toward nothing', () => {
    const s = new StatementSplitter(100);
    const out: Statement[] = [];
    const text = `-- ${'x'.repeat(500)}\n\nSELECT 1;\nSELECT 2;\n\nINSERT INTO t VALUES ('${'y'.repeat(200)}');\nSELECT 4;\n`;
    const buf = Buffer.from(text);
    const pushAll = () => {
      for (let i = 0; i < buf.length; i += 13) s.push(buf.subarray(i, i + 13), out);
    };
    assert.throws(pushAll, (err: Error) => err instanceof StatementTooLarge && err.line === 6 && err.cap === 100);
    assert.deepEqual(out.map((x) => [x.sql, x.line]), [['SELECT 1', 3], ['SELECT 2', 4]]);
  });

  test('each statement is classified by what it touches', () => {
    assert.deepEqual(classify('\nINSERT INTO `instances` VALUES (1)'), { kind: 'insert', table: 'instances' });
    assert.deepEqual(classify('/*!40101 SET character_set_client = utf8 */'), { kind: 'session' });
    assert.deepEqual(classify('DROP TABLE IF EXISTS `a``b`'), { kind: 'table', table: 'a`b' });
    assert.deepEqual(classify('CREATE INDEX ix ON images (name)'), { kind: 'table', table: 'images' });
    assert.deepEqual(classify('USE `compute`'), { kind: 'use', database: 'compute' });
    assert.deepEqual(classify('CREATE DATABASE /*!32312 IF NOT EXISTS*/ `nova` /*!40100 DEFAULT CHARACTER SET utf8mb4 */'), { kind: 'create-database', database: 'nova' });
    assert.deepEqual(classify('LOCK TABLES `instances` WRITE'), { kind: 'skip' });
    assert.deepEqual(classify('/*!40000 ALTER TABLE `instances` DISABLE KEYS */'), { kind: 'skip' });
    assert.deepEqual(classify('CREATE VIEW v AS SELECT 1'), { kind: 'other' });
  });

  test('INSERT values become LOAD DATA rows; anything unusual stays an INSERT', () => {
    assert.deepEqual(insertAsRows("INSERT INTO `t` VALUES (1,'it''s',NULL,-2.5e3),\n(2,'a\\\\b\\'c\td','100\\%')"), {
      table: '`t`',
      columns: undefined,
      rows: "1\tit's\t\\N\t-2.5e3\n2\ta\\\\b'c\\td\t100\\\\%\n",
      count: 2,
    });
    assert.equal(insertAsRows('INSERT INTO t VALUES (1, 0x41)'), undefined);
    assert.equal(insertAsRows("INSERT INTO t VALUES (1, _binary 'x')"), undefined);
    assert.equal(insertAsRows('INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 1'), undefined);
    // A bare word is written out as it is read, and kept only if it is a number or NULL.
    assert.equal(insertAsRows('INSERT INTO t VALUES (3,null,+4,1.5E-3)')?.rows, '3\t\\N\t+4\t1.5E-3\n');
    assert.equal(insertAsRows('INSERT INTO t VALUES (12,nul)'), undefined);
    assert.equal(insertAsRows('INSERT INTO t VALUES (12,NOW())'), undefined);
    // Statement after statement, as a restore calls it: each one on its own (a sticky head pattern failed every other one).
    for (let k = 0; k < 4; k++) assert.equal(insertAsRows(`INSERT INTO t (a, \`key\`) VALUES (${k},'x')`)?.rows, `${k}\tx\n`, `statement ${k + 1}`);
  });
});

test("the scratch server's redo log is twice the data it will load, in 256 MiB steps, from 256 MiB to 4 GiB", () => {
  const MIB = 1024 * 1024;
  assert.equal(redoLogSize(undefined), 256 * MIB);
  assert.equal(redoLogSize(10 * MIB), 256 * MIB);
  assert.equal(redoLogSize(1111 * 1000 * 1000), 2304 * MIB);
  assert.equal(redoLogSize(50 * 1024 * MIB), 4096 * MIB);
});

describe('restoring into a scratch server', () => {
  let server: ScratchServer;
  const dir = tempDir('restore');
  before(async () => {
    server = await startScratchServer({ parentDir: dir });
  });
  after(async () => {
    await stopScratchServer(server, { keep: false });
  });
  const client = () => ['--no-defaults', '-uroot', '-h127.0.0.1', `-P${server.port}`, '--protocol=TCP'];
  const checksums = async (db: string) => {
    const tables = (await execa('mariadb', [...client(), '-N', '-e', `SELECT table_name FROM information_schema.tables WHERE table_schema = '${db}' ORDER BY table_name`])).stdout.split('\n').filter(Boolean);
    const out: Record<string, string> = {};
    for (const t of tables) out[t] = (await execa('mariadb', [...client(), '-N', '-e', `CHECKSUM TABLE \`${db}\`.\`${t}\``])).stdout.split('\t')[1]!;
    return out;
  };

  const dump = (db: string) =>
    [
      '/*!40101 SET NAMES utf8mb4 */;',
      '/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;',
      `CREATE DATABASE /*!32312 IF NOT EXISTS*/ \`${db}\` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;`,
      `USE \`${db}\`;`,
      'DROP TABLE IF EXISTS `odd`;',
      'CREATE TABLE `odd` (\n  `id` int(11) NOT NULL,\n  `s` text DEFAULT NULL,\n  `b` varbinary(16) DEFAULT NULL,\n  `d` decimal(10,3) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `s_idx` (`s`(10))\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;',
      'LOCK TABLES `odd` WRITE;',
      '/*!40000 ALTER TABLE `odd` DISABLE KEYS */;',
      "INSERT INTO `odd` VALUES (1,'tab\there',NULL,1.500),(2,'new\\nline \\\\ back\\\\slash \\'q\\' \"dq\"','',-0.001),(3,'ünïcödé ✓ 😀',0x00FF0A09,NULL),(4,'',NULL,0),(5,'\\\\N not null','\\0\\Z',2.000),(6,'percent 100\\% under\\_score',NULL,NULL);",
      "INSERT INTO `odd` VALUES (7,'it''s',NULL,7),(8,'a;b',NULL,8);",
      '/*!40000 ALTER TABLE `odd` ENABLE KEYS */;',
      'UNLOCK TABLES;',
      'CREATE TABLE big (id INTEGER NOT NULL PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB;',
      'CREATE INDEX big_v ON big (v);',
      ...Array.from({ length: 40 }, (_, k) => `INSERT INTO big (id, v) VALUES ${Array.from({ length: 50 }, (_, j) => `(${k * 50 + j + 1}, 'value-${(k * 50 + j) % 97}')`).join(',\n')};`),
      'CREATE VIEW big_count AS SELECT COUNT(*) AS n FROM big;',
      '/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;',
    ].join('\n') + '\n';

  test('a gzip dump restored over 4 connections is identical to what the mariadb client restores', async () => {
    const file = path.join(dir, 'odd.sql.gz');
    writeFileSync(file, gzipSync(dump('lf_restored')));
    const progress: number[] = [];
    const inserts = async () => Number((await execa('mariadb', [...client(), '-N', '-e', "SHOW GLOBAL STATUS LIKE 'Com_insert'"])).stdout.split('\t')[1]);
    const before = await inserts();
    const r = await restoreDumps({ files: [file], target: server.target, jobs: 4, onProgress: (p) => progress.push(p.bytes) });
    assert.deepEqual(r.databases, { lf_restored: ['big', 'odd'] });
    // Every plain INSERT went as LOAD DATA rows; only odd's first, with a hex literal, ran as the INSERT it is.
    assert.equal((await inserts()) - before, 1, 'INSERT statements the server parsed');
    assert.ok(progress.length > 0 && progress.at(-1) === r.bytes, 'progress ends at the dump size');
    await execa('mariadb', client(), { input: dump('client_restored') });
    const ours = await checksums('lf_restored');
    assert.deepEqual(ours, await checksums('client_restored'));
    assert.ok(Object.keys(ours).includes('big_count'), 'the view came along');
    const keys = await execa('mariadb', [...client(), '-N', '-e', "SELECT index_name FROM information_schema.statistics WHERE table_schema = 'lf_restored' AND index_name <> 'PRIMARY' ORDER BY 1"]);
    assert.deepEqual(keys.stdout.split('\n'), ['big_v', 's_idx'], 'deferred secondary keys are built');
  });

  test("a table's deferred keys wait for all of its rows, not for other tables; whoever waits for the table waits for them too", async () => {
    await execa('mariadb', [...client(), '-e', 'CREATE DATABASE lf_lanes; CREATE TABLE lf_lanes.log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(16))']);
    const lanes = await Lanes.open(server.target, 3, 1 << 30);
    const a = { db: 'lf_lanes', table: 'a', bytes: 1 };
    try {
      // Table a's rows take a while (seconds: b's row must land first even on a busy machine), on two
      // connections; what must follow them is queued behind the table.
      lanes.toLeastLoaded({ ...a, sql: "INSERT INTO log (what) SELECT 'a-rows-1' FROM (SELECT SLEEP(1.5)) s" });
      lanes.toLeastLoaded({ ...a, sql: "INSERT INTO log (what) SELECT 'a-rows-2' FROM (SELECT SLEEP(2)) s" });
      lanes.afterTable('lf_lanes.a', { ...a, sql: "INSERT INTO log (what) VALUES ('a-keys')" });
      // Another table goes on meanwhile, on the third connection.
      lanes.toLeastLoaded({ db: 'lf_lanes', table: 'b', bytes: 1, sql: "INSERT INTO log (what) VALUES ('b-rows')" });
      await lanes.tableDone('lf_lanes.a');
      const seen = (await execa('mariadb', [...client(), '-N', '-e', 'SELECT what FROM lf_lanes.log ORDER BY id'])).stdout.split('\n');
      assert.deepEqual(seen, ['b-rows', 'a-rows-1', 'a-rows-2', 'a-keys']);
      // With nothing of the table queued, it goes at once.
      lanes.afterTable('lf_lanes.a', { ...a, sql: "INSERT INTO log (what) VALUES ('a-again')" });
      await lanes.idle();
      assert.equal(lanes.failure, undefined);
    } finally {
      await lanes.close();
    }
    assert.equal((await execa('mariadb', [...client(), '-N', '-e', "SELECT COUNT(*) FROM lf_lanes.log WHERE what = 'a-again'"])).stdout, '1');

    // A long statement (a key build) is passed over: what comes next goes to another connection, and
    // quiet() (what a CREATE DATABASE waits for) does not wait for it, nor for a session statement
    // queued behind it; idle() does.
    await execa('mariadb', [...client(), '-e', 'TRUNCATE lf_lanes.log']);
    const two = await Lanes.open(server.target, 2, 1 << 30);
    try {
      const order: string[] = [];
      two.toLeastLoaded({ ...a, bytes: 0, long: true, sql: "INSERT INTO log (what) SELECT 'a-sort' FROM (SELECT SLEEP(2)) s" });
      two.toLeastLoaded({ db: 'lf_lanes', table: 'b', bytes: 1, sql: "INSERT INTO log (what) VALUES ('b-rows')" });
      // A dump's next file begins with session statements, on every connection: behind the sort too.
      two.toEach({ db: undefined, table: undefined, bytes: 0, sql: 'SET NAMES utf8mb4' });
      const idle = two.idle().then(() => order.push('idle'));
      await two.quiet();
      order.push('quiet');
      two.toLeastLoaded({ db: 'lf_lanes', table: 'c', bytes: 1, sql: "INSERT INTO log (what) VALUES ('c-rows')" });
      await idle;
      assert.equal(two.failure, undefined);
      assert.deepEqual(order, ['quiet', 'idle']);
    } finally {
      await two.close();
    }
    const seen = (await execa('mariadb', [...client(), '-N', '-e', 'SELECT what FROM lf_lanes.log ORDER BY id'])).stdout.split('\n');
    assert.deepEqual(seen, ['b-rows', 'c-rows', 'a-sort']);

    // Through restoreDumps: rows of a table after another table's, and the table dropped and made again, end as the client's.
    const file = path.join(dir, 'lf_interleaved.sql');
    const text = (db: string) =>
      [
        `CREATE DATABASE \`${db}\`;`,
        `USE \`${db}\`;`,
        'CREATE TABLE `a` (\n  `id` int(11) NOT NULL,\n  `v` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `a_v` (`v`)\n) ENGINE=InnoDB;',
        ...Array.from({ length: 8 }, (_, k) => `INSERT INTO \`a\` VALUES ${Array.from({ length: 200 }, (_, j) => `(${k * 200 + j + 1},'v${(k * 200 + j) % 13}')`).join(',')};`),
        'CREATE TABLE `b` (\n  `id` int(11) NOT NULL,\n  `w` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `b_w` (`w`)\n) ENGINE=InnoDB;',
        "INSERT INTO `b` VALUES (1,'x'),(2,'y');",
        "INSERT INTO `a` VALUES (5000,'late');",
        'DROP TABLE `b`;',
        'CREATE TABLE `b` (\n  `id` int(11) NOT NULL,\n  `w` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `b_w2` (`w`)\n) ENGINE=InnoDB;',
        "INSERT INTO `b` VALUES (3,'z');",
        // Rows bigger than the reused rows buffer get one of their own.
        'CREATE TABLE `c` (\n  `id` int(11) NOT NULL,\n  `t` longtext,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;',
        `INSERT INTO \`c\` VALUES (1,'${'x\\t'.repeat(2_000_000)}'),(2,'small');`,
      ].join('\n') + '\n';
    writeFileSync(file, text('lf_interleaved'));
    await restoreDumps({ files: [file], target: server.target, jobs: 3 });
    await execa('mariadb', client(), { input: text('client_interleaved') });
    assert.deepEqual(await checksums('lf_interleaved'), await checksums('client_interleaved'));
    const keys = await execa('mariadb', [...client(), '-N', '-e', "SELECT CONCAT(table_name, '.', index_name) FROM information_schema.statistics WHERE table_schema = 'lf_interleaved' AND index_name <> 'PRIMARY' ORDER BY 1"]);
    assert.deepEqual(keys.stdout.split('\n'), ['a.a_v', 'b.b_w2']);
    assert.equal((await execa('mariadb', [...client(), '-N', '-e', 'SELECT LENGTH(t) FROM lf_interleaved.c ORDER BY id'])).stdout, '4000000\n5', 'x and a tab, two million times');
  });

  test("one file per database (mariadb-dump's shape), each with a deferred key, restored together: all equal the client's, every key built", async () => {
    const one = (db: string, k: number) =>
      [
        "/*!40101 SET NAMES utf8mb4 */;",
        `CREATE TABLE \`t${k}\` (\n  \`id\` int(11) NOT NULL,\n  \`v\` varchar(20) DEFAULT NULL,\n  PRIMARY KEY (\`id\`),\n  KEY \`t${k}_v\` (\`v\`)\n) ENGINE=InnoDB;`,
        ...Array.from({ length: 6 }, (_, b) => `INSERT INTO \`t${k}\` VALUES ${Array.from({ length: 300 }, (_, j) => `(${b * 300 + j + 1},'${db}-${(b * 300 + j) % 17}')`).join(',')};`),
      ].join('\n') + '\n';
    const files = ['lf_perdb_a', 'lf_perdb_b', 'lf_perdb_c'].map((db, k) => {
      const f = path.join(dir, `${db}.sql`);
      writeFileSync(f, one(db, k));
      return f;
    });
    const r = await restoreDumps({ files, target: server.target, jobs: 3 });
    assert.deepEqual(r.databases, { lf_perdb_a: ['t0'], lf_perdb_b: ['t1'], lf_perdb_c: ['t2'] });
    for (const [k, db] of ['lf_perdb_a', 'lf_perdb_b', 'lf_perdb_c'].entries()) {
      await execa('mariadb', [...client(), '-e', `CREATE DATABASE client_${db}`]);
      await execa('mariadb', [...client(), `client_${db}`], { input: one(db, k) });
      assert.deepEqual(await checksums(db), await checksums(`client_${db}`), db);
      const keys = await execa('mariadb', [...client(), '-N', '-e', `SELECT index_name FROM information_schema.statistics WHERE table_schema = '${db}' AND index_name <> 'PRIMARY'`]);
      assert.equal(keys.stdout, `t${k}_v`, `${db}'s deferred key is built`);
    }
  });

  test('a dump named after its database, with a --server prefix, lands in the prefixed database; a bad statement is an error naming the table', async () => {
    const file = path.join(dir, 'shop.sql');
    writeFileSync(file, 'CREATE TABLE items (id INT PRIMARY KEY);\nINSERT INTO items VALUES (1),(2),(3);\n');
    const r = await restoreDumps({ files: [file], target: server.target, jobs: 2, rename: (d) => `pre_${d}` });
    assert.deepEqual(r.databases, { pre_shop: ['items'] });
    const n = await execa('mariadb', [...client(), '-N', '-e', 'SELECT COUNT(*) FROM pre_shop.items']);
    assert.equal(n.stdout.trim(), '3');

    // The dump's own DROP DATABASE is renamed too: the real database of that name survives.
    await execa('mariadb', [...client(), '-e', 'CREATE DATABASE real_one; CREATE TABLE real_one.keep (id INT); INSERT INTO real_one.keep VALUES (42)']);
    const dropping = path.join(dir, 'dropping.sql');
    writeFileSync(dropping, '/*!40000 DROP DATABASE IF EXISTS `real_one`*/;\nCREATE DATABASE `real_one`;\nUSE `real_one`;\nCREATE TABLE t (id INT);\nINSERT INTO t VALUES (1);\n');
    const d = await restoreDumps({ files: [dropping], target: server.target, jobs: 2, rename: (x) => `pre_${x}` });
    assert.deepEqual(d.databases, { pre_real_one: ['t'] });
    assert.equal((await execa('mariadb', [...client(), '-N', '-e', 'SELECT id FROM real_one.keep'])).stdout.trim(), '42');
    const qualified = path.join(dir, 'qualified.sql');
    writeFileSync(qualified, 'USE real_one;\nINSERT INTO `real_one`.`keep` VALUES (7);\n');
    await assert.rejects(restoreDumps({ files: [qualified], target: server.target, jobs: 1, rename: (x) => `pre_${x}` }), /names table real_one\.keep with its database/);
    assert.equal((await execa('mariadb', [...client(), '-N', '-e', 'SELECT COUNT(*) FROM real_one.keep'])).stdout.trim(), '1');

    const bad = path.join(dir, 'broken.sql');
    writeFileSync(bad, 'CREATE TABLE items (id INT PRIMARY KEY);\nINSERT INTO items VALUES (1),(1);\n');
    // With unique_checks=0 a load into an empty InnoDB table takes the bulk path, and MariaDB finds the
    // duplicate only at COMMIT, where it says no more than "Operation not permitted" (MDEV-24818).
    await assert.rejects(restoreDumps({ files: [bad], target: server.target, jobs: 2 }), /restore failed \(table broken\.items\): (.*Duplicate entry '1'|LOAD DATA of 1 INSERT\(s\) with 2 rows loaded 1 with 1 warning|Got error 1 "Operation not permitted" during COMMIT)/);
  });

  test('a DELIMITER line and a ;; delimiter cut by the 1 MiB read chunk are still recognised', async () => {
    const CHUNK = 1024 * 1024; // restore reads plain files in chunks of this size
    const trigger = (db: string) => `DELIMITER ;;\nCREATE TRIGGER ${db}.up BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.v = UPPER(NEW.v); END ;;\nDELIMITER ;\n`;
    // Cut inside "DELIMITER", between the two ";" of ";;", and inside the last "DELIMITER ;".
    for (const [name, cutAt] of [['lf_cut_word', 4], ['lf_cut_delim', trigger('lf_cut_delim').lastIndexOf(';;') + 1], ['lf_cut_last', trigger('lf_cut_last').lastIndexOf('DELIMITER') + 3]] as const) {
      const head = `CREATE DATABASE ${name};\nUSE ${name};\nCREATE TABLE t (id INT PRIMARY KEY, v LONGTEXT);\nINSERT INTO t VALUES (1,'`;
      const tail = "');\n";
      const pad = CHUNK - cutAt - head.length - tail.length;
      const text = head + 'x'.repeat(pad) + tail + trigger(name) + "INSERT INTO t VALUES (2,'b');\n";
      assert.equal(text.slice(CHUNK - cutAt, CHUNK - cutAt + 9), 'DELIMITER');
      const file = path.join(dir, `${name}.sql`);
      writeFileSync(file, text);
      await restoreDumps({ files: [file], target: server.target, jobs: 2 });
      const rows = await execa('mariadb', [...client(), '-N', '-e', `SELECT id, LEFT(v, 3) FROM ${name}.t ORDER BY id`]);
      assert.equal(rows.stdout, '1\txxx\n2\tB', `${name}: the trigger was created as one statement, before the second row`);
    }
  });
});
