/**
 * rehearse --server runs as a temporary account the server confines to the
 * rehearsal's prefixed databases: on the real MariaDB, a dump and a step
 * that update and delete rows of another database change nothing there,
 * and the account is gone afterwards, after a failure and after Ctrl-C too.
 * A server account that cannot create such an account is refused first.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { writeDump } from '../fixtures/dump.js';
import { grantPattern, missingPrivileges } from '../src/database/confined-account.js';
import { currentUserDefiner } from '../src/rehearse/restore.js';
import { CACHE, chainVariant, dropDatabases, eventually, leapfrog, MARIADB_PORT, MARIADB_SKIP, MARIADB_URL, ROOT, tempDir, uniquePrefix, withMariadb } from './helpers.js';

const VICTIM = `${uniquePrefix()}victim`;
const SERVER = MARIADB_URL;

/** CHECKSUM TABLE of every table of the victim database, and its rows. */
async function victimState(): Promise<unknown> {
  return withMariadb(async (c) => {
    const [sums] = await c.query(`CHECKSUM TABLE \`${VICTIM}\`.t, \`${VICTIM}\`.u`);
    const [rows] = await c.query(`SELECT id, v FROM \`${VICTIM}\`.t ORDER BY id`);
    return { sums, rows };
  });
}

async function accountsNamed(user: string): Promise<number> {
  return withMariadb(async (c) => {
    const [rows] = await c.query('SELECT COUNT(*) AS n FROM mysql.user WHERE User = ?', [user]);
    return Number((rows as { n: number }[])[0]!.n);
  });
}

async function databasesLike(prefix: string): Promise<string[]> {
  return withMariadb(async (c) => {
    const [rows] = await c.query('SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?', [grantPattern(prefix)]);
    return (rows as { n: string }[]).map((r) => r.n);
  });
}

/** The temporary account the rehearsal said it created. */
function accountOf(stderr: string): string {
  const m = /temporary account '(leapfrog_r_[0-9a-f]{8})'@/.exec(stderr);
  assert.ok(m, `the rehearsal names its temporary account:\n${stderr}`);
  return m[1]!;
}

function sleeping(): boolean {
  return readdirSync('/proc').some((pid) => {
    try {
      return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\u000041\u0000';
    } catch {
      return false;
    }
  });
}

let n = 0;
const prefix = () => `lfrc${process.pid % 10000}x${n++}_`;

describe('rehearse --server is confined to its prefixed databases [mariadb]', { skip: MARIADB_SKIP }, () => {
  const dir = tempDir('confined');
  const dump = path.join(dir, 'cloud.sql');
  let before0: unknown;

  before(async () => {
    await withMariadb(async (c) => {
      await c.query(`CREATE DATABASE \`${VICTIM}\``);
      await c.query(`CREATE TABLE \`${VICTIM}\`.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB`);
      await c.query(`CREATE TABLE \`${VICTIM}\`.u (id INT PRIMARY KEY) ENGINE=InnoDB`);
      await c.query(`INSERT INTO \`${VICTIM}\`.t VALUES (1,10),(2,20),(3,30),(4,40)`);
      await c.query(`INSERT INTO \`${VICTIM}\`.u VALUES (1),(2)`);
    });
    await writeDump(dump, { instances: 12, nullUuids: 1, seed: 3, prefix: '' });
    before0 = await victimState();
  });
  after(async () => {
    await dropDatabases([VICTIM]);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const attack of [
    `UPDATE \`${VICTIM}\`.t SET v = v + 1`,
    `DELETE FROM ${VICTIM}.t WHERE id > 1`,
    `DELETE u FROM \`${VICTIM}\`.u AS u`,
    `INSERT INTO \`${VICTIM}\`.t VALUES (9, 90)`,
  ]) {
    test(`a dump statement "${attack.replace(VICTIM, 'VICTIM')}" is refused by the server; the other database is unchanged and the account dropped`, async () => {
      const file = path.join(dir, `attack-${n}.sql`);
      await writeDump(file, { instances: 5, nullUuids: 0, seed: 3, prefix: '' });
      appendFileSync(file, `\n${attack};\n`);
      const p = prefix();
      const r = await leapfrog(['rehearse', '--chain', path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml'), '--dump', file, '--server', SERVER, '--prefix', p, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE]);
      assert.notEqual(r.exitCode, 0, 'the rehearsal fails');
      // Refused by the server (the confined account), or earlier by the restore's own classifier.
      assert.match(r.stderr, /command denied to user 'leapfrog_r_|names table \S+ with its database/, r.stderr);
      assert.deepEqual(await victimState(), before0, 'CHECKSUM TABLE of the other database is unchanged');
      assert.equal(await accountsNamed(accountOf(r.stderr)), 0, 'the temporary account is dropped');
      assert.deepEqual(await databasesLike(p), [], 'the prefixed copies are dropped');
    });
  }

  test('a step that updates and deletes rows of another database fails; the other database is unchanged and the account dropped', async () => {
    const chain = chainVariant('attack', (c) => {
      c.projects.compute.config['attack.cnf'] = '[client]\nuser={{ db.main.user }}\npassword="{{ db.main.password }}"\nhost={{ db.main.host }}\nport={{ db.main.port }}\n';
      c.releases[0].steps.unshift({
        project: 'compute',
        env: 'compute-kilo',
        name: 'attack',
        data: ['sh', '-c', `mariadb --defaults-extra-file="$0" --protocol=TCP --force -e 'UPDATE \`${VICTIM}\`.t SET v = 0; DELETE FROM \`${VICTIM}\`.t; DELETE FROM \`${VICTIM}\`.u; DROP DATABASE \`${VICTIM}\`'`, "{{ config['attack.cnf'] }}"],
      });
    });
    const p = prefix();
    const r = await leapfrog(['rehearse', '--chain', chain, '--dump', dump, '--server', SERVER, '--prefix', p, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE, '--format', 'json']);
    assert.equal(r.exitCode, 1, r.stderr);
    const report = JSON.parse(r.stdout) as { failures: { step: string; tail: string[] }[] };
    assert.match(JSON.stringify(report.failures), /denied to user 'leapfrog_r_/, 'the server refused the step');
    assert.deepEqual(await victimState(), before0, 'CHECKSUM TABLE of the other database is unchanged');
    assert.equal(await accountsNamed(accountOf(r.stderr)), 0, 'the temporary account is dropped');
    assert.deepEqual(await databasesLike(p), [], 'the prefixed copies are dropped');
  });

  test('Ctrl-C during a step: exit 130, the account and the copies are dropped', async () => {
    const chain = chainVariant('sleepy', (c) => {
      c.releases[0].steps.unshift({ project: 'compute', env: 'compute-kilo', name: 'nap', data: ['sh', '-c', 'sleep 41'] });
    });
    const p = prefix();
    const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'rehearse', '--chain', chain, '--dump', dump, '--server', SERVER, '--prefix', p, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE], { reject: false, stdin: 'ignore' });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    // The step's child is running: its `sleep 41` is in the process table.
    await eventually('the step to run', () => (sleeping() ? true : undefined), 120_000);
    const user = accountOf(stderr);
    assert.ok((await accountsNamed(user)) > 0, 'the account exists while the rehearsal runs');
    child.kill('SIGINT');
    const r = await child;
    assert.equal(r.exitCode, 130, String(r.stderr));
    assert.equal(await accountsNamed(user), 0, 'the temporary account is dropped');
    assert.deepEqual(await databasesLike(p), [], 'the prefixed copies are dropped');
  });

  test('a succeeding rehearsal drops its account too', async () => {
    const p = prefix();
    const r = await leapfrog(['rehearse', '--chain', path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml'), '--dump', dump, '--server', SERVER, '--prefix', p, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(await accountsNamed(accountOf(r.stderr)), 0);
    assert.deepEqual(await victimState(), before0);
  });

  test('views and triggers whose DEFINER is another account restore, as the confined account', async () => {
    const file = path.join(dir, 'definers.sql');
    await writeDump(file, { instances: 5, nullUuids: 0, seed: 3, prefix: '' });
    appendFileSync(
      file,
      [
        '',
        'CREATE DATABASE /*!32312 IF NOT EXISTS*/ `extradb` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;',
        'USE `extradb`;',
        'CREATE TABLE `t` (`id` int NOT NULL, `n` int DEFAULT NULL, PRIMARY KEY (`id`)) ENGINE=InnoDB;',
        'DELIMITER ;;',
        "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `t_bi` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.n = 1 */;;",
        'DELIMITER ;',
        '/*!50001 CREATE ALGORITHM=UNDEFINED */',
        "/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */",
        '/*!50001 VIEW `v` AS select `t`.`id` AS `id` from `t` */;',
        '',
      ].join('\n'),
    );
    const p = prefix();
    const r = await leapfrog(['rehearse', '--chain', path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml'), '--dump', file, '--server', SERVER, '--prefix', p, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(await accountsNamed(accountOf(r.stderr)), 0);
    assert.deepEqual(await databasesLike(p), []);
  });

  test('a --prefix that existing databases already match is refused before anything is created', async () => {
    const r = await leapfrog(['rehearse', '--chain', path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml'), '--dump', dump, '--server', SERVER, '--prefix', 'lf_', '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE]);
    assert.equal(r.exitCode, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`${VICTIM}.*already start with the prefix lf_`));
    assert.doesNotMatch(r.stderr, /temporary account '/);
  });

  for (const [lacks, grant] of [
    ['GRANT OPTION', 'GRANT ALL PRIVILEGES ON *.* TO ?@?'],
    ['CREATE USER', 'GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX ON *.* TO ?@? WITH GRANT OPTION'],
  ] as const) {
    test(`a server account without ${lacks} is refused (exit 3) naming it, and nothing is created`, async () => {
      const user = `${uniquePrefix()}adm`;
      const password = 'Adm1n-pw';
      await withMariadb(async (c) => {
        await c.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '127.0.0.1', password]);
        await c.query(grant, [user, '127.0.0.1']);
      });
      try {
        const p = prefix();
        const server = `mysql://${user}:${password}@127.0.0.1:${MARIADB_PORT}`;
        const r = await leapfrog(['rehearse', '--chain', path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml'), '--dump', dump, '--server', server, '--prefix', p, '--state-dir', path.join(dir, 'state'), '--cache-dir', CACHE]);
        assert.equal(r.exitCode, 3, r.stderr);
        assert.match(r.stderr, new RegExp(`lacks ${lacks}[: ]`));
        assert.doesNotMatch(r.stderr, /temporary account '|restoring/);
        assert.deepEqual(await databasesLike(p), []);
      } finally {
        await withMariadb((c) => c.query('DROP USER IF EXISTS ?@?', [user, '127.0.0.1']));
      }
    });
  }
});

test('missingPrivileges reads SHOW GRANTS as MariaDB and MySQL print it', () => {
  assert.deepEqual(missingPrivileges(['GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION']), []);
  assert.deepEqual(missingPrivileges(["GRANT SELECT, CREATE USER ON *.* TO `a`@`%` IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION"]), []);
  assert.deepEqual(missingPrivileges(['GRANT USAGE ON *.* TO `a`@`%`', 'GRANT ALL PRIVILEGES ON `x`.* TO `a`@`%` WITH GRANT OPTION']), ['CREATE USER', 'GRANT OPTION']);
  assert.deepEqual(missingPrivileges(['GRANT ALL PRIVILEGES ON *.* TO `a`@`%`']), ['GRANT OPTION']);
  assert.deepEqual(missingPrivileges(['GRANT SELECT ON *.* TO `a`@`%` WITH MAX_USER_CONNECTIONS 5 GRANT OPTION']), ['CREATE USER']);
});

test('currentUserDefiner rewrites the first DEFINER clause, quoted any way, and nothing else', () => {
  assert.equal(currentUserDefiner('/*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER x */'), '/*!50017 DEFINER=CURRENT_USER*/ /*!50003 TRIGGER x */');
  assert.equal(currentUserDefiner("CREATE DEFINER = 'a''b'@'%' PROCEDURE p() SELECT 'DEFINER=`x`@`y`'"), "CREATE DEFINER=CURRENT_USER PROCEDURE p() SELECT 'DEFINER=`x`@`y`'");
  assert.equal(currentUserDefiner('CREATE DEFINER=nova@10.0.0.% VIEW v AS SELECT 1'), 'CREATE DEFINER=CURRENT_USER VIEW v AS SELECT 1');
  assert.equal(currentUserDefiner('CREATE VIEW v AS SELECT 1'), 'CREATE VIEW v AS SELECT 1');
});

test('grantPattern escapes the GRANT wildcards so the pattern matches exactly the prefix', () => {
  assert.equal(grantPattern('lfr1a_'), 'lfr1a\\_%');
  assert.equal(grantPattern('a%b_c'), 'a\\%b\\_c%');
  assert.equal(grantPattern('x\\y'), 'x\\\\y%');
});
