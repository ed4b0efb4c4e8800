import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { withTarget } from '../database/session.js';
import { Ledger, type LedgerReader, type RunRow, type StepRow } from '../ledger/ledger.js';
import type { CoreContext } from './context.js';
import { preflight, type Preflight } from './preflight.js';

/**
 * `status`: where each database stands and what the last run did, from the
 * same pre-flight `plan` and `run` take (no lock, nothing written, the
 * ledger read if there is one), plus the last run's stopping step and the
 * newest rehearsal of the chain. The verdict is data; the CLI maps it to
 * its exit code (0 done, 1 work pending, 2 the last run died or failed).
 */

export type StatusVerdict = 'done' | 'pending' | 'failed';

export interface LastRun {
  run: RunRow;
  /** It never recorded its end and its process is gone. */
  died: boolean;
  /** The steps it stopped in: failed, interrupted or left `started`. */
  stoppedAt: StepRow[];
}

export interface Status {
  pre: Preflight;
  lastRun: LastRun | undefined;
  /** The newest rehearsal run of this chain under STATE_DIR/rehearsals/, and where its ledger is. */
  lastRehearsal: { run: RunRow; dir: string } | undefined;
  verdict: StatusVerdict;
}

const STOPPED = new Set(['failed', 'interrupted', 'started']);

function lastRunOf(ledger: LedgerReader | undefined, pre: Preflight): LastRun | undefined {
  const run = pre.lastRun;
  if (!ledger || !run) return undefined;
  const dead = pre.unfinished.find((d) => d.run.id === run.id && d.survivor.kind === 'dead');
  return { run, died: dead !== undefined, stoppedAt: ledger.steps(run.id).filter((s) => STOPPED.has(s.status)) };
}

/** Rehearsals keep a ledger each under STATE_DIR/rehearsals/<id>/ (src/rehearse): the newest run of this chain there. */
function lastRehearsal(stateDir: string, chain: string): Status['lastRehearsal'] {
  const root = path.join(stateDir, 'rehearsals');
  if (!existsSync(root)) return undefined;
  let best: Status['lastRehearsal'];
  for (const dir of readdirSync(root)) {
    let ledger: Ledger | undefined;
    try {
      ledger = Ledger.openForReading(path.join(root, dir));
    } catch {
      continue; // a damaged rehearsal ledger is no reason to fail the status
    }
    try {
      const run = ledger?.runs(50).find((r) => r.chain === chain);
      if (run && (!best || run.started_at > best.run.started_at)) best = { run, dir: path.join(root, dir) };
    } finally {
      ledger?.close();
    }
  }
  return best;
}

export async function status(ctx: CoreContext): Promise<Status> {
  const ledger = Ledger.openForReading(ctx.layout.stateDir);
  try {
    const pre = await withTarget(ctx.target, (session) => preflight({ chain: ctx.chain, layout: ctx.layout, session, ledger }));
    const last = lastRunOf(ledger, pre);
    const failed = last !== undefined && (last.died || last.run.status === 'failed' || last.run.status === 'interrupted');
    const done = pre.plan !== undefined && pre.plan.steps.length === 0;
    return { pre, lastRun: last, lastRehearsal: lastRehearsal(ctx.layout.stateDir, ctx.chain.name), verdict: failed ? 'failed' : done ? 'done' : 'pending' };
  } finally {
    ledger?.close();
  }
}
