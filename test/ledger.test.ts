/**
 * The ledger on real SQLite files, read back through a second connection the
 * way another leapfrog process (`leapfrog ledger` during a run) sees it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { LeapfrogError } from '../src/errors.js';
import type { Chain } from '../src/chain/types.js';
import { resolvePoint } from '../src/core/restore-points.js';
import { restoreHistory } from '../src/core/rollback.js';
import { LEDGER_SCHEMA_VERSION, Ledger, MIGRATIONS } from '../src/ledger/ledger.js';
import { tempDir } from './helpers.js';

const dirs: string[] = [];
function stateDir(): string {
  const d = tempDir('ledger');
  dirs.push(d);
  return path.join(d, 'state');
}

after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A second, independent connection to the ledger file. */
function peek<T>(file: string, cb: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return cb(db);
  } finally {
    db.close();
  }
}

const run = (over: Partial<Parameters<Ledger['startRun']>[0]> = {}) => ({
  chain: 'fakecloud-juno-newton',
  chainSha256: 'c'.repeat(64),
  target: 'sqlite:/srv/cloud',
  kind: 'run' as const,
  until: undefined,
  host: 'db-admin-1',
  pid: 4242,
  version: '0.1.0',
  ...over,
});

const step = (runId: number, stepId: string) => ({
  runId,
  stepId,
  project: stepId.split('/')[1]!,
  release: stepId.split('/')[0]!,
  kind: 'sync',
  env: `compute-${stepId.split('/')[0]}`,
  envSha256: 'e'.repeat(64),
  command: ['compute-manage', 'db', 'sync', '--version', '290'],
  logPath: `/state/logs/${stepId.replace(/\//g, '-')}.log`,
});

test('opening creates the ledger in WAL mode, synchronous FULL, at the current schema version', () => {
  const dir = stateDir();
  const ledger = Ledger.open(dir);
  try {
    assert.equal(ledger.file, path.join(dir, 'ledger.sqlite3'));
    assert.ok(existsSync(ledger.file));
    assert.equal(ledger.schemaVersion(), LEDGER_SCHEMA_VERSION);
    // journal_mode=WAL is stored in the file: any connection sees it.
    peek(ledger.file, (db) => {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('user_version', { simple: true }), LEDGER_SCHEMA_VERSION);
      const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
      assert.deepEqual(tables, ['checkpoints', 'evidence', 'predictions', 'rollbacks', 'runs', 'snapshots', 'steps']);
    });
    // synchronous and foreign_keys are per connection: read them on the ledger's own.
    const own = (ledger as unknown as { db: Database.Database }).db;
    assert.equal(own.pragma('synchronous', { simple: true }), 2, 'synchronous=FULL');
    assert.equal(own.pragma('foreign_keys', { simple: true }), 1);
  } finally {
    ledger.close();
  }
});

test('a run round-trips, and a started step is visible to others before it finishes', () => {
  const ledger = Ledger.open(stateDir());
  try {
    const runId = ledger.startRun(run({ until: 'mitaka' }));
    const rowId = ledger.stepStarted(step(runId, 'kilo/compute/1'));

    // Two-phase: the `started` row is committed before the child runs, so a
    // crash now leaves it for the next run to find.
    const seen = peek(ledger.file, (db) => db.prepare(`SELECT status, finished_at, attempts FROM steps WHERE id = ?`).get(rowId));
    assert.deepEqual(seen, { status: 'started', finished_at: null, attempts: 0 });
    assert.equal(peek(ledger.file, (db) => db.prepare(`SELECT status FROM runs WHERE id = ?`).pluck().get(runId)), 'running');

    ledger.stepAttempt(rowId, 1);
    assert.equal(peek(ledger.file, (db) => db.prepare(`SELECT attempts FROM steps WHERE id = ?`).pluck().get(rowId)), 1);
    ledger.stepAttempt(rowId, 2);
    ledger.stepFinished(rowId, { status: 'succeeded', exitCode: 0, durationMs: 1234.5, attempts: 2, logTail: 'line 1\nline 2' });
    const failedRow = ledger.stepStarted(step(runId, 'kilo/compute/2'));
    ledger.stepFinished(failedRow, { status: 'failed', exitCode: 3, durationMs: 10, attempts: 1, logTail: 'boom', error: 'exited 3' });
    ledger.checkpoint({ runId, project: 'compute', release: 'kilo', versions: { main: { kind: 'number', value: 290 } }, fingerprints: { main: 'abc' } });
    ledger.finishRun(runId, 'failed', 'step kilo/compute/2 exited 3');

    const [r] = ledger.runs();
    assert.equal(r?.id, runId);
    assert.equal(r?.status, 'failed');
    assert.equal(r?.until, 'mitaka');
    assert.equal(r?.chain, 'fakecloud-juno-newton');
    assert.equal(r?.target, 'sqlite:/srv/cloud');
    assert.equal(r?.error, 'step kilo/compute/2 exited 3');
    assert.ok(r?.finished_at);
    assert.deepEqual(ledger.run(runId), r);
    assert.equal(ledger.run(runId + 100), undefined);

    const steps = ledger.steps(runId);
    assert.deepEqual(steps.map((s) => [s.step_id, s.status, s.exit_code, s.attempts]), [
      ['kilo/compute/1', 'succeeded', 0, 2],
      ['kilo/compute/2', 'failed', 3, 1],
    ]);
    assert.deepEqual(JSON.parse(steps[0]!.command), ['compute-manage', 'db', 'sync', '--version', '290']);
    assert.equal(steps[0]!.duration_ms, 1234.5);
    assert.equal(steps[0]!.log_tail, 'line 1\nline 2');
    assert.equal(steps[0]!.log_path, '/state/logs/kilo-compute-1.log');
    assert.equal(steps[0]!.error, null);
    assert.equal(steps[1]!.error, 'exited 3');
    assert.ok(steps[0]!.finished_at! >= steps[0]!.started_at);

    const cps = ledger.checkpoints(runId);
    assert.equal(cps.length, 1);
    assert.equal(cps[0]!.project, 'compute');
    assert.equal(cps[0]!.release, 'kilo');
    assert.deepEqual(JSON.parse(cps[0]!.versions), { main: { kind: 'number', value: 290 } });
    assert.deepEqual(JSON.parse(cps[0]!.fingerprints), { main: 'abc' });
  } finally {
    ledger.close();
  }
});

test('succeededSteps filters by chain and target, and counts only succeeded steps', () => {
  const ledger = Ledger.open(stateDir());
  try {
    const a = ledger.startRun(run());
    const ok = (runId: number, id: string) => {
      const row = ledger.stepStarted(step(runId, id));
      ledger.stepFinished(row, { status: 'succeeded', exitCode: 0, durationMs: 1, attempts: 1, logTail: '' });
    };
    ok(a, 'kilo/compute/1');
    ok(a, 'kilo/compute/2');
    const failed = ledger.stepStarted(step(a, 'liberty/compute/1'));
    ledger.stepFinished(failed, { status: 'failed', exitCode: 1, durationMs: 1, attempts: 1, logTail: '' });
    ledger.stepStarted(step(a, 'liberty/compute/2')); // dangling: a crash
    const skipped = ledger.stepStarted(step(a, 'liberty/compute/3'));
    ledger.stepFinished(skipped, { status: 'skipped', exitCode: null, durationMs: 0, attempts: 0, logTail: '' });

    const otherTarget = ledger.startRun(run({ target: 'sqlite:/srv/other' }));
    ok(otherTarget, 'mitaka/compute/1');
    const otherChain = ledger.startRun(run({ chain: 'another-chain' }));
    ok(otherChain, 'newton/compute/1');
    // A later run against the same target and chain adds to the set.
    const b = ledger.startRun(run());
    ok(b, 'kilo/compute/1');
    ok(b, 'liberty/identity/1');

    assert.deepEqual([...ledger.succeededSteps('fakecloud-juno-newton', 'sqlite:/srv/cloud')].sort(), ['kilo/compute/1', 'kilo/compute/2', 'liberty/identity/1']);
    assert.deepEqual([...ledger.succeededSteps('fakecloud-juno-newton', 'sqlite:/srv/other')], ['mitaka/compute/1']);
    assert.deepEqual([...ledger.succeededSteps('another-chain', 'sqlite:/srv/cloud')], ['newton/compute/1']);
    assert.deepEqual([...ledger.succeededSteps('another-chain', 'sqlite:/srv/other')], []);
    assert.deepEqual(ledger.runs().map((r) => r.id), [b, otherChain, otherTarget, a], 'newest first');
    assert.deepEqual(ledger.runs(2).map((r) => r.id), [b, otherChain]);
  } finally {
    ledger.close();
  }
});

test('a ledger from a newer leapfrog is refused with an input error', () => {
  const dir = stateDir();
  Ledger.open(dir).close();
  const file = path.join(dir, 'ledger.sqlite3');
  const db = new Database(file);
  db.pragma(`user_version = ${LEDGER_SCHEMA_VERSION + 1}`);
  db.close();

  assert.throws(
    () => Ledger.open(dir),
    (err: unknown) => {
      assert.ok(err instanceof LeapfrogError, `not a LeapfrogError: ${String(err)}`);
      assert.equal(err.kind, 'input');
      assert.match(err.message, /newer leapfrog/);
      assert.ok(err.message.includes(file), err.message);
      assert.ok(err.message.includes(`ledger schema ${LEDGER_SCHEMA_VERSION + 1}`), err.message);
      return true;
    },
  );
  // Refused means untouched.
  assert.equal(peek(file, (d) => d.pragma('user_version', { simple: true })), LEDGER_SCHEMA_VERSION + 1);
});

test('a file that is not a ledger is refused with an input error naming it', () => {
  const dir = stateDir();
  Ledger.open(dir).close();
  const file = path.join(dir, 'ledger.sqlite3');
  rmSync(`${file}-wal`, { force: true });
  rmSync(`${file}-shm`, { force: true });
  writeFileSync(file, 'this is not a SQLite database, it is somebody\'s notes\n'.repeat(200));
  assert.throws(
    () => Ledger.open(dir),
    (err: unknown) => {
      assert.ok(err instanceof LeapfrogError, `not a LeapfrogError: ${String(err)}`);
      assert.equal(err.kind, 'input');
      assert.ok(err.message.includes(file), err.message);
      return true;
    },
  );
});

test('reopening keeps every row and does not migrate again', () => {
  const dir = stateDir();
  const first = Ledger.open(dir);
  const runId = first.startRun(run());
  const rowId = first.stepStarted(step(runId, 'kilo/compute/1'));
  first.stepFinished(rowId, { status: 'succeeded', exitCode: 0, durationMs: 5, attempts: 1, logTail: 'ok' });
  first.checkpoint({ runId, project: 'compute', release: 'kilo', versions: {}, fingerprints: {} });
  first.close();
  const schemaBefore = peek(first.file, (db) => db.prepare(`SELECT type, name, sql FROM sqlite_master ORDER BY name`).all());

  for (let i = 0; i < 2; i++) {
    const again = Ledger.open(dir);
    try {
      assert.equal(again.schemaVersion(), LEDGER_SCHEMA_VERSION);
      assert.deepEqual(again.runs().map((r) => r.id), [runId]);
      assert.deepEqual(again.steps(runId).map((s) => [s.step_id, s.status, s.log_tail]), [['kilo/compute/1', 'succeeded', 'ok']]);
      assert.equal(again.checkpoints(runId).length, 1);
      assert.deepEqual([...again.succeededSteps('fakecloud-juno-newton', 'sqlite:/srv/cloud')], ['kilo/compute/1']);
    } finally {
      again.close();
    }
  }
  assert.deepEqual(peek(first.file, (db) => db.prepare(`SELECT type, name, sql FROM sqlite_master ORDER BY name`).all()), schemaBefore);
});

test('processes opening a new ledger at the same moment all succeed, and migrate it once', async () => {
  const dir = stateDir();
  const ledgerModule = fileURLToPath(new URL('../src/ledger/ledger.js', import.meta.url));
  // Each process waits for the same instant, then opens and writes a run.
  const at = Date.now() + 1_500;
  const script = `
    const { Ledger } = await import(${JSON.stringify(ledgerModule)});
    while (Date.now() < ${at}) {}
    const l = Ledger.open(${JSON.stringify(dir)});
    l.startRun({ chain: 'c', chainSha256: 'x', target: 't', kind: 'run', until: undefined, host: 'h', pid: process.pid, version: '0' });
    l.close();
  `;
  const results = await Promise.all(
    Array.from({ length: 8 }, () => execa(process.execPath, ['--input-type=module', '-e', script], { reject: false })),
  );
  for (const r of results) assert.equal(r.exitCode, 0, String(r.stderr));
  const l = Ledger.open(dir);
  try {
    assert.equal(l.runs().length, 8);
    assert.equal(l.schemaVersion(), LEDGER_SCHEMA_VERSION);
  } finally {
    l.close();
  }
});

test('a step\'s rows are written with its end, and a run\'s prediction per hop with its model', () => {
  const l = Ledger.open(stateDir());
  try {
    const runId = l.startRun({ chain: 'c', chainSha256: 'x', target: 't', kind: 'run', until: undefined, host: 'h', pid: 1, version: '0' });
    l.predicted(runId, [
      { project: 'compute', release: 'kilo', ms: 1234.5, source: 'rehearsal A (run 1)', model: [{ stepId: 'kilo/compute/3', model: 'scaled' }] },
      { project: 'compute', release: 'liberty', ms: undefined, source: undefined, model: [] },
    ]);
    const row = l.stepStarted(step(runId, 'kilo/compute/3'));
    l.stepFinished(row, { status: 'succeeded', exitCode: 0, durationMs: 10, attempts: 11, logTail: '', rows: { rows: 542, counts: { 'needed-when': 542 } } });
    const other = l.stepStarted(step(runId, 'kilo/compute/2'));
    l.stepFinished(other, { status: 'succeeded', exitCode: 0, durationMs: 5, attempts: 1, logTail: '' });
    assert.deepEqual(l.steps(runId).map((s) => [s.step_id, s.rows, s.row_counts]), [['kilo/compute/3', 542, '{"needed-when":542}'], ['kilo/compute/2', null, null]]);
    assert.deepEqual(l.predictions(runId).map((p) => [p.project, p.release, p.ms, p.source, JSON.parse(p.model)]), [
      ['compute', 'kilo', 1234.5, 'rehearsal A (run 1)', [{ stepId: 'kilo/compute/3', model: 'scaled' }]],
      ['compute', 'liberty', null, null, []],
    ]);
  } finally {
    l.close();
  }
});

test('a ledger written before snapshots (schema 1) is migrated forward with its rows kept', () => {
  const dir = stateDir();
  mkdirSync(dir, { recursive: true });
  const old = new Database(path.join(dir, 'ledger.sqlite3'));
  old.exec(MIGRATIONS[0]!);
  old.pragma('user_version = 1');
  old.prepare(`INSERT INTO runs (chain, chain_sha256, target, status, host, pid, leapfrog_version, started_at) VALUES ('c', 'x', 't', 'succeeded', 'h', 1, '0.1.0', '2026-01-01')`).run();
  old.prepare(`INSERT INTO steps (run_id, step_id, project, release, kind, env, env_sha256, command, status, started_at) VALUES (1, 'kilo/p/1', 'p', 'kilo', 'data', 'e', 'x', '[]', 'succeeded', '2026-01-01')`).run();
  old.close();
  const ledger = Ledger.open(dir);
  try {
    assert.equal(ledger.schemaVersion(), LEDGER_SCHEMA_VERSION);
    assert.equal(ledger.runs()[0]!.snapshot, null);
    assert.equal(ledger.runs()[0]!.notes, null, 'columns added later start empty on old rows');
    assert.equal(ledger.steps(1)[0]!.pid, null);
    assert.deepEqual([ledger.steps(1)[0]!.rows, ledger.steps(1)[0]!.row_counts], [null, null], 'rows unknown: the estimate takes its time as fixed');
    assert.deepEqual(ledger.predictions(1), []);
    assert.deepEqual([...ledger.succeededSteps('c', 't')], ['kilo/p/1']);
    // A rollback undoes the steps recorded between its snapshot and itself, and only those.
    ledger.rollbackStarted({ chain: 'c', target: 't', toCheckpoint: 0, snapshots: [], stepFloor: 0, stepCeiling: 1, host: 'h', pid: 1 });
    assert.deepEqual([...ledger.succeededSteps('c', 't')], []);
    assert.deepEqual([...ledger.succeededSteps('c', 'other')], []);
  } finally {
    ledger.close();
  }
});

test('restore points: per database, the nearest snapshot with no step that may change it (and no rollback) in between, else nothing to restore when nothing changed it since, else none', () => {
  const ledger = Ledger.open(stateDir());
  try {
    // Project A's sync A/1 declares only a; B's only database is b; c is A's second database, which no sync of A declares.
    const chain = {
      name: 'c',
      projects: { A: { name: 'A', databases: { main: 'a', extra: 'c' } }, B: { name: 'B', databases: { main: 'b' } } },
      releases: [{ release: 'r', steps: [{ id: 'r1/A/1', kind: 'sync', expect: { main: 1 } }, { id: 'r2/A/1', kind: 'sync', expect: { main: 2 } }, { id: 'r1/B/1', kind: 'sync', expect: { main: 1 } }] }],
    } as unknown as Chain;
    const runId = ledger.startRun({ chain: 'c', chainSha256: 'x', target: 't', kind: 'run', until: undefined, host: 'h', pid: 1, version: '0', snapshot: 'every-hop' });
    const snap = (database: string, beforeStep: string) =>
      ledger.snapshot({ runId, chain: 'c', target: 't', database, beforeStep, position: ledger.position(), file: `/s/${database}`, sha256: 'x', bytes: 1, durationMs: 1 });
    const step = (project: string, id: string, kind = 'sync') => {
      const row = ledger.stepStarted({ runId, stepId: id, project, release: 'r', kind, env: 'e', envSha256: 'x', command: [], logPath: '/l' });
      ledger.stepFinished(row, { status: 'succeeded', exitCode: 0, durationMs: 1, attempts: 1, logTail: '' });
    };
    const cp = (project: string, release: string) => {
      ledger.checkpoint({ runId, project, release, versions: {}, fingerprints: {} });
      return ledger.checkpointsOf('c', 't').at(-1)!;
    };
    const a0 = snap('a', 'r1/A/1');
    const b0 = snap('b', 'r1/A/1');
    step('A', 'r1/A/1');
    const cpA1 = cp('A', 'r1');
    step('B', 'r1/B/1');
    const cpB1 = cp('B', 'r1');
    const a1 = snap('a', 'r2/A/1');
    step('A', 'r2/A/1');
    const at = (c: typeof cpA1 | undefined) => {
      const r = resolvePoint(chain, restoreHistory(ledger, chain, 't'), c?.after_step ?? 0);
      return { restore: r.restore.map((x) => x.id), unchanged: r.unchanged, missing: r.missing };
    };
    assert.deepEqual(at(cpA1), { restore: [a1, b0], unchanged: ['c'], missing: [] }, 'A did not move between its r1 checkpoint and the snapshot before r2; no sync declares c');
    assert.deepEqual(at(cpB1), { restore: [a1], unchanged: ['c', 'b'], missing: [] }, 'b0 is from before B moved; nothing moved b since');
    assert.deepEqual(at(undefined), { restore: [a0, b0], unchanged: ['c'], missing: [] }, 'start: the snapshots before any step');
    // A data step of A may write any database of A: c is no longer known to be as it was.
    step('A', 'r2/A/2', 'data');
    assert.deepEqual(at(cpB1).missing, ['c']);
    assert.deepEqual(at(undefined).missing, ['c'], 'and so is not known to be as it was at the start either');
    // A rollback in between changed the databases without a step: the later snapshot no longer counts.
    ledger.rollbackStarted({ chain: 'c', target: 't', toCheckpoint: 0, snapshots: [], stepFloor: 0, stepCeiling: cpB1.after_step!, host: 'h', pid: 1 });
    assert.deepEqual(at(cpA1).missing, ['a', 'c'], 'a0 is from before A moved: not the checkpoint');
    assert.deepEqual(at(cpA1).restore, [b0], 'the rollback came after B\'s last step: b0 still holds b at the checkpoint');
  } finally {
    ledger.close();
  }
});
