import { existsSync } from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import { LeapfrogError } from '../errors.js';
import { describeTarget, sqliteFile, type Target } from './url.js';

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

  /** A server target answers, or a clear input error (wrong password, server down) before anything else runs. */
  async connect(): Promise<void> {
    if (this.target.kind !== 'mysql') return;
    try {
      await this.serverConnection().raw('SELECT 1');
    } catch (err) {
      throw targetUnreachable(err, describeTarget(this.target));
    }
  }

  /**
   * Other client sessions with one of `names` as their current database, from
   * the server's process list (MySQL/MariaDB; a SQLite target has none to
   * show). `visible` is false when this user lacks the PROCESS privilege and
   * so sees only its own sessions.
   */
  async clientSessions(names: readonly string[]): Promise<{ visible: boolean; sessions: ClientSession[] }> {
    if (this.target.kind !== 'mysql' || names.length === 0) return { visible: true, sessions: [] };
    const k = this.serverConnection();
    const [rows] = (await k.raw(
      `SELECT ID id, USER user, HOST host, DB db, COMMAND command, TIME time, STATE state FROM information_schema.PROCESSLIST
       WHERE DB IN (${names.map(() => '?').join(', ')}) AND ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Killed')
       ORDER BY DB, ID`,
      [...names],
    )) as [ClientSession[]];
    // Without PROCESS (or SUPER), PROCESSLIST shows only the account's own threads
    // (https://mariadb.com/kb/en/information-schema-processlist-table/).
    const [priv] = (await k.raw(
      `SELECT COUNT(*) n FROM information_schema.USER_PRIVILEGES
       WHERE PRIVILEGE_TYPE IN ('PROCESS', 'SUPER') AND GRANTEE = CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")`,
    )) as [{ n: number }[]];
    return { visible: Number(priv[0]?.n ?? 0) > 0, sessions: rows.map((r) => ({ ...r, time: Number(r.time) })) };
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

export function mysqlConnection(t: Extract<Target, { kind: 'mysql' }>): Knex.MySql2ConnectionConfig {
  return t.socket
    ? { socketPath: t.socket, user: t.user, password: t.password, connectTimeout: 10_000 }
    : { host: t.host, port: t.port, user: t.user, password: t.password, connectTimeout: 10_000 };
}

export interface ClientSession {
  id: number;
  user: string;
  host: string;
  db: string;
  command: string;
  time: number;
  state: string | null;
}

/**
 * Run `cb` with a session, closing it however `cb` ends. By default a server
 * that does not answer is an input error before `cb` runs; `check: false` is
 * for callers that report reachability themselves (check-migrations).
 */
export async function withTarget<T>(target: Target, cb: (s: TargetSession) => Promise<T>, options: { check?: boolean } = {}): Promise<T> {
  const s = new TargetSession(target);
  try {
    if (options.check !== false) await s.connect();
    return await cb(s);
  } finally {
    await s.close();
  }
}

export function targetUnreachable(err: unknown, what: string): LeapfrogError {
  const code = (err as { code?: string }).code;
  const said = code && (err as Error).message && !(err as Error).message.startsWith(code) ? `${code}: ${(err as Error).message}` : (code ?? (err as Error).message);
  return new LeapfrogError('input', `${what}: cannot reach the target database (${said}). Check --db, the password (URL, LEAPFROG_DB_PASSWORD or --defaults-file) and that the server is up.`, { cause: err });
}
