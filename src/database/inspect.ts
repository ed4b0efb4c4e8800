import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import { sqliteFile } from './url.js';
import { QUIET_KNEX_LOG, type ClientSession, type TargetSession } from './session.js';

/**
 * Facts about the target server that check-migrations judges: who else is
 * connected, open transactions, metadata locks, table engines, collations and
 * sizes. Read-only queries on information_schema; every function returns
 * plain rows so the checks over them (src/check/checks.ts) stay pure.
 *
 * Server-wide queries use `TABLE_SCHEMA IN (…)` on purpose: one query per
 * kind of fact, never one per database or table, so a target with thousands
 * of tables is inspected in a few round trips (bench/check.ts).
 */

export interface ServerInfo {
  flavour: 'MariaDB' | 'MySQL' | 'SQLite';
  version: string;
}

/** A client session on one of the chain's databases (time: seconds in its current state). */
export type ClientRow = Omit<ClientSession, 'state'> & { state: string };

export interface TransactionRow {
  threadId: number;
  db: string;
  user: string;
  host: string;
  ageSeconds: number;
  state: string;
}

export interface MetadataLockRow {
  threadId: number;
  schema: string;
  table: string;
  mode: string;
}

export interface TableRow {
  schema: string;
  table: string;
  engine: string | null;
  collation: string | null;
  bytes: number;
}

export interface MysqlFacts {
  /** The account may see other users' connections (PROCESS privilege). */
  canSeeAllClients: boolean;
  clients: ClientRow[];
  /** undefined without the PROCESS privilege, which INNODB_TRX requires. */
  transactions: TransactionRow[] | undefined;
  /** undefined when the server exposes no metadata lock table (no METADATA_LOCK_INFO plugin, performance_schema off). */
  metadataLocks: MetadataLockRow[] | undefined;
  tables: TableRow[];
}

type Row = Record<string, unknown>;

async function rows(k: Knex, sql: string, bindings: readonly string[] = []): Promise<Row[]> {
  const [r] = (await k.raw(sql, bindings)) as [Row[]];
  return r;
}

export async function serverInfo(session: TargetSession): Promise<ServerInfo> {
  if (session.target.kind === 'sqlite') {
    // The library leapfrog itself links (better-sqlite3); the toolchains' sqlite3 CLI may differ.
    const k = knexFactory({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true, log: QUIET_KNEX_LOG });
    try {
      const r = (await k.raw('SELECT sqlite_version() AS v')) as Row[];
      return { flavour: 'SQLite', version: String(r[0]!.v) };
    } finally {
      await k.destroy();
    }
  }
  const r = await rows(session.serverKnex(), 'SELECT VERSION() AS v');
  const version = String(r[0]!.v);
  return { flavour: /mariadb/i.test(version) ? 'MariaDB' : 'MySQL', version };
}

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/**
 * Everything server-side in a handful of queries. Call it before opening
 * connections to the chain's databases (TargetSession.db): those would show
 * up in PROCESSLIST as clients of the very databases being checked. Our own
 * connection is excluded by CONNECTION_ID().
 */
export async function mysqlFacts(session: TargetSession, databases: readonly string[]): Promise<MysqlFacts> {
  await session.release();
  const k = session.serverKnex();
  const dbs = databases.length > 0 ? databases : [''];
  const inList = placeholders(dbs.length);

  // The same reading as the run's offline guard, so both say the same thing.
  const seen = await session.clientSessions(databases);
  const clients: ClientRow[] = seen.sessions.map((c) => ({ ...c, state: c.state ?? '' }));
  const canSeeAllClients = seen.visible;
  // INNODB_TRX has no database column: a transaction belongs to the chain when
  // its connection's default database is one of the chain's. Reading it needs PROCESS.
  const transactions = !canSeeAllClients ? undefined : (
    await rows(
      k,
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
async function readTables(k: Knex, dbs: readonly string[]): Promise<TableRow[]> {
  const inList = placeholders(dbs.length);
  const tables: TableRow[] = (
    await rows(
      k,
      `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t, ENGINE AS e, TABLE_COLLATION AS c FROM information_schema.TABLES
       WHERE TABLE_SCHEMA IN (${inList}) AND TABLE_TYPE = 'BASE TABLE'`,
      dbs,
    )
  ).map((r) => ({ schema: String(r.s), table: String(r.t), engine: r.e === null ? null : String(r.e), collation: r.c === null ? null : String(r.c), bytes: 0 }));
  const sized = new Map<string, number>();
  try {
    for (const r of await rows(
      k,
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
    for (const r of await rows(
      k,
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
async function readMetadataLocks(k: Knex, dbs: readonly string[]): Promise<MetadataLockRow[] | undefined> {
  const inList = placeholders(dbs.length);
  const plugin = await rows(k, `SELECT COUNT(*) AS n FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'`);
  if (Number(plugin[0]?.n ?? 0) > 0) {
    return (
      await rows(
        k,
        `SELECT THREAD_ID AS tid, TABLE_SCHEMA AS s, TABLE_NAME AS t, LOCK_MODE AS m FROM information_schema.METADATA_LOCK_INFO
         WHERE TABLE_SCHEMA IN (${inList}) AND THREAD_ID <> CONNECTION_ID()`,
        dbs,
      )
    ).map((r) => ({ threadId: Number(r.tid), schema: String(r.s), table: String(r.t ?? ''), mode: String(r.m) }));
  }
  const ps = await rows(k, 'SELECT @@performance_schema AS on_');
  if (Number(ps[0]?.on_ ?? 0) !== 1) return undefined;
  try {
    return (
      await rows(
        k,
        `SELECT th.PROCESSLIST_ID AS tid, m.OBJECT_SCHEMA AS s, m.OBJECT_NAME AS t, m.LOCK_TYPE AS m
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

export interface SqliteFileFact {
  name: string;
  file: string;
  exists: boolean;
  /** The file and its -wal, in bytes. */
  bytes: number;
  /** A non-empty rollback journal beside it: a writer is in a transaction, or died in one. */
  journal: boolean;
}

export function sqliteFiles(dir: string, databases: readonly string[]): SqliteFileFact[] {
  return databases.map((name) => {
    const file = sqliteFile(dir, name);
    let bytes = 0;
    for (const f of [file, file + '-wal']) {
      try {
        bytes += statSync(f).size;
      } catch {
        // absent
      }
    }
    let journal = false;
    try {
      journal = statSync(file + '-journal').size > 0;
    } catch {
      // none
    }
    return { name, file, exists: existsSync(file), bytes, journal };
  });
}

export interface FileHolder {
  pid: number;
  command: string;
  file: string;
}

/**
 * Processes other than this one holding one of `files` open (or its journal),
 * found through /proc/<pid>/fd: SQLite has no server to ask who is connected,
 * and an idle connection holds no lock a probe could detect. undefined when
 * /proc is not there (not Linux). Other users' processes are visible only to
 * root, as with lsof.
 */
export function processesHolding(files: readonly string[]): FileHolder[] | undefined {
  if (!existsSync('/proc/self/fd')) return undefined;
  const wanted = new Map<string, string>();
  for (const f of files) for (const suffix of ['', '-wal', '-journal', '-shm']) wanted.set(f + suffix, f);
  const out: FileHolder[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    const seen = new Set<string>();
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${entry}/fd/${fd}`);
      } catch {
        continue;
      }
      const f = wanted.get(link);
      if (f === undefined || seen.has(f)) continue;
      seen.add(f);
      let command = '?';
      try {
        // The program name only: another process's argv may carry a password.
        command = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      } catch {
        // exited meanwhile
      }
      out.push({ pid: Number(entry), command, file: f });
    }
  }
  return out;
}
