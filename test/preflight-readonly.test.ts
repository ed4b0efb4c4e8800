/**
 * The pre-flight only reads, whatever the chain says, on a real MariaDB:
 * a chain whose `needed-when` is an UPDATE and whose blocker is a DELETE is
 * refused at load naming file:line; a SELECT that writes through a stored
 * function passes that check, and goes through `plan`, `check-migrations` and
 * `run --dry-run` without changing a row, because each query runs in START
 * TRANSACTION READ ONLY, rolled back. CHECKSUM TABLE of every table of the
 * cloud is compared before and after.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fakeCloud, leapfrog, MARIADB_SKIP, withMariadb, type Cloud } from './helpers.js';

describe('a read-only pre-flight [mariadb]', { skip: MARIADB_SKIP }, () => {
  let cloud: Cloud;
  let chain: string;

  before(async () => {
    cloud = await fakeCloud({ kind: 'mariadb', instances: 30, nullUuids: 3 });
    // A function that deletes, called from a SELECT: what no parser of the query can see.
    await cloud.exec('compute', 'CREATE FUNCTION lf_wipe() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM instance_system_metadata; UPDATE instances SET hostname = NULL; RETURN 0; END');
  });
  after(() => cloud.dispose());

  /** CHECKSUM TABLE of every table of the cloud's databases. */
  const checksums = () =>
    withMariadb(async (c) => {
      const out: Record<string, unknown> = {};
      const [tables] = await c.query<any[]>('SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN (?) ORDER BY 1, 2', [Object.values(cloud.names)]);
      for (const t of tables) {
        const [[row]] = await c.query<any[]>(`CHECKSUM TABLE \`${t.table_schema}\`.\`${t.table_name}\``);
        out[`${t.table_schema}.${t.table_name}`] = row.Checksum;
      }
      return out;
    });

  test('an UPDATE or DELETE in the chain is refused at load, naming file, line and field', async () => {
    const chain = cloud.variant('writes', (c) => {
      c.releases[0].steps[0]['needed-when'].query = "UPDATE instances SET hostname = 'changed by plan'";
      c.projects.compute.blockers[1].query = '-- counts\nDELETE FROM instance_system_metadata';
    });
    const before = await checksums();
    const plan = await leapfrog(['plan', ...cloud.args(chain)]);
    const check = await leapfrog(['check-migrations', ...cloud.args(chain)]);
    assert.deepEqual(await checksums(), before, 'no table changed');
    assert.equal(plan.exitCode, 2, plan.stderr);
    assert.match(plan.stderr, /writes\.yaml:\d+:\d+: releases\[0\]\.steps\[0\]\.needed-when\.query: must be one SELECT: it starts with UPDATE/);
    assert.match(plan.stderr, /writes\.yaml:\d+:\d+: projects\.compute\.blockers\[1\]\.query: must be one SELECT: it starts with DELETE/);
    assert.equal(check.exitCode, 2);
    assert.match(check.stdout, /Check: Chain\s*\|\s*\n\| Result: Failure/);
  });

  test('a SELECT that writes through a function changes no row in plan, check-migrations or run --dry-run', async () => {
    const chain = cloud.variant('writes-by-function', (c) => {
      c.releases[0].steps[0]['needed-when'].query = 'SELECT lf_wipe()';
      c.projects.compute.blockers[1].query = 'SELECT lf_wipe()';
    });
    const before = await checksums();
    assert.ok(Object.keys(before).length > 10, 'the cloud has its tables');
    const plan = await leapfrog(['plan', ...cloud.args(chain)]);
    const check = await leapfrog(['check-migrations', ...cloud.args(chain), '--format', 'json']);
    const dry = await leapfrog(['run', ...cloud.args(chain), '--dry-run']);
    assert.deepEqual(await checksums(), before, 'no table changed');
    assert.ok(Number(await cloud.scalar('compute', "SELECT COUNT(*) FROM instance_system_metadata WHERE `key` = 'instance_type_id'")) > 0, 'the rows are still there');

    const report = JSON.parse(check.stdout) as { checks: { check: string; result: string; details: string }[] };
    const blocker = report.checks.find((c) => c.check === 'Blocker: compute flavor data in system metadata')!;
    assert.equal(blocker.result, 'Failure', blocker.details);
    assert.match(blocker.details, /READ ONLY/, blocker.details);
    assert.equal(check.exitCode, 2);
    // plan and --dry-run list the data step without counting its rows; whatever they ran, they ran read-only.
    for (const r of [plan, dry]) assert.ok(r.exitCode === 0 || /READ ONLY/.test(r.stderr), `${r.exitCode}: ${r.stderr}`);
  });
});
