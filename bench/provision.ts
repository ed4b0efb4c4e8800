/**
 * bench/provision: provisioning a large env from a local HTTP server.
 *
 *   npm run bench:provision   (or: node dist/bench/provision.js [--env both|synthetic|nova] [--mb 200] [--files 20000] [--rounds 3])
 *
 * Two envs (bench/env-shapes.ts), each as the same tar in .tar.gz and
 * .tar.zst, served by the fixtures' HTTP server:
 *
 * - synthetic: 200 MiB of 20 000 equal text files (a venv's shape);
 * - nova: a look-alike of a real nova 26 root filesystem (456 MiB, 23 401
 *   files of log-normal sizes, directories, symlinks, hard links).
 *
 * Cold: leapfrog's provisionEnv into an empty cache (download hashed while
 * spooled, the header pass, the writer with mtimes and each file hashed as
 * written, the manifest for `envs verify`) of each tarball, against what an
 * operator would type, every one in the same round, in an order that
 * rotates from round to round:
 *
 *   get-hash-untar:  curl -o f URL && sha256sum f && tar -xzf f    (the synthetic env's goal: <= 0.8x)
 *   stream-gz:       curl URL | tee >(sha256sum) | tar -xz         (the nova env's goal: <= 1.0x)
 *   stream-zst:      curl URL | tee >(sha256sum) | tar --zstd -x   (the same on the .tar.zst)
 *
 * Each ratio is taken within a round and the median of the rounds' ratios
 * is printed. Warm: provisionEnv of an env already in the cache (what every
 * `run` pays). Generated data lives under the OS temp dir and is reused.
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import type { EnvDef } from '../src/chain/types.js';
import { provisionEnv } from '../src/envs/store.js';
import { startTarballServer } from '../fixtures/http-server.js';
import { benchOptions } from './common.js';
import { nova, synthetic, type Shape } from './env-shapes.js';

const flags = benchOptions({ env: 'both', mb: '200', files: '20000', rounds: '3' });
const ROUNDS = Number(flags.rounds);
if (!['both', 'synthetic', 'nova'].includes(flags.env)) throw new Error('--env is both, synthetic or nova');

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/**
 * CPU seconds of this process (every thread: leapfrog and the HTTP server)
 * plus its reaped children (zstd; curl, tar, gzip, sha256sum), from
 * /proc/self/stat (proc(5): utime, stime, cutime, cstime in clock ticks).
 * Other work on the machine stretches wall time far more than CPU time.
 */
function cpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  // Fields after the command name (which may hold spaces): state is [0], utime [11] … cstime [14].
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
const mb = (f: string) => `${(statSync(f).size / 1024 ** 2).toFixed(1)} MiB`;

const SHELL: Record<string, [string, string]> = {
  'get-hash-untar': ['gz', 'curl -sS -o "$1/f" "$2" && sha256sum "$1/f" >/dev/null && mkdir "$1/x" && tar -xzf "$1/f" -C "$1/x"'],
  'stream-gz': ['gz', 'set -o pipefail; mkdir "$1/x" && curl -sS "$2" | tee >(sha256sum > "$1/sum") | tar -xzf - -C "$1/x"; s=$?; wait $!; exit $s'],
  'stream-zst': ['zst', 'set -o pipefail; mkdir "$1/x" && curl -sS "$2" | tee >(sha256sum > "$1/sum") | tar --zstd -xf - -C "$1/x"; s=$?; wait $!; exit $s'],
};

async function bench(shape: Shape): Promise<void> {
  const server = await startTarballServer();
  const urls = { gz: '', zst: '' };
  const envs: Record<'gz' | 'zst', EnvDef> = {} as never;
  for (const kind of ['gz', 'zst'] as const) {
    server.serve(`env.tar.${kind}`, shape[kind]);
    urls[kind] = server.url(`env.tar.${kind}`);
    envs[kind] = { name: `bench-${shape.name}-${kind}`, file: path.join(shape.base, 'bench.yaml'), source: { kind: 'url', location: urls[kind], sha256: await sha256(shape[kind]) }, path: ['bin'], vars: {} };
  }
  const work = path.join(shape.base, 'work');
  const times: Record<string, number[]> = {};
  const warm: number[] = [];
  const cpus: Record<string, number[]> = {};
  let c0 = 0;
  const record = (name: string, ms: number) => {
    (times[name] ??= []).push(ms);
    (cpus[name] ??= []).push(cpu() - c0);
  };
  const leapfrog = (kind: 'gz' | 'zst') => async () => {
    const cache = path.join(work, `cache-${kind}`);
    c0 = cpu();
    const s = performance.now();
    const p = await provisionEnv(envs[kind], cache, {});
    record(`leapfrog .tar.${kind}`, performance.now() - s);
    if (p.cached) throw new Error('cold provision found the env cached');
    if (kind === 'zst') {
      for (let i = 0; i < 20; i++) {
        const w = performance.now();
        if (!(await provisionEnv(envs[kind], cache, {})).cached) throw new Error('warm provision did not find the env cached');
        warm.push(performance.now() - w);
      }
    }
    rmSync(cache, { recursive: true, force: true });
  };
  const shell = (name: string) => async () => {
    const [kind, script] = SHELL[name]!;
    const dir = path.join(work, name);
    mkdirSync(dir);
    c0 = cpu();
    const s = performance.now();
    const r = await execa('bash', ['-c', script, 'bash', dir, urls[kind as 'gz' | 'zst']], { reject: false });
    record(name, performance.now() - s);
    if (r.exitCode !== 0) throw new Error(`${name}: ${r.stderr}`);
    rmSync(dir, { recursive: true, force: true });
  };
  const runs = [leapfrog('gz'), shell('get-hash-untar'), leapfrog('zst'), shell('stream-gz'), shell('stream-zst')];
  const loads = [load()];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      rmSync(work, { recursive: true, force: true });
      mkdirSync(work, { recursive: true });
      // Rotate the order so no side always runs first (or right after the heaviest one).
      for (let i = 0; i < runs.length; i++) await runs[(i + round * 2) % runs.length]!();
      process.stderr.write(`${shape.name} round ${round + 1}: ${Object.entries(times).map(([k, v]) => `${k} ${v.at(-1)!.toFixed(0)} ms (CPU ${cpus[k]!.at(-1)!.toFixed(1)} s)`).join(', ')} (load ${load()})\n`);
    }
  } finally {
    await server.close();
    rmSync(work, { recursive: true, force: true });
  }
  loads.push(load());
  const ratio = (a: string, b: string) => median(times[a]!.map((t, i) => t / times[b]![i]!)).toFixed(2);
  console.log(`provision ${shape.name}: ${mb(shape.gz)} tar.gz, ${mb(shape.zst)} tar.zst, ${shape.files} files; ${ROUNDS} rounds; load average ${loads.join(' -> ')}`);
  for (const [k, v] of Object.entries(times)) console.log(`  ${k.padEnd(20)} ${median(v).toFixed(0).padStart(7)} ms median  (${v.map((t) => t.toFixed(0)).join(', ')}); CPU ${median(cpus[k]!).toFixed(1)} s`);
  const goal = shape.name === 'synthetic' ? ['get-hash-untar', 0.8] as const : ['stream-gz', 1.0] as const;
  console.log(`  ratio leapfrog .tar.gz  / ${goal[0]}: ${ratio('leapfrog .tar.gz', goal[0])}  (goal <= ${goal[1]})`);
  console.log(`  ratio leapfrog .tar.zst / ${goal[0]}: ${ratio('leapfrog .tar.zst', goal[0])}  (goal <= ${goal[1]})`);
  console.log(`  ratio leapfrog .tar.gz  / stream-gz: ${ratio('leapfrog .tar.gz', 'stream-gz')}; leapfrog .tar.zst / stream-zst: ${ratio('leapfrog .tar.zst', 'stream-zst')}`);
  const cpuRatio = (a: string, b: string) => median(cpus[a]!.map((t, i) => t / cpus[b]![i]!)).toFixed(2);
  console.log(`  CPU ratios: leapfrog .tar.gz / ${goal[0]} ${cpuRatio('leapfrog .tar.gz', goal[0])}, leapfrog .tar.zst / ${goal[0]} ${cpuRatio('leapfrog .tar.zst', goal[0])}, leapfrog .tar.zst / stream-zst ${cpuRatio('leapfrog .tar.zst', 'stream-zst')}`);
  console.log(`  warm provision (cached env): ${median(warm).toFixed(3)} ms median, ${Math.max(...warm).toFixed(3)} ms max  (goal < 20 ms)`);
}

const t0 = performance.now();
const shapes: Shape[] = [];
if (flags.env !== 'nova') shapes.push(await synthetic(os.tmpdir(), Number(flags.mb), Number(flags.files)));
if (flags.env !== 'synthetic') shapes.push(await nova(os.tmpdir()));
process.stderr.write(`tarballs ready in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
for (const s of shapes) await bench(s);
