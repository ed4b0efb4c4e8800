/**
 * How long one step will take on this target, from what earlier runs and
 * rehearsals of the chain measured: a per-step linear model
 *
 *     time = fixed + perRow × rows
 *
 * where `rows` is what the step's time grows with: the rows of the tables
 * it declares (`touches:`), or for a data step without that list the count
 * its needed-when query returns (the rows it has to move). Both sides count
 * them the same way at the same moment, in the pre-flight before anything
 * runs (core/preflight.ts): every run and rehearsal records them with each
 * step's time (runner/step.ts), check-migrations counts them on the target
 * it is pointed at. A step
 * with neither takes the time it took (a schema sync's time barely depends
 * on the data on SQLite and InnoDB's instant ALTERs; declare `touches:` for
 * one that copies a table).
 *
 * Fitting, per step:
 * - two or more observations at different row counts (the newest MAX_POINTS
 *   runs or rehearsals that measured it): least squares over them, with
 *   neither part allowed below zero;
 * - one observation (the usual case: one rehearsal on a copy): the fixed
 *   part is the cost of starting the command and connecting, once per run
 *   of it, taken from the same run's shortest step that touches no rows (a
 *   command that started, found little or nothing to do, and stopped); the
 *   rest of the observed time is per row. A data step that declares `batch:`
 *   runs once per batch, so here it will run ceil(rows / batch) times, each
 *   paying that start again: nova's migrate_flavor_data --max-number 50 over
 *   60 rows is 2 runs, over 600 rows 12. Taking the fixed part as zero (pure
 *   proportion) overpredicts a step whose copy was tiny; taking it from an
 *   average step overstates it (a sync running twenty migrations is not
 *   overhead); ignoring the batches underpredicts a copy that fit in one.
 * - an observation with no rows (the copy had nothing for a data step to do)
 *   cannot be scaled: its time is kept, and the prediction says so.
 *
 * Pure: the observations and row counts are read before (check/gather.ts,
 * core/run.ts), so this is unit-tested with plain objects.
 */

/** One step as a run or rehearsal measured it. */
export interface Observation {
  ms: number;
  /** How many times its command ran (a data step's batches); absent: once. */
  runs?: number | undefined;
  /** The rows it touched when it started; null: the step declares none (its time is taken as fixed). */
  rows: number | null;
  /** Where it was measured, for people: "rehearsal 2026-… (run 1)". */
  from: string;
}

export type ModelKind =
  /** No rows to scale by: the observed time. */
  | 'fixed'
  /** One observation: fixed part from the run's shortest row-less step, the rest per row. */
  | 'scaled'
  /** Least squares over several observations at different row counts. */
  | 'fitted'
  /** Observed with no rows while the target has some: the time is a guess (the observed one). */
  | 'unscalable';

export interface StepPrediction {
  stepId: string;
  model: ModelKind;
  /** The fixed part: `runs` times the cost of one start when scaled, the fit's intercept when fitted. */
  fixedMs: number;
  /** Runs of the command predicted here (a `batch:` data step's batches), when scaled; else 1. */
  runs?: number | undefined;
  perRowMs: number;
  /** The target's rows now; undefined when not known or the step declares none. */
  rows: number | undefined;
  /** The inputs, newest first (the first is from the run the hop's estimate is taken from). */
  observed: readonly Observation[];
  ms: number;
}

/** Observations a fit uses at most: older ones describe an older chain, machine or data. */
export const MAX_POINTS = 5;

/** Least squares of ms on rows, each part at least zero. */
export function fitLine(points: readonly { rows: number; ms: number }[]): { fixedMs: number; perRowMs: number } {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.rows, 0) / n;
  const my = points.reduce((s, p) => s + p.ms, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.rows - mx) ** 2, 0);
  const sxy = points.reduce((s, p) => s + (p.rows - mx) * (p.ms - my), 0);
  const slope = sxx === 0 ? 0 : sxy / sxx;
  if (slope <= 0) return { fixedMs: my, perRowMs: 0 }; // more rows never made it faster: the noise is the signal
  const intercept = my - slope * mx;
  if (intercept >= 0) return { fixedMs: intercept, perRowMs: slope };
  // A negative fixed part means nothing: the line through the origin instead.
  const sx2 = points.reduce((s, p) => s + p.rows * p.rows, 0);
  return { fixedMs: 0, perRowMs: points.reduce((s, p) => s + p.rows * p.ms, 0) / sx2 };
}

/**
 * One step's prediction. `observed` newest first, the first from the run
 * the hop is estimated from; `rowsNow` the target's rows (undefined: not
 * known); `overheadMs` the shortest row-less step of that first run.
 */
export function predictStep(stepId: string, observed: readonly Observation[], rowsNow: number | undefined, overheadMs: number | undefined, batch?: number | undefined): StepPrediction {
  const latest = observed[0]!;
  const fixed = (model: ModelKind): StepPrediction => ({ stepId, model, fixedMs: latest.ms, perRowMs: 0, rows: rowsNow, observed: observed.slice(0, 1), ms: latest.ms });
  if (latest.rows === null || rowsNow === undefined) return fixed('fixed');
  const points = observed.slice(0, MAX_POINTS).filter((o): o is Observation & { rows: number } => o.rows !== null);
  if (new Set(points.map((p) => p.rows)).size >= 2) {
    const { fixedMs, perRowMs } = fitLine(points);
    return { stepId, model: 'fitted', fixedMs, perRowMs, rows: rowsNow, observed: points, ms: fixedMs + perRowMs * rowsNow };
  }
  if (latest.rows === 0) return rowsNow === 0 ? fixed('fixed') : fixed('unscalable');
  const runsThen = batch !== undefined ? Math.max(1, latest.runs ?? 1) : 1;
  const runsNow = batch !== undefined ? Math.max(1, Math.ceil(rowsNow / batch)) : 1;
  const start = Math.min(latest.ms / runsThen, overheadMs ?? 0);
  const perRowMs = (latest.ms - start * runsThen) / latest.rows;
  return { stepId, model: 'scaled', fixedMs: start * runsNow, runs: runsNow, perRowMs, rows: rowsNow, observed: observed.slice(0, 1), ms: start * runsNow + perRowMs * rowsNow };
}

/** The cost of starting a command with nothing to do, as one run measured it: its shortest step that touches no rows. */
export function overheadOf(steps: readonly { ms: number; rows: number | null }[]): number | undefined {
  const free = steps.filter((s) => s.rows === null).map((s) => s.ms);
  return free.length === 0 ? undefined : Math.min(...free);
}

/** How much larger the target is than the copy a run measured, over the steps that scale: undefined when nothing scales. */
export function sizeRatio(steps: readonly StepPrediction[]): { observedRows: number; rowsNow: number; ratio: number } | undefined {
  const scaled = steps.filter((s) => s.rows !== undefined && s.observed[0]?.rows !== null && s.observed[0]?.rows !== undefined);
  if (scaled.length === 0) return undefined;
  const observedRows = scaled.reduce((n, s) => n + (s.observed[0]!.rows ?? 0), 0);
  const rowsNow = scaled.reduce((n, s) => n + (s.rows ?? 0), 0);
  return { observedRows, rowsNow, ratio: observedRows === 0 ? (rowsNow === 0 ? 1 : Infinity) : rowsNow / observedRows };
}
