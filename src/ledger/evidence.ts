import type Database from 'better-sqlite3';

/**
 * Evidence of what a sync step does: for each database the step declares,
 * its version and schema (fingerprint and shape) just before the step's
 * child starts and just after the step succeeded. MySQL and MariaDB commit
 * each DDL statement on its own
 * (https://dev.mysql.com/doc/refman/8.0/en/implicit-commit.html), so a step
 * killed between two ALTERs leaves work its version table does not show;
 * what a crash left behind is judged against this evidence (core/recovery.ts),
 * from this ledger's history or a rehearsal's ledger brought over with
 * `leapfrog ledger export` / `ledger import`.
 */

export type Phase = 'before' | 'after';

export interface EvidenceRow {
  id: number;
  /** One execution of a step: pairs its before with its after, in any ledger. */
  attempt: string;
  /** `local`, or where an imported row was recorded ("run 3 (rehearsal) on host db-test", from FILE). */
  source: string;
  chain: string;
  chain_sha256: string;
  step_id: string;
  /** The step row in this ledger; null for imported rows. */
  step_row: number | null;
  run_kind: string;
  env_sha256: string;
  /** The chain's logical database (main, api). */
  database: string;
  phase: Phase;
  /** versionToJson of the version then, as JSON. */
  version: string;
  /** null: the database did not exist. */
  sha256: string | null;
  /** SchemaShape as JSON; null when the database did not exist. */
  shape: string | null;
  created_at: string;
}

export type NewEvidence = Omit<EvidenceRow, 'id' | 'created_at'> & { created_at?: string };

/** The format `ledger export` writes and `ledger import` reads. */
export const EXPORT_FORMAT = 'leapfrog.evidence/v1';

export class EvidenceStore {
  constructor(private readonly db: Database.Database) {}

  /** Rows already there (the same attempt, database and phase) are kept: an import may be repeated. */
  add(rows: readonly NewEvidence[]): number {
    const st = this.db.prepare(
      `INSERT OR IGNORE INTO evidence (attempt, source, chain, chain_sha256, step_id, step_row, run_kind, env_sha256, database, phase, version, sha256, shape, created_at)
       VALUES (@attempt, @source, @chain, @chain_sha256, @step_id, @step_row, @run_kind, @env_sha256, @database, @phase, @version, @sha256, @shape, @created_at)`,
    );
    let added = 0;
    this.db.transaction(() => {
      for (const r of rows) added += st.run({ ...r, created_at: r.created_at ?? new Date().toISOString() }).changes;
    }).immediate();
    return added;
  }

  /** Every row recorded for one step of one chain, oldest first. */
  ofStep(chain: string, stepId: string): EvidenceRow[] {
    return this.db.prepare(`SELECT * FROM evidence WHERE chain = ? AND step_id = ? ORDER BY id`).all(chain, stepId) as EvidenceRow[];
  }

  /** The rows recorded for one step row of this ledger. */
  ofStepRow(stepRow: number): EvidenceRow[] {
    return this.db.prepare(`SELECT * FROM evidence WHERE step_row = ? ORDER BY id`).all(stepRow) as EvidenceRow[];
  }

  all(chain?: string): EvidenceRow[] {
    return (chain === undefined
      ? this.db.prepare(`SELECT * FROM evidence ORDER BY id`).all()
      : this.db.prepare(`SELECT * FROM evidence WHERE chain = ? ORDER BY id`).all(chain)) as EvidenceRow[];
  }
}

/** Pairs of one step's evidence: for each attempt that has both, its before and after per database. */
export function completedAttempts(rows: readonly EvidenceRow[]): { attempt: string; source: string; before: Map<string, EvidenceRow>; after: Map<string, EvidenceRow> }[] {
  const by = new Map<string, { attempt: string; source: string; before: Map<string, EvidenceRow>; after: Map<string, EvidenceRow> }>();
  for (const r of rows) {
    let a = by.get(r.attempt);
    if (!a) by.set(r.attempt, (a = { attempt: r.attempt, source: r.source, before: new Map(), after: new Map() }));
    a[r.phase].set(r.database, r);
  }
  return [...by.values()].filter((a) => a.after.size > 0 && a.after.size === a.before.size);
}
