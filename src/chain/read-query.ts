/**
 * The chain's own SQL (version probes, `needed-when`, blockers) only reads:
 * it runs before anything is changed, from `plan` and `check-migrations` as
 * much as from `run`. The sessions make that so (SQLite `query_only`; MySQL
 * a READ ONLY transaction around a derived table, always rolled back); this
 * says it at load, with the file and line, instead of as a server's syntax
 * error at 3 a.m.
 */

/** Comments and blank space a query may start with (SQL `--`, MySQL `#`, C-style). */
const LEADING = /^(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/|\()*/;

/** Why `sql` is not a query leapfrog can run as a read, or undefined when it is a SELECT (or WITH … SELECT). */
export function notARead(sql: string): string | undefined {
  const word = /^[A-Za-z]+/.exec(sql.replace(LEADING, ''))?.[0]?.toUpperCase();
  if (word === 'SELECT' || word === 'WITH' || word === 'VALUES') return undefined;
  return `must be one SELECT: it starts with ${word ?? 'nothing'}, and the chain's queries only read (they run read-only, before anything changes, from plan and check-migrations too)`;
}
