import type { Plan } from '../chain/plan.js';
import type { Chain } from '../chain/types.js';
import type { RunTiming } from './facts.js';
import { overheadOf, predictStep, sizeRatio, type Observation, type StepPrediction } from './predict.js';

/**
 * How long the planned hops will take: per hop, the steps of the newest
 * succeeded run or rehearsal of the same chain that completed it (any
 * target: a rehearsal on a copy counts, which is its point), each step's
 * time scaled by this target's rows and, for a `batch:` data step, the runs they need (predict.ts: time = fixed + perRow ×
 * rows, with its inputs kept so every figure can be checked by hand).
 */

export interface HopEstimate {
  project: string;
  release: string;
  /** Sum of the hop's predicted step times; undefined: no run or rehearsal completed the hop. */
  ms: number | undefined;
  fromRun: number | undefined;
  /** The run's label (main ledger or a rehearsal's). */
  from?: string | undefined;
  /** Per step id, its predicted time (run's progress counts a hop down step by step). */
  steps?: Readonly<Record<string, number>>;
  /** Per step, the model and its inputs. */
  model?: readonly StepPrediction[];
}

/** How much larger this target is than the copy a run measured, over the steps whose time scales with rows. */
export interface SizeComparison {
  from: string;
  observedRows: number;
  rowsNow: number;
  ratio: number;
}

export interface Estimate {
  hops: HopEstimate[];
  /** Sum over hops when every hop is known. Projects run one after another unless --parallel. */
  totalMs: number | undefined;
  knownMs: number;
  /** Per run the hops were estimated from (empty when nothing scales). */
  sizes?: SizeComparison[];
}

/** Per data step that declares one, its `batch:` (rows per run of its command). */
export function batchesOf(chain: Chain): Record<string, number> {
  return Object.fromEntries(chain.releases.flatMap((r) => r.steps.flatMap((s) => (s.batch === undefined ? [] : [[s.id, s.batch] as const]))));
}

/** The rows per step as the pre-flight counted them (core/preflight.ts), as `estimate` takes them. */
export function rowsNowOf(stepRows: Readonly<Record<string, { rows: number }>> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(stepRows ?? {}).map(([id, r]) => [id, r.rows]));
}

const FINISHED = new Set(['succeeded', 'skipped']);

const observation = (s: RunTiming['steps'][number], from: string): Observation => ({ ms: s.durationMs ?? 0, rows: s.rows ?? null, runs: s.attempts, from });

/**
 * Per planned hop: the step times of the newest succeeded run (or rehearsal)
 * of the chain that completed that hop, scaled by `rowsNow` (step id → the
 * rows it touches on this target now; absent: not known, the time is kept).
 */
export function estimate(plan: Plan, history: readonly RunTiming[], rowsNow: Readonly<Record<string, number>> = {}, batches: Readonly<Record<string, number>> = {}): Estimate {
  const label = (run: RunTiming) => run.label ?? `run ${run.runId}`;
  // Older measurements of each step, newest first: a fit over several row counts beats scaling one.
  const older = (stepId: string, except: RunTiming): Observation[] =>
    history.filter((r) => r !== except).flatMap((r) => r.steps.filter((s) => s.stepId === stepId && s.status === 'succeeded').map((s) => observation(s, label(r))));
  const hops = plan.hops.map((h): HopEstimate => {
    for (const run of history) {
      const steps = run.steps.filter((s) => s.project === h.project && s.release === h.release);
      if (steps.length === 0 || !steps.every((s) => FINISHED.has(s.status))) continue;
      const overhead = overheadOf(run.steps.filter((s) => s.status === 'succeeded').map((s) => ({ ms: s.durationMs ?? 0, rows: s.rows ?? null })));
      const model = steps.map((s) => predictStep(s.stepId, [observation(s, label(run)), ...older(s.stepId, run)], rowsNow[s.stepId], overhead, batches[s.stepId]));
      const ms = model.reduce((n, m) => n + m.ms, 0);
      const perStep: Record<string, number> = {};
      for (const m of model) perStep[m.stepId] = (perStep[m.stepId] ?? 0) + m.ms;
      return { ...h, ms, fromRun: run.runId, from: label(run), steps: perStep, model };
    }
    return { ...h, ms: undefined, fromRun: undefined };
  });
  const knownMs = hops.reduce((n, h) => n + (h.ms ?? 0), 0);
  const sizes: SizeComparison[] = [];
  for (const from of new Set(hops.flatMap((h) => (h.from === undefined ? [] : [h.from])))) {
    const r = sizeRatio(hops.filter((h) => h.from === from).flatMap((h) => h.model ?? []));
    if (r) sizes.push({ from, ...r });
  }
  return { hops, totalMs: hops.every((h) => h.ms !== undefined) ? knownMs : undefined, knownMs, sizes };
}
