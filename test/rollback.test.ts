/**
 * Snapshots and rollback on both targets: run the chain, roll back, and the
 * databases are what they were (byte-equal files on SQLite; same schema,
 * row counts and per-table checksums on MariaDB); the next run plans from
 * the restored versions.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import path from 'node:path';
import { test } from 'node:test';
import { describeTargets, fakeCloud, leapfrog, ROOT, withMariadb, type Cloud, CLOUD_DATABASES } from './helpers.js';

type Json = Record<string, any>;
const parse = (s: string): Json => JSON.parse(s) as Json;

/** Everything that must come back: SQLite file bytes, or per MariaDB table its definition, row count and checksum. */
async function contents(cloud: Cloud): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const db of CLOUD_DATABASES) {
    if (cloud.kind === 'sqlite') {
      out[db] = existsSync(cloud.file(db)) ? readFileSync(cloud.file(db)).toString('base64') : null;
      continue;
    }
    out[db] = await withMariadb(async (c) => {
      const name = cloud.names[db];
      const [schemas] = await c.query('SELECT DEFAULT_CHARACTER_SET_NAME cs, DEFAULT_COLLATION_NAME co FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [name]);
      if ((schemas as unknown[]).length === 0) return null;
      const [tables] = await c.query('SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME', [name]);
      const perTable: Record<string, unknown> = {};
      for (const { t } of tables as { t: string }[]) {
        const [[create]] = (await c.query(`SHOW CREATE TABLE \`${name}\`.\`${t}\``)) as unknown as [Record<string, string>[]];
        const [[count]] = (await c.query(`SELECT COUNT(*) n FROM \`${name}\`.\`${t}\``)) as unknown as [{ n: number }[]];
        const [[sum]] = (await c.query(`CHECKSUM TABLE \`${name}\`.\`${t}\` EXTENDED`)) as unknown as [{ Checksum: number }[]];
        perTable[t] = { create: create!['Create Table'], rows: count!.n, checksum: sum!.Checksum };
      }
      return { schema: (schemas as unknown[])[0], tables: perTable };
    });
  }
  return out;
}

describeTargets('snapshots and rollback', (kind) => {
  test('run the chain, roll back to before the first hop: the databases are the originals, and the next run plans the whole chain again', async () => {
    const cloud = await fakeCloud({ kind, instances: 40, nullUuids: 2 });
    const before = await contents(cloud);
    assert.equal(before.compute_api, null, 'compute_api does not exist at juno');
    const firstPlan = parse((await leapfrog(['plan', ...cloud.args(), '--format', 'json'])).stdout);

    const r = await leapfrog(['run', ...cloud.args(), '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const run = parse(r.stdout);
    if (kind === 'sqlite') {
      // SQLite's DDL is transactional: the default is one snapshot of every database before the first step.
      assert.equal(run.snapshot, 'first-hop');
      assert.deepEqual(run.snapshots.map((s: Json) => s.before).filter((b: string, i: number, a: string[]) => a.indexOf(b) === i), [firstPlan.steps[0].id]);
      assert.deepEqual(run.snapshots.map((s: Json) => s.database).sort(), Object.values(cloud.names).sort());
    } else {
      // MariaDB commits each DDL statement: before each hop, the databases its syncs declare, and no other.
      assert.equal(run.snapshot, 'hop-syncs');
      const taken = run.snapshots.map((s: Json) => `${s.before} ${s.database}`);
      const { compute, compute_api: api, identity, image } = cloud.names;
      assert.deepEqual(taken.filter((t: string) => t.includes('/compute/')), [`kilo/compute/1 ${compute}`, `liberty/compute/1 ${compute}`, `mitaka/compute/1 ${compute}`, `mitaka/compute/1 ${api}`, `newton/compute/1 ${compute}`, `newton/compute/1 ${api}`]);
      assert.deepEqual(taken.filter((t: string) => !t.includes('/compute/')).map((t: string) => t.split(' ')[1]).sort(), [identity, identity, identity, identity, image, image, image, image]);
    }
    for (const s of run.snapshots) {
      // compute_api is created by mitaka's api_db sync: absent before it.
      if (s.database === cloud.names.compute_api && s.before !== 'newton/compute/1') assert.equal(s.file, null);
      else assert.match(s.sha256, /^[0-9a-f]{64}$/);
    }
    assert.notDeepEqual(await contents(cloud), before);

    const shown = await leapfrog(['ledger', 'show', '--state-dir', cloud.state]);
    assert.match(shown.stdout, /│ 1 +│ compute@kilo +│/, 'checkpoint ids are shown');
    assert.match(shown.stdout, new RegExp(`│ \\d+ +│ ${firstPlan.steps[0].id.replace(/\//g, '\\/')} +│ ${cloud.names.compute} +│ \\d+ KiB`));

    const rb = await leapfrog(['rollback', ...cloud.args(), '--yes', '--to', 'start']);
    assert.equal(rb.exitCode, 0, rb.stderr);
    assert.match(rb.stdout, /Rolled back to before the first hop \(rollback 1\)/);
    assert.match(rb.stdout, new RegExp(`${cloud.names.compute_api}: did not exist then: dropped`));
    assert.deepEqual(await contents(cloud), before, 'the databases are the originals');

    // The ledger-done data steps after the snapshot no longer count: the plan is the first plan again.
    const again = parse((await leapfrog(['plan', ...cloud.args(), '--format', 'json'])).stdout);
    assert.deepEqual(again.steps.map((s: Json) => s.id), firstPlan.steps.map((s: Json) => s.id));
    const rerun = await leapfrog(['run', ...cloud.args(), '--format', 'json', '--snapshot', 'none']);
    assert.equal(rerun.exitCode, 0, rerun.stderr);
    assert.deepEqual(parse(rerun.stdout).versions.compute, { main: 334, api: 20 });
    assert.deepEqual(parse(rerun.stdout).snapshots, []);
    const rolls = parse((await leapfrog(['ledger', 'show', '--state-dir', cloud.state, '--format', 'json'])).stdout).rollbacks;
    assert.deepEqual(rolls.map((b: Json) => [b.id, b.status, b.to_checkpoint]), [[1, 'succeeded', 0]]);
  });

  test('rollback asks first: without a terminal and without --yes it is refused (exit 2) and nothing changes; on a terminal "n" changes nothing; --yes restores', async (t) => {
    const cloud = await fakeCloud({ kind, instances: 10 });
    const original = await contents(cloud);
    const r = await leapfrog(['run', ...cloud.args(), '--until', 'kilo']);
    assert.equal(r.exitCode, 0, r.stderr);
    // Every file of the target (SQLite) and of the state directory's ledger, by sha256.
    const sums = async () => {
      const files = [path.join(cloud.state, 'ledger.sqlite3'), ...(cloud.kind === 'sqlite' ? readdirSync(path.dirname(cloud.file('compute'))).map((f) => path.join(path.dirname(cloud.file('compute')), f)) : [])];
      return { files: Object.fromEntries(files.map((f) => [f, createHash('sha256').update(readFileSync(f)).digest('hex')])), contents: await contents(cloud) };
    };
    const before = await sums();

    const refused = await leapfrog(['rollback', ...cloud.args(), '--to', 'start']); // stdin: not a terminal
    assert.equal(refused.exitCode, 2, refused.stderr);
    assert.match(refused.stderr, /asks first on a terminal; stdin is not one\. Nothing was changed\. Read the preview, then pass --yes to roll back/);
    assert.match(refused.stderr, /Roll back to before the first hop, snapshots taken from \d{4}-\d\d-\d\dT[\d:.]+Z\. Each database goes back to:/);
    assert.match(refused.stderr, new RegExp(`${cloud.names.compute}: version 254 \\(snapshot \\d+, `));
    assert.match(refused.stderr, /Lost: the 3 checkpoints after it, whose hops will run again: \d+ compute@kilo \(run 1, [^)]+\), \d+ identity@kilo/);
    assert.equal(refused.stdout, '');
    assert.deepEqual(await sums(), before, 'nothing changed: target and ledger byte for byte');

    // A real terminal (util-linux script(1) gives the child a pseudo-terminal): the question, answered "n".
    const script = await execa('script', ['--version'], { reject: false }).catch(() => undefined);
    if (script?.exitCode === 0) {
      const argv = [process.execPath, path.join(ROOT, 'bin', 'leapfrog.js'), 'rollback', ...cloud.args(), '--to', 'start'].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
      const no = await execa('script', ['-qec', argv, '/dev/null'], { input: 'n\n', reject: false });
      assert.equal(no.exitCode, 2, no.stdout);
      assert.match(no.stdout, /Roll back to before the first hop, snapshots taken from/);
      assert.match(no.stdout, /Roll back\? \[y\/N\]/);
      assert.match(no.stdout, /rollback not confirmed; nothing was changed/);
      assert.deepEqual(await sums(), before, '"n" changes nothing');
    } else t.diagnostic('script(1) is not installed: the terminal question is not exercised');

    const yes = await leapfrog(['rollback', ...cloud.args(), '--to', 'start', '--yes', '--format', 'json']);
    assert.equal(yes.exitCode, 0, yes.stderr);
    assert.deepEqual(parse(yes.stdout).lost.map((c: Json) => `${c.project}@${c.release}`), ['compute@kilo', 'identity@kilo', 'image@kilo']);
    assert.deepEqual(await contents(cloud), original, 'restored');
  });

  test('a snapshot that cannot be written stops the run before any step, and says which database', async () => {
    const cloud = await fakeCloud({ kind, instances: 10 });
    // The first run's snapshot directory is taken by a file: mkdir fails (even for root).
    mkdirSync(path.join(cloud.state, 'runs', '1'), { recursive: true });
    writeFileSync(path.join(cloud.state, 'runs', '1', 'snapshots'), 'in the way');
    const r = await leapfrog(['run', ...cloud.args(), '--format', 'json']);
    // The state directory is the operator's to fix: an input error (2) naming the database and the file in the way.
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /snapshot of database \S+: the (snapshot|dump) directory: cannot create the directory \S+: \S+\/runs\/1\/snapshots is a file, not a directory/);
    const run = parse(r.stdout);
    assert.equal(run.status, 'failed');
    assert.deepEqual(run.steps, [], 'no step ran');
    assert.equal(await cloud.scalar('compute', 'SELECT version FROM migrate_version'), 254);
  });

  test('--snapshot every-hop: rolling back to a checkpoint restores that hop\'s end; a damaged snapshot is refused before anything is restored; --snapshot none says so', async () => {
    const cloud = await fakeCloud({ kind, instances: 10 });
    const r = await leapfrog(['run', ...cloud.args(), '--snapshot', 'every-hop', '--until', 'liberty', '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    // Progress says when a snapshot starts (a large dump takes minutes) and what it took.
    assert.match(r.stderr, new RegExp(`snapshot before liberty/compute/1: ${cloud.names.compute}, ${cloud.names.compute_api} into \\S+\\n.*snapshot before liberty/compute/1 in [\\d.]+ m?s: ${cloud.names.compute} \\d+ KiB, ${cloud.names.compute_api} \\(absent\\)`));
    const ledger = parse((await leapfrog(['ledger', 'show', '--state-dir', cloud.state, '--format', 'json'])).stdout);
    const kiloCompute = ledger.checkpoints.find((c: Json) => c.project === 'compute' && c.release === 'kilo');
    // Every database before the run, then each project's databases before its liberty hop.
    assert.deepEqual([...new Set(ledger.snapshots.map((s: Json) => s.before_step))], [parse(r.stdout).steps[0].id, 'liberty/compute/1', 'liberty/identity/1', 'liberty/image/1']);
    assert.equal(ledger.snapshots.length, 4 + 2 + 1 + 1);

    const rb = await leapfrog(['rollback', ...cloud.args(), '--yes', '--to', String(kiloCompute.id), '--format', 'json']);
    assert.equal(rb.exitCode, 0, rb.stderr);
    const res = parse(rb.stdout);
    assert.deepEqual(res.versions.compute, { main: 280, api: null }, 'compute is back at the end of its kilo hop');
    // identity's kilo checkpoint came after compute's: at checkpoint kiloCompute.id identity was still at juno.
    assert.deepEqual(res.versions.image, { main: kiloCompute.id < ledger.checkpoints.find((c: Json) => c.project === 'image' && c.release === 'kilo').id ? 'juno' : 'kilo' });

    // A damaged snapshot file: refused, nothing restored, the ledger records no rollback.
    const file = ledger.snapshots.find((s: Json) => s.file !== null).file as string;
    appendFileSync(file, 'x');
    const bad = await leapfrog(['rollback', ...cloud.args(), '--yes', '--to', 'start']);
    assert.equal(bad.exitCode, 3, bad.stderr);
    assert.match(bad.stderr, /does not verify; nothing was restored/);
    assert.match(bad.stderr, /sha256 [0-9a-f]{64}, but the ledger recorded [0-9a-f]{64}/);
    assert.equal(parse((await leapfrog(['ledger', 'show', '--state-dir', cloud.state, '--format', 'json'])).stdout).rollbacks.length, 1);

    const unknown = await leapfrog(['rollback', ...cloud.args(), '--yes', '--to', '999']);
    assert.equal(unknown.exitCode, 2);
    assert.match(unknown.stderr, /--to 999: no checkpoint 999 of chain fakecloud-juno-newton on .*; the points that can be restored exactly are: \d+ \(compute@kilo, run 1\)/);

    const none = await leapfrog(['run', ...cloud.args(), '--snapshot', 'none', '--until', 'kilo']);
    assert.equal(none.exitCode, 0, none.stderr);
    assert.match(none.stderr, /Snapshots: none \(--snapshot none\)\. leapfrog cannot roll this run back/);
    assert.match(none.stdout, /Run \d+ succeeded \(no snapshot taken: --snapshot none\)/);
    assert.match((await leapfrog(['ledger', 'show', '--state-dir', cloud.state])).stdout, /No snapshots in this run \(--snapshot none\)\./);
  });

  test('--to CHECKPOINT with the default snapshots: each database from a snapshot that holds it, or left as it is when nothing changed it since; nothing to undo is refused naming the points that can be; --dry-run changes nothing', async () => {
    const cloud = await fakeCloud({ kind, instances: 10 });
    assert.equal((await leapfrog(['run', ...cloud.args(), '--until', 'kilo'])).exitCode, 0);
    assert.equal((await leapfrog(['run', ...cloud.args(), '--until', 'liberty'])).exitCode, 0);
    const ledger = parse((await leapfrog(['ledger', 'show', '1', '--state-dir', cloud.state, '--format', 'json'])).stdout);
    const second = parse((await leapfrog(['ledger', 'show', '2', '--state-dir', cloud.state, '--format', 'json'])).stdout);
    const at = (l: Json, project: string) => l.checkpoints.find((c: Json) => c.project === project).id as number;
    const kiloImage = at(ledger, 'image');
    const libertyCompute = at(second, 'compute');

    // Nothing moved since the last checkpoint: nothing to roll back to it.
    const last = second.checkpoints.at(-1).id as number;
    const nothing = await leapfrog(['rollback', ...cloud.args(), '--yes', '--to', String(last)]);
    assert.equal(nothing.exitCode, 2, nothing.stderr);
    assert.match(nothing.stderr, new RegExp(`nothing to roll back to checkpoint ${last} \\(image@liberty\\): no step changed the chain's databases since; the points that can be restored exactly are: .*${kiloImage} \\(image@kilo, run 1\\)`));
    // compute's liberty checkpoint: compute and its api stay (no step changed them since), identity and image go back to before their liberty hops.
    const mid = await leapfrog(['rollback', ...cloud.args(), '--to', String(libertyCompute), '--dry-run']);
    assert.equal(mid.exitCode, 0, mid.stderr);
    assert.match(mid.stdout, new RegExp(`${cloud.names.compute}: left as it is \\(no step changed it since that point\\)`));
    assert.match(mid.stdout, new RegExp(`${cloud.names.identity}: snapshot \\d+ \\(run 2, before (liberty/compute/1|liberty/identity/1)\\)`));

    const before = await contents(cloud);
    const dry = await leapfrog(['rollback', ...cloud.args(), '--to', String(kiloImage), '--dry-run']);
    assert.equal(dry.exitCode, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`Would roll back to checkpoint ${kiloImage} \\(image@kilo\\); nothing was changed`));
    assert.match(dry.stdout, new RegExp(`${cloud.names.compute}: snapshot \\d+ \\(run 2, before liberty/compute/1\\), \\S+, [\\d.]+ KiB, version 280`));
    // No step changed compute_api since (liberty's compute sync declares main only): left alone.
    assert.match(dry.stdout, new RegExp(`${cloud.names.compute_api}: left as it is`));
    assert.deepEqual(await contents(cloud), before, '--dry-run restores nothing');
    assert.equal(parse((await leapfrog(['ledger', 'show', '--state-dir', cloud.state, '--format', 'json'])).stdout).rollbacks.length, 0);

    const rb = await leapfrog(['rollback', ...cloud.args(), '--yes', '--to', String(kiloImage), '--format', 'json']);
    assert.equal(rb.exitCode, 0, rb.stderr);
    const v = parse(rb.stdout).versions;
    assert.deepEqual([v.compute.main, v.identity.main, v.image.main], [280, { keystone: 67, keystone_expand: null, keystone_data_migrate: null, keystone_contract: null }, 'kilo']);
  });
});
