/**
 * Crash-safe resume, proven by killing leapfrog everywhere: SIGKILL at each
 * named point of a run (reached with LEAPFROG_PAUSE_AT, no test-only code),
 * then `leapfrog run` again must finish the fake cloud chain, and the end
 * state must equal a clean run's: versions, schema fingerprint, row counts
 * and per-table checksums. Plus faults around the run: a toolchain killed by
 * a signal, a full state disk, a lost ledger, schema drift.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { CACHE, ROOT, describeTargets, endState, fakeCloud, leapfrog, tempDir, withMariadb, type Cloud, type TargetKind, ledgerRows, stopped, groupGone } from './helpers.js';

type Json = Record<string, any>;
const parse = (s: string): Json => JSON.parse(s) as Json;

const CLOUD = { instances: 120, nullUuids: 2 };
const references = new Map<TargetKind, Record<string, unknown>>();

/** A clean run's end state on this kind of target, computed once. */
async function reference(kind: TargetKind): Promise<Record<string, unknown>> {
  let ref = references.get(kind);
  if (!ref) {
    const cloud = await fakeCloud({ ...CLOUD, kind });
    const r = await leapfrog(['run', ...cloud.args()]);
    assert.equal(r.exitCode, 0, r.stderr);
    ref = await endState(cloud);
    references.set(kind, ref);
  }
  return ref;
}

/** Start a run that stops itself (SIGSTOP) at `pauseAt`; resolves once it is stopped there. */
async function runUntilPaused(cloud: Cloud, pauseAt: string, extra: string[] = []): Promise<{ child: ResultPromise }> {
  const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...cloud.args(), ...extra], {
    env: { LEAPFROG_PAUSE_AT: pauseAt },
    reject: false,
    stdin: 'ignore',
    // The test sends its own signals; execa must not add a SIGKILL of its own.
    forceKillAfterDelay: false,
  });
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    child.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('leapfrog: paused at')) resolve();
    });
    void child.then((r) => reject(new Error(`leapfrog ended (${r.exitCode}) before pausing at ${pauseAt}:\n${seen}`)));
  });
  await stopped(child.pid!);
  // Wrapped: returning the subprocess itself from an async function would wait for it to end.
  return { child };
}

async function resumeAndCompare(cloud: Cloud, interruptedStep: string | undefined): Promise<void> {
  const r = await leapfrog(['run', ...cloud.args(), '--format', 'json']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stderr, /leapfrog: run 1 died (during|between)/);
  assert.deepEqual(await endState(cloud), await reference(cloud.kind));
  const first = ledgerRows(cloud.state, 'SELECT status, notes FROM runs WHERE id = 1')[0]!;
  assert.equal(first.status, 'interrupted');
  if (interruptedStep) {
    const rows = ledgerRows(cloud.state, `SELECT status, error FROM steps WHERE run_id = 1 AND step_id = '${interruptedStep}'`);
    assert.deepEqual(rows.map((s) => s.status), ['interrupted']);
    assert.match(rows[0]!.error, /the run died while this step was running; found by the next run .*re-probed: /);
    const shown = await leapfrog(['ledger', 'show', '1', '--state-dir', cloud.state]);
    assert.match(shown.stdout, new RegExp(`${interruptedStep.replace(/\//g, '\\/')} +│ \\w+ +│ [\\w-]+ +│ interrupted`));
  }
  assert.equal(ledgerRows(cloud.state, "SELECT COUNT(*) n FROM steps WHERE status = 'started'")[0]!.n, 0, 'no dangling step is left');
}

describeTargets('SIGKILL at every point of a run, then run again', (kind) => {
  test('before a step starts', async () => {
    await reference(kind);
    const cloud = await fakeCloud({ ...CLOUD, kind });
    const { child } = await runUntilPaused(cloud, 'step-start@liberty/compute/1');
    child.kill('SIGKILL');
    await child;
    assert.deepEqual(ledgerRows(cloud.state, "SELECT step_id FROM steps WHERE step_id = 'liberty/compute/1'"), [], 'the step never started');
    await resumeAndCompare(cloud, undefined);
  });

  test('during a snapshot (files written, not yet recorded)', async () => {
    const cloud = await fakeCloud({ ...CLOUD, kind });
    const { child } = await runUntilPaused(cloud, 'snapshot@kilo/compute/1');
    child.kill('SIGKILL');
    await child;
    assert.deepEqual(ledgerRows(cloud.state, 'SELECT COUNT(*) n FROM snapshots'), [{ n: 0 }], 'the snapshot was never recorded');
    await resumeAndCompare(cloud, undefined);
    assert.ok((ledgerRows(cloud.state, 'SELECT COUNT(*) n FROM snapshots WHERE run_id = 2')[0]!.n as number) > 0, 'the next run took its own snapshot');
  });

  test('while a sync step\'s child runs (the child outlives leapfrog, and the next run waits for it)', async () => {
    const cloud = await fakeCloud({ ...CLOUD, kind });
    const { child } = await runUntilPaused(cloud, 'step-child@liberty/compute/1');
    const [{ pid }] = ledgerRows(cloud.state, "SELECT pid FROM steps WHERE step_id = 'liberty/compute/1'") as [{ pid: number }];
    assert.ok(pid > 0, 'the child\'s pid is in the ledger before it is waited on');
    child.kill('SIGKILL');
    await child;
    await groupGone(pid);
    await resumeAndCompare(cloud, 'liberty/compute/1');
    // The child wrote its own output, so it neither died of a broken pipe with leapfrog nor lost its
    // end: the next run put all of it into the step's log, the last migration included.
    const [{ log_path: log }] = ledgerRows(cloud.state, "SELECT log_path FROM steps WHERE run_id = 1 AND step_id = 'liberty/compute/1'") as [{ log_path: string }];
    const text = readFileSync(log, 'utf8');
    assert.match(text, /Running upgrade 301 -> 302, add_instance_system_metadata_uuid_key_index\n[^]*# \S+ leapfrog \(run 1\) died while this step ran; the step's own output went on to the line above/);
    assert.equal(text.match(/Running upgrade 280 -> 281/g)?.length, 1, 'what the dead leapfrog had copied is not there twice');
    assert.deepEqual(readdirSync(path.dirname(log)).filter((f) => f.endsWith('.out')), [], 'no raw output file is left');
  });

  test('after the child exited, before its end is written', async () => {
    const cloud = await fakeCloud({ ...CLOUD, kind });
    const { child } = await runUntilPaused(cloud, 'step-end@liberty/compute/1');
    assert.deepEqual(ledgerRows(cloud.state, "SELECT status FROM steps WHERE step_id = 'liberty/compute/1'"), [{ status: 'started' }]);
    child.kill('SIGKILL');
    await child;
    await resumeAndCompare(cloud, 'liberty/compute/1');
  });

  test('inside a data step\'s batch loop', async () => {
    const cloud = await fakeCloud({ ...CLOUD, kind });
    const { child } = await runUntilPaused(cloud, 'data-batch@kilo/compute/3');
    const [{ attempts }] = ledgerRows(cloud.state, "SELECT attempts FROM steps WHERE step_id = 'kilo/compute/3'") as [{ attempts: number }];
    assert.equal(attempts, 1, 'the batches already run are recorded');
    child.kill('SIGKILL');
    await child;
    await resumeAndCompare(cloud, 'kilo/compute/3');
  });

  test('between a hop and its checkpoint', async () => {
    const cloud = await fakeCloud({ ...CLOUD, kind });
    const { child } = await runUntilPaused(cloud, 'checkpoint@kilo/compute');
    child.kill('SIGKILL');
    await child;
    assert.deepEqual(ledgerRows(cloud.state, "SELECT release FROM checkpoints WHERE project = 'compute'"), []);
    await resumeAndCompare(cloud, undefined);
  });
});

describe('faults around the run', { timeout: 300_000 }, () => {
  test('a toolchain killed by a signal fails its step; the next run finishes the chain', async () => {
    const cloud = await fakeCloud(CLOUD);
    const { child } = await runUntilPaused(cloud, 'step-child@mitaka/compute/1');
    const [{ pid }] = ledgerRows(cloud.state, "SELECT pid FROM steps WHERE step_id = 'mitaka/compute/1'") as [{ pid: number }];
    process.kill(-pid, 'SIGKILL');
    child.kill('SIGCONT');
    const first = await child;
    assert.equal(first.exitCode, 1, String(first.stderr));
    assert.match(String(first.stderr), /step mitaka\/compute\/1 \(sync in env compute-mitaka\) was killed by SIGKILL/);
    const again = await leapfrog(['run', ...cloud.args()]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.deepEqual(await endState(cloud), await reference('sqlite'));
  });

  test('SIGTERM stops at a safe point: the step is interrupted, exit 130, and the next run finishes', async () => {
    const cloud = await fakeCloud(CLOUD);
    const { child } = await runUntilPaused(cloud, 'step-child@liberty/compute/1');
    child.kill('SIGTERM');
    child.kill('SIGCONT');
    const first = await child;
    assert.equal(first.exitCode, 130, `${first.signal ?? ''} ${String(first.stderr)}`);
    assert.match(String(first.stderr), /SIGTERM: stopping at a safe point/);
    assert.deepEqual(ledgerRows(cloud.state, "SELECT status FROM runs"), [{ status: 'interrupted' }]);
    assert.deepEqual(ledgerRows(cloud.state, "SELECT status FROM steps WHERE step_id = 'liberty/compute/1'"), [{ status: 'interrupted' }]);
    const again = await leapfrog(['run', ...cloud.args(), '--resume']);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.deepEqual(await endState(cloud), await reference('sqlite'));
  });

  test('--resume with nothing to resume is an input error', async () => {
    const cloud = await fakeCloud(CLOUD);
    const r = await leapfrog(['run', ...cloud.args(), '--resume']);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, /--resume: nothing to resume; no run of chain fakecloud-juno-newton on this target is recorded/);
  });

  test('a ledger deleted between runs: the run re-derives state from the databases and says history was lost', async () => {
    const cloud = await fakeCloud(CLOUD);
    const first = await leapfrog(['run', ...cloud.args(), '--until', 'liberty']);
    assert.equal(first.exitCode, 0, first.stderr);
    rmSync(cloud.state, { recursive: true, force: true });
    const r = await leapfrog(['run', ...cloud.args()]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, /no history of chain fakecloud-juno-newton on this target in .*ledger\.sqlite3, but its databases are past the chain's start/);
    assert.deepEqual(await endState(cloud), await reference('sqlite'));
    assert.match(ledgerRows(cloud.state, 'SELECT notes FROM runs')[0]!.notes, /no history/);
  });

  test('a ledger deleted under a running run: it stops before the next step, saying why; the next run derives the rest from the databases', async () => {
    const cloud = await fakeCloud(CLOUD);
    const { child } = await runUntilPaused(cloud, 'step-start@mitaka/compute/1');
    rmSync(path.join(cloud.state, 'ledger.sqlite3'));
    child.kill('SIGCONT');
    const first = await child;
    assert.equal(first.exitCode, 3, String(first.stderr));
    assert.match(String(first.stderr), /the ledger \S+ledger\.sqlite3 was deleted or replaced while this run was running: stopped before mitaka\/compute\/1/);
    const again = await leapfrog(['run', ...cloud.args()]);
    assert.equal(again.exitCode, 0, again.stderr);
    // The deleted ledger's write-ahead log was not replayed into the new ledger: set aside, kept.
    assert.deepEqual(readdirSync(cloud.state).filter((f) => f.startsWith('ledger')).map((f) => f.replace(/orphaned-.*/, 'orphaned-TIME')).sort(), ['ledger.sqlite3', 'ledger.sqlite3-shm.orphaned-TIME', 'ledger.sqlite3-wal.orphaned-TIME']);
    assert.equal(ledgerRows(cloud.state, 'SELECT COUNT(*) n FROM runs')[0]!.n, 1, 'the new ledger holds only the new run');
    assert.match(again.stderr, /no history of chain fakecloud-juno-newton on this target/);
    assert.deepEqual(await endState(cloud), await reference('sqlite'));
  });

  test('schema drift since the last checkpoint stops the run, explained; --accept-drift goes on and is recorded', async () => {
    const cloud = await fakeCloud(CLOUD);
    assert.equal((await leapfrog(['run', ...cloud.args(), '--until', 'kilo'])).exitCode, 0);
    await execa('sqlite3', [cloud.file('image'), 'CREATE TABLE hand_made (id INTEGER); CREATE INDEX images_by_hand ON images (name)']);
    const r = await leapfrog(['run', ...cloud.args()]);
    assert.equal(r.exitCode, 3, r.stderr);
    assert.match(r.stderr, /schema of a database changed since the last checkpoint although the version did not/);
    assert.match(r.stderr, /project image, database main: schema changed since image@kilo \(checkpoint \d+\) at the same version: table hand_made added; table images: index images_by_hand\(name\) added/);
    const ok = await leapfrog(['run', ...cloud.args(), '--accept-drift']);
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ledgerRows(cloud.state, 'SELECT notes FROM runs WHERE id = 2')[0]!.notes, /drift accepted \(--accept-drift\): project image/);
  });

  test('a full state disk stops the run cleanly; with space again the next run finishes', async (t) => {
    const mnt = tempDir('full');
    try {
      await execa('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    } catch (err) {
      t.skip(`cannot mount a small tmpfs here (${(err as Error).message.split('\n')[0]}); the disk-full case needs one`);
      return;
    }
    try {
      const cloud = await fakeCloud(CLOUD);
      const state = path.join(mnt, 'state');
      const args = cloud.args().map((a) => (a === cloud.state ? state : a));
      const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...args], {
        env: { LEAPFROG_PAUSE_AT: 'step-start@liberty/compute/1' },
        reject: false,
        stdin: 'ignore',
      });
      await new Promise<void>((resolve) => child.stderr!.on('data', (d: Buffer) => d.toString().includes('paused at') && resolve()));
      await stopped(child.pid!);
      // Fill the disk under the paused run.
      await execa('dd', ['if=/dev/zero', `of=${path.join(mnt, 'filler')}`, 'bs=64k'], { reject: false });
      child.kill('SIGCONT');
      const full = await child;
      assert.notEqual(full.exitCode, 0);
      assert.match(String(full.stderr), /the state directory .* is full \((SQLITE_FULL|ENOSPC)\): leapfrog cannot record what it does, so it stopped/);
      rmSync(path.join(mnt, 'filler'));
      const again = await leapfrog(['run', ...args]);
      assert.equal(again.exitCode, 0, again.stderr);
      assert.deepEqual(await endState(cloud), await reference('sqlite'));
    } finally {
      await execa('umount', ['-l', mnt], { reject: false });
    }
  });
});

// Keep the shared env cache warm for other files; nothing here writes to it.
mkdirSync(CACHE, { recursive: true });

describeTargets('a database connection killed mid-step', (kind) => {
  test('KILL CONNECTION from a second session during a sync: the run stops with the error, the next one finishes', async () => {
    const cloud = await fakeCloud({ ...CLOUD, kind });
    await reference(kind);
    const { child } = await runUntilPaused(cloud, 'step-child@liberty/compute/1');
    // Every session on the compute database: leapfrog's own (idle, paused) and the toolchain's client.
    let killed = 0;
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      const ids = await withMariadb(async (c) => {
        const [rows] = await c.query(`SELECT ID id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()`, [cloud.names.compute]);
        for (const { id } of rows as { id: number }[]) await c.query(`KILL CONNECTION ${Number(id)}`).catch(() => undefined);
        return (rows as unknown[]).length;
      });
      killed += ids;
      if (killed > 0 && ids === 0) break;
    }
    assert.ok(killed > 0, 'some session on the database was killed');
    child.kill('SIGCONT');
    const first = await child;
    // Which sessions the kill hits is a race: leapfrog's own idle connections are
    // re-established by its pool (the run goes on), while a toolchain client that
    // loses its connection fails its step (the run stops, saying so). Either way
    // no hang, and the next run ends where a clean run ends.
    if (first.exitCode !== 0) assert.match(String(first.stderr), /leapfrog: (step liberty\/compute\/1|.*(lost|closed|connection))/i);
    const again = await leapfrog(['run', ...cloud.args()]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.deepEqual(await endState(cloud), await reference(kind));
  });
}, ['mariadb']);
