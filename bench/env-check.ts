/**
 * bench/env-check: what the check before every run costs on a realistic env.
 *
 *   npm run bench:env-check   (or: node dist/bench/env-check.js [--mb 200] [--files 20000] [--rounds 5])
 *
 * A ~200 MB env of 20 000 files in 100 directories (a venv's shape),
 * provisioned once into a cache (generated data and cache are kept under
 * the OS temp dir and reused). Then, in the same process and the same
 * rounds, alternating:
 *
 *   cheap:  readEntry + verifyEntry(entry, 'stat'): what `run` does per env
 *           before its first step: the manifest parsed, lstat every entry,
 *           readdir every directory, no file read;
 *   hash:   the same with 'hash': `run --verify-envs`, `envs verify`,
 *           check-migrations' default: every file read and hashed (the baseline);
 *   find:   `find DIR -printf '%y %s %m %T@ %l\n'`: the same stat walk by a
 *           C tool, the floor for a walk from any language.
 *
 * The page cache is warm for all three (the env was just unpacked or read):
 * a cold cache makes the hash read 200 MB from disk, and the ratio larger.
 * Prints medians and the ratios hash/cheap and cheap/find.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import * as tar from 'tar';
import type { EnvDef } from '../src/chain/types.js';
import { readEntry, verifyEntry } from '../src/envs/cache.js';
import { provisionEnv, sha256File } from '../src/envs/store.js';
import { benchOptions } from './common.js';

const flags = benchOptions({ mb: '200', files: '20000', rounds: '5' });
const MB = Number(flags.mb);
const FILES = Number(flags.files);
const ROUNDS = Number(flags.rounds);

const base = path.join(os.tmpdir(), `leapfrog-bench-env-check-${MB}mb-${FILES}`);
const tarball = path.join(base, 'env.tar.gz');
const cache = path.join(base, 'cache');

/** Text-like files of one size, 200 to a directory, and a bin/ with one script. */
async function generate(): Promise<void> {
  if (existsSync(tarball)) return;
  rmSync(base, { recursive: true, force: true });
  const src = path.join(base, 'src');
  const per = Math.floor((MB * 1024 * 1024) / FILES);
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz_ \n';
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(src, 'lib', `pkg${Math.floor(i / 200)}`);
    if (i % 200 === 0) mkdirSync(dir, { recursive: true });
    const chars = Array.from({ length: per }, () => alphabet[next() % alphabet.length]);
    writeFileSync(path.join(dir, `mod${i}.py`), chars.join(''));
  }
  mkdirSync(path.join(src, 'bin'), { recursive: true });
  writeFileSync(path.join(src, 'bin', 'tool'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  await tar.c({ gzip: true, file: tarball, cwd: src, portable: true }, ['bin', 'lib']);
  rmSync(src, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  await generate();
  const sha256 = await sha256File(tarball);
  const env: EnvDef = { name: 'bench', file: path.join(base, 'bench.yaml'), source: { kind: 'file', location: tarball, sha256 }, path: ['bin'], vars: {} } as EnvDef;
  const p = await provisionEnv(env, cache, { limits: { maxBytes: 8 * 1024 ** 3, maxEntries: 500_000 } });
  let entry = await readEntry(cache, p.sha256);
  const times = { cheap: [] as number[], hash: [] as number[], find: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    // As provisionAll does it: the manifest read and parsed, then the tree walked and compared.
    let t = performance.now();
    const cheap = await verifyEntry(await readEntry(cache, p.sha256), 'stat');
    times.cheap.push(performance.now() - t);
    t = performance.now();
    const hash = await verifyEntry((entry = await readEntry(cache, p.sha256)), 'hash');
    times.hash.push(performance.now() - t);
    t = performance.now();
    await execa('find', [p.root, '-printf', '%y %s %m %T@ %l\\n'], { stdout: 'ignore' });
    times.find.push(performance.now() - t);
    if (!cheap.ok || !hash.ok) throw new Error(`the bench env does not verify: ${[...cheap.problems, ...hash.problems].slice(0, 3).join('; ')}`);
  }
  const m = { cheap: median(times.cheap), hash: median(times.hash), find: median(times.find) };
  const out = {
    env: { files: entry.files, bytes: entry.bytes, root: p.root },
    rounds: ROUNDS,
    medianMs: { cheap: +m.cheap.toFixed(1), hash: +m.hash.toFixed(1), find: +m.find.toFixed(1) },
    perRoundMs: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, v.map((x) => Math.round(x))])),
    ratio: { hashOverCheap: +(m.hash / m.cheap).toFixed(1), cheapOverFind: +(m.cheap / m.find).toFixed(2) },
  };
  console.log(JSON.stringify(out, null, 2));
  console.log(`cheap check ${m.cheap.toFixed(1)} ms, full hash ${m.hash.toFixed(1)} ms (${(m.hash / m.cheap).toFixed(1)}x the cheap check), find's stat walk ${m.find.toFixed(1)} ms (cheap = ${(m.cheap / m.find).toFixed(2)}x find), over ${entry.files} files, ${((entry.bytes ?? 0) / 1024 ** 2).toFixed(0)} MiB`);
}

await main();
