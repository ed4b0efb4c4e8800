/**
 * check-migrations against the test run's MariaDB server (MARIADB_URL, root):
 * the fake cloud under a random prefix, real client connections, a real open
 * transaction, a MyISAM table, a latin1 table, an account without PROCESS.
 * The server is shared: every name here carries this run's prefix and is
 * dropped at the end; checks only look at the chain's own databases.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { createCloud } from '../fixtures/cloud.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CACHE, chainVariant, leapfrog, MARIADB_PORT, MARIADB_SKIP, MARIADB_URL, mariadbOptions, tempDir, withMariadb } from './helpers.js';

const yamlOf = (file: string): Json => parseYaml(readFileSync(file, 'utf8')) as Json;

type Json = Record<string, any>;
const URL_ = MARIADB_URL;
const prefix = `lf_${randomBytes(4).toString('hex')}_`;
const names = { compute: `${prefix}compute`, identity: `${prefix}identity`, image: `${prefix}image` };
const user = `${prefix}ro`;
let chain: string;
let state: string;
let root: mysql.Connection;

const check = (report: Json, name: string): Json => {
  const c = report.checks.find((x: Json) => x.check === name);
  assert.ok(c, `no check ${name}`);
  return c;
};

async function report(extra: string[] = [], db = URL_): Promise<{ exitCode: number; report: Json }> {
  const r = await leapfrog(['check-migrations', '--chain', chain, '--db', db, '--state-dir', state, '--cache-dir', CACHE, '--format', 'json', ...extra]);
  assert.ok(r.stdout.startsWith('{'), `no JSON (exit ${r.exitCode}): ${r.stderr}`);
  return { exitCode: r.exitCode, report: JSON.parse(r.stdout) as Json };
}

describe('check-migrations on MariaDB', { skip: MARIADB_SKIP }, () => {
  before(async () => {
    await withMariadb(async () => {}); // a clear error first when the server is required but missing
    await createCloud(URL_, { names, instances: 40 });
    chain = chainVariant('mariadb', (c) => {
      c.projects.compute.databases = { main: names.compute, api: `${prefix}compute_api` };
      c.projects.identity.databases = { main: names.identity };
      c.projects.image.databases = { main: names.image };
    });
    state = tempDir('state');
    root = await mysql.createConnection(mariadbOptions());
  });

  after(async () => {
    for (const n of [...Object.values(names), `${prefix}compute_api`]) await root.query(`DROP DATABASE IF EXISTS \`${n}\``);
    await root.query(`DROP USER IF EXISTS '${user}'@'%'`);
    await root.end();
  });

  test('the fake cloud at juno is healthy (exit 0): flavor blocker a Success the plan fixes, server facts Success, blockers on missing columns reported as not yet', async () => {
    const { exitCode, report: r } = await report();
    assert.equal(exitCode, 0, JSON.stringify(r.checks.filter((c: Json) => c.result !== 'Success')));
    assert.equal(check(r, 'Blocker: compute flavor data in system metadata').result, 'Success');
    assert.match(check(r, 'Blocker: compute flavor data in system metadata').details, /The plan fixes these \d+ rows: kilo\/compute\/3/);
    assert.equal(check(r, 'Data batches').data[0].step, 'kilo/compute/3');
    const nodes = check(r, 'Blocker: compute compute nodes and aggregates without uuid');
    assert.equal(nodes.data.outcome.kind, 'not-yet');
    assert.match(check(r, 'Target').details, /reachable, MariaDB \d+\.\d+/);
    for (const name of ['Connected clients', 'Transactions and locks', 'Storage engines', 'Charsets and collations', 'Free space', 'Versions']) {
      assert.equal(check(r, name).result, 'Success', `${name}: ${check(r, name).details}`);
    }
    assert.ok(check(r, 'Free space').data.snapshotBytes > 0, 'snapshot size from information_schema.TABLES');
    assert.match(check(r, 'Databases').details, new RegExp(`compute api \\(${prefix}compute_api\\): not yet; created by mitaka/compute/2`));

    // The same target with kilo's flavor step deleted from the chain: nothing fixes the blocker.
    const noFlavor = chainVariant('mariadb-no-flavor', (c) => {
      c.projects.compute.databases = { main: names.compute, api: `${prefix}compute_api` };
      c.projects.identity.databases = { main: names.identity };
      c.projects.image.databases = { main: names.image };
      const kilo = c.releases.find((x: Json) => x.release === 'kilo');
      kilo.steps = kilo.steps.filter((s: Json) => !(s.data ?? []).includes('migrate_flavor_data'));
    });
    const f = await leapfrog(['check-migrations', '--chain', noFlavor, '--db', URL_, '--state-dir', state, '--cache-dir', CACHE, '--format', 'json']);
    assert.equal(f.exitCode, 2, f.stderr);
    assert.equal(check(JSON.parse(f.stdout) as Json, 'Blocker: compute flavor data in system metadata').result, 'Failure');
  });

  test('a client connected to a chain database is a Failure; its open transaction a Warning, then a Failure once older than --max-transaction-age', async () => {
    const client = await mysql.createConnection({ ...mariadbOptions(), database: names.compute });
    try {
      const [[{ id }]] = (await client.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
      const idle = await report();
      assert.equal(idle.exitCode, 2);
      const c = check(idle.report, 'Connected clients');
      assert.equal(c.result, 'Failure');
      assert.deepEqual(c.data.map((x: Json) => x.id), [id], 'only the test client: leapfrog\'s own connections are not counted');
      assert.match(c.details, new RegExp(`id ${id} root@[^ ]+ on ${names.compute}: Sleep`));
      assert.equal(check(idle.report, 'Transactions and locks').result, 'Success');

      await client.query('START TRANSACTION');
      await client.query('SELECT id FROM instances ORDER BY id LIMIT 1 FOR UPDATE');
      const young = await report(['--max-transaction-age', '3600']);
      const t = check(young.report, 'Transactions and locks');
      assert.equal(t.result, 'Warning', t.details);
      assert.match(t.details, new RegExp(`thread ${id} root@[^ ]+ on ${names.compute}: RUNNING for \\d+ s`));
      const old = await report(['--max-transaction-age', '0']);
      assert.equal(check(old.report, 'Transactions and locks').result, 'Failure');
      assert.match(check(old.report, 'Transactions and locks').details, /a migration's DDL would wait on their metadata locks/);
      await client.query('ROLLBACK');
    } finally {
      await client.end();
    }
    assert.equal(check((await report()).report, 'Connected clients').result, 'Success');
  });

  test('a MyISAM table and a latin1 table are Warnings naming them', async () => {
    await root.query(`CREATE TABLE \`${names.image}\`.legacy_cache (id INT PRIMARY KEY) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4`);
    await root.query(`CREATE TABLE \`${names.identity}\`.old_notes (id INT PRIMARY KEY, t TEXT) ENGINE=InnoDB DEFAULT CHARSET=latin1`);
    try {
      const { exitCode, report: r } = await report();
      assert.equal(exitCode, 1);
      const e = check(r, 'Storage engines');
      assert.equal(e.result, 'Warning');
      assert.deepEqual(e.data.map((t: Json) => `${t.schema}.${t.table} ${t.engine}`), [`${names.image}.legacy_cache MyISAM`]);
      const c = check(r, 'Charsets and collations');
      assert.equal(c.result, 'Warning');
      assert.match(c.details, new RegExp(`identity: [^\\n]*latin1_swedish_ci \\(1 table, e\\.g\\. ${names.identity}\\.old_notes\\)`));
      assert.doesNotMatch(c.details, /\nimage: .*latin1/, 'image is mixed in engines, not collations');

      // Declared as the project's own design: no word about them; an undeclared one still named, without advice for the others.
      const own = Object.keys(c.data.identity as Record<string, number>);
      assert.ok(own.includes('latin1_swedish_ci') && own.length === 2, JSON.stringify(c.data));
      const declared = (list: string[]) =>
        chainVariant(`collations-${list.length}`, (doc) => {
          for (const [k, v] of Object.entries(yamlOf(chain).projects as Json)) doc.projects[k].databases = v.databases;
          doc.projects.identity.collations = list;
        });
      const all = await leapfrog(['check-migrations', '--chain', declared(own), '--db', URL_, '--state-dir', state, '--cache-dir', CACHE, '--format', 'json']);
      const allRow = check(JSON.parse(all.stdout) as Json, 'Charsets and collations');
      assert.equal(allRow.result, 'Success', allRow.details);
      assert.match(allRow.details, /identity: [^;]*latin1_swedish_ci[^;]* \(as the chain declares\)/);
      const one = await leapfrog(['check-migrations', '--chain', declared(own.filter((x) => x !== 'latin1_swedish_ci')), '--db', URL_, '--state-dir', state, '--cache-dir', CACHE, '--format', 'json']);
      const oneRow = check(JSON.parse(one.stdout) as Json, 'Charsets and collations');
      assert.equal(oneRow.result, 'Warning');
      assert.match(oneRow.details, new RegExp(`does not declare[^\\n]*\\nidentity: latin1_swedish_ci \\(1 table, e\\.g\\. ${names.identity}\\.old_notes\\); the chain declares ${own.find((x) => x !== 'latin1_swedish_ci')}`));
      assert.doesNotMatch(oneRow.details, /Mixed collations/);
    } finally {
      await root.query(`DROP TABLE \`${names.image}\`.legacy_cache`);
      await root.query(`DROP TABLE \`${names.identity}\`.old_notes`);
    }
  });

  test('a server that does not answer is a Target Failure, and the checks that need it are not run', async () => {
    const { exitCode, report: r } = await report([], 'mysql://root@127.0.0.1:1');
    assert.equal(exitCode, 2);
    assert.equal(check(r, 'Target').result, 'Failure');
    assert.match(check(r, 'Target').details, /cannot connect \(ECONNREFUSED/);
    assert.equal(r.checks.some((c: Json) => c.check.startsWith('Blocker')), false);
    assert.equal(check(r, 'Ledger').result, 'Success', 'the ledger is still read');
  });

  test('an account without the PROCESS privilege cannot see other clients: a Warning, not a false Success', async () => {
    const pw = randomBytes(8).toString('hex');
    await root.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${pw}'`);
    for (const n of Object.values(names)) await root.query(`GRANT SELECT ON \`${n}\`.* TO '${user}'@'%'`);
    const { report: r } = await report([], `mysql://${user}:${pw}@127.0.0.1:${MARIADB_PORT}`);
    const c = check(r, 'Connected clients');
    assert.equal(c.result, 'Warning', c.details);
    assert.match(c.details, /lacks the PROCESS privilege/);
    assert.equal(check(r, 'Transactions and locks').result, 'Warning');
    assert.doesNotMatch(JSON.stringify(r), new RegExp(pw), 'the password is not in the report');
  });
});
