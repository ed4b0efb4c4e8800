import { statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { LeapfrogError } from '../errors.js';
import type { Target } from '../database/url.js';
import { DEFAULT_MAX_STATEMENT_BYTES, dumpStatements } from './dump-reader.js';
import { Lanes, q } from './lanes.js';
import { classify, databaseFromFileName, deferCreateIndex, deferKeys, type Statement } from './sql-split.js';

/**
 * Parallel restore of SQL dumps (plain or gzip, one per database or one with
 * several `USE` sections) into a MySQL/MariaDB server. The dump is read as a
 * stream and split into statements; each table's statements keep their
 * order, but once a table exists its INSERTs go to whichever of the N
 * connections has the least queued, so tables load side by side and a big
 * table loads over all connections. Session statements (SET, transactions)
 * run on every connection; anything else (CREATE DATABASE, views, routines)
 * waits for everything before it. What is queued is capped, so memory stays
 * flat whatever the dump's size.
 */

export interface RestoreOptions {
  files: readonly string[];
  target: Extract<Target, { kind: 'mysql' }>;
  jobs: number;
  /** Database name in the dump → name on the server (the --server prefix). */
  rename?: ((db: string) => string) | undefined;
  onProgress?: ((p: RestoreProgress) => void) | undefined;
  /** Cap on statement bytes queued for the connections. */
  queueBytes?: number | undefined;
  /** Stop between statements (SIGINT). */
  signal?: AbortSignal | undefined;
  /** Refuse a statement longer than this (--max-statement-bytes). */
  maxStatementBytes?: number | undefined;
  /** Views, triggers and routines are created with DEFINER=CURRENT_USER (a confined account may not name another definer). */
  ownDefiner?: boolean | undefined;
}

/**
 * A view's, trigger's or routine's `DEFINER=user@host` (mariadb-dump writes
 * one, often in a versioned comment) as `DEFINER=CURRENT_USER`: naming
 * another account needs SUPER or SET USER (MariaDB KB, "CREATE TRIGGER",
 * DEFINER), which the confined account of a --server rehearsal lacks.
 * Only the first clause, in the statement's head, is rewritten.
 */
export function currentUserDefiner(sql: string): string {
  const part = "(?:`(?:[^`]|``)*`|'(?:[^'\\\\]|\\\\.|'')*'|[A-Za-z0-9_.%$-]+)";
  return sql.replace(new RegExp(`\\bDEFINER\\s*=\\s*${part}\\s*@\\s*${part}`, 'i'), 'DEFINER=CURRENT_USER');
}

export interface RestoreProgress {
  file: string;
  /** Bytes of the dump files read so far (compressed bytes for gzip), over all files. */
  bytes: number;
  total: number;
  elapsedMs: number;
  /** Estimated time left, once there is something to estimate from. */
  etaMs: number | undefined;
  done: boolean;
}

export interface RestoreResult {
  bytes: number;
  statements: number;
  durationMs: number;
  /** Server database name → tables the dump created in it. */
  databases: Record<string, string[]>;
}

export async function restoreDumps(o: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const rename = o.rename ?? ((d: string) => d);
  const total = o.files.reduce((n, f) => {
    try {
      return n + statSync(f).size;
    } catch (err) {
      throw new LeapfrogError('input', `--dump ${f}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
  }, 0);
  const lanes = await Lanes.open(o.target, o.jobs, o.queueBytes ?? 32 * 1024 * 1024);
  let statements = 0;
  let readBytes = 0;
  const databases: Record<string, Set<string>> = {};
  const check = () => {
    if (!lanes.failure && o.signal?.aborted) lanes.failure = new LeapfrogError('interrupted', 'interrupted while restoring the dump');
    if (lanes.failure) throw lanes.failure;
  };

  /** Per table: secondary-key clauses to add once its rows are in. */
  const deferred = new Map<string, { db: string; table: string; clauses: string[] }>();
  /**
   * A table's deferred keys, queued to run as soon as its queued statements
   * have: the reader goes on meanwhile, so one table's index build (a
   * single-threaded sort) overlaps the next table's rows instead of all of
   * them waiting for the end of the dump with one core idle.
   */
  const buildKeys = (key: string) => {
    const d = deferred.get(key);
    if (!d) return;
    deferred.delete(key);
    lanes.afterTable(key, { sql: `ALTER TABLE ${q(d.table)} ${d.clauses.join(', ')}`, db: d.db, table: d.table, bytes: 0, long: true });
  };
  /** The table the last row or DDL statement was about: once the dump moves on, its keys can be built. */
  let lastTable: string | undefined;
  const created = new Set<string>();
  /** The dump's SET NAMES: the character set of its bytes. */
  let charset = 'utf8mb4';
  /** Tables with rows already in: their further INSERTs may go to any connection, side by side. */
  const ready = new Set<string>();

  const dispatch = async (st: Statement, current: { db: string | undefined; fromName: string | undefined }) => {
    // Only the head decides (classify reads 4 KiB at most): a megabyte INSERT is not decoded to text for it.
    const c = classify(st.raw.length > 4096 ? st.raw.toString('latin1', 0, 4096) : st.sql);
    statements++;
    switch (c.kind) {
      case 'skip':
        return;
      case 'use':
        current.db = rename(c.database);
        current.fromName = undefined;
        return;
      case 'session': {
        const names = /^\s*(?:\/\*!\d*\s*)?set\s+names\s+'?([A-Za-z0-9_]+)/i.exec(st.sql);
        if (names) charset = names[1]!;
        lanes.toEach({ sql: st.sql, db: undefined, table: undefined, bytes: 0 });
        return;
      }
      case 'create-database': {
        // Not behind the previous database's key builds (quiet, not idle): the last table's sort would
        // otherwise hold up the next database with a core idle.
        await lanes.quiet();
        check();
        const db = rename(c.database);
        const sql = db === c.database ? st.sql : `CREATE DATABASE IF NOT EXISTS ${q(db)} CHARACTER SET utf8mb4`;
        lanes.toLeastLoaded({ sql, db: undefined, table: undefined, bytes: st.bytes });
        await lanes.quiet();
        created.add(db);
        databases[db] ??= new Set();
        return;
      }
      case 'drop-database': {
        // Renamed like CREATE DATABASE: with --server, the dump's DROP DATABASE must never reach the real one.
        for (const key of [...deferred.keys()]) if (key.startsWith(`${rename(c.database)}.`)) deferred.delete(key);
        await lanes.idle();
        check();
        lanes.toFirst({ sql: `DROP DATABASE IF EXISTS ${q(rename(c.database))}`, db: undefined, table: undefined, bytes: st.bytes });
        await lanes.idle();
        return;
      }
      case 'other':
        for (const key of [...deferred.keys()]) buildKeys(key);
        await lanes.idle();
        check();
        lanes.toFirst({ sql: o.ownDefiner ? currentUserDefiner(st.sql) : st.sql, db: current.db, table: undefined, bytes: st.bytes });
        await lanes.idle();
        return;
      case 'insert':
      case 'table': {
        if (c.database !== undefined && rename(c.database) !== c.database) {
          throw new LeapfrogError('input', `the dump names table ${c.database}.${c.table} with its database; a --server rehearsal renames databases and cannot rewrite such statements safely: rehearse on a scratch server instead`);
        }
        if (c.database !== undefined) current = { ...current, db: c.database };
        if (current.db === undefined) throw new LeapfrogError('input', `the dump has a statement about table ${c.table} before any USE, and its file name names no database`);
        const db = current.db;
        if (current.fromName !== undefined && !created.has(db)) {
          // A one-database dump (mariadb-dump DB > DB.sql) has no CREATE DATABASE: the file's name says
          // which. Made as the dump's own is, not behind the previous file's key builds.
          await lanes.quiet();
          lanes.toLeastLoaded({ sql: `CREATE DATABASE IF NOT EXISTS ${q(db)} CHARACTER SET utf8mb4`, db: undefined, table: undefined, bytes: 0 });
          await lanes.quiet();
          check();
          created.add(db);
        }
        (databases[db] ??= new Set()).add(c.table);
        const key = `${db}.${c.table}`;
        // mariadb-dump writes a table's rows whole before the next table's DDL: the one before is done.
        if (lastTable !== undefined && lastTable !== key) buildKeys(lastTable);
        lastTable = key;
        if (c.kind === 'table') {
          const later = deferCreateIndex(st.sql);
          if (later !== undefined) {
            (deferred.get(key) ?? deferred.set(key, { db, table: c.table, clauses: [] }).get(key)!).clauses.push(later);
            return;
          }
          buildKeys(key);
          const split = deferKeys(st.sql);
          if (split) {
            st = { ...st, sql: split.sql };
            deferred.set(key, { db, table: c.table, clauses: split.clauses });
          }
        }
        if (c.kind === 'insert' && ready.has(key)) {
          lanes.toLeastLoaded({ raw: st.raw, db, table: c.table, bytes: st.bytes, load: charset });
        } else {
          // DDL, and a table's first rows, wait for the table's earlier statements and run alone. The first
          // rows alone: with unique_checks=0 and foreign_key_checks=0 (every dump sets them), InnoDB loads
          // into an empty table in bulk mode, which locks the whole table until that statement commits
          // (MDEV-24621, MDEV-24818); a second connection loading into it at the same time deadlocks.
          await lanes.tableDone(key);
          check();
          lanes.toLeastLoaded(c.kind === 'insert' ? { raw: st.raw, db, table: c.table, bytes: st.bytes, load: charset } : { sql: st.sql, db, table: c.table, bytes: st.bytes });
          await lanes.tableDone(key);
          check();
          // After DDL (CREATE, DROP, TRUNCATE, ALTER) the table may be empty again: its next rows run alone too.
          if (c.kind === 'insert') ready.add(key);
          else ready.delete(key);
        }
        return;
      }
    }
  };

  let lastReport = 0;
  const report = (file: string, done: boolean) => {
    const now = performance.now();
    if (!done && now - lastReport < 250) return;
    lastReport = now;
    const elapsedMs = now - started;
    const etaMs = readBytes > 0 && elapsedMs > 500 ? (elapsedMs / readBytes) * (total - readBytes) : undefined;
    o.onProgress?.({ file, bytes: readBytes, total, elapsedMs, etaMs, done });
  };

  try {
    for (const file of o.files) {
      const current = { db: rename(databaseFromFileName(file)) as string | undefined, fromName: databaseFromFileName(file) as string | undefined };
      const statementsOf = dumpStatements(file, {
        maxStatementBytes: o.maxStatementBytes ?? DEFAULT_MAX_STATEMENT_BYTES,
        onRead: (n) => {
          readBytes += n;
        },
      });
      for await (const batch of statementsOf) {
        for (const st of batch) {
          await dispatch(st, current);
          check();
          if (lanes.full) await lanes.room();
        }
        report(file, false);
      }
      // The deferred secondary keys, one ALTER per table, tables side by side; the next file (often the
      // next database) need not wait for them, only for this file's rows.
      for (const key of [...deferred.keys()]) buildKeys(key);
      await lanes.quiet();
      check();
    }
    await lanes.idle();
    check();
    for (const file of o.files) report(file, true);
  } finally {
    await lanes.close();
  }
  return {
    bytes: readBytes,
    statements,
    durationMs: performance.now() - started,
    databases: Object.fromEntries(Object.entries(databases).map(([d, t]) => [d, [...t].sort()])),
  };
}
