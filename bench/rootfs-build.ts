/**
 * bench/rootfs-build: a cold `envs build --debian` of a real release's env,
 * then provisioning its tarball from a local HTTP server, cold and warm, each
 * against a baseline measured in the same run.
 *
 *   npm run bench:rootfs   (or: node dist/bench/rootfs-build.js [--suite bookworm] [--packages python3-nova,python3-pymysql] [--mirror URL])
 *
 * Build: `leapfrog envs build --debian SUITE --packages P` (archive dates,
 * mmdebstrap, package list, deterministic pack, sha256) against plain
 * mmdebstrap with the same suite, packages and sources writing a tar.gz
 * (https://manpages.debian.org/mmdebstrap). Neither shares a download cache
 * with the other: mmdebstrap keeps apt's state in its own temporary
 * directory. Needs root (mmdebstrap's root mode) and the Debian archive.
 *
 * Provision: as bench/provision does, provisionEnv into an empty cache
 * against `curl -o && sha256sum && tar -xf`; warm is provisionEnv of the env
 * already in the cache (what every `run` pays).
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { EnvDef } from '../src/chain/types.js';
import { DEFAULT_MIRROR, sourceLines } from '../src/envs/build-debian.js';
import { provisionEnv } from '../src/envs/store.js';
import { startTarballServer } from '../fixtures/http-server.js';
import { benchOptions } from './common.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const flags = benchOptions({ suite: 'bookworm', packages: 'python3-nova,python3-pymysql', mirror: DEFAULT_MIRROR, warm: '20' });
const packages = flags.packages.split(',').filter(Boolean);
const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-rootfs-'));
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

async function timed(what: string, run: () => Promise<void>): Promise<number> {
  log(`${what}...`);
  const s = performance.now();
  await run();
  const ms = performance.now() - s;
  log(`${what}: ${secs(ms)}`);
  return ms;
}

try {
  // Build: leapfrog first, then the baseline (a single round each: a cold build takes minutes).
  const out = path.join(work, 'out');
  let built: { sha256: string; name: string; tarball: string } = { sha256: '', name: '', tarball: '' };
  const build = await timed(`leapfrog envs build --debian ${flags.suite} --packages ${packages.join(',')}`, async () => {
    const r = await execa(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), 'envs', 'build', '--debian', flags.suite, '--packages', packages.join(','), '--mirror', flags.mirror, '--name', 'bench-rootfs', '--out', out, '--format', 'json'], { reject: false, stdin: 'ignore' });
    if (r.exitCode !== 0) throw new Error(`envs build failed (${r.exitCode}): ${String(r.stderr).slice(-3000)}`);
    built = JSON.parse(String(r.stdout)) as { sha256: string; name: string; tarball: string };
  });
  // bench-rootfs.tar.zst: envs build compresses with zstd by default.
  const tarball = built.tarball;
  const ext = tarball.endsWith('.tar.zst') ? 'tar.zst' : 'tar.gz';
  const size = statSync(tarball).size;
  if ((await sha256(tarball)) !== built.sha256) throw new Error('the tarball does not match the sha256 envs build printed');

  const plainTar = path.join(work, 'plain.tar.gz');
  const b = { suite: flags.suite, packages, mirror: flags.mirror, components: ['main'], variant: 'essential', updates: true };
  const baselineBuild = await timed(`baseline mmdebstrap ${flags.suite} --include=${packages.join(',')} to a tar.gz`, async () => {
    const r = await execa('mmdebstrap', ['--mode=root', '--variant=essential', '--components=main', `--include=${packages.join(',')}`, flags.suite, plainTar, ...sourceLines(b)], { reject: false, stdin: 'ignore', all: true });
    if (r.exitCode !== 0) throw new Error(`mmdebstrap failed (${r.exitCode}): ${String(r.all).slice(-3000)}`);
  });
  const plainSize = statSync(plainTar).size;
  rmSync(plainTar, { force: true });

  // Provision over a real local HTTP server.
  const server = await startTarballServer();
  server.serve(`env.${ext}`, tarball);
  const url = server.url(`env.${ext}`);
  const env: EnvDef = { name: 'bench-rootfs', file: path.join(out, 'bench-rootfs.yaml'), kind: 'rootfs', source: { kind: 'url', location: url, sha256: built.sha256 }, path: [], vars: {} };
  const warm: number[] = [];
  let cold = 0;
  let baseline = 0;
  try {
    const dir = path.join(work, 'baseline');
    mkdirSync(dir);
    // tar -xf on a file finds its compression by itself (gzip or zstd).
    baseline = await timed('baseline curl -o && sha256sum && tar -xf', async () => {
      const r = await execa('sh', ['-c', 'curl -sS -o "$1/f" "$2" && sha256sum "$1/f" >/dev/null && mkdir "$1/x" && tar -xf "$1/f" -C "$1/x"', 'sh', dir, url], { reject: false });
      if (r.exitCode !== 0) throw new Error(String(r.stderr));
    });
    rmSync(dir, { recursive: true, force: true });
    const cache = path.join(work, 'cache');
    cold = await timed('leapfrog provision (cold cache)', async () => {
      if ((await provisionEnv(env, cache, {})).cached) throw new Error('cold provision found the env cached');
    });
    for (let i = 0; i < Number(flags.warm); i++) {
      const s = performance.now();
      if (!(await provisionEnv(env, cache, {})).cached) throw new Error('warm provision did not find the env cached');
      warm.push(performance.now() - s);
    }
  } finally {
    await server.close();
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const mb = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MB`;
  console.log(`rootfs-build: ${flags.suite} with ${packages.join(', ')} from ${flags.mirror}, one cold round, ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}`);
  console.log(`  leapfrog envs build --debian (cold):      ${secs(build)}  (${mb(size)} ${ext}, trimmed)`);
  console.log(`  baseline mmdebstrap to tar.gz:            ${secs(baselineBuild)}  (${mb(plainSize)}, untrimmed)`);
  console.log(`  ratio build leapfrog / baseline:          ${(build / baselineBuild).toFixed(2)}`);
  console.log(`  leapfrog cold provision over HTTP:        ${(cold / 1000).toFixed(2)} s`);
  console.log(`  baseline curl -o && sha256sum && tar -xf:  ${(baseline / 1000).toFixed(2)} s`);
  console.log(`  ratio provision leapfrog / baseline:      ${(cold / baseline).toFixed(2)}`);
  console.log(`  warm provision (cached env): ${median(warm).toFixed(3)} ms median, ${Math.max(...warm).toFixed(3)} ms max over ${warm.length}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
