import { LeapfrogError } from '../errors.js';
import { describeTarget, type Target } from './url.js';

/**
 * Where a chain's databases live: a default server, and the databases placed
 * on other servers (nova's cell databases, often on servers of their own).
 * The chain names logical servers (`server: cell1` on a database); the
 * command line maps them (`--db cell1=mysql://…`); a server the command line
 * does not map is the default one. Built once per command (core/context.ts).
 */
export interface Placement {
  default: Target;
  /** Database name → its server, for the databases not on the default server. */
  byDatabase: Readonly<Record<string, Target>>;
  /**
   * The chain's servers the command line did not map (no --db NAME=URL),
   * each with the databases the chain puts there: they are on the default
   * server, and every command says so (`placementNotes`).
   */
  unmapped?: Readonly<Record<string, readonly string[]>>;
}

export const singleServer = (t: Target): Placement => ({ default: t, byDatabase: {} });

export function serverFor(p: Placement, database: string): Target {
  return p.byDatabase[database] ?? p.default;
}

/** Every server of the placement, the default first, each once. */
export function servers(p: Placement): Target[] {
  const out = new Map<string, Target>([[describeTarget(p.default), p.default]]);
  for (const t of Object.values(p.byDatabase)) if (!out.has(describeTarget(t))) out.set(describeTarget(t), t);
  return [...out.values()];
}

/**
 * The placement as shown and as the ledger keys it: the default server's
 * description, then `database=server` for each database elsewhere, sorted.
 * One server: exactly describeTarget, so ledgers from before placements
 * still match.
 */
export function describePlacement(p: Placement): string {
  const base = describeTarget(p.default);
  const moved = Object.entries(p.byDatabase)
    .filter(([, t]) => describeTarget(t) !== base)
    .map(([db, t]) => `${db}=${describeTarget(t)}`)
    .sort();
  return moved.length === 0 ? base : `${base} (${moved.join(', ')})`;
}

/**
 * The placement of a chain's databases: `servers` maps the chain's logical
 * server names to URLs parsed as targets; `databaseServers` is each database's
 * logical server (from the chain). Every server must be of one kind.
 */
export function place(defaultTarget: Target, servers: Readonly<Record<string, Target>>, databaseServers: Readonly<Record<string, string | undefined>>, known: readonly string[]): Placement {
  for (const name of Object.keys(servers)) {
    if (!known.includes(name)) {
      throw new LeapfrogError('input', `--db ${name}=…: the chain names no server ${name}${known.length > 0 ? `; its servers are ${known.join(', ')}` : ' (it puts every database on the default server)'}`);
    }
  }
  const byDatabase: Record<string, Target> = {};
  const unmapped: Record<string, string[]> = {};
  for (const [db, server] of Object.entries(databaseServers)) {
    if (server === undefined) continue;
    const t = servers[server];
    if (t) byDatabase[db] = t;
    else (unmapped[server] ??= []).push(db);
  }
  const mixed = Object.values(byDatabase).find((t) => t.kind !== defaultTarget.kind);
  if (mixed) throw new LeapfrogError('input', `--db: ${describeTarget(defaultTarget)} and ${describeTarget(mixed)} are of different kinds; every server of one chain must be SQLite, or every one MySQL/MariaDB`);
  return { default: defaultTarget, byDatabase, ...(Object.keys(unmapped).length > 0 ? { unmapped } : {}) };
}

/**
 * What a DBA must hear when the chain names a server the command line did
 * not give: its databases are read, locked, created and migrated on the
 * default server. Right when they are there; when they are not, a
 * forgotten `--db NAME=URL` would otherwise go unnoticed (a database the
 * chain creates would be created on the wrong server, the real one never
 * touched).
 */
export function placementNotes(p: Placement): string[] {
  return Object.entries(p.unmapped ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([server, dbs]) => `the chain puts ${dbs.join(', ')} on server ${server}, which the command line does not give (--db ${server}=URL): ${dbs.length === 1 ? 'it is' : 'they are'} taken to be on the default server, ${describeTarget(p.default)}`);
}
