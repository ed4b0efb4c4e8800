/**
 * check-migrations end to end on SQLite, through the real CLI: the fake cloud
 * at juno, real ledgers, real processes holding the files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { Ledger } from '../src/ledger/ledger.js';
import { CACHE, chainVariant, fakeCloud, leapfrog, tempDir } from './helpers.js';

type Json = Record<string, any>;
const check = (report: Json, name: string): Json => {
  const c = report.checks.find((x: Json) => x.check === name);
  assert.ok(c, `no check ${name} in ${report.checks.map((x: Json) => x.check).join(', ')}`);
  return c;
};
const FLAVOR = 'Blocker: compute flavor data in system metadata';

async function checkJson(args: string[]): Promise<{ exitCode: number; report: Json; stderr: string }> {
  const r = await leapfrog(['check-migrations', ...args, '--format', 'json']);
  assert.ok(r.stdout.startsWith('{'), `no JSON (exit ${r.exitCode}): ${r.stderr}`);
  return { exitCode: r.exitCode, report: JSON.parse(r.stdout) as Json, stderr: r.stderr };
}

describe('check-migrations on SQLite', () => {
  test('Snapshots: the default on SQLite is first-hop, priced from the files and the ledger\'s earlier snapshots; the other modes priced beside it; the run takes what was priced', async () => {
    const cloud = await fakeCloud({ instances: 20 });
    const fresh = check((await checkJson(cloud.args())).report, 'Snapshots');
    assert.equal(fresh.result, 'Success');
    assert.equal(fresh.data.mode, 'first-hop');
    assert.equal(fresh.data.ms, undefined, 'no earlier snapshot: time unknown');
    assert.match(fresh.details, /^--snapshot auto \(first-hop: SQLite's DDL is transactional\): 1 snapshot, [\d.]+ \w+ read, time unknown \(no earlier snapshot here\)/);
    const files = ['compute', 'identity', 'image'].reduce((n, d) => n + readFileSync(cloud.file(d as 'compute')).length, 0);
    assert.equal(fresh.data.bytes, files, 'bytes are the database files\' sizes');

    assert.equal((await leapfrog(['run', ...cloud.args(), '--until', 'kilo'])).exitCode, 0);
    const { exitCode, report } = await checkJson([...cloud.args(), '--snapshot', 'hop-syncs']);
    assert.equal(exitCode, 0, JSON.stringify(report.checks));
    const priced = check(report, 'Snapshots');
    assert.equal(priced.result, 'Success', 'on SQLite no mode leaves a half-applied sync behind');
    assert.equal(priced.data.mode, 'hop-syncs');
    assert.deepEqual(priced.data.snapshots.map((s: Json) => s.beforeStep), ['liberty/compute/1', 'liberty/identity/1', 'liberty/image/1', 'mitaka/compute/1', 'mitaka/identity/1', 'mitaka/image/1', 'newton/compute/1', 'newton/identity/1', 'newton/image/1']);
    assert.deepEqual(priced.data.snapshots.find((s: Json) => s.beforeStep === 'mitaka/compute/1').databases, [cloud.names.compute, cloud.names.compute_api]);
    // compute_api was snapshotted (absent) before the kilo run: every database has a time now.
    assert.ok(typeof priced.data.ms === 'number' && priced.data.ms > 0, 'time from the ledger\'s earlier snapshots');
    assert.deepEqual(priced.data.alternatives.map((a: Json) => [a.mode, a.snapshots.length]), [['first-hop', 1], ['every-hop', 1 + 6], ['none', 0]]);
    assert.match(priced.details, /\n {2}--snapshot none: no snapshot; no restore point: a sync that dies half-way can only be undone from your own backup/);

    const r = await leapfrog(['run', ...cloud.args(), '--snapshot', 'hop-syncs', '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const taken = (JSON.parse(r.stdout) as Json).snapshots.map((s: Json) => `${s.before} ${s.database}`);
    assert.deepEqual(taken, priced.data.snapshots.flatMap((s: Json) => s.databases.map((d: string) => `${s.beforeStep} ${d}`)), 'run took exactly the snapshots check-migrations priced');
  });

  test('the fake cloud at juno is healthy (exit 0): the flavor blocker is a Success fixed by kilo\'s data step; nothing written, no ledger created', async () => {
    const cloud = await fakeCloud({ nullUuids: 2 });
    const before = readdirSync(path.dirname(cloud.file('compute'))).sort();
    const text = await leapfrog(['check-migrations', ...cloud.args()]);
    assert.equal(text.exitCode, 0, text.stdout);
    assert.match(text.stdout, /^Upgrade Check Results: chain fakecloud-juno-newton on\n\S+\nOverall: Success \(exit 0\)\n {2}Success {2}Chain\n {2}Success {2}Envs\n/, 'a summary first, one line per check');
    const summary = text.stdout.slice(0, text.stdout.indexOf('\n\n')).split('\n');
    assert.ok(summary.length <= 24, `the summary fits one screen: ${summary.length} lines`);
    assert.ok(summary.includes('  Success  Data batches') && summary.includes('  Success  Ledger'));
    assert.match(text.stdout, /\| Check: Blocker: compute flavor data in system metadata +\|\n\| Result: Success +\|/);
    for (const line of text.stdout.split('\n')) assert.ok(line.length <= 80, `over 80 columns: ${line}`);
    assert.match(text.stdout, /Overall: Success \(exit 0\)\n\nPlan: chain fakecloud-juno-newton/, 'the plan follows the checks');
    assert.match(text.stdout, /\n {3}1\. kilo\/compute\/1 data \[compute-kilo\] null instance uuid scan\n {6}needed: its needed-when query returns 2\n {6}\$ compute-manage --config-file \$CONFIG\/compute\/compute\.conf db\n {8}null_instance_uuid_scan --delete\n/);
    assert.match(text.stdout, /\n {2}23\. newton\/image\/1 sync/);
    assert.equal(existsSync(cloud.state), false, 'the state directory (and its ledger) is not created');
    assert.deepEqual(readdirSync(path.dirname(cloud.file('compute'))).sort(), before, 'no journal or WAL file left beside the databases');

    const { exitCode, report } = await checkJson(cloud.args());
    assert.equal(exitCode, 0);
    assert.equal(report.format, 'leapfrog.check/v1');
    assert.equal(report.result, 'Success');
    const flavor = check(report, FLAVOR);
    assert.equal(flavor.result, 'Success');
    assert.match(flavor.details, /^\d+ rows on compute: .* The plan fixes these \d+ rows: kilo\/compute\/3 \(migrate flavor data\) in env compute-kilo/s);
    const batches = check(report, 'Data batches');
    assert.equal(batches.result, 'Success');
    // Its needed-when is the blocker's query: the same rows, counted once each way.
    assert.deepEqual(batches.data.map((b: Json) => [b.step, b.rows, b.batch, b.maxRuns, b.projectedRuns]), [['kilo/compute/3', flavor.data.outcome.count, 50, 100, Math.ceil(flavor.data.outcome.count / 50)]]);
    assert.ok(flavor.data.outcome.count > 0);
    assert.equal(check(report, 'Blocker: compute null instance uuids').data.outcome.count, 2);
    const nodes = check(report, 'Blocker: compute compute nodes and aggregates without uuid');
    assert.equal(nodes.result, 'Success');
    assert.equal(nodes.data.outcome.kind, 'not-yet', 'compute_nodes.uuid does not exist at juno: reported as such, not as an error');
    for (const name of ['Chain', 'Envs', 'Target', 'Databases', 'Versions', 'Plan', 'Connected clients', 'Free space', 'Ledger']) assert.equal(check(report, name).result, 'Success', name);
    assert.match(check(report, 'Storage engines').details, /^Not applicable/);
    assert.match(check(report, 'Target').details, /SQLite 3\.\d+/);
    assert.deepEqual(report.versions.compute, { main: 254, api: null });
    assert.equal(report.plan.format, 'leapfrog.plan/v1');
    assert.equal(report.plan.steps.length, 23);
    assert.equal(report.estimate.totalMs, null);

    const md = await leapfrog(['check-migrations', ...cloud.args(), '--format', 'markdown']);
    assert.equal(md.exitCode, 0);
    assert.match(md.stdout, /\| Blocker: compute flavor data in system metadata \| Success \|/);
    assert.match(md.stdout, /### Plan\n\n```\nPlan: chain fakecloud-juno-newton/);
    // Each argv on one line, as `plan` prints it, so it can be pasted from the ticket.
    const plan = await leapfrog(['plan', ...cloud.args()]);
    const argvs = plan.stdout.split('\n').filter((l) => l.trimStart().startsWith('$ '));
    assert.ok(argvs.length > 0 && argvs.some((l) => l.length > 80), 'some argv is longer than 80 columns');
    for (const a of argvs) assert.ok(md.stdout.includes(`\n${a}\n`), `unwrapped in the markdown: ${a}`);
  });

  test('a cloud whose flavor rows exceed batch × max-runs: Data batches warns with the projected runs (exit 1), and fails when far off', async () => {
    const cloud = await fakeCloud({ instances: 6000 });
    const { exitCode, report } = await checkJson(cloud.args());
    assert.equal(exitCode, 1, JSON.stringify(report.checks.filter((c: Json) => c.result !== 'Success')));
    const b = check(report, 'Data batches');
    assert.equal(b.result, 'Warning');
    const rows = check(report, FLAVOR).data.outcome.count as number;
    assert.ok(rows > 50 * 100 && rows <= 2 * 50 * 100, `${rows} rows: past 5000, within twice`);
    assert.deepEqual(b.data[0], { step: 'kilo/compute/3', rows, counted: 'its needed-when query', batch: 50, maxRuns: 100, projectedRuns: Math.ceil(rows / 50), result: 'Warning' });
    assert.match(b.details, new RegExp(`kilo/compute/3 \\(migrate flavor data\\): ${rows} rows .* ${Math.ceil(rows / 50)} runs, max-runs 100: it can move 5000 rows before the runner gives up`));
    assert.equal(check(report, FLAVOR).result, 'Success', 'the blocker itself is fixed by the plan; the batches are what warn');
    const tight = chainVariant('max-runs-50', (c) => {
      const kilo = c.releases.find((r: Json) => r.release === 'kilo');
      kilo.steps.find((s: Json) => s.name === 'migrate flavor data')['max-runs'] = 50;
    });
    const far = await checkJson(cloud.args(tight));
    assert.equal(far.exitCode, 2);
    assert.equal(check(far.report, 'Data batches').result, 'Failure');
    assert.match(check(far.report, 'Data batches').details, /far off \(more than 2× max-runs\)/);
  });

  test('without kilo\'s flavor step the same blocker is a Failure naming what is missing (exit 2)', async () => {
    const cloud = await fakeCloud();
    const chain = chainVariant('no-flavor-step', (c) => {
      const kilo = c.releases.find((r: Json) => r.release === 'kilo');
      kilo.steps = kilo.steps.filter((s: Json) => !(s.data ?? []).includes('migrate_flavor_data'));
    });
    const { exitCode, report } = await checkJson(cloud.args(chain));
    assert.equal(exitCode, 2);
    const flavor = check(report, FLAVOR);
    assert.equal(flavor.result, 'Failure');
    assert.match(flavor.details, /fixed-by "migrate flavor data" is not a step of chain fakecloud-juno-newton/);
    assert.match(flavor.details, /migrate_flavor_data' first/);
  });

  test('a blocker with no fixed-by, or whose step is not in the plan, is a Failure; a broken query is a Failure naming it', async () => {
    const cloud = await fakeCloud({ nullUuids: 1 });
    const chain = chainVariant('blockers', (c) => {
      const b = c.projects.compute.blockers;
      delete b.find((x: Json) => x.name === 'null instance uuids')['fixed-by'];
      b.push({ name: 'typo', query: 'SELECT COUNT(*) FROM instances WHERE', message: 'never' });
    });
    const { report } = await checkJson([...cloud.args(chain)]);
    assert.equal(check(report, 'Blocker: compute null instance uuids').result, 'Failure');
    assert.match(check(report, 'Blocker: compute null instance uuids').details, /Nothing in chain fakecloud-juno-newton fixes it/);
    const typo = check(report, 'Blocker: compute typo');
    assert.equal(typo.result, 'Failure');
    assert.equal(typo.data.outcome.kind, 'error');
    // --until kilo: mitaka's online migrations are not planned, and the uuid blocker cannot be counted yet.
    const until = await checkJson([...cloud.args(), '--until', 'kilo']);
    assert.equal(check(until.report, 'Blocker: compute compute nodes and aggregates without uuid').result, 'Warning');
  });

  test('another process holding a database file is a Failure', async () => {
    const cloud = await fakeCloud();
    const holder = execa(process.execPath, ['-e', `const D = require(${JSON.stringify(require_('better-sqlite3'))}); const d = new D(${JSON.stringify(cloud.file('image'))}, { readonly: true }); d.prepare('SELECT 1').get(); console.log('open'); setInterval(() => {}, 1000);`], { stdin: 'ignore' });
    try {
      await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
      const { exitCode, report } = await checkJson(cloud.args());
      assert.equal(exitCode, 2);
      const c = check(report, 'Connected clients');
      assert.equal(c.result, 'Failure');
      assert.deepEqual(c.data.map((h: Json) => [h.pid, h.file]), [[holder.pid, cloud.file('image')]]);
    } finally {
      holder.kill();
      await holder.catch(() => undefined);
    }
  });

  test('a rollback journal left by a writer that died mid-transaction is a Warning on Databases', async () => {
    const cloud = await fakeCloud();
    const crash = await execa(process.execPath, ['-e', `const D = require(${JSON.stringify(require_('better-sqlite3'))}); const d = new D(${JSON.stringify(cloud.file('image'))}); d.exec("BEGIN; UPDATE alembic_version SET version_num = 'x'; CREATE TABLE big (x)"); for (let i = 0; i < 100; i++) d.exec('INSERT INTO big VALUES (randomblob(1000))'); process.kill(process.pid, 'SIGKILL');`], { reject: false });
    assert.equal(crash.signal, 'SIGKILL');
    assert.ok(existsSync(cloud.file('image') + '-journal'));
    const { exitCode, report } = await checkJson(cloud.args());
    assert.equal(exitCode, 1);
    const d = check(report, 'Databases');
    assert.equal(d.result, 'Warning');
    assert.match(d.details, /image\.sqlite3-journal is left beside image: a writer died mid-transaction/);
    assert.ok(existsSync(cloud.file('image') + '-journal'), 'check-migrations does not roll it back itself: it writes nothing');
  });

  test('a dead run\'s dangling step is a Warning that says what to do (run resumes); a run in progress is a Failure; neither touches the ledger', async () => {
    const cloud = await fakeCloud();
    const target = `sqlite:${path.join(cloud.dir, 'db')}`;
    const ledger = Ledger.open(cloud.state);
    const dead = await execa(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const run = ledger.startRun({ chain: 'fakecloud-juno-newton', chainSha256: 'x', target, kind: 'run', until: undefined, host: os.hostname(), pid: Number(dead.stdout), version: '0' });
    ledger.stepStarted({ runId: run, stepId: 'kilo/compute/2', project: 'compute', release: 'kilo', kind: 'sync', env: 'compute-kilo', envSha256: 'x', command: ['x'], logPath: '/logs/001.log' });
    ledger.close();
    const before = readdirSync(cloud.state).sort();

    const { exitCode, report } = await checkJson(cloud.args());
    assert.equal(exitCode, 1);
    const l = check(report, 'Ledger');
    assert.equal(l.result, 'Warning');
    assert.match(l.details, /Run 1 \(chain fakecloud-juno-newton\) died during step kilo\/compute\/2 \(started .*\): a database may be between versions/);
    assert.match(l.details, new RegExp(`leapfrog ledger show 1 --state-dir ${cloud.state}`));
    assert.match(l.details, /then `leapfrog run --chain \S+ --db \S+ --state-dir \S+ --cache-dir \S+` marks it interrupted and resumes from where the databases stand/);
    assert.deepEqual(readdirSync(cloud.state).sort(), before, 'reading the ledger leaves no -wal or -shm behind');

    // The same row, but its run's process is alive on this host: a run in progress.
    const live = Ledger.open(cloud.state);
    const run2 = live.startRun({ chain: 'fakecloud-juno-newton', chainSha256: 'x', target, kind: 'run', until: undefined, host: os.hostname(), pid: process.pid, version: '0' });
    live.stepStarted({ runId: run2, stepId: 'kilo/identity/1', project: 'identity', release: 'kilo', kind: 'sync', env: 'identity-kilo', envSha256: 'x', command: ['x'], logPath: '/logs/002.log' });
    // Keep the ledger open: the -wal holds the rows, as during a real run.
    try {
      const r2 = await checkJson(cloud.args());
      assert.equal(check(r2.report, 'Ledger').result, 'Failure');
      assert.match(check(r2.report, 'Ledger').details, new RegExp(`Run ${run2} \\(chain fakecloud-juno-newton\\) is in progress: pid ${process.pid}`));
    } finally {
      live.close();
    }
  });

  test('a ledger file that is not a ledger is a Failure naming it, and is left as it was', async () => {
    const cloud = await fakeCloud();
    mkdirSync(cloud.state, { recursive: true });
    const file = path.join(cloud.state, 'ledger.sqlite3');
    writeFileSync(file, 'not a database, but long enough to have a header'.repeat(4));
    const { exitCode, report } = await checkJson(cloud.args());
    assert.equal(exitCode, 2);
    const l = check(report, 'Ledger');
    assert.equal(l.result, 'Failure');
    assert.match(l.details, new RegExp(`${file}: (cannot read the ledger|not a ledger)`));
    assert.equal(readFileSync(file, 'utf8'), 'not a database, but long enough to have a header'.repeat(4));
  });

  test('the estimate comes from the last succeeded run of the same chain (a rehearsal on another copy)', async () => {
    const rehearsal = await fakeCloud();
    const r = await leapfrog(['run', ...rehearsal.args(), '--format', 'json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const prod = await fakeCloud();
    const args = ['--chain', rehearsal.args()[1]!, '--db', prod.db, '--state-dir', rehearsal.state, '--cache-dir', CACHE];
    const { report } = await checkJson(args);
    assert.equal(report.estimate.hops.length, 12);
    assert.ok(report.estimate.hops.every((h: Json) => h.ms > 0 && h.fromRun === 1));
    assert.ok(Math.abs(report.estimate.totalMs - report.estimate.hops.reduce((n: number, h: Json) => n + h.ms, 0)) < 1e-6);
    assert.equal(check(report, 'Ledger').result, 'Success', 'the rehearsal\'s ledger has nothing unfinished against this target');
    const text = await leapfrog(['check-migrations', ...args]);
    assert.match(text.stdout, /Estimate \(step times of run 1\):\n {2}compute@kilo +\d/);
    assert.match(text.stdout, /total +[\d.]+ (ms|s|min)/);

    // At the chain's end: nothing to run, every check Success.
    const done = await checkJson(rehearsal.args());
    assert.equal(done.exitCode, 0, JSON.stringify(done.report.checks.filter((c: Json) => c.result !== 'Success')));
    assert.match(check(done.report, 'Versions').details, /Every database is at the end of chain/);
  });

  test('envs: missing from the cache with their tarball present is fine; --offline with a URL source, or a missing tarball, is a Failure', async () => {
    const cloud = await fakeCloud();
    const empty = tempDir('cache');
    const base = ['--chain', cloud.args()[1]!, '--db', cloud.db, '--state-dir', cloud.state, '--cache-dir', empty];
    const ok = await checkJson(base);
    assert.equal(check(ok.report, 'Envs').result, 'Success');
    assert.match(check(ok.report, 'Envs').details, /0 in the cache .*, 12 to unpack from local tarballs/);

    const envDir = tempDir('envs');
    const src = path.join(cloud.args()[1]!, '..', '..', 'envs');
    // The env files only: envs/ also holds directories of other chains' envs (envs/openstack/).
    for (const f of readdirSync(src, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name)) writeFileSync(path.join(envDir, f), readFileSync(path.join(src, f), 'utf8').replace(/file: .*compute-kilo\.tar\.gz/, 'url: https://artifacts.example/compute-kilo.tar.gz').replace(/file: .*image-kilo\.tar\.gz/, 'file: /nonexistent/image-kilo.tar.gz'));
    const online = await checkJson([...base, '--envs', envDir]);
    const envs = check(online.report, 'Envs');
    assert.equal(envs.result, 'Failure');
    assert.match(envs.details, /image-kilo: not in the cache, and its source file \/nonexistent\/image-kilo\.tar\.gz does not exist/);
    assert.match(envs.details, /compute-kilo: not in the cache; the run would have to fetch it from https:\/\/artifacts\.example\/compute-kilo\.tar\.gz/);
    const offline = await checkJson([...base, '--envs', envDir, '--offline']);
    assert.match(check(offline.report, 'Envs').details, /compute-kilo: not in the cache and --offline: provision it before the window/);
    rmSync(envDir, { recursive: true, force: true });
  });

  test('a database ahead of the chain, a missing target directory and an invalid chain are Failures in the report', async () => {
    const cloud = await fakeCloud();
    await execa('sqlite3', [cloud.file('compute'), 'UPDATE migrate_version SET version = 340']);
    const ahead = await checkJson(cloud.args());
    assert.equal(ahead.exitCode, 2);
    const v = check(ahead.report, 'Versions');
    assert.equal(v.result, 'Failure');
    assert.match(v.details, /project compute, database main \(compute\): is at version 340, ahead of the chain's end \(334\)/);
    assert.equal(ahead.report.plan, null);
    assert.equal(ahead.report.versions.compute.main, 340, 'the versions are reported even when the planner refuses');

    const missing = await checkJson(['--chain', cloud.args()[1]!, '--db', `sqlite:${path.join(cloud.dir, 'nope')}`, '--state-dir', cloud.state, '--cache-dir', CACHE]);
    assert.equal(missing.exitCode, 2);
    assert.match(check(missing.report, 'Target').details, /nope does not exist/);

    rmSync(cloud.file('image'));
    const gone = await checkJson(cloud.args());
    const d = check(gone.report, 'Databases');
    assert.equal(d.result, 'Failure');
    assert.match(d.details, /image main \(image\): does not exist, but the chain starts it at juno: check --db, or restore it/);

    const template = chainVariant('template', (c) => {
      c.projects.identity.config['identity.conf'] = '[database]\nconnection = {{ db.nope.url }}\n';
    });
    const fresh = await fakeCloud();
    const t = await checkJson(fresh.args(template));
    // A template mistake is a chain (input) error found at load, naming the line.
    assert.equal(t.exitCode, 2);
    assert.match(check(t.report, 'Chain').details, /\.yaml:\d+:1: projects\.identity\.config\["identity\.conf"\]: template: db\.nope is not something templates can use/);
    const until = await checkJson([...fresh.args(), '--until', 'ocata']);
    assert.equal(check(until.report, 'Plan').result, 'Failure');
    assert.match(check(until.report, 'Plan').details, /--until ocata: chain fakecloud-juno-newton has no such release; its releases are kilo, liberty, mitaka, newton/);

    const bad = chainVariant('typo', (c) => {
      c.projects.compute.blockers[0].fixed_by = 'x';
    });
    const invalid = await checkJson(['--chain', bad, '--db', cloud.db, '--state-dir', cloud.state]);
    assert.equal(invalid.exitCode, 2);
    assert.match(check(invalid.report, 'Chain').details, /projects\.compute\.blockers\[0\]\.fixed_by: unknown key "fixed_by"/);
    assert.deepEqual(invalid.report.checks.map((c: Json) => c.check), ['Chain', 'Target', 'Ledger']);
  });
});

function require_(name: string): string {
  return path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'node_modules', name);
}
