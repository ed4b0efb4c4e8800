import type { Plan, PlannedStep } from '../chain/plan.js';
import type { Version } from '../chain/types.js';
import type { StepStatus } from '../ledger/ledger.js';

/**
 * What the runner tells the world while it works (STYLE.md, "the core emits
 * events; the CLI renders them"): progress bars on a TTY, plain lines
 * otherwise. The ledger is written by the runner itself, not by a listener,
 * because its writes must happen in order with the child processes.
 */
export type RunEvent =
  | { type: 'env'; env: string; cached: boolean; root: string }
  | { type: 'env-progress'; env: string; bytes: number; total: number | undefined }
  | { type: 'run-start'; runId: number; plan: Plan; runDir: string }
  | { type: 'step-start'; step: PlannedStep; argv: readonly string[]; logFile: string }
  /** A data step's needed-when count just before its first run: with step-batch's, the rate it falls at. */
  | { type: 'step-needed'; step: PlannedStep; count: number }
  | { type: 'step-batch'; step: PlannedStep; attempt: number; exitCode: number | null; remaining: number | undefined }
  | { type: 'step-end'; step: PlannedStep; status: Exclude<StepStatus, 'started'>; durationMs: number; attempts: number; message?: string | undefined }
  | { type: 'snapshot-start'; beforeStep: string; databases: readonly string[]; dir: string }
  | { type: 'snapshot'; beforeStep: string; databases: readonly { database: string; file: string | null; bytes: number | null }[]; durationMs: number }
  | { type: 'checkpoint'; project: string; release: string; versions: Record<string, Version> }
  /** Something the operator should read (a crash found, accepted drift, a database created). */
  | { type: 'note'; text: string }
  | { type: 'run-end'; runId: number; status: 'succeeded' | 'failed' | 'interrupted' };

export type EventSink = (e: RunEvent) => void;
