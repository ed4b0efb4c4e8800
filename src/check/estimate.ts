import type { Plan } from '../chain/plan.js';
import type { RunTiming } from './facts.js';

/**
 * How long the planned hops will take, from the step times of the newest
 * succeeded run or rehearsal of the same chain that completed each hop
 * (any target: a rehearsal on a copy counts, which is its point).
 */

export interface HopEstimate {
  project: string;
  release: string;
  /** Sum of the hop's step durations in the newest succeeded run that completed it; undefined: unknown. */
  ms: number | undefined;
  fromRun: number | undefined;
  /** The run's label (main ledger or a rehearsal's). */
  from?: string | undefined;
  /** Per step id, its duration in that same run (run's progress counts a hop down step by step). */
  steps?: Readonly<Record<string, number>>;
}

export interface Estimate {
  hops: HopEstimate[];
  /** Sum over hops when every hop is known. Projects run one after another unless --parallel. */
  totalMs: number | undefined;
  knownMs: number;
}

const FINISHED = new Set(['succeeded', 'skipped']);

/** Per planned hop: the step durations of the newest succeeded run (or rehearsal) of the chain that completed that hop. */
export function estimate(plan: Plan, history: readonly RunTiming[]): Estimate {
  const hops = plan.hops.map((h) => {
    for (const run of history) {
      const steps = run.steps.filter((s) => s.project === h.project && s.release === h.release);
      if (steps.length === 0 || !steps.every((s) => FINISHED.has(s.status))) continue;
      const ms = steps.reduce((n, s) => n + (s.durationMs ?? 0), 0);
      return { ...h, ms, fromRun: run.runId, from: run.label ?? `run ${run.runId}`, steps: Object.fromEntries(steps.map((s) => [s.stepId, s.durationMs ?? 0])) };
    }
    return { ...h, ms: undefined, fromRun: undefined };
  });
  const knownMs = hops.reduce((n, h) => n + (h.ms ?? 0), 0);
  return { hops, totalMs: hops.every((h) => h.ms !== undefined) ? knownMs : undefined, knownMs };
}

