import os from 'node:os';
import { checkpointFingerprints, checkpointShapes, checkpointVersions } from '../ledger/records.js';
import type { Chain, Version } from '../chain/types.js';
import { versionOrder } from '../chain/position.js';
import { compareToExpectation, formatVersion, versionToJson } from '../chain/version.js';
import { diffShapes, fingerprint, type SchemaShape } from '../database/fingerprint.js';
import type { TargetSession } from '../database/session.js';
import type { LedgerReader, RunRow, StepRow } from '../ledger/ledger.js';

/**
 * What the ledger says about earlier runs of this chain on this target, set
 * against what the databases say now: runs that never recorded their end
 * and what may still be alive of them, lost history, and schema drift since
 * the last checkpoint. Reading only: `run` records what it decides
 * (markCrashed) once it holds the lock.
 */

type AllVersions = Readonly<Record<string, Readonly<Record<string, Version>>>>;

/** What may still be alive of a run that never recorded its end. */
export type Survivor =
  /** Its leapfrog process is still running on this host: it is not dead at all. */
  | { kind: 'running' }
  /** It ran on another host: nothing here can tell whether it is alive. */
  | { kind: 'remote' }
  /** leapfrog died, but the child of its last step still runs as this process group. */
  | { kind: 'step'; step: StepRow; pgid: number }
  | { kind: 'dead' };

export interface DeadRun {
  run: RunRow;
  /** Its step rows still `started`: what it was doing when it died. */
  steps: StepRow[];
  survivor: Survivor;
}

function alive(pid: number, group = false): boolean {
  try {
    process.kill(group ? -pid : pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function survivorOf(run: RunRow, steps: readonly StepRow[]): Survivor {
  if (run.host !== os.hostname()) return { kind: 'remote' };
  if (alive(run.pid)) return { kind: 'running' };
  for (const s of steps) if (s.pid !== null && alive(s.pid, true)) return { kind: 'step', step: s, pgid: s.pid };
  return { kind: 'dead' };
}

/** Runs of this chain on this target that never recorded their end (this process's own excepted), each judged now. */
export function unfinishedRuns(ledger: LedgerReader, chain: Chain, target: string): DeadRun[] {
  return ledger
    .unfinished(chain.name, target)
    .filter((u) => u.run.pid !== process.pid || u.run.host !== os.hostname())
    .map(({ run, steps }) => ({ run, steps, survivor: survivorOf(run, steps) }));
}

/**
 * Wait up to `waitMs` for the orphaned steps of dead runs to end (`run
 * --wait-lock` covers them: they are still that run's work), then judge
 * every unfinished run again.
 */
export async function awaitSurvivors(ledger: LedgerReader, chain: Chain, target: string, waitMs: number, signal?: AbortSignal): Promise<DeadRun[]> {
  const deadline = Date.now() + waitMs;
  let runs = unfinishedRuns(ledger, chain, target);
  while (runs.some((r) => r.survivor.kind === 'step') && Date.now() < deadline && !signal?.aborted) {
    await new Promise((r) => setTimeout(r, 200));
    runs = unfinishedRuns(ledger, chain, target);
  }
  return runs;
}

/** Why `run` must not start while this dead run may live on; undefined when it may (it is dead, or `--resume` vouches for a remote one). */
export function survivorProblem(d: DeadRun, chain: Chain, resume: boolean): string | undefined {
  const { run, survivor } = d;
  switch (survivor.kind) {
    case 'running':
      return `run ${run.id} of chain ${chain.name} on this target is still running (pid ${run.pid} on ${run.host}, since ${run.started_at}); wait for it, or stop it with kill -TERM ${run.pid}`;
    case 'remote':
      return resume
        ? undefined
        : `run ${run.id} of chain ${chain.name} on this target started on host ${run.host} (pid ${run.pid}, ${run.started_at}) and never finished; leapfrog cannot see whether it is still running from here. If it is dead, run again with --resume.`;
    case 'step':
      return `step ${survivor.step.step_id} of run ${run.id} (a dead run) is still running as process group ${survivor.pgid}: another migration must not start on the same database. Wait for it to end (--wait-lock SECONDS waits for it; or stop it: kill -TERM -${survivor.pgid}), then run again.`;
    case 'dead':
      return undefined;
  }
}

/** What the databases say now about the projects of a dead run's steps, for notes. */
export function probedNow(steps: readonly StepRow[], versions: AllVersions): string {
  return steps.map((s) => `${s.project} ${Object.entries(versions[s.project] ?? {}).map(([db, v]) => `${db} ${formatVersion(v)}`).join(', ')}`).join('; ');
}

/** True when the target is past the chain's start but the ledger knows nothing of it. */
export function historyLost(ledger: LedgerReader | undefined, chain: Chain, target: string, versions: AllVersions): boolean {
  if (ledger?.lastRun(chain.name, target)) return false;
  return Object.values(chain.projects).some((p) =>
    Object.keys(p.databases).some((db) => {
      const v = versions[p.name]?.[db];
      const start = p.start[db];
      if (!v || v.kind === 'absent') return false;
      return !start || compareToExpectation(v, start, versionOrder(chain, p, db)) !== 'equal';
    }),
  );
}

export interface Drift {
  project: string;
  database: string;
  checkpoint: string;
  changes: string[];
}

/**
 * Databases whose schema changed since their last checkpoint although their
 * version did not: someone altered them by hand, and the next migration may
 * not expect that.
 */
export async function findDrift(ledger: LedgerReader | undefined, chain: Chain, session: TargetSession, target: string, versions: AllVersions): Promise<Drift[]> {
  const drift: Drift[] = [];
  for (const cp of ledger?.lastCheckpoints(chain.name, target) ?? []) {
    const project = chain.projects[cp.project];
    if (!project || cp.shapes === null) continue;
    const storedVersions = checkpointVersions(cp);
    const storedPrints = checkpointFingerprints(cp);
    const storedShapes = checkpointShapes<SchemaShape>(cp) ?? {};
    for (const [db, name] of Object.entries(project.databases)) {
      const v = versions[cp.project]?.[db];
      if (!v || JSON.stringify(versionToJson(v)) !== JSON.stringify(storedVersions[db] ?? null)) continue;
      const now = await fingerprint(session, name);
      if ((now?.sha256 ?? null) === (storedPrints[db] ?? null)) continue;
      const before = storedShapes[db] ?? { tables: {} };
      drift.push({ project: cp.project, database: db, checkpoint: `${cp.project}@${cp.release} (checkpoint ${cp.id})`, changes: diffShapes(before, now?.shape ?? { tables: {} }) });
    }
  }
  return drift;
}

export function describeDrift(d: Drift): string {
  return `project ${d.project}, database ${d.database}: schema changed since ${d.checkpoint} at the same version: ${d.changes.length > 0 ? d.changes.join('; ') : 'details differ'}`;
}
