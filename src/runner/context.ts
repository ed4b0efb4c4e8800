import type { StepRows } from '../database/probe.js';
import type { Estimate } from '../check/estimate.js';
import type { PlannedStep } from '../chain/plan.js';
import type { Chain, EnvDef, Version } from '../chain/types.js';
import type { ProvisionOptions } from '../envs/store.js';
import { LeapfrogError } from '../errors.js';
import type { Ledger, SnapshotRow, StepRow } from '../ledger/ledger.js';
import type { TargetSession } from '../database/session.js';
import type { Placement } from '../database/placement.js';
import type { Layout } from '../core/layout.js';
import type { EventSink } from './events.js';
import type { SnapshotMode } from './snapshot-plan.js';

/**
 * What executing a plan needs and gives back, and the errors it speaks in.
 * One lane per project (steps in order), up to `parallel` lanes at once,
 * cross-project `after:` edges honoured; every step recorded in the ledger
 * before and after its child runs, every sync verified by probing, and a
 * checkpoint after every hop.
 */

export interface RunContext {
  chain: Chain;
  envs: ReadonlyMap<string, EnvDef>;
  target: Placement;
  layout: Layout;
  ledger: Ledger;
  session: TargetSession;
  parallel: number;
  emit: EventSink;
  signal?: AbortSignal | undefined;
  /** How envs are fetched: timeouts, limits, --offline. */
  provision?: ProvisionOptions | undefined;
  /** Argv prefix that runs each step in a new network namespace (--isolate-network). */
  stepWrapper?: readonly string[] | undefined;
  /** The bwrap binary, probed before the run when a step's env is `kind: rootfs`. */
  bwrap?: string | undefined;
  kind?: 'run' | 'rehearsal';
  /** Lines to record on the run (a resumed crash, accepted drift, lost history). */
  notes?: readonly string[] | undefined;
  /** Which databases to snapshot before which hops (snapshot-plan.ts), already resolved for the target. */
  snapshot?: SnapshotMode | undefined;
  /** What the run is predicted to take (check/estimate.ts): recorded before its first step, for `ledger show`. */
  prediction?: Estimate | undefined;
  /** Per step, the rows it touches as the pre-flight counted them (core/preflight.ts): recorded with its time. */
  stepRows?: Readonly<Record<string, StepRows>> | undefined;
}

export type { SnapshotMode } from './snapshot-plan.js';

export interface RunResult {
  runId: number;
  /** The target as shown and recorded. */
  target: string;
  status: 'succeeded' | 'failed' | 'interrupted';
  versions: Record<string, Record<string, Version>>;
  error: LeapfrogError | undefined;
  runDir: string;
  ledgerFile: string;
  /** The run's step and snapshot rows as the ledger has them at its end. */
  steps: StepRow[];
  snapshots: SnapshotRow[];
  /** The mode the run took its snapshots by (`auto` resolved). */
  snapshotMode: SnapshotMode;
}


export interface Dirs {
  logs: string;
  home: string;
  tmp: string;
  work: string;
}

/** Errors of the state directory's disk, said plainly: they are the operator's to fix, and the run can be resumed. */
const DISK_FULL = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

export function asRunError(err: unknown, stateDir: string): LeapfrogError {
  if (err instanceof LeapfrogError) return err;
  const code = (err as { code?: string }).code;
  if (code !== undefined && DISK_FULL.has(code)) {
    return new LeapfrogError(
      'unexpected',
      `the state directory ${stateDir} is full (${code}): leapfrog cannot record what it does, so it stopped. Free space there (or use another --state-dir with this ledger), then run again: the run resumes from the ledger.`,
      { cause: err },
    );
  }
  // The target failed one of leapfrog's own reads (evidence, probes): the server's words, and what to do.
  // No stack: this is the server's state (a full datadir, a restart), not a bug here.
  const sqlMessage = (err as { sqlMessage?: string }).sqlMessage;
  if (sqlMessage !== undefined || (code !== undefined && SERVER_GONE.has(code))) {
    return new LeapfrogError(
      'step-failed',
      `the database server failed leapfrog's own query (${code ?? 'error'}: ${sqlMessage ?? (err as Error).message}); nothing more was run. Fix the server (space in its datadir, the server up), then run again: the run resumes from the ledger.`,
    );
  }
  return new LeapfrogError('unexpected', (err as Error).message, { cause: err });
}

/** mysql2's codes for a server that went away under a query. */
const SERVER_GONE = new Set(['PROTOCOL_CONNECTION_LOST', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export const hopKey = (p: PlannedStep) => `${p.step.project}@${p.step.release}`;
export const interrupted = () => new LeapfrogError('interrupted', 'interrupted: stopped at a safe point; run again to resume');
