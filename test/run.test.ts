/**
 * The fake cloud, end to end through the real CLI: real SQLite files, real
 * child processes from the real toolchain tarballs, a real ledger.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { shortOfRuns } from '../src/runner/step.js';
import { CHAIN, describeTargets, fakeCloud, leapfrog } from './helpers.js';

type Json = Record<string, any>;
const parse = (s: string): Json => JSON.parse(s) as Json;

describeTargets('the fake cloud from juno to newton', (kind) => {
  test('run completes, checkpoints every hop, and a second run has nothing to do', async () => {
    const cloud = await fakeCloud({ kind, instances: 120, nullUuids: 3 });
    const instancesBefore = await cloud.scalar('compute', 'SELECT COUNT(*) FROM instances WHERE uuid IS NOT NULL');

    const planned = await leapfrog(['plan', ...cloud.args(), '--format', 'json']);
    assert.equal(planned.exitCode, 0, planned.stderr);
    const plan = parse(planned.stdout);
    assert.equal(plan.format, 'leapfrog.plan/v1');

    const r = await leapfrog(['run', ...cloud.args(), '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const run = parse(r.stdout);
    assert.equal(run.status, 'succeeded');
    assert.deepEqual(run.versions, {
      compute: { main: 334, api: 20 },
      identity: { main: { keystone: 109, keystone_expand: 3, keystone_data_migrate: 3, keystone_contract: 3 } },
      image: { main: 'mitaka02' },
    });
    // plan --format json printed exactly what run executed.
    const executed = run.steps.filter((s: Json) => s.status !== 'skipped').map((s: Json) => s.id);
    assert.deepEqual(executed, plan.steps.map((s: Json) => s.id));
    const ledgerSteps = parse((await leapfrog(['ledger', 'show', String(run.run), '--state-dir', cloud.state, '--format', 'json'])).stdout);
    assert.deepEqual(ledgerSteps.steps.map((s: Json) => s.command), plan.steps.map((s: Json) => s.command));

    // The data really moved: null uuids gone, flavors out of system metadata, rows kept.
        assert.equal(await cloud.scalar('compute', 'SELECT COUNT(*) FROM instances WHERE uuid IS NULL'), 0);
    assert.equal(await cloud.scalar('compute', "SELECT COUNT(*) FROM instance_system_metadata WHERE `key` = 'instance_type_id' AND deleted = 0"), 0);
    assert.equal(await cloud.scalar('compute', 'SELECT COUNT(*) FROM instances'), instancesBefore);
    const batches = ledgerSteps.steps.find((s: Json) => s.step_id === 'kilo/compute/3');
    assert.ok(batches.attempts > 1, 'the flavor migration ran in batches');

    // One checkpoint per (project, release) hop, with versions and a fingerprint of each existing database.
    const cps = ledgerSteps.checkpoints as Json[];
    assert.equal(cps.length, 12);
    for (const p of ['compute', 'identity', 'image']) {
      assert.deepEqual(cps.filter((c) => c.project === p).map((c) => c.release), ['kilo', 'liberty', 'mitaka', 'newton']);
    }
    const newtonCompute = cps.find((c) => c.project === 'compute' && c.release === 'newton')!;
    assert.deepEqual(newtonCompute.versions, { main: 334, api: 20 });
    assert.match(newtonCompute.fingerprints.main, /^[0-9a-f]{64}$/);
    assert.notEqual(cps.find((c) => c.project === 'compute' && c.release === 'kilo')!.fingerprints.main, newtonCompute.fingerprints.main);

    // The rendered config holds the database URL and is readable by its owner only.
    const confs = await execa('find', [cloud.state, '-name', 'compute.conf']);
    const conf = String(confs.stdout).trim();
    assert.equal(statSync(conf).mode & 0o777, 0o600);

    const again = await leapfrog(['run', ...cloud.args()]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stdout, /Nothing to run: the target is already at the end of chain fakecloud-juno-newton/);
    assert.equal(parse((await leapfrog(['ledger', 'runs', '--state-dir', cloud.state, '--format', 'json'])).stdout).runs.length, 1, 'a run with nothing to do records no run');

    const shown = await leapfrog(['ledger', 'show', '--state-dir', cloud.state]);
    assert.equal(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, /kilo\/compute\/3 +│ data +│ compute-kilo +│ succeeded +│ \d+ +│ 0 +│ (\d+ ms|[\d.]+ s)/);
    assert.match(shown.stdout, /compute@newton +│ main 334/);
  });

  test('--until stops at a release, --parallel runs projects side by side, and the next run resumes from there', async () => {
    const cloud = await fakeCloud({ kind });
    const r = await leapfrog(['run', ...cloud.args(), '--until', 'liberty', '--parallel', '3', '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(parse(r.stdout).versions.compute, { main: 302, api: null });
    assert.deepEqual(parse(r.stdout).versions.image, { main: 'liberty' });

    const p = parse((await leapfrog(['plan', ...cloud.args(), '--format', 'json'])).stdout);
    assert.deepEqual(p.projects.map((x: Json) => x.at), ['liberty', 'liberty', 'liberty']);
    assert.equal(p.steps[0].id, 'mitaka/compute/1');

    const rest = await leapfrog(['run', ...cloud.args(), '--parallel', '3', '--format', 'json']);
    assert.equal(rest.exitCode, 0, rest.stderr);
    assert.deepEqual(parse(rest.stdout).versions.compute, { main: 334, api: 20 });
  });

  test('--dry-run prints the plan and changes nothing', async () => {
    const cloud = await fakeCloud({ kind });
    const r = await leapfrog(['run', ...cloud.args(), '--dry-run']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /1\. kilo\/compute\/2 sync \[compute-kilo\]/);
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 254);
  });

  test('a chain without kilo\'s flavor step fails at liberty 291 with the toolchain\'s own message, and the ledger says which step', async () => {
    const cloud = await fakeCloud({ kind });
    const chain = cloud.variant('no-flavor-step', (c) => {
      const kilo = c.releases.find((r: Json) => r.release === 'kilo');
      kilo.steps = kilo.steps.filter((s: Json) => !(s.data ?? []).includes('migrate_flavor_data'));
    });
    const r = await leapfrog(['run', ...cloud.args(chain), '--format', 'json']);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /step liberty\/compute\/1 \(sync in env compute-liberty\) exited 1/);
    assert.match(r.stderr, /Please run `compute-manage db migrate_flavor_data' first/);
    const run = parse(r.stdout);
    assert.equal(run.status, 'failed');
    const failed = run.steps.filter((s: Json) => s.status === 'failed');
    assert.deepEqual(failed.map((s: Json) => s.id), ['liberty/compute/1']);
    const shown = await leapfrog(['ledger', 'show', String(run.run), '--state-dir', cloud.state]);
    assert.match(shown.stdout, /liberty\/compute\/1 failed: exited 1/);
    assert.match(shown.stdout, /migrate_flavor_data' first/);
    // Nothing ran on compute after the failure.
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 290);
  });

  test('a hop run with the wrong release\'s env fails as it would for real', async () => {
    const cloud = await fakeCloud({ kind });
    const chain = cloud.variant('wrong-env', (c) => {
      const liberty = c.releases.find((r: Json) => r.release === 'liberty');
      liberty.steps.find((s: Json) => s.project === 'compute').env = 'compute-kilo';
    });
    const r = await leapfrog(['run', ...cloud.args(chain)]);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /step liberty\/compute\/1 \(sync in env compute-kilo\) exited 1/);
    assert.match(r.stderr, /no migration 302 in this release's repository 'nova' \(its latest migration is 280\)/);
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 280, 'kilo\'s code stops at its own last migration');
  });

  test('a data step that keeps saying "more to do" stops at its bound', async () => {
    const cloud = await fakeCloud({ kind });
    const chain = cloud.variant('tight-bound', (c) => {
      const step = c.releases.find((r: Json) => r.release === 'mitaka').steps.find((s: Json) => (s.data ?? []).includes('online_data_migrations'));
      step.data[step.data.length - 1] = '1';
      step['max-runs'] = 2;
    });
    const r = await leapfrog(['run', ...cloud.args(chain), '--format', 'json']);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /step mitaka\/compute\/3 \(data in env compute-mitaka\) still has work after 2 runs \(max-runs 2\)/);
    const step = parse(r.stdout).steps.find((s: Json) => s.id === 'mitaka/compute/3');
    assert.equal(step.status, 'failed');
    assert.equal(step.attempts, 2);
    assert.equal(step.exitCode, 1);
  });

  test('a database ahead of the chain, or at a version it does not know, is refused before anything runs', async () => {
    const cloud = await fakeCloud({ kind });
    await cloud.exec('compute', 'UPDATE migrate_version SET version = 340');
    const r = await leapfrog(['run', ...cloud.args()]);
    assert.equal(r.exitCode, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`project compute, database main \\(${cloud.names.compute}\\): is at version 340, ahead of the chain's end \\(334\\)`));
    assert.equal((await cloud.query('image', 'SELECT version_num FROM alembic_version')).length, 1);
    assert.deepEqual(await cloud.query('image', 'SELECT version_num v FROM alembic_version'), [{ v: 'juno' }], 'nothing ran on other projects either');
    assert.deepEqual(parse((await leapfrog(['ledger', 'runs', '--state-dir', cloud.state, '--format', 'json'])).stdout).runs, []);
  });

  test('a chain file with a mistake is refused naming file, line and field', async () => {
    const cloud = await fakeCloud({ kind });
    const chain = cloud.variant('typo', (c) => {
      c.releases[1].steps[0].expects = c.releases[1].steps[0].expect;
      delete c.releases[1].steps[0].expect;
    });
    const r = await leapfrog(['plan', ...cloud.args(chain)]);
    assert.equal(r.exitCode, 2);
    assert.match(r.stderr, new RegExp(`${path.basename(chain)}:\\d+:\\d+: releases\\[1\\]\\.steps\\[0\\]\\.expects: unknown key "expects"`));
  });
});

describe('the command line', () => {
  test('unknown flags and bad URLs are input errors', async () => {
    const cloud = await fakeCloud();
    const flag = await leapfrog(['run', ...cloud.args(), '--paralel', '2']);
    assert.equal(flag.exitCode, 2);
    assert.match(flag.stderr, /unknown flag --paralel \(did you mean --parallel\?\)/);
    const url = await leapfrog(['plan', '--chain', CHAIN, '--db', 'postgres://x@y', '--state-dir', cloud.state]);
    assert.equal(url.exitCode, 2);
    assert.match(url.stderr, /--db postgres:\/\/x@y: unknown scheme; use sqlite:DIR/);
  });
});

describe('a data step that cannot finish within max-runs', () => {
  test('stops after a few runs, when its measured rate says max-runs is not enough, with the numbers', async () => {
    const cloud = await fakeCloud({ instances: 600 });
    const rows = Number(await cloud.scalar('compute', "SELECT COUNT(*) FROM instances i JOIN instance_system_metadata s ON s.instance_uuid = i.uuid WHERE i.deleted = 0 AND s.deleted = 0 AND s.`key` = 'instance_type_id'"));
    assert.ok(rows > 8 * 50, `${rows} rows: more than 8 runs of 50`);
    const chain = cloud.variant('max-runs-8', (c) => {
      const kilo = c.releases.find((r: Json) => r.release === 'kilo');
      kilo.steps.find((s: Json) => s.name === 'migrate flavor data')['max-runs'] = 8;
    });
    const r = await leapfrog(['run', ...cloud.args(chain)]);
    assert.equal(r.exitCode, 1, r.stderr);
    const more = Math.ceil((rows - 150) / 50);
    assert.match(r.stderr, new RegExp(`step kilo/compute/3 .*stopped early: 3 runs moved 150 of ${rows} rows \\(50 a run\\); the ${rows - 150} left need about ${more} more runs, ${3 + more} in all, more than max-runs 8\\. Raise max-runs to at least ${more}`));
    assert.equal(Number(await cloud.scalar('compute', "SELECT COUNT(*) FROM instances i JOIN instance_system_metadata s ON s.instance_uuid = i.uuid WHERE i.deleted = 0 AND s.deleted = 0 AND s.`key` = 'instance_type_id'")), rows - 150, 'three runs, not eight');
  });

  test('shortOfRuns: judged only after 3 runs, and only when the rate cannot make it', () => {
    assert.equal(shortOfRuns(1000, 900, 2, 5), undefined, 'too early to judge');
    assert.equal(shortOfRuns(1000, 850, 3, 20), undefined, '3 + 17 runs fit 20');
    assert.match(shortOfRuns(1000, 850, 3, 19) ?? '', /the 850 left need about 17 more runs, 20 in all, more than max-runs 19/);
    assert.equal(shortOfRuns(undefined, 850, 3, 5), undefined, 'no count, no rate');
  });
});

describeTargets('databases the chain creates (create:)', () => {
  test('created with the declared charset and collation before the first sync that moves them, said by plan and run, noted in the ledger', async () => {
    const cloud = await fakeCloud({ kind: 'mariadb', instances: 10 });
    const chain = cloud.variant('create-api', (c) => {
      c.projects.compute.create = { api: { charset: 'utf8mb4', collation: 'utf8mb4_bin' } };
    });
    const plan = await leapfrog(['plan', ...cloud.args(chain)]);
    assert.equal(plan.exitCode, 0, plan.stderr);
    const creates = plan.stdout.split('\n').filter((l) => l.includes(`creates ${cloud.names.compute_api} (CHARACTER SET utf8mb4 COLLATE utf8mb4_bin) first, if missing`));
    assert.equal(creates.length, 1, `one step creates it:\n${plan.stdout}`);
    const r = await leapfrog(['run', ...cloud.args(chain)]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`created database ${cloud.names.compute_api} \\(character set utf8mb4, collation utf8mb4_bin\\) before \\S+/compute/\\d+: the chain declares it`));
    const [schema] = await cloud.query<{ c: string }>('compute', `SELECT DEFAULT_COLLATION_NAME c FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${cloud.names.compute_api}'`);
    assert.equal(schema!.c, 'utf8mb4_bin', 'created by leapfrog, as declared, before the tool ran');
    const again = await leapfrog(['plan', ...cloud.args(chain)]);
    assert.doesNotMatch(again.stdout, /creates /, 'nothing left to create');
  });

  test('create: naming a database of another project, or one that exists at the start, is an input error', async () => {
    const cloud = await fakeCloud({ kind: 'mariadb', instances: 10 });
    const bad = cloud.variant('create-bad', (c) => {
      c.projects.compute.create = { nova: {}, main: { charset: 'utf8mb4' } };
    });
    const r = await leapfrog(['plan', ...cloud.args(bad)]);
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /"nova" is not one of this project's databases/);
    assert.match(r.stderr, /"main" exists at the chain's start \(start: lists it\): there is nothing to create/);
  });
}, ['mariadb']);

describe('create: on SQLite', () => {
  test('nothing to create (the tool makes the file), so nothing is said, and the run finishes', async () => {
    const cloud = await fakeCloud({ instances: 10 });
    const chain = cloud.variant('create-api-sqlite', (c) => {
      c.projects.compute.create = { api: { charset: 'utf8mb4' } };
    });
    const r = await leapfrog(['run', ...cloud.args(chain)]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /created database/);
    assert.ok(statSync(cloud.file('compute_api')).size > 0, 'the tool made its own file');
  });
});
