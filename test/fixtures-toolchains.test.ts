/**
 * The fake cloud's toolchains, end to end on SQLite: real child processes
 * from the built tarballs, the way leapfrog runs them (clean environment,
 * the env's bin first on PATH, scratch HOME/TMPDIR/cwd).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import * as tar from 'tar';
import YAML from 'yaml';
import { buildEnvs, type EnvBuild } from '../fixtures/build-envs.js';
import { createCloud } from '../fixtures/cloud.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
let work: string;
let builds: EnvBuild[];
const envRoots = new Map<string, string>();

before(() => {
  builds = buildEnvs();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'leapfrog-fixtures-'));
  for (const b of builds) {
    const dir = path.join(work, 'envs', b.env);
    fs.mkdirSync(dir, { recursive: true });
    tar.x({ file: b.tarball, cwd: dir, sync: true });
    envRoots.set(b.env, dir);
  }
});

after(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

interface Result { exitCode: number; stdout: string; stderr: string }

async function run(env: string, argv: string[]): Promise<Result> {
  const envRoot = envRoots.get(env);
  assert.ok(envRoot, `env ${env} was built`);
  const scratch = fs.mkdtempSync(path.join(work, 'scratch-'));
  const r = await execa(argv[0]!, argv.slice(1), {
    cwd: scratch,
    env: { PATH: `${path.join(envRoot, 'bin')}:/usr/local/bin:/usr/bin:/bin`, HOME: scratch, TMPDIR: scratch },
    extendEnv: false,
    reject: false,
  });
  assert.deepEqual(fs.readdirSync(scratch), [], 'the tool leaves nothing behind in TMPDIR');
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function sqlite(file: string, sql: string): Promise<string> {
  return String((await execa('sqlite3', [file, sql])).stdout).trim();
}

async function cloud(name: string, options: { instances?: number; nullUuids?: number } = {}) {
  const dir = path.join(work, name);
  await createCloud(`sqlite:${dir}`, { instances: options.instances ?? 120, nullUuids: options.nullUuids ?? 0, seed: 7 });
  const conf = (file: string, text: string) => {
    fs.writeFileSync(path.join(dir, file), text, { mode: 0o600 });
    return path.join(dir, file);
  };
  return {
    dir,
    compute: path.join(dir, 'compute.sqlite3'),
    api: path.join(dir, 'compute_api.sqlite3'),
    identity: path.join(dir, 'identity.sqlite3'),
    image: path.join(dir, 'image.sqlite3'),
    computeConf: conf('compute.conf', `[database]\nconnection = sqlite:///${dir}/compute.sqlite3\n[api_database]\nconnection = sqlite:///${dir}/compute_api.sqlite3\n`),
    identityConf: conf('identity.conf', `[database]\nconnection = sqlite:///${dir}/identity.sqlite3\n`),
    imageConf: conf('image.conf', `[database]\nconnection = sqlite:///${dir}/image.sqlite3\n`),
  };
}

test('every env tarball matches the sha256 its env file declares', () => {
  assert.equal(builds.length, 13);
  for (const b of builds) {
    const doc = YAML.parse(fs.readFileSync(path.join(root, 'envs', `${b.env}.yaml`), 'utf8')) as { source: { sha256: string; file: string } };
    assert.equal(doc.source.sha256, b.sha256, `${b.env}: run npm run fixture:envs -- --write`);
    assert.equal(path.resolve(root, 'envs', doc.source.file), b.tarball);
  }
  // Only that release's code: liberty has no flavor migration command, kilo no 281+.
  const bin = (env: string) => fs.readFileSync(path.join(envRoots.get(env)!, 'bin', 'compute-manage'), 'utf8');
  assert.match(bin('compute-kilo'), /migrate_flavor_data/);
  assert.doesNotMatch(bin('compute-liberty'), /migrate_flavor_data/);
  assert.ok(!fs.existsSync(path.join(envRoots.get('compute-kilo')!, 'migrations', 'main', '281_placeholder.sql')));
  assert.ok(fs.existsSync(path.join(envRoots.get('compute-liberty')!, 'migrations', 'main', '255_add_compute_nodes_host_index.sql')));
});

test('compute juno -> newton: blockers refuse, each release only knows its own code', async () => {
  const c = await cloud('compute-walk', { nullUuids: 3 });
  const cm = (env: string, ...args: string[]) => run(env, ['compute-manage', '--config-file', c.computeConf, ...args]);
  const version = () => sqlite(c.compute, "SELECT version FROM migrate_version WHERE repository_id = 'nova'");

  assert.equal((await cm('compute-kilo', 'db', 'version')).stdout.trim(), '254');

  // Wrong env for the hop: kilo's code has no 302; liberty's has no migrate_flavor_data.
  let r = await cm('compute-kilo', 'db', 'sync', '--version', '302');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /no migration 302 in this release's repository/);
  assert.equal(await version(), '254');
  r = await cm('compute-liberty', 'db', 'migrate_flavor_data');
  assert.equal(r.exitCode, 2);
  assert.match(r.stderr, /invalid choice: 'migrate_flavor_data'/);

  // kilo 267 refuses NULL instance uuids.
  r = await cm('compute-kilo', 'db', 'sync', '--version', '280');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /null_instance_uuid_scan --delete/);
  assert.equal(await version(), '266');
  r = await cm('compute-kilo', 'db', 'null_instance_uuid_scan');
  assert.match(r.stdout, /There were 3 records in the 'instances' table/);
  r = await cm('compute-kilo', 'db', 'null_instance_uuid_scan', '--delete');
  assert.equal(r.exitCode, 0);
  assert.match(r.stdout, /Deleted 3 records from table 'instances'\./);
  r = await cm('compute-kilo', 'db', 'sync', '--version', '280');
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /Running upgrade 279 -> 280, add_bdm_image_id_index/);
  assert.equal(await version(), '280');

  // liberty 291 refuses until kilo's flavor migration ran; 281-290 stay applied.
  r = await cm('compute-liberty', 'db', 'sync', '--version', '302');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /Please run `compute-manage db migrate_flavor_data' first/);
  assert.equal(await version(), '290');

  const pending = Number(await sqlite(c.compute, "SELECT COUNT(*) FROM instances i JOIN instance_system_metadata s ON s.instance_uuid = i.uuid WHERE i.deleted = 0 AND s.deleted = 0 AND s.key = 'instance_type_id'"));
  assert.ok(pending > 50 && pending < 120, `pending ${pending}`);
  r = await cm('compute-kilo', 'db', 'migrate_flavor_data', '--max-number', '50');
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout.trim(), '50 instances matched query, 50 completed');
  r = await cm('compute-kilo', 'db', 'migrate_flavor_data', '--max-number', '500');
  assert.equal(r.stdout.trim(), `${pending - 50} instances matched query, ${pending - 50} completed`);
  r = await cm('compute-kilo', 'db', 'migrate_flavor_data');
  assert.equal(r.stdout.trim(), '0 instances matched query, 0 completed');
  const flavor = JSON.parse(await sqlite(c.compute, 'SELECT e.flavor FROM instance_extra e JOIN instances i ON i.uuid = e.instance_uuid WHERE i.deleted = 0 LIMIT 1')) as { cur: { 'nova_object.data': { memory_mb: number } } };
  assert.ok(flavor.cur['nova_object.data'].memory_mb >= 512);

  r = await cm('compute-liberty', 'db', 'sync', '--version', '302');
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /Running upgrade 290 -> 291, enforce_flavors_migrated/);
  assert.equal(await version(), '302');

  // mitaka: main to 319, api database created, online migrations in batches.
  assert.equal((await cm('compute-liberty', 'api_db', 'sync')).exitCode, 2);
  assert.equal((await cm('compute-mitaka', 'db', 'sync', '--version', '319')).exitCode, 0);
  assert.equal(fs.existsSync(c.api), false);
  r = await cm('compute-mitaka', 'api_db', 'sync', '--version', '7');
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(await sqlite(c.api, "SELECT version FROM migrate_version WHERE repository_id = 'nova_api'"), '7');
  assert.equal((await cm('compute-mitaka', 'db', 'online_data_migrations', '--max-count', '0')).exitCode, 127);

  // newton 330 refuses while mitaka's online migrations have not run.
  r = await cm('compute-newton', 'db', 'sync', '--version', '334');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /online_data_migrations/);
  assert.equal(await version(), '329');

  const codes: number[] = [];
  for (let i = 0; i < 10; i++) {
    r = await cm('compute-mitaka', 'db', 'online_data_migrations', '--max-count', '50');
    codes.push(r.exitCode);
    assert.match(r.stdout, /\| migrate_instance_keypairs +\| +\d+ \| +\d+ \|/);
    if (r.exitCode !== 1) break;
  }
  assert.deepEqual(codes, [1, 1, 0]);
  assert.equal(await sqlite(c.compute, 'SELECT COUNT(*) FROM compute_nodes WHERE uuid IS NULL'), '0');

  r = await cm('compute-newton', 'db', 'sync', '--version', '334');
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal((await cm('compute-newton', 'api_db', 'sync', '--version', '20')).exitCode, 0);
  r = await cm('compute-newton', 'db', 'online_data_migrations', '--max-count', '50');
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /\| migrate_flavors +\| +6 \| +6 \|/);
  assert.equal(await sqlite(c.api, 'SELECT COUNT(*) FROM flavors'), '6');
  assert.equal((await cm('compute-newton', 'db', 'version')).stdout.trim(), '334');
  assert.equal((await cm('compute-newton', 'api_db', 'version')).stdout.trim(), '20');
});

test('identity juno -> newton: legacy repository, then expand / migrate / contract in order', async () => {
  const c = await cloud('identity-walk', { instances: 10 });
  const im = (env: string, ...args: string[]) => run(env, ['identity-manage', '--config-file', c.identityConf, ...args]);
  const repos = async () => Object.fromEntries((await sqlite(c.identity, 'SELECT repository_id, version FROM migrate_version')).split('\n').map((l) => l.split('|')));

  let r = await im('identity-kilo', 'db_sync', '75');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /no migration 75/);
  assert.equal((await im('identity-kilo', 'db_sync', '67')).exitCode, 0);
  assert.equal((await im('identity-liberty', 'db_sync', '75')).exitCode, 0);
  assert.equal((await im('identity-mitaka', 'db_sync', '97')).exitCode, 0);
  assert.deepEqual(await repos(), { keystone: '97' });
  assert.equal((await im('identity-mitaka', 'db_sync', '--expand')).exitCode, 2);

  assert.equal((await im('identity-newton', 'db_sync', '--check')).exitCode, 2);
  assert.equal((await im('identity-newton', 'db_sync')).exitCode, 0);
  assert.deepEqual(await repos(), { keystone: '109', keystone_expand: '0', keystone_data_migrate: '0', keystone_contract: '0' });
  assert.equal((await im('identity-newton', 'db_sync', '--check')).exitCode, 2);
  r = await im('identity-newton', 'db_sync', '--migrate');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /db_sync --expand' first/);
  assert.equal((await im('identity-newton', 'db_sync', '--expand')).exitCode, 0);
  assert.equal((await im('identity-newton', 'db_sync', '--check')).exitCode, 3);
  r = await im('identity-newton', 'db_sync', '--contract');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /db_sync --migrate' first/);
  assert.equal((await im('identity-newton', 'db_sync', '--migrate')).exitCode, 0);
  assert.equal((await im('identity-newton', 'db_sync', '--check')).exitCode, 4);
  assert.equal((await im('identity-newton', 'db_sync', '--contract')).exitCode, 0);
  r = await im('identity-newton', 'db_sync', '--check');
  assert.equal(r.exitCode, 0);
  assert.deepEqual(await repos(), { keystone: '109', keystone_expand: '3', keystone_data_migrate: '3', keystone_contract: '3' });
  assert.equal(await sqlite(c.identity, 'SELECT COUNT(*) FROM credential WHERE encrypted_blob IS NULL'), '0');
});

test('image juno -> newton with alembic revisions; ocata pushes the database ahead of the chain', async () => {
  const c = await cloud('image-walk', { instances: 10 });
  const gm = (env: string, ...args: string[]) => run(env, ['image-manage', '--config-file', c.imageConf, ...args]);
  const head = () => sqlite(c.image, 'SELECT version_num FROM alembic_version');

  let r = await gm('image-kilo', 'db', 'sync', 'liberty');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /Can't locate revision identified by 'liberty'/);
  for (const [env, rev] of [['image-kilo', 'kilo'], ['image-liberty', 'liberty'], ['image-mitaka', 'mitaka02']] as const) {
    r = await gm(env, 'db', 'sync');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(await head(), rev);
  }
  r = await gm('image-newton', 'db', 'sync');
  assert.equal(r.exitCode, 0);
  assert.match(r.stdout, /already at head \(mitaka02\)/);
  assert.equal((await gm('image-ocata', 'db', 'sync')).exitCode, 0);
  assert.equal((await gm('image-newton', 'db', 'version')).stdout.trim(), 'ocata01');
  r = await gm('image-newton', 'db', 'sync');
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /Can't locate revision identified by 'ocata01'/);
});

test('fixture:cloud refuses an existing cloud and is deterministic for a seed', async () => {
  const dir = path.join(work, 'det');
  await createCloud(`sqlite:${dir}`, { instances: 30, seed: 3 });
  await assert.rejects(createCloud(`sqlite:${dir}`, { instances: 30, seed: 3 }), /already exist/);
  const dump1 = String((await execa('sqlite3', [path.join(dir, 'compute.sqlite3'), '.dump'])).stdout);
  await createCloud(`sqlite:${dir}`, { instances: 30, seed: 3, force: true });
  const dump2 = String((await execa('sqlite3', [path.join(dir, 'compute.sqlite3'), '.dump'])).stdout);
  assert.equal(dump1, dump2);
});
