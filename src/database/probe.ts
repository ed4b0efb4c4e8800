import type { Knex } from 'knex';
import { LeapfrogError } from '../errors.js';
import type { Chain, ProjectDef, Version, VersionProbe } from '../chain/types.js';
import type { TargetSession } from './session.js';

/**
 * Reading versions and needed-when counts from the target. Each function
 * names its database so messages can say which project and database failed.
 */

async function firstValue(k: Knex, query: string): Promise<unknown> {
  const res: unknown = await k.raw(query);
  // better-sqlite3 returns rows; mysql2 returns [rows, fields].
  const rows = (Array.isArray(res) && Array.isArray(res[0]) ? res[0] : res) as Record<string, unknown>[];
  const row = rows[0];
  return row === undefined ? undefined : Object.values(row)[0];
}

export async function probeVersion(session: TargetSession, dbName: string, probe: VersionProbe): Promise<Version> {
  if (!(await session.exists(dbName))) return { kind: 'absent' };
  const k = session.db(dbName);
  switch (probe.kind) {
    case 'sqlalchemy-migrate': {
      if (!(await k.schema.hasTable('migrate_version'))) return { kind: 'absent' };
      const rows = (await k.select('repository_id', 'version').from('migrate_version')) as { repository_id: string; version: number | string }[];
      if (probe.repositories === undefined) {
        if (rows.length === 0) return { kind: 'absent' };
        if (rows.length > 1) {
          throw new LeapfrogError(
            'input',
            `database ${dbName}: migrate_version has several repositories (${rows.map((r) => r.repository_id).join(', ')}); declare them with { kind: sqlalchemy-migrate, repositories: [...] }`,
          );
        }
        return { kind: 'number', value: Number(rows[0]!.version) };
      }
      const repos: Record<string, number | null> = {};
      for (const r of probe.repositories) repos[r] = null;
      for (const row of rows) if (row.repository_id in repos) repos[row.repository_id] = Number(row.version);
      if (Object.values(repos).every((v) => v === null)) return { kind: 'absent' };
      return { kind: 'repos', repos };
    }
    case 'alembic': {
      if (!(await k.schema.hasTable('alembic_version'))) return { kind: 'absent' };
      const rows = (await k.select('version_num').from('alembic_version')) as { version_num: string }[];
      if (rows.length === 0) return { kind: 'absent' };
      return { kind: 'heads', heads: rows.map((r) => r.version_num).sort() };
    }
    case 'sql': {
      const v = await firstValue(k, probe.query);
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

export async function probeAll(session: TargetSession, chain: Chain): Promise<Record<string, Record<string, Version>>> {
  const out: Record<string, Record<string, Version>> = {};
  for (const p of Object.values(chain.projects)) out[p.name] = await probeProject(session, p);
  return out;
}

/** The count a needed-when query returns. Throws when the query fails: the caller decides whether that is expected. */
export async function neededCount(session: TargetSession, dbName: string, query: string): Promise<number> {
  const v = await firstValue(session.db(dbName), query);
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
