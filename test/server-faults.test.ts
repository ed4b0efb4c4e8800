/**
 * The database server killed (SIGKILL, as the OOM killer or a power cut
 * would) while a sync step is inside a migration, then started again on the
 * same datadir: a throwaway mariadbd of the test's own, run with durable
 * settings (a commit is on disk when it returns), so that what survives the
 * kill is what a production server keeps. The step fails; the next run either
 * finishes equal to a clean run or refuses, naming the step, what is there and
 * the snapshot to roll back to; after that rollback, a run finishes equal to a
 * clean run. Made deterministic as in recovery.test.ts: the test holds a
 * metadata lock so the step's migration stops exactly where it must.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import mysql from 'mysql2/promise';
import { serverArgs, startScratchServer, stopScratchServer, type ScratchServer } from '../src/rehearse/scratch-server.js';
import { MARIADB_REQUIRED, ROOT, endState, eventually, fakeCloud, leapfrog, ledgerRows, mariadbOptions, namedRollback, stopped, tempDir, type Cloud } from './helpers.js';

const STEP = 'newton/compute/2';
const RUN = ['--snapshot', 'every-hop'];

let scratch: ScratchServer | undefined;
let server: ResultPromise | undefined;
let url = '';
let reference: Record<string, unknown>;
const skip = await (async () => {
  try {
    // Its datadir made and checked by the rehearsals' own code; stopped cleanly, to be started durable below.
    const s = await startScratchServer({ parentDir: tempDir('server-faults') });
    process.kill(s.pid, 'SIGTERM');
    await eventually('the first server to stop', () => {
      try {
        process.kill(s.pid, 0);
        return undefined;
      } catch {
        return true;
      }
    }, 60_000);
    scratch = s;
    return false;
  } catch (err) {
    if (MARIADB_REQUIRED) throw err;
    return `no MariaDB server binaries to start a server of the test's own: ${(err as Error).message}`;
  }
})();

/** The scratch server again, on its datadir, durable: InnoDB's log flushed at each commit, doublewrite on (the scratch defaults trade both away). */
async function startDurable(): Promise<void> {
  const s = scratch!;
  server = execa(s.binary, [...serverArgs({ ...s, bufferPoolBytes: s.bufferPoolBytes, asRoot: process.getuid?.() === 0 }), '--innodb-flush-log-at-trx-commit=1', '--innodb-doublewrite=1'], {
    detached: true,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'ignore',
    reject: false,
    forceKillAfterDelay: false,
  });
  await eventually('the server to answer', async () => {
    try {
      const c = await mysql.createConnection(mariadbOptions(url));
      await c.end();
      return true;
    } catch {
      return undefined;
    }
  }, 120_000);
}

async function killServer(): Promise<void> {
  server!.kill('SIGKILL');
  await server;
}

/** `run` until the step's migration blocks on the lock `hold` takes (a statement matching `blocked` waits), then the server is killed. */
async function killServerInside(cloud: Cloud, hold: string, blocked: RegExp): Promise<{ exitCode: number | undefined; stderr: string }> {
  const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...cloud.args(), ...RUN], { env: { LEAPFROG_PAUSE_AT: `step-start@${STEP}` }, reject: false, stdin: 'ignore', forceKillAfterDelay: false });
  let seen = '';
  child.stderr!.on('data', (d: Buffer) => (seen += d.toString()));
  await eventually('the pause', () => (seen.includes('leapfrog: paused at') ? true : undefined), 120_000);
  await stopped(child.pid!);
  const locker = await mysql.createConnection({ ...mariadbOptions(url), database: cloud.names.compute });
  const watcher = await mysql.createConnection(mariadbOptions(url));
  try {
    await locker.query('START TRANSACTION');
    await locker.query(hold);
    child.kill('SIGCONT');
    await eventually(`the step to block on ${blocked}`, async () => {
      const [rows] = await watcher.query('SELECT INFO info FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO IS NOT NULL', [cloud.names.compute]);
      return (rows as { info: string }[]).some((r) => blocked.test(r.info)) ? true : undefined;
    }, 60_000);
  } finally {
    locker.destroy();
    watcher.destroy();
  }
  await killServer();
  const first = await child;
  return { exitCode: first.exitCode, stderr: seen };
}

const columns = async (cloud: Cloud, table: string): Promise<string[]> =>
  (await cloud.query<{ c: string }>('compute', `SELECT COLUMN_NAME c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${table}' AND COLUMN_NAME = 'device_metadata'`)).map((r) => r.c);

describe('the database server killed inside a migration, then started again', { skip, timeout: 600_000 }, () => {
  before(async () => {
    url = `mysql://root@127.0.0.1:${scratch!.port}`;
    await startDurable();
    const clean = await fakeCloud({ kind: 'mariadb', instances: 10, url });
    const r = await leapfrog(['run', ...clean.args(), ...RUN]);
    assert.equal(r.exitCode, 0, r.stderr);
    reference = await endState(clean);
    await clean.dispose();
  });
  after(async () => {
    if (server) await killServer().catch(() => undefined);
    if (scratch) await stopScratchServer(scratch, { keep: false });
  });

  test('between the two ALTERs: the step fails; the next run refuses, naming the step, the column there and the snapshot; after that rollback a run finishes', async () => {
    const cloud = await fakeCloud({ kind: 'mariadb', instances: 10, url });
    const first = await killServerInside(cloud, 'SELECT COUNT(*) FROM shadow_instance_extra', /^ALTER TABLE shadow_instance_extra/);
    assert.notEqual(first.exitCode, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`step ${STEP}`));
    await startDurable();
    assert.deepEqual(await columns(cloud, 'instance_extra'), ['device_metadata'], 'the first ALTER committed before the kill');
    assert.deepEqual(await columns(cloud, 'shadow_instance_extra'), []);
    assert.deepEqual(ledgerRows(cloud.state, `SELECT status FROM steps WHERE step_id = '${STEP}'`), [{ status: 'failed' }], 'the ledger never says succeeded');

    const again = await leapfrog(['run', ...cloud.args(), ...RUN]);
    assert.equal(again.exitCode, 3, again.stderr);
    assert.match(again.stderr, /newton\/compute\/2 failed and left work that is not safe to run over/);
    assert.match(again.stderr, /table instance_extra: column device_metadata \w+ added/);
    assert.deepEqual(await columns(cloud, 'shadow_instance_extra'), [], 'nothing was run over the half');
    const named = namedRollback(again.stderr);
    assert.ok(named, again.stderr);
    const rb = await leapfrog(['rollback', ...cloud.args(), '--to', named.to, '--yes']);
    assert.equal(rb.exitCode, 0, rb.stderr);
    const last = await leapfrog(['run', ...cloud.args(), ...RUN]);
    assert.equal(last.exitCode, 0, last.stderr);
    assert.deepEqual(await endState(cloud), reference);
  });

  test('before the first ALTER: the step fails with nothing done, and the next run finishes', async () => {
    const cloud = await fakeCloud({ kind: 'mariadb', instances: 10, url });
    const first = await killServerInside(cloud, 'SELECT COUNT(*) FROM instance_extra', /^ALTER TABLE instance_extra/);
    assert.notEqual(first.exitCode, 0, first.stderr);
    await startDurable();
    assert.deepEqual(await columns(cloud, 'instance_extra'), [], 'a killed ALTER leaves nothing (atomic DDL)');
    const again = await leapfrog(['run', ...cloud.args(), ...RUN]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.deepEqual(await endState(cloud), reference);
  });
});

describe("the database server's datadir full in the middle of a run", { skip, timeout: 600_000 }, () => {
  test('a step that cannot create its table fails naming the error; with space again, the run ends equal to a clean run', async (t) => {
    const mnt = tempDir('datadir-full');
    try {
      await execa('mount', ['-t', 'tmpfs', '-o', 'size=600m', 'tmpfs', mnt]);
    } catch (err) {
      t.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); the datadir-full case needs one`);
      return;
    }
    let full: ScratchServer | undefined;
    try {
      full = await startScratchServer({ parentDir: mnt });
      const at = `mysql://root@127.0.0.1:${full.port}`;
      const clean = await fakeCloud({ kind: 'mariadb', instances: 10, url: at });
      assert.equal((await leapfrog(['run', ...clean.args(), ...RUN])).exitCode, 0);
      const expected = await endState(clean);
      await clean.dispose();

      const cloud = await fakeCloud({ kind: 'mariadb', instances: 10, url: at });
      // Paused before mitaka's first sync, which creates tables (a new file each): then the disk fills.
      const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...cloud.args(), ...RUN], { env: { LEAPFROG_PAUSE_AT: 'step-start@mitaka/compute/1' }, reject: false, stdin: 'ignore', forceKillAfterDelay: false });
      let seen = '';
      child.stderr!.on('data', (d: Buffer) => (seen += d.toString()));
      await eventually('the pause', () => (seen.includes('leapfrog: paused at') ? true : undefined), 120_000);
      await stopped(child.pid!);
      await execa('dd', ['if=/dev/zero', `of=${path.join(mnt, 'filler')}`, 'bs=1M'], { reject: false });
      child.kill('SIGCONT');
      const first = await child;
      // Either the step's own tool or leapfrog's read before it meets the full disk: a failed step, the server's words.
      assert.equal(first.exitCode, 1, seen);
      assert.match(seen, /step mitaka\/compute\/1.*(errno: 28|Errcode: 28|No space left|is full)/i);
      assert.doesNotMatch(seen, /\n\s+at /, 'no stack trace');
      assert.deepEqual(ledgerRows(cloud.state, "SELECT status FROM steps WHERE step_id = 'mitaka/compute/1'"), [{ status: 'failed' }]);

      rmSync(path.join(mnt, 'filler'));
      let again = await leapfrog(['run', ...cloud.args(), ...RUN]);
      const named = again.exitCode === 3 ? namedRollback(again.stderr) : undefined;
      if (named) {
        // Refused with the step, what is there and the point: that is the other acceptable end.
        assert.equal((await leapfrog(['rollback', ...cloud.args(), '--to', named.to, '--yes'])).exitCode, 0);
        again = await leapfrog(['run', ...cloud.args(), ...RUN]);
      }
      assert.equal(again.exitCode, 0, again.stderr);
      assert.deepEqual(await endState(cloud), expected);
    } finally {
      if (full) await stopScratchServer(full, { keep: false });
      await execa('umount', ['-l', mnt], { reject: false });
    }
  });
});
