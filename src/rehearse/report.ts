import type { Chain } from '../chain/types.js';
import type { RunRow, StepRow } from '../ledger/ledger.js';
import { stepCommand } from '../ledger/records.js';
import { shellQuote } from '../report/format.js';
import { stripAnsi } from '../report/tail.js';

/**
 * The rehearsal's findings as data: the row-count audit and the report
 * model, both pure functions of what the rehearsal read (counts, ledger
 * rows). Renderers (src/report/rehearsal.ts) turn the model into text,
 * JSON and HTML.
 */

export const REHEARSAL_FORMAT = 'leapfrog.rehearsal/v1';

/** Per project, per logical database, per table: rows. */
export type Counts = Record<string, Record<string, Record<string, number>>>;

export interface AuditRow {
  project: string;
  database: string;
  table: string;
  before: number;
  after: number;
  /** kept: same count; grew: more rows; declared: fewer, and a step that ran declares `deletes` for it; lost: fewer, undeclared. */
  verdict: 'kept' | 'grew' | 'declared' | 'lost';
  /** The steps that declare deleting from this table, when the verdict is `declared`. */
  declaredBy: string[];
}

export interface Audit {
  /**
   * passed: the chain ran to its end and no table lost rows; failed: a table lost rows no step declares;
   * incomplete: the chain stopped short, so the counts compare a half-upgraded copy and prove nothing.
   */
  status: 'passed' | 'failed' | 'incomplete';
  rows: AuditRow[];
  /** Tables only on one side (created or dropped by the chain): not compared. */
  onlyBefore: string[];
  onlyAfter: string[];
}

/**
 * Compare row counts for every table present before and after; `ran` are the ids of steps that ran,
 * `finished` whether the chain reached its end (a rehearsal under a failed run never says "passed").
 */
export function audit(chain: Chain, before: Counts, after: Counts, ran: ReadonlySet<string>, finished: boolean): Audit {
  const rows: AuditRow[] = [];
  const onlyBefore: string[] = [];
  const onlyAfter: string[] = [];
  const steps = chain.releases.flatMap((r) => r.steps);
  for (const project of Object.keys(chain.projects)) {
    for (const db of Object.keys(chain.projects[project]!.databases)) {
      const b = before[project]?.[db] ?? {};
      const a = after[project]?.[db] ?? {};
      for (const table of Object.keys(b).sort()) {
        if (!(table in a)) {
          onlyBefore.push(`${project}.${db}.${table}`);
          continue;
        }
        const [nb, na] = [b[table]!, a[table]!];
        const declaredBy = steps.filter((s) => s.project === project && ran.has(s.id) && (s.deletes ?? []).includes(table)).map((s) => s.id);
        const verdict = na === nb ? 'kept' : na > nb ? 'grew' : declaredBy.length > 0 ? 'declared' : 'lost';
        rows.push({ project, database: db, table, before: nb, after: na, verdict, declaredBy: verdict === 'declared' ? declaredBy : [] });
      }
      for (const table of Object.keys(a).sort()) if (!(table in b)) onlyAfter.push(`${project}.${db}.${table}`);
    }
  }
  return { status: rows.some((r) => r.verdict === 'lost') ? 'failed' : finished ? 'passed' : 'incomplete', rows, onlyBefore, onlyAfter };
}

export interface HopReport {
  project: string;
  release: string;
  status: 'succeeded' | 'failed' | 'interrupted' | 'incomplete';
  /** Milliseconds from the run's start. */
  startMs: number;
  durationMs: number;
  /** The same hop's duration in the previous rehearsal of this chain (`previous`), or null. */
  previousMs?: number | null;
  steps: StepReport[];
}

export interface StepReport {
  id: string;
  kind: string;
  status: string;
  /** How many times the step's command ran (a data step runs until its needed-when count is 0). */
  attempts: number;
  durationMs: number | null;
  /** The step's log file, absolute (the HTML report links to it relative to where the report is written). */
  log: string | null;
}

export interface Failure {
  step: string;
  message: string;
  /** The step's argv, shell-quoted: pasted into a shell, it is the same argv. */
  command: string;
  log: string | null;
  logTail: string[];
}

export interface RehearsalReport {
  format: typeof REHEARSAL_FORMAT;
  chain: string;
  status: 'succeeded' | 'failed';
  /** Where the rehearsal ran: a scratch server, an existing server (with a prefix), or SQLite copies. */
  target: { mode: 'scratch' | 'server' | 'sqlite'; description: string; prefix?: string | undefined; kept: boolean };
  stateDir: string;
  ledger: string;
  run: number | null;
  restore: { files: string[]; bytes: number; durationMs: number; jobs: number; statements: number } | null;
  hops: HopReport[];
  versions: Record<string, Record<string, unknown>>;
  failures: Failure[];
  audit: Audit | null;
  /** When the rehearsal ended (ISO 8601, UTC). */
  createdAt: string;
  leapfrogVersion: string;
  chainFile: string;
  chainSha256: string;
  /** The dump files restored (or SQLite files copied), with their sizes. */
  dumps: { file: string; bytes: number }[];
  /** The server the chain ran on: flavour and version (SQLite: the library leapfrog links). */
  server: { flavour: string; version: string } | null;
  /** The chain's envs and the sha256 of each env's source tarball. */
  envs: { name: string; sha256: string }[];
  /** The steps that took longest, slowest first (at most five). */
  slowest: { id: string; project: string; release: string; durationMs: number; attempts: number }[];
  /** The newest earlier rehearsal of the same chain that succeeded (in the same state directory): what the hops' `previousMs` come from. */
  previous: { rehearsal: string; finishedAt: string | null } | null;
  /** Why the timings may be shorter than the real window's (a scratch server's throwaway settings), or null. */
  caveat: string | null;
  /** What the real window should expect: the chain's wall time at this parallelism, and hops back to back. Null when the rehearsal failed: its timings predict nothing. */
  prediction: { parallel: number; wallMs: number; serialMs: number; perProjectMs: Record<string, number> } | null;
  error: string | null;
}

const t = (iso: string) => Date.parse(iso);

/** Hops from the ledger's step rows, in order of start. */
export function hopsFromLedger(run: RunRow, steps: readonly StepRow[]): HopReport[] {
  const start = t(run.started_at);
  const byHop = new Map<string, StepRow[]>();
  for (const s of steps) {
    const k = `${s.project}@${s.release}`;
    (byHop.get(k) ?? byHop.set(k, []).get(k)!).push(s);
  }
  const hops: HopReport[] = [];
  for (const rows of byHop.values()) {
    const first = Math.min(...rows.map((r) => t(r.started_at)));
    const last = Math.max(...rows.map((r) => (r.finished_at ? t(r.finished_at) : t(r.started_at) + (r.duration_ms ?? 0))));
    const statuses = rows.map((r) => r.status);
    const status = statuses.includes('failed') ? 'failed' : statuses.includes('interrupted') ? 'interrupted' : statuses.includes('started') ? 'incomplete' : 'succeeded';
    hops.push({
      project: rows[0]!.project,
      release: rows[0]!.release,
      status,
      startMs: first - start,
      durationMs: Math.max(0, last - first),
      steps: rows.map((r) => ({ id: r.step_id, kind: r.kind, status: r.status, attempts: r.attempts, durationMs: r.duration_ms, log: r.log_path })),
    });
  }
  return hops.sort((a, b) => a.startMs - b.startMs);
}

export function failuresFromLedger(steps: readonly StepRow[]): Failure[] {
  return steps
    .filter((s) => s.status === 'failed' || s.status === 'interrupted')
    // Tails are stored without ANSI codes; a ledger from before that may still carry them.
    .map((s) => ({ step: s.step_id, message: s.error ?? s.status, command: shellQuote(stepCommand(s)), log: s.log_path, logTail: stripAnsi(s.log_tail ?? '').split('\n').filter(Boolean) }));
}

export function predict(run: RunRow | undefined, hops: readonly HopReport[], parallel: number): RehearsalReport['prediction'] {
  const perProjectMs: Record<string, number> = {};
  for (const h of hops) perProjectMs[h.project] = (perProjectMs[h.project] ?? 0) + h.durationMs;
  const serialMs = hops.reduce((n, h) => n + h.durationMs, 0);
  const wallMs = run?.finished_at ? t(run.finished_at) - t(run.started_at) : Math.max(0, ...hops.map((h) => h.startMs + h.durationMs));
  return { parallel, wallMs, serialMs, perProjectMs };
}

/** The `n` steps that took longest, slowest first. */
export function slowestSteps(hops: readonly HopReport[], n = 5): RehearsalReport['slowest'] {
  return hops
    .flatMap((h) => h.steps.filter((s) => s.durationMs !== null).map((s) => ({ id: s.id, project: h.project, release: h.release, durationMs: s.durationMs!, attempts: s.attempts })))
    .sort((a, b) => b.durationMs - a.durationMs || a.id.localeCompare(b.id))
    .slice(0, n);
}

/** Each hop with the same hop's duration in `previous` (null when that rehearsal had no such hop). */
export function withPrevious(hops: readonly HopReport[], previous: readonly HopReport[] | undefined): HopReport[] {
  if (!previous) return [...hops];
  const was = new Map(previous.map((h) => [`${h.project}@${h.release}`, h.durationMs]));
  return hops.map((h) => ({ ...h, previousMs: was.get(`${h.project}@${h.release}`) ?? null }));
}
