/**
 * bench/restore: leapfrog's parallel restore against `mariadb < dump.sql`
 * and against myloader (Debian's mydumper package) at the same number of
 * threads, each into a fresh scratch server of the same kind (leapfrog's own
 * throwaway settings), in the same run, the order rotated every round.
 *
 *   npm run bench:restore   (or: node dist/bench/restore.js [--size 1GB] [--rounds 2] [--jobs 4] [--rows 100000])
 *
 * The dump is the fake cloud's fixture (fixtures/dump.ts) at the given size:
 * four large compute tables (instance_system_metadata, instances,
 * instance_extra, block_device_mapping) and the small ones. myloader reads
 * mydumper's directory format, so the bench loads the dump into a scratch
 * server once and runs mydumper against it (`--rows` per chunk, so
 * myloader can load a big table over several threads, as a DBA would run
 * it). Dump and directory are kept under the OS temp dir
 * (leapfrog-bench-restore-<instances>/) and reused by the next run of the
 * same size. All three results must have the same row count and CHECKSUM
 * TABLE in every table, printed at the end. Each leapfrog trial runs in a
 * child process so its peak RSS is its own.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { instancesForSize, parseSize, writeDump } from '../fixtures/dump.js';
import { restoreDumps } from '../src/rehearse/restore.js';
import { withScratchServer, type ScratchServer } from '../src/rehearse/scratch-server.js';

const argv = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
};
const root = (port: number) => ['-h', '127.0.0.1', '-P', String(port), '-u', 'root'];

// Child mode: one leapfrog restore into the server on --port, then its own numbers on stdout.
if (argv[0] === '--child') {
  const [, file, port, jobs] = argv;
  const r = await restoreDumps({ files: [file!], target: { kind: 'mysql', host: '127.0.0.1', port: Number(port), user: 'root', password: undefined, socket: undefined }, jobs: Number(jobs) });
  const u = process.resourceUsage();
  process.stdout.write(JSON.stringify({ ms: r.durationMs, maxRssMb: u.maxRSS / 1024, cpuS: (u.userCPUTime + u.systemCPUTime) / 1e6 }) + '\n');
  process.exit(0);
}

const size = parseSize(opt('size', '1GB'))!;
const rounds = Number(opt('rounds', '2'));
const jobs = Number(opt('jobs', '4'));
const chunkRows = Number(opt('rows', '100000'));
const self = fileURLToPath(import.meta.url);
const DATABASES = ['compute', 'identity', 'image'];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (n: number) => n / 1024 / 1024;
const say = (s: string) => process.stderr.write(`${s}\n`);
const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');

/** CPU seconds (user + system) the server process has used so far: /proc/PID/stat's utime and stime, in USER_HZ (100 on Linux). */
function serverCpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Every table of the fixture's databases: its row count and CHECKSUM TABLE, through the mariadb client. */
async function tableFacts(port: number): Promise<string[]> {
  const client = (sql: string) => execa('mariadb', ['--no-defaults', ...root(port), '--protocol=TCP', '-N', '-B', '-e', sql]);
  const list = (await client(`SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables WHERE table_schema IN (${DATABASES.map((d) => `'${d}'`).join(',')}) AND table_type = 'BASE TABLE' ORDER BY 1`)).stdout.split('\n').filter(Boolean);
  const q = (t: string) => t.split('.').map((p) => `\`${p}\``).join('.');
  const counts = (await client(list.map((t) => `SELECT COUNT(*) FROM ${q(t)};`).join(' '))).stdout.split('\n');
  const sums = (await client(`CHECKSUM TABLE ${list.map(q).join(', ')}`)).stdout.split('\n').map((l) => l.split('\t')[1]);
  return list.map((t, i) => `${t}\t${counts[i]}\t${sums[i]}`);
}

/** The dump (fixture) and mydumper's directory of the same data, made once per size and kept for the next run. */
async function prepare(): Promise<{ dump: string; dir: string; instances: number }> {
  const options = { instances: 0, nullUuids: 0, seed: 1, prefix: '' };
  options.instances = instancesForSize(size, options);
  const cache = path.join(os.tmpdir(), `leapfrog-bench-restore-${options.instances}`);
  const dump = path.join(cache, 'cloud.sql');
  const dir = path.join(cache, 'mydumper');
  const done = path.join(cache, 'complete');
  if (existsSync(done)) {
    say(`dump and mydumper directory: reused from ${cache}`);
    return { dump, dir, instances: options.instances };
  }
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  let t = performance.now();
  await writeDump(dump, options);
  say(`dump: ${mb(statSync(dump).size).toFixed(0)} MB, ${options.instances} instances, written in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  await withScratchServer({ parentDir: cache }, async (s) => {
    await restoreDumps({ files: [dump], target: s.target, jobs });
    // --rows: chunks a big table so myloader loads it over several threads; --regex: the fixture's databases only.
    await execa('mydumper', [...root(s.port), '-t', String(jobs), '-r', String(chunkRows), '-x', `^(${DATABASES.join('|')})\\.`, '-o', dir, '-v', '1']);
  });
  say(`mydumper directory: ${readdirSync(dir).length} files, made in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  writeFileSync(done, '');
  return { dump, dir, instances: options.instances };
}

const { dump, dir } = await prepare();
if (rounds === 0) process.exit(0); // --rounds 0: only make (or check) the cached dump and directory
const bytes = statSync(dump).size;
const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-restore-run-'));

type Trial = 'client' | 'leapfrog' | 'myloader';
const TRIALS: Trial[] = ['client', 'leapfrog', 'myloader'];
const times: Record<Trial, number[]> = { client: [], leapfrog: [], myloader: [] };
const serverCpuS: Record<Trial, number[]> = { client: [], leapfrog: [], myloader: [] };
const rss: number[] = [];
const ourCpu: number[] = [];
const facts: Partial<Record<Trial, string[]>> = {};

async function trial(kind: Trial, s: ScratchServer): Promise<string> {
  const c0 = serverCpu(s.pid);
  const t = performance.now();
  let extra = '';
  if (kind === 'client') {
    await execa('sh', ['-c', `mariadb --no-defaults -uroot -h127.0.0.1 -P${s.port} --protocol=TCP < "$1"`, 'sh', dump]);
  } else if (kind === 'myloader') {
    await execa('myloader', [...root(s.port), '-t', String(jobs), '-d', dir, '-v', '1']);
  } else {
    const r = JSON.parse(String((await execa(process.execPath, [self, '--child', dump, String(s.port), String(jobs)])).stdout)) as { maxRssMb: number; cpuS: number };
    rss.push(r.maxRssMb);
    ourCpu.push(r.cpuS);
    extra = `, peak RSS ${r.maxRssMb.toFixed(0)} MB, its own CPU ${r.cpuS.toFixed(1)} s`;
  }
  times[kind].push(performance.now() - t);
  serverCpuS[kind].push(serverCpu(s.pid) - c0);
  return `${(times[kind].at(-1)! / 1000).toFixed(1)} s (server CPU ${serverCpuS[kind].at(-1)!.toFixed(1)} s${extra})`;
}

try {
  say(`load average at start: ${load()}`);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < TRIALS.length; k++) {
      const kind = TRIALS[(round + k) % TRIALS.length]!;
      // The server `rehearse` would start for this dump (its redo log sized from the dump), the same for all three.
      await withScratchServer({ parentDir: work, dataBytes: bytes }, async (s) => {
        const took = await trial(kind, s);
        const got = await tableFacts(s.port);
        say(`round ${round + 1}: ${kind.padEnd(8)} ${took}; load ${load()}`);
        for (const [other, seen] of Object.entries(facts)) {
          if (JSON.stringify(seen) !== JSON.stringify(got)) throw new Error(`${kind} and ${other} differ in row counts or CHECKSUM TABLE:\n${got.join('\n')}\n--- ${other}:\n${seen.join('\n')}`);
        }
        // Printed as soon as there is a first result, so a run cut short still shows what was compared.
        if (Object.keys(facts).length === 0) say(`rows and CHECKSUM TABLE per table (all trials must match):\n${got.map((l) => `  ${l.replace(/\t/g, '  ')}`).join('\n')}`);
        facts[kind] = got;
      });
    }
  }
  const c = median(times.client);
  const o = median(times.leapfrog);
  const m = median(times.myloader);
  const cpu = (k: Trial) => median(serverCpuS[k]).toFixed(1);
  process.stdout.write(
    [
      `restore: ${mb(bytes).toFixed(0)} MB dump, ${rounds} round(s), medians, ${os.cpus().length} CPUs, ${jobs} threads for leapfrog and myloader`,
      `  mariadb < dump.sql:             ${(c / 1000).toFixed(1)} s  (${(mb(bytes) / (c / 1000)).toFixed(1)} MB/s; server CPU ${cpu('client')} s)`,
      `  myloader -t ${jobs} (mydumper -r ${chunkRows}): ${(m / 1000).toFixed(1)} s  (server CPU ${cpu('myloader')} s)`,
      `  leapfrog restore, jobs ${jobs}:       ${(o / 1000).toFixed(1)} s  (${(mb(bytes) / (o / 1000)).toFixed(1)} MB/s; server CPU ${cpu('leapfrog')} s, leapfrog's own CPU ${median(ourCpu).toFixed(1)} s), peak RSS ${Math.max(...rss).toFixed(0)} MB (goal < 500 MB)`,
      `  leapfrog vs mariadb <: ${(c / o).toFixed(2)}x  (goal >= 3x)`,
      `  leapfrog vs myloader:  ${(m / o).toFixed(2)}x  (goal >= 1.0x)`,
      `  every table identical in all three (rows, CHECKSUM TABLE):`,
      ...facts.client!.map((l) => `    ${l.replace(/\t/g, '  ')}`),
    ].join('\n') + '\n',
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
