import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Ledger } from '../ledger/ledger.js';
import type { RunTiming } from './facts.js';

/**
 * The step times of earlier succeeded runs of a chain, on any target, and of
 * the rehearsals kept under STATE_DIR/rehearsals/: what check-migrations'
 * estimate (estimate.ts) and run's progress ETA are computed from. A
 * rehearsal's timings are the point of rehearsing.
 */

function timings(ledger: Pick<Ledger, 'succeededRuns'>, chain: string, label: (run: number, kind: string) => string): RunTiming[] {
  return ledger.succeededRuns(chain).map(({ run, steps }) => ({
    runId: run.id,
    label: label(run.id, run.kind),
    kind: run.kind,
    target: run.target,
    finishedAt: run.finished_at,
    steps: steps.map((s) => ({ stepId: s.step_id, project: s.project, release: s.release, status: s.status, durationMs: s.duration_ms, rows: s.rows ?? null, attempts: s.attempts })),
  }));
}

/** Rehearsals keep a ledger of their own under STATE_DIR/rehearsals/<id>/. */
function rehearsalHistory(stateDir: string, chain: string): RunTiming[] {
  const root = path.join(stateDir, 'rehearsals');
  if (!existsSync(root)) return [];
  const out: RunTiming[] = [];
  for (const dir of readdirSync(root).sort().reverse()) {
    let ledger: Ledger | undefined;
    try {
      ledger = Ledger.openForReading(path.join(root, dir));
    } catch {
      continue; // a damaged rehearsal ledger is no reason to fail the report
    }
    if (!ledger) continue;
    try {
      out.push(...timings(ledger, chain, (id) => `rehearsal ${dir} (run ${id})`));
    } finally {
      ledger.close();
    }
  }
  return out;
}

/** Succeeded runs of the chain in this state directory's ledger and in its rehearsals, newest first. */
export function chainHistory(ledger: Pick<Ledger, 'succeededRuns'> | undefined, stateDir: string, chain: string): RunTiming[] {
  const own = ledger ? timings(ledger, chain, (id, kind) => `${kind === 'rehearsal' ? 'rehearsal ' : ''}run ${id}`) : [];
  return [...own, ...rehearsalHistory(stateDir, chain)].sort((a, b) => (b.finishedAt ?? '').localeCompare(a.finishedAt ?? ''));
}

/** The same, for a state directory whose ledger is not open (a rehearsal estimates from the one it was started from). */
export function chainHistoryAt(stateDir: string, chain: string): RunTiming[] {
  let ledger: Ledger | undefined;
  try {
    ledger = Ledger.openForReading(stateDir);
  } catch {
    ledger = undefined; // an unreadable ledger leaves the rehearsals; the run does not need an estimate
  }
  try {
    return chainHistory(ledger, stateDir, chain);
  } finally {
    ledger?.close();
  }
}
