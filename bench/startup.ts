import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
 * of N runs. The three take turns within each round, so a machine that
 * other work makes slower for a while slows all three alike and the ratio
 * stays meaningful. Goals (issue 10): --version under 0.2 s, plan under 0.5 s.
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

/**
 * CPU time (user + system) of this process's waited-for children so far, in ms, from
 * /proc/self/stat (Linux; clock ticks of 10 ms), or undefined elsewhere. On a machine other
 * work keeps busy, a child's CPU time is far steadier than its wall clock.
 */
function childrenCpuMs(): number | undefined {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /s, '').split(' ');
    // After the command name: state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

interface Samples {
  wall: number[];
  cpu: number[];
}

/** Each command's samples, the commands taking turns in every round. */
function timeInTurns(commands: readonly (readonly string[])[]): Samples[] {
  const samples = commands.map((): Samples => ({ wall: [], cpu: [] }));
  for (let i = 0; i < runs; i++) {
    commands.forEach((args, k) => {
      const c0 = childrenCpuMs();
      const t0 = performance.now();
      execFileSync(process.execPath, args, { stdio: 'ignore' });
      samples[k]!.wall.push(performance.now() - t0);
      const c1 = childrenCpuMs();
      if (c0 !== undefined && c1 !== undefined) samples[k]!.cpu.push(c1 - c0);
    });
  }
  return samples;
}

const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-startup-'));
try {
  const cloud = path.join(work, 'cloud');
  execFileSync(process.execPath, [path.join(ROOT, 'dist', 'fixtures', 'cloud.js'), '--db', `sqlite:${cloud}`], { stdio: 'ignore' });
  const chain = path.join(ROOT, 'chains', 'fakecloud-juno-newton.yaml');
  const state = path.join(work, 'state');
  const loadBefore = os.loadavg()[0]!;
  const [base, version, plan] = timeInTurns([['-e', '0'], [BIN, '--version'], [BIN, 'plan', '--chain', chain, '--db', `sqlite:${cloud}`, '--state-dir', state]]);
  const baseline = median(base!.wall);
  const row = (what: string, s: Samples, goal?: number) => {
    const ms = median(s.wall);
    const cpu = s.cpu.length > 0 ? `   cpu ${median(s.cpu).toFixed(0).padStart(4)} ms` : '';
    console.log(
      `${what.padEnd(20)} ${ms.toFixed(0).padStart(6)} ms   ${(ms / baseline).toFixed(1).padStart(4)}x node -e 0   min ${Math.min(...s.wall).toFixed(0).padStart(4)} ms${cpu}${goal ? `   goal < ${goal} ms: ${ms < goal ? 'met' : 'NOT met'}` : ''}`,
    );
  };
  console.log(`median of ${runs} runs, taking turns (cpu: user + system time of the process); ${os.cpus().length} cores, load average ${loadBefore.toFixed(1)} before and ${os.loadavg()[0]!.toFixed(1)} after, node ${process.version}`);
  row('node -e 0', base!);
  row('leapfrog --version', version!, 200);
  row('leapfrog plan', plan!, 500);
} finally {
  rmSync(work, { recursive: true, force: true });
}
