/**
 * bench/runner-overhead: what leapfrog adds per step on top of running the
 * command itself — argv rendering, the sandboxed spawn, two fsynced ledger
 * writes, log files, and a checkpoint per hop.
 *
 *   npm run bench            (or: node dist/bench/runner-overhead.js [--steps 30] [--rounds 5])
 *
 * Baseline, measured in the same run: the same commands from a plain shell
 * script. Per-step overhead = ((leapfrog run with N steps) − (leapfrog run
 * with nothing left to do) − (shell script)) / N; the empty run removes
 * Node's start-up and planning, which do not grow with the chain.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { benchOptions, noopEnv } from './common.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const flags = benchOptions({ steps: '30', rounds: '10' }, ['keep']);
const STEPS = Number(flags.steps);
const ROUNDS = Number(flags.rounds);
const HOPS = 3;

const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-'));
const envDir = await noopEnv(work);

const dbDir = path.join(work, 'db');
mkdirSync(dbDir);
new Database(path.join(dbDir, 'bench.sqlite3')).exec('CREATE TABLE t (x INTEGER)').close();

const perHop = Math.ceil(STEPS / HOPS);
const releases = Array.from({ length: HOPS }, (_, h) => ({
  release: `r${h + 1}`,
  env: 'noop',
  steps: Array.from({ length: Math.min(perHop, STEPS - h * perHop) }, () => ({ project: 'bench', data: ['noop'] })),
})).filter((r) => r.steps.length > 0);
const chain = path.join(work, 'chain.yaml');
writeFileSync(
  chain,
  stringify({
    chain: 'bench-noop',
    envs: envDir,
    projects: { bench: { databases: { main: 'bench' }, version: { main: { kind: 'sql', query: 'SELECT 1', numeric: true } }, start: { main: 1 } } },
    releases,
  }),
);
const shell = path.join(work, 'baseline.sh');
writeFileSync(shell, `#!/bin/sh\nset -e\nPATH=${path.join(work, 'env-src', 'bin')}:$PATH\n${'noop\n'.repeat(STEPS)}`, { mode: 0o755 });

const cache = path.join(work, 'cache');
async function time(cmd: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  const r = await execa(cmd, args, { reject: false });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.exitCode}):\n${String(r.stderr)}`);
  return ms;
}
const lf = (state: string) => [path.join(root, 'bin', 'leapfrog.js'), 'run', '--chain', chain, '--db', `sqlite:${dbDir}`, '--state-dir', state, '--cache-dir', cache];

// Warm the env cache and the file system once; cold unpacking is bench/provision's business.
await time(process.execPath, lf(path.join(work, 'warm')));

const full: number[] = [];
const phase: number[] = [];
const empty: number[] = [];
const sh: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const state = path.join(work, `state-${i}`);
  full.push(await time(process.execPath, lf(state)));
  // The run's own record: from its start row to its finish row, i.e. the
  // execution phase (every step, its ledger rows and logs, the checkpoints).
  const ledger = new Database(path.join(state, 'ledger.sqlite3'), { readonly: true });
  const row = ledger.prepare('SELECT started_at s, finished_at f FROM runs').get() as { s: string; f: string };
  ledger.close();
  phase.push(Date.parse(row.f) - Date.parse(row.s));
  empty.push(await time(process.execPath, lf(state)));
  sh.push(await time('/bin/sh', [shell]));
  rmSync(state, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Paired per round: the three timings of one round share the machine's mood, so
// their difference is steadier than a difference of medians.
const perStep = full.map((f, i) => (f - empty[i]! - sh[i]!) / STEPS);
const inRun = phase.map((p, i) => (p - sh[i]!) / STEPS);
const stepsMs = full.map((f, i) => f - empty[i]!);
const overhead = median(perStep);
const f = (n: number) => n.toFixed(1);
console.log(`runner-overhead: ${STEPS} no-op steps in ${releases.length} hops, ${ROUNDS} rounds, medians`);
console.log(`  leapfrog run, ${STEPS} steps:        ${f(median(full))} ms`);
console.log(`  leapfrog run, nothing to do:    ${f(median(empty))} ms  (start-up, load, probe, plan)`);
console.log(`  plain shell script, ${STEPS} steps:  ${f(median(sh))} ms`);
console.log(`  steps through leapfrog:         ${f(median(stepsMs))} ms = ${f(median(stepsMs) / STEPS)} ms/step`);
console.log(`  overhead per step, from outside: ${f(overhead)} ms (min ${f(Math.min(...perStep))}, max ${f(Math.max(...perStep))})`);
console.log(`  overhead per step, ledger clock: ${f(median(inRun))} ms (run's start to finish row, less the shell's time; goal < 5 ms)`);
console.log(`  ratio leapfrog/shell for steps: ${(median(stepsMs) / median(sh)).toFixed(2)}x`);
if (flags.keep) console.log(`  kept ${work} (chain.yaml, db/, cache/) for profiling`);
else rmSync(work, { recursive: true, force: true });
