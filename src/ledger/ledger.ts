import type Database from 'better-sqlite3';
import { maskKnown } from '../report/secrets.js';
import { EvidenceStore } from './evidence.js';
import { MIGRATIONS } from './migrations.js';
import { fileIdentity, openReadable, openWritable } from './open.js';
import type { CheckpointRow, PredictionRow, RollbackRow, RunRow, RunStatus, SnapshotRow, StepRow, StepStatus } from './records.js';

export type { CheckpointRow, PredictionRow, RollbackRow, RunRow, RunStatus, SnapshotRow, StepRow, StepStatus } from './records.js';
export { LEDGER_SCHEMA_VERSION, MIGRATIONS } from './migrations.js';

/**
 * The ledger: what leapfrog did, step by step, in SQLite under the state
 * directory. WAL with synchronous=FULL so every committed row survives a
 * crash or power loss; every write is its own transaction (STYLE.md, "two-
 * phase step records": a step is written `started` before its child runs
 * and finished after, so a dangling `started` is the truth about a crash).
 */

const now = () => new Date().toISOString();
/** Free text (errors, notes, log tails, argv) never carries a password, in any form (src/report/secrets.ts). */
const masked = (text: string | undefined) => (text === undefined ? null : maskKnown(text));

export class Ledger {
  private readonly db: Database.Database;
  readonly file: string;

  private readonly statements = new Map<string, Database.Statement>();

  /** Evidence of what sync steps did (evidence.ts). */
  readonly evidence: EvidenceStore;

  /** The file's device and inode when opened: a ledger deleted or replaced under a run is not where it writes. */
  private readonly identity: string;

  private constructor(file: string, db: Database.Database) {
    this.file = file;
    this.db = db;
    this.evidence = new EvidenceStore(db);
    this.identity = fileIdentity(file);
  }

  /** Whether the ledger's path still names the file this ledger writes to. */
  inPlace(): boolean {
    return fileIdentity(this.file) === this.identity;
  }

  /** Statements are compiled once per ledger: a step's two writes sit on the runner's hot path. */
  private sql(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  static open(stateDir: string): Ledger {
    const { file, db } = openWritable(stateDir);
    return new Ledger(file, db);
  }

  /** The ledger for reading only (a copy in memory), or undefined when there is none. */
  static openForReading(stateDir: string): Ledger | undefined {
    const r = openReadable(stateDir);
    return r && new Ledger(r.file, r.db);
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** The schema this leapfrog writes: the ledger has it once opened (migrations.ts). */
  static readonly schema = MIGRATIONS.length;

  close(): void {
    this.db.close();
  }

  // ---- writes: each one its own transaction ------------------------------

  startRun(r: { chain: string; chainSha256: string; target: string; kind: 'run' | 'rehearsal'; until: string | undefined; host: string; pid: number; version: string; snapshot?: string | undefined }): number {
    const info = this.sql(
        `INSERT INTO runs (chain, chain_sha256, target, kind, status, until, host, pid, leapfrog_version, started_at, snapshot)
         VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.chain, r.chainSha256, r.target, r.kind, r.until ?? null, r.host, r.pid, r.version, now(), r.snapshot ?? null);
    return Number(info.lastInsertRowid);
  }

  finishRun(runId: number, status: Exclude<RunStatus, 'running'>, error?: string): void {
    this.sql(`UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?`).run(status, now(), masked(error), runId);
  }

  stepStarted(s: { runId: number; stepId: string; project: string; release: string; kind: string; env: string; envSha256: string; command: readonly string[]; logPath: string }): number {
    const info = this.sql(
        `INSERT INTO steps (run_id, step_id, project, release, kind, env, env_sha256, command, status, started_at, log_path)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'started', ?, ?)`,
      )
      .run(s.runId, s.stepId, s.project, s.release, s.kind, s.env, s.envSha256, maskKnown(JSON.stringify(s.command)), now(), s.logPath);
    return Number(info.lastInsertRowid);
  }

  /**
   * The child is running: its pid leads its process group. Committed without
   * an fsync (synchronous=NORMAL keeps it through a crash of leapfrog, not a
   * power loss: https://www.sqlite.org/pragma.html#pragma_synchronous), as a
   * pid only matters while its process may live; the next write's fsync
   * carries it. One fsync less on every step's hot path.
   */
  stepPid(rowId: number, pid: number): void {
    this.db.pragma('synchronous = NORMAL');
    try {
      this.sql(`UPDATE steps SET pid = ? WHERE id = ?`).run(pid, rowId);
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /** Append a line to a run's notes (accepted drift, lost history, a resumed crash). */
  note(runId: number, line: string): void {
    this.sql(`UPDATE runs SET notes = COALESCE(notes || char(10), '') || ? WHERE id = ?`).run(maskKnown(line), runId);
  }

  /**
   * A run that died: its dangling steps become `interrupted` (never
   * `succeeded` by assumption) with what the databases said afterwards, and
   * the run itself `interrupted`, in one transaction.
   */
  markInterrupted(runId: number, stepRowIds: readonly number[], why: string): void {
    this.db.transaction(() => {
      for (const id of stepRowIds) {
        this.sql(`UPDATE steps SET status = 'interrupted', finished_at = ?, error = ? WHERE id = ? AND status = 'started'`).run(now(), maskKnown(why), id);
      }
      this.sql(`UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, ?), error = COALESCE(error, ?) WHERE id = ?`).run(now(), maskKnown(why), runId);
    }).immediate();
  }

  /** A step a run died in (or that failed) whose work the evidence proves complete (core/recovery.ts): succeeded, saying so. */
  recordRecovered(stepRowId: number, why: string): void {
    this.sql(`UPDATE steps SET status = 'succeeded', finished_at = COALESCE(finished_at, ?), error = ? WHERE id = ? AND status IN ('started', 'interrupted', 'failed')`).run(now(), why, stepRowId);
  }

  /** A data step ran one more batch. */
  stepAttempt(rowId: number, attempts: number): void {
    this.sql(`UPDATE steps SET attempts = ? WHERE id = ?`).run(attempts, rowId);
  }

  /** `rows`: what the step touched when it started (predict.ts), written with its end: no write more on the step's path. */
  stepFinished(rowId: number, f: { status: Exclude<StepStatus, 'started'>; exitCode: number | null; durationMs: number; attempts: number; logTail: string; error?: string | undefined; rows?: { rows: number; counts: Record<string, number> } | undefined }): void {
    this.sql(`UPDATE steps SET status = ?, exit_code = ?, finished_at = ?, duration_ms = ?, attempts = ?, log_tail = ?, error = ?, rows = ?, row_counts = ? WHERE id = ?`)
      .run(f.status, f.exitCode, now(), f.durationMs, f.attempts, maskKnown(f.logTail), masked(f.error), f.rows?.rows ?? null, f.rows ? JSON.stringify(f.rows.counts) : null, rowId);
  }

  /** What the run was predicted to take, per hop, before its first step (one transaction). */
  predicted(runId: number, hops: readonly { project: string; release: string; ms: number | undefined; source: string | undefined; model: unknown }[]): void {
    const st = this.sql(`INSERT INTO predictions (run_id, project, release, ms, source, model) VALUES (?, ?, ?, ?, ?, ?)`);
    this.db.transaction(() => {
      for (const h of hops) st.run(runId, h.project, h.release, h.ms ?? null, h.source ?? null, JSON.stringify(h.model));
    }).immediate();
  }

  predictions(runId: number): PredictionRow[] {
    return this.sql(`SELECT * FROM predictions WHERE run_id = ? ORDER BY id`).all(runId) as PredictionRow[];
  }

  checkpoint(c: { runId: number; project: string; release: string; versions: unknown; fingerprints: unknown; shapes?: unknown }): void {
    this.sql(
      `INSERT INTO checkpoints (run_id, project, release, created_at, versions, fingerprints, shapes, after_step) VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT MAX(id) FROM steps))`,
    ).run(c.runId, c.project, c.release, now(), JSON.stringify(c.versions), JSON.stringify(c.fingerprints), c.shapes === undefined ? null : JSON.stringify(c.shapes));
  }

  /** Where the ledger stands now: the last checkpoint and step rows (0 when none). */
  position(): { checkpoint: number; step: number } {
    const row = this.sql(`SELECT (SELECT COALESCE(MAX(id), 0) FROM checkpoints) c, (SELECT COALESCE(MAX(id), 0) FROM steps) s`).get() as { c: number; s: number };
    return { checkpoint: row.c, step: row.s };
  }

  snapshot(s: { runId: number; chain: string; target: string; database: string; beforeStep: string; position: { checkpoint: number; step: number }; file: string | null; sha256: string | null; bytes: number | null; durationMs: number; version?: unknown }): number {
    const info = this.sql(
      `INSERT INTO snapshots (run_id, chain, target, database, before_step, after_checkpoint, after_step, file, sha256, bytes, duration_ms, created_at, version)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(s.runId, s.chain, s.target, s.database, s.beforeStep, s.position.checkpoint, s.position.step, s.file, s.sha256, s.bytes, s.durationMs, now(), s.version === undefined ? null : JSON.stringify(s.version));
    return Number(info.lastInsertRowid);
  }

  rollbackStarted(r: { chain: string; target: string; toCheckpoint: number; snapshots: readonly number[]; stepFloor: number; stepCeiling: number; host: string; pid: number }): number {
    const info = this.sql(
      `INSERT INTO rollbacks (chain, target, to_checkpoint, snapshots, step_floor, step_ceiling, status, host, pid, started_at)
       VALUES (?, ?, ?, ?, ?, ?, 'started', ?, ?, ?)`,
    ).run(r.chain, r.target, r.toCheckpoint, JSON.stringify(r.snapshots), r.stepFloor, r.stepCeiling, r.host, r.pid, now());
    return Number(info.lastInsertRowid);
  }

  rollbackFinished(id: number, status: 'succeeded' | 'failed', error?: string): void {
    this.sql(`UPDATE rollbacks SET status = ?, finished_at = ?, error = ? WHERE id = ?`).run(status, now(), masked(error), id);
  }

  // ---- reads ---------------------------------------------------------------

  snapshots(runId: number): SnapshotRow[] {
    return this.sql(`SELECT * FROM snapshots WHERE run_id = ? ORDER BY id`).all(runId) as SnapshotRow[];
  }

  /** Every snapshot of this chain on this target, oldest first: what rollback's restore points are made of (core/restore-points.ts). */
  snapshotsOf(chain: string, target: string): SnapshotRow[] {
    return this.sql(`SELECT * FROM snapshots WHERE chain = ? AND target = ? ORDER BY id`).all(chain, target) as SnapshotRow[];
  }

  /** Every step row of this chain on this target, oldest first, with what tells which databases it may have changed. */
  stepsOf(chain: string, target: string): Pick<StepRow, 'id' | 'step_id' | 'project' | 'kind' | 'status'>[] {
    return this.sql(`SELECT s.id, s.step_id, s.project, s.kind, s.status FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.chain = ? AND r.target = ? ORDER BY s.id`).all(chain, target) as Pick<
      StepRow,
      'id' | 'step_id' | 'project' | 'kind' | 'status'
    >[];
  }

  /** A checkpoint with its run's chain and target. */
  checkpointWithRun(id: number): (CheckpointRow & { chain: string; target: string }) | undefined {
    return this.sql(`SELECT c.*, r.chain, r.target FROM checkpoints c JOIN runs r ON r.id = c.run_id WHERE c.id = ?`).get(id) as (CheckpointRow & { chain: string; target: string }) | undefined;
  }

  checkpointsOf(chain: string, target: string): CheckpointRow[] {
    return this.sql(`SELECT c.* FROM checkpoints c JOIN runs r ON r.id = c.run_id WHERE r.chain = ? AND r.target = ? ORDER BY c.id`).all(chain, target) as CheckpointRow[];
  }

  rollbacks(chain: string, target: string): RollbackRow[] {
    return this.sql(`SELECT * FROM rollbacks WHERE chain = ? AND target = ? ORDER BY id`).all(chain, target) as RollbackRow[];
  }

  runs(limit = 50): RunRow[] {
    return this.sql(`SELECT * FROM runs ORDER BY id DESC LIMIT ?`).all(limit) as RunRow[];
  }

  run(id: number): RunRow | undefined {
    return this.sql(`SELECT * FROM runs WHERE id = ?`).get(id) as RunRow | undefined;
  }

  /** The run a step row belongs to. */
  runOfStep(stepRow: number): RunRow | undefined {
    return this.sql(`SELECT r.* FROM runs r JOIN steps s ON s.run_id = r.id WHERE s.id = ?`).get(stepRow) as RunRow | undefined;
  }

  steps(runId: number): StepRow[] {
    return this.sql(`SELECT * FROM steps WHERE run_id = ? ORDER BY id`).all(runId) as StepRow[];
  }

  checkpoints(runId: number): CheckpointRow[] {
    return this.sql(`SELECT * FROM checkpoints WHERE run_id = ? ORDER BY id`).all(runId) as CheckpointRow[];
  }

  /** Runs of this chain on this target that never recorded their end, with their dangling steps. */
  unfinished(chain: string, target: string): { run: RunRow; steps: StepRow[] }[] {
    const runs = this.sql(`SELECT * FROM runs WHERE chain = ? AND target = ? AND status = 'running' ORDER BY id`).all(chain, target) as RunRow[];
    return runs.map((run) => ({ run, steps: this.sql(`SELECT * FROM steps WHERE run_id = ? AND status = 'started' ORDER BY id`).all(run.id) as StepRow[] }));
  }

  /** The last run of this chain on this target, whatever its status. */
  lastRun(chain: string, target: string): RunRow | undefined {
    return this.sql(`SELECT * FROM runs WHERE chain = ? AND target = ? ORDER BY id DESC LIMIT 1`).get(chain, target) as RunRow | undefined;
  }

  /**
   * Steps whose latest record on this target is `interrupted` or `started`:
   * a run died or was stopped inside them and none has run them since, so a
   * database may stand inside one of them (between two of the chain's
   * versions) until it runs again. With `statuses`, the latest records in
   * those statuses instead (a `failed` sync may have left work too).
   */
  inFlightSteps(chain: string, target: string, statuses: readonly StepStatus[] = ['interrupted', 'started']): StepRow[] {
    // A rollback that succeeded put the step's databases back as they were before it: no longer in flight.
    return this.sql(
      `SELECT s.* FROM steps s WHERE s.status IN (${statuses.map((x) => `'${x}'`).join(', ')}) AND s.id IN (
         SELECT MAX(s2.id) FROM steps s2 JOIN runs r2 ON r2.id = s2.run_id WHERE r2.chain = ? AND r2.target = ? GROUP BY s2.step_id)
         AND NOT EXISTS (SELECT 1 FROM rollbacks b WHERE b.chain = ? AND b.target = ? AND b.status = 'succeeded' AND s.id > b.step_floor AND s.id <= b.step_ceiling)
       ORDER BY s.id`,
    ).all(chain, target, chain, target) as StepRow[];
  }

  /** The latest checkpoint of each project of this chain on this target. */
  lastCheckpoints(chain: string, target: string): CheckpointRow[] {
    return this.sql(
      `SELECT c.* FROM checkpoints c JOIN runs r ON r.id = c.run_id
       WHERE r.chain = ? AND r.target = ? AND c.id IN (
         SELECT MAX(c2.id) FROM checkpoints c2 JOIN runs r2 ON r2.id = c2.run_id WHERE r2.chain = ? AND r2.target = ? GROUP BY c2.project)`,
    ).all(chain, target, chain, target) as CheckpointRow[];
  }

  /** Step rows still `started` (no end written) against this target, with their run. */
  unfinishedSteps(target: string): (StepRow & { run_status: RunStatus; run_host: string; run_pid: number; chain: string })[] {
    return this.sql(
      `SELECT s.*, r.status AS run_status, r.host AS run_host, r.pid AS run_pid, r.chain AS chain
       FROM steps s JOIN runs r ON r.id = s.run_id
       WHERE r.target = ? AND s.status = 'started' ORDER BY s.id`,
    ).all(target) as (StepRow & { run_status: RunStatus; run_host: string; run_pid: number; chain: string })[];
  }

  /** Runs (and rehearsals) of this chain that succeeded, newest first, with their steps. */
  succeededRuns(chain: string, limit = 20): { run: RunRow; steps: StepRow[] }[] {
    const runs = this.sql(`SELECT * FROM runs WHERE chain = ? AND status = 'succeeded' ORDER BY id DESC LIMIT ?`).all(chain, limit) as RunRow[];
    return runs.map((run) => ({ run, steps: this.steps(run.id) }));
  }

  /** Ids of steps that succeeded against this target with this chain. */
  /**
   * Ids of steps that succeeded against this target with this chain and were
   * not undone by a rollback: a rollback (even one that failed half-way, whose
   * databases are in doubt) undoes the steps recorded after its snapshot and
   * before it started.
   */
  succeededSteps(chain: string, target: string): Set<string> {
    const rows = this.sql(
        `SELECT DISTINCT s.step_id FROM steps s JOIN runs r ON r.id = s.run_id
         WHERE r.chain = ? AND r.target = ? AND s.status = 'succeeded'
           AND NOT EXISTS (SELECT 1 FROM rollbacks b WHERE b.chain = r.chain AND b.target = r.target
                           AND s.id > b.step_floor AND s.id <= b.step_ceiling)`,
      )
      .all(chain, target) as { step_id: string }[];
    return new Set(rows.map((r) => r.step_id));
  }
}

/** Open the ledger for the life of `cb`. */
export async function withLedger<T>(stateDir: string, cb: (l: Ledger) => Promise<T>): Promise<T> {
  const l = Ledger.open(stateDir);
  try {
    return await cb(l);
  } finally {
    l.close();
  }
}

/** The reads of the ledger: what the pre-flight may use (a ledger opened for reading, or none at all). */
export type LedgerReader = Pick<
  Ledger,
  'file' | 'evidence' | 'predictions' | 'unfinished' | 'lastRun' | 'lastCheckpoints' | 'succeededSteps' | 'inFlightSteps' | 'succeededRuns' | 'unfinishedSteps' | 'checkpointsOf' | 'run' | 'steps' | 'checkpoints' | 'snapshots' | 'rollbacks' | 'snapshotsOf' | 'stepsOf' | 'runs'
>;
