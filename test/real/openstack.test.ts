/**
 * The real chain on real OpenStack code: chains/openstack/debian-victoria-to-epoxy.yaml
 * walks a victoria cloud made by victoria's own tools (fixtures/openstack/)
 * to 2025.1 epoxy on two real MariaDB servers, cell0 and cell1 on the second.
 * Run by `npm run test:openstack` (not by `npm test`: it needs three Debian
 * root filesystems holding six services each).
 *
 * The envs are built with `leapfrog envs build --debian SUITE --no-updates`
 * (the suite alone, so the bytes only change with leapfrog) and kept outside
 * the repository, keyed by what decides them: ~/.cache/leapfrog-test/openstack/<key>/
 * (or $LEAPFROG_TEST_OPENSTACK_CACHE). A cold cache costs about 20 minutes
 * on 2 cores; the suite itself takes a few minutes more.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { parse, stringify } from 'yaml';
import { startScratchServer, stopScratchServer, type ScratchServer } from '../../src/rehearse/scratch-server.js';
import { ROOT, leapfrog, ledgerRows, tempDir } from '../helpers.js';

type Json = Record<string, any>;
const MIRROR = 'http://deb.debian.org/debian';
const STORE = process.env.LEAPFROG_TEST_OPENSTACK_CACHE ?? path.join(os.homedir(), '.cache', 'leapfrog-test', 'openstack');
const SERVICES = ['python3-nova', 'python3-keystone', 'python3-glance', 'python3-cinder', 'python3-neutron', 'python3-placement', 'python3-pymysql'];
const RELEASES = [
  { name: 'openstack-victoria', suite: 'bullseye' },
  { name: 'openstack-zed', suite: 'bookworm' },
  { name: 'openstack-epoxy', suite: 'trixie' },
];
const CHAIN = path.join(ROOT, 'chains', 'openstack', 'debian-victoria-to-epoxy.yaml');
const INSTALL = path.join(ROOT, 'fixtures', 'openstack', 'victoria-install.yaml');
const ROWS = path.join(ROOT, 'fixtures', 'openstack', 'victoria-rows.sql');
/** Where each database of the fixture lives: the cells on server B, the rest on A. */
const ON_B = new Set(['nova', 'nova_cell0']);
const DATABASES = ['nova_api', 'nova_cell0', 'nova', 'keystone', 'glance', 'cinder', 'neutron', 'placement'];

/** The env, built when not already in the store; its env file, pointing at the tarball by absolute path. */
async function env(name: string, suite: string): Promise<string> {
  // `layout` changes when what envs build writes changes, so old entries are not reused.
  const inputs = { suite, packages: SERVICES, mirror: MIRROR, updates: false, layout: 1 };
  const dir = path.join(STORE, `${name}-${createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16)}`);
  const envFile = path.join(dir, `${name}.yaml`);
  if (!existsSync(envFile)) {
    const work = `${dir}.tmp-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    const started = Date.now();
    const r = await leapfrog(['envs', 'build', '--debian', suite, '--no-updates', '--packages', SERVICES.join(','), '--mirror', MIRROR, '--name', name, '--out', work]);
    assert.equal(r.exitCode, 0, r.stderr.slice(-3000));
    console.log(`# built ${name} (${suite}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    mkdirSync(path.dirname(dir), { recursive: true });
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
  }
  return envFile;
}

let envDir: string;
let state: string;
let a: ScratchServer;
let b: ScratchServer;
let dumps: string[] = [];
const cleanup: string[] = [];

const url = (s: ScratchServer) => `mysql://root@127.0.0.1:${s.port}`;
const socketUrl = (s: ScratchServer) => `mysql://root@localhost?socket=${encodeURIComponent(s.socket)}`;
const serverOf = (db: string) => (ON_B.has(db) ? b : a);
const tcpArgs = () => ['--db', url(a), '--db', `cells=${url(b)}`];

async function connect(s: ScratchServer, database?: string) {
  return mysql.createConnection({ host: '127.0.0.1', port: s.port, user: 'root', multipleStatements: true, ...(database ? { database } : {}) });
}

async function sql<T = Json>(db: string, text: string): Promise<T[]> {
  const c = await connect(serverOf(db), db);
  try {
    return (await c.query(text))[0] as T[];
  } finally {
    await c.end();
  }
}

/** Every table of every database, by CHECKSUM TABLE, on both servers. */
async function checksums(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const db of DATABASES) {
    const tables = await sql<{ t: string }>(db, `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = '${db}' AND table_type = 'BASE TABLE' ORDER BY table_name`);
    const rows = await sql<{ Table: string; Checksum: string }>(db, `CHECKSUM TABLE ${tables.map((t) => `\`${db}\`.\`${t.t}\``).join(', ')}`);
    for (const r of rows) out[r.Table] = String(r.Checksum);
  }
  return out;
}

async function dropAll(): Promise<void> {
  for (const db of DATABASES) {
    const c = await connect(serverOf(db));
    await c.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await c.end();
  }
}

/** The victoria dumps loaded again, each onto its own server: the fixture as it was before any hop. */
async function restoreVictoria(): Promise<void> {
  await dropAll();
  for (const f of dumps) {
    const db = path.basename(f, '.sql');
    const s = serverOf(db);
    const r = await execa('mariadb', ['--no-defaults', '-h', '127.0.0.1', '-P', String(s.port), '-u', 'root'], { inputFile: f, reject: false });
    assert.equal(r.exitCode, 0, r.stderr);
  }
}

before(async () => {
  envDir = tempDir('openstack-envs');
  cleanup.push(envDir);
  // Side by side: much of a build is waiting on the archive.
  const files = await Promise.all(RELEASES.map((r) => env(r.name, r.suite)));
  for (const [i, r] of RELEASES.entries()) {
    const file = files[i]!;
    const doc = parse(readFileSync(file, 'utf8')) as Json;
    // Built from the suite alone (--no-updates), and the env file says so.
    assert.deepEqual([doc.build.updates, doc.build.sources], [false, [`deb ${MIRROR} ${r.suite} main`]]);
    doc.source = { file: path.join(path.dirname(file), doc.source.file as string), sha256: doc.source.sha256 };
    writeFileSync(path.join(envDir, `${r.name}.yaml`), stringify(doc));
  }
  state = tempDir('openstack-state');
  cleanup.push(state);
  a = await startScratchServer({ parentDir: tempDir('openstack-a') });
  b = await startScratchServer({ parentDir: tempDir('openstack-b') });
});

after(async () => {
  for (const s of [a, b]) if (s) await stopScratchServer(s, { keep: false });
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

const lf = (args: string[]) => leapfrog([...args, '--envs', envDir], { env: { LEAPFROG_STATE_DIR: state } });

test('a kill inside neutron\'s initial migration leaves neutron partly created: the next run refuses, naming its tables', async () => {
  const installState = tempDir('openstack-install-killed');
  cleanup.push(installState);
  const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', '--chain', INSTALL, ...tcpArgs(), '--envs', envDir, '--parallel', '1'], {
    reject: false,
    env: { LEAPFROG_STATE_DIR: installState },
    stdin: 'ignore',
  });
  // neutron's victoria migration creates some 170 tables one statement at a time: kill leapfrog,
  // and with it the step (bwrap --die-with-parent), once the first of them are there.
  const deadline = Date.now() + 600_000;
  for (;;) {
    assert.ok(Date.now() < deadline, 'neutron never started its migration');
    assert.equal(child.exitCode, null, 'the install ended before neutron\'s migration was caught');
    const c = await connect(a);
    const [n] = (await c.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'neutron'")) as unknown as [{ n: number }[]];
    await c.end();
    if (Number(n[0]!.n) >= 5) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  await child;
  // leapfrog alone died: its step's process group still runs, and the next run says so, naming it.
  // Killing it too is the power loss this test is about.
  let again = await leapfrog(['run', '--chain', INSTALL, ...tcpArgs(), '--envs', envDir], { env: { LEAPFROG_STATE_DIR: installState } });
  const group = /still running as process group (\d+)/.exec(again.stderr);
  if (group) {
    try {
      process.kill(-Number(group[1]), 'SIGKILL');
    } catch {
      // Ended on its own meanwhile.
    }
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(-Number(group[1]), 0);
        await new Promise((r) => setTimeout(r, 100));
      } catch {
        break;
      }
    }
    again = await leapfrog(['run', '--chain', INSTALL, ...tcpArgs(), '--envs', envDir], { env: { LEAPFROG_STATE_DIR: installState } });
  }
  assert.notEqual(again.exitCode, 0, again.stdout);
  assert.match(again.stderr, /neutron[^\n]*partly created/);
  assert.match(again.stderr, /alembic_version|networks|ports|agents/);
  // What the refusal says to do: roll back to the restore point before neutron's hop, then run again.
  const point = /leapfrog rollback --to (\S+)/.exec(again.stderr);
  assert.ok(point, again.stderr);
  const back = await leapfrog(['rollback', '--to', point[1]!, '--chain', INSTALL, ...tcpArgs(), '--envs', envDir, '--yes'], { env: { LEAPFROG_STATE_DIR: installState } });
  assert.equal(back.exitCode, 0, back.stderr);
  const done = await leapfrog(['run', '--chain', INSTALL, ...tcpArgs(), '--envs', envDir], { env: { LEAPFROG_STATE_DIR: installState } });
  assert.equal(done.exitCode, 0, done.stderr.slice(-3000));

  // The fixture: victoria's rows, each database's block on its own server, then one dump per database.
  const blocks = readFileSync(ROWS, 'utf8').split(/^(?=USE [a-z0-9_]+;$)/m).filter((b) => b.startsWith('USE '));
  assert.equal(blocks.length, 8);
  for (const block of blocks) {
    const db = /^USE ([a-z0-9_]+);/.exec(block)![1]!;
    const conn = await connect(serverOf(db), db);
    await conn.query(block);
    await conn.end();
  }
  const dumpDir = tempDir('openstack-dumps');
  cleanup.push(dumpDir);
  dumps = [];
  for (const db of DATABASES) {
    const s = serverOf(db);
    const file = path.join(dumpDir, `${db}.sql`);
    const r = await execa('mariadb-dump', ['--no-defaults', '-h', '127.0.0.1', '-P', String(s.port), '-u', 'root', '--single-transaction', '--routines', '--databases', db], { reject: false, stdout: { file } });
    assert.equal(r.exitCode, 0, r.stderr);
    dumps.push(file);
  }
});

test('check-migrations before the window: the real blocker is named with the step that clears it', async () => {
  assert.ok(dumps.length > 0, 'the fixture was made');
  const r = await lf(['check-migrations', '--chain', CHAIN, ...tcpArgs(), '--format', 'json']);
  assert.ok(r.exitCode === 0 || r.exitCode === 1, r.stderr + r.stdout.slice(-2000));
  const text = r.stdout;
  assert.match(text, /temporary and migrating volumes before use_quota is enforced/);
  assert.match(text, /zed\/cinder\/2/);
  const plan = await lf(['plan', '--chain', CHAIN, ...tcpArgs()]);
  assert.equal(plan.exitCode, 0, plan.stderr);
  // One line per cell for the per-cell online data migrations.
  for (const id of ['zed/nova/3.cell0', 'zed/nova/3.cell1', 'epoxy/nova/3.cell0', 'epoxy/nova/3.cell1']) assert.match(plan.stdout, new RegExp(id.replace(/\./g, '\\.')));
});

test('a rehearsal of the victoria dumps on a scratch server completes, and both source servers are unchanged, cells included', async () => {
  assert.ok(dumps.length > 0, 'the fixture was made');
  const before = await checksums();
  const r = await lf(['rehearse', '--chain', CHAIN, ...dumps.flatMap((d) => ['--dump', d]), '--format', 'json']);
  assert.equal(r.exitCode, 0, r.stderr.slice(-4000));
  const report = JSON.parse(r.stdout) as Json;
  assert.match(JSON.stringify(report), /"passed"/);
  // cell_mappings on the sources still name server B over TCP: the rehearsal's steps followed the copy's.
  assert.deepEqual(await checksums(), before);
  const cells = await sql<{ database_connection: string }>('nova_api', 'SELECT database_connection FROM cell_mappings ORDER BY id');
  for (const c of cells) assert.match(c.database_connection, new RegExp(`127\\.0\\.0\\.1:${b.port}/`));
});

test('run over TCP walks victoria to epoxy, cell1 on the second server, the online data migrations once per cell; a second run does nothing', async () => {
  assert.ok(dumps.length > 0, 'the fixture was made');
  const started = Date.now();
  const r = await lf(['run', '--chain', CHAIN, ...tcpArgs(), '--parallel', '3']);
  assert.equal(r.exitCode, 0, r.stderr.slice(-4000));
  console.log(`# run over TCP: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const v = (db: string, table: string) => sql<{ v: string }>(db, `SELECT version_num AS v FROM ${table} ORDER BY version_num`).then((rows) => rows.map((x) => x.v));
  assert.deepEqual(await v('nova_api', 'alembic_version'), ['cdeec0c85668']);
  assert.deepEqual(await v('nova', 'alembic_version'), ['2903cd72dc14']);
  assert.deepEqual(await v('nova_cell0', 'alembic_version'), ['2903cd72dc14']);
  assert.deepEqual(await v('neutron', 'alembic_version'), ['5c85685d616d', 'ad80a9f07c5c']);
  // The temporary volume kept use_quota = 0: zed's online data migration ran before epoxy's 9ab1b092a404.
  const vols = await sql<{ id: string; use_quota: number }>('cinder', 'SELECT id, use_quota FROM volumes ORDER BY id');
  assert.deepEqual(vols.map((x) => [x.id.slice(-2), Number(x.use_quota)]), [['01', 1], ['02', 1], ['03', 0]]);
  // Epoxy's populate_instance_compute_id filled cell1's live instances.
  const noCompute = await sql<{ n: number }>('nova', 'SELECT COUNT(*) AS n FROM instances WHERE deleted = 0 AND compute_id IS NULL AND host IS NOT NULL');
  assert.equal(Number(noCompute[0]!.n), 0);
  const steps = ledgerRows(state, "SELECT s.step_id, COUNT(*) AS n FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.kind = 'run' AND s.step_id LIKE '%/nova/3.%' AND s.status = 'succeeded' GROUP BY s.step_id ORDER BY s.step_id");
  assert.deepEqual(steps.map((s) => s.step_id), ['epoxy/nova/3.cell0', 'epoxy/nova/3.cell1', 'zed/nova/3.cell0', 'zed/nova/3.cell1']);
  for (const s of steps) assert.equal(s.n, 1, `${s.step_id} ran once`);
  const second = await lf(['run', '--chain', CHAIN, ...tcpArgs()]);
  assert.equal(second.exitCode, 0, second.stderr);
  assert.match(second.stdout, /Nothing to run/);
});

test('run over the servers\' sockets walks the same victoria dumps to epoxy', async () => {
  assert.ok(dumps.length > 0, 'the fixture was made');
  await restoreVictoria();
  const socketState = tempDir('openstack-socket');
  cleanup.push(socketState);
  const args = ['--chain', CHAIN, '--db', socketUrl(a), '--db', `cells=${socketUrl(b)}`, '--envs', envDir];
  const r = await leapfrog(['run', ...args, '--parallel', '3'], { env: { LEAPFROG_STATE_DIR: socketState } });
  assert.equal(r.exitCode, 0, r.stderr.slice(-4000));
  assert.match(r.stdout, /Run \d+ succeeded/);
  const cells = await sql<{ v: string }>('nova', 'SELECT version_num AS v FROM alembic_version');
  assert.deepEqual(cells.map((x) => x.v), ['2903cd72dc14']);
  const second = await leapfrog(['run', ...args], { env: { LEAPFROG_STATE_DIR: socketState } });
  assert.match(second.stdout, /Nothing to run/);
});

test('without the chain\'s rehearsal: rewrite and with --allow-network, the same rehearsal migrates the source\'s cell0: what the rewrite and the network namespace each prevent', async () => {
  assert.ok(dumps.length > 0, 'the fixture was made');
  await restoreVictoria();
  const doc = parse(readFileSync(CHAIN, 'utf8')) as Json;
  delete doc.projects.nova.rehearsal;
  // Only zed's nova hop: enough to reach cell0 through its mapping.
  doc.releases = [{ ...doc.releases[0], steps: doc.releases[0].steps.filter((s: Json) => s.project === 'nova').slice(0, 2) }];
  for (const p of Object.keys(doc.projects)) if (p !== 'nova') delete doc.projects[p];
  const dir = tempDir('openstack-unguarded');
  cleanup.push(dir);
  const chain = path.join(dir, 'unguarded.yaml');
  doc.envs = envDir;
  writeFileSync(chain, stringify(doc));
  const novaDumps = dumps.filter((d) => /nova/.test(path.basename(d)));
  const before = await checksums();
  // In a network namespace of its own (the default), the step cannot reach server B: the rehearsal fails, B untouched.
  const isolated = await lf(['rehearse', '--chain', chain, ...novaDumps.flatMap((d) => ['--dump', d])]);
  assert.notEqual(isolated.exitCode, 0, isolated.stdout);
  assert.deepEqual(await checksums(), before);
  // With the network, nothing stops it: nova-manage db sync follows cell0's mapping to the source.
  const open = await lf(['rehearse', '--chain', chain, ...novaDumps.flatMap((d) => ['--dump', d]), '--allow-network']);
  const after = await checksums();
  const changed = Object.keys(before).filter((t) => before[t] !== after[t] || !(t in after));
  assert.ok(changed.some((t) => t.startsWith('nova_cell0.')), `${open.stderr.slice(-1500)}\nchanged: ${changed.join(', ')}`);
});
