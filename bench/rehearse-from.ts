/**
 * bench/rehearse-from: leapfrog's live copy (`rehearse --from mysql://…`,
 * server to server from one snapshot) against what a DBA would do instead,
 * `mydumper` to a directory then `myloader` from it, at the same number of
 * threads, each into a fresh scratch server of the same kind, in the same
 * run, alternating.
 *
 *   npm run bench:rehearse-from   (or: node dist/bench/rehearse-from.js [--size 1GB] [--rounds 1] [--jobs 4] [--rows N])
 *
 * The live server is a scratch server loaded with the fake cloud's dump
 * (fixtures/dump.ts) at the given size. mydumper writes one file per table
 * by default: with --rows N its chunks of one table are loaded side by side
 * by myloader, which on MariaDB 10.11 failed at 1 GB with "Lock wait timeout
 * exceeded" (the first insert into an empty InnoDB table locks it for its
 * whole transaction, MDEV-24621), so it is off unless asked for. Its
 * directory sits on the same disk as the servers. Every copy is compared with the live server by CHECKSUM TABLE.
 * Each leapfrog trial runs in a child process so its peak RSS is its own.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { instancesForSize, parseSize, writeDump } from '../fixtures/dump.js';
import { copyLive } from '../src/rehearse/live-copy.js';
import { restoreDumps } from '../src/rehearse/restore.js';
import { withScratchServer } from '../src/rehearse/scratch-server.js';
import { benchOptions } from './common.js';

const DATABASES = ['compute', 'identity', 'image'];
const local = (port: number) => ({ kind: 'mysql' as const, host: '127.0.0.1', port, user: 'root', password: undefined, socket: undefined });

// Child mode: one live copy from --from-port into --to-port, then its own numbers on stdout.
if (process.argv[2] === '--child') {
  const [, , , from, to, jobs] = process.argv;
  const r = await copyLive({ source: local(Number(from)), target: local(Number(to)), databases: DATABASES, jobs: Number(jobs) });
  process.stdout.write(JSON.stringify({ ms: r.durationMs, rows: r.rows, bytes: r.bytes, lockMs: r.lockMs, maxRssMb: process.resourceUsage().maxRSS / 1024 }) + '\n');
  process.exit(0);
}

const opts = benchOptions({ size: '1GB', rounds: '1', jobs: '4', rows: '0' });
const size = parseSize(opts.size)!;
const rounds = Number(opts.rounds);
const jobs = Number(opts.jobs);
const self = fileURLToPath(import.meta.url);
const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-from-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (n: number) => n / 1024 / 1024;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function checksums(port: number): Promise<{ sums: Record<string, string>; rows: number }> {
  const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
  try {
    const sums: Record<string, string> = {};
    let rows = 0;
    const [tables] = await c.query(`SELECT TABLE_SCHEMA d, TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?) AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2`, [DATABASES]);
    for (const { d, t } of tables as { d: string; t: string }[]) {
      const [[row]] = (await c.query(`CHECKSUM TABLE \`${d}\`.\`${t}\``)) as unknown as [{ Checksum: string | number }[]];
      const [[n]] = (await c.query(`SELECT COUNT(*) n FROM \`${d}\`.\`${t}\``)) as unknown as [{ n: number }[]];
      sums[`${d}.${t}`] = String(row!.Checksum);
      rows += Number(n!.n);
    }
    return { sums, rows };
  } finally {
    await c.end();
  }
}

function same(a: Record<string, string>, b: Record<string, string>, who: string): void {
  const diff = Object.keys({ ...a, ...b }).filter((k) => a[k] !== b[k]);
  if (diff.length > 0) throw new Error(`${who}: CHECKSUM TABLE differs from the live server for ${diff.join(', ')}`);
}

try {
  const dump = path.join(work, 'cloud.sql');
  const options = { instances: 0, nullUuids: 0, seed: 1, prefix: '' };
  options.instances = instancesForSize(size, options);
  let t = performance.now();
  await writeDump(dump, options);
  const bytes = statSync(dump).size;
  process.stderr.write(`dump: ${mb(bytes).toFixed(0)} MB, ${options.instances} instances, written in ${s(performance.now() - t)}\n`);

  await withScratchServer({ parentDir: work }, async (live) => {
    t = performance.now();
    await restoreDumps({ files: [dump], target: live.target, jobs });
    rmSync(dump);
    const source = await checksums(live.port);
    const [[size]] = (await (async () => {
      const c = await mysql.createConnection({ host: '127.0.0.1', port: live.port, user: 'root' });
      try {
        return await c.query(`SELECT SUM(DATA_LENGTH + INDEX_LENGTH) b FROM information_schema.TABLES WHERE TABLE_SCHEMA IN (?)`, [DATABASES]);
      } finally {
        await c.end();
      }
    })()) as unknown as [{ b: number }[]];
    process.stderr.write(`live server loaded in ${s(performance.now() - t)}: ${source.rows} rows, ${mb(Number(size!.b)).toFixed(0)} MB of InnoDB data and indexes\n`);

    const theirs: number[] = [];
    const ours: number[] = [];
    const rss: number[] = [];
    const locks: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      await withScratchServer({ parentDir: work }, async (dest) => {
        const dir = path.join(work, 'mydumper');
        const conn = (port: number) => ['--host', '127.0.0.1', '--port', String(port), '--user', 'root', '--threads', String(jobs)];
        t = performance.now();
        await execa('mydumper', [...conn(live.port), '--regex', `^(${DATABASES.join('|')})\\.`, ...(opts.rows === '0' ? [] : ['--rows', opts.rows]), '--triggers', '--routines', '--outputdir', dir, '--verbose', '1']);
        const dumped = performance.now() - t;
        await execa('myloader', [...conn(dest.port), '--directory', dir, '--verbose', '1']);
        theirs.push(performance.now() - t);
        const du = await execa('du', ['-sm', dir]);
        rmSync(dir, { recursive: true, force: true });
        same(source.sums, (await checksums(dest.port)).sums, 'mydumper | myloader');
        process.stderr.write(`round ${round}: mydumper | myloader  ${s(theirs.at(-1)!)} (mydumper ${s(dumped)}, ${String(du.stdout).split('\t')[0]} MB in its directory)\n`);
      });
      await withScratchServer({ parentDir: work }, async (dest) => {
        t = performance.now();
        const r = await execa(process.execPath, [self, '--child', String(live.port), String(dest.port), String(jobs)]);
        ours.push(performance.now() - t);
        const got = JSON.parse(String(r.stdout));
        rss.push(got.maxRssMb);
        locks.push(got.lockMs);
        same(source.sums, (await checksums(dest.port)).sums, 'leapfrog live copy');
        process.stderr.write(`round ${round}: leapfrog live copy   ${s(ours.at(-1)!)} (peak RSS ${got.maxRssMb.toFixed(0)} MB, read lock held ${got.lockMs.toFixed(0)} ms)\n`);
      });
    }
    const a = median(theirs);
    const b = median(ours);
    process.stdout.write(
      [
        `rehearse --from: fake cloud of a ${mb(bytes).toFixed(0)} MB dump (${source.rows} rows), ${rounds} round(s), medians, ${jobs} threads each, ${os.cpus().length} CPUs`,
        `  mydumper${opts.rows === '0' ? '' : ` --rows ${opts.rows}`} | myloader:  ${s(a)}`,
        `  leapfrog live copy:                ${s(b)}, peak RSS ${Math.max(...rss).toFixed(0)} MB, read lock held ${Math.max(...locks).toFixed(0)} ms`,
        `  speed-up: ${(a / b).toFixed(2)}x  (goal 1.5x)`,
        '  CHECKSUM TABLE of every table: identical to the live server for both',
      ].join('\n') + '\n',
    );
  });
} finally {
  rmSync(work, { recursive: true, force: true });
}
