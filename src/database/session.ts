import { LeapfrogError } from '../errors.js';
import type { SchemaShape } from './fingerprint.js';
import type { StampStatement } from './stamp.js';
import type { FileHolder, MysqlFacts, ServerInfo, SqliteFileFact } from './inspect.js';
import type { SnapshotFile } from './digest.js';
import { singleServer, type Placement } from './placement.js';
import type { DatabaseAddress, Target } from './url.js';

/**
 * A session on the target: everything leapfrog asks of a database server,
 * in one interface with one implementation per kind (STYLE.md 13, kysely's
 * DialectAdapter): SQLite files (sqlite.ts) and MySQL/MariaDB (mysql.ts).
 * The rest of leapfrog never asks which kind it talks to; only these two
 * modules (and the ledger) import better-sqlite3 or mysql2.
 *
 * Reading is read-only by construction: `read` wraps the chain's SQL (a
 * version probe, a needed-when or blocker query) as a derived table, so it
 * can only be one SELECT, and runs it on a connection that cannot write (a
 * read-only SQLite handle and statement; a MySQL session whose transactions
 * are READ ONLY). leapfrog itself never writes a project database; the
 * toolchains do.
 */

export type Row = Record<string, unknown>;

export interface ClientSession {
  id: number;
  user: string;
  host: string;
  db: string;
  command: string;
  time: number;
  state: string | null;
}

/** What check-migrations reads of the server around the databases (inspect.ts has the shapes). */
export type ServerFacts = { kind: 'mysql'; mysql: MysqlFacts } | { kind: 'sqlite'; files: SqliteFileFact[]; holders: FileHolder[] | undefined };

export interface LockOptions {
  /** Seconds to wait for a busy lock; 0 fails at once. */
  waitSeconds: number;
  /** What holds it, for the note (`run`, `rollback`). */
  command: string;
}

/** One server's session: what sqlite.ts and mysql.ts implement. */
/** How to create a database: its default character set and collation (the server's when absent). */
export interface DatabaseSpec {
  charset?: string | undefined;
  collation?: string | undefined;
}

export interface ServerSession {
  readonly target: Target;
  /** The server answers (a clear input error otherwise: wrong password, server down). */
  connect(): Promise<void>;
  /** Whether the database (SQLite file, MySQL schema) exists. */
  exists(name: string): Promise<boolean>;
  /**
   * Finish what a writer that died mid-transaction left (SQLite's hot rollback
   * journal, which a read-only handle cannot roll back), as the next writer
   * would; only `run` calls it, under the run lock, once no step of a dead
   * run is alive. Returns the databases it rolled back. MySQL rolls back a
   * dead connection's transaction itself: nothing to do there.
   */
  rollBackInterrupted(names: readonly string[]): Promise<string[]>;
  /** One read-only SELECT in an existing database. A statement that is not one, or that would write, fails. */
  read(name: string, sql: string, params?: readonly unknown[]): Promise<Row[]>;
  hasTable(name: string, table: string): Promise<boolean>;
  /** Base tables, sorted. */
  tables(name: string): Promise<string[]>;
  /** Columns and indexes per table (the fingerprint's input). */
  shape(name: string): Promise<SchemaShape>;
  /** Rows per base table. */
  rowCounts(name: string): Promise<Record<string, number>>;
  serverInfo(): Promise<ServerInfo>;
  /** Other sessions with one of `names` as their database; `visible` false when this account cannot see other users'. */
  clientSessions(names: readonly string[]): Promise<{ visible: boolean; sessions: ClientSession[] }>;
  /** Server-wide facts for check-migrations; call before opening the databases themselves (ours would count as clients). */
  inspect(names: readonly string[]): Promise<ServerFacts>;
  /** A compressed snapshot of one database into `dir` (absent: file null). */
  snapshot(name: string, dir: string, level: number): Promise<SnapshotFile>;
  /** Put one database back as its snapshot has it (dropping it when it did not exist). */
  restore(snap: SnapshotFile): Promise<void>;
  /** The target's half of the run lock (the state directory's is lock.ts's), held until released. */
  lock(names: readonly string[], what: string, opts: LockOptions): Promise<{ release(): Promise<void> }>;
  /** What templates may say about a database: URL, host, port, user, password, socket, path. */
  address(name: string): DatabaseAddress;
  /** A step in a network namespace of its own can still reach the target (files, a unix socket). */
  reachableWithoutNetwork(): boolean;
  drop(names: readonly string[]): Promise<void>;
  /** Create a database the chain declares (`create:`) that its tools will not create; false when there is nothing to create (SQLite, whose tools make the file). */
  create(name: string, spec: DatabaseSpec): Promise<boolean>;
  /**
   * A chain's `rehearsal:` rewrite, on a rehearsal's copy and nowhere else (src/rehearse/rewrites.ts is its
   * only caller): one statement in its own transaction; the rows it changed.
   */
  rewrite(name: string, sql: string): Promise<number>;
  /** Write a version the toolchain applied but never recorded (stamp.ts): all statements in one transaction, each changing exactly one row. */
  stamp(name: string, statements: readonly StampStatement[]): Promise<void>;
  /** Close connections so a toolchain (or a file copy) sees the database alone. */
  release(name?: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A session on every server of a placement (routed.ts): each database's
 * questions go to its server; questions about several databases go to each
 * of their servers and the answers are merged. `target` is the default server.
 */
export interface TargetSession extends ServerSession {
  readonly placement: Placement;
}

export async function openServer(target: Target): Promise<ServerSession> {
  if (target.kind === 'sqlite') return new (await import('./sqlite.js')).SqliteSession(target);
  return new (await import('./mysql.js')).MysqlSession(target);
}

/**
 * Run `cb` with a session on the target (a server, or a placement of the
 * chain's databases over several), closing it however `cb` ends. By
 * default a server that does not answer is an input error before `cb`
 * runs; `check: false` is for callers that report reachability themselves
 * (check-migrations).
 */
export async function withTarget<T>(target: Target | Placement, cb: (s: TargetSession) => Promise<T>, options: { check?: boolean } = {}): Promise<T> {
  const placement = 'default' in target ? target : singleServer(target);
  const s = await (await import('./routed.js')).RoutedSession.open(placement);
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

/** The chain's SQL as a derived table: whatever it is, only one SELECT can stand there (no SET, FLUSH, INTO OUTFILE, second statement). */
export function asDerivedTable(sql: string): string {
  const body = sql.trim().replace(/;+\s*$/, '');
  // Newlines: a trailing `-- comment` in the chain's query must not swallow the closing parenthesis.
  return `SELECT * FROM (\n${body}\n) AS leapfrog_probe`;
}

