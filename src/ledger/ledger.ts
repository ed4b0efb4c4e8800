import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { LeapfrogError } from '../errors.js';

/**
 * The ledger: what leapfrog did, step by step, in SQLite under the state
 * directory. WAL with synchronous=FULL so every committed row survives a
 * crash or power loss; every write is its own transaction (STYLE.md, "two-
 * phase step records": a step is written `started` before its child runs
 * and finished after, so a dangling `started` is the truth about a crash).
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
  /** first-hop, every-hop or none; null for runs recorded before snapshots existed. */
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

// Each entry migrates the ledger from version i to i+1; later leapfrog
// releases append, never edit, so any old ledger can be brought forward.
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE runs (
     id INTEGER PRIMARY KEY,
     chain TEXT NOT NULL,
     chain_sha256 TEXT NOT NULL,
     target TEXT NOT NULL,
     kind TEXT NOT NULL DEFAULT 'run' CHECK (kind IN ('run', 'rehearsal')),
     status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
     until TEXT,
     host TEXT NOT NULL,
     pid INTEGER NOT NULL,
     leapfrog_version TEXT NOT NULL,
     started_at TEXT NOT NULL,
     finished_at TEXT,
     error TEXT
   );
   CREATE TABLE steps (
     id INTEGER PRIMARY KEY,
     run_id INTEGER NOT NULL REFERENCES runs(id),
     step_id TEXT NOT NULL,
     project TEXT NOT NULL,
     release TEXT NOT NULL,
     kind TEXT NOT NULL,
     env TEXT NOT NULL,
     env_sha256 TEXT NOT NULL,
     command TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('started', 'succeeded', 'failed', 'interrupted', 'skipped')),
     attempts INTEGER NOT NULL DEFAULT 0,
     exit_code INTEGER,
     started_at TEXT NOT NULL,
     finished_at TEXT,
     duration_ms REAL,
     log_path TEXT,
     log_tail TEXT,
     error TEXT
   );
   CREATE INDEX steps_by_run ON steps(run_id);
   CREATE INDEX steps_by_step ON steps(step_id, status);
   CREATE TABLE checkpoints (
     id INTEGER PRIMARY KEY,
     run_id INTEGER NOT NULL REFERENCES runs(id),
     project TEXT NOT NULL,
     release TEXT NOT NULL,
     created_at TEXT NOT NULL,
     versions TEXT NOT NULL,
     fingerprints TEXT NOT NULL
   );
   CREATE INDEX checkpoints_by_run ON checkpoints(run_id);`,
  // 2: snapshots (one row per database and moment) and rollbacks. A snapshot
  // remembers where the ledger stood when it was taken (the last checkpoint
  // and step rows), so a rollback can tell which later steps it undid.
  `ALTER TABLE runs ADD COLUMN snapshot TEXT;
   ALTER TABLE checkpoints ADD COLUMN after_step INTEGER;
   CREATE TABLE snapshots (
     id INTEGER PRIMARY KEY,
     run_id INTEGER NOT NULL REFERENCES runs(id),
     chain TEXT NOT NULL,
     target TEXT NOT NULL,
     database TEXT NOT NULL,
     before_step TEXT NOT NULL,
     after_checkpoint INTEGER NOT NULL,
     after_step INTEGER NOT NULL,
     file TEXT,
     sha256 TEXT,
     bytes INTEGER,
     duration_ms REAL NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE INDEX snapshots_by_target ON snapshots(chain, target, database);
   CREATE TABLE rollbacks (
     id INTEGER PRIMARY KEY,
     chain TEXT NOT NULL,
     target TEXT NOT NULL,
     to_checkpoint INTEGER NOT NULL,
     snapshots TEXT NOT NULL,
     step_floor INTEGER NOT NULL,
     step_ceiling INTEGER NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('started', 'succeeded', 'failed')),
     host TEXT NOT NULL,
     pid INTEGER NOT NULL,
     started_at TEXT NOT NULL,
     finished_at TEXT,
     error TEXT
   );`,
  // 3: the child's pid (its process group) so a resumed run can tell whether a
  // dead run's step is still running; schema shapes at checkpoints so drift
  // can be explained; free-form notes on a run (accepted drift, lost history).
  `ALTER TABLE steps ADD COLUMN pid INTEGER;
   ALTER TABLE checkpoints ADD COLUMN shapes TEXT;
   ALTER TABLE runs ADD COLUMN notes TEXT;`,
];

/** The ledger schema this leapfrog writes: one per migration above. */
export const LEDGER_SCHEMA_VERSION = MIGRATIONS.length;

const now = () => new Date().toISOString();

export class Ledger {
  private readonly db: Database.Database;
  readonly file: string;

  private readonly statements = new Map<string, Database.Statement>();

  private constructor(file: string, db: Database.Database) {
    this.file = file;
    this.db = db;
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
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const file = path.join(stateDir, 'ledger.sqlite3');
    let db: Database.Database;
    try {
      db = new Database(file);
    } catch (err) {
      throw new LeapfrogError('input', `${file}: cannot open the ledger (${(err as Error).message}); check --state-dir`, { cause: err });
    }
    const ledger = new Ledger(file, db);
    try {
      // busy_timeout first: switching to WAL and migrating take locks that
      // another leapfrog opening the same ledger may hold for a moment.
      db.pragma('busy_timeout = 5000');
      // SQLite may refuse a journal-mode switch with SQLITE_BUSY at once, without
      // calling the busy handler, while another connection opens the same file
      // (it would otherwise risk a deadlock): retry within the same 5 s.
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          db.pragma('journal_mode = WAL');
          break;
        } catch (err) {
          if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      ledger.migrate();
    } catch (err) {
      db.close();
      if (err instanceof LeapfrogError) throw err;
      throw new LeapfrogError('input', `${file}: cannot use this file as the ledger (${(err as Error).message}); move it away or use another --state-dir`, { cause: err });
    }
    return ledger;
  }

  /**
   * The ledger for reading only, or undefined when there is none: a pre-flight
   * check must not create one, nor write to it (no migration, no WAL switch).
   * A cleanly closed ledger has everything in its main file, which is read into
   * memory: a read-only connection to a WAL file would leave -wal and -shm
   * files behind. Its header's read/write versions (bytes 18-19, 2 = WAL;
   * https://www.sqlite.org/fileformat2.html#file_format_version_numbers) are set
   * to 1 in the copy, since an in-memory database cannot use WAL. When a -wal
   * file has content (a run in progress, or one that crashed before its
   * checkpoint), its frames are part of the truth: the file is opened read-only
   * in place.
   */
  static openForReading(stateDir: string): Ledger | undefined {
    const file = path.join(path.resolve(stateDir), 'ledger.sqlite3');
    if (!existsSync(file)) return undefined;
    let db: Database.Database;
    try {
      const walBytes = existsSync(file + '-wal') ? statSync(file + '-wal').size : 0;
      if (walBytes > 0) {
        db = new Database(file, { readonly: true, fileMustExist: true });
        db.pragma('busy_timeout = 5000');
      } else {
        const bytes = readFileSync(file);
        if (bytes.length >= 20) {
          bytes[18] = 1;
          bytes[19] = 1;
        }
        db = new Database(bytes, { readonly: true });
      }
    } catch (err) {
      throw new LeapfrogError('input', `${file}: cannot read the ledger (${(err as Error).message})`, { cause: err });
    }
    try {
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version !== MIGRATIONS.length) {
        throw new LeapfrogError(
          'input',
          `${file}: ledger schema ${version}, this leapfrog reads ${MIGRATIONS.length}; ${version > MIGRATIONS.length ? 'it was written by a newer leapfrog' : 'it is not a ledger this leapfrog wrote'}`,
        );
      }
    } catch (err) {
      db.close();
      if (err instanceof LeapfrogError) throw err;
      throw new LeapfrogError('input', `${file}: not a ledger (${(err as Error).message})`, { cause: err });
    }
    return new Ledger(file, db);
  }

  private migrate(): void {
    const known = MIGRATIONS.length;
    const refuse = (version: number) =>
      new LeapfrogError(
        'input',
        `${this.file}: this ledger was written by a newer leapfrog (ledger schema ${version}, this one knows ${known}); use that release, or another --state-dir`,
      );
    const current = () => this.db.pragma('user_version', { simple: true }) as number;
    if (current() > known) throw refuse(current());
    if (current() === known) return;
    // Read the version again inside the write lock: another process opening
    // the same new ledger may have migrated it since the read above.
    this.db.transaction(() => {
      const version = current();
      if (version > known) throw refuse(version);
      for (let v = version; v < known; v++) {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      }
    }).immediate();
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

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
    this.sql(`UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?`).run(status, now(), error ?? null, runId);
  }

  stepStarted(s: { runId: number; stepId: string; project: string; release: string; kind: string; env: string; envSha256: string; command: readonly string[]; logPath: string }): number {
    const info = this.sql(
        `INSERT INTO steps (run_id, step_id, project, release, kind, env, env_sha256, command, status, started_at, log_path)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'started', ?, ?)`,
      )
      .run(s.runId, s.stepId, s.project, s.release, s.kind, s.env, s.envSha256, JSON.stringify(s.command), now(), s.logPath);
    return Number(info.lastInsertRowid);
  }

  /** The child is running: its pid leads its process group. */
  stepPid(rowId: number, pid: number): void {
    this.sql(`UPDATE steps SET pid = ? WHERE id = ?`).run(pid, rowId);
  }

  /** Append a line to a run's notes (accepted drift, lost history, a resumed crash). */
  note(runId: number, line: string): void {
    this.sql(`UPDATE runs SET notes = COALESCE(notes || char(10), '') || ? WHERE id = ?`).run(line, runId);
  }

  /**
   * A run that died: its dangling steps become `interrupted` (never
   * `succeeded` by assumption) with what the databases said afterwards, and
   * the run itself `interrupted`, in one transaction.
   */
  markInterrupted(runId: number, stepRowIds: readonly number[], why: string): void {
    this.db.transaction(() => {
      for (const id of stepRowIds) {
        this.sql(`UPDATE steps SET status = 'interrupted', finished_at = ?, error = ? WHERE id = ? AND status = 'started'`).run(now(), why, id);
      }
      this.sql(`UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, ?), error = COALESCE(error, ?) WHERE id = ?`).run(now(), why, runId);
    }).immediate();
  }

  /** A data step ran one more batch. */
  stepAttempt(rowId: number, attempts: number): void {
    this.sql(`UPDATE steps SET attempts = ? WHERE id = ?`).run(attempts, rowId);
  }

  stepFinished(rowId: number, f: { status: Exclude<StepStatus, 'started'>; exitCode: number | null; durationMs: number; attempts: number; logTail: string; error?: string | undefined }): void {
    this.sql(`UPDATE steps SET status = ?, exit_code = ?, finished_at = ?, duration_ms = ?, attempts = ?, log_tail = ?, error = ? WHERE id = ?`)
      .run(f.status, f.exitCode, now(), f.durationMs, f.attempts, f.logTail, f.error ?? null, rowId);
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

  snapshot(s: { runId: number; chain: string; target: string; database: string; beforeStep: string; position: { checkpoint: number; step: number }; file: string | null; sha256: string | null; bytes: number | null; durationMs: number }): number {
    const info = this.sql(
      `INSERT INTO snapshots (run_id, chain, target, database, before_step, after_checkpoint, after_step, file, sha256, bytes, duration_ms, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(s.runId, s.chain, s.target, s.database, s.beforeStep, s.position.checkpoint, s.position.step, s.file, s.sha256, s.bytes, s.durationMs, now());
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
    this.sql(`UPDATE rollbacks SET status = ?, finished_at = ?, error = ? WHERE id = ?`).run(status, now(), error ?? null, id);
  }

  // ---- reads ---------------------------------------------------------------

  snapshots(runId: number): SnapshotRow[] {
    return this.sql(`SELECT * FROM snapshots WHERE run_id = ? ORDER BY id`).all(runId) as SnapshotRow[];
  }

  /**
   * The snapshot of `database` (of `project`) that holds its state at a
   * checkpoint: the first one taken after the checkpoint with no step of the
   * project and no rollback in between (its databases were still, so that is
   * their exact state at the checkpoint), else the newest taken at or before it.
   */
  snapshotAt(chain: string, target: string, project: string, database: string, checkpoint: CheckpointRow): SnapshotRow | undefined {
    if (checkpoint.after_step !== null) {
      const exact = this.sql(
        `SELECT * FROM snapshots s WHERE s.chain = ? AND s.target = ? AND s.database = ? AND s.after_step >= ?
           AND NOT EXISTS (SELECT 1 FROM steps st JOIN runs r ON r.id = st.run_id
                           WHERE r.chain = s.chain AND r.target = s.target AND st.project = ? AND st.id > ? AND st.id <= s.after_step)
           AND NOT EXISTS (SELECT 1 FROM rollbacks b WHERE b.chain = s.chain AND b.target = s.target AND b.step_ceiling >= ? AND b.step_ceiling <= s.after_step)
         ORDER BY s.id LIMIT 1`,
      ).get(chain, target, database, checkpoint.after_step, project, checkpoint.after_step, checkpoint.after_step) as SnapshotRow | undefined;
      if (exact) return exact;
    }
    return this.sql(`SELECT * FROM snapshots WHERE chain = ? AND target = ? AND database = ? AND after_checkpoint <= ? ORDER BY id DESC LIMIT 1`).get(
      chain,
      target,
      database,
      checkpoint.id,
    ) as SnapshotRow | undefined;
  }

  /** For each database, the first snapshot ever taken of it for this chain and target: before its first hop. */
  firstSnapshots(chain: string, target: string): SnapshotRow[] {
    return this.sql(
      `SELECT * FROM snapshots WHERE id IN (SELECT MIN(id) FROM snapshots WHERE chain = ? AND target = ? GROUP BY database) ORDER BY database`,
    ).all(chain, target) as SnapshotRow[];
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

  /** Ids of steps interrupted in the last run of this chain on this target. */
  interruptedSteps(chain: string, target: string): StepRow[] {
    const last = this.lastRun(chain, target);
    if (!last) return [];
    return this.sql(`SELECT * FROM steps WHERE run_id = ? AND status IN ('interrupted', 'started') ORDER BY id`).all(last.id) as StepRow[];
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
