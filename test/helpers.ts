import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { parse, stringify } from 'yaml';
import { createCloud } from '../fixtures/cloud.js';

/** Shared by the test files: the real CLI, real fake-cloud databases, real tarballs. */

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CHAIN = path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml');
export const ENVS = path.join(ROOT, 'envs');
/** Envs are content-addressed and renamed into place atomically, so test files may share one cache. */
export const CACHE = path.join(os.tmpdir(), 'leapfrog-test-cache');

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `lf-${prefix}-`));
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * The state directory of a test's leapfrog that names none: never the
 * machine's own default (/var/lib/leapfrog when the tests run as root, the
 * XDG state directory otherwise). A test of the default passes
 * LEAPFROG_STATE_DIR: '' (unset, for leapfrog).
 */
export const TEST_STATE = path.join(os.tmpdir(), `leapfrog-test-state-${process.pid}`);

export async function leapfrog(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  const r = await execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), ...args], {
    reject: false,
    env: { LEAPFROG_STATE_DIR: TEST_STATE, ...options.env },
    cwd: options.cwd ?? ROOT,
    stdin: 'ignore',
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The targets every end-to-end suite runs on. */
export type TargetKind = 'sqlite' | 'mariadb';
export const TARGET_KINDS: readonly TargetKind[] = ['sqlite', 'mariadb'];

/**
 * The MariaDB server of this test run, as a root account URL. `npm test` (tools/test.ts) starts a
 * throwaway mariadbd for the run and exports its URL here; set LEAPFROG_TEST_MARIADB yourself to use
 * a server of your own. There is no default: a test never reaches a server nobody named.
 */
export const MARIADB_URL = process.env.LEAPFROG_TEST_MARIADB ?? '';
/** That server's unix socket, when known (the runner's server; or LEAPFROG_TEST_MARIADB_SOCKET with your own). */
export const MARIADB_SOCKET = process.env.LEAPFROG_TEST_MARIADB_SOCKET || undefined;
/** Its port, for tests that build URLs for other accounts on the same server. */
export const MARIADB_PORT = MARIADB_URL ? Number(new URL(MARIADB_URL).port || 3306) : 0;
export const MARIADB_REQUIRED = process.env.LEAPFROG_REQUIRE_MARIADB === '1';

export function mariadbOptions(url = MARIADB_URL): mysql.ConnectionOptions {
  const u = new URL(url);
  const socket = u.searchParams.get('socket');
  return {
    ...(socket ? { socketPath: socket } : { host: u.hostname || 'localhost', port: u.port ? Number(u.port) : 3306 }),
    user: decodeURIComponent(u.username || 'root'),
    password: u.password ? decodeURIComponent(u.password) : undefined,
    connectTimeout: 3000,
    multipleStatements: true,
  };
}

/** Why MariaDB suites cannot run here, or undefined when the server answers. */
async function mariadbProblem(): Promise<string | undefined> {
  if (!MARIADB_URL) return 'no MariaDB server for the tests: `npm test` starts its own (also for a few files: npm test -- dist/test/FILE.test.js), or set LEAPFROG_TEST_MARIADB=mysql://root@HOST:PORT';
  try {
    const c = await mysql.createConnection(mariadbOptions());
    await c.end();
    return undefined;
  } catch (err) {
    return `MariaDB at ${MARIADB_URL} is unreachable (${(err as { code?: string }).code ?? (err as Error).message})`;
  }
}
const MARIADB_PROBLEM = await mariadbProblem();
/** A skip reason for a MariaDB-only test or suite (the `skip` option), or false when it must run. */
export const MARIADB_SKIP: string | false = MARIADB_PROBLEM !== undefined && !MARIADB_REQUIRED ? `${MARIADB_PROBLEM}; set LEAPFROG_REQUIRE_MARIADB=1 to fail instead` : false;

/**
 * One suite per target (kysely's pattern): `fn` registers the tests once, they
 * run on SQLite and on MariaDB. Without a server the MariaDB suite is skipped
 * with the reason in the test output, unless LEAPFROG_REQUIRE_MARIADB=1 (set
 * by `npm test`), where the suite runs and fails on its first connection.
 */
export function describeTargets(title: string, fn: (kind: TargetKind) => void, kinds: readonly TargetKind[] = TARGET_KINDS): void {
  for (const kind of kinds) {
    const skip = kind === 'mariadb' ? MARIADB_SKIP : false;
    if (skip) {
      // A skipped test, not only a skipped suite, so the run's summary counts it.
      describe(`${title} [${kind}]`, () => void test('every test of this suite', { skip }, () => {}));
      continue;
    }
    describe(`${title} [${kind}]`, () => {
      after(disposeClouds);
      fn(kind);
    });
  }
}

/** A run of queries on one connection to the test server. */
export async function withMariadb<T>(cb: (c: mysql.Connection) => Promise<T>, url = MARIADB_URL): Promise<T> {
  // The run's server may be missing while a test's own server (server-faults) is there.
  if (url === MARIADB_URL && MARIADB_PROBLEM !== undefined) throw new Error(`${MARIADB_PROBLEM}${MARIADB_REQUIRED ? ' and LEAPFROG_REQUIRE_MARIADB=1 requires it' : ''}`);
  const c = await mysql.createConnection(mariadbOptions(url));
  try {
    return await cb(c);
  } finally {
    await c.end();
  }
}

/** A fresh prefix for scratch databases on the shared server: lf_<random>_. */
export function uniquePrefix(): string {
  return `lf_${randomBytes(5).toString('hex')}_`;
}

/** The fake cloud's databases (fixed names in the chain). */
export const CLOUD_DATABASES = ['compute', 'compute_api', 'identity', 'image'] as const;
export type CloudDatabase = (typeof CLOUD_DATABASES)[number];

/** The real CLI as a child process still running: for locks, signals and races. */
export function spawnLeapfrog(args: readonly string[]) {
  return execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), ...args], { reject: false, cwd: ROOT, stdin: 'ignore', all: false, env: { LEAPFROG_STATE_DIR: TEST_STATE } });
}

/** Poll `check` until it returns a value, or fail after `ms`. */
export async function eventually<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Cloud {
  kind: TargetKind;
  dir: string;
  db: string;
  state: string;
  /** The chain for this cloud (on MariaDB: a variant whose databases carry the prefix). */
  chain: string;
  /** Real database names per fake-cloud database. */
  names: Record<CloudDatabase, string>;
  /** --chain, --db, --state-dir, --cache-dir for this cloud. */
  args(chain?: string): string[];
  /** A variant of this cloud's chain. */
  variant(name: string, edit: (chain: Record<string, any>) => void): string;
  query<T = Record<string, unknown>>(db: CloudDatabase, sql: string): Promise<T[]>;
  scalar(db: CloudDatabase, sql: string): Promise<unknown>;
  exec(db: CloudDatabase, sql: string): Promise<void>;
  /** SQLite only: the database file. */
  file(db: CloudDatabase): string;
  /** Drop what this cloud created (also done after the suite). */
  dispose(): Promise<void>;
}

const liveClouds = new Set<Cloud>();
async function disposeClouds(): Promise<void> {
  for (const c of [...liveClouds]) await c.dispose();
}

function prefixNames(doc: Record<string, any>, names: Record<CloudDatabase, string>): void {
  for (const project of Object.values(doc.projects as Record<string, { databases: Record<string, string> }>)) {
    for (const [logical, name] of Object.entries(project.databases)) project.databases[logical] = names[name as CloudDatabase] ?? name;
  }
}

export async function fakeCloud(options: { kind?: TargetKind; instances?: number; nullUuids?: number; /** Another MariaDB server than the shared one. */ url?: string } = {}): Promise<Cloud> {
  const kind = options.kind ?? 'sqlite';
  const dir = tempDir('cloud');
  const state = path.join(dir, 'state');
  const prefix = kind === 'mariadb' ? uniquePrefix() : '';
  const names = Object.fromEntries(CLOUD_DATABASES.map((n) => [n, prefix + n])) as Record<CloudDatabase, string>;
  const server = options.url ?? MARIADB_URL;
  const db = kind === 'sqlite' ? `sqlite:${path.join(dir, 'db')}` : server;
  if (kind === 'mariadb') await withMariadb(async () => {}, server); // a clear error first when the server is required but missing
  const file = (name: CloudDatabase) => path.join(dir, 'db', `${names[name]}.sqlite3`);
  const variant = (name: string, edit: (chain: Record<string, any>) => void) =>
    chainVariant(name, (c) => {
      if (kind === 'mariadb') prefixNames(c, names);
      edit(c);
    });
  const chain = kind === 'mariadb' ? variant('fakecloud-juno-newton', () => {}) : CHAIN;
  const cloud: Cloud = {
    kind,
    dir,
    db,
    state,
    chain,
    names,
    args: (c = chain) => ['--chain', c, '--db', db, '--state-dir', state, '--cache-dir', CACHE],
    variant,
    file,
    async query<T>(name: CloudDatabase, sql: string): Promise<T[]> {
      if (kind === 'sqlite') return query<T>(file(name), sql);
      return withMariadb(async (c) => {
        await c.query(`USE \`${names[name]}\``);
        const [rows] = await c.query(sql);
        return rows as T[];
      }, server);
    },
    async scalar(name, sql) {
      const row = (await cloud.query<Record<string, unknown>>(name, sql))[0];
      return row === undefined ? undefined : Object.values(row)[0];
    },
    async exec(name, sql) {
      if (kind === 'sqlite') {
        const d = new Database(file(name));
        try {
          d.exec(sql);
        } finally {
          d.close();
        }
        return;
      }
      await withMariadb(async (c) => {
        await c.query(`USE \`${names[name]}\``);
        await c.query(sql);
      }, server);
    },
    async dispose() {
      liveClouds.delete(cloud);
      if (kind === 'mariadb') await dropDatabases(Object.values(names), server);
    },
  };
  liveClouds.add(cloud);
  await createCloud(db, {
    instances: options.instances ?? 60,
    nullUuids: options.nullUuids ?? 0,
    names: { compute: names.compute, identity: names.identity, image: names.image },
  });
  return cloud;
}

/** Drop scratch databases this test created (never anything else). */
export async function dropDatabases(names: readonly string[], url = MARIADB_URL): Promise<void> {
  if (url === MARIADB_URL && MARIADB_PROBLEM !== undefined) return;
  await withMariadb(async (c) => {
    for (const n of names) {
      if (!/^lf_[0-9a-f]+_/.test(n)) throw new Error(`refusing to drop ${n}: not a test database`);
      await c.query(`DROP DATABASE IF EXISTS \`${n}\``);
    }
  }, url);
}

/** A copy of the fake-cloud chain, changed by `edit`, that still finds the repo's env files. */
export function chainVariant(name: string, edit: (chain: Record<string, any>) => void): string {
  const doc = parse(readFileSync(CHAIN, 'utf8')) as Record<string, any>;
  edit(doc);
  doc.envs = ENVS;
  const dir = tempDir('chain');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(doc));
  return file;
}

export function query<T = unknown>(file: string, sql: string): T[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

export function scalar(file: string, sql: string): unknown {
  const row = query<Record<string, unknown>>(file, sql)[0];
  return row === undefined ? undefined : Object.values(row)[0];
}

/**
 * The fake-cloud chain with every env served over HTTP by `server` (url
 * sources, same sha256), in a directory of its own: `chains/` and `envs/`.
 */
export function remoteChain(server: { serve(name: string, file: string): void; url(name: string): string }, name = 'fakecloud-remote'): { chain: string; envDir: string; dir: string } {
  const dir = tempDir('remote');
  const envDir = path.join(dir, 'envs');
  mkdirSync(envDir, { recursive: true });
  mkdirSync(path.join(dir, 'chains'));
  for (const f of readdirSync(ENVS).filter((x) => x.endsWith('.yaml'))) {
    const doc = parse(readFileSync(path.join(ENVS, f), 'utf8')) as Record<string, any>;
    const tarball = path.resolve(ENVS, doc.source.file as string);
    server.serve(path.basename(tarball), tarball);
    doc.source = { url: server.url(path.basename(tarball)), sha256: doc.source.sha256 };
    writeFileSync(path.join(envDir, f), stringify(doc));
  }
  const doc = parse(readFileSync(CHAIN, 'utf8')) as Record<string, any>;
  doc.chain = name;
  delete doc.envs;
  const chain = path.join(dir, 'chains', `${name}.yaml`);
  writeFileSync(chain, stringify(doc));
  return { chain, envDir, dir };
}

/** Rows of the ledger in `state`, read read-only (the tests' view of what leapfrog recorded). */
export function ledgerRows(state: string, sql: string): Record<string, any>[] {
  const db = new Database(path.join(state, 'ledger.sqlite3'), { readonly: true });
  try {
    return db.prepare(sql).all() as Record<string, any>[];
  } finally {
    db.close();
  }
}

/**
 * Wait until `pid` is stopped (state T in /proc/PID/stat). The "paused at"
 * line comes just before leapfrog stops itself; a SIGCONT sent in between
 * would be lost and leave it stopped for good.
 */
export async function stopped(pid: number): Promise<void> {
  await eventually(`pid ${pid} to stop`, () => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T') ? true : undefined;
  });
}

/** `leapfrog run` on `cloud`, killed with SIGKILL where LEAPFROG_PAUSE_AT (`pauseAt`) stopped it: a crash at that exact point. */
export async function runKilledAt(cloud: Cloud, pauseAt: string, args: readonly string[] = cloud.args()): Promise<void> {
  const child = execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'run', ...args], { env: { LEAPFROG_PAUSE_AT: pauseAt }, reject: false, stdin: 'ignore', forceKillAfterDelay: false });
  let seen = '';
  child.stderr!.on('data', (d: Buffer) => (seen += d.toString()));
  await eventually('the pause', () => (seen.includes('leapfrog: paused at') ? true : undefined));
  child.kill('SIGKILL');
  await child;
}

/** Wait until no process of group `pid` is left. */
export async function groupGone(pid: number): Promise<void> {
  await eventually(`process group ${pid} to end`, () => {
    try {
      process.kill(-pid, 0);
      return undefined;
    } catch {
      return true;
    }
  }, 10_000);
}

/** Everything a clean run's end state is judged by: per database, its schema, and per table its row count and checksum. */
export async function endState(cloud: Cloud): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  if (cloud.kind === 'sqlite') {
    const dir = path.join(cloud.dir, 'db');
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.sqlite3')).sort()) {
      const db = new Database(path.join(dir, f), { readonly: true });
      const tables = db.prepare("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string; sql: string | null }[];
      const state: Record<string, unknown> = { schema: createHash('sha256').update(JSON.stringify(tables)).digest('hex') };
      for (const { name } of tables.filter((t) => t.sql?.startsWith('CREATE TABLE'))) {
        const rows = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).raw().all();
        state[name] = { rows: rows.length, sha256: createHash('sha256').update(JSON.stringify(rows)).digest('hex') };
      }
      db.close();
      out[f] = state;
    }
    return out;
  }
  for (const name of CLOUD_DATABASES) {
    const present = await cloud.query<{ n: number }>('compute', `SELECT COUNT(*) n FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${cloud.names[name]}'`);
    if (Number(present[0]!.n) === 0) continue;
    const state: Record<string, unknown> = {};
    const tables = await cloud.query<{ t: string }>(name, 'SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1');
    for (const { t } of tables) {
      const [ddl] = await cloud.query<Record<string, string>>(name, `SHOW CREATE TABLE \`${t}\``);
      const [count] = await cloud.query<{ n: number }>(name, `SELECT COUNT(*) n FROM \`${t}\``);
      const [sum] = await cloud.query<{ Checksum: number }>(name, `CHECKSUM TABLE \`${t}\``);
      state[t] = { ddl: ddl!['Create Table']!.replace(/ AUTO_INCREMENT=\d+/, ''), rows: Number(count!.n), checksum: String(sum!.Checksum) };
    }
    out[name] = state;
  }
  return out;
}

/**
 * From a refusal after a crash or a failed step: the step it names and the
 * rollback point to take, the newest checkpoint of the step's project among
 * those it lists ("4 (compute@liberty, run 1)"), i.e. the state just before
 * that step's hop; undefined when the refusal names no step or no rollback.
 */
export function namedRollback(stderr: string): { step: string; to: string } | undefined {
  const step = /(?:a run died inside (\S+)|(\S+) failed) and left/.exec(stderr)?.slice(1).find(Boolean);
  // The point leapfrog names (the restore point from before the step's hop), else the newest of the step's project in the list.
  const named = /restore point from before the step's hop: leapfrog rollback --to (\d+|start) /.exec(stderr)?.[1];
  if (step && named) return { step, to: named };
  const list = /leapfrog rollback --to ID(?: --\S+ \S+)*, with ID one of (.+?); then run again/.exec(stderr)?.[1];
  if (!step || !list) return undefined;
  const project = step.split('/')[1]!;
  const own = list.split(/, (?![^(]*\))/).flatMap((p) => {
    const m = /^(\d+) \((\w+)@/.exec(p);
    return m && m[2] === project ? [Number(m[1])] : [];
  });
  return { step, to: own.length > 0 ? String(Math.max(...own)) : 'start' };
}
