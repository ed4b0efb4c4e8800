import type { Chain, Expectation, ProjectDef, StepDef, Version } from './types.js';
import { compareToExpectation, formatVersion, orderKey } from './version.js';

/**
 * Where a project stands on its chain, from its databases' probed versions
 * alone. Pure; the planner builds on it.
 *
 * A project's steps, in chain order, define a line of states: after its
 * first i steps, each database is at the expectation of the last sync that
 * declared it (or at the chain's `start`, or absent). The probed versions
 * are explained by position i when every database is at that state, or,
 * for the databases the sync at i declares, between its state and that
 * sync's expectation (a sync that stopped part-way: sqlalchemy-migrate
 * commits each numbered migration, alembic each revision). A project no
 * position explains (a juno main database next to a newton api database,
 * restored from two backups) is refused: no step of the chain was written
 * for that state.
 */

export type Versions = Readonly<Record<string, Version>>;

export function projectSteps(chain: Chain, project: string): StepDef[] {
  return chain.releases.flatMap((r) => r.steps.filter((s) => s.project === project));
}

/** Non-numeric versions of a database, in the order the chain reaches them. */
export function versionOrder(chain: Chain, project: ProjectDef, db: string): string[] {
  const order: string[] = [];
  const push = (e: Expectation | undefined) => {
    const k = e && orderKey(e);
    if (k !== undefined && !order.includes(k)) order.push(k);
  };
  push(project.start[db]);
  for (const s of projectSteps(chain, project.name)) push(s.expect[db]);
  return order;
}

const keyOf = (v: Version | undefined): string | undefined => (v?.kind === 'heads' ? v.heads.join(',') : v?.kind === 'text' ? v.value : undefined);

/**
 * The order of a database's versions, with an unknown version it stands at
 * inserted just before the expectation of the in-flight sync that was
 * moving it there (an alembic revision inside a hop is "inside that step",
 * not unknown, when the ledger says a run died in it).
 */
export function orderFor(chain: Chain, project: ProjectDef, db: string, current: Version | undefined, inFlight: ReadonlySet<string> | undefined): string[] {
  const order = versionOrder(chain, project, db);
  const key = keyOf(current);
  if (key === undefined || order.includes(key) || !inFlight) return order;
  const step = projectSteps(chain, project.name).find((s) => inFlight.has(s.id) && s.kind === 'sync' && s.expect[db]);
  const target = step && orderKey(step.expect[db]!);
  const at = target === undefined ? -1 : order.indexOf(target);
  if (at >= 0) order.splice(at, 0, key);
  return order;
}

/** What each database should be after the project's first `i` steps: undefined means absent. */
export function expectedAt(project: ProjectDef, steps: readonly StepDef[], i: number): Record<string, Expectation | undefined> {
  const out: Record<string, Expectation | undefined> = {};
  for (const db of Object.keys(project.databases)) out[db] = project.start[db];
  for (const s of steps.slice(0, i)) if (s.kind === 'sync') for (const [db, e] of Object.entries(s.expect)) out[db] = e;
  return out;
}

const absent: Version = { kind: 'absent' };

/** `v` is exactly the state `e` (undefined: absent). */
function isAt(v: Version, e: Expectation | undefined, order: readonly string[]): boolean {
  if (e === undefined) return v.kind === 'absent';
  return compareToExpectation(v, e, order) === 'equal';
}

/** `v` is past `from` (undefined: absent) and at or before `to`: part of the way. */
function isBetween(v: Version, from: Expectation | undefined, to: Expectation, order: readonly string[]): boolean {
  if (v.kind === 'absent') return false;
  const vsTo = compareToExpectation(v, to, order);
  if (vsTo !== 'below' && vsTo !== 'equal') return false;
  return from === undefined || compareToExpectation(v, from, order) === 'above';
}

/**
 * The versions the planner goes by: a partly created database whose chain
 * declares `partial: rerun` is planned as if absent, so its first sync runs
 * again over the tables there; every other version as probed.
 */
export function plannedVersions(project: ProjectDef, versions: Versions): Versions {
  const rerun = Object.keys(versions).filter((db) => versions[db]!.kind === 'partial' && project.partial?.[db] === 'rerun');
  if (rerun.length === 0) return versions;
  return { ...versions, ...Object.fromEntries(rerun.map((db) => [db, absent])) };
}

/** "3 tables (a, b, c)", at most 8 named. */
export function describeTables(tables: readonly string[]): string {
  const shown = tables.slice(0, 8).join(', ') + (tables.length > 8 ? `, … (${tables.length - 8} more)` : '');
  return `${tables.length} table${tables.length === 1 ? '' : 's'} (${shown})`;
}

export interface Standing {
  /** Every position (number of the project's steps done) that explains the versions, ascending; empty when none does. */
  positions: number[];
  /** Per database, the order used to compare its non-numeric versions. */
  orders: Record<string, string[]>;
}

export function standing(chain: Chain, project: ProjectDef, probed: Versions, inFlight?: ReadonlySet<string>): Standing {
  const versions = plannedVersions(project, probed);
  const steps = projectSteps(chain, project.name);
  const dbs = Object.keys(project.databases);
  const orders = Object.fromEntries(dbs.map((db) => [db, orderFor(chain, project, db, versions[db], inFlight)]));
  const positions: number[] = [];
  for (let i = 0; i <= steps.length; i++) {
    const e = expectedAt(project, steps, i);
    const next = steps[i];
    const explained = dbs.every((db) => {
      const v = versions[db] ?? absent;
      if (isAt(v, e[db], orders[db]!)) return true;
      const to = next?.kind === 'sync' ? next.expect[db] : undefined;
      return to !== undefined && isBetween(v, e[db], to, orders[db]!);
    });
    if (explained) positions.push(i);
  }
  return { positions, orders };
}

/** Problems with one database's version on its own, phrased for the operator. */
function databaseProblems(chain: Chain, project: ProjectDef, versions: Versions, orders: Record<string, string[]>): string[] {
  const problems: string[] = [];
  const steps = projectSteps(chain, project.name);
  for (const [db, dbName] of Object.entries(project.databases)) {
    const where = `project ${project.name}, database ${db} (${dbName})`;
    const v = versions[db] ?? absent;
    const start = project.start[db];
    const expects = steps.map((s) => s.expect[db]).filter((e): e is Expectation => e !== undefined);
    const order = orders[db]!;
    if (v.kind === 'partial') {
      // nova killed inside its initial migration leaves 42 tables and no version row; run again, it fails with
      // "Table 'instances' already exists". Only the chain can say a project's first migration skips what is there.
      problems.push(
        `${where}: partly created: ${describeTables(v.tables)} but no version recorded, so a first migration was stopped part-way and running it again would fail on the tables already there. ` +
          `Put the database back as it was before that migration (restore it from the backup or restore point taken before it, or, as it had no tables then, drop the tables it has now) and run again; ` +
          `or, if ${project.name}'s first migration creates only what is missing, declare it in the chain (projects.${project.name}.partial: { ${db}: rerun }).`,
      );
      continue;
    }
    if (v.kind === 'absent') {
      if (start) problems.push(`${where}: does not exist or has no version table, but the chain starts it at ${formatVersion(start)}. Check --db, or restore the database.`);
      continue;
    }
    const last = expects[expects.length - 1] ?? start;
    if (!last) {
      problems.push(`${where}: exists at version ${formatVersion(v)}, but chain ${chain.name} never creates or migrates it. Check --db and the chain's databases.`);
      continue;
    }
    const vsEnd = compareToExpectation(v, last, order);
    const vsStart = start ? compareToExpectation(v, start, order) : 'above';
    const key = keyOf(v);
    if (vsEnd === 'unknown' || vsStart === 'unknown' || (key !== undefined && !order.includes(key))) {
      const known = [...new Set([start, ...expects].filter((e): e is Expectation => e !== undefined).map(formatVersion))];
      problems.push(`${where}: is at version ${formatVersion(v)}, which chain ${chain.name} does not know (it knows ${known.join(', ')}). Was it migrated by another tool or chain?`);
    } else if (vsEnd === 'above') {
      problems.push(`${where}: is at version ${formatVersion(v)}, ahead of the chain's end (${formatVersion(last)}). Nothing here can move it; use a chain that starts at or beyond it.`);
    } else if (vsStart === 'below') {
      problems.push(`${where}: is at version ${formatVersion(v)}, behind the chain's start (${formatVersion(start!)}). Upgrade it to the chain's first release first.`);
    }
  }
  return problems;
}

/** The releases of the chain at whose end a database has version `v`; empty when it is between boundaries. */
function releasesAt(chain: Chain, project: ProjectDef, db: string, v: Version, order: readonly string[]): string[] {
  const steps = projectSteps(chain, project.name);
  const out: string[] = [];
  if (project.start[db] && isAt(v, project.start[db], order)) out.push('the chain start');
  for (const r of chain.releases) {
    const upTo = steps.filter((s) => chain.releases.findIndex((x) => x.release === s.release) <= chain.releases.indexOf(r)).length;
    if (isAt(v, expectedAt(project, steps, upTo)[db], order) && !out.includes(r.release)) out.push(r.release);
  }
  return out;
}

/**
 * Why the target cannot be planned for this project; empty when it can. A
 * database's own problem (ahead, behind, unknown, missing) is named first;
 * databases that are each fine but stand at no common point are named
 * together, each with where the chain has its version.
 */
export function standingProblems(chain: Chain, project: ProjectDef, probed: Versions, inFlight?: ReadonlySet<string>): string[] {
  const versions = plannedVersions(project, probed);
  const s = standing(chain, project, versions, inFlight);
  const own = databaseProblems(chain, project, versions, s.orders);
  if (own.length > 0 || s.positions.length > 0) return own;
  const each = Object.keys(project.databases).map((db) => {
    const v = versions[db] ?? absent;
    const at = v.kind === 'absent' ? [] : releasesAt(chain, project, db, v, s.orders[db]!);
    return `${db} ${v.kind === 'absent' ? 'absent' : formatVersion(v)}${at.length > 0 ? ` (end of ${at.join(', ')})` : ' (between boundaries)'}`;
  });
  return [
    `project ${project.name}: its databases stand where no point of chain ${chain.name} puts them together: ${each.join('; ')}. Was one restored from another backup? Restore them from the same point, or roll back with leapfrog.`,
  ];
}
