import type { SizeComparison } from '../check/estimate.js';
import type { StepPrediction } from '../check/predict.js';
import { formatMs } from './render.js';

/**
 * The prediction's model for people: each scaled step with its inputs, so
 * an operator can redo the sum by hand (check-migrations, `ledger show`).
 */

const perRow = (ms: number) => (ms >= 1 ? `${ms.toFixed(1)} ms` : ms >= 0.01 ? `${ms.toFixed(3)} ms` : `${(ms * 1000).toFixed(1)} µs`);
const n = (x: number) => x.toLocaleString('en-US');

/** One step's model in a line; undefined for a step whose time is simply the one measured (nothing scales). */
export function modelText(m: StepPrediction): string | undefined {
  const seen = m.observed.map((o) => `${formatMs(o.ms)} at ${o.rows === null ? '?' : n(o.rows)} rows${o.runs !== undefined && o.runs > 1 ? ` in ${o.runs} runs` : ''} (${o.from})`).join('; ');
  switch (m.model) {
    case 'fixed':
      return undefined;
    case 'unscalable':
      return `${m.stepId}: ${formatMs(m.ms)} as measured (${seen}); ${n(m.rows ?? 0)} rows here, none there: its time here is not known`;
    case 'scaled':
    case 'fitted':
      return `${m.stepId}: ${m.runs !== undefined && m.runs > 1 ? `${m.runs} runs × ${formatMs(m.fixedMs / m.runs)}` : formatMs(m.fixedMs)} + ${perRow(m.perRowMs)}/row × ${n(m.rows ?? 0)} rows = ${formatMs(m.ms)} (${m.model === 'fitted' ? 'fitted to ' : 'scaled from '}${seen})`;
  }
}

/** "10× smaller": said when the copy a run measured had at most half this target's rows (or twice). */
export function sizeText(s: SizeComparison): string | undefined {
  if (s.ratio >= 2) return `${s.from} ran on a copy ${s.ratio === Infinity ? 'with none of the rows of' : `${s.ratio.toFixed(s.ratio < 10 ? 1 : 0)}× smaller than`} this target (${n(s.observedRows)} rows there, ${n(s.rowsNow)} here, in the steps that scale with rows)`;
  if (s.ratio <= 0.5) return `${s.from} ran on a copy ${(1 / s.ratio).toFixed(1)}× larger than this target (${n(s.observedRows)} rows there, ${n(s.rowsNow)} here, in the steps that scale with rows)`;
  return undefined;
}

export function modelJson(m: StepPrediction) {
  return { step: m.stepId, model: m.model, fixedMs: m.fixedMs, runs: m.runs ?? 1, perRowMs: m.perRowMs, rows: m.rows ?? null, ms: m.ms, observed: m.observed.map((o) => ({ ms: o.ms, rows: o.rows, runs: o.runs ?? 1, from: o.from })) };
}
