import { mapLimit } from '../concurrency.js';
import { LeapfrogError } from '../errors.js';
import type { Chain, ProjectDef, StepDef, Version, VersionProbe } from '../chain/types.js';
import type { TargetSession } from './session.js';

/**
 * Reading versions and needed-when counts from the target. Each function
 * names its database so messages can say which project and database failed.
 */

/** The first column of the first row of the chain's query, read-only (session.read). */
async function firstValue(session: TargetSession, dbName: string, query: string): Promise<unknown> {
  const row = (await session.read(dbName, query))[0];
  return row === undefined ? undefined : Object.values(row)[0];
}

/**
 * A database that exists but records no version: absent when it is empty
 * (created, never migrated), partly created when it has tables (a first
 * migration that was stopped part-way: nova leaves 55 of 110 tables,
 * neutron 89 with an empty alembic_version). Never "absent" then: running
 * the initial migration again would fail on the tables already there.
 */
async function unversioned(session: TargetSession, dbName: string): Promise<Version> {
  const tables = (await session.tables(dbName)).filter((t) => t !== 'migrate_version' && t !== 'alembic_version');
  return tables.length === 0 ? { kind: 'absent' } : { kind: 'partial', tables };
}

async function migrateVersion(session: TargetSession, dbName: string, repositories: readonly string[] | undefined): Promise<Version | undefined> {
  if (!(await session.hasTable(dbName, 'migrate_version'))) return undefined;
  const rows = (await session.read(dbName, 'SELECT repository_id, version FROM migrate_version')) as { repository_id: string; version: number | string }[];
  if (repositories === undefined) {
    if (rows.length === 0) return undefined;
    if (rows.length > 1) {
      throw new LeapfrogError(
        'input',
        `database ${dbName}: migrate_version has several repositories (${rows.map((r) => r.repository_id).join(', ')}); declare them with { kind: sqlalchemy-migrate, repositories: [...] }`,
      );
    }
    return { kind: 'number', value: Number(rows[0]!.version) };
  }
  const repos: Record<string, number | null> = {};
  for (const r of repositories) repos[r] = null;
  for (const row of rows) if (row.repository_id in repos) repos[row.repository_id] = Number(row.version);
  if (Object.values(repos).every((v) => v === null)) return undefined;
  return { kind: 'repos', repos };
}

async function alembicVersion(session: TargetSession, dbName: string): Promise<Version | undefined> {
  if (!(await session.hasTable(dbName, 'alembic_version'))) return undefined;
  const rows = (await session.read(dbName, 'SELECT version_num FROM alembic_version')) as { version_num: string }[];
  return rows.length === 0 ? undefined : { kind: 'heads', heads: rows.map((r) => r.version_num).sort() };
}

export async function probeVersion(session: TargetSession, dbName: string, probe: VersionProbe): Promise<Version> {
  if (!(await session.exists(dbName))) return { kind: 'absent' };
  switch (probe.kind) {
    case 'sqlalchemy-migrate':
      return (await migrateVersion(session, dbName, probe.repositories)) ?? unversioned(session, dbName);
    case 'alembic':
      return (await alembicVersion(session, dbName)) ?? unversioned(session, dbName);
    case 'alembic-else-sqlalchemy-migrate':
      // nova and cinder keep both tables from zed (which hands migrate over to alembic) until epoxy drops
      // migrate_version; keystone and glance keep both for good. Once alembic_version has a row, it is the truth.
      return (await alembicVersion(session, dbName)) ?? (await migrateVersion(session, dbName, probe.repositories)) ?? unversioned(session, dbName);
    case 'sql': {
      const v = await firstValue(session, dbName, probe.query);
      if (v === undefined || v === null) return { kind: 'absent' };
      return probe.numeric ? { kind: 'number', value: Number(v) } : { kind: 'text', value: String(v) };
    }
  }
}

export async function probeProject(session: TargetSession, project: ProjectDef): Promise<Record<string, Version>> {
  const out: Record<string, Version> = {};
  for (const [db, name] of Object.entries(project.databases)) {
    try {
      out[db] = await probeVersion(session, name, project.version[db]!);
    } catch (err) {
      if (err instanceof LeapfrogError) throw err;
      throw new LeapfrogError('unexpected', `project ${project.name}, database ${db} (${name}): reading its version failed: ${(err as Error).message}`, { cause: err });
    }
  }
  return out;
}

/**
 * Every project's versions. Projects are probed side by side: on a server,
 * each database has its own connection to open, and one after another that
 * dominates a large target (bench/check.ts).
 */
export async function probeAll(session: TargetSession, chain: Chain): Promise<Record<string, Record<string, Version>>> {
  const projects = Object.values(chain.projects);
  const versions = await mapLimit(projects, 8, (p) => probeProject(session, p));
  return Object.fromEntries(projects.map((p, i) => [p.name, versions[i]!]));
}

/** The count a needed-when query returns. Throws when the query fails: the caller decides whether that is expected. */
export async function neededCount(session: TargetSession, dbName: string, query: string): Promise<number> {
  const v = await firstValue(session, dbName, query);
  const n = Number(v ?? 0);
  if (!Number.isFinite(n)) throw new Error(`needed-when returned ${String(v)}, not a count`);
  return n;
}

/** needed-when counts for every data step of the chain whose query can run now. */
export async function probeNeeded(session: TargetSession, chain: Chain): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of chain.releases.flatMap((r) => r.steps)) {
    if (!s.neededWhen) continue;
    const name = chain.projects[s.project]!.databases[s.neededWhen.database]!;
    if (!(await session.exists(name))) continue;
    try {
      out[s.id] = await neededCount(session, name, s.neededWhen.query);
    } catch {
      // Before the run, a later step's query may name tables that earlier steps create.
    }
  }
  return out;
}

/** What a step's time grows with (check/predict.ts): the rows it touches, in all and per table or probe. */
export interface StepRows {
  rows: number;
  /** `database.table` (the chain's logical database) → rows, or `needed-when` → its count. */
  counts: Record<string, number>;
}

/**
 * The rows of the tables a step declares (`touches:`), counted now. A table
 * or database that does not exist yet (an earlier step creates it) has none.
 * COUNT(*) reads the whole table (InnoDB keeps no exact count), which is why
 * only declared tables are counted.
 */
export async function touchedRows(session: TargetSession, chain: Chain, step: StepDef): Promise<StepRows | undefined> {
  if (!step.touches) return undefined;
  const project = chain.projects[step.project]!;
  const counts: Record<string, number> = {};
  for (const t of step.touches) {
    const name = project.databases[t.database]!;
    // Backquotes quote a name in MySQL and MariaDB, and SQLite accepts them too (https://www.sqlite.org/lang_keywords.html); the schema allows no backquote in a table name.
    counts[`${t.database}.${t.table}`] = (await session.exists(name)) && (await session.hasTable(name, t.table)) ? Number(await firstValue(session, name, `SELECT COUNT(*) FROM \`${t.table}\``)) : 0;
  }
  return { rows: Object.values(counts).reduce((n, c) => n + c, 0), counts };
}

/**
 * Per step of `steps`, the rows it touches on the target now: its declared
 * tables, else a data step's needed-when count (from `neededCounts`). Steps
 * with neither are left out: their time does not scale.
 */
export async function stepRowsNow(session: TargetSession, chain: Chain, steps: readonly StepDef[], neededCounts: Readonly<Record<string, number>>): Promise<Record<string, StepRows>> {
  const out: Record<string, StepRows> = {};
  for (const s of steps) {
    const touched = await touchedRows(session, chain, s);
    if (touched) out[s.id] = touched;
    else if (s.kind === 'data' && s.neededWhen && neededCounts[s.id] !== undefined) out[s.id] = { rows: neededCounts[s.id]!, counts: { 'needed-when': neededCounts[s.id]! } };
  }
  return out;
}
