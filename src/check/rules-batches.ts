import type { Plan } from '../chain/plan.js';
import type { Chain, StepDef } from '../chain/types.js';
import type { BlockerFact, CheckRow, Result } from './facts.js';

/**
 * Data batches: can each planned data step move the rows counted now within
 * its max-runs? A step's `batch:` (the rows one run handles, as its argv's
 * `--max-number 50` says) times `max-runs` is what it can do before the
 * runner gives up (src/runner/step.ts); the rows are its needed-when count,
 * else the count of the blockers it fixes. A step that cannot cover them
 * would fail after its last run, which these numbers predict before the window.
 */

/** Beyond this many times max-runs the margin is far off: a Failure, not a Warning. */
export const FAR_OFF = 2;

export interface BatchFact {
  step: string;
  rows: number;
  /** Where the rows were counted: "needed-when" or the blockers' names. */
  counted: string;
  batch: number;
  maxRuns: number;
  projectedRuns: number;
  result: Result;
}

const plural = (n: number, word: string) => `${n} ${n === 1 ? word : `${word}s`}`;

/** The rows a step must move, as counted now; undefined when nothing counts them yet. */
function rowsFor(step: StepDef, neededCounts: Readonly<Record<string, number>>, blockers: readonly BlockerFact[], fixedBy: (b: BlockerFact) => string | undefined): { rows: number; counted: string } | undefined {
  const needed = neededCounts[step.id];
  if (needed !== undefined) return { rows: needed, counted: 'its needed-when query' };
  const counted = blockers.filter((b) => b.outcome.kind === 'count' && fixedBy(b) === step.id);
  if (counted.length === 0) return undefined;
  return { rows: counted.reduce((n, b) => n + (b.outcome.kind === 'count' ? b.outcome.count : 0), 0), counted: `blocker ${counted.map((b) => `"${b.name}"`).join(', ')}` };
}

export function batchesCheck(chain: Chain, plan: Plan, neededCounts: Readonly<Record<string, number>>, blockers: readonly BlockerFact[], findStep: (project: string, ref: string, database: string) => StepDef | undefined): CheckRow {
  const name = 'Data batches';
  const data = plan.steps.map((p) => p.step).filter((s) => s.kind === 'data');
  if (data.length === 0) return row(name, 'Success', 'No data step in the plan.');
  const facts: BatchFact[] = [];
  const lines: string[] = [];
  const quiet: string[] = [];
  for (const s of data) {
    if (s.batch === undefined) {
      quiet.push(`${s.id}: declares no batch:, so its runs are not projected`);
      continue;
    }
    const r = rowsFor(s, neededCounts, blockers, (b) => findStep(b.project, b.fixedBy ?? '', b.database)?.id);
    if (r === undefined) {
      const later = blockers.filter((b) => b.outcome.kind === 'not-yet' && findStep(b.project, b.fixedBy ?? '', b.database)?.id === s.id).map((b) => `"${b.name}"`);
      quiet.push(`${s.id}: its rows cannot be counted yet (${later.length > 0 ? `blocker ${later.join(', ')} names what earlier steps create` : 'no needed-when that can run now, no blocker it fixes'}); its runs are not projected`);
      continue;
    }
    // A step repeated on an exit code needs one last run to report "nothing left".
    const projectedRuns = Math.ceil(r.rows / s.batch) + (s.repeatWhileExit !== undefined && r.rows > 0 ? 1 : 0);
    const result: Result = projectedRuns <= s.maxRuns ? 'Success' : projectedRuns > FAR_OFF * s.maxRuns ? 'Failure' : 'Warning';
    facts.push({ step: s.id, rows: r.rows, counted: r.counted, batch: s.batch, maxRuns: s.maxRuns, projectedRuns, result });
    const head = `${s.id}${s.name ? ` (${s.name})` : ''}: ${plural(r.rows, 'row')} (${r.counted}) at ${s.batch} a run: ${plural(projectedRuns, 'run')}, max-runs ${s.maxRuns}`;
    if (result === 'Success') lines.push(`${head}: fits.`);
    else {
      const covers = s.batch * s.maxRuns;
      lines.push(
        `${head}: it can move ${covers} rows before the runner gives up${result === 'Failure' ? `, far off (more than ${FAR_OFF}× max-runs)` : ''}; the run would fail after ${s.maxRuns} runs. Raise max-runs to at least ${projectedRuns} in ${chain.file}, or a larger batch (the argv's and batch: together).`,
      );
    }
  }
  const result = facts.reduce<Result>((w, f) => (f.result === 'Failure' || (f.result === 'Warning' && w === 'Success') ? f.result : w), 'Success');
  return row(name, result, [...lines, ...quiet].join('\n') || 'No data step in the plan.', facts);
}

const row = (check: string, result: Result, details: string, data?: unknown): CheckRow => ({ check, result, details, ...(data === undefined ? {} : { data }) });
