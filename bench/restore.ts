/**
 * bench/restore: leapfrog's parallel restore against `mariadb < dump.sql`,
 * each into a fresh scratch server of the same kind (leapfrog's own
 * throwaway settings), in the same run, alternating.
 *
 *   npm run bench:restore   (or: node dist/bench/restore.js [--size 1GB] [--rounds 2] [--jobs 4])
 *
 * The dump is the fake cloud's fixture (fixtures/dump.ts) at the given size:
 * four large compute tables (instance_system_metadata, instances,
 * instance_extra, block_device_mapping) and the small ones. It is written
 * under the OS temp dir and removed afterwards. Each leapfrog trial runs in a
 * child process so its peak RSS is its own.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { instancesForSize, parseSize, writeDump } from '../fixtures/dump.js';
import { restoreDumps } from '../src/rehearse/restore.js';
import { withScratchServer } from '../src/rehearse/scratch-server.js';
import { tableRowCounts } from '../src/database/raw.js';
import { withTarget } from '../src/database/session.js';

const argv = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
};

// Child mode: one leapfrog restore into the server on --port, then its own numbers on stdout.
if (argv[0] === '--child') {
  const [, file, port, jobs] = argv;
  const r = await restoreDumps({ files: [file!], target: { kind: 'mysql', host: '127.0.0.1', port: Number(port), user: 'root', password: undefined, socket: undefined }, jobs: Number(jobs) });
  process.stdout.write(JSON.stringify({ ms: r.durationMs, maxRssMb: process.resourceUsage().maxRSS / 1024 }) + '\n');
  process.exit(0);
}

const size = parseSize(opt('size', '1GB'))!;
const rounds = Number(opt('rounds', '2'));
const jobs = Number(opt('jobs', '4'));
const self = fileURLToPath(import.meta.url);
const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-restore-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (n: number) => n / 1024 / 1024;

try {
  const dump = path.join(work, 'cloud.sql');
  const options = { instances: 0, nullUuids: 0, seed: 1, prefix: '' };
  options.instances = instancesForSize(size, options);
  let t = performance.now();
  await writeDump(dump, options);
  const bytes = statSync(dump).size;
  process.stderr.write(`dump: ${mb(bytes).toFixed(0)} MB, ${options.instances} instances, written in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);

  const counts = async (target: Parameters<typeof withTarget>[0]) =>
    withTarget(target, async (s) => ({ compute: await tableRowCounts(s, 'compute'), identity: await tableRowCounts(s, 'identity'), image: await tableRowCounts(s, 'image') }));
  const client: number[] = [];
  const ours: number[] = [];
  const rss: number[] = [];
  let expected: string | undefined;
  for (let round = 1; round <= rounds; round++) {
    await withScratchServer({ parentDir: work }, async (s) => {
      t = performance.now();
      await execa('sh', ['-c', `mariadb --no-defaults -uroot -h127.0.0.1 -P${s.port} --protocol=TCP < "$1"`, 'sh', dump]);
      client.push(performance.now() - t);
      expected = JSON.stringify(await counts(s.target));
    });
    process.stderr.write(`round ${round}: mariadb < dump.sql  ${(client.at(-1)! / 1000).toFixed(1)} s\n`);
    await withScratchServer({ parentDir: work }, async (s) => {
      t = performance.now();
      const r = await execa(process.execPath, [self, '--child', dump, String(s.port), String(jobs)]);
      ours.push(performance.now() - t);
      rss.push(JSON.parse(String(r.stdout)).maxRssMb);
      const got = JSON.stringify(await counts(s.target));
      if (got !== expected) throw new Error(`leapfrog's restore has different row counts:\n${got}\nmariadb client:\n${expected}`);
    });
    process.stderr.write(`round ${round}: leapfrog restore    ${(ours.at(-1)! / 1000).toFixed(1)} s (peak RSS ${rss.at(-1)!.toFixed(0)} MB)\n`);
  }
  const c = median(client);
  const o = median(ours);
  process.stdout.write(
    [
      `restore: ${mb(bytes).toFixed(0)} MB dump, ${rounds} rounds, medians, ${os.cpus().length} CPUs`,
      `  mariadb < dump.sql:        ${(c / 1000).toFixed(1)} s  (${(mb(bytes) / (c / 1000)).toFixed(1)} MB/s)`,
      `  leapfrog restore, jobs ${jobs}:  ${(o / 1000).toFixed(1)} s  (${(mb(bytes) / (o / 1000)).toFixed(1)} MB/s), peak RSS ${Math.max(...rss).toFixed(0)} MB`,
      `  speed-up: ${(c / o).toFixed(2)}x  (goal 3x)`,
      '  row counts per table: identical',
    ].join('\n') + '\n',
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
