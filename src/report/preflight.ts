import { hint, type HintFlags } from '../core/layout.js';
import type { Preflight } from '../core/preflight.js';

/**
 * What the pre-flight found that the operator should read beside the plan:
 * runs that died (which `run` will mark and resume from), lost history.
 * `plan`, `run --dry-run` and `run` show the same lines; the `run` they name
 * carries the flags that reach this chain, target and state (`places`).
 */
export function preflightNotes(pre: Preflight, places: HintFlags): string[] {
  const notes: string[] = [];
  const run = hint(places, ['run']);
  const blocked = pre.refusals.some((r) => r.about === 'recovery');
  for (const d of pre.unfinished) {
    if (d.survivor.kind !== 'dead') continue;
    notes.push(
      d.steps.length > 0
        ? `run ${d.run.id} died during ${d.steps.map((s) => `${s.step_id} (${s.kind})`).join(', ')}; \`${run}\` marks it interrupted${blocked ? '' : ' and resumes from where the databases stand'}`
        : `run ${d.run.id} died between steps; \`${run}\` marks it interrupted and resumes`,
    );
  }
  const inFlight = [...pre.inFlight].filter((id) => !blocked && !pre.unfinished.some((d) => d.steps.some((s) => s.step_id === id)));
  if (inFlight.length > 0) notes.push(`stopped inside ${inFlight.join(', ')} (interrupted): a database may stand part-way; the plan resumes there`);
  if (pre.historyLost) notes.push(`no history of chain ${pre.chain.name} on this target in the ledger, but its databases are past the chain's start: the plan is derived from their versions alone; data steps without a needed-when query will run again`);
  return notes;
}
