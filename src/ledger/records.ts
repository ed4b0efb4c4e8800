/**
 * The ledger's rows as the rest of leapfrog reads them, and their JSON
 * columns decoded in one place.
 */

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';
export type StepStatus = 'started' | 'succeeded' | 'failed' | 'interrupted' | 'skipped';

export interface RunRow {
  id: number;
  chain: string;
  chain_sha256: string;
  target: string;
  kind: 'run' | 'rehearsal';
  status: RunStatus;
  until: string | null;
  host: string;
  pid: number;
  started_at: string;
  finished_at: string | null;
  error: string | null;
  notes: string | null;
  /** The snapshot mode the run took (hop-syncs, first-hop, every-hop or none); null for runs recorded before snapshots existed. */
  snapshot: string | null;
}

export interface SnapshotRow {
  id: number;
  run_id: number;
  chain: string;
  target: string;
  database: string;
  before_step: string;
  after_checkpoint: number;
  after_step: number;
  file: string | null;
  sha256: string | null;
  bytes: number | null;
  duration_ms: number;
  created_at: string;
  /** The database's version when the snapshot was taken, as JSON (null in ledgers from before schema 4). */
  version: string | null;
}

export interface RollbackRow {
  id: number;
  chain: string;
  target: string;
  to_checkpoint: number;
  snapshots: string;
  step_floor: number;
  step_ceiling: number;
  status: 'started' | 'succeeded' | 'failed';
  host: string;
  pid: number;
  started_at: string;
  finished_at: string | null;
  error: string | null;
}

export interface StepRow {
  id: number;
  run_id: number;
  step_id: string;
  project: string;
  release: string;
  kind: string;
  env: string;
  env_sha256: string;
  command: string;
  status: StepStatus;
  attempts: number;
  exit_code: number | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  log_path: string | null;
  log_tail: string | null;
  error: string | null;
  pid: number | null;
  /** The rows of the tables it touches when it started (touches:, or a data step's needed-when count); null: it declares none, or a ledger from before schema 6. */
  rows: number | null;
  /** Those rows per table (`main.instances`) or `needed-when`, as JSON. */
  row_counts: string | null;
}

/** What a run was predicted to take for one hop before it started (check/estimate.ts), with the model's inputs. */
export interface PredictionRow {
  id: number;
  run_id: number;
  project: string;
  release: string;
  /** null: no earlier run or rehearsal completed the hop. */
  ms: number | null;
  /** The run or rehearsal the hop's step times came from. */
  source: string | null;
  /** The per-step models (check/predict.ts StepPrediction[]) as JSON. */
  model: string;
}

export interface CheckpointRow {
  id: number;
  run_id: number;
  project: string;
  release: string;
  created_at: string;
  versions: string;
  fingerprints: string;
  shapes: string | null;
  /** The last step row when it was written (null in ledgers from before snapshots). */
  after_step: number | null;
}


/** A checkpoint's JSON columns: per logical database, its version (versionToJson), fingerprint and schema shape. */
export function checkpointVersions(cp: Pick<CheckpointRow, 'versions'>): Record<string, unknown> {
  return JSON.parse(cp.versions) as Record<string, unknown>;
}

export function checkpointFingerprints(cp: Pick<CheckpointRow, 'fingerprints'>): Record<string, string | null> {
  return JSON.parse(cp.fingerprints) as Record<string, string | null>;
}

/** Shapes are SchemaShape objects (src/database/fingerprint.ts); null in ledgers from before schema 3. */
export function checkpointShapes<S>(cp: Pick<CheckpointRow, 'shapes'>): Record<string, S | null> | null {
  return cp.shapes === null ? null : (JSON.parse(cp.shapes) as Record<string, S | null>);
}

export function stepRowCounts(s: Pick<StepRow, 'row_counts'>): Record<string, number> | null {
  return s.row_counts === null ? null : (JSON.parse(s.row_counts) as Record<string, number>);
}

export function stepCommand(s: Pick<StepRow, 'command'>): string[] {
  return JSON.parse(s.command) as string[];
}

/** The database's version when the snapshot was taken; undefined when not recorded (ledgers from before schema 4). */
export function snapshotVersion(s: Pick<SnapshotRow, 'version'>): unknown {
  return s.version === null ? undefined : (JSON.parse(s.version) as unknown);
}

export function rollbackSnapshots(b: Pick<RollbackRow, 'snapshots'>): number[] {
  return JSON.parse(b.snapshots) as number[];
}
