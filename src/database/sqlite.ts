import { createReadStream, createWriteStream, existsSync, openSync, readSync, closeSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import Database from 'better-sqlite3';
import { LeapfrogError } from '../errors.js';
import { durableRename, gzipTo, type SnapshotFile } from './digest.js';
import type { SchemaShape } from './fingerprint.js';
import { processesHolding, sqliteFiles, type ServerInfo } from './inspect.js';
import { FileLock } from './lock.js';
import { asDerivedTable, type ClientSession, type LockOptions, type Row, type ServerFacts, type ServerSession } from './session.js';
import type { StampStatement } from './stamp.js';
import { sqliteFile, type DatabaseAddress, type Target } from './url.js';
import { makeDirs } from '../dirs.js';

type SqliteTarget = Extract<Target, { kind: 'sqlite' }>;
const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * The embedded default: one SQLite file per database in a directory.
 * Every handle leapfrog opens on a project database is read-only, and the
 * chain's SQL must also be a statement that reads (better-sqlite3's
 * `reader` and `readonly`): a read-only handle alone still lets
 * `VACUUM INTO '/any/file'` write a new file.
 */
export class SqliteSession implements ServerSession {
  private readonly handles = new Map<string, Database.Database>();

  constructor(readonly target: SqliteTarget) {}

  /** The directory is the "server": a missing one is a wrong --db, said before anything else. */
  async connect(): Promise<void> {
    if (!existsSync(this.target.dir)) throw new LeapfrogError('input', `the directory ${this.target.dir} does not exist: check --db sqlite:DIR`);
  }

  async exists(name: string): Promise<boolean> {
    return existsSync(sqliteFile(this.target.dir, name));
  }

  private handle(name: string): Database.Database {
    let db = this.handles.get(name);
    if (!db) {
      db = new Database(sqliteFile(this.target.dir, name), { readonly: true, fileMustExist: true });
      db.pragma('query_only = 1');
      this.handles.set(name, db);
    }
    return db;
  }

  private all(name: string, sql: string, params: readonly unknown[] = []): Row[] {
    return this.journalled(name, () => this.handle(name).prepare(sql).all(...params) as Row[]);
  }

  async read(name: string, sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return this.journalled(name, () => {
      const st = this.handle(name).prepare(asDerivedTable(sql));
      if (!st.reader || !st.readonly) throw new LeapfrogError('input', `not a read-only query: ${sql}`);
      return st.all(...params) as Row[];
    });
  }

  /**
   * A read on a read-only handle fails when a writer died mid-transaction and
   * left a hot rollback journal: rolling it back is a write
   * (https://www.sqlite.org/lockingv3.html#hot_journals). Said as what it is.
   */
  private journalled<T>(name: string, read: () => T): T {
    try {
      return read();
    } catch (err) {
      const journal = `${sqliteFile(this.target.dir, name)}-journal`;
      if ((err as { code?: string }).code?.startsWith('SQLITE_READONLY') && hotJournal(journal)) {
        throw new LeapfrogError(
          'refused',
          `database ${name}: ${journal} holds a transaction a writer left unfinished when it died (a step killed mid-migration); reading the database rolls it back, which only \`leapfrog run\` does, under its lock. Run it (it rolls back, then resumes), or stop whatever still writes to the file`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async rollBackInterrupted(names: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const name of names) {
      const file = sqliteFile(this.target.dir, name);
      if (!existsSync(file) || !hotJournal(`${file}-journal`)) continue;
      this.handles.get(name)?.close();
      this.handles.delete(name);
      // The first read on a writable connection rolls the hot journal back, as the tool's own next connection would.
      const db = new Database(file, { fileMustExist: true });
      try {
        db.prepare('SELECT count(*) FROM sqlite_master').get();
      } finally {
        db.close();
      }
      if (!hotJournal(`${file}-journal`)) out.push(name);
    }
    return out;
  }

  async hasTable(name: string, table: string): Promise<boolean> {
    return this.all(name, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).length > 0;
  }

  async tables(name: string): Promise<string[]> {
    return this.all(name, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").map((r) => String(r.name));
  }

  async shape(name: string): Promise<SchemaShape> {
    const tables: SchemaShape['tables'] = {};
    for (const t of await this.tables(name)) {
      const cols = this.all(name, `PRAGMA table_info(${quote(t)})`) as { name: string; type: string; notnull: number; pk: number }[];
      const indexes: string[] = [];
      for (const i of this.all(name, `PRAGMA index_list(${quote(t)})`) as { name: string; unique: number }[]) {
        const icols = this.all(name, `PRAGMA index_info(${quote(i.name)})`) as { name: string }[];
        indexes.push(`${i.name}(${icols.map((c) => c.name).join(',')})${i.unique ? ' unique' : ''}`);
      }
      tables[t] = { columns: cols.map((c) => `${c.name} ${c.type.toLowerCase()}${c.notnull ? ' not null' : ''}${c.pk ? ' pk' : ''}`), indexes: indexes.sort() };
    }
    return { tables };
  }

  async rowCounts(name: string): Promise<Record<string, number>> {
    if (!(await this.exists(name))) return {};
    const out: Record<string, number> = {};
    for (const t of await this.tables(name)) out[t] = Number(this.all(name, `SELECT COUNT(*) AS n FROM ${quote(t)}`)[0]!.n);
    return out;
  }

  async serverInfo(): Promise<ServerInfo> {
    // The library leapfrog itself links (better-sqlite3); the toolchains' sqlite3 CLI may differ.
    const db = new Database(':memory:');
    try {
      return { flavour: 'SQLite', version: String((db.prepare('SELECT sqlite_version() AS v').get() as Row).v) };
    } finally {
      db.close();
    }
  }

  /** A SQLite file has no server to list its clients; processes holding it open are inspect()'s. */
  async clientSessions(): Promise<{ visible: boolean; sessions: ClientSession[] }> {
    return { visible: true, sessions: [] };
  }

  async inspect(names: readonly string[]): Promise<ServerFacts> {
    const files = sqliteFiles(this.target.dir, names);
    return { kind: 'sqlite', files, holders: processesHolding(files.filter((f) => f.exists).map((f) => f.file)) };
  }

  /**
   * The file's bytes under a read transaction (SQLite's SHARED lock: no
   * writer can commit meanwhile); the online backup API for a WAL database,
   * where the file alone is not the database. For the usual rollback-journal
   * files a byte copy is preferred: the backup API rewrites header counters,
   * and a rollback should give back the very bytes the operator had.
   */
  async snapshot(name: string, dir: string, level: number): Promise<SnapshotFile> {
    makeDirs(dir, 'the snapshot directory');
    if (!(await this.exists(name))) return { database: name, file: null, sha256: null, bytes: null };
    await this.release(name);
    const src = sqliteFile(this.target.dir, name);
    const dest = path.join(dir, `${name}.sqlite3.gz`);
    const db = new Database(src, { readonly: true, fileMustExist: true });
    try {
      if (isWal(src)) {
        const copy = path.join(dir, `${name}.sqlite3.backup`);
        await db.backup(copy);
        try {
          return { database: name, file: dest, ...(await gzipTo(createReadStream(copy), dest, level)) };
        } finally {
          rmSync(copy, { force: true });
        }
      }
      db.exec('BEGIN');
      db.prepare('SELECT COUNT(*) FROM sqlite_master').get(); // takes the SHARED lock, held until COMMIT
      try {
        return { database: name, file: dest, ...(await gzipTo(createReadStream(src), dest, level)) };
      } finally {
        db.exec('COMMIT');
      }
    } finally {
      db.close();
    }
  }

  async restore(snap: SnapshotFile): Promise<void> {
    await this.release(snap.database);
    const dest = sqliteFile(this.target.dir, snap.database);
    // A journal or WAL left beside the file belongs to the old content and would be applied to the new one.
    for (const extra of ['-journal', '-wal', '-shm']) rmSync(dest + extra, { force: true });
    if (snap.file === null) {
      rmSync(dest, { force: true });
      return;
    }
    const tmp = path.join(this.target.dir, `.${snap.database}.sqlite3.restoring`);
    await pipeline(createReadStream(snap.file), createGunzip(), createWriteStream(tmp, { mode: 0o644 }));
    durableRename(tmp, dest);
  }

  /** A lock file in the target's directory, so two state directories cannot move the same files. */
  async lock(_names: readonly string[], _what: string, opts: LockOptions): Promise<{ release(): Promise<void> }> {
    if (!existsSync(this.target.dir)) throw new LeapfrogError('input', `--db sqlite:${this.target.dir}: the directory does not exist`);
    const l = await FileLock.acquire(path.join(this.target.dir, '.leapfrog.lock'), `sqlite:${this.target.dir}`, opts);
    return { release: async () => l.release() };
  }

  address(name: string): DatabaseAddress {
    const file = sqliteFile(this.target.dir, name);
    const url = `sqlite:///${file}`;
    return { url, redactedUrl: url, name, host: '', port: '', user: '', password: '', socket: '', path: file };
  }

  reachableWithoutNetwork(): boolean {
    return true;
  }

  /** A write: on its own read-write handle, closed at once; the read-only handles stay read-only. */
  async rewrite(name: string, sql: string): Promise<number> {
    await this.release(name);
    const db = new Database(sqliteFile(this.target.dir, name), { fileMustExist: true, timeout: 10_000 });
    try {
      // prepare() takes exactly one statement (better-sqlite3 refuses a second one).
      return db.transaction(() => db.prepare(sql).run().changes).immediate();
    } finally {
      db.close();
    }
  }

  async stamp(name: string, statements: readonly StampStatement[]): Promise<void> {
    await this.release(name);
    const db = new Database(sqliteFile(this.target.dir, name), { fileMustExist: true, timeout: 10_000 });
    try {
      db.transaction(() => {
        for (const st of statements) {
          const changed = db.prepare(st.sql).run(...st.params).changes;
          if (changed !== 1) throw new LeapfrogError('refused', `recording the version of ${name}: ${st.sql} [${st.params.join(', ')}] changed ${changed} rows, not 1; nothing was written`);
        }
      }).immediate();
    } finally {
      db.close();
    }
  }

  async drop(names: readonly string[]): Promise<void> {
    for (const n of names) {
      await this.release(n);
      for (const extra of ['', '-journal', '-wal', '-shm']) rmSync(sqliteFile(this.target.dir, n) + extra, { force: true });
    }
  }

  /** A SQLite database is its file, which the tool's first connection makes: nothing to declare a charset on. */
  async create(): Promise<boolean> {
    return false;
  }

  async release(name?: string): Promise<void> {
    for (const n of name === undefined ? [...this.handles.keys()] : [name]) {
      this.handles.get(n)?.close();
      this.handles.delete(n);
    }
  }

  async close(): Promise<void> {
    await this.release();
  }
}

function isWal(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(2);
    readSync(fd, b, 0, 2, 18); // file format write/read versions: 2 means WAL
    return b[0] === 2;
  } finally {
    closeSync(fd);
  }
}

/** A rollback journal with content: a transaction some writer did not finish (an empty or absent one is nothing). */
function hotJournal(file: string): boolean {
  try {
    return statSync(file).size > 0;
  } catch {
    return false;
  }
}
