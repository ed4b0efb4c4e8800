import type { Plan, PlannedStep } from '../chain/plan.js';
import type { Estimate } from '../check/estimate.js';
import type { RunEvent } from '../runner/events.js';

/**
 * What the progress display knows, folded from the run's events, and the
 * times it derives: per project the step running, how long it has run, and
 * how long is left; for the run the same. Pure: the clock is an argument, so
 * the arithmetic is tested with plain objects (test/progress.test.ts).
 *
 * Time left comes from the best source there is: for a data step whose
 * needed-when count has fallen at least once, the rate it falls at (the rows
 * left over the rows per second so far); otherwise the step's time in the
 * newest succeeded run or rehearsal of the chain that completed its hop
 * (check/estimate.ts, as check-migrations prints it), less the time it has
 * already run.
 */

export type ProgressEvent = RunEvent | { type: 'planned'; preflight: { plan?: Plan | undefined }; estimate: Estimate };

/** `stopped`: the run ended (another project's step failed, or a signal) before this project's steps were done. */
export type ProjectState = 'waiting' | 'running' | 'succeeded' | 'failed' | 'interrupted' | 'stopped';

export interface StepView {
  id: string;
  kind: string;
  release: string;
  name: string | undefined;
  /** Its duration in the run the estimate comes from; undefined: no earlier run completed its hop. */
  estimateMs: number | undefined;
}

export interface Current {
  step: StepView;
  startedAt: number;
  /** Data steps: runs so far, and the needed-when count before the first run and after the last. */
  attempt: number;
  needed?: { count: number; at: number } | undefined;
  remaining?: { count: number; at: number } | undefined;
}

export interface ProjectView {
  project: string;
  steps: StepView[];
  /** Steps that succeeded (or were skipped as not needed) in this run. */
  ended: number;
  state: ProjectState;
  current: Current | undefined;
  startedAt: number | undefined;
  endedAt: number | undefined;
  /** How its last step ended: a failure's or interruption's message is news. */
  last: { step: StepView; status: string; durationMs: number; message: string | undefined } | undefined;
}

export interface ProgressState {
  startedAt: number;
  endedAt: number | undefined;
  runId: number | undefined;
  logs: string | undefined;
  status: 'running' | 'succeeded' | 'failed' | 'interrupted';
  parallel: number;
  projects: Map<string, ProjectView>;
  /** Where the estimate comes from, for people ("run 3", "rehearsal …"); undefined: no earlier run. */
  estimateFrom: string | undefined;
  /** Envs being downloaded before the run starts. */
  downloads: Map<string, { bytes: number; total: number | undefined }>;
}

export function initialState(now: number, parallel = 1): ProgressState {
  return { startedAt: now, endedAt: undefined, runId: undefined, logs: undefined, status: 'running', parallel, projects: new Map(), estimateFrom: undefined, downloads: new Map() };
}

function view(p: PlannedStep, ms: ReadonlyMap<string, number>): StepView {
  return { id: p.step.id, kind: p.step.kind, release: p.step.release, name: p.step.name, estimateMs: ms.get(p.step.id) };
}

function setPlan(s: ProgressState, plan: Plan, e: Estimate | undefined): void {
  const ms = new Map<string, number>();
  for (const h of e?.hops ?? []) for (const [id, v] of Object.entries(h.steps ?? {})) ms.set(id, v);
  const sources = [...new Set((e?.hops ?? []).flatMap((h) => (h.from === undefined ? [] : [h.from])))];
  if (e) s.estimateFrom = sources.length === 0 ? undefined : sources.length === 1 ? sources[0] : `${sources.length} earlier runs`;
  for (const p of plan.projects) {
    if (p.steps.length === 0 || s.projects.has(p.project)) continue;
    s.projects.set(p.project, { project: p.project, steps: p.steps.map((x) => view(x, ms)), ended: 0, state: 'waiting', current: undefined, startedAt: undefined, endedAt: undefined, last: undefined });
  }
}

/** Fold one event into the state (in place; the renderers own their state). */
export function apply(s: ProgressState, e: ProgressEvent, now: number): void {
  switch (e.type) {
    case 'planned':
      if (e.preflight.plan) setPlan(s, e.preflight.plan, e.estimate);
      break;
    case 'env-progress':
      s.downloads.set(e.env, { bytes: e.bytes, total: e.total });
      break;
    case 'env':
      s.downloads.delete(e.env);
      break;
    case 'run-start':
      s.startedAt = now;
      s.runId = e.runId;
      s.logs = `${e.runDir}/logs`;
      s.downloads.clear();
      setPlan(s, e.plan, undefined);
      break;
    case 'step-start': {
      const p = s.projects.get(e.step.step.project);
      if (!p) break;
      const step = p.steps.find((x) => x.id === e.step.step.id) ?? view(e.step, new Map());
      p.state = 'running';
      p.startedAt ??= now;
      p.current = { step, startedAt: now, attempt: 0 };
      break;
    }
    case 'step-needed': {
      const c = s.projects.get(e.step.step.project)?.current;
      if (c) c.needed = { count: e.count, at: now };
      break;
    }
    case 'step-batch': {
      const c = s.projects.get(e.step.step.project)?.current;
      if (!c) break;
      c.attempt = e.attempt;
      if (e.remaining !== undefined) c.remaining = { count: e.remaining, at: now };
      break;
    }
    case 'step-end': {
      const p = s.projects.get(e.step.step.project);
      if (!p) break;
      // A failed or interrupted step is not progress: the bar and the count stay where they were.
      if (e.status !== 'failed' && e.status !== 'interrupted') p.ended++;
      const step = p.current?.step ?? p.steps.find((x) => x.id === e.step.step.id) ?? view(e.step, new Map());
      p.last = { step, status: e.status, durationMs: e.durationMs, message: e.message };
      p.current = undefined;
      if (e.status === 'failed' || e.status === 'interrupted') p.state = e.status;
      else if (p.ended >= p.steps.length) p.state = 'succeeded';
      if (p.state !== 'running') p.endedAt = now;
      break;
    }
    case 'run-end':
      s.status = e.status;
      s.endedAt = now;
      for (const p of s.projects.values()) {
        if (p.state === 'running' || p.state === 'waiting') {
          // A step still running when the run ends was stopped with it (its step-end, when it comes, says so too).
          p.state = p.current ? 'interrupted' : e.status === 'succeeded' && p.ended >= p.steps.length ? 'succeeded' : 'stopped';
          p.endedAt = now;
        }
      }
      break;
    default:
      break;
  }
}

/** Rows per millisecond a data step's needed-when count has fallen at so far; undefined until it has fallen. */
export function rate(c: Current): number | undefined {
  if (!c.needed || !c.remaining || c.remaining.at <= c.needed.at) return undefined;
  const gone = c.needed.count - c.remaining.count;
  return gone > 0 ? gone / (c.remaining.at - c.needed.at) : undefined;
}

/** Time left of the running step. */
export function stepLeftMs(c: Current, now: number): number | undefined {
  const r = rate(c);
  if (r !== undefined && c.remaining) return Math.max(0, c.remaining.count / r - (now - c.remaining.at));
  if (c.step.estimateMs !== undefined) return Math.max(0, c.step.estimateMs - (now - c.startedAt));
  return undefined;
}

/** Time left of a project: its running step's, then its steps not started; undefined when any is unknown. */
export function projectLeftMs(p: ProjectView, now: number): number | undefined {
  if (p.state === 'succeeded') return 0;
  if (p.state !== 'running' && p.state !== 'waiting') return undefined;
  const startedIndex = p.current ? p.steps.findIndex((x) => x.id === p.current!.step.id) : p.ended - 1;
  let left = p.current ? stepLeftMs(p.current, now) : 0;
  for (const st of p.steps.slice(startedIndex + 1)) {
    if (left === undefined || st.estimateMs === undefined) return undefined;
    left += st.estimateMs;
  }
  return left;
}

/** Time left of the run: the projects' sum one after another, or spread over --parallel lanes (never less than the longest). */
export function runLeftMs(s: ProgressState, now: number): number | undefined {
  if (s.status !== 'running') return undefined;
  const lefts = [...s.projects.values()].map((p) => projectLeftMs(p, now));
  if (lefts.some((l) => l === undefined)) return undefined;
  const all = lefts as number[];
  const sum = all.reduce((a, b) => a + b, 0);
  return s.parallel <= 1 ? sum : Math.max(Math.max(0, ...all), sum / s.parallel);
}

/** A duration as a clock: 0:07, 3:12, 1:02:03 (rounded to the second). */
export function clock(ms: number): string {
  const t = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
