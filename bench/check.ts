/**
 * bench/check: check-migrations against a large MariaDB target — 50
 * databases, 5,000 tables — through the real CLI. Goal: the report in under
 * 2 s, Node start-up included.
 *
 *   npm run bench:check   (or: node dist/bench/check.js [--databases 50] [--tables 100] [--rounds 5] [--db mysql://root@127.0.0.1:3306])
 *
 * The databases get a random prefix (the server may be shared) and are
 * dropped at the end, whatever happens. Each database is one project of the
 * chain, with a migrate_version row, a blocker query and `--tables` tables;
 * tables are created over 4 connections at once, as fast as the server's DDL
 * allows.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { stringify } from 'yaml';
import { benchOptions, noopEnv } from './common.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const flags = benchOptions({ databases: '50', tables: '100', rounds: '5', db: 'mysql://root@127.0.0.1:3306' });
const DATABASES = Number(flags.databases);
const TABLES = Number(flags.tables);
const ROUNDS = Number(flags.rounds);
const DB_URL = flags.db;
const u = new URL(DB_URL);
const server = { host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: u.password ? decodeURIComponent(u.password) : undefined };

const prefix = `lfbench_${randomBytes(4).toString('hex')}_`;
const names = Array.from({ length: DATABASES }, (_, i) => `${prefix}db${String(i).padStart(2, '0')}`);
const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-check-'));

async function createTarget(): Promise<void> {
  const conns = await Promise.all(Array.from({ length: 4 }, () => mysql.createConnection({ ...server, multipleStatements: true })));
  try {
    let next = 0;
    await Promise.all(
      conns.map(async (c) => {
        for (let i = next++; i < names.length; i = next++) {
          const n = names[i]!;
          const ddl = [`CREATE DATABASE \`${n}\` CHARACTER SET utf8mb4`, `USE \`${n}\``,
            'CREATE TABLE migrate_version (repository_id VARCHAR(250) NOT NULL PRIMARY KEY, repository_path TEXT, version INTEGER) ENGINE=InnoDB',
            `INSERT INTO migrate_version VALUES ('repo', 'repo', 1)`];
          for (let t = 1; t < TABLES; t++) ddl.push(`CREATE TABLE t${t} (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(255), deleted INTEGER NOT NULL DEFAULT 0, KEY name_idx (name)) ENGINE=InnoDB`);
          await c.query(ddl.join(';\n'));
        }
      }),
    );
  } finally {
    await Promise.all(conns.map((c) => c.end()));
  }
}

async function dropTarget(): Promise<void> {
  const c = await mysql.createConnection(server);
  try {
    for (const n of names) await c.query(`DROP DATABASE IF EXISTS \`${n}\``);
  } finally {
    await c.end();
  }
}

async function writeChain(): Promise<string> {
  const envDir = await noopEnv(work);
  const projects: Record<string, unknown> = {};
  names.forEach((n, i) => {
    projects[`p${i}`] = {
      databases: { main: n },
      version: { main: 'sqlalchemy-migrate' },
      start: { main: 1 },
      blockers: [{ name: 'soft-deleted rows', query: 'SELECT COUNT(*) FROM t1 WHERE deleted = 1', message: 'purge them first' }],
    };
  });
  const chain = path.join(work, 'chain.yaml');
  writeFileSync(
    chain,
    stringify({
      chain: 'bench-check',
      envs: envDir,
      projects,
      releases: [{ release: 'r2', env: 'noop', steps: names.map((_, i) => ({ project: `p${i}`, sync: ['noop'], expect: { main: 2 } })) }],
    }),
  );
  return chain;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  let t = performance.now();
  await createTarget();
  console.log(`created ${DATABASES} databases, ${DATABASES * TABLES} tables (prefix ${prefix}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const chain = await writeChain();
  const args = [path.join(root, 'bin', 'leapfrog.js'), 'check-migrations', '--chain', chain, '--db', DB_URL, '--state-dir', path.join(work, 'state'), '--format', 'json'];
  const times: number[] = [];
  let last: { result: string; checks: { check: string; result: string }[]; plan: { steps: unknown[] } } | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    t = performance.now();
    const out = await execa(process.execPath, args, { reject: false });
    times.push(performance.now() - t);
    if (out.exitCode === 255 || !out.stdout.startsWith('{')) throw new Error(`check-migrations failed (exit ${out.exitCode}): ${out.stderr}`);
    last = JSON.parse(out.stdout) as typeof last;
  }
  const tables = (last!.checks.find((c) => c.check === 'Storage engines') as { details?: string } | undefined)?.details ?? '';
  console.log(`check-migrations: ${DATABASES} databases, ${DATABASES * TABLES} tables, ${ROUNDS} rounds (wall clock, Node start-up included)`);
  console.log(`  median ${median(times).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms (goal < 2000 ms)`);
  console.log(`  result ${last!.result}; ${last!.checks.length} checks; ${last!.plan.steps.length} planned steps; ${tables}`);
} finally {
  await dropTarget();
  rmSync(work, { recursive: true, force: true });
}
