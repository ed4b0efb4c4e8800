import type { Expectation, Version, VersionProbe } from '../chain/types.js';

/**
 * Recording a version the toolchain applied but never wrote: the one write
 * leapfrog makes to a project database, and only when the evidence proves the
 * schema is exactly what the same step left elsewhere (core/recovery.ts).
 * It is what `alembic stamp` and sqlalchemy-migrate's version_control do
 * (https://alembic.sqlalchemy.org/en/latest/api/commands.html#alembic.command.stamp),
 * and what operators do by hand after a timed-out db sync (Canonical's
 * octavia charm stamps after "Duplicate column name"). Each statement is a
 * compare-and-set: it changes exactly one row, from the version found, or
 * the whole stamp is rolled back.
 */

export interface StampStatement {
  sql: string;
  params: (string | number)[];
}

/** The statements that move `now` to `to`, or why leapfrog cannot write this kind of version. */
export function stampStatements(probe: VersionProbe, now: Version, to: Expectation): StampStatement[] | { why: string } {
  if (probe.kind === 'sql') return { why: 'its version is read by a query of the chain, which leapfrog cannot write' };
  if (to.kind === 'number' && now.kind === 'number') {
    return [{ sql: 'UPDATE migrate_version SET version = ? WHERE version = ?', params: [to.value, now.value] }];
  }
  if (to.kind === 'repos' && now.kind === 'repos') {
    const out: StampStatement[] = [];
    for (const [repo, want] of Object.entries(to.repos)) {
      const have = now.repos[repo] ?? null;
      if (have === null) return { why: `repository ${repo} is not under version control yet` };
      if (have !== want) out.push({ sql: 'UPDATE migrate_version SET version = ? WHERE repository_id = ? AND version = ?', params: [want, repo, have] });
    }
    return out;
  }
  if (to.kind === 'heads' && now.kind === 'heads' && to.heads.length === 1 && now.heads.length === 1) {
    return [{ sql: 'UPDATE alembic_version SET version_num = ? WHERE version_num = ?', params: [to.heads[0]!, now.heads[0]!] }];
  }
  return { why: `moving a version from ${now.kind} to ${to.kind} (several heads, a handover between version tables, a first version) is the project's own tool's to record` };
}
