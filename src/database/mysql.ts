import mysql from 'mysql2/promise';
import { LeapfrogError } from '../errors.js';
import type { SnapshotFile } from './digest.js';
import type { SchemaShape } from './fingerprint.js';
import type { ServerInfo } from './inspect.js';
import { dumpDatabase, restoreDump } from './mysql-dump.js';
import { mysqlFacts } from './mysql-facts.js';
import { acquireServerLock, serverLockNames } from './mysql-lock.js';
import { asDerivedTable, targetUnreachable, type ClientSession, type DatabaseSpec, type LockOptions, type Row, type ServerFacts, type ServerSession } from './session.js';
import type { StampStatement } from './stamp.js';
import { describeTarget, redactUrl, type DatabaseAddress, type Target } from './url.js';

export type MysqlTarget = Extract<Target, { kind: 'mysql' }>;
const ident = (name: string) => `\`${name.replace(/`/g, '``')}\``;

export function mysqlConnection(t: MysqlTarget): mysql.ConnectionOptions {
  return t.socket
    ? { socketPath: t.socket, user: t.user, password: t.password, connectTimeout: 10_000 }
    : { host: t.host, port: t.port, user: t.user, password: t.password, connectTimeout: 10_000 };
}

/**
 * MySQL/MariaDB: one schema per database on a server, connections pooled
 * per database. The chain's SQL runs in START TRANSACTION READ ONLY, rolled
 * back afterwards: the server refuses anything that would change a table, a
 * schema, a user or a grant (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION,
 * 1792). What a read-only transaction still allows (SET GLOBAL, FLUSH,
 * SELECT … INTO OUTFILE, all tried on MariaDB 10.11) cannot stand inside
 * the derived table `read` wraps the chain's SQL in. multipleStatements
 * stays off (mysql2's default).
 */
export class MysqlSession implements ServerSession {
  private readonly pools = new Map<string, mysql.Pool>();
  private server: mysql.Pool | undefined;

  constructor(readonly target: MysqlTarget) {}

  private pool(database?: string): mysql.Pool {
    if (database === undefined) return (this.server ??= this.makePool(undefined));
    let p = this.pools.get(database);
    if (!p) {
      p = this.makePool(database);
      this.pools.set(database, p);
    }
    return p;
  }

  private makePool(database: string | undefined): mysql.Pool {
    return mysql.createPool({ ...mysqlConnection(this.target), database, connectionLimit: 2, maxIdle: 0, idleTimeout: 10_000 });
  }

  private async all(database: string | undefined, sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    const [rows] = await this.pool(database).query(sql, params as unknown[]);
    return rows as Row[];
  }

  async connect(): Promise<void> {
    try {
      await this.all(undefined, 'SELECT 1');
    } catch (err) {
      throw targetUnreachable(err, describeTarget(this.target));
    }
  }

  async exists(name: string): Promise<boolean> {
    return (await this.all(undefined, 'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [name])).length > 0;
  }

  /** A dead client's transaction is rolled back by the server itself. */
  async rollBackInterrupted(): Promise<string[]> {
    return [];
  }

  /** The chain's SQL, in a READ ONLY transaction that is always rolled back. */
  async read(name: string, sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    const c = await this.pool(name).getConnection();
    let healthy = false;
    try {
      await c.query('START TRANSACTION READ ONLY');
      try {
        const [rows] = await c.query(asDerivedTable(sql), params as unknown[]);
        return rows as Row[];
      } finally {
        await c.query('ROLLBACK');
        healthy = true;
      }
    } finally {
      // A connection whose ROLLBACK did not go through must not serve another query.
      if (healthy) c.release();
      else c.destroy();
    }
  }

  async hasTable(name: string, table: string): Promise<boolean> {
    return (await this.all(undefined, 'SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [name, table])).length > 0;
  }

  async tables(name: string): Promise<string[]> {
    const rows = await this.all(undefined, "SELECT TABLE_NAME t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", [name]);
    return rows.map((r) => String(r.t));
  }

  async shape(name: string): Promise<SchemaShape> {
    const tables: SchemaShape['tables'] = {};
    const cols = await this.all(
      undefined,
      `SELECT TABLE_NAME t, COLUMN_NAME c, COLUMN_TYPE ty, IS_NULLABLE n, COLUMN_KEY ck FROM information_schema.COLUMNS
       WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
      [name],
    );
    for (const r of cols) (tables[String(r.t)] ??= { columns: [], indexes: [] }).columns.push(`${String(r.c)} ${String(r.ty)}${r.n === 'NO' ? ' not null' : ''}${r.ck === 'PRI' ? ' pk' : ''}`);
    const idx = await this.all(
      undefined,
      `SELECT TABLE_NAME t, INDEX_NAME i, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) c, MIN(NON_UNIQUE) nu
       FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? GROUP BY TABLE_NAME, INDEX_NAME ORDER BY TABLE_NAME, INDEX_NAME`,
      [name],
    );
    for (const r of idx) (tables[String(r.t)] ??= { columns: [], indexes: [] }).indexes.push(`${String(r.i)}(${String(r.c)})${Number(r.nu) === 0 ? ' unique' : ''}`);
    return { tables };
  }

  async rowCounts(name: string): Promise<Record<string, number>> {
    if (!(await this.exists(name))) return {};
    const out: Record<string, number> = {};
    for (const t of await this.tables(name)) out[t] = Number((await this.all(name, `SELECT COUNT(*) AS n FROM ${ident(t)}`))[0]!.n);
    return out;
  }

  async serverInfo(): Promise<ServerInfo> {
    const version = String((await this.all(undefined, 'SELECT VERSION() AS v'))[0]!.v);
    return { flavour: /mariadb/i.test(version) ? 'MariaDB' : 'MySQL', version };
  }

  async clientSessions(names: readonly string[]): Promise<{ visible: boolean; sessions: ClientSession[] }> {
    if (names.length === 0) return { visible: true, sessions: [] };
    const rows = (await this.all(
      undefined,
      `SELECT ID id, USER user, HOST host, DB db, COMMAND command, TIME time, STATE state FROM information_schema.PROCESSLIST
       WHERE DB IN (${names.map(() => '?').join(', ')}) AND ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Killed')
       ORDER BY DB, ID`,
      [...names],
    )) as unknown as ClientSession[];
    // Without PROCESS (or SUPER), PROCESSLIST shows only the account's own threads
    // (https://mariadb.com/kb/en/information-schema-processlist-table/).
    const priv = await this.all(
      undefined,
      `SELECT COUNT(*) n FROM information_schema.USER_PRIVILEGES
       WHERE PRIVILEGE_TYPE IN ('PROCESS', 'SUPER') AND GRANTEE = CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")`,
    );
    // Our own pooled connections to the chain's databases are not clients to worry about.
    return { visible: Number(priv[0]?.n ?? 0) > 0, sessions: rows.map((r) => ({ ...r, time: Number(r.time) })) };
  }

  async inspect(names: readonly string[]): Promise<ServerFacts> {
    await this.release();
    return { kind: 'mysql', mysql: await mysqlFacts((sql, params) => this.all(undefined, sql, params), (n) => this.clientSessions(n), names) };
  }

  async snapshot(name: string, dir: string, level: number): Promise<SnapshotFile> {
    if (!(await this.exists(name))) return { database: name, file: null, sha256: null, bytes: null };
    await this.release(name);
    return dumpDatabase(this.target, name, dir, level);
  }

  async restore(snap: SnapshotFile): Promise<void> {
    await this.release(snap.database);
    await restoreDump(this.target, snap);
  }

  async lock(names: readonly string[], what: string, opts: LockOptions): Promise<{ release(): Promise<void> }> {
    try {
      return await acquireServerLock(mysqlConnection(this.target), serverLockNames(names), what, opts);
    } catch (err) {
      if (err instanceof LeapfrogError) throw err;
      throw new LeapfrogError('input', `${what}: cannot take the run lock (${(err as Error).message})`, { cause: err });
    }
  }

  address(name: string): DatabaseAddress {
    const t = this.target;
    const user = encodeURIComponent(t.user);
    const pw = t.password === undefined ? '' : `:${encodeURIComponent(t.password)}`;
    const hostPart = t.socket ? 'localhost' : `${t.host}:${t.port}`;
    const query = t.socket ? `?unix_socket=${t.socket}` : '';
    const url = `mysql+pymysql://${user}${pw}@${hostPart}/${name}${query}`;
    return { url, redactedUrl: redactUrl(url), name, host: t.socket ? 'localhost' : t.host, port: t.socket ? '' : String(t.port), user: t.user, password: t.password ?? '', socket: t.socket ?? '', path: '' };
  }

  /** A socket file is a file, seen from any network namespace; TCP is not. */
  reachableWithoutNetwork(): boolean {
    return this.target.socket !== undefined;
  }

  /** A write: on its own short-lived connection, never the read-only pools; all or nothing. */
  async rewrite(name: string, sql: string): Promise<number> {
    // One statement: mysql2 sends a second one only with multipleStatements, which is never set.
    const c = await mysql.createConnection({ ...mysqlConnection(this.target), database: name });
    try {
      await c.query('START TRANSACTION');
      const [r] = await c.query(sql);
      await c.query('COMMIT');
      return (r as { affectedRows?: number }).affectedRows ?? 0;
    } finally {
      await c.end().catch(() => c.destroy());
    }
  }

  async stamp(name: string, statements: readonly StampStatement[]): Promise<void> {
    const c = await mysql.createConnection({ ...mysqlConnection(this.target), database: name });
    try {
      await c.query('START TRANSACTION');
      for (const st of statements) {
        const [res] = await c.query(st.sql, st.params);
        const changed = (res as { affectedRows: number }).affectedRows;
        if (changed !== 1) {
          await c.query('ROLLBACK');
          throw new LeapfrogError('refused', `recording the version of ${name}: ${st.sql} [${st.params.join(', ')}] changed ${changed} rows, not 1; nothing was written`);
        }
      }
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
  }

  /** Dropping is a write: on its own short-lived connection, never the read-only pools. */
  async drop(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    const c = await mysql.createConnection(mysqlConnection(this.target));
    try {
      for (const n of names) await c.query(`DROP DATABASE IF EXISTS ${ident(n)}`);
    } finally {
      await c.end();
    }
  }

  async create(name: string, spec: DatabaseSpec): Promise<boolean> {
    // Names and both words are checked by the chain's schema (letters, digits, _): nothing here can be SQL.
    const c = await mysql.createConnection(mysqlConnection(this.target));
    try {
      await c.query(`CREATE DATABASE IF NOT EXISTS ${ident(name)}${spec.charset ? ` CHARACTER SET ${spec.charset}` : ''}${spec.collation ? ` COLLATE ${spec.collation}` : ''}`);
    } finally {
      await c.end();
    }
    return true;
  }

  async release(name?: string): Promise<void> {
    const names = name === undefined ? [...this.pools.keys()] : [name];
    await Promise.all(
      names.map(async (n) => {
        const p = this.pools.get(n);
        this.pools.delete(n);
        await p?.end();
      }),
    );
  }

  /** Never fails: pools of a server that died have nothing left to end, and the error that matters was thrown before. */
  async close(): Promise<void> {
    await this.release().catch(() => undefined);
    await this.server?.end().catch(() => undefined);
    this.server = undefined;
  }
}
