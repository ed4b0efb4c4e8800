/**
 * bench/hop-snapshots: what the default restore points cost per hop on
 * MySQL/MariaDB, `--snapshot hop-syncs` (before each hop, the databases its
 * syncs declare), against the previous default, `first-hop` (every database
 * once, before the first step), measured in the same run on the same server.
 *
 *   npm run bench:hop-snapshots   (or: node dist/bench/hop-snapshots.js [--db mysql://root@127.0.0.1:3306] [--instances 2000] [--rounds 1])
 *
 * (Over 5000 instances outgrow the chain's data steps, batch 50 x max-runs 100, and the run stops.)
 * Each round and mode creates the fake cloud at juno under a random prefix
 * (fixtures/cloud.ts), runs the whole chain through the real CLI with that
 * mode, and reads the snapshots' bytes and times from its ledger; a
 * snapshot's time is its wall time (its databases are dumped in parallel).
 * The databases are dropped at the end, also when interrupted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { parse, stringify } from 'yaml';
import { createCloud } from '../fixtures/cloud.js';
import { benchOptions } from './common.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const flags = benchOptions({ db: 'mysql://root@127.0.0.1:3306', instances: '2000', rounds: '1' });
const DB_URL = flags.db;
const ROUNDS = Number(flags.rounds);
const u = new URL(DB_URL);
const server = { host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: u.password ? decodeURIComponent(u.password) : process.env.LEAPFROG_DB_PASSWORD };
const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-hop-snapshots-'));
const created: string[] = [];
const MODES = ['first-hop', 'hop-syncs'] as const;
type Mode = (typeof MODES)[number];

async function drop(): Promise<void> {
  const c = await mysql.createConnection(server);
  try {
    for (const n of created) await c.query(`DROP DATABASE IF EXISTS \`${n}\``);
  } finally {
    await c.end();
  }
}
process.once('SIGINT', () => void drop().finally(() => process.exit(130)));

interface Snap {
  before: string;
  ms: number;
  bytes: number;
  databases: number;
}

/** One whole run of the chain on a fresh cloud with this mode: its snapshots, grouped by the step they precede. */
async function runOnce(mode: Mode): Promise<{ snaps: Snap[]; runMs: number }> {
  const prefix = `lfbench_${randomBytes(4).toString('hex')}_`;
  const names = { compute: `${prefix}compute`, compute_api: `${prefix}compute_api`, identity: `${prefix}identity`, image: `${prefix}image` };
  created.push(...Object.values(names));
  await createCloud(DB_URL, { instances: Number(flags.instances), names: { compute: names.compute, identity: names.identity, image: names.image } });
  const doc = parse(readFileSync(path.join(root, 'chains', 'fakecloud-juno-newton.yaml'), 'utf8')) as { envs: string; projects: Record<string, { databases: Record<string, string> }> };
  for (const p of Object.values(doc.projects)) for (const [k, v] of Object.entries(p.databases)) p.databases[k] = names[v as keyof typeof names] ?? v;
  doc.envs = path.join(root, 'envs');
  const dir = mkdtempSync(path.join(work, `${mode}-`));
  const chain = path.join(dir, 'chain.yaml');
  writeFileSync(chain, stringify(doc));
  const state = path.join(dir, 'state');
  // Envs unpacked before the clock starts: the first mode would pay for both otherwise.
  const cache = path.join(work, 'cache');
  await execa(process.execPath, [path.join(root, 'bin', 'leapfrog.js'), 'envs', 'provision', '--chain', chain, '--cache-dir', cache, '--state-dir', state]);
  const t = Date.now();
  const r = await execa(process.execPath, [path.join(root, 'bin', 'leapfrog.js'), 'run', '--chain', chain, '--db', DB_URL, '--state-dir', state, '--cache-dir', cache, '--snapshot', mode], { reject: false });
  const runMs = Date.now() - t;
  if (r.exitCode !== 0) throw new Error(`leapfrog run --snapshot ${mode} failed (${r.exitCode}): ${r.stderr}`);
  const ledger = new Database(path.join(state, 'ledger.sqlite3'), { readonly: true });
  try {
    // One snapshot = the rows taken together before one step; its time is the slowest database (they run in parallel).
    const rows = ledger.prepare('SELECT before_step b, MAX(duration_ms) ms, SUM(COALESCE(bytes, 0)) bytes, COUNT(*) n FROM snapshots GROUP BY before_step ORDER BY MIN(id)').all() as { b: string; ms: number; bytes: number; n: number }[];
    return { snaps: rows.map((x) => ({ before: x.b, ms: x.ms, bytes: x.bytes, databases: x.n })), runMs };
  } finally {
    ledger.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

try {
  const results: Record<Mode, { snaps: Snap[]; runMs: number }[]> = { 'first-hop': [], 'hop-syncs': [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order so neither mode always gets the warmer server.
    for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) results[mode].push(await runOnce(mode));
  }
  const total = (m: Mode) => median(results[m].map((r) => r.snaps.reduce((n, s) => n + s.ms, 0)));
  const bytes = (m: Mode) => median(results[m].map((r) => r.snaps.reduce((n, s) => n + s.bytes, 0)));
  console.log(`fake cloud, ${flags.instances} instances, ${ROUNDS} round(s), medians; per snapshot (the step it precedes: databases, bytes on disk, time):`);
  for (const m of MODES) {
    const last = results[m].at(-1)!;
    console.log(`  --snapshot ${m}: ${last.snaps.length} snapshots, ${kib(bytes(m))}, ${total(m).toFixed(0)} ms of snapshots in a ${(median(results[m].map((r) => r.runMs)) / 1000).toFixed(1)} s run`);
    for (const s of last.snaps) console.log(`    ${s.before.padEnd(22)} ${String(s.databases).padStart(2)} db  ${kib(s.bytes).padStart(10)}  ${s.ms.toFixed(0).padStart(6)} ms`);
  }
  const hops = results['hop-syncs'].at(-1)!.snaps.length;
  console.log(`  per hop with hop-syncs: ${(total('hop-syncs') / hops).toFixed(0)} ms, ${kib(bytes('hop-syncs') / hops)}`);
  console.log(`  ratio hop-syncs/first-hop: time ${(total('hop-syncs') / total('first-hop')).toFixed(2)}x, bytes ${(bytes('hop-syncs') / bytes('first-hop')).toFixed(2)}x, run ${(median(results['hop-syncs'].map((r) => r.runMs)) / median(results['first-hop'].map((r) => r.runMs))).toFixed(2)}x`);
} finally {
  await drop();
  rmSync(work, { recursive: true, force: true });
}
