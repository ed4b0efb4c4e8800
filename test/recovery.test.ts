/**
 * A step killed inside a non-transactional migration, on real MariaDB: the
 * fake cloud's newton 334 alters instance_extra and then shadow_instance_extra,
 * two DDL statements MariaDB commits one by one. The test holds a metadata
 * lock (or a row lock on migrate_version) so the step stops exactly where a
 * DBA's long transaction would stop it, then SIGKILLs leapfrog and the step,
 * and kills the step's server thread (its client is gone). The next `run`
 * must name the dead run and the step, and judge what is there against the
 * evidence: partial (refused), not started (run again), applied but not
 * recorded (recorded without running again). Plus the pure verdicts.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa, type ResultPromise } from 'execa';
import type mysql from 'mysql2/promise';
import { classify } from '../src/core/recovery.js';
import { CACHE, ROOT, describeTargets, fakeCloud, leapfrog, mariadbOptions, tempDir, type Cloud, ledgerRows, stopped, groupGone, endState } from './helpers.js';

type Json = Record<string, any>;
const STEP = 'newton/compute/2';
const CLOUD = { kind: 'mariadb' as const, instances: 10 };

/**
 * Run the chain until the step's child blocks on what `hold` locks (a
 * statement matching `blocked` waits in the processlist), then SIGKILL
 * leapfrog and the step's process group and kill the step's server thread,
 * as a dead client's statement is gone. Returns what the first run printed.
 */
async function killInside(cloud: Cloud, hold: string, blocked: RegExp): Promise<string> {
  const mysqlMod = (await import('mysql2/promise')).default;
  const child: ResultPromise = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...cloud.args()], {
    env: { LEAPFROG_PAUSE_AT: `step-start@${STEP}` },
    reject: false,
    stdin: 'ignore',
    forceKillAfterDelay: false,
  });
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('leapfrog: paused at')) resolve();
    });
    void child.then((r) => reject(new Error(`leapfrog ended (${r.exitCode}) before pausing:\n${seen}`)));
  });
  await stopped(child.pid!);
  // The lock is taken while leapfrog is paused before the step, after its offline guard looked for clients.
  const locker: mysql.Connection = await mysqlMod.createConnection({ ...mariadbOptions(), database: cloud.names.compute });
  const watcher: mysql.Connection = await mysqlMod.createConnection(mariadbOptions());
  try {
    await locker.query('START TRANSACTION');
    await locker.query(hold);
    child.kill('SIGCONT');
    let thread: number | undefined;
    for (let i = 0; i < 600 && thread === undefined; i++) {
      const [rows] = await watcher.query('SELECT ID id, INFO info FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO IS NOT NULL', [cloud.names.compute]);
      thread = (rows as { id: number; info: string }[]).find((r) => blocked.test(r.info))?.id;
      if (thread === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(thread !== undefined, `the step never blocked on ${blocked}:\n${seen}`);
    const [{ pid }] = ledgerRows(cloud.state, `SELECT pid FROM steps WHERE step_id = '${STEP}'`) as [{ pid: number }];
    child.kill('SIGKILL');
    process.kill(-pid, 'SIGKILL');
    await child;
    await groupGone(pid);
    // MariaDB may already have dropped the statement of a client that went away (ER_NO_SUCH_THREAD): gone either way.
    await watcher.query(`KILL CONNECTION ${Number(thread)}`).catch((err: { code?: string }) => {
      if (err.code !== 'ER_NO_SUCH_THREAD') throw err;
    });
  } finally {
    await locker.query('ROLLBACK').catch(() => undefined);
    await locker.end();
    await watcher.end();
  }
  return seen;
}

const columns = async (cloud: Cloud, table: string): Promise<string[]> =>
  (await cloud.query<{ c: string }>('compute', `SELECT COLUMN_NAME c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}' AND COLUMN_NAME = 'device_metadata'`)).map((r) => r.c);

/** A clean run of the chain on another target, its evidence exported: what a rehearsal's ledger carries. */
let rehearsal: string | undefined;
let clean: Cloud | undefined;
async function rehearsalEvidence(): Promise<string> {
  if (rehearsal) return rehearsal;
  const other = await fakeCloud(CLOUD);
  clean = other;
  const r = await leapfrog(['run', ...other.args()]);
  assert.equal(r.exitCode, 0, r.stderr);
  const file = path.join(tempDir('evidence'), 'evidence.json');
  const e = await leapfrog(['ledger', 'export', file, '--state-dir', other.state]);
  assert.equal(e.exitCode, 0, e.stderr);
  const data = JSON.parse(readFileSync(file, 'utf8')) as Json;
  assert.equal(data.format, 'leapfrog.evidence/v1');
  const mine = data.evidence.filter((x: Json) => x.step_id === STEP);
  assert.deepEqual(mine.map((x: Json) => x.phase).sort(), ['after', 'before'], 'the step\'s before and after were recorded');
  assert.match(mine[0].source, /^run 1 on mysql:/);
  rehearsal = file;
  return file;
}

/** The end state of that clean run: what a recovered target must equal. */
async function cleanEnd(): Promise<Record<string, unknown>> {
  await rehearsalEvidence();
  return endState(clean!);
}

describeTargets('a step killed inside a two-statement migration', () => {
  test('between the two ALTERs: the dead run and the step are named, the column there and the one missing said, and nothing is run', async () => {
    const cloud = await fakeCloud(CLOUD);
    await killInside(cloud, 'SELECT COUNT(*) FROM shadow_instance_extra', /^ALTER TABLE shadow_instance_extra/);
    assert.deepEqual(await columns(cloud, 'instance_extra'), ['device_metadata']);
    assert.deepEqual(await columns(cloud, 'shadow_instance_extra'), []);
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 333);

    // Without evidence of the step's end: unknown, what is there said, refused.
    const plan = await leapfrog(['plan', ...cloud.args()]);
    assert.equal(plan.exitCode, 3, plan.stderr);
    assert.match(plan.stderr, new RegExp(`run 1 died during ${STEP} \\(sync\\); \`leapfrog run --chain \\S+ --db \\S+ --state-dir \\S+ --cache-dir \\S+\` marks it interrupted\\n`));
    assert.match(plan.stderr, /unknown state after newton\/compute\/2 \(run 1\) on compute main .*table instance_extra: column device_metadata \w+ added; no evidence of what this step leaves/);
    const check = await leapfrog(['check-migrations', ...cloud.args(), '--format', 'json']);
    assert.equal(check.exitCode, 2, check.stderr);
    const row = (JSON.parse(check.stdout) as Json).checks.find((c: Json) => c.check === 'Crash recovery');
    assert.equal(row?.result, 'Failure', check.stdout);
    assert.deepEqual(row.data.map((d: Json) => [d.step, d.verdict.kind]), [[STEP, 'unknown']]);
    assert.equal(ledgerRows(cloud.state, 'SELECT status FROM runs WHERE id = 1')[0]!.status, 'running', 'plan and check-migrations only read');

    const first = await leapfrog(['run', ...cloud.args()]);
    assert.equal(first.exitCode, 3, first.stderr);
    assert.match(first.stderr, new RegExp(`run 1 died during ${STEP} \\(sync\\); marked interrupted`));
    assert.match(first.stderr, /a run died inside newton\/compute\/2 and left work that is not safe to run over/);
    assert.doesNotMatch(first.stderr, /changed by hand/);
    // The rollback it names, from before the step's hop, reaches this ledger and cache from anywhere (issue 15).
    assert.match(first.stderr, /roll back to the restore point from before the step's hop: leapfrog rollback --to \d+ /);
    assert.ok(first.stderr.includes(` --chain ${cloud.chain} --db ${cloud.db} --state-dir ${cloud.state} --cache-dir ${CACHE} (`), first.stderr);
    assert.deepEqual(ledgerRows(cloud.state, 'SELECT status FROM runs WHERE id = 1'), [{ status: 'interrupted' }], 'the dead run is marked although the run refused');
    assert.deepEqual(ledgerRows(cloud.state, `SELECT status FROM steps WHERE step_id = '${STEP}'`), [{ status: 'interrupted' }]);
    assert.equal(ledgerRows(cloud.state, 'SELECT COUNT(*) n FROM runs')[0]!.n, 1, 'no run was started');
    // --accept-drift is for changes by hand: it does not let a step run over its own partial work.
    const forced = await leapfrog(['run', ...cloud.args(), '--accept-drift']);
    assert.equal(forced.exitCode, 3, forced.stderr);
    assert.deepEqual(await columns(cloud, 'shadow_instance_extra'), []);

    // With a rehearsal's evidence imported: partial, what is missing said.
    const imported = await leapfrog(['ledger', 'import', await rehearsalEvidence(), '--state-dir', cloud.state]);
    assert.equal(imported.exitCode, 0, imported.stderr);
    assert.match(imported.stdout, /imported \d+ evidence rows/);
    const again = await leapfrog(['run', ...cloud.args()]);
    assert.equal(again.exitCode, 3, again.stderr);
    assert.match(
      again.stderr,
      /partial work of newton\/compute\/2 \(run 1\) on compute main \(\w+, version 333\): table instance_extra: column device_metadata \w+ added\. Missing compared with the evidence after this step \(run 1 on mysql:[^)]*\)\): table shadow_instance_extra: column device_metadata \w+/,
    );
    assert.deepEqual(await columns(cloud, 'shadow_instance_extra'), [], 'nothing was run');
  });

  test('between the two ALTERs, with the default snapshots: check-migrations prices them, the refusal names the restore point from before the hop, and rollback --to it then run ends equal to a clean run', async () => {
    const cloud = await fakeCloud(CLOUD);
    await killInside(cloud, 'SELECT COUNT(*) FROM shadow_instance_extra', /^ALTER TABLE shadow_instance_extra/);
    assert.deepEqual(await columns(cloud, 'instance_extra'), ['device_metadata'], 'half of newton 334 is there');
    // The default on MariaDB: before each hop, the databases its syncs declare; newton's compute hop began with a snapshot of compute main and api.
    const taken = ledgerRows(cloud.state, "SELECT before_step, database FROM snapshots WHERE before_step LIKE '%/compute/%' ORDER BY id").map((r) => `${r.before_step.split('/')[0]} ${r.database}`);
    const { compute, compute_api: api } = cloud.names;
    assert.deepEqual(taken, [`kilo ${compute}`, `liberty ${compute}`, `mitaka ${compute}`, `mitaka ${api}`, `newton ${compute}`, `newton ${api}`]);
    const [{ id: snapshot }] = ledgerRows(cloud.state, `SELECT id FROM snapshots WHERE before_step = 'newton/compute/1' AND database = '${cloud.names.compute}'`) as [{ id: number }];

    const refused = await leapfrog(['run', ...cloud.args()]);
    assert.equal(refused.exitCode, 3, refused.stderr);
    const named = new RegExp(`roll back to the restore point from before the step's hop: leapfrog rollback --to (\\d+)(?: --\\S+ \\S+)* \\(\\1 \\((\\w+)@mitaka, run 1\\): restores snapshot ${snapshot} of ${cloud.names.compute}, taken before newton/compute/1\\); then run again`).exec(refused.stderr);
    assert.ok(named, refused.stderr);
    const to = named[1]!;

    const rb = await leapfrog(['rollback', ...cloud.args(), '--to', to, '--yes']);
    assert.equal(rb.exitCode, 0, rb.stderr);
    assert.match(rb.stdout, new RegExp(`${cloud.names.compute}: snapshot ${snapshot} \\(run 1, before newton/compute/1\\)`));
    assert.match(rb.stdout, new RegExp(`${cloud.names.compute_api}: left as it is`), 'newton/compute/2 declares main only: api was not touched');
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 319, 'compute main is back at mitaka\'s end');
    assert.deepEqual(await columns(cloud, 'instance_extra'), []);

    // check-migrations prices the snapshots the next run takes, with times from the ledger's earlier snapshots of the same databases.
    const check = await leapfrog(['check-migrations', ...cloud.args(), '--format', 'json']);
    assert.equal(check.exitCode, 0, check.stdout);
    const row = (JSON.parse(check.stdout) as Json).checks.find((c: Json) => c.check === 'Snapshots');
    assert.equal(row?.result, 'Success', check.stdout);
    assert.equal(row.data.mode, 'hop-syncs');
    assert.deepEqual(row.data.snapshots.map((s: Json) => [s.beforeStep, s.databases]), [
      ['newton/compute/1', [cloud.names.compute, cloud.names.compute_api]],
      ['newton/identity/1', [cloud.names.identity]],
    ]);
    for (const s of row.data.snapshots) {
      assert.ok(s.bytes > 0, `${s.beforeStep}: bytes from information_schema`);
      assert.ok(typeof s.ms === 'number' && s.ms > 0, `${s.beforeStep}: time from the ledger`);
    }
    const firstHop = row.data.alternatives.find((a: Json) => a.mode === 'first-hop');
    assert.deepEqual(firstHop.snapshots.map((s: Json) => s.databases.length), [4]);
    assert.match(row.details, /^--snapshot auto \(hop-syncs: MySQL\/MariaDB commit each DDL statement on its own\): 2 snapshots, [\d.]+ \w+ read, about [\d.]+ m?s/);
    const traded = await leapfrog(['check-migrations', ...cloud.args(), '--format', 'json', '--snapshot', 'none']);
    assert.equal(traded.exitCode, 1, 'no restore point before a sync on MariaDB: a Warning');
    assert.match((JSON.parse(traded.stdout) as Json).checks.find((c: Json) => c.check === 'Snapshots').details, /no restore point: a sync that dies half-way can only be undone from your own backup/);

    const again = await leapfrog(['run', ...cloud.args(), '--format', 'json']);
    assert.equal(again.exitCode, 0, again.stderr);
    // The run took exactly the snapshots check-migrations priced.
    assert.deepEqual(
      (JSON.parse(again.stdout) as Json).snapshots.map((s: Json) => `${s.before} ${s.database}`),
      row.data.snapshots.flatMap((s: Json) => s.databases.map((d: string) => `${s.beforeStep} ${d}`)),
    );
    assert.deepEqual(await endState(cloud), await cleanEnd(), 'schema, row counts and CHECKSUM TABLE equal a clean run\'s');
  });

  test('before the first ALTER: not started, so the next run runs the step and finishes', async () => {
    const cloud = await fakeCloud(CLOUD);
    await killInside(cloud, 'SELECT COUNT(*) FROM instance_extra', /^ALTER TABLE instance_extra/);
    assert.deepEqual(await columns(cloud, 'instance_extra'), []);
    const r = await leapfrog(['run', ...cloud.args()]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`run 1 died during ${STEP} \\(sync\\); marked interrupted`));
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 334);
    assert.deepEqual(await columns(cloud, 'shadow_instance_extra'), ['device_metadata']);
    assert.deepEqual(ledgerRows(cloud.state, `SELECT run_id, status FROM steps WHERE step_id = '${STEP}' ORDER BY id`), [{ run_id: 1, status: 'interrupted' }, { run_id: 2, status: 'succeeded' }]);
  });

  test('after the second ALTER, before the version row: with the evidence, recorded as done without running again', async () => {
    const cloud = await fakeCloud(CLOUD);
    await killInside(cloud, 'SELECT * FROM migrate_version FOR UPDATE', /^UPDATE migrate_version/);
    assert.deepEqual(await columns(cloud, 'shadow_instance_extra'), ['device_metadata']);
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 333);
    // Without evidence of the step's end, leapfrog cannot tell this from partial work.
    const blind = await leapfrog(['run', ...cloud.args()]);
    assert.equal(blind.exitCode, 3, blind.stderr);
    assert.match(blind.stderr, /unknown state after newton\/compute\/2/);
    assert.equal((await leapfrog(['ledger', 'import', await rehearsalEvidence(), '--state-dir', cloud.state])).exitCode, 0);
    const check = await leapfrog(['check-migrations', ...cloud.args(), '--format', 'json']);
    const row = (JSON.parse(check.stdout) as Json).checks.find((c: Json) => c.check === 'Crash recovery');
    assert.equal(row?.result, 'Warning', check.stdout);
    assert.match(row.details, /fully applied but not recorded: the schema equals the evidence after this step .*`leapfrog run` records it without running the step again/);
    const r = await leapfrog(['run', ...cloud.args()]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, /newton\/compute\/2 \(run 1\) was fully applied but not recorded: recorded as done without running it again; version written for compute main from 333/);
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 334);
    assert.deepEqual(ledgerRows(cloud.state, `SELECT run_id, status FROM steps WHERE step_id = '${STEP}' ORDER BY id`), [{ run_id: 1, status: 'succeeded' }], 'the step was not run again');
    assert.deepEqual(ledgerRows(cloud.state, 'SELECT status FROM runs ORDER BY id').map((x) => x.status), ['interrupted', 'succeeded']);
  });
}, ['mariadb']);

describe('evidence on SQLite: recorded by every sync step, exported, imported once', () => {
  test('each sync step of a run has its before and after; a second import adds nothing', async () => {
    const cloud = await fakeCloud({ instances: 5 });
    assert.equal((await leapfrog(['run', ...cloud.args(), '--until', 'kilo'])).exitCode, 0);
    const syncs = ledgerRows(cloud.state, "SELECT id FROM steps WHERE kind = 'sync' AND status = 'succeeded'").length;
    assert.ok(syncs > 0);
    assert.deepEqual(ledgerRows(cloud.state, "SELECT phase, COUNT(*) n FROM evidence GROUP BY phase ORDER BY phase"), [{ phase: 'after', n: syncs }, { phase: 'before', n: syncs }]);
    const out = await leapfrog(['ledger', 'export', '--state-dir', cloud.state]);
    assert.equal(out.exitCode, 0, out.stderr);
    const file = path.join(tempDir('export'), 'e.json');
    writeFileSync(file, out.stdout);
    const state = path.join(tempDir('import'), 'state');
    const first = await leapfrog(['ledger', 'import', file, '--state-dir', state]);
    assert.match(first.stdout, new RegExp(`imported ${2 * syncs} evidence rows`));
    const second = await leapfrog(['ledger', 'import', file, '--state-dir', state]);
    assert.match(second.stdout, new RegExp(`imported 0 evidence rows .*\\(${2 * syncs} already there\\)`));
  });
});

describe('ledger import refuses what is not an export, naming the file', () => {
  test('not JSON, wrong format, bad rows: exit 2, one message, nothing imported', async () => {
    const dir = tempDir('import');
    const state = path.join(dir, 'state');
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, '{"format": "leapfrog.evidence/v1", "evidence": [{"attempt": "a"}]}');
    const r = await leapfrog(['ledger', 'import', bad, '--state-dir', state]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /bad\.json: not an evidence export of this leapfrog .*\n.*\/evidence\/0 must have required property/);
    writeFileSync(bad, 'nope');
    const r2 = await leapfrog(['ledger', 'import', bad, '--state-dir', state]);
    assert.equal(r2.exitCode, 2);
    assert.match(r2.stderr, /bad\.json: not JSON/);
  });
});

describe('verdicts (pure)', () => {
  const shape = (cols: Record<string, string[]>) => ({ tables: Object.fromEntries(Object.entries(cols).map(([t, c]) => [t, { columns: c, indexes: [] }])) });
  const before = { version: 333, sha256: 'b', shape: shape({ t: ['id INT'], shadow_t: ['id INT'] }) };
  const half = { version: 333, sha256: 'h', shape: shape({ t: ['id INT', 'x TEXT'], shadow_t: ['id INT'] }) };
  const after = { version: 334, sha256: 'a', shape: shape({ t: ['id INT', 'x TEXT'], shadow_t: ['id INT', 'x TEXT'] }) };
  const base = { childStarted: true, atExpectation: false, transactionalDdl: false };

  test('each case', () => {
    assert.deepEqual(classify({ ...base, before, now: before, afters: [] }), { kind: 'not-started' });
    assert.deepEqual(classify({ ...base, before: undefined, childStarted: false, now: half, afters: [] }), { kind: 'not-started' });
    assert.equal(classify({ ...base, before: undefined, now: half, afters: [] }).kind, 'unknown');
    assert.equal(classify({ ...base, transactionalDdl: true, before: undefined, now: half, afters: [] }).kind, 'resumable');
    assert.deepEqual(classify({ ...base, before, now: { ...after, version: 333 }, afters: [{ state: after, source: 'r' }] }), { kind: 'applied', source: 'r' });
    assert.deepEqual(classify({ ...base, before, now: half, afters: [{ state: after, source: 'r' }] }), { kind: 'partial', there: ['table t: column x TEXT added'], missing: ['table shadow_t: column x TEXT'], source: 'r' });
    const unknown = classify({ ...base, before, now: half, afters: [] });
    assert.equal(unknown.kind, 'unknown');
    assert.deepEqual((unknown as { there: string[] }).there, ['table t: column x TEXT added']);
    assert.deepEqual(classify({ ...base, atExpectation: true, before, now: after, afters: [] }), { kind: 'done' });
    // SQLite commits each migration with its version: a version that moved is where the tool resumes.
    assert.deepEqual(classify({ ...base, transactionalDdl: true, before, now: { ...half, version: 332 }, afters: [] }), { kind: 'resumable' });
    // MariaDB: the same is partial work of the step, version move included.
    const moved = classify({ ...base, before, now: { ...half, version: 332 }, afters: [] });
    assert.equal(moved.kind, 'unknown');
    assert.match((moved as { there: string[] }).there[0]!, /^version 333 -> 332$/);
  });

  test('a database leapfrog created empty for the step, then dropped: the step has not started; a database it did not create, or that held tables, is not', () => {
    const empty = { version: { kind: 'absent' }, sha256: 'e', shape: shape({}) };
    const gone = { version: { kind: 'absent' }, sha256: null, shape: null };
    assert.deepEqual(classify({ ...base, created: true, before: empty, now: gone, afters: [] }), { kind: 'not-started' });
    assert.equal(classify({ ...base, before: empty, now: gone, afters: [] }).kind, 'unknown');
    assert.equal(classify({ ...base, created: true, before: { ...empty, shape: shape({ t: ['id INT'] }) }, now: gone, afters: [] }).kind, 'unknown');
  });
});
