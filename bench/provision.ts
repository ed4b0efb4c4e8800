/**
 * bench/provision: provisioning a large env from a local HTTP server.
 *
 *   npm run bench:provision   (or: node dist/bench/provision.js [--mb 200] [--files 20000] [--rounds 3])
 *
 * A ~200 MB env of many small files (a venv's shape), served by the
 * fixtures' HTTP server. Cold: leapfrog's provisionEnv into an empty cache
 * (download hashed while spooled, the header pass, the writer with mtimes and
 * each file hashed as written, the manifest for `envs verify`) against the
 * baseline a careful operator would type, run in the same process tree and
 * the same round:
 *
 *   curl -sS -o f URL && sha256sum f && tar -xzf f -C dir
 *
 * Warm: provisionEnv of an env already in the cache (what every `run` pays).
 * Generated data lives under the OS temp dir and is reused between runs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import * as tar from 'tar';
import type { EnvDef } from '../src/chain/types.js';
import { provisionEnv } from '../src/envs/store.js';
import { startTarballServer } from '../fixtures/http-server.js';
import { benchOptions } from './common.js';

const flags = benchOptions({ mb: '200', files: '20000', rounds: '3' });
const MB = Number(flags.mb);
const FILES = Number(flags.files);
const ROUNDS = Number(flags.rounds);

const base = path.join(os.tmpdir(), `leapfrog-bench-provision-${MB}mb-${FILES}`);
const tarball = path.join(base, 'env.tar.gz');

/** Deterministic-size files of text-like content (compresses roughly as source code does, ~3x). */
async function generate(): Promise<void> {
  if (existsSync(tarball)) return;
  const src = path.join(base, 'src');
  rmSync(base, { recursive: true, force: true });
  const per = Math.floor((MB * 1024 * 1024) / FILES);
  // A few common words and a long tail, like identifiers in source code.
  const words = Array.from({ length: 50_000 }, () => randomBytes(3 + (randomBytes(1)[0]! % 8)).toString('base64url'));
  let seed = 1;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(src, 'lib', `pkg${Math.floor(i / 200)}`);
    if (i % 200 === 0) mkdirSync(dir, { recursive: true });
    const parts: string[] = [];
    let len = 0;
    while (len < per) {
      const w = words[next() % (next() % 3 === 0 ? words.length : 300)]!;
      parts.push(w);
      len += w.length + 1;
    }
    writeFileSync(path.join(dir, `mod${i}.py`), parts.join(next() % 7 === 0 ? '\n' : ' ').slice(0, per));
  }
  mkdirSync(path.join(src, 'bin'), { recursive: true });
  writeFileSync(path.join(src, 'bin', 'tool'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  await tar.c({ gzip: true, file: tarball, cwd: src, portable: true }, ['bin', 'lib']);
  rmSync(src, { recursive: true, force: true });
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const t0 = performance.now();
await generate();
const size = readFileSync(tarball).length;
const sha = await sha256(tarball);
const server = await startTarballServer();
server.serve('env.tar.gz', tarball);
const url = server.url('env.tar.gz');
const env: EnvDef = { name: 'bench-env', file: path.join(base, 'bench-env.yaml'), source: { kind: 'url', location: url, sha256: sha }, path: ['bin'], vars: {} };
process.stderr.write(`env: ${(size / 1024 ** 2).toFixed(1)} MB tar.gz, ${FILES} files of ~${Math.floor((MB * 1024) / FILES)} KB (${((performance.now() - t0) / 1000).toFixed(1)} s to prepare)\n`);

const work = path.join(base, 'work');
const cold: number[] = [];
const baseline: number[] = [];
const warm: number[] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    // Alternate the order so neither side always gets the warmer page cache.
    const runs = [
      async () => {
        const dir = path.join(work, 'baseline');
        mkdirSync(dir);
        const s = performance.now();
        const r = await execa('sh', ['-c', 'curl -sS -o "$1/f.tar.gz" "$2" && sha256sum "$1/f.tar.gz" >/dev/null && mkdir "$1/x" && tar -xzf "$1/f.tar.gz" -C "$1/x"', 'sh', dir, url]);
        baseline.push(performance.now() - s);
        if (r.exitCode !== 0) throw new Error(r.stderr);
      },
      async () => {
        const cache = path.join(work, 'cache');
        const s = performance.now();
        const p = await provisionEnv(env, cache, {});
        cold.push(performance.now() - s);
        if (p.cached) throw new Error('cold provision found the env cached');
        for (let i = 0; i < 20; i++) {
          const w = performance.now();
          const again = await provisionEnv(env, cache, {});
          warm.push(performance.now() - w);
          if (!again.cached) throw new Error('warm provision did not find the env cached');
        }
      },
    ];
    if (round % 2 === 1) runs.reverse();
    for (const r of runs) await r();
    process.stderr.write(`round ${round + 1}: leapfrog ${cold.at(-1)!.toFixed(0)} ms, baseline ${baseline.at(-1)!.toFixed(0)} ms\n`);
  }
} finally {
  await server.close();
  rmSync(work, { recursive: true, force: true });
}

const c = median(cold);
const b = median(baseline);
console.log(`provision: ${(size / 1024 ** 2).toFixed(1)} MB tar.gz, ${FILES} files, ${ROUNDS} rounds, medians`);
console.log(`  leapfrog cold provision (fetch+hash, header pass, unpack, manifest): ${c.toFixed(0)} ms`);
console.log(`  baseline curl -o && sha256sum && tar -xzf:                         ${b.toFixed(0)} ms`);
console.log(`  ratio leapfrog / baseline: ${(c / b).toFixed(2)}  (goal <= 0.8)`);
console.log(`  warm provision (cached env): ${median(warm).toFixed(3)} ms median, ${Math.max(...warm).toFixed(3)} ms max  (goal < 20 ms)`);
