/**
 * `leapfrog status` through its three exit codes on both targets: a fresh
 * cloud (1, work pending), a run that failed and one that died under
 * kill -9 (2), the chain's end (0); each checked in text and JSON, and
 * nothing written by status itself.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { Ledger } from '../src/ledger/ledger.js';
import { ROOT, describeTargets, eventually, fakeCloud, leapfrog, runKilledAt } from './helpers.js';

type Json = Record<string, any>;

describeTargets('status', (kind) => {
  test('pending (exit 1) on a fresh cloud, 2 after a failed run and after a run that died, 0 at the chain\'s end', async () => {
    const cloud = await fakeCloud({ kind });
    const status = async (chain = cloud.chain) => {
      const text = await leapfrog(['status', ...cloud.args(chain)]);
      const json = await leapfrog(['status', ...cloud.args(chain), '--format', 'json']);
      assert.equal(json.exitCode, text.exitCode, 'text and JSON agree');
      return { exitCode: text.exitCode, text: text.stdout, stderr: text.stderr, json: JSON.parse(json.stdout) as Json };
    };

    // A fresh cloud: everything pending, nothing recorded, and status creates no ledger.
    const fresh = await status();
    assert.equal(fresh.exitCode, 1, fresh.stderr);
    assert.equal(existsSync(cloud.state), false, 'status writes nothing, not even the state directory');
    assert.equal(fresh.json.format, 'leapfrog.status/v1');
    assert.equal(fresh.json.verdict, 'pending');
    const plan = JSON.parse((await leapfrog(['plan', ...cloud.args(), '--format', 'json'])).stdout) as Json;
    const compute = fresh.json.projects.find((p: Json) => p.project === 'compute');
    assert.deepEqual(compute, { project: 'compute', reached: null, nextHop: 'compute@kilo', pending: plan.steps.filter((s: Json) => s.project === 'compute').map((s: Json) => s.id) });
    assert.deepEqual(fresh.json.versions.compute, { main: 254, api: null });
    assert.equal(fresh.json.lastRun, null);
    assert.equal(fresh.json.lastRehearsal, null);
    assert.match(fresh.text, new RegExp(`^Status: chain fakecloud-juno-newton on \\S+: ${plan.steps.length} steps pending \\(exit 1\\)`));
    assert.match(fresh.text, /│ compute +│ main +│ 254 +│ \(chain start\) │ compute@kilo +│ 10 from kilo\/compute\/\d+ +│/);
    assert.match(fresh.text, /Last run: none recorded on this target\./);

    // A data step that cannot finish within its bound fails the run at kilo: exit 2, naming the step.
    const tight = cloud.variant('status-tight', (c) => {
      const step = c.releases.find((r: Json) => r.release === 'kilo').steps.find((s: Json) => (s.data ?? []).includes('migrate_flavor_data'));
      step.data[step.data.length - 1] = '1';
      step['max-runs'] = 1;
    });
    assert.equal((await leapfrog(['run', ...cloud.args(tight)])).exitCode, 1);
    const failed = await status(tight);
    assert.equal(failed.exitCode, 2, failed.stderr);
    assert.equal(failed.json.verdict, 'failed');
    assert.equal(failed.json.lastRun.status, 'failed');
    assert.deepEqual(failed.json.lastRun.stoppedAt.map((s: Json) => [s.step, s.status]), [['kilo/compute/3', 'failed']]);
    assert.match(failed.json.lastRun.stoppedAt[0].error, /still has work after 1 runs \(max-runs 1\)/);
    assert.match(failed.text, /: the last run did not finish \(exit 2\)/);
    assert.match(failed.text, /Last run: 1 failed, started \S+, took [\d.]+ m?s; stopped at kilo\/compute\/3 \(failed: still has work/);

    // A run killed (-9) inside a step never records its end: status says it died (2).
    await runKilledAt(cloud, 'step-end@liberty/compute/1');
    const died = await status();
    assert.equal(died.exitCode, 2, died.stderr);
    assert.equal(died.json.lastRun.id, 2);
    assert.equal(died.json.lastRun.died, true);
    assert.deepEqual(died.json.lastRun.stoppedAt.map((s: Json) => [s.step, s.status]), [['liberty/compute/1', 'started']]);
    assert.match(died.text, /Last run: 2 died \(never recorded its end; its process is gone\), started \S+; stopped at liberty\/compute\/1 \(in flight\)\./);
    assert.match(died.stderr, /run 2 died during liberty\/compute\/1/, 'the pre-flight notes, as plan prints them');
    // Its child had finished the sync before the kill: the database says liberty, whatever the ledger lacks.
    assert.equal(died.json.projects.find((p: Json) => p.project === 'compute').reached, 'liberty');

    // Resumed to the end: exit 0, every project at newton, the last run succeeded.
    const end = await leapfrog(['run', ...cloud.args()]);
    assert.equal(end.exitCode, 0, end.stderr);
    const done = await status();
    assert.equal(done.exitCode, 0, done.stderr);
    assert.equal(done.json.verdict, 'done');
    assert.deepEqual(done.json.projects.map((p: Json) => [p.project, p.reached, p.nextHop, p.pending]), [
      ['compute', 'newton', null, []],
      ['identity', 'newton', null, []],
      ['image', 'newton', null, []],
    ]);
    assert.deepEqual(done.json.lastRun.stoppedAt, []);
    assert.equal(done.json.lastRun.status, 'succeeded');
    assert.match(done.text, /: every database is at the end of the chain \(exit 0\)/);
    assert.match(done.text, /Last rehearsal: none in this state directory\./);

    // A rehearsal keeps its own ledger under STATE_DIR/rehearsals/<id>/: the newest run of the chain there is shown.
    const dir = path.join(cloud.state, 'rehearsals', 'r1');
    const ledger = Ledger.open(dir);
    const id = ledger.startRun({ chain: 'fakecloud-juno-newton', chainSha256: 'x', target: 'mysql://scratch', kind: 'rehearsal', until: undefined, host: 'h', pid: 1, version: '0' });
    ledger.finishRun(id, 'succeeded');
    ledger.close();
    const rehearsed = await status();
    assert.equal(rehearsed.exitCode, 0, 'a rehearsal is not a run on this target');
    assert.deepEqual([rehearsed.json.lastRehearsal.id, rehearsed.json.lastRehearsal.status, rehearsed.json.lastRehearsal.dir], [id, 'succeeded', dir]);
    assert.match(rehearsed.text, new RegExp(`Last rehearsal: run ${id} succeeded, started \\S+, took [\\d.]+ m?s \\(${dir.replace(/[/.]/g, '\\$&')}\\)\\.`));
  });

  test('bad input is 2 with a message and nothing on stdout; a target the chain cannot start from is 3, as plan', async () => {
    const cloud = await fakeCloud({ kind, instances: 5 });
    const bad = await leapfrog(['status', ...cloud.args(path.join(cloud.dir, 'missing.yaml'))]);
    assert.equal(bad.exitCode, 2);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /missing\.yaml/);
    await cloud.exec('compute', 'UPDATE migrate_version SET version = 340');
    const ahead = await leapfrog(['status', ...cloud.args()]);
    assert.equal(ahead.exitCode, 3, ahead.stderr);
    assert.match(ahead.stdout, /│ compute +│ main +│ 340 /);
  });
});
