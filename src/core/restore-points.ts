import type { Chain } from '../chain/types.js';
import type { RollbackRow, SnapshotRow, StepRow } from '../ledger/ledger.js';

/**
 * Which snapshots put the chain's databases back exactly as they were at a
 * point of the ledger (a checkpoint, or `start`: before anything ran), pure
 * over the ledger's rows.
 *
 * A database's state at point P is held by a snapshot S of it when no step
 * that may have changed it, and no rollback, was recorded between S and P
 * (either side of P). Since snapshots may cover only the databases a hop's
 * syncs declare (`--snapshot hop-syncs`), "may have changed" is per
 * database: a sync step changes the databases it declares (its `expect`),
 * a data or check step any database of its project (what it writes is not
 * declared), a step no longer in the chain likewise; skipped steps nothing.
 * A database nothing may have changed since P needs no snapshot at all: it
 * is still as it was then, and is left alone. A database that did not exist
 * at P (the chain's start does not list it, or P's checkpoint recorded it
 * absent) and that steps may have changed since is put back by dropping it:
 * no database is no database, whatever ran in between.
 */

export type StepFacts = Pick<StepRow, 'id' | 'step_id' | 'project' | 'kind' | 'status'>;

export interface RestoreHistory {
  steps: readonly StepFacts[];
  snapshots: readonly SnapshotRow[];
  rollbacks: readonly Pick<RollbackRow, 'step_ceiling'>[];
}

export interface PointResolution {
  /** The snapshots to restore, one per database that needs one. */
  restore: SnapshotRow[];
  /** Databases nothing changed since the point: left as they are. */
  unchanged: string[];
  /** Databases that did not exist at the point and may since: dropped. */
  drop: string[];
  /** Databases neither a snapshot nor the present holds at that point: the point cannot be restored. */
  missing: string[];
}

/** Whether a recorded step may have changed `logical` (a database of `project`). */
export function mayChange(chain: Chain, step: StepFacts, project: string, logical: string): boolean {
  if (step.project !== project || step.status === 'skipped') return false;
  if (step.kind !== 'sync') return true;
  for (const r of chain.releases) for (const s of r.steps) if (s.id === step.step_id && s.kind === 'sync') return logical in s.expect;
  return true;
}

/**
 * Per database of the chain, how to have it as it was at `at` (a
 * checkpoint's last step row; 0 for `start`): the nearest snapshot that
 * holds it, else nothing to do when nothing changed it since, else missing.
 * `absent`: the databases known not to exist at that point.
 */
export function resolvePoint(chain: Chain, h: RestoreHistory, at: number, absent: ReadonlySet<string> = new Set()): PointResolution {
  const out: PointResolution = { restore: [], unchanged: [], drop: [], missing: [] };
  for (const p of Object.values(chain.projects)) {
    for (const [logical, name] of Object.entries(p.databases)) {
      const quiet = (a: number, b: number) => {
        const lo = Math.min(a, b);
        const hi = Math.max(a, b);
        return !h.steps.some((s) => s.id > lo && s.id <= hi && mayChange(chain, s, p.name, logical)) && !h.rollbacks.some((r) => r.step_ceiling >= lo && r.step_ceiling <= hi);
      };
      const nearest = (ok: (s: SnapshotRow) => boolean) =>
        h.snapshots.filter((s) => s.database === name && ok(s)).sort((a, b) => Math.abs(a.after_step - at) - Math.abs(b.after_step - at) || a.id - b.id)[0];
      // Left alone first: restoring what nothing changed costs a restore and gives the same state.
      if (quiet(at, Number.MAX_SAFE_INTEGER)) {
        out.unchanged.push(name);
        continue;
      }
      const snap = nearest((s) => quiet(s.after_step, at));
      if (snap) out.restore.push(snap);
      else if (absent.has(name)) out.drop.push(name);
      else out.missing.push(name);
    }
  }
  return out;
}

/** The databases known not to exist at a point: at `start`, those the chain's start does not list; at a checkpoint, those it recorded absent. */
export function absentAt(chain: Chain, checkpoint: { project: string; versions: string } | undefined): Set<string> {
  const out = new Set<string>();
  for (const p of Object.values(chain.projects)) {
    if (checkpoint && checkpoint.project !== p.name) continue;
    const recorded = checkpoint ? (JSON.parse(checkpoint.versions) as Record<string, unknown>) : undefined;
    for (const [db, name] of Object.entries(p.databases)) if (recorded ? recorded[db] === null : !(db in p.start)) out.add(name);
  }
  return out;
}
