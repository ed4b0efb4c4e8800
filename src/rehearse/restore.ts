import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { LeapfrogError } from '../errors.js';
import { openSqlConnection, type SqlConnection } from '../database/raw.js';
import type { Target } from '../database/url.js';
import { classify, databaseFromFileName, deferCreateIndex, deferKeys, insertAsRows, StatementSplitter, type Statement } from './sql-split.js';

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

interface Item {
  sql: string;
  /** An INSERT that may be loaded as LOAD DATA, in this character set (the dump's SET NAMES). */
  load?: string | undefined;
  db: string | undefined;
  table: string | undefined;
  bytes: number;
}

class Lane {
  queue: Item[] = [];
  queued = 0;
  db: string | undefined;
  busy = false;
  constructor(readonly conn: SqlConnection) {}
}

const GZIP = Buffer.from([0x1f, 0x8b]);
/** Rows sent in one LOAD DATA. */
const LOAD_BYTES = 4 * 1024 * 1024;

function isGzip(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b.equals(GZIP);
  } finally {
    closeSync(fd);
  }
}

const q = (name: string) => '`' + name.replace(/`/g, '``') + '`';

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
  const cap = o.queueBytes ?? 32 * 1024 * 1024;
  const lanes: Lane[] = [];
  try {
    for (let i = 0; i < Math.max(1, o.jobs); i++) lanes.push(new Lane(await openSqlConnection(o.target)));
  } catch (err) {
    await Promise.all(lanes.map((l) => l.conn.close().catch(() => {})));
    throw err;
  }

  let failure: Error | undefined;
  let queuedTotal = 0;
  let statements = 0;
  let readBytes = 0;
  let wakeReader: (() => void) | undefined;
  const idleWaiters: (() => void)[] = [];
  /** Per table (`db.table`): statements queued and not yet run, and who waits for them. */
  const pending = new Map<string, { n: number; waiters: (() => void)[] }>();
  const databases: Record<string, Set<string>> = {};

  const settle = () => {
    if (wakeReader && (queuedTotal < cap || failure)) {
      const w = wakeReader;
      wakeReader = undefined;
      w();
    }
    if (lanes.every((l) => !l.busy && l.queue.length === 0) || failure) idleWaiters.splice(0).forEach((w) => w());
  };

  const pump = async (lane: Lane) => {
    if (lane.busy) return;
    lane.busy = true;
    while (lane.queue.length > 0 && !failure) {
      const item = lane.queue.shift()!;
      const batch = [item];
      try {
        if (item.db !== undefined && item.db !== lane.db) {
          await lane.conn.query(`USE ${q(item.db)}`);
          lane.db = item.db;
        }
        const rows = item.load !== undefined ? insertAsRows(item.sql) : undefined;
        if (rows) {
          // Consecutive INSERTs into the same table go out as one LOAD DATA of up to LOAD_BYTES:
          // per statement, LOCAL INFILE costs two round trips more than an INSERT.
          const parts = [rows.rows];
          let size = rows.rows.length;
          let count = rows.count;
          for (let next = lane.queue[0]; next && size < LOAD_BYTES; next = lane.queue[0]) {
            if (next.load !== item.load || next.db !== item.db || next.table !== item.table) break;
            const more = insertAsRows(next.sql);
            if (!more || more.table !== rows.table || more.columns !== rows.columns) break;
            batch.push(lane.queue.shift()!);
            parts.push(more.rows);
            size += more.rows.length;
            count += more.count;
          }
          const loaded = await lane.conn.loadLocal(`LOAD DATA LOCAL INFILE 'dump' INTO TABLE ${rows.table} CHARACTER SET ${item.load} ${rows.columns ?? ''}`, Buffer.from(parts.join(''), 'latin1'));
          // LOCAL turns duplicate keys and refused values into warnings: any is a failure, as the INSERT's error would be.
          if (loaded.rows !== count || loaded.warnings > 0) {
            throw new Error(`LOAD DATA of ${batch.length} INSERT(s) with ${count} rows loaded ${loaded.rows} with ${loaded.warnings} warning(s) (duplicate keys, or values the columns refuse); load this dump with the mariadb client to see the server's own error`);
          }
        } else {
          await lane.conn.query(item.sql);
        }
      } catch (err) {
        const where = item.table ? ` (table ${item.db}.${item.table})` : item.db ? ` (database ${item.db})` : '';
        failure ??= new LeapfrogError('input', `restore failed${where}: ${(err as Error).message}`, {
          cause: err,
          details: [`statement: ${item.sql.slice(0, 200).replace(/\s+/g, ' ')}${item.sql.length > 200 ? '…' : ''}`],
        });
      }
      for (const done of batch) {
        lane.queued -= done.bytes;
        queuedTotal -= done.bytes;
        if (done.table !== undefined) {
          const p = pending.get(`${done.db}.${done.table}`)!;
          if (--p.n === 0) p.waiters.splice(0).forEach((w) => w());
        }
      }
      settle();
    }
    lane.busy = false;
    settle();
  };

  const enqueue = (lane: Lane, item: Item) => {
    lane.queue.push(item);
    lane.queued += item.bytes;
    queuedTotal += item.bytes;
    if (item.table !== undefined) {
      const key = `${item.db}.${item.table}`;
      (pending.get(key) ?? pending.set(key, { n: 0, waiters: [] }).get(key)!).n++;
    }
    void pump(lane);
  };
  const leastLoaded = () => lanes.reduce((a, b) => (b.queued < a.queued ? b : a));
  const idle = () => new Promise<void>((resolve) => (lanes.every((l) => !l.busy && l.queue.length === 0) || failure ? resolve() : idleWaiters.push(resolve)));
  const tableDone = (key: string) =>
    new Promise<void>((resolve) => {
      const p = pending.get(key);
      if (!p || p.n === 0 || failure) resolve();
      else p.waiters.push(resolve);
    });
  const room = () => new Promise<void>((resolve) => (queuedTotal < cap || failure ? resolve() : (wakeReader = resolve)));
  const check = () => {
    if (!failure && o.signal?.aborted) failure = new LeapfrogError('interrupted', 'interrupted while restoring the dump');
    if (failure) throw failure;
  };

  /** Per table: secondary-key clauses to add once its rows are in. */
  const deferred = new Map<string, { db: string; table: string; clauses: string[] }>();
  const buildKeys = async (key: string) => {
    const d = deferred.get(key);
    if (!d) return;
    deferred.delete(key);
    await tableDone(key);
    check();
    enqueue(leastLoaded(), { sql: `ALTER TABLE ${q(d.table)} ${d.clauses.join(', ')}`, db: d.db, table: d.table, bytes: 0 });
  };
  const created = new Set<string>();
  /** The dump's SET NAMES: the character set of its bytes. */
  let charset = 'utf8mb4';
  /** Tables whose DDL has run: their INSERTs may go to any connection. */
  const ready = new Set<string>();

  const dispatch = async (st: Statement, current: { db: string | undefined; fromName: string | undefined }) => {
    const c = classify(st.sql);
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
        for (const l of lanes) enqueue(l, { sql: st.sql, db: undefined, table: undefined, bytes: 0 });
        return;
      }
      case 'create-database': {
        await idle();
        check();
        const db = rename(c.database);
        const sql = db === c.database ? st.sql : `CREATE DATABASE IF NOT EXISTS ${q(db)} CHARACTER SET utf8mb4`;
        enqueue(lanes[0]!, { sql, db: undefined, table: undefined, bytes: st.bytes });
        await idle();
        created.add(db);
        databases[db] ??= new Set();
        return;
      }
      case 'drop-database': {
        // Renamed like CREATE DATABASE: with --server, the dump's DROP DATABASE must never reach the real one.
        for (const key of [...deferred.keys()]) if (key.startsWith(`${rename(c.database)}.`)) deferred.delete(key);
        await idle();
        check();
        enqueue(lanes[0]!, { sql: `DROP DATABASE IF EXISTS ${q(rename(c.database))}`, db: undefined, table: undefined, bytes: st.bytes });
        await idle();
        return;
      }
      case 'other':
        for (const key of [...deferred.keys()]) await buildKeys(key);
        await idle();
        check();
        enqueue(lanes[0]!, { sql: o.ownDefiner ? currentUserDefiner(st.sql) : st.sql, db: current.db, table: undefined, bytes: st.bytes });
        await idle();
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
          // A one-database dump (mariadb-dump DB > DB.sql) has no CREATE DATABASE: the file's name says which.
          await idle();
          enqueue(lanes[0]!, { sql: `CREATE DATABASE IF NOT EXISTS ${q(db)} CHARACTER SET utf8mb4`, db: undefined, table: undefined, bytes: 0 });
          await idle();
          check();
          created.add(db);
        }
        (databases[db] ??= new Set()).add(c.table);
        const key = `${db}.${c.table}`;
        if (c.kind === 'table') {
          const later = deferCreateIndex(st.sql);
          if (later !== undefined) {
            (deferred.get(key) ?? deferred.set(key, { db, table: c.table, clauses: [] }).get(key)!).clauses.push(later);
            return;
          }
          await buildKeys(key);
          const split = deferKeys(st.sql);
          if (split) {
            st = { ...st, sql: split.sql };
            deferred.set(key, { db, table: c.table, clauses: split.clauses });
          }
        }
        if (c.kind === 'insert' && ready.has(key)) {
          enqueue(leastLoaded(), { sql: st.sql, db, table: c.table, bytes: st.bytes, load: charset });
        } else {
          // DDL (and the first rows before the table is known to exist) waits for the table's earlier statements.
          await tableDone(key);
          check();
          const lane = leastLoaded();
          enqueue(lane, { sql: st.sql, db, table: c.table, bytes: st.bytes });
          await tableDone(key);
          check();
          if (c.kind === 'table' && /^\s*(?:\/\*!\d*\s*)?(?:create|drop)/i.test(st.sql)) {
            if (/^\s*(?:\/\*!\d*\s*)?drop/i.test(st.sql)) ready.delete(key);
            else ready.add(key);
          } else ready.add(key);
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
      const raw = createReadStream(file, { highWaterMark: 1024 * 1024 });
      raw.on('data', (b) => {
        readBytes += (b as Buffer).length;
      });
      const input: Readable = isGzip(file) ? raw.pipe(createGunzip()) : raw;
      raw.on('error', (err) => input.destroy(err));
      const splitter = new StatementSplitter();
      const out: Statement[] = [];
      try {
        for await (const chunk of input) {
          splitter.push(chunk as Buffer, out);
          for (const st of out.splice(0)) {
            await dispatch(st, current);
            check();
            if (queuedTotal >= cap) await room();
          }
          report(file, false);
        }
      } catch (err) {
        raw.destroy();
        if (err instanceof LeapfrogError) throw err;
        throw new LeapfrogError('input', `--dump ${file}: cannot read it (${(err as Error).message})`, { cause: err });
      }
      splitter.end(out);
      for (const st of out.splice(0)) await dispatch(st, current);
      // The deferred secondary keys, one ALTER per table, tables side by side.
      for (const key of [...deferred.keys()]) await buildKeys(key);
      await idle();
      check();
      report(file, true);
    }
  } finally {
    await idle().catch(() => {});
    await Promise.all(lanes.map((l) => l.conn.close().catch(() => {})));
  }
  return {
    bytes: readBytes,
    statements,
    durationMs: performance.now() - started,
    databases: Object.fromEntries(Object.entries(databases).map(([d, t]) => [d, [...t].sort()])),
  };
}
