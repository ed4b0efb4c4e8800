import type { PlannedStep } from '../chain/plan.js';
import type { Chain } from '../chain/types.js';

/**
 * Which databases a run snapshots, and before which step: a pure function
 * of the chain, the planned steps and the mode, so `run` takes exactly the
 * snapshots `check-migrations` priced.
 *
 * Modes:
 *   hop-syncs  before each hop, the databases that hop's sync steps declare
 *   first-hop  every database of the chain, once, before the run's first step
 *   every-hop  first-hop, then before each later hop all databases of its project
 *   none       nothing (the operator has a backup of their own)
 * and `auto`, the default, which picks one by the target (resolveSnapshotMode).
 */

export type SnapshotMode = 'hop-syncs' | 'first-hop' | 'every-hop' | 'none';
export type SnapshotChoice = SnapshotMode | 'auto';
export const SNAPSHOT_CHOICES: readonly SnapshotChoice[] = ['auto', 'hop-syncs', 'first-hop', 'every-hop', 'none'];

/**
 * `auto` by the target's DDL. MySQL and MariaDB commit each DDL statement on
 * its own (an implicit commit: MariaDB KB "SQL statements that cause an
 * implicit commit"), so a sync killed between two ALTERs is half-applied and
 * only a restore point from before its hop undoes it (core/recovery.ts):
 * hop-syncs. SQLite's DDL is transactional: each migration commits with its
 * version row, a killed sync resumes at the next migration (the `resumable`
 * verdict), so a copy before every hop buys no recovery; one copy of every
 * file before the first step (cheap: a file copy) keeps `rollback --to start`.
 */
export function resolveSnapshotMode(choice: SnapshotChoice, transactionalDdl: boolean): SnapshotMode {
  if (choice !== 'auto') return choice;
  return transactionalDdl ? 'first-hop' : 'hop-syncs';
}

export interface PlannedSnapshot {
  /** The step it is taken before: the first step of a hop (of the run, for `start`). */
  beforeStep: string;
  /** The project whose lane takes it; undefined for the run's first snapshot, taken before any lane starts. */
  project: string | undefined;
  /** The databases' names on the target. */
  databases: string[];
}

const hopKey = (s: PlannedStep) => `${s.step.project}@${s.step.release}`;

export function snapshotPlan(chain: Chain, steps: readonly PlannedStep[], mode: SnapshotMode): PlannedSnapshot[] {
  if (mode === 'none' || steps.length === 0) return [];
  const out: PlannedSnapshot[] = [];
  if (mode === 'first-hop' || mode === 'every-hop') {
    out.push({ beforeStep: steps[0]!.step.id, project: undefined, databases: Object.values(chain.projects).flatMap((p) => Object.values(p.databases)) });
    if (mode === 'first-hop') return out;
  }
  const hops = new Map<string, PlannedStep[]>();
  for (const s of steps) (hops.get(hopKey(s)) ?? hops.set(hopKey(s), []).get(hopKey(s))!).push(s);
  const started = new Set<string>();
  for (const hop of hops.values()) {
    const first = hop[0]!.step;
    const project = chain.projects[first.project]!;
    const isFirst = !started.has(first.project);
    started.add(first.project);
    let logical: string[];
    // every-hop: a project's first hop in the run is covered by the run's first snapshot (nothing ran on its databases since).
    if (mode === 'every-hop') logical = isFirst ? [] : Object.keys(project.databases);
    else logical = [...new Set(hop.filter((s) => s.step.kind === 'sync').flatMap((s) => Object.keys(s.step.expect)))];
    const databases = Object.keys(project.databases).filter((db) => logical.includes(db)).map((db) => project.databases[db]!);
    if (databases.length > 0) out.push({ beforeStep: first.id, project: first.project, databases });
  }
  return out;
}
