import type { DatabaseSpec } from '../database/session.js';
/**
 * The chain as the rest of leapfrog sees it, after loading and validation.
 * The file format (YAML/JSON) is described by src/chain/schema.ts; this is
 * the checked, normalised shape.
 */

/** How to read a database's schema version. */
export type VersionProbe =
  /** Table migrate_version. With one repository, the version is a number; with several, one number per repository. */
  | { kind: 'sqlalchemy-migrate'; repositories: readonly string[] | undefined }
  /** Table alembic_version: one or several heads. */
  | { kind: 'alembic' }
  /**
   * alembic_version when it has a row, else migrate_version: a database that
   * sqlalchemy-migrate moved until some release handed it over to alembic
   * (nova, cinder and keystone in zed). Expectations are numbers (or
   * per-repository numbers) before the handover and revisions after.
   */
  | { kind: 'alembic-else-sqlalchemy-migrate'; repositories: readonly string[] | undefined }
  /** Any query; the first column of the first row is the version. */
  | { kind: 'sql'; query: string; numeric: boolean };

/**
 * A database's version. `absent` means the database, or its version table,
 * does not exist yet (nova's api database before mitaka).
 */
export type Version =
  | { kind: 'absent' }
  /** The database has tables but records no version: a first migration stopped part-way. */
  | { kind: 'partial'; tables: readonly string[] }
  | { kind: 'number'; value: number }
  | { kind: 'repos'; repos: Readonly<Record<string, number | null>> }
  | { kind: 'heads'; heads: readonly string[] }
  | { kind: 'text'; value: string };

/** What a sync step promises: per database, the version it ends at. */
export type Expectation =
  | { kind: 'number'; value: number }
  /** Only the named repositories are checked. */
  | { kind: 'repos'; repos: Readonly<Record<string, number>> }
  | { kind: 'heads'; heads: readonly string[] }
  | { kind: 'text'; value: string };

export interface ProjectDef {
  name: string;
  /** Logical database → database (schema/file) name on the target, in declaration order. */
  databases: Readonly<Record<string, string>>;
  /** Logical database → the chain's name for the server it lives on; absent: the default server (--db URL). */
  servers?: Readonly<Record<string, string>>;
  /**
   * The logical databases that are cells (nova's cell0, cell1…), in the
   * order a per-cell step runs over them. Absent: the project has no cells.
   */
  cells?: readonly string[];
  /** The config files whose template names `cell`: each is rendered once per cell, for per-cell steps only. */
  cellConfig?: readonly string[];
  version: Readonly<Record<string, VersionProbe>>;
  /** Versions at the chain's start; a database not listed must not exist yet. */
  start: Readonly<Record<string, Expectation>>;
  /** Config file name → template text, rendered into the run directory (mode 0600). */
  config: Readonly<Record<string, string>>;
  /**
   * Databases leapfrog creates (with this character set and collation)
   * before the first sync that moves them, when they do not exist: real
   * tools never create their databases (nova-manage fails with
   * DBNonExistentDatabase), their installers do.
   */
  create?: Readonly<Record<string, DatabaseSpec>>;
  /**
   * The collations the project's own migrations create, each accepted as it
   * is (nova's tables are utf8mb3_general_ci, utf8mb3_bin and latin1 by
   * design): check-migrations warns only about others, and never advises
   * converting these. Absent: one collation per project is expected.
   */
  collations?: readonly string[];
  /**
   * SQL run on a rehearsal's restored copy before the chain, templated with
   * the copy's addresses: a tool that keeps database URLs inside its
   * databases (nova's nova_api.cell_mappings) must find the copy there, not
   * the server the dump came from. Never run by `run`. Absent: none.
   */
  rehearsal?: readonly RewriteDef[];
  /**
   * How to go on from a database that is partly created (tables but no
   * version row: a first migration stopped part-way). Absent: the planner
   * refuses, naming the tables. `rerun`: the first sync that moves the
   * database runs again over what is there, which is only right when the
   * project's initial migration creates only what is missing.
   */
  partial?: Readonly<Record<string, 'rerun'>>;
  /** Probes for data a later migration refuses; read by check-migrations (loadChain always sets it). */
  blockers?: readonly BlockerDef[];
}

/** One `rehearsal:` rewrite: a single statement, run on the copy of `database`. */
export interface RewriteDef {
  database: string;
  /** A template (the config files' data model: db.<database>.<field>, project). */
  sql: string;
  why: string | undefined;
}

/**
 * A count of rows that will make some migration refuse to run (nova's
 * liberty 291 enforce_flavors_migrated, kilo 267, newton 330: docs/OPENSTACK.md).
 * `fixedBy` names the step (id, or name unique within the project) expected
 * to clear it; it is resolved against the plan by check-migrations, so a chain
 * that lost that step reports the blocker as a Failure instead of failing to load.
 */
export interface BlockerDef {
  name: string;
  /** Logical database the query runs in. */
  database: string;
  /** A COUNT: 0 means nothing blocks. */
  query: string;
  /** What the refusing migration says, or what to do. */
  message: string;
  fixedBy: string | undefined;
}

export type StepKind = 'sync' | 'data' | 'check';

export interface StepDef {
  /**
   * Stable id: `release/project/N`, N counting that project's steps in that
   * release from 1; a per-cell step's copy for one cell is
   * `release/project/N.CELL` (the dot keeps it apart from every `release/project/N`;
   * it needs no shell quoting).
   */
  id: string;
  /**
   * A per-cell step's cell (a logical database of the project): `cell` in
   * its templates, expect, needed-when and touches means this database.
   */
  cell?: string;
  release: string;
  project: string;
  kind: StepKind;
  /** argv template; each element is rendered separately, so no shell ever parses it. */
  command: readonly string[];
  env: string;
  name: string | undefined;
  /** Why this step exists (release note, migration); shown in plans. */
  why: string | undefined;
  /** sync: the version each named database must be at afterwards. */
  expect: Readonly<Record<string, Expectation>>;
  /** data: the step is needed while this query returns a non-zero count. */
  neededWhen: { database: string; query: string } | undefined;
  /** data: exit code meaning "some work done, more remains: run again". */
  repeatWhileExit: number | undefined;
  /** data: the most times the command may run before leapfrog gives up. */
  maxRuns: number;
  /**
   * data: the most rows one run handles, as its argv says (e.g. nova's
   * `--max-number 50`). Declared rather than parsed from argv, which only the
   * toolchain understands; check-migrations projects the runs from it.
   */
  batch?: number;
  timeoutMs: number;
  /** Hops (`project@release`) that must be complete before this step starts. */
  after: readonly { project: string; release: string }[];
  /**
   * Tables of the project's databases this step may delete rows from (a
   * rehearsal's audit accepts lost rows there and nowhere else). Absent: none.
   */
  deletes?: readonly string[];
  /**
   * Tables whose rows the step's time grows with (`touches:`): their counts
   * are recorded with the step's time by every run and rehearsal, and
   * check-migrations scales that time by the target's counts
   * (check/predict.ts). Absent: a data step's rows are its needed-when count;
   * any other step's time is taken as fixed.
   */
  touches?: readonly { database: string; table: string }[];
}

export interface ReleaseDef {
  release: string;
  steps: readonly StepDef[];
}

export interface Chain {
  name: string;
  description: string | undefined;
  /** The chain file, absolute. */
  file: string;
  /** sha256 of the chain file's bytes: runs record which chain they ran. */
  sha256: string;
  /** Where env files are looked up. */
  envDir: string;
  projects: Readonly<Record<string, ProjectDef>>;
  releases: readonly ReleaseDef[];
}

export interface EnvSource {
  kind: 'file' | 'url';
  /** Absolute path for files; the URL for remote sources. */
  location: string;
  sha256: string;
}

export interface EnvDef {
  name: string;
  file: string;
  /** plain (or absent): steps run on the host with the tree's bin on PATH; rootfs: steps run under bubblewrap with the tree as `/`. */
  kind?: 'plain' | 'rootfs' | undefined;
  source: EnvSource;
  /** Directories (relative to the env root) prepended to PATH. */
  path: readonly string[];
  /** Extra variables; `{{ root }}` is the unpacked env's directory. */
  vars: Readonly<Record<string, string>>;
}
