import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { benchOptions } from './common.js';

/**
 * Start-up: what an operator waits for before leapfrog says anything.
 * `leapfrog --version` (the command line alone: yargs and the flag table),
 * `leapfrog plan` on the fake cloud (chain, ledger, SQLite, the planner and
 * the renderer), each against `node -e 0` measured in the same run, median
 * of N runs. Goals (issue 10): --version under 0.2 s, plan under 0.5 s.
 *
 *   npm run bench:startup -- --runs 15
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(ROOT, 'bin', 'leapfrog.js');
const o = benchOptions({ runs: '15' });
const runs = Number(o.runs);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(args: readonly string[], env: NodeJS.ProcessEnv = process.env): number {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    execFileSync(process.execPath, args, { stdio: 'ignore', env });
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-startup-'));
try {
  const cloud = path.join(work, 'cloud');
  execFileSync(process.execPath, [path.join(ROOT, 'dist', 'fixtures', 'cloud.js'), '--db', `sqlite:${cloud}`], { stdio: 'ignore' });
  const chain = path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml');
  const state = path.join(work, 'state');
  const baseline = time(['-e', '0']);
  const version = time([BIN, '--version']);
  const plan = time([BIN, 'plan', '--chain', chain, '--db', `sqlite:${cloud}`, '--state-dir', state]);
  const row = (what: string, ms: number, goal?: number) =>
    console.log(`${what.padEnd(22)} ${ms.toFixed(0).padStart(6)} ms   ${(ms / baseline).toFixed(1).padStart(5)}x node -e 0${goal ? `   goal < ${goal} ms: ${ms < goal ? 'met' : 'NOT met'}` : ''}`);
  console.log(`median of ${runs} runs, ${os.cpus().length} cores, node ${process.version}`);
  row('node -e 0', baseline);
  row('leapfrog --version', version, 200);
  row('leapfrog plan', plan, 500);
} finally {
  rmSync(work, { recursive: true, force: true });
}
