import type { PreparedStep } from '../chain/argv.js';
import type { Plan } from '../chain/plan.js';
import type { Version } from '../chain/types.js';
import { estimate, batchesOf, rowsNowOf, type Estimate } from './estimate.js';
import type { CheckFacts, CheckRow, Result } from './facts.js';
import { batchesCheck, blockerCheck, chainCheck, databasesCheck, driftCheck, envsCheck, findStep, ledgerCheck, planCheck, recoveryCheck, targetCheck, versionsCheck } from './rules.js';
import { snapshotCheck } from './rules-snapshots.js';
import { sizeCheck } from './rules-estimate.js';
import { clientsCheck, collationsCheck, enginesCheck, freeSpaceCheck, transactionsCheck } from './rules-server.js';

/**
 * check-migrations' verdict: every check in order, the worst result, the
 * plan and the estimate. The checks are pure functions over the facts
 * gather.ts read (rules.ts, rules-server.ts), in the manner of
 * `nova-status upgrade check`: each Success, Warning or Failure with
 * details; the worst one decides the exit code.
 */

export interface CheckReport {
  chain: string | undefined;
  target: string;
  checks: CheckRow[];
  result: Result;
  /** As probed; undefined when the target could not be read. */
  versions: Record<string, Record<string, Version>> | undefined;
  plan: Plan | undefined;
  steps: PreparedStep[] | undefined;
  estimate: Estimate | undefined;
}

export const RANK: Record<Result, number> = { Success: 0, Warning: 1, Failure: 2 };

export function worst(rows: readonly { result: Result }[]): Result {
  return rows.reduce<Result>((w, r) => (RANK[r.result] > RANK[w] ? r.result : w), 'Success');
}

/** nova-status's mapping: 0 success, 1 warning, 2 failure (255, unexpected errors, is main.ts's). */
export function exitCodeFor(result: Result): number {
  return RANK[result];
}



export function evaluate(f: CheckFacts): CheckReport {
  const checks: CheckRow[] = [chainCheck(f)];
  const chain = f.chain;
  const pre = f.preflight;
  const base = { chain: chain?.name, target: f.targetDescription, versions: pre?.versions, plan: undefined, steps: undefined, estimate: undefined };
  if (!chain) {
    // Without a chain there is no plan, but the target and the ledger are still worth knowing.
    checks.push(targetCheck(f), ledgerCheck(f));
    return { ...base, checks, result: worst(checks) };
  }
  const needed = pre?.plan ? new Set(pre.plan.steps.map((s) => s.step.env)) : undefined;
  checks.push(envsCheck(f, needed), targetCheck(f));
  if (f.reach.ok && pre) {
    checks.push(databasesCheck(chain, f), versionsCheck(chain, pre));
    const pc = planCheck(pre);
    if (pc) checks.push(pc);
    for (const b of f.blockers) checks.push(blockerCheck(chain, b, pre.plan));
    if (pre.plan) checks.push(batchesCheck(chain, pre.plan, pre.neededCounts, f.blockers, (project, ref, database) => findStep(chain, project, ref, database)));
    checks.push(clientsCheck(f), transactionsCheck(f), enginesCheck(f), collationsCheck(chain, f), freeSpaceCheck(f));
    if (pre.steps && pre.steps.length > 0) checks.push(snapshotCheck(chain, pre.steps, f));
    checks.push(driftCheck(pre));
    const rc = recoveryCheck(pre);
    if (rc) checks.push(rc);
  }
  checks.push(ledgerCheck(f));
  const est = pre?.plan ? estimate(pre.plan, f.ledger.history, rowsNowOf(pre.stepRows), batchesOf(chain)) : undefined;
  const sc = sizeCheck(est);
  if (sc) checks.push(sc);
  return { ...base, checks, result: worst(checks), plan: pre?.plan, steps: pre?.steps, estimate: est };
}
