import type Database from 'better-sqlite3';
import { LeapfrogError } from '../errors.js';

/**
 * The ledger's own schema, versioned in PRAGMA user_version, so later
 * releases of leapfrog migrate a ledger forward and a ledger written by a
 * newer leapfrog is refused rather than misread.
 */

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
  // 4: the database's version when a snapshot was taken, so a rollback (and
  // its --dry-run) can say which version it restores.
  `ALTER TABLE snapshots ADD COLUMN version TEXT;`,
  // 5: evidence of what each sync step does (evidence.ts): per database it
  // declares, its version and schema (fingerprint and shape) before the child
  // starts and after the step succeeded. `attempt` pairs a before with its
  // after across ledgers (an import keeps it); `source` says where a row was
  // recorded (this ledger, or the ledger an import came from).
  `CREATE TABLE evidence (
     id INTEGER PRIMARY KEY,
     attempt TEXT NOT NULL,
     source TEXT NOT NULL,
     chain TEXT NOT NULL,
     chain_sha256 TEXT NOT NULL,
     step_id TEXT NOT NULL,
     step_row INTEGER,
     run_kind TEXT NOT NULL,
     env_sha256 TEXT NOT NULL,
     database TEXT NOT NULL,
     phase TEXT NOT NULL CHECK (phase IN ('before', 'after')),
     version TEXT NOT NULL,
     sha256 TEXT,
     shape TEXT,
     created_at TEXT NOT NULL,
     UNIQUE (attempt, database, phase)
   );
   CREATE INDEX evidence_by_step ON evidence(chain, step_id);`,
  // 6: what a step's time grows with (check/predict.ts): the rows of the tables
  // it touches when it started, their sum and the count per table as JSON
  // (null: it declares none); and what a run was predicted to take per hop
  // before it started, with the model's inputs, so `ledger show` can set the
  // prediction beside what happened.
  `ALTER TABLE steps ADD COLUMN rows INTEGER;
   ALTER TABLE steps ADD COLUMN row_counts TEXT;
   CREATE TABLE predictions (
     id INTEGER PRIMARY KEY,
     run_id INTEGER NOT NULL REFERENCES runs(id),
     project TEXT NOT NULL,
     release TEXT NOT NULL,
     ms REAL,
     source TEXT,
     model TEXT NOT NULL
   );
   CREATE INDEX predictions_by_run ON predictions(run_id);`,
];

/** The ledger schema this leapfrog writes: one per migration above. */
export const LEDGER_SCHEMA_VERSION = MIGRATIONS.length;


/** Bring `db` forward to LEDGER_SCHEMA_VERSION; refuse one from a newer leapfrog. */
export function migrate(db: Database.Database, file: string): void {
  const known = MIGRATIONS.length;
  const refuse = (version: number) =>
    new LeapfrogError('input', `${file}: this ledger was written by a newer leapfrog (ledger schema ${version}, this one knows ${known}); use that release, or another --state-dir`);
  const current = () => db.pragma('user_version', { simple: true }) as number;
  if (current() > known) throw refuse(current());
  if (current() === known) return;
  // Read the version again inside the write lock: another process opening
  // the same new ledger may have migrated it since the read above.
  db.transaction(() => {
    const version = current();
    if (version > known) throw refuse(version);
    for (let v = version; v < known; v++) {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
  }).immediate();
}
