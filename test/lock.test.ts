/**
 * One run at a time per target: concurrent runs race for the locks, exactly
 * one proceeds and the other names it; a killed holder leaves no stale lock.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { describeTargets, eventually, fakeCloud, leapfrog, spawnLeapfrog, tempDir } from './helpers.js';

type Json = Record<string, any>;

describeTargets('the run lock', (kind) => {
  test('two runs at once: exactly one proceeds, the other names the holder; --wait-lock waits; SIGKILL frees the lock at once', async () => {
    const cloud = await fakeCloud({ kind, instances: 10 });
    // The same chain with a slow first step, so the winner holds the lock for a while.
    const slow = cloud.variant('fakecloud-juno-newton', (c) => {
      c.releases[0].steps.unshift({ project: 'compute', env: 'compute-kilo', name: 'hold the lock', check: ['sleep', '20'] });
    });
    const a = spawnLeapfrog(['run', ...cloud.args(slow)]);
    const b = spawnLeapfrog(['run', ...cloud.args(slow)]);
    // Whichever loses exits 4 at once; the other is still running.
    const first = await Promise.race([a.then((r) => ({ r, winner: b })), b.then((r) => ({ r, winner: a }))]);
    const loser = first.r;
    const winner = first.winner;
    assert.equal(loser.exitCode, 4, loser.stderr);
    assert.equal(winner.exitCode, null, 'the winner is still running');
    assert.match(loser.stderr, new RegExp(`is locked by leapfrog run on host ${os.hostname()}, pid ${winner.pid}, since \\d{4}-\\d\\d-\\d\\dT`));
    assert.match(loser.stderr, /wait for it, or pass --wait-lock SECONDS/);

    // Another state directory (another operator, same target): the target's own lock names the holder.
    await eventually('the winner to start its first step', () => (existsSync(path.join(cloud.state, 'runs', '1', 'logs')) ? true : undefined));
    const other = await leapfrog(['run', ...cloud.args(), '--state-dir', tempDir('state2')]);
    assert.equal(other.exitCode, 4, other.stderr);
    if (kind === 'sqlite') assert.match(other.stderr, new RegExp(`sqlite:.* is locked by leapfrog run on host ${os.hostname()}, pid ${winner.pid}`));
    else assert.match(other.stderr, new RegExp(`is locked by server connection \\d+ \\(root from [\\w.:]+\\), holding lock leapfrog:db:${cloud.names.compute} since \\d{4}-`));

    // Another chain that shares one database (image) with the running one, from another state directory.
    if (kind === 'mariadb') {
      const imageOnly = cloud.variant('image-only', (c) => {
        c.chain = 'fakecloud-image-only';
        delete c.projects.compute;
        delete c.projects.identity;
        for (const r of c.releases) r.steps = r.steps.filter((s: Json) => s.project === 'image');
      });
      const shared = await leapfrog(['run', ...cloud.args(imageOnly), '--state-dir', tempDir('state3')]);
      assert.equal(shared.exitCode, 4, shared.stderr);
      assert.match(shared.stderr, new RegExp(`holding lock leapfrog:db:${cloud.names.image} since`));
    }

    // A run that waits gets the lock as soon as the holder dies, killed without a chance to clean up.
    const waiter = spawnLeapfrog(['run', ...cloud.args(), '--wait-lock', '60', '--format', 'json']);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(waiter.exitCode, null, 'the waiter waits');
    const killedAt = Date.now();
    winner.kill('SIGKILL');
    const w = await waiter;
    assert.equal(w.exitCode, 0, w.stderr);
    const run = JSON.parse(w.stdout) as Json;
    assert.equal(run.status, 'succeeded');
    assert.deepEqual(run.versions.compute, { main: 334, api: 20 });
    assert.ok(Date.now() - killedAt < 60_000);
    // Nothing stale: the next run gets the lock at once (and has nothing to do).
    const after = await leapfrog(['run', ...cloud.args()]);
    assert.equal(after.exitCode, 0, after.stderr);
    assert.deepEqual(readdirSync(path.join(cloud.state, 'locks')).filter((f) => f.endsWith('.holder')), [], 'no holder note left behind');
  });
});
