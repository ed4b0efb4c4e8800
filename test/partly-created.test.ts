/**
 * A database killed inside its first migration (nova: 42 tables, no version
 * row) is "partly created", never "absent": the next plan and run refuse,
 * naming the database, the tables found and the restore point from before
 * the migration; rolling back to it and running again ends the chain. A
 * chain that declares `partial: { main: rerun }` runs the migration again
 * over the tables instead.
 *
 * The project under test is a placement-like one added to the fake cloud:
 * its first migration (a shell step driving the real sqlite3 or mariadb
 * client, as the fake toolchains do) creates alembic_version, then its
 * tables one by one, each committed on its own as MariaDB commits DDL, and
 * writes its revision last, as alembic does. While the file `slow` exists it
 * sleeps after its third table: there the test SIGKILLs leapfrog and the
 * step's process group.
 */
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { ROOT, describeTargets, dropDatabases, eventually, fakeCloud, groupGone, leapfrog, ledgerRows, withMariadb, type Cloud } from './helpers.js';

const STEP = 'kilo/placement/1';
const TABLES = ['resource_providers', 'inventories', 'allocations', 'consumers', 'projects', 'users', 'traits'];

// $1: the rendered config (a SQLite file's path, or a [client] option file); $2: the "slow" file.
const MIGRATION = `set -e
CNF=$1
if [ "$(head -c 1 "$CNF")" = / ]; then run() { sqlite3 "$(cat "$CNF")" "$1"; }; else run() { mariadb --defaults-extra-file="$CNF" -e "$1"; }; fi
run "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"
n=0
for t in ${TABLES.join(' ')}; do
  run "CREATE TABLE IF NOT EXISTS $t (id INTEGER NOT NULL PRIMARY KEY)"
  n=$((n + 1))
  if [ $n = 3 ] && [ -e "$2" ]; then echo "building $t's indexes"; sleep 600; fi
done
run "INSERT INTO alembic_version (version_num) VALUES ('base1')"
echo "Running upgrade  -> base1, initial schema"
`;

const CONFIG = `{% if db.main.path %}{{ db.main.path }}{% else %}[client]
user={{ db.main.user }}
password={{ db.main.password }}
{% if db.main.socket %}socket={{ db.main.socket }}{% else %}host={{ db.main.host }}
port={{ db.main.port }}{% endif %}
database={{ db.main.name }}
{% endif %}`;

interface World {
  cloud: Cloud;
  chain: string;
  name: string;
  slow: string;
  tables(): Promise<string[]>;
  args(...more: string[]): string[];
}

async function world(kind: Cloud['kind'], partial?: 'rerun'): Promise<World> {
  const cloud = await fakeCloud({ kind, instances: 5 });
  const name = `${cloud.names.compute.slice(0, -'compute'.length)}placement`;
  const slow = path.join(cloud.dir, 'slow');
  const chain = cloud.variant('fakecloud-placement', (c) => {
    c.projects.placement = { databases: { main: name }, version: { main: 'alembic' }, create: { main: {} }, config: { 'placement.cnf': CONFIG }, ...(partial ? { partial: { main: partial } } : {}) };
    c.releases[0].steps.unshift({
      project: 'placement',
      env: 'compute-kilo',
      why: 'placement-like initial migration: alembic_version first, then the tables, the revision last',
      sync: ['sh', '-c', MIGRATION, 'placement-manage', "{{ config['placement.cnf'] }}", slow],
      expect: { main: 'base1' },
    });
  });
  const tables = async (): Promise<string[]> => {
    if (kind === 'sqlite') {
      const file = path.join(cloud.dir, 'db', `${name}.sqlite3`);
      if (!existsSync(file)) return [];
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      } finally {
        db.close();
      }
    }
    return withMariadb(async (c) => {
      const [rows] = await c.query('SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1', [name]);
      return (rows as { t: string }[]).map((r) => r.t);
    });
  };
  return { cloud, chain, name, slow, tables, args: (...more) => [...cloud.args(chain), '--until', 'kilo', ...more] };
}

async function dispose(w: World): Promise<void> {
  if (w.cloud.kind === 'mariadb') await dropDatabases([w.name]);
  await w.cloud.dispose();
}

/** `run` until the first migration has created three tables, then SIGKILL leapfrog and the step's process group. */
async function killInsideFirstMigration(w: World): Promise<void> {
  writeFileSync(w.slow, '');
  const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...w.args()], { reject: false, stdin: 'ignore', forceKillAfterDelay: false });
  let seen = '';
  child.stderr!.on('data', (d: Buffer) => (seen += d.toString()));
  const exited = child.then(() => true);
  await eventually('three tables of the first migration', async () => {
    if (await Promise.race([exited, Promise.resolve(false)])) throw new Error(`leapfrog ended before the migration was killed:\n${seen}`);
    return (await w.tables()).includes('allocations') ? true : undefined;
  });
  const [{ pid }] = ledgerRows(w.cloud.state, `SELECT pid FROM steps WHERE step_id = '${STEP}'`) as [{ pid: number }];
  child.kill('SIGKILL');
  process.kill(-pid, 'SIGKILL');
  await child;
  await groupGone(pid);
  rmSync(w.slow);
  assert.deepEqual(await w.tables(), ['alembic_version', 'allocations', 'inventories', 'resource_providers'], 'the kill left three tables and an empty alembic_version');
}

const partlyCreated = (w: World) =>
  new RegExp(
    `project placement, database main \\(${w.name}\\): partly created: 3 tables \\(allocations, inventories, resource_providers\\) but no version recorded, so a first migration was stopped part-way`,
  );

describeTargets('a database killed inside its first migration', (kind) => {
  test('is partly created: plan, check-migrations and run refuse naming its tables and the restore point; rollback to it, then run, ends the hop', async () => {
    const w = await world(kind);
    try {
      await killInsideFirstMigration(w);
      const plan = await leapfrog(['plan', ...w.args()]);
      assert.equal(plan.exitCode, 3, plan.stderr);
      assert.match(plan.stderr, partlyCreated(w));
      assert.match(plan.stderr, /projects\.placement\.partial: \{ main: rerun \}/, 'the other way on: declaring that the migration may run again');
      // Dropped (it did not exist at the start), or, where the first-hop snapshot recorded it absent, restored as that.
      const point = new RegExp(`${w.name}: the restore point from before its first migration: leapfrog rollback --to start .*\\(start: (drops ${w.name}|restores snapshot \\d+ of ${w.name}, taken before ${STEP})\\); then run again`);
      assert.match(plan.stderr, point);
      assert.doesNotMatch(plan.stderr, /absent/);

      const check = await leapfrog(['check-migrations', ...w.args(), '--format', 'json']);
      assert.equal(check.exitCode, 2, check.stderr);
      const versions = (JSON.parse(check.stdout) as { checks: { check: string; result: string; details: string }[] }).checks.find((c) => c.check === 'Versions')!;
      assert.equal(versions.result, 'Failure');
      assert.match(versions.details, partlyCreated(w));

      const run = await leapfrog(['run', ...w.args()]);
      assert.equal(run.exitCode, 3, run.stderr);
      assert.match(run.stderr, partlyCreated(w));
      assert.match(run.stderr, point);
      assert.doesNotMatch(run.stderr, /unknown state after|partial work of/, 'refused once, as partly created, not also as a step\'s unknown work');
      assert.deepEqual(await w.tables(), ['alembic_version', 'allocations', 'inventories', 'resource_providers'], 'nothing ran');

      const rollback = await leapfrog(['rollback', ...w.cloud.args(w.chain), '--to', 'start', '--yes']);
      assert.equal(rollback.exitCode, 0, rollback.stderr);
      if (kind === 'mariadb') assert.deepEqual(await w.tables(), [], 'dropped: it did not exist at the start');
      const again = await leapfrog(['run', ...w.args()]);
      assert.equal(again.exitCode, 0, again.stderr);
      assert.deepEqual(await w.tables(), ['alembic_version', ...TABLES].sort());
    } finally {
      await dispose(w);
    }
  });

  test('dropped by hand after the kill (the chain creates it, and it was empty when the step began): the next run creates it again and runs the step', async () => {
    const w = await world(kind);
    try {
      await killInsideFirstMigration(w);
      if (kind === 'mariadb') await dropDatabases([w.name]);
      else for (const f of ['', '-wal', '-shm']) rmSync(path.join(w.cloud.dir, 'db', `${w.name}.sqlite3${f}`), { force: true });
      assert.deepEqual(await w.tables(), [], 'gone');
      const run = await leapfrog(['run', ...w.args()]);
      assert.equal(run.exitCode, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /unknown state|partly created/);
      assert.deepEqual(await w.tables(), ['alembic_version', ...TABLES].sort());
      const rows = ledgerRows(w.cloud.state, `SELECT status FROM steps WHERE step_id = '${STEP}' ORDER BY id`) as { status: string }[];
      assert.equal(rows.at(-1)!.status, 'succeeded', JSON.stringify(rows));
    } finally {
      await dispose(w);
    }
  });

  test('with partial: { main: rerun } in the chain, the plan names it and the run runs the migration again over the tables', async () => {
    const w = await world(kind, 'rerun');
    try {
      await killInsideFirstMigration(w);
      const plan = await leapfrog(['plan', ...w.args(), '--format', 'json']);
      assert.equal(plan.exitCode, 0, plan.stderr);
      const step = (JSON.parse(plan.stdout) as { steps: { id: string; reason: string }[] }).steps.find((s) => s.id === STEP);
      assert.ok(step, plan.stdout);
      assert.match(step.reason, /main is partly created \(3 tables \(allocations, inventories, resource_providers\), no version\): the chain declares partial: rerun/);
      const run = await leapfrog(['run', ...w.args()]);
      assert.equal(run.exitCode, 0, run.stderr);
      assert.deepEqual(await w.tables(), ['alembic_version', ...TABLES].sort());
      const again = await leapfrog(['plan', ...w.args(), '--format', 'json']);
      assert.equal((JSON.parse(again.stdout) as { steps: unknown[] }).steps.length, 0, again.stdout);
    } finally {
      await dispose(w);
    }
  });
});

test('partial: names a database the project does not have: exit 2 naming the file and the field', async () => {
  const cloud = await fakeCloud({ kind: 'sqlite', instances: 1 });
  try {
    const chain = cloud.variant('fakecloud-bad-partial', (c) => (c.projects.compute.partial = { cells: 'rerun' }));
    const r = await leapfrog(['plan', ...cloud.args(chain)]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /fakecloud-bad-partial\.yaml:\d+:\d+: projects\.compute\.partial\.cells: "cells" is not one of this project's databases/);
    const bad = cloud.variant('fakecloud-bad-partial-value', (c) => (c.projects.compute.partial = { api: 'drop' }));
    const r2 = await leapfrog(['plan', ...cloud.args(bad)]);
    assert.equal(r2.exitCode, 2, r2.stderr);
    assert.match(r2.stderr, /projects\.compute\.partial\.api/);
  } finally {
    await cloud.dispose();
  }
});
