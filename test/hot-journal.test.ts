/**
 * A writer killed mid-transaction on SQLite leaves a hot rollback journal
 * (https://www.sqlite.org/lockingv3.html#hot_journals): the database file
 * holds half a transaction until the next writer rolls it back. leapfrog
 * reads read-only, so `plan` cannot and must not roll it back: it refuses,
 * saying so; `run` rolls it back under its lock, as the tool's next
 * connection would, and goes on. Made here by a real process SIGKILLed in
 * the middle of a transaction whose pages have spilled to the file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { after, test } from 'node:test';
import { fakeCloud, leapfrog, ROOT, type Cloud } from './helpers.js';

let cloud: Cloud;
after(() => cloud?.dispose());

test('a hot journal: plan refuses without writing, run rolls it back and finishes', async () => {
  cloud = await fakeCloud({ instances: 200 });
  const file = cloud.file('compute');
  const before = await cloud.query('compute', 'SELECT id, hostname FROM instances ORDER BY id');
  // A one-page cache makes the UPDATE spill into the database file before the kill: a hot journal for real.
  const killer = `
    const Database = require('better-sqlite3');
    const db = new Database(process.argv[1]);
    db.pragma('journal_mode = DELETE');
    db.pragma('cache_size = 1');
    db.exec("BEGIN; UPDATE instances SET hostname = hostname || '-half-done';");
    process.kill(process.pid, 'SIGKILL');`;
  const k = spawnSync(process.execPath, ['-e', killer, file], { cwd: ROOT });
  assert.equal(k.signal, 'SIGKILL');
  assert.ok(existsSync(`${file}-journal`) && statSync(`${file}-journal`).size > 0, 'the killed writer left a hot journal');
  const journal = statSync(`${file}-journal`).size;

  const plan = await leapfrog(['plan', ...cloud.args()]);
  assert.equal(plan.exitCode, 3, plan.stderr);
  assert.match(plan.stderr, /compute\.sqlite3-journal holds a transaction a writer left unfinished when it died.*only `leapfrog run` does/);
  assert.equal(statSync(`${file}-journal`).size, journal, 'plan left the journal as it was');

  const run = await leapfrog(['run', ...cloud.args(), '--until', 'kilo']);
  assert.equal(run.exitCode, 0, run.stderr);
  assert.match(run.stderr, /database compute: rolled back the unfinished transaction/);
  assert.ok(!existsSync(`${file}-journal`) || statSync(`${file}-journal`).size === 0, 'the journal is gone');
  const hostnames = (await cloud.query<{ hostname: string }>('compute', 'SELECT hostname FROM instances')).map((r) => r.hostname);
  assert.ok(hostnames.every((h) => !String(h).endsWith('-half-done')), 'the half-done UPDATE was rolled back');
  assert.ok(before.length > 0);
});
