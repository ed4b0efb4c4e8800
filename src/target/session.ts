import { existsSync } from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import { LeapfrogError } from '../errors.js';
import { sqliteFile, type Target } from './url.js';

/**
 * Connections to the target's databases, one knex instance per database so a
 * chain's SQL (version probes, needed-when queries) runs in that database's
 * context on both SQLite and MySQL. The only module that creates knex.
 */
/**
 * knex's default logger prints pool errors ("Acquire connection error") to
 * stdout, which would corrupt --format json; the same error reaches the caller
 * as a rejected query, which reports it.
 */
export const QUIET_KNEX_LOG = { warn: () => {}, error: () => {}, deprecate: () => {}, debug: () => {} };

export class TargetSession {
  private readonly pools = new Map<string, Knex>();
  private server: Knex | undefined;

  constructor(readonly target: Target) {}

  /** Whether the database (SQLite file, MySQL schema) exists. */
  async exists(name: string): Promise<boolean> {
    if (this.target.kind === 'sqlite') return existsSync(sqliteFile(this.target.dir, name));
    const rows = await this.serverConnection()
      .select('SCHEMA_NAME')
      .from('information_schema.SCHEMATA')
      .where('SCHEMA_NAME', name);
    return rows.length > 0;
  }

  /** A connection to an existing database. Callers check `exists` first: SQLite would create the file. */
  db(name: string): Knex {
    let k = this.pools.get(name);
    if (k) return k;
    const t = this.target;
    if (t.kind === 'sqlite') {
      // Read-only: leapfrog itself never writes a project database; the toolchains do.
      k = knexFactory({
        client: 'better-sqlite3',
        connection: { filename: sqliteFile(t.dir, name), options: { readonly: true } },
        useNullAsDefault: true,
        pool: { min: 0, max: 1 },
        log: QUIET_KNEX_LOG,
      });
    } else {
      k = knexFactory({ client: 'mysql2', connection: { ...mysqlConnection(t), database: name }, pool: { min: 0, max: 2 }, log: QUIET_KNEX_LOG });
    }
    this.pools.set(name, k);
    return k;
  }

  /** A connection with no default database (MySQL only): server-wide facts such as check-migrations reads. */
  serverKnex(): Knex {
    return this.serverConnection();
  }

  private serverConnection(): Knex {
    const t = this.target;
    if (t.kind !== 'mysql') throw new Error('server connection asked of a SQLite target');
    this.server ??= knexFactory({ client: 'mysql2', connection: mysqlConnection(t), pool: { min: 0, max: 2 }, log: QUIET_KNEX_LOG });
    return this.server;
  }

  /** Close connections so a toolchain (or a file copy) sees the database alone. */
  async release(name?: string): Promise<void> {
    const names = name === undefined ? [...this.pools.keys()] : [name];
    await Promise.all(
      names.map(async (n) => {
        const k = this.pools.get(n);
        this.pools.delete(n);
        await k?.destroy();
      }),
    );
  }

  async close(): Promise<void> {
    await this.release();
    await this.server?.destroy();
    this.server = undefined;
  }
}

function mysqlConnection(t: Extract<Target, { kind: 'mysql' }>): Knex.MySql2ConnectionConfig {
  return t.socket
    ? { socketPath: t.socket, user: t.user, password: t.password, connectTimeout: 10_000 }
    : { host: t.host, port: t.port, user: t.user, password: t.password, connectTimeout: 10_000 };
}

/** Run `cb` with a session, closing it however `cb` ends. */
export async function withTarget<T>(target: Target, cb: (s: TargetSession) => Promise<T>): Promise<T> {
  const s = new TargetSession(target);
  try {
    return await cb(s);
  } finally {
    await s.close();
  }
}

export function targetUnreachable(err: unknown, what: string): LeapfrogError {
  const code = (err as { code?: string }).code;
  return new LeapfrogError('input', `${what}: cannot reach the target database (${code ?? (err as Error).message}). Check --db and that the server is up.`, { cause: err });
}
