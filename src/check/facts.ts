import type { Chain, EnvDef } from '../chain/types.js';
import type { Preflight } from '../core/preflight.js';
import type { LeapfrogError } from '../errors.js';
import type { Layout } from '../core/layout.js';
import type { FileHolder, MysqlFacts, ServerInfo, SqliteFileFact } from '../database/inspect.js';
import type { Placement } from '../database/placement.js';
import type { SnapshotChoice } from '../runner/snapshot-plan.js';

/**
 * Everything check-migrations judges, read once by gather.ts (all the I/O)
 * and then handed to the pure checks in checks.ts. Plain data: tests build
 * these objects by hand to drive each check into each of its results.
 */

export type Result = 'Success' | 'Warning' | 'Failure';

export interface CheckRow {
  check: string;
  result: Result;
  details: string;
  /** Structured data behind the details, for --format json. */
  data?: unknown;
}

export interface EnvFact {
  name: string;
  /** The env file, loaded; undefined when it has a problem (then `error`). */
  def: EnvDef | undefined;
  error: string | undefined;
  /** `<cache>/<sha256>` exists: unpacked after its checksum matched, so verified. */
  cached: boolean;
  /** source.file exists (undefined for URL sources). */
  sourceExists: boolean | undefined;
  /** What changed in the cached tree since it was unpacked (envs/cache.ts, verifyEntry); empty when intact or not cached. */
  changed: string[];
  /** How it was checked: every file hashed, or sizes, modes and mtimes only (--no-verify-envs). */
  checkedBy: 'hash' | 'stat';
  /** The command that unpacks it again from its tarball. */
  repair: string;
}

export interface BlockerFact {
  project: string;
  name: string;
  database: string;
  dbName: string;
  message: string;
  fixedBy: string | undefined;
  outcome:
    | { kind: 'count'; count: number }
    /** The query names a table or column the database does not have yet, or the database does not exist yet. */
    | { kind: 'not-yet'; reason: string }
    | { kind: 'error'; reason: string };
}

export interface RunTiming {
  runId: number;
  /** Where it was recorded, for people: "run 3", or "rehearsal run 1 in STATE/rehearsals/…". */
  label?: string | undefined;
  kind: string;
  target: string;
  finishedAt: string | null;
  steps: {
    stepId: string;
    project: string;
    release: string;
    status: string;
    durationMs: number | null;
    /** The rows it touched when it started (touches:, or a data step's needed-when count); null or absent: it declares none. */
    rows?: number | null;
    /** How many times its command ran (a data step's batches). */
    attempts?: number;
  }[];
}

export interface LedgerFact {
  file: string;
  exists: boolean;
  error: string | undefined;
  /** Succeeded runs (and rehearsals) of this chain, newest first: the estimate's source. */
  history: RunTiming[];
  /** Snapshots of this chain on this target, newest first: what the next ones will take. */
  snapshots: { database: string; durationMs: number; bytes: number | null; createdAt: string }[];
}

export interface CheckFacts {
  chainFile: string;
  chain: Chain | undefined;
  chainError: LeapfrogError | undefined;
  target: Placement;
  targetDescription: string;
  layout: Layout | undefined;
  offline: boolean;
  until: string | undefined;
  /** The --snapshot whose cost is predicted (`auto` resolved by the target, as `run` does). */
  snapshot: SnapshotChoice;
  /** Seconds after which an open transaction on a chain database fails the check. */
  maxTransactionAge: number;
  envs: EnvFact[];
  /** Whether bubblewrap can run here, probed when an env of the chain is `kind: rootfs`; undefined otherwise. */
  sandbox?: { ok: true } | { ok: false; why: string } | undefined;
  reach: { ok: true; server: ServerInfo } | { ok: false; error: string };
  /** Per project and logical database: exists on the target. */
  databases: { project: string; logical: string; name: string; exists: boolean }[];
  /** The pre-flight `run` would take: versions, plan, dead runs, drift; undefined when the chain or the target could not be read. */
  preflight: Preflight | undefined;
  blockers: BlockerFact[];
  mysql: MysqlFacts | undefined;
  sqlite: { files: SqliteFileFact[]; holders: FileHolder[] | undefined } | undefined;
  storage: { stateDir: string; measuredAt: string; freeBytes: number | undefined; error: string | undefined };
  ledger: LedgerFact;
}
