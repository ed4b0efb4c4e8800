/**
 * bench/bwrap-overhead: what entering bubblewrap costs a step of a rootfs
 * env, against the same step spawned plainly, in the same run.
 *
 *   npm run bench:bwrap      (or: node dist/bench/bwrap-overhead.js [--rootfs DIR] [--steps 50])
 *
 * Both go through runStepProcess (the sandbox module every step uses): the
 * plain one runs `true` with a clean environment in its own process group;
 * the rootfs one builds the bwrap argv (top-level entries of the tree bound
 * read-only, /proc, /dev, /tmp, the run's directories) and runs the same
 * `true` inside. --rootfs is an unpacked env tree (e.g. CACHE/<sha256>);
 * without it, the host's own / stands in for one.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { probeBubblewrap } from '../src/sandbox/bwrap.js';
import { runStepProcess, type StepProcess } from '../src/sandbox/run-step.js';
import { benchOptions } from './common.js';

const flags = benchOptions({ steps: '50', rootfs: '/' });
const STEPS = Number(flags.steps);
const probe = await probeBubblewrap();
if ('why' in probe) throw new Error(probe.why);

const work = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-bench-bwrap-'));
const dirs = { home: path.join(work, 'home'), tmp: path.join(work, 'tmp'), cwd: path.join(work, 'work') };
for (const d of Object.values(dirs)) mkdirSync(d);
const step = (rootfs: boolean): StepProcess => ({
  argv: ['true'],
  shownArgv: ['true'],
  envRoot: '/',
  envPath: [],
  envVars: {},
  cwd: dirs.cwd,
  home: dirs.home,
  tmp: dirs.tmp,
  logFile: path.join(work, 'step.log'),
  timeoutMs: 60_000,
  secrets: [],
  rootfs: rootfs
    ? { bwrap: probe.bwrap, root: path.resolve(flags.rootfs), binds: [dirs.cwd, dirs.home, dirs.tmp].map((p) => ({ path: p, writable: true })), network: true, protect: [] }
    : undefined,
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const plain: number[] = [];
const boxed: number[] = [];
// Interleaved, so that the machine's load weighs on both alike.
for (let i = 0; i < STEPS; i++) {
  for (const [list, rootfs] of [[plain, false], [boxed, true]] as const) {
    const o = await runStepProcess(step(rootfs));
    if (o.exitCode !== 0) throw new Error(`step failed: ${o.tail.join('\n')}`);
    list.push(o.durationMs);
  }
}
rmSync(work, { recursive: true, force: true });
const p = median(plain);
const b = median(boxed);
console.log(`bwrap-overhead: ${STEPS} steps of \`true\` each way, rootfs ${flags.rootfs}, medians`);
console.log(`  plain spawn:        ${p.toFixed(1)} ms`);
console.log(`  under bubblewrap:   ${b.toFixed(1)} ms`);
console.log(`  bwrap per step:     +${(b - p).toFixed(1)} ms (goal < 20 ms)`);
console.log(`  ratio bwrap/plain:  ${(b / p).toFixed(2)}x`);
