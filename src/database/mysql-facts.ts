import type { ClientSession, Row } from './session.js';
import type { ClientRow, MetadataLockRow, MysqlFacts, TableRow } from './inspect.js';


/** A query on the server connection (no default database). */
export type Query = (sql: string, params?: readonly unknown[]) => Promise<Row[]>;

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/**
 * Everything server-side in a handful of queries. Call it before opening
 * connections to the chain's databases (TargetSession.db): those would show
 * up in PROCESSLIST as clients of the very databases being checked. Our own
 * connection is excluded by CONNECTION_ID().
 */
export async function mysqlFacts(k: Query, clientSessions: (names: readonly string[]) => Promise<{ visible: boolean; sessions: ClientSession[] }>, databases: readonly string[]): Promise<MysqlFacts> {
  const dbs = databases.length > 0 ? databases : [''];
  const inList = placeholders(dbs.length);

  // The same reading as the run's offline guard, so both say the same thing.
  const seen = await clientSessions(databases);
  const clients: ClientRow[] = seen.sessions.map((c) => ({ ...c, state: c.state ?? '' }));
  const canSeeAllClients = seen.visible;
  // INNODB_TRX has no database column: a transaction belongs to the chain when
  // its connection's default database is one of the chain's. Reading it needs PROCESS.
  const transactions = !canSeeAllClients ? undefined : (
    await k(
      `SELECT t.trx_mysql_thread_id AS tid, p.DB AS db, p.USER AS user, p.HOST AS host, t.trx_state AS state,
              TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) AS age
       FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
       WHERE p.DB IN (${inList}) AND p.ID <> CONNECTION_ID() ORDER BY age DESC`,
      dbs,
    )
  ).map((r) => ({ threadId: Number(r.tid), db: String(r.db), user: String(r.user), host: String(r.host), state: String(r.state), ageSeconds: Number(r.age) }));

  const metadataLocks = await readMetadataLocks(k, dbs);

  const tables = await readTables(k, dbs);

  return { canSeeAllClients, clients, transactions, metadataLocks, tables };
}

/**
 * Engines, collations and sizes of the chain's tables. information_schema's
 * DATA_LENGTH/INDEX_LENGTH make the server open every table (EXPLAIN says
 * Open_full_table): about 0.8 s for 5,000 tables once they fall out of the
 * table cache (table_open_cache defaults to 2000), most of the report's time.
 * Engine and collation alone need only the table definitions; InnoDB sizes
 * come from the persistent statistics in mysql.innodb_table_stats (pages,
 * the same source DATA_LENGTH uses for InnoDB:
 * https://mariadb.com/kb/en/innodb-persistent-statistics/). Tables it does not
 * cover (other engines, statistics off) and accounts that cannot read it fall
 * back to information_schema for just those tables.
 */
async function readTables(k: Query, dbs: readonly string[]): Promise<TableRow[]> {
  const inList = placeholders(dbs.length);
  const tables: TableRow[] = (
    await k(
      `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, ENGINE AS e, TABLE_COLLATION AS c FROM information_schema.TABLES
       WHERE TABLE_SCHEMA IN (${inList}) AND TABLE_TYPE = 'BASE TABLE'`,
      dbs,
    )
  ).map((r) => ({ schema: String(r.s), table: String(r.t), engine: r.e === null ? null : String(r.e), collation: r.c === null ? null : String(r.c), bytes: 0 }));
  const sized = new Map<string, number>();
  try {
    for (const r of await k(
      `SELECT database_name AS s, table_name AS t, (clustered_index_size + sum_of_other_index_sizes) * @@innodb_page_size AS b
       FROM mysql.innodb_table_stats WHERE database_name IN (${inList})`,
      dbs,
    )) {
      sized.set(`${String(r.s)}.${String(r.t)}`, Number(r.b));
    }
  } catch {
    // No SELECT on mysql.*: every table's size comes from information_schema below.
  }
  const rest = new Map<string, string[]>();
  for (const t of tables) {
    const b = t.engine?.toLowerCase() === 'innodb' ? sized.get(`${t.schema}.${t.table}`) : undefined;
    if (b !== undefined) t.bytes = b;
    else (rest.get(t.schema) ?? rest.set(t.schema, []).get(t.schema)!).push(t.table);
  }
  const bySchema = new Map(tables.map((t) => [`${t.schema}.${t.table}`, t]));
  for (const [schema, names] of rest) {
    for (const r of await k(
      `SELECT TABLE_NAME AS t, COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS b FROM information_schema.TABLES
       WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (${placeholders(names.length)})`,
      [schema, ...names],
    )) {
      const t = bySchema.get(`${schema}.${String(r.t)}`);
      if (t) t.bytes = Number(r.b);
    }
  }
  return tables;
}

/**
 * MariaDB: information_schema.METADATA_LOCK_INFO (the metadata_lock_info
 * plugin, https://mariadb.com/kb/en/metadata_lock_info-plugin/). MySQL 5.7+
 * and MariaDB 10.5+: performance_schema.metadata_locks, only when
 * performance_schema is on. Neither: undefined, reported as not visible.
 */
async function readMetadataLocks(k: Query, dbs: readonly string[]): Promise<MetadataLockRow[] | undefined> {
  const inList = placeholders(dbs.length);
  const plugin = await k(`SELECT COUNT(*) AS n FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'`);
  if (Number(plugin[0]?.n ?? 0) > 0) {
    return (
      await k(`SELECT THREAD_ID AS tid, TABLE_SCHEMA AS s, TABLE_NAME AS t, LOCK_MODE AS m FROM information_schema.METADATA_LOCK_INFO
         WHERE TABLE_SCHEMA IN (${inList}) AND THREAD_ID <> CONNECTION_ID()`,
        dbs,
      )
    ).map((r) => ({ threadId: Number(r.tid), schema: String(r.s), table: String(r.t ?? ''), mode: String(r.m) }));
  }
  const ps = await k('SELECT @@performance_schema AS on_');
  if (Number(ps[0]?.on_ ?? 0) !== 1) return undefined;
  try {
    return (
      await k(`SELECT th.PROCESSLIST_ID AS tid, m.OBJECT_SCHEMA AS s, m.OBJECT_NAME AS t, m.LOCK_TYPE AS m
         FROM performance_schema.metadata_locks m JOIN performance_schema.threads th ON th.THREAD_ID = m.OWNER_THREAD_ID
         WHERE m.OBJECT_SCHEMA IN (${inList}) AND th.PROCESSLIST_ID <> CONNECTION_ID()`,
        dbs,
      )
    ).map((r) => ({ threadId: Number(r.tid), schema: String(r.s), table: String(r.t ?? ''), mode: String(r.m) }));
  } catch {
    // performance_schema on, but the metadata lock instrument is missing or not readable by this account.
    return undefined;
  }
}

