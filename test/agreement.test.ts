/**
 * plan, check-migrations and run read the target through one pre-flight
 * (src/core/preflight.ts), so they must agree: on a project whose databases
 * stand at different releases, on schema drift, on a run that died inside a
 * step, and on a hop whose later sync is of a database already there (nova
 * zed's `db sync` then no-op `api_db sync`). Each case drives all three on
 * the fake cloud, on SQLite and on MariaDB.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { ROOT, describeTargets, eventually, fakeCloud, leapfrog, withMariadb, type Cloud, runKilledAt } from './helpers.js';

type Json = Record<string, any>;

async function allThree(cloud: Cloud, chain = cloud.chain) {
  const plan = await leapfrog(['plan', ...cloud.args(chain), '--format', 'json']);
  const check = await leapfrog(['check-migrations', ...cloud.args(chain), '--format', 'json']);
  return { plan, check, checkJson: JSON.parse(check.stdout) as Json };
}

const row = (report: Json, name: string): Json => report.checks.find((c: Json) => c.check === name);

/** Copy one database of `from` over the same database of `to`: a restore from another backup. */
async function transplant(from: Cloud, to: Cloud, db: 'compute_api'): Promise<void> {
  if (from.kind === 'sqlite') {
    copyFileSync(from.file(db), to.file(db));
    return;
  }
  await withMariadb(async (c) => {
    const a = from.names[db];
    const b = to.names[db];
    await c.query(`CREATE DATABASE \`${b}\``);
    const [tables] = (await c.query(`SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`, [a])) as [{ t: string }[], unknown];
    for (const { t } of tables) {
      await c.query(`CREATE TABLE \`${b}\`.\`${t}\` LIKE \`${a}\`.\`${t}\``);
      await c.query(`INSERT INTO \`${b}\`.\`${t}\` SELECT * FROM \`${a}\`.\`${t}\``);
    }
  });
}

describeTargets('plan, check-migrations and run agree', (kind) => {
  test('a project whose databases stand at different releases is refused by all three, naming each database', async () => {
    const ahead = await fakeCloud({ kind, instances: 5 });
    assert.equal((await leapfrog(['run', ...ahead.args()])).exitCode, 0);
    const cloud = await fakeCloud({ kind, instances: 5 });
    await transplant(ahead, cloud, 'compute_api'); // compute main at juno (254), compute_api at newton (20)
    const expected = /project compute: its databases stand where no point of chain fakecloud-juno-newton puts them together: main 254 \(end of the chain start\); api 20 \(end of newton\)/;
    const { plan, check, checkJson } = await allThree(cloud);
    assert.equal(plan.exitCode, 3, plan.stderr);
    assert.match(plan.stderr, expected);
    assert.equal(check.exitCode, 2);
    assert.equal(row(checkJson, 'Versions').result, 'Failure');
    assert.match(row(checkJson, 'Versions').details, expected);
    const run = await leapfrog(['run', ...cloud.args()]);
    assert.equal(run.exitCode, 3, run.stderr);
    assert.match(run.stderr, expected);
    assert.equal(Number(await cloud.scalar('compute', 'SELECT version FROM migrate_version')), 254, 'nothing ran');
  });

  test('schema drift since the last checkpoint: all three say so; --accept-drift goes on', async () => {
    const cloud = await fakeCloud({ kind, instances: 5 });
    assert.equal((await leapfrog(['run', ...cloud.args(), '--until', 'kilo'])).exitCode, 0);
    await cloud.exec('image', 'CREATE TABLE dba_notes (id INTEGER PRIMARY KEY)');
    const expected = /project image, database main: schema changed since image@kilo \(checkpoint \d+\) at the same version: table dba_notes added/;
    const { plan, check, checkJson } = await allThree(cloud);
    assert.equal(plan.exitCode, 3);
    assert.match(plan.stderr, expected);
    assert.ok(JSON.parse(plan.stdout).steps.length > 0, 'the plan is still shown');
    assert.equal(check.exitCode, 2);
    assert.equal(row(checkJson, 'Drift').result, 'Failure');
    assert.match(row(checkJson, 'Drift').details, expected);
    const run = await leapfrog(['run', ...cloud.args()]);
    assert.equal(run.exitCode, 3);
    assert.match(run.stderr, expected);
    const accepted = await leapfrog(['run', ...cloud.args(), '--accept-drift']);
    assert.equal(accepted.exitCode, 0, accepted.stderr);
  });

  test('a run that died after its step\'s child finished, before recording it: plan and check show the same plan and say run resumes; run does', async () => {
    const cloud = await fakeCloud({ kind, instances: 5 });
    await runKilledAt(cloud, 'step-end@liberty/compute/1');
    assert.equal(Number(await cloud.scalar('compute', 'SELECT version FROM migrate_version')), 302, 'the child had finished');
    const { plan, check, checkJson } = await allThree(cloud);
    assert.equal(plan.exitCode, 0, plan.stderr);
    assert.match(plan.stderr, /run 1 died during liberty\/compute\/1 \(sync\); `leapfrog run --chain \S+ --db \S+ --state-dir \S+ --cache-dir \S+` marks it interrupted and resumes/);
    assert.equal(check.exitCode, 1, check.stdout);
    assert.equal(row(checkJson, 'Ledger').result, 'Warning');
    assert.match(row(checkJson, 'Ledger').details, /Run 1 \(chain fakecloud-juno-newton\) died during step liberty\/compute\/1/);
    assert.equal(row(checkJson, 'Versions').result, 'Success');
    const planned = (JSON.parse(plan.stdout) as Json).steps.map((s: Json) => s.id);
    assert.deepEqual(checkJson.plan.steps.map((s: Json) => s.id), planned, 'the same plan');
    assert.ok(!planned.includes('liberty/compute/1'), 'its child finished the sync: not planned again');
    const run = await leapfrog(['run', ...cloud.args(), '--format', 'json']);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.deepEqual((JSON.parse(run.stdout) as Json).steps.map((s: Json) => s.id).filter((id: string) => planned.includes(id)), planned);
  });

  test("a hop whose later sync is of a database already there (nova zed's no-op api_db sync after db sync): the first sync is planned by all three", async () => {
    const cloud = await fakeCloud({ kind, instances: 5 });
    // newton's api_db sync declares the version mitaka left: it has nothing to do.
    const chain = cloud.variant('fakecloud-reordered', (c) => {
      const newton = c.releases.find((r: Json) => r.release === 'newton');
      const api = newton.steps.find((s: Json) => s.project === 'compute' && s.expect?.api !== undefined);
      api.sync = api.sync.map((a: string) => (a === '20' ? '7' : a));
      api.expect = { api: 7 };
    });
    assert.equal((await leapfrog(['run', ...cloud.args(chain), '--until', 'mitaka'])).exitCode, 0);
    const { plan, checkJson } = await allThree(cloud, chain);
    assert.equal(plan.exitCode, 0, plan.stderr);
    const ids = (JSON.parse(plan.stdout) as Json).steps.map((s: Json) => s.id);
    assert.ok(ids.includes('newton/compute/1'), `newton's db sync is planned: ${ids.join(', ')}`);
    assert.ok(!ids.includes('newton/compute/3'), 'the no-op api_db sync is done');
    assert.deepEqual(checkJson.plan.steps.map((s: Json) => s.id), ids);
    const run = await leapfrog(['run', ...cloud.args(chain)]);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(Number(await cloud.scalar('compute', 'SELECT version FROM migrate_version')), 334);
  });

  test('a database with tables but no version (a first migration killed part-way) is partly created for all three, never absent', async () => {
    const cloud = await fakeCloud({ kind, instances: 5 });
    await cloud.exec('image', 'DELETE FROM alembic_version');
    const expected = /project image, database main \(\S+\): partly created: \d+ tables \(.*images.*\) but no version recorded/;
    const { plan, check, checkJson } = await allThree(cloud);
    assert.equal(plan.exitCode, 3);
    assert.match(plan.stderr, expected);
    assert.equal(check.exitCode, 2);
    assert.match(row(checkJson, 'Versions').details, expected);
    const run = await leapfrog(['run', ...cloud.args()]);
    assert.equal(run.exitCode, 3);
    assert.match(run.stderr, expected);
  });
});
