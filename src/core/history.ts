import os from 'node:os';
import type { Chain, Version } from '../chain/types.js';
import { versionOrder } from '../chain/plan.js';
import { compareToExpectation, formatVersion, versionToJson } from '../chain/version.js';
import { LeapfrogError } from '../errors.js';
import type { Ledger, RunRow, StepRow } from '../ledger/ledger.js';
import { diffShapes, fingerprint, type SchemaShape } from '../database/fingerprint.js';
import type { TargetSession } from '../database/session.js';
import { describeTarget } from '../database/url.js';

/**
 * What the ledger says about earlier runs of this chain on this target, set
 * against what the databases say now: crashed runs and their dangling steps,
 * lost history, and schema drift since the last checkpoint.
 */

export interface Unfinished {
  run: RunRow;
  steps: StepRow[];
}

function alive(pid: number, group = false): boolean {
  try {
    process.kill(group ? -pid : pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs that never recorded their end. Refuses while one may still be alive:
 * its process on this host, a step's process group left behind by a killed
 * run (waited for up to `waitMs`), or a run on another host (unless the
 * operator says --resume).
 */
export async function findUnfinished(ledger: Ledger, chain: Chain, session: TargetSession, resume: boolean, waitMs = 0): Promise<Unfinished[]> {
  const target = describeTarget(session.target);
  const found = ledger.unfinished(chain.name, target).filter((u) => u.run.pid !== process.pid || u.run.host !== os.hostname());
  for (const { run, steps } of found) {
    if (run.host === os.hostname() && alive(run.pid)) {
      throw new LeapfrogError('refused', `run ${run.id} of chain ${chain.name} on this target is still running (pid ${run.pid} on ${run.host}, since ${run.started_at}); wait for it, or stop it with kill -TERM ${run.pid}`);
    }
    if (run.host !== os.hostname() && !resume) {
      throw new LeapfrogError(
        'refused',
        `run ${run.id} of chain ${chain.name} on this target started on host ${run.host} (pid ${run.pid}, ${run.started_at}) and never finished; leapfrog cannot see whether it is still running from here. If it is dead, run again with --resume.`,
      );
    }
    for (const s of steps) {
      // --wait-lock covers the dead run's last step too: it is still that run's work.
      const deadline = Date.now() + waitMs;
      while (s.pid !== null && run.host === os.hostname() && alive(s.pid, true) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (s.pid !== null && run.host === os.hostname() && alive(s.pid, true)) {
        throw new LeapfrogError(
          'refused',
          `step ${s.step_id} of run ${run.id} (a dead run) is still running as process group ${s.pid}: another migration must not start on the same database. Wait for it to end (or stop it: kill -TERM -${s.pid}), then run again.`,
        );
      }
    }
  }
  return found;
}

/** Record the crash in the ledger: dangling steps become `interrupted`, with what the databases say now. */
export function markCrashed(ledger: Ledger, found: readonly Unfinished[], versions: Readonly<Record<string, Readonly<Record<string, Version>>>>): string[] {
  const notes: string[] = [];
  for (const { run, steps } of found) {
    const now = steps
      .map((s) => `${s.project} ${Object.entries(versions[s.project] ?? {}).map(([db, v]) => `${db} ${formatVersion(v)}`).join(', ')}`)
      .join('; ');
    const why = `the run died while this step was running; found by the next run (pid ${process.pid})${now ? `, which re-probed: ${now}` : ''}`;
    ledger.markInterrupted(run.id, steps.map((s) => s.id), why);
    notes.push(
      steps.length > 0
        ? `run ${run.id} died during ${steps.map((s) => `${s.step_id} (${s.kind})`).join(', ')}; marked interrupted; the databases say: ${now}. Resuming from there.`
        : `run ${run.id} died between steps; marked interrupted. Resuming.`,
    );
  }
  return notes;
}

/** True when the target is past the chain's start but the ledger knows nothing of it. */
export function historyLost(ledger: Ledger, chain: Chain, session: TargetSession, versions: Readonly<Record<string, Readonly<Record<string, Version>>>>): boolean {
  if (ledger.lastRun(chain.name, describeTarget(session.target))) return false;
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
export async function findDrift(ledger: Ledger, chain: Chain, session: TargetSession, versions: Readonly<Record<string, Readonly<Record<string, Version>>>>): Promise<Drift[]> {
  const drift: Drift[] = [];
  for (const cp of ledger.lastCheckpoints(chain.name, describeTarget(session.target))) {
    const project = chain.projects[cp.project];
    if (!project || cp.shapes === null) continue;
    const storedVersions = JSON.parse(cp.versions) as Record<string, unknown>;
    const storedPrints = JSON.parse(cp.fingerprints) as Record<string, string | null>;
    const storedShapes = JSON.parse(cp.shapes) as Record<string, SchemaShape | null>;
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
